//! HTTP/1.1 requests on a connection: route each head, answer it, and keep
//! the connection for the next request (keep-alive, RFC 9112 §9.3) or close
//! it.
//!
//! A persistent connection goes back to its request-head session with the
//! answer as that session's output. Bytes that arrive before the answer is
//! written (a pipelined request) are held, and the connection's reads pause
//! until the answer is out; then they are read: answers leave in the order
//! of their requests, and a client that sends requests without reading the
//! answers holds one answer and one read's worth of bytes, no more. The
//! wait for each next request is the handshake timeout, which starts when
//! an answer is queued and which trickling cannot extend; a connection
//! serves at most [`MAX_REQUESTS`] requests, then the last answer closes it.
//! A refusal (a status from 400 on) closes the connection too: what the
//! client sends after a refused request is not worth reading.

use crate::driver::Reply;
use crate::proto::http::HttpRequest;
use crate::pubsub::Position;

use super::app::{App, Ends, RequestCx, Response, Route};
use super::core::Core;
use super::session::body::PostBody;
use super::session::http::Respond;
use super::session::sse::{self, EventStream};
use super::session::websocket::WebSocket;
use super::session::{Session, STREAM};

/// Requests one connection may send; the answer to the last says
/// `Connection: close`.
pub(super) const MAX_REQUESTS: u32 = 1000;

impl<A: App> Core<A> {
    /// A whole request head arrived; `rest` holds the bytes after it.
    pub(super) fn request(
        &mut self,
        index: u32,
        http: HttpRequest,
        rest: &mut [u8],
        reply: Option<&mut dyn Reply>,
    ) {
        let Some(slot) = self.conns.get(index) else {
            return;
        };
        let Session::Head(head) = &slot.session else {
            return;
        };
        let cx = RequestCx {
            id: self.conn_id(index, slot.generation),
            peer_addr: head.peer(),
            client_ip: head.client_ip(&http, self.cfg.trust_proxy),
            draining: self.draining,
            now: self.wall(),
            shared: self.peers.shared(),
            engine: &self.cfg.engine,
        };
        let head_only = http.method == "HEAD";
        // Whether the connection may serve another request after this one.
        let more = !self.draining && head.served() + 1 < MAX_REQUESTS;
        let persists = more && http.persists();
        let persists_after_body = more && http.persists_after_body();
        match self.app.route(http, &cx) {
            Route::Respond(r) if persists => self.answer(index, r, head_only, rest.to_vec()),
            Route::Respond(r) => self.respond(index, r, head_only),
            Route::Upgrade {
                req,
                protocol,
                tag,
                ends,
                identity,
            } => {
                let deflate = req.negotiate_deflate(self.cfg.deflate.as_ref());
                let mut conn = self.ws_conn(deflate);
                let _ = conn.send_raw(&req.accept_response(protocol.as_deref(), deflate.as_ref()));
                let ws = WebSocket::new(conn, tag, self.conns.now());
                self.open(index, self.ending(ws, ends, identity), cx.client_ip);
                if !rest.is_empty() {
                    self.frames(index, rest, reply);
                }
            }
            Route::EventStream { topic, since, ends } => {
                self.begin_sse(index, &topic, since, ends, head_only)
            }
            Route::Publish {
                topic,
                key,
                len,
                continue_first,
                batch,
            } => {
                let mut post = PostBody::new(topic, key, len).batched(batch);
                let (body, after) = rest.split_at(rest.len().min(len));
                let whole = post.take(body) == Ok(true);
                if continue_first && rest.is_empty() && len > 0 {
                    post.continue_first();
                    self.conns.mark_dirty(index);
                }
                let after = after.to_vec();
                if let Some(slot) = self.conns.get_mut(index) {
                    let head = std::mem::replace(&mut slot.session, Session::Body(Box::new(post)));
                    if let (Session::Body(post), Session::Head(head)) = (&mut slot.session, head) {
                        if persists_after_body {
                            post.then(head);
                        }
                    }
                }
                if whole {
                    self.finish_post(index, after);
                }
            }
        }
    }

    /// A publish request's body is whole: publish it and answer; `rest`
    /// is what came after the body (the next request's first bytes).
    pub(super) fn finish_post(&mut self, index: u32, rest: Vec<u8>) {
        let Some(slot) = self.conns.get_mut(index) else {
            return;
        };
        let Session::Body(post) = &slot.session else {
            return;
        };
        let r = match post.parts() {
            None => {
                let p = post.publication();
                self.publish(p);
                PostBody::published()
            }
            Some((_, Err(refused))) => refused,
            Some((batch, Ok(parts))) => {
                let topic = post.topic().to_string();
                let n = parts.len();
                let mut range: Option<(Position, Position)> = None;
                for p in parts {
                    if let Some(at) = self.publish(p) {
                        range = Some((range.map_or(at, |r| r.0), at));
                    }
                }
                (batch.answer)(&topic, n, range)
            }
        };
        // Closes unless the request persists (its head is kept to go back
        // to: `PostBody::then`).
        self.answer(index, r, false, rest);
    }

    /// Answer a request and keep the connection for the next one, whose
    /// first bytes are `rest` (see the module's comment). A refusal (from
    /// 400 on) closes, as does an answer on a connection that cannot
    /// persist (an HTTP/2 stream, a session with no head to go back to).
    pub(super) fn answer(&mut self, index: u32, r: Response, head_only: bool, rest: Vec<u8>) {
        let limits = self.cfg.limits;
        let deadline = self.conns.now() + self.ticks.handshake;
        let persistent = index & STREAM == 0 && r.status < 400;
        let Some(slot) = self.conns.get_mut(index).filter(|_| persistent) else {
            return self.respond(index, r, head_only);
        };
        let out = slot.after_own_output(r.to_http1_persistent(head_only));
        let next = match &mut slot.session {
            Session::Head(head) => Some(head.next(&limits, out, rest)),
            Session::Body(post) => post.take_then().map(|h| h.next(&limits, out, rest)),
            _ => None,
        };
        let Some(next) = next else {
            return self.respond(index, r, head_only);
        };
        slot.session = Session::Head(Box::new(next));
        slot.deadline = deadline;
        self.conns.mark_dirty(index);
    }

    /// A persistent connection's answer is out: read what it held (the
    /// next request).
    pub(super) fn resume_held(&mut self, index: u32) {
        let Some(slot) = self.conns.get_mut(index) else {
            return;
        };
        let Session::Head(head) = &mut slot.session else {
            return;
        };
        if !head.output().is_empty() || !head.holding() {
            return;
        }
        let mut held = head.take_held();
        self.plain_data(index, &mut held, None);
    }

    /// On shutdown: close the persistent connections that wait for a
    /// request (the busy ones close with their answer).
    pub(super) fn close_idle(&mut self) {
        let idle: Vec<u32> = self
            .conns
            .iter()
            .filter(|(_, s)| matches!(&s.session, Session::Head(h) if h.idle()))
            .map(|(i, _)| i)
            .collect();
        for index in idle {
            self.conns.close(index);
        }
    }

    pub(super) fn begin_sse(
        &mut self,
        index: u32,
        topic: &str,
        since: Option<Position>,
        ends: Ends,
        head_only: bool,
    ) {
        if head_only {
            if let Some(slot) = self.conns.get_mut(index) {
                slot.session = Session::Respond(Respond::new(sse::HEAD.to_vec()));
            }
            return self.conns.mark_dirty(index);
        }
        if let Some((s, ends)) = self.subscribe_sse(index, topic, since, ends) {
            if let Some(slot) = self.conns.get_mut(index) {
                slot.session = Session::Events(EventStream::new(&s, ends));
            }
        }
        self.conns.mark_dirty(index);
    }
}
