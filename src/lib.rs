//! ringwave: a thread-per-core WebSocket server over io_uring.
//!
//! This crate currently holds the sans-IO protocol core in [`proto`]: RFC 6455
//! and permessage-deflate (RFC 7692), for both the server and the client role.
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod proto;
