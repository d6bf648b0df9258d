//! SNOO_MPI: MPI-like messaging between virtual machines through hypervisor shared memory.
//!
//! The public API is what this page lists: [`init`] (or [`World::join`] through a chosen
//! [`device`]) gives a [`World`]; blocking calls live on it, non-blocking ones in a [`Scope`]
//! ([`World::scope`]), which completes every request before it returns. Errors are [`Error`]
//! values with stable C codes.
//!
//! Inside, in layers (docs/architecture.md has the picture):
//! - `api`: the Rust API above, checking arguments and owning requests.
//! - `engine`: the point-to-point core (links, send and receive paths, progress, sleep,
//!   liveness), a folder of one-concept modules.
//! - `raw`: pointer-based calls and detached communicators ([`CommId`]) for bindings that keep
//!   objects in handle tables (the MPI library's C faces).
//! - [`collective`]: every collective operation on a communicator, as schedules of steps that
//!   run blocking or advance under tests (non-blocking collectives).
//! - `matching`: posted receives, unexpected messages, completions.
//! - `heap`: this rank's heap in the pool, behind `alloc_mem` (single-copy large sends).
//! - [`device`]: how this process reaches its pool: the daemon socket (host processes), or the
//!   ivshmem PCI device inside a VM (VFIO with MSI-X wake-ups, sysfs polling).
//! - [`error`]: errors as values, with stable C codes.
//!
//! The C ABI (`snoo_mpi.h`, `libsnoo_mpi.so` and `libsnoo_mpi.a`) is the `snoo-mpi-capi` crate,
//! built on this one.

#![deny(missing_docs)]

mod api;
pub mod collective;
pub mod device;
mod engine;
pub mod error;
mod heap;
mod matching;
mod raw;

pub use api::{
    init, Comm, Equivalence, Pending, PoolMem, Request, Scope, Status, World, MAX_MESSAGE, TAG_UB,
};
pub use collective::Combine;
pub use engine::{JoinOptions, DIRECT_RING_MAX, INLINE_MAX, RDV_MIN, SPLIT_MIN, TX_BATCH};
pub use error::{Error, Result};
pub use raw::{CommId, Message};
