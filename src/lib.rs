//! ringwave: a thread-per-core WebSocket server over io_uring.
//!
//! - [`proto`]: the sans-IO protocol core (RFC 6455, permessage-deflate), for
//!   both the server and the client role.
//! - [`driver`]: the io_uring and poll (mio) backends.
//! - [`runtime`]: one pinned worker per core.
//! - [`server`]: the [`server::Handler`] trait, [`server::Ws`] and
//!   [`server::Server::builder`].
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod driver;
pub mod proto;
pub mod runtime;
pub mod server;

/// The README's Rust examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
