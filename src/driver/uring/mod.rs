//! The io_uring backend.
//!
//! One ring per worker, set up with `SINGLE_ISSUER | DEFER_TASKRUN` when the
//! kernel has them. The listener runs one multishot accept; every connection
//! runs one multishot recv that takes buffers from a **provided buffer ring**
//! shared by the worker's connections, so an idle connection holds no read
//! buffer. Sends are copied into **registered buffers** (`WRITE_FIXED`), one in
//! flight per connection, so everything a connection queued during a loop turn
//! leaves in one SQE. Sends made mostly of shared bytes ([`Part::shared`]:
//! publication frames) go by reference instead, as a `SENDMSG` over iovecs
//! (`VecSend`) that holds the owners until the completion.
//!
//! `user_data` packs the op kind, the slot's generation and the slot index
//! ([`UserData`]); a completion whose generation does not match its slot is
//! stale and dropped. A slot is freed only when every op that referenced it has
//! completed (`inflight == 0`): memory the kernel may touch (the registered
//! send buffer) is owned by the driver until its completion arrives.

use std::alloc::{self, Layout};
use std::collections::VecDeque;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};
use slab::Slab;

use super::{AcceptPause, Completion, Driver, Part, Token, Wake, Waker};

/// Submission queue entries.
const RING_ENTRIES: u32 = 4096;
/// Completion queue entries (multishot recv can post many per turn).
const CQ_ENTRIES: u32 = 16384;
/// Provided receive buffers: count (a power of two) and size.
const RECV_BUFFERS: u16 = 512;
const RECV_BUFFER_SIZE: usize = 16 * 1024;
/// Buffer group id of the receive ring.
const RECV_GROUP: u16 = 0;
/// Registered send buffers: count and size.
const SEND_BUFFERS: usize = 256;
const SEND_BUFFER_SIZE: usize = 64 * 1024;
/// When every registered buffer is in flight (fan-out to thousands of
/// connections at once), sends are copied into pooled heap buffers instead,
/// at most this many bytes each, so a turn never waits for buffers to come
/// back. Each is allocated at full size once; on return it keeps its
/// allocation while at most `HEAP_KEEP` of them do (32 MiB), so a burst does
/// not pin memory for good.
const HEAP_SEND_MAX: usize = 32 * 1024;
const HEAP_KEEP: usize = 1024;
/// Send buffer ids: registered buffers first, heap buffers after.
const MAX_HEAP_SENDS: usize = u16::MAX as usize - SEND_BUFFERS;
/// The send id of a [`VecSend`] (no buffer id: above every heap id).
const VEC_SEND: u16 = u16::MAX;
/// A send whose shared parts ([`Part::shared`]) come to this many bytes goes
/// out as a [`VecSend`], referencing them; below it, copying is cheaper than
/// taking references.
const ZERO_COPY_MIN: usize = 4096;
/// Idle `VecSend`s kept for reuse.
const VEC_SEND_KEEP: usize = 1024;
/// A `VecSend` keeps a copy area up to this size when it is recycled.
const VEC_COPY_KEEP: usize = 16 * 1024;
/// Most bytes a `VecSend` copies (a connection's own output can be large).
const VEC_COPY_MAX: usize = SEND_BUFFER_SIZE;
/// Most bytes in one `VecSend` (its length must fit `SendOp`'s u32).
const VEC_SEND_MAX: usize = 1 << 30;
/// Most iovecs in one `SENDMSG` (Linux's `UIO_MAXIOV`).
const MAX_IOVECS: usize = 1024;

/// A zeroed buffer with every page touched, so the pools' memory is resident
/// from the start: RSS then measures connections and queued data, not which
/// pool pages traffic happened to reach first.
fn resident_buffer(len: usize) -> Box<[u8]> {
    let mut buf = vec![0u8; len].into_boxed_slice();
    for b in buf.iter_mut().step_by(4096) {
        // black_box: a store of zero into calloc'ed memory may be elided.
        *b = std::hint::black_box(0);
    }
    buf
}

/// Operation kinds in `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum OpKind {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Cancel = 4,
    Wake = 5,
}

/// `user_data` layout: kind (8 bits) | generation (24 bits) | index (32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UserData {
    kind: OpKind,
    generation: u32,
    index: u32,
}

impl UserData {
    fn encode(self) -> u64 {
        (self.kind as u64) << 56 | ((self.generation & 0xff_ffff) as u64) << 32 | self.index as u64
    }

    fn decode(v: u64) -> Option<UserData> {
        let kind = match (v >> 56) as u8 {
            1 => OpKind::Accept,
            2 => OpKind::Recv,
            3 => OpKind::Send,
            4 => OpKind::Cancel,
            5 => OpKind::Wake,
            _ => return None,
        };
        Some(UserData {
            kind,
            generation: ((v >> 32) & 0xff_ffff) as u32,
            index: v as u32,
        })
    }

    fn listener(kind: OpKind) -> u64 {
        UserData {
            kind,
            generation: 0,
            index: 0,
        }
        .encode()
    }
}

/// A send in flight: which registered buffer, and how much of it is left.
#[derive(Debug, Clone, Copy)]
struct SendOp {
    buf: u16,
    offset: u32,
    len: u32,
}

/// A send straight from the caller's shared buffers (`SENDMSG` over
/// iovecs), for publications queued to many connections at once: the parts
/// with an owner are referenced where they lie, and the owners held until the
/// completion; the other parts are copied into `copied`. Boxed, so `msg` and
/// `iov` stay put while the kernel may read them.
struct VecSend {
    msg: libc::msghdr,
    iov: Vec<libc::iovec>,
    /// First iovec with bytes left to send (after short writes).
    first: usize,
    /// The parts without an owner, back to back; `iov` points into it.
    copied: Vec<u8>,
    /// The owners of the other parts.
    keep: Vec<Arc<dyn Send + Sync>>,
}

impl VecSend {
    fn new() -> Box<VecSend> {
        Box::new(VecSend {
            // SAFETY: msghdr is plain data (pointers and integers); all zeroes
            // is its "no name, no control data" value.
            msg: unsafe { std::mem::zeroed() },
            iov: Vec::new(),
            first: 0,
            copied: Vec::new(),
            keep: Vec::new(),
        })
    }

    /// Lay out `parts`, in order, up to `VEC_COPY_MAX` copied bytes and
    /// `VEC_SEND_MAX` in all (a part past either is cut, and nothing after
    /// it is taken); returns the bytes to send.
    fn fill(&mut self, parts: &[Part<'_>]) -> usize {
        let copy_len: usize = parts
            .iter()
            .filter(|p| p.owner().is_none())
            .map(|p| p.bytes().len())
            .sum();
        // Reserved up front: `copied` must not reallocate once iovecs point
        // into it.
        self.copied.reserve_exact(copy_len.min(VEC_COPY_MAX));
        let mut n = 0;
        for part in parts
            .iter()
            .filter(|p| !p.bytes().is_empty())
            .take(MAX_IOVECS)
        {
            let mut bytes = part.bytes();
            let room = match part.owner() {
                Some(_) => VEC_SEND_MAX - n,
                None => (VEC_SEND_MAX - n).min(VEC_COPY_MAX - self.copied.len()),
            };
            let cut = bytes.len() > room;
            bytes = &bytes[..bytes.len().min(room)];
            if bytes.is_empty() {
                break;
            }
            let base = match part.owner() {
                Some(owner) => {
                    self.keep.push(owner.keep());
                    bytes.as_ptr()
                }
                None => {
                    let at = self.copied.len();
                    self.copied.extend_from_slice(bytes);
                    self.copied[at..].as_ptr()
                }
            };
            self.iov.push(libc::iovec {
                iov_base: base as *mut libc::c_void,
                iov_len: bytes.len(),
            });
            n += bytes.len();
            if cut {
                break;
            }
        }
        n
    }

    /// `n` more bytes went out: skip them in the iovecs.
    fn advance(&mut self, mut n: usize) {
        while n > 0 && self.first < self.iov.len() {
            let v = &mut self.iov[self.first];
            if n < v.iov_len {
                v.iov_base = v.iov_base.wrapping_byte_add(n);
                v.iov_len -= n;
                return;
            }
            n -= v.iov_len;
            self.first += 1;
        }
    }

    /// Point `msg` at the iovecs left to send.
    fn msghdr(&mut self) -> *const libc::msghdr {
        self.msg.msg_iov = self.iov[self.first..].as_mut_ptr();
        self.msg.msg_iovlen = self.iov.len() - self.first;
        &self.msg
    }

    /// Done: drop the references and copies, keep the allocations.
    fn clear(&mut self) {
        self.keep.clear();
        self.iov.clear();
        self.first = 0;
        self.copied.clear();
        if self.copied.capacity() > VEC_COPY_KEEP {
            self.copied = Vec::new();
        }
    }
}

impl std::fmt::Debug for VecSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VecSend")
            .field("iovecs", &self.iov.len())
            .field("first", &self.first)
            .field("copied", &self.copied.len())
            .field("kept", &self.keep.len())
            .finish()
    }
}

#[derive(Debug)]
struct Slot {
    fd: RawFd,
    generation: u32,
    /// Ops submitted and not yet completed.
    inflight: u32,
    recv_armed: bool,
    send: Option<SendOp>,
    /// The iovecs and held owners of a send with id `VEC_SEND`.
    vsend: Option<Box<VecSend>>,
    /// Waiting for a free send buffer.
    wants_buffer: bool,
    /// Peer closed or the socket failed; `Closed` already reported.
    dead: bool,
    /// The runtime called `close`: report nothing more, free when idle.
    closing: bool,
    /// Our descriptor is still open (closed after the last send completes).
    fd_open: bool,
    /// Half-close requested while a send was in flight: done when it
    /// completes.
    shutdown_pending: bool,
}

/// The provided buffer ring: page-aligned ring of `RECV_BUFFERS` entries
/// plus the buffers themselves.
struct RecvRing {
    ring: *mut types::BufRingEntry,
    ring_layout: Layout,
    buffers: Box<[u8]>,
    tail: u16,
}

impl RecvRing {
    fn new() -> io::Result<Self> {
        let ring_layout = Layout::from_size_align(
            RECV_BUFFERS as usize * std::mem::size_of::<types::BufRingEntry>(),
            4096,
        )
        .map_err(|e| io::Error::other(e.to_string()))?;
        // SAFETY: the layout has a non-zero size.
        let ring = unsafe { alloc::alloc_zeroed(ring_layout) } as *mut types::BufRingEntry;
        if ring.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "buffer ring allocation failed",
            ));
        }
        let mut r = RecvRing {
            ring,
            ring_layout,
            buffers: resident_buffer(RECV_BUFFERS as usize * RECV_BUFFER_SIZE),
            tail: 0,
        };
        for bid in 0..RECV_BUFFERS {
            r.push(bid);
        }
        r.publish();
        Ok(r)
    }

    /// Put buffer `bid` back at the tail (visible after `publish`).
    fn push(&mut self, bid: u16) {
        let slot = self.tail & (RECV_BUFFERS - 1);
        let addr = self.buffers.as_ptr() as u64 + bid as u64 * RECV_BUFFER_SIZE as u64;
        // SAFETY: `slot < RECV_BUFFERS`, so the entry lies inside the ring
        // allocation; the kernel only reads entries between head and the
        // published tail, and this one is past the published tail.
        let entry = unsafe { &mut *self.ring.add(slot as usize) };
        entry.set_addr(addr);
        entry.set_len(RECV_BUFFER_SIZE as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Make pushed buffers visible to the kernel.
    fn publish(&self) {
        // SAFETY: `ring` is the page-aligned base of an initialised ring, as
        // `BufRingEntry::tail` requires; the tail field is a u16 the kernel
        // reads atomically, so it is written through an AtomicU16 with release
        // ordering after the entries.
        unsafe {
            let tail = types::BufRingEntry::tail(self.ring) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// The bytes the kernel wrote into buffer `bid`.
    fn data(&mut self, bid: u16, len: usize) -> &mut [u8] {
        let start = bid as usize * RECV_BUFFER_SIZE;
        &mut self.buffers[start..start + len.min(RECV_BUFFER_SIZE)]
    }
}

impl Drop for RecvRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the ring (and with it
        // the kernel's registration) is dropped before this field, see
        // `UringDriver`'s field order.
        unsafe { alloc::dealloc(self.ring as *mut u8, self.ring_layout) }
    }
}

/// What the probe found, or why io_uring cannot be used.
pub fn probe() -> io::Result<String> {
    let (ring, flags) = new_ring()?;
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    for (code, name) in [
        (opcode::Accept::CODE, "ACCEPT"),
        (opcode::Recv::CODE, "RECV"),
        (opcode::WriteFixed::CODE, "WRITE_FIXED"),
        (opcode::Send::CODE, "SEND"),
        (opcode::PollAdd::CODE, "POLL_ADD"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
    ] {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("opcode {name} missing"),
            ));
        }
    }
    let ring_buf = RecvRing::new()?;
    // SAFETY: `ring_buf.ring` is a page-aligned allocation of RECV_BUFFERS
    // entries that outlives the registration (unregistered just below).
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(ring_buf.ring as u64, RECV_BUFFERS, RECV_GROUP, 0)
            .map_err(|e| io::Error::new(e.kind(), format!("provided buffer ring: {e}")))?;
    }
    ring.submitter().unregister_buf_ring(RECV_GROUP)?;
    Ok(format!(
        "io_uring ({flags}; multishot accept and recv, provided buffer ring, registered send buffers)"
    ))
}

fn new_ring() -> io::Result<(IoUring, &'static str)> {
    let mut b = IoUring::builder();
    b.setup_cqsize(CQ_ENTRIES)
        .setup_single_issuer()
        .setup_defer_taskrun();
    if let Ok(r) = b.build(RING_ENTRIES) {
        return Ok((r, "SINGLE_ISSUER|DEFER_TASKRUN"));
    }
    let mut b = IoUring::builder();
    b.setup_cqsize(CQ_ENTRIES);
    Ok((b.build(RING_ENTRIES)?, "default setup"))
}

fn shutdown_write(fd: RawFd) {
    // SAFETY: plain syscall on a descriptor this driver owns and has not
    // closed (callers check `fd_open`); errors (peer already gone) are moot.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

struct EventFd(RawFd);

impl Wake for EventFd {
    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd this struct
        // owns; a failed write (counter saturated) still leaves it readable.
        unsafe { libc::write(self.0, &one as *const u64 as *const libc::c_void, 8) };
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: the fd was created by `eventfd` in `UringDriver::new` and is
        // closed only here.
        unsafe { libc::close(self.0) };
    }
}

/// One worker's io_uring driver.
pub struct UringDriver {
    // Field order matters: the ring is dropped (and its registrations with
    // it) before the buffers it references.
    ring: IoUring,
    recv: RecvRing,
    send_buffers: Box<[u8]>,
    free_send: Vec<u16>,
    /// Heap send buffers (id `SEND_BUFFERS + i`); a buffer in flight is never
    /// touched (its contents stay put even if this vector reallocates).
    heap_sends: Vec<Vec<u8>>,
    free_heap: Vec<u16>,
    /// Heap send buffers holding an allocation (in flight or pooled).
    heap_allocated: usize,
    /// Idle `VecSend`s, boxed already: each moves into a slot, where it
    /// must not move while the kernel reads it.
    #[allow(clippy::vec_box)]
    free_vec: Vec<Box<VecSend>>,
    slots: Slab<Slot>,
    next_generation: u32,
    listener: Option<TcpListener>,
    accept_armed: bool,
    accept_pause: AcceptPause,
    waker: Arc<EventFd>,
    /// Connections waiting for a free send buffer, in order.
    buffer_waiters: VecDeque<Token>,
    cqes: Vec<(u64, i32, u32)>,
    /// Buffers returned this turn, published together.
    returned: bool,
}

impl UringDriver {
    /// A driver serving `listener`, or only adopted connections when there
    /// is none.
    pub fn new(listener: Option<TcpListener>) -> io::Result<Self> {
        let (ring, _) = new_ring()?;
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
        let send_buffers = resident_buffer(SEND_BUFFERS * SEND_BUFFER_SIZE);
        let iovecs: Vec<libc::iovec> = (0..SEND_BUFFERS)
            .map(|i| libc::iovec {
                iov_base: send_buffers[i * SEND_BUFFER_SIZE..].as_ptr() as *mut libc::c_void,
                iov_len: SEND_BUFFER_SIZE,
            })
            .collect();
        // SAFETY: the iovecs point into `send_buffers`, a heap allocation this
        // driver owns, never moves (boxed slice) and frees only after the ring
        // (and so the registration) is dropped.
        unsafe { ring.submitter().register_buffers(&iovecs)? };
        // SAFETY: plain syscall; the result is checked.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        if let Some(l) = &listener {
            l.set_nonblocking(true)?;
        }
        let mut d = UringDriver {
            ring,
            recv,
            send_buffers,
            free_send: (0..SEND_BUFFERS as u16).rev().collect(),
            heap_sends: Vec::new(),
            free_heap: Vec::new(),
            heap_allocated: 0,
            free_vec: Vec::new(),
            slots: Slab::new(),
            next_generation: 1,
            listener,
            accept_armed: false,
            accept_pause: AcceptPause::default(),
            waker: Arc::new(EventFd(efd)),
            buffer_waiters: VecDeque::new(),
            cqes: Vec::with_capacity(1024),
            returned: false,
        };
        d.arm_accept()?;
        d.arm_wake()?;
        Ok(d)
    }

    fn push(&mut self, sqe: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every SQE built here references either nothing, a file
            // descriptor that stays open until its completion (connection fds
            // are closed only after cancelling their ops, and the kernel holds
            // its own reference meanwhile), or a send buffer owned by `self`
            // and reserved for this op until its completion: a registered one,
            // or a pooled heap buffer whose id is off the free list (so it is
            // neither written nor freed) until the completion returns it, or
            // a slot's boxed `VecSend`, which stays in the slot until the
            // completion and whose iovecs point into its own `copied` bytes
            // (not touched until then) or into owners it holds until then
            // (`Part::shared`: memory they own and never change or free).
            if unsafe { self.ring.submission().push(&sqe) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    fn arm_accept(&mut self) -> io::Result<()> {
        let Some(l) = &self.listener else {
            return Ok(());
        };
        let sqe = opcode::AcceptMulti::new(types::Fd(l.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(UserData::listener(OpKind::Accept));
        self.push(sqe)?;
        self.accept_armed = true;
        Ok(())
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let sqe = opcode::PollAdd::new(types::Fd(self.waker.0), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(UserData::listener(OpKind::Wake));
        self.push(sqe)
    }

    fn arm_recv(&mut self, index: u32) -> io::Result<()> {
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return Ok(());
        };
        let ud = UserData {
            kind: OpKind::Recv,
            generation: slot.generation,
            index,
        }
        .encode();
        let sqe = opcode::RecvMulti::new(types::Fd(slot.fd), RECV_GROUP)
            .build()
            .user_data(ud);
        slot.inflight += 1;
        slot.recv_armed = true;
        self.push(sqe)
    }

    fn submit_send(&mut self, index: u32) -> io::Result<()> {
        let slot = &self.slots[index as usize];
        let Some(op) = slot.send else { return Ok(()) };
        let ud = UserData {
            kind: OpKind::Send,
            generation: slot.generation,
            index,
        }
        .encode();
        let len = op.len - op.offset;
        let sqe = if op.buf == VEC_SEND {
            let fd = slot.fd;
            let Some(v) = self.slots[index as usize].vsend.as_mut() else {
                return Ok(());
            };
            opcode::SendMsg::new(types::Fd(fd), v.msghdr())
                .build()
                .user_data(ud)
        } else if (op.buf as usize) < SEND_BUFFERS {
            let start = op.buf as usize * SEND_BUFFER_SIZE + op.offset as usize;
            let ptr = self.send_buffers[start..].as_ptr();
            opcode::WriteFixed::new(types::Fd(slot.fd), ptr, len, op.buf)
                .build()
                .user_data(ud)
        } else {
            let heap = &self.heap_sends[op.buf as usize - SEND_BUFFERS];
            let ptr = heap[op.offset as usize..].as_ptr();
            opcode::Send::new(types::Fd(slot.fd), ptr, len)
                .build()
                .user_data(ud)
        };
        self.slots[index as usize].inflight += 1;
        self.push(sqe)
    }

    /// A send completed: its buffer goes back to its pool.
    fn release_send_buffer(&mut self, buf: u16) {
        if (buf as usize) < SEND_BUFFERS {
            self.free_send.push(buf);
            return;
        }
        let heap = &mut self.heap_sends[buf as usize - SEND_BUFFERS];
        if heap.capacity() > 0 && self.heap_allocated > HEAP_KEEP {
            *heap = Vec::new();
            self.heap_allocated -= 1;
        }
        self.free_heap.push(buf);
    }

    fn accept_fd(&mut self, fd: RawFd, sink: &mut dyn FnMut(Completion<'_>)) {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads `one` (a live c_int of the given size) on a
        // socket fd just returned by accept.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        // SAFETY: `fd` was just returned by accept and stays open for this
        // borrow (it is closed only through `close_fd`, later).
        let peer = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let peer = socket2::SockRef::from(&peer)
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket());
        let index = self.insert_slot(fd);
        sink(Completion::Accepted(Token(index), peer));
    }

    /// A slot for a connected socket, with its multishot recv armed.
    fn insert_slot(&mut self, fd: RawFd) -> u32 {
        let generation = self.next_generation;
        self.next_generation = (self.next_generation + 1) & 0xff_ffff;
        let index = self.slots.insert(Slot {
            fd,
            generation,
            inflight: 0,
            recv_armed: false,
            send: None,
            vsend: None,
            wants_buffer: false,
            dead: false,
            closing: false,
            fd_open: true,
            shutdown_pending: false,
        }) as u32;
        if let Err(e) = self.arm_recv(index) {
            tracing::warn!("cannot arm recv: {e}");
        }
        index
    }

    /// Close a closing slot's descriptor. Pending SQEs are submitted first so
    /// none of them can name a descriptor number that gets reused; ops the
    /// kernel already holds keep their own reference to the socket.
    fn close_fd(&mut self, index: u32) {
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return;
        };
        if !slot.fd_open {
            return;
        }
        slot.fd_open = false;
        let fd = slot.fd;
        let _ = self.ring.submit();
        // SAFETY: `fd` came from accept and is closed exactly once: `fd_open`
        // guards it.
        unsafe { libc::close(fd) };
    }

    /// Free the slot when nothing references it any more.
    fn maybe_free(&mut self, index: u32) {
        if let Some(s) = self.slots.get(index as usize) {
            if s.closing && s.inflight == 0 {
                self.slots.remove(index as usize);
            }
        }
    }

    fn return_buffer(&mut self, flags: u32) {
        if let Some(bid) = cqueue::buffer_select(flags) {
            self.recv.push(bid);
            self.returned = true;
        }
    }

    fn on_cqe(
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
                if res >= 0 {
                    self.accept_pause.succeeded();
                    self.accept_fd(res, sink);
                } else {
                    let e = io::Error::from_raw_os_error(-res);
                    if !self.accept_pause.failed(&e, self.slots.len()) && res != -libc::ECANCELED {
                        tracing::warn!("accept failed: {e}");
                    }
                }
                if !more {
                    self.accept_armed = false;
                    if !self.accept_pause.pending() && self.listener.is_some() {
                        let _ = self.arm_accept();
                    }
                }
            }
            OpKind::Wake => {
                let mut v: u64 = 0;
                // SAFETY: reads 8 bytes into a live u64 from our eventfd
                // (non-blocking: EAGAIN if already drained is fine).
                unsafe { libc::read(self.waker.0, &mut v as *mut u64 as *mut libc::c_void, 8) };
                sink(Completion::Woken);
                if !more {
                    let _ = self.arm_wake();
                }
            }
            OpKind::Cancel => {}
            OpKind::Recv => {
                let Some(slot) = self.slots.get_mut(ud.index as usize) else {
                    self.return_buffer(flags);
                    return;
                };
                if slot.generation != ud.generation {
                    self.return_buffer(flags);
                    return;
                }
                if !more {
                    slot.inflight -= 1;
                    slot.recv_armed = false;
                }
                let token = Token(ud.index);
                let live = !slot.closing && !slot.dead;
                if res > 0 {
                    if live {
                        if let Some(bid) = cqueue::buffer_select(flags) {
                            sink(Completion::Data(token, self.recv.data(bid, res as usize)));
                        }
                    }
                    self.return_buffer(flags);
                    if !more && live {
                        let _ = self.arm_recv(ud.index);
                    }
                } else if res == -libc::ENOBUFS && live {
                    // The ring ran dry; buffers come back at the end of this
                    // turn. Re-arm then.
                    if !more {
                        let _ = self.arm_recv(ud.index);
                    }
                } else {
                    self.return_buffer(flags);
                    if live && res != -libc::ECANCELED {
                        if let Some(s) = self.slots.get_mut(ud.index as usize) {
                            s.dead = true;
                        }
                        sink(Completion::Closed(token));
                    }
                }
                self.maybe_free(ud.index);
            }
            OpKind::Send => {
                let Some(slot) = self.slots.get_mut(ud.index as usize) else {
                    return;
                };
                if slot.generation != ud.generation {
                    return;
                }
                slot.inflight -= 1;
                let token = Token(ud.index);
                let Some(mut op) = slot.send else { return };
                let live = !slot.closing && !slot.dead;
                if res > 0 && op.offset + (res as u32) < op.len && !slot.dead {
                    // Short write: send the rest from the same buffer (also
                    // while closing: the last bytes are usually a close frame).
                    op.offset += res as u32;
                    slot.send = Some(op);
                    if let Some(v) = slot.vsend.as_mut() {
                        v.advance(res as usize);
                    }
                    let _ = self.submit_send(ud.index);
                    return;
                }
                slot.send = None;
                let vsend = slot.vsend.take();
                if slot.shutdown_pending {
                    slot.shutdown_pending = false;
                    shutdown_write(slot.fd);
                }
                let closing = slot.closing;
                if res < 0 && live {
                    slot.dead = true;
                }
                match vsend {
                    Some(mut v) => {
                        v.clear();
                        if self.free_vec.len() < VEC_SEND_KEEP {
                            self.free_vec.push(v);
                        }
                    }
                    None => self.release_send_buffer(op.buf),
                }
                if closing {
                    self.close_fd(ud.index);
                } else if res < 0 && live {
                    sink(Completion::Closed(token));
                } else if live {
                    sink(Completion::Writable(token));
                }
                // A buffer came free: let a waiting connection have it.
                while let Some(w) = self.buffer_waiters.pop_front() {
                    if let Some(s) = self.slots.get_mut(w.index()) {
                        if s.wants_buffer && !s.closing && !s.dead {
                            s.wants_buffer = false;
                            sink(Completion::Writable(w));
                            break;
                        }
                    }
                }
                self.maybe_free(ud.index);
            }
        }
    }
}

impl Driver for UringDriver {
    fn turn(
        &mut self,
        timeout: Option<Duration>,
        sink: &mut dyn FnMut(Completion<'_>),
    ) -> io::Result<()> {
        if self.accept_pause.pending() && !self.accept_pause.active() && !self.accept_armed {
            self.arm_accept()?;
        }
        let timeout = self.accept_pause.bound(timeout);
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
        loop {
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
            if self.returned {
                self.recv.publish();
                self.returned = false;
            }
        }
        self.cqes = cqes;
        Ok(())
    }

    fn send(&mut self, token: Token, data: &[u8]) -> io::Result<usize> {
        self.send_vectored(token, &[Part::borrowed(data)])
    }

    fn send_ready(&self, token: Token) -> bool {
        self.slots
            .get(token.index())
            .is_some_and(|s| s.send.is_none() && !s.wants_buffer)
    }

    fn send_vectored(&mut self, token: Token, parts: &[Part<'_>]) -> io::Result<usize> {
        let shared: usize = parts
            .iter()
            .filter(|p| p.owner().is_some())
            .map(|p| p.bytes().len())
            .sum();
        let Some(slot) = self.slots.get_mut(token.index()) else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "unknown connection",
            ));
        };
        if slot.dead || slot.closing {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection closed",
            ));
        }
        if slot.send.is_some() || parts.iter().all(|p| p.bytes().is_empty()) {
            return Ok(0);
        }
        let (buf, n) = if shared >= ZERO_COPY_MIN {
            let mut v = self.free_vec.pop().unwrap_or_else(VecSend::new);
            let n = v.fill(parts);
            slot.vsend = Some(v);
            (VEC_SEND, n)
        } else if let Some(buf) = self.free_send.pop() {
            let start = buf as usize * SEND_BUFFER_SIZE;
            let dst = &mut self.send_buffers[start..start + SEND_BUFFER_SIZE];
            let mut n = 0;
            for part in parts {
                let part = part.bytes();
                let take = part.len().min(SEND_BUFFER_SIZE - n);
                dst[n..n + take].copy_from_slice(&part[..take]);
                n += take;
                if n == SEND_BUFFER_SIZE {
                    break;
                }
            }
            (buf, n)
        } else if let Some(id) = self.free_heap.pop().or_else(|| {
            (self.heap_sends.len() < MAX_HEAP_SENDS).then(|| {
                self.heap_sends.push(Vec::new());
                (SEND_BUFFERS + self.heap_sends.len() - 1) as u16
            })
        }) {
            let dst = &mut self.heap_sends[id as usize - SEND_BUFFERS];
            dst.clear();
            if dst.capacity() == 0 {
                // One allocation of the full size, not a chain of regrowths.
                dst.reserve_exact(HEAP_SEND_MAX);
                self.heap_allocated += 1;
            }
            for part in parts {
                let part = part.bytes();
                let take = part.len().min(HEAP_SEND_MAX - dst.len());
                dst.extend_from_slice(&part[..take]);
                if dst.len() == HEAP_SEND_MAX {
                    break;
                }
            }
            (id, dst.len())
        } else {
            if !slot.wants_buffer {
                slot.wants_buffer = true;
                self.buffer_waiters.push_back(token);
            }
            return Ok(0);
        };
        slot.send = Some(SendOp {
            buf,
            offset: 0,
            len: n as u32,
        });
        self.submit_send(token.0)?;
        Ok(n)
    }

    fn adopt(&mut self, stream: std::net::TcpStream) -> io::Result<Token> {
        stream.set_nodelay(true)?;
        Ok(Token(self.insert_slot(stream.into_raw_fd())))
    }

    fn shutdown_write(&mut self, token: Token) {
        let Some(slot) = self.slots.get_mut(token.index()) else {
            return;
        };
        if slot.closing || !slot.fd_open {
            return;
        }
        if slot.send.is_some() {
            slot.shutdown_pending = true;
        } else {
            shutdown_write(slot.fd);
        }
    }

    fn close(&mut self, token: Token) {
        let index = token.0;
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return;
        };
        if slot.closing {
            return;
        }
        slot.closing = true;
        slot.wants_buffer = false;
        let sending = slot.send.is_some();
        if slot.recv_armed {
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
        // A send still in flight finishes first (the close frame must reach
        // the peer); the descriptor is closed when it completes.
        if !sending {
            self.close_fd(index);
        }
        self.maybe_free(index);
    }

    fn stop_accepting(&mut self) {
        if let Some(l) = self.listener.take() {
            if self.accept_armed {
                let sqe = opcode::AsyncCancel::new(UserData::listener(OpKind::Accept))
                    .build()
                    .user_data(UserData::listener(OpKind::Cancel));
                let _ = self.push(sqe);
                let _ = self.ring.submit();
            }
            // The cancelled accept holds its own reference until it completes.
            let fd = l.into_raw_fd();
            // SAFETY: ownership of the listener's fd was just taken from the
            // TcpListener; closed once.
            unsafe { libc::close(fd) };
        }
        self.accept_pause.clear();
    }

    fn waker(&self) -> Waker {
        self.waker.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        for kind in [
            OpKind::Accept,
            OpKind::Recv,
            OpKind::Send,
            OpKind::Cancel,
            OpKind::Wake,
        ] {
            let ud = UserData {
                kind,
                generation: 0xab_cdef,
                index: u32::MAX,
            };
            assert_eq!(UserData::decode(ud.encode()), Some(ud));
        }
        assert_eq!(UserData::decode(0), None);
    }

    /// The bytes the iovecs still name, in order.
    fn iov_bytes(v: &VecSend) -> Vec<u8> {
        let mut out = Vec::new();
        for iov in &v.iov[v.first..] {
            // SAFETY: each iovec names live bytes: `v.copied` or an owner in
            // `v.keep`, both alive for this borrow of `v`.
            out.extend_from_slice(unsafe {
                std::slice::from_raw_parts(iov.iov_base as *const u8, iov.iov_len)
            });
        }
        out
    }

    #[test]
    fn vec_send_references_shared_parts_copies_the_rest_and_resumes_mid_part() {
        let a: Arc<Vec<u8>> = Arc::new(b"shared-one|".to_vec());
        let b: Arc<Vec<u8>> = Arc::new(b"shared-two".to_vec());
        let mut own = b"own|".to_vec();
        let mut v = VecSend::new();
        let n = {
            // SAFETY: the bytes are the whole contents of each Arc'd vector,
            // which nothing changes while the Arcs live.
            let parts = unsafe {
                [
                    Part::shared(&a[3..], &a),
                    Part::borrowed(&own),
                    Part::borrowed(&[]),
                    Part::shared(&b, &b),
                ]
            };
            v.fill(&parts)
        };
        // The borrowed part was copied: changing the original changes nothing.
        own.copy_from_slice(b"XXXX");
        assert_eq!(n, 8 + 4 + 10);
        assert_eq!(v.iov.len(), 3, "empty parts are left out");
        assert_eq!(iov_bytes(&v), b"red-one|own|shared-two");
        // Shared parts are referenced where they lie, and held.
        assert_eq!(v.iov[0].iov_base as *const u8, a[3..].as_ptr());
        assert_eq!(Arc::strong_count(&a), 2);
        assert_eq!(Arc::strong_count(&b), 2);
        // Short writes: inside a part, to a boundary, across parts.
        v.advance(5);
        assert_eq!(iov_bytes(&v), b"ne|own|shared-two");
        v.advance(3);
        assert_eq!(iov_bytes(&v), b"own|shared-two");
        v.advance(6);
        assert_eq!(iov_bytes(&v), b"ared-two");
        // The msghdr names what is left.
        let msg = v.msghdr();
        // SAFETY: `msg` points into `v`, alive here.
        assert_eq!(unsafe { (*msg).msg_iovlen }, 1);
        v.clear();
        assert_eq!(Arc::strong_count(&a), 1, "clear releases the owners");
        assert_eq!(Arc::strong_count(&b), 1);
        // Copies stop at VEC_COPY_MAX: a long own output is cut there and
        // nothing after it goes in this send.
        let big = vec![7u8; VEC_COPY_MAX + 100];
        // SAFETY: as above.
        let parts = unsafe {
            [
                Part::shared(&a, &a),
                Part::borrowed(&big),
                Part::shared(&b, &b),
            ]
        };
        let n = v.fill(&parts);
        assert_eq!(n, a.len() + VEC_COPY_MAX);
        assert_eq!(v.iov.len(), 2);
        assert_eq!(v.copied.len(), VEC_COPY_MAX);
        v.clear();
        assert_eq!(Arc::strong_count(&b), 1);
        assert!(v.iov.is_empty() && v.copied.is_empty() && v.first == 0);
    }
}
