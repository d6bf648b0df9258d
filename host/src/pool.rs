//! A pool's shared-memory object: created, sized to a power of two, sealed, mapped, and given its
//! header.

use crate::config::PoolSpec;
use memmap2::MmapRaw;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use snoo_common::layout::{PeerState, PoolHeader};
use snoo_common::Shm;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::ptr::NonNull;

/// The memory object of one pool, mapped into the daemon.
pub struct Pool {
    pub spec: PoolSpec,
    file: File,
    shm: Shm,
}

impl Pool {
    /// Creates the memory object: a sealed memfd, or an unlinked file under `spec.mem_path`.
    pub fn create(spec: &PoolSpec) -> io::Result<Pool> {
        let file = match &spec.mem_path {
            None => {
                let fd = memfd_create(
                    format!("snoo:{}", spec.name).as_str(),
                    MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
                )?;
                let file = File::from(fd);
                file.set_len(spec.size)?;
                // Every peer receives this fd; sealing its size means no peer can shrink the object
                // under the others (which would SIGBUS them) or grow it.
                fcntl(
                    &file,
                    FcntlArg::F_ADD_SEALS(
                        SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL,
                    ),
                )?;
                file
            }
            Some(dir) => {
                // A unique name, opened exclusively and unlinked at once: nothing to clean up later,
                // even after a crash. Works for /dev/shm and hugetlbfs mounts alike.
                let mut last = None;
                let mut opened = None;
                for attempt in 0..16u32 {
                    let path = dir.join(format!(
                        "snoo-{}-{}-{}",
                        spec.name,
                        std::process::id(),
                        attempt
                    ));
                    match OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&path)
                    {
                        Ok(f) => {
                            std::fs::remove_file(&path)?;
                            opened = Some(f);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                let file =
                    opened.ok_or_else(|| last.unwrap_or_else(|| io::Error::other("no name")))?;
                file.set_len(spec.size).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot size the pool file in {} to {} bytes (hugetlbfs needs a multiple of the huge page size and enough free huge pages): {e}", dir.display(), spec.size),
                    )
                })?;
                file
            }
        };
        let map = MmapRaw::map_raw(&file)?;
        let ptr = NonNull::new(map.as_mut_ptr()).ok_or_else(|| io::Error::other("null mapping"))?;
        let len = map.len();
        // SAFETY: `map` is a shared read-write mapping of `len` bytes, page aligned, and is moved into
        // the Shm as its owner, so it stays mapped as long as the Shm lives.
        let shm = unsafe { Shm::from_raw(ptr, len, Box::new(map)) };
        PoolHeader::initialize(&shm, &spec.name, spec.ranks, spec.vectors, spec.max_peers)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Pool {
            spec: spec.clone(),
            file,
            shm,
        })
    }

    /// The fd sent to every peer.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Records a peer's state change in the pool's peer table and bumps the epoch.
    pub fn set_peer(&self, id: u16, state: PeerState) {
        // The daemon's own geometry is trusted: it wrote it and never reads it back from the pool.
        let header = PoolHeader::attach_trusted(&self.shm, self.spec.max_peers);
        if header.set_peer(u32::from(id), state).is_none() {
            tracing::error!(pool = %self.spec.name, id, "peer id outside the peer table");
        }
    }
}
