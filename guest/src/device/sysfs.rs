//! In-VM backend without an IOMMU: the ivshmem device's BARs mapped through sysfs
//! (`/sys/bus/pci/devices/BDF/resource0` and `resource2`). Needs root.
//!
//! There are no interrupts this way (MSI-X needs a kernel driver, and ivshmem-doorbell has no
//! INTx), so [`Device::wait`] only sleeps, with a backoff from 50 µs to 1 ms, and the engine
//! re-checks shared memory after it. Doorbells this VM rings still wake peers that have interrupts
//! (host processes, VFIO guests). Peer joins and departures come from the pool's peer table.

use super::pci::{
    check_vector, doorbell_value, header_vectors, iv_position, map_pool, page_size, PciDevice,
    PeerWatch, PollWait, Registers, REG_DOORBELL, REG_IV_POSITION,
};
use super::{Device, DeviceError, PeerEvent};
use snoo_common::Shm;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::time::Duration;

/// A pool reached through the sysfs resource files of an ivshmem-doorbell device.
pub struct SysfsDevice {
    pci: PciDevice,
    regs: Registers,
    shm: Shm,
    own_id: u16,
    vectors: u32,
    watch: PeerWatch,
    poll: PollWait,
}

fn open_rw(pci: &PciDevice, file: &str) -> Result<File, DeviceError> {
    let path = pci.path.join(file);
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| DeviceError::Pci(format!("{}: {e} (needs root)", path.display())))
}

impl SysfsDevice {
    /// Opens the ivshmem device at `bdf`: enables its memory decoding and maps both BARs.
    pub fn open(bdf: &str) -> Result<SysfsDevice, DeviceError> {
        let pci = PciDevice::at(bdf)?;
        if !pci.is_ivshmem() {
            return Err(DeviceError::Pci(format!(
                "{} is not an ivshmem device (1af4:1110)",
                pci.bdf
            )));
        }
        // Memory decoding is off after reset; `enable` turns it on. Writing it fails with EBUSY
        // while a driver is bound, so only write when it is off.
        let enable = pci.path.join("enable");
        let on = std::fs::read_to_string(&enable).is_ok_and(|s| s.trim() != "0");
        if !on {
            OpenOptions::new()
                .write(true)
                .open(&enable)
                .and_then(|mut f| f.write_all(b"1"))
                .map_err(|e| DeviceError::Pci(format!("{}: {e} (needs root)", enable.display())))?;
        }

        let (bar0_start, bar0_len) = pci.bar(0)?;
        let (_, bar2_len) = pci.bar(2)?;
        if bar0_len == 0 || bar2_len == 0 {
            return Err(DeviceError::Pci(format!(
                "{}: BAR0 or BAR2 is not assigned",
                pci.bdf
            )));
        }
        let in_page = (bar0_start % page_size() as u64) as usize;
        let regs = Registers::map(&open_rw(&pci, "resource0")?, 0, in_page)
            .map_err(|e| DeviceError::Pci(format!("{}: mapping resource0: {e}", pci.bdf)))?;
        let shm = map_pool(&open_rw(&pci, "resource2")?, 0, bar2_len)
            .map_err(|e| DeviceError::Pci(format!("{}: mapping resource2: {e}", pci.bdf)))?;
        let own_id = iv_position(regs.read32(REG_IV_POSITION), &pci.bdf)?;
        let vectors = header_vectors(&shm).unwrap_or(1);
        tracing::debug!(bdf = %pci.bdf, own_id, vectors, "opened ivshmem through sysfs");
        Ok(SysfsDevice {
            pci,
            regs,
            shm,
            own_id,
            vectors,
            watch: PeerWatch::new(own_id),
            poll: PollWait::new(),
        })
    }

    /// The PCI device.
    pub fn pci(&self) -> &PciDevice {
        &self.pci
    }
}

impl Device for SysfsDevice {
    fn has_interrupts(&self) -> bool {
        false
    }

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
        self.regs
            .write32(REG_DOORBELL, doorbell_value(peer, vector));
        Ok(())
    }

    fn wait(&self, vector: u32, timeout: Duration) -> Result<bool, DeviceError> {
        self.poll.wait(vector, self.vectors, timeout)
    }

    fn take_events(&self) -> Vec<PeerEvent> {
        self.watch.take_events(&self.shm)
    }

    fn peers(&self) -> Vec<u16> {
        self.watch.alive(&self.shm).into_keys().collect()
    }
}
