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

/// A whole HTTP/1.1 response as HTTP/2 sends it.
pub(in crate::runtime) struct Parts<'a> {
    pub status: u16,
    /// The header fields less the connection-specific ones, names
    /// lower-cased.
    pub fields: Vec<(String, &'a [u8])>,
    pub body: &'a [u8],
}

/// A whole HTTP/1.1 response (as the route table builds them) as HTTP/2.
pub(in crate::runtime) fn response_parts(bytes: &[u8]) -> Parts<'_> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(n)) = r.parse(bytes) else {
        return Parts {
            status: 500,
            fields: Vec::new(),
            body: &[],
        };
    };
    let fields = r
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value))
        .filter(|(n, _)| {
            !matches!(
                n.as_str(),
                "connection" | "keep-alive" | "transfer-encoding" | "upgrade"
            )
        })
        .collect();
    Parts {
        status: r.code.unwrap_or(500),
        fields,
        body: &bytes[n..],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::{http_response, TEXT_PLAIN};

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
        let names: Vec<&str> = all.iter().map(|v| v.name()).collect();
        assert_eq!(names, crate::metrics::H2_ERRORS);
    }

    #[test]
    fn an_http1_response_becomes_status_fields_and_body() {
        let bytes = http_response(404, "", TEXT_PLAIN, b"not here\n", false);
        let p = response_parts(&bytes);
        assert_eq!(p.status, 404);
        assert_eq!(p.body, b"not here\n");
        let has = |name: &str, value: &[u8]| p.fields.iter().any(|(n, v)| n == name && *v == value);
        assert!(has("content-type", TEXT_PLAIN.as_bytes()));
        assert!(has("content-length", b"9"));
        assert!(p.fields.iter().all(|(n, _)| n != "connection"));
    }
}
