//! Derived datatypes (MPI 4.1 chapter 5), ABI-neutral: what a type map is, how big it is, and how
//! its data is packed and unpacked. The faces map their handles to [`Datatype`] values; nothing
//! here knows about handles, FFI or I/O.
//!
//! A type is kept flat: the contiguous byte runs of ONE element in type-map order (merged when
//! one run continues the previous), and the type signature run-length encoded with shared
//! repetitions, so that `contiguous(1 << 20, …)` costs memory in the number of runs, not of
//! elements. Bounds follow MPICH: lb/ub from the blocks' own lb/ub (blocks of length zero do not
//! count), `resized` overriding them, and a struct of differing member types padded to the largest
//! alignment of its members (the "epsilon" of the standard).

use std::fmt;
use std::sync::Arc;

use crate::basic::Basic;

/// The storage order of a subarray: row-major (C) or column-major (Fortran).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Last dimension varies fastest.
    C,
    /// First dimension varies fastest.
    Fortran,
}

/// Why a constructor refused: the faces turn these into MPI error classes.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeError {
    /// A count, or a size or displacement computed from counts, does not fit (MPI_ERR_COUNT).
    Count(String),
    /// An argument is inconsistent or out of range (MPI_ERR_ARG).
    Arg(String),
}

impl fmt::Display for TypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypeError::Count(m) => write!(f, "invalid count: {m}"),
            TypeError::Arg(m) => write!(f, "invalid argument: {m}"),
        }
    }
}

impl std::error::Error for TypeError {}

/// One item of a type signature: `n` consecutive basic elements, or `n` repetitions of a shared
/// sequence (so repeating a heterogeneous type costs one item, not `n` copies).
#[derive(Clone, Debug)]
enum Sig {
    Basic(Basic, usize),
    Rep(Arc<SigSeq>, usize),
}

/// A signature: items in order, with their total packed size and number of basic elements cached
/// so that `elements` can skip whole repetitions without walking them.
#[derive(Debug, Default)]
struct SigSeq {
    items: Vec<Sig>,
    size: usize,
    elems: usize,
}

/// Basic elements in one predefined element: a pair type counts its value and its index (as
/// MPICH's MPI_Get_elements does).
fn elems_per(b: Basic) -> usize {
    if b.pair().is_some() {
        2
    } else {
        1
    }
}

impl Sig {
    fn size(&self) -> usize {
        match self {
            Sig::Basic(b, n) => b.size() * n,
            Sig::Rep(s, n) => s.size * n,
        }
    }

    fn elems(&self) -> usize {
        match self {
            Sig::Basic(b, n) => elems_per(*b) * n,
            Sig::Rep(s, n) => s.elems * n,
        }
    }
}

impl SigSeq {
    /// Basic elements wholly contained in the first `bytes` (< self.size) bytes, or None if
    /// `bytes` ends inside one.
    fn prefix_elems(&self, mut bytes: usize) -> Option<usize> {
        let mut n = 0;
        for item in &self.items {
            if bytes == 0 {
                return Some(n);
            }
            let size = item.size();
            if bytes >= size {
                bytes -= size;
                n += item.elems();
                continue;
            }
            return match item {
                Sig::Basic(b, _) => {
                    let (full, rest) = (bytes / b.size(), bytes % b.size());
                    n += full * elems_per(*b);
                    match (rest, b.pair()) {
                        (0, _) => Some(n),
                        // The value of a pair arrived, its index did not.
                        (r, Some((v, _))) if r == v.size() => Some(n + 1),
                        _ => None,
                    }
                }
                Sig::Rep(s, _) => {
                    let full = bytes / s.size;
                    s.prefix_elems(bytes % s.size)
                        .map(|e| n + full * s.elems + e)
                }
            };
        }
        (bytes == 0).then_some(n)
    }

    /// Calls `f` on each basic element in order (for `type_map`).
    fn for_each(&self, f: &mut impl FnMut(Basic)) {
        for item in &self.items {
            match item {
                Sig::Basic(b, n) => (0..*n).for_each(|_| f(*b)),
                Sig::Rep(s, n) => (0..*n).for_each(|_| s.for_each(f)),
            }
        }
    }
}

/// What the basic elements of a type have in common, for reductions on derived types.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Homog {
    Empty,
    One(Basic),
    Mixed,
}

impl Homog {
    fn join(self, other: Homog) -> Homog {
        match (self, other) {
            (Homog::Empty, h) | (h, Homog::Empty) => h,
            (Homog::One(a), Homog::One(b)) if a == b => Homog::One(a),
            _ => Homog::Mixed,
        }
    }
}

#[derive(Debug)]
struct Inner {
    /// Contiguous byte runs (offset from the element's address, length) of one element, in
    /// type-map order; empty runs are never stored.
    runs: Arc<Vec<(isize, usize)>>,
    sig: Arc<SigSeq>,
    lb: isize,
    ub: isize,
    true_lb: isize,
    true_ub: isize,
    /// The largest C alignment of the basic members (for the struct padding).
    align: usize,
    named: Option<Basic>,
    homog: Homog,
}

/// An MPI datatype: a predefined one or one built from others. Cloning is cheap and a clone is
/// the same type (a struct of one type repeated is not padded, as in MPICH).
#[derive(Clone, Debug)]
pub struct Datatype {
    inner: Arc<Inner>,
}

/// Converts a bound computed in i128 back to an address-sized integer.
fn to_isize(v: i128, what: impl FnOnce() -> String) -> Result<isize, TypeError> {
    isize::try_from(v)
        .map_err(|_| TypeError::Count(format!("{} overflows the address space", what())))
}

/// Accumulates blocks (a displacement, a repetition count, a type) into a flat type.
struct Builder<'a> {
    ctx: &'a str,
    runs: Vec<(isize, usize)>,
    sig: Vec<Sig>,
    size: usize,
    elems: usize,
    bounds: Option<(i128, i128)>,
    align: usize,
    homog: Homog,
}

impl<'a> Builder<'a> {
    fn new(ctx: &'a str) -> Self {
        Builder {
            ctx,
            runs: Vec::new(),
            sig: Vec::new(),
            size: 0,
            elems: 0,
            bounds: None,
            align: 1,
            homog: Homog::Empty,
        }
    }

    fn overflow(&self, what: &str) -> TypeError {
        TypeError::Count(format!("{}: {what} overflows", self.ctx))
    }

    /// Appends a run, merging it into the previous one when it continues it.
    fn push_run(&mut self, off: i128, len: usize) -> Result<(), TypeError> {
        if len == 0 {
            return Ok(());
        }
        let end = off + len as i128;
        let ctx = self.ctx;
        to_isize(end, || format!("{ctx}: the end of a block at byte {off}"))?;
        let off = to_isize(off, || format!("{ctx}: displacement {off}"))?;
        if let Some(last) = self.runs.last_mut() {
            if last.0 as i128 + last.1 as i128 == off as i128 {
                last.1 += len; // fits: the end was checked above
                return Ok(());
            }
        }
        self.runs.push((off, len));
        Ok(())
    }

    fn push_sig(&mut self, item: Sig) {
        match (self.sig.last_mut(), &item) {
            (Some(Sig::Basic(a, n)), Sig::Basic(b, m)) if a == b => *n += m,
            (Some(Sig::Rep(a, n)), Sig::Rep(b, m)) if Arc::ptr_eq(a, b) => *n += m,
            _ => self.sig.push(item),
        }
    }

    /// Adds `n` elements of `old`, one extent apart, starting at byte `disp`.
    fn add(&mut self, disp: i128, n: usize, old: &Datatype) -> Result<(), TypeError> {
        if n == 0 {
            return Ok(());
        }
        let o = &*old.inner;
        self.size = old
            .size()
            .checked_mul(n)
            .and_then(|s| s.checked_add(self.size))
            .ok_or_else(|| self.overflow("the size"))?;
        self.elems = o.sig.elems.saturating_mul(n).saturating_add(self.elems);
        let ext = old.extent() as i128;
        let span = (n as i128 - 1)
            .checked_mul(ext)
            .ok_or_else(|| self.overflow("a block's span"))?;
        let lo = disp + o.lb as i128 + span.min(0);
        let hi = disp + o.ub as i128 + span.max(0);
        self.bounds = Some(match self.bounds {
            Some((l, h)) => (l.min(lo), h.max(hi)),
            None => (lo, hi),
        });
        self.align = self.align.max(o.align);
        self.homog = self.homog.join(o.homog);

        match o.runs.as_slice() {
            // A dense type repeated is one run.
            [(off, len)] if *len as i128 == ext => {
                let total = len
                    .checked_mul(n)
                    .ok_or_else(|| self.overflow("the size"))?;
                self.push_run(disp + *off as i128, total)?;
            }
            runs => {
                for j in 0..n {
                    let base = disp + j as i128 * ext;
                    for &(off, len) in runs {
                        self.push_run(base + off as i128, len)?;
                    }
                }
            }
        }

        let item = match o.sig.items.as_slice() {
            [] => return Ok(()),
            [Sig::Basic(b, m)] => Sig::Basic(*b, m * n),
            [Sig::Rep(s, m)] => Sig::Rep(s.clone(), m * n),
            _ => Sig::Rep(o.sig.clone(), n),
        };
        self.push_sig(item);
        Ok(())
    }

    /// The type built; `pad` rounds the extent up to the alignment (struct types only).
    fn finish(self, pad: bool) -> Result<Datatype, TypeError> {
        if self.size == 0 {
            return Ok(Datatype::zerolen(self.align));
        }
        let ctx = self.ctx;
        let (lb, mut ub) = self.bounds.unwrap_or((0, 0));
        let ext = ub - lb;
        let align = self.align as i128;
        if pad && ext > 0 && ext % align != 0 {
            ub += align - ext % align;
        }
        let lb = to_isize(lb, || format!("{ctx}: the lower bound {lb}"))?;
        let ub = to_isize(ub, || format!("{ctx}: the upper bound {ub}"))?;
        to_isize(ub as i128 - lb as i128, || format!("{ctx}: the extent"))?;
        let true_lb = self.runs.iter().map(|r| r.0).min().unwrap_or(0);
        // Every run's end was checked to fit when it was pushed.
        let true_ub = self
            .runs
            .iter()
            .map(|r| r.0 + r.1 as isize)
            .max()
            .unwrap_or(0);
        Ok(Datatype {
            inner: Arc::new(Inner {
                runs: Arc::new(self.runs),
                sig: Arc::new(SigSeq {
                    items: self.sig,
                    size: self.size,
                    elems: self.elems,
                }),
                lb,
                ub,
                true_lb,
                true_ub,
                align: self.align,
                named: None,
                homog: self.homog,
            }),
        })
    }
}

/// The byte alignment of a predefined type in a C struct on x86-64.
fn basic_align(b: Basic) -> usize {
    match b.pair() {
        Some((v, i)) => v.align().max(i.align()),
        None if b.size() == 1 => 1,
        None => b.num().align(),
    }
}

/// Whether two member types of a struct are the same type (then the struct is an hindexed and
/// is not padded, as MPICH decides); predefined types that are the same C type count as one.
fn same_type(a: &Datatype, b: &Datatype) -> bool {
    match (a.named(), b.named()) {
        (Some(x), Some(y)) => x.num() == y.num() && x.size() == y.size() && x.pair() == y.pair(),
        (None, None) => Arc::ptr_eq(&a.inner, &b.inner),
        _ => false,
    }
}

fn check_len(ctx: &str, what: &str, n: usize, expected: usize) -> Result<(), TypeError> {
    if n == expected {
        Ok(())
    } else {
        Err(TypeError::Arg(format!(
            "{ctx}: {what} has {n} entries, expected {expected}"
        )))
    }
}

impl Datatype {
    /// A predefined type: named, committed, its type map one basic element (a pair: two runs).
    pub fn basic(b: Basic) -> Datatype {
        let mut runs = Vec::with_capacity(2);
        match b.pair() {
            Some((v, i)) => {
                runs.push((0, v.size()));
                if b.index_offset() == v.size() {
                    runs[0].1 += i.size();
                } else {
                    runs.push((b.index_offset() as isize, i.size()));
                }
            }
            None => runs.push((0, b.size())),
        }
        let true_ub = runs.last().map(|r| r.0 + r.1 as isize).unwrap_or(0);
        Datatype {
            inner: Arc::new(Inner {
                runs: Arc::new(runs),
                sig: Arc::new(SigSeq {
                    items: vec![Sig::Basic(b, 1)],
                    size: b.size(),
                    elems: elems_per(b),
                }),
                lb: 0,
                ub: b.extent() as isize,
                true_lb: 0,
                true_ub,
                align: basic_align(b),
                named: Some(b),
                homog: Homog::One(b),
            }),
        }
    }

    /// A type with no data: MPICH gives every constructor that ends up empty lb = ub = 0.
    fn zerolen(align: usize) -> Datatype {
        Datatype {
            inner: Arc::new(Inner {
                runs: Arc::new(Vec::new()),
                sig: Arc::new(SigSeq::default()),
                lb: 0,
                ub: 0,
                true_lb: 0,
                true_ub: 0,
                align,
                named: None,
                homog: Homog::Empty,
            }),
        }
    }

    /// `count` elements of `old`, one extent apart (MPI_Type_contiguous).
    pub fn contiguous(count: usize, old: &Datatype) -> Result<Datatype, TypeError> {
        let mut b = Builder::new("contiguous");
        b.add(0, count, old)?;
        b.finish(false)
    }

    /// `count` blocks of `blocklen` elements, block starts `stride` extents of `old` apart
    /// (MPI_Type_vector).
    pub fn vector(
        count: usize,
        blocklen: usize,
        stride: isize,
        old: &Datatype,
    ) -> Result<Datatype, TypeError> {
        let bytes = (stride as i128) * (old.extent() as i128);
        let bytes = to_isize(bytes, || {
            format!("vector: stride {stride} times the old extent")
        })?;
        Self::hvector_in("vector", count, blocklen, bytes, old)
    }

    /// `count` blocks of `blocklen` elements, block starts `stride_bytes` apart
    /// (MPI_Type_create_hvector).
    pub fn hvector(
        count: usize,
        blocklen: usize,
        stride_bytes: isize,
        old: &Datatype,
    ) -> Result<Datatype, TypeError> {
        Self::hvector_in("hvector", count, blocklen, stride_bytes, old)
    }

    fn hvector_in(
        ctx: &str,
        count: usize,
        blocklen: usize,
        stride: isize,
        old: &Datatype,
    ) -> Result<Datatype, TypeError> {
        let mut b = Builder::new(ctx);
        let block_bytes = blocklen as i128 * old.extent() as i128;
        if count > 1 && stride as i128 == block_bytes {
            // Blocks that touch: one long block (same map, without a pass per block).
            let n = count.checked_mul(blocklen).ok_or_else(|| {
                TypeError::Count(format!(
                    "{ctx}: count {count} times blocklength {blocklen} overflows"
                ))
            })?;
            b.add(0, n, old)?;
        } else {
            for i in 0..count {
                b.add(i as i128 * stride as i128, blocklen, old)?;
            }
        }
        b.finish(false)
    }

    /// Blocks of `blocklens[i]` elements at `displs[i]` extents of `old` (MPI_Type_indexed).
    pub fn indexed(
        blocklens: &[usize],
        displs: &[isize],
        old: &Datatype,
    ) -> Result<Datatype, TypeError> {
        check_len("indexed", "displacements", displs.len(), blocklens.len())?;
        let ext = old.extent() as i128;
        let mut b = Builder::new("indexed");
        for (&n, &d) in blocklens.iter().zip(displs) {
            b.add(d as i128 * ext, n, old)?;
        }
        b.finish(false)
    }

    /// Blocks of `blocklens[i]` elements at byte displacements `displs_bytes[i]`
    /// (MPI_Type_create_hindexed).
    pub fn hindexed(
        blocklens: &[usize],
        displs_bytes: &[isize],
        old: &Datatype,
    ) -> Result<Datatype, TypeError> {
        check_len(
            "hindexed",
            "displacements",
            displs_bytes.len(),
            blocklens.len(),
        )?;
        let mut b = Builder::new("hindexed");
        for (&n, &d) in blocklens.iter().zip(displs_bytes) {
            b.add(d as i128, n, old)?;
        }
        b.finish(false)
    }

    /// Blocks of `blocklen` elements at `displs[i]` extents of `old`
    /// (MPI_Type_create_indexed_block).
    pub fn indexed_block(
        blocklen: usize,
        displs: &[isize],
        old: &Datatype,
    ) -> Result<Datatype, TypeError> {
        let ext = old.extent() as i128;
        let mut b = Builder::new("indexed_block");
        for &d in displs {
            b.add(d as i128 * ext, blocklen, old)?;
        }
        b.finish(false)
    }

    /// Blocks of `blocklen` elements at byte displacements `displs_bytes[i]`
    /// (MPI_Type_create_hindexed_block).
    pub fn hindexed_block(
        blocklen: usize,
        displs_bytes: &[isize],
        old: &Datatype,
    ) -> Result<Datatype, TypeError> {
        let mut b = Builder::new("hindexed_block");
        for &d in displs_bytes {
            b.add(d as i128, blocklen, old)?;
        }
        b.finish(false)
    }

    /// Blocks of `blocklens[i]` elements of `types[i]` at byte displacements `displs_bytes[i]`
    /// (MPI_Type_create_struct). Members of differing types pad the extent to their largest
    /// alignment, as a C compiler pads the struct they describe.
    pub fn structure(
        blocklens: &[usize],
        displs_bytes: &[isize],
        types: &[&Datatype],
    ) -> Result<Datatype, TypeError> {
        check_len(
            "struct",
            "displacements",
            displs_bytes.len(),
            blocklens.len(),
        )?;
        check_len("struct", "types", types.len(), blocklens.len())?;
        let pad = types.windows(2).any(|w| !same_type(w[0], w[1]));
        let mut b = Builder::new("struct");
        for ((&n, &d), &t) in blocklens.iter().zip(displs_bytes).zip(types) {
            b.add(d as i128, n, t)?;
        }
        b.finish(pad)
    }

    /// The part `starts .. starts + subsizes` of an array of `sizes` elements of `old`
    /// (MPI_Type_create_subarray): lb 0 and the extent of the whole array, as MPICH builds it.
    pub fn subarray(
        sizes: &[usize],
        subsizes: &[usize],
        starts: &[usize],
        order: Order,
        old: &Datatype,
    ) -> Result<Datatype, TypeError> {
        let ctx = "subarray";
        if sizes.is_empty() {
            return Err(TypeError::Arg(format!("{ctx}: no dimensions")));
        }
        check_len(ctx, "subsizes", subsizes.len(), sizes.len())?;
        check_len(ctx, "starts", starts.len(), sizes.len())?;
        for (i, ((&size, &sub), &start)) in sizes.iter().zip(subsizes).zip(starts).enumerate() {
            if size == 0 {
                return Err(TypeError::Arg(format!("{ctx}: size 0 in dimension {i}")));
            }
            if start.checked_add(sub).is_none_or(|end| end > size) {
                return Err(TypeError::Arg(format!(
                    "{ctx}: start {start} + subsize {sub} exceeds size {size} in dimension {i}"
                )));
            }
        }
        // Dimensions from the fastest-varying outwards.
        let dims: Vec<usize> = match order {
            Order::C => (0..sizes.len()).rev().collect(),
            Order::Fortran => (0..sizes.len()).collect(),
        };
        let overflow = || TypeError::Count(format!("{ctx}: the array's extent overflows"));
        let ext = old.extent() as i128;
        let mut t = Self::contiguous(subsizes[dims[0]], old)?;
        let mut stride = sizes[dims[0]] as i128 * ext; // bytes between rows of dimension d
        let mut disp = starts[dims[0]] as i128 * ext;
        for &d in &dims[1..] {
            let s = to_isize(stride, || format!("{ctx}: the stride of dimension {d}"))?;
            t = Self::hvector(subsizes[d], 1, s, &t)?;
            disp = starts[d]
                .checked_mul(usize::try_from(stride.unsigned_abs()).map_err(|_| overflow())?)
                .map(|x| x as i128 * stride.signum())
                .and_then(|x| x.checked_add(disp))
                .ok_or_else(overflow)?;
            stride = stride.checked_mul(sizes[d] as i128).ok_or_else(overflow)?;
        }
        let disp = to_isize(disp, || format!("{ctx}: the start offset"))?;
        let t = Self::hindexed(&[1], &[disp], &t)?;
        let total = to_isize(stride, || format!("{ctx}: the array's extent"))?;
        Self::resized(&t, 0, total)
    }

    /// The same type map with lower bound `lb` and extent `extent` (MPI_Type_create_resized).
    pub fn resized(old: &Datatype, lb: isize, extent: isize) -> Result<Datatype, TypeError> {
        let ub = lb.checked_add(extent).ok_or_else(|| {
            TypeError::Count(format!("resized: lb {lb} + extent {extent} overflows"))
        })?;
        let o = &*old.inner;
        Ok(Datatype {
            inner: Arc::new(Inner {
                runs: o.runs.clone(),
                sig: o.sig.clone(),
                lb,
                ub,
                true_lb: o.true_lb,
                true_ub: o.true_ub,
                align: o.align,
                named: None,
                homog: o.homog,
            }),
        })
    }

    /// Bytes of data in one element (MPI_Type_size).
    pub fn size(&self) -> usize {
        self.inner.sig.size
    }

    /// The lower bound (MPI_Type_get_extent).
    pub fn lb(&self) -> isize {
        self.inner.lb
    }

    /// Bytes from one element to the next (MPI_Type_get_extent).
    pub fn extent(&self) -> isize {
        self.inner.ub - self.inner.lb
    }

    /// The offset of the first byte of data (MPI_Type_get_true_extent).
    pub fn true_lb(&self) -> isize {
        self.inner.true_lb
    }

    /// Bytes from the first byte of data to past the last (MPI_Type_get_true_extent).
    pub fn true_extent(&self) -> isize {
        self.inner.true_ub - self.inner.true_lb
    }

    /// The predefined type this is, for predefined types only.
    pub fn named(&self) -> Option<Basic> {
        self.inner.named
    }

    /// If `count` elements are one contiguous run of bytes starting at the buffer address +
    /// offset: Some((offset, len)), so that sends and receives can skip packing.
    pub fn contiguous_run(&self, count: usize) -> Option<(isize, usize)> {
        if count == 0 || self.size() == 0 {
            return Some((0, 0));
        }
        match self.inner.runs.as_slice() {
            [(off, len)] if count == 1 => Some((*off, *len)),
            [(off, len)] if *len as isize == self.extent() => {
                let total = len.checked_mul(count)?;
                // The last byte must be addressable too.
                off.checked_add(isize::try_from(total).ok()?)?;
                Some((*off, total))
            }
            _ => None,
        }
    }

    /// The byte offset of element `i` (`i` extents on), wrapping like the pointer arithmetic of
    /// a C caller.
    fn base(&self, i: usize) -> isize {
        (i as isize).wrapping_mul(self.extent())
    }

    /// Appends the data of `count` elements at `src` (packed, in type-map order) to `out`.
    ///
    /// # Safety
    /// Every byte of the type map of `count` elements starting at `src` must be readable.
    pub unsafe fn pack(&self, count: usize, src: *const u8, out: &mut Vec<u8>) {
        if let Some((off, len)) = self.contiguous_run(count) {
            if len > 0 {
                // SAFETY: the `len` bytes at `src + off` are exactly the type map of `count`
                // elements, which the caller guarantees readable.
                out.extend_from_slice(unsafe {
                    std::slice::from_raw_parts(src.wrapping_offset(off), len)
                });
            }
            return;
        }
        // Only a hint: a failed reservation shows up (if at all) as the pushes below grow `out`.
        let _ = out.try_reserve(self.size().saturating_mul(count));
        for i in 0..count {
            let base = self.base(i);
            for &(off, len) in self.inner.runs.iter() {
                // SAFETY: this run is part of the type map of element `i` at `src`, readable by
                // the caller's guarantee; `out` is a distinct Vec, so they do not overlap.
                out.extend_from_slice(unsafe {
                    std::slice::from_raw_parts(src.wrapping_offset(base.wrapping_add(off)), len)
                });
            }
        }
    }

    /// Writes packed `data` into `count` elements at `dst` in type-map order; stops when data
    /// runs out (a short message: only whole bytes that arrived are written). Returns bytes
    /// consumed.
    ///
    /// # Safety
    /// Every byte of the type map of `count` elements starting at `dst` must be writable and not
    /// overlap `data`.
    pub unsafe fn unpack(&self, count: usize, data: &[u8], dst: *mut u8) -> usize {
        if let Some((off, len)) = self.contiguous_run(count) {
            let n = len.min(data.len());
            if n == 0 {
                return 0;
            }
            // SAFETY: the first `n` bytes at `dst + off` are part of the type map of `count`
            // elements, writable and disjoint from `data` by the caller's guarantee.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst.wrapping_offset(off), n) };
            return n;
        }
        let mut pos = 0;
        for i in 0..count {
            let base = self.base(i);
            for &(off, len) in self.inner.runs.iter() {
                let n = len.min(data.len() - pos);
                if n == 0 {
                    return pos;
                }
                // SAFETY: `data[pos..pos + n]` is in bounds; the `n` bytes at the run's address
                // are part of the type map of element `i`, writable and disjoint from `data` by
                // the caller's guarantee.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        data.as_ptr().add(pos),
                        dst.wrapping_offset(base.wrapping_add(off)),
                        n,
                    )
                };
                pos += n;
            }
        }
        pos
    }

    /// MPI_Get_elements: basic elements in `bytes` of packed data of this type (a pair type's
    /// value and index count as two), or None (MPI_UNDEFINED) if `bytes` does not end on a basic
    /// element boundary.
    pub fn elements(&self, bytes: usize) -> Option<usize> {
        let sig = &*self.inner.sig;
        if sig.size == 0 {
            return (bytes == 0).then_some(0);
        }
        let full = (bytes / sig.size).checked_mul(sig.elems)?;
        full.checked_add(sig.prefix_elems(bytes % sig.size)?)
    }

    /// The one predefined type if every basic element of the type map is of it (for reductions
    /// on derived types), e.g. a vector of MPI_INT gives Some(Int).
    pub fn homogeneous(&self) -> Option<Basic> {
        match self.inner.homog {
            Homog::One(b) => Some(b),
            _ => None,
        }
    }

    /// The type map of one element as (byte offset, predefined type), in order: a pair type
    /// appears once, at its value's offset. For tests and diagnostics: it costs one entry per
    /// basic element.
    pub fn type_map(&self) -> Vec<(isize, Basic)> {
        let runs = &self.inner.runs;
        let (mut run, mut used) = (0, 0);
        let mut map = Vec::new();
        self.inner.sig.for_each(&mut |b| {
            map.push((runs[run].0 + used as isize, b));
            let mut left = b.size();
            while left > 0 {
                let n = (runs[run].1 - used).min(left);
                left -= n;
                used += n;
                if used == runs[run].1 && run + 1 < runs.len() {
                    run += 1;
                    used = 0;
                }
            }
        });
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Basic::*;

    fn b(x: Basic) -> Datatype {
        Datatype::basic(x)
    }

    /// (size, lb, extent, true lb, true extent) as MPICH 4.0.2 reports them.
    fn dims(t: &Datatype) -> (usize, isize, isize, isize, isize) {
        (t.size(), t.lb(), t.extent(), t.true_lb(), t.true_extent())
    }

    fn st(blocks: &[(usize, isize, &Datatype)]) -> Datatype {
        let bl: Vec<usize> = blocks.iter().map(|x| x.0).collect();
        let d: Vec<isize> = blocks.iter().map(|x| x.1).collect();
        let t: Vec<&Datatype> = blocks.iter().map(|x| x.2).collect();
        Datatype::structure(&bl, &d, &t).unwrap()
    }

    #[test]
    fn predefined() {
        assert_eq!(dims(&b(Int)), (4, 0, 4, 0, 4));
        assert_eq!(dims(&b(ShortInt)), (6, 0, 8, 0, 8));
        assert_eq!(dims(&b(DoubleInt)), (12, 0, 16, 0, 12));
        assert_eq!(dims(&b(LongDoubleInt)), (20, 0, 32, 0, 20));
        assert_eq!(dims(&b(FloatInt)), (8, 0, 8, 0, 8));
        assert_eq!(b(Int).named(), Some(Int));
        let c = Datatype::contiguous(2, &b(ShortInt)).unwrap();
        assert_eq!(dims(&c), (12, 0, 16, 0, 16));
        assert_eq!(c.named(), None);
    }

    #[test]
    fn contiguous_vector_hvector() {
        let int = b(Int);
        assert_eq!(
            dims(&Datatype::contiguous(3, &int).unwrap()),
            (12, 0, 12, 0, 12)
        );
        assert_eq!(
            dims(&Datatype::contiguous(0, &int).unwrap()),
            (0, 0, 0, 0, 0)
        );
        assert_eq!(
            dims(&Datatype::vector(3, 2, 4, &int).unwrap()),
            (24, 0, 40, 0, 40)
        );
        assert_eq!(
            dims(&Datatype::vector(3, 2, -4, &int).unwrap()),
            (24, -32, 40, -32, 40)
        );
        assert_eq!(
            dims(&Datatype::vector(0, 2, 4, &int).unwrap()),
            (0, 0, 0, 0, 0)
        );
        assert_eq!(
            dims(&Datatype::hvector(3, 2, 20, &int).unwrap()),
            (24, 0, 48, 0, 48)
        );
        assert_eq!(
            dims(&Datatype::hvector(3, 1, -20, &b(Double)).unwrap()),
            (24, -40, 48, -40, 48)
        );
        // A resized type with a negative extent, repeated.
        let r = Datatype::resized(&int, 0, -4).unwrap();
        assert_eq!(
            dims(&Datatype::contiguous(3, &r).unwrap()),
            (12, -8, 4, -8, 12)
        );
    }

    #[test]
    fn indexed_family() {
        let int = b(Int);
        let t = Datatype::indexed(&[2, 0, 3], &[5, 100, -2], &int).unwrap();
        assert_eq!(dims(&t), (20, -8, 36, -8, 36));
        let t = Datatype::indexed(&[0, 0], &[5, 10], &int).unwrap();
        assert_eq!(dims(&t), (0, 0, 0, 0, 0));
        let t = Datatype::indexed(&[2, 0], &[3, 0], &int).unwrap();
        assert_eq!(dims(&t), (8, 12, 8, 12, 8));
        let t = Datatype::hindexed(&[1, 2], &[-8, 12], &b(Double)).unwrap();
        assert_eq!(dims(&t), (24, -8, 36, -8, 36));
        let t = Datatype::indexed_block(2, &[3, -1, 7], &b(Short)).unwrap();
        assert_eq!(dims(&t), (12, -2, 20, -2, 20));
        let t = Datatype::hindexed_block(1, &[0, 10], &b(Double)).unwrap();
        assert_eq!(dims(&t), (16, 0, 18, 0, 18));
        assert!(matches!(
            Datatype::indexed(&[1, 2], &[0], &int),
            Err(TypeError::Arg(_))
        ));
    }

    #[test]
    fn struct_padding() {
        let (int, ch, dbl) = (b(Int), b(Char), b(Double));
        assert_eq!(dims(&st(&[(1, 0, &int), (1, 4, &ch)])), (5, 0, 8, 0, 5));
        assert_eq!(dims(&st(&[(1, 0, &int), (1, 8, &dbl)])), (12, 0, 16, 0, 16));
        assert_eq!(dims(&st(&[(1, 0, &int), (1, 4, &dbl)])), (12, 0, 16, 0, 12));
        assert_eq!(dims(&st(&[(3, 0, &ch)])), (3, 0, 3, 0, 3));
        assert_eq!(dims(&st(&[(1, 1, &int), (1, 5, &ch)])), (5, 1, 8, 1, 5));
        assert_eq!(
            dims(&st(&[(1, -8, &dbl), (1, 0, &int)])),
            (12, -8, 16, -8, 12)
        );
        assert_eq!(dims(&st(&[(1, 0, &dbl), (0, 100, &ch)])), (8, 0, 8, 0, 8));
        // Alignments: long double 16, float complex 4, double complex 8, pairs their struct's.
        assert_eq!(
            dims(&st(&[(1, 0, &b(LongDouble)), (1, 16, &ch)])),
            (17, 0, 32, 0, 17)
        );
        assert_eq!(
            dims(&st(&[(1, 0, &b(FloatComplex)), (1, 8, &ch)])),
            (9, 0, 12, 0, 9)
        );
        assert_eq!(
            dims(&st(&[(1, 0, &b(DoubleComplex)), (1, 16, &ch)])),
            (17, 0, 24, 0, 17)
        );
        assert_eq!(
            dims(&st(&[(1, 0, &b(ShortInt)), (1, 8, &ch)])),
            (7, 0, 12, 0, 9)
        );
        assert_eq!(
            dims(&st(&[(1, 0, &b(DoubleInt)), (1, 16, &ch)])),
            (13, 0, 24, 0, 17)
        );
        assert_eq!(
            dims(&st(&[(1, 0, &b(Logical)), (1, 4, &ch)])),
            (5, 0, 8, 0, 5)
        );
        // Members of one type: an hindexed, not padded; zero-length members still differ.
        assert_eq!(dims(&st(&[(1, 0, &int), (1, 1, &int)])), (8, 0, 5, 0, 5));
        assert_eq!(
            dims(&st(&[(1, 0, &int), (1, 1, &b(Int32))])),
            (8, 0, 5, 0, 5)
        );
        assert_eq!(
            dims(&st(&[(1, 0, &int), (1, 1, &int), (0, 8, &ch)])),
            (8, 0, 8, 0, 5)
        );
        assert_eq!(dims(&st(&[(1, 0, &ch), (0, 8, &dbl)])), (1, 0, 1, 0, 1));
        let r = Datatype::resized(&int, 0, 5).unwrap();
        assert_eq!(dims(&st(&[(1, 0, &r)])), (4, 0, 5, 0, 4));
        assert_eq!(dims(&st(&[(1, 0, &r), (1, 5, &r)])), (8, 0, 10, 0, 9));
        assert_eq!(dims(&st(&[(1, 0, &int), (1, 5, &r)])), (8, 0, 12, 0, 9));
        assert_eq!(dims(&st(&[(1, 0, &r), (1, 8, &ch)])), (5, 0, 12, 0, 9));
        let hv = Datatype::hvector(2, 1, 5, &int).unwrap();
        assert_eq!(dims(&st(&[(1, 0, &hv)])), (8, 0, 9, 0, 9));
        assert_eq!(dims(&st(&[(1, 0, &hv), (1, 9, &ch)])), (9, 0, 12, 0, 10));
        // Derived members carry their alignment.
        let v = Datatype::vector(2, 1, 2, &int).unwrap();
        assert_eq!(dims(&st(&[(1, 0, &v), (1, 12, &ch)])), (9, 0, 16, 0, 13));
        let ic = st(&[(1, 0, &int), (1, 4, &ch)]);
        assert_eq!(
            dims(&Datatype::contiguous(2, &ic).unwrap()),
            (10, 0, 16, 0, 13)
        );
        assert_eq!(dims(&st(&[(1, 0, &ic), (1, 8, &ch)])), (6, 0, 12, 0, 9));
    }

    #[test]
    fn subarray_and_resized() {
        let int = b(Int);
        let (sizes, subs, starts) = ([4, 5, 6], [2, 3, 2], [1, 1, 3]);
        let c = Datatype::subarray(&sizes, &subs, &starts, Order::C, &int).unwrap();
        assert_eq!(dims(&c), (48, 0, 480, 156, 176));
        let f = Datatype::subarray(&sizes, &subs, &starts, Order::Fortran, &int).unwrap();
        assert_eq!(dims(&f), (48, 0, 480, 260, 120));
        let z = Datatype::subarray(&[4, 5], &[2, 0], &[1, 1], Order::C, &int).unwrap();
        assert_eq!(dims(&z), (0, 0, 80, 0, 0));
        let r = Datatype::resized(&int, 2, 3).unwrap();
        let s = Datatype::subarray(&[4], &[2], &[1], Order::C, &r).unwrap();
        assert_eq!(dims(&s), (8, 0, 12, 3, 7));
        assert_eq!(
            Datatype::subarray(&[4, 4], &[1, 2], &[0, 3], Order::C, &int).unwrap_err(),
            TypeError::Arg("subarray: start 3 + subsize 2 exceeds size 4 in dimension 1".into())
        );
        assert_eq!(
            dims(&Datatype::resized(&int, -4, 16).unwrap()),
            (4, -4, 16, 0, 4)
        );
        let v = Datatype::vector(2, 1, 3, &int).unwrap();
        assert_eq!(
            dims(&Datatype::resized(&v, 4, 8).unwrap()),
            (8, 4, 8, 0, 16)
        );
    }

    /// Packs `count` elements from a buffer of distinct bytes, checks the bytes against the
    /// type map, and unpacks them into a zeroed buffer: type-map bytes come back, others stay 0.
    fn round_trip(t: &Datatype, count: usize, origin: usize, len: usize) {
        let src: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
        let mut packed = Vec::new();
        // SAFETY: the tests place `origin` so that the type map of `count` elements lies in `src`.
        unsafe { t.pack(count, src.as_ptr().add(origin), &mut packed) };
        assert_eq!(packed.len(), t.size() * count);
        let mut expect = Vec::new();
        let mut covered = vec![false; len];
        for i in 0..count {
            for (off, bt) in t.type_map() {
                let at = origin as isize + i as isize * t.extent() + off;
                let (v, idx) = match bt.pair() {
                    Some((v, i)) => (v.size(), Some((bt.index_offset(), i.size()))),
                    None => (bt.size(), None),
                };
                let mut parts = vec![(at, v)];
                parts.extend(idx.map(|(o, n)| (at + o as isize, n)));
                for (p, n) in parts {
                    for k in 0..n {
                        expect.push(src[p as usize + k]);
                        covered[p as usize + k] = true;
                    }
                }
            }
        }
        assert_eq!(packed, expect);
        let mut dst = vec![0u8; len];
        // SAFETY: as for pack; `packed` is a separate Vec.
        let n = unsafe { t.unpack(count, &packed, dst.as_mut_ptr().add(origin)) };
        assert_eq!(n, packed.len());
        for i in 0..len {
            assert_eq!(dst[i], if covered[i] { src[i] } else { 0 }, "byte {i}");
        }
    }

    #[test]
    fn pack_unpack_round_trips() {
        let int = b(Int);
        round_trip(&Datatype::vector(3, 2, -4, &int).unwrap(), 2, 40, 120);
        round_trip(
            &Datatype::indexed(&[2, 0, 3], &[5, 100, -2], &int).unwrap(),
            2,
            8,
            120,
        );
        let s = st(&[
            (1, 0, &b(Char)),
            (2, 4, &int),
            (1, 16, &b(Double)),
            (1, 32, &b(ShortInt)),
        ]);
        assert_eq!(s.size(), 1 + 8 + 8 + 6);
        round_trip(&s, 3, 0, 3 * s.extent() as usize);
        for order in [Order::C, Order::Fortran] {
            let t = Datatype::subarray(&[4, 5, 6], &[2, 3, 2], &[1, 1, 3], order, &int).unwrap();
            round_trip(&t, 2, 0, 960);
        }
        let r = Datatype::resized(&Datatype::vector(2, 1, 3, &int).unwrap(), -4, 24).unwrap();
        round_trip(&r, 3, 4, 80);
        round_trip(&Datatype::contiguous(5, &int).unwrap(), 3, 0, 60);
    }

    #[test]
    fn short_unpack_writes_what_arrived() {
        let t = Datatype::vector(3, 1, 2, &b(Int)).unwrap();
        let mut dst = [0u8; 20];
        let data = [7u8; 6];
        // SAFETY: one element spans 20 bytes (true extent), the size of `dst`.
        let n = unsafe { t.unpack(1, &data, dst.as_mut_ptr()) };
        assert_eq!(n, 6);
        assert_eq!(
            dst,
            [7, 7, 7, 7, 0, 0, 0, 0, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn elements_of_int_double_struct() {
        let s = st(&[(1, 0, &b(Int)), (1, 8, &b(Double))]);
        // MPICH rounds partial elements down; this implementation says MPI_UNDEFINED.
        let want = [
            (0, Some(0)),
            (2, None),
            (4, Some(1)),
            (6, None),
            (12, Some(2)),
            (16, Some(3)),
            (20, None),
            (24, Some(4)),
            (36, Some(6)),
        ];
        for (bytes, e) in want {
            assert_eq!(s.elements(bytes), e, "{bytes} bytes");
        }
        let di = b(DoubleInt);
        assert_eq!(di.elements(8), Some(1));
        assert_eq!(di.elements(12), Some(2));
        assert_eq!(di.elements(4), None);
        let z = Datatype::contiguous(0, &b(Int)).unwrap();
        assert_eq!((z.elements(0), z.elements(4)), (Some(0), None));
        // Nested repetitions: 1000 copies of the struct, inside a vector.
        let big = Datatype::contiguous(1000, &s).unwrap();
        let v = Datatype::vector(3, 2, 5, &big).unwrap();
        assert_eq!(v.elements(v.size()), Some(2 * 6000));
        assert_eq!(v.elements(v.size() + 4), Some(12001));
        assert_eq!(v.elements(v.size() + 5), None);
    }

    #[test]
    fn contiguous_runs() {
        let int = b(Int);
        assert_eq!(int.contiguous_run(10), Some((0, 40)));
        let c = Datatype::contiguous(4, &int).unwrap();
        assert_eq!(c.contiguous_run(3), Some((0, 48)));
        let v = Datatype::vector(2, 1, 2, &int).unwrap();
        assert_eq!(v.contiguous_run(1), None);
        let dense = Datatype::vector(3, 2, 2, &int).unwrap();
        assert_eq!(dense.contiguous_run(2), Some((0, 48)));
        let shifted = Datatype::hindexed(&[2], &[8], &int).unwrap();
        assert_eq!(shifted.contiguous_run(1), Some((8, 8)));
        assert_eq!(shifted.contiguous_run(2), Some((8, 16)));
        assert_eq!(b(DoubleInt).contiguous_run(1), Some((0, 12)));
        assert_eq!(b(DoubleInt).contiguous_run(2), None);
        assert_eq!(b(ShortInt).contiguous_run(1), None);
    }

    #[test]
    fn homogeneous_types() {
        let int = b(Int);
        assert_eq!(
            Datatype::vector(3, 1, 2, &int).unwrap().homogeneous(),
            Some(Int)
        );
        assert_eq!(st(&[(1, 0, &int), (1, 8, &b(Double))]).homogeneous(), None);
        assert_eq!(
            Datatype::contiguous(2, &b(DoubleInt))
                .unwrap()
                .homogeneous(),
            Some(DoubleInt)
        );
        assert_eq!(Datatype::contiguous(0, &int).unwrap().homogeneous(), None);
    }

    #[test]
    fn large_counts_stay_compact() {
        let int = b(Int);
        let v = Datatype::vector(2, 1, 2, &int).unwrap();
        let big = Datatype::contiguous(1 << 20, &v).unwrap();
        // The second int of one element touches the first of the next: merged.
        assert_eq!(big.inner.runs.len(), (1 << 20) + 1);
        assert_eq!(big.inner.sig.items.len(), 1);
        let huge =
            Datatype::contiguous(1 << 40, &Datatype::contiguous(1 << 10, &int).unwrap()).unwrap();
        assert_eq!(huge.inner.runs.len(), 1);
        assert_eq!(huge.size(), 4 << 50);
        let dense = Datatype::vector(1 << 30, 1, 1, &int).unwrap();
        assert_eq!(dense.inner.runs.len(), 1);
        let hetero = st(&[(1, 0, &int), (1, 4, &b(Float))]);
        let many = Datatype::contiguous(1 << 20, &hetero).unwrap();
        assert_eq!((many.inner.runs.len(), many.inner.sig.items.len()), (1, 1));
    }

    #[test]
    fn overflow_is_an_error() {
        let int = b(Int);
        assert!(matches!(
            Datatype::contiguous(usize::MAX, &int),
            Err(TypeError::Count(_))
        ));
        assert!(matches!(
            Datatype::vector(2, 1, isize::MAX, &int),
            Err(TypeError::Count(_))
        ));
        assert!(matches!(
            Datatype::hindexed(&[1], &[isize::MAX], &int),
            Err(TypeError::Count(_))
        ));
        assert!(matches!(
            Datatype::resized(&int, isize::MAX, 1),
            Err(TypeError::Count(_))
        ));
        let half = Datatype::contiguous(1 << 61, &b(Char)).unwrap();
        assert!(matches!(
            Datatype::contiguous(8, &half),
            Err(TypeError::Count(_))
        ));
        assert!(Datatype::subarray(&[usize::MAX, 4], &[1, 1], &[0, 0], Order::C, &int).is_err());
    }
}
