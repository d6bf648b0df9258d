//! Collective calls (Barrier, Bcast, Reduce, Allreduce, Reduce_local) over the communicator's
//! collective operations, and reduction operations (predefined and MPI_Op_create's).

use super::{count, need, out, put, run, Abi};
use crate::datatype::Datatype;
use crate::error::{err, Class, MpiError, MpiResult};
use crate::op::{apply, Predefined};
use crate::state::{Mpi, OpObj};
use std::ffi::{c_int, c_void};

/// MPI_Barrier.
pub fn barrier<A: Abi>(comm: A::Comm) -> c_int {
    run::<A>("MPI_Barrier", Some(comm), |m| {
        let c = m.comm(A::comm_id(comm))?;
        m.world.attach(&c.id).barrier()?;
        Ok(())
    })
}

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

/// MPI_Bcast.
pub fn bcast<A: Abi>(
    buf: *mut c_void,
    n: c_int,
    dt: A::Datatype,
    root: c_int,
    comm: A::Comm,
) -> c_int {
    run::<A>("MPI_Bcast", Some(comm), |m| {
        let c = m.comm(A::comm_id(comm))?;
        let root = root_of(root, c.id.size())?;
        let n = count(n)?;
        let t = &m.datatype(A::datatype_id(dt))?.t;
        let comm = m.world.attach(&c.id);
        match t.contiguous_run(n) {
            Some((_, 0)) => comm.bcast_bytes(&mut [], root)?,
            Some((off, len)) => {
                if buf.is_null() && t.named().is_some() {
                    return err(Class::Buffer, format!("NULL buffer with count {n}"));
                }
                // SAFETY: the program's buffer holds `n` elements: `len` bytes from `off`.
                let b =
                    unsafe { std::slice::from_raw_parts_mut((buf as *mut u8).offset(off), len) };
                comm.bcast_bytes(b, root)?;
            }
            None => {
                let mut v = Vec::new();
                if comm.rank() == root {
                    // SAFETY: the root's buffer holds `n` elements of this type.
                    unsafe { t.pack(n, buf as *const u8, &mut v) };
                } else {
                    v.resize(t.size().saturating_mul(n), 0);
                }
                comm.bcast_bytes(&mut v, root)?;
                if comm.rank() != root {
                    // SAFETY: this rank's buffer holds `n` elements of this type.
                    unsafe { t.unpack(n, &v, buf as *mut u8) };
                }
            }
        }
        Ok(())
    })
}

/// How a reduction's data is laid out while it travels: the memory image of the elements (named
/// types, user operations), or packed basic elements (derived types with predefined operations).
enum Layout {
    Image { lb: isize, span: usize },
    Packed,
}

/// A reduction's plan: the layout and how two buffers combine.
struct Plan<'a> {
    layout: Layout,
    t: &'a Datatype,
    n: usize,
    op: OpObj,
}

fn plan<'a, A: Abi>(m: &'a Mpi, n: usize, dt: A::Datatype, op: A::Op) -> MpiResult<Plan<'a>> {
    let t = &m.datatype(A::datatype_id(dt))?.t;
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

impl Plan<'_> {
    /// The data at `buf` as it travels.
    fn gather(&self, buf: *const c_void) -> Vec<u8> {
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

    /// Writes travelled data back to the program's buffer at `buf`.
    fn scatter(&self, data: &[u8], buf: *mut c_void) {
        match self.layout {
            Layout::Image { lb, span } => {
                if span == 0 {
                    return;
                }
                // SAFETY: as in `gather`, for the receive buffer; data has `span` bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(data.as_ptr(), (buf as *mut u8).offset(lb), span)
                };
            }
            Layout::Packed => {
                // SAFETY: the program's buffer holds `n` elements of this type.
                unsafe { self.t.unpack(self.n, data, buf as *mut u8) };
            }
        }
    }

    /// `inout = input ∘ inout`.
    fn combine<A: Abi>(&self, dt: A::Datatype, input: &[u8], inout: &mut [u8]) -> snoo::Result<()> {
        let bad = |e: String| snoo::Error::Arg(e);
        match (self.op, &self.layout) {
            (OpObj::Predef(p), Layout::Image { .. }) => {
                let b = self
                    .t
                    .named()
                    .expect("image layout with a predefined op is for named types");
                apply(p, b, self.n, inout, input).map_err(|e| bad(e.to_string()))
            }
            (OpObj::Predef(p), Layout::Packed) => {
                let b = self.t.homogeneous().expect("checked in plan");
                let elems = input.len() / b.size().max(1);
                apply(p, b, elems, inout, input).map_err(|e| bad(e.to_string()))
            }
            (OpObj::User { f, .. }, Layout::Image { lb, .. }) => {
                let len = c_int::try_from(self.n).map_err(|_| bad("count over INT_MAX".into()))?;
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

/// MPI_Reduce.
pub fn reduce<A: Abi>(
    sbuf: *const c_void,
    rbuf: *mut c_void,
    n: c_int,
    dt: A::Datatype,
    op: A::Op,
    root: c_int,
    comm: A::Comm,
) -> c_int {
    run::<A>("MPI_Reduce", Some(comm), |m| {
        let c = m.comm(A::comm_id(comm))?;
        let root = root_of(root, c.id.size())?;
        let n = count(n)?;
        let p = plan::<A>(m, n, dt, op)?;
        let comm = m.world.attach(&c.id);
        let me = comm.rank();
        let in_place = sbuf as usize == A::IN_PLACE;
        if in_place && me != root {
            return err(
                Class::Buffer,
                "MPI_IN_PLACE as the send buffer of a rank other than the root",
            );
        }
        let data = p.gather(if in_place {
            rbuf as *const c_void
        } else {
            sbuf
        });
        let mut result = if me == root {
            vec![0u8; data.len()]
        } else {
            Vec::new()
        };
        comm.reduce_bytes(&data, &mut result, root, &mut |i, io| {
            p.combine::<A>(dt, i, io)
        })?;
        if me == root {
            p.scatter(&result, rbuf);
        }
        Ok(())
    })
}

/// MPI_Allreduce.
pub fn allreduce<A: Abi>(
    sbuf: *const c_void,
    rbuf: *mut c_void,
    n: c_int,
    dt: A::Datatype,
    op: A::Op,
    comm: A::Comm,
) -> c_int {
    run::<A>("MPI_Allreduce", Some(comm), |m| {
        let c = m.comm(A::comm_id(comm))?;
        let n = count(n)?;
        let p = plan::<A>(m, n, dt, op)?;
        let comm = m.world.attach(&c.id);
        let in_place = sbuf as usize == A::IN_PLACE;
        let data = p.gather(if in_place {
            rbuf as *const c_void
        } else {
            sbuf
        });
        let mut result = vec![0u8; data.len()];
        comm.allreduce_bytes(&data, &mut result, &mut |i, io| p.combine::<A>(dt, i, io))?;
        p.scatter(&result, rbuf);
        Ok(())
    })
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
        let c = match o {
            OpObj::Predef(_) => true,
            OpObj::User { commute, .. } => *commute,
        };
        put(commute, c_int::from(c), "commute")
    })
}

/// The predefined operations in [`Predefined::ALL`] order, for the faces' tables.
pub const PREDEFINED: [Predefined; 14] = Predefined::ALL;
