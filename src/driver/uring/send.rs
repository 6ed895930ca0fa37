//! Sends: what a send in flight holds ([`SendKind`]) and the pools it takes
//! its memory from. A send's memory belongs to its op until the completion
//! arrives: a registered buffer or a pooled heap buffer off its free list, a
//! caller's buffer taken over whole, or a boxed [`VecSend`] whose iovecs
//! point at its own copies and at shared owners it holds.

use std::io::IoSlice;

use io_uring::{opcode, squeue, types, Submitter};

use super::pages::{Ids, Pages};
use super::vecsend::{VecSend, VEC_SEND_MAX};
use crate::driver::Part;

/// Registered send buffers: most registered (the table's size) and size.
const SEND_BUFFERS: usize = 256;
const SEND_BUFFER_SIZE: usize = 64 * 1024;
/// Registered buffers are registered as traffic needs them: first this many,
/// then doubling up to `SEND_BUFFERS`, at most once a period (a burst of
/// small sends, such as a ping to every connection, goes to heap buffers the
/// size of each send rather than pinning 64 KiB for each); and unregistered
/// (their pages handed back) after `SHRINK_AFTER` periods in a row whose
/// most in flight at once needed fewer (see [`Registered::trim`]).
/// Registration pins the pages, so a registered buffer is resident whether
/// used or not.
const SEND_CHUNK: usize = 4;
const SHRINK_AFTER: u8 = 3;
/// Past the first chunk, only a send of this many bytes grows the pool:
/// smaller ones (pings, short replies, a ping to each of 15,000 connections
/// in one tick) are copied into heap buffers of their size instead.
const GROW_MIN: usize = 1024;
/// When every registered buffer is in flight (fan-out to thousands of
/// connections at once), sends are copied into pooled heap buffers instead,
/// at most this many bytes each, so a turn never waits for buffers to come
/// back. Each is allocated at the size of the send that needs it (a 100-byte
/// publication does not touch 32 KiB of fresh pages) and grows when a
/// larger one reuses it; on return it keeps its allocation while at most
/// `HEAP_KEEP` of them do (32 MiB at most), so a burst does not pin memory
/// for good.
const HEAP_SEND_MAX: usize = 32 * 1024;
const HEAP_KEEP: usize = 1024;
/// Most heap send buffers.
const MAX_HEAP_SENDS: usize = u16::MAX as usize - SEND_BUFFERS;
/// A send whose shared parts ([`Part::shared`]) come to this many bytes goes
/// out as a [`VecSend`], referencing them; below it, copying is cheaper than
/// taking references.
const ZERO_COPY_MIN: usize = 4096;
/// Idle `VecSend`s kept for reuse.
const VEC_SEND_KEEP: usize = 1024;
/// A caller's buffer ([`SendPools::prepare_owned`]) is taken over rather
/// than copied from this many bytes up, or whenever no registered buffer is
/// free: below it, a copy into a registered buffer costs less than the
/// allocation the caller then makes for its next output.
pub(super) const OWNED_MIN: usize = 4096;
/// Most bytes in a buffer taken over (its length must fit `SendOp`'s u32).
pub(super) const OWNED_MAX: usize = VEC_SEND_MAX;
/// A buffer taken over is kept, emptied, when its send completes
/// ([`SendPools::take_spare`] hands it to a caller for its next output)
/// while the spares come to at most `SPARE_BYTES` and it is at most
/// `SPARE_MAX` bytes big. Without them, TLS fan-out to thousands of
/// connections allocates a fresh output buffer per connection per turn and
/// frees the one sent, and the allocator hands the freed memory back to the
/// kernel and faults it in again: a quarter of the worker's time. Spares no
/// caller took for a whole period are freed.
const SPARE_BYTES: usize = 32 << 20;
const SPARE_MAX: usize = 256 * 1024;

/// Where a send's bytes are.
#[derive(Debug)]
pub(super) enum SendKind {
    /// Copied into registered buffer `i` (`WRITE_FIXED`).
    Registered(u16),
    /// Copied into pooled heap buffer `i` (`SEND`).
    Heap(u16),
    /// Referenced in place (`SENDMSG`): `vectored[i]`. An index, not the
    /// box itself, so a send in flight (and with it a connection's driver
    /// slot) stays 8 bytes smaller.
    Vectored(u32),
    /// A caller's buffer, taken over: `owned[i]` (`SEND`).
    Owned(u32),
    /// Where it was received: bytes from `start` of provided receive buffer
    /// `bid`, kept out of the receive ring until the completion (`SEND`;
    /// see [`super::lent`]).
    Received { bid: u16, start: u16 },
}

// A receive buffer's offsets fit `SendKind::Received`'s u16.
const _: () = assert!(super::ring::RECV_BUFFER_SIZE <= 1 << 16);

/// A send in flight and how much of it is left.
#[derive(Debug)]
pub(super) struct SendOp {
    pub kind: SendKind,
    pub offset: u32,
    pub len: u32,
}

impl SendOp {
    /// Whether all of it went out.
    pub(super) fn done(&self) -> bool {
        self.offset >= self.len
    }
}

/// The registered buffers: `0..limit` registered in the ring's sparse
/// buffer table, the free ones in `free` (the lowest is taken first, so
/// light traffic keeps to the first few and the rest can be given back).
struct Registered {
    pages: Pages,
    free: Ids,
    limit: usize,
    in_use: usize,
    /// Most in flight at once this period.
    peak: usize,
    /// A registration failed: stay at what is registered.
    stuck: bool,
    /// Grown this period.
    grew: bool,
    /// Periods in a row that needed fewer than are registered.
    quiet: u8,
}

impl Registered {
    /// Take the lowest free buffer, registering more when none is free.
    fn take(&mut self, ring: &Submitter<'_>, len: usize) -> Option<u16> {
        if self.free.is_empty() && self.can_grow() && (self.limit == 0 || len >= GROW_MIN) {
            self.grow(ring);
        }
        let id = self.free.pop_lowest()?;
        self.in_use += 1;
        self.peak = self.peak.max(self.in_use);
        Some(id)
    }

    fn put(&mut self, id: u16) {
        self.free.insert(id);
        self.in_use -= 1;
    }

    fn can_grow(&self) -> bool {
        self.limit < SEND_BUFFERS && !self.stuck && !self.grew
    }

    fn available(&self) -> bool {
        !self.free.is_empty() || self.can_grow()
    }

    fn grow(&mut self, ring: &Submitter<'_>) {
        self.grew = true;
        let to = (self.limit * 2).clamp(SEND_CHUNK, SEND_BUFFERS);
        let iovecs: Vec<libc::iovec> = (self.limit..to)
            .map(|i| libc::iovec {
                iov_base: self.pages.base().wrapping_add(i * SEND_BUFFER_SIZE) as *mut libc::c_void,
                iov_len: SEND_BUFFER_SIZE,
            })
            .collect();
        // SAFETY: the iovecs name buffers inside `pages`, a mapping the
        // pools own, which never moves and is unmapped only after the ring
        // (and so the registration) is dropped: see the driver's field order.
        match unsafe { ring.register_buffers_update(self.limit as u32, &iovecs, None) } {
            Ok(()) => {
                for i in self.limit..to {
                    self.free.insert(i as u16);
                }
                self.limit = to;
            }
            Err(e) => {
                tracing::warn!(
                    "io_uring: registering send buffers {}..{to} failed ({e}); sends past {} registered buffers are copied into heap buffers",
                    self.limit,
                    self.limit
                );
                self.stuck = true;
            }
        }
    }

    /// Once a period: after `SHRINK_AFTER` periods in a row that needed
    /// fewer, unregister the buffers above what twice the period's peak
    /// needs, when none of them is in flight, and hand their pages back.
    fn trim(&mut self, ring: &Submitter<'_>) {
        self.grew = false;
        let want = if self.peak == 0 {
            0
        } else {
            (2 * self.peak).next_power_of_two().max(SEND_CHUNK)
        };
        self.peak = self.in_use;
        if want >= self.limit {
            self.quiet = 0;
            return;
        }
        self.quiet += 1;
        if self.quiet < SHRINK_AFTER {
            return;
        }
        self.quiet = 0;
        let mut to = self.limit;
        while to > want {
            let next = if to == SEND_CHUNK { 0 } else { to / 2 };
            if self.free.count_in(next as u16, to as u16) < to - next {
                break;
            }
            to = next;
        }
        if to < self.limit {
            let empty = vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                };
                self.limit - to
            ];
            // SAFETY: null iovecs empty the table's entries; no iovec names
            // memory.
            match unsafe { ring.register_buffers_update(to as u32, &empty, None) } {
                Ok(()) => {
                    for i in to..self.limit {
                        self.free.remove(i as u16);
                    }
                    // SAFETY: the buffers were free (no send in flight reads
                    // them) and are no longer registered, so the kernel has
                    // no reference to their pages and nothing expects their
                    // contents.
                    unsafe {
                        self.pages
                            .release(to * SEND_BUFFER_SIZE, (self.limit - to) * SEND_BUFFER_SIZE)
                    };
                    self.limit = to;
                }
                Err(e) => tracing::debug!("io_uring: unregistering send buffers: {e}"),
            }
        }
    }
}

/// The memory sends are made from. Registered buffers first; when all are
/// in flight, heap buffers; sends mostly of shared bytes by reference.
pub(super) struct SendPools {
    registered: Registered,
    /// Heap send buffers; one in flight is never touched (its contents stay
    /// put even if this vector reallocates).
    heap: Vec<Vec<u8>>,
    free_heap: Vec<u16>,
    /// Heap send buffers holding an allocation (in flight or pooled).
    heap_allocated: usize,
    /// Buffers taken over from callers, in flight; a free entry holds no
    /// allocation (each is dropped when its send completes). As with `heap`,
    /// a buffer's bytes stay put while this vector reallocates.
    owned: Vec<Vec<u8>>,
    free_owned: Vec<u32>,
    /// The lengths of the buffers in `owned`, together: the bytes in
    /// flight (their capacities may be more, by at most what the spares
    /// they came from held).
    owned_bytes: usize,
    /// Buffers whose owned sends completed, emptied, for callers' next
    /// output; their capacities come to `spare_bytes`.
    spares: Vec<Vec<u8>>,
    spare_bytes: usize,
    /// `VecSend`s, boxed: the kernel reads a send's msghdr and iovecs
    /// where they are, so they must not move while this vector grows. An
    /// entry is in flight, idle (in `free_vectored`, keeping its allocation
    /// while at most `VEC_SEND_KEEP` do) or `None`.
    #[allow(clippy::vec_box)]
    vectored: Vec<Option<Box<VecSend>>>,
    free_vectored: Vec<u32>,
    /// Idle entries of `vectored` holding an allocation.
    vec_idle: usize,
    /// A heap buffer or a `VecSend` was taken this period.
    heap_used: bool,
    vec_used: bool,
    spare_used: bool,
    /// The address of the provided receive buffers (`Received` sends).
    received: usize,
}

impl SendPools {
    /// Pools for `ring`, whose buffer table they set up (sparse: buffers
    /// are registered as they are needed); `received` is the address of
    /// the provided receive buffers, which `Received` sends read.
    pub(super) fn new(ring: &Submitter<'_>, received: *const u8) -> std::io::Result<SendPools> {
        ring.register_buffers_sparse(SEND_BUFFERS as u32)?;
        Ok(SendPools {
            registered: Registered {
                pages: Pages::new(SEND_BUFFERS * SEND_BUFFER_SIZE)?,
                free: Ids::default(),
                limit: 0,
                in_use: 0,
                peak: 0,
                stuck: false,
                grew: false,
                quiet: 0,
            },
            heap: Vec::new(),
            free_heap: Vec::new(),
            heap_allocated: 0,
            owned: Vec::new(),
            free_owned: Vec::new(),
            owned_bytes: 0,
            spares: Vec::new(),
            spare_bytes: 0,
            vectored: Vec::new(),
            free_vectored: Vec::new(),
            vec_idle: 0,
            heap_used: false,
            vec_used: false,
            spare_used: false,
            received: received as usize,
        })
    }

    /// Whether a registered buffer is free or can be registered.
    pub(super) fn registered_free(&self) -> bool {
        self.registered.available()
    }

    /// Once a period, between turns: give back registered buffers the
    /// period did not need, and the idle heap buffers, `VecSend`s and
    /// spares when the period took none.
    pub(super) fn trim(&mut self, ring: &Submitter<'_>) {
        self.registered.trim(ring);
        if !self.heap_used {
            for &id in &self.free_heap {
                let heap = &mut self.heap[id as usize];
                if heap.capacity() > 0 {
                    *heap = Vec::new();
                    self.heap_allocated -= 1;
                }
            }
        }
        if !self.vec_used {
            for &id in &self.free_vectored {
                self.vectored[id as usize] = None;
            }
            self.vec_idle = 0;
        }
        if !self.spare_used {
            self.spares = Vec::new();
            self.spare_bytes = 0;
        }
        self.heap_used = false;
        self.vec_used = false;
        self.spare_used = false;
    }

    /// Whether [`SendPools::trim`] has anything to give back.
    pub(super) fn can_trim(&self) -> bool {
        self.registered.limit > 0
            || self.heap_allocated > 0
            || self.vec_idle > 0
            || !self.spares.is_empty()
    }

    /// Bytes of callers' buffers held by sends in flight.
    pub(super) fn owned_bytes(&self) -> usize {
        self.owned_bytes
    }

    /// An empty buffer for a caller's next output: a spare when there is
    /// one (with the capacity of a buffer sent before), else a new one.
    pub(super) fn take_spare(&mut self) -> Vec<u8> {
        match self.spares.pop() {
            Some(buf) => {
                self.spare_used = true;
                self.spare_bytes -= buf.capacity();
                buf
            }
            None => Vec::new(),
        }
    }

    /// A send of `parts`, in order (as much as one send takes), or `None`
    /// when no buffer is free; `ring` registers more buffers when needed.
    pub(super) fn prepare(&mut self, parts: &[Part<'_>], ring: &Submitter<'_>) -> Option<SendOp> {
        let shared: usize = parts
            .iter()
            .filter(|p| p.owner().is_some())
            .map(|p| p.bytes().len())
            .sum();
        if shared < ZERO_COPY_MIN {
            return self.copy(parts.iter().map(|p| p.bytes()), ring);
        }
        self.vec_used = true;
        let id = match self.free_vectored.pop() {
            Some(id) => id,
            None => {
                self.vectored.push(None);
                (self.vectored.len() - 1) as u32
            }
        };
        let entry = &mut self.vectored[id as usize];
        if entry.is_some() {
            self.vec_idle -= 1;
        }
        let n = entry.get_or_insert_with(VecSend::new).fill(parts);
        Some(SendOp {
            kind: SendKind::Vectored(id),
            offset: 0,
            len: n as u32,
        })
    }

    /// A send of copies of `parts`, in order (as much as one buffer takes),
    /// or `None` when no buffer is free.
    pub(super) fn prepare_copy(
        &mut self,
        parts: &[IoSlice<'_>],
        ring: &Submitter<'_>,
    ) -> Option<SendOp> {
        self.copy(parts.iter().map(|p| &**p), ring)
    }

    /// Copy `parts` into a registered buffer, or a heap buffer when none is
    /// free.
    fn copy<'p, I>(&mut self, parts: I, ring: &Submitter<'_>) -> Option<SendOp>
    where
        I: Iterator<Item = &'p [u8]> + Clone,
    {
        let want: usize = parts.clone().map(<[u8]>::len).sum();
        let (kind, n) = if let Some(buf) = self.registered.take(ring, want) {
            let start = buf as usize * SEND_BUFFER_SIZE;
            let dst = &mut self.registered.pages.bytes_mut()[start..start + SEND_BUFFER_SIZE];
            let mut n = 0;
            for part in parts {
                let take = part.len().min(SEND_BUFFER_SIZE - n);
                dst[n..n + take].copy_from_slice(&part[..take]);
                n += take;
                if n == SEND_BUFFER_SIZE {
                    break;
                }
            }
            (SendKind::Registered(buf), n)
        } else {
            self.heap_used = true;
            let id = self.free_heap.pop().or_else(|| {
                (self.heap.len() < MAX_HEAP_SENDS).then(|| {
                    self.heap.push(Vec::new());
                    (self.heap.len() - 1) as u16
                })
            })?;
            let dst = &mut self.heap[id as usize];
            dst.clear();
            if dst.capacity() == 0 {
                self.heap_allocated += 1;
            }
            // One allocation of the size needed, not a chain of regrowths.
            dst.reserve_exact(want.min(HEAP_SEND_MAX));
            for part in parts {
                let take = part.len().min(HEAP_SEND_MAX - dst.len());
                dst.extend_from_slice(&part[..take]);
                if dst.len() == HEAP_SEND_MAX {
                    break;
                }
            }
            (SendKind::Heap(id), dst.len())
        };
        Some(SendOp {
            kind,
            offset: 0,
            len: n as u32,
        })
    }

    /// A send of `buf[from..]` (not empty, at most [`OWNED_MAX`] bytes in
    /// all), taking `buf` over and leaving an empty vector in its place.
    pub(super) fn prepare_owned(&mut self, buf: &mut Vec<u8>, from: usize) -> SendOp {
        debug_assert!(from < buf.len() && buf.len() <= OWNED_MAX);
        let bytes = std::mem::take(buf);
        let len = bytes.len() as u32;
        self.owned_bytes += bytes.len();
        let id = match self.free_owned.pop() {
            Some(id) => {
                self.owned[id as usize] = bytes;
                id
            }
            None => {
                self.owned.push(bytes);
                (self.owned.len() - 1) as u32
            }
        };
        SendOp {
            kind: SendKind::Owned(id),
            offset: from as u32,
            len,
        }
    }

    /// The SQE for what is left of `op` on `fd` (without its `user_data`).
    pub(super) fn sqe(&mut self, fd: types::Fd, op: &mut SendOp) -> squeue::Entry {
        let len = op.len - op.offset;
        match &mut op.kind {
            SendKind::Vectored(id) => match &mut self.vectored[*id as usize] {
                Some(v) => opcode::SendMsg::new(fd, v.msghdr()).build(),
                // Unreachable: an entry in flight holds its box.
                None => opcode::Nop::new().build(),
            },
            SendKind::Registered(buf) => {
                let start = *buf as usize * SEND_BUFFER_SIZE + op.offset as usize;
                let ptr = self.registered.pages.bytes()[start..].as_ptr();
                opcode::WriteFixed::new(fd, ptr, len, *buf).build()
            }
            SendKind::Heap(id) => {
                let ptr = self.heap[*id as usize][op.offset as usize..].as_ptr();
                opcode::Send::new(fd, ptr, len).build()
            }
            SendKind::Owned(id) => {
                let ptr = self.owned[*id as usize][op.offset as usize..].as_ptr();
                opcode::Send::new(fd, ptr, len).build()
            }
            SendKind::Received { bid, start } => {
                let at = *bid as usize * super::ring::RECV_BUFFER_SIZE
                    + *start as usize
                    + op.offset as usize;
                let ptr = (self.received + at) as *const u8;
                opcode::Send::new(fd, ptr, len).build()
            }
        }
    }

    /// `n` more bytes of `op` went out (a short write): the rest goes next.
    pub(super) fn advance(&mut self, op: &mut SendOp, n: u32) {
        op.offset += n;
        if let SendKind::Vectored(id) = op.kind {
            if let Some(v) = &mut self.vectored[id as usize] {
                v.advance(n as usize);
            }
        }
    }

    /// A send completed: its memory goes back to its pool.
    /// Sends holding a buffer of the pools (tests: each completion gives
    /// its own back).
    #[cfg(test)]
    pub(super) fn taken(&self) -> usize {
        self.registered.in_use
            + (self.heap.len() - self.free_heap.len())
            + (self.owned.len() - self.free_owned.len())
            + (self.vectored.len() - self.free_vectored.len())
    }

    pub(super) fn release(&mut self, kind: SendKind) {
        match kind {
            SendKind::Registered(buf) => self.registered.put(buf),
            SendKind::Heap(id) => {
                let heap = &mut self.heap[id as usize];
                if heap.capacity() > 0 && self.heap_allocated > HEAP_KEEP {
                    *heap = Vec::new();
                    self.heap_allocated -= 1;
                }
                self.free_heap.push(id);
            }
            SendKind::Vectored(id) => {
                let entry = &mut self.vectored[id as usize];
                if let Some(v) = entry {
                    v.clear();
                    if self.vec_idle < VEC_SEND_KEEP {
                        self.vec_idle += 1;
                    } else {
                        *entry = None;
                    }
                }
                self.free_vectored.push(id);
            }
            SendKind::Owned(id) => {
                let mut buf = std::mem::take(&mut self.owned[id as usize]);
                let cap = buf.capacity();
                self.owned_bytes -= buf.len();
                if cap <= SPARE_MAX && self.spare_bytes + cap <= SPARE_BYTES {
                    buf.clear();
                    self.spare_bytes += cap;
                    self.spares.push(buf);
                }
                self.free_owned.push(id);
            }
            // The driver gives the receive buffer back (`RecvRing::give_back`).
            SendKind::Received { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::AsRawFd;

    use io_uring::IoUring;

    use super::*;

    #[test]
    fn owned_sends_take_the_buffer_and_heap_copies_allocate_what_they_need() {
        let ring = IoUring::new(8).unwrap();
        let ring = ring.submitter();
        let mut pools = SendPools::new(&ring, std::ptr::null()).unwrap();
        let mut buf = b"sent already|the rest".to_vec();
        let ptr = buf.as_ptr();
        let mut op = pools.prepare_owned(&mut buf, 13);
        assert!(
            buf.is_empty() && buf.capacity() == 0,
            "an empty vector is left"
        );
        assert_eq!((op.offset, op.len), (13, 21));
        let SendKind::Owned(id) = op.kind else {
            panic!("not owned: {:?}", op.kind);
        };
        // The bytes were not moved: the send goes out from them.
        assert_eq!(pools.owned[id as usize].as_ptr(), ptr);
        assert_eq!(&pools.owned[id as usize][op.offset as usize..], b"the rest");
        pools.advance(&mut op, 4);
        assert!(!op.done());
        pools.advance(&mut op, 4);
        assert!(op.done());
        assert_eq!(pools.owned_bytes(), 21);
        pools.release(op.kind);
        assert_eq!(
            pools.owned[id as usize].capacity(),
            0,
            "its entry holds no allocation"
        );
        assert_eq!(pools.owned_bytes(), 0);
        // The buffer is kept, emptied, for a caller's next output.
        let spare = pools.take_spare();
        assert_eq!(
            (spare.as_ptr(), spare.len(), spare.capacity()),
            (ptr, 0, 21)
        );
        assert_eq!(pools.take_spare().capacity(), 0, "one spare only");
        // The entry is reused.
        let mut again = vec![1u8; 10];
        let op = pools.prepare_owned(&mut again, 0);
        assert!(matches!(op.kind, SendKind::Owned(i) if i == id));
        pools.release(op.kind);
        // A period in which nobody took a spare frees them.
        assert!(pools.can_trim());
        pools.trim(&ring);
        pools.trim(&ring);
        assert_eq!(pools.take_spare().capacity(), 0);
        // Spares come to at most SPARE_BYTES, each at most SPARE_MAX.
        let half = SPARE_MAX / 2;
        let caps =
            std::iter::once(SPARE_MAX + 1).chain(std::iter::repeat_n(half, SPARE_BYTES / half + 8));
        for cap in caps {
            let mut buf = Vec::with_capacity(cap);
            buf.push(1);
            let op = pools.prepare_owned(&mut buf, 0);
            pools.release(op.kind);
        }
        assert_eq!(pools.spare_bytes, SPARE_BYTES);
        assert_eq!(pools.spares.len(), SPARE_BYTES / half);

        // With every registered buffer in flight, a small send is copied
        // into a heap buffer the size of the send, not of the largest one.
        let mut held = Vec::new();
        loop {
            while pools.registered_free() {
                held.push(
                    pools
                        .prepare(&[Part::borrowed(&[b'x'; GROW_MIN])], &ring)
                        .unwrap(),
                );
            }
            if pools.registered.limit == SEND_BUFFERS {
                break;
            }
            // A new period: the pool may grow once more.
            pools.trim(&ring);
        }
        assert_eq!(held.len(), SEND_BUFFERS);
        let op = pools
            .prepare(&[Part::borrowed(b"small "), Part::borrowed(b"send")], &ring)
            .unwrap();
        let SendKind::Heap(h) = op.kind else {
            panic!("not a heap copy: {:?}", op.kind);
        };
        assert_eq!(pools.heap[h as usize], b"small send");
        assert!(pools.heap[h as usize].capacity() < 1024);
        pools.release(op.kind);
        for op in held {
            pools.release(op.kind);
        }
        // A period without heap sends gives the heap buffers back.
        pools.trim(&ring);
        assert_eq!(pools.heap_allocated, 1, "used this period: kept");
        pools.trim(&ring);
        assert_eq!(pools.heap_allocated, 0);
        assert!(pools.heap[h as usize].capacity() == 0);
    }

    /// Registered buffers are registered as sends need them and given back
    /// when a period needed fewer; the table really holds them: a
    /// `WRITE_FIXED` from each buffer reaches the socket, and one from a
    /// buffer given back fails.
    #[test]
    fn registered_buffers_grow_with_use_and_shrink_when_unused() {
        let mut ring = IoUring::new(8).unwrap();
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut pools = SendPools::new(&ring.submitter(), std::ptr::null()).unwrap();
        assert_eq!(pools.registered.limit, 0, "nothing registered at first");
        let write = |ring: &mut IoUring, pools: &mut SendPools, op: &mut SendOp| {
            let sqe = pools.sqe(types::Fd(a.as_raw_fd()), op).user_data(1);
            // SAFETY: the op's buffer stays put until the wait below has
            // its completion.
            unsafe { ring.submission().push(&sqe).unwrap() };
            ring.submit_and_wait(1).unwrap();
            ring.completion().next().unwrap().result()
        };
        let take10 = |pools: &mut SendPools, ring: &IoUring| -> Vec<SendOp> {
            (0..10)
                .map(|i| {
                    pools
                        .prepare(&[Part::borrowed(&[b'a' + i; GROW_MIN])], &ring.submitter())
                        .unwrap()
                })
                .collect()
        };
        let registered = |ops: &[SendOp]| {
            ops.iter()
                .filter(|op| matches!(op.kind, SendKind::Registered(_)))
                .count()
        };
        // Small sends register the first chunk and no more: the rest go to
        // heap buffers, period after period.
        for _ in 0..2 {
            let small: Vec<SendOp> = (0..10)
                .map(|_| {
                    pools
                        .prepare(&[Part::borrowed(b"p")], &ring.submitter())
                        .unwrap()
                })
                .collect();
            assert_eq!(pools.registered.limit, SEND_CHUNK);
            assert_eq!(registered(&small), SEND_CHUNK);
            for op in small {
                pools.release(op.kind);
            }
            pools.trim(&ring.submitter());
        }
        // Ten 1 KiB sends in flight at once, three periods running: the pool
        // grows once a period (4, 8, 16) and heap buffers take the rest.
        for (limit, in_registered) in [(8, 8), (16, 10)] {
            let mut held = take10(&mut pools, &ring);
            assert_eq!(pools.registered.limit, limit);
            assert_eq!(registered(&held), in_registered);
            for op in &mut held {
                assert_eq!(write(&mut ring, &mut pools, op), GROW_MIN as i32);
            }
            let mut got = vec![0u8; 10 * GROW_MIN];
            b.read_exact(&mut got).unwrap();
            let want: Vec<u8> = (0..10u8).flat_map(|i| [b'a' + i; GROW_MIN]).collect();
            assert_eq!(got, want);
            if limit < 16 {
                for op in held {
                    pools.release(op.kind);
                }
                pools.trim(&ring.submitter());
                continue;
            }
            // All but the lowest come back: this period's peak (10) keeps
            // 16 up, and so do the next two quiet periods.
            let mut rest = held.into_iter();
            let first = rest.next().unwrap();
            for op in rest {
                pools.release(op.kind);
            }
            for _ in 0..3 {
                pools.trim(&ring.submitter());
                assert_eq!(pools.registered.limit, 16);
            }
            // The third period in a row with a peak of 1: down to 4.
            pools.trim(&ring.submitter());
            assert_eq!(pools.registered.limit, SEND_CHUNK);
            held = vec![first];
            // A buffer given back is no longer registered: a fixed write
            // from it fails (EFAULT), not sends stale pages.
            let mut gone = SendOp {
                kind: SendKind::Registered(10),
                offset: 0,
                len: 1,
            };
            assert!(write(&mut ring, &mut pools, &mut gone) < 0);
            // Nothing in flight for three periods (the one in which the
            // last send completed still counts it): none registered.
            pools.release(held.remove(0).kind);
            pools.trim(&ring.submitter());
            assert_eq!(pools.registered.limit, SEND_CHUNK);
            for _ in 0..2 {
                pools.trim(&ring.submitter());
                assert_eq!(pools.registered.limit, SEND_CHUNK);
            }
            pools.trim(&ring.submitter());
            assert_eq!(pools.registered.limit, 0);
        }
        let mut got = [0u8; 1];
        assert!(pools.registered_free(), "more can be registered");
        let mut op = pools
            .prepare(&[Part::borrowed(b"z")], &ring.submitter())
            .unwrap();
        assert!(matches!(op.kind, SendKind::Registered(0)));
        assert_eq!(write(&mut ring, &mut pools, &mut op), 1);
        b.read_exact(&mut got[..1]).unwrap();
        assert_eq!(got[0], b'z');
        pools.release(op.kind);
    }
}
