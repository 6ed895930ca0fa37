//! Setting up a ring: the probe, the ring's flags, and the provided buffer
//! ring the worker's receives take their buffers from.

use std::alloc::{self, Layout};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{opcode, types, IoUring, Probe};

use super::pages::{Ids, Pages};

/// Submission queue entries.
const RING_ENTRIES: u32 = 4096;
/// Completion queue entries (multishot recv can post many per turn).
const CQ_ENTRIES: u32 = 16384;
/// Provided receive buffers: most in circulation (a power of two) and size.
/// 32 KiB, so a 16 KiB message and its frame header fit one completion and
/// are parsed in place, instead of two completions and a copy of the message
/// into the connection.
pub(super) const RECV_BUFFERS: u16 = 256;
pub(super) const RECV_BUFFER_SIZE: usize = 32 * 1024;
/// Buffers in circulation at first and after a quiet spell. The ring grows
/// (doubling, up to `RECV_BUFFERS`) when one batch of completions takes more
/// than half of them or the ring runs dry.
const RECV_MIN: u16 = 16;
/// Most receive buffers kept at once for the sends reading from them
/// ([`RecvRing::keep`]), and at most this share of those circulating: the
/// rest keep the receives going while those sends wait on slow peers.
const KEEP_MAX: u16 = RECV_BUFFERS / 4;
const KEEP_SHARE: u16 = 2;
/// Buffer group id of the receive ring.
pub(super) const RECV_GROUP: u16 = 0;

/// The provided buffer ring: a page-aligned ring of `RECV_BUFFERS` entries
/// and the buffers' memory, resident only as far as traffic has reached it.
///
/// Buffers `0..active` circulate: each comes back to the ring once its
/// completion is handled. One above `active` (after a shrink) is parked when
/// it comes back. Between turns every buffer is either in the ring or
/// parked, none with the driver, but for those kept for a send in flight
/// ([`RecvRing::keep`]): [`RecvRing::trim`] relies on that, and leaves the
/// kept ones' pages alone.
pub(super) struct RecvRing {
    pub(super) ring: *mut types::BufRingEntry,
    ring_layout: Layout,
    buffers: Pages,
    tail: u16,
    active: u16,
    /// Buffers pushed and not yet consumed by the kernel.
    in_ring: Ids,
    /// Buffers consumed in this batch of completions, the most in one batch
    /// this period, and in the whole period.
    batch_used: u16,
    peak: u16,
    period_used: u32,
    /// A recv found the ring empty this batch.
    ran_dry: bool,
    /// Some buffer was written since the pages were last handed back.
    touched: bool,
    /// Pushed and not yet published.
    unpublished: bool,
    /// Buffers consumed whose bytes a send in flight is reading.
    kept: Ids,
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
            buffers: Pages::new(RECV_BUFFERS as usize * RECV_BUFFER_SIZE)?,
            tail: 0,
            active: 0,
            in_ring: Ids::default(),
            batch_used: 0,
            peak: 0,
            period_used: 0,
            ran_dry: false,
            touched: false,
            unpublished: false,
            kept: Ids::default(),
        };
        r.grow_to(RECV_MIN);
        r.publish();
        Ok(r)
    }

    /// Put buffer `bid` at the tail (visible after `publish`).
    fn push(&mut self, bid: u16) {
        debug_assert!(!self.in_ring.contains(bid));
        let slot = self.tail & (RECV_BUFFERS - 1);
        let addr = self.buffers.base() as u64 + bid as u64 * RECV_BUFFER_SIZE as u64;
        // SAFETY: `slot < RECV_BUFFERS`, so the entry lies inside the ring
        // allocation; the kernel only reads entries between head and the
        // published tail, and this one is past the published tail. At most
        // RECV_BUFFERS buffers are in the ring (`in_ring`), so the tail never
        // laps an entry the kernel has not consumed.
        let entry = unsafe { &mut *self.ring.add(slot as usize) };
        entry.set_addr(addr);
        entry.set_len(RECV_BUFFER_SIZE as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.in_ring.insert(bid);
        self.unpublished = true;
    }

    /// Circulate buffers `0..n`: push those neither in the ring already nor
    /// still with a completion being handled (there are none between
    /// batches, when this is called).
    fn grow_to(&mut self, n: u16) {
        for bid in self.active..n {
            if !self.in_ring.contains(bid) {
                self.push(bid);
            }
        }
        self.active = n;
    }

    /// The kernel consumed buffer `bid` (a completion named it) and the
    /// driver is done with it: back to the ring, or parked if above `active`.
    pub(super) fn recycle(&mut self, bid: u16) {
        if bid >= RECV_BUFFERS || !self.in_ring.contains(bid) {
            return;
        }
        self.in_ring.remove(bid);
        self.batch_used += 1;
        self.touched = true;
        if bid < self.active {
            self.push(bid);
        }
    }

    /// Whether one more buffer may be kept for a send.
    pub(super) fn may_keep(&self) -> bool {
        self.kept.len() < u32::from(KEEP_MAX.min(self.active / KEEP_SHARE))
    }

    /// Buffer `bid`, named by a completion, is what a send in flight reads
    /// from: it stays out of the ring (and its pages resident) until
    /// [`RecvRing::give_back`], when that send completes.
    pub(super) fn keep(&mut self, bid: u16) {
        if bid < RECV_BUFFERS && self.in_ring.contains(bid) {
            self.kept.insert(bid);
        }
    }

    /// The send reading from kept buffer `bid` completed.
    pub(super) fn give_back(&mut self, bid: u16) {
        if bid < RECV_BUFFERS && self.kept.contains(bid) {
            self.kept.remove(bid);
            self.recycle(bid);
        }
    }

    /// The address of the buffers (buffer `bid` starts `bid *
    /// RECV_BUFFER_SIZE` bytes in).
    pub(super) fn base(&self) -> *const u8 {
        self.buffers.base()
    }

    /// A recv found no buffer in the ring.
    pub(super) fn ran_dry(&mut self) {
        self.ran_dry = true;
    }

    /// A batch of completions was handled: grow if it took more than half
    /// the circulating buffers or found none, and publish what came back.
    pub(super) fn end_batch(&mut self) {
        if (self.ran_dry || self.batch_used > self.active / 2) && self.active < RECV_BUFFERS {
            self.grow_to((self.active * 2).min(RECV_BUFFERS));
        }
        self.ran_dry = false;
        self.peak = self.peak.max(self.batch_used);
        self.period_used += self.batch_used as u32;
        self.batch_used = 0;
        if self.unpublished {
            self.publish();
        }
    }

    /// Once a period, between turns: halve the circulating buffers when no
    /// batch used a quarter of them, and hand every buffer's pages back when
    /// the period used fewer buffers than circulate (the ring did not come
    /// round once, so traffic is light and the pages come back cheaply as it
    /// reaches them).
    pub(super) fn trim(&mut self) {
        if self.active > RECV_MIN && self.peak < self.active / 4 {
            self.active = (self.active / 2).max(RECV_MIN);
        }
        if self.touched && self.period_used < self.active as u32 {
            // Every run of buffers between those kept for sends.
            let mut bid = 0;
            while bid < RECV_BUFFERS {
                let start = bid;
                while bid < RECV_BUFFERS && !self.kept.contains(bid) {
                    bid += 1;
                }
                if bid > start {
                    // SAFETY: between turns no buffer is with the driver
                    // (each is in the ring or parked, see the type's docs)
                    // but those kept for a send that reads them, which this
                    // run excludes; and the kernel writes ring buffers only
                    // while this thread is inside io_uring_enter: a
                    // multishot recv on a socket is driven by task work of
                    // the ring's single issuer, never by io-wq (no
                    // IOSQE_ASYNC). Ring buffers are not yet named by any
                    // completion, so none expects their contents.
                    unsafe {
                        self.buffers.release(
                            start as usize * RECV_BUFFER_SIZE,
                            (bid - start) as usize * RECV_BUFFER_SIZE,
                        )
                    };
                }
                bid += 1;
            }
            self.touched = false;
        }
        self.peak = 0;
        self.period_used = 0;
    }

    /// Whether [`RecvRing::trim`] has anything to give back.
    pub(super) fn can_trim(&self) -> bool {
        self.touched || self.active > RECV_MIN
    }

    /// Make pushed buffers visible to the kernel.
    pub(super) fn publish(&mut self) {
        // SAFETY: `ring` is the page-aligned base of an initialised ring, as
        // `BufRingEntry::tail` requires; the tail field is a u16 the kernel
        // reads atomically, so it is written through an AtomicU16 with release
        // ordering after the entries.
        unsafe {
            let tail = types::BufRingEntry::tail(self.ring) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
        self.unpublished = false;
    }

    /// The bytes the kernel wrote into buffer `bid`.
    pub(super) fn data(&mut self, bid: u16, len: usize) -> &mut [u8] {
        let start = bid as usize * RECV_BUFFER_SIZE;
        &mut self.buffers.bytes_mut()[start..start + len.min(RECV_BUFFER_SIZE)]
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Buffers kept for sends stay out of the ring, their pages untouched by
    /// a trim (which releases the others'), until each is given back once;
    /// at most half of those circulating are kept.
    #[test]
    fn kept_buffers_stay_resident_until_given_back_once() {
        let mut r = RecvRing::new().unwrap();
        assert_eq!(r.active, RECV_MIN);
        // A completion named buffer 3 and a send reads it; buffer 5 was
        // written and went back.
        r.data(3, 100).fill(7);
        r.data(5, 100).fill(7);
        r.keep(3);
        r.keep(3);
        assert_eq!(r.kept.len(), 1, "kept twice counts once");
        // Another buffer came and went: the period was light, so a trim
        // hands every page back but the kept buffer's.
        r.recycle(4);
        r.end_batch();
        r.trim();
        assert!(
            r.data(3, 100).iter().all(|&b| b == 7),
            "a kept buffer's pages were released"
        );
        assert!(
            r.data(5, 100).iter().all(|&b| b == 0),
            "pages beside a kept buffer were kept"
        );
        assert!(r.in_ring.contains(3) && r.kept.contains(3));
        // At most half of the circulating buffers are kept.
        let mut n = 1;
        while r.may_keep() {
            r.keep(n + 4);
            n += 1;
        }
        assert_eq!(n, RECV_MIN / KEEP_SHARE);
        // Given back: into the ring again, and only once.
        let tail = r.tail;
        r.give_back(3);
        r.give_back(3);
        assert_eq!(
            r.tail,
            tail.wrapping_add(1),
            "given back twice, pushed twice"
        );
        assert!(r.may_keep());
        for bid in 5..n + 4 {
            r.give_back(bid);
        }
        assert!(r.kept.is_empty());
        r.end_batch();
        r.trim();
        assert!(
            r.data(3, 100).iter().all(|&b| b == 0),
            "pages not handed back once none is kept"
        );
    }
}
