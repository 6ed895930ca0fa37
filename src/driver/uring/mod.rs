//! The io_uring backend.
//!
//! One ring per worker, set up with `SINGLE_ISSUER | DEFER_TASKRUN` when the
//! kernel has them (`ring`). The listener runs one multishot accept; every
//! connection runs one multishot recv that takes buffers from a **provided
//! buffer ring** shared by the worker's connections, so an idle connection
//! holds no read buffer. Sends are copied into **registered buffers**
//! (`WRITE_FIXED`), one in flight per connection, so everything a connection
//! queued during a loop turn leaves in one SQE. Sends made mostly of shared
//! bytes ([`Part::shared`]: publication frames) go by reference instead, as a
//! `SENDMSG` over iovecs that holds the owners until the completion
//! (`send`). A receive's completion lends the connection's send side
//! (`lent`): an echo of 4 KiB or more is sent from the receive buffer it
//! arrived in (kept out of the buffer ring until the send completes), a
//! smaller one copied from there straight into a send buffer.
//!
//! `user_data` packs the op kind, the slot's generation and the slot index
//! (`op`); a completion whose generation does not match its slot is stale
//! and dropped (`complete`). A slot is freed only when every op that
//! referenced it has completed (`slot::Slot::inflight`): memory the kernel
//! may touch (the send in flight) is owned by the slot until its completion
//! arrives.

mod accept;
mod complete;
mod lent;
mod op;
mod pages;
mod ring;
mod send;
mod slot;
#[cfg(test)]
mod tests;
mod vecsend;

use std::collections::VecDeque;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use slab::Slab;

use super::{AcceptPause, Completion, Driver, Part, Token, Wake, Waker};
pub use accept::NO_DIRECT_ENV;
use accept::{AcceptSlot, Sock, DIRECT_ACCEPTS};
use op::{OpKind, UserData};
pub use ring::probe;
use ring::{new_ring, RecvRing, RECV_BUFFERS, RECV_GROUP};
use send::SendPools;
use slot::{live_slot, push, Sender, Sending, Slot};

struct EventFd(OwnedFd);

impl Wake for EventFd {
    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd this struct
        // owns; a failed write (counter saturated) still leaves it readable.
        unsafe {
            libc::write(
                self.0.as_raw_fd(),
                &one as *const u64 as *const libc::c_void,
                8,
            )
        };
    }
}

/// Most extra submissions in one turn for the recvs of sockets accepted in
/// it (each may complete more accepts, which arm more recvs).
const FRESH_ROUNDS: usize = 4;

/// How often the buffer pools look at what the last period used and give
/// back the rest ([`RecvRing::trim`], [`SendPools::trim`]): a worker's pool
/// memory follows its traffic, and an idle worker holds almost none.
const TRIM_PERIOD: Duration = Duration::from_secs(1);

/// One worker's io_uring driver.
pub struct UringDriver {
    // Field order matters: the ring is dropped (and its registrations with
    // it) before the buffers it references.
    ring: IoUring,
    recv: RecvRing,
    /// Each listener's accepts (one multishot, or `DIRECT_ACCEPTS`
    /// single-shot ones writing into these buffers): boxed slices, which
    /// never move while the kernel writes into them.
    accepts: Vec<Box<[AcceptSlot]>>,
    /// Accepted sockets go into the ring's fixed file table.
    direct: bool,
    /// The fixed file table's size and its slots in use (accepted and not
    /// yet closed). Accepts are armed only while the table has room for
    /// them: an accept that finds the table full has already taken the
    /// connection off the listener's queue, and the kernel drops it.
    fixed_table: u32,
    fixed_open: u32,
    /// The table full was logged (once per episode).
    fixed_full_logged: bool,
    sends: SendPools,
    slots: Slab<Slot>,
    next_generation: u32,
    /// The listeners, in the order the runtime gave them: a connection's
    /// `Accepted` names its listener by that position.
    listeners: Vec<TcpListener>,
    accept_pause: AcceptPause,
    waker: Arc<EventFd>,
    /// Connections waiting for a free send buffer, in order.
    buffer_waiters: VecDeque<Token>,
    cqes: Vec<(u64, i32, u32)>,
    /// A recv was armed for a socket accepted in this turn.
    fresh_recvs: bool,
    /// When the pools next give back memory the last period did not need.
    next_trim: Instant,
    /// Tests: the next queueing of a short write's rest fails, as when
    /// `io_uring_enter` fails on a full submission queue.
    #[cfg(test)]
    fail_resubmit: bool,
}

impl UringDriver {
    /// A driver serving `listeners`, or only adopted connections when there
    /// are none.
    pub fn new(listeners: Vec<TcpListener>) -> io::Result<Self> {
        let (ring, _) = new_ring()?;
        let fixed_table = match accept::setup_direct(&ring) {
            Ok(size) => {
                tracing::debug!("io_uring: direct descriptors, {size} per worker");
                size
            }
            Err(why) => {
                tracing::info!("io_uring: regular descriptors: {why}");
                0
            }
        };
        let direct = fixed_table > 0;
        let per_listener = if direct { DIRECT_ACCEPTS } else { 1 };
        let recv = RecvRing::new()?;
        // SAFETY: `recv.ring` is a page-aligned ring of RECV_BUFFERS entries
        // owned by this driver and freed only after the ring is dropped.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                recv.ring as u64,
                RECV_BUFFERS,
                RECV_GROUP,
                0,
            )?;
        }
        let sends = SendPools::new(&ring.submitter(), recv.base())?;
        // SAFETY: plain syscall; the result is checked.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `efd` is a new descriptor that nothing else owns.
        let efd = unsafe { OwnedFd::from_raw_fd(efd) };
        for l in &listeners {
            l.set_nonblocking(true)?;
        }
        let mut d = UringDriver {
            ring,
            recv,
            accepts: listeners
                .iter()
                .map(|_| (0..per_listener).map(|_| AcceptSlot::new()).collect())
                .collect(),
            direct,
            fixed_table,
            fixed_open: 0,
            fixed_full_logged: false,
            sends,
            slots: Slab::with_capacity(super::descriptors::table_capacity()),
            next_generation: 1,
            listeners,
            accept_pause: AcceptPause::default(),
            waker: Arc::new(EventFd(efd)),
            buffer_waiters: VecDeque::new(),
            cqes: Vec::with_capacity(1024),
            fresh_recvs: false,
            next_trim: Instant::now() + TRIM_PERIOD,
            #[cfg(test)]
            fail_resubmit: false,
        };
        for i in 0..d.listeners.len() {
            d.arm_accept(i)?;
        }
        d.arm_wake()?;
        Ok(d)
    }

    fn push(&mut self, sqe: squeue::Entry) -> io::Result<()> {
        push(&mut self.ring, sqe)
    }

    /// Arm the listener's accepts that are not armed.
    fn arm_accept(&mut self, listener: usize) -> io::Result<()> {
        let Some(l) = self.listeners.get(listener) else {
            return Ok(());
        };
        let fd = types::Fd(l.as_raw_fd());
        // Fixed-table slots not taken by a connection or an armed accept.
        let armed: usize = self
            .accepts
            .iter()
            .map(|a| a.iter().filter(|s| s.armed).count())
            .sum();
        let mut room = (self.fixed_table as usize).saturating_sub(self.fixed_open as usize + armed);
        let mut sqes = Vec::new();
        for (k, slot) in self.accepts[listener].iter_mut().enumerate() {
            if slot.armed {
                continue;
            }
            if self.direct {
                if room == 0 {
                    if !self.fixed_full_logged {
                        tracing::warn!(
                            "io_uring fixed file table full ({} connections): accepting again when one closes",
                            self.fixed_open
                        );
                        self.fixed_full_logged = true;
                    }
                    break;
                }
                room -= 1;
            }
            let sqe = if self.direct {
                slot.direct_accept(fd)
            } else {
                opcode::AcceptMulti::new(fd)
                    .flags(libc::SOCK_CLOEXEC)
                    .build()
            };
            slot.armed = true;
            sqes.push(sqe.user_data(UserData::accept(OpKind::Accept, listener, k)));
        }
        for sqe in sqes {
            self.push(sqe)?;
        }
        Ok(())
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let sqe = opcode::PollAdd::new(types::Fd(self.waker.0.as_raw_fd()), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(UserData::listener(OpKind::Wake));
        self.push(sqe)
    }

    /// Cancel slot `index`'s multishot recv: it ends with `ECANCELED` (and
    /// without `IORING_CQE_F_MORE`), which clears `recv_armed`.
    fn cancel_recv(&mut self, index: u32) {
        let Some(slot) = self.slots.get(index as usize) else {
            return;
        };
        let target = UserData {
            kind: OpKind::Recv,
            generation: slot.generation,
            index,
        }
        .encode();
        let sqe = opcode::AsyncCancel::new(target).build().user_data(
            UserData {
                kind: OpKind::Cancel,
                generation: 0,
                index,
            }
            .encode(),
        );
        let _ = self.push(sqe);
    }

    fn arm_recv(&mut self, index: u32) -> io::Result<()> {
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return Ok(());
        };
        let Some(sock) = &slot.fd else {
            return Ok(());
        };
        let (fd, fixed) = sock.target();
        let ud = UserData {
            kind: OpKind::Recv,
            generation: slot.generation,
            index,
        }
        .encode();
        let sqe = opcode::RecvMulti::new(fd, RECV_GROUP)
            .build()
            .flags(fixed)
            .user_data(ud);
        push(&mut self.ring, sqe)?;
        slot.recv_armed = true;
        Ok(())
    }

    /// Queue the rest of a short write.
    fn resubmit_send(&mut self, index: u32) -> io::Result<()> {
        #[cfg(test)]
        if std::mem::take(&mut self.fail_resubmit) {
            return Err(io::Error::other("submission failed (test)"));
        }
        self.sender().submit(index)
    }

    /// A slot for a connected socket, with its multishot recv armed.
    fn insert_slot(&mut self, fd: Sock) -> u32 {
        let generation = self.next_generation;
        self.next_generation = (self.next_generation + 1) & 0xff_ffff;
        let index = self.slots.insert(Slot::new(fd, generation)) as u32;
        if let Err(e) = self.arm_recv(index) {
            tracing::warn!("cannot arm recv: {e}");
        }
        index
    }

    /// Close a closing slot's socket; ops the kernel already holds keep
    /// their own reference to it.
    ///
    /// A descriptor: pending SQEs are submitted first so none of them can
    /// name a descriptor number that gets reused. A fixed slot: closed by an
    /// SQE queued after every SQE that names it, so the slot is free for a
    /// new accept only after them. Recv and send look the slot up when
    /// submitted, in order; a shutdown looks it up later, on an io-wq
    /// worker, so a close waits for its completion (`Slot::shutting`).
    fn close_fd(&mut self, index: u32) {
        let Some(sock) = self.slots.get_mut(index as usize).and_then(|s| s.fd.take()) else {
            return;
        };
        match sock {
            Sock::Fd(fd) => {
                let _ = self.ring.submit();
                drop(fd);
            }
            Sock::Fixed(i) => {
                let sqe = opcode::Close::new(types::Fixed(i))
                    .build()
                    .user_data(UserData::listener(OpKind::Cancel));
                if let Err(e) = self.push(sqe) {
                    tracing::warn!("cannot close fixed file {i}: {e}");
                }
                // Free once that SQE runs, before any accept submitted after
                // it.
                self.fixed_open -= 1;
                self.fixed_full_logged = false;
            }
        }
    }

    /// Half-close the slot's socket (FIN after what was sent). Errors (the
    /// peer already gone) are moot.
    fn shutdown_sock(&mut self, index: u32) {
        let Some(slot) = self.slots.get(index as usize) else {
            return;
        };
        let Some(sock) = slot.fd.as_ref() else {
            return;
        };
        match sock {
            Sock::Fd(fd) => {
                let _ = socket2::SockRef::from(fd).shutdown(std::net::Shutdown::Write);
            }
            Sock::Fixed(i) => {
                let sqe = opcode::Shutdown::new(types::Fixed(*i), libc::SHUT_WR)
                    .build()
                    .user_data(
                        UserData {
                            kind: OpKind::Shutdown,
                            generation: slot.generation,
                            index,
                        }
                        .encode(),
                    );
                if self.push(sqe).is_ok() {
                    if let Some(slot) = self.slots.get_mut(index as usize) {
                        slot.shutting = true;
                    }
                }
            }
        }
    }

    /// Free the slot when nothing references it any more.
    fn maybe_free(&mut self, index: u32) {
        if let Some(s) = self.slots.get(index as usize) {
            if s.closing() && s.inflight() == 0 {
                self.close_fd(index);
                self.slots.remove(index as usize);
            }
        }
    }

    /// Trim the pools once a period (between turns, as `RecvRing::trim`
    /// needs), and bound the wait so an idle worker still trims what its
    /// last traffic left resident; with nothing left to trim it waits as
    /// long as the runtime asks.
    fn trim_when_due(&mut self, timeout: Option<Duration>) -> Option<Duration> {
        let now = Instant::now();
        if !self.recv.can_trim() && !self.sends.can_trim() {
            self.next_trim = now + TRIM_PERIOD;
            return timeout;
        }
        if now >= self.next_trim {
            self.recv.trim();
            self.sends.trim(&self.ring.submitter());
            self.next_trim = now + TRIM_PERIOD;
        }
        let until = self.next_trim.saturating_duration_since(now);
        Some(timeout.map_or(until, |t| t.min(until)))
    }

    fn return_buffer(&mut self, flags: u32) {
        if let Some(bid) = cqueue::buffer_select(flags) {
            self.recv.recycle(bid);
        }
    }

    /// The driver's send side, for starting and submitting sends.
    fn sender(&mut self) -> Sender<'_> {
        Sender {
            ring: &mut self.ring,
            sends: &mut self.sends,
            slots: &mut self.slots,
        }
    }
}

impl Driver for UringDriver {
    fn turn(
        &mut self,
        timeout: Option<Duration>,
        sink: &mut dyn FnMut(Completion<'_>),
    ) -> io::Result<()> {
        // After a pause, or (direct descriptors) once the fixed table has
        // room again: arm what is not armed.
        if (self.accept_pause.pending() && !self.accept_pause.active())
            || (self.direct && !self.accept_pause.pending())
        {
            for i in 0..self.listeners.len() {
                self.arm_accept(i)?;
            }
        }
        let timeout = self.trim_when_due(self.accept_pause.bound(timeout));
        // With DEFER_TASKRUN, completions (receives in particular) are only
        // produced by an enter that asks for events: every turn asks, with a
        // zero wait when completions are already queued. Submitting alone
        // would let inline send completions starve the receives.
        let wait = if self.ring.completion().is_empty() {
            timeout
        } else {
            Some(Duration::ZERO)
        };
        let waited = match wait {
            Some(t) => {
                let ts = types::Timespec::new()
                    .sec(t.as_secs())
                    .nsec(t.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submit_and_wait(1),
        };
        match waited {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        let mut cqes = std::mem::take(&mut self.cqes);
        let mut rounds = 0;
        loop {
            if self.fresh_recvs && rounds < FRESH_ROUNDS {
                // Sockets accepted in this batch came with their first
                // bytes (TCP_DEFER_ACCEPT): submitting their recvs now
                // completes them at once, so the request is read, and its
                // answer queued, in this turn rather than the next.
                self.fresh_recvs = false;
                rounds += 1;
                // Should it fail, the next turn's enter submits them.
                let _ = self.ring.submit();
            }
            cqes.clear();
            cqes.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            if cqes.is_empty() {
                break;
            }
            for &(ud, res, flags) in &cqes {
                self.on_cqe(ud, res, flags, sink);
            }
            self.recv.end_batch();
        }
        self.cqes = cqes;
        Ok(())
    }

    fn send(&mut self, token: Token, data: &[u8]) -> io::Result<usize> {
        self.send_vectored(token, &[Part::borrowed(data)])
    }

    fn send_owned(&mut self, token: Token, buf: &mut Vec<u8>, from: usize) -> io::Result<usize> {
        let rest = buf.len().saturating_sub(from);
        let take_over = rest > 0
            && buf.len() <= send::OWNED_MAX
            && (rest >= send::OWNED_MIN || !self.sends.registered_free());
        if !take_over {
            return match buf.get(from..) {
                Some(rest) => self.send(token, rest),
                None => Ok(0),
            };
        }
        let slot = live_slot(&mut self.slots, token)?;
        if slot.send_in_flight() {
            return Ok(0);
        }
        let op = self.sends.prepare_owned(buf, from);
        self.sender().start(token.0, op)?;
        Ok(rest)
    }

    fn send_backlog(&self) -> usize {
        self.sends.owned_bytes()
    }

    fn spare_buffer(&mut self) -> Vec<u8> {
        self.sends.take_spare()
    }

    fn send_ready(&self, token: Token) -> bool {
        self.slots
            .get(token.index())
            .is_some_and(|s| matches!(s.sending, Sending::Idle))
    }

    fn send_vectored(&mut self, token: Token, parts: &[Part<'_>]) -> io::Result<usize> {
        let slot = live_slot(&mut self.slots, token)?;
        if slot.send_in_flight() || parts.iter().all(|p| p.bytes().is_empty()) {
            return Ok(0);
        }
        let Some(op) = self.sends.prepare(parts, &self.ring.submitter()) else {
            if !matches!(slot.sending, Sending::WaitingBuffer) {
                slot.sending = Sending::WaitingBuffer;
                self.buffer_waiters.push_back(token);
            }
            return Ok(0);
        };
        let n = op.len as usize;
        self.sender().start(token.0, op)?;
        Ok(n)
    }

    fn adopt(&mut self, stream: std::net::TcpStream) -> io::Result<Token> {
        stream.set_nodelay(true)?;
        Ok(Token(self.insert_slot(Sock::Fd(OwnedFd::from(stream)))))
    }

    fn shutdown_write(&mut self, token: Token) {
        let Some(slot) = self.slots.get_mut(token.index()) else {
            return;
        };
        if slot.closing() || slot.fd.is_none() {
            return;
        }
        match &mut slot.sending {
            Sending::InFlight { then_shutdown, .. } => *then_shutdown = true,
            _ => self.shutdown_sock(token.0),
        }
    }

    fn pause_reading(&mut self, token: Token, paused: bool) {
        let index = token.0;
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return;
        };
        if !slot.live() || slot.paused == paused {
            return;
        }
        slot.paused = paused;
        if paused && slot.recv_armed {
            self.cancel_recv(index);
        } else if !paused && !slot.recv_armed {
            let _ = self.arm_recv(index);
        }
    }

    fn close(&mut self, token: Token) {
        let index = token.0;
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return;
        };
        if !slot.begin_close() {
            return;
        }
        if matches!(slot.sending, Sending::WaitingBuffer) {
            slot.sending = Sending::Idle;
        }
        let busy = slot.send_in_flight() || slot.shutting;
        if slot.recv_armed {
            self.cancel_recv(index);
        }
        // A send still in flight finishes first (the close frame must reach
        // the peer), and a half-close too; the socket is closed when they
        // complete.
        if !busy {
            self.close_fd(index);
        }
        self.maybe_free(index);
    }

    fn stop_accepting(&mut self) {
        let listeners = std::mem::take(&mut self.listeners);
        for (i, l) in listeners.into_iter().enumerate() {
            let armed: Vec<usize> = self.accepts[i]
                .iter()
                .enumerate()
                .filter(|(_, a)| a.armed)
                .map(|(k, _)| k)
                .collect();
            for k in armed {
                let sqe = opcode::AsyncCancel::new(UserData::accept(OpKind::Accept, i, k))
                    .build()
                    .user_data(UserData::listener(OpKind::Cancel));
                let _ = self.push(sqe);
            }
            let _ = self.ring.submit();
            // A cancelled accept holds its own reference to the listener
            // until it completes, and its address buffer stays in
            // `accepts` until the driver (after the ring) is dropped.
            drop(l);
        }
        self.accept_pause.clear();
    }

    fn waker(&self) -> Waker {
        self.waker.clone()
    }
}
