//! What a connection's deadline means when its wheel entry comes due: a
//! handshake that took too long, an event stream's keep-alive comment, a
//! WebSocket's ping or idle close, the end of a lingering close.

use crate::proto::h2::ErrorCode;

use super::app::App;
use super::core::Core;
use super::session::websocket::Expiry;
use super::session::Session;

impl<A: App> Core<A> {
    /// Advance the wheel one tick and act on the entries due.
    pub(super) fn tick(&mut self) {
        let fired = self.conns.tick();
        let now = self.conns.now();
        for e in &fired {
            let Some(slot) = self.conns.live_mut(e.index, e.generation) else {
                continue;
            };
            if slot.deadline > now {
                // Moved since it was set (lazy rescheduling).
                self.conns.reschedule(e.index);
                continue;
            }
            match &mut slot.session {
                Session::Head(h) if h.idle() => {
                    // A persistent connection's wait for its next request.
                    self.conns.close(e.index);
                }
                Session::Proxy(_) | Session::Head(_) | Session::Respond(_) | Session::Body(_) => {
                    tracing::debug!(worker = self.worker, index = e.index, "handshake timeout");
                    if slot.tls.as_ref().is_some_and(|t| t.handshaking()) {
                        self.stats.tls_failure("timeout");
                    } else if slot.session.in_handshake() {
                        self.stats.reject_timeout();
                    }
                    self.conns.close(e.index);
                }
                Session::Events(s) => {
                    if s.closing() {
                        self.conns.close(e.index);
                    } else if s.ends() != 0 && now >= s.ends() {
                        // Its lifetime is over: it ends once its output is
                        // out (and is closed at the next tick if not).
                        s.close();
                        slot.deadline = now + 1;
                        self.conns.reschedule(e.index);
                        self.conns.mark_dirty(e.index);
                    } else {
                        s.keep_alive();
                        slot.deadline = now + self.ticks.ping;
                        if s.ends() != 0 {
                            slot.deadline = slot.deadline.min(s.ends());
                        }
                        self.conns.reschedule(e.index);
                        self.conns.mark_dirty(e.index);
                    }
                }
                Session::H2(h) if !h.session.settled() => {
                    // No preface and SETTINGS within the handshake timeout.
                    tracing::debug!(
                        worker = self.worker,
                        index = e.index,
                        "HTTP/2 handshake timeout"
                    );
                    self.stats.reject_timeout();
                    self.conns.close(e.index);
                }
                Session::H2(h) if h.streams.is_empty() => {
                    // Idle: no stream for the idle timeout.
                    h.session.go_away(ErrorCode::NO_ERROR, "idle");
                    self.conns.mark_dirty(e.index);
                }
                Session::H2(_) => {
                    slot.deadline = now + self.ticks.idle;
                    self.conns.reschedule(e.index);
                }
                Session::WebSocket(ws) => {
                    let again = match ws.expire(now, &self.ticks) {
                        Expiry::Close => None,
                        Expiry::Again(at) => Some(at),
                        Expiry::LifeOver(at) => {
                            self.stats.lifetime_closes.add(1);
                            Some(at)
                        }
                    };
                    match again {
                        None => self.conns.close(e.index),
                        Some(at) => {
                            slot.deadline = at;
                            self.conns.reschedule(e.index);
                            self.conns.mark_dirty(e.index);
                        }
                    }
                }
            }
        }
        self.conns.fired_done(fired);
    }
}
