//! What the in-VM backends share: an ivshmem-doorbell device of this VM with its BARs mapped
//! ([`Ivshmem`]), whatever way they were reached. The pool is BAR2, this VM's peer id is the
//! IVPosition register, a doorbell is a write of the Doorbell register, and peer joins and
//! departures come from the pool's peer table (a guest has no socket to hear them on). A backend
//! is a type ([`Backend`]) that only adds how it opened the device and how a waiter learns that
//! its doorbell rang.

use super::map::Bar0;
use super::pci::PciDevice;
use super::watch::PeerWatch;
use super::{Device, DeviceError, PeerEvent};
use snoo_common::layout::PoolHeader;
use snoo_common::protocol::MAX_VECTORS;
use snoo_common::Shm;
use std::time::Duration;

/// BAR0 register offsets (32-bit accesses only).
pub const REG_IV_POSITION: u64 = 0x08;
pub const REG_DOORBELL: u64 = 0x0C;

/// The Doorbell register value that rings `vector` of `peer` (only the low 8 bits of the vector
/// count).
pub fn doorbell_value(peer: u16, vector: u32) -> u32 {
    (u32::from(peer) << 16) | (vector & 0xff)
}

/// `vector` is one of the device's `vectors` interrupt vectors.
pub fn check_vector(vector: u32, vectors: u32) -> Result<(), DeviceError> {
    if vector >= vectors {
        return Err(DeviceError::BadVector { vector, vectors });
    }
    Ok(())
}

/// This VM's peer id on its daemon, from the value IVPosition reads.
pub fn iv_position(read: u32, bdf: &str) -> Result<u16, DeviceError> {
    u16::try_from(read).map_err(|_| {
        DeviceError::Pci(format!(
            "{bdf}: IVPosition reads {read:#x}: the device is not connected to a server, or its \
             memory decoding is off"
        ))
    })
}

/// Doorbell vectors per peer according to the pool header, if it has one.
pub fn header_vectors(shm: &Shm) -> Option<u32> {
    let (_, info) = PoolHeader::open(shm).ok()?;
    (1..=MAX_VECTORS)
        .contains(&info.vectors)
        .then_some(info.vectors)
}

/// What sets an in-VM backend apart once the device is open.
pub trait Backend: Send + Sync {
    /// Whether doorbells can wake this endpoint now ([`Device::has_interrupts`]).
    fn interrupts(&self) -> bool;

    /// The vector this endpoint waits on ([`Device::own_vector`]).
    fn own_vector(&self) -> u32 {
        0
    }

    /// [`Device::wait`] on own `vector`, already checked against the device's vectors.
    fn wait(&self, vector: u32, timeout: Duration) -> Result<bool, DeviceError>;

    /// Runs first when the device is dropped, while its BARs are still mapped.
    fn close(&mut self) {}
}

/// An ivshmem-doorbell device of this VM, its BARs mapped, reached through backend `B`
/// ([`super::SysfsDevice`], [`super::VfioDevice`], [`super::BorrowedVfioDevice`]).
pub struct Ivshmem<B: Backend> {
    // Field order is drop order: [`Backend::close`] first (`Drop`), then the BAR mappings and any
    // register fd, then the backend, which may hold the device fd and (VFIO) the container: a
    // VFIO device is closed only once nothing maps it, and before its group is released.
    pci: PciDevice,
    bar0: Bar0,
    shm: Shm,
    own_id: u16,
    vectors: u32,
    watch: PeerWatch,
    backend: B,
}

impl<B: Backend> Ivshmem<B> {
    /// Puts the device together once its BARs are mapped, and reads this VM's peer id from
    /// IVPosition.
    pub(super) fn new(
        pci: PciDevice,
        bar0: Bar0,
        shm: Shm,
        vectors: u32,
        backend: B,
    ) -> Result<Ivshmem<B>, DeviceError> {
        let mut me = Ivshmem {
            pci,
            bar0,
            shm,
            own_id: 0,
            vectors,
            watch: PeerWatch::new(0),
            backend,
        };
        me.own_id = iv_position(me.bar0.read32(REG_IV_POSITION), &me.pci.bdf)?;
        me.watch = PeerWatch::new(me.own_id);
        Ok(me)
    }

    /// The PCI device.
    pub fn pci(&self) -> &PciDevice {
        &self.pci
    }

    pub(super) fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }
}

impl<B: Backend> Drop for Ivshmem<B> {
    fn drop(&mut self) {
        self.backend.close();
    }
}

impl<B: Backend> Device for Ivshmem<B> {
    fn shm(&self) -> &Shm {
        &self.shm
    }

    fn own_id(&self) -> u16 {
        self.own_id
    }

    fn vectors(&self) -> u32 {
        self.vectors
    }

    fn doorbell(&self, peer: u16, vector: u32) -> Result<(), DeviceError> {
        check_vector(vector, self.vectors)?;
        // QEMU silently drops doorbells to unknown peers, like the socket backend's NoSuchPeer
        // would be ignored by the engine anyway.
        self.bar0
            .write32(REG_DOORBELL, doorbell_value(peer, vector));
        Ok(())
    }

    fn wait(&self, vector: u32, timeout: Duration) -> Result<bool, DeviceError> {
        check_vector(vector, self.vectors)?;
        self.backend.wait(vector, timeout)
    }

    fn take_events(&self) -> Vec<PeerEvent> {
        self.watch.take_events(&self.shm)
    }

    fn peers(&self) -> Vec<u16> {
        self.watch.alive(&self.shm).into_keys().collect()
    }

    fn has_interrupts(&self) -> bool {
        self.backend.interrupts()
    }

    fn own_vector(&self) -> u32 {
        self.backend.own_vector()
    }
}
