//! A send by reference (`SENDMSG` over iovecs): the parts with an owner
//! ([`Part::shared`]) are referenced where they lie and their owners held
//! until the completion; the rest is copied into the send's own area.

use std::sync::Arc;

use crate::driver::Part;

/// A `VecSend` keeps a copy area up to this size when it is recycled.
const VEC_COPY_KEEP: usize = 16 * 1024;
/// Most bytes a `VecSend` copies (a connection's own output can be large).
const VEC_COPY_MAX: usize = 64 * 1024;
/// Most bytes in one `VecSend` (its length must fit `SendOp`'s u32).
pub(super) const VEC_SEND_MAX: usize = 1 << 30;
/// Most iovecs in one `SENDMSG` (Linux's `UIO_MAXIOV`).
const MAX_IOVECS: usize = 1024;

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
    pub(super) fn new() -> Box<VecSend> {
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
    pub(super) fn fill(&mut self, parts: &[Part<'_>]) -> usize {
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
    pub(super) fn advance(&mut self, mut n: usize) {
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
    pub(super) fn msghdr(&mut self) -> *const libc::msghdr {
        self.msg.msg_iov = self.iov[self.first..].as_mut_ptr();
        self.msg.msg_iovlen = self.iov.len() - self.first;
        &self.msg
    }

    /// Done: drop the references and copies, keep the allocations.
    pub(super) fn clear(&mut self) {
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
}
