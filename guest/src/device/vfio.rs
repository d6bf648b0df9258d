//! In-VM backend with an IOMMU: the ivshmem device bound to `vfio-pci`, opened with vfio-ioctls
//! (container, group, device), its BARs mapped from the device fd, and its MSI-X vectors routed
//! into eventfds, so that a doorbell from a peer really wakes a waiter.
//!
//! The VFIO group is opened exclusively: one process per VM opens a given device this way; it
//! lends the device fd to other local ranks (see [`super::vfio_share`]).

use super::pci::{
    doorbell_value, header_vectors, iv_position, map_pool, page_size, PciDevice, PeerWatch,
    Registers, REG_DOORBELL, REG_IV_POSITION,
};
use super::vfio_share::{Lender, Regions};
use super::{Device, DeviceError, PeerEvent};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use snoo_common::Shm;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vfio_ioctls::{VfioContainer, VfioDevice as RawVfioDevice};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// vfio-pci region and IRQ indices (linux/vfio.h).
const BAR0_REGION: u32 = 0;
const BAR2_REGION: u32 = 2;
const CONFIG_REGION: u32 = 7;
const MSIX_IRQ_INDEX: u32 = 2;
/// PCI command register and its bus-master bit: without it QEMU drops the device's MSI writes.
const PCI_COMMAND: u64 = 0x04;
const PCI_COMMAND_MASTER: u16 = 0x0004;
const REGION_FLAG_MMAP: u32 = 1 << 2;

/// How BAR0 is reached: mapped, or (if vfio-pci refuses to map it) by pread/pwrite on the device.
enum Bar0 {
    Mapped(Registers),
    Fd,
}

/// A pool reached through an ivshmem-doorbell device bound to `vfio-pci`.
pub struct VfioDevice {
    // Field order is drop order: stop lending, unmap before closing the device, close it before the
    // container.
    lender: Option<Lender>,
    pci: PciDevice,
    bar0: Bar0,
    shm: Shm,
    events: Vec<EventFd>,
    dev: RawVfioDevice,
    _container: Arc<VfioContainer>,
    own_id: u16,
    vectors: u32,
    watch: PeerWatch,
}

fn vfio_err(pci: &PciDevice, what: &str, e: impl std::fmt::Display) -> DeviceError {
    DeviceError::Vfio(format!("{}: {what}: {e}", pci.bdf))
}

impl VfioDevice {
    /// Opens the device at `bdf`, which must be bound to `vfio-pci`.
    pub fn open(bdf: &str) -> Result<VfioDevice, DeviceError> {
        let pci = PciDevice::at(bdf)?;
        match pci.driver().as_deref() {
            Some("vfio-pci") => {}
            other => {
                return Err(DeviceError::Vfio(format!(
                    "{} is bound to {}, not vfio-pci (echo 1af4 1110 > \
                     /sys/bus/pci/drivers/vfio-pci/new_id)",
                    pci.bdf,
                    other.unwrap_or("no driver")
                )))
            }
        }
        let container =
            Arc::new(VfioContainer::new(None).map_err(|e| {
                vfio_err(&pci, "opening /dev/vfio/vfio (needs a TYPE1v2 IOMMU)", e)
            })?);
        let dev = RawVfioDevice::new(&pci.path, container.clone(), false)
            .map_err(|e| vfio_err(&pci, "opening the device", e))?;

        let bar0_off = dev.get_region_offset(BAR0_REGION);
        let bar0 = if dev.get_region_flags(BAR0_REGION) & REGION_FLAG_MMAP != 0 {
            Bar0::Mapped(
                Registers::map(&dev, bar0_off, 0).map_err(|e| vfio_err(&pci, "mapping BAR0", e))?,
            )
        } else {
            Bar0::Fd
        };
        if dev.get_region_flags(BAR2_REGION) & REGION_FLAG_MMAP == 0 {
            return Err(vfio_err(&pci, "BAR2", "vfio-pci does not allow mapping it"));
        }
        let bar2_len = dev.get_region_size(BAR2_REGION);
        let regions = Regions {
            bar0_offset: bar0_off,
            bar0_mappable: matches!(bar0, Bar0::Mapped(_)),
            bar2_offset: dev.get_region_offset(BAR2_REGION),
            bar2_len,
        };
        if bar2_len < page_size() as u64 {
            return Err(vfio_err(&pci, "BAR2", format!("only {bar2_len} bytes")));
        }
        let shm = map_pool(&dev, dev.get_region_offset(BAR2_REGION), bar2_len)
            .map_err(|e| vfio_err(&pci, "mapping BAR2", e))?;

        let msix = dev.get_irq_info(MSIX_IRQ_INDEX).map_or(0, |i| i.count);
        if msix == 0 {
            return Err(vfio_err(&pci, "MSI-X", "the device has no MSI-X vectors"));
        }
        let vectors = header_vectors(&shm).unwrap_or(msix).min(msix);
        // vfio-pci enables memory decoding but leaves bus mastering to userspace; an MSI-X message
        // is a write by the device, so without it no doorbell would ever arrive.
        let mut cmd = [0u8; 2];
        dev.region_read(CONFIG_REGION, &mut cmd, PCI_COMMAND);
        let cmd = u16::from_le_bytes(cmd) | PCI_COMMAND_MASTER;
        dev.region_write(CONFIG_REGION, &cmd.to_le_bytes(), PCI_COMMAND);
        let events = (0..vectors)
            .map(|_| EventFd::new(EFD_NONBLOCK))
            .collect::<std::io::Result<Vec<_>>>()?;
        dev.enable_msix(events.iter().collect())
            .map_err(|e| vfio_err(&pci, "enabling MSI-X", e))?;

        let mut me = VfioDevice {
            lender: None,
            pci,
            bar0,
            shm,
            events,
            dev,
            _container: container,
            own_id: 0,
            vectors,
            watch: PeerWatch::new(0),
        };
        me.own_id = iv_position(me.read32(REG_IV_POSITION), &me.pci.bdf)?;
        me.watch = PeerWatch::new(me.own_id);
        // Other ranks of this VM cannot open the group now; they borrow the device fd instead.
        me.lender = Lender::start(&me.pci.bdf, me.dev.as_raw_fd(), regions);
        tracing::debug!(bdf = %me.pci.bdf, own_id = me.own_id, vectors, "opened ivshmem through VFIO");
        Ok(me)
    }

    /// The PCI device.
    pub fn pci(&self) -> &PciDevice {
        &self.pci
    }

    fn read32(&self, off: u64) -> u32 {
        match &self.bar0 {
            Bar0::Mapped(r) => r.read32(off),
            Bar0::Fd => {
                let mut b = [0u8; 4];
                self.dev.region_read(BAR0_REGION, &mut b, off);
                u32::from_le_bytes(b)
            }
        }
    }

    fn write32(&self, off: u64, v: u32) {
        match &self.bar0 {
            Bar0::Mapped(r) => r.write32(off, v),
            Bar0::Fd => self.dev.region_write(BAR0_REGION, &v.to_le_bytes(), off),
        }
    }

    fn check_vector(&self, vector: u32) -> Result<&EventFd, DeviceError> {
        self.events
            .get(vector as usize)
            .ok_or(DeviceError::BadVector {
                vector,
                vectors: self.vectors,
            })
    }
}

impl Drop for VfioDevice {
    fn drop(&mut self) {
        let _ = self.dev.disable_msix();
    }
}

impl Device for VfioDevice {
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
        self.check_vector(vector)?;
        self.write32(REG_DOORBELL, doorbell_value(peer, vector));
        Ok(())
    }

    fn wait(&self, vector: u32, timeout: Duration) -> Result<bool, DeviceError> {
        let efd = self.check_vector(vector)?;
        let deadline = Instant::now() + timeout;
        loop {
            match efd.read() {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            // Round up so that a sub-millisecond timeout still sleeps.
            let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            // SAFETY: the eventfd is owned by `self` and outlives this borrow.
            let fd = unsafe { BorrowedFd::borrow_raw(efd.as_raw_fd()) };
            let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(std::io::Error::from(e).into()),
            }
        }
    }

    fn take_events(&self) -> Vec<PeerEvent> {
        self.watch.take_events(&self.shm)
    }

    fn peers(&self) -> Vec<u16> {
        self.watch.alive(&self.shm).into_keys().collect()
    }
}
