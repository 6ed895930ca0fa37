//! The Server-Sent Events session: the response head and keep-alive
//! comments are its own output; publications come from its subscriber
//! queue, in their SSE form.

/// The response head of an event stream.
pub(in crate::runtime) const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: keep-alive\r\nX-Accel-Buffering: no\r\n\r\n";

/// An open event stream.
pub(in crate::runtime) struct EventStream {
    out: Vec<u8>,
    pos: usize,
    /// Told to end (shutdown, slow consumer): closes once its output is out.
    closing: bool,
}

impl EventStream {
    /// A stream whose first bytes are the head and a `subscribed` comment.
    pub(in crate::runtime) fn new() -> EventStream {
        let mut out = HEAD.to_vec();
        out.extend_from_slice(b": subscribed\n\n");
        EventStream {
            out,
            pos: 0,
            closing: false,
        }
    }

    /// A stream whose head went another way (an HTTP/2 HEADERS frame): a
    /// `subscribed` comment first.
    pub(in crate::runtime) fn headless() -> EventStream {
        EventStream {
            out: b": subscribed\n\n".to_vec(),
            pos: 0,
            closing: false,
        }
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
