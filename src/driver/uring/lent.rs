//! Replies made while a receive's bytes are at hand ([`Reply`]). A reply
//! that is one run of at least [`KEEP_MIN`] bytes of the receive buffer
//! (an echo whose header the runtime wrote in front of its payload) is sent
//! from there: the buffer stays out of the receive ring until the send
//! completes ([`super::ring::RecvRing::keep`]). Any other reply is copied
//! from wherever it lies into a send buffer and submitted, instead of being
//! framed into the connection's output (an allocation), flushed at the end
//! of the turn and copied again.

use std::io::{self, IoSlice};
use std::ops::Range;

use super::send::{SendKind, SendOp};
use super::slot::{Sender, Sending};
use crate::driver::{offsets_in, Reply};

/// Replies from this many bytes up are sent from the receive buffer: below
/// it the copy costs less than a receive buffer held out of the ring for
/// the send's round trip.
pub(super) const KEEP_MIN: usize = 4096;

/// The receive buffer a completion lent, which a reply may be sent from.
pub(super) struct Received {
    bid: u16,
    /// The buffer's addresses.
    at: Range<usize>,
}

impl Received {
    pub(super) fn new(bid: u16, data: &[u8]) -> Received {
        let r = data.as_ptr_range();
        Received {
            bid,
            at: r.start as usize..r.end as usize,
        }
    }

    /// The send of `part`, when it is one run of this buffer worth sending
    /// from where it lies.
    fn send_of(&self, part: &[u8]) -> Option<SendOp> {
        let at = offsets_in(&self.at, part).filter(|_| part.len() >= KEEP_MIN)?;
        Some(SendOp {
            kind: SendKind::Received {
                bid: self.bid,
                start: at.start as u16,
            },
            offset: 0,
            len: part.len() as u32,
        })
    }
}

/// Connection `index`'s send side, lent with one of its receives.
pub(super) struct Lent<'a> {
    pub tx: Sender<'a>,
    pub index: u32,
    /// The receive buffer, when one more may be kept out of the ring.
    pub received: Option<Received>,
    /// A send from the receive buffer was submitted: the driver keeps the
    /// buffer until it completes.
    pub kept: bool,
}

impl Reply for Lent<'_> {
    /// Send `parts` from the receive buffer (one run of it) or from a copy
    /// in a send buffer, when the connection has no send in flight and a
    /// buffer is free; 0 otherwise (the caller queues them, and the send in
    /// flight or the buffer wait ends in a `Writable`, or the next flush
    /// finds the connection gone).
    fn reply(&mut self, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        let Some(slot) = self.tx.slots.get_mut(self.index as usize) else {
            return Ok(0);
        };
        if !slot.live()
            || !matches!(slot.sending, Sending::Idle)
            || parts.iter().all(|p| p.is_empty())
        {
            return Ok(0);
        }
        let in_place = match (parts, &self.received) {
            ([part], Some(received)) if !self.kept => received.send_of(part),
            _ => None,
        };
        let kept = in_place.is_some();
        let Some(op) =
            in_place.or_else(|| self.tx.sends.prepare_copy(parts, &self.tx.ring.submitter()))
        else {
            return Ok(0);
        };
        let taken = op.len as usize;
        self.tx.start(self.index, op)?;
        self.kept |= kept;
        Ok(taken)
    }
}
