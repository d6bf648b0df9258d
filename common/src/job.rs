//! The engine area of a pool: one SNOO_MPI job at a time, laid out for its N ranks.
//!
//! ```text
//! engine offset + 0      job header (64 bytes)
//!   +0  u32 state        0 free, 1 forming (ranks are joining), 2 running
//!   +4  u32 ranks        N
//!   +8  u32 ring log2    data ring capacity of every channel, in bytes (log2)
//!   +12 u32 mailbox log2 mailbox capacity of every channel, in words (log2)
//!   +16 u64 job id       bumped by every job that forms on this pool
//!   +24 u32 finalized    ranks that have called Finalize
//!   +28 u32 wire version the register-word format the job's ranks speak
//!                        (register::WIRE_VERSION): a rank of another build is refused at Init
//! engine offset + 64     rank table: N slots of 128 bytes
//!   line 0 (written at Init): +0 u32 state (0 free, 1 claimed, 2 ready, 3 finalized, 4 claiming)
//!                            +4 u32 peer id, +8 u64 peer generation (from the peer table),
//!                            +16 u32 doorbell vector the rank sleeps on
//!   line 1 (hot): +0 u32 sleeping — set by the rank before it sleeps on its vector; a sender rings
//!                 the doorbell only when it is set
//! then, page aligned      channels: for every ordered pair (i, j), i != j, in order i*N + j:
//!                         a mailbox (word FIFO, i produces, j consumes) then a data ring
//! then, page aligned      heaps: the rest of the pool, split evenly (whole pages) between the
//!                         ranks, rank r's at heaps + r * heap_bytes. A rank allocates its
//!                         rendezvous send buffers there (SNOO_MPI_Alloc_mem); other ranks only
//!                         read them, and only the range a BUFFER word names, checked first.
//! ```
//!
//! Every rank derives the same layout from N and the engine area's size (the largest ring that
//! fits, between [`MIN_RING`] and [`MAX_RING`]); the rank that forms the job writes the parameters,
//! the others check them.

use crate::layout::{PoolGeometry, PAGE};

/// Smallest data ring per channel.
pub const MIN_RING: usize = 16 << 10;
/// Largest data ring per channel: more does not help bandwidth once the ring exceeds the caches.
pub const MAX_RING: usize = 4 << 20;
/// Mailbox words per channel.
pub const MAILBOX_WORDS: usize = 1024;
/// Bytes of the job header.
pub const JOB_HEADER: usize = 64;
/// Bytes of a rank-table slot: a cold line and a hot line.
pub const RANK_SLOT: usize = 128;
/// Most ranks in a job.
pub const MAX_RANKS: u32 = 1024;

pub const JOB_STATE: usize = 0;
pub const JOB_RANKS: usize = 4;
pub const JOB_RING_LOG2: usize = 8;
pub const JOB_MAILBOX_LOG2: usize = 12;
pub const JOB_ID: usize = 16;
pub const JOB_FINALIZED: usize = 24;
pub const JOB_WIRE: usize = 28;

pub const RANK_STATE: usize = 0;
pub const RANK_PEER: usize = 4;
pub const RANK_GENERATION: usize = 8;
pub const RANK_VECTOR: usize = 16;
pub const RANK_SLEEPING: usize = 64;

/// Bytes a mailbox of `words` words takes: two index lines, then the slots.
pub const fn mailbox_footprint(words: usize) -> usize {
    128 + 8 * words
}

/// Bytes a data ring of `bytes` capacity takes: two index lines, then the data.
pub const fn ring_footprint(bytes: usize) -> usize {
    128 + bytes
}

/// Job states.
pub mod job_state {
    pub const FREE: u32 = 0;
    pub const FORMING: u32 = 1;
    pub const RUNNING: u32 = 2;
}

/// Rank-slot states.
pub mod rank_state {
    pub const FREE: u32 = 0;
    pub const CLAIMED: u32 = 1;
    pub const READY: u32 = 2;
    pub const FINALIZED: u32 = 3;
    /// Being taken: the claimer won the slot and is writing its fields.
    pub const CLAIMING: u32 = 4;
}

/// The job does not fit the pool.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JobLayoutError {
    #[error("a job needs between 1 and {MAX_RANKS} ranks, got {0}")]
    Ranks(u32),
    #[error("a pool of {pool} bytes is too small for {ranks} ranks: it needs at least {needed} bytes (snoo-hostd --size {needed})")]
    TooSmall { pool: u64, ranks: u32, needed: u64 },
}

/// Offsets of everything in the engine area, for a job of `ranks` ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLayout {
    pub ranks: u32,
    pub header: usize,
    pub rank_table: usize,
    pub channels: usize,
    pub mailbox_words: usize,
    pub ring_bytes: usize,
    channel_stride: usize,
    /// Offset of rank 0's heap, and bytes of every rank's heap (0 when the pool has no room).
    pub heaps: usize,
    pub heap_bytes: usize,
}

impl JobLayout {
    fn with_ring(geometry: &PoolGeometry, ranks: u32, ring: usize) -> Option<JobLayout> {
        let header = geometry.engine_offset as usize;
        let rank_table = header + JOB_HEADER;
        let channels = (rank_table + ranks as usize * RANK_SLOT).next_multiple_of(PAGE);
        let stride = (mailbox_footprint(MAILBOX_WORDS) + ring_footprint(ring)).next_multiple_of(64);
        let pairs = ranks as usize * (ranks as usize - 1);
        let end = channels.checked_add(pairs.checked_mul(stride)?)?;
        if end as u64 > geometry.pool_size {
            return None;
        }
        let heaps = end.next_multiple_of(PAGE);
        let rest = usize::try_from(geometry.pool_size)
            .ok()?
            .saturating_sub(heaps);
        let heap_bytes = (rest / ranks as usize) / PAGE * PAGE;
        Some(JobLayout {
            ranks,
            header,
            rank_table,
            channels,
            mailbox_words: MAILBOX_WORDS,
            ring_bytes: ring,
            channel_stride: stride,
            heaps,
            heap_bytes,
        })
    }

    /// The layout every rank of an N-rank job computes: the largest ring that fits.
    pub fn new(geometry: &PoolGeometry, ranks: u32) -> Result<JobLayout, JobLayoutError> {
        if ranks == 0 || ranks > MAX_RANKS {
            return Err(JobLayoutError::Ranks(ranks));
        }
        let mut ring = MAX_RING;
        while ring >= MIN_RING {
            if let Some(l) = Self::with_ring(geometry, ranks, ring) {
                return Ok(l);
            }
            ring /= 2;
        }
        Err(JobLayoutError::TooSmall {
            pool: geometry.pool_size,
            ranks,
            needed: Self::pool_size_for(ranks, MIN_RING, geometry.max_peers),
        })
    }

    /// The pool size (a power of two) an N-rank job needs for rings of `ring` bytes.
    pub fn pool_size_for(ranks: u32, ring: usize, max_peers: u32) -> u64 {
        let stride = (mailbox_footprint(MAILBOX_WORDS) + ring_footprint(ring)).next_multiple_of(64);
        let pairs = ranks as u64 * u64::from(ranks.saturating_sub(1));
        let engine = (JOB_HEADER as u64 + u64::from(ranks) * RANK_SLOT as u64)
            .next_multiple_of(PAGE as u64)
            + pairs * stride as u64;
        PoolGeometry::size_for(engine, max_peers)
    }

    /// Offset of rank `r`'s slot, if `r` is a rank of the job.
    pub fn rank_slot(&self, r: u32) -> Option<usize> {
        (r < self.ranks).then(|| self.rank_table + r as usize * RANK_SLOT)
    }

    /// Offsets of the mailbox and the data ring carrying traffic from rank `from` to rank `to`.
    pub fn channel(&self, from: u32, to: u32) -> Option<(usize, usize)> {
        if from >= self.ranks || to >= self.ranks || from == to {
            return None;
        }
        // Pairs (i, j) with i != j, numbered i*(N-1) + (j adjusted for the missing diagonal).
        let idx = from as usize * (self.ranks as usize - 1)
            + if to > from { to - 1 } else { to } as usize;
        let mailbox = self.channels + idx * self.channel_stride;
        Some((mailbox, mailbox + mailbox_footprint(self.mailbox_words)))
    }

    /// Offset and length of rank `r`'s heap, if `r` is a rank of the job (the length may be 0).
    pub fn heap(&self, r: u32) -> Option<(usize, usize)> {
        (r < self.ranks).then(|| (self.heaps + r as usize * self.heap_bytes, self.heap_bytes))
    }

    /// True if `len` bytes at `offset` lie wholly inside rank `r`'s heap (the check a receiver
    /// makes on a BUFFER word before reading).
    pub fn in_heap(&self, r: u32, offset: u64, len: u64) -> bool {
        let Some((start, size)) = self.heap(r) else {
            return false;
        };
        let (start, end) = (start as u64, (start + size) as u64);
        offset >= start && offset.checked_add(len).is_some_and(|e| e <= end)
    }

    /// One past the last byte of the channels (the heaps follow, page aligned).
    pub fn end(&self) -> usize {
        let pairs = self.ranks as usize * (self.ranks as usize - 1);
        self.channels + pairs * self.channel_stride
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_fit_and_do_not_overlap() {
        let g = PoolGeometry::new(64 << 20, 64).unwrap();
        for n in [1u32, 2, 3, 4, 8] {
            let l = JobLayout::new(&g, n).unwrap();
            assert!(l.end() as u64 <= g.pool_size);
            assert!(l.channels >= l.rank_table + n as usize * RANK_SLOT);
            let mut spans: Vec<(usize, usize)> = Vec::new();
            for i in 0..n {
                for j in 0..n {
                    if let Some((m, r)) = l.channel(i, j) {
                        assert_eq!(m % 64, 0);
                        spans.push((m, r + ring_footprint(l.ring_bytes)));
                    }
                }
            }
            assert_eq!(spans.len(), (n * (n - 1)) as usize);
            spans.sort();
            for w in spans.windows(2) {
                assert!(w[0].1 <= w[1].0, "channels overlap for n={n}");
            }
            assert!(l.channel(0, 0).is_none() && l.channel(n, 0).is_none());
            // Heaps: after the channels, page aligned, disjoint, inside the pool.
            let mut prev = l.end();
            for r in 0..n {
                let (h, len) = l.heap(r).unwrap();
                assert!(h >= prev && h % PAGE == 0 && len % PAGE == 0);
                prev = h + len;
                assert!(l.in_heap(r, h as u64, len as u64));
                assert!(!l.in_heap(r, h as u64, len as u64 + 1));
                assert!(!l.in_heap(r, h as u64 - 1, 1) || r > 0);
                assert!(!l.in_heap(r, u64::MAX, 2), "no overflow");
            }
            assert!(prev as u64 <= g.pool_size);
            assert!(l.heap(n).is_none() && !l.in_heap(n, l.heaps as u64, 1));
        }
        assert_eq!(JobLayout::new(&g, 2).unwrap().ring_bytes, MAX_RING);
    }

    #[test]
    fn too_small_pools_say_what_they_need() {
        let g = PoolGeometry::new(64 << 10, 64).unwrap();
        let e = JobLayout::new(&g, 8).unwrap_err();
        let JobLayoutError::TooSmall { needed, .. } = e else {
            panic!("{e:?}")
        };
        assert!(needed.is_power_of_two());
        let big = PoolGeometry::new(needed, 64).unwrap();
        assert!(
            JobLayout::new(&big, 8).is_ok(),
            "the advertised size is enough"
        );
        assert_eq!(JobLayout::new(&g, 0), Err(JobLayoutError::Ranks(0)));
        for n in [2u32, 4, 8, 16] {
            let size = JobLayout::pool_size_for(n, MAX_RING, 64);
            let l = JobLayout::new(&PoolGeometry::new(size, 64).unwrap(), n).unwrap();
            assert_eq!(
                l.ring_bytes, MAX_RING,
                "pool_size_for({n}) gives full rings"
            );
        }
    }
}
