//! The device abstraction the engine runs on: a mapped pool, an own peer id, doorbells to peers and
//! waits on own vectors, and peer join/leave events.
//!
//! Backends:
//! - [`SocketDevice`]: connects to `snoo-hostd` exactly as QEMU does, so that ordinary host
//!   processes act as VMs with the same protocol and memory layout.
//! - [`VfioDevice`]: inside a VM with an IOMMU, the ivshmem device bound to `vfio-pci`;
//!   doorbells arrive as MSI-X interrupts on eventfds.
//! - [`BorrowedVfioDevice`]: another rank in the same VM as a `VfioDevice`, on the
//!   device fd that one lends it; no interrupts of its own, so waits poll.
//! - [`SysfsDevice`]: inside a VM without an IOMMU, the BARs mapped through sysfs; no
//!   interrupts, so waits poll with a short backoff.
//!
//! [`open_pci`] picks between the two in-VM backends, [`find_pool`] scans the VM's ivshmem devices
//! for a pool by name.
//!
//! The in-VM backends are one type, `ivshmem::Ivshmem`, over a small backend type each (how it
//! opened the device, how it waits). Shared by them: `pci` finds the devices in sysfs, `map`
//! maps the pool and the register BAR (every backend's mappings, the socket one's included),
//! `watch` follows the pool's peer table and waits by polling.
//!
//! Interrupts are only ever wake-ups: a doorbell can be lost (QEMU drops those that arrive before a
//! guest enables MSI-X), so callers always re-check shared memory after a wait, whatever it returns.

use snoo_common::protocol::ProtocolError;
use snoo_common::Shm;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod ivshmem;
mod map;
mod pci;
mod socket;
mod sysfs;
mod vfio;
mod vfio_share;
mod watch;

pub use socket::SocketDevice;
pub use sysfs::SysfsDevice;
pub use vfio::VfioDevice;
pub use vfio_share::BorrowedVfioDevice;

#[cfg(test)]
pub(crate) use map::anon_shm;

/// A peer joined or left the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerEvent {
    /// This peer id connected.
    Joined(u16),
    /// This peer id disconnected (its VM or process is gone).
    Left(u16),
}

/// Why a device operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The daemon's socket could not be reached.
    #[error("cannot connect to the SNOO daemon at {path:?}: {source}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The daemon did not send its greeting (version, id, pool) in time.
    #[error("the daemon at {0:?} did not complete the handshake in time")]
    HandshakeTimeout(PathBuf),
    /// The daemon hung up during the greeting.
    #[error("the daemon closed the connection during the handshake (pool full, or this uid not allowed?)")]
    Refused,
    /// The daemon broke QEMU's ivshmem-server protocol.
    #[error("protocol error from the daemon: {0}")]
    Protocol(#[from] ProtocolError),
    /// The pool's memory is unusable (size, header).
    #[error("pool memory: {0}")]
    Layout(#[from] snoo_common::LayoutError),
    /// A doorbell for a peer id that is not connected.
    #[error("peer {0} is not connected")]
    NoSuchPeer(u16),
    /// A vector this pool does not have.
    #[error("vector {vector} out of range (the pool has {vectors})")]
    BadVector {
        /// The vector asked for.
        vector: u32,
        /// Vectors per peer in this pool.
        vectors: u32,
    },
    /// The PCI device could not be found or opened.
    #[error("{0}")]
    Pci(String),
    /// A VFIO call failed.
    #[error("VFIO: {0}")]
    Vfio(String),
    /// Any other system call failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// What the engine needs from the way it reaches the pool.
pub trait Device: Send + Sync {
    /// The whole pool, mapped: the same `Shm` at the same address for the device's whole life (the
    /// engine caches its address).
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
    /// False if doorbells can never wake this endpoint (the sysfs backend has no interrupts): the
    /// engine then does not announce sleep, so peers never ring it for nothing (each ring from a
    /// guest is a VM exit).
    fn has_interrupts(&self) -> bool {
        true
    }
    /// The doorbell vector this endpoint waits on (a rank sharing its VM's device with others
    /// gets its own, see `vfio_share`); peers ring it there.
    fn own_vector(&self) -> u32 {
        0
    }
}

/// How to reach an ivshmem device inside a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciMode {
    /// VFIO if the device is bound to `vfio-pci`, else sysfs.
    Auto,
    /// The BARs through sysfs resource files: no interrupts, waits poll.
    Sysfs,
    /// VFIO with MSI-X interrupts (the device must be bound to `vfio-pci`).
    Vfio,
}

/// Opens the ivshmem device at `bdf` inside this VM.
pub fn open_pci(bdf: &str, mode: PciMode) -> Result<Arc<dyn Device>, DeviceError> {
    let vfio = match mode {
        PciMode::Sysfs => false,
        PciMode::Vfio => true,
        PciMode::Auto => pci::PciDevice::at(bdf)?.driver().as_deref() == Some("vfio-pci"),
    };
    if vfio {
        open_vfio(bdf)
    } else {
        Ok(Arc::new(SysfsDevice::open(bdf)?))
    }
}

/// How long a rank that finds the VFIO group taken waits for its owner to start lending it (the
/// owner opens the group before it can lend; under TCG that takes a while).
const LEND_WAIT: Duration = Duration::from_secs(20);

/// The device bound to `vfio-pci` at `bdf`: borrowed from the local process that has it open, else
/// opened through VFIO (this process becomes the owner and lends it in turn).
fn open_vfio(bdf: &str) -> Result<Arc<dyn Device>, DeviceError> {
    let pci = pci::PciDevice::at(bdf)?;
    if let Some(d) = BorrowedVfioDevice::borrow(&pci)? {
        return Ok(Arc::new(d));
    }
    let opened = match VfioDevice::open(bdf) {
        Ok(d) => return Ok(Arc::new(d)),
        Err(e) => e,
    };
    // Another rank may have opened the group between our two attempts: wait for it to lend.
    if !vfio_share::group_busy(&pci) {
        return Err(opened);
    }
    let deadline = std::time::Instant::now() + LEND_WAIT;
    loop {
        if let Some(d) = BorrowedVfioDevice::borrow(&pci)? {
            return Ok(Arc::new(d));
        }
        if std::time::Instant::now() > deadline {
            return Err(DeviceError::Vfio(format!(
                "{opened}; another process has the VFIO group open but lends no device fd on \
                 the abstract socket @{}",
                vfio_share::socket_name(&pci.bdf)
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Scans this VM's ivshmem devices for the SNOO pool named `name`. `None` if there is none; the
/// strings say what each device turned out to be.
pub fn find_pool(name: &str) -> (Option<Arc<dyn Device>>, Vec<String>) {
    let mut tried = Vec::new();
    for dev in pci::ivshmem_devices() {
        let opened = match open_pci(&dev.bdf, PciMode::Auto) {
            Ok(d) => d,
            Err(e) => {
                tried.push(format!("{}: {e}", dev.bdf));
                continue;
            }
        };
        match snoo_common::layout::PoolHeader::open(opened.shm()) {
            Ok((_, info)) if info.name == name => return (Some(opened), tried),
            Ok((_, info)) => tried.push(format!("{}: pool {:?}", dev.bdf, info.name)),
            Err(e) => tried.push(format!("{}: {e}", dev.bdf)),
        }
    }
    (None, tried)
}
