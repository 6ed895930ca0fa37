//! The worker's connections: their slots, the turn's dirty and closing
//! lists, and the timer wheel their deadlines live on. What acts on a
//! connection (a read, a timer, a delivery) borrows its slot from here and,
//! once done with it, says what the turn must do next: flush it
//! ([`Connections::mark_dirty`]), look at it again by its deadline
//! ([`Connections::reschedule`]) or close it ([`Connections::close`]).
//!
//! A slot's wheel entry moves lazily: a deadline pushed later costs nothing
//! until the old entry comes due ([`Connections::tick`] hands it back to be
//! compared); one brought earlier is inserted again.

use super::session::{Slot, Slots};
use super::timer::{TimerEntry, TimerWheel};

pub(super) struct Connections {
    slots: Slots,
    next_generation: u32,
    /// Slots that queued output this turn (each once: `Slot::dirty`).
    dirty: Vec<u32>,
    /// Slots whose transport closes at the end of the turn.
    to_close: Vec<u32>,
    wheel: TimerWheel,
    fired: Vec<TimerEntry>,
    /// The ping interval in ticks: how often a slot still in its handshake
    /// is looked at (see [`Slot::timer_due`]).
    ping: u64,
}

impl Connections {
    /// An empty table for up to `capacity` connections before it grows.
    pub(super) fn new(capacity: usize, ping_ticks: u64) -> Connections {
        Connections {
            slots: Slots::with_capacity(capacity),
            next_generation: 1,
            dirty: Vec::new(),
            to_close: Vec::new(),
            wheel: TimerWheel::new(),
            fired: Vec::new(),
            ping: ping_ticks,
        }
    }

    /// The wheel's current tick.
    #[inline]
    pub(super) fn now(&self) -> u64 {
        self.wheel.now()
    }

    #[inline]
    pub(super) fn get(&self, index: u32) -> Option<&Slot> {
        self.slots.get(index as usize)?.as_ref()
    }

    #[inline]
    pub(super) fn get_mut(&mut self, index: u32) -> Option<&mut Slot> {
        self.slots.get_mut(index as usize)?.as_mut()
    }

    /// The slot at `index` if it is still the incarnation `generation`.
    #[inline]
    pub(super) fn live_mut(&mut self, index: u32, generation: u32) -> Option<&mut Slot> {
        self.get_mut(index).filter(|s| s.generation == generation)
    }

    /// A stream's slot and its connection's (see [`Slots::stream_and_conn`]).
    pub(super) fn stream_and_conn(&mut self, index: u32) -> Option<(&mut Slot, &mut Slot)> {
        self.slots.stream_and_conn(index)
    }

    /// Every live slot and its index.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &Slot)> {
        self.slots.iter()
    }

    /// A new slot's generation.
    pub(super) fn new_generation(&mut self) -> u32 {
        let g = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        g
    }

    /// Put a new connection's slot at its driver token's index, with its
    /// wheel entry.
    pub(super) fn insert_conn(&mut self, index: u32, slot: Slot) {
        let (generation, due) = (slot.generation, slot.timer_due(self.now(), self.ping));
        self.slots.insert_conn(index as usize, slot);
        self.wheel.insert(index, generation, due);
    }

    /// Put a new HTTP/2 stream's slot in the table, with its wheel entry;
    /// returns its index.
    pub(super) fn insert_stream(&mut self, slot: Slot) -> u32 {
        let (generation, due) = (slot.generation, slot.deadline);
        let index = self.slots.insert_stream(slot);
        self.wheel.insert(index, generation, due);
        index
    }

    /// Remove a slot from the table.
    pub(super) fn take(&mut self, index: u32) -> Option<Slot> {
        self.slots.take(index)
    }

    /// Flush this slot at the end of the turn.
    #[inline]
    /// Some slot waits to be flushed.
    pub(super) fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    pub(super) fn mark_dirty(&mut self, index: u32) {
        if let Some(s) = self.get_mut(index) {
            if !s.dirty {
                s.dirty = true;
                self.dirty.push(index);
            }
        }
    }

    /// Look at this slot again by its deadline (which was just brought
    /// earlier, or set where no entry was).
    pub(super) fn reschedule(&mut self, index: u32) {
        if let Some(s) = self.get(index) {
            let (generation, due) = (s.generation, s.timer_due(self.now(), self.ping));
            self.wheel.insert(index, generation, due);
        }
    }

    /// Set the slot's deadline to tick `at` and look at it again then.
    pub(super) fn set_deadline(&mut self, index: u32, at: u64) {
        if let Some(s) = self.get_mut(index) {
            s.deadline = at;
            self.reschedule(index);
        }
    }

    /// Close this slot's transport at the end of the turn.
    #[inline]
    pub(super) fn close(&mut self, index: u32) {
        self.to_close.push(index);
    }

    /// The next slot to close this turn.
    pub(super) fn next_closing(&mut self) -> Option<u32> {
        self.to_close.pop()
    }

    /// The turn's dirty list, to flush; give it back with
    /// [`Connections::flushed`].
    pub(super) fn take_dirty(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.dirty)
    }

    /// The flushed list back (emptied), to keep its allocation when nothing
    /// was marked meanwhile.
    pub(super) fn flushed(&mut self, mut done: Vec<u32>) {
        done.clear();
        if self.dirty.is_empty() {
            self.dirty = done;
        }
    }

    /// Put slots back on the dirty list (taken, not flushed yet).
    pub(super) fn redirty(&mut self, again: Vec<u32>) {
        if self.dirty.is_empty() {
            self.dirty = again;
        } else {
            self.dirty.extend(again);
        }
    }

    /// Advance the wheel one tick: the entries now due, to be given back
    /// with [`Connections::fired_done`].
    pub(super) fn tick(&mut self) -> Vec<TimerEntry> {
        let mut fired = std::mem::take(&mut self.fired);
        fired.clear();
        self.wheel.tick(&mut fired);
        fired
    }

    pub(super) fn fired_done(&mut self, fired: Vec<TimerEntry>) {
        self.fired = fired;
    }
}
