//! Schedules: a collective operation as a list of steps (sends, receives, local copies and
//! reductions) separated by fences, run to completion by a blocking call or advanced by tests,
//! so that one description serves both the blocking and the non-blocking form (MPI_Ibcast, …).
//!
//! Steps run in order: a send or receive starts when it is reached, a local step runs when it is
//! reached, and a fence waits until every send and receive started before it has completed.
//! Algorithms put a fence between a receive and the steps that read what it received.
//!
//! Memory is named by [`Region`]s: either scratch buffers the schedule owns, or the program's
//! own buffers (unsafe to name: the caller guarantees them until the schedule completes).

use crate::api::{check_len, check_tag, Comm, Op, Pending, Status};
use crate::engine::Engine;
use crate::engine::To;
use crate::error::{Error, Result};

/// How a reduction combines two buffers: `combine(a, b)` sets `b = a ∘ b`.
pub type Combine<'a> = dyn FnMut(&[u8], &mut [u8]) -> Result<()> + 'a;

/// What a reduction's data is made of, so that a collective may split it between ranks and
/// reorder its combines: elements `unit` bytes apart (the last one may end early: a datatype's
/// trailing gap), and whether the operation is `commutative` (any order of combines gives a
/// right result; otherwise they keep rank order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elements {
    /// Bytes from one element's start to the next's.
    pub unit: usize,
    /// The operation may combine its operands in any order.
    pub commutative: bool,
}

/// A piece of memory a step reads or writes.
#[derive(Clone, Copy, Debug)]
pub struct Region {
    at: At,
    len: usize,
}

#[derive(Clone, Copy, Debug)]
enum At {
    /// Scratch buffer `i` of the schedule, from byte `off`.
    Tmp(usize, usize),
    /// The program's memory.
    Raw(*mut u8),
}

impl Region {
    /// No bytes (the messages of a barrier).
    pub const EMPTY: Region = Region {
        at: At::Raw(std::ptr::NonNull::dangling().as_ptr()),
        len: 0,
    };

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty region.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `len` bytes from byte `off` of this region (clamped to it).
    pub fn part(&self, off: usize, len: usize) -> Region {
        let off = off.min(self.len);
        let len = len.min(self.len - off);
        let at = match self.at {
            At::Tmp(i, o) => At::Tmp(i, o + off),
            At::Raw(p) => At::Raw(p.wrapping_add(off)),
        };
        Region { at, len }
    }
}

/// One step.
#[derive(Debug)]
enum Step {
    Send {
        r: Region,
        to: u32,
    },
    Recv {
        r: Region,
        from: u32,
    },
    /// `dst = src ∘ dst` with the schedule's combine function.
    Combine {
        src: Region,
        dst: Region,
    },
    Copy {
        src: Region,
        dst: Region,
    },
    Fence,
}

/// An operation in flight and, for a receive, the length it must bring.
struct Flying {
    p: Pending,
    expect: Option<(usize, u32)>,
}

/// A collective operation's steps, its scratch memory and how far it has run.
pub struct Schedule<'f> {
    tag: i32,
    tmps: Vec<Box<[u8]>>,
    steps: Vec<Step>,
    combine: Option<Box<Combine<'f>>>,
    next: usize,
    flying: Vec<Flying>,
}

impl std::fmt::Debug for Schedule<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedule")
            .field("tag", &self.tag)
            .field("steps", &self.steps.len())
            .field("next", &self.next)
            .field("flying", &self.flying.len())
            .finish()
    }
}

impl<'f> Schedule<'f> {
    /// An empty schedule whose messages carry `tag` on the communicator's collective context:
    /// collectives in flight at once on one communicator need different tags.
    pub fn new(tag: i32) -> Schedule<'f> {
        let (steps, flying, tmps) = SPARE.take().unwrap_or_default();
        Schedule {
            tag,
            tmps,
            steps,
            combine: None,
            next: 0,
            flying,
        }
    }

    /// Sets how [`Schedule::combine`] steps reduce.
    pub fn reduce_with(&mut self, f: Box<Combine<'f>>) {
        self.combine = Some(f);
    }

    /// A zeroed scratch buffer of `len` bytes.
    pub fn tmp(&mut self, len: usize) -> Region {
        self.tmp_from(vec![0; len])
    }

    /// A scratch buffer holding `data`.
    pub fn tmp_from(&mut self, data: Vec<u8>) -> Region {
        let len = data.len();
        self.tmps.push(data.into_boxed_slice());
        Region {
            at: At::Tmp(self.tmps.len() - 1, 0),
            len,
        }
    }

    /// The program's `len` bytes at `ptr`.
    ///
    /// # Safety
    /// The bytes must stay valid (readable, and writable if a step writes them) and untouched by
    /// the program until the schedule has completed or been [abandoned](Schedule::abandon).
    pub unsafe fn user(ptr: *mut u8, len: usize) -> Region {
        Region {
            at: At::Raw(ptr),
            len,
        }
    }

    /// The bytes of a scratch region (empty for the program's memory).
    pub fn bytes(&self, r: Region) -> &[u8] {
        match r.at {
            At::Tmp(i, off) => &self.tmps[i][off..off + r.len],
            At::Raw(_) => &[],
        }
    }

    /// Sends `r` to rank `to` of the communicator.
    pub fn send(&mut self, r: Region, to: u32) {
        self.steps.push(Step::Send { r, to });
    }

    /// Receives exactly `r.len()` bytes from rank `from` into `r`.
    pub fn recv(&mut self, r: Region, from: u32) {
        self.steps.push(Step::Recv { r, from });
    }

    /// `dst = src ∘ dst` (the regions must not overlap).
    pub fn combine(&mut self, src: Region, dst: Region) {
        self.steps.push(Step::Combine { src, dst });
    }

    /// Copies `src` into `dst` (the regions must not overlap; the shorter length counts).
    pub fn copy(&mut self, src: Region, dst: Region) {
        self.steps.push(Step::Copy { src, dst });
    }

    /// Waits for every send and receive started so far.
    pub fn fence(&mut self) {
        if !matches!(self.steps.last(), None | Some(Step::Fence)) {
            self.steps.push(Step::Fence);
        }
    }

    fn ptr(&mut self, r: Region) -> *mut u8 {
        match r.at {
            At::Tmp(i, off) => self.tmps[i][off..].as_mut_ptr(),
            At::Raw(p) => p,
        }
    }

    /// Runs the steps from the current one to the next fence (starting sends and receives).
    fn advance(&mut self, comm: &Comm<'_>) -> Result<()> {
        while self.next < self.steps.len() {
            let i = self.next;
            self.next += 1;
            match self.steps[i] {
                Step::Fence => return Ok(()),
                Step::Send { r, to } => {
                    let ptr = self.ptr(r);
                    // SAFETY: a scratch region lives in a boxed buffer this schedule owns and
                    // never moves or frees while operations fly (see `Drop`); a program region is
                    // valid until completion by `Schedule::user`'s contract.
                    if let Some(p) = unsafe { comm.coll_isend(ptr, r.len, to, self.tag)? } {
                        self.flying.push(Flying { p, expect: None });
                    }
                }
                Step::Recv { r, from } => {
                    let ptr = self.ptr(r);
                    // SAFETY: as for sends; no other step touches the region until the fence.
                    let p = unsafe { comm.coll_irecv(ptr, r.len, from, self.tag)? };
                    self.flying.push(Flying {
                        p,
                        expect: Some((r.len, from)),
                    });
                }
                Step::Copy { src, dst } => {
                    let n = src.len.min(dst.len);
                    let (s, d) = (self.ptr(src), self.ptr(dst));
                    if n > 0 && s != d {
                        // SAFETY: both regions are valid (as above) for their lengths, and the
                        // algorithms never copy between overlapping regions.
                        unsafe { std::ptr::copy_nonoverlapping(s, d, n) };
                    }
                }
                Step::Combine { src, dst } => {
                    let (s, d) = (self.ptr(src), self.ptr(dst));
                    // SAFETY: valid regions (as above) that do not overlap.
                    let (a, b) = unsafe {
                        (
                            std::slice::from_raw_parts(s as *const u8, src.len),
                            std::slice::from_raw_parts_mut(d, dst.len),
                        )
                    };
                    let f = self
                        .combine
                        .as_mut()
                        .ok_or_else(|| Error::Arg("reduction without an operation".into()))?;
                    f(a, b)?;
                }
            }
        }
        Ok(())
    }

    /// Completes one operation in flight (blocking).
    fn land(comm: &Comm<'_>, f: Flying) -> Result<()> {
        let st = comm.wait_among(f.p)?;
        if let (Some((len, from)), Some(st)) = (f.expect, st) {
            if st.bytes != len {
                return Err(Error::protocol(
                    comm.ranks.to_world(from, comm.size).unwrap_or(from),
                    format!(
                        "collective message of {} bytes where {len} were expected (do all ranks pass matching counts?)",
                        st.bytes
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Advances without blocking: true once the whole schedule has completed.
    pub fn test(&mut self, comm: &Comm<'_>) -> Result<bool> {
        let r = self.test_inner(comm);
        if r.is_err() {
            self.abandon(comm);
        }
        r
    }

    fn test_inner(&mut self, comm: &Comm<'_>) -> Result<bool> {
        loop {
            for f in &self.flying {
                if !comm.world.ready(f.p)? {
                    let e = comm.world.engine.borrow();
                    return match comm.member_died(&e) {
                        Some(err) => Err(err),
                        None => Ok(false),
                    };
                }
            }
            for f in std::mem::take(&mut self.flying) {
                Self::land(comm, f)?;
            }
            if self.next == self.steps.len() {
                return Ok(true);
            }
            self.advance(comm)?;
        }
    }

    /// Runs the schedule to completion (blocking).
    pub fn wait(&mut self, comm: &Comm<'_>) -> Result<()> {
        let r = self.wait_inner(comm);
        if r.is_err() {
            self.abandon(comm);
        }
        r
    }

    fn wait_inner(&mut self, comm: &Comm<'_>) -> Result<()> {
        loop {
            let flying = std::mem::take(&mut self.flying);
            let mut it = flying.into_iter();
            while let Some(f) = it.next() {
                if let Err(e) = Self::land(comm, f) {
                    self.flying = it.collect();
                    return Err(e);
                }
            }
            if self.next == self.steps.len() {
                return Ok(());
            }
            self.advance(comm)?;
        }
    }

    /// Gives up after an error: withdraws the receives still posted, lets the sends go on from
    /// private copies (or drops those not started), and waits out receives already taking their
    /// message, so no operation in flight still points into memory that is about to be freed.
    /// The schedule runs no further steps.
    ///
    /// Nothing here waits on a member that may have stopped: after a death in the communicator,
    /// a receive still taking its message is cancelled at once (its rest discarded), and sends
    /// are never waited for (their receiver, alive but failing this collective too, may never
    /// read them). Waiting would hold this member until `SNOO_TIMEOUT` instead of returning its
    /// error.
    pub fn abandon(&mut self, comm: &Comm<'_>) {
        self.next = self.steps.len();
        for f in std::mem::take(&mut self.flying) {
            match f.p.0 {
                Op::Send { id, dest } => comm.world.engine.borrow_mut().release_send(id, dest),
                Op::Recv { t, .. } if comm.world.engine.borrow_mut().matcher.withdraw(t) => {
                    let _ = comm.world.complete(f.p);
                }
                _ => {
                    let _ = comm.wait_among(f.p);
                }
            }
        }
    }
}

/// A blocking call's read-only buffer. Only for schedules that run to completion (or are
/// abandoned) while `b` is borrowed, and whose steps never write it.
pub(crate) fn whole(b: &[u8]) -> Region {
    Region {
        at: At::Raw(b.as_ptr() as *mut u8),
        len: b.len(),
    }
}

/// A blocking call's buffer, for schedules that run to completion while `b` is borrowed.
pub(crate) fn whole_mut(b: &mut [u8]) -> Region {
    Region {
        at: At::Raw(b.as_mut_ptr()),
        len: b.len(),
    }
}

/// A schedule's lists: steps, operations in flight, scratch buffers.
type Lists = (Vec<Step>, Vec<Flying>, Vec<Box<[u8]>>);

thread_local! {
    // The lists of the last schedule dropped, emptied: the next schedule reuses their
    // allocations (a collective per call otherwise paid for growing both each time).
    static SPARE: std::cell::Cell<Option<Lists>> =
        const { std::cell::Cell::new(None) };
}

impl Drop for Schedule<'_> {
    fn drop(&mut self) {
        if !self.flying.is_empty() {
            // Dropped while operations still point into the scratch buffers (a program freed an
            // unfinished request): leak them rather than let a late message land in freed memory.
            for t in std::mem::take(&mut self.tmps) {
                std::mem::forget(t);
            }
            return;
        }
        let (mut steps, flying, mut tmps) = (
            std::mem::take(&mut self.steps),
            std::mem::take(&mut self.flying),
            std::mem::take(&mut self.tmps),
        );
        steps.clear();
        tmps.clear();
        SPARE.set(Some((steps, flying, tmps)));
    }
}

impl Comm<'_> {
    /// The first member of this communicator found dead: every member waits on some other
    /// member's step, so one death anywhere must end every member's wait, not only its peer's.
    pub(super) fn member_died(&self, e: &Engine) -> Option<Error> {
        (0..self.size)
            .filter_map(|r| self.ranks.to_world(r, self.size).ok())
            .find(|&w| w != e.rank() && e.died(w))
            .map(Error::PeerDead)
    }

    /// Completes `p` (blocking), failing also once any member of the communicator has died.
    fn wait_among(&self, p: Pending) -> Result<Option<Status>> {
        match p.0 {
            Op::Send { id, dest } => {
                let mut e = self.world.engine.borrow_mut();
                e.wait_send_or(id, dest, |e| self.member_died(e))?;
                Ok(None)
            }
            Op::Recv { t, source } => self
                .world
                .wait_recv_or(t, source, |e| self.member_died(e))
                .map(Some),
            _ => self.world.complete(p),
        }
    }

    /// Starts a send on the collective context; `None` if it completed at once.
    ///
    /// # Safety
    /// The bytes must stay readable until the returned operation completes.
    unsafe fn coll_isend(
        &self,
        ptr: *const u8,
        len: usize,
        to: u32,
        tag: i32,
    ) -> Result<Option<Pending>> {
        let dest = self.ranks.to_world(to, self.size)?;
        check_tag(tag)?;
        check_len(len)?;
        let id = self.world.id();
        let to = To {
            dest,
            tag,
            ctx: self.coll_ctx(),
        };
        // Unbatched: the message is published before the call returns, since peers may wait for
        // it while this rank computes outside MPI.
        // SAFETY: forwarded from the caller.
        let done = unsafe {
            self.world
                .engine
                .borrow_mut()
                .start_send(id, ptr, len, to, false)?
        };
        Ok((!done).then_some(Pending(Op::Send { id, dest })))
    }

    /// Posts a receive on the collective context.
    ///
    /// # Safety
    /// The bytes must stay writable, and untouched, until the operation completes.
    unsafe fn coll_irecv(&self, ptr: *mut u8, len: usize, from: u32, tag: i32) -> Result<Pending> {
        let src = self.ranks.to_world(from, self.size)?;
        // SAFETY: forwarded from the caller.
        let buf = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
        self.world
            .post_recv(buf, Some(src), Some(tag), self.coll_ctx())
            .map(Pending)
    }
}
