//! The algorithms, each written once as a [`Schedule`] over communicator ranks `me` of `n`:
//! the blocking calls run the schedule at once, the non-blocking ones let tests advance it.
//!
//! These move data with point-to-point messages on the communicator's collective context. They
//! are chosen to be correct for every input first (reductions combine in rank order, so
//! non-commutative operations are right), with as few rounds as that allows.

use super::schedule::{Elements, Region, Schedule};

/// Dissemination barrier: in round k, tell rank `me + 2^k` and hear from `me − 2^k`.
pub fn barrier(s: &mut Schedule<'_>, me: u32, n: u32) {
    let mut step = 1;
    while step < n {
        s.send(Region::EMPTY, (me + step) % n);
        s.recv(Region::EMPTY, (me + n - step) % n);
        s.fence();
        step <<= 1;
    }
}

/// Binomial-tree broadcast of `buf` from `root`.
pub fn bcast(s: &mut Schedule<'_>, buf: Region, root: u32, me: u32, n: u32) {
    let rel = (me + n - root) % n;
    let mut mask = 1;
    while mask < n {
        if rel & mask != 0 {
            s.recv(buf, (rel - mask + root) % n);
            s.fence();
            break;
        }
        mask <<= 1;
    }
    mask >>= 1;
    while mask > 0 {
        if rel + mask < n {
            s.send(buf, (rel + mask + root) % n);
        }
        mask >>= 1;
    }
    s.fence();
}

/// Reduction of every rank's `data` into `out` at `root` (`out` is the root's only and has
/// `data`'s length), combining in rank order: `out = d0 ∘ d1 ∘ … ∘ dn−1`.
pub fn reduce(s: &mut Schedule<'_>, data: Region, out: Region, root: u32, me: u32, n: u32) {
    if me != root {
        s.send(data, root);
        s.fence();
        return;
    }
    let parts: Vec<Region> = (0..n)
        .map(|r| {
            if r == root {
                data
            } else {
                let t = s.tmp(data.len());
                s.recv(t, r);
                t
            }
        })
        .collect();
    s.fence();
    // From the last rank down: acc = d_r ∘ acc.
    s.copy(parts[n as usize - 1], out);
    for r in (0..n as usize - 1).rev() {
        s.combine(parts[r], out);
    }
}

/// Reduction into every rank's `out`: a reduction to rank 0, then its broadcast.
pub fn allreduce(s: &mut Schedule<'_>, data: Region, out: Region, me: u32, n: u32) {
    reduce(s, data, out, 0, me, n);
    s.fence();
    bcast(s, out, 0, me, n);
}

/// Data from which [`allreduce_in_slices`] splits the work: below it, the two rounds of `n − 1`
/// messages cost more than the root's extra copies and combine save. (Allreduce of at most a
/// cell per member takes the shared-memory path anyway; this is for larger data and for
/// MPI_Iallreduce.)
pub const SLICES_MIN: usize = 32 << 10;

/// Reduction into every rank's `out`, the work split between the ranks: each rank receives the
/// others' parts of its own slice of the data, reduces that slice (in rank order unless the
/// operation is commutative), and sends the result to every other rank (a reduce-scatter, then
/// an allgather). Every rank copies and combines `1/n` of the data instead of the root combining
/// all of it and then broadcasting it. Slices hold whole elements of `shape`; below
/// [`SLICES_MIN`], with fewer elements than ranks, or with no `shape`, [`allreduce`].
pub fn allreduce_in_slices(
    s: &mut Schedule<'_>,
    data: Region,
    out: Region,
    shape: Option<Elements>,
    me: u32,
    n: u32,
) {
    let len = data.len();
    let Some(shape) = shape.filter(|e| e.unit > 0) else {
        return allreduce(s, data, out, me, n);
    };
    let (unit, elems) = (shape.unit, len.div_ceil(shape.unit));
    if n < 2 || len < SLICES_MIN || elems < n as usize {
        return allreduce(s, data, out, me, n);
    }
    // Rank r's slice: elements r·E/n .. (r+1)·E/n, as bytes (offset, length).
    let slices: Vec<(usize, usize)> = (0..n as usize)
        .map(|r| {
            let (a, b) = (elems * r / n as usize, elems * (r + 1) / n as usize);
            let (from, to) = ((a * unit).min(len), (b * unit).min(len));
            (from, to - from)
        })
        .collect();
    let (at, mine_len) = slices[me as usize];
    let mine = out.part(at, mine_len);
    reduce_own_part(s, data, &slices, mine, shape.commutative, me, n);
    for i in 1..n {
        let from = (me + n - i) % n;
        let (o, l) = slices[from as usize];
        s.recv(out.part(o, l), from);
    }
    for i in 1..n {
        s.send(mine, (me + i) % n);
    }
    s.fence();
}

/// The reduce-scatter at the heart of [`allreduce_in_slices`] and [`reduce_scatter`]: rank `r`
/// owns `parts[r]` (offset and length in `data`, whole elements); every rank sends each other
/// rank its part of `data`, receives the others' parts of its own, and combines them into
/// `mine` (`parts[me]`'s length): in rank order, or, for a `commutative` operation, in an order
/// that needs no copy. Ends with the combines, no fence after them.
fn reduce_own_part(
    s: &mut Schedule<'_>,
    data: Region,
    parts: &[(usize, usize)],
    mine: Region,
    commutative: bool,
    me: u32,
    n: u32,
) {
    let (at, mine_len) = parts[me as usize];
    // The part received straight into `mine`, the accumulator. In rank order it must be the
    // last rank's (`b = a ∘ b` folds from the right), so the last rank copies its own part
    // there while the others' travel; a commutative operation can start from any other rank's.
    let first = if commutative && n > 1 {
        (me + 1) % n
    } else {
        n - 1
    };
    // Empty parts travel not at all (every rank knows every part's length).
    let mut ops = vec![data.part(at, mine_len); n as usize];
    if mine_len > 0 {
        for i in 1..n {
            let from = (me + n - i) % n;
            let t = if from == first { mine } else { s.tmp(mine_len) };
            s.recv(t, from);
            ops[from as usize] = t;
        }
    }
    for i in 1..n {
        let to = (me + i) % n;
        let (o, l) = parts[to as usize];
        if l > 0 {
            s.send(data.part(o, l), to);
        }
    }
    if me == first {
        s.copy(ops[me as usize], mine);
    }
    s.fence();
    if mine_len > 0 {
        for r in (0..n as usize).rev().filter(|&r| r != first as usize) {
            s.combine(ops[r], mine);
        }
    }
}

/// Gathers each rank's `mine` into `blocks[r]` at `root` (`blocks` is the root's only; `mine`
/// `None` at the root means its block is in place already).
pub fn gather(
    s: &mut Schedule<'_>,
    mine: Option<Region>,
    blocks: &[Region],
    root: u32,
    me: u32,
    n: u32,
) {
    if me != root {
        if let Some(m) = mine {
            s.send(m, root);
        }
        s.fence();
        return;
    }
    if let Some(m) = mine {
        s.copy(m, blocks[me as usize]);
    }
    for i in 1..n {
        let r = (me + i) % n;
        s.recv(blocks[r as usize], r);
    }
    s.fence();
}

/// Scatters the root's `blocks[r]` into each rank's `mine` (`None` at the root: in place).
pub fn scatter(
    s: &mut Schedule<'_>,
    blocks: &[Region],
    mine: Option<Region>,
    root: u32,
    me: u32,
    n: u32,
) {
    if me != root {
        if let Some(m) = mine {
            s.recv(m, root);
        }
        s.fence();
        return;
    }
    for i in 1..n {
        let r = (me + i) % n;
        s.send(blocks[r as usize], r);
    }
    if let Some(m) = mine {
        s.copy(blocks[me as usize], m);
    }
    s.fence();
}

/// Every rank's `blocks[me]` into every rank's `blocks[me]` (`mine`, if given, is copied into
/// `blocks[me]` first): each rank sends its block to every other, starting with its successor.
pub fn allgather(s: &mut Schedule<'_>, mine: Option<Region>, blocks: &[Region], me: u32, n: u32) {
    if let Some(m) = mine {
        s.copy(m, blocks[me as usize]);
    }
    for i in 1..n {
        s.recv(blocks[((me + n - i) % n) as usize], (me + n - i) % n);
    }
    for i in 1..n {
        s.send(blocks[me as usize], (me + i) % n);
    }
    s.fence();
}

/// `send[r]` of every rank into `recv[me]` of rank `r`.
pub fn alltoall(s: &mut Schedule<'_>, send: &[Region], recv: &[Region], me: u32, n: u32) {
    s.copy(send[me as usize], recv[me as usize]);
    for i in 1..n {
        let from = (me + n - i) % n;
        s.recv(recv[from as usize], from);
    }
    for i in 1..n {
        let to = (me + i) % n;
        s.send(send[to as usize], to);
    }
    s.fence();
}

/// Inclusive prefix reduction: `out = d0 ∘ … ∘ d_me`, passed along the ranks in order.
pub fn scan(s: &mut Schedule<'_>, data: Region, out: Region, me: u32, n: u32) {
    s.copy(data, out);
    if me > 0 {
        let t = s.tmp(data.len());
        s.recv(t, me - 1);
        s.fence();
        s.combine(t, out);
    }
    if me + 1 < n {
        s.send(out, me + 1);
    }
    s.fence();
}

/// Exclusive prefix reduction: `out = d0 ∘ … ∘ d_(me−1)` (rank 0's `out` is left as it is).
pub fn exscan(s: &mut Schedule<'_>, data: Region, out: Region, me: u32, n: u32) {
    if me == 0 {
        if n > 1 {
            s.send(data, 1);
        }
        s.fence();
        return;
    }
    s.recv(out, me - 1);
    s.fence();
    if me + 1 < n {
        // Pass on out ∘ d_me, leaving `out` as the result.
        let t = s.tmp(data.len());
        s.copy(data, t);
        s.combine(out, t);
        s.send(t, me + 1);
    }
    s.fence();
}

/// Reduction of every rank's `data` whose result's part `parts[r]` (offset and length in a
/// buffer of `data`'s length, whole elements) lands in rank `r`'s `mine`. With a `shape` (the
/// combine works on any run of whole elements), each rank reduces its own part in parallel
/// with the others ([`reduce_own_part`]); otherwise a reduction to rank 0 and a scatter from it.
pub fn reduce_scatter(
    s: &mut Schedule<'_>,
    data: Region,
    parts: &[(usize, usize)],
    mine: Region,
    shape: Option<Elements>,
    me: u32,
    n: u32,
) {
    if let Some(e) = shape {
        reduce_own_part(s, data, parts, mine, e.commutative, me, n);
        s.fence();
        return;
    }
    let total = if me == 0 { data.len() } else { 0 };
    let out = s.tmp(total);
    reduce(s, data, out, 0, me, n);
    s.fence();
    let blocks: Vec<Region> = if me == 0 {
        parts.iter().map(|&(off, len)| out.part(off, len)).collect()
    } else {
        Vec::new()
    };
    scatter(s, &blocks, Some(mine), 0, me, n);
}
