//! SNOO_MPI: MPI-like messaging between virtual machines through hypervisor shared memory.
//!
//! - [`api`]: the Rust API ([`init`], [`World`], [`Scope`] for non-blocking calls).
//! - [`engine`]: joins a job, moves register words and ring payloads, drives progress and sleep.
//! - [`matching`]: posted receives, unexpected messages, completions.
//! - [`heap`]: this rank's heap in the pool, behind `alloc_mem` (single-copy large sends).
//! - [`device`]: how this process reaches its pool: the daemon socket (host processes), or the
//!   ivshmem PCI device inside a VM (VFIO with MSI-X wake-ups, sysfs polling).
//! - [`error`]: errors as values, with stable C codes.
//!
//! The C ABI (`snoo_mpi.h`, `libsnoo_mpi.so` and `libsnoo_mpi.a`) is the `snoo-mpi-capi` crate,
//! built on this one.

pub mod api;
pub mod device;
pub mod engine;
pub mod error;
pub mod heap;
pub mod matching;

pub use api::{init, Equivalence, PoolMem, Request, Scope, Status, World, TAG_UB};
pub use error::{Error, Result};
