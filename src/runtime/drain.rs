//! A graceful drain on shutdown: close 1001 to each WebSocket and event
//! stream at a random moment within `--drain-seconds`, so clients do not all
//! reconnect at once. [`Drain`] owns the order and the pace; the core tells
//! each connection to go when the drain says it is due.

use std::time::{Duration, Instant};

/// The connections still to tell, in a random order, and the pace.
pub(super) struct Drain {
    order: Vec<(u32, u32)>,
    next: usize,
    started: Instant,
    spread: Duration,
}

impl Drain {
    /// A drain of `conns` (slot index and generation) over `spread` from
    /// `now`, in a random order.
    pub(super) fn new(mut conns: Vec<(u32, u32)>, now: Instant, spread: Duration) -> Drain {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        conns.shuffle(&mut rand::rngs::StdRng::from_os_rng());
        Drain {
            order: conns,
            next: 0,
            started: now,
            spread,
        }
    }

    /// The connections due by `now` that were not yet handed out.
    pub(super) fn due(&mut self, now: Instant) -> &[(u32, u32)] {
        let elapsed = now.saturating_duration_since(self.started);
        let due = if self.spread.is_zero() || elapsed >= self.spread {
            self.order.len()
        } else {
            (self.order.len() as f64 * elapsed.as_secs_f64() / self.spread.as_secs_f64()) as usize
        };
        let from = self.next;
        self.next = due.max(from);
        &self.order[from..self.next]
    }

    /// Every connection was handed out and the period is over at `now`.
    pub(super) fn done(&self, now: Instant) -> bool {
        self.next == self.order.len() && now.saturating_duration_since(self.started) >= self.spread
    }
}
