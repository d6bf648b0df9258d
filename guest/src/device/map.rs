//! Device memory, mapped: a pool (an ivshmem device's BAR2, or the memory fd the daemon sends a
//! host process) as a [`Shm`], and the 256-byte register BAR (BAR0) with its 32-bit accesses.
//!
//! Every backend maps through here, so the pointer work of the device layer is in this module:
//! one place turns a mapping into a `Shm`, one type does volatile register accesses.

use super::DeviceError;
use memmap2::{MmapAsRawDesc, MmapOptions, MmapRaw};
use snoo_common::Shm;
use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;

/// Size of the register BAR.
pub const BAR0_LEN: u64 = 256;

/// The system's page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf only reads a system parameter; it has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// Maps `len` bytes of the pool at `file_offset` of `fd` (a sysfs `resource2` file, or a VFIO
/// device fd at its BAR2 region) as a [`Shm`].
pub fn map_pool(fd: impl MmapAsRawDesc, file_offset: u64, len: u64) -> Result<Shm, DeviceError> {
    let len =
        usize::try_from(len).map_err(|_| io::Error::other("pool larger than the address space"))?;
    shm_of(
        MmapOptions::new()
            .offset(file_offset)
            .len(len)
            .map_raw(fd)?,
    )
}

/// Maps the whole of `file` (the pool's memory object, as the daemon sends it) as a [`Shm`].
pub fn map_file(file: &File) -> Result<Shm, DeviceError> {
    shm_of(MmapRaw::map_raw(file)?)
}

/// A private anonymous mapping of `len` bytes as a [`Shm`], for tests.
#[cfg(test)]
pub fn anon_shm(len: usize) -> Shm {
    shm_of(MmapRaw::from(memmap2::MmapMut::map_anon(len).unwrap())).unwrap()
}

/// The one place where a mapping becomes a [`Shm`]. Every caller in this module passes a
/// read-write mapping (`MmapOptions::map_raw` maps read-write and shared, `MmapMut` is
/// read-write), which is what `Shm` needs besides alignment and lifetime, checked or given here.
fn shm_of(map: MmapRaw) -> Result<Shm, DeviceError> {
    let ptr = NonNull::new(map.as_mut_ptr()).ok_or_else(|| io::Error::other("null mapping"))?;
    // Page aligned unless the offset was not (memmap2 then points into the first page).
    if !ptr.as_ptr().cast::<u64>().is_aligned() {
        return Err(io::Error::other("pool mapping not 8-byte aligned").into());
    }
    let len = map.len();
    // SAFETY: `ptr..ptr+len` is a readable and writable mapping (see above), 8-byte aligned
    // (checked), and `map`, moved into the Shm as its owner, keeps it mapped until the Shm is
    // dropped (MmapRaw unmaps only in its own Drop, and moving it does not move the mapping).
    // Nothing else in this process accesses it but through the Shm.
    Ok(unsafe { Shm::from_raw(ptr, len, Box::new(map)) })
}

/// The register BAR, mapped: each access is one volatile 32-bit load or store.
pub struct Registers {
    base: NonNull<u32>,
    _map: MmapRaw,
}

// SAFETY: `Registers` holds a pointer into its own mapping (kept alive by `_map`) and only uses it
// for volatile 32-bit reads and writes of device registers, which have no Rust-visible memory
// state to race on (the device serialises them); nothing is tied to the creating thread.
unsafe impl Send for Registers {}
// SAFETY: as above: `&Registers` only allows those volatile accesses.
unsafe impl Sync for Registers {}

impl Registers {
    /// Maps the page(s) at `file_offset` of `fd` that hold the registers, which start `in_page`
    /// bytes into the first page.
    pub fn map(fd: impl MmapAsRawDesc, file_offset: u64, in_page: usize) -> io::Result<Registers> {
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
        // SAFETY: in bounds (checked above) of a live device mapping, 4-aligned (the base is,
        // see `map`); volatile, so the access happens exactly once, as one 32-bit load.
        unsafe { self.base.as_ptr().add(off as usize / 4).read_volatile() }
    }

    /// A 32-bit write of register `off`.
    pub fn write32(&self, off: u64, v: u32) {
        assert!(off.is_multiple_of(4) && off < BAR0_LEN, "register {off:#x}");
        // SAFETY: as for `read32`, one 32-bit store.
        unsafe { self.base.as_ptr().add(off as usize / 4).write_volatile(v) }
    }
}

/// How a backend reaches the register BAR.
pub enum Bar0 {
    /// Mapped.
    Mapped(Registers),
    /// Through `pread`/`pwrite` of a VFIO device fd whose BAR0 region (at `offset`) vfio-pci will
    /// not map. Errors are ignored: a register access has no way to report one (a lost doorbell
    /// is a late wake-up; the engine re-checks shared memory anyway).
    Fd { file: File, offset: u64 },
}

impl Bar0 {
    /// BAR0 of a VFIO device fd, its region at `offset`: mapped if vfio-pci allows it
    /// (`mappable`), else reached through a duplicate of the fd.
    pub fn vfio(fd: BorrowedFd<'_>, offset: u64, mappable: bool) -> io::Result<Bar0> {
        Ok(if mappable {
            Bar0::Mapped(Registers::map(&fd, offset, 0)?)
        } else {
            Bar0::Fd {
                file: fd.try_clone_to_owned()?.into(),
                offset,
            }
        })
    }

    /// A 32-bit read of register `off`.
    pub fn read32(&self, off: u64) -> u32 {
        match self {
            Bar0::Mapped(r) => r.read32(off),
            Bar0::Fd { file, offset } => {
                let mut b = [0u8; 4];
                let _ = file.read_exact_at(&mut b, offset + off);
                u32::from_le_bytes(b)
            }
        }
    }

    /// A 32-bit write of register `off`.
    pub fn write32(&self, off: u64, v: u32) {
        match self {
            Bar0::Mapped(r) => r.write32(off, v),
            Bar0::Fd { file, offset } => {
                let _ = file.write_all_at(&v.to_le_bytes(), offset + off);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// A scratch file of two pages standing in for a device fd (registers at `REGS`).
    fn scratch(name: &str) -> File {
        let path = std::env::temp_dir().join(format!("snoo-map-{name}-{}", std::process::id()));
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f.set_len(2 * page_size() as u64).unwrap();
        f
    }

    #[test]
    fn registers_mapped_or_through_the_fd() {
        let file = scratch("regs");
        let regs = page_size() as u64;
        for mappable in [true, false] {
            let bar0 = Bar0::vfio(file.as_fd(), regs, mappable).unwrap();
            assert_eq!(matches!(bar0, Bar0::Mapped(_)), mappable);
            bar0.write32(0x0C, 0x0003_0001 + u32::from(mappable));
            let mut b = [0u8; 4];
            file.read_exact_at(&mut b, regs + 0x0C).unwrap();
            assert_eq!(u32::from_le_bytes(b), 0x0003_0001 + u32::from(mappable));
            file.write_all_at(&7u32.to_le_bytes(), regs + 0x08).unwrap();
            assert_eq!(bar0.read32(0x08), 7);
        }
    }

    #[test]
    fn pools_map_whole_pages_only() {
        let file = scratch("pool");
        let page = page_size() as u64;
        let shm = map_pool(&file, page, page).unwrap();
        assert_eq!(shm.len(), page as usize);
        assert!(shm.write(8, b"pool"));
        let mut b = [0u8; 4];
        file.read_exact_at(&mut b, page + 8).unwrap();
        assert_eq!(&b, b"pool");
        assert_eq!(map_file(&file).unwrap().len(), 2 * page as usize);
        // An offset inside a page would give a Shm that is not 8-byte aligned.
        let err = map_pool(&file, 4, 64).unwrap_err();
        assert!(err.to_string().contains("not 8-byte aligned"), "{err}");
    }
}
