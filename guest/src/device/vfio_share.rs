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
//! the owner sends along and reads its peer id from IVPosition like the owner. The owner routes
//! every MSI-X vector into an eventfd and waits on vector 0 itself; it lends each borrower one of
//! the others (a duplicate of its eventfd) for as long as the borrower keeps the connection open.
//! The borrower names that vector in its rank slot, so peers ring it there and it sleeps until
//! they do. Borrowers beyond the vectors, and any borrower after the owner exits (its MSI-X goes
//! with it), poll like the sysfs backend and never ask to be rung. A borrower keeps working if the
//! owner exits first: its fd keeps the device open.

use super::ivshmem::{header_vectors, Backend, Ivshmem};
use super::map::{map_pool, Bar0};
use super::pci::PciDevice;
use super::vfio::wait_eventfd;
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
/// Words of the lending message: magic, BAR0 offset, BAR0 mappable (0/1), BAR2 offset, BAR2 size,
/// and the vector lent ([`NO_VECTOR`] if none), whose eventfd follows in a message of its own.
const WORDS: usize = 6;
/// The vector word when every vector is lent already.
const NO_VECTOR: u64 = u64::MAX;

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
    /// Starts lending `device_fd`, and one of `vector_fds` (the eventfds of vectors 1, 2, …) to
    /// each borrower while it stays connected; they must all outlive this value. `None` if the
    /// socket name is taken (another owner of the same device in another process, which cannot
    /// happen while the VFIO group is exclusive) or sockets are unavailable.
    pub fn start(
        bdf: &str,
        device_fd: RawFd,
        regions: Regions,
        vector_fds: Vec<RawFd>,
    ) -> Option<Lender> {
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
            .spawn(move || {
                let mut lending = Lending {
                    device_fd,
                    regions,
                    vector_fds,
                    leases: Vec::new(),
                };
                lending.run(&listener, &flag);
            })
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

/// The lender thread's state: what it lends, and which vector each connected borrower holds.
struct Lending {
    device_fd: RawFd,
    regions: Regions,
    vector_fds: Vec<RawFd>,
    /// (index into `vector_fds`, the borrower's connection): the vector is taken until the
    /// borrower closes the connection (it never writes to it).
    leases: Vec<(usize, UnixStream)>,
}

impl Lending {
    fn run(&mut self, listener: &UnixListener, stop: &AtomicBool) {
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        while !stop.load(Ordering::Relaxed) {
            // Wake up every 100 ms to notice `stop`.
            let mut fds = vec![PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
            fds.extend(
                self.leases
                    .iter()
                    .map(|(_, s)| PollFd::new(s.as_fd(), PollFlags::POLLIN)),
            );
            match poll(&mut fds, PollTimeout::from(100u8)) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(_) => return,
            }
            let fired: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            let mut ended = fired[1..].iter();
            self.leases
                .retain(|_| !ended.next().copied().unwrap_or(false));
            if !fired[0] {
                continue;
            }
            let Ok((stream, _)) = listener.accept() else {
                continue;
            };
            match getsockopt(&stream, PeerCredentials) {
                Ok(c) if c.uid() == me || c.uid() == 0 => self.lend(stream),
                Ok(c) => tracing::warn!(uid = c.uid(), "refused to lend the VFIO device"),
                Err(_) => {}
            }
        }
    }

    /// Sends the device fd, and the eventfd of a free vector if there is one.
    fn lend(&mut self, stream: UnixStream) {
        let free = (0..self.vector_fds.len()).find(|v| self.leases.iter().all(|(l, _)| l != v));
        let r = self.regions;
        let vector = free.map_or(NO_VECTOR, |v| v as u64 + 1);
        let msg: Vec<u8> = [
            MAGIC,
            r.bar0_offset,
            u64::from(r.bar0_mappable),
            r.bar2_offset,
            r.bar2_len,
            vector,
        ]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
        if let Err(e) = stream.send_with_fd(&msg[..], self.device_fd) {
            tracing::debug!(error = %e, "lending the VFIO device failed");
            return;
        }
        if let Some(v) = free {
            match stream.send_with_fd(&vector.to_le_bytes()[..], self.vector_fds[v]) {
                Ok(_) => self.leases.push((v, stream)),
                Err(e) => tracing::debug!(error = %e, "lending vector {vector} failed"),
            }
        }
    }
}

/// A pool reached through a VFIO device fd lent by the process that opened the device.
pub type BorrowedVfioDevice = Ivshmem<Borrowed>;

/// The borrower's backend: the lent device fd and, if one was free, a lent vector.
pub struct Borrowed {
    poll: PollWait,
    vector: Option<LentVector>,
    // Keeps the device open (dropped after the BAR mappings: see `Ivshmem`).
    _fd: File,
}

/// A vector lent by the owner: its number, its eventfd, and the connection that holds the lease
/// (the owner closes it when it exits, and its MSI-X routing goes with it).
struct LentVector {
    vector: u32,
    eventfd: File,
    lease: UnixStream,
    /// The owner is gone: no doorbell reaches the eventfd any more.
    lost: AtomicBool,
}

impl Backend for Borrowed {
    fn interrupts(&self) -> bool {
        self.vector
            .as_ref()
            .is_some_and(|v| !v.lost.load(Ordering::Relaxed))
    }

    fn own_vector(&self) -> u32 {
        self.vector.as_ref().map_or(0, |v| v.vector)
    }

    fn wait(&self, _vector: u32, timeout: Duration) -> Result<bool, DeviceError> {
        if let Some(v) = self
            .vector
            .as_ref()
            .filter(|v| !v.lost.load(Ordering::Relaxed))
        {
            return match wait_eventfd(v.eventfd.as_fd(), timeout, Some(v.lease.as_fd()))? {
                Some(rang) => Ok(rang),
                None => {
                    tracing::debug!("the VFIO owner exited: polling from now on");
                    v.lost.store(true, Ordering::Relaxed);
                    Ok(false)
                }
            };
        }
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
        let vector = match w(5) {
            NO_VECTOR => None,
            v => Some(
                receive_vector(&stream, v, vectors)
                    .map_err(|e| pci.vfio_err("the VFIO owner", e))?,
            ),
        };
        let backend = Borrowed {
            poll: PollWait::new(),
            vector: vector.map(|(vector, eventfd)| LentVector {
                vector,
                eventfd,
                lease: stream,
                lost: AtomicBool::new(false),
            }),
            _fd: fd,
        };
        let me = Ivshmem::new(pci.clone(), bar0, shm, vectors, backend)?;
        tracing::debug!(bdf = %pci.bdf, own_id = me.own_id(), "borrowed the VFIO device of another process");
        Ok(Some(me))
    }
}

/// Receives the eventfd of vector `v` that the owner lends, after checking `v` against the pool's
/// `vectors` (the owner waits on vector 0 itself).
fn receive_vector(stream: &UnixStream, v: u64, vectors: u32) -> Result<(u32, File), String> {
    let v = u32::try_from(v)
        .ok()
        .filter(|&v| v >= 1 && v < vectors)
        .ok_or(format!("lent vector {v}, but the pool has {vectors}"))?;
    let mut word = [0u8; 8];
    let (n, efd) = stream
        .recv_with_fd(&mut word)
        .map_err(|e| format!("receiving the eventfd of vector {v}: {e}"))?;
    match efd {
        Some(efd) if n == 8 && u64::from_le_bytes(word) == u64::from(v) => Ok((v, efd)),
        _ => Err(format!("sent a malformed message for vector {v}")),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

    /// Connects to the lender of `bdf` as a borrower would: the lending message's words, and the
    /// connection (the lease, while a vector came with it).
    fn borrow_words(bdf: &str) -> ([u64; WORDS], UnixStream) {
        let addr = SocketAddr::from_abstract_name(socket_name(bdf).as_bytes()).unwrap();
        let stream = UnixStream::connect_addr(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; WORDS * 8];
        let (n, fd) = stream.recv_with_fd(&mut buf).unwrap();
        assert!(n == buf.len() && fd.is_some());
        let words =
            std::array::from_fn(|i| u64::from_le_bytes(buf[i * 8..][..8].try_into().unwrap()));
        (words, stream)
    }

    #[test]
    fn each_borrower_gets_its_own_vector_while_it_stays() {
        let bdf = format!("test-{}", std::process::id());
        let device = EventFd::new(EFD_NONBLOCK).unwrap();
        let vectors: Vec<EventFd> = (0..2)
            .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
            .collect();
        let regions = Regions {
            bar0_offset: 1,
            bar0_mappable: true,
            bar2_offset: 2,
            bar2_len: 4096,
        };
        let fds = vectors.iter().map(AsRawFd::as_raw_fd).collect();
        let _lender = Lender::start(&bdf, device.as_raw_fd(), regions, fds).unwrap();
        let (w, first) = borrow_words(&bdf);
        assert_eq!(w, [MAGIC, 1, 1, 2, 4096, 1]);
        assert_eq!(receive_vector(&first, w[5], 3).unwrap().0, 1);
        let (w, second) = borrow_words(&bdf);
        assert_eq!(w[5], 2);
        // The eventfd lent is the owner's: a doorbell routed there wakes the borrower.
        let (_, efd) = receive_vector(&second, w[5], 3).unwrap();
        vectors[1].write(1).unwrap();
        let woke = wait_eventfd(efd.as_fd(), Duration::from_secs(5), None).unwrap();
        assert_eq!(woke, Some(true));
        // Every vector taken: the next borrower polls.
        let (w, _third) = borrow_words(&bdf);
        assert_eq!(w[5], NO_VECTOR);
        // A borrower that leaves gives its vector back.
        drop(first);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (w, s) = borrow_words(&bdf);
            if w[5] == 1 {
                break;
            }
            drop(s);
            assert!(
                std::time::Instant::now() < deadline,
                "vector 1 never came back"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // A vector outside the pool's is refused.
        assert!(receive_vector(&second, 3, 3).is_err());
    }
}
