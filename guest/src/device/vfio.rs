//! In-VM backend with an IOMMU: the ivshmem device bound to `vfio-pci`, opened with vfio-ioctls
//! (container, group, device), its BARs mapped from the device fd, and its MSI-X vectors routed
//! into eventfds, so that a doorbell from a peer really wakes a waiter.
//!
//! The VFIO group is opened exclusively: one process per VM opens a given device this way; it
//! lends the device fd to other local ranks (see [`super::vfio_share`]).

use super::ivshmem::{header_vectors, Backend, Ivshmem};
use super::map::{map_pool, page_size, Bar0};
use super::pci::PciDevice;
use super::vfio_share::{Lender, Regions};
use super::{Device, DeviceError};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
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

/// A pool reached through an ivshmem-doorbell device bound to `vfio-pci`.
pub type VfioDevice = Ivshmem<Vfio>;

/// The VFIO backend: the device opened through its group, and one eventfd per MSI-X vector.
pub struct Vfio {
    // Field order is drop order: stop lending, close the eventfds and the device, then the
    // container.
    lender: Option<Lender>,
    events: Vec<EventFd>,
    dev: RawVfioDevice,
    _container: Arc<VfioContainer>,
}

/// Types that own their fd: it is opened when they are made and closed only when they are
/// dropped.
trait OwnsFd: AsRawFd {}
impl OwnsFd for EventFd {}
impl OwnsFd for RawVfioDevice {}

/// The fd of `owner`, borrowed for as long as `owner` is.
fn fd_of<T: OwnsFd>(owner: &T) -> BorrowedFd<'_> {
    // SAFETY: `T` owns the fd (`OwnsFd`: vmm-sys-util's EventFd holds it in a `File`,
    // vfio-ioctls' VfioDevice in a `File` it closes in its `Drop`), so it stays open while
    // `owner` is borrowed, which the returned lifetime ties it to.
    unsafe { BorrowedFd::borrow_raw(owner.as_raw_fd()) }
}

impl Ivshmem<Vfio> {
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
        let container = Arc::new(
            VfioContainer::new(None)
                .map_err(|e| pci.vfio_err("opening /dev/vfio/vfio (needs a TYPE1v2 IOMMU)", e))?,
        );
        let dev = RawVfioDevice::new(&pci.path, container.clone(), false)
            .map_err(|e| pci.vfio_err("opening the device", e))?;

        let bar0_off = dev.get_region_offset(BAR0_REGION);
        let bar0_mappable = dev.get_region_flags(BAR0_REGION) & REGION_FLAG_MMAP != 0;
        let bar0 = Bar0::vfio(fd_of(&dev), bar0_off, bar0_mappable)
            .map_err(|e| pci.vfio_err("mapping BAR0", e))?;
        if dev.get_region_flags(BAR2_REGION) & REGION_FLAG_MMAP == 0 {
            return Err(pci.vfio_err("BAR2", "vfio-pci does not allow mapping it"));
        }
        let bar2_len = dev.get_region_size(BAR2_REGION);
        let regions = Regions {
            bar0_offset: bar0_off,
            bar0_mappable,
            bar2_offset: dev.get_region_offset(BAR2_REGION),
            bar2_len,
        };
        if bar2_len < page_size() as u64 {
            return Err(pci.vfio_err("BAR2", format!("only {bar2_len} bytes")));
        }
        let shm = map_pool(&dev, dev.get_region_offset(BAR2_REGION), bar2_len)
            .map_err(|e| pci.vfio_err("mapping BAR2", e))?;

        let msix = dev.get_irq_info(MSIX_IRQ_INDEX).map_or(0, |i| i.count);
        if msix == 0 {
            return Err(pci.vfio_err("MSI-X", "the device has no MSI-X vectors"));
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
            .map_err(|e| pci.vfio_err("enabling MSI-X", e))?;

        let backend = Vfio {
            lender: None,
            events,
            dev,
            _container: container,
        };
        let mut me = Ivshmem::new(pci, bar0, shm, vectors, backend)?;
        // Other ranks of this VM cannot open the group now; they borrow the device fd instead.
        let fd = me.backend_mut().dev.as_raw_fd();
        // Vectors 1.. are for them, one each: the owner waits on vector 0.
        let vector_fds = me.backend_mut().events[1..]
            .iter()
            .map(AsRawFd::as_raw_fd)
            .collect();
        let lender = Lender::start(&me.pci().bdf, fd, regions, vector_fds);
        me.backend_mut().lender = lender;
        tracing::debug!(bdf = %me.pci().bdf, own_id = me.own_id(), vectors, "opened ivshmem through VFIO");
        Ok(me)
    }
}

impl Backend for Vfio {
    fn interrupts(&self) -> bool {
        true
    }

    fn wait(&self, vector: u32, timeout: Duration) -> Result<bool, DeviceError> {
        let efd = self
            .events
            .get(vector as usize)
            .ok_or(DeviceError::BadVector {
                vector,
                vectors: self.events.len() as u32,
            })?;
        Ok(wait_eventfd(fd_of(efd), timeout, None)?.unwrap_or(false))
    }

    fn close(&mut self) {
        let _ = self.dev.disable_msix();
        self.lender = None;
    }
}

/// Waits until the non-blocking eventfd `efd` counts a doorbell (consuming it: `Some(true)`) or
/// `timeout` passes (`Some(false)`). `None` if `hangup`, a stream watched alongside, is closed by
/// its other end first.
pub(super) fn wait_eventfd(
    efd: BorrowedFd<'_>,
    timeout: Duration,
    hangup: Option<BorrowedFd<'_>>,
) -> Result<Option<bool>, DeviceError> {
    let deadline = Instant::now() + timeout;
    let mut count = [0u8; 8];
    loop {
        match nix::unistd::read(efd, &mut count) {
            Ok(_) => return Ok(Some(true)),
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(std::io::Error::from(e).into()),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Some(false));
        }
        // Round up so that a sub-millisecond timeout still sleeps.
        let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let mut fds = vec![PollFd::new(efd, PollFlags::POLLIN)];
        fds.extend(hangup.map(|h| PollFd::new(h, PollFlags::POLLIN)));
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(std::io::Error::from(e).into()),
        }
        // The only thing the other end of `hangup` ever does is close it.
        if fds
            .get(1)
            .and_then(PollFd::revents)
            .is_some_and(|r| !r.is_empty())
        {
            return Ok(None);
        }
    }
}
