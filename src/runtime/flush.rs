//! The end of a turn: each dirty connection's unsent bytes laid out and
//! handed to the driver as one send (corking), the lingering close, and the
//! release of closed connections.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::driver::{Driver, Part, Token};
use crate::pubsub::Publication;

use super::app::App;
use super::core::Core;
use super::session::h2::BACKLOG;
use super::session::{Ending, Lag, Session, Slot, STREAM};
use super::tls::TlsLayer;

/// Most slices gathered into one send.
pub(super) const MAX_PARTS: usize = 256;
/// Stop gathering publications into one send past this many bytes.
const GATHER_BYTES: usize = 64 * 1024;
/// Encrypt no more while this much ciphertext waits for the socket: unsent
/// plaintext stays where it is (and counts against `max_buffered` there).
const TLS_BACKLOG: usize = 64 * 1024;
/// While a worker's unsent ciphertext (in its TLS layers and in the sends
/// its driver holds) passes `CIPHERTEXT_BUDGET`, each connection encrypts
/// at most `TLS_BACKLOG_TIGHT` ahead: when thousands of subscribers fall
/// behind at once, the backlog stays in the shared publications (8 bytes
/// a subscriber each) instead of in 64 KiB of ciphertext per subscriber,
/// and every connection still moves.
const CIPHERTEXT_BUDGET: usize = 32 << 20;
const TLS_BACKLOG_TIGHT: usize = 16 * 1024;
/// Bytes of callers' buffers a driver may take into sends in one turn
/// (see [`Driver::send_backlog`]): the rest of the dirty connections go in
/// the next turn, after this turn's completions gave the memory back.
pub(super) const TURN_SEND_BUDGET: usize = 16 << 20;

/// Lay out a slot's unsent bytes for one send: the rest of a partly written
/// publication (its frame must finish first), then the connection's own
/// output (control frames are never starved behind publications), then
/// queued publications. Returns the number of parts and whether the first is
/// a partly written publication.
///
/// Publications go in as shared parts: a driver may send them from where they
/// lie, holding a reference, instead of copying them.
pub(super) fn gather<'s>(slot: &'s Slot, parts: &mut [Part<'s>; MAX_PARTS]) -> (usize, bool) {
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

/// Send as much of the slot's unsent bytes as the driver takes now; returns
/// how many it took.
fn write_out(
    slot: &mut Slot,
    driver: &mut dyn Driver,
    token: Token,
    lag: &Lag<'_>,
    tls_held: &mut usize,
) -> std::io::Result<usize> {
    if let Some(mut tls) = slot.tls.take() {
        let written = write_out_tls(slot, &mut tls, driver, token, lag, *tls_held);
        tls.recount(tls_held);
        slot.tls = Some(tls);
        return written;
    }
    let mut total = 0;
    if slot.sub.is_none() {
        // No publications: the connection's own output is the only part,
        // which a driver may take over whole instead of copying.
        loop {
            if slot.own_output().is_empty() {
                return Ok(total);
            }
            let written = match &mut slot.session {
                Session::WebSocket(ws) => ws
                    .conn
                    .send_output_with(|buf, from| driver.send_owned(token, buf, from))?,
                _ => {
                    let n = driver.send(token, slot.own_output())?;
                    slot.advance_own(n);
                    n
                }
            };
            if written == 0 {
                return Ok(total);
            }
            total += written;
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
        slot.consume(written, front_partial, lag);
    }
}

/// Encrypt as much of `parts`, in order, as the layer takes while its
/// backlog is under `backlog` bytes; returns the plaintext bytes taken.
fn encrypt_parts(tls: &mut TlsLayer, parts: &[Part<'_>], backlog: usize) -> usize {
    let mut taken = 0;
    for p in parts {
        let b = p.bytes();
        let room = backlog.saturating_sub(tls.output().len());
        let k = tls.write(&b[..b.len().min(room)]);
        taken += k;
        if k < b.len() || tls.output().len() >= backlog {
            break;
        }
    }
    taken
}

/// [`write_out`] for a TLS connection: encrypt the slot's unsent bytes in
/// the order [`gather`] lays them out (while the ciphertext backlog is
/// short), queue close_notify once the session is finished, and hand the
/// ciphertext to the driver (which may take the buffer over). Returns the
/// ciphertext bytes the driver took. `held` is the worker's count of unsent
/// ciphertext in its TLS layers.
fn write_out_tls(
    slot: &mut Slot,
    tls: &mut TlsLayer,
    driver: &mut dyn Driver,
    token: Token,
    lag: &Lag<'_>,
    held: usize,
) -> std::io::Result<usize> {
    let backlog = if held + driver.send_backlog() > CIPHERTEXT_BUDGET {
        TLS_BACKLOG_TIGHT
    } else {
        TLS_BACKLOG
    };
    let mut total = 0;
    loop {
        // Nothing more is encrypted while the driver still holds an earlier
        // send: ciphertext waits in one buffer per connection at most.
        while tls.can_encrypt() && tls.output().len() < backlog && driver.send_ready(token) {
            let (taken, front_partial) = {
                let mut parts = [Part::borrowed(&[]); MAX_PARTS];
                let (n, front_partial) = gather(slot, &mut parts);
                if n > 0 && tls.output().is_empty() {
                    tls.provide(driver.spare_buffer());
                }
                (encrypt_parts(tls, &parts[..n], backlog), front_partial)
            };
            if taken == 0 {
                break;
            }
            slot.consume(taken, front_partial, lag);
        }
        if slot.session.finished() && slot.plain_pending() == 0 {
            tls.close_notify();
        }
        if tls.output().is_empty() {
            return Ok(total);
        }
        let written = tls.send_with(|buf, from| driver.send_owned(token, buf, from))?;
        if written == 0 {
            return Ok(total);
        }
        total += written;
    }
}

/// Put as much of an HTTP/2 stream's unsent bytes into its connection's
/// output as the flow-control windows and the connection's backlog allow,
/// as DATA frames, in the order [`gather`] lays them out. Returns the bytes
/// taken.
fn write_stream(stream: &mut Slot, conn: &mut Slot, lag: &Lag<'_>) -> usize {
    let (Some(link), Session::H2(h)) = (stream.link, &mut conn.session) else {
        return 0;
    };
    let mut total = 0;
    loop {
        if h.session.output().len() >= BACKLOG {
            h.blocked |= stream.plain_pending() > 0;
            return total;
        }
        let mut room = h.session.send_capacity(link.stream).min(BACKLOG);
        if room == 0 {
            return total;
        }
        let (taken, front_partial) = {
            let mut parts = [Part::borrowed(&[]); MAX_PARTS];
            let (n, front_partial) = gather(stream, &mut parts);
            let mut taken = 0;
            for p in &parts[..n] {
                let b = p.bytes();
                let k = h
                    .session
                    .send_data(link.stream, &b[..b.len().min(room)], false);
                taken += k;
                room -= k;
                if k < b.len() || room == 0 {
                    break;
                }
            }
            (taken, front_partial)
        };
        if taken == 0 {
            return total;
        }
        stream.consume(taken, front_partial, lag);
        total += taken;
    }
}

impl<A: App> Core<A> {
    /// Write out what each dirty connection queued this turn: HTTP/2
    /// streams first, into their connections' output, then the
    /// connections.
    pub(super) fn flush(&mut self, driver: &mut dyn Driver) {
        let mut dirty = self.conns.take_dirty();
        // The worker's counters, held apart from `self` for the turn.
        let stats = self.stats.clone();
        let lag = Lag {
            now: self.now,
            hist: &stats.delivery_lag,
        };
        for &index in dirty.iter().filter(|&&i| i & STREAM != 0) {
            self.flush_one(index, driver, &lag);
        }
        // The connections the streams wrote into, and streams marked again
        // (by on_drain): those wait for the next flush.
        let mut again = self.conns.take_dirty();
        dirty.retain(|&i| i & STREAM == 0);
        again.retain(|&i| {
            let conn = i & STREAM == 0;
            if conn {
                dirty.push(i);
            }
            !conn
        });
        self.conns.redirty(again);
        // The driver's backlog grows by what each send takes until the next
        // turn reaps the completions: past a turn's budget the rest wait
        // for the next turn (at once: they stay dirty).
        let mut flushed = dirty.len();
        for (k, &index) in dirty.iter().enumerate() {
            let added = driver.send_backlog().saturating_sub(self.backlog_at_turn);
            if added > TURN_SEND_BUDGET {
                flushed = k;
                break;
            }
            self.flush_one(index, driver, &lag);
        }
        if flushed < dirty.len() {
            self.conns.redirty(dirty.split_off(flushed));
        }
        self.conns.flushed(dirty);
        let backlog = self.tls_held + driver.send_backlog();
        self.stats.send_backlog.set(backlog as u64);
    }

    fn flush_one(&mut self, index: u32, driver: &mut dyn Driver, lag: &Lag<'_>) {
        let limit = self.cfg.max_buffered;
        let token = Token(index);
        let mut wrote_to = None;
        let mut failed = if index & STREAM != 0 {
            let Some((slot, conn)) = self.conns.stream_and_conn(index) else {
                // Its connection is gone: so is the stream.
                self.conns.close(index);
                return;
            };
            slot.dirty = false;
            if write_stream(slot, conn, lag) > 0 {
                wrote_to = slot.link.map(|l| l.index);
            }
            false
        } else {
            let Some(slot) = self.conns.get_mut(index) else {
                return;
            };
            slot.dirty = false;
            let r = write_out(slot, driver, token, lag, &mut self.tls_held);
            if let Session::H2(h) = &mut slot.session {
                if h.blocked && h.session.output().len() < BACKLOG / 2 {
                    h.blocked = false;
                    self.wake_streams(index, true);
                }
            }
            match r {
                Ok(n) => {
                    self.stats.bytes_out.add(n as u64);
                    false
                }
                Err(_) => true,
            }
        };
        if let Some(c) = wrote_to {
            self.conns.mark_dirty(c);
        }
        let Some(slot) = self.conns.get_mut(index) else {
            return;
        };
        let sse = slot.is_sse();
        if !failed && slot.pending() <= limit / 2 && slot.session.takes_publications() {
            if let Some(sub) = slot.sub.as_deref_mut() {
                if !sub.conflated.is_empty() {
                    // Drained enough: send the newest of what was held
                    // (a stream's goes out with its next flush).
                    sub.release_conflated(sse);
                    if slot.link.is_some() {
                        self.conns.mark_dirty(index);
                        return;
                    }
                    match write_out(slot, driver, token, lag, &mut self.tls_held) {
                        Ok(n) => self.stats.bytes_out.add(n as u64),
                        Err(_) => failed = true,
                    }
                }
            }
        }
        let pending = slot.pending();
        let finished = pending == 0 && slot.session.finished();
        // A stream has no transport to half-close.
        let ending = if slot.link.is_some() {
            Ending::Close
        } else {
            slot.ending
        };
        // Its own transport's reads stop while its unsent bytes are over the
        // limit (an HTTP/2 connection has its own bound, and its streams no
        // transport of their own).
        let pausable = slot.link.is_none() && !matches!(slot.session, Session::H2(_));
        let holding = matches!(&slot.session, Session::Head(h) if h.holding());
        if failed || (finished && ending == Ending::Close) {
            self.conns.close(index);
        } else if finished {
            if slot.over_limit && pausable {
                // Its peer's EOF is what a lingering close waits for.
                slot.over_limit = false;
                driver.pause_reading(token, false);
            }
            if slot.ending == Ending::Linger {
                slot.ending = Ending::Lingering;
                let at = self.conns.now() + self.ticks.linger;
                self.conns.set_deadline(index, at);
                driver.shutdown_write(token);
            }
        } else if pending > limit {
            if !slot.over_limit && pausable {
                tracing::debug!(
                    worker = self.worker,
                    index,
                    pending,
                    "over the limit: reads paused"
                );
                driver.pause_reading(token, true);
            }
            slot.over_limit = true;
        } else if pending == 0 && (slot.over_limit || holding) {
            if slot.over_limit {
                slot.over_limit = false;
                if pausable {
                    driver.pause_reading(token, false);
                }
            }
            self.drained(index);
        } else if holding && !slot.over_limit && pausable {
            // A pipelined request waits for the answer before it: so do the
            // connection's reads (`http1`).
            driver.pause_reading(token, true);
            slot.over_limit = true;
        }
    }

    /// Close the transports of finished or failed connections.
    pub(super) fn close_finished(&mut self, driver: &mut dyn Driver) {
        while let Some(index) = self.conns.next_closing() {
            self.close_transport(driver, index);
        }
    }

    fn close_transport(&mut self, driver: &mut dyn Driver, index: u32) {
        let Some(slot) = self.conns.take(index) else {
            return;
        };
        if let Some(tls) = &slot.tls {
            self.tls_held = self.tls_held.saturating_sub(tls.counted());
        }
        match slot.link {
            Some(link) => self.end_stream(&slot, link),
            None => self.close_socket(driver, index),
        }
        if let Session::H2(h) = &slot.session {
            for &(s, _) in h.streams.values() {
                self.close_transport(driver, s);
            }
        }
        if let Some(sub) = &slot.sub {
            self.delivery
                .topics
                .remove_all(index, slot.generation, sub, &self.stats);
        }
        if let Session::WebSocket(ws) = &slot.session {
            self.stats.close(ws.close_code.0);
            let id = self.conn_id(index, slot.generation);
            self.app
                .on_close(id, ws.tag, ws.close_code, ws.close_reason());
        }
    }

    /// Close a connection's socket and count it gone.
    fn close_socket(&mut self, driver: &mut dyn Driver, index: u32) {
        driver.close(Token(index));
        self.uncount_client(index);
        self.stats.connections_open.sub(1);
        if let Some(shared) = self.shared() {
            // Saturating: a connection accepted before `shared` was set was
            // never counted.
            let _ = shared
                .connections
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    pub(super) fn close_all(&mut self, driver: &mut dyn Driver) {
        let all: Vec<u32> = self.conns.iter().map(|(i, _)| i).collect();
        for index in all {
            self.close_transport(driver, index);
        }
    }
}
