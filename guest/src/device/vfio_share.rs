//! Several ranks of one VM on one ivshmem device bound to `vfio-pci`.
//!
//! Only one process can open a VFIO group, and while it holds the device the kernel refuses every
//! other way to map its BARs: `mmap` of the sysfs `resource0`/`resource2` files fails with EINVAL
//! (the regions are claimed by vfio-pci), and a sysfs mapping made before VFIO opened the device is
//! revoked (SIGBUS on the next access). What the kernel does allow is sharing the VFIO *device fd*:
//! the process that opened the device (the owner, a [`super::VfioDevice`]) lends a duplicate of it
//! over an abstract UNIX socket named after the device, to processes of the same user only.
//!
//! A borrower ([`BorrowedVfioDevice`]) maps BAR0 and BAR2 from the lent fd at the region offsets
//! the owner sends along, reads its peer id from IVPosition like the owner, and, as it has no MSI-X
//! vector of its own, polls like the sysfs backend (it never asks to be rung). It keeps working if
//! the owner exits first: its fd keeps the device open.

use super::ivshmem::{header_vectors, Backend, Ivshmem};
use super::map::{map_pool, Bar0};
use super::pci::PciDevice;
use super::watch::PollWait;
use super::{Device, DeviceError};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

/// First word of the lending message.
const MAGIC: u64 = u64::from_le_bytes(*b"SNOOVFIO");
/// Words of the lending message: magic, BAR0 offset, BAR0 mappable (0/1), BAR2 offset, BAR2 size.
const WORDS: usize = 5;

/// The abstract socket name on which the owner of `bdf` lends it.
pub fn socket_name(bdf: &str) -> String {
    format!("snoo-vfio/{bdf}")
}

/// Where the owner's BARs are in the device fd.
#[derive(Debug, Clone, Copy)]
pub struct Regions {
    pub bar0_offset: u64,
    pub bar0_mappable: bool,
    pub bar2_offset: u64,
    pub bar2_len: u64,
}

/// The owner's side: a thread that hands a duplicate of the device fd to each local process of the
/// same user that connects. Stopped and joined on drop, before the device fd is closed.
pub struct Lender {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Lender {
    /// Starts lending `device_fd` (which must outlive this value). `None` if the socket name is
    /// taken (another owner of the same device in another process, which cannot happen while the
    /// VFIO group is exclusive) or sockets are unavailable.
    pub fn start(bdf: &str, device_fd: RawFd, regions: Regions) -> Option<Lender> {
        let addr = SocketAddr::from_abstract_name(socket_name(bdf).as_bytes()).ok()?;
        let listener = match UnixListener::bind_addr(&addr) {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(bdf, error = %e, "not lending the VFIO device");
                return None;
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("snoo-vfio-lender".into())
            .spawn(move || lend_loop(listener, device_fd, regions, &flag))
            .ok()?;
        Some(Lender {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Lender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lend_loop(listener: UnixListener, fd: RawFd, r: Regions, stop: &AtomicBool) {
    let msg: Vec<u8> = [
        MAGIC,
        r.bar0_offset,
        u64::from(r.bar0_mappable),
        r.bar2_offset,
        r.bar2_len,
    ]
    .iter()
    .flat_map(|w| w.to_le_bytes())
    .collect();
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    while !stop.load(Ordering::Relaxed) {
        // Wake up every 100 ms to notice `stop`.
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u8)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => return,
        }
        let Ok((stream, _)) = listener.accept() else {
            continue;
        };
        match getsockopt(&stream, PeerCredentials) {
            Ok(c) if c.uid() == me || c.uid() == 0 => {
                if let Err(e) = stream.send_with_fd(&msg[..], fd) {
                    tracing::debug!(error = %e, "lending the VFIO device failed");
                }
            }
            Ok(c) => tracing::warn!(uid = c.uid(), "refused to lend the VFIO device"),
            Err(_) => {}
        }
    }
}

/// A pool reached through a VFIO device fd lent by the process that opened the device.
pub type BorrowedVfioDevice = Ivshmem<Borrowed>;

/// The borrower's backend: the lent device fd, and no MSI-X vector of its own, so waits poll.
pub struct Borrowed {
    poll: PollWait,
    // Keeps the device open (dropped after the BAR mappings: see `Ivshmem`).
    _fd: File,
}

impl Backend for Borrowed {
    const INTERRUPTS: bool = false;

    fn wait(&self, _vector: u32, timeout: Duration) -> Result<bool, DeviceError> {
        self.poll.nap(timeout);
        Ok(false)
    }
}

impl Ivshmem<Borrowed> {
    /// Borrows `pci` from the local process that has it open through VFIO. `Ok(None)` if no process
    /// lends it.
    pub fn borrow(pci: &PciDevice) -> Result<Option<BorrowedVfioDevice>, DeviceError> {
        let addr = SocketAddr::from_abstract_name(socket_name(&pci.bdf).as_bytes())?;
        let stream = match UnixStream::connect_addr(&addr) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Ok(None),
            Err(e) => return Err(pci.vfio_err("connecting to the VFIO owner", e)),
        };
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut buf = [0u8; WORDS * 8];
        let (n, fd) = stream
            .recv_with_fd(&mut buf)
            .map_err(|e| pci.vfio_err("receiving the VFIO device fd", e))?;
        let fd = fd.ok_or_else(|| pci.vfio_err("the VFIO owner", "sent no fd"))?;
        let w = |i: usize| u64::from_le_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap());
        if n != buf.len() || w(0) != MAGIC {
            return Err(pci.vfio_err("the VFIO owner", "sent a malformed message"));
        }
        let r = Regions {
            bar0_offset: w(1),
            bar0_mappable: w(2) != 0,
            bar2_offset: w(3),
            bar2_len: w(4),
        };
        let bar0 = Bar0::vfio(fd.as_fd(), r.bar0_offset, r.bar0_mappable)
            .map_err(|e| pci.vfio_err("mapping BAR0 of the lent fd", e))?;
        let shm = map_pool(&fd, r.bar2_offset, r.bar2_len)
            .map_err(|e| pci.vfio_err("mapping BAR2 of the lent fd", e))?;
        let vectors = header_vectors(&shm).unwrap_or(1);
        let backend = Borrowed {
            poll: PollWait::new(),
            _fd: fd,
        };
        let me = Ivshmem::new(pci.clone(), bar0, shm, vectors, backend)?;
        tracing::debug!(bdf = %pci.bdf, own_id = me.own_id(), "borrowed the VFIO device of another process");
        Ok(Some(me))
    }
}

/// True if another process has the VFIO group of `pci` open (opening it fails with EBUSY).
pub fn group_busy(pci: &PciDevice) -> bool {
    let Some(group) = pci.iommu_group() else {
        return false;
    };
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/vfio/{group}"))
    {
        Ok(_) => false,
        Err(e) => e.raw_os_error() == Some(libc::EBUSY),
    }
}
