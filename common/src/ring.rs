//! Single-producer/single-consumer rings in shared memory.
//!
//! Two rings connect each ordered pair of ranks (laid out by the engine):
//!
//! * [`WordFifo`], the **mailbox**: a FIFO of `u64` words. The producer side is [`WordProducer`],
//!   the consumer side [`WordConsumer`]. The mailbox knows nothing of what its words mean; it
//!   owns two facts of every word (see below): a zero low nibble marks an empty slot, and bit 7 is
//!   its lap bit. Any word format that keeps the low nibble non-zero and bit 7 clear can travel
//!   in it; the register words ([`crate::register`]) are the one SNOO uses.
//! * [`ByteRing`], the **data ring**: a byte stream for large payloads, [`ByteProducer`] and
//!   [`ByteConsumer`]. Bulk copies, chunked publication, so the receiver copies out while the sender
//!   copies in.
//!
//! # Layout
//!
//! Both rings share one layout, at an offset aligned to [`RING_ALIGN`] (64) bytes; a *unit* is a
//! `u64` slot for the mailbox and a byte for the data ring:
//!
//! ```text
//! offset  size            field
//! +0      8               producer index (u64): units published so far; written by the producer only
//!                         (the mailbox consumer does not read it: see below)
//! +8      56              zero padding (the producer index has the cache line to itself)
//! +64     8               consumer index (u64): units released so far; written by the consumer only
//! +72     56              zero padding
//! +128    capacity×unit   data: unit number i lives at +128 + (i mod capacity)×unit
//! ...                     zero padding up to a multiple of 64 (see `footprint`)
//! ```
//!
//! The indices are free-running counters (modulo 2^64; at 100 GB/s a byte counter wraps after
//! about 5 years, and all arithmetic here is wrapping anyway): the ring holds `producer - consumer`
//! units, the producer may write up to `consumer + capacity`, and capacity is a power of two so a
//! unit's slot is `index & (capacity - 1)`. Keeping the two indices on separate cache lines means
//! the producer's stores do not invalidate the line the producer reads to learn the consumer's
//! progress, and vice versa.
//!
//! # Trust
//!
//! Any VM attached to the pool can write any byte at any time. Each side keeps its own index
//! locally and only ever *stores* it to shared memory; it never reads its own index back, except
//! once when attaching. Every load of the other side's index is validated against what that side
//! can legitimately have done (see [`RingError::Corrupt`]); an inconsistent value is reported, not
//! trusted, and leaves the local state unchanged. Payload bytes and words are copied out and are
//! the caller's to validate. No operation loops on a value read from shared memory: every loop is
//! bounded by the ring's capacity or the caller's buffer.
//!
//! # The mailbox polls slots, not the producer index
//!
//! A word whose low 4 bits are 0 is never pushed ([`WordProducer::push`] refuses it), so a zero slot
//! (as [`WordFifo::init`] leaves them) is an empty one. Bit 7 of every slot is the **lap bit**
//! ([`LAP_BIT`]): the producer sets it to the parity of the lap the word is written in
//! (`index / capacity`, odd laps 1), and words pushed must keep bit 7 zero for it. The mailbox
//! consumer reads the slot at its position and takes it if the kind is not 0 and the lap bit is
//! the current lap's: a word left from the previous lap reads as empty, so released slots need
//! no zeroing. The consumer never reads the producer index (which the producer still stores, for
//! diagnostics) and never writes a slot. So a new message costs the consumer one cache-line
//! transfer (the slot's) instead of two (the index's, then the slot's), slot lines only travel
//! from producer to consumer, and a hostile producer index cannot mislead it. The data ring
//! works with indices as described below.
//!
//! # Memory orderings
//!
//! * Mailbox: the producer stores each word with **Release**, the consumer loads slots with
//!   **Acquire**; words are written in order, so a consumer that sees the last word of a message
//!   sees all of it. A word of the current lap in a slot is therefore always the word written
//!   there in this lap, and the words before it in the mailbox are there too.
//! * Data ring: the producer copies bytes into the ring, then stores the producer index with
//!   **Release**; the consumer loads it with **Acquire**, then copies out: it sees every byte
//!   written before the index it loaded.
//! * The consumer stores its index with **Release** only after it has copied the units out: its
//!   reads happen-before the producer's observation of the new consumer index.
//! * The producer loads the consumer index with **Acquire** before overwriting the released slots,
//!   so its new writes cannot be seen by the consumer's earlier reads (no overwrite of unread data).
//!
//! On x86-64 (the only target of ivshmem here) Release stores and Acquire loads are plain moves;
//! the orderings mostly constrain the compiler, and they are what the Rust memory model requires.
//!
//! * Sleep/wake handshake. A side that may sleep sets a flag, issues a SeqCst fence and looks at
//!   the ring once more; the other side publishes and then SeqCst-loads that flag. Publication
//!   ends with a full barrier: a SeqCst swap of the index (consumer indices, the data ring's last
//!   chunk of a write) or of the mailbox's producer index after the slot writes. A data-ring
//!   payload announced by a mailbox envelope ([`ByteProducer::write_all`]) is published with a
//!   plain store and relies on the mailbox publication after it. Either way, either the
//!   sleeper's re-check sees the publication or the publisher sees the flag (and rings the
//!   doorbell): no lost wake-up, and one full barrier per published batch, not per message.
//!
//! # Cost
//!
//! Each side caches the other side's index and reloads it only when the cached value is not enough
//! (the ring looks full to the producer, or empty to the data-ring consumer): a reload is a
//! cache-line transfer between cores. Publication is batched: [`WordProducer::publish`] ends a
//! batch of pushes with one fence; [`WordConsumer::release`] hands back a batch of slots with one
//! index store. No operation allocates.

use crate::shm::Shm;
use crossbeam_utils::CachePadded;
use std::borrow::Borrow;
#[cfg(not(target_arch = "x86_64"))]
use std::sync::atomic::fence;
use std::sync::atomic::{AtomicU64, Ordering};
use thiserror::Error;

/// The low nibble of a mailbox word: 0 marks an empty slot, so words pushed must not have it 0
/// (the register format's kind nibble, which is never 0).
const KIND_MASK: u64 = 0xF;
/// The mailbox's lap bit: bit 7 of every slot is the parity of the lap (`index / capacity`) the
/// word was written in. Words pushed keep it zero (the register format reserves it); the ring
/// sets it on the way in and clears it on the way out.
pub const LAP_BIT: u64 = 1 << 7;

/// How far ahead of its next slot a mailbox producer asks for the slot line in a state fit for
/// writing (PREFETCHW), in words: four lines. The line was last read by the consumer, a lap ago,
/// so a store to it waits for the line to come back from the consumer's CPU (a cache-line
/// transfer, 130-140 ns on this project's Xeon host); asked for early, it is there by the time
/// the producer writes it. Far enough ahead to hide a transfer when messages of 10 words and
/// more follow each other every 80 ns (two lines were not: osu_bw at 64-72 B ran 30-45% below
/// four), and only into free slots (see `push_all`).
const PREFETCH_AHEAD: u64 = 32;
/// Data-ring lines after a write that the producer asks for in a state fit for writing, for the
/// same reason as [`PREFETCH_AHEAD`]: 512 bytes, the next medium message or two. osu_bw: +40%
/// at 128-512 B; large writes are unaffected (one hint per write).
const RING_PREFETCH_LINES: u64 = 8;
/// Alignment of a ring's offset: one cache line.
pub const RING_ALIGN: usize = 64;
/// Offset of the producer index from the ring's base.
pub const OFF_PRODUCER: usize = 0;
/// Offset of the consumer index from the ring's base.
pub const OFF_CONSUMER: usize = 64;
/// Offset of the data (slots or bytes) from the ring's base.
pub const OFF_DATA: usize = 128;

/// Which side's index a [`RingError::Corrupt`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The producer index.
    Producer,
    /// The consumer index.
    Consumer,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Producer => "producer",
            Side::Consumer => "consumer",
        })
    }
}

/// Why a ring could not be attached or used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RingError {
    /// The capacity is zero, not a power of two, or too large.
    #[error("ring capacity {capacity} is not a power of two between 1 and {max}")]
    BadCapacity {
        /// The capacity asked for, in units (words or bytes).
        capacity: usize,
        /// The largest capacity of this kind of ring.
        max: usize,
    },
    /// The offset is not a multiple of [`RING_ALIGN`].
    #[error("ring offset {0:#x} is not {RING_ALIGN}-byte aligned")]
    Misaligned(usize),
    /// The ring does not fit in the mapping.
    #[error("ring at {offset:#x} needs {footprint} bytes, beyond the {len}-byte mapping")]
    OutOfBounds {
        /// Offset in the mapping of the ring (or of the part of it accessed).
        offset: usize,
        /// Bytes needed from `offset`.
        footprint: usize,
        /// Length of the mapping, in bytes.
        len: usize,
    },
    /// A word of kind 0 was pushed into a mailbox, where it would read as an empty slot, or one
    /// with the lap bit ([`LAP_BIT`]) set, which the ring owns.
    #[error("mailbox word {0:#x} has kind 0 (an empty slot) or bit 7 (the ring's lap bit) set")]
    EmptyWord(u64),
    /// The last word of a message was in the mailbox but an earlier one, at or after consumer
    /// index `index`, was not: the producer did not write in order. Nothing was taken; the peer is
    /// buggy or hostile.
    #[error("mailbox words from index {index} were published out of order")]
    Torn {
        /// The consumer index the read started at.
        index: u64,
    },
    /// The other side's index, as read from shared memory, is not something that side can have
    /// written: it went backwards, ran ahead of what is possible (the producer past
    /// `consumer + capacity`, the consumer past what was published), or was inconsistent when
    /// attaching. The accepted range `low..=high` is modulo 2^64. The local state is unchanged;
    /// the peer is buggy or hostile and the pair should be torn down.
    #[error("corrupt {side} index {seen} in shared memory (expected {low}..={high})")]
    Corrupt {
        /// Whose index it is.
        side: Side,
        /// The value read from shared memory.
        seen: u64,
        /// The lowest value that side can have written.
        low: u64,
        /// The highest value that side can have written.
        high: u64,
    },
}

/// A ring's place in the mapping, checked once at construction. The mapping's length never
/// changes, so every offset derived from these stays in bounds.
#[derive(Debug, Clone, Copy)]
struct Region {
    prod: usize,
    cons: usize,
    data: usize,
    cap: u64,
    mask: u64,
}

const fn footprint_of(capacity: usize, unit: usize) -> usize {
    let data = capacity.saturating_mul(unit).saturating_add(RING_ALIGN - 1) & !(RING_ALIGN - 1);
    OFF_DATA.saturating_add(data)
}

fn region(
    shm: &Shm,
    offset: usize,
    capacity: usize,
    unit: usize,
    max: usize,
) -> Result<Region, RingError> {
    if !capacity.is_power_of_two() || capacity > max {
        return Err(RingError::BadCapacity { capacity, max });
    }
    if offset & (RING_ALIGN - 1) != 0 {
        return Err(RingError::Misaligned(offset));
    }
    let footprint = footprint_of(capacity, unit);
    let fits = match offset.checked_add(footprint) {
        Some(end) => end <= shm.len(),
        None => false,
    };
    if !fits {
        return Err(RingError::OutOfBounds {
            offset,
            footprint,
            len: shm.len(),
        });
    }
    Ok(Region {
        prod: offset + OFF_PRODUCER,
        cons: offset + OFF_CONSUMER,
        data: offset + OFF_DATA,
        cap: capacity as u64,
        mask: capacity as u64 - 1,
    })
}

fn init_region(
    shm: &Shm,
    offset: usize,
    capacity: usize,
    unit: usize,
    max: usize,
) -> Result<(), RingError> {
    region(shm, offset, capacity, unit, max)?;
    // Zero the whole footprint: indices at 0, and (for the mailbox) every slot a kind-0 word that
    // cannot be mistaken for a message. The region was just checked, so this cannot fail.
    shm.fill_zero(offset, footprint_of(capacity, unit));
    Ok(())
}

/// The atomic at `off`, which is one of a checked region's index or slot offsets. The `None` arm
/// cannot happen (the region was checked against the mapping, whose length is fixed); it maps to
/// an error rather than a panic.
#[inline]
fn atomic(shm: &Shm, off: usize) -> Result<&AtomicU64, RingError> {
    shm.u64_at(off).ok_or(RingError::OutOfBounds {
        offset: off,
        footprint: 8,
        len: shm.len(),
    })
}

/// A mailbox's slots, all `cap` of them (inside the mapping: checked when the region was made, so
/// the error cannot happen).
#[inline]
fn slots<'a>(shm: &'a Shm, reg: &Region) -> Result<&'a [AtomicU64], RingError> {
    shm.u64s(reg.data, reg.cap as usize)
        .ok_or(RingError::OutOfBounds {
            offset: reg.data,
            footprint: reg.cap as usize * 8,
            len: shm.len(),
        })
}

/// Reads both indices when attaching and checks `consumer <= producer <= consumer + capacity`.
fn attach_indices(shm: &Shm, reg: &Region) -> Result<(u64, u64), RingError> {
    // Acquire on both: a side attaching late synchronizes with whatever the other side published.
    let p = atomic(shm, reg.prod)?.load(Ordering::Acquire);
    let c = atomic(shm, reg.cons)?.load(Ordering::Acquire);
    if p.wrapping_sub(c) > reg.cap {
        return Err(RingError::Corrupt {
            side: Side::Producer,
            seen: p,
            low: c,
            high: c.wrapping_add(reg.cap),
        });
    }
    Ok((p, c))
}

/// The producer's private indices (wrapping counters).
#[derive(Debug)]
struct ProducerState {
    /// Next unit to write (pushed, maybe not yet published).
    head: u64,
    /// Last value stored to the shared producer index.
    published: u64,
    /// Last validated value of the consumer index.
    cached_tail: u64,
}

/// Index bookkeeping shared by both producers.
#[derive(Debug)]
struct ProducerCore {
    // Padded so that a producer and a consumer allocated side by side (say, in one array of pairs
    // driven by different threads) do not false-share their hot indices.
    st: CachePadded<ProducerState>,
    reg: Region,
    // Mailbox: the consumer sees words as they are pushed, so it may legitimately release up to
    // `head`; data ring: only up to what was published.
    visible_at_push: bool,
}

impl ProducerCore {
    fn attach(shm: &Shm, reg: Region, visible_at_push: bool) -> Result<Self, RingError> {
        let (p, c) = attach_indices(shm, &reg)?;
        Ok(ProducerCore {
            st: CachePadded::new(ProducerState {
                head: p,
                published: p,
                cached_tail: c,
            }),
            reg,
            visible_at_push,
        })
    }

    /// Free units according to the cached consumer index.
    #[inline]
    fn free_cached(&self) -> u64 {
        // head - cached_tail <= cap: head only advances into free space, cached_tail only advances.
        self.reg.cap - self.st.head.wrapping_sub(self.st.cached_tail)
    }

    /// Reloads the consumer index, validates it and returns the free units.
    #[cold]
    fn refresh(&mut self, shm: &Shm) -> Result<u64, RingError> {
        // Acquire: pairs with the consumer's Release store made after it copied the units out, so
        // our later writes to those slots cannot be seen by its earlier reads.
        let seen = atomic(shm, self.reg.cons)?.load(Ordering::Acquire);
        let st = &mut *self.st;
        // The consumer only moves forward, and never past what it can have seen.
        let high = if self.visible_at_push {
            st.head
        } else {
            st.published
        };
        let moved = seen.wrapping_sub(st.cached_tail);
        let possible = high.wrapping_sub(st.cached_tail);
        if moved > possible {
            return Err(RingError::Corrupt {
                side: Side::Consumer,
                seen,
                low: st.cached_tail,
                high,
            });
        }
        st.cached_tail = seen;
        Ok(self.free_cached())
    }

    /// True if `n` units are free, reloading the consumer index only if the cached one says no.
    #[inline]
    fn has_room(&mut self, shm: &Shm, n: u64) -> Result<bool, RingError> {
        if self.free_cached() >= n {
            return Ok(true);
        }
        Ok(self.refresh(shm)? >= n)
    }

    /// Stores the producer index. Release: every byte written before it is visible to a consumer
    /// that Acquire-loads the new index. With `barrier`, a full barrier too ([`publish_barrier`]),
    /// so that a later SeqCst load of the consumer's "sleeping" flag cannot be ordered before it:
    /// the sender's half of the sleep/wake handshake (see the module docs). Without it, a plain
    /// store: the caller owes that barrier before it looks at the flag. The `if let` cannot fail
    /// (checked region).
    #[inline]
    fn publish(&mut self, shm: &Shm, barrier: bool) {
        let st = &mut *self.st;
        if st.head != st.published {
            if let Ok(a) = atomic(shm, self.reg.prod) {
                if barrier {
                    publish_barrier(a, st.head);
                } else {
                    a.store(st.head, Ordering::Release);
                }
            }
            st.published = st.head;
        }
    }
}

/// The consumer's private indices (wrapping counters).
#[derive(Debug)]
struct ConsumerState {
    /// Next unit to read (popped units before it may not be released yet).
    tail: u64,
    /// Last value stored to the shared consumer index.
    released: u64,
    /// Last validated value of the producer index.
    cached_head: u64,
}

/// Index bookkeeping shared by both consumers.
#[derive(Debug)]
struct ConsumerCore {
    // Padded for the same reason as `ProducerCore::st`.
    st: CachePadded<ConsumerState>,
    reg: Region,
}

impl ConsumerCore {
    fn attach(shm: &Shm, reg: Region) -> Result<Self, RingError> {
        let (p, c) = attach_indices(shm, &reg)?;
        Ok(ConsumerCore {
            st: CachePadded::new(ConsumerState {
                tail: c,
                released: c,
                cached_head: p,
            }),
            reg,
        })
    }

    /// Readable units according to the cached producer index.
    #[inline]
    fn avail_cached(&self) -> u64 {
        self.st.cached_head.wrapping_sub(self.st.tail)
    }

    /// Reloads the producer index, validates it and returns the readable units.
    #[cold]
    fn refresh(&mut self, shm: &Shm) -> Result<u64, RingError> {
        // Acquire: pairs with the producer's Release store, so the slots it wrote before
        // publishing are visible to our reads.
        let seen = atomic(shm, self.reg.prod)?.load(Ordering::Acquire);
        let st = &mut *self.st;
        // The producer only moves forward, and never more than a ring ahead of what we released.
        let ahead = seen.wrapping_sub(st.released);
        let known = st.cached_head.wrapping_sub(st.released);
        if ahead < known || ahead > self.reg.cap {
            return Err(RingError::Corrupt {
                side: Side::Producer,
                seen,
                low: st.cached_head,
                high: st.released.wrapping_add(self.reg.cap),
            });
        }
        st.cached_head = seen;
        Ok(self.avail_cached())
    }

    /// Readable units, reloading the producer index only if fewer than `want` are cached.
    #[inline]
    fn available(&mut self, shm: &Shm, want: u64) -> Result<u64, RingError> {
        let cached = self.avail_cached();
        if cached >= want {
            return Ok(cached);
        }
        self.refresh(shm)
    }

    #[inline]
    fn release(&mut self, shm: &Shm) {
        let st = &mut *self.st;
        if st.tail != st.released {
            // Release: our reads of the slots before `tail` happen-before the producer's
            // Acquire load of this value, hence before it overwrites them. SeqCst for the same
            // reason as in `ProducerCore::publish` (the producer may sleep waiting for room).
            // Cannot fail (checked region).
            if let Ok(a) = atomic(shm, self.reg.cons) {
                a.swap(st.tail, Ordering::SeqCst);
            }
            st.released = st.tail;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// WordFifo
// ---------------------------------------------------------------------------------------------

/// The mailbox: an SPSC FIFO of `u64` words in shared memory (see the module documentation for
/// the layout). This type only holds the layout functions; the two sides are [`WordProducer`]
/// and [`WordConsumer`].
///
/// # Example
///
/// Both sides of a mailbox of 8 words in one process (in a job they are two ranks, each with its
/// own mapping of the pool), over 4 KiB of heap memory built as in the example of
/// [`Shm::from_raw`]:
///
/// ```
/// use snoo_common::register::{Control, Word};
/// use snoo_common::ring::{WordConsumer, WordFifo, WordProducer, LAP_BIT, OFF_DATA};
/// # use snoo_common::Shm;
/// # let mut mem = vec![0u64; 512];
/// # let ptr = std::ptr::NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
/// # // SAFETY: as in the example of `Shm::from_raw`: 4096 readable and writable bytes, 8-byte
/// # // aligned, kept alive by the Shm, accessed only through it.
/// # let shm = unsafe { Shm::from_raw(ptr, 4096, Box::new(mem)) };
///
/// WordFifo::init(&shm, 0, 8).unwrap();
/// let mut tx = WordProducer::new(&shm, 0, 8).unwrap();
/// let mut rx = WordConsumer::new(&shm, 0, 8).unwrap();
/// assert_eq!(rx.pop(), Ok(None), "empty");
///
/// let barrier = Word::Control(Control::Barrier { generation: 1 }).encode();
/// assert_eq!(tx.push(barrier), Ok(true));
/// tx.publish(); // the barrier of a batch; the consumer could see the word already
/// assert_eq!(rx.pop(), Ok(Some(barrier)));
/// rx.release(); // hands the slot back to the producer
///
/// // Eight slots: a ninth word waits until the consumer releases some.
/// for id in 0..8 {
///     assert_eq!(tx.push(Word::Fin { id }.encode()), Ok(true));
/// }
/// assert_eq!(tx.push(Word::Fin { id: 8 }.encode()), Ok(false), "full");
/// for id in 0..8 {
///     let w = rx.pop().unwrap().unwrap();
///     assert_eq!(Word::decode(w), Ok(Word::Fin { id }));
/// }
/// assert_eq!(tx.push(Word::Fin { id: 8 }.encode()), Ok(false), "popped, not released");
/// rx.release();
/// assert_eq!(tx.push(Word::Fin { id: 8 }.encode()), Ok(true));
///
/// // Index 9 is in the second lap: its slot holds the word with the lap bit set, and the
/// // consumer takes it with the bit cleared.
/// let slot = shm.u64_at(OFF_DATA + 8).unwrap().load(std::sync::atomic::Ordering::Acquire);
/// assert_eq!(slot, Word::Fin { id: 8 }.encode() | LAP_BIT);
/// assert_eq!(rx.pop(), Ok(Some(Word::Fin { id: 8 }.encode())));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct WordFifo;

impl WordFifo {
    /// Largest capacity, in words (1 GiB of slots).
    pub const MAX_CAPACITY: usize = 1 << 27;

    /// Bytes a mailbox of `capacity` words occupies: 128 bytes of indices plus the slots, rounded
    /// up to a multiple of 64 so that rings can be placed back to back. Saturates at `usize::MAX`
    /// for absurd capacities (which the constructors reject).
    pub const fn footprint(capacity: usize) -> usize {
        footprint_of(capacity, 8)
    }

    /// Zeroes the mailbox at `offset` (indices and slots). Must happen before either side attaches,
    /// and be published to them by the engine (e.g. with a Release store of a "ready" flag).
    pub fn init(shm: &Shm, offset: usize, capacity: usize) -> Result<(), RingError> {
        init_region(shm, offset, capacity, 8, Self::MAX_CAPACITY)
    }
}

/// Stores `value` into the mailbox's producer index as a full barrier between the slot writes
/// before it and the loads after it (the consumer's "sleeping" flag).
///
/// On x86-64 that is a SeqCst swap: a locked instruction, which the hardware orders as a full
/// fence, while its Release and Acquire halves keep the compiler from moving the slot stores after
/// it or the flag load before it. `mfence`, what `fence(SeqCst)` compiles to, costs more on AMD
/// CPUs (it also serializes dispatch): seed at 256 B lost about a quarter of its rate with it.
/// Elsewhere, the portable store plus SeqCst fence.
#[inline]
fn publish_barrier(index: &AtomicU64, value: u64) {
    #[cfg(target_arch = "x86_64")]
    index.swap(value, Ordering::SeqCst);
    #[cfg(not(target_arch = "x86_64"))]
    {
        index.store(value, Ordering::Release);
        fence(Ordering::SeqCst);
    }
}

/// The producer side of a [`WordFifo`]. `S` is any handle to the mapping: `&Shm`, `Arc<Shm>`...
#[derive(Debug)]
pub struct WordProducer<S: Borrow<Shm>> {
    core: ProducerCore,
    shm: S,
}

impl<S: Borrow<Shm>> WordProducer<S> {
    /// Attaches to the mailbox at `offset`, continuing from the indices found there (all zero
    /// after [`WordFifo::init`]).
    pub fn new(shm: S, offset: usize, capacity: usize) -> Result<Self, RingError> {
        let reg = region(shm.borrow(), offset, capacity, 8, WordFifo::MAX_CAPACITY)?;
        let core = ProducerCore::attach(shm.borrow(), reg, true)?;
        Ok(WordProducer { core, shm })
    }

    /// Capacity in words.
    pub fn capacity(&self) -> usize {
        self.core.reg.cap as usize
    }

    /// Words pushed since the last [`publish`](Self::publish).
    pub fn pending(&self) -> usize {
        self.core.st.head.wrapping_sub(self.core.st.published) as usize
    }

    /// True if `n` more words can be pushed. Reloads the consumer index only if the cached one
    /// does not leave room; after `Ok(true)`, the next `n` pushes succeed without a reload.
    #[inline]
    pub fn has_room(&mut self, n: usize) -> Result<bool, RingError> {
        self.core.has_room(self.shm.borrow(), n as u64)
    }

    /// Writes `word` into the next slot, where the consumer can see it at once. Returns
    /// `Ok(false)` if the ring is full, [`RingError::EmptyWord`] for a word of kind 0 (it would
    /// read as an empty slot) or with the lap bit set.
    #[inline]
    pub fn push(&mut self, word: u64) -> Result<bool, RingError> {
        self.push_all(&[word])
    }

    /// Pushes all of `words` or, if they do not all fit (or one has kind 0 or the lap bit), none
    /// of them.
    #[inline]
    pub fn push_all(&mut self, words: &[u64]) -> Result<bool, RingError> {
        // Branch-free over all words, a few ALU operations each (the compiler vectorizes them):
        // OR all words (lap bit), and AND `kind + 15`, whose bit 4 is clear only for kind 0. The
        // offender is looked up only when there is one.
        let bad = |w: u64| w & KIND_MASK == 0 || w & LAP_BIT != 0;
        let (any_bits, all_kinds) = words.iter().fold((0, u64::MAX), |(or, and), &w| {
            (or | w, and & ((w & KIND_MASK) + KIND_MASK))
        });
        if any_bits & LAP_BIT != 0 || all_kinds & (KIND_MASK + 1) == 0 {
            let w = words.iter().copied().find(|&w| bad(w)).unwrap_or(0);
            return Err(RingError::EmptyWord(w));
        }
        if !self.has_room(words.len())? {
            return Ok(false);
        }
        let slots = slots(self.shm.borrow(), &self.core.reg)?;
        let head = self.core.st.head;
        let r = Runs::new(&self.core.reg, head, words.len());
        let (a, b) = words.split_at(r.split);
        put_words(&slots[r.first..r.first + a.len()], a, r.lap);
        if !b.is_empty() {
            put_words(&slots[..b.len()], b, r.wrapped_lap);
        }
        self.core.st.head = head.wrapping_add(words.len() as u64);
        // The slot line a few messages from now (see `PREFETCH_AHEAD`), if it is free: one the
        // consumer has yet to read is not to be taken from it.
        if self.core.free_cached() > PREFETCH_AHEAD {
            let ahead = self.core.st.head.wrapping_add(PREFETCH_AHEAD) & self.core.reg.mask;
            self.shm
                .borrow()
                .prefetch_write(self.core.reg.data + ahead as usize * 8);
        }
        Ok(true)
    }

    /// Ends a batch of pushes: stores the producer index (informational: the consumer polls the
    /// slots, not this index) and issues a SeqCst fence. The fence is the sender's half of the
    /// sleep/wake handshake: a later SeqCst load of the consumer's "sleeping" flag cannot be
    /// ordered before the slot writes (see the module docs). Nothing happens if nothing was
    /// pushed since the last call.
    #[inline]
    pub fn publish(&mut self) {
        self.core.publish(self.shm.borrow(), true);
    }
}

/// The consumer side of a [`WordFifo`]. It polls the slots themselves: a slot whose kind nibble
/// is 0, or whose lap bit is not the current lap's, is empty. So learning of a new message costs
/// one cache-line transfer (the slot's), not two (producer index, then slot). Words come out with
/// the lap bit cleared.
#[derive(Debug)]
pub struct WordConsumer<S: Borrow<Shm>> {
    core: ConsumerCore,
    shm: S,
}

impl<S: Borrow<Shm>> WordConsumer<S> {
    /// Attaches to the mailbox at `offset`, continuing from the consumer index found there.
    pub fn new(shm: S, offset: usize, capacity: usize) -> Result<Self, RingError> {
        let reg = region(shm.borrow(), offset, capacity, 8, WordFifo::MAX_CAPACITY)?;
        let core = ConsumerCore::attach(shm.borrow(), reg)?;
        Ok(WordConsumer { core, shm })
    }

    /// Capacity in words.
    pub fn capacity(&self) -> usize {
        self.core.reg.cap as usize
    }

    /// Words taken since the mailbox was made (modulo 2^64): tells whether anything was read
    /// between two looks.
    pub fn consumed(&self) -> u64 {
        self.core.st.tail
    }

    /// Words the producer has published past the next one to read, as its index says: a hint
    /// only (a hostile producer may store anything there; a slot is read only once its own lap
    /// bit says it is written), clamped to the capacity.
    #[inline]
    pub fn published_ahead(&self) -> usize {
        let p =
            atomic(self.shm.borrow(), self.core.reg.prod).map_or(0, |a| a.load(Ordering::Acquire));
        (p.wrapping_sub(self.core.st.tail)).min(self.core.reg.cap) as usize
    }

    /// Words popped but not yet released.
    pub fn unreleased(&self) -> usize {
        self.core.st.tail.wrapping_sub(self.core.st.released) as usize
    }

    /// The word `ahead` slots past the next one to read, or `None` if that slot is empty. A slot
    /// that would wrap onto popped-but-unreleased ones (which still hold their old words) first
    /// releases them.
    #[inline]
    fn load(&mut self, ahead: u64) -> Result<Option<u64>, RingError> {
        if ahead >= self.core.reg.cap {
            return Ok(None);
        }
        if self.unreleased() as u64 + ahead >= self.core.reg.cap {
            self.release();
        }
        let at = self.core.st.tail.wrapping_add(ahead);
        let off = self.core.reg.data + ((at & self.core.reg.mask) as usize) * 8;
        // Acquire: pairs with the producer's Release store of this word (and so of every word
        // before it).
        let w = atomic(self.shm.borrow(), off)?.load(Ordering::Acquire);
        // A word of this lap, not the previous lap's word still in the slot (or a never-written
        // zero).
        Ok(fresh(w, lap(at, self.core.reg.cap)).then_some(w & !LAP_BIT))
    }

    /// The next word without consuming it, or `None` if the ring is empty.
    #[inline]
    pub fn peek(&mut self) -> Result<Option<u64>, RingError> {
        self.load(0)
    }

    /// True if the next `n` words are all there (`n` ≤ capacity): the producer writes in order,
    /// so it is enough that the last of them is.
    #[inline]
    pub fn ready(&mut self, n: usize) -> Result<bool, RingError> {
        if n == 0 {
            return Ok(true);
        }
        Ok(self.load(n as u64 - 1)?.is_some())
    }

    /// Takes the next word, or `None` if the ring is empty. The slot stays reserved until
    /// [`release`](Self::release).
    #[inline]
    pub fn pop(&mut self) -> Result<Option<u64>, RingError> {
        let w = self.peek()?;
        if w.is_some() {
            self.core.st.tail = self.core.st.tail.wrapping_add(1);
        }
        Ok(w)
    }

    /// Copies the whole message at the head of the mailbox into the start of `dst`, without
    /// taking it: `words`, given the head word, says how many words the message has, or `None`
    /// if it is not a message the caller takes this way (nor is one of 0 words, or of more than
    /// `dst` or the mailbox holds). One load of the head slot when the mailbox is empty;
    /// otherwise the head word, then the last word (the producer writes in order, so once it is
    /// there the others are too), then the rest without a branch per word. An earlier word of
    /// another lap while the last is there means the producer broke that order:
    /// [`RingError::Torn`], nothing taken. [`consume`] then takes what was copied.
    ///
    /// [`consume`]: Self::consume
    #[inline]
    pub fn peek_message(
        &mut self,
        dst: &mut [u64],
        words: impl FnOnce(u64) -> Option<usize>,
    ) -> Result<Head, RingError> {
        let reg = self.core.reg;
        let max = dst.len().min(reg.cap as usize);
        self.release_before_reading(max);
        let slots = slots(self.shm.borrow(), &reg)?;
        let tail = self.core.st.tail;
        // Acquire, as in `load`.
        let head = slots[(tail & reg.mask) as usize].load(Ordering::Acquire);
        if !fresh(head, lap(tail, reg.cap)) {
            return Ok(Head::Empty);
        }
        let head = head & !LAP_BIT;
        let n = match words(head) {
            Some(n) if (1..=max).contains(&n) => n,
            _ => return Ok(Head::Other(head)),
        };
        // The head word is this lap's, so the rest of the message follows it (the last word
        // decides whether it is all there); its first slot is copied again, harmlessly.
        if !copy_exact(slots, &reg, tail, &mut dst[..n])? {
            return Ok(Head::Partial);
        }
        Ok(Head::Whole(n))
    }

    /// Takes `n` words that [`peek_message`](Self::peek_message) just copied (at most the
    /// message it found: more would skip words nobody read).
    #[inline]
    pub fn consume(&mut self, n: usize) {
        self.core.st.tail = self.core.st.tail.wrapping_add(n as u64);
    }

    /// Before reading up to `n` words ahead: slots that would wrap onto popped-but-unreleased
    /// ones (which still hold their old words, so would read as not written yet) go back first.
    #[inline]
    fn release_before_reading(&mut self, n: usize) {
        if self.unreleased() + n > self.core.reg.cap as usize {
            self.release();
        }
    }

    /// Hands every popped slot back to the producer: one Release store of the consumer index
    /// (none if nothing was popped). The slots keep their words, which read as empty from the
    /// next lap on (lap bit). Call it at least before the ring can fill with popped words; each
    /// call is a cache-line transfer to the producer, so batching pays.
    #[inline]
    pub fn release(&mut self) {
        self.core.release(self.shm.borrow());
    }
}

/// Where `n` mailbox units from index `i` lie: from slot `first`, `split` of them up to the end of
/// the slot array, of lap bit `lap`, and the rest from slot 0, of the next lap (`wrapped_lap`).
/// Each straight run then has one lap bit.
struct Runs {
    first: usize,
    split: usize,
    lap: u64,
    wrapped_lap: u64,
}

impl Runs {
    #[inline]
    fn new(reg: &Region, i: u64, n: usize) -> Runs {
        let first = (i & reg.mask) as usize;
        let lap = lap(i, reg.cap);
        Runs {
            first,
            split: n.min(reg.cap as usize - first),
            lap,
            // The next lap has the other parity.
            wrapped_lap: lap ^ LAP_BIT,
        }
    }
}

/// What [`WordConsumer::peek_message`] found at the head of the mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// Nothing yet.
    Empty,
    /// A message whose last words are not there yet.
    Partial,
    /// A word that the caller's `words` did not take (lap bit cleared), left in the mailbox.
    Other(u64),
    /// The whole message, this many words, copied and not yet taken.
    Whole(usize),
}

/// Copies the `dst.len()` (1 to capacity) words from mailbox index `i` into `dst`, lap bits
/// cleared, if all of them are there: the last word first (Acquire: the producer writes in
/// order, so every word before it is visible), then the others without a branch per word.
/// `Ok(false)` if the last is not there yet; [`RingError::Torn`] if it is but an earlier one is
/// another lap's.
#[inline]
fn copy_exact(
    slots: &[AtomicU64],
    reg: &Region,
    i: u64,
    dst: &mut [u64],
) -> Result<bool, RingError> {
    let n = dst.len();
    let r = Runs::new(reg, i, n);
    let (a, b) = dst.split_at_mut(r.split);
    let last = if b.is_empty() {
        slots[r.first + n - 1].load(Ordering::Acquire)
    } else {
        slots[b.len() - 1].load(Ordering::Acquire)
    };
    if !fresh(last, if b.is_empty() { r.lap } else { r.wrapped_lap }) {
        return Ok(false);
    }
    let mut stale = copy_run(&slots[r.first..r.first + a.len()], a, r.lap);
    if !b.is_empty() {
        stale |= copy_run(&slots[..b.len()], b, r.wrapped_lap);
    }
    if stale {
        return Err(RingError::Torn { index: i });
    }
    Ok(true)
}

/// True if mailbox word `w` is a word of the lap whose lap bit is `lap`: not an empty slot, and
/// not the previous lap's word still in the slot.
#[inline]
fn fresh(w: u64, lap: u64) -> bool {
    w & KIND_MASK != 0 && w & LAP_BIT == lap
}

/// Stores `words` (as many as `slots`) into `slots`, with lap bit `lap`.
#[inline]
fn put_words(slots: &[AtomicU64], words: &[u64], lap: u64) {
    for (s, &w) in slots.iter().zip(words) {
        // Release: a consumer that Acquire-loads this word sees every word written before it, so
        // seeing the last word of a message means the whole message is there.
        s.store(w | lap, Ordering::Release);
    }
}

/// Copies `slots` into `dst` (of the same length), lap bit cleared, without a branch per word.
/// Returns true if any of them has another lap's bit: a word of the previous lap, not yet
/// overwritten. (A never-written slot reads as 0, which no decoder accepts.)
#[inline]
fn copy_run(slots: &[AtomicU64], dst: &mut [u64], lap: u64) -> bool {
    let mut diff = 0;
    for (s, d) in slots.iter().zip(dst.iter_mut()) {
        // Relaxed: ordered after the Acquire load of the message's last word (`copy_exact`).
        let w = s.load(Ordering::Relaxed);
        diff |= w ^ lap;
        *d = w & !LAP_BIT;
    }
    diff & LAP_BIT != 0
}

/// The lap bit of the word at mailbox index `i` in a mailbox of `cap` (a power of two) slots.
#[inline]
fn lap(i: u64, cap: u64) -> u64 {
    // Branch-free: this runs for every word.
    u64::from(i & cap != 0) << LAP_BIT.trailing_zeros()
}

// ---------------------------------------------------------------------------------------------
// ByteRing
// ---------------------------------------------------------------------------------------------

/// The data ring: an SPSC byte stream in shared memory (see the module documentation for the
/// layout). The two sides are [`ByteProducer`] and [`ByteConsumer`].
///
/// # Example
///
/// Both sides of a 64-byte ring in one process, over heap memory as in the example of
/// [`Shm::from_raw`]:
///
/// ```
/// use snoo_common::ring::{ByteConsumer, ByteProducer, ByteRing};
/// # use snoo_common::Shm;
/// # let mut mem = vec![0u64; 512];
/// # let ptr = std::ptr::NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
/// # // SAFETY: as in the example of `Shm::from_raw`: 4096 readable and writable bytes, 8-byte
/// # // aligned, kept alive by the Shm, accessed only through it.
/// # let shm = unsafe { Shm::from_raw(ptr, 4096, Box::new(mem)) };
///
/// ByteRing::init(&shm, 0, 64).unwrap();
/// let mut tx = ByteProducer::new(&shm, 0, 64).unwrap();
/// let mut rx = ByteConsumer::new(&shm, 0, 64).unwrap();
///
/// // A whole small message if it fits, else nothing.
/// assert_eq!(tx.write_all(&[1; 48]), Ok(true));
/// assert_eq!(tx.write_all(&[2; 32]), Ok(false), "16 bytes free");
/// // A stream: as much as fits.
/// assert_eq!(tx.write_some(&[2; 32]), Ok(16));
/// assert_eq!(tx.write_some(&[2; 16]), Ok(0), "full");
///
/// let mut buf = [0u8; 64];
/// assert_eq!(rx.read_some(&mut buf), Ok(64));
/// assert_eq!((&buf[..48], &buf[48..]), (&[1; 48][..], &[2; 16][..]));
/// assert_eq!(rx.read_some(&mut buf), Ok(0), "empty");
///
/// // The space is the producer's again; this write wraps around the end of the ring.
/// assert_eq!(tx.write_some(&[3; 40]), Ok(40));
/// assert_eq!(rx.read_exact(&mut buf[..41]), Ok(false), "only 40 there: nothing taken");
/// assert_eq!(rx.read_exact(&mut buf[..40]), Ok(true));
/// assert_eq!(&buf[..40], &[3; 40]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ByteRing;

/// Default publication granularity of the data ring, in bytes (see [`ByteProducer::write_some`]).
pub const DEFAULT_CHUNK: usize = 32 << 10;

impl ByteRing {
    /// Largest capacity, in bytes.
    pub const MAX_CAPACITY: usize = 1 << 30;

    /// Bytes a data ring of `capacity` bytes occupies: 128 bytes of indices plus the data, rounded
    /// up to a multiple of 64. Saturates like [`WordFifo::footprint`].
    pub const fn footprint(capacity: usize) -> usize {
        footprint_of(capacity, 1)
    }

    /// Zeroes the data ring at `offset` (indices and data). Must happen before either side
    /// attaches.
    pub fn init(shm: &Shm, offset: usize, capacity: usize) -> Result<(), RingError> {
        init_region(shm, offset, capacity, 1, Self::MAX_CAPACITY)
    }

    /// The default chunk for a ring of `capacity` bytes: a quarter of the ring, at most
    /// [`DEFAULT_CHUNK`], so that even a small ring has several chunks in flight.
    pub const fn default_chunk(capacity: usize) -> usize {
        let quarter = capacity / 4;
        if quarter == 0 {
            1
        } else if quarter > DEFAULT_CHUNK {
            DEFAULT_CHUNK
        } else {
            quarter
        }
    }
}

/// Copies between the data ring and a local buffer, splitting at the end of the ring.
#[inline]
fn ring_copy(
    shm: &Shm,
    reg: &Region,
    pos: u64,
    len: usize,
    mut copy: impl FnMut(usize, std::ops::Range<usize>) -> bool,
) -> Result<(), RingError> {
    // `len <= cap`, so the data wraps at most once: at most two copies.
    let at = (pos & reg.mask) as usize;
    let first = len.min(reg.cap as usize - at);
    let ok = copy(reg.data + at, 0..first) && (first == len || copy(reg.data, first..len));
    if ok {
        Ok(())
    } else {
        // Cannot happen: the region was checked at construction.
        Err(RingError::OutOfBounds {
            offset: reg.data,
            footprint: reg.cap as usize,
            len: shm.len(),
        })
    }
}

/// The producer side of a [`ByteRing`].
#[derive(Debug)]
pub struct ByteProducer<S: Borrow<Shm>> {
    core: ProducerCore,
    chunk: usize,
    shm: S,
}

impl<S: Borrow<Shm>> ByteProducer<S> {
    /// Attaches to the data ring at `offset`, continuing from the indices found there.
    pub fn new(shm: S, offset: usize, capacity: usize) -> Result<Self, RingError> {
        let reg = region(shm.borrow(), offset, capacity, 1, ByteRing::MAX_CAPACITY)?;
        let core = ProducerCore::attach(shm.borrow(), reg, false)?;
        Ok(ByteProducer {
            core,
            chunk: ByteRing::default_chunk(capacity),
            shm,
        })
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.core.reg.cap as usize
    }

    /// Bytes copied between two publications of the producer index.
    pub fn chunk(&self) -> usize {
        self.chunk
    }

    /// Sets the publication granularity (at least 1 byte; `usize::MAX` publishes once per call).
    pub fn set_chunk(&mut self, chunk: usize) {
        self.chunk = chunk.max(1);
    }

    /// Free bytes now (always reloads the consumer index).
    pub fn free_space(&mut self) -> Result<usize, RingError> {
        Ok(self.core.refresh(self.shm.borrow())? as usize)
    }

    /// Copies all of `src` into the ring and publishes it if it fits now, else writes nothing and
    /// returns false: a whole small message in one call.
    ///
    /// Unlike [`write_some`](Self::write_some), the publication is a plain Release store, not a
    /// barrier: a medium message is announced by a mailbox envelope right after its payload, and
    /// the mailbox's [`WordProducer::publish`] is the barrier for both (one locked instruction
    /// per batch of messages instead of one more per message). A caller that does not publish
    /// the mailbox afterwards must not rely on this call for the sleep/wake handshake.
    pub fn write_all(&mut self, src: &[u8]) -> Result<bool, RingError> {
        let want = src.len() as u64;
        if self.core.free_cached() < want && self.core.refresh(self.shm.borrow())? < want {
            return Ok(false);
        }
        // All of it fits (and stays so: only this side produces).
        Ok(self.write(src, false)? == src.len())
    }

    /// Copies as much of `src` as fits into the ring and publishes it; returns the bytes written
    /// (0 if the ring is full or `src` is empty). The last publication is a full barrier (the
    /// sender's half of the sleep/wake handshake), the ones before it plain stores.
    ///
    /// The consumer index is reloaded only if the cached one leaves less room than `src` needs.
    /// The copy is published every [`chunk`](Self::chunk) bytes rather than once at the end, so
    /// that the consumer starts copying out the first chunk while this call copies in the next:
    /// with a 4 MiB ring, a 4 MiB write published once would serialize the two copies. Chunks of
    /// 16-64 KiB (default: [`ByteRing::default_chunk`]) amortize the cost of a publication (one
    /// store, but a cache-line transfer when the consumer is polling: ~100 ns) over a few
    /// microseconds of copying, while the chunk just written is still in cache when the consumer
    /// reads it.
    pub fn write_some(&mut self, src: &[u8]) -> Result<usize, RingError> {
        self.write(src, true)
    }

    fn write(&mut self, src: &[u8], barrier: bool) -> Result<usize, RingError> {
        let shm = self.shm.borrow();
        let mut free = self.core.free_cached();
        if free < src.len() as u64 {
            free = self.core.refresh(shm)?;
        }
        let n = src.len().min(free as usize);
        let mut done = 0;
        while done < n {
            let len = (n - done).min(self.chunk);
            let part = &src[done..done + len];
            ring_copy(shm, &self.core.reg, self.core.st.head, len, |off, r| {
                shm.write(off, &part[r])
            })?;
            self.core.st.head = self.core.st.head.wrapping_add(len as u64);
            done += len;
            // A locked instruction waits for every store before it, which here are ring lines
            // still on their way from the consumer's cache: only the last publication pays.
            self.core.publish(shm, barrier && done == n);
        }
        // Where the next message goes: claim its lines now, while this one travels (see
        // `RING_PREFETCH_LINES`). Only free space: a line the consumer has yet to read is not
        // to be taken from it.
        let lines = (self.core.free_cached() / 64).min(RING_PREFETCH_LINES);
        for line in 0..lines {
            let at = self.core.st.head.wrapping_add(line * 64) & self.core.reg.mask;
            shm.prefetch_write(self.core.reg.data + at as usize);
        }
        Ok(n)
    }
}

/// The consumer side of a [`ByteRing`].
#[derive(Debug)]
pub struct ByteConsumer<S: Borrow<Shm>> {
    core: ConsumerCore,
    chunk: usize,
    shm: S,
}

impl<S: Borrow<Shm>> ByteConsumer<S> {
    /// Attaches to the data ring at `offset`, continuing from the indices found there.
    pub fn new(shm: S, offset: usize, capacity: usize) -> Result<Self, RingError> {
        let reg = region(shm.borrow(), offset, capacity, 1, ByteRing::MAX_CAPACITY)?;
        let core = ConsumerCore::attach(shm.borrow(), reg)?;
        Ok(ByteConsumer {
            core,
            chunk: ByteRing::default_chunk(capacity),
            shm,
        })
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.core.reg.cap as usize
    }

    /// Bytes taken since the ring was made (modulo 2^64).
    pub fn consumed(&self) -> u64 {
        self.core.st.tail
    }

    /// Bytes copied out between two releases of the consumer index.
    pub fn chunk(&self) -> usize {
        self.chunk
    }

    /// Sets the release granularity (at least 1 byte; `usize::MAX` releases once per call).
    pub fn set_chunk(&mut self, chunk: usize) {
        self.chunk = chunk.max(1);
    }

    /// Readable bytes now (always reloads the producer index).
    pub fn readable(&mut self) -> Result<usize, RingError> {
        Ok(self.core.refresh(self.shm.borrow())? as usize)
    }

    /// Copies as many bytes as are available into `dst` (up to its length) and releases them;
    /// returns the bytes read (0 if the ring is empty or `dst` is empty).
    ///
    /// The producer index is reloaded only if the cached one promises less than `dst.len()`. The
    /// consumer index is released every [`chunk`](Self::chunk) bytes, so the producer can refill
    /// the space while this call copies out the rest (the mirror image of
    /// [`ByteProducer::write_some`]).
    pub fn read_some(&mut self, dst: &mut [u8]) -> Result<usize, RingError> {
        let n = self.take(dst.len())?;
        let shm = self.shm.borrow();
        let mut done = 0;
        while done < n {
            let len = (n - done).min(self.chunk);
            let part = &mut dst[done..done + len];
            ring_copy(shm, &self.core.reg, self.core.st.tail, len, |off, r| {
                shm.read(off, &mut part[r])
            })?;
            self.core.st.tail = self.core.st.tail.wrapping_add(len as u64);
            self.core.release(shm);
            done += len;
        }
        Ok(n)
    }

    /// Copies exactly `dst.len()` bytes into `dst` and releases them if that many are available,
    /// else takes nothing and returns false: a whole small message in one call.
    pub fn read_exact(&mut self, dst: &mut [u8]) -> Result<bool, RingError> {
        let want = dst.len() as u64;
        if self.core.available(self.shm.borrow(), want)? < want {
            return Ok(false);
        }
        // All of it is available (and stays so: only this side consumes).
        Ok(self.read_some(dst)? == dst.len())
    }

    /// Skips up to `n` available bytes without copying them (e.g. the tail of a truncated
    /// message) and releases them; returns the bytes skipped.
    pub fn discard(&mut self, n: usize) -> Result<usize, RingError> {
        let n = self.take(n)?;
        self.core.st.tail = self.core.st.tail.wrapping_add(n as u64);
        self.core.release(self.shm.borrow());
        Ok(n)
    }

    /// How many of `want` bytes can be taken now.
    #[inline]
    fn take(&mut self, want: usize) -> Result<usize, RingError> {
        let avail = self.core.available(self.shm.borrow(), want as u64)?;
        // avail <= cap, which fits in usize.
        Ok(want.min(avail as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::test_util::heap_shm;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn set_index(shm: &Shm, off: usize, v: u64) {
        shm.u64_at(off).unwrap().store(v, Ordering::Relaxed);
    }

    fn index(shm: &Shm, off: usize) -> u64 {
        shm.u64_at(off).unwrap().load(Ordering::Relaxed)
    }

    /// Waits politely: spin a little, then let the other thread run (CI may have one core).
    fn backoff(spins: &mut u32) {
        *spins += 1;
        if *spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }

    #[test]
    fn footprints_and_region_checks() {
        assert_eq!(WordFifo::footprint(1), 192);
        assert_eq!(WordFifo::footprint(8), 192);
        assert_eq!(WordFifo::footprint(16), 256);
        assert_eq!(ByteRing::footprint(1 << 16), 128 + (1 << 16));
        assert_eq!(ByteRing::footprint(4), 192);
        assert_eq!(WordFifo::footprint(usize::MAX), usize::MAX, "saturates");

        let shm = heap_shm(4096);
        assert!(matches!(
            WordProducer::new(&shm, 0, 0),
            Err(RingError::BadCapacity { .. })
        ));
        assert!(matches!(
            WordProducer::new(&shm, 0, 12),
            Err(RingError::BadCapacity { .. })
        ));
        assert!(matches!(
            WordConsumer::new(&shm, 8, 8),
            Err(RingError::Misaligned(8))
        ));
        assert!(matches!(
            WordFifo::init(&shm, 4096 - 128, 8),
            Err(RingError::OutOfBounds { .. })
        ));
        assert!(matches!(
            ByteProducer::new(&shm, usize::MAX & !63, 64),
            Err(RingError::OutOfBounds { .. })
        ));
        assert!(matches!(
            ByteConsumer::new(&shm, 0, 1 << 31),
            Err(RingError::BadCapacity { .. })
        ));
        assert!(ByteRing::init(&shm, 4096 - 192, 64).is_ok());
        assert!(ByteConsumer::new(&shm, 4096 - 192, 64).is_ok());
        assert!(WordFifo::init(&shm, 0, 8).is_ok());
    }

    #[test]
    fn init_zeroes_indices_and_slots() {
        let shm = heap_shm(1024);
        shm.write(0, &[0xAA; 1024]);
        WordFifo::init(&shm, 64, 8).unwrap();
        let mut buf = [0u8; 192];
        shm.read(64, &mut buf);
        assert!(buf.iter().all(|&b| b == 0));
        assert_eq!(index(&shm, 0), 0xAAAA_AAAA_AAAA_AAAA, "outside untouched");
    }

    #[test]
    fn words_are_visible_at_once_and_bounded() {
        let shm = heap_shm(4096);
        WordFifo::init(&shm, 0, 4).unwrap();
        let mut p = WordProducer::new(&shm, 0, 4).unwrap();
        let mut c = WordConsumer::new(&shm, 0, 4).unwrap();

        assert_eq!(c.pop(), Ok(None));
        assert_eq!(p.push(0x11), Ok(true));
        assert_eq!(p.push(0x21), Ok(true));
        assert_eq!(p.pending(), 2);
        assert_eq!(
            c.ready(2),
            Ok(true),
            "visible before publish: the consumer polls slots"
        );
        assert_eq!(c.ready(3), Ok(false));
        assert_eq!(index(&shm, OFF_PRODUCER), 0);
        p.publish();
        assert_eq!(index(&shm, OFF_PRODUCER), 2, "one store for the batch");
        assert_eq!(c.peek(), Ok(Some(0x11)));
        assert_eq!(c.pop(), Ok(Some(0x11)));
        assert!(p.push_all(&[0x31, 0x41]).unwrap());
        assert_eq!(p.push(0x51), Ok(false), "full");
        assert!(!p.push_all(&[0x51]).unwrap());
        assert_eq!(c.pop(), Ok(Some(0x21)));
        assert_eq!(p.push(0x51), Ok(false), "popped but not released");
        assert_eq!(c.unreleased(), 2);
        c.release();
        assert_eq!(index(&shm, OFF_CONSUMER), 2);
        let slots = |shm: &Shm| {
            (0..4)
                .map(|i| index(shm, OFF_DATA + 8 * i))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            slots(&shm),
            [0x11, 0x21, 0x31, 0x41],
            "released slots keep their words: the consumer never writes a slot"
        );
        assert_eq!(c.ready(3), Ok(false), "last lap's words are not this lap's");
        assert_eq!(p.push(0x51), Ok(true));
        assert_eq!(p.push(0x61), Ok(true));
        assert_eq!(p.push(0x71), Ok(false));
        assert_eq!(
            slots(&shm),
            [0xD1, 0xE1, 0x31, 0x41],
            "the second lap's words carry the lap bit"
        );
        let got: Vec<u64> = (0..4).map(|_| c.pop().unwrap().unwrap()).collect();
        assert_eq!(got, [0x31, 0x41, 0x51, 0x61]);
        assert_eq!(c.unreleased(), 4);
        // A full lap popped but unreleased: the next slot still holds an old word, so looking at
        // it releases first instead of reading that word again.
        assert_eq!(c.peek(), Ok(None));
        assert_eq!(c.unreleased(), 0);

        // Kind-0 words would read as empty slots: refused, and nothing is written.
        assert_eq!(p.push(0x70), Err(RingError::EmptyWord(0x70)));
        assert_eq!(p.push_all(&[0x81, 0]), Err(RingError::EmptyWord(0x81)));
        assert_eq!(p.push_all(&[0x11, 0]), Err(RingError::EmptyWord(0)));
        assert_eq!(
            p.push(0x91),
            Err(RingError::EmptyWord(0x91)),
            "bit 7 is the ring's"
        );
        assert_eq!(c.peek(), Ok(None));

        // A second consumer attaches where the first one left off.
        assert!(p.push(0x15).unwrap());
        p.publish();
        let mut c2 = WordConsumer::new(&shm, 0, 4).unwrap();
        assert_eq!(c2.pop(), Ok(Some(0x15)));
    }

    #[test]
    fn the_mailbox_consumer_ignores_the_producer_index() {
        let shm = heap_shm(4096);
        WordFifo::init(&shm, 0, 8).unwrap();
        let mut p = WordProducer::new(&shm, 0, 8).unwrap();
        let mut c = WordConsumer::new(&shm, 0, 8).unwrap();
        for i in 1..=5 {
            p.push(i << 4 | 1).unwrap();
        }
        p.publish();
        // A wild producer index changes nothing: the consumer reads the slots.
        set_index(&shm, OFF_PRODUCER, u64::MAX / 3);
        let got: Vec<u64> = std::iter::from_fn(|| c.pop().unwrap()).collect();
        assert_eq!(got, [0x11, 0x21, 0x31, 0x41, 0x51]);
        assert_eq!(c.ready(100), Ok(false), "beyond the capacity: never ready");
    }

    #[test]
    fn bytes_wrap_around() {
        let shm = heap_shm(4096);
        ByteRing::init(&shm, 128, 16).unwrap();
        let mut p = ByteProducer::new(&shm, 128, 16).unwrap();
        let mut c = ByteConsumer::new(&shm, 128, 16).unwrap();
        assert_eq!(p.chunk(), 4);
        let mut buf = [0u8; 32];
        assert_eq!(c.read_some(&mut buf), Ok(0));
        assert_eq!(p.write_some(b"0123456789"), Ok(10));
        assert_eq!(c.read_some(&mut buf[..7]), Ok(7));
        assert_eq!(&buf[..7], b"0123456");
        assert_eq!(p.write_some(b"abcdefghijklmnop"), Ok(13));
        assert_eq!(p.write_some(b"x"), Ok(0));
        assert_eq!(c.discard(3), Ok(3));
        assert_eq!(c.readable(), Ok(13));
        assert_eq!(c.read_some(&mut buf), Ok(13));
        assert_eq!(&buf[..13], b"abcdefghijklm");
        assert_eq!(p.free_space(), Ok(16));
        assert_eq!(p.write_some(&[]), Ok(0));
        assert_eq!(c.read_some(&mut []), Ok(0));
    }

    #[test]
    fn corrupt_producer_index_is_detected() {
        let shm = heap_shm(4096);
        ByteRing::init(&shm, 0, 16).unwrap();
        let mut p = ByteProducer::new(&shm, 0, 16).unwrap();
        let mut c = ByteConsumer::new(&shm, 0, 16).unwrap();
        p.set_chunk(1);
        assert_eq!(p.write_some(&[7; 5]), Ok(5));
        let mut buf = [0u8; 16];
        assert_eq!(c.read_some(&mut buf[..1]), Ok(1));

        // Ahead by more than a ring: consumer (1) + capacity (16) + 1.
        set_index(&shm, OFF_PRODUCER, 1 + 16 + 1);
        assert!(matches!(
            c.read_some(&mut buf),
            Err(RingError::Corrupt {
                side: Side::Producer,
                seen: 18,
                ..
            })
        ));
        // Exactly a ring ahead is legal.
        set_index(&shm, OFF_PRODUCER, 1 + 16);
        assert_eq!(c.read_some(&mut buf[..4]), Ok(4));
        // Backwards.
        set_index(&shm, OFF_PRODUCER, 3);
        assert!(matches!(
            c.read_some(&mut buf),
            Err(RingError::Corrupt { .. })
        ));
        set_index(&shm, OFF_PRODUCER, u64::MAX);
        assert!(matches!(c.readable(), Err(RingError::Corrupt { .. })));
        // Attaching to an inconsistent pair of indices fails.
        assert!(matches!(
            ByteConsumer::new(&shm, 0, 16),
            Err(RingError::Corrupt { .. })
        ));
        assert!(matches!(
            WordConsumer::new(&shm, 0, 8),
            Err(RingError::Corrupt { .. })
        ));
    }

    #[test]
    fn corrupt_consumer_index_is_detected() {
        let shm = heap_shm(4096);
        ByteRing::init(&shm, 0, 16).unwrap();
        let mut p = ByteProducer::new(&shm, 0, 16).unwrap();
        assert_eq!(p.write_some(&[1; 16]), Ok(16));
        // Consumed more than was published.
        set_index(&shm, OFF_CONSUMER, 17);
        assert!(matches!(
            p.write_some(&[1]),
            Err(RingError::Corrupt {
                side: Side::Consumer,
                seen: 17,
                low: 0,
                high: 16
            })
        ));
        set_index(&shm, OFF_CONSUMER, 8);
        assert_eq!(p.write_some(&[2; 8]), Ok(8));
        // Backwards.
        set_index(&shm, OFF_CONSUMER, 4);
        assert!(matches!(p.free_space(), Err(RingError::Corrupt { .. })));
        assert!(matches!(p.write_some(&[3]), Err(RingError::Corrupt { .. })));
        // The local state survived: a sane value lets it go on.
        set_index(&shm, OFF_CONSUMER, 24);
        assert_eq!(p.free_space(), Ok(16));
    }

    #[test]
    fn indices_near_wrap_around_work() {
        let shm = heap_shm(4096);
        let base = u64::MAX - 5;
        set_index(&shm, OFF_PRODUCER, base);
        set_index(&shm, OFF_CONSUMER, base);
        let mut p = WordProducer::new(&shm, 0, 8).unwrap();
        let mut c = WordConsumer::new(&shm, 0, 8).unwrap();
        for round in 0..4u64 {
            assert!(p.push_all(&[round << 4 | 1; 8]).unwrap());
            p.publish();
            for _ in 0..8 {
                assert_eq!(c.pop(), Ok(Some(round << 4 | 1)));
            }
            c.release();
        }
        assert_eq!(index(&shm, OFF_CONSUMER), base.wrapping_add(32));
    }

    /// An 8-slot mailbox at offset 0 of `shm` (four slot lines): its producer and consumer.
    fn mailbox8(shm: &Shm) -> (WordProducer<&Shm>, WordConsumer<&Shm>) {
        WordFifo::init(shm, 0, 8).unwrap();
        (
            WordProducer::new(shm, 0, 8).unwrap(),
            WordConsumer::new(shm, 0, 8).unwrap(),
        )
    }

    #[test]
    fn peek_message_copies_a_whole_message_without_taking_it() {
        let shm = heap_shm(WordFifo::footprint(8));
        let (mut p, mut c) = mailbox8(&shm);
        let w = |i: u64| i << 8 | 1;
        // The head word's low byte (after the kind) says how many words the message has.
        let words = |head: u64| Some(((head >> 8) & 0xF) as usize);
        let mut dst = [0u64; 4];
        assert_eq!(c.peek_message(&mut dst, words), Ok(Head::Empty));
        assert!(p.push_all(&[w(3), w(0xA)]).unwrap());
        assert_eq!(c.peek_message(&mut dst, words), Ok(Head::Partial));
        assert!(p.push(w(0xB)).unwrap());
        assert_eq!(c.peek_message(&mut dst, words), Ok(Head::Whole(3)));
        assert_eq!(dst[..3], [w(3), w(0xA), w(0xB)]);
        // Not taken until consumed: the same message again.
        assert_eq!(c.peek_message(&mut dst, words), Ok(Head::Whole(3)));
        c.consume(3);
        assert_eq!(c.unreleased(), 3);
        c.release();
        // A message longer than the scratch, or one `words` refuses (or of 0 words, or of more
        // than the mailbox holds), is left for the caller; a larger scratch takes it.
        assert!(p.push_all(&[w(3), w(1), w(1)]).unwrap());
        let mut two = [0u64; 2];
        assert_eq!(c.peek_message(&mut two, words), Ok(Head::Other(w(3))));
        assert_eq!(c.peek_message(&mut dst, |_| None), Ok(Head::Other(w(3))));
        assert_eq!(c.peek_message(&mut dst, |_| Some(0)), Ok(Head::Other(w(3))));
        let mut ten = [0u64; 10];
        assert_eq!(c.peek_message(&mut ten, |_| Some(9)), Ok(Head::Other(w(3))));
        assert_eq!(c.peek_message(&mut dst, words), Ok(Head::Whole(3)));
        c.consume(3);
        c.release();
        // A message across the end of the slot array: slots 6, 7, then 0 and 1 of the next lap.
        assert!(p.push_all(&[w(4), w(0xC), w(0xD), w(0xE)]).unwrap());
        assert_eq!(c.peek_message(&mut dst, words), Ok(Head::Whole(4)));
        assert_eq!(dst, [w(4), w(0xC), w(0xD), w(0xE)]);
        c.consume(4);
        // A torn message: its last word there (lap 1, slot 4), the middle one (slot 3) still the
        // previous lap's.
        let slot = |i: usize| atomic(&shm, OFF_DATA + 8 * i).unwrap();
        slot(2).store(w(3) | LAP_BIT, Ordering::Relaxed);
        slot(4).store(w(0xF) | LAP_BIT, Ordering::Relaxed);
        assert_eq!(
            c.peek_message(&mut dst, words),
            Err(RingError::Torn { index: 10 })
        );
        // Once the producer writes it, the message is whole.
        slot(3).store(w(0xA) | LAP_BIT, Ordering::Relaxed);
        assert_eq!(c.peek_message(&mut dst, words), Ok(Head::Whole(3)));
        assert_eq!(dst[..3], [w(3), w(0xA), w(0xF)]);
    }

    #[test]
    fn published_ahead_is_a_clamped_hint() {
        let shm = heap_shm(WordFifo::footprint(8));
        let (mut p, mut c) = mailbox8(&shm);
        let w = |i: u64| i << 8 | 1;
        assert!(p.push_all(&[w(1), w(2), w(3)]).unwrap());
        // Pushed words are readable at once, but not published yet.
        assert_eq!(c.published_ahead(), 0);
        assert_eq!(c.peek(), Ok(Some(w(1))));
        p.publish();
        assert_eq!(c.published_ahead(), 3);
        assert_eq!(c.pop(), Ok(Some(w(1))));
        assert_eq!(c.published_ahead(), 2);
        // Whatever a hostile producer stores there, the hint stays within the mailbox, and it
        // never makes a slot readable.
        atomic(&shm, OFF_PRODUCER)
            .unwrap()
            .store(u64::MAX / 2, Ordering::Relaxed);
        assert_eq!(c.published_ahead(), 8);
        assert_eq!(c.pop(), Ok(Some(w(2))));
        assert_eq!(c.pop(), Ok(Some(w(3))));
        assert_eq!(c.pop(), Ok(None));
    }

    #[derive(Debug, Clone)]
    enum WordOp {
        Push(u64),
        PushAll(Vec<u64>),
        Publish,
        Pop,
        // peek_message with a message of `n` words and `room` words of scratch, then consume.
        PeekMessage { n: usize, room: usize },
        Release,
    }

    fn word_op() -> impl Strategy<Value = WordOp> {
        prop_oneof![
            4 => any::<u64>().prop_map(|w| WordOp::Push(w & !LAP_BIT | 1)),
            1 => proptest::collection::vec(any::<u64>().prop_map(|w| w & !LAP_BIT | 1), 0..6)
                .prop_map(WordOp::PushAll),
            2 => Just(WordOp::Publish),
            4 => Just(WordOp::Pop),
            2 => (0usize..6, 0usize..8).prop_map(|(n, room)| WordOp::PeekMessage { n, room }),
            2 => Just(WordOp::Release),
        ]
    }

    proptest! {
        #[test]
        fn word_fifo_preserves_the_stream(
            cap_log in 0u32..5,
            ops in proptest::collection::vec(word_op(), 0..200),
        ) {
            let cap = 1usize << cap_log;
            let shm = heap_shm(WordFifo::footprint(cap) + 64);
            WordFifo::init(&shm, 64, cap).unwrap();
            let mut p = WordProducer::new(&shm, 64, cap).unwrap();
            let mut c = WordConsumer::new(&shm, 64, cap).unwrap();
            // Model: pushed words not yet popped (visible at once), pushed-unpublished count,
            // popped-unreleased.
            let mut visible = VecDeque::new();
            let mut pending = 0usize;
            let mut unreleased = 0usize;
            let mut sent = Vec::new();
            let mut received = Vec::new();
            for op in ops {
                let in_ring = visible.len() + unreleased;
                match op {
                    WordOp::Push(w) => {
                        let ok = p.push(w).unwrap();
                        prop_assert_eq!(ok, in_ring < cap);
                        if ok { pending += 1; visible.push_back(w); sent.push(w); }
                    }
                    WordOp::PushAll(ws) => {
                        let ok = p.push_all(&ws).unwrap();
                        prop_assert_eq!(ok, in_ring + ws.len() <= cap);
                        if ok { pending += ws.len(); visible.extend(&ws); sent.extend(&ws); }
                    }
                    WordOp::Publish => { p.publish(); pending = 0; }
                    WordOp::Pop => {
                        let got = c.pop().unwrap();
                        prop_assert_eq!(got, visible.pop_front());
                        if let Some(w) = got { unreleased += 1; received.push(w); }
                        // A full lap popped: the next look releases them first.
                        if unreleased == cap { prop_assert_eq!(c.peek().unwrap(), None); unreleased = 0; }
                    }
                    WordOp::PeekMessage { n, room } => {
                        let mut dst = vec![0u64; room];
                        let mut head = None;
                        let got = c.peek_message(&mut dst, |w| { head = Some(w); Some(n) }).unwrap();
                        // A run that would wrap onto popped-unreleased slots releases them
                        // first, whatever is found: here, for the most the scratch can hold.
                        if unreleased + room.min(cap) > cap { unreleased = 0; }
                        let want = match visible.front() {
                            None => Head::Empty,
                            Some(&w) if n == 0 || n > room.min(cap) => Head::Other(w),
                            Some(_) if n > visible.len() => Head::Partial,
                            Some(_) => Head::Whole(n),
                        };
                        prop_assert_eq!(got, want);
                        // The caller's `words` sees the head word, lap bit cleared.
                        prop_assert_eq!(head, visible.front().copied());
                        if let Head::Whole(n) = got {
                            let taken: Vec<u64> = visible.drain(..n).collect();
                            prop_assert_eq!(&dst[..n], &taken[..]);
                            c.consume(n);
                            received.extend(&taken);
                            unreleased += n;
                        }
                    }
                    WordOp::Release => { c.release(); unreleased = 0; }
                }
                prop_assert_eq!(p.pending(), pending);
                prop_assert_eq!(c.unreleased(), unreleased);
            }
            p.publish();
            c.release();
            while let Some(w) = c.pop().unwrap() { received.push(w); }
            prop_assert_eq!(received, sent);
        }

        #[test]
        fn byte_ring_preserves_the_stream(
            cap_log in 0u32..8,
            chunk in 1usize..40,
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            steps in proptest::collection::vec((0u8..4, 0usize..300), 1..100),
        ) {
            let cap = 1usize << cap_log;
            let shm = heap_shm(ByteRing::footprint(cap));
            ByteRing::init(&shm, 0, cap).unwrap();
            let mut p = ByteProducer::new(&shm, 0, cap).unwrap();
            let mut c = ByteConsumer::new(&shm, 0, cap).unwrap();
            p.set_chunk(chunk);
            c.set_chunk(chunk.div_ceil(2));
            let mut sent = 0usize;
            let mut out = Vec::new();
            let mut buf = vec![0u8; 300];
            // Random chunkings: each call moves exactly what fits / what is there (one thread, so
            // every reload of the other index sees the latest value).
            for (op, n) in steps {
                let in_ring = sent - out.len();
                match op {
                    0 => {
                        let end = (sent + n).min(data.len());
                        let w = p.write_some(&data[sent..end]).unwrap();
                        prop_assert_eq!(w, (end - sent).min(cap - in_ring));
                        sent += w;
                    }
                    3 => {
                        // All or nothing.
                        let end = (sent + n).min(data.len());
                        let ok = p.write_all(&data[sent..end]).unwrap();
                        prop_assert_eq!(ok, end - sent <= cap - in_ring);
                        if ok { sent = end; }
                    }
                    1 => {
                        let r = c.read_some(&mut buf[..n]).unwrap();
                        prop_assert_eq!(r, n.min(in_ring));
                        out.extend_from_slice(&buf[..r]);
                    }
                    _ => {
                        // All or nothing.
                        let ok = c.read_exact(&mut buf[..n]).unwrap();
                        prop_assert_eq!(ok, n <= in_ring);
                        if ok { out.extend_from_slice(&buf[..n]); }
                    }
                }
            }
            // Drain: every round moves at least one byte.
            let mut rounds = 0;
            while out.len() < data.len() {
                sent += p.write_some(&data[sent..]).unwrap();
                let r = c.read_some(&mut buf).unwrap();
                prop_assert!(r > 0);
                out.extend_from_slice(&buf[..r]);
                rounds += 1;
                prop_assert!(rounds <= data.len());
            }
            prop_assert_eq!(out, data);
        }

        #[test]
        fn garbage_indices_never_panic(
            prod in any::<u64>(),
            cons in any::<u64>(),
            set_after in any::<bool>(),
            ops in proptest::collection::vec(0u8..6, 1..40),
        ) {
            let cap = 8;
            let shm = heap_shm(ByteRing::footprint(cap).max(WordFifo::footprint(cap)));
            let garbage = |shm: &Shm| {
                set_index(shm, OFF_PRODUCER, prod);
                set_index(shm, OFF_CONSUMER, cons);
            };
            if !set_after { garbage(&shm); }
            let wp = WordProducer::new(&shm, 0, cap);
            let wc = WordConsumer::new(&shm, 0, cap);
            let bp = ByteProducer::new(&shm, 0, cap);
            let bc = ByteConsumer::new(&shm, 0, cap);
            let attached = [wp.is_ok(), wc.is_ok(), bp.is_ok(), bc.is_ok()];
            prop_assert!(attached.iter().all(|&a| a == attached[0]));
            let (Ok(mut wp), Ok(mut wc), Ok(mut bp), Ok(mut bc)) = (wp, wc, bp, bc) else {
                prop_assert!(prod.wrapping_sub(cons) > cap as u64);
                return Ok(());
            };
            if set_after { garbage(&shm); }
            let mut buf = [0u8; 64];
            for op in ops {
                let r = match op {
                    0 => wp.push_all(&[1; 5]).map(|_| ()),
                    1 => { wp.publish(); Ok(()) }
                    2 => wc.pop().map(|_| ()),
                    3 => { wc.release(); Ok(()) }
                    4 => bp.write_some(&[7; 64]).map(|n| assert!(n <= cap)),
                    _ => bc.read_some(&mut buf).map(|n| assert!(n <= cap)),
                };
                if let Err(e) = r {
                    prop_assert!(matches!(e, RingError::Corrupt { .. }), "{e}");
                }
            }
        }
    }

    #[test]
    fn two_threads_stream_64_mib_through_a_64_kib_ring() {
        const CAP: usize = 64 << 10;
        const TOTAL: usize = 64 << 20;
        // Deterministic content that differs per position, to catch lost, repeated or reordered
        // bytes: a simple 64-bit mix of the byte's 8-byte block number.
        fn fill(pos: usize, buf: &mut [u8]) {
            for (i, b) in buf.iter_mut().enumerate() {
                let p = (pos + i) as u64;
                let x = (p / 8).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                *b = (x >> (8 * (p % 8))) as u8 ^ (x >> 59) as u8;
            }
        }
        let shm = heap_shm(ByteRing::footprint(CAP) + 64);
        ByteRing::init(&shm, 64, CAP).unwrap();
        let mut p = ByteProducer::new(&shm, 64, CAP).unwrap();
        let mut c = ByteConsumer::new(&shm, 64, CAP).unwrap();
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut buf = vec![0u8; 100_003];
                let mut pos = 0;
                let mut size = 1usize;
                while pos < TOTAL {
                    // Writes of varied sizes: 1 byte up to ~100 KB, larger than the ring.
                    size = (size * 7 + 13) % buf.len() + 1;
                    let n = size.min(TOTAL - pos);
                    fill(pos, &mut buf[..n]);
                    let mut done = 0;
                    let mut spins = 0;
                    while done < n {
                        let w = p.write_some(&buf[done..n]).unwrap();
                        if w == 0 {
                            backoff(&mut spins);
                        }
                        done += w;
                    }
                    pos += n;
                }
            });
            let mut buf = vec![0u8; 77_777];
            let mut expect = vec![0u8; buf.len()];
            let mut pos = 0;
            let mut size = 5usize;
            let mut spins = 0;
            while pos < TOTAL {
                size = (size * 11 + 3) % buf.len() + 1;
                let n = c.read_some(&mut buf[..size.min(TOTAL - pos)]).unwrap();
                if n == 0 {
                    backoff(&mut spins);
                    continue;
                }
                fill(pos, &mut expect[..n]);
                assert!(buf[..n] == expect[..n], "mismatch in {pos}..{}", pos + n);
                pos += n;
            }
            assert_eq!(c.read_some(&mut buf), Ok(0));
        });
    }

    #[test]
    fn two_threads_stream_a_million_words() {
        const CAP: usize = 256;
        const TOTAL: u64 = 1 << 20;
        let shm = heap_shm(WordFifo::footprint(CAP));
        WordFifo::init(&shm, 0, CAP).unwrap();
        let mut p = WordProducer::new(&shm, 0, CAP).unwrap();
        let mut c = WordConsumer::new(&shm, 0, CAP).unwrap();
        let word = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & !LAP_BIT | 1;
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut i = 0;
                let mut spins = 0;
                while i < TOTAL {
                    // Messages of 1 to 5 words, each published with one store.
                    let len = (i % 5 + 1).min(TOTAL - i);
                    let msg: Vec<u64> = (i..i + len).map(word).collect();
                    while !p.push_all(&msg).unwrap() {
                        backoff(&mut spins);
                    }
                    p.publish();
                    i += len;
                }
            });
            let mut i = 0;
            let mut spins = 0;
            while i < TOTAL {
                match c.pop().unwrap() {
                    Some(w) => {
                        assert_eq!(w, word(i), "word {i}");
                        i += 1;
                        if i % 4 == 0 {
                            c.release();
                        }
                    }
                    None => {
                        c.release();
                        backoff(&mut spins);
                    }
                }
            }
            c.release();
            assert_eq!(c.pop(), Ok(None));
        });
    }
}
