//! HTTP/2 in the loop: a connection's bytes through its
//! `proto::h2::session`, each request to the route table as on HTTP/1.1,
//! and each stream that outlives its head as a slot of its own (see
//! `session::h2`): a response body, an event stream, a publish body, or a
//! WebSocket over extended CONNECT (RFC 8441) for the same `App`.

use crate::proto::h2::session::{Event, Request};
use crate::proto::h2::ErrorCode;
use crate::proto::http::{HttpRequest, Response};

use super::app::{App, RequestCx, Route};
use super::core::Core;
use super::session::body::{PostBody, TooLong};
use super::session::h2::{Http2, BACKLOG};
use super::session::head::client_ip;
use super::session::http::Respond;
use super::session::sse::EventStream;
use super::session::websocket::WebSocket;
use super::session::{Ending, Link, Session, Slot};

/// A key for the route table's handshake checks: HTTP/2 has no
/// `Sec-WebSocket-Key` (RFC 8441 §5), and its accept value is not sent.
const NO_KEY: &[u8] = b"AAAAAAAAAAAAAAAAAAAAAA==";

/// The answer to a publish body that ended before its `Content-Length`.
/// (The session resets a body that does not add up to its
/// `content-length` with PROTOCOL_ERROR first, RFC 9113 §8.1.1: this and
/// [`LONG_BODY`] stand behind it, should the route's length ever differ.)
const SHORT_BODY: &[u8] = b"the body ended before its Content-Length\n";
/// The answer to a publish body longer than its `content-length`.
const LONG_BODY: &[u8] = b"the body is longer than its content-length\n";

/// An HTTP/2 request as the HTTP/1.1 head the route table reads: `Host`
/// from `:authority`, and an extended CONNECT for `websocket` as the
/// upgrade request it stands for.
fn http_request(req: Request) -> (HttpRequest, bool) {
    let websocket = req.method == "CONNECT"
        && req
            .protocol
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case("websocket"));
    let mut headers = Vec::with_capacity(req.headers.len() + 4);
    if !req.authority.is_empty() {
        headers.push(("host".to_string(), req.authority.into_bytes()));
    }
    if websocket {
        headers.push(("upgrade".to_string(), b"websocket".to_vec()));
        headers.push(("connection".to_string(), b"Upgrade".to_vec()));
        headers.push(("sec-websocket-key".to_string(), NO_KEY.to_vec()));
    }
    headers.extend(req.headers);
    let method = if websocket {
        "GET".to_string()
    } else {
        req.method
    };
    let http = HttpRequest {
        method,
        path: req.path,
        minor_version: 1,
        headers,
    };
    (http, websocket)
}

impl<A: App> Core<A> {
    /// The connection's first bytes are the HTTP/2 preface.
    pub(super) fn begin_h2(&mut self, index: u32, buf: &mut [u8]) {
        let Some(slot) = self.conns.get_mut(index) else {
            return;
        };
        let Session::Head(head) = &slot.session else {
            return;
        };
        // The handshake deadline set at the connection's start still runs:
        // the preface and the first SETTINGS must come within it.
        slot.session = Session::H2(Box::new(Http2::new(head.peer())));
        self.stats.h2_connections.add(1);
        self.h2_data(index, buf);
    }

    /// Bytes on an HTTP/2 connection.
    pub(super) fn h2_data(&mut self, index: u32, buf: &[u8]) {
        let now = self.conns.now();
        let Some(slot) = self.conns.get_mut(index) else {
            return;
        };
        let Session::H2(h) = &mut slot.session else {
            return;
        };
        let mut events = std::mem::take(&mut h.events);
        events.clear();
        if let Err(e) = h.session.read(buf, now, &mut events) {
            tracing::debug!(worker = self.worker, index, "{e}");
            self.stats.h2_error(e.violation.name());
            slot.ending = Ending::Linger;
        }
        // Only whole frames after the handshake move the deadline: bytes
        // trickled into a preface or a frame do not.
        if h.session.between_frames() {
            slot.deadline = now + self.ticks.idle;
        }
        // DATA stops going into the output at BACKLOG; what grows past it
        // is what the peer's own frames asked for (PING and SETTINGS acks,
        // resets, window updates) and it does not read: closed, as a
        // WebSocket that does not read its answers is.
        if h.session.output().len() > BACKLOG + self.cfg.max_buffered {
            tracing::debug!(worker = self.worker, index, "HTTP/2 peer does not read");
            self.stats.h2_error("unread");
            self.conns.close(index);
            return;
        }
        let mut data = h.session.take_data();
        for ev in events.drain(..) {
            match ev {
                Event::Request(req) => self.h2_request(index, req),
                Event::Data {
                    stream,
                    range,
                    end_stream,
                } => self.h2_body(index, stream, &mut data[range], end_stream),
                Event::Reset { stream } => {
                    if let Some(s) = self.stream_slot(index, stream) {
                        self.conns.close(s);
                    }
                }
                Event::Refused { violation, .. } => self.stats.h2_error(violation.name()),
            }
        }
        let mut opened = false;
        if let Some(slot) = self.conns.get_mut(index) {
            if let Session::H2(h) = &mut slot.session {
                h.session.restore_data(data);
                h.events = events;
                opened = h.session.take_windows_opened();
            }
        }
        // A window opened: streams with bytes waiting go again.
        if opened {
            self.wake_streams(index, false);
        }
        self.conns.mark_dirty(index);
        self.publish_pending();
    }

    /// Mark the connection's streams with unsent bytes dirty (all of them
    /// when `all`).
    pub(super) fn wake_streams(&mut self, index: u32, all: bool) {
        let Some(slot) = self.conns.get(index) else {
            return;
        };
        let Session::H2(h) = &slot.session else {
            return;
        };
        let mut wake = Vec::new();
        for &(s, generation) in h.streams.values() {
            let waiting = self.conns.get(s).is_some_and(|slot| {
                slot.generation == generation
                    && (all || slot.plain_pending() > 0 || slot.session.finished())
            });
            if waiting {
                wake.push(s);
            }
        }
        for s in wake {
            self.conns.mark_dirty(s);
        }
    }

    /// The slot of `stream` on connection `index`.
    fn stream_slot(&self, index: u32, stream: u32) -> Option<u32> {
        let slot = self.conns.get(index)?;
        let Session::H2(h) = &slot.session else {
            return None;
        };
        let &(s, generation) = h.streams.get(&stream)?;
        let live = self.conns.get(s)?.generation == generation;
        live.then_some(s)
    }

    /// A new stream's request: a slot of its own, then the route table.
    fn h2_request(&mut self, index: u32, req: Request) {
        let now = self.conns.now();
        let generation = self.conns.new_generation();
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        let Session::H2(h) = &mut conn.session else {
            return;
        };
        let stream = req.stream;
        let peer = h.peer;
        let end_stream = req.end_stream;
        let mut slot = Slot::new(
            generation,
            Session::Respond(Respond::new(Vec::new())),
            now + self.ticks.handshake + 1,
        );
        slot.link = Some(Link {
            index,
            generation: conn.generation,
            stream,
        });
        let s = self.conns.insert_stream(slot);
        if let Some(conn) = self.conns.get_mut(index) {
            if let Session::H2(h) = &mut conn.session {
                h.streams.insert(stream, (s, generation));
            }
        }
        let (http, websocket) = http_request(req);
        let head_only = http.method == "HEAD";
        let client_ip = client_ip(peer, None, &http, self.cfg.trust_proxy);
        let cx = RequestCx {
            id: self.conn_id(s, generation),
            peer_addr: peer,
            client_ip,
            draining: self.draining,
            now: self.wall(),
            shared: self.peers.shared(),
            engine: &self.cfg.engine,
        };
        match self.app.route(http, &cx) {
            Route::Respond(r) => {
                self.stats.h2_stream("response");
                self.respond_stream(s, r, head_only);
            }
            Route::Upgrade {
                req,
                protocol,
                tag,
                ends,
                identity,
            } if websocket => {
                self.stats.h2_stream("websocket");
                let deflate = req.negotiate_deflate(self.cfg.deflate.as_ref());
                let extensions = deflate.map(|d| d.header_value());
                let mut fields: Vec<(&str, &[u8])> = Vec::new();
                if let Some(p) = &protocol {
                    fields.push(("sec-websocket-protocol", p.as_bytes()));
                }
                if let Some(e) = &extensions {
                    fields.push(("sec-websocket-extensions", e.as_bytes()));
                }
                self.stream_headers(s, 200, &fields, false);
                let conn = self.ws_conn(deflate);
                let ws = WebSocket::new(conn, tag, now);
                self.open(s, self.ending(ws, ends, identity), client_ip);
            }
            Route::Upgrade { .. } => self.bad_request(
                s,
                b"a WebSocket over HTTP/2 is an extended CONNECT (RFC 8441)\n",
            ),
            Route::EventStream { topic, since, ends } => {
                self.stats.h2_stream("events");
                let fields: [(&str, &[u8]); 2] = [
                    ("content-type", b"text/event-stream"),
                    ("cache-control", b"no-cache"),
                ];
                self.stream_headers(s, 200, &fields, head_only);
                if head_only {
                    return self.conns.close(s);
                }
                if let Some((sub, ends)) = self.subscribe_sse(s, &topic, since, ends) {
                    if let Some(slot) = self.conns.get_mut(s) {
                        slot.session = Session::Events(EventStream::headless(&sub, ends));
                    }
                }
                self.conns.mark_dirty(s);
            }
            Route::Publish {
                topic,
                key,
                len,
                batch,
                ..
            } => {
                // `Expect: 100-continue` is HTTP/1.1's: an HTTP/2 client
                // sends the body without waiting.
                self.stats.h2_stream("publish");
                let post = PostBody::new(topic, key, len).batched(batch);
                if let Some(slot) = self.conns.get_mut(s) {
                    slot.session = Session::Body(Box::new(post));
                }
                match (end_stream, len) {
                    (true, 0) => self.finish_post(s, Vec::new()),
                    (true, _) => self.bad_request(s, SHORT_BODY),
                    (false, _) => {}
                }
            }
        }
    }

    /// Answer a stream 400 with `why` (counted once, by
    /// [`Core::respond_stream`]).
    fn bad_request(&mut self, s: u32, why: &[u8]) {
        self.respond_stream(s, Response::text(400, why), false);
    }

    /// Send a stream's response head.
    fn stream_headers(&mut self, s: u32, status: u16, fields: &[(&str, &[u8])], end: bool) {
        let Some((slot, conn)) = self.conns.stream_and_conn(s) else {
            return;
        };
        let Some(link) = slot.link else {
            return;
        };
        if let Session::H2(h) = &mut conn.session {
            h.session.send_headers(link.stream, status, fields, end);
        }
        self.conns.mark_dirty(link.index);
    }

    /// Answer a stream with a whole response: HEADERS now (the fields
    /// lower-cased, `content-length` added), the body as DATA from the
    /// stream's slot (none in answer to `HEAD`).
    pub(super) fn respond_stream(&mut self, s: u32, r: Response, head_only: bool) {
        if r.status >= 400 {
            self.stats.reject(r.status);
        }
        let mut owned: Vec<(String, String)> = r
            .fields()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
            .collect();
        owned.push(("content-length".into(), r.body.len().to_string()));
        let fields: Vec<(&str, &[u8])> = owned
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        let body = if head_only { Vec::new() } else { r.body };
        let empty = body.is_empty();
        self.stream_headers(s, r.status, &fields, empty);
        let Some(slot) = self.conns.get_mut(s) else {
            return;
        };
        slot.session = Session::Respond(Respond::new(body));
        slot.ending = Ending::Close;
        if empty {
            self.conns.close(s);
        } else {
            self.conns.mark_dirty(s);
        }
    }

    /// DATA on a stream: a publish body, or WebSocket frames.
    fn h2_body(&mut self, index: u32, stream: u32, data: &mut [u8], end_stream: bool) {
        let now = self.conns.now();
        let Some(s) = self.stream_slot(index, stream) else {
            return;
        };
        let Some(slot) = self.conns.get_mut(s) else {
            return;
        };
        match &mut slot.session {
            // The body is whole at END_STREAM, and must then be exactly
            // `content-length` bytes.
            Session::Body(post) => match (post.take(data), end_stream) {
                (Err(TooLong), _) => self.bad_request(s, LONG_BODY),
                (Ok(true), true) => self.finish_post(s, Vec::new()),
                (Ok(false), true) => self.bad_request(s, SHORT_BODY),
                (Ok(_), false) => {}
            },
            Session::WebSocket(ws) => {
                slot.deadline = ws.cap(now + self.ticks.ping);
                ws.heard(now);
                if !data.is_empty() {
                    self.frames(s, data, None);
                }
                if end_stream {
                    // The peer's side is done: as a TCP connection's EOF.
                    self.conns.close(s);
                }
            }
            _ => {}
        }
    }

    /// A stream's slot is closing: end the stream (END_STREAM when it
    /// finished, RST_STREAM otherwise) and forget it.
    pub(super) fn end_stream(&mut self, slot: &Slot, link: Link) {
        // A WebSocket's session is finished once its close handshake is.
        let clean = slot.session.finished() && slot.plain_pending() == 0;
        let Some(conn) = self.conns.live_mut(link.index, link.generation) else {
            return;
        };
        let Session::H2(h) = &mut conn.session else {
            return;
        };
        h.streams.remove(&link.stream);
        if h.session.is_open(link.stream) {
            if clean {
                h.session.send_data(link.stream, &[], true);
            } else {
                h.session.reset(link.stream, ErrorCode::CANCEL);
            }
        }
        self.conns.mark_dirty(link.index);
    }
}
