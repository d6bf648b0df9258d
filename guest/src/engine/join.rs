//! Joining a job and leaving it. A rank claims a slot in the pool's job table (forming the job if
//! the pool has none, or only a stale one), waits for every rank to claim theirs, then connects a
//! [`Link`] to each. Finalize completes what it sent, marks its slot finished, and the last rank
//! out frees the pool for the next job. The table itself (offsets, states, the atomic steps) is
//! [`JobTable`] in `snoo-common`; this module holds the policy: retries, deadlines, errors.

use super::link::{Bell, Link};
use super::pool::Pool;
use super::Engine;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::heap::Heap;
use crate::matching::Matcher;
use snoo_common::job::{JobLayout, JobState, JobTable, RANK_SLEEPING};
use snoo_common::layout::{PeerState, PoolHeader};
use snoo_common::register::WIRE_VERSION;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a job is joined.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// The pool's name: the pool reached must carry it.
    pub name: String,
    /// The rank to take, or `None` for the first free one.
    pub rank: Option<u32>,
    /// Ranks in the job, or `None` for what the daemon was started with (`--ranks`).
    pub size: Option<u32>,
    /// How long to wait for the whole job, and for any later wait without progress.
    pub timeout: Duration,
}

/// Who claims a slot: the peer id, its generation in the peer table, and the doorbell vector it
/// sleeps on.
#[derive(Debug, Clone, Copy)]
struct Claimant {
    peer: u16,
    generation: u64,
    vector: u32,
}

/// Why waiting for the job's ranks stopped short.
enum Gathering {
    /// The job was re-formed meanwhile (it had a dead member): claim again.
    Reformed,
    /// It failed.
    Failed(Error),
}

impl Engine {
    /// Joins the job on the pool reached through `dev`.
    pub(crate) fn join(dev: Arc<dyn Device>, opts: &JoinOptions) -> Result<Engine> {
        let shm = dev.shm();
        let no_pool = |why: String| Error::NoPool {
            name: opts.name.clone(),
            why,
        };
        let (header, info) = PoolHeader::open(shm).map_err(|e| no_pool(e.to_string()))?;
        if info.name != opts.name {
            return Err(no_pool(format!(
                "the pool reached is named {:?}",
                info.name
            )));
        }
        let Some(size) = opts.size.or((info.ranks > 0).then_some(info.ranks)) else {
            return Err(Error::Arg(
                "job size unknown: set SNOO_SIZE or start snoo-hostd with --ranks".into(),
            ));
        };
        let layout =
            JobLayout::new(&info.geometry, size).map_err(|e| Error::PoolTooSmall(e.to_string()))?;
        if let Some(r) = opts.rank.filter(|&r| r >= size) {
            return Err(Error::Rank {
                rank: r.into(),
                size,
            });
        }
        let job = JobTable::new(shm, &layout);
        let own = dev.own_id();
        let (_, generation) = header.peer(own.into()).unwrap_or((PeerState::Free, 0));
        let vector = dev.own_vector();
        if vector >= info.vectors.max(1) {
            return Err(Error::Arg(format!(
                "the device lent doorbell vector {vector}, but the pool has {}",
                info.vectors
            )));
        }
        let me = Claimant {
            peer: own,
            generation,
            vector,
        };
        let deadline = Instant::now() + opts.timeout;
        // Claim a rank; if the job is re-formed under us (it had a dead member), claim again.
        let rank = loop {
            let (rank, job_id) = claim(&job, &header, opts.rank, me, deadline)?;
            match wait_for_ranks(&job, &header, job_id, &*dev, deadline, &info.name) {
                Ok(()) => break rank,
                Err(Gathering::Reformed) => continue,
                Err(Gathering::Failed(e)) => {
                    // Give the slot back so that a retry (or another process) can take it.
                    job.release(rank);
                    return Err(e);
                }
            }
        };
        tracing::debug!(rank, job_id = job.job_id(), "joined job");
        let (start, len) = layout.heap(rank).expect("own rank");
        let mut engine = Engine {
            dev: dev.clone(),
            pool: Pool::new(dev.clone()),
            info,
            layout,
            rank,
            size,
            vector,
            links: Vec::new(),
            matcher: Matcher::default(),
            timeout: opts.timeout,
            // Not a member until the links are up: a failed join must not run Finalize.
            finalized: true,
            drain_all: false,
            rang: false,
            batching: false,
            self_unacked: Vec::new(),
            heap: Heap::new(start, len),
        };
        if let Err(e) = engine.connect_links() {
            // Give the slot back so that a retry (or another process) can take it.
            JobTable::new(engine.dev.shm(), &engine.layout).release(rank);
            return Err(e);
        }
        engine.finalized = false;
        Ok(engine)
    }

    /// Connects a link to every other rank, from what its slot in the rank table says (checked:
    /// the table is written by other VMs).
    fn connect_links(&mut self) -> Result<()> {
        let job = JobTable::new(self.dev.shm(), &self.layout);
        for r in 0..self.size {
            if r == self.rank {
                self.links.push(None);
                continue;
            }
            let (peer, generation, vector) = job.rank_peer(r).expect("rank in job");
            if peer >= self.info.geometry.max_peers || peer > u32::from(u16::MAX) {
                return Err(Error::protocol(r, "peer id out of range in the rank table"));
            }
            if vector >= self.info.vectors.max(1) {
                return Err(Error::protocol(
                    r,
                    "doorbell vector out of range in the rank table",
                ));
            }
            let bell = Bell {
                peer: peer as u16,
                vector,
                sleeping_off: self.layout.rank_slot(r).expect("rank in job") + RANK_SLEEPING,
                poke: false,
            };
            let link = Link::new(&self.pool, &self.layout, self.rank, r, bell, generation)?;
            self.links.push(Some(link));
            // Map in both channels with `r` now: otherwise the first pass of every message
            // through a ring takes a page fault per 4 KiB page (in a VM, a guest fault and an
            // exit to the host each), on the message's path. 10-20% of a 1-4 KiB exchange in a
            // short run. The cost is one read per page at Init, and the channel memory is
            // committed when the job starts rather than as it is used.
            let shm = self.dev.shm();
            for (from, to) in [(self.rank, r), (r, self.rank)] {
                let (off, len) = self.layout.channel_span(from, to).expect("pair in job");
                shm.touch_pages(off, len);
            }
        }
        Ok(())
    }

    /// Completes outstanding sends and leaves the job; the last rank out frees the pool for the
    /// next job.
    pub(crate) fn finalize(&mut self) -> Result<()> {
        if self.finalized {
            return Ok(());
        }
        // Messages sent to us that nobody will receive: read them anyway, so that their senders'
        // rings drain and those senders can finish too.
        self.drain_all = true;
        let result = self.wait_until(
            |e| {
                Ok(e.links
                    .iter()
                    .flatten()
                    .all(|l| l.outgoing.is_empty() || l.health.dead || l.health.finished))
            },
            |_| None,
        );
        let _ = self.progress();
        self.release_idle();
        self.finalized = true;
        JobTable::new(self.dev.shm(), &self.layout).leave(self.rank);
        result
    }
}

/// Waits until all ranks of job `job_id` have claimed their slots.
fn wait_for_ranks(
    job: &JobTable<'_>,
    header: &PoolHeader<'_>,
    job_id: u64,
    dev: &dyn Device,
    deadline: Instant,
    name: &str,
) -> std::result::Result<(), Gathering> {
    let ranks = job.layout().ranks;
    loop {
        if job.job_id() != job_id || job.state() != Some(JobState::Running) {
            return Err(Gathering::Reformed);
        }
        let joined = job.joined();
        if joined >= ranks {
            // Every slot taken, but one by a member that died before the job started (a slot it
            // claimed and never used): the job can never run. Free the pool for a new one
            // rather than start with a dead rank.
            if job.members(header).dead > 0 && job.transition(JobState::Running, JobState::Free) {
                tracing::info!("a member died before the job started: forming it again");
                return Err(Gathering::Reformed);
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Gathering::Failed(Error::Timeout(format!(
                "{joined} of {ranks} ranks joined pool {name:?} before the timeout"
            ))));
        }
        let _ = dev.wait(0, Duration::from_millis(2));
    }
}

/// Takes a rank slot in the job, forming the job if the pool has none, or only a stale one (a job
/// some of whose ranks died and none of whose ranks is still running). Returns the rank and the
/// job's id.
fn claim(
    job: &JobTable<'_>,
    header: &PoolHeader<'_>,
    want: Option<u32>,
    me: Claimant,
    deadline: Instant,
) -> Result<(u32, u64)> {
    loop {
        match job.state() {
            Some(JobState::Free) => {
                if job.transition(JobState::Free, JobState::Forming) {
                    job.form();
                    continue;
                }
            }
            Some(JobState::Running) => {
                if replace_if_stale(job, header) {
                    continue;
                }
                if let Some(claimed) = claim_in_running(job, want, me, deadline)? {
                    return Ok(claimed);
                }
            }
            // FORMING (or a word no rank writes): someone is laying out the job; it takes
            // microseconds unless it died doing so.
            Some(JobState::Forming) | None => {
                if Instant::now() > deadline {
                    // (A garbage word is not FORMING: this leaves it alone, and the claim ends
                    // at the timeout below.)
                    job.transition(JobState::Forming, JobState::Free);
                }
            }
        }
        if Instant::now() > deadline + Duration::from_secs(1) {
            return Err(Error::Timeout("could not claim a rank in the job".into()));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Frees the pool of a running job that is over for good: one with a dead member in which nobody
/// is still running, or which never got all its ranks (it can never start). Ranks waiting in it
/// notice the new job id and claim again. True if the job was stale.
fn replace_if_stale(job: &JobTable<'_>, header: &PoolHeader<'_>) -> bool {
    let m = job.members(header);
    let ranks_now = job.params().ranks;
    if m.dead > 0 && (m.live == 0 || m.live + m.dead + m.finished < ranks_now) {
        tracing::info!(dead = m.dead, "replacing a stale job in the pool");
        job.transition(JobState::Running, JobState::Free);
        return true;
    }
    false
}

/// One attempt at a slot in a running job: the rank and job id, or `None` to try again (every
/// slot wanted is taken, or another job holds the pool) until `deadline`, or an error for a job
/// this rank can never join.
fn claim_in_running(
    job: &JobTable<'_>,
    want: Option<u32>,
    me: Claimant,
    deadline: Instant,
) -> Result<Option<(u32, u64)>> {
    let l_ranks = job.layout().ranks;
    let p = job.params();
    let l = job.layout();
    if p.ranks != l_ranks
        || p.ring_log2 != l.ring_bytes.trailing_zeros()
        || p.mailbox_log2 != l.mailbox_words.trailing_zeros()
    {
        if Instant::now() > deadline {
            return Err(Error::Arg(format!(
                "the pool is busy with another job of {} ranks (this job has {l_ranks})",
                p.ranks
            )));
        }
        return Ok(None);
    }
    if p.wire != WIRE_VERSION {
        // Another build's ranks: they would misread each other's register words.
        return Err(Error::Arg(format!(
            "the job in this pool speaks register-word format {}, this build speaks \
             {WIRE_VERSION}: every rank of a job must run the same SNOO release",
            p.wire
        )));
    }
    let candidates = match want {
        Some(r) => r..r + 1,
        None => 0..l_ranks,
    };
    // A slot this process already holds first: a claim can land in the table of a job re-formed
    // under it (the table cleared between its first and last store), and that claim is ours.
    if let Some(r) = candidates
        .clone()
        .find(|&r| job.held_by(r, me.peer, me.generation))
    {
        return Ok(Some((r, job.job_id())));
    }
    if let Some(r) = candidates
        .clone()
        .find(|&r| job.try_claim(r, me.peer, me.generation, me.vector))
    {
        return Ok(Some((r, job.job_id())));
    }
    if Instant::now() > deadline {
        return Err(match want {
            Some(r) => Error::Arg(format!("rank {r} is already taken in this job")),
            None => Error::Arg(format!("all {l_ranks} ranks of the job are taken")),
        });
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::anon_shm;
    use snoo_common::layout::PoolGeometry;

    /// The CI race: a rank's claim landed in the table of a job another rank had just re-formed,
    /// so the slot was already its own when it claimed again. It must take it back at once, not
    /// wait out its timeout on a slot "already taken" (while the others start without it).
    #[test]
    fn a_claim_that_survived_a_re_forming_is_taken_back() {
        let shm = anon_shm(8 << 20);
        let header = PoolHeader::initialize(&shm, "job", 3, 1, 8).unwrap();
        let geometry = PoolGeometry::new(8 << 20, 8).unwrap();
        let layout = JobLayout::new(&geometry, 3).unwrap();
        let job = JobTable::new(&shm, &layout);
        assert!(job.transition(JobState::Free, JobState::Forming));
        job.form();
        header.set_peer(1, PeerState::Alive);
        let generation = header.peer(1).unwrap().1;
        assert!(
            job.try_claim(0, 1, generation, 0),
            "the claim that landed late"
        );
        let soon = Instant::now() + Duration::from_millis(50);
        let me = Claimant {
            peer: 1,
            generation,
            vector: 0,
        };
        let (rank, id) = claim(&job, &header, Some(0), me, soon).unwrap();
        assert_eq!((rank, id), (0, job.job_id()));
        // Anyone else's claim on the slot still stands in the way.
        let other = Claimant {
            peer: 2,
            generation: 1,
            vector: 0,
        };
        let e = claim(&job, &header, Some(0), other, soon).unwrap_err();
        assert!(e.to_string().contains("rank 0 is already taken"), "{e}");
        // Without a wanted rank, a process also finds its own slot first.
        assert_eq!(claim(&job, &header, None, me, soon).unwrap().0, 0);
    }
}
