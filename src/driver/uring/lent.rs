//! Replies made while a receive's bytes are at hand ([`Reply`]): an echo is
//! copied from the provided buffer it arrived in straight into a send
//! buffer and submitted, instead of being framed into the connection's
//! output (an allocation), flushed at the end of the turn and copied again.

use std::io::{self, IoSlice};

use io_uring::IoUring;
use slab::Slab;

use super::send::SendPools;
use super::{start_send, Sending, Slot};
use crate::driver::Reply;

/// Connection `index`'s send side, lent with one of its receives.
pub(super) struct Lent<'a> {
    pub ring: &'a mut IoUring,
    pub sends: &'a mut SendPools,
    pub slots: &'a mut Slab<Slot>,
    pub index: u32,
}

impl Reply for Lent<'_> {
    /// Copy `parts` into one send buffer and submit it, when the connection
    /// has no send in flight and a buffer is free; 0 otherwise (the caller
    /// queues them, and the send in flight or the buffer wait ends in a
    /// `Writable`, or the next flush finds the connection gone).
    fn reply(&mut self, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        let Some(slot) = self.slots.get_mut(self.index as usize) else {
            return Ok(0);
        };
        if !slot.live()
            || !matches!(slot.sending, Sending::Idle)
            || parts.iter().all(|p| p.is_empty())
        {
            return Ok(0);
        }
        let Some(op) = self.sends.prepare_copy(parts, &self.ring.submitter()) else {
            return Ok(0);
        };
        let taken = op.len as usize;
        start_send(self.ring, self.sends, self.slots, self.index, op)?;
        Ok(taken)
    }
}
