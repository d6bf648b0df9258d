//! Datatype calls: the constructors, commit and free, size and extents, Pack and Unpack.

use super::{count, need, out, put, run, slice, Abi};
use crate::datatype::{Datatype, Order, TypeError};
use crate::error::{err, Class, MpiError, MpiResult};
use crate::state::{Mpi, TypeObj};
use std::ffi::{c_char, c_int, c_void};

impl From<TypeError> for MpiError {
    fn from(e: TypeError) -> MpiError {
        let class = match e {
            TypeError::Count(_) => Class::Count,
            TypeError::Arg(_) => Class::Arg,
        };
        MpiError::new(class, e.to_string())
    }
}

/// A datatype argument, committed or not (constructors take uncommitted types).
fn any_type<A: Abi>(m: &Mpi, dt: A::Datatype) -> MpiResult<&Datatype> {
    A::datatype_id(dt)
        .and_then(|id| m.types.get(id))
        .map(|t| &t.t)
        .ok_or_else(|| {
            MpiError::new(
                Class::Type,
                "invalid datatype (null, freed or not a datatype)",
            )
        })
}

fn store<A: Abi>(m: &mut Mpi, t: Datatype, newtype: *mut A::Datatype) -> MpiResult<()> {
    let slot = out(newtype, "new datatype")?;
    let id = m
        .types
        .insert(TypeObj {
            t,
            committed: false,
            name: String::new(),
        })
        .ok_or_else(|| MpiError::new(Class::Intern, "too many datatypes (65536)"))?;
    *slot = A::datatype(id);
    Ok(())
}

fn build<A: Abi>(
    name: &'static str,
    newtype: *mut A::Datatype,
    f: impl FnOnce(&Mpi) -> MpiResult<Datatype>,
) -> c_int {
    run::<A>(name, None, |m| {
        out(newtype, "new datatype")?;
        let t = f(m)?;
        store::<A>(m, t, newtype)
    })
}

fn usizes(p: *const c_int, n: usize, what: &str) -> MpiResult<Vec<usize>> {
    slice(p, n, what)?
        .iter()
        .map(|&x| {
            usize::try_from(x)
                .map_err(|_| MpiError::new(Class::Arg, format!("negative {what} {x}")))
        })
        .collect()
}

fn isizes(p: *const c_int, n: usize, what: &str) -> MpiResult<Vec<isize>> {
    Ok(slice(p, n, what)?.iter().map(|&x| x as isize).collect())
}

/// MPI_Type_contiguous.
pub fn type_contiguous<A: Abi>(n: c_int, old: A::Datatype, newtype: *mut A::Datatype) -> c_int {
    build::<A>("MPI_Type_contiguous", newtype, |m| {
        Ok(Datatype::contiguous(count(n)?, any_type::<A>(m, old)?)?)
    })
}

/// MPI_Type_vector.
pub fn type_vector<A: Abi>(
    n: c_int,
    blocklen: c_int,
    stride: c_int,
    old: A::Datatype,
    newtype: *mut A::Datatype,
) -> c_int {
    build::<A>("MPI_Type_vector", newtype, |m| {
        Ok(Datatype::vector(
            count(n)?,
            count(blocklen)?,
            stride as isize,
            any_type::<A>(m, old)?,
        )?)
    })
}

/// MPI_Type_create_hvector.
pub fn type_create_hvector<A: Abi>(
    n: c_int,
    blocklen: c_int,
    stride: isize,
    old: A::Datatype,
    newtype: *mut A::Datatype,
) -> c_int {
    build::<A>("MPI_Type_create_hvector", newtype, |m| {
        Ok(Datatype::hvector(
            count(n)?,
            count(blocklen)?,
            stride,
            any_type::<A>(m, old)?,
        )?)
    })
}

/// MPI_Type_indexed.
pub fn type_indexed<A: Abi>(
    n: c_int,
    blocklens: *const c_int,
    displs: *const c_int,
    old: A::Datatype,
    newtype: *mut A::Datatype,
) -> c_int {
    build::<A>("MPI_Type_indexed", newtype, |m| {
        let n = count(n)?;
        Ok(Datatype::indexed(
            &usizes(blocklens, n, "block length")?,
            &isizes(displs, n, "displacement")?,
            any_type::<A>(m, old)?,
        )?)
    })
}

/// MPI_Type_create_hindexed.
pub fn type_create_hindexed<A: Abi>(
    n: c_int,
    blocklens: *const c_int,
    displs: *const isize,
    old: A::Datatype,
    newtype: *mut A::Datatype,
) -> c_int {
    build::<A>("MPI_Type_create_hindexed", newtype, |m| {
        let n = count(n)?;
        Ok(Datatype::hindexed(
            &usizes(blocklens, n, "block length")?,
            slice(displs, n, "displacement")?,
            any_type::<A>(m, old)?,
        )?)
    })
}

/// MPI_Type_create_indexed_block.
pub fn type_create_indexed_block<A: Abi>(
    n: c_int,
    blocklen: c_int,
    displs: *const c_int,
    old: A::Datatype,
    newtype: *mut A::Datatype,
) -> c_int {
    build::<A>("MPI_Type_create_indexed_block", newtype, |m| {
        let n = count(n)?;
        Ok(Datatype::indexed_block(
            count(blocklen)?,
            &isizes(displs, n, "displacement")?,
            any_type::<A>(m, old)?,
        )?)
    })
}

/// MPI_Type_create_hindexed_block.
pub fn type_create_hindexed_block<A: Abi>(
    n: c_int,
    blocklen: c_int,
    displs: *const isize,
    old: A::Datatype,
    newtype: *mut A::Datatype,
) -> c_int {
    build::<A>("MPI_Type_create_hindexed_block", newtype, |m| {
        let n = count(n)?;
        Ok(Datatype::hindexed_block(
            count(blocklen)?,
            slice(displs, n, "displacement")?,
            any_type::<A>(m, old)?,
        )?)
    })
}

/// MPI_Type_create_struct.
pub fn type_create_struct<A: Abi>(
    n: c_int,
    blocklens: *const c_int,
    displs: *const isize,
    types: *const A::Datatype,
    newtype: *mut A::Datatype,
) -> c_int {
    build::<A>("MPI_Type_create_struct", newtype, |m| {
        let n = count(n)?;
        let ts = slice(types, n, "datatype")?
            .iter()
            .map(|&t| any_type::<A>(m, t))
            .collect::<MpiResult<Vec<&Datatype>>>()?;
        Ok(Datatype::structure(
            &usizes(blocklens, n, "block length")?,
            slice(displs, n, "displacement")?,
            &ts,
        )?)
    })
}

/// MPI_Type_create_subarray.
pub fn type_create_subarray<A: Abi>(
    ndims: c_int,
    sizes: *const c_int,
    subsizes: *const c_int,
    starts: *const c_int,
    order: c_int,
    old: A::Datatype,
    newtype: *mut A::Datatype,
) -> c_int {
    build::<A>("MPI_Type_create_subarray", newtype, |m| {
        let n = count(ndims)?;
        let order = if order == A::ORDER[0] {
            Order::C
        } else if order == A::ORDER[1] {
            Order::Fortran
        } else {
            return err(
                Class::Arg,
                format!("order {order}: expected MPI_ORDER_C or MPI_ORDER_FORTRAN"),
            );
        };
        Ok(Datatype::subarray(
            &usizes(sizes, n, "size")?,
            &usizes(subsizes, n, "subsize")?,
            &usizes(starts, n, "start")?,
            order,
            any_type::<A>(m, old)?,
        )?)
    })
}

/// MPI_Type_create_resized.
pub fn type_create_resized<A: Abi>(
    old: A::Datatype,
    lb: isize,
    extent: isize,
    newtype: *mut A::Datatype,
) -> c_int {
    build::<A>("MPI_Type_create_resized", newtype, |m| {
        Ok(Datatype::resized(any_type::<A>(m, old)?, lb, extent)?)
    })
}

/// MPI_Type_dup: a committed type's duplicate is committed.
pub fn type_dup<A: Abi>(old: A::Datatype, newtype: *mut A::Datatype) -> c_int {
    run::<A>("MPI_Type_dup", None, |m| {
        let id = need(A::datatype_id(old), Class::Type, "datatype")?;
        let t = m
            .types
            .get(id)
            .ok_or_else(|| MpiError::new(Class::Type, "invalid datatype"))?;
        let (dt, committed) = (t.t.clone(), t.committed);
        store::<A>(m, dt, newtype)?;
        // SAFETY: written just above by store.
        if let Some(n) = A::datatype_id(unsafe { *newtype }).and_then(|n| m.types.get_mut(n)) {
            n.committed = committed;
        }
        Ok(())
    })
}

/// MPI_Type_commit.
pub fn type_commit<A: Abi>(dt: *mut A::Datatype) -> c_int {
    run::<A>("MPI_Type_commit", None, |m| {
        let h = *out(dt, "datatype")?;
        let id = need(A::datatype_id(h), Class::Type, "datatype")?;
        m.types
            .get_mut(id)
            .ok_or_else(|| MpiError::new(Class::Type, "invalid datatype"))?
            .committed = true;
        Ok(())
    })
}

/// MPI_Type_free: predefined types cannot be freed.
pub fn type_free<A: Abi>(dt: *mut A::Datatype) -> c_int {
    run::<A>("MPI_Type_free", None, |m| {
        let h = out(dt, "datatype")?;
        let id = need(A::datatype_id(*h), Class::Type, "datatype")?;
        if m.types.is_predefined(id) {
            return err(Class::Type, "predefined datatypes cannot be freed");
        }
        m.types
            .remove(id)
            .ok_or_else(|| MpiError::new(Class::Type, "invalid datatype (already freed?)"))?;
        *h = A::DATATYPE_NULL;
        Ok(())
    })
}

/// MPI_Type_size.
pub fn type_size<A: Abi>(dt: A::Datatype, size: *mut c_int) -> c_int {
    run::<A>("MPI_Type_size", None, |m| {
        let s = any_type::<A>(m, dt)?.size();
        put(size, c_int::try_from(s).unwrap_or(A::UNDEFINED), "size")
    })
}

/// MPI_Type_get_extent.
pub fn type_get_extent<A: Abi>(dt: A::Datatype, lb: *mut isize, extent: *mut isize) -> c_int {
    run::<A>("MPI_Type_get_extent", None, |m| {
        let t = any_type::<A>(m, dt)?;
        put(lb, t.lb(), "lb")?;
        put(extent, t.extent(), "extent")
    })
}

/// MPI_Type_get_true_extent.
pub fn type_get_true_extent<A: Abi>(dt: A::Datatype, lb: *mut isize, extent: *mut isize) -> c_int {
    run::<A>("MPI_Type_get_true_extent", None, |m| {
        let t = any_type::<A>(m, dt)?;
        put(lb, t.true_lb(), "lb")?;
        put(extent, t.true_extent(), "extent")
    })
}

/// MPI_Type_set_name.
pub fn type_set_name<A: Abi>(dt: A::Datatype, name: *const c_char) -> c_int {
    run::<A>("MPI_Type_set_name", None, |m| {
        if name.is_null() {
            return err(Class::Arg, "NULL name");
        }
        // SAFETY: non-NULL: the program's NUL-terminated string.
        let s = unsafe { std::ffi::CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned();
        let id = need(A::datatype_id(dt), Class::Type, "datatype")?;
        m.types
            .get_mut(id)
            .ok_or_else(|| MpiError::new(Class::Type, "invalid datatype"))?
            .name = s;
        Ok(())
    })
}

/// MPI_Type_get_name (`cap`: the face's MPI_MAX_OBJECT_NAME).
pub fn type_get_name<A: Abi>(dt: A::Datatype, name: *mut c_char, len: *mut c_int) -> c_int {
    let cap = A::MAX_OBJECT_NAME;
    run::<A>("MPI_Type_get_name", None, |m| {
        let id = need(A::datatype_id(dt), Class::Type, "datatype")?;
        let t = m
            .types
            .get(id)
            .ok_or_else(|| MpiError::new(Class::Type, "invalid datatype"))?;
        let s = match (&t.name[..], t.t.named()) {
            ("", Some(b)) => format!("{b:?}"),
            (n, _) => n.to_string(),
        };
        super::env::write_c_string(name, cap, &s, len)
    })
}

/// MPI_Get_address.
pub fn get_address<A: Abi>(loc: *const c_void, addr: *mut isize) -> c_int {
    super::anytime::<A>("MPI_Get_address", || put(addr, loc as isize, "address"))
}

/// MPI_Pack_size: an upper bound of the packed size (the exact size here).
pub fn pack_size<A: Abi>(n: c_int, dt: A::Datatype, _comm: A::Comm, size: *mut c_int) -> c_int {
    run::<A>("MPI_Pack_size", None, |m| {
        let s = m
            .datatype(A::datatype_id(dt))?
            .t
            .size()
            .checked_mul(count(n)?);
        let s = s
            .and_then(|s| c_int::try_from(s).ok())
            .ok_or_else(|| MpiError::new(Class::Count, "packed size over 2 GiB"))?;
        put(size, s, "size")
    })
}

fn position(p: *mut c_int) -> MpiResult<(&'static mut c_int, usize)> {
    let pos = out(p, "position")?;
    let at = usize::try_from(*pos)
        .map_err(|_| MpiError::new(Class::Arg, format!("negative position {}", *pos)))?;
    Ok((pos, at))
}

/// MPI_Pack.
pub fn pack<A: Abi>(
    inbuf: *const c_void,
    n: c_int,
    dt: A::Datatype,
    outbuf: *mut c_void,
    outsize: c_int,
    pos: *mut c_int,
    _comm: A::Comm,
) -> c_int {
    run::<A>("MPI_Pack", None, |m| {
        let t = &m.datatype(A::datatype_id(dt))?.t;
        let n = count(n)?;
        let (pos, at) = position(pos)?;
        let cap = count(outsize)?;
        let mut v = Vec::new();
        // SAFETY: the program passes `n` elements of this type at `inbuf`.
        unsafe { t.pack(n, inbuf as *const u8, &mut v) };
        if at + v.len() > cap {
            return err(
                Class::Truncate,
                format!(
                    "packing {} bytes at position {at} overruns a {cap}-byte buffer",
                    v.len()
                ),
            );
        }
        if !v.is_empty() {
            if outbuf.is_null() {
                return err(Class::Buffer, "NULL output buffer");
            }
            // SAFETY: the output buffer has `cap` bytes; at + len <= cap.
            unsafe {
                std::ptr::copy_nonoverlapping(v.as_ptr(), (outbuf as *mut u8).add(at), v.len())
            };
        }
        *pos = (at + v.len()) as c_int;
        Ok(())
    })
}

/// MPI_Unpack.
pub fn unpack<A: Abi>(
    inbuf: *const c_void,
    insize: c_int,
    pos: *mut c_int,
    outbuf: *mut c_void,
    n: c_int,
    dt: A::Datatype,
    _comm: A::Comm,
) -> c_int {
    run::<A>("MPI_Unpack", None, |m| {
        let t = &m.datatype(A::datatype_id(dt))?.t;
        let n = count(n)?;
        let (pos, at) = position(pos)?;
        let cap = count(insize)?;
        let need = t.size().saturating_mul(n);
        if at + need > cap {
            return err(
                Class::Truncate,
                format!("unpacking {need} bytes at position {at} overruns a {cap}-byte buffer"),
            );
        }
        let data = slice(inbuf as *const u8, cap, "input buffer")?;
        // SAFETY: the program's output buffer holds `n` elements of this type.
        let used = unsafe { t.unpack(n, &data[at..at + need], outbuf as *mut u8) };
        *pos = (at + used) as c_int;
        Ok(())
    })
}

fn bound<A: Abi>(
    name: &'static str,
    dt: A::Datatype,
    v: *mut isize,
    f: fn(&Datatype) -> isize,
) -> c_int {
    run::<A>(name, None, |m| {
        let t = any_type::<A>(m, dt)?;
        put(v, f(t), "result")
    })
}

/// MPI_Type_extent (MPI-1).
pub fn type_extent<A: Abi>(dt: A::Datatype, extent: *mut isize) -> c_int {
    bound::<A>("MPI_Type_extent", dt, extent, Datatype::extent)
}

/// MPI_Type_lb (MPI-1).
pub fn type_lb<A: Abi>(dt: A::Datatype, lb: *mut isize) -> c_int {
    bound::<A>("MPI_Type_lb", dt, lb, Datatype::lb)
}

/// MPI_Type_ub (MPI-1).
pub fn type_ub<A: Abi>(dt: A::Datatype, ub: *mut isize) -> c_int {
    bound::<A>("MPI_Type_ub", dt, ub, |t| t.lb() + t.extent())
}
