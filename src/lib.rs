//! ringwave: a thread-per-core WebSocket server over io_uring.
//!
//! Layers, each using only those listed before it:
//!
//! - [`proto`]: the sans-IO protocol core (RFC 6455, permessage-deflate), for
//!   both the server and the client role.
//! - [`driver`]: the io_uring and poll (mio) backends.
//! - [`metrics`]: per-worker counters and the Prometheus text.
//! - [`pubsub`]: publications, slow-consumer policies, subscriber queues and
//!   topic tables, as data.
//! - [`runtime`]: one pinned worker per core: the loop, the connection
//!   sessions, timers, mailboxes.
//! - [`bridge`]: pub/sub across machines through NATS, as an uplink of the
//!   runtime on a thread of its own.
//! - [`server`]: the [`server::Handler`] trait, [`server::Ws`],
//!   [`server::Server::builder`], the route table and the built-in apps.
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod bridge;
pub mod driver;
pub mod metrics;
pub mod proto;
pub mod pubsub;
pub mod runtime;
pub mod server;

/// The README's Rust examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The guides' Rust examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/library.md")]
pub struct LibraryDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/clustering.md")]
pub struct ClusteringDoctests;
