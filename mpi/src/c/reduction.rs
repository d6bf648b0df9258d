//! Reductions: how a reduction's data travels (the memory image of the elements, or packed
//! basic elements), how two buffers combine under an operation (predefined or the program's
//! MPI_Op_create function), MPI_Reduce_local and the MPI_Op calls.

use super::{count, need, out, put, run, Abi};
use crate::datatype::Datatype;
use crate::error::{err, Class, MpiError, MpiResult};
use crate::op::{apply, Predefined};
use crate::state::{Mpi, OpObj};
use std::ffi::{c_int, c_void};

/// How a reduction's data is laid out while it travels: the memory image of the elements (named
/// types, user operations), or packed basic elements (derived types with predefined operations).
#[derive(Clone, Copy)]
enum Layout {
    Image { lb: isize, span: usize },
    Packed,
}

/// A reduction's plan: the layout and how two buffers combine.
#[derive(Clone)]
pub struct Plan {
    layout: Layout,
    t: Datatype,
    n: usize,
    op: OpObj,
}

/// The plan of a reduction of `n` elements of `dt` under `op`.
pub fn plan<A: Abi>(m: &Mpi, n: usize, dt: A::Datatype, op: A::Op) -> MpiResult<Plan> {
    let t = m.datatype(A::datatype_id(dt))?.t.clone();
    let op = *A::op_id(op).and_then(|o| m.ops.get(o)).ok_or_else(|| {
        MpiError::new(
            Class::Op,
            "invalid operation (null, freed or not an MPI_Op)",
        )
    })?;
    let image = || {
        let span = if n == 0 {
            0
        } else {
            let ext = usize::try_from(t.extent()).unwrap_or(0);
            ext.checked_mul(n - 1)
                .and_then(|s| s.checked_add(usize::try_from(t.true_extent()).unwrap_or(0)))
                .filter(|&s| s <= snoo::MAX_MESSAGE)
                .ok_or_else(|| MpiError::new(Class::Count, "reduction over 2 GiB"))?
        };
        Ok::<_, MpiError>(Layout::Image {
            lb: t.true_lb(),
            span,
        })
    };
    let layout = match (op, t.named()) {
        (OpObj::Predef(p), Some(b)) => {
            if !crate::op::defined(p, b) {
                return err(
                    Class::Op,
                    format!("{} is not defined for this datatype", p.name()),
                );
            }
            image()?
        }
        (OpObj::Predef(p), None) => match t.homogeneous() {
            Some(b) if b.pair().is_none() && crate::op::defined(p, b) => Layout::Packed,
            _ => {
                return err(
                    Class::Op,
                    format!(
                    "{} on a derived datatype needs one basic type throughout (not a pair type)",
                    p.name()
                ),
                )
            }
        },
        (OpObj::User { .. }, _) => image()?,
    };
    Ok(Plan { layout, t, n, op })
}

impl Plan {
    /// Bytes that `k` elements take as they travel.
    fn bytes_of(&self, k: usize) -> usize {
        match self.layout {
            Layout::Image { .. } if k == 0 => 0,
            Layout::Image { .. } => (self.t.extent() as usize)
                .saturating_mul(k - 1)
                .saturating_add(self.t.true_extent() as usize),
            Layout::Packed => self.t.size().saturating_mul(k),
        }
    }

    /// Bytes of the whole reduction's data as it travels.
    pub fn bytes(&self) -> usize {
        self.bytes_of(self.n)
    }

    /// Where elements `start..start + k` lie in the travelling data: (offset, length).
    pub fn part(&self, start: usize, k: usize) -> (usize, usize) {
        let unit = match self.layout {
            Layout::Image { .. } => self.t.extent() as usize,
            Layout::Packed => self.t.size(),
        };
        (unit.saturating_mul(start), self.bytes_of(k))
    }

    /// The same reduction over `k` elements (a part of this one, for writing it back).
    pub fn with_count(&self, k: usize) -> Plan {
        let layout = match self.layout {
            Layout::Image { lb, .. } => Layout::Image {
                lb,
                span: self.bytes_of(k),
            },
            Layout::Packed => Layout::Packed,
        };
        Plan {
            layout,
            n: k,
            ..self.clone()
        }
    }

    /// The program's elements at `buf` as one run of bytes `(start, len)`, when they travel as
    /// their own memory image without gaps: reductions then read and write them in place.
    pub fn direct(&self, buf: *const c_void) -> Option<(*mut u8, usize)> {
        match self.layout {
            Layout::Image { lb, span } if self.t.contiguous_run(self.n) == Some((lb, span)) => {
                Some(((buf as *mut u8).wrapping_offset(lb), span))
            }
            _ => None,
        }
    }

    /// The data at `buf` as it travels.
    pub fn gather(&self, buf: *const c_void) -> Vec<u8> {
        match self.layout {
            Layout::Image { lb, span } => {
                if span == 0 {
                    return Vec::new();
                }
                // SAFETY: the program's buffer holds `n` elements: `span` bytes from `lb`.
                unsafe { std::slice::from_raw_parts((buf as *const u8).offset(lb), span) }.to_vec()
            }
            Layout::Packed => {
                let mut v = Vec::new();
                // SAFETY: the program's buffer holds `n` elements of this type.
                unsafe { self.t.pack(self.n, buf as *const u8, &mut v) };
                v
            }
        }
    }

    /// Writes travelled data back to the program's buffer at `buf`: only the bytes of the
    /// type map (the gaps of a derived type's image are the program's, left as they are).
    pub fn scatter(&self, data: &[u8], buf: *mut c_void) {
        match self.layout {
            Layout::Image { lb, span } => {
                if span == 0 {
                    return;
                }
                if self.t.contiguous_run(self.n).is_some() {
                    // SAFETY: as in `gather`, for the receive buffer; data has `span` bytes.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            data.as_ptr(),
                            (buf as *mut u8).offset(lb),
                            span,
                        )
                    };
                    return;
                }
                let mut packed = Vec::with_capacity(self.t.size().saturating_mul(self.n));
                // SAFETY: `data` is the image of `n` elements whose element 0 lies `lb` bytes
                // before its start, so every type-map byte read lies inside it; the program's
                // buffer holds `n` elements of this type.
                unsafe {
                    self.t
                        .pack(self.n, data.as_ptr().wrapping_offset(-lb), &mut packed);
                    self.t.unpack(self.n, &packed, buf as *mut u8);
                }
            }
            Layout::Packed => {
                // SAFETY: the program's buffer holds `n` elements of this type.
                unsafe { self.t.unpack(self.n, data, buf as *mut u8) };
            }
        }
    }

    /// Bytes from one element's start to the next's as the data travels, if every run of
    /// whole elements of the travelling data is itself such data (a collective may then split a
    /// reduction between ranks at element boundaries): `None` for types whose data overlaps the
    /// next element's or has no size.
    pub fn unit(&self) -> Option<usize> {
        match self.layout {
            Layout::Image { .. } => {
                let (ext, te) = (self.t.extent(), self.t.true_extent());
                (ext > 0 && te > 0 && te <= ext).then_some(ext as usize)
            }
            Layout::Packed => Some(self.t.size()).filter(|&s| s > 0),
        }
    }

    /// The [`snoo::collective::Elements`] of the travelling data, if it may be split at
    /// element boundaries (see [`Plan::unit`]).
    pub fn elements(&self) -> Option<snoo::collective::Elements> {
        Some(snoo::collective::Elements {
            unit: self.unit()?,
            commutative: self.op.commutes(),
        })
    }

    /// Elements in `len` bytes of travelling data: all of them for the whole data, else a run
    /// of whole elements cut at [`Plan::unit`] boundaries (the last one possibly without its
    /// trailing gap).
    fn elements_in(&self, len: usize) -> usize {
        match self.unit() {
            Some(u) if len != self.bytes() => len.div_ceil(u),
            _ => self.n,
        }
    }

    /// `inout = input ∘ inout`, for the whole data or a run of whole elements of it (see
    /// [`Plan::unit`]).
    pub fn combine<A: Abi>(
        &self,
        dt: A::Datatype,
        input: &[u8],
        inout: &mut [u8],
    ) -> snoo::Result<()> {
        let bad = |e: String| snoo::Error::Arg(e);
        match (self.op, &self.layout) {
            (OpObj::Predef(p), Layout::Image { .. }) => {
                let b = self
                    .t
                    .named()
                    .expect("image layout with a predefined op is for named types");
                apply(p, b, self.elements_in(input.len()), inout, input)
                    .map_err(|e| bad(e.to_string()))
            }
            (OpObj::Predef(p), Layout::Packed) => {
                let b = self.t.homogeneous().expect("checked in plan");
                let elems = input.len() / b.size().max(1);
                apply(p, b, elems, inout, input).map_err(|e| bad(e.to_string()))
            }
            (OpObj::User { f, .. }, Layout::Image { lb, .. }) => {
                let len = c_int::try_from(self.elements_in(input.len()))
                    .map_err(|_| bad("count over INT_MAX".into()))?;
                let mut tmp = input.to_vec();
                // The function sees buffers as the program laid them out: element 0 at `-lb`.
                let inp = tmp.as_mut_ptr().wrapping_offset(-lb) as *mut c_void;
                let io = inout.as_mut_ptr().wrapping_offset(-lb) as *mut c_void;
                // SAFETY: `f` is the program's MPI_User_function; both buffers hold `n` elements
                // of `dt` laid out from their element 0.
                unsafe { A::call_op(f, inp, io, len, dt) };
                Ok(())
            }
            (OpObj::User { .. }, Layout::Packed) => {
                Err(bad("user operation with packed data".into()))
            }
        }
    }
}

/// MPI_Reduce_local: `inout = in ∘ inout`.
pub fn reduce_local<A: Abi>(
    inbuf: *const c_void,
    inout: *mut c_void,
    n: c_int,
    dt: A::Datatype,
    op: A::Op,
) -> c_int {
    run::<A>("MPI_Reduce_local", None, |m| {
        let n = count(n)?;
        let p = plan::<A>(m, n, dt, op)?;
        let a = p.gather(inbuf);
        let mut b = p.gather(inout);
        p.combine::<A>(dt, &a, &mut b)?;
        p.scatter(&b, inout);
        Ok(())
    })
}

/// MPI_Op_create.
pub fn op_create<A: Abi>(f: usize, commute: c_int, op: *mut A::Op) -> c_int {
    run::<A>("MPI_Op_create", None, |m| {
        if f == 0 {
            return err(Class::Arg, "NULL user function");
        }
        let slot = out(op, "operation")?;
        let id = m
            .ops
            .insert(OpObj::User {
                f,
                commute: commute != 0,
            })
            .ok_or_else(|| MpiError::new(Class::Intern, "too many operations"))?;
        *slot = A::op(id);
        Ok(())
    })
}

/// MPI_Op_free.
pub fn op_free<A: Abi>(op: *mut A::Op) -> c_int {
    run::<A>("MPI_Op_free", None, |m| {
        let slot = out(op, "operation")?;
        let id = need(A::op_id(*slot), Class::Op, "operation")?;
        if m.ops.is_predefined(id) {
            return err(Class::Op, "predefined operations cannot be freed");
        }
        m.ops
            .remove(id)
            .ok_or_else(|| MpiError::new(Class::Op, "invalid operation (already freed?)"))?;
        *slot = A::OP_NULL;
        Ok(())
    })
}

/// MPI_Op_commutative.
pub fn op_commutative<A: Abi>(op: A::Op, commute: *mut c_int) -> c_int {
    run::<A>("MPI_Op_commutative", None, |m| {
        let o = A::op_id(op)
            .and_then(|o| m.ops.get(o))
            .ok_or_else(|| MpiError::new(Class::Op, "invalid operation"))?;
        put(commute, c_int::from(o.commutes()), "commute")
    })
}

/// The predefined operations in [`Predefined::ALL`] order, for the faces' tables.
pub const PREDEFINED: [Predefined; 14] = Predefined::ALL;
