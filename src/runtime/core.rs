//! The loop's core: the connection table and what each completion does to
//! it, with no clock of its own. Time comes in as `now` (an [`Instant`]
//! turned into wheel ticks from the core's epoch), so every timeout, the
//! keep-alive, the drain and the slow-consumer policies run under a fake
//! driver and a fake clock in unit tests (`runtime::tests`).
//!
//! A loop turn ([`Core::after_io`] after the driver reported its
//! completions): take the mailbox's messages, close the drain's next share,
//! deliver the turn's publications run by run, flush every connection that
//! queued output (one send each: corking), close the finished ones, then
//! advance the timer wheel and do the same for what the timers did.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::driver::{Completion, Driver, Reply};
use crate::metrics::Stats;
use crate::proto::h2::PREFACE;
use crate::proto::{CloseCode, CloseState, Conn, DeflateParams, Event, Role};
use crate::pubsub::{Position, Publication, SubscribeOptions, Subscribed, Topics};

use super::app::{App, Ends, Response, Settings, DISCONNECTED};
use super::clock::{tick_at, Epoch};
use super::connections::Connections;
use super::delivery::{Delivery, Limits};
use super::drain::Drain;
use super::identity::Identity;
use super::mailbox::{Control, Mailbox};
use super::peers::Peers;
use super::reply::Replies;
use super::session::head::{HeadStep, ProxyStep};
use super::session::http::Respond;
use super::session::websocket::{Rare, WebSocket};
use super::session::{Ending, Session, Ticks};
use super::ws::{ConnId, Msg, Ws};
use super::Shared;

/// Timer tick.
pub(super) const TICK: Duration = Duration::from_secs(1);
/// Ticks to wait for a peer's EOF after a half-close.
const LINGER_TICKS: u64 = 2;

/// Whether the worker goes on after a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Serve on.
    Run,
    /// Every connection is gone (or the grace ran out): exit.
    Exit,
}

/// One worker's state other than the driver (so completions can be handled
/// while the driver is borrowed).
pub(crate) struct Core<A: App> {
    pub(super) worker: u16,
    pub(super) app: A,
    pub(super) cfg: Arc<Settings>,
    pub(super) ticks: Ticks,
    /// The connections: slots, the turn's dirty and closing lists, the
    /// timer wheel.
    pub(super) conns: Connections,
    /// Tick 0 of the wheel, and the wall clock then.
    epoch: Epoch,
    /// The clock as the worker last read it, given to every entry point
    /// ([`Core::on_completion`], [`Core::after_io`], [`Core::control`],
    /// [`Core::read_mail`]): what stamps publications for history and
    /// subscriptions' recovery windows. The core never reads the clock.
    pub(super) now: Instant,
    woken: bool,
    /// The other workers: this one's mailbox, and theirs.
    pub(super) peers: Peers,
    /// Topics and the publications on their way to subscribers.
    pub(super) delivery: Delivery,
    pub(super) stats: Arc<Stats>,
    /// Shutting down: new upgrades get 503, `/healthz` answers 503.
    pub(super) draining: bool,
    pub(super) drain: Option<Drain>,
    /// Everyone was told to go: exit when the last connection is gone, or
    /// at this moment.
    shutdown_at: Option<Instant>,
    /// Plaintext out of a TLS connection's read, parsed by its session.
    plain: Vec<u8>,
    /// Ciphertext waiting in the connections' TLS layers, together
    /// ([`super::tls::TlsLayer::recount`]): past a budget, each encrypts
    /// less ahead.
    pub(super) tls_held: usize,
    /// The driver's send backlog when the turn's flushing began: what the
    /// turn's flushes add to it counts against their budget.
    pub(super) backlog_at_turn: usize,
    /// Messages sent from the read buffer during a read (one read at a
    /// time).
    replies: Replies,
    /// The client address each connection counts against, with limits per
    /// address (`Shared::clients`); empty without them.
    pub(super) counted: HashMap<u32, IpAddr>,
}

impl<A: App> Core<A> {
    /// A worker's core; `epoch` is tick 0 of its timer wheel.
    pub(crate) fn new(
        worker: u16,
        app: A,
        cfg: Arc<Settings>,
        mailbox: Arc<Mailbox>,
        shared: Arc<OnceLock<Shared>>,
        stats: Arc<Stats>,
        epoch: Epoch,
    ) -> Core<A> {
        let ticks = |d: Duration| d.as_secs().max(1);
        let mut topics = Topics::new(
            cfg.slow_consumer,
            Arc::new(cfg.topic_policies.clone()),
            cfg.history.clone(),
        );
        if cfg.uplink.is_some() {
            topics.track_changes();
        }
        Core {
            worker,
            app,
            ticks: Ticks {
                handshake: ticks(cfg.handshake_timeout),
                ping: ticks(cfg.ping_interval),
                idle: ticks(cfg.idle_timeout),
                linger: LINGER_TICKS,
                sse_lifetime: cfg.sse_lifetime.map_or(0, ticks),
            },
            conns: Connections::new(
                crate::driver::descriptors::table_capacity(),
                ticks(cfg.ping_interval),
            ),
            delivery: Delivery::new(topics),
            cfg,
            epoch,
            now: epoch.at,
            woken: false,
            peers: Peers::new(worker, mailbox, shared),
            stats,
            draining: false,
            drain: None,
            shutdown_at: None,
            plain: Vec::new(),
            tls_held: 0,
            backlog_at_turn: 0,
            replies: Replies::default(),
            counted: HashMap::new(),
        }
    }

    /// How long the driver may wait for I/O from `now`: until the next
    /// tick, the end of the shutdown grace, the drain's next share, or a
    /// retry of a full mailbox.
    pub(crate) fn wait_time(&self, now: Instant) -> Duration {
        let next_tick = self.epoch.at + TICK * (self.conns.now() as u32 + 1);
        let mut timeout = next_tick.saturating_duration_since(now);
        if let Some(t) = self.shutdown_at {
            timeout = timeout.min(t.saturating_duration_since(now));
        }
        if self.drain.is_some() {
            timeout = timeout.min(Duration::from_millis(10));
        }
        if self.peers.holding() {
            timeout = timeout.min(Duration::from_millis(1));
        }
        if self.conns.has_dirty() {
            // Output queued after the turn's last flush (a persistent
            // connection's next answer): the next turn comes at once.
            timeout = Duration::ZERO;
        }
        timeout
    }

    /// Whether a [`Completion::Woken`] came this turn (the mailbox has
    /// messages); cleared by asking.
    pub(crate) fn take_woken(&mut self) -> bool {
        std::mem::take(&mut self.woken)
    }

    /// Handle everything the mailbox holds, in order.
    pub(crate) fn read_mail(&mut self, now: Instant) {
        self.now = now;
        let mut mail = self.peers.take_mail();
        for c in mail.drain(..) {
            self.control(c, now);
        }
        self.peers.done_with(mail);
    }

    /// A message from the mailbox.
    pub(crate) fn control(&mut self, c: Control, now: Instant) {
        self.now = now;
        match c {
            Control::Publish(p) => self.deliver(&p),
            Control::Shutdown if !self.draining => {
                self.draining = true;
                self.close_idle();
                self.drain = Some(self.begin_drain(now));
            }
            Control::Shutdown => {}
            Control::Disconnect(sub) => self.disconnect(&sub),
            Control::Reconfigure(live) => {
                let mut cfg = (*self.cfg).clone();
                live.apply_to(&mut cfg.engine);
                let policies = Arc::new(live.topic_policies.clone());
                self.delivery
                    .topics
                    .set_policies(live.slow_consumer, policies);
                self.cfg = Arc::new(cfg);
            }
        }
    }

    /// The rest of a loop turn, after the driver's completions, at `now`.
    pub(crate) fn after_io(&mut self, driver: &mut dyn Driver, now: Instant) -> Flow {
        self.now = now;
        if let Some(mut d) = self.drain.take() {
            if self.drain_step(&mut d, now) {
                // Everyone has been told: stop accepting and give the close
                // handshakes the grace period.
                driver.stop_accepting();
                self.shutdown_at = Some(now + self.cfg.shutdown_grace);
            } else {
                self.drain = Some(d);
            }
        }
        self.peers.retry();
        self.backlog_at_turn = driver.send_backlog();
        self.deliver_batch();
        self.flush(driver);
        self.close_finished(driver);
        let target = now.saturating_duration_since(self.epoch.at).as_secs();
        while self.conns.now() < target {
            self.tick();
        }
        self.deliver_batch();
        self.flush(driver);
        self.close_finished(driver);
        if let Some(u) = &self.cfg.uplink {
            self.delivery
                .topics
                .take_changes(|topic, on| u.interest(topic, on));
        }
        if let Some(t) = self.shutdown_at {
            if self.open_count() == 0 {
                return Flow::Exit;
            }
            if now >= t {
                tracing::info!(
                    worker = self.worker,
                    "shutdown grace over; closing {} connections",
                    self.open_count()
                );
                self.close_all(driver);
                return Flow::Exit;
            }
        }
        Flow::Run
    }

    /// Start a drain at `now`: connections still in their handshake or
    /// answering plain HTTP finish on their own; WebSocket and SSE
    /// connections (and HTTP/2 connections, with a GOAWAY) are told to go
    /// in a random order over the drain period.
    fn begin_drain(&mut self, now: Instant) -> Drain {
        let conns = self
            .conns
            .iter()
            .filter(|(_, s)| {
                matches!(
                    s.session,
                    Session::WebSocket(_) | Session::Events(_) | Session::H2(_)
                )
            })
            .map(|(i, s)| (i, s.generation))
            .collect();
        Drain::new(conns, now, self.cfg.drain)
    }

    /// Tell the share of connections due by `now` to go; true when all were
    /// told and the period is over.
    fn drain_step(&mut self, d: &mut Drain, now: Instant) -> bool {
        let due = d.due(now).to_vec();
        for (index, generation) in due {
            self.go_away(index, generation);
        }
        d.done(now)
    }

    /// Close one connection with 1001 "server shutting down".
    fn go_away(&mut self, index: u32, generation: u32) {
        let Some(slot) = self.conns.live_mut(index, generation) else {
            return;
        };
        match &mut slot.session {
            Session::WebSocket(ws) => {
                ws.close(CloseCode::GOING_AWAY, "server shutting down");
                if let Some(sub) = slot.sub.as_deref_mut() {
                    sub.discard_unstarted(false);
                }
            }
            Session::Events(s) => {
                s.close();
                if let Some(sub) = slot.sub.as_deref_mut() {
                    sub.discard_unstarted(true);
                }
            }
            Session::H2(h) => {
                // GOAWAY: no new streams; the connection ends with its last.
                h.session.shut_down();
                return self.conns.mark_dirty(index);
            }
            _ => return,
        }
        // The close handshake gets the shutdown grace (at least a tick).
        let ticks = self.cfg.shutdown_grace.as_secs().max(1);
        let at = self.conns.now() + ticks;
        self.conns.set_deadline(index, at);
        self.conns.mark_dirty(index);
    }

    /// Close every WebSocket whose token names `sub`, as the server API
    /// asked (an event stream carries no identity to match).
    fn disconnect(&mut self, sub: &str) {
        let theirs: Vec<(u32, u32)> = self
            .conns
            .iter()
            .filter(|(_, s)| match &s.session {
                Session::WebSocket(ws) => {
                    Rare::identity(&ws.rare).and_then(|id| id.subject()) == Some(sub)
                }
                _ => false,
            })
            .map(|(i, s)| (i, s.generation))
            .collect();
        for (index, generation) in theirs {
            if let Some(slot) = self.conns.live_mut(index, generation) {
                if let Session::WebSocket(ws) = &mut slot.session {
                    ws.close(DISCONNECTED, "disconnected by the server");
                }
                if let Some(s) = slot.sub.as_deref_mut() {
                    s.discard_unstarted(false);
                }
                // The close handshake gets the handshake timeout.
                let at = self.conns.now() + self.ticks.handshake;
                self.conns.set_deadline(index, at);
                self.conns.mark_dirty(index);
            }
        }
    }

    pub(crate) fn open_count(&self) -> usize {
        self.conns.iter().count()
    }

    /// The most unsent bytes one slot holds now (own output, queued
    /// publications, ciphertext): what the fuzz targets bound.
    #[cfg(fuzzing)]
    pub(crate) fn most_held(&self) -> usize {
        self.conns
            .iter()
            .map(|(_, s)| s.pending())
            .max()
            .unwrap_or(0)
    }

    pub(super) fn conn_id(&self, index: u32, generation: u32) -> ConnId {
        ConnId {
            worker: self.worker,
            index,
            generation,
        }
    }

    /// One completion from the driver, at `now` (the worker's clock for
    /// this turn's completions).
    pub(crate) fn on_completion(&mut self, c: Completion<'_>, now: Instant) {
        self.now = now;
        match c {
            Completion::Accepted(t, peer, listener) => self.accept(t, peer, listener),
            Completion::Data(t, buf, reply) => self.data(t.0, buf, reply),
            Completion::Writable(t) => {
                // io_uring reports every finished send; only a connection
                // with something left to do needs a flush.
                if let Some(s) = self.conns.get(t.0) {
                    let waiting = s.sub.as_ref().is_some_and(|s| !s.conflated.is_empty())
                        || matches!(&s.session, Session::H2(h) if h.blocked);
                    if s.pending() > 0 || s.session.finished() || s.over_limit || waiting {
                        self.conns.mark_dirty(t.0);
                    }
                }
            }
            Completion::Closed(t) => {
                if let Some(slot) = self.conns.get(t.0) {
                    if slot.tls.as_ref().is_some_and(|t| t.handshaking()) {
                        self.stats.tls_failure("truncated");
                    }
                    self.conns.close(t.0);
                }
            }
            Completion::Woken => self.woken = true,
        }
    }

    /// Answer with a whole response (without its body when `head_only`),
    /// then close (lingering); a status from 400 on is counted as a
    /// refusal. On an HTTP/2 stream: answer the stream.
    pub(super) fn respond(&mut self, index: u32, r: Response, head_only: bool) {
        if index & super::session::STREAM != 0 {
            return self.respond_stream(index, r, head_only);
        }
        if r.status >= 400 {
            self.stats.reject(r.status);
        }
        if let Some(slot) = self.conns.get_mut(index) {
            slot.respond(r.to_http1(head_only));
            self.conns.mark_dirty(index);
        }
    }

    /// Bytes from the driver: through the TLS layer first, if any. `reply`,
    /// the socket when the driver lends it, writes raw bytes: a TLS
    /// connection's plaintext never goes there.
    fn data(&mut self, index: u32, buf: &mut [u8], reply: Option<&mut dyn Reply>) {
        self.stats.bytes_in.add(buf.len() as u64);
        let Some(slot) = self.conns.get_mut(index) else {
            return;
        };
        let Some(tls) = slot.tls.as_deref_mut() else {
            return self.plain_data(index, buf, reply);
        };
        let mut plain = std::mem::take(&mut self.plain);
        plain.clear();
        match tls.read(buf, &mut plain) {
            Ok(handshake_done) => {
                if handshake_done {
                    self.stats.tls_handshakes.add(1);
                }
                if !tls.output().is_empty() {
                    self.conns.mark_dirty(index);
                }
                if !plain.is_empty() {
                    self.plain_data(index, &mut plain, None);
                }
            }
            Err(reason) => {
                tracing::debug!(worker = self.worker, index, reason, "TLS failed");
                self.stats.tls_failure(reason);
                // The alert (or the plain 400) goes out, then the close.
                slot.session = Session::Respond(Respond::new(Vec::new()));
                slot.ending = Ending::Linger;
                self.conns.mark_dirty(index);
            }
        }
        if plain.capacity() > 1 << 20 {
            plain = Vec::new();
        }
        self.plain = plain;
    }

    /// Plaintext bytes for the connection's session; `reply` writes to its
    /// socket (see [`Core::frames`]).
    pub(super) fn plain_data(&mut self, index: u32, buf: &mut [u8], reply: Option<&mut dyn Reply>) {
        let now = self.conns.now();
        let Some(slot) = self.conns.get_mut(index) else {
            return;
        };
        match &mut slot.session {
            Session::Respond(_) | Session::Events(_) => {}
            Session::Body(post) => {
                // Bytes past the body are the next request's.
                let (body, rest) = buf.split_at(buf.len().min(post.room()));
                if post.take(body) == Ok(true) {
                    self.finish_post(index, rest.to_vec());
                }
            }
            Session::Proxy(pre) => match pre.read(buf, &self.cfg.limits) {
                ProxyStep::Incomplete => {}
                ProxyStep::Invalid(r) => self.respond(index, r, false),
                ProxyStep::Done(head, mut rest) => {
                    let client = head.peer().map(|p| p.ip());
                    slot.session = Session::Head(Box::new(head));
                    if let Some(ip) = client {
                        self.count_client(index, ip);
                    }
                    if !rest.is_empty() {
                        self.plain_data(index, &mut rest, reply);
                    }
                }
            },
            Session::Head(head) if head.must_hold() => {
                // A pipelined request, read once the answer before it is
                // out (`http1`); reads pause meanwhile, so this is a read's
                // worth at most.
                let cap = self
                    .cfg
                    .max_buffered
                    .max(self.cfg.limits.max_handshake_bytes);
                if head.hold(buf) > cap {
                    self.conns.close(index);
                }
            }
            Session::Head(head)
                if self.cfg.http2
                    && head.fresh()
                    && (buf.starts_with(&PREFACE[..4])
                        || slot.tls.as_ref().is_some_and(|t| t.alpn_h2())) =>
            {
                self.begin_h2(index, buf)
            }
            Session::H2(_) => self.h2_data(index, buf),
            Session::Head(head) => match head.read(buf) {
                HeadStep::Incomplete => {}
                HeadStep::Request(http, mut rest) => self.request(index, http, &mut rest, reply),
                HeadStep::Invalid(r) => self.respond(index, r, false),
            },
            Session::WebSocket(ws) => {
                // Keep-alive: nothing is rescheduled per message; the
                // timer entry compares with these when it comes due.
                slot.deadline = ws.cap(now + self.ticks.ping);
                ws.heard(now);
                self.frames(index, buf, reply);
            }
        }
    }

    /// A WebSocket's protocol state, with permessage-deflate as negotiated.
    pub(super) fn ws_conn(&self, deflate: Option<DeflateParams>) -> Conn {
        let d = self.cfg.deflate.as_ref();
        Conn::new(
            Role::Server,
            self.cfg.limits,
            deflate.map(|p| {
                (
                    p,
                    d.map_or(1, |d| d.level),
                    d.map_or(0, |d| d.min_compress_size),
                )
            }),
        )
    }

    /// Subscribe an event stream's slot (from `since`, on a topic with
    /// history); its keep-alive deadline starts now. Also returns the tick
    /// its life ends at (0: never): `--sse-lifetime` or `ends`, the sooner.
    pub(super) fn subscribe_sse(
        &mut self,
        index: u32,
        topic: &str,
        since: Option<Position>,
        ends: Ends,
    ) -> Option<(Subscribed, u64)> {
        let now = self.conns.now();
        let lifetime = match self.ticks.sse_lifetime {
            0 => None,
            t => Some(now + t),
        };
        let ends = [
            lifetime,
            ends.token.map(|t| self.tick_at(t)),
            ends.lifetime.map(|t| self.tick_at(t)),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(0);
        let slot = self.conns.get_mut(index)?;
        slot.deadline = now + self.ticks.ping;
        let reschedule = ends != 0 && ends < slot.deadline;
        if ends != 0 {
            slot.deadline = slot.deadline.min(ends);
        }
        if reschedule {
            // Its end may come before the wheel entry it has (the
            // handshake's): one more entry, at the end.
            self.conns.reschedule(index);
        }
        let slot = self.conns.get_mut(index)?;
        let opts = SubscribeOptions {
            since,
            ..SubscribeOptions::default()
        };
        let generation = slot.generation;
        self.delivery
            .topics
            .subscribe_with(
                index,
                generation,
                &mut slot.sub,
                topic,
                &opts,
                true,
                self.now,
                &self.stats,
            )
            .ok()
            .map(|s| (s, ends))
    }

    /// The upgrade was accepted: the connection is a WebSocket from now on
    /// (logged with the client's address, `peer`, and its token's subject).
    pub(super) fn open(&mut self, index: u32, ws: WebSocket, peer: Option<IpAddr>) {
        tracing::debug!(
            worker = self.worker,
            index,
            peer = %peer.map_or_else(|| "-".to_string(), |ip| ip.to_string()),
            sub = Rare::subject(&ws.rare),
            "{}",
            match index & super::session::STREAM {
                0 => "WebSocket opened",
                _ => "WebSocket opened (HTTP/2 stream)",
            }
        );
        let now = self.conns.now();
        let Some(slot) = self.conns.get_mut(index) else {
            return;
        };
        let keep_alive = now + self.ticks.ping;
        slot.deadline = ws.cap(keep_alive);
        slot.session = Session::WebSocket(ws);
        if slot.deadline < keep_alive {
            // Its end may come before the wheel entry it has (the
            // handshake's): one more entry, at the end.
            self.conns.reschedule(index);
        }
        self.stats.handshakes_accepted.add(1);
        self.callback(index, |app, ws| app.on_open(ws));
        self.publish_pending();
        self.conns.mark_dirty(index);
    }

    /// Hand WebSocket bytes to the connection and its messages to the app.
    /// With `reply` (the driver lent the socket these bytes came from, and
    /// `buf` holds them or what follows a request head in them), messages
    /// the app sends from `buf` go out from there at the end
    /// ([`super::reply`]), unless something of the connection's must go
    /// out first that its own output does not hold: the rest of a partly
    /// written publication.
    pub(super) fn frames(&mut self, index: u32, buf: &mut [u8], reply: Option<&mut dyn Reply>) {
        let (tick, rate) = (self.conns.now(), self.cfg.max_message_rate);
        let Some(slot) = self.conns.get_mut(index) else {
            return;
        };
        let id = ConnId {
            worker: self.worker,
            index,
            generation: slot.generation,
        };
        let Session::WebSocket(ws) = &mut slot.session else {
            return;
        };
        let reply = reply.filter(|_| {
            slot.link.is_none()
                && slot.tls.is_none()
                && slot.sub.as_ref().is_none_or(|s| s.front_pos == 0)
        });
        if reply.is_some() {
            self.replies.lend(buf);
        }
        let max_buffered = self.cfg.max_buffered;
        let mut pos = 0;
        while pos < buf.len() {
            match ws.conn.read_and_reply(&mut buf[pos..]) {
                Ok((n, ev, sender)) => {
                    pos += n;
                    let msg = match ev {
                        None => break,
                        Some(Event::Text(t)) => Msg::Text(t),
                        Some(Event::Binary(b)) => Msg::Binary(b),
                        Some(Event::Ping(_)) | Some(Event::Pong(_)) => continue,
                        Some(Event::Close { code, reason }) => {
                            ws.close_code = code.unwrap_or(CloseCode::NO_STATUS);
                            Rare::set_close_reason(&mut ws.rare, reason);
                            continue;
                        }
                    };
                    if !ws.allowance.take(tick, rate) {
                        // Over the rate: the message is dropped, and the
                        // connection closed (once: more may follow its close).
                        if ws.conn.close_state() == CloseState::Open {
                            let sub = Rare::subject(&ws.rare);
                            tracing::debug!(
                                worker = self.worker,
                                index,
                                sub,
                                "over the message rate"
                            );
                            self.stats.rate_closes.add(1);
                            ws.close(CloseCode::POLICY_VIOLATION, "message rate exceeded");
                        }
                        continue;
                    }
                    let now = (self.now, &self.epoch);
                    let pubsub = self.delivery.pubsub(&mut slot.sub, now, &self.stats);
                    let replies = reply.is_some().then_some(&mut self.replies);
                    let identity = Rare::identity(&ws.rare);
                    let mut handle =
                        Ws::new(id, ws.tag, sender, max_buffered, pubsub, identity, replies);
                    self.stats.messages_in.add(1);
                    self.app.on_message(&mut handle, msg);
                }
                Err(e) => {
                    let sub = Rare::subject(&ws.rare);
                    tracing::debug!(worker = self.worker, index, sub, "closing: {e}");
                    ws.failed(e.code, e.reason);
                    slot.ending = Ending::Linger;
                    break;
                }
            }
        }
        if let Some(reply) = reply {
            let n = self.replies.write(&mut ws.conn, buf, reply);
            self.stats.bytes_out.add(n as u64);
        }
        self.apply_token(index);
        self.conns.mark_dirty(index);
        self.publish_pending();
    }

    /// Fire `on_drain` for a WebSocket whose unsent bytes cleared.
    pub(super) fn drained(&mut self, index: u32) {
        self.resume_held(index);
        self.callback(index, |app, ws| app.on_drain(ws));
        if self.conns.get(index).is_some_and(|s| s.plain_pending() > 0) {
            self.conns.mark_dirty(index);
        }
        self.publish_pending();
    }

    /// Call the app with a WebSocket's handle (outside the frame loop, which
    /// builds its own from each read).
    fn callback(&mut self, index: u32, f: impl FnOnce(&mut A, &mut Ws<'_>)) {
        let Some(slot) = self.conns.get_mut(index) else {
            return;
        };
        let id = ConnId {
            worker: self.worker,
            index,
            generation: slot.generation,
        };
        let Session::WebSocket(ws) = &mut slot.session else {
            return;
        };
        let pubsub = self
            .delivery
            .pubsub(&mut slot.sub, (self.now, &self.epoch), &self.stats);
        let mut handle = Ws::new(
            id,
            ws.tag,
            ws.conn.sender(),
            self.cfg.max_buffered,
            pubsub,
            Rare::identity(&ws.rare),
            None,
        );
        f(&mut self.app, &mut handle);
        self.apply_token(index);
    }

    /// Apply what a handler did to its WebSocket's token during the
    /// callback just made (checked after every read: nothing, as a rule).
    #[inline]
    fn apply_token(&mut self, index: u32) {
        if self.delivery.token_changed() {
            self.apply_token_change(index);
        }
    }

    /// A new identity (`Ws::set_identity`), and a new end
    /// (`Ws::set_token_expiry`; the last one set), which caps the
    /// WebSocket's keep-alive deadline and has the wheel look at it again
    /// by then.
    #[cold]
    fn apply_token_change(&mut self, index: u32) {
        let change = self.delivery.take_token();
        let end = change.expiry.map(|at| at.map(|t| self.tick_at(t)));
        let keep_alive = self.conns.now() + self.ticks.ping;
        let Some(slot) = self.conns.get_mut(index) else {
            return;
        };
        let Session::WebSocket(ws) = &mut slot.session else {
            return;
        };
        if let Some(identity) = change.identity {
            Rare::set_identity(&mut ws.rare, Some(identity));
        }
        if let Some(end) = end {
            ws.set_token_end(end);
            slot.deadline = ws.cap(slot.deadline.max(keep_alive));
            self.conns.reschedule(index);
        }
    }

    pub(super) fn publish_pending(&mut self) {
        let mut ps = self.delivery.take_publishes();
        if ps.is_empty() {
            return;
        }
        for p in ps.drain(..) {
            self.publish(p);
        }
        self.delivery.published(ps);
    }

    /// Give it its offset (a topic with history), deliver here, forward to
    /// every other worker and hand to the uplink.
    /// Returns its position, on a topic with history this node numbers.
    pub(super) fn publish(&mut self, p: Arc<Publication>) -> Option<Position> {
        let p = match (&self.cfg.history, &self.cfg.uplink) {
            (Some(h), Some(u)) if h.relays(p.topic()) => {
                // The broker numbers it; it comes back through the uplink.
                u.publish(&p);
                return None;
            }
            (Some(h), _) => h.record(p, self.now),
            (None, _) => p,
        };
        // A publication another worker made before this one is in this
        // worker's mailbox already (it was queued before that worker
        // answered its publisher, who may be the one publishing here now,
        // through another connection): it goes first, so one publisher's
        // publications stay in order whichever workers they go through.
        self.read_mail(self.now);
        self.deliver(&p);
        if let Some(u) = &self.cfg.uplink {
            u.publish(&p);
        }
        self.peers.forward(&p);
        p.position()
    }

    /// Take a publication for this worker's subscribers (see
    /// [`Delivery::deliver`]).
    pub(super) fn deliver(&mut self, p: &Arc<Publication>) {
        p.arrive(self.now);
        self.delivery.deliver(p, &self.stats);
    }

    /// Queue the turn's publications to their subscribers.
    pub(super) fn deliver_batch(&mut self) {
        let limits = Limits {
            max_buffered: self.cfg.max_buffered,
            close_ticks: self.ticks.handshake,
        };
        self.delivery
            .deliver_batch(&mut self.conns, limits, &self.stats);
    }

    /// The tick by which the wall clock reads `at` (see [`tick_at`]).
    pub(super) fn tick_at(&self, at: SystemTime) -> u64 {
        tick_at(self.conns.now(), self.wall(), at)
    }

    /// A new WebSocket, closed at `ends`, for `identity`.
    pub(super) fn ending(
        &self,
        mut ws: WebSocket,
        ends: Ends,
        identity: Option<Box<Identity>>,
    ) -> WebSocket {
        Rare::set_identity(&mut ws.rare, identity);
        ws.ending(
            ends.token.map(|t| self.tick_at(t)),
            ends.lifetime.map(|t| self.tick_at(t)),
        )
    }

    /// The wall clock at this turn's `now`.
    pub(super) fn wall(&self) -> SystemTime {
        self.epoch.wall_at(self.now)
    }

    /// The process-wide connection count, when the workers share one.
    pub(super) fn shared(&self) -> Option<&Shared> {
        self.peers.shared()
    }
}
