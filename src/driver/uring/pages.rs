//! Memory for the worker's buffer pools: an anonymous mapping whose pages
//! become resident only when the kernel or the driver first writes them, and
//! can be handed back when the pool shrinks; and a set of 256 buffer ids.

use std::io;

use memmap2::{MmapMut, UncheckedAdvice};

/// Pool memory: `len` bytes mapped, none resident until touched.
pub(super) struct Pages {
    map: MmapMut,
}

impl Pages {
    pub(super) fn new(len: usize) -> io::Result<Pages> {
        Ok(Pages {
            map: MmapMut::map_anon(len)?,
        })
    }

    /// Base address (page-aligned; the mapping never moves).
    pub(super) fn base(&self) -> *const u8 {
        self.map.as_ptr()
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.map
    }

    pub(super) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }

    /// Hand the pages of `offset..offset + len` (page multiples) back to the
    /// kernel; they read as zeroes when next touched.
    ///
    /// # Safety
    /// Nobody may read or write those bytes while this runs, the kernel
    /// included, and no completion still to come may expect what was in them.
    pub(super) unsafe fn release(&self, offset: usize, len: usize) {
        // SAFETY: the range lies in this mapping (checked by memmap2), which
        // is private and anonymous, so DONTNEED only drops its pages; the
        // caller guarantees nothing uses their contents.
        if let Err(e) = unsafe {
            self.map
                .unchecked_advise_range(UncheckedAdvice::DontNeed, offset, len)
        } {
            tracing::debug!("madvise(DONTNEED) of pool pages: {e}");
        }
    }
}

/// A set of buffer ids below 256.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(super) struct Ids([u64; 4]);

impl Ids {
    pub(super) fn insert(&mut self, id: u16) {
        self.0[id as usize / 64] |= 1 << (id % 64);
    }

    pub(super) fn remove(&mut self, id: u16) {
        self.0[id as usize / 64] &= !(1 << (id % 64));
    }

    pub(super) fn contains(&self, id: u16) -> bool {
        self.0[id as usize / 64] & (1 << (id % 64)) != 0
    }

    /// Take the lowest id out, if any.
    pub(super) fn pop_lowest(&mut self) -> Option<u16> {
        let (w, word) = self.0.iter().enumerate().find(|(_, w)| **w != 0)?;
        let id = (w * 64) as u16 + word.trailing_zeros() as u16;
        self.remove(id);
        Some(id)
    }

    /// How many ids are in the set.
    pub(super) fn len(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// How many ids in `from..to` are in the set.
    pub(super) fn count_in(&self, from: u16, to: u16) -> usize {
        (from..to).filter(|&i| self.contains(i)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_pop_lowest_first_and_count_ranges() {
        let mut ids = Ids::default();
        assert!(ids.is_empty() && ids.pop_lowest().is_none());
        for i in [200, 3, 64, 63, 255] {
            ids.insert(i);
        }
        assert_eq!(ids.count_in(0, 255) + ids.contains(255) as usize, 5);
        assert_eq!(ids.count_in(60, 65), 2);
        assert!(ids.contains(255) && !ids.contains(254));
        assert_eq!(ids.len(), 5);
        let order: Vec<u16> = std::iter::from_fn(|| ids.pop_lowest()).collect();
        assert_eq!(order, [3, 63, 64, 200, 255]);
        assert!(ids.is_empty());
    }

    #[test]
    fn released_pages_read_as_zero_and_leave_the_rest() {
        let mut p = Pages::new(4 * 4096).unwrap();
        p.bytes_mut().fill(7);
        // SAFETY: nothing else uses this mapping.
        unsafe { p.release(4096, 2 * 4096) };
        let b = p.bytes();
        assert!(b[..4096].iter().all(|&x| x == 7));
        assert!(b[4096..3 * 4096].iter().all(|&x| x == 0));
        assert!(b[3 * 4096..].iter().all(|&x| x == 7));
    }
}
