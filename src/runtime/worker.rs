//! One worker: a driver, a table of connections, a timer wheel and a
//! mailbox, on one pinned thread.
//!
//! A loop turn: wait for completions and handle each (handshake bytes, frames
//! to the handler); then flush every connection that queued output during the
//! turn, one send per connection (corking); then close the connections that
//! finished; then advance the timer wheel.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::driver::{Completion, Driver, Token};
use crate::proto::handshake::{
    status_text, HandshakeError, HttpRequest, RequestParser, UpgradeRequest,
};
use crate::proto::{CloseCode, CloseState, Conn, Event, Role};
use crate::server::{page, Config, ConnId, Handler, Msg, Upgrade, Ws};

use super::mailbox::{Control, Mailbox};
use super::timer::{TimerEntry, TimerWheel};

/// Timer tick.
const TICK: Duration = Duration::from_secs(1);
/// Ticks to wait for a peer's EOF after a half-close.
const LINGER_TICKS: u64 = 2;

/// A connection's protocol phase.
enum State {
    /// Reading the HTTP request head.
    Handshake(RequestParser),
    /// Writing a plain HTTP response, then closing.
    Http { out: Vec<u8>, pos: usize },
    /// WebSocket.
    Open(Conn),
}

struct Slot {
    generation: u32,
    state: State,
    /// Tick by which something must happen (handshake done, data seen).
    deadline: u64,
    /// An idle ping was sent and not yet followed by any traffic.
    pinged: bool,
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
}

impl Slot {
    fn output(&self) -> &[u8] {
        match &self.state {
            State::Handshake(_) => &[],
            State::Http { out, pos } => &out[*pos..],
            State::Open(c) => c.output(),
        }
    }

    fn advance(&mut self, n: usize) {
        match &mut self.state {
            State::Handshake(_) => {}
            State::Http { pos, .. } => *pos += n,
            State::Open(c) => c.advance_output(n),
        }
    }

    /// Nothing more to do but close the transport once output is flushed.
    fn finished(&self) -> bool {
        match &self.state {
            State::Handshake(_) => false,
            State::Http { .. } => true,
            State::Open(c) => c.close_state() == CloseState::Closed,
        }
    }
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
    idle_ticks: u64,
}

/// Run a worker until it is told to shut down and its connections are gone.
pub(crate) fn run<H: Handler>(
    worker: u16,
    mut driver: Box<dyn Driver>,
    handler: H,
    cfg: Arc<Config>,
    mailbox: Arc<Mailbox>,
) {
    let ticks = |d: Duration| d.as_secs().max(1);
    let mut core = Core {
        worker,
        handler,
        handshake_ticks: ticks(cfg.handshake_timeout),
        idle_ticks: ticks(cfg.idle_timeout),
        cfg,
        conns: Vec::new(),
        next_generation: 1,
        dirty: Vec::new(),
        to_close: Vec::new(),
        wheel: TimerWheel::new(),
        fired: Vec::new(),
        woken: false,
    };
    let started = Instant::now();
    let mut shutdown_at: Option<Instant> = None;
    let mut controls = Vec::new();
    loop {
        let next_tick = started + TICK * (core.wheel.now() as u32 + 1);
        let mut timeout = next_tick.saturating_duration_since(Instant::now());
        if let Some(t) = shutdown_at {
            timeout = timeout.min(t.saturating_duration_since(Instant::now()));
        }
        if let Err(e) = driver.turn(Some(timeout), &mut |c| core.on_completion(c)) {
            tracing::error!(worker, "driver failed: {e}; worker stops");
            return;
        }
        core.flush(driver.as_mut());
        core.close_finished(driver.as_mut());
        if core.woken {
            core.woken = false;
            controls.clear();
            mailbox.drain(&mut controls);
            for c in &controls {
                match c {
                    Control::Shutdown if shutdown_at.is_none() => {
                        shutdown_at = Some(Instant::now() + core.cfg.shutdown_grace);
                        driver.stop_accepting();
                        core.begin_shutdown();
                        core.flush(driver.as_mut());
                        core.close_finished(driver.as_mut());
                    }
                    Control::Shutdown => {}
                }
            }
        }
        let target = started.elapsed().as_secs();
        while core.wheel.now() < target {
            core.tick();
        }
        core.flush(driver.as_mut());
        core.close_finished(driver.as_mut());
        if let Some(t) = shutdown_at {
            if core.open_count() == 0 {
                return;
            }
            if Instant::now() >= t {
                tracing::info!(
                    worker,
                    "shutdown grace over; closing {} connections",
                    core.open_count()
                );
                core.close_all(driver.as_mut());
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
        match c {
            Completion::Accepted(t) => self.accept(t),
            Completion::Data(t, buf) => self.data(t.0, buf),
            Completion::Writable(t) => self.mark_dirty(t.0),
            Completion::Closed(t) => {
                if let Some(Some(_)) = self.conns.get(t.index()) {
                    self.to_close.push(t.0);
                }
            }
            Completion::Woken => self.woken = true,
        }
    }

    fn accept(&mut self, t: Token) {
        let i = t.index();
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let deadline = self.wheel.now() + self.handshake_ticks;
        self.conns[i] = Some(Slot {
            generation,
            state: State::Handshake(RequestParser::new(&self.cfg.limits)),
            deadline,
            pinged: false,
            dirty: false,
            over_limit: false,
            linger: false,
            lingering: false,
            close_code: CloseCode::ABNORMAL,
            close_reason: String::new(),
        });
        self.wheel.insert(t.0, generation, deadline);
    }

    fn data(&mut self, index: u32, buf: &mut [u8]) {
        let now = self.wheel.now();
        let idle = self.idle_ticks;
        let Some(Some(slot)) = self.conns.get_mut(index as usize) else {
            return;
        };
        match &mut slot.state {
            State::Http { .. } => {}
            State::Handshake(parser) => match parser.feed(buf) {
                Ok(None) => {}
                Ok(Some(parsed)) => {
                    let mut rest = parsed.rest;
                    self.upgrade(index, parsed.request);
                    if !rest.is_empty() {
                        self.frames(index, &mut rest);
                    }
                }
                Err(e) => {
                    slot.state = State::Http {
                        out: e.response(),
                        pos: 0,
                    };
                    self.mark_dirty(index);
                }
            },
            State::Open(_) => {
                slot.deadline = now + idle;
                slot.pinged = false;
                self.frames(index, buf);
            }
        }
    }

    fn upgrade(&mut self, index: u32, http: HttpRequest) {
        let now = self.wheel.now();
        let response = if http.wants_websocket() {
            match UpgradeRequest::from_http(http) {
                Err(e) => Err(e.response()),
                Ok(req) => match self.handler.on_upgrade(&req) {
                    Upgrade::Reject { status, reason } => {
                        Err(HandshakeError { status, reason }.response())
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
                },
            }
        } else {
            Err(http_route(&http))
        };
        let Some(Some(slot)) = self.conns.get_mut(index as usize) else {
            return;
        };
        match response {
            Err(out) => {
                slot.state = State::Http { out, pos: 0 };
                slot.linger = true;
            }
            Ok(conn) => {
                slot.state = State::Open(conn);
                slot.deadline = now + self.idle_ticks;
                let id = conn_id(self.worker, index, slot.generation);
                if let State::Open(conn) = &mut slot.state {
                    let mut ws = Ws::new(id, conn.sender(), self.cfg.max_buffered);
                    self.handler.on_open(&mut ws);
                }
            }
        }
        self.mark_dirty(index);
    }

    /// Feed WebSocket bytes to the connection and its events to the handler.
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
                    let mut ws = Ws::new(id, sender, max_buffered);
                    match ev {
                        None => break,
                        Some(Event::Text(t)) => self.handler.on_message(&mut ws, Msg::Text(t)),
                        Some(Event::Binary(b)) => self.handler.on_message(&mut ws, Msg::Binary(b)),
                        Some(Event::Ping(_)) | Some(Event::Pong(_)) => {}
                        Some(Event::Close { code, reason }) => {
                            slot.close_code = code.unwrap_or(CloseCode::NO_STATUS);
                            slot.close_reason = reason.to_string();
                        }
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
    }

    /// Write out what each dirty connection queued this turn.
    fn flush(&mut self, driver: &mut dyn Driver) {
        let dirty = std::mem::take(&mut self.dirty);
        for &index in &dirty {
            let Some(Some(slot)) = self.conns.get_mut(index as usize) else {
                continue;
            };
            slot.dirty = false;
            let token = Token(index);
            let mut failed = false;
            loop {
                let out = slot.output();
                if out.is_empty() {
                    break;
                }
                match driver.send(token, out) {
                    Ok(0) => break,
                    Ok(n) => slot.advance(n),
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            let pending = slot.output().len();
            if failed || (pending == 0 && slot.finished() && !slot.linger) {
                self.to_close.push(index);
            } else if pending == 0 && slot.finished() {
                if !slot.lingering {
                    slot.lingering = true;
                    slot.deadline = self.wheel.now() + LINGER_TICKS;
                    self.wheel.insert(index, slot.generation, slot.deadline);
                    driver.shutdown_write(token);
                }
            } else if pending > self.cfg.max_buffered {
                slot.over_limit = true;
            } else if pending == 0 && slot.over_limit {
                slot.over_limit = false;
                let id = conn_id(self.worker, index, slot.generation);
                if let State::Open(conn) = &mut slot.state {
                    let mut ws = Ws::new(id, conn.sender(), self.cfg.max_buffered);
                    self.handler.on_drain(&mut ws);
                    if !conn.output().is_empty() {
                        self.dirty.push(index);
                        slot.dirty = true;
                    }
                }
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
        if let State::Open(_) = slot.state {
            let id = conn_id(self.worker, index, slot.generation);
            self.handler
                .on_close(id, slot.close_code, &slot.close_reason);
        }
    }

    fn begin_shutdown(&mut self) {
        for index in 0..self.conns.len() as u32 {
            let Some(Some(slot)) = self.conns.get_mut(index as usize) else {
                continue;
            };
            match &mut slot.state {
                State::Open(conn) => {
                    let _ = conn.close(CloseCode::GOING_AWAY, "server shutting down");
                    self.mark_dirty(index);
                }
                _ => self.to_close.push(index),
            }
        }
    }

    fn close_all(&mut self, driver: &mut dyn Driver) {
        for index in 0..self.conns.len() as u32 {
            self.close_transport(driver, index);
        }
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
                self.wheel.insert(e.index, e.generation, slot.deadline);
                continue;
            }
            match &mut slot.state {
                State::Handshake(_) | State::Http { .. } => {
                    tracing::debug!(worker = self.worker, index = e.index, "handshake timeout");
                    self.to_close.push(e.index);
                }
                State::Open(conn) => {
                    if conn.close_state() != CloseState::Open {
                        // The close handshake itself timed out.
                        self.to_close.push(e.index);
                    } else if !slot.pinged {
                        let _ = conn.ping(b"ringwave");
                        slot.pinged = true;
                        slot.deadline = now + self.idle_ticks;
                        self.wheel.insert(e.index, e.generation, slot.deadline);
                        self.mark_dirty(e.index);
                    } else {
                        let _ = conn.close(CloseCode::GOING_AWAY, "idle timeout");
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

fn conn_id(worker: u16, index: u32, generation: u32) -> ConnId {
    ConnId {
        worker,
        index,
        generation,
    }
}

/// Plain HTTP on the WebSocket port: the demo page on `GET /`, 404 elsewhere.
fn http_route(req: &HttpRequest) -> Vec<u8> {
    let path = req.path.split('?').next().unwrap_or("");
    let (status, ctype, body): (u16, &str, &str) = match (req.method.as_str(), path) {
        ("GET" | "HEAD", "/") => (200, "text/html; charset=utf-8", page::INDEX_HTML),
        ("GET" | "HEAD", _) => (
            404,
            "text/plain; charset=utf-8",
            "not found: WebSocket upgrades are served on any path; the demo page is at /\n",
        ),
        _ => (405, "text/plain; charset=utf-8", "method not allowed\n"),
    };
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        status_text(status),
        body.len()
    )
    .into_bytes();
    if req.method != "HEAD" {
        out.extend_from_slice(body.as_bytes());
    }
    out
}
