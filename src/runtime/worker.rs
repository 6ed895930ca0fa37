//! One worker: a driver, a table of connections, a timer wheel and a
//! mailbox, on one pinned thread.
//!
//! A loop turn: wait for completions and handle each (handshake bytes, frames
//! to the handler); then flush every connection that queued output during the
//! turn, one send per connection (corking); then close the connections that
//! finished; then advance the timer wheel.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::driver::{Completion, Driver, Part, Token};
use crate::proto::handshake::{
    status_text, HandshakeError, HttpRequest, RequestParser, UpgradeRequest,
};
use crate::proto::proxy::{self, Preamble};
use crate::proto::{CloseCode, CloseState, Conn, Event, MessageKind, Role};
use crate::server::metrics::{self, Stats, WorkerView};
use crate::server::pubsub::{Policy, Publication, Subscriber, Topics};
use crate::server::{feed, page, Config, ConnId, Handler, Local, Msg, Upgrade, Ws};

use super::mailbox::{Control, Mailbox, Refused};
use super::timer::{TimerEntry, TimerWheel};
use super::Shared;

/// Timer tick.
const TICK: Duration = Duration::from_secs(1);
/// Ticks to wait for a peer's EOF after a half-close.
const LINGER_TICKS: u64 = 2;
/// Most slices gathered into one send.
const MAX_PARTS: usize = 256;
/// Stop gathering publications into one send past this many bytes.
const GATHER_BYTES: usize = 64 * 1024;

/// A connection's protocol phase.
enum State {
    /// Reading a PROXY protocol v2 header, if any (with `trust_proxy`).
    Proxy(Vec<u8>),
    /// Reading the HTTP request head.
    Handshake(RequestParser),
    /// Writing a plain HTTP response, then closing.
    Http { out: Vec<u8>, pos: usize },
    /// Reading the body of `POST /publish/<topic>`.
    Body(Box<PostBody>),
    /// A Server-Sent Events stream: the response head and keep-alive
    /// comments in `out`, publications from the subscriber queue.
    Sse {
        out: Vec<u8>,
        pos: usize,
        closing: bool,
    },
    /// WebSocket.
    Open(Conn),
}

struct PostBody {
    topic: String,
    key: Option<String>,
    want: usize,
    body: Vec<u8>,
}

struct Slot {
    generation: u32,
    state: State,
    /// Tick by which something must happen (handshake done, data seen).
    deadline: u64,
    /// A keep-alive ping was sent and not yet followed by any traffic.
    pinged: bool,
    /// Tick of the peer's last traffic (WebSocket).
    last_seen: u32,
    /// Queued in `dirty` for this turn.
    dirty: bool,
    /// Unsent bytes passed the limit: fire `on_drain` when they clear.
    over_limit: bool,
    /// After the last bytes, half-close and wait for the peer to finish
    /// (failed connections and refused handshakes, whose peer may still be
    /// sending) instead of closing at once.
    linger: bool,
    /// Half-closed and waiting for the peer's EOF (or the deadline).
    lingering: bool,
    /// How the WebSocket closed, for `on_close`.
    close_code: CloseCode,
    close_reason: String,
    /// Served by the built-in feed app instead of the handler.
    feed: bool,
    /// May publish (feed app).
    can_publish: bool,
    /// The TCP peer's address, when the driver knows it.
    peer: Option<SocketAddr>,
    /// The client named by a PROXY v2 header (with `trust_proxy`).
    proxied: Option<SocketAddr>,
    /// Pub/sub state, once the connection subscribes.
    sub: Option<Box<Subscriber>>,
}

impl Slot {
    /// A new connection's slot.
    fn new(generation: u32, state: State, deadline: u64, peer: Option<SocketAddr>) -> Slot {
        Slot {
            generation,
            state,
            deadline,
            pinged: false,
            last_seen: 0,
            dirty: false,
            over_limit: false,
            linger: false,
            lingering: false,
            close_code: CloseCode::ABNORMAL,
            close_reason: String::new(),
            feed: false,
            can_publish: false,
            peer,
            proxied: None,
            sub: None,
        }
    }

    /// The connection's own unsent bytes (responses, frames it sent,
    /// control frames), which go ahead of queued publications.
    fn own_output(&self) -> &[u8] {
        own_output(&self.state)
    }

    /// When the slot's wheel entry should come back, at tick `now`: its
    /// deadline, but until the handshake is done at least every ping
    /// interval, so the shorter deadline set when it completes is not missed.
    fn timer_due(&self, now: u64, ping_ticks: u64) -> u64 {
        match self.state {
            State::Proxy(_) | State::Handshake(_) | State::Body(_) => {
                self.deadline.min(now + ping_ticks)
            }
            _ => self.deadline,
        }
    }

    fn advance_own(&mut self, n: usize) {
        match &mut self.state {
            State::Proxy(_) | State::Handshake(_) | State::Body(_) => {}
            State::Http { pos, .. } => *pos += n,
            State::Sse { out, pos, .. } => {
                *pos += n;
                if *pos == out.len() {
                    out.clear();
                    *pos = 0;
                }
            }
            State::Open(c) => c.advance_output(n),
        }
    }

    fn is_sse(&self) -> bool {
        matches!(self.state, State::Sse { .. })
    }

    fn queued(&self) -> usize {
        self.sub.as_ref().map_or(0, |s| s.queued_bytes)
    }

    /// Every unsent byte: own output and queued publications.
    fn pending(&self) -> usize {
        self.own_output().len() + self.queued()
    }

    /// Whether new publications may be queued.
    fn takes_publications(&self) -> bool {
        match &self.state {
            State::Open(c) => c.close_state() == CloseState::Open,
            State::Sse { closing, .. } => !closing,
            _ => false,
        }
    }

    /// Nothing more to do but close the transport once output is flushed.
    fn finished(&self) -> bool {
        match &self.state {
            State::Proxy(_) | State::Handshake(_) | State::Body(_) => false,
            State::Http { .. } => true,
            State::Sse { closing, .. } => *closing,
            State::Open(c) => c.close_state() == CloseState::Closed,
        }
    }

    /// Consume `n` written bytes in the order [`gather`] laid them out.
    fn consume(&mut self, mut n: usize, front_partial: bool) {
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
                sub.queue.pop_front();
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
                sub.queue.pop_front();
            }
        }
    }
}

fn own_output(state: &State) -> &[u8] {
    match state {
        State::Proxy(_) | State::Handshake(_) | State::Body(_) => &[],
        State::Http { out, pos } | State::Sse { out, pos, .. } => &out[*pos..],
        State::Open(c) => c.output(),
    }
}

/// Lay out a slot's unsent bytes for one send: the rest of a partly written
/// publication (its frame must finish first), then the connection's own
/// output (control frames are never starved behind publications), then
/// queued publications. Returns the number of parts and whether the first is
/// a partly written publication.
///
/// Publications go in as shared parts: a driver may send them from where they
/// lie, holding a reference, instead of copying them.
fn gather<'s>(slot: &'s Slot, parts: &mut [Part<'s>; MAX_PARTS]) -> (usize, bool) {
    let sse = slot.is_sse();
    let mut n = 0;
    let mut front_partial = false;
    let sub = slot.sub.as_deref();
    if let Some(sub) = sub {
        if sub.front_pos > 0 {
            if let Some(front) = sub.queue.front() {
                parts[n] = shared_part(&front.bytes(sse)[sub.front_pos..], front);
                n += 1;
                front_partial = true;
            }
        }
    }
    let own = slot.own_output();
    let mut total = 0;
    if !own.is_empty() {
        parts[n] = Part::borrowed(own);
        n += 1;
        total += own.len();
    }
    if let Some(sub) = sub {
        for p in sub.queue.iter().skip(usize::from(front_partial)) {
            if n == MAX_PARTS || total >= GATHER_BYTES {
                break;
            }
            let b = p.bytes(sse);
            parts[n] = shared_part(b, p);
            n += 1;
            total += b.len();
        }
    }
    (n, front_partial)
}

/// A send part referencing `bytes` of publication `p`.
fn shared_part<'s>(bytes: &'s [u8], p: &'s Arc<Publication>) -> Part<'s> {
    // SAFETY: `bytes` is (a tail of) `p.frame()` or `p.sse()`, both owned by
    // the publication: the frame is a boxed slice set at construction and the
    // SSE form a `OnceLock` set at most once, and a `Publication` offers no
    // way to change either, so they stay put and unchanged while any `Arc`
    // to it lives.
    unsafe { Part::shared(bytes, p) }
}

/// Per-worker state other than the driver (so completions can be handled
/// while the driver is borrowed).
struct Core<H: Handler> {
    worker: u16,
    handler: H,
    cfg: Arc<Config>,
    conns: Vec<Option<Slot>>,
    next_generation: u32,
    dirty: Vec<u32>,
    to_close: Vec<u32>,
    wheel: TimerWheel,
    fired: Vec<TimerEntry>,
    woken: bool,
    handshake_ticks: u64,
    ping_ticks: u64,
    idle_ticks: u64,
    topics: Topics,
    /// Publishes made during a callback, delivered right after it.
    publishes: Vec<Arc<Publication>>,
    /// Every worker's mailbox and counters, set once all have started.
    shared: Arc<OnceLock<Shared>>,
    /// Publications for a worker whose mailbox was full, in order.
    outbox: Vec<VecDeque<Arc<Publication>>>,
    /// Publications taken this turn, delivered together before the flush:
    /// each subscriber's slot is visited once per run of publications on a
    /// topic, not once per publication.
    batch: Vec<Arc<Publication>>,
    stats: Arc<Stats>,
    /// Shutting down: new upgrades get 503, `/healthz` answers 503.
    draining: bool,
    /// When this turn's work started (first completion), for the loop-turn
    /// histogram.
    turn_started: Option<Instant>,
}

/// A graceful drain: close 1001 to each connection at a random moment
/// within the drain period, so clients do not all reconnect at once.
struct Drain {
    order: Vec<(u32, u32)>,
    next: usize,
    started: Instant,
    spread: Duration,
}

/// Run a worker until it is told to shut down and its connections are gone.
pub(crate) fn run<H: Handler>(
    worker: u16,
    mut driver: Box<dyn Driver>,
    handler: H,
    cfg: Arc<Config>,
    mailbox: Arc<Mailbox>,
    shared: Arc<OnceLock<Shared>>,
    stats: Arc<Stats>,
) {
    let ticks = |d: Duration| d.as_secs().max(1);
    let mut core = Core {
        worker,
        handler,
        handshake_ticks: ticks(cfg.handshake_timeout),
        ping_ticks: ticks(cfg.ping_interval),
        idle_ticks: ticks(cfg.idle_timeout),
        topics: Topics::new(cfg.slow_consumer, Arc::new(cfg.topic_policies.clone())),
        cfg,
        conns: Vec::new(),
        next_generation: 1,
        dirty: Vec::new(),
        to_close: Vec::new(),
        wheel: TimerWheel::new(),
        fired: Vec::new(),
        woken: false,
        publishes: Vec::new(),
        shared,
        outbox: Vec::new(),
        batch: Vec::new(),
        stats,
        draining: false,
        turn_started: None,
    };
    let started = Instant::now();
    let mut shutdown_at: Option<Instant> = None;
    let mut drain: Option<Drain> = None;
    let mut controls = Vec::new();
    loop {
        let next_tick = started + TICK * (core.wheel.now() as u32 + 1);
        let mut timeout = next_tick.saturating_duration_since(Instant::now());
        if let Some(t) = shutdown_at {
            timeout = timeout.min(t.saturating_duration_since(Instant::now()));
        }
        if drain.is_some() {
            // Close the next share of connections soon.
            timeout = timeout.min(Duration::from_millis(10));
        }
        if core.outbox.iter().any(|q| !q.is_empty()) {
            // Retry soon: another worker's mailbox was full.
            timeout = timeout.min(Duration::from_millis(1));
        }
        core.turn_started = None;
        if let Err(e) = driver.turn(Some(timeout), &mut |c| core.on_completion(c)) {
            tracing::error!(worker, "driver failed: {e}; worker stops");
            mailbox.close();
            return;
        }
        if core.woken {
            core.woken = false;
            controls.clear();
            mailbox.drain(&mut controls);
            for c in controls.drain(..) {
                match c {
                    Control::Publish(p) => core.deliver(&p),
                    Control::Shutdown if !core.draining => {
                        core.draining = true;
                        drain = Some(core.begin_drain());
                    }
                    Control::Shutdown => {}
                }
            }
        }
        if let Some(d) = &mut drain {
            if core.drain_step(d) {
                // Everyone has been told: stop accepting and give the close
                // handshakes the grace period.
                drain = None;
                driver.stop_accepting();
                shutdown_at = Some(Instant::now() + core.cfg.shutdown_grace);
            }
        }
        core.retry_outbox();
        core.deliver_batch();
        core.flush(driver.as_mut());
        core.close_finished(driver.as_mut());
        let target = started.elapsed().as_secs();
        while core.wheel.now() < target {
            core.tick();
        }
        core.deliver_batch();
        core.flush(driver.as_mut());
        core.close_finished(driver.as_mut());
        if let Some(t0) = core.turn_started {
            core.stats.turn.observe(t0.elapsed());
        }
        if let Some(t) = shutdown_at {
            if core.open_count() == 0 {
                mailbox.close();
                return;
            }
            if Instant::now() >= t {
                tracing::info!(
                    worker,
                    "shutdown grace over; closing {} connections",
                    core.open_count()
                );
                core.close_all(driver.as_mut());
                mailbox.close();
                return;
            }
        }
    }
}

impl<H: Handler> Core<H> {
    fn open_count(&self) -> usize {
        self.conns.iter().filter(|c| c.is_some()).count()
    }

    fn mark_dirty(&mut self, index: u32) {
        if let Some(Some(s)) = self.conns.get_mut(index as usize) {
            if !s.dirty {
                s.dirty = true;
                self.dirty.push(index);
            }
        }
    }

    fn on_completion(&mut self, c: Completion<'_>) {
        if self.turn_started.is_none() {
            self.turn_started = Some(Instant::now());
        }
        match c {
            Completion::Accepted(t, peer) => self.accept(t, peer),
            Completion::Data(t, buf) => self.data(t.0, buf),
            Completion::Writable(t) => {
                // io_uring reports every finished send; only a connection
                // with something left to do needs a flush.
                if let Some(Some(s)) = self.conns.get(t.index()) {
                    let waiting = s.sub.as_ref().is_some_and(|s| !s.conflated.is_empty());
                    if s.pending() > 0 || s.finished() || s.over_limit || waiting {
                        self.mark_dirty(t.0);
                    }
                }
            }
            Completion::Closed(t) => {
                if let Some(Some(_)) = self.conns.get(t.index()) {
                    self.to_close.push(t.0);
                }
            }
            Completion::Woken => self.woken = true,
        }
    }

    fn accept(&mut self, t: Token, peer: Option<SocketAddr>) {
        let i = t.index();
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        // The current tick began up to a second ago: one more tick, so the
        // handshake gets at least the whole timeout (a 1 s timeout could
        // otherwise fire a moment after the accept).
        let deadline = self.wheel.now() + self.handshake_ticks + 1;
        let state = if self.cfg.trust_proxy {
            State::Proxy(Vec::new())
        } else {
            State::Handshake(RequestParser::new(&self.cfg.limits))
        };
        let slot = Slot::new(generation, state, deadline, peer);
        let due = slot.timer_due(self.wheel.now(), self.ping_ticks);
        self.conns[i] = Some(slot);
        self.stats.connections_open.add(1);
        self.stats.connections_total.add(1);
        self.wheel.insert(t.0, generation, due);
        if let Some(shared) = self.shared.get() {
            let open = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
            if self.cfg.max_connections > 0 && open > self.cfg.max_connections {
                let msg = format!(
                    "the server is at its connection limit ({}); try again later\n",
                    self.cfg.max_connections
                );
                self.respond_with(t.0, 503, "text/plain; charset=utf-8", msg.as_bytes(), false);
            }
        }
    }

    fn data(&mut self, index: u32, buf: &mut [u8]) {
        self.stats.bytes_in.add(buf.len() as u64);
        let now = self.wheel.now();
        let ping = self.ping_ticks;
        let Some(Some(slot)) = self.conns.get_mut(index as usize) else {
            return;
        };
        match &mut slot.state {
            State::Http { .. } | State::Sse { .. } => {}
            State::Body(post) => {
                let take = buf.len().min(post.want - post.body.len());
                post.body.extend_from_slice(&buf[..take]);
                if post.body.len() == post.want {
                    self.finish_post(index);
                }
            }
            State::Proxy(pre) => {
                pre.extend_from_slice(buf);
                let (skip, source) = match proxy::parse_v2(pre) {
                    Preamble::Incomplete => return,
                    Preamble::Absent => (0, None),
                    Preamble::Header { len, source } => (len, source),
                    Preamble::Invalid(why) => {
                        let e = HandshakeError {
                            status: 400,
                            reason: why.to_string(),
                        };
                        slot.state = State::Http {
                            out: e.response(),
                            pos: 0,
                        };
                        slot.linger = true;
                        self.stats.reject(400);
                        self.mark_dirty(index);
                        return;
                    }
                };
                let mut rest = std::mem::take(pre).split_off(skip);
                slot.proxied = source;
                slot.state = State::Handshake(RequestParser::new(&self.cfg.limits));
                if !rest.is_empty() {
                    // Counted once already.
                    self.stats.bytes_in.sub(rest.len() as u64);
                    self.data(index, &mut rest);
                }
            }
            State::Handshake(parser) => match parser.feed(buf) {
                Ok(None) => {}
                Ok(Some(parsed)) => {
                    let mut rest = parsed.rest;
                    self.request(index, parsed.request, &mut rest);
                }
                Err(e) => {
                    slot.state = State::Http {
                        out: e.response(),
                        pos: 0,
                    };
                    slot.linger = true;
                    self.stats.reject(e.status);
                    self.mark_dirty(index);
                }
            },
            State::Open(_) => {
                // Keep-alive: nothing is rescheduled per message; the
                // timer entry compares with these when it comes due.
                slot.deadline = now + ping;
                slot.last_seen = now as u32;
                slot.pinged = false;
                self.frames(index, buf);
            }
        }
    }

    /// A whole request head arrived; `rest` holds the bytes after it.
    fn request(&mut self, index: u32, http: HttpRequest, rest: &mut [u8]) {
        let path = http.path.split('?').next().unwrap_or("");
        if http.wants_websocket() {
            let feed = self.cfg.feed_path.as_deref() == Some(path);
            self.upgrade(index, http, feed);
            if !rest.is_empty() {
                self.frames(index, rest);
            }
            return;
        }
        if http.method == "POST" {
            if let Some(topic) = path.strip_prefix("/publish/") {
                let topic = decode_path(topic);
                return self.begin_post(index, &http, topic, rest);
            }
        }
        if matches!(http.method.as_str(), "GET" | "HEAD") {
            if let Some(topic) = path.strip_prefix("/sse/") {
                return self.begin_sse(index, &http, &decode_path(topic));
            }
            if path == "/metrics" {
                let text = self.scrape();
                return self.respond(
                    index,
                    200,
                    "text/plain; version=0.0.4",
                    text.as_bytes(),
                    &http,
                );
            }
            if path == "/healthz" {
                if self.draining {
                    let msg = b"draining\n";
                    return self.respond(index, 503, "text/plain; charset=utf-8", msg, &http);
                }
                return self.respond(index, 200, "text/plain; charset=utf-8", b"ok\n", &http);
            }
        }
        let (status, ctype, body): (u16, &str, &str) = match (http.method.as_str(), path) {
            ("GET" | "HEAD", "/") => (200, "text/html; charset=utf-8", page::INDEX_HTML),
            ("GET" | "HEAD", _) => (
                404,
                "text/plain; charset=utf-8",
                "not found: WebSocket upgrades are served on any path (the feed app on /feed); \
                 the demo page is at /, Server-Sent Events at /sse/<topic>, metrics at /metrics\n",
            ),
            _ => (405, "text/plain; charset=utf-8", "method not allowed\n"),
        };
        self.respond(index, status, ctype, body.as_bytes(), &http);
    }

    /// Answer with a plain HTTP response, then close.
    fn respond(&mut self, index: u32, status: u16, ctype: &str, body: &[u8], http: &HttpRequest) {
        self.respond_with(index, status, ctype, body, http.method == "HEAD");
    }

    fn respond_with(&mut self, index: u32, status: u16, ctype: &str, body: &[u8], head_only: bool) {
        let mut out = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            status_text(status),
            body.len()
        )
        .into_bytes();
        if !head_only {
            out.extend_from_slice(body);
        }
        if status >= 400 {
            self.stats.reject(status);
        }
        let Some(Some(slot)) = self.conns.get_mut(index as usize) else {
            return;
        };
        slot.state = State::Http { out, pos: 0 };
        // The peer may still be sending (a body we did not read).
        slot.linger = true;
        self.mark_dirty(index);
    }

    /// `--allowed-origins`: a browser's `Origin` must be listed (requests
    /// without one, from non-browser clients, pass).
    fn check_origin(&self, req: &UpgradeRequest) -> Option<Upgrade> {
        let allowed = self.cfg.allowed_origins.as_ref()?;
        let origin = req.origin.as_deref()?;
        if allowed
            .iter()
            .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
        {
            return None;
        }
        Some(Upgrade::Reject {
            status: 403,
            reason: format!("origin {origin} is not allowed"),
        })
    }

    fn may_publish(&self, http: &HttpRequest) -> bool {
        if self.cfg.allow_client_publish {
            return true;
        }
        let Some(token) = self.cfg.publish_token.as_deref() else {
            return false;
        };
        http.presents_token(token)
    }

    fn begin_post(&mut self, index: u32, http: &HttpRequest, topic: String, rest: &[u8]) {
        const HINT: &str = "publishing is not allowed: start the server with \
             --allow-client-publish, or send Authorization: Bearer <--publish-token>\n";
        if !self.may_publish(http) {
            return self.respond(
                index,
                403,
                "text/plain; charset=utf-8",
                HINT.as_bytes(),
                http,
            );
        }
        if !crate::server::pubsub::valid_topic(&topic) {
            let msg = b"bad topic: 1 to 256 bytes without control characters\n";
            return self.respond(index, 400, "text/plain; charset=utf-8", msg, http);
        }
        if http.header_values("transfer-encoding").next().is_some() {
            let msg = b"send the body with Content-Length (chunked bodies are not accepted)\n";
            return self.respond(index, 411, "text/plain; charset=utf-8", msg, http);
        }
        let Some(want) = http
            .header("content-length")
            .and_then(|v| v.trim().parse::<usize>().ok())
        else {
            let msg = b"Content-Length required\n";
            return self.respond(index, 411, "text/plain; charset=utf-8", msg, http);
        };
        if want > self.cfg.limits.max_message_size {
            let msg = format!(
                "body too large: {want} bytes, the limit is {} (--max-message)\n",
                self.cfg.limits.max_message_size
            );
            return self.respond(
                index,
                413,
                "text/plain; charset=utf-8",
                msg.as_bytes(),
                http,
            );
        }
        let key = http.query("key");
        let take = rest.len().min(want);
        let mut body = Vec::with_capacity(want);
        body.extend_from_slice(&rest[..take]);
        let Some(Some(slot)) = self.conns.get_mut(index as usize) else {
            return;
        };
        slot.state = State::Body(Box::new(PostBody {
            topic,
            key,
            want,
            body,
        }));
        if take == want {
            self.finish_post(index);
        }
    }

    fn finish_post(&mut self, index: u32) {
        let Some(Some(slot)) = self.conns.get_mut(index as usize) else {
            return;
        };
        let State::Body(post) = std::mem::replace(
            &mut slot.state,
            State::Handshake(RequestParser::new(&self.cfg.limits)),
        ) else {
            return;
        };
        let kind = if std::str::from_utf8(&post.body).is_ok() {
            MessageKind::Text
        } else {
            MessageKind::Binary
        };
        let p = Publication::new(&post.topic, post.key.as_deref(), kind, &post.body);
        self.publish(p);
        self.respond_with(
            index,
            202,
            "text/plain; charset=utf-8",
            b"published\n",
            false,
        );
    }

    fn begin_sse(&mut self, index: u32, http: &HttpRequest, topic: &str) {
        if !crate::server::pubsub::valid_topic(topic) {
            let msg = b"bad topic: 1 to 256 bytes without control characters\n";
            return self.respond(index, 400, "text/plain; charset=utf-8", msg, http);
        }
        let Some(Some(slot)) = self.conns.get_mut(index as usize) else {
            return;
        };
        let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: keep-alive\r\nX-Accel-Buffering: no\r\n\r\n".to_vec();
        if http.method == "HEAD" {
            slot.state = State::Http { out, pos: 0 };
            return self.mark_dirty(index);
        }
        out.extend_from_slice(b": subscribed\n\n");
        slot.state = State::Sse {
            out,
            pos: 0,
            closing: false,
        };
        slot.deadline = self.wheel.now() + self.ping_ticks;
        let _ = self
            .topics
            .subscribe(index, slot.generation, &mut slot.sub, topic, &self.stats);
        self.mark_dirty(index);
    }

    fn upgrade(&mut self, index: u32, http: HttpRequest, feed: bool) {
        let now = self.wheel.now();
        let can_publish = feed && self.may_publish(&http);
        let (peer, proxied) = self
            .conns
            .get(index as usize)
            .and_then(Option::as_ref)
            .map_or((None, None), |s| (s.peer, s.proxied));
        let response = match UpgradeRequest::from_http(http) {
            Err(e) => Err((e.status, e.response())),
            Ok(mut req) => {
                req.peer_addr = peer;
                req.client_ip = if self.cfg.trust_proxy {
                    proxied
                        .map(|a| a.ip())
                        .or_else(|| proxy::forwarded_for(req.http.header_values("x-forwarded-for")))
                        .or(peer.map(|a| a.ip()))
                } else {
                    peer.map(|a| a.ip())
                };
                let decision = if self.draining {
                    Upgrade::Reject {
                        status: 503,
                        reason: "the server is shutting down".into(),
                    }
                } else if let Some(refused) = self.check_origin(&req) {
                    refused
                } else {
                    // The handler admits every upgrade (auth, subprotocols),
                    // the feed app's included.
                    match self.handler.on_upgrade(&req) {
                        Upgrade::Accept { protocol } if feed => {
                            let _ = protocol;
                            Upgrade::Accept { protocol: None }
                        }
                        d => d,
                    }
                };
                match decision {
                    Upgrade::Reject { status, reason } => {
                        Err((status, HandshakeError { status, reason }.response()))
                    }
                    Upgrade::Accept { protocol } => {
                        let deflate = req.negotiate_deflate(self.cfg.deflate.as_ref());
                        let mut conn = Conn::new(
                            Role::Server,
                            self.cfg.limits,
                            deflate.map(|p| {
                                let d = self.cfg.deflate.as_ref();
                                (
                                    p,
                                    d.map_or(1, |d| d.level),
                                    d.map_or(0, |d| d.min_compress_size),
                                )
                            }),
                        );
                        let _ = conn
                            .send_raw(&req.accept_response(protocol.as_deref(), deflate.as_ref()));
                        Ok(conn)
                    }
                }
            }
        };
        let Some(Some(slot)) = self.conns.get_mut(index as usize) else {
            return;
        };
        match response {
            Err((status, out)) => {
                slot.state = State::Http { out, pos: 0 };
                slot.linger = true;
                self.stats.reject(status);
            }
            Ok(conn) => {
                slot.state = State::Open(conn);
                slot.deadline = now + self.ping_ticks;
                slot.last_seen = now as u32;
                slot.feed = feed;
                slot.can_publish = can_publish;
                self.stats.handshakes_accepted.add(1);
                let id = conn_id(self.worker, index, slot.generation);
                if let State::Open(conn) = &mut slot.state {
                    if !feed {
                        let local = Local {
                            generation: slot.generation,
                            sub: &mut slot.sub,
                            topics: &mut self.topics,
                            publishes: &mut self.publishes,
                            stats: &self.stats,
                        };
                        let mut ws = Ws::new(id, conn.sender(), self.cfg.max_buffered, local);
                        self.handler.on_open(&mut ws);
                    }
                }
                self.publish_pending();
            }
        }
        self.mark_dirty(index);
    }

    /// Feed WebSocket bytes to the connection and its events to the handler
    /// (or the feed app).
    fn frames(&mut self, index: u32, buf: &mut [u8]) {
        let Some(Some(slot)) = self.conns.get_mut(index as usize) else {
            return;
        };
        let id = conn_id(self.worker, index, slot.generation);
        let State::Open(conn) = &mut slot.state else {
            return;
        };
        let max_buffered = self.cfg.max_buffered;
        let mut pos = 0;
        while pos < buf.len() {
            match conn.read_and_reply(&mut buf[pos..]) {
                Ok((n, ev, sender)) => {
                    pos += n;
                    let local = Local {
                        generation: slot.generation,
                        sub: &mut slot.sub,
                        topics: &mut self.topics,
                        publishes: &mut self.publishes,
                        stats: &self.stats,
                    };
                    let mut ws = Ws::new(id, sender, max_buffered, local);
                    let msg = match ev {
                        None => break,
                        Some(Event::Text(t)) => Msg::Text(t),
                        Some(Event::Binary(b)) => Msg::Binary(b),
                        Some(Event::Ping(_)) | Some(Event::Pong(_)) => continue,
                        Some(Event::Close { code, reason }) => {
                            slot.close_code = code.unwrap_or(CloseCode::NO_STATUS);
                            slot.close_reason = reason.to_string();
                            continue;
                        }
                    };
                    self.stats.messages_in.add(1);
                    if slot.feed {
                        feed::handle(&mut ws, msg, slot.can_publish);
                    } else {
                        self.handler.on_message(&mut ws, msg);
                    }
                }
                Err(e) => {
                    tracing::debug!(worker = self.worker, index, "closing: {e}");
                    slot.close_code = e.code;
                    slot.close_reason = e.reason.to_string();
                    slot.linger = true;
                    break;
                }
            }
        }
        self.mark_dirty(index);
        self.publish_pending();
    }

    fn publish_pending(&mut self) {
        if self.publishes.is_empty() {
            return;
        }
        let mut ps = std::mem::take(&mut self.publishes);
        for p in ps.drain(..) {
            self.publish(p);
        }
        if self.publishes.is_empty() {
            self.publishes = ps;
        }
    }

    /// Deliver here and forward to every other worker.
    fn publish(&mut self, p: Arc<Publication>) {
        self.deliver(&p);
        let Some(shared) = self.shared.get() else {
            return;
        };
        if self.outbox.len() < shared.mailboxes.len() {
            self.outbox
                .resize_with(shared.mailboxes.len(), VecDeque::new);
        }
        for (w, m) in shared.mailboxes.iter().enumerate() {
            if w == self.worker as usize {
                continue;
            }
            if !self.outbox[w].is_empty() {
                self.outbox[w].push_back(p.clone());
                continue;
            }
            match m.send(Control::Publish(p.clone())) {
                Ok(()) | Err(Refused::Closed(_)) => {}
                Err(Refused::Full(_)) => self.outbox[w].push_back(p.clone()),
            }
        }
    }

    /// Hand publications held for full mailboxes on, in order.
    fn retry_outbox(&mut self) {
        let Some(shared) = self.shared.get() else {
            return;
        };
        for (w, q) in self.outbox.iter_mut().enumerate() {
            while let Some(p) = q.pop_front() {
                match shared.mailboxes[w].send(Control::Publish(p)) {
                    Ok(()) => {}
                    Err(Refused::Closed(_)) => q.clear(),
                    Err(Refused::Full(Control::Publish(p))) => {
                        q.push_front(p);
                        break;
                    }
                    Err(Refused::Full(_)) => break,
                }
            }
        }
    }

    /// Queue `p` to this worker's subscribers of its topic, applying the
    /// slow-consumer policy to those over their limit.
    /// Take a publication for this worker's subscribers; it goes out with
    /// the turn's others in [`Core::deliver_batch`].
    fn deliver(&mut self, p: &Arc<Publication>) {
        self.stats.publishes.add(1);
        self.batch.push(p.clone());
    }

    /// Queue the turn's publications to their subscribers, run by run of
    /// the same topic (so each subscriber still sees them in order).
    fn deliver_batch(&mut self) {
        let mut batch = std::mem::take(&mut self.batch);
        let mut start = 0;
        while start < batch.len() {
            let topic = batch[start].topic();
            let run = batch[start..]
                .iter()
                .position(|p| p.topic() != topic)
                .unwrap_or(batch.len() - start);
            self.deliver_run(&batch[start..start + run]);
            start += run;
        }
        batch.clear();
        if self.batch.is_empty() {
            self.batch = batch;
        }
    }

    /// Queue publications on one topic to each of its subscribers, applying
    /// the topic's slow-consumer policy.
    fn deliver_run(&mut self, run: &[Arc<Publication>]) {
        let Some(topic) = self.topics.get(run[0].topic()) else {
            return;
        };
        let limit = self.cfg.max_buffered;
        let now = self.wheel.now();
        // Several publications go as one entry, framed back to back once, to
        // each WebSocket subscriber with room for all of them (exactly when
        // one by one would queue every one); the others take them one by one.
        let mut joined: Option<(Arc<Publication>, usize)> = None;
        for &(index, generation) in &topic.subs {
            let Some(Some(slot)) = self.conns.get_mut(index as usize) else {
                continue;
            };
            if slot.generation != generation {
                continue;
            }
            let sse = slot.is_sse();
            let mut rest = run;
            if run.len() > 1 && !sse && slot.takes_publications() {
                let (whole, len) = joined.get_or_insert_with(|| {
                    let p = Publication::run(run);
                    let len = p.frame().len();
                    (p, len)
                });
                let pending = slot.pending();
                // (Held-back conflated publications would go first and count
                // against the limit: those subscribers go one by one.)
                if let Some(sub) = slot.sub.as_deref_mut().filter(|s| s.conflated.is_empty()) {
                    if pending + *len <= limit {
                        sub.push(whole.clone(), *len);
                        self.stats.deliveries.add(run.len() as u64);
                        rest = &[];
                    }
                }
            }
            for (i, p) in rest.iter().enumerate() {
                if !slot.takes_publications() {
                    break;
                }
                let len = p.bytes(sse).len();
                let buffered = slot.pending();
                let over = buffered > 0 && buffered + len > limit;
                let Some(sub) = slot.sub.as_deref_mut() else {
                    break;
                };
                if !over {
                    sub.release_conflated(sse);
                    sub.push(p.clone(), len);
                    self.stats.deliveries.add(1);
                    continue;
                }
                match topic.policy {
                    Policy::Drop => {
                        // Over the limit: the rest of the run is skipped too.
                        self.stats.slow_drops.add((rest.len() - i) as u64);
                        break;
                    }
                    Policy::Conflate => {
                        self.stats.slow_conflated.add(1);
                        if sub.conflate(p) {
                            self.stats.slow_superseded.add(1);
                        }
                    }
                    Policy::Close => {
                        self.stats.slow_closes.add(1);
                        sub.discard_unstarted(sse);
                        match &mut slot.state {
                            State::Open(conn) => {
                                let _ = conn.close(
                                    CloseCode::POLICY_VIOLATION,
                                    "slow consumer: send buffer limit exceeded",
                                );
                                slot.close_code = CloseCode::POLICY_VIOLATION;
                            }
                            State::Sse { closing, .. } => *closing = true,
                            _ => {}
                        }
                        // The close handshake gets the handshake timeout.
                        slot.deadline = now + self.handshake_ticks;
                        self.wheel.insert(index, generation, slot.deadline);
                        break;
                    }
                }
            }
            if !slot.dirty {
                slot.dirty = true;
                self.dirty.push(index);
            }
        }
    }

    /// Write out what each dirty connection queued this turn.
    fn flush(&mut self, driver: &mut dyn Driver) {
        let dirty = std::mem::take(&mut self.dirty);
        let limit = self.cfg.max_buffered;
        for &index in &dirty {
            let Some(Some(slot)) = self.conns.get_mut(index as usize) else {
                continue;
            };
            slot.dirty = false;
            let token = Token(index);
            let mut failed = match write_out(slot, driver, token) {
                Ok(n) => {
                    self.stats.bytes_out.add(n as u64);
                    false
                }
                Err(_) => true,
            };
            let sse = slot.is_sse();
            if !failed && slot.pending() <= limit / 2 && slot.takes_publications() {
                if let Some(sub) = slot.sub.as_deref_mut() {
                    if !sub.conflated.is_empty() {
                        // Drained enough: send the newest of what was held.
                        sub.release_conflated(sse);
                        match write_out(slot, driver, token) {
                            Ok(n) => self.stats.bytes_out.add(n as u64),
                            Err(_) => failed = true,
                        }
                    }
                }
            }
            let pending = slot.pending();
            if failed || (pending == 0 && slot.finished() && !slot.linger) {
                self.to_close.push(index);
            } else if pending == 0 && slot.finished() {
                if !slot.lingering {
                    slot.lingering = true;
                    slot.deadline = self.wheel.now() + LINGER_TICKS;
                    self.wheel.insert(index, slot.generation, slot.deadline);
                    driver.shutdown_write(token);
                }
            } else if pending > limit {
                slot.over_limit = true;
            } else if pending == 0 && slot.over_limit {
                slot.over_limit = false;
                let id = conn_id(self.worker, index, slot.generation);
                if let (State::Open(conn), false) = (&mut slot.state, slot.feed) {
                    let local = Local {
                        generation: slot.generation,
                        sub: &mut slot.sub,
                        topics: &mut self.topics,
                        publishes: &mut self.publishes,
                        stats: &self.stats,
                    };
                    let mut ws = Ws::new(id, conn.sender(), limit, local);
                    self.handler.on_drain(&mut ws);
                    if !conn.output().is_empty() {
                        self.dirty.push(index);
                        slot.dirty = true;
                    }
                }
                self.publish_pending();
            }
        }
        // Reuse the allocation; entries pushed during on_drain stay.
        let mut dirty = dirty;
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    /// Close the transports of finished or failed connections.
    fn close_finished(&mut self, driver: &mut dyn Driver) {
        while let Some(index) = self.to_close.pop() {
            self.close_transport(driver, index);
        }
    }

    fn close_transport(&mut self, driver: &mut dyn Driver, index: u32) {
        let Some(slot) = self.conns.get_mut(index as usize).and_then(Option::take) else {
            return;
        };
        driver.close(Token(index));
        self.stats.connections_open.sub(1);
        if let Some(shared) = self.shared.get() {
            // Saturating: a connection accepted before `shared` was set was
            // never counted.
            let _ = shared
                .connections
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
        if let State::Open(_) = slot.state {
            self.stats.close(slot.close_code.0);
        }
        if let Some(sub) = &slot.sub {
            self.topics
                .remove_all(index, slot.generation, sub, &self.stats);
        }
        if let (State::Open(_), false) = (&slot.state, slot.feed) {
            let id = conn_id(self.worker, index, slot.generation);
            self.handler
                .on_close(id, slot.close_code, &slot.close_reason);
        }
    }

    /// Start a drain: connections still in their handshake or answering
    /// plain HTTP finish on their own; WebSocket and SSE connections are
    /// told to go in a random order over `drain`.
    fn begin_drain(&mut self) -> Drain {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let mut order: Vec<(u32, u32)> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|s| (i as u32, s.generation, s)))
            .filter(|(_, _, s)| matches!(s.state, State::Open(_) | State::Sse { .. }))
            .map(|(i, g, _)| (i, g))
            .collect();
        order.shuffle(&mut rand::rngs::StdRng::from_os_rng());
        Drain {
            order,
            next: 0,
            started: Instant::now(),
            spread: self.cfg.drain,
        }
    }

    /// Close the share of connections due by now; true when all were told.
    fn drain_step(&mut self, d: &mut Drain) -> bool {
        let elapsed = d.started.elapsed();
        let due = if d.spread.is_zero() || elapsed >= d.spread {
            d.order.len()
        } else {
            (d.order.len() as f64 * elapsed.as_secs_f64() / d.spread.as_secs_f64()) as usize
        };
        while d.next < due {
            let (index, generation) = d.order[d.next];
            d.next += 1;
            self.go_away(index, generation);
        }
        d.next == d.order.len() && elapsed >= d.spread
    }

    /// Close one connection with 1001 "server shutting down".
    fn go_away(&mut self, index: u32, generation: u32) {
        let Some(Some(slot)) = self.conns.get_mut(index as usize) else {
            return;
        };
        if slot.generation != generation {
            return;
        }
        match &mut slot.state {
            State::Open(conn) => {
                if conn
                    .close(CloseCode::GOING_AWAY, "server shutting down")
                    .is_ok()
                {
                    slot.close_code = CloseCode::GOING_AWAY;
                }
                if let Some(sub) = slot.sub.as_deref_mut() {
                    sub.discard_unstarted(false);
                }
            }
            State::Sse { closing, .. } => {
                *closing = true;
                if let Some(sub) = slot.sub.as_deref_mut() {
                    sub.discard_unstarted(true);
                }
            }
            _ => return,
        }
        // The close handshake gets the shutdown grace (at least a tick).
        let ticks = self.cfg.shutdown_grace.as_secs().max(1);
        slot.deadline = self.wheel.now() + ticks;
        self.wheel.insert(index, generation, slot.deadline);
        self.mark_dirty(index);
    }

    fn close_all(&mut self, driver: &mut dyn Driver) {
        for index in 0..self.conns.len() as u32 {
            self.close_transport(driver, index);
        }
    }

    fn scrape(&self) -> String {
        let Some(shared) = self.shared.get() else {
            return String::new();
        };
        let views: Vec<WorkerView<'_>> = shared
            .stats
            .iter()
            .zip(shared.mailboxes.iter())
            .map(|(s, m)| WorkerView {
                stats: s,
                mailbox_depth: m.depth(),
            })
            .collect();
        metrics::render(&views)
    }

    fn tick(&mut self) {
        let mut fired = std::mem::take(&mut self.fired);
        fired.clear();
        self.wheel.tick(&mut fired);
        let now = self.wheel.now();
        for e in &fired {
            let Some(Some(slot)) = self.conns.get_mut(e.index as usize) else {
                continue;
            };
            if slot.generation != e.generation {
                continue;
            }
            if slot.deadline > now {
                let due = slot.timer_due(now, self.ping_ticks);
                self.wheel.insert(e.index, e.generation, due);
                continue;
            }
            match &mut slot.state {
                State::Proxy(_) | State::Handshake(_) | State::Http { .. } | State::Body(_) => {
                    tracing::debug!(worker = self.worker, index = e.index, "handshake timeout");
                    if matches!(
                        slot.state,
                        State::Proxy(_) | State::Handshake(_) | State::Body(_)
                    ) {
                        self.stats.reject_timeout();
                    }
                    self.to_close.push(e.index);
                }
                State::Sse { out, closing, .. } => {
                    if *closing {
                        self.to_close.push(e.index);
                    } else {
                        // Keep proxies and the client from timing out.
                        out.extend_from_slice(b": keep-alive\n\n");
                        slot.deadline = now + self.ping_ticks;
                        self.wheel.insert(e.index, e.generation, slot.deadline);
                        self.mark_dirty(e.index);
                    }
                }
                State::Open(conn) => {
                    if conn.close_state() != CloseState::Open {
                        // The close handshake itself timed out.
                        self.to_close.push(e.index);
                    } else if !slot.pinged || now < slot.last_seen as u64 + self.idle_ticks {
                        // Silent for a ping interval: ping, and again every
                        // interval until the idle timeout.
                        let _ = conn.ping(b"ringwave");
                        slot.pinged = true;
                        let close_at = slot.last_seen as u64 + self.idle_ticks;
                        slot.deadline = (now + self.ping_ticks).min(close_at).max(now + 1);
                        self.wheel.insert(e.index, e.generation, slot.deadline);
                        self.mark_dirty(e.index);
                    } else {
                        let _ = conn.close(CloseCode::GOING_AWAY, "idle timeout");
                        slot.close_code = CloseCode::GOING_AWAY;
                        slot.deadline = now + self.handshake_ticks;
                        self.wheel.insert(e.index, e.generation, slot.deadline);
                        self.mark_dirty(e.index);
                    }
                }
            }
        }
        self.fired = fired;
    }
}

/// Send as much of the slot's unsent bytes as the driver takes now; returns
/// how many it took.
fn write_out(slot: &mut Slot, driver: &mut dyn Driver, token: Token) -> std::io::Result<usize> {
    let mut total = 0;
    if slot.sub.is_none() {
        // No publications: the connection's own output is the only part.
        loop {
            if slot.own_output().is_empty() {
                return Ok(total);
            }
            let written = driver.send(token, slot.own_output())?;
            if written == 0 {
                return Ok(total);
            }
            total += written;
            slot.advance_own(written);
        }
    }
    loop {
        if !driver.send_ready(token) {
            return Ok(total);
        }
        let mut parts = [Part::borrowed(&[]); MAX_PARTS];
        let (n, front_partial) = gather(slot, &mut parts);
        if n == 0 {
            return Ok(total);
        }
        let written = driver.send_vectored(token, &parts[..n])?;
        if written == 0 {
            return Ok(total);
        }
        total += written;
        slot.consume(written, front_partial);
    }
}

fn conn_id(worker: u16, index: u32, generation: u32) -> ConnId {
    ConnId {
        worker,
        index,
        generation,
    }
}

/// A path segment with `%XX` escapes decoded (invalid UTF-8 replaced).
fn decode_path(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Limits;

    fn open_slot(sub: Subscriber) -> Slot {
        let conn = Conn::new(Role::Server, Limits::default(), None);
        let mut slot = Slot::new(1, State::Open(conn), 0, None);
        slot.feed = true;
        slot.sub = Some(Box::new(sub));
        slot
    }

    /// A client's ping (masked with a zero key), answered by the server's
    /// `Conn` with a pong in its own output.
    fn receive_ping(slot: &mut Slot, payload: &[u8]) {
        let State::Open(conn) = &mut slot.state else {
            panic!("not open");
        };
        let mut frame = vec![0x89, 0x80 | payload.len() as u8, 0, 0, 0, 0];
        frame.extend_from_slice(payload);
        let len = frame.len();
        let (used, ev) = conn.read(&mut frame).expect("a valid ping");
        assert_eq!(used, len);
        assert!(matches!(ev, Some(Event::Ping(_))), "{ev:?}");
    }

    fn laid_out(slot: &Slot) -> (Vec<(Vec<u8>, bool)>, bool) {
        let mut parts = [Part::borrowed(&[]); MAX_PARTS];
        let (n, front_partial) = gather(slot, &mut parts);
        let parts = parts[..n]
            .iter()
            .map(|p| (p.bytes().to_vec(), p.owner().is_some()))
            .collect();
        (parts, front_partial)
    }

    #[test]
    fn a_pong_goes_ahead_of_queued_publications_after_the_frame_in_progress() {
        let pubs: Vec<_> = (0..3u8)
            .map(|i| Publication::new("t", None, MessageKind::Binary, &[i; 10]))
            .collect();
        let mut sub = Subscriber::default();
        for p in &pubs {
            sub.push(p.clone(), p.frame().len());
        }
        // The first publication is partly written: its frame must finish.
        sub.front_pos = 5;
        sub.queued_bytes -= 5;
        let mut slot = open_slot(sub);
        receive_ping(&mut slot, b"hb");
        let pong = b"\x8a\x02hb".to_vec();

        let (parts, front_partial) = laid_out(&slot);
        assert!(front_partial);
        let expect = vec![
            (pubs[0].frame()[5..].to_vec(), true),
            (pong.clone(), false),
            (pubs[1].frame().to_vec(), true),
            (pubs[2].frame().to_vec(), true),
        ];
        assert_eq!(parts, expect, "publications are shared, the pong is copied");

        // A send that took the rest of the first frame, the pong and 4 bytes
        // of the second frame.
        let rest = pubs[0].frame().len() - 5;
        slot.consume(rest + pong.len() + 4, true);
        assert!(slot.own_output().is_empty());
        let (parts, front_partial) = laid_out(&slot);
        assert!(front_partial);
        assert_eq!(parts[0].0, pubs[1].frame()[4..]);
        assert_eq!(parts[1].0, pubs[2].frame());
        assert_eq!(
            slot.queued(),
            pubs[1].frame().len() - 4 + pubs[2].frame().len()
        );

        // A new ping while publications are queued and none is in progress:
        // its pong leads.
        slot.consume(pubs[1].frame().len() - 4, true);
        receive_ping(&mut slot, b"hb");
        let (parts, front_partial) = laid_out(&slot);
        assert!(!front_partial);
        assert_eq!(parts, vec![(pong, false), (pubs[2].frame().to_vec(), true)]);
    }

    #[test]
    fn a_run_of_publications_is_one_frame_sequence() {
        let pubs: Vec<_> = (0..3u8)
            .map(|i| Publication::new("t", None, MessageKind::Text, &[b'a' + i; 3]))
            .collect();
        let run = Publication::run(&pubs);
        assert_eq!(run.frame(), b"\x81\x03aaa\x81\x03bbb\x81\x03ccc");
        assert_eq!(run.topic(), "t");
    }
}
