//! MPI over SNOO: the one implementation of the MPI standard's semantics (communicators and
//! groups, datatypes, requests, error handlers, collectives) over the point-to-point core of
//! `snoo-mpi`, with ABI-neutral objects. The two C ABI faces (`abi/mpich`: `libmpi.so.12`, and
//! `abi/standard`: `libmpi_abi.so.1`) only translate handles, constants and statuses to it.

#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]
pub mod basic;
pub mod datatype;
pub mod op;
