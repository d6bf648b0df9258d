//! snoo-host: the SNOO host daemon as a library, so that `snoo-hostd` and the job launcher share it.
//!
//! - [`config`]: pool specifications and their validation (the CLI parses into these).
//! - `pool`: creating a pool's shared-memory object and writing its header.
//! - `peers`: the daemon's peer table for one pool: ids, eventfds, per-client send queues.
//! - `server`: the listening sockets and the event loop that speaks QEMU's ivshmem-server protocol.

#![deny(missing_docs)]

pub mod config;
mod peers;
mod pool;
mod server;

pub use config::{parse_size, PoolSpec, ServerConfig};
pub use server::{Daemon, DaemonError, DaemonThread};
