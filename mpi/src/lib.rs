//! MPI over SNOO: the one implementation of the MPI standard's semantics (communicators and
//! groups, datatypes, requests, error handlers, collectives) over the point-to-point core of
//! `snoo-mpi`, with ABI-neutral objects. The two C ABI faces (`abi/mpich`: `libmpi.so.12`, and
//! `abi/standard`: `libmpi_abi.so.1`) only say how their handles, constants and statuses look
//! (an [`c::Abi`]) and export the functions with [`export_mpi!`].
//!
//! - [`basic`]: the predefined datatypes; [`datatype`]: derived datatypes (type maps, pack and
//!   unpack); [`op`]: the predefined reduction operations.
//! - [`handle`]: object tables with generation-checked ids (freed or forged handles are refused).
//! - [`info`]: info objects (MPI_Info).
//! - [`state`]: the process's job and object tables, and the lock every call takes.
//! - [`request`]: operations in flight and how they complete; [`collective`]: a collective
//!   operation in flight.
//! - [`error`]: error classes and the error every call returns.
//! - [`c`]: the C calls, written once over an ABI.

#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod basic;
pub mod c;
pub mod collective;
pub mod datatype;
pub mod error;
mod exports;
pub mod handle;
pub mod info;
pub mod op;
pub mod request;
pub mod state;
