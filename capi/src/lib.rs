//! The C ABI of SNOO_MPI: `include/snoo_mpi.h`, built as `libsnoo_mpi.so` and `libsnoo_mpi.a`
//! (with `snoo-mpi.pc` beside them, from `build.rs`) over the Rust library `snoo-mpi`.
//!
//! Every entry point validates its arguments, returns an integer code (`SNOO_MPI_SUCCESS` = 0), and
//! catches panics so that none crosses into C. The process-wide job lives behind a mutex. The full
//! message of the last error is kept per thread for `SNOO_MPI_Error_detail`; a failed
//! `SNOO_MPI_Init` also prints it to stderr unless `SNOO_QUIET` is set.
//!
//! - [`abi`]: the header's constants and `SNOO_MPI_Status`; the error codes are the Rust library's
//!   ([`snoo::error::code`]), the only table of them. A test checks the header against these,
//!   both ways, and the status layout with the C compiler.
//! - [`calls`]: the `SNOO_MPI_*` functions.
//! - `state`: the job of the process, and how results and panics become codes.
//! - `args`: checking and converting C arguments.

#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod abi;
mod args;
pub mod calls;
mod state;

#[cfg(test)]
mod header;
