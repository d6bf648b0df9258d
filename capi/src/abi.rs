//! The constants and types of `snoo_mpi.h`, as Rust sees them. A test (`header.rs`) checks every
//! one against the header: values, and the layout of [`CStatus`].

use snoo::error::{Error, Result};
use std::ffi::c_int;

/// The error codes (`SNOO_MPI_SUCCESS`, `SNOO_MPI_ERR_*`): the Rust library's table, the only one.
pub use snoo::error::code;

/// `SNOO_MPI_Datatype` values (`SNOO_MPI_CHAR` …).
pub mod datatype {
    /// `char`.
    pub const CHAR: i32 = 1;
    /// Bytes (`unsigned char`).
    pub const BYTE: i32 = 2;
    /// `int`.
    pub const INT: i32 = 3;
    /// `long`.
    pub const LONG: i32 = 4;
    /// `float`.
    pub const FLOAT: i32 = 5;
    /// `double`.
    pub const DOUBLE: i32 = 6;
    /// `unsigned char`.
    pub const UNSIGNED_CHAR: i32 = 7;
    /// `unsigned int`.
    pub const UNSIGNED: i32 = 8;
    /// `unsigned long`.
    pub const UNSIGNED_LONG: i32 = 9;
    /// `short`.
    pub const SHORT: i32 = 10;
    /// `unsigned short`.
    pub const UNSIGNED_SHORT: i32 = 11;
    /// `long long`.
    pub const LONG_LONG: i32 = 12;
    /// `unsigned long long`.
    pub const UNSIGNED_LONG_LONG: i32 = 13;
}

/// The only communicator (`SNOO_MPI_COMM_WORLD`).
pub const COMM_WORLD: c_int = 1;
/// Any sender, on a receive or probe (`SNOO_MPI_ANY_SOURCE`; negative, as in MPI).
pub const ANY_SOURCE: c_int = -1;
/// Any tag, on a receive or probe (`SNOO_MPI_ANY_TAG`; negative, as in MPI).
pub const ANY_TAG: c_int = -1;
/// The handle of no request (`SNOO_MPI_REQUEST_NULL`): what a non-blocking call that completed at
/// once returns, and what a completed request is set to.
pub const REQUEST_NULL: i64 = 0;

/// The size in bytes of one element of `dt`, or [`Error::Datatype`].
pub(crate) fn type_size(dt: c_int) -> Result<usize> {
    use datatype::*;
    Ok(match dt {
        CHAR | BYTE | UNSIGNED_CHAR => 1,
        SHORT | UNSIGNED_SHORT => std::mem::size_of::<std::ffi::c_short>(),
        INT | UNSIGNED | FLOAT => 4,
        LONG | UNSIGNED_LONG => std::mem::size_of::<std::ffi::c_long>(),
        DOUBLE | LONG_LONG | UNSIGNED_LONG_LONG => 8,
        _ => return Err(Error::Datatype(dt.into())),
    })
}

/// `SNOO_MPI_Status` as C sees it.
#[repr(C)]
pub struct CStatus {
    /// `SNOO_MPI_SOURCE`: the sender's rank.
    pub source: c_int,
    /// `SNOO_MPI_TAG`: the message's tag.
    pub tag: c_int,
    /// `SNOO_MPI_ERROR`: the call's return code.
    pub error: c_int,
    /// Bytes received (C programs use `SNOO_MPI_Get_count`).
    pub count_bytes: i64,
}
