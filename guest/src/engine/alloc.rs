//! This rank's heap in the pool (`alloc_mem`, MPI_Alloc_mem), and which buffers lie in it: large
//! sends from there take the single-copy RENDEZVOUS path, and a receive into it may share the copy
//! with the sender. The allocator itself is [`Heap`](crate::heap::Heap); this module ties it to
//! the pool and to the sends and receives in flight.

use super::Engine;
use crate::error::{Error, Result};
use snoo_common::job::JobLayout;
use snoo_common::Shm;
use std::borrow::Borrow;

/// The pool offset of `len` bytes at `ptr` if they lie in `rank`'s heap (a free function so that
/// it can be called while a link is borrowed).
pub(super) fn own_heap_offset(
    shm: &Shm,
    layout: &JobLayout,
    rank: u32,
    ptr: *const u8,
    len: usize,
) -> Option<u64> {
    let off = (ptr as usize).checked_sub(shm.as_ptr() as usize)? as u64;
    layout.in_heap(rank, off, len as u64).then_some(off)
}

impl Engine {
    /// Allocates `len` zeroed bytes of this rank's heap for a communicator's shared-memory
    /// collectives; their pool offset, or `None` when the heap has no room.
    pub(crate) fn alloc_area(&mut self, len: usize) -> Option<usize> {
        let off = self.heap.alloc(len)?;
        // In bounds: the heap lies inside the pool (JobLayout).
        self.shm().fill_zero(off, len);
        Some(off)
    }

    /// Pool offset and length of rank `r`'s heap.
    pub(crate) fn heap(&self, r: u32) -> Option<(usize, usize)> {
        self.layout.heap(r)
    }

    /// The pool.
    pub(crate) fn shm(&self) -> &Shm {
        Borrow::<Shm>::borrow(&self.pool)
    }

    /// How long a wait may see no progress at all (SNOO_TIMEOUT).
    pub(crate) fn timeout(&self) -> std::time::Duration {
        self.timeout
    }

    /// The pool offset of `len` bytes at `ptr` if they lie in this rank's heap.
    pub(super) fn heap_offset(&self, ptr: *const u8, len: usize) -> Option<u64> {
        own_heap_offset(self.pool.borrow(), &self.layout, self.rank, ptr, len)
    }

    /// Allocates `size` zeroed bytes in this rank's heap in the pool (MPI_Alloc_mem). Large
    /// sends from there take the single-copy RENDEZVOUS path.
    pub(crate) fn alloc_mem(&mut self, size: usize) -> Result<*mut u8> {
        let off = self.heap.alloc(size).ok_or(Error::NoMem {
            size,
            largest: self.heap.largest_free(),
            heap: self.heap.size(),
        })?;
        let shm = self.dev.shm();
        // In bounds: the heap lies inside the pool (JobLayout).
        shm.fill_zero(off, size);
        Ok(shm.as_ptr().wrapping_add(off))
    }

    /// Frees a block from [`Engine::alloc_mem`]. Refused while a send from it is in flight.
    pub(crate) fn free_mem(&mut self, ptr: *mut u8) -> Result<()> {
        let not_ours = || Error::Arg("not a pointer from SNOO_MPI_Alloc_mem".into());
        let off = (ptr as usize)
            .checked_sub(self.dev.shm().as_ptr() as usize)
            .ok_or_else(not_ours)?;
        let len = self.heap.block_len(off).ok_or_else(not_ours)?;
        let block = ptr as usize..ptr as usize + len;
        // A send still reading the block (one that copied its rest away does not), or a live
        // sender still writing its share of a split RENDEZVOUS into it (even for a receive that
        // was cancelled: the sender does not know).
        let busy = self.links.iter().flatten().any(|l| {
            l.outgoing
                .iter()
                .any(|o| o.owned.is_none() && block.contains(&(o.ptr as usize)))
                || (!l.health.dead
                    && l.streams.iter().any(|s| {
                        s.split
                            .is_some_and(|p| p < block.end && block.start < p.saturating_add(s.len))
                    }))
        });
        if busy {
            return Err(Error::Arg(
                "the buffer is still being sent or received (wait for that first)".into(),
            ));
        }
        self.heap.free(off);
        Ok(())
    }
}
