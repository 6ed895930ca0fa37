//! The HTTP/2 connection session: the sans-IO `proto::h2::session` and the
//! slots of its streams. A stream that needs more than its response head
//! (a body, an event stream, a publish body, a WebSocket) is a slot of its
//! own with the session it would have on HTTP/1.1, linked to this one
//! ([`super::Link`]); its bytes come here as DATA frames, within the
//! stream's and the connection's flow-control windows.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::proto::h2::session::{Config, Event, Session};

/// Unsent bytes past which streams put no more DATA into the connection's
/// output: what is left waits in the stream's slot, where it counts against
/// `max_buffered` and the slow-consumer policy sees it.
pub(in crate::runtime) const BACKLOG: usize = 64 * 1024;

/// An HTTP/2 connection.
pub(in crate::runtime) struct Http2 {
    pub session: Session,
    /// Each open stream's slot and its generation.
    pub streams: HashMap<u32, (u32, u32)>,
    pub peer: Option<SocketAddr>,
    /// A stream could not put all its bytes in for the backlog: flush the
    /// streams again once the output is shorter.
    pub blocked: bool,
    /// The last read's events (kept for the allocation).
    pub events: Vec<Event>,
}

impl Http2 {
    pub(in crate::runtime) fn new(peer: Option<SocketAddr>) -> Http2 {
        Http2 {
            session: Session::new(Config::default()),
            streams: HashMap::new(),
            peer,
            blocked: false,
            events: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {

    /// Every violation has its label; the runtime's own reason (`unread`,
    /// a peer that does not read) comes after them.
    #[test]
    fn every_violation_has_its_metric_label() {
        use crate::proto::h2::session::Violation::*;
        let all = [
            Protocol,
            FlowControl,
            Compression,
            ContinuationFlood,
            ControlFlood,
            RapidReset,
            HeaderList,
            StreamLimit,
            Malformed,
        ];
        let mut names: Vec<&str> = all.iter().map(|v| v.name()).collect();
        names.push("unread");
        assert_eq!(names, crate::metrics::H2_ERRORS);
    }
}
