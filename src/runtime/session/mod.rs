//! A connection's slot in the worker's table and the sessions it goes
//! through, one file each with its state and transitions:
//!
//! - [`head`]: an optional PROXY v2 header, then the HTTP request head
//!   (on a persistent connection, with the previous request's answer);
//! - [`http`]: a plain response, then close;
//! - [`body`]: the body of a publish request;
//! - [`sse`]: a Server-Sent Events stream;
//! - [`websocket`]: an upgraded connection;
//! - [`h2`]: an HTTP/2 connection, whose streams are slots of their own
//!   (a response, an event stream, a publish body, a WebSocket) linked to
//!   it ([`Link`]).
//!
//! What every session shares (its own unsent bytes, whether it takes
//! publications, whether it is finished) is answered here, by one match per
//! question, so a new kind of session adds one arm to each and touches no
//! other session.

pub(super) mod body;
pub(super) mod h2;
pub(super) mod head;
pub(super) mod http;
pub(super) mod sse;
pub(super) mod websocket;

use crate::proto::CloseState;
use crate::pubsub::Subscriber;

use super::tls::TlsLayer;

use body::PostBody;
use h2::Http2;
use head::{ProxyHead, RequestHead};
use http::Respond;
use sse::EventStream;
use websocket::WebSocket;

/// The timeouts in ticks.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticks {
    pub handshake: u64,
    pub ping: u64,
    pub idle: u64,
    /// Ticks to wait for a peer's EOF after a half-close.
    pub linger: u64,
    /// An event stream's lifetime (`--sse-lifetime`), 0: none.
    pub sse_lifetime: u64,
}

/// A connection's protocol phase. A plain tag byte (`repr(u8)`) rather than
/// one the compiler would hide in a niche of the largest variant: the loop
/// matches on the session a dozen times per message, and a niche costs a
/// few instructions each time (see `websocket::Rare`, which keeps the
/// largest variant small enough for the tag to cost no space).
#[repr(u8)]
pub(super) enum Session {
    Proxy(ProxyHead),
    /// Boxed: read during the handshake only, and the largest state; an
    /// upgraded connection's slot is then not sized by it.
    Head(Box<RequestHead>),
    Respond(Respond),
    Body(Box<PostBody>),
    Events(EventStream),
    WebSocket(WebSocket),
    /// Boxed: the HPACK tables and the stream map.
    H2(Box<Http2>),
}

impl Session {
    /// The connection's own unsent bytes (responses, frames it sent,
    /// control frames), which go ahead of queued publications.
    #[inline]
    pub(super) fn own_output(&self) -> &[u8] {
        match self {
            Session::Proxy(_) => &[],
            Session::Head(head) => head.output(),
            Session::Body(post) => post.output(),
            Session::Respond(r) => r.output(),
            Session::Events(s) => s.output(),
            Session::WebSocket(ws) => ws.conn.output(),
            Session::H2(h) => h.session.output(),
        }
    }

    #[inline]
    fn advance_own(&mut self, n: usize) {
        match self {
            Session::Proxy(_) => {}
            Session::Head(head) => head.advance(n),
            Session::Body(post) => post.advance(n),
            Session::Respond(r) => r.advance(n),
            Session::Events(s) => s.advance(n),
            Session::WebSocket(ws) => ws.conn.advance_output(n),
            Session::H2(h) => h.session.advance_output(n),
        }
    }

    /// Whether new publications may be queued.
    #[inline]
    pub(super) fn takes_publications(&self) -> bool {
        match self {
            Session::WebSocket(ws) => ws.conn.close_state() == CloseState::Open,
            Session::Events(s) => !s.closing(),
            _ => false,
        }
    }

    /// Nothing more to do but close the transport once output is flushed.
    #[inline]
    pub(super) fn finished(&self) -> bool {
        match self {
            Session::Proxy(_) | Session::Head(_) | Session::Body(_) => false,
            Session::Respond(_) => true,
            Session::Events(s) => s.closing(),
            Session::WebSocket(ws) => ws.conn.close_state() == CloseState::Closed,
            Session::H2(h) => h.session.finished(),
        }
    }

    /// Still before a response or an upgrade: the handshake timeout runs.
    pub(super) fn in_handshake(&self) -> bool {
        matches!(
            self,
            Session::Proxy(_) | Session::Head(_) | Session::Body(_)
        )
    }
}

/// How a connection ends once its output is out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// Close the transport at once.
    Close,
    /// Half-close, then wait for the peer's EOF (failed connections and
    /// refused requests, whose peer may still be sending: a reset could
    /// destroy the answer).
    Linger,
    /// Half-closed, waiting for the peer's EOF or the deadline.
    Lingering,
}

/// One connection in the worker's table.
pub(super) struct Slot {
    pub generation: u32,
    pub session: Session,
    /// Tick by which something must happen (handshake done, data seen).
    pub deadline: u64,
    /// Queued in the worker's dirty list for this turn.
    pub dirty: bool,
    /// Unsent bytes passed the limit: fire `on_drain` when they clear.
    pub over_limit: bool,
    pub ending: Ending,
    /// Pub/sub state, once the connection subscribes.
    pub sub: Option<Box<Subscriber>>,
    /// TLS, on a connection from the TLS listener: the session's bytes are
    /// plaintext and this layer's output is what goes to the socket.
    pub tls: Option<Box<TlsLayer>>,
    /// On an HTTP/2 stream's slot: the connection it travels on. Its bytes
    /// go there as DATA frames, not to a socket.
    pub link: Option<Link>,
}

/// The HTTP/2 connection a stream's slot belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Link {
    /// The connection's slot.
    pub index: u32,
    pub generation: u32,
    /// The stream.
    pub stream: u32,
}

impl Slot {
    /// A new connection's slot.
    pub(super) fn new(generation: u32, session: Session, deadline: u64) -> Slot {
        Slot {
            generation,
            session,
            deadline,
            dirty: false,
            over_limit: false,
            ending: Ending::Close,
            sub: None,
            tls: None,
            link: None,
        }
    }

    /// Answer with `out` and close, lingering (the peer may still be
    /// sending).
    pub(super) fn respond(&mut self, out: Vec<u8>) {
        let out = self.after_own_output(out);
        self.session = Session::Respond(Respond::new(out));
        self.ending = Ending::Linger;
    }

    /// `out` behind what the session queued and has not sent (an interim
    /// `100 Continue`), which goes out first.
    pub(super) fn after_own_output(&self, mut out: Vec<u8>) -> Vec<u8> {
        let pending = self.session.own_output();
        if !pending.is_empty() {
            out.splice(..0, pending.iter().copied());
        }
        out
    }

    /// When the slot's wheel entry should come back, at tick `now`: its
    /// deadline, but until the handshake is done at least every ping
    /// interval, so the shorter deadline set when it completes is not missed.
    pub(super) fn timer_due(&self, now: u64, ping_ticks: u64) -> u64 {
        if self.session.in_handshake() {
            self.deadline.min(now + ping_ticks)
        } else {
            self.deadline
        }
    }

    #[inline]
    pub(super) fn is_sse(&self) -> bool {
        matches!(self.session, Session::Events(_))
    }

    #[inline]
    pub(super) fn own_output(&self) -> &[u8] {
        self.session.own_output()
    }

    #[inline]
    pub(super) fn queued(&self) -> usize {
        self.sub.as_ref().map_or(0, |s| s.queued_bytes)
    }

    /// Every unsent byte: own output, queued publications and encrypted
    /// output.
    #[inline]
    pub(super) fn pending(&self) -> usize {
        self.own_output().len() + self.queued() + self.tls.as_ref().map_or(0, |t| t.output().len())
    }

    /// Plaintext still to go through the TLS layer or the socket: own output
    /// and queued publications.
    #[inline]
    pub(super) fn plain_pending(&self) -> usize {
        self.own_output().len() + self.queued()
    }

    #[inline]
    pub(super) fn advance_own(&mut self, n: usize) {
        self.session.advance_own(n);
    }

    /// Consume `n` written bytes in the order `flush::gather` laid them out:
    /// the rest of a partly written publication (if `front_partial`), own
    /// output, then queued publications.
    pub(super) fn consume(&mut self, mut n: usize, front_partial: bool, sent: &Lag<'_>) {
        let sse = self.is_sse();
        if front_partial {
            if let Some(sub) = self.sub.as_deref_mut() {
                let rest = sub
                    .queue
                    .front()
                    .map_or(0, |p| p.bytes(sse).len() - sub.front_pos);
                if n < rest {
                    sub.front_pos += n;
                    sub.queued_bytes -= n;
                    return;
                }
                n -= rest;
                sub.queued_bytes -= rest;
                sub.front_pos = 0;
                if let Some(p) = sub.queue.pop_front() {
                    sent.sent(&p);
                }
            }
        }
        let own = self.own_output().len().min(n);
        self.advance_own(own);
        n -= own;
        if let Some(sub) = self.sub.as_deref_mut() {
            while n > 0 {
                let Some(front) = sub.queue.front() else {
                    break;
                };
                let len = front.bytes(sse).len();
                if n < len {
                    sub.front_pos = n;
                    sub.queued_bytes -= n;
                    return;
                }
                n -= len;
                sub.queued_bytes -= len;
                if let Some(p) = sub.queue.pop_front() {
                    sent.sent(&p);
                }
            }
        }
    }
}

/// The index bit of an HTTP/2 stream's slot (a connection's index is its
/// driver token).
pub(super) const STREAM: u32 = 1 << 31;

/// The worker's slots: connections by driver token, HTTP/2 streams by
/// [`STREAM`] and a number of their own.
pub(super) struct Slots {
    conns: Vec<Option<Slot>>,
    streams: Vec<Option<Slot>>,
    free: Vec<u32>,
}

impl Slots {
    pub(super) fn with_capacity(n: usize) -> Slots {
        Slots {
            conns: Vec::with_capacity(n),
            streams: Vec::new(),
            free: Vec::new(),
        }
    }

    #[inline]
    pub(super) fn get(&self, index: usize) -> Option<&Option<Slot>> {
        if index & STREAM as usize != 0 {
            self.streams.get(index & !(STREAM as usize))
        } else {
            self.conns.get(index)
        }
    }

    #[inline]
    pub(super) fn get_mut(&mut self, index: usize) -> Option<&mut Option<Slot>> {
        if index & STREAM as usize != 0 {
            self.streams.get_mut(index & !(STREAM as usize))
        } else {
            self.conns.get_mut(index)
        }
    }

    /// A stream's slot and its connection's, both live, the connection's of
    /// the generation the link names.
    pub(super) fn stream_and_conn(&mut self, index: u32) -> Option<(&mut Slot, &mut Slot)> {
        let s = self.streams.get_mut((index & !STREAM) as usize)?.as_mut()?;
        let link = s.link?;
        let c = self.conns.get_mut(link.index as usize)?.as_mut()?;
        (c.generation == link.generation).then_some((s, c))
    }

    /// Put a new connection's slot at its token's index.
    pub(super) fn insert_conn(&mut self, i: usize, slot: Slot) {
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        self.conns[i] = Some(slot);
    }

    /// A stream's slot: its index.
    pub(super) fn insert_stream(&mut self, slot: Slot) -> u32 {
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.streams.push(None);
                self.streams.len() as u32 - 1
            }
        };
        self.streams[i as usize] = Some(slot);
        i | STREAM
    }

    /// Remove a slot (a stream's index is reused).
    pub(super) fn take(&mut self, index: u32) -> Option<Slot> {
        let slot = self.get_mut(index as usize)?.take();
        if slot.is_some() && index & STREAM != 0 {
            self.free.push(index & !STREAM);
        }
        slot
    }

    /// Every live slot and its index.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &Slot)> {
        let conns = self.conns.iter().enumerate().map(|(i, c)| (i as u32, c));
        let streams = self
            .streams
            .iter()
            .enumerate()
            .map(|(i, c)| (i as u32 | STREAM, c));
        conns
            .chain(streams)
            .filter_map(|(i, c)| c.as_ref().map(|s| (i, s)))
    }
}

/// Where the delivery lag of publications [`Slot::consume`] sees sent is
/// recorded: the turn's clock and the worker's histogram.
pub(in crate::runtime) struct Lag<'a> {
    pub now: std::time::Instant,
    pub hist: &'a crate::metrics::Histogram<{ crate::metrics::LAG_BUCKETS_US.len() }>,
}

impl Lag<'_> {
    /// `p` was taken for sending whole: its lag since it reached the
    /// first worker, once per publication it carries (a run's, all with
    /// its oldest member's arrival); a gap notice, which never reached a
    /// worker, is not counted.
    fn sent(&self, p: &crate::pubsub::Publication) {
        if let Some(at) = p.arrived() {
            let lag = self.now.saturating_duration_since(at);
            self.hist.observe_lag(lag, p.carries());
        }
    }
}
