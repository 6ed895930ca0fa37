//! A connection's slot: its socket, the ops it has in flight and where its
//! life stands ([`Life`]); and [`Sender`], which puts a slot's send in
//! flight, for the driver and for a receive's [`super::lent::Lent`] alike.
//!
//! A slot's life only moves forward: `Open` → `Failed` (the peer closed or
//! the socket failed, and the runtime was told) → `Closing` (the runtime
//! called `close`), or `Open` → `Closing` directly. Its socket is closed once
//! no send and no half-close is in flight, and the slot freed once no op at
//! all is ([`Slot::inflight`]): memory and descriptors the kernel may still
//! use stay the slot's until their completions arrive.

use std::io;

use io_uring::{squeue, IoUring};
use slab::Slab;

use super::accept::Sock;
use super::op::{OpKind, UserData};
use super::send::{SendOp, SendPools};
use crate::driver::Token;

/// Where a connection's send stands.
#[derive(Debug)]
pub(super) enum Sending {
    /// Nothing in flight.
    Idle,
    /// Every buffer was in flight: waiting in the driver's `buffer_waiters`.
    WaitingBuffer,
    /// One send in flight; `then_shutdown`: a half-close was asked for
    /// meanwhile, done when it completes.
    InFlight { op: SendOp, then_shutdown: bool },
}

/// Where a connection's life stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Life {
    /// Completions are reported to the runtime.
    Open,
    /// The peer closed or the socket failed; `Closed` was reported, and the
    /// runtime has yet to call `close`.
    Failed,
    /// The runtime called `close`: nothing more is reported. `failed`: the
    /// socket had failed before (what is left of a send is not sent).
    Closing { failed: bool },
}

#[derive(Debug)]
pub(super) struct Slot {
    /// The socket; `None` once closed (after the last send and half-close
    /// completed).
    pub fd: Option<Sock>,
    pub generation: u32,
    pub life: Life,
    /// The multishot recv has not sent its last completion.
    pub recv_armed: bool,
    /// The runtime stopped reading it: its recv is cancelled and not armed
    /// again until it resumes.
    pub paused: bool,
    pub sending: Sending,
    /// A `SHUTDOWN` SQE on the fixed slot has not completed. The kernel
    /// always runs it on an io-wq worker, which looks the slot up only then:
    /// the slot must stay ours (not closed and handed to a new accept) until
    /// it completes, or it would half-close the next connection there.
    pub shutting: bool,
}

impl Slot {
    pub(super) fn new(fd: Sock, generation: u32) -> Slot {
        Slot {
            fd: Some(fd),
            generation,
            life: Life::Open,
            recv_armed: false,
            paused: false,
            sending: Sending::Idle,
            shutting: false,
        }
    }

    /// Neither failed nor given up by the runtime: completions are reported.
    pub(super) fn live(&self) -> bool {
        self.life == Life::Open
    }

    /// The socket failed or the peer closed (before or after `close`).
    pub(super) fn failed(&self) -> bool {
        matches!(self.life, Life::Failed | Life::Closing { failed: true })
    }

    pub(super) fn closing(&self) -> bool {
        matches!(self.life, Life::Closing { .. })
    }

    /// The socket failed: report nothing more but `Closed`, which the
    /// caller does. Nothing changes once the runtime closed the slot.
    pub(super) fn fail(&mut self) {
        if self.life == Life::Open {
            self.life = Life::Failed;
        }
    }

    /// The runtime gave the slot up; false when it already had.
    pub(super) fn begin_close(&mut self) -> bool {
        let failed = match self.life {
            Life::Open => false,
            Life::Failed => true,
            Life::Closing { .. } => return false,
        };
        self.life = Life::Closing { failed };
        true
    }

    pub(super) fn send_in_flight(&self) -> bool {
        matches!(self.sending, Sending::InFlight { .. })
    }

    /// Ops submitted and not yet completed: the slot is freed at 0.
    pub(super) fn inflight(&self) -> u32 {
        self.recv_armed as u32 + self.shutting as u32 + self.send_in_flight() as u32
    }

    /// Leave the slot with no send in flight; the one that was (its op, and
    /// whether a half-close waits for it), if any.
    pub(super) fn take_send(&mut self) -> Option<(SendOp, bool)> {
        match std::mem::replace(&mut self.sending, Sending::Idle) {
            Sending::InFlight { op, then_shutdown } => Some((op, then_shutdown)),
            _ => None,
        }
    }
}

/// The slot of a connection that can still send, or the error a send on it
/// returns.
pub(super) fn live_slot(slots: &mut Slab<Slot>, token: Token) -> io::Result<&mut Slot> {
    match slots.get_mut(token.index()) {
        None => Err(io::Error::new(
            io::ErrorKind::NotConnected,
            "unknown connection",
        )),
        Some(slot) if !slot.live() => Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "connection closed",
        )),
        Some(slot) => Ok(slot),
    }
}

/// Queue `sqe`, submitting what is queued when the submission queue is
/// full.
pub(super) fn push(ring: &mut IoUring, sqe: squeue::Entry) -> io::Result<()> {
    loop {
        // SAFETY: every SQE built here references either nothing, a file
        // descriptor that stays open until its completion (connection fds
        // are closed only after cancelling their ops, and the kernel holds
        // its own reference meanwhile), or a send's memory, owned by the
        // slot's `Sending::InFlight` until its completion (see `send`): a
        // registered buffer or a pooled heap buffer off its free list (so
        // neither written nor freed), or a boxed `VecSend` whose iovecs
        // point into its own copies or into owners it holds
        // (`Part::shared`: memory they own and never change or free), or a
        // caller's buffer taken over (`Owned`, dropped on completion), or
        // a provided receive buffer kept out of the buffer ring until the
        // completion (`Received`: neither the kernel nor the driver writes
        // it meanwhile, and the caller that lent it wrote it last before
        // its reply, see `driver::Reply`), or an accept's address buffer in
        // `accepts` (boxed slices kept until after the ring is dropped, not
        // rearmed while armed).
        if unsafe { ring.submission().push(&sqe) }.is_ok() {
            return Ok(());
        }
        // The queue is full: submit it (again, when a signal interrupted).
        match ring.submit() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// What it takes to put a slot's send in flight: the ring, the send pools
/// and the slots, borrowed from the driver.
pub(super) struct Sender<'a> {
    pub ring: &'a mut IoUring,
    pub sends: &'a mut SendPools,
    pub slots: &'a mut Slab<Slot>,
}

impl Sender<'_> {
    /// Submit (what is left of) slot `index`'s send in flight.
    pub(super) fn submit(&mut self, index: u32) -> io::Result<()> {
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return Ok(());
        };
        // A send is started only on a live slot, and its socket is closed
        // only once no send is in flight: a slot without one has nothing
        // to submit to, and the caller gives the op's memory back.
        let Some(sock) = &slot.fd else {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "socket closed"));
        };
        let (fd, fixed) = sock.target();
        let Sending::InFlight { op, .. } = &mut slot.sending else {
            return Ok(());
        };
        let ud = UserData {
            kind: OpKind::Send,
            generation: slot.generation,
            index,
        }
        .encode();
        let sqe = self.sends.sqe(fd, op).flags(fixed).user_data(ud);
        push(self.ring, sqe)
    }

    /// Make `op` slot `index`'s send in flight and submit it. When its SQE
    /// cannot be queued, the slot is left with no send in flight and `op`'s
    /// memory goes back to its pool, so neither a close nor a later send
    /// waits for a completion that will not come.
    pub(super) fn start(&mut self, index: u32, op: SendOp) -> io::Result<()> {
        let Some(slot) = self.slots.get_mut(index as usize) else {
            self.sends.release(op.kind);
            return Ok(());
        };
        slot.sending = Sending::InFlight {
            op,
            then_shutdown: false,
        };
        let queued = self.submit(index);
        if queued.is_err() {
            if let Some((op, _)) = self.slots.get_mut(index as usize).and_then(Slot::take_send) {
                self.sends.release(op.kind);
            }
        }
        queued
    }
}
