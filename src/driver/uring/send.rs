//! Sends: what a send in flight holds ([`SendKind`]) and the pools it takes
//! its memory from. A send's memory belongs to its op until the completion
//! arrives: a registered buffer or a pooled heap buffer off its free list, a
//! caller's buffer taken over whole, or a boxed [`VecSend`] whose iovecs
//! point at its own copies and at shared owners it holds.

use std::sync::Arc;

use io_uring::{opcode, squeue, types};

use super::ring::resident_buffer;
use crate::driver::Part;

/// Registered send buffers: count and size.
const SEND_BUFFERS: usize = 256;
const SEND_BUFFER_SIZE: usize = 64 * 1024;
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
/// A `VecSend` keeps a copy area up to this size when it is recycled.
const VEC_COPY_KEEP: usize = 16 * 1024;
/// Most bytes a `VecSend` copies (a connection's own output can be large).
const VEC_COPY_MAX: usize = SEND_BUFFER_SIZE;
/// Most bytes in one `VecSend` (its length must fit `SendOp`'s u32).
const VEC_SEND_MAX: usize = 1 << 30;
/// Most iovecs in one `SENDMSG` (Linux's `UIO_MAXIOV`).
const MAX_IOVECS: usize = 1024;
/// A caller's buffer ([`SendPools::prepare_owned`]) is taken over rather
/// than copied from this many bytes up, or whenever no registered buffer is
/// free: below it, a copy into a registered buffer costs less than the
/// allocation the caller then makes for its next output.
pub(super) const OWNED_MIN: usize = 4096;
/// Most bytes in a buffer taken over (its length must fit `SendOp`'s u32).
pub(super) const OWNED_MAX: usize = VEC_SEND_MAX;

/// Where a send's bytes are.
#[derive(Debug)]
pub(super) enum SendKind {
    /// Copied into registered buffer `i` (`WRITE_FIXED`).
    Registered(u16),
    /// Copied into pooled heap buffer `i` (`SEND`).
    Heap(u16),
    /// Referenced in place (`SENDMSG`).
    Vectored(Box<VecSend>),
    /// A caller's buffer, taken over: `owned[i]` (`SEND`).
    Owned(u32),
}

/// A send in flight and how much of it is left.
#[derive(Debug)]
pub(super) struct SendOp {
    pub kind: SendKind,
    pub offset: u32,
    pub len: u32,
}

impl SendOp {
    /// `n` more bytes went out (a short write): the rest goes next.
    pub(super) fn advance(&mut self, n: u32) {
        self.offset += n;
        if let SendKind::Vectored(v) = &mut self.kind {
            v.advance(n as usize);
        }
    }

    /// Whether all of it went out.
    pub(super) fn done(&self) -> bool {
        self.offset >= self.len
    }
}

/// A send straight from the caller's shared buffers (`SENDMSG` over
/// iovecs), for publications queued to many connections at once: the parts
/// with an owner are referenced where they lie, and the owners held until the
/// completion; the other parts are copied into `copied`. Boxed, so `msg` and
/// `iov` stay put while the kernel may read them.
pub(super) struct VecSend {
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

/// The memory sends are made from. Registered buffers first; when all are
/// in flight, heap buffers; sends mostly of shared bytes by reference.
pub(super) struct SendPools {
    registered: Box<[u8]>,
    free_registered: Vec<u16>,
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
    /// Idle `VecSend`s, boxed already: each moves into a send, where it
    /// must not move while the kernel reads it.
    #[allow(clippy::vec_box)]
    free_vec: Vec<Box<VecSend>>,
}

impl SendPools {
    pub(super) fn new() -> SendPools {
        SendPools {
            registered: resident_buffer(SEND_BUFFERS * SEND_BUFFER_SIZE),
            free_registered: (0..SEND_BUFFERS as u16).rev().collect(),
            heap: Vec::new(),
            free_heap: Vec::new(),
            heap_allocated: 0,
            owned: Vec::new(),
            free_owned: Vec::new(),
            free_vec: Vec::new(),
        }
    }

    /// Whether a registered buffer is free.
    pub(super) fn registered_free(&self) -> bool {
        !self.free_registered.is_empty()
    }

    /// The registered buffers, for `register_buffers`.
    pub(super) fn iovecs(&self) -> Vec<libc::iovec> {
        (0..SEND_BUFFERS)
            .map(|i| libc::iovec {
                iov_base: self.registered[i * SEND_BUFFER_SIZE..].as_ptr() as *mut libc::c_void,
                iov_len: SEND_BUFFER_SIZE,
            })
            .collect()
    }

    /// A send of `parts`, in order (as much as one send takes), or `None`
    /// when no buffer is free.
    pub(super) fn prepare(&mut self, parts: &[Part<'_>]) -> Option<SendOp> {
        let shared: usize = parts
            .iter()
            .filter(|p| p.owner().is_some())
            .map(|p| p.bytes().len())
            .sum();
        let (kind, n) = if shared >= ZERO_COPY_MIN {
            let mut v = self.free_vec.pop().unwrap_or_else(VecSend::new);
            let n = v.fill(parts);
            (SendKind::Vectored(v), n)
        } else if let Some(buf) = self.free_registered.pop() {
            let start = buf as usize * SEND_BUFFER_SIZE;
            let dst = &mut self.registered[start..start + SEND_BUFFER_SIZE];
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
            (SendKind::Registered(buf), n)
        } else {
            let id = self.free_heap.pop().or_else(|| {
                (self.heap.len() < MAX_HEAP_SENDS).then(|| {
                    self.heap.push(Vec::new());
                    (self.heap.len() - 1) as u16
                })
            })?;
            let dst = &mut self.heap[id as usize];
            dst.clear();
            let want: usize = parts.iter().map(|p| p.bytes().len()).sum();
            if dst.capacity() == 0 {
                self.heap_allocated += 1;
            }
            // One allocation of the size needed, not a chain of regrowths.
            dst.reserve_exact(want.min(HEAP_SEND_MAX));
            for part in parts {
                let part = part.bytes();
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
            SendKind::Vectored(v) => opcode::SendMsg::new(fd, v.msghdr()).build(),
            SendKind::Registered(buf) => {
                let start = *buf as usize * SEND_BUFFER_SIZE + op.offset as usize;
                let ptr = self.registered[start..].as_ptr();
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
        }
    }

    /// A send completed: its memory goes back to its pool.
    pub(super) fn release(&mut self, kind: SendKind) {
        match kind {
            SendKind::Registered(buf) => self.free_registered.push(buf),
            SendKind::Heap(id) => {
                let heap = &mut self.heap[id as usize];
                if heap.capacity() > 0 && self.heap_allocated > HEAP_KEEP {
                    *heap = Vec::new();
                    self.heap_allocated -= 1;
                }
                self.free_heap.push(id);
            }
            SendKind::Vectored(mut v) => {
                v.clear();
                if self.free_vec.len() < VEC_SEND_KEEP {
                    self.free_vec.push(v);
                }
            }
            SendKind::Owned(id) => {
                self.owned[id as usize] = Vec::new();
                self.free_owned.push(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn owned_sends_take_the_buffer_and_heap_copies_allocate_what_they_need() {
        let mut pools = SendPools::new();
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
        op.advance(4);
        assert!(!op.done());
        op.advance(4);
        assert!(op.done());
        pools.release(op.kind);
        assert_eq!(
            pools.owned[id as usize].capacity(),
            0,
            "dropped on completion"
        );
        // The entry is reused.
        let mut again = vec![1u8; 10];
        let op = pools.prepare_owned(&mut again, 0);
        assert!(matches!(op.kind, SendKind::Owned(i) if i == id));
        pools.release(op.kind);

        // With every registered buffer in flight, a small send is copied
        // into a heap buffer the size of the send, not of the largest one.
        let mut held = Vec::new();
        while pools.registered_free() {
            held.push(pools.prepare(&[Part::borrowed(b"x")]).unwrap());
        }
        let op = pools
            .prepare(&[Part::borrowed(b"small "), Part::borrowed(b"send")])
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
    }
}
