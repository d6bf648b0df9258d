//! Shared-memory collectives: small collectives through an area that every member of a
//! communicator keeps in its own heap in the pool, instead of messages. A member writes its
//! contribution into its area's cell and raises its ARRIVE flag; the others read the cells of the
//! members they need once those flags say so, then raise their DONE flag. Every flag has one
//! writer (its owner) on its own cache line; data is written before the flag that publishes it
//! (Release) and read after the flag is seen (Acquire), as the point-to-point rings do.
//!
//! Each area holds [`DEPTH`] cells, used in turn: a member writes a cell again `DEPTH`
//! collectives later, once every other member's DONE says it has finished the collective that
//! read it. So a member that only writes (a broadcast's root, a reduction's non-roots) runs up to
//! `DEPTH` collectives ahead of its readers before it waits. The
//! flags count collectives and only ever grow, also when a freed communicator's area is reused
//! by a new one (each member then tells the others where its count starts), so a late reader
//! never mistakes a newer collective for the one it waits for.
//!
//! Nothing read from the pool is trusted: areas' offsets are exchanged once, by message, and
//! checked against their owners' heaps (a protocol error otherwise); afterwards only flags (any
//! value is just a number to wait for), lengths (compared with the one expected) and cell bytes
//! (opaque data, at most a cell) are read. The area's layout and those checks are a pool contract,
//! `snoo_common::collective_area` (fuzzed there). A member that dies ends every other member's
//! wait, as for messages.
//!
//! Which collectives take this path depends only on what every member passes alike (the bytes of
//! the type signature, the communicator's size), so members never disagree on the path.

use super::algorithm;
use super::schedule::{whole, whole_mut, Schedule};
use super::Combine;
use crate::api::Comm;
use crate::engine::{Engine, IDLE_SLICE, SPIN_TIME};
use crate::error::{Error, Result};
use snoo_common::collective_area::{check_len, Announce, Area as Member, Flag, LenError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use snoo_common::collective_area::{CELL, DEPTH};
/// Bytes of an area.
const AREA: usize = snoo_common::collective_area::SIZE;
/// The tag of the area exchange on the collective context.
const AREA_TAG: i32 = 10;
/// How often a wait checks for dead members and runs point-to-point progress.
const CHECK_EVERY: Duration = Duration::from_millis(10);
/// A wait's first sleep, once it has polled for `SPIN_TIME` as a point-to-point wait does; each
/// next one is twice as long, up to `IDLE_SLICE` (a member waiting long, on a rank that
/// computes, then wakes five times a second to check for dead members). Also the most a wake-up
/// missed by the writer's unfenced look at the sleeping flag (`Engine::ring_if_asleep`) can cost,
/// at first; at most `IDLE_SLICE` later on.
const SLEEP_FIRST: Duration = Duration::from_millis(1);

/// A communicator's shared-memory collectives on this rank.
enum Area {
    /// Not used: a communicator of one, or a member had no room in its heap.
    Off,
    On(On),
}

struct On {
    /// This rank's place in the communicator.
    me: usize,
    /// Every member's area (checked to lie in its heap; its flags reach `target(k)` in the
    /// communicator's k-th collective) and world rank.
    members: Vec<Member>,
    world: Vec<u32>,
    /// Collectives done here so far.
    k: u64,
    /// A reduction's operand copied out of a cell (kept: allocating it per call cost more than
    /// the copy).
    scratch: Vec<u8>,
}

/// Every communicator's area on this rank, by context id (a short list searched in order, the
/// most recently used first: a program has few communicators, and hashing each call's id cost
/// more than the search), and the areas of freed communicators (offset, flag count) kept for the
/// next ones: their flags must keep counting up.
#[derive(Default)]
pub(crate) struct Areas {
    by_ctx: Vec<(u64, Area)>,
    spare: Vec<(usize, u64)>,
}

impl Areas {
    /// The area of context `ctx`, moved to the front of the list.
    fn get(&mut self, ctx: u64) -> Option<&mut Area> {
        let i = self.by_ctx.iter().position(|a| a.0 == ctx)?;
        if i != 0 {
            self.by_ctx.swap(0, i);
        }
        self.by_ctx.first_mut().map(|a| &mut a.1)
    }

    fn remove(&mut self, ctx: u64) -> Option<Area> {
        let i = self.by_ctx.iter().position(|a| a.0 == ctx)?;
        Some(self.by_ctx.swap_remove(i).1)
    }
}

impl On {
    /// Pool offset of member j's flag, ARRIVE or DONE.
    fn flag(&self, j: usize, which: Flag) -> usize {
        self.members[j].flag(which)
    }

    /// Member j's cell for the current collective.
    fn cell(&self, j: usize) -> usize {
        self.members[j].cell(self.k)
    }

    /// Where member j's length of its current cell is.
    fn len_at(&self, j: usize) -> usize {
        self.members[j].len_at(self.k)
    }

    /// Member j's flag value for the current collective.
    fn target(&self, j: usize) -> u64 {
        self.members[j].target(self.k)
    }
}

fn load(e: &Engine, off: usize) -> u64 {
    e.shm()
        .u64_at(off)
        .map_or(0, |a: &AtomicU64| a.load(Ordering::Acquire))
}

fn store(e: &Engine, off: usize, v: u64) {
    if let Some(a) = e.shm().u64_at(off) {
        a.store(v, Ordering::Release);
    }
}

impl Comm<'_> {
    /// Runs `f` on this communicator's area for its next collective; `None` when the area is off
    /// (then the caller takes the message path). The first call sets the area up, collectively.
    fn with_area<R>(
        &self,
        f: impl FnOnce(&Comm<'_>, &mut On, &mut Engine) -> Result<R>,
    ) -> Result<Option<R>> {
        if self.size < 2 {
            return Ok(None);
        }
        let known = self.world.areas.borrow_mut().get(self.ctx).is_some();
        if !known {
            let a = self.set_up()?;
            self.world.areas.borrow_mut().by_ctx.push((self.ctx, a));
        }
        let mut areas = self.world.areas.borrow_mut();
        let Some(Area::On(on)) = areas.get(self.ctx) else {
            return Ok(None);
        };
        on.k += 1;
        let mut e = self.world.engine.borrow_mut();
        f(self, on, &mut e).map(Some)
    }

    /// Takes an area (a spare one or a new one) and exchanges offsets and counts with the
    /// other members.
    fn set_up(&self) -> Result<Area> {
        let mine = {
            let spare = self.world.areas.borrow_mut().spare.pop();
            spare.or_else(|| {
                let off = self.world.engine.borrow_mut().alloc_area(AREA)?;
                Some((off, 0))
            })
        };
        let rec = Announce {
            offset: mine.map(|m| m.0 as u64),
            count: mine.map_or(0, |m| m.1),
        }
        .encode();
        const REC: usize = Announce::BYTES;
        let mut all = vec![0u8; REC * self.size as usize];
        let mut s = Schedule::new(AREA_TAG);
        let blocks: Vec<_> = (0..self.size as usize)
            .map(|j| whole_mut(&mut all).part(REC * j, REC))
            .collect();
        algorithm::allgather(&mut s, Some(whole(&rec)), &blocks, self.rank, self.size);
        s.wait(self)?;
        let n = self.size as usize;
        let mut on = On {
            me: self.rank as usize,
            members: Vec::with_capacity(n),
            world: Vec::with_capacity(n),
            k: 0,
            scratch: Vec::new(),
        };
        let e = self.world.engine.borrow();
        for (j, r) in all.chunks_exact(REC).enumerate() {
            let a = Announce::decode(r.try_into().expect("whole records"));
            let w = self.ranks.to_world(j as u32, self.size)?;
            if a.offset.is_none() {
                drop(e);
                if let Some(m) = mine {
                    self.world.areas.borrow_mut().spare.push(m);
                }
                return Ok(Area::Off);
            }
            let heap = e.heap(w).unwrap_or((0, 0));
            let m = Member::check(a, heap).map_err(|why| Error::protocol(w, why.to_string()))?;
            on.members.push(m);
            on.world.push(w);
        }
        Ok(Area::On(on))
    }

    /// Waits until `ready`, running point-to-point progress and liveness checks meanwhile:
    /// polls for [`SPIN_TIME`], then sleeps on the doorbell in growing slices (a member that
    /// stores a flag rings the members asleep, see `ring_sleepers`).
    fn wait_for(&self, e: &mut Engine, mut ready: impl FnMut(&Engine) -> bool) -> Result<()> {
        let mut spins = 0u32;
        let start = Instant::now();
        let mut checked = start;
        let mut slice = SLEEP_FIRST;
        loop {
            if ready(e) {
                return Ok(());
            }
            spins = spins.wrapping_add(1);
            if spins < 256 {
                std::hint::spin_loop();
                continue;
            }
            // Waiting long: let a rank that shares this CPU run, and look around now and then.
            std::thread::yield_now();
            if !spins.is_multiple_of(64) {
                continue;
            }
            let now = Instant::now();
            if now.duration_since(checked) >= CHECK_EVERY {
                checked = now;
                e.progress()?;
                e.check_liveness();
                if let Some(err) = self.member_died(e) {
                    return Err(err);
                }
                if now.duration_since(start) > e.timeout() {
                    return Err(Error::Timeout(format!(
                        "collective: no member arrived for {:?} (SNOO_TIMEOUT)",
                        e.timeout()
                    )));
                }
            }
            if now.duration_since(start) >= SPIN_TIME {
                e.sleep(slice, &mut |e: &mut Engine| Ok(ready(e)))?;
                slice = (slice * 2).min(IDLE_SLICE);
                // Look for dead members before sleeping again.
                checked = start;
            }
        }
    }

    /// Rings every other member asleep: after a flag store, one of them may wait for it.
    fn ring_sleepers(on: &On, e: &Engine) {
        for (j, &w) in on.world.iter().enumerate() {
            if j != on.me {
                e.ring_if_asleep(w);
            }
        }
    }

    /// Waits until every other member has finished the collective `DEPTH` back (which read the
    /// cell this one writes).
    fn cell_free(&self, on: &On, e: &mut Engine) -> Result<()> {
        if on.k <= DEPTH {
            return Ok(());
        }
        let (me, k) = (on.me, on.k);
        self.wait_for(e, |e| {
            on.members.iter().enumerate().all(|(j, m)| {
                j == me
                    || m.reused_after(k)
                        .is_none_or(|t| load(e, m.flag(Flag::Done)) >= t)
            })
        })
    }

    /// Waits until members `who` have arrived at this collective.
    fn arrived(&self, on: &On, e: &mut Engine, who: impl Fn(usize) -> bool) -> Result<()> {
        let me = on.me;
        self.wait_for(e, |e| {
            (0..on.members.len())
                .all(|j| j == me || !who(j) || load(e, on.flag(j, Flag::Arrive)) >= on.target(j))
        })
    }

    fn publish(on: &On, e: &Engine, data: Option<&[u8]>) {
        if let Some(d) = data {
            e.shm().write(on.cell(on.me), d);
            store(e, on.len_at(on.me), d.len() as u64);
        }
        store(e, on.flag(on.me, Flag::Arrive), on.target(on.me));
        Self::ring_sleepers(on, e);
    }

    /// Checks that member j published `want` bytes (every member passes matching counts); a
    /// mismatch is the error a message of that length would give.
    fn check_len(on: &On, e: &Engine, j: usize, want: usize) -> Result<()> {
        match check_len(load(e, on.len_at(j)), want) {
            Ok(()) => Ok(()),
            Err(LenError::Longer(got)) => Err(Error::Truncate {
                incoming: usize::try_from(got).unwrap_or(usize::MAX),
                capacity: want,
            }),
            Err(LenError::Shorter(got)) => Err(Error::protocol(
                on.world[j],
                format!(
                    "collective message of {got} bytes where {want} were expected (do all ranks pass matching counts?)"
                ),
            )),
        }
    }

    /// Reads member j's cell into `dst` after checking its length (a reduction's operand).
    fn take(on: &On, e: &Engine, j: usize, dst: &mut [u8]) -> Result<()> {
        Self::check_len(on, e, j, dst.len())?;
        e.shm().read(on.cell(j), dst);
        Ok(())
    }

    fn finish(on: &On, e: &Engine) {
        store(e, on.flag(on.me, Flag::Done), on.target(on.me));
        Self::ring_sleepers(on, e);
    }

    /// Barrier through the area; `None` if it is off.
    pub(super) fn shm_barrier(&self) -> Result<Option<()>> {
        self.with_area(|c, on, e| {
            Self::publish(on, e, None);
            c.arrived(on, e, |_| true)?;
            Self::finish(on, e);
            Ok(())
        })
    }

    /// Broadcast of at most a cell through the area; `None` if not taken.
    pub(super) fn shm_bcast(&self, buf: &mut [u8], root: u32) -> Result<Option<()>> {
        if buf.len() > CELL {
            return Ok(None);
        }
        self.with_area(|c, on, e| {
            let root = root as usize;
            if on.me == root {
                c.cell_free(on, e)?;
                Self::publish(on, e, Some(buf));
            } else {
                c.arrived(on, e, |j| j == root)?;
                let r = Self::take(on, e, root, buf);
                Self::publish(on, e, None);
                Self::finish(on, e);
                return r;
            }
            Self::finish(on, e);
            Ok(())
        })
    }

    /// Reduction of at most a cell through the area, to `root` or (`None`) to every member, in
    /// rank order; `None` if not taken.
    pub(super) fn shm_reduce(
        &self,
        data: &[u8],
        out: &mut [u8],
        root: Option<u32>,
        combine: &mut Combine<'_>,
    ) -> Result<Option<()>> {
        if data.len() > CELL {
            return Ok(None);
        }
        self.with_area(|c, on, e| {
            let wants = root.is_none_or(|r| r as usize == on.me);
            if !wants || root.is_none() {
                c.cell_free(on, e)?;
                Self::publish(on, e, Some(data));
            } else {
                Self::publish(on, e, None);
            }
            let mut r = Ok(());
            if wants {
                let me = on.me;
                c.arrived(on, e, |j| j != me)?;
                r = Self::combine_all(on, e, data, out, combine);
            }
            Self::finish(on, e);
            r
        })
    }

    /// `out = d0 ∘ … ∘ dn−1` from the members' cells (and `data`, this rank's), from the last
    /// member down: acc = d_j ∘ acc.
    fn combine_all(
        on: &mut On,
        e: &Engine,
        data: &[u8],
        out: &mut [u8],
        combine: &mut Combine<'_>,
    ) -> Result<()> {
        let (me, last) = (on.me, on.members.len() - 1);
        let mut tmp = std::mem::take(&mut on.scratch);
        tmp.resize(data.len(), 0);
        let r = Self::combine_into(on, e, data, out, combine, &mut tmp, me, last);
        on.scratch = tmp;
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn combine_into(
        on: &On,
        e: &Engine,
        data: &[u8],
        out: &mut [u8],
        combine: &mut Combine<'_>,
        tmp: &mut [u8],
        me: usize,
        last: usize,
    ) -> Result<()> {
        if last == me {
            out.copy_from_slice(data);
        } else {
            Self::take(on, e, last, out)?;
        }
        for j in (0..last).rev() {
            if j == me {
                combine(data, out)?;
            } else {
                Self::take(on, e, j, tmp)?;
                combine(tmp, out)?;
            }
        }
        Ok(())
    }

    /// All-gather of at most a cell per member through the area; `None` if not taken.
    pub(super) fn shm_allgather(&self, data: &[u8], out: &mut [u8]) -> Result<Option<()>> {
        self.shm_exchange(data, out, false)
    }

    /// All-to-all of at most a cell per member (all its blocks) through the area; `None` if not
    /// taken.
    pub(super) fn shm_alltoall(&self, data: &[u8], out: &mut [u8]) -> Result<Option<()>> {
        self.shm_exchange(data, out, true)
    }

    /// Every member writes `data` and copies a block out of every other member's cell into
    /// `out` (block j from member j): its whole cell (all-gather), or the block of it meant for
    /// this member (all-to-all, where `data` is one block per member).
    fn shm_exchange(&self, data: &[u8], out: &mut [u8], to_each: bool) -> Result<Option<()>> {
        if data.len() > CELL {
            return Ok(None);
        }
        self.with_area(|c, on, e| {
            c.cell_free(on, e)?;
            Self::publish(on, e, Some(data));
            c.arrived(on, e, |_| true)?;
            let n = on.members.len();
            let b = if to_each { data.len() / n } else { data.len() };
            let mut r = Ok(());
            for j in 0..n {
                let dst = &mut out[j * b..(j + 1) * b];
                let from = if to_each { on.me * b } else { 0 };
                if j == on.me {
                    dst.copy_from_slice(&data[from..from + b]);
                } else if r.is_ok() {
                    r = Self::check_len(on, e, j, data.len());
                    if r.is_ok() {
                        e.shm().read(on.cell(j) + from, dst);
                    }
                }
            }
            Self::finish(on, e);
            r
        })
    }

    /// Before this communicator is freed: waits until every member has finished its last
    /// collective through the area (they may still read this rank's cells), then keeps the area
    /// for the next communicator.
    pub fn release(&self) -> Result<()> {
        let a = self.world.areas.borrow_mut().remove(self.ctx);
        let Some(Area::On(on)) = a else {
            return Ok(());
        };
        let mut e = self.world.engine.borrow_mut();
        let r = self.wait_for(&mut e, |e| {
            (0..on.members.len()).all(|j| load(e, on.flag(j, Flag::Done)) >= on.target(j))
        });
        drop(e);
        // After an error (a member died) the area may still be read: leave it unused.
        if r.is_ok() {
            let count = on.target(on.me);
            self.world
                .areas
                .borrow_mut()
                .spare
                .push((on.members[on.me].offset(), count));
        }
        r
    }
}
