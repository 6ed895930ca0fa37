//! Time as the loop sees it: where a worker's clock starts, and wall-clock
//! moments (a token's expiry) turned into timer-wheel ticks. No clock is
//! read here: the worker reads it and passes it in.

use std::time::{Instant, SystemTime};

/// Where a worker's clock starts: tick 0 of its timer wheel, and the wall
/// clock at that moment (what a token's `exp` is compared with, as
/// `wall + (now - at)`: no second clock is read).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epoch {
    pub at: Instant,
    pub wall: SystemTime,
}

impl Epoch {
    /// The wall clock at `now` (computed, not read).
    pub(crate) fn wall_at(&self, now: Instant) -> SystemTime {
        self.wall + now.saturating_duration_since(self.at)
    }
}

/// The tick by which the wall clock reads `at`, at tick `now` and wall
/// clock `wall`: the time left rounded up to whole ticks, and one more (the
/// current tick began up to a second ago), so nothing ends before its
/// moment.
pub(super) fn tick_at(now: u64, wall: SystemTime, at: SystemTime) -> u64 {
    let left = at.duration_since(wall).unwrap_or_default();
    now + left.as_secs() + u64::from(left.subsec_nanos() > 0) + 1
}

#[cfg(test)]
mod tests {
    use super::tick_at;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn a_moment_becomes_the_first_tick_not_before_it() {
        let wall = UNIX_EPOCH + Duration::from_secs(1000);
        let at = |s: f64| wall + Duration::from_secs_f64(s);
        assert_eq!(
            tick_at(5, wall, at(3.0)),
            9,
            "3 s: three ticks and the current one"
        );
        assert_eq!(tick_at(5, wall, at(2.5)), 9, "rounded up");
        assert_eq!(tick_at(5, wall, at(0.0)), 6, "now: the next tick");
        assert_eq!(
            tick_at(5, wall, wall - Duration::from_secs(9)),
            6,
            "past: the next tick"
        );
    }
}
