//! Collective calls, blocking and non-blocking, over `snoo::collective`'s algorithms: each call
//! turns the program's buffers into regions of a schedule (its memory itself where the datatype
//! is contiguous, packed copies or scratch buffers unpacked at the end otherwise), builds the
//! schedule once, and either runs it (MPI_Bcast) or keeps it in a request (MPI_Ibcast).

use super::p2p::new_request;
use super::reduction::{plan, Plan};
use super::{count, out, run, slice, Abi};
use crate::collective::Coll;
use crate::datatype::Datatype;
use crate::error::{err, Class, MpiError, MpiResult};
use crate::request::{Flight, Req};
use crate::state::{CommObj, Mpi};
use snoo::collective::algorithm as alg;
use snoo::collective::schedule::{Region, Schedule};
use snoo::collective::FIRST_FREE_TAG;
use std::ffi::{c_int, c_void};

/// The root argument: a rank of the communicator.
fn root_of(root: c_int, size: u32) -> MpiResult<u32> {
    u32::try_from(root)
        .ok()
        .filter(|&r| r < size)
        .ok_or_else(|| {
            MpiError::new(
                Class::Root,
                format!("root {root} is not in a communicator of {size} ranks"),
            )
        })
}

/// A collective being built on a communicator.
struct Build<'m> {
    c: &'m CommObj,
    coll: Coll,
    me: u32,
    n: u32,
}

impl<'m> Build<'m> {
    fn new<A: Abi>(m: &'m Mpi, comm: A::Comm) -> MpiResult<Build<'m>> {
        let c = m.comm(A::comm_id(comm))?;
        // Numbered only once the call is started (`finish`): a call refused for its arguments
        // leaves the numbering as it was.
        let tag = FIRST_FREE_TAG + (c.colls.get() % (1 << 24)) as i32;
        Ok(Build {
            c,
            coll: Coll::new(c.id.clone(), Schedule::new(tag)),
            me: c.id.rank(),
            n: c.id.size(),
        })
    }

    fn s(&mut self) -> &mut Schedule<'static> {
        self.coll.sched()
    }

    /// `k` elements of `t` at `buf` to send: the memory itself when contiguous, else a packed
    /// copy.
    fn src(&mut self, t: &Datatype, buf: *const c_void, k: usize) -> MpiResult<Region> {
        check_buf(t, buf, k)?;
        Ok(match t.contiguous_run(k) {
            // SAFETY: MPI's rule: the program keeps a collective's buffers untouched until it
            // completes (blocking calls: until they return), and they hold `k` elements.
            Some((off, len)) => unsafe {
                Schedule::user((buf as *mut u8).wrapping_offset(off), len)
            },
            None => {
                let mut v = Vec::new();
                // SAFETY: the buffer holds `k` elements of `t` (the program's promise).
                unsafe { t.pack(k, buf as *const u8, &mut v) };
                self.s().tmp_from(v)
            }
        })
    }

    /// `k` elements of `t` at `buf` to receive into: the memory itself when contiguous, else a
    /// scratch buffer unpacked into it at the end (holding the current contents first if `keep`:
    /// a block also sent from where it is).
    fn dst(&mut self, t: &Datatype, buf: *mut c_void, k: usize, keep: bool) -> MpiResult<Region> {
        check_buf(t, buf, k)?;
        if let Some((off, len)) = t.contiguous_run(k) {
            // SAFETY: as in `src`.
            return Ok(unsafe { Schedule::user((buf as *mut u8).wrapping_offset(off), len) });
        }
        let r = if keep {
            let mut v = Vec::new();
            // SAFETY: as in `src`.
            unsafe { t.pack(k, buf as *const u8, &mut v) };
            self.s().tmp_from(v)
        } else {
            self.s().tmp(t.size().saturating_mul(k))
        };
        let t = t.clone();
        let dst = buf as *mut u8;
        self.coll.then(
            r,
            Box::new(move |data| {
                // SAFETY: the program's buffer holds `k` elements of `t` and is the program's to
                // write until the collective completes, which is now.
                unsafe { t.unpack(k, data, dst) };
            }),
        );
        Ok(r)
    }

    /// Takes this collective's number and gives it, ready to run.
    fn finish(self) -> Coll {
        self.c.colls.set(self.c.colls.get().wrapping_add(1));
        self.coll
    }
}

fn check_buf(t: &Datatype, buf: *const c_void, k: usize) -> MpiResult<()> {
    if buf.is_null() && k > 0 && t.size() > 0 && t.named().is_some() {
        return err(Class::Buffer, format!("NULL buffer with count {k}"));
    }
    Ok(())
}

fn same_len(mine: Region, block: Region) -> MpiResult<()> {
    if mine.len() != block.len() {
        return err(
            Class::Truncate,
            format!(
                "this rank's send data ({} bytes) and its own receive block ({} bytes) differ",
                mine.len(),
                block.len()
            ),
        );
    }
    Ok(())
}

/// The address of element `i` of `t` from `buf` (wrapping, like the C caller's arithmetic).
fn at(buf: *const c_void, t: &Datatype, i: isize) -> *mut c_void {
    (buf as *mut u8).wrapping_offset(i.wrapping_mul(t.extent())) as *mut c_void
}

/// How the blocks of a gather, scatter, all-gather or all-to-all lie in a buffer: `count`
/// elements each, one after another, or the `v` forms' counts and displacements (in elements,
/// or in bytes for MPI_Alltoallw).
enum Blocks<'a> {
    Same(usize),
    V(&'a [c_int], &'a [c_int]),
}

impl<'a> Blocks<'a> {
    fn v(counts: *const c_int, displs: *const c_int, n: u32) -> MpiResult<Blocks<'a>> {
        Ok(Blocks::V(
            slice(counts, n as usize, "counts")?,
            slice(displs, n as usize, "displacements")?,
        ))
    }

    /// Block `r`: (elements, displacement in elements).
    fn get(&self, r: u32) -> MpiResult<(usize, isize)> {
        match self {
            Blocks::Same(k) => Ok((*k, (*k as isize).wrapping_mul(r as isize))),
            Blocks::V(c, d) => Ok((count(c[r as usize])?, d[r as usize] as isize)),
        }
    }
}

fn datatype<A: Abi>(m: &Mpi, dt: A::Datatype) -> MpiResult<&Datatype> {
    Ok(&m.datatype(A::datatype_id(dt))?.t)
}

/// Runs a collective to completion (the blocking calls).
fn blocking(m: &Mpi, c: Coll) -> MpiResult<()> {
    c.finish(&m.world)
}

/// Keeps a started collective in a new request (the non-blocking calls).
fn nonblocking<A: Abi>(m: &mut Mpi, c: Coll, req: *mut A::Request) -> MpiResult<()> {
    // Start its first steps now: peers may be waiting for them.
    c.ready(&m.world)?;
    new_request::<A>(
        m,
        Req {
            flight: Some(Flight::Coll(Box::new(c))),
            persist: None,
        },
        req,
    )
}

/// Either form of a call: `req` null for the blocking one.
fn start<A: Abi>(m: &mut Mpi, c: Coll, req: Option<*mut A::Request>) -> MpiResult<()> {
    match req {
        None => blocking(m, c),
        Some(r) => nonblocking::<A>(m, c, r),
    }
}

/// Checks a non-blocking call's request pointer before anything starts.
fn req_ok<A: Abi>(req: Option<*mut A::Request>) -> MpiResult<()> {
    if let Some(r) = req {
        out(r, "request")?;
    }
    Ok(())
}

fn barrier_on<A: Abi>(m: &mut Mpi, comm: A::Comm, req: Option<*mut A::Request>) -> MpiResult<()> {
    req_ok::<A>(req)?;
    let mut b = Build::new::<A>(m, comm)?;
    let (me, n) = (b.me, b.n);
    alg::barrier(b.s(), me, n);
    let c = b.finish();
    start::<A>(m, c, req)
}

fn bcast_on<A: Abi>(
    m: &mut Mpi,
    buf: *mut c_void,
    k: c_int,
    dt: A::Datatype,
    root: c_int,
    comm: A::Comm,
    req: Option<*mut A::Request>,
) -> MpiResult<()> {
    req_ok::<A>(req)?;
    let mut b = Build::new::<A>(m, comm)?;
    let (me, n) = (b.me, b.n);
    let root = root_of(root, n)?;
    let k = count(k)?;
    let t = datatype::<A>(m, dt)?;
    let r = b.dst(t, buf, k, me == root)?;
    alg::bcast(b.s(), r, root, me, n);
    let c = b.finish();
    start::<A>(m, c, req)
}

/// True if the two runs of bytes do not overlap.
fn apart(a: (*mut u8, usize), b: (*mut u8, usize)) -> bool {
    let (a0, b0) = (a.0 as usize, b.0 as usize);
    a.1 == 0 || b.1 == 0 || a0.saturating_add(a.1) <= b0 || b0.saturating_add(b.1) <= a0
}

/// Runs `f` on `k` elements of `t` at `buf` as bytes: the memory itself when contiguous, else a
/// packed copy (filled from the buffer if `fill`, unpacked back into it after if `back`).
fn with_bytes<R>(
    t: &Datatype,
    buf: *mut c_void,
    k: usize,
    fill: bool,
    back: bool,
    f: impl FnOnce(&mut [u8]) -> MpiResult<R>,
) -> MpiResult<R> {
    if let Some((off, len)) = t.contiguous_run(k) {
        if len == 0 {
            return f(&mut []);
        }
        // SAFETY: the program's buffer holds `k` elements: `len` bytes from `off`, untouched by
        // the program during this blocking call.
        let b = unsafe { std::slice::from_raw_parts_mut((buf as *mut u8).offset(off), len) };
        return f(b);
    }
    let mut v = Vec::new();
    if fill {
        // SAFETY: the buffer holds `k` elements of `t`.
        unsafe { t.pack(k, buf as *const u8, &mut v) };
    } else {
        v.resize(t.size().saturating_mul(k), 0);
    }
    let r = f(&mut v)?;
    if back {
        // SAFETY: as above; the call wrote the elements' bytes into `v`.
        unsafe { t.unpack(k, &v, buf as *mut u8) };
    }
    Ok(r)
}

/// Which reduction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Red {
    Reduce(c_int),
    Allreduce,
    Scan,
    Exscan,
}

/// Checks a reduction's root and buffers, as both its blocking and its non-blocking form take
/// them; returns the root (MPI_Reduce's) and whether this rank gets a result.
#[allow(clippy::too_many_arguments)]
fn reduction_args(
    kind: Red,
    me: u32,
    n: u32,
    p: &Plan,
    sbuf: *const c_void,
    rbuf: *mut c_void,
    k: usize,
    in_place: bool,
) -> MpiResult<(Option<u32>, bool)> {
    let root = match kind {
        Red::Reduce(r) => Some(root_of(r, n)?),
        _ => None,
    };
    if in_place && root.is_some_and(|r| r != me) {
        return err(
            Class::Buffer,
            "MPI_IN_PLACE as the send buffer of a rank other than the root",
        );
    }
    let wants = match kind {
        Red::Reduce(_) => root == Some(me),
        Red::Exscan => me != 0,
        Red::Allreduce | Red::Scan => true,
    };
    let empty = p.bytes() == 0;
    if !empty && ((!in_place && sbuf.is_null()) || (wants && rbuf.is_null())) {
        return err(Class::Buffer, format!("NULL buffer with count {k}"));
    }
    if !empty && !in_place && wants && std::ptr::eq(sbuf, rbuf) {
        return err(
            Class::Buffer,
            "the send and receive buffers are the same (pass MPI_IN_PLACE as the send buffer)",
        );
    }
    Ok((root, wants))
}

/// The reduction's combine step for the schedule.
fn combiner<A: Abi>(p: &Plan, dt: A::Datatype) -> Box<snoo::Combine<'static>> {
    let p = p.clone();
    Box::new(move |i: &[u8], io: &mut [u8]| p.combine::<A>(dt, i, io))
}

#[allow(clippy::too_many_arguments)]
fn reduce_on<A: Abi>(
    m: &mut Mpi,
    sbuf: *const c_void,
    rbuf: *mut c_void,
    k: c_int,
    dt: A::Datatype,
    op: A::Op,
    kind: Red,
    comm: A::Comm,
    req: Option<*mut A::Request>,
) -> MpiResult<()> {
    req_ok::<A>(req)?;
    if req.is_none() && matches!(kind, Red::Reduce(_) | Red::Allreduce) {
        return reduce_now::<A>(m, sbuf, rbuf, k, dt, op, kind, comm);
    }
    let mut b = Build::new::<A>(m, comm)?;
    let (me, n) = (b.me, b.n);
    let k = count(k)?;
    let p = plan::<A>(m, k, dt, op)?;
    let in_place = sbuf as usize == A::IN_PLACE;
    let (_, wants) = reduction_args(kind, me, n, &p, sbuf, rbuf, k, in_place)?;
    let data = match p.direct(sbuf) {
        // SAFETY: MPI's rule: the program keeps a collective's buffers untouched until it
        // completes, and they hold `k` elements: this run of bytes.
        Some((ptr, len)) if !in_place => unsafe { Schedule::user(ptr, len) },
        _ => {
            let v = p.gather(if in_place {
                rbuf as *const c_void
            } else {
                sbuf
            });
            b.s().tmp_from(v)
        }
    };
    let direct_out = if wants { p.direct(rbuf) } else { None };
    let out = match direct_out {
        // SAFETY: as for `data`, for the receive buffer.
        Some((ptr, len)) => unsafe { Schedule::user(ptr, len) },
        None => b.s().tmp(if wants { p.bytes() } else { 0 }),
    };
    b.s().reduce_with(combiner::<A>(&p, dt));
    let s = b.s();
    match kind {
        Red::Reduce(root) => alg::reduce(s, data, out, root as u32, me, n),
        Red::Allreduce => alg::allreduce_in_slices(s, data, out, p.elements(), me, n),
        Red::Scan => alg::scan(s, data, out, me, n),
        Red::Exscan => alg::exscan(s, data, out, me, n),
    }
    if wants && direct_out.is_none() {
        let rbuf = rbuf as usize;
        b.coll
            .then(out, Box::new(move |d| p.scatter(d, rbuf as *mut c_void)));
    }
    let c = b.finish();
    start::<A>(m, c, req)
}

/// Blocking MPI_Reduce and MPI_Allreduce: through the communicator's own calls, which take the
/// shared-memory path for small data.
#[allow(clippy::too_many_arguments)]
fn reduce_now<A: Abi>(
    m: &mut Mpi,
    sbuf: *const c_void,
    rbuf: *mut c_void,
    k: c_int,
    dt: A::Datatype,
    op: A::Op,
    kind: Red,
    comm: A::Comm,
) -> MpiResult<()> {
    let c = m.comm(A::comm_id(comm))?;
    let (me, n) = (c.id.rank(), c.id.size());
    let k = count(k)?;
    let p = plan::<A>(m, k, dt, op)?;
    let in_place = sbuf as usize == A::IN_PLACE;
    let (root, wants) = reduction_args(kind, me, n, &p, sbuf, rbuf, k, in_place)?;
    let comm = m.world.attach(&c.id);
    let gathered;
    let data: &[u8] = match p.direct(sbuf) {
        // SAFETY: the program's send buffer holds `k` elements, this run of bytes, untouched
        // during this blocking call.
        Some((ptr, len)) if !in_place => unsafe { std::slice::from_raw_parts(ptr, len) },
        _ => {
            gathered = p.gather(if in_place {
                rbuf as *const c_void
            } else {
                sbuf
            });
            &gathered
        }
    };
    let mut combine = |i: &[u8], io: &mut [u8]| p.combine::<A>(dt, i, io);
    let direct_out = if wants { p.direct(rbuf) } else { None };
    let mut tmp = Vec::new();
    let out: &mut [u8] = match direct_out {
        // SAFETY: as for `data`, for the receive buffer (a different buffer: checked above).
        Some((ptr, len)) => unsafe { std::slice::from_raw_parts_mut(ptr, len) },
        None => {
            tmp.resize(if wants { data.len() } else { 0 }, 0);
            &mut tmp
        }
    };
    match root {
        Some(r) => comm.reduce_bytes(data, out, r, &mut combine)?,
        None => comm.allreduce_elements(data, out, p.elements(), &mut combine)?,
    }
    if wants && direct_out.is_none() {
        p.scatter(&tmp, rbuf);
    }
    Ok(())
}

/// MPI_Reduce_scatter and MPI_Reduce_scatter_block: `counts` per rank (`None`: `k` each).
#[allow(clippy::too_many_arguments)]
fn reduce_scatter_on<A: Abi>(
    m: &mut Mpi,
    sbuf: *const c_void,
    rbuf: *mut c_void,
    counts: Option<*const c_int>,
    k: c_int,
    dt: A::Datatype,
    op: A::Op,
    comm: A::Comm,
    req: Option<*mut A::Request>,
) -> MpiResult<()> {
    req_ok::<A>(req)?;
    let mut b = Build::new::<A>(m, comm)?;
    let (me, n) = (b.me, b.n);
    let counts: Vec<usize> = match counts {
        Some(c) => slice(c, n as usize, "counts")?
            .iter()
            .map(|&c| count(c))
            .collect::<MpiResult<_>>()?,
        None => vec![count(k)?; n as usize],
    };
    let total = counts
        .iter()
        .try_fold(0usize, |a, &c| a.checked_add(c))
        .ok_or_else(|| MpiError::new(Class::Count, "counts overflow"))?;
    let p = plan::<A>(m, total, dt, op)?;
    let mut parts = Vec::with_capacity(counts.len());
    let mut start_el = 0;
    for &c in &counts {
        parts.push(p.part(start_el, c));
        start_el += c;
    }
    let in_place = sbuf as usize == A::IN_PLACE;
    let mine_p = p.with_count(counts[me as usize]);
    // Gap-free data is read and written where it lies (MPI forbids the two buffers to overlap
    // but through MPI_IN_PLACE; an erroneous overlap takes the copies too).
    let direct = p
        .direct(sbuf)
        .zip(mine_p.direct(rbuf))
        .filter(|&((s, sl), (r, rl))| !in_place && apart((s, sl), (r, rl)));
    let (data, mine) = match direct {
        // SAFETY: MPI's rule: the program keeps a collective's buffers untouched until it
        // completes, and they hold these runs of bytes (`total` and `counts[me]` elements).
        Some(((s, sl), (r, rl))) => unsafe { (Schedule::user(s, sl), Schedule::user(r, rl)) },
        None => {
            let data = b.s().tmp_from(p.gather(if in_place {
                rbuf as *const c_void
            } else {
                sbuf
            }));
            let mine = b.s().tmp(mine_p.bytes());
            let rbuf = rbuf as usize;
            b.coll.then(
                mine,
                Box::new(move |d| mine_p.scatter(d, rbuf as *mut c_void)),
            );
            (data, mine)
        }
    };
    b.s().reduce_with(combiner::<A>(&p, dt));
    alg::reduce_scatter(b.s(), data, &parts, mine, p.elements(), me, n);
    let c = b.finish();
    start::<A>(m, c, req)
}

/// One side of a data-movement collective: a buffer, its blocks and their datatype.
struct Side<'a, A: Abi> {
    buf: *const c_void,
    blocks: Blocks<'a>,
    dt: A::Datatype,
}

#[allow(clippy::too_many_arguments)]
fn gather_on<A: Abi>(
    m: &mut Mpi,
    sbuf: *const c_void,
    sk: c_int,
    sdt: A::Datatype,
    rbuf: *mut c_void,
    rblocks: impl FnOnce(u32) -> MpiResult<Blocks<'static>>,
    rdt: A::Datatype,
    root: Option<c_int>,
    comm: A::Comm,
    req: Option<*mut A::Request>,
) -> MpiResult<()> {
    req_ok::<A>(req)?;
    let mut b = Build::new::<A>(m, comm)?;
    let (me, n) = (b.me, b.n);
    let root = root.map(|r| root_of(r, n)).transpose()?;
    let in_place = sbuf as usize == A::IN_PLACE;
    if in_place && root.is_some_and(|r| r != me) {
        return err(
            Class::Buffer,
            "MPI_IN_PLACE as the send buffer of a rank other than the root",
        );
    }
    let receives = root.is_none_or(|r| r == me);
    let mut blocks = Vec::new();
    if receives {
        let t = datatype::<A>(m, rdt)?;
        let bl = rblocks(n)?;
        for r in 0..n {
            let (k, d) = bl.get(r)?;
            blocks.push(b.dst(t, at(rbuf, t, d), k, in_place && r == me)?);
        }
    }
    let mine = if in_place {
        None
    } else {
        let t = datatype::<A>(m, sdt)?;
        let r = b.src(t, sbuf, count(sk)?)?;
        if receives {
            same_len(r, blocks[me as usize])?;
        }
        Some(r)
    };
    match root {
        Some(root) => alg::gather(b.s(), mine, &blocks, root, me, n),
        None => alg::allgather(b.s(), mine, &blocks, me, n),
    }
    let c = b.finish();
    start::<A>(m, c, req)
}

#[allow(clippy::too_many_arguments)]
fn scatter_on<A: Abi>(
    m: &mut Mpi,
    sbuf: *const c_void,
    sblocks: impl FnOnce(u32) -> MpiResult<Blocks<'static>>,
    sdt: A::Datatype,
    rbuf: *mut c_void,
    rk: c_int,
    rdt: A::Datatype,
    root: c_int,
    comm: A::Comm,
    req: Option<*mut A::Request>,
) -> MpiResult<()> {
    req_ok::<A>(req)?;
    let mut b = Build::new::<A>(m, comm)?;
    let (me, n) = (b.me, b.n);
    let root = root_of(root, n)?;
    let in_place = rbuf as usize == A::IN_PLACE;
    if in_place && root != me {
        return err(
            Class::Buffer,
            "MPI_IN_PLACE as the receive buffer of a rank other than the root",
        );
    }
    let mut blocks = Vec::new();
    if me == root {
        let t = datatype::<A>(m, sdt)?;
        let bl = sblocks(n)?;
        for r in 0..n {
            let (k, d) = bl.get(r)?;
            blocks.push(b.src(t, at(sbuf, t, d), k)?);
        }
    }
    let mine = if in_place {
        None
    } else {
        let t = datatype::<A>(m, rdt)?;
        let r = b.dst(t, rbuf, count(rk)?, false)?;
        if me == root {
            same_len(blocks[me as usize], r)?;
        }
        Some(r)
    };
    alg::scatter(b.s(), &blocks, mine, root, me, n);
    let c = b.finish();
    start::<A>(m, c, req)
}

/// All-to-all: `w` gives per-rank datatypes and byte displacements (MPI_Alltoallw).
fn alltoall_on<A: Abi>(
    m: &mut Mpi,
    send: Side<'_, A>,
    sdts: Option<&[A::Datatype]>,
    recv: Side<'_, A>,
    rdts: Option<&[A::Datatype]>,
    comm: A::Comm,
    req: Option<*mut A::Request>,
) -> MpiResult<()> {
    req_ok::<A>(req)?;
    let mut b = Build::new::<A>(m, comm)?;
    let (me, n) = (b.me, b.n);
    let in_place = send.buf as usize == A::IN_PLACE;
    let bytes = rdts.is_some();
    let addr = |buf: *const c_void, t: &Datatype, d: isize| {
        if bytes {
            (buf as *mut u8).wrapping_offset(d) as *mut c_void
        } else {
            at(buf, t, d)
        }
    };
    let mut rblocks = Vec::with_capacity(n as usize);
    let mut sblocks = Vec::with_capacity(n as usize);
    for r in 0..n {
        let rt = datatype::<A>(m, rdts.map_or(recv.dt, |d| d[r as usize]))?;
        let (k, d) = recv.blocks.get(r)?;
        let dst = addr(recv.buf, rt, d);
        if in_place {
            // Send what the receive buffer holds now, from a copy: the block is overwritten.
            check_buf(rt, dst, k)?;
            let mut v = Vec::new();
            // SAFETY: the receive buffer holds `k` elements of `rt` here.
            unsafe { rt.pack(k, dst as *const u8, &mut v) };
            sblocks.push(b.s().tmp_from(v));
        }
        rblocks.push(b.dst(rt, dst, k, false)?);
    }
    if !in_place {
        for r in 0..n {
            let st = datatype::<A>(m, sdts.map_or(send.dt, |d| d[r as usize]))?;
            let (k, d) = send.blocks.get(r)?;
            sblocks.push(b.src(st, addr(send.buf, st, d), k)?);
        }
    }
    same_len(sblocks[me as usize], rblocks[me as usize])?;
    alg::alltoall(b.s(), &sblocks, &rblocks, me, n);
    let c = b.finish();
    start::<A>(m, c, req)
}

/// Blocks of `k` elements each.
fn same(k: c_int) -> impl FnOnce(u32) -> MpiResult<Blocks<'static>> {
    move |_| Ok(Blocks::Same(count(k)?))
}

/// Blocks by the program's counts and displacements.
fn varying(
    counts: *const c_int,
    displs: *const c_int,
) -> impl FnOnce(u32) -> MpiResult<Blocks<'static>> {
    move |n| Blocks::v(counts, displs, n)
}

/// Blocking MPI_Allgather (`all_to_all` false) and MPI_Alltoall: through the communicator's own
/// calls on bytes (the shared-memory path for small data), packing non-contiguous types.
#[allow(clippy::too_many_arguments)]
fn exchange_now<A: Abi>(
    m: &mut Mpi,
    sbuf: *const c_void,
    sk: c_int,
    sdt: A::Datatype,
    rbuf: *mut c_void,
    rk: c_int,
    rdt: A::Datatype,
    comm: A::Comm,
    all_to_all: bool,
) -> MpiResult<()> {
    let c = m.comm(A::comm_id(comm))?;
    let (me, n) = (c.id.rank(), c.id.size() as usize);
    let rt = datatype::<A>(m, rdt)?;
    let rk = count(rk)?;
    let total = rk
        .checked_mul(n)
        .ok_or_else(|| MpiError::new(Class::Count, "receive count times ranks overflows"))?;
    check_buf(rt, rbuf, total)?;
    let in_place = sbuf as usize == A::IN_PLACE;
    // This rank's data as bytes: what it sends (all its blocks for all-to-all).
    let mut send = Vec::new();
    let (st, sk) = if in_place {
        (rt, if all_to_all { total } else { rk })
    } else {
        (datatype::<A>(m, sdt)?, count(sk)?)
    };
    let sk_all = if all_to_all && !in_place {
        sk.checked_mul(n)
            .ok_or_else(|| MpiError::new(Class::Count, "send count times ranks overflows"))?
    } else {
        sk
    };
    let src = if in_place {
        if all_to_all {
            rbuf as *const c_void
        } else {
            at(rbuf, rt, (rk * me as usize) as isize)
        }
    } else {
        sbuf
    };
    check_buf(st, src, sk_all)?;
    // Contiguous data is sent from where it lies, unless it is the receive buffer itself
    // (MPI_IN_PLACE) or, in an erroneous call, overlaps it: those are sent from a packed copy.
    let where_it_lies = st
        .contiguous_run(sk_all)
        .filter(|_| !in_place)
        .map(|(off, len)| ((src as *mut u8).wrapping_offset(off), len))
        .filter(|&run| {
            rt.contiguous_run(total).is_none_or(|(roff, rlen)| {
                apart(run, ((rbuf as *mut u8).wrapping_offset(roff), rlen))
            })
        });
    let send: &[u8] = match where_it_lies {
        Some((_, 0)) => &[],
        // SAFETY: the program's send buffer holds `sk_all` elements of `st`: these `len`
        // bytes, untouched during this blocking call, and apart from the receive buffer
        // (checked above), the only memory written meanwhile.
        Some((p, len)) => unsafe { std::slice::from_raw_parts(p, len) },
        None => {
            // SAFETY: the buffer holds `sk_all` elements of `st` (the program's promise).
            unsafe { st.pack(sk_all, src as *const u8, &mut send) };
            &send
        }
    };
    let block = rt.size().saturating_mul(rk);
    let want = if all_to_all { block * n } else { block };
    if send.len() != want {
        return err(
            Class::Truncate,
            format!(
                "this rank sends {} bytes where its receive blocks hold {want}",
                send.len()
            ),
        );
    }
    let comm = m.world.attach(&c.id);
    with_bytes(rt, rbuf, total, false, true, |out| {
        if all_to_all {
            Ok(comm.alltoall_bytes(send, out)?)
        } else {
            Ok(comm.allgather_bytes(send, out)?)
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn alltoall_same<A: Abi>(
    m: &mut Mpi,
    sbuf: *const c_void,
    sk: c_int,
    sdt: A::Datatype,
    rbuf: *mut c_void,
    rk: c_int,
    rdt: A::Datatype,
    comm: A::Comm,
    req: Option<*mut A::Request>,
) -> MpiResult<()> {
    let send = Side::<A> {
        buf: sbuf,
        blocks: Blocks::Same(if sbuf as usize == A::IN_PLACE {
            0
        } else {
            count(sk)?
        }),
        dt: sdt,
    };
    let recv = Side::<A> {
        buf: rbuf,
        blocks: Blocks::Same(count(rk)?),
        dt: rdt,
    };
    alltoall_on::<A>(m, send, None, recv, None, comm, req)
}

#[allow(clippy::too_many_arguments)]
fn alltoallv_on<A: Abi>(
    m: &mut Mpi,
    sbuf: *const c_void,
    scounts: *const c_int,
    sdispls: *const c_int,
    sdt: A::Datatype,
    rbuf: *mut c_void,
    rcounts: *const c_int,
    rdispls: *const c_int,
    rdt: A::Datatype,
    comm: A::Comm,
    req: Option<*mut A::Request>,
) -> MpiResult<()> {
    let n = m.comm(A::comm_id(comm))?.id.size();
    let in_place = sbuf as usize == A::IN_PLACE;
    let send = Side::<A> {
        buf: sbuf,
        blocks: if in_place {
            Blocks::Same(0)
        } else {
            Blocks::v(scounts, sdispls, n)?
        },
        dt: sdt,
    };
    let recv = Side::<A> {
        buf: rbuf,
        blocks: Blocks::v(rcounts, rdispls, n)?,
        dt: rdt,
    };
    alltoall_on::<A>(m, send, None, recv, None, comm, req)
}

#[allow(clippy::too_many_arguments)]
fn alltoallw_on<A: Abi>(
    m: &mut Mpi,
    sbuf: *const c_void,
    scounts: *const c_int,
    sdispls: *const c_int,
    sdts: *const A::Datatype,
    rbuf: *mut c_void,
    rcounts: *const c_int,
    rdispls: *const c_int,
    rdts: *const A::Datatype,
    comm: A::Comm,
    req: Option<*mut A::Request>,
) -> MpiResult<()> {
    let n = m.comm(A::comm_id(comm))?.id.size();
    let in_place = sbuf as usize == A::IN_PLACE;
    let rdts = slice(rdts, n as usize, "receive datatypes")?;
    let (send, sdts) = if in_place {
        (Blocks::Same(0), rdts)
    } else {
        (
            Blocks::v(scounts, sdispls, n)?,
            slice(sdts, n as usize, "send datatypes")?,
        )
    };
    let send = Side::<A> {
        buf: sbuf,
        blocks: send,
        dt: rdts.first().copied().unwrap_or(A::DATATYPE_NULL),
    };
    let recv = Side::<A> {
        buf: rbuf,
        blocks: Blocks::v(rcounts, rdispls, n)?,
        dt: rdts.first().copied().unwrap_or(A::DATATYPE_NULL),
    };
    alltoall_on::<A>(m, send, Some(sdts), recv, Some(rdts), comm, req)
}

/// Blocking MPI_Bcast: through the communicator's own call on bytes (the shared-memory path for
/// small data), packing a non-contiguous type.
fn bcast_now<A: Abi>(
    m: &mut Mpi,
    buf: *mut c_void,
    k: c_int,
    dt: A::Datatype,
    root: c_int,
    comm: A::Comm,
) -> MpiResult<()> {
    let c = m.comm(A::comm_id(comm))?;
    let root = root_of(root, c.id.size())?;
    let k = count(k)?;
    let t = datatype::<A>(m, dt)?;
    check_buf(t, buf, k)?;
    let comm = m.world.attach(&c.id);
    let me = comm.rank();
    with_bytes(t, buf, k, me == root, me != root, |b| {
        Ok(comm.bcast_bytes(b, root)?)
    })
}

/// Blocking MPI_Barrier: the communicator's own call (the shared-memory path).
fn barrier_now<A: Abi>(m: &mut Mpi, comm: A::Comm) -> MpiResult<()> {
    let c = m.comm(A::comm_id(comm))?;
    Ok(m.world.attach(&c.id).barrier()?)
}

/// Each collective's C calls, blocking and non-blocking: the same arguments (the non-blocking
/// one adds its request) and one body, in which `req` is `None` for the blocking call.
macro_rules! coll_calls {
    ($( $name:literal $iname:literal fn $f:ident / $fi:ident
        ( $($a:ident : $t:ty),* ) on $comm:ident => |$m:ident, $req:ident| $body:expr; )*) => {$(
        #[doc = concat!($name, ".")]
        #[allow(clippy::too_many_arguments)]
        pub fn $f<A: Abi>($($a: $t),*) -> c_int {
            run::<A>($name, Some($comm), |$m| {
                let $req: Option<*mut A::Request> = None;
                $body
            })
        }

        #[doc = concat!($iname, ".")]
        #[allow(clippy::too_many_arguments)]
        pub fn $fi<A: Abi>($($a: $t,)* req: *mut A::Request) -> c_int {
            run::<A>($iname, Some($comm), |$m| {
                let $req = Some(req);
                $body
            })
        }
    )*};
}

coll_calls! {
    "MPI_Barrier" "MPI_Ibarrier" fn barrier / ibarrier (comm: A::Comm) on comm => |m, req| match req {
        None => barrier_now::<A>(m, comm),
        Some(_) => barrier_on::<A>(m, comm, req),
    };
    "MPI_Bcast" "MPI_Ibcast" fn bcast / ibcast
        (buf: *mut c_void, k: c_int, dt: A::Datatype, root: c_int, comm: A::Comm) on comm
        => |m, req| match req {
            None => bcast_now::<A>(m, buf, k, dt, root, comm),
            Some(_) => bcast_on::<A>(m, buf, k, dt, root, comm, req),
        };
    "MPI_Reduce" "MPI_Ireduce" fn reduce / ireduce
        (sbuf: *const c_void, rbuf: *mut c_void, k: c_int, dt: A::Datatype, op: A::Op, root: c_int, comm: A::Comm) on comm
        => |m, req| reduce_on::<A>(m, sbuf, rbuf, k, dt, op, Red::Reduce(root), comm, req);
    "MPI_Allreduce" "MPI_Iallreduce" fn allreduce / iallreduce
        (sbuf: *const c_void, rbuf: *mut c_void, k: c_int, dt: A::Datatype, op: A::Op, comm: A::Comm) on comm
        => |m, req| reduce_on::<A>(m, sbuf, rbuf, k, dt, op, Red::Allreduce, comm, req);
    "MPI_Scan" "MPI_Iscan" fn scan / iscan
        (sbuf: *const c_void, rbuf: *mut c_void, k: c_int, dt: A::Datatype, op: A::Op, comm: A::Comm) on comm
        => |m, req| reduce_on::<A>(m, sbuf, rbuf, k, dt, op, Red::Scan, comm, req);
    "MPI_Exscan" "MPI_Iexscan" fn exscan / iexscan
        (sbuf: *const c_void, rbuf: *mut c_void, k: c_int, dt: A::Datatype, op: A::Op, comm: A::Comm) on comm
        => |m, req| reduce_on::<A>(m, sbuf, rbuf, k, dt, op, Red::Exscan, comm, req);
    "MPI_Reduce_scatter" "MPI_Ireduce_scatter" fn reduce_scatter / ireduce_scatter
        (sbuf: *const c_void, rbuf: *mut c_void, counts: *const c_int, dt: A::Datatype, op: A::Op, comm: A::Comm) on comm
        => |m, req| reduce_scatter_on::<A>(m, sbuf, rbuf, Some(counts), 0, dt, op, comm, req);
    "MPI_Reduce_scatter_block" "MPI_Ireduce_scatter_block" fn reduce_scatter_block / ireduce_scatter_block
        (sbuf: *const c_void, rbuf: *mut c_void, k: c_int, dt: A::Datatype, op: A::Op, comm: A::Comm) on comm
        => |m, req| reduce_scatter_on::<A>(m, sbuf, rbuf, None, k, dt, op, comm, req);
    "MPI_Gather" "MPI_Igather" fn gather / igather
        (sbuf: *const c_void, sk: c_int, sdt: A::Datatype, rbuf: *mut c_void, rk: c_int, rdt: A::Datatype, root: c_int, comm: A::Comm) on comm
        => |m, req| gather_on::<A>(m, sbuf, sk, sdt, rbuf, same(rk), rdt, Some(root), comm, req);
    "MPI_Gatherv" "MPI_Igatherv" fn gatherv / igatherv
        (sbuf: *const c_void, sk: c_int, sdt: A::Datatype, rbuf: *mut c_void, rcounts: *const c_int, displs: *const c_int, rdt: A::Datatype, root: c_int, comm: A::Comm) on comm
        => |m, req| gather_on::<A>(m, sbuf, sk, sdt, rbuf, varying(rcounts, displs), rdt, Some(root), comm, req);
    "MPI_Allgather" "MPI_Iallgather" fn allgather / iallgather
        (sbuf: *const c_void, sk: c_int, sdt: A::Datatype, rbuf: *mut c_void, rk: c_int, rdt: A::Datatype, comm: A::Comm) on comm
        => |m, req| match req {
            None => exchange_now::<A>(m, sbuf, sk, sdt, rbuf, rk, rdt, comm, false),
            Some(_) => gather_on::<A>(m, sbuf, sk, sdt, rbuf, same(rk), rdt, None, comm, req),
        };
    "MPI_Allgatherv" "MPI_Iallgatherv" fn allgatherv / iallgatherv
        (sbuf: *const c_void, sk: c_int, sdt: A::Datatype, rbuf: *mut c_void, rcounts: *const c_int, displs: *const c_int, rdt: A::Datatype, comm: A::Comm) on comm
        => |m, req| gather_on::<A>(m, sbuf, sk, sdt, rbuf, varying(rcounts, displs), rdt, None, comm, req);
    "MPI_Scatter" "MPI_Iscatter" fn scatter / iscatter
        (sbuf: *const c_void, sk: c_int, sdt: A::Datatype, rbuf: *mut c_void, rk: c_int, rdt: A::Datatype, root: c_int, comm: A::Comm) on comm
        => |m, req| scatter_on::<A>(m, sbuf, same(sk), sdt, rbuf, rk, rdt, root, comm, req);
    "MPI_Scatterv" "MPI_Iscatterv" fn scatterv / iscatterv
        (sbuf: *const c_void, scounts: *const c_int, displs: *const c_int, sdt: A::Datatype, rbuf: *mut c_void, rk: c_int, rdt: A::Datatype, root: c_int, comm: A::Comm) on comm
        => |m, req| scatter_on::<A>(m, sbuf, varying(scounts, displs), sdt, rbuf, rk, rdt, root, comm, req);
    "MPI_Alltoall" "MPI_Ialltoall" fn alltoall / ialltoall
        (sbuf: *const c_void, sk: c_int, sdt: A::Datatype, rbuf: *mut c_void, rk: c_int, rdt: A::Datatype, comm: A::Comm) on comm
        => |m, req| match req {
            None => exchange_now::<A>(m, sbuf, sk, sdt, rbuf, rk, rdt, comm, true),
            Some(_) => alltoall_same::<A>(m, sbuf, sk, sdt, rbuf, rk, rdt, comm, req),
        };
    "MPI_Alltoallv" "MPI_Ialltoallv" fn alltoallv / ialltoallv
        (sbuf: *const c_void, scounts: *const c_int, sdispls: *const c_int, sdt: A::Datatype, rbuf: *mut c_void, rcounts: *const c_int, rdispls: *const c_int, rdt: A::Datatype, comm: A::Comm) on comm
        => |m, req| alltoallv_on::<A>(m, sbuf, scounts, sdispls, sdt, rbuf, rcounts, rdispls, rdt, comm, req);
    "MPI_Alltoallw" "MPI_Ialltoallw" fn alltoallw / ialltoallw
        (sbuf: *const c_void, scounts: *const c_int, sdispls: *const c_int, sdts: *const A::Datatype, rbuf: *mut c_void, rcounts: *const c_int, rdispls: *const c_int, rdts: *const A::Datatype, comm: A::Comm) on comm
        => |m, req| alltoallw_on::<A>(m, sbuf, scounts, sdispls, sdts, rbuf, rcounts, rdispls, rdts, comm, req);
}
