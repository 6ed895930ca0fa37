//! Completions: what each op's CQE does to the driver and its slots, and
//! what it reports to the runtime. A completion whose generation does not
//! match its slot's is stale (the slot was freed and taken again) and is
//! dropped, its receive buffer returned.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use io_uring::cqueue;
use slab::Slab;

use super::accept::Sock;
use super::lent::{Lent, Received};
use super::op::{OpKind, UserData};
use super::send::SendKind;
use super::slot::{Sender, Sending, Slot};
use super::UringDriver;
use crate::driver::{Completion, Token};

impl UringDriver {
    /// Act on one completion (`user_data`, `res`, `flags` as the kernel
    /// gave them), reporting to `sink`.
    pub(super) fn on_cqe(
        &mut self,
        user_data: u64,
        res: i32,
        flags: u32,
        sink: &mut dyn FnMut(Completion<'_>),
    ) {
        let Some(ud) = UserData::decode(user_data) else {
            return;
        };
        let more = cqueue::more(flags);
        tracing::trace!(kind = ?ud.kind, index = ud.index, generation = ud.generation, res, more, "cqe");
        match ud.kind {
            OpKind::Accept => {
                self.on_accept(ud.index as usize, ud.generation as usize, res, more, sink)
            }
            OpKind::Wake => self.on_wake(more, sink),
            OpKind::Cancel => {}
            OpKind::Shutdown => self.on_shutdown(ud),
            OpKind::Recv => self.on_recv(ud, res, flags, more, sink),
            OpKind::Send => self.on_send(ud, res, sink),
        }
    }

    /// Accept `k` of `listener` completed: a new connection, or an error
    /// (a pause when out of descriptors); re-armed when it was the last
    /// completion of its SQE.
    fn on_accept(
        &mut self,
        listener: usize,
        k: usize,
        res: i32,
        more: bool,
        sink: &mut dyn FnMut(Completion<'_>),
    ) {
        if res >= 0 {
            self.accept_pause.succeeded();
            let (sock, peer) = if self.direct {
                let peer = self
                    .accepts
                    .get_mut(listener)
                    .and_then(|a| a.get_mut(k))
                    .and_then(|a| a.peer());
                self.fixed_open += 1;
                (Sock::Fixed(res as u32), peer)
            } else {
                // SAFETY: the kernel just returned this new descriptor to
                // us; nothing else owns it.
                let fd = unsafe { OwnedFd::from_raw_fd(res) };
                let peer = socket2::SockRef::from(&fd)
                    .peer_addr()
                    .ok()
                    .and_then(|a| a.as_socket());
                (Sock::Fd(fd), peer)
            };
            let index = self.insert_slot(sock);
            self.fresh_recvs = true;
            sink(Completion::Accepted(Token(index), peer, listener));
        } else {
            let e = io::Error::from_raw_os_error(-res);
            if !self.accept_pause.failed(&e, self.slots.len()) && res != -libc::ECANCELED {
                tracing::warn!("accept failed: {e}");
            }
        }
        if !more {
            if let Some(slot) = self.accepts.get_mut(listener).and_then(|a| a.get_mut(k)) {
                slot.armed = false;
            }
            if !self.accept_pause.pending() {
                let _ = self.arm_accept(listener);
            }
        }
    }

    fn on_wake(&mut self, more: bool, sink: &mut dyn FnMut(Completion<'_>)) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our eventfd
        // (non-blocking: EAGAIN if already drained is fine).
        unsafe {
            libc::read(
                self.waker.0.as_raw_fd(),
                &mut v as *mut u64 as *mut libc::c_void,
                8,
            )
        };
        sink(Completion::Woken);
        if !more {
            let _ = self.arm_wake();
        }
    }

    /// A half-close completed; a close asked for meanwhile waited for it.
    fn on_shutdown(&mut self, ud: UserData) {
        let Some(slot) = current(&mut self.slots, ud) else {
            return;
        };
        slot.shutting = false;
        if slot.closing() && !slot.send_in_flight() {
            self.close_fd(ud.index);
        }
        self.maybe_free(ud.index);
    }

    /// Bytes, the peer's EOF or an error on the multishot recv.
    fn on_recv(
        &mut self,
        ud: UserData,
        res: i32,
        flags: u32,
        more: bool,
        sink: &mut dyn FnMut(Completion<'_>),
    ) {
        let Some(slot) = current(&mut self.slots, ud) else {
            self.return_buffer(flags);
            return;
        };
        if !more {
            slot.recv_armed = false;
        }
        let token = Token(ud.index);
        let live = slot.live();
        // A paused connection's recv is not armed again (see
        // `pause_reading`); its end is where the cancel leaves it.
        let rearm = live && !slot.paused;
        if res > 0 {
            let mut kept = false;
            if let Some(bid) = cqueue::buffer_select(flags).filter(|_| live) {
                let may_keep = self.recv.may_keep();
                let data = self.recv.data(bid, res as usize);
                let mut lent = Lent {
                    tx: Sender {
                        ring: &mut self.ring,
                        sends: &mut self.sends,
                        slots: &mut self.slots,
                    },
                    index: ud.index,
                    received: may_keep.then(|| Received::new(bid, data)),
                    kept: false,
                };
                sink(Completion::Data(token, data, Some(&mut lent)));
                if lent.kept {
                    self.recv.keep(bid);
                    kept = true;
                }
            }
            if !kept {
                self.return_buffer(flags);
            }
            if !more && rearm {
                let _ = self.arm_recv(ud.index);
            }
        } else if res == -libc::ENOBUFS && live {
            // The ring ran dry; buffers come back (and more go in) at the
            // end of this batch. Re-arm then.
            self.recv.ran_dry();
            if !more && rearm {
                let _ = self.arm_recv(ud.index);
            }
        } else if res == -libc::ECANCELED {
            // Cancelled by a pause (or a close): armed again if it resumed
            // meanwhile.
            self.return_buffer(flags);
            if !more && rearm {
                let _ = self.arm_recv(ud.index);
            }
        } else {
            self.return_buffer(flags);
            if live {
                if let Some(s) = self.slots.get_mut(ud.index as usize) {
                    s.fail();
                }
                sink(Completion::Closed(token));
            }
        }
        self.maybe_free(ud.index);
    }

    /// A send completed, whole, short (the rest is sent from the same
    /// memory) or failed. Its memory goes back to its pool, a half-close
    /// that waited for it is done, a closing slot's socket closed.
    fn on_send(&mut self, ud: UserData, res: i32, sink: &mut dyn FnMut(Completion<'_>)) {
        let Some(slot) = current(&mut self.slots, ud) else {
            return;
        };
        let token = Token(ud.index);
        let live = slot.live();
        let Some((mut op, mut then_shutdown)) = slot.take_send() else {
            return;
        };
        let mut failed = res < 0;
        if res > 0 && !slot.failed() {
            self.sends.advance(&mut op, res as u32);
            if !op.done() {
                // Short write: send the rest from the same memory (also
                // while closing: the last bytes are usually a close frame).
                slot.sending = Sending::InFlight { op, then_shutdown };
                if self.resubmit_send(ud.index).is_ok() {
                    return;
                }
                // The rest could not be queued: the connection fails as if
                // the send had, and the op's memory goes back.
                let Some((o, t)) = self
                    .slots
                    .get_mut(ud.index as usize)
                    .and_then(Slot::take_send)
                else {
                    return;
                };
                (op, then_shutdown, failed) = (o, t, true);
            }
        }
        let Some(slot) = self.slots.get_mut(ud.index as usize) else {
            return;
        };
        let closing = slot.closing();
        if failed {
            slot.fail();
        }
        if then_shutdown {
            self.shutdown_sock(ud.index);
        }
        if let SendKind::Received { bid, .. } = op.kind {
            self.recv.give_back(bid);
        }
        self.sends.release(op.kind);
        let shutting = self
            .slots
            .get(ud.index as usize)
            .is_some_and(|s| s.shutting);
        if closing {
            if !shutting {
                self.close_fd(ud.index);
            }
        } else if failed && live {
            sink(Completion::Closed(token));
        } else if live {
            sink(Completion::Writable(token));
        }
        // A buffer came free: let a waiting connection have it.
        while let Some(w) = self.buffer_waiters.pop_front() {
            if let Some(s) = self.slots.get_mut(w.index()) {
                if matches!(s.sending, Sending::WaitingBuffer) && s.live() {
                    s.sending = Sending::Idle;
                    sink(Completion::Writable(w));
                    break;
                }
            }
        }
        self.maybe_free(ud.index);
    }
}

/// The slot a completion is for, unless it is stale.
fn current(slots: &mut Slab<Slot>, ud: UserData) -> Option<&mut Slot> {
    slots
        .get_mut(ud.index as usize)
        .filter(|s| s.generation == ud.generation)
}
