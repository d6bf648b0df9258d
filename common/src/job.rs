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

use crate::layout::{PeerState, PoolGeometry, PoolHeader, PAGE};
use crate::register::WIRE_VERSION;
use crate::ring::{ByteRing, WordFifo};
use crate::shm::Shm;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Smallest data ring per channel: what a job of [`MAX_RANKS`] ranks leaves each pair in a pool
/// linear in its ranks (docs/layout.md has the table).
pub const MIN_RING: usize = 4 << 10;
/// Largest data ring per channel: more does not help bandwidth once the ring exceeds the caches.
pub const MAX_RING: usize = 4 << 20;
/// Mailbox words per channel in jobs of up to 16 ranks.
pub const MAILBOX_WORDS: usize = 1024;
/// Fewest mailbox words per channel (larger jobs): room for many whole inline messages still.
pub const MIN_MAILBOX_WORDS: usize = 256;
/// Heap every rank gets at least, when the pool has room for it with some ring: room for
/// MPI_Alloc_mem and a few communicators' collective areas. Rings shrink before heaps do.
pub const MIN_HEAP: usize = 1 << 20;
/// Pool bytes per rank of [`JobLayout::default_pool_size`] for large jobs: a 64-rank job gets
/// 256 MiB, a 256-rank job 1 GiB.
pub const POOL_PER_RANK: u64 = 4 << 20;
/// Largest default pool of a small job: up to this much, the default gives every channel
/// [`MAX_RING`] (memory is only touched as rings fill, but the size is the host's to give).
pub const SMALL_JOB_POOL: u64 = 256 << 20;
/// Bytes of the job header.
pub const JOB_HEADER: usize = 64;
/// Bytes of a rank-table slot: a cold line and a hot line.
pub const RANK_SLOT: usize = 128;
/// Most ranks in a job.
pub const MAX_RANKS: u32 = 1024;

/// Offset in the job header of the job's state word (`JobState`).
pub const JOB_STATE: usize = 0;
/// Offset in the job header of the job's rank count N.
pub const JOB_RANKS: usize = 4;
/// Offset in the job header of log2 of every channel's data ring capacity, in bytes.
pub const JOB_RING_LOG2: usize = 8;
/// Offset in the job header of log2 of every channel's mailbox capacity, in words.
pub const JOB_MAILBOX_LOG2: usize = 12;
/// Offset in the job header of the job id (u64), bumped by every job that forms on the pool.
pub const JOB_ID: usize = 16;
/// Offset in the job header of the count of ranks that have called Finalize.
pub const JOB_FINALIZED: usize = 24;
/// Offset in the job header of the register-word format the job's ranks speak
/// (`register::WIRE_VERSION`).
pub const JOB_WIRE: usize = 28;

/// Offset in a rank-table slot of the slot's state word (`RankState`).
pub const RANK_STATE: usize = 0;
/// Offset in a rank-table slot of the rank's peer id.
pub const RANK_PEER: usize = 4;
/// Offset in a rank-table slot of the peer's generation (u64) in the peer table when it claimed
/// the slot.
pub const RANK_GENERATION: usize = 8;
/// Offset in a rank-table slot of the doorbell vector the rank sleeps on.
pub const RANK_VECTOR: usize = 16;
/// Offset in a rank-table slot of the sleeping flag, alone on the slot's second (hot) cache line:
/// set by the rank before it sleeps on its vector.
pub const RANK_SLEEPING: usize = 64;

/// Bytes a mailbox of `words` words takes: two index lines, then the slots.
pub const fn mailbox_footprint(words: usize) -> usize {
    128 + 8 * words
}

/// Bytes a data ring of `bytes` capacity takes: two index lines, then the data.
pub const fn ring_footprint(bytes: usize) -> usize {
    128 + bytes
}

/// The state of the job in a pool (the job header's `state` word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// No job: the next rank to join forms one.
    Free,
    /// A rank is laying the job out (microseconds, unless it died doing so).
    Forming,
    /// Laid out: ranks claim slots in it.
    Running,
}

impl JobState {
    /// The word stored in the pool.
    pub const fn to_raw(self) -> u32 {
        match self {
            JobState::Free => 0,
            JobState::Forming => 1,
            JobState::Running => 2,
        }
    }

    /// Decodes a state word; a value no rank writes (a buggy or hostile peer's) is `None`.
    pub const fn from_raw(v: u32) -> Option<Self> {
        match v {
            0 => Some(JobState::Free),
            1 => Some(JobState::Forming),
            2 => Some(JobState::Running),
            _ => None,
        }
    }
}

/// The state of a rank-table slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankState {
    /// Nobody holds the slot.
    Free,
    /// A rank holds it and has filled it.
    Claimed,
    /// (Reserved: written by no current rank, counted as joined.)
    Ready,
    /// The rank called Finalize.
    Finalized,
    /// Being taken: the claimer won the slot and is writing its fields.
    Claiming,
}

impl RankState {
    /// The word stored in the pool.
    pub const fn to_raw(self) -> u32 {
        match self {
            RankState::Free => 0,
            RankState::Claimed => 1,
            RankState::Ready => 2,
            RankState::Finalized => 3,
            RankState::Claiming => 4,
        }
    }

    /// Decodes a state word; a value no rank writes is `None`.
    pub const fn from_raw(v: u32) -> Option<Self> {
        match v {
            0 => Some(RankState::Free),
            1 => Some(RankState::Claimed),
            2 => Some(RankState::Ready),
            3 => Some(RankState::Finalized),
            4 => Some(RankState::Claiming),
            _ => None,
        }
    }

    /// True for a rank that has joined the job (one that already finished counts: its messages
    /// wait for the others).
    pub const fn joined(self) -> bool {
        matches!(
            self,
            RankState::Claimed | RankState::Ready | RankState::Finalized
        )
    }

    /// True while a rank holds the slot and has not finished.
    pub const fn active(self) -> bool {
        matches!(
            self,
            RankState::Claimed | RankState::Ready | RankState::Claiming
        )
    }
}

/// The raw job-state words, for code that reads or forges the pool directly (tests, tools).
pub mod job_state {
    use super::JobState;
    /// [`JobState::Free`].
    pub const FREE: u32 = JobState::Free.to_raw();
    /// [`JobState::Forming`].
    pub const FORMING: u32 = JobState::Forming.to_raw();
    /// [`JobState::Running`].
    pub const RUNNING: u32 = JobState::Running.to_raw();
}

/// The raw rank-state words, for code that reads or forges the pool directly (tests, tools).
pub mod rank_state {
    use super::RankState;
    /// [`RankState::Free`].
    pub const FREE: u32 = RankState::Free.to_raw();
    /// [`RankState::Claimed`].
    pub const CLAIMED: u32 = RankState::Claimed.to_raw();
    /// [`RankState::Ready`].
    pub const READY: u32 = RankState::Ready.to_raw();
    /// [`RankState::Finalized`].
    pub const FINALIZED: u32 = RankState::Finalized.to_raw();
    /// [`RankState::Claiming`].
    pub const CLAIMING: u32 = RankState::Claiming.to_raw();
}

/// The job does not fit the pool.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JobLayoutError {
    /// The rank count is 0 or above [`MAX_RANKS`].
    #[error("a job needs between 1 and {MAX_RANKS} ranks, got {0}")]
    Ranks(u32),
    /// The pool cannot hold the job, even with the smallest rings.
    #[error("a pool of {pool} bytes is too small for {ranks} ranks: it needs at least {needed} bytes (snoo-hostd --size {needed})")]
    TooSmall {
        /// Size of the pool, in bytes.
        pool: u64,
        /// Ranks the job asked for.
        ranks: u32,
        /// Smallest pool size that fits the job (with [`MIN_RING`] rings), in bytes.
        needed: u64,
    },
}

/// Offsets of everything in the engine area, for a job of `ranks` ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLayout {
    /// Ranks in the job (N).
    pub ranks: u32,
    /// Offset of the job header: the start of the engine area.
    pub header: usize,
    /// Offset of the rank table, right after the job header.
    pub rank_table: usize,
    /// Offset of the first channel (page aligned).
    pub channels: usize,
    /// Capacity of every channel's mailbox, in words.
    pub mailbox_words: usize,
    /// Capacity of every channel's data ring, in bytes.
    pub ring_bytes: usize,
    channel_stride: usize,
    /// Offset of rank 0's heap, and bytes of every rank's heap (0 when the pool has no room).
    pub heaps: usize,
    /// Bytes of every rank's heap: whole pages, 0 when the pool has no room.
    pub heap_bytes: usize,
}

/// Mailbox words per channel in a job of `ranks` ranks: [`MAILBOX_WORDS`] up to 16 ranks, then
/// fewer, so that the mailboxes one rank reads hold about 16 K words in all (a power of two, at
/// least [`MIN_MAILBOX_WORDS`]).
pub const fn mailbox_words_for(ranks: u32) -> usize {
    let r = if ranks < 16 { 16 } else { ranks as usize };
    let w = (16 * MAILBOX_WORDS) / r;
    let w = 1 << (usize::BITS - 1 - w.leading_zeros());
    if w < MIN_MAILBOX_WORDS {
        MIN_MAILBOX_WORDS
    } else if w > MAILBOX_WORDS {
        MAILBOX_WORDS
    } else {
        w
    }
}

impl JobLayout {
    /// The layout with rings of `ring` bytes, if it fits the pool with at least `min_heap` bytes
    /// of heap per rank.
    fn with_ring(
        geometry: &PoolGeometry,
        ranks: u32,
        ring: usize,
        min_heap: usize,
    ) -> Option<JobLayout> {
        let header = geometry.engine_offset as usize;
        let rank_table = header + JOB_HEADER;
        let channels = (rank_table + ranks as usize * RANK_SLOT).next_multiple_of(PAGE);
        let words = mailbox_words_for(ranks);
        let stride = (mailbox_footprint(words) + ring_footprint(ring)).next_multiple_of(64);
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
        if heap_bytes < min_heap {
            return None;
        }
        Some(JobLayout {
            ranks,
            header,
            rank_table,
            channels,
            mailbox_words: words,
            ring_bytes: ring,
            channel_stride: stride,
            heaps,
            heap_bytes,
        })
    }

    /// The layout every rank of an N-rank job computes: the largest ring that leaves every rank
    /// [`MIN_HEAP`] of heap; in a pool too small for that, the largest ring that fits at all.
    pub fn new(geometry: &PoolGeometry, ranks: u32) -> Result<JobLayout, JobLayoutError> {
        if ranks == 0 || ranks > MAX_RANKS {
            return Err(JobLayoutError::Ranks(ranks));
        }
        for min_heap in [MIN_HEAP, 0] {
            let mut ring = MAX_RING;
            while ring >= MIN_RING {
                if let Some(l) = Self::with_ring(geometry, ranks, ring, min_heap) {
                    return Ok(l);
                }
                ring /= 2;
            }
        }
        Err(JobLayoutError::TooSmall {
            pool: geometry.pool_size,
            ranks,
            needed: Self::pool_size_for(ranks, MIN_RING, geometry.max_peers),
        })
    }

    /// The pool size (a power of two) an N-rank job needs for rings of `ring` bytes (with no
    /// heap).
    pub fn pool_size_for(ranks: u32, ring: usize, max_peers: u32) -> u64 {
        let words = mailbox_words_for(ranks);
        let stride = (mailbox_footprint(words) + ring_footprint(ring)).next_multiple_of(64);
        let pairs = ranks as u64 * u64::from(ranks.saturating_sub(1));
        let engine = (JOB_HEADER as u64 + u64::from(ranks) * RANK_SLOT as u64)
            .next_multiple_of(PAGE as u64)
            + pairs * stride as u64;
        PoolGeometry::size_for(engine, max_peers)
    }

    /// The pool a job of `ranks` ranks gets by default (snoo-run's own pool): linear in the
    /// ranks, [`POOL_PER_RANK`] each, and for small jobs up to [`SMALL_JOB_POOL`] what gives every
    /// channel a [`MAX_RING`] ring and every rank 4 MiB of heap. A power of two.
    pub fn default_pool_size(ranks: u32, max_peers: u32) -> u64 {
        let n = u64::from(ranks.max(1));
        let full = Self::pool_size_for(ranks, MAX_RING, max_peers) + n * (4 << 20);
        (n * POOL_PER_RANK)
            .max(full.min(SMALL_JOB_POOL))
            .max(Self::pool_size_for(ranks, MIN_RING, max_peers) + n * MIN_HEAP as u64)
            .next_power_of_two()
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

    /// Offset and length of the whole channel from rank `from` to rank `to` (its mailbox, then
    /// its data ring).
    pub fn channel_span(&self, from: u32, to: u32) -> Option<(usize, usize)> {
        self.channel(from, to)
            .map(|(mailbox, _)| (mailbox, self.channel_stride))
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

/// The parameters the rank that formed the job wrote in its header: untrusted words, which a
/// joining rank compares with the layout it computed itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobParams {
    /// Ranks in the job.
    pub ranks: u32,
    /// log2 of every channel's data ring, in bytes.
    pub ring_log2: u32,
    /// log2 of every channel's mailbox, in words.
    pub mailbox_log2: u32,
    /// The register-word format the job's ranks speak (`register::WIRE_VERSION`).
    pub wire: u32,
}

/// Who is in the job now, counted over its rank table (see [`JobTable::members`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Members {
    /// Slots held by a peer still alive with the generation it claimed with.
    pub live: u32,
    /// Slots held by a peer that died (or was replaced) without finishing.
    pub dead: u32,
    /// Ranks that called Finalize.
    pub finished: u32,
    /// Slots being claimed right now: their peer and generation are not written yet, so they
    /// are neither live nor dead (a claim takes a few stores).
    pub claiming: u32,
}

/// Accessor for the job header and rank table of a pool, as [`PoolHeader`] is for the pool
/// header: it owns the offsets and the atomic protocol of claiming, forming and leaving a job, so
/// no caller touches a raw offset.
///
/// Every word here is written by other VMs too. Offsets come from a [`JobLayout`] computed for
/// this pool (inside it by construction); values read are untrusted: state words decode to
/// `Option`s, counts are clamped, and peer ids are checked against the peer table.
///
/// ```
/// # use snoo_common::Shm;
/// # use std::ptr::NonNull;
/// use snoo_common::job::{JobLayout, JobState, JobTable, RankState};
/// use snoo_common::layout::PoolGeometry;
///
/// # let mut mem = vec![0u64; (1 << 20) / 8].into_boxed_slice();
/// # let ptr = NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
/// # // SAFETY: the 8-aligned buffer moves into the Shm, which keeps it alive.
/// # let shm = unsafe { Shm::from_raw(ptr, 1 << 20, Box::new(mem)) };
/// let layout = JobLayout::new(&PoolGeometry::new(1 << 20, 8).unwrap(), 2).unwrap();
/// let job = JobTable::new(&shm, &layout);
/// assert_eq!(job.state(), Some(JobState::Free));
/// assert!(job.transition(JobState::Free, JobState::Forming));
/// job.form();
/// assert_eq!(job.state(), Some(JobState::Running));
/// assert!(job.try_claim(1, 7, 1, 0));
/// assert!(!job.try_claim(1, 8, 1, 0), "a slot is claimed once");
/// assert_eq!(job.rank_state(1), Some(RankState::Claimed));
/// assert_eq!(job.joined(), 1);
/// assert!(!job.leave(1), "rank 0 is still in the job");
/// ```
pub struct JobTable<'a> {
    shm: &'a Shm,
    layout: JobLayout,
}

impl<'a> JobTable<'a> {
    /// The job area of `shm` as `layout` lays it out. The layout must have been computed for this
    /// pool's geometry (`JobLayout::new` with the geometry `PoolHeader::open` returned).
    pub fn new(shm: &'a Shm, layout: &JobLayout) -> Self {
        debug_assert!(
            layout.end() <= shm.len(),
            "layout computed for another pool"
        );
        JobTable {
            shm,
            layout: *layout,
        }
    }

    /// The layout this accessor reads the job by.
    pub fn layout(&self) -> &JobLayout {
        &self.layout
    }

    fn word32(&self, off: usize) -> &'a AtomicU32 {
        // Offsets come from the JobLayout, which lies inside the pool (see `new`).
        self.shm.u32_at(off).expect("job layout inside the pool")
    }

    fn word64(&self, off: usize) -> &'a AtomicU64 {
        self.shm.u64_at(off).expect("job layout inside the pool")
    }

    fn header32(&self, field: usize) -> &'a AtomicU32 {
        self.word32(self.layout.header + field)
    }

    fn slot32(&self, r: u32, field: usize) -> Option<&'a AtomicU32> {
        Some(self.word32(self.layout.rank_slot(r)? + field))
    }

    /// The job's state, or `None` for a word no rank writes.
    pub fn state(&self) -> Option<JobState> {
        JobState::from_raw(self.header32(JOB_STATE).load(Ordering::Acquire))
    }

    /// Moves the job from `from` to `to` if it is in `from`; true if this call did.
    pub fn transition(&self, from: JobState, to: JobState) -> bool {
        self.header32(JOB_STATE)
            .compare_exchange(
                from.to_raw(),
                to.to_raw(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Lays out a fresh job (the caller moved it to [`JobState::Forming`]): its parameters, a new
    /// job id, an empty rank table and empty channels; then publishes it as
    /// [`JobState::Running`].
    pub fn form(&self) {
        let l = &self.layout;
        let w = |field: usize, v: u32| self.header32(field).store(v, Ordering::Relaxed);
        w(JOB_RANKS, l.ranks);
        w(JOB_RING_LOG2, l.ring_bytes.trailing_zeros());
        w(JOB_MAILBOX_LOG2, l.mailbox_words.trailing_zeros());
        w(JOB_FINALIZED, 0);
        w(JOB_WIRE, WIRE_VERSION);
        self.word64(l.header + JOB_ID)
            .fetch_add(1, Ordering::Relaxed);
        self.shm
            .fill_zero(l.rank_table, l.ranks as usize * RANK_SLOT);
        for i in 0..l.ranks {
            for j in 0..l.ranks {
                if let Some((mb, ring)) = l.channel(i, j) {
                    let _ = WordFifo::init(self.shm, mb, l.mailbox_words);
                    let _ = ByteRing::init(self.shm, ring, l.ring_bytes);
                }
            }
        }
        self.header32(JOB_STATE)
            .store(JobState::Running.to_raw(), Ordering::Release);
    }

    /// The id of the job now in the pool (bumped by every job formed).
    pub fn job_id(&self) -> u64 {
        self.word64(self.layout.header + JOB_ID)
            .load(Ordering::Acquire)
    }

    /// The parameters in the job header, as written (untrusted).
    pub fn params(&self) -> JobParams {
        let r = |field| self.header32(field).load(Ordering::Acquire);
        JobParams {
            ranks: r(JOB_RANKS),
            ring_log2: r(JOB_RING_LOG2),
            mailbox_log2: r(JOB_MAILBOX_LOG2),
            wire: r(JOB_WIRE),
        }
    }

    /// Counts the job's members as the rank count in its header says (clamped to [`MAX_RANKS`]
    /// and to the slots the pool holds): a held slot's peer is live if `peers` still has it alive
    /// with the generation it claimed with.
    pub fn members(&self, peers: &PoolHeader<'_>) -> Members {
        let ranks = self.params().ranks.min(MAX_RANKS);
        let mut m = Members::default();
        for r in 0..ranks {
            // The header's count may exceed this layout's: every access is bounds-checked.
            let slot = self.layout.rank_table + r as usize * RANK_SLOT;
            let Some(st) = self.shm.u32_at(slot + RANK_STATE) else {
                break;
            };
            let Some(st) = RankState::from_raw(st.load(Ordering::Acquire)) else {
                continue;
            };
            if st == RankState::Finalized {
                m.finished += 1;
            }
            if st == RankState::Claiming {
                m.claiming += 1;
                continue;
            }
            if !st.active() {
                continue;
            }
            let peer = self
                .shm
                .u32_at(slot + RANK_PEER)
                .map_or(u32::MAX, |w| w.load(Ordering::Acquire));
            let generation = self
                .shm
                .u64_at(slot + RANK_GENERATION)
                .map_or(0, |g| g.load(Ordering::Acquire));
            if matches!(peers.peer(peer), Some((PeerState::Alive, g)) if g == generation) {
                m.live += 1;
            } else {
                m.dead += 1;
            }
        }
        m
    }

    /// Takes slot `r` for the peer `peer` of generation `generation`, which sleeps on doorbell
    /// `vector`, if it is free: fills the slot, then publishes it as [`RankState::Claimed`]. True
    /// if this call took it.
    pub fn try_claim(&self, r: u32, peer: u16, generation: u64, vector: u32) -> bool {
        let Some(slot) = self.layout.rank_slot(r) else {
            return false;
        };
        let st = self.word32(slot + RANK_STATE);
        if st
            .compare_exchange(
                RankState::Free.to_raw(),
                RankState::Claiming.to_raw(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return false;
        }
        // The slot is ours: fill it, then publish it with Release.
        self.word32(slot + RANK_PEER)
            .store(peer.into(), Ordering::Relaxed);
        self.word64(slot + RANK_GENERATION)
            .store(generation, Ordering::Relaxed);
        self.word32(slot + RANK_VECTOR)
            .store(vector, Ordering::Relaxed);
        self.word32(slot + RANK_SLEEPING)
            .store(0, Ordering::Relaxed);
        st.store(RankState::Claimed.to_raw(), Ordering::Release);
        true
    }

    /// True if slot `r` is claimed by the peer `peer` of generation `generation`: a claim that
    /// survived a re-forming of the job (its table was cleared just before the claim landed).
    pub fn held_by(&self, r: u32, peer: u16, generation: u64) -> bool {
        self.rank_state(r) == Some(RankState::Claimed)
            && self
                .rank_peer(r)
                .is_some_and(|(p, g, _)| p == u32::from(peer) && g == generation)
    }

    /// Gives slot `r` back (a join that failed after claiming it).
    pub fn release(&self, r: u32) {
        if let Some(st) = self.slot32(r, RANK_STATE) {
            st.store(RankState::Free.to_raw(), Ordering::Release);
        }
    }

    /// The state of slot `r`, or `None` for a rank outside the job or a word no rank writes.
    pub fn rank_state(&self, r: u32) -> Option<RankState> {
        RankState::from_raw(self.slot32(r, RANK_STATE)?.load(Ordering::Acquire))
    }

    /// How many of the job's ranks have joined it (see [`RankState::joined`]).
    pub fn joined(&self) -> u32 {
        (0..self.layout.ranks)
            .filter(|&r| self.rank_state(r).is_some_and(RankState::joined))
            .count() as u32
    }

    /// What slot `r` says of its rank: peer id, peer generation and doorbell vector (untrusted:
    /// the caller checks them against the pool's limits).
    pub fn rank_peer(&self, r: u32) -> Option<(u32, u64, u32)> {
        let slot = self.layout.rank_slot(r)?;
        Some((
            self.word32(slot + RANK_PEER).load(Ordering::Acquire),
            self.word64(slot + RANK_GENERATION).load(Ordering::Acquire),
            self.word32(slot + RANK_VECTOR).load(Ordering::Acquire),
        ))
    }

    /// Rank `r`'s sleeping flag: set by the rank before it sleeps on its doorbell vector; a
    /// sender rings only when it is set.
    pub fn sleeping_flag(&self, r: u32) -> Option<&'a AtomicU32> {
        self.slot32(r, RANK_SLEEPING)
    }

    /// Marks rank `r` finished. True if it was the last of the job's ranks: the job is then
    /// over, and the pool free for the next one.
    pub fn leave(&self, r: u32) -> bool {
        if let Some(st) = self.slot32(r, RANK_STATE) {
            st.store(RankState::Finalized.to_raw(), Ordering::Release);
        }
        let done = self.header32(JOB_FINALIZED).fetch_add(1, Ordering::AcqRel) + 1;
        let last = done >= self.layout.ranks;
        if last {
            self.header32(JOB_STATE)
                .store(JobState::Free.to_raw(), Ordering::Release);
        }
        last
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

    #[test]
    fn the_job_table_forms_claims_counts_and_frees() {
        use crate::layout::PeerState;
        use crate::shm::test_util::heap_shm;
        let shm = heap_shm(1 << 20);
        let header = PoolHeader::initialize(&shm, "t", 3, 1, 8).unwrap();
        let l = JobLayout::new(&header.geometry(), 3).unwrap();
        let job = JobTable::new(&shm, &l);
        assert_eq!(job.state(), Some(JobState::Free));
        assert!(job.transition(JobState::Free, JobState::Forming));
        assert!(
            !job.transition(JobState::Free, JobState::Forming),
            "one former"
        );
        job.form();
        assert_eq!(job.state(), Some(JobState::Running));
        assert_eq!(job.job_id(), 1);
        assert_eq!(
            job.params(),
            JobParams {
                ranks: 3,
                ring_log2: l.ring_bytes.trailing_zeros(),
                mailbox_log2: l.mailbox_words.trailing_zeros(),
                wire: WIRE_VERSION
            }
        );
        // Peer 1 alive with generation 5 takes rank 0, peer 2 (never alive) rank 2.
        header.set_peer(1, PeerState::Alive);
        let generation = header.peer(1).unwrap().1;
        assert!(job.try_claim(0, 1, generation, 0));
        assert!(job.try_claim(2, 2, 9, 3));
        assert!(!job.try_claim(0, 3, 1, 0) && !job.try_claim(3, 3, 1, 0));
        assert_eq!(job.rank_peer(2), Some((2, 9, 3)), "the vector it sleeps on");
        assert_eq!(job.rank_peer(0), Some((1, generation, 0)));
        assert_eq!(job.joined(), 2);
        let m = job.members(&header);
        assert_eq!((m.live, m.dead, m.finished), (1, 1, 0));
        assert!(job.held_by(0, 1, generation) && !job.held_by(0, 1, generation + 1));
        assert!(!job.held_by(1, 0, 0), "a free slot is nobody's");
        // A slot being claimed is neither live nor dead: its peer is not written yet.
        let claiming = shm.u32_at(l.rank_slot(1).unwrap() + RANK_STATE).unwrap();
        claiming.store(RankState::Claiming.to_raw(), Ordering::Relaxed);
        let m = job.members(&header);
        assert_eq!((m.live, m.dead, m.claiming), (1, 1, 1));
        claiming.store(RankState::Free.to_raw(), Ordering::Relaxed);
        // A garbage state word is not a member, and a huge rank count is clamped.
        shm.u32_at(l.rank_slot(2).unwrap() + RANK_STATE)
            .unwrap()
            .store(77, Ordering::Relaxed);
        assert_eq!(job.rank_state(2), None);
        shm.u32_at(l.header + JOB_RANKS)
            .unwrap()
            .store(u32::MAX, Ordering::Relaxed);
        assert_eq!(job.members(&header).live, 1);
        shm.u32_at(l.header + JOB_RANKS)
            .unwrap()
            .store(3, Ordering::Relaxed);
        job.release(2);
        assert!(job.try_claim(1, 4, 1, 0) && job.try_claim(2, 5, 1, 0));
        assert_eq!(job.joined(), 3);
        assert!(!job.leave(0) && !job.leave(1));
        assert_eq!(job.members(&header).finished, 2);
        assert!(job.leave(2), "the last rank out frees the pool");
        assert_eq!(job.state(), Some(JobState::Free));
    }

    #[test]
    fn default_pools_grow_linearly_with_the_ranks() {
        let layout = |n: u32| {
            let max_peers = 64u32.max(n + 8);
            let size = JobLayout::default_pool_size(n, max_peers);
            let g = PoolGeometry::new(size, max_peers).unwrap();
            (size, JobLayout::new(&g, n).unwrap())
        };
        for n in 1..=256u32 {
            let (size, l) = layout(n);
            assert!(size.is_power_of_two());
            assert!(l.heap_bytes >= MIN_HEAP, "{n} ranks: heap {}", l.heap_bytes);
            assert!(l.ring_bytes >= MIN_RING && l.mailbox_words >= MIN_MAILBOX_WORDS);
            if n <= 8 {
                assert_eq!(l.ring_bytes, MAX_RING, "small jobs keep full rings");
            }
            if n >= 64 {
                // Linear: 4 MiB a rank, rounded up to a power of two.
                assert!(size <= (u64::from(n) * POOL_PER_RANK).next_power_of_two());
            }
        }
        assert_eq!(layout(64).0, 256 << 20, "the goal: 64 ranks in 256 MiB");
        assert_eq!(layout(256).0, 1 << 30, "the goal: 256 ranks in 1 GiB");
        assert_eq!(layout(256).1.ring_bytes, 8 << 10);
        // A pool too small says what it needs, and that much is enough.
        let g = PoolGeometry::new(256 << 20, 264).unwrap();
        let Err(JobLayoutError::TooSmall { needed, .. }) = JobLayout::new(&g, 256) else {
            panic!("256 ranks fit in 256 MiB?")
        };
        assert_eq!(needed, 512 << 20);
        let l = JobLayout::new(&PoolGeometry::new(needed, 264).unwrap(), 256).unwrap();
        assert_eq!(
            (l.ring_bytes, l.mailbox_words),
            (MIN_RING, MIN_MAILBOX_WORDS)
        );
        assert!(
            l.heap_bytes > 0 && l.heap_bytes < MIN_HEAP,
            "the heap gives way last"
        );
    }

    #[test]
    fn mailboxes_shrink_past_16_ranks() {
        assert_eq!(mailbox_words_for(1), MAILBOX_WORDS);
        assert_eq!(mailbox_words_for(16), MAILBOX_WORDS);
        assert_eq!(mailbox_words_for(17), 512);
        assert_eq!(mailbox_words_for(33), 256);
        assert_eq!(mailbox_words_for(MAX_RANKS), MIN_MAILBOX_WORDS);
    }
}
