//! The thresholds that pick a message's path, and the timings of waits: each with the measurement
//! that chose it (docs/architecture.md and bench/method.md have the rest).

use std::time::Duration;

/// Largest payload sent inline as DATA words in the mailbox; larger ones go through the ring.
pub const INLINE_MAX: usize = 112;
/// Largest ring message a receive takes straight from the ring (the direct receive path) when it
/// is all there: larger ones stream through the general path, chunk by chunk, while the sender
/// is still writing them.
pub const DIRECT_RING_MAX: usize = 16 << 10;
/// Mailbox words of the largest inline message: its envelope and DATA words.
pub(super) const INLINE_WORDS: usize = 1 + snoo_common::register::data_words_for(INLINE_MAX);
/// Smallest send from this rank's pool heap (`alloc_mem`) that takes the single-copy RENDEZVOUS
/// path: below it, the FIN round trip costs more than the copy it saves.
pub const RDV_MIN: usize = 32 << 10;
/// Smallest RENDEZVOUS whose receive buffer, if it lies in the receiver's heap too, is split
/// between both CPUs (SHARE / WROTE, register.rs): below it, the extra round trip costs more than
/// copying half the payload saves.
pub const SPLIT_MIN: usize = 128 << 10;
/// How long a waiter polls shared memory before it sleeps on its doorbell. A doorbell wake-up costs
/// tens to hundreds of microseconds (eventfd, scheduler; a VM exit and an interrupt in a guest), so
/// polling for a while is cheaper whenever the peer answers within that time.
pub(crate) const SPIN_TIME: Duration = Duration::from_micros(50);
/// While a RENDEZVOUS of ours waits for its FIN (or a split one of the peer's for its WROTE), the
/// peer is copying the payload: a waiter polls for as long as that copy takes at this rate
/// (conservative: copies run at 10-90 GB/s here), up to [`RDV_SPIN_MAX`], before it sleeps.
/// Sleeping sooner only adds a wake-up to the copy: osu_bw from Alloc_mem buffers at 1-4 MiB
/// (a copy of 50-300 us) lost a third of its rate to the sender's sleeps.
pub(super) const RDV_SPIN_BYTES_PER_US: u64 = 2000;
/// Longest poll while waiting for a peer's copy (a peer that posted no receive yet never copies).
pub(super) const RDV_SPIN_MAX: Duration = Duration::from_millis(5);
/// Most non-blocking small sends left unpublished in a mailbox (see the send paths).
pub const TX_BATCH: u32 = 16;
/// Largest receive buffer, in bytes, for which a receive posted behind others waits for the
/// sender's published batch before it reads the mailbox (the direct receive path): messages of
/// up to 16 B are at most 3 mailbox words, so several share each slot line. osu_bw, 9
/// interleaved pinned runs both ways: +10-24% at 1-16 B; waiting for larger messages too lost
/// 6-28% at 32-256 B (the receiver then fell back to the matcher for most of them).
pub(super) const SHARED_LINE_MAX: usize = 16;
/// Idle time after which a waiter yields its CPU between polls.
pub(super) const YIELD_AFTER: Duration = Duration::from_micros(5);
/// Idle polls between two looks at the clock.
pub(super) const SPIN_CHECK: u32 = 64;
/// Longest single sleep.
pub(super) const SLEEP_SLICE: Duration = Duration::from_millis(20);
/// How often a waiter checks that its peers are alive, busy or not.
pub(super) const LIVENESS_PERIOD: Duration = Duration::from_millis(10);
/// A wait that has made no progress for this long is idle for good (a rank waiting for work):
/// from then on it sleeps, and checks liveness, every [`IDLE_SLICE`].
pub(super) const LONG_IDLE: Duration = Duration::from_millis(20);
/// Longest sleep, and liveness period, of a wait idle for [`LONG_IDLE`]. Each wake-up of an idle
/// rank takes a CPU from the ranks at work: 14 ranks of a 16-rank job waking every 10 ms made
/// 8 B ping-pong between the other two 15-25% slower on 2 CPUs (0.36-0.43 us against 0.29-0.35
/// with 2 ranks), at 200 ms no slower (0.30-0.34). A death is still noticed within 200 ms (at once
/// on the socket device, whose wait returns on the daemon's departure message).
pub(crate) const IDLE_SLICE: Duration = Duration::from_millis(200);
/// Most mailbox words one progress pass reads from one peer, so that a busy peer cannot starve
/// the others.
pub(super) const WORDS_PER_PASS: usize = 4096;
