//! This rank's heap in the pool (see `snoo_common::job`): where `SNOO_MPI_Alloc_mem` buffers live.
//!
//! A large send from such a buffer takes the single-copy RENDEZVOUS path: the receiver reads the
//! payload where it is instead of the sender copying it into the data ring first. The heap is
//! private bookkeeping over pool offsets (nothing of it is stored in shared memory, so no peer can
//! corrupt it): first fit over a free list ordered by offset, neighbours merged on free, every
//! block a whole number of cache lines so that two buffers never share one.

use std::collections::{BTreeMap, HashMap};

/// Allocation granularity and alignment: one cache line.
pub const GRAIN: usize = 64;

#[derive(Debug)]
pub struct Heap {
    // Bytes spanned (where is JobLayout's business: `in_heap` is the bounds check).
    len: usize,
    // Free blocks: offset -> length.
    free: BTreeMap<usize, usize>,
    // Live blocks: offset -> length (as rounded up).
    used: HashMap<usize, usize>,
}

impl Heap {
    /// The heap of `len` bytes at pool offset `start` (both multiples of [`GRAIN`]).
    pub fn new(start: usize, len: usize) -> Heap {
        let mut free = BTreeMap::new();
        if len >= GRAIN {
            free.insert(start, len / GRAIN * GRAIN);
        }
        Heap {
            len,
            free,
            used: HashMap::new(),
        }
    }

    /// Bytes the heap spans.
    pub fn size(&self) -> usize {
        self.len
    }

    /// The largest block that could be allocated now.
    pub fn largest_free(&self) -> usize {
        self.free.values().copied().max().unwrap_or(0)
    }

    /// Allocates `size` bytes (at least one grain); returns the pool offset, or `None` if no free
    /// block is large enough.
    pub fn alloc(&mut self, size: usize) -> Option<usize> {
        let want = size.max(1).checked_next_multiple_of(GRAIN)?;
        let (&off, &len) = self.free.iter().find(|(_, &len)| len >= want)?;
        self.free.remove(&off);
        if len > want {
            self.free.insert(off + want, len - want);
        }
        self.used.insert(off, want);
        Some(off)
    }

    /// The length of the live block starting at `off`.
    pub fn block_len(&self, off: usize) -> Option<usize> {
        self.used.get(&off).copied()
    }

    /// Frees the block allocated at `off`. False if `off` is not the start of a live block.
    pub fn free(&mut self, off: usize) -> bool {
        let Some(mut len) = self.used.remove(&off) else {
            return false;
        };
        let mut start = off;
        // Merge with the free block that follows and the one that ends where this one starts.
        if let Some(next) = self.free.remove(&(off + len)) {
            len += next;
        }
        if let Some((&prev, &plen)) = self.free.range(..off).next_back() {
            if prev + plen == off {
                self.free.remove(&prev);
                start = prev;
                len += plen;
            }
        }
        self.free.insert(start, len);
        true
    }

    /// Blocks allocated and not freed.
    #[cfg(test)]
    pub fn live(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fit_split_and_merge() {
        let mut h = Heap::new(4096, 1024);
        let a = h.alloc(1).unwrap();
        let b = h.alloc(100).unwrap();
        let c = h.alloc(64).unwrap();
        assert_eq!((a, b, c), (4096, 4160, 4288));
        assert!(h.alloc(1024).is_none(), "no block that large is left");
        assert!(h.free(b));
        assert!(!h.free(b), "double free refused");
        assert!(!h.free(4097), "not a block start");
        // The hole of b (128 bytes) is reused first fit.
        assert_eq!(h.alloc(128), Some(4160));
        assert!(h.free(4160) && h.free(a) && h.free(c));
        assert_eq!(h.live(), 0);
        assert_eq!(
            h.largest_free(),
            1024,
            "everything merged back into one block"
        );
        assert_eq!(h.alloc(1024), Some(4096));
    }

    #[test]
    fn no_room() {
        let mut empty = Heap::new(0, 0);
        assert!(empty.alloc(1).is_none());
        assert_eq!(Heap::new(0, 64).alloc(usize::MAX), None);
    }
}
