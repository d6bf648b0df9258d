//! Arguments from C, checked and converted to the Rust library's terms, and statuses back to C.

use crate::abi::{type_size, CStatus, ANY_SOURCE, ANY_TAG, COMM_WORLD};
use snoo::error::{Error, Result};
use snoo::Status;
use std::ffi::c_int;

pub(crate) fn check_comm(comm: c_int) -> Result<()> {
    if comm != COMM_WORLD {
        return Err(Error::Comm(comm.into()));
    }
    Ok(())
}

/// Validates (buffer, count, datatype) and returns the pointer to use and the byte length. An empty
/// buffer may be NULL in C; it becomes a dangling, never-dereferenced pointer here.
pub(crate) fn buffer(buf: *const u8, count: c_int, dt: c_int) -> Result<(*const u8, usize)> {
    let size = type_size(dt)?;
    let count = usize::try_from(count).map_err(|_| Error::Count(count.into()))?;
    let bytes = count
        .checked_mul(size)
        .filter(|&b| b <= 1 << 31)
        .ok_or(Error::Count(count as i64))?;
    if buf.is_null() && bytes > 0 {
        return Err(Error::Buffer);
    }
    let ptr = if bytes == 0 {
        std::ptr::NonNull::<u8>::dangling().as_ptr() as *const u8
    } else {
        buf
    };
    Ok((ptr, bytes))
}

/// [`buffer`] for a receive buffer.
pub(crate) fn buffer_mut(buf: *mut u8, count: c_int, dt: c_int) -> Result<(*mut u8, usize)> {
    buffer(buf, count, dt).map(|(p, n)| (p as *mut u8, n))
}

/// A destination rank from C.
pub(crate) fn dest_arg(dest: c_int, size: u32) -> Result<u32> {
    u32::try_from(dest).map_err(|_| Error::Rank {
        rank: dest.into(),
        size,
    })
}

/// A source rank from C (`SNOO_MPI_ANY_SOURCE` allowed); the World checks the upper bound.
pub(crate) fn source_arg(s: c_int, size: u32) -> Result<Option<u32>> {
    match s {
        ANY_SOURCE => Ok(None),
        s if s >= 0 => Ok(Some(s as u32)),
        s => Err(Error::Rank {
            rank: s.into(),
            size,
        }),
    }
}

pub(crate) fn tag_arg(t: c_int) -> Result<Option<i32>> {
    match t {
        ANY_TAG => Ok(None),
        t if t >= 0 => Ok(Some(t)),
        t => Err(Error::Tag(t.into())),
    }
}

/// Fills a C status (if not NULL): what a receive got, or MPI's empty status (ANY_SOURCE,
/// ANY_TAG, 0 bytes) when there is no message to describe (a send, REQUEST_NULL, an error).
/// Writes `value` to the caller's `out`, which must not be NULL (`what` names it in the error).
pub(crate) fn write_out<T>(out: *mut T, value: T, what: &str) -> Result<()> {
    if out.is_null() {
        return Err(Error::Arg(format!("NULL {what}")));
    }
    // SAFETY: non-NULL, and the C caller passes a pointer to a writable `T` (the header's type).
    unsafe { out.write(value) };
    Ok(())
}

pub(crate) fn write_status(out: *mut CStatus, st: Option<Status>, err: c_int) {
    if out.is_null() {
        return;
    }
    let s = match st {
        Some(s) => CStatus {
            source: s.source as c_int,
            tag: s.tag,
            error: err,
            count_bytes: s.bytes as i64,
        },
        None => CStatus {
            source: ANY_SOURCE,
            tag: ANY_TAG,
            error: err,
            count_bytes: 0,
        },
    };
    // SAFETY: the caller passed a pointer to a SNOO_MPI_Status (or NULL, handled above).
    unsafe { out.write(s) };
}
