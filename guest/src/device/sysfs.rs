//! In-VM backend without an IOMMU: the ivshmem device's BARs mapped through sysfs
//! (`/sys/bus/pci/devices/BDF/resource0` and `resource2`). Needs root.
//!
//! There are no interrupts this way (MSI-X needs a kernel driver, and ivshmem-doorbell has no
//! INTx), so [`Device::wait`] only sleeps, with a backoff from 50 µs to 1 ms, and the engine
//! re-checks shared memory after it. Doorbells this VM rings still wake peers that have interrupts
//! (host processes, VFIO guests). Peer joins and departures come from the pool's peer table.

use super::ivshmem::{header_vectors, Backend, Ivshmem};
use super::map::{map_pool, page_size, Bar0, Registers};
use super::pci::PciDevice;
use super::watch::PollWait;
use super::{Device, DeviceError};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::time::Duration;

/// A pool reached through the sysfs resource files of an ivshmem-doorbell device.
pub type SysfsDevice = Ivshmem<Sysfs>;

/// The sysfs backend: no interrupts, so waits poll.
pub struct Sysfs {
    poll: PollWait,
}

impl Backend for Sysfs {
    fn interrupts(&self) -> bool {
        false
    }

    fn wait(&self, _vector: u32, timeout: Duration) -> Result<bool, DeviceError> {
        self.poll.nap(timeout);
        Ok(false)
    }
}

fn open_rw(pci: &PciDevice, file: &str) -> Result<File, DeviceError> {
    let path = pci.path.join(file);
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| DeviceError::Pci(format!("{}: {e} (needs root)", path.display())))
}

impl Ivshmem<Sysfs> {
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
        let vectors = header_vectors(&shm).unwrap_or(1);
        let poll = PollWait::new();
        let dev = Ivshmem::new(pci, Bar0::Mapped(regs), shm, vectors, Sysfs { poll })?;
        tracing::debug!(bdf = %dev.pci().bdf, own_id = dev.own_id(), vectors, "opened ivshmem through sysfs");
        Ok(dev)
    }
}
