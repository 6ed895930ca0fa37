//! Setting up a ring: the probe, the ring's flags, and the provided buffer
//! ring the worker's receives take their buffers from.

use std::alloc::{self, Layout};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{opcode, types, IoUring, Probe};

/// Submission queue entries.
const RING_ENTRIES: u32 = 4096;
/// Completion queue entries (multishot recv can post many per turn).
const CQ_ENTRIES: u32 = 16384;
/// Provided receive buffers: count (a power of two) and size. 32 KiB, so a
/// 16 KiB message and its frame header fit one completion and are parsed in
/// place, instead of two completions and a copy of the message into the
/// connection; 256 of them keep the worker's 8 MiB.
pub(super) const RECV_BUFFERS: u16 = 256;
pub(super) const RECV_BUFFER_SIZE: usize = 32 * 1024;
/// Buffer group id of the receive ring.
pub(super) const RECV_GROUP: u16 = 0;

/// A zeroed buffer with every page touched, so the pools' memory is resident
/// from the start: RSS then measures connections and queued data, not which
/// pool pages traffic happened to reach first.
pub(super) fn resident_buffer(len: usize) -> Box<[u8]> {
    let mut buf = vec![0u8; len].into_boxed_slice();
    for b in buf.iter_mut().step_by(4096) {
        // black_box: a store of zero into calloc'ed memory may be elided.
        *b = std::hint::black_box(0);
    }
    buf
}

/// The provided buffer ring: page-aligned ring of `RECV_BUFFERS` entries
/// plus the buffers themselves.
pub(super) struct RecvRing {
    pub(super) ring: *mut types::BufRingEntry,
    ring_layout: Layout,
    buffers: Box<[u8]>,
    tail: u16,
}

impl RecvRing {
    pub(super) fn new() -> io::Result<Self> {
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
    pub(super) fn push(&mut self, bid: u16) {
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
    pub(super) fn publish(&self) {
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
    pub(super) fn data(&mut self, bid: u16, len: usize) -> &mut [u8] {
        let start = bid as usize * RECV_BUFFER_SIZE;
        &mut self.buffers[start..start + len.min(RECV_BUFFER_SIZE)]
    }
}

impl Drop for RecvRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the ring (and with it
        // the kernel's registration) is dropped before this field, see
        // `super::UringDriver`'s field order.
        unsafe { alloc::dealloc(self.ring as *mut u8, self.ring_layout) }
    }
}

/// What the probe found, or why io_uring cannot be used.
///
/// The probe ring is set up on a thread of its own. A ring ties its creating
/// thread to io_uring (a task context, and task work queued to it while the
/// ring is torn down), and that task work interrupts a blocking call the
/// caller makes later: a socket read with a timeout then fails with `EINTR`.
/// The caller here is the application's thread that starts the server.
pub fn probe() -> io::Result<String> {
    std::thread::Builder::new()
        .name("ringwave-probe".into())
        .spawn(probe_here)?
        .join()
        .map_err(|_| io::Error::other("the io_uring probe panicked"))?
}

fn probe_here() -> io::Result<String> {
    let (ring, flags) = new_ring()?;
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    for (code, name) in [
        (opcode::Accept::CODE, "ACCEPT"),
        (opcode::Recv::CODE, "RECV"),
        (opcode::WriteFixed::CODE, "WRITE_FIXED"),
        (opcode::Send::CODE, "SEND"),
        (opcode::SendMsg::CODE, "SENDMSG"),
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

pub(super) fn new_ring() -> io::Result<(IoUring, &'static str)> {
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
