//! The point-to-point engine: joins a job in a pool, moves messages through the per-pair mailboxes
//! (register words) and data rings, and hands them to the matcher with MPI's rules.
//!
//! Single-threaded by design (one engine per process, like MPI_THREAD_SINGLE); the C ABI wraps it
//! in a mutex. Every wait goes through `Engine::wait_until` ([`progress`]): it drives progress,
//! spins briefly, then sleeps on the device's doorbell ([`sleep`]), so senders ring only sleepers.
//! Every wait ends: on success, on a peer's death ([`liveness`]), or at the job timeout.
//!
//! One concept per module, from the bottom up:
//!
//! | module | what |
//! |---|---|
//! | [`tuning`] | the thresholds that pick a message's path, and the timings of waits |
//! | [`pool`] | the cached handle to the pool mapping that every ring holds |
//! | [`link`] | everything about one other rank: its channel (mailbox and ring, both ways), queues, scratch |
//! | [`join`] | claiming a rank in the job table, connecting the links, and Finalize |
//! | [`send`] | the send paths: inline, direct medium, queued ring streams, RENDEZVOUS |
//! | [`receive`] | the receive state machine: mailbox words into envelopes, envelopes to the matcher |
//! | [`direct`] | the receive fast path that takes a message from the mailbox head, bypassing the matcher |
//! | [`stream`] | ring and RENDEZVOUS payloads moving into their receives |
//! | [`rendezvous`] | the FIN / SHARE / WROTE bookkeeping of single-copy sends |
//! | [`alloc`] | this rank's pool heap (`alloc_mem`) and which buffers lie in it |
//! | [`progress`] | progress passes and the wait loop |
//! | [`sleep`] | the sleep/doorbell handshake |
//! | [`liveness`] | which peers died or finished, and what that ends |

mod alloc;
mod direct;
mod join;
mod link;
mod liveness;
mod pool;
mod progress;
mod receive;
mod rendezvous;
mod send;
mod sleep;
mod stream;
mod tuning;

pub(crate) use direct::Direct;
pub use join::JoinOptions;
pub(crate) use send::To;
pub use tuning::{DIRECT_RING_MAX, INLINE_MAX, RDV_MIN, SPLIT_MIN, TX_BATCH};
// The collectives' waits poll and sleep as point-to-point waits do.
pub(crate) use tuning::{IDLE_SLICE, SPIN_TIME};

use crate::device::Device;
use crate::heap::Heap;
use crate::matching::Matcher;
use link::Link;
use pool::Pool;
use snoo_common::job::JobLayout;
use snoo_common::layout::PoolInfo;
use std::sync::Arc;
use std::time::Duration;

/// A joined job: this rank's side of every link, its matcher and its pool heap.
pub(crate) struct Engine {
    dev: Arc<dyn Device>,
    pool: Pool,
    info: PoolInfo,
    layout: JobLayout,
    rank: u32,
    size: u32,
    vector: u32,
    links: Vec<Option<Link>>,
    pub(crate) matcher: Matcher,
    timeout: Duration,
    finalized: bool,
    // Read every payload even if no receive wants it (set while finalizing).
    drain_all: bool,
    // A doorbell was rung since the last wait began (see `yield_to_woken`).
    rang: bool,
    // Some link may hold a batch of unpublished sends (see `flush_batches`): without one, a
    // blocking call does not walk every link to find out.
    batching: bool,
    // Synchronous sends to this rank itself not yet matched (their request ids).
    self_unacked: Vec<u64>,
    // This rank's heap in the pool (alloc_mem).
    heap: Heap,
}

impl Engine {
    /// This rank.
    pub(crate) fn rank(&self) -> u32 {
        self.rank
    }

    /// Ranks in the job.
    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    /// The link with rank `r`, if `r` is another rank of the job.
    #[inline]
    fn link(&self, r: u32) -> Option<&Link> {
        self.links.get(r as usize).and_then(Option::as_ref)
    }

    /// The link with rank `r`, mutably (see [`Engine::link`]).
    #[inline]
    fn link_opt(&mut self, r: u32) -> Option<&mut Link> {
        self.links.get_mut(r as usize).and_then(Option::as_mut)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if !self.finalized {
            let _ = self.finalize();
        }
    }
}
