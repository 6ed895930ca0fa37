//! ringwave's load generator and peer servers.
//!
//! Not built yet: this crate holds the workspace slot for `ringwave-bench`,
//! which will drive load with ringwave's client-role protocol
//! (`ringwave::proto::Conn` in [`ringwave::proto::Role::Client`]).
