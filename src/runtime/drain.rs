//! A graceful drain on shutdown: close 1001 to each WebSocket and event
//! stream at a random moment within `--drain-seconds`, so clients do not all
//! reconnect at once.

use std::time::{Duration, Instant};

use crate::proto::CloseCode;

use super::app::App;
use super::core::Core;
use super::session::Session;

/// The connections still to tell, in a random order, and the pace.
pub(super) struct Drain {
    order: Vec<(u32, u32)>,
    next: usize,
    started: Instant,
    spread: Duration,
}

impl<A: App> Core<A> {
    /// Start a drain at `now`: connections still in their handshake or
    /// answering plain HTTP finish on their own; WebSocket and SSE
    /// connections are told to go in a random order over the drain period.
    pub(super) fn begin_drain(&mut self, now: Instant) -> Drain {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let mut order: Vec<(u32, u32)> = self
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
        order.shuffle(&mut rand::rngs::StdRng::from_os_rng());
        Drain {
            order,
            next: 0,
            started: now,
            spread: self.cfg.drain,
        }
    }

    /// Close the share of connections due by `now`; true when all were told
    /// and the period is over.
    pub(super) fn drain_step(&mut self, d: &mut Drain, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(d.started);
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
                return self.mark_dirty(index);
            }
            _ => return,
        }
        // The close handshake gets the shutdown grace (at least a tick).
        let ticks = self.cfg.shutdown_grace.as_secs().max(1);
        slot.deadline = self.wheel.now() + ticks;
        self.wheel.insert(index, generation, slot.deadline);
        self.mark_dirty(index);
    }
}
