//! The device abstraction the engine runs on: a mapped pool, an own peer id, doorbells to peers and
//! waits on own vectors, and peer join/leave events.
//!
//! Backends:
//! - [`socket::SocketDevice`]: connects to `snoo-hostd` exactly as QEMU does, so that ordinary host
//!   processes act as VMs with the same protocol and memory layout.
//!
//! Interrupts are only ever wake-ups: a doorbell can be lost (QEMU drops those that arrive before a
//! guest enables MSI-X), so callers always re-check shared memory after a wait, whatever it returns.

use snoo_common::protocol::ProtocolError;
use snoo_common::Shm;
use std::path::PathBuf;
use std::time::Duration;

pub mod socket;

pub use socket::SocketDevice;

/// A peer joined or left the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerEvent {
    Joined(u16),
    Left(u16),
}

/// Why a device operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("cannot connect to the SNOO daemon at {path:?}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the daemon at {0:?} did not complete the handshake in time")]
    HandshakeTimeout(PathBuf),
    #[error("the daemon closed the connection during the handshake (pool full, or this uid not allowed?)")]
    Refused,
    #[error("protocol error from the daemon: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("pool memory: {0}")]
    Layout(#[from] snoo_common::LayoutError),
    #[error("peer {0} is not connected")]
    NoSuchPeer(u16),
    #[error("vector {vector} out of range (the pool has {vectors})")]
    BadVector { vector: u32, vectors: u32 },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// What the engine needs from the way it reaches the pool.
pub trait Device: Send + Sync {
    /// The whole pool, mapped.
    fn shm(&self) -> &Shm;
    /// This endpoint's peer id (ivshmem's IVPosition).
    fn own_id(&self) -> u16;
    /// Doorbell vectors per peer.
    fn vectors(&self) -> u32;
    /// Rings `peer`'s `vector`: wakes whoever waits on it. Never blocks.
    fn doorbell(&self, peer: u16, vector: u32) -> Result<(), DeviceError>;
    /// Waits until own `vector` is rung, a peer event arrives, or `timeout` passes. Returns true if
    /// the doorbell rang (and consumes it). Spurious returns are allowed; callers re-check memory.
    fn wait(&self, vector: u32, timeout: Duration) -> Result<bool, DeviceError>;
    /// Peer joins and departures seen since the last call, in order.
    fn take_events(&self) -> Vec<PeerEvent>;
    /// Ids of the peers currently known to be connected (not including this one).
    fn peers(&self) -> Vec<u16>;
}
