//! What the in-VM backends share: finding ivshmem devices in sysfs, the BAR0 registers, mapping
//! the pool, and peer join/leave events derived from the pool's peer table (a guest has no socket
//! to hear them on).

use super::{DeviceError, PeerEvent};
use memmap2::{MmapOptions, MmapRaw};
use snoo_common::layout::{PeerState, PoolHeader};
use snoo_common::protocol::MAX_VECTORS;
use snoo_common::Shm;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// PCI ids of QEMU's ivshmem devices (Red Hat / Qumranet vendor id).
pub const IVSHMEM_VENDOR: u16 = 0x1af4;
pub const IVSHMEM_DEVICE: u16 = 0x1110;

/// BAR0 register offsets (32-bit accesses only).
pub const REG_IV_POSITION: u64 = 0x08;
pub const REG_DOORBELL: u64 = 0x0C;
/// Size of the register BAR.
pub const BAR0_LEN: u64 = 256;

/// Where Linux lists PCI devices.
pub const SYSFS_PCI: &str = "/sys/bus/pci/devices";

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

/// An ivshmem device as sysfs lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDevice {
    /// Full PCI address, e.g. `0000:00:02.0`.
    pub bdf: String,
    /// Its sysfs directory.
    pub path: PathBuf,
}

impl PciDevice {
    /// The device at `bdf` (`0000:00:02.0`, or `00:02.0` for domain 0), which must exist.
    pub fn at(bdf: &str) -> Result<PciDevice, DeviceError> {
        Self::at_in(Path::new(SYSFS_PCI), bdf)
    }

    fn at_in(root: &Path, bdf: &str) -> Result<PciDevice, DeviceError> {
        let bdf = normalize_bdf(bdf);
        let path = root.join(&bdf);
        if !path.exists() {
            return Err(DeviceError::Pci(format!(
                "no PCI device {bdf} ({} does not exist)",
                path.display()
            )));
        }
        Ok(PciDevice { bdf, path })
    }

    /// Name of the driver bound to it, if any (`vfio-pci`, …).
    pub fn driver(&self) -> Option<String> {
        let link = fs::read_link(self.path.join("driver")).ok()?;
        Some(link.file_name()?.to_string_lossy().into_owned())
    }

    /// Its IOMMU group, if the kernel has an IOMMU.
    pub fn iommu_group(&self) -> Option<u32> {
        let link = fs::read_link(self.path.join("iommu_group")).ok()?;
        link.file_name()?.to_str()?.parse().ok()
    }

    /// True if it is an ivshmem device (1af4:1110).
    pub fn is_ivshmem(&self) -> bool {
        read_hex(&self.path.join("vendor")) == Some(u64::from(IVSHMEM_VENDOR))
            && read_hex(&self.path.join("device")) == Some(u64::from(IVSHMEM_DEVICE))
    }

    /// `(start, length)` of BAR `n` from the `resource` file; length 0 if unassigned.
    pub fn bar(&self, n: usize) -> Result<(u64, u64), DeviceError> {
        let text = fs::read_to_string(self.path.join("resource"))
            .map_err(|e| DeviceError::Pci(format!("{}: reading resource: {e}", self.bdf)))?;
        parse_resource_line(text.lines().nth(n).unwrap_or("")).ok_or_else(|| {
            DeviceError::Pci(format!("{}: cannot parse BAR{n} in resource", self.bdf))
        })
    }
}

/// `0000:00:02.0` from `00:02.0` (domain 0 implied); other forms are kept as given.
pub fn normalize_bdf(bdf: &str) -> String {
    let bdf = bdf.trim();
    if bdf.matches(':').count() == 1 {
        format!("0000:{bdf}")
    } else {
        bdf.to_string()
    }
}

fn read_hex(path: &Path) -> Option<u64> {
    let s = fs::read_to_string(path).ok()?;
    u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

/// `start end flags` in hex → `(start, length)`.
fn parse_resource_line(line: &str) -> Option<(u64, u64)> {
    let mut it = line
        .split_whitespace()
        .map(|s| u64::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok());
    let (start, end) = (it.next()??, it.next()??);
    Some((start, if end > start { end - start + 1 } else { 0 }))
}

/// Every ivshmem device of this machine, in PCI address order.
pub fn ivshmem_devices() -> Vec<PciDevice> {
    ivshmem_devices_in(Path::new(SYSFS_PCI))
}

fn ivshmem_devices_in(root: &Path) -> Vec<PciDevice> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut devs: Vec<PciDevice> = entries
        .flatten()
        .map(|e| PciDevice {
            bdf: e.file_name().to_string_lossy().into_owned(),
            path: e.path(),
        })
        .filter(PciDevice::is_ivshmem)
        .collect();
    devs.sort_by(|a, b| a.bdf.cmp(&b.bdf));
    devs
}

/// The 256-byte register BAR, mapped.
pub struct Registers {
    base: NonNull<u32>,
    _map: MmapRaw,
}

// SAFETY: the registers are only accessed with volatile 32-bit reads and writes, which the device
// serialises; the mapping lives as long as this value.
unsafe impl Send for Registers {}
// SAFETY: as above.
unsafe impl Sync for Registers {}

impl Registers {
    /// Maps the page(s) at `file_offset` of `fd` that hold the registers, which start `in_page`
    /// bytes into the first page.
    pub fn map(
        fd: impl memmap2::MmapAsRawDesc,
        file_offset: u64,
        in_page: usize,
    ) -> io::Result<Registers> {
        let page = page_size();
        let len = (in_page + BAR0_LEN as usize).next_multiple_of(page);
        let map = MmapOptions::new()
            .offset(file_offset)
            .len(len)
            .map_raw(fd)?;
        if !in_page.is_multiple_of(4) {
            return Err(io::Error::other("registers not 32-bit aligned"));
        }
        // SAFETY: in_page + BAR0_LEN <= len, so the pointer stays inside the mapping.
        let p = unsafe { map.as_mut_ptr().add(in_page) } as *mut u32;
        let base = NonNull::new(p).ok_or_else(|| io::Error::other("null mapping"))?;
        Ok(Registers { base, _map: map })
    }

    /// A 32-bit read of register `off` (a multiple of 4 below 256).
    pub fn read32(&self, off: u64) -> u32 {
        assert!(off.is_multiple_of(4) && off < BAR0_LEN, "register {off:#x}");
        // SAFETY: in bounds (checked above) of a live device mapping; volatile, so the access
        // happens exactly once, as one 32-bit load.
        unsafe { self.base.as_ptr().add(off as usize / 4).read_volatile() }
    }

    /// A 32-bit write of register `off`.
    pub fn write32(&self, off: u64, v: u32) {
        assert!(off.is_multiple_of(4) && off < BAR0_LEN, "register {off:#x}");
        // SAFETY: as for `read32`.
        unsafe { self.base.as_ptr().add(off as usize / 4).write_volatile(v) }
    }
}

/// Reads IVPosition: this VM's peer id on its daemon.
pub fn iv_position(read: u32, bdf: &str) -> Result<u16, DeviceError> {
    u16::try_from(read).map_err(|_| {
        DeviceError::Pci(format!(
            "{bdf}: IVPosition reads {read:#x}: the device is not connected to a server, or its \
             memory decoding is off"
        ))
    })
}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// Maps `len` bytes of the pool at `file_offset` of `fd` as a [`Shm`].
pub fn map_pool(
    fd: impl memmap2::MmapAsRawDesc,
    file_offset: u64,
    len: u64,
) -> Result<Shm, DeviceError> {
    let len =
        usize::try_from(len).map_err(|_| io::Error::other("pool larger than the address space"))?;
    let map = MmapOptions::new()
        .offset(file_offset)
        .len(len)
        .map_raw(fd)?;
    let ptr = NonNull::new(map.as_mut_ptr()).ok_or_else(|| io::Error::other("null mapping"))?;
    // SAFETY: a shared read-write mapping of `len` bytes, page aligned, kept alive by the Shm.
    Ok(unsafe { Shm::from_raw(ptr, len, Box::new(map)) })
}

/// Doorbell vectors per peer according to the pool header, if it has one.
pub fn header_vectors(shm: &Shm) -> Option<u32> {
    let (_, info) = PoolHeader::open(shm).ok()?;
    (1..=MAX_VECTORS)
        .contains(&info.vectors)
        .then_some(info.vectors)
}

/// How an endpoint without interrupts waits: it sleeps with a backoff from 50 µs to 1 ms, and the
/// engine re-checks shared memory after each nap. An idle waiter wakes at most a thousand times a
/// second; one that follows activity starts short again.
pub struct PollWait(Mutex<Backoff>);

struct Backoff {
    nap: Duration,
    last_end: Instant,
}

impl PollWait {
    /// First and longest sleep of an idle waiter.
    pub const MIN_NAP: Duration = Duration::from_micros(50);
    pub const MAX_NAP: Duration = Duration::from_millis(1);
    /// A wait that starts this long after the previous one ended follows activity.
    const ACTIVE_GAP: Duration = Duration::from_millis(2);

    pub fn new() -> PollWait {
        PollWait(Mutex::new(Backoff {
            nap: Self::MIN_NAP,
            last_end: Instant::now(),
        }))
    }

    /// `Device::wait` of an endpoint without interrupts: checks `vector` against `vectors`, naps
    /// (at most `timeout`) and reports no interrupt, so the caller re-checks shared memory.
    pub fn wait(&self, vector: u32, vectors: u32, timeout: Duration) -> Result<bool, DeviceError> {
        check_vector(vector, vectors)?;
        self.nap(timeout);
        Ok(false)
    }

    /// Sleeps for the next nap of the backoff, at most `timeout`.
    pub fn nap(&self, timeout: Duration) {
        let nap = {
            let mut b = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if b.last_end.elapsed() > Self::ACTIVE_GAP {
                b.nap = Self::MIN_NAP;
            }
            let nap = b.nap;
            b.nap = (b.nap * 2).min(Self::MAX_NAP);
            nap
        };
        std::thread::sleep(nap.min(timeout));
        self.0.lock().unwrap_or_else(|p| p.into_inner()).last_end = Instant::now();
    }
}

impl Default for PollWait {
    fn default() -> Self {
        Self::new()
    }
}

/// Peer joins and departures read from the pool's peer table, as the daemon maintains it.
pub struct PeerWatch {
    own: u16,
    state: Mutex<WatchState>,
}

struct WatchState {
    epoch: Option<u64>,
    // Alive peers other than this one, with the generation they joined with.
    alive: BTreeMap<u16, u64>,
}

impl PeerWatch {
    pub fn new(own: u16) -> PeerWatch {
        PeerWatch {
            own,
            state: Mutex::new(WatchState {
                epoch: None,
                alive: BTreeMap::new(),
            }),
        }
    }

    /// Alive peers other than `own`, from the table as it is now (empty if the header is invalid).
    pub fn alive(&self, shm: &Shm) -> BTreeMap<u16, u64> {
        let mut out = BTreeMap::new();
        let Ok((header, info)) = PoolHeader::open(shm) else {
            return out;
        };
        // Peer ids are 16 bits, and PoolHeader bounds max_peers by that.
        for id in 0..info.geometry.max_peers.min(1 << 16) {
            if id == u32::from(self.own) {
                continue;
            }
            if let Some((PeerState::Alive, g)) = header.peer(id) {
                out.insert(id as u16, g);
            }
        }
        out
    }

    /// Changes since the last call (the first call reports every peer already there as joined).
    pub fn take_events(&self, shm: &Shm) -> Vec<PeerEvent> {
        let Ok((header, _)) = PoolHeader::open(shm) else {
            return Vec::new();
        };
        let epoch = header.epoch();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.epoch == Some(epoch) {
            return Vec::new();
        }
        let now = self.alive(shm);
        let mut events = Vec::new();
        for (id, g) in &st.alive {
            if now.get(id) != Some(g) {
                events.push(PeerEvent::Left(*id));
            }
        }
        for (id, g) in &now {
            if st.alive.get(id) != Some(g) {
                events.push(PeerEvent::Joined(*id));
            }
        }
        st.alive = now;
        st.epoch = Some(epoch);
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bdf_and_resource_parsing() {
        assert_eq!(normalize_bdf("00:02.0"), "0000:00:02.0");
        assert_eq!(normalize_bdf(" 0000:00:03.0\n"), "0000:00:03.0");
        assert_eq!(
            parse_resource_line("0x00000000febf1000 0x00000000febf10ff 0x0000000000040200"),
            Some((0xfebf1000, 256))
        );
        assert_eq!(
            parse_resource_line("0x0000000000000000 0x0000000000000000 0x0000000000000000"),
            Some((0, 0))
        );
        assert_eq!(parse_resource_line(""), None);
        assert_eq!(doorbell_value(3, 1), 0x0003_0001);
        assert_eq!(doorbell_value(0xffff, 0x1ff), 0xffff_00ff);
    }

    fn anon_shm(len: usize) -> Shm {
        let map = MmapRaw::from(memmap2::MmapMut::map_anon(len).unwrap());
        let ptr = NonNull::new(map.as_mut_ptr()).unwrap();
        // SAFETY: a private read-write anonymous mapping of `len` bytes, kept alive by the Shm.
        unsafe { Shm::from_raw(ptr, len, Box::new(map)) }
    }

    #[test]
    fn peer_events_follow_the_peer_table() {
        let shm = anon_shm(1 << 16);
        let watch = PeerWatch::new(1);
        assert!(watch.take_events(&shm).is_empty(), "no header, no events");
        let h = PoolHeader::initialize(&shm, "job", 2, 1, 8).unwrap();
        h.set_peer(1, PeerState::Alive);
        h.set_peer(2, PeerState::Alive);
        // The first call reports the peers already there; our own slot is never a peer.
        assert_eq!(watch.take_events(&shm), [PeerEvent::Joined(2)]);
        assert!(watch.take_events(&shm).is_empty());
        h.set_peer(2, PeerState::Dead);
        h.set_peer(3, PeerState::Alive);
        assert_eq!(
            watch.take_events(&shm),
            [PeerEvent::Left(2), PeerEvent::Joined(3)]
        );
        // A slot reused by a new peer between two looks is a departure and a join.
        h.set_peer(3, PeerState::Dead);
        h.set_peer(3, PeerState::Alive);
        assert_eq!(
            watch.take_events(&shm),
            [PeerEvent::Left(3), PeerEvent::Joined(3)]
        );
        assert_eq!(watch.alive(&shm).into_keys().collect::<Vec<_>>(), [3]);
        // A corrupted slot state is not a live peer.
        shm.u32_at(snoo_common::layout::HEADER_SIZE + 3 * 16)
            .unwrap()
            .store(77, std::sync::atomic::Ordering::Relaxed);
        assert!(watch.alive(&shm).is_empty());
    }

    #[test]
    fn scans_a_fake_sysfs() {
        let root = std::env::temp_dir().join(format!("snoo-fake-sysfs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for (bdf, vendor, device) in [
            ("0000:00:03.0", "0x1af4", "0x1110"),
            ("0000:00:01.0", "0x8086", "0x29c0"),
            ("0000:00:02.0", "0x1af4", "0x1110\n"),
        ] {
            let d = root.join(bdf);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("vendor"), vendor).unwrap();
            fs::write(d.join("device"), device).unwrap();
        }
        let found: Vec<String> = ivshmem_devices_in(&root)
            .into_iter()
            .map(|d| d.bdf)
            .collect();
        assert_eq!(found, ["0000:00:02.0", "0000:00:03.0"]);
        assert!(PciDevice::at_in(&root, "00:02.0").is_ok());
        assert!(PciDevice::at_in(&root, "00:09.0").is_err());
        assert_eq!(PciDevice::at_in(&root, "00:02.0").unwrap().driver(), None);
        fs::remove_dir_all(&root).unwrap();
    }
}
