//! The Server-Sent Events session: the response head and keep-alive
//! comments are its own output; publications come from its subscriber
//! queue, in their SSE form.

use crate::pubsub::Subscribed;

/// The response head of an event stream.
pub(in crate::runtime) const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: keep-alive\r\nX-Accel-Buffering: no\r\n\r\n";

/// An open event stream.
pub(in crate::runtime) struct EventStream {
    out: Vec<u8>,
    pos: usize,
    /// Told to end (shutdown, slow consumer, its lifetime): closes once its
    /// output is out.
    closing: bool,
    /// The tick at which its lifetime ends (`--sse-lifetime`), 0: never.
    ends: u64,
}

impl EventStream {
    /// A stream whose first bytes are the head and [`subscribed`]; it ends
    /// at tick `ends` (0: never).
    pub(in crate::runtime) fn new(s: &Subscribed, ends: u64) -> EventStream {
        let mut out = HEAD.to_vec();
        out.extend_from_slice(&subscribed(s, ends != 0));
        EventStream {
            out,
            pos: 0,
            closing: false,
            ends,
        }
    }

    /// A stream whose head went another way (an HTTP/2 HEADERS frame):
    /// [`subscribed`] first.
    pub(in crate::runtime) fn headless(s: &Subscribed, ends: u64) -> EventStream {
        EventStream {
            out: subscribed(s, ends != 0),
            pos: 0,
            closing: false,
            ends,
        }
    }

    /// The tick its lifetime ends at, 0: never.
    pub(in crate::runtime) fn ends(&self) -> u64 {
        self.ends
    }

    /// The stream's own bytes not yet written.
    #[inline]
    pub(in crate::runtime) fn output(&self) -> &[u8] {
        &self.out[self.pos..]
    }

    pub(in crate::runtime) fn advance(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.out.len() {
            self.out.clear();
            self.pos = 0;
        }
    }

    /// A comment that keeps proxies and the client from timing out.
    pub(in crate::runtime) fn keep_alive(&mut self) {
        self.out.extend_from_slice(b": keep-alive\n\n");
    }

    pub(in crate::runtime) fn close(&mut self) {
        self.closing = true;
    }

    pub(in crate::runtime) fn closing(&self) -> bool {
        self.closing
    }
}

/// The stream's first event: a `subscribed` comment and, on a topic with
/// history, the position the stream starts from as its id. An event with an
/// id and no data is not dispatched, but it sets the browser's
/// `lastEventId`, so a reconnect before the first publication still
/// recovers from here. A stream with a lifetime asks for a reconnect a
/// second after it ends (`retry:`; browsers wait about 3 s by default).
fn subscribed(s: &Subscribed, retry: bool) -> Vec<u8> {
    let mut out = match (s.position, s.start) {
        (Some(p), Some(start)) => format!(
            ": subscribed epoch={} offset={} recovered={}\nid: {start}\n",
            p.epoch_str(),
            p.offset,
            s.recovered
        ),
        _ => ": subscribed\n".to_string(),
    };
    if retry {
        out.push_str("retry: 1000\n");
    }
    out.push('\n');
    out.into_bytes()
}
