//! A coarse hashed timer wheel: one-second ticks, no timer per connection in
//! the kernel, nothing moved on activity.
//!
//! Each connection has at most one entry. Activity only updates the
//! connection's own deadline; when an entry comes due, the runtime compares it
//! with the connection's current deadline and re-inserts it if it moved
//! (lazy rescheduling), so a busy connection costs nothing per message.

/// Ticks per wheel revolution.
const SLOTS: usize = 64;

/// An entry: the connection index and the generation it was set for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerEntry {
    /// Slab index.
    pub index: u32,
    /// Which incarnation of the slot set it.
    pub generation: u32,
    /// Absolute tick when it is due. Ticks are seconds: 32 bits last 136
    /// years and keep an entry (one per connection) at 12 bytes; a later
    /// tick counts as the last one.
    pub due: u32,
}

/// The wheel.
#[derive(Debug)]
pub struct TimerWheel {
    slots: Vec<Vec<TimerEntry>>,
    now: u64,
}

impl Default for TimerWheel {
    fn default() -> Self {
        Self::new()
    }
}

impl TimerWheel {
    /// An empty wheel at tick 0.
    pub fn new() -> Self {
        TimerWheel {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            now: 0,
        }
    }

    /// The current tick.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Schedule `index` (generation `generation`) at tick `due` (at least the
    /// next tick).
    pub fn insert(&mut self, index: u32, generation: u32, due: u64) {
        let due = due.max(self.now + 1);
        self.slots[(due % SLOTS as u64) as usize].push(TimerEntry {
            index,
            generation,
            due: u32::try_from(due).unwrap_or(u32::MAX),
        });
    }

    /// Advance one tick; returns the entries now due into `out`. Entries for
    /// later revolutions stay.
    pub fn tick(&mut self, out: &mut Vec<TimerEntry>) {
        self.now += 1;
        let now = self.now;
        let slot = &mut self.slots[(now % SLOTS as u64) as usize];
        let mut i = 0;
        while i < slot.len() {
            if slot[i].due as u64 <= now {
                out.push(slot.swap_remove(i));
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_the_due_tick_across_revolutions() {
        let mut w = TimerWheel::new();
        w.insert(1, 0, 3);
        w.insert(2, 0, 3 + SLOTS as u64);
        w.insert(3, 0, 0); // in the past: next tick
        let mut fired = Vec::new();
        let mut at = Vec::new();
        for _ in 0..(SLOTS as u64 + 5) {
            fired.clear();
            w.tick(&mut fired);
            for e in &fired {
                at.push((e.index, w.now()));
            }
        }
        assert_eq!(at, vec![(3, 1), (1, 3), (2, 3 + SLOTS as u64)]);
    }
}
