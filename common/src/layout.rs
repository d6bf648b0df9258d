//! The pool layout: what the daemon writes at the start of every pool and what guests validate.
//!
//! ```text
//! offset  size  field
//! 0x000   8     magic "SNOOPOOL"
//! 0x008   4     layout version (LAYOUT_VERSION)
//! 0x00C   4     header size in bytes (HEADER_SIZE)
//! 0x010   8     pool size in bytes (a power of two, equal to the mapping's length)
//! 0x018   4     configured ranks of a job (0 = not set)
//! 0x01C   4     max peers: slots in the peer table, and the bound on peer ids
//! 0x020   4     doorbell vectors per peer
//! 0x024   4     reserved (0)
//! 0x028   8     peer table offset
//! 0x030   8     engine area offset (page aligned)
//! 0x038   8     engine area size
//! 0x040   64    pool name, UTF-8, NUL padded (at most 63 bytes)
//! 0x080   8     epoch: bumped by the daemon on every join and departure (own cache line)
//! 0x0C0   64    reserved (0)
//! 0x100   16×P  peer table, slot i describes peer id i:
//!                 +0 state u32 (0 free, 1 alive, 2 dead)
//!                 +4 reserved u32
//!                 +8 generation u64: the epoch at which the slot last changed state
//! ...           engine area (laid out by the engine, see docs/layout.md)
//! ```
//!
//! All integers are little-endian. The daemon owns the header and the peer table; guests only read
//! them, and must validate everything they read because any VM attached to the pool can overwrite it.

use crate::shm::Shm;
use std::sync::atomic::Ordering;

/// "SNOOPOOL" read as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SNOOPOOL");
/// Version of this layout; bumped on any incompatible change.
pub const LAYOUT_VERSION: u32 = 1;
/// Size of the fixed header that precedes the peer table.
pub const HEADER_SIZE: usize = 0x100;
/// Bytes per peer-table slot.
pub const PEER_SLOT_SIZE: usize = 16;
/// Longest pool name in bytes (the field keeps a terminating NUL).
pub const MAX_NAME_LEN: usize = 63;
/// Peer ids are 16 bits in ivshmem's doorbell register.
pub const MAX_PEERS: u32 = 1 << 16;
/// Smallest pool: one page, and the alignment of the engine area.
pub const PAGE: usize = 4096;

/// Offset in the pool header of the magic ([`MAGIC`]), written last.
pub const OFF_MAGIC: usize = 0x00;
/// Offset in the pool header of the layout version ([`LAYOUT_VERSION`]).
pub const OFF_VERSION: usize = 0x08;
/// Offset in the pool header of the header size in bytes ([`HEADER_SIZE`]).
pub const OFF_HEADER_SIZE: usize = 0x0C;
/// Offset in the pool header of the pool size in bytes (u64), equal to the mapping's length.
pub const OFF_POOL_SIZE: usize = 0x10;
/// Offset in the pool header of the configured ranks of a job (0 = not set).
pub const OFF_RANKS: usize = 0x18;
/// Offset in the pool header of max peers: slots in the peer table, and the bound on peer ids.
pub const OFF_MAX_PEERS: usize = 0x1C;
/// Offset in the pool header of the number of doorbell vectors per peer.
pub const OFF_VECTORS: usize = 0x20;
/// Offset in the pool header of the peer table's offset (u64).
pub const OFF_PEER_TABLE: usize = 0x28;
/// Offset in the pool header of the engine area's offset (u64, page aligned).
pub const OFF_ENGINE: usize = 0x30;
/// Offset in the pool header of the engine area's size (u64).
pub const OFF_ENGINE_SIZE: usize = 0x38;
/// Offset in the pool header of the pool name: 64 bytes of UTF-8, NUL padded.
pub const OFF_NAME: usize = 0x40;
/// Offset in the pool header of the epoch (u64, on its own cache line), bumped on every join and
/// departure.
pub const OFF_EPOCH: usize = 0x80;

/// State of a peer-table slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Never used, or cleared.
    Free,
    /// Connected to the daemon.
    Alive,
    /// Its socket closed: the VM or process is gone.
    Dead,
}

impl PeerState {
    /// The word stored in the peer table.
    pub fn to_raw(self) -> u32 {
        match self {
            PeerState::Free => 0,
            PeerState::Alive => 1,
            PeerState::Dead => 2,
        }
    }

    /// Decodes a raw state word; unknown values (written by a buggy or hostile peer) are `None`.
    pub fn from_raw(v: u32) -> Option<Self> {
        match v {
            0 => Some(PeerState::Free),
            1 => Some(PeerState::Alive),
            2 => Some(PeerState::Dead),
            _ => None,
        }
    }
}

/// Errors found while building or validating a pool layout.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    /// The pool size is not a power of two, or is smaller than a page.
    #[error("pool size {0} is not a power of two of at least {PAGE} bytes")]
    BadSize(u64),
    /// The pool has no room for an engine area after the header and the peer table.
    #[error("pool of {size} bytes is too small for {max_peers} peers (needs at least {needed})")]
    TooSmall {
        /// Size of the pool, in bytes.
        size: u64,
        /// Peer-table slots asked for.
        max_peers: u32,
        /// Smallest pool size with room for them and a page of engine area, in bytes.
        needed: u64,
    },
    /// Max peers is 0 or above [`MAX_PEERS`].
    #[error("max peers must be between 1 and {MAX_PEERS}, got {0}")]
    BadMaxPeers(u32),
    /// The pool name is empty, longer than [`MAX_NAME_LEN`] bytes, or contains a NUL.
    #[error("pool name must be 1 to {MAX_NAME_LEN} bytes of UTF-8 without NUL, got {0:?}")]
    BadName(String),
    /// The mapping does not start with [`MAGIC`]: it is no SNOO pool, or not yet initialized.
    #[error("no SNOO pool here: bad magic {0:#018x}")]
    BadMagic(u64),
    /// The header's layout version is not [`LAYOUT_VERSION`].
    #[error("unsupported pool layout version {0} (this build speaks {LAYOUT_VERSION})")]
    BadVersion(u32),
    /// The header is inconsistent with the mapping or with itself; the text says which field.
    #[error("corrupt pool header: {0}")]
    Corrupt(&'static str),
}

/// Where things are in a pool of a given size; computed by the daemon, re-derived and compared by
/// guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    /// Size of the pool in bytes: a power of two, at least a page.
    pub pool_size: u64,
    /// Slots in the peer table; peer ids are below it.
    pub max_peers: u32,
    /// Offset of the peer table, right after the header.
    pub peer_table_offset: u64,
    /// Offset of the engine area: the first page boundary after the peer table.
    pub engine_offset: u64,
    /// Bytes of the engine area, to the end of the pool.
    pub engine_size: u64,
}

impl PoolGeometry {
    /// Lays out a pool of `pool_size` bytes with `max_peers` peer slots.
    pub fn new(pool_size: u64, max_peers: u32) -> Result<Self, LayoutError> {
        if pool_size < PAGE as u64 || !pool_size.is_power_of_two() {
            return Err(LayoutError::BadSize(pool_size));
        }
        if max_peers == 0 || max_peers > MAX_PEERS {
            return Err(LayoutError::BadMaxPeers(max_peers));
        }
        let table_end = HEADER_SIZE as u64 + u64::from(max_peers) * PEER_SLOT_SIZE as u64;
        let engine_offset = table_end.next_multiple_of(PAGE as u64);
        if engine_offset >= pool_size {
            return Err(LayoutError::TooSmall {
                size: pool_size,
                max_peers,
                needed: (engine_offset + PAGE as u64).next_power_of_two(),
            });
        }
        Ok(PoolGeometry {
            pool_size,
            max_peers,
            peer_table_offset: HEADER_SIZE as u64,
            engine_offset,
            engine_size: pool_size - engine_offset,
        })
    }

    /// Smallest power-of-two pool that has `engine_bytes` of engine area besides the header and a
    /// table of `max_peers` slots.
    pub fn size_for(engine_bytes: u64, max_peers: u32) -> u64 {
        let table_end = HEADER_SIZE as u64 + u64::from(max_peers) * PEER_SLOT_SIZE as u64;
        (table_end.next_multiple_of(PAGE as u64) + engine_bytes.max(1)).next_power_of_two()
    }

    fn slot_offset(&self, peer: u32) -> Option<usize> {
        (peer < self.max_peers)
            .then(|| self.peer_table_offset as usize + peer as usize * PEER_SLOT_SIZE)
    }
}

/// Static facts read from a validated header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInfo {
    /// The pool name, the key `SNOO_MPI_Init` looks for.
    pub name: String,
    /// Configured ranks of a job (0 = not set).
    pub ranks: u32,
    /// Doorbell vectors per peer.
    pub vectors: u32,
    /// Where things are in the pool, re-derived from its size and max peers.
    pub geometry: PoolGeometry,
}

/// Accessor for the header and peer table of a mapped pool.
///
/// # Example
///
/// The daemon writes the header into a zeroed pool, a guest validates it and follows the peer
/// table (64 KiB of heap memory standing in for the pool, as in the example of
/// [`Shm::from_raw`]):
///
/// ```
/// use snoo_common::layout::{PeerState, PoolHeader};
/// # use snoo_common::Shm;
/// # let mut mem = vec![0u64; 8192];
/// # let ptr = std::ptr::NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
/// # // SAFETY: as in the example of `Shm::from_raw`: 65536 readable and writable bytes, 8-byte
/// # // aligned, kept alive by the Shm, accessed only through it.
/// # let shm = unsafe { Shm::from_raw(ptr, 65536, Box::new(mem)) };
///
/// assert!(PoolHeader::open(&shm).is_err(), "no header yet");
/// let daemon = PoolHeader::initialize(&shm, "job", 2, 4, 8).unwrap();
/// assert_eq!(daemon.set_peer(1, PeerState::Alive), Some(1), "the new epoch");
///
/// let (guest, info) = PoolHeader::open(&shm).unwrap();
/// assert_eq!((info.name.as_str(), info.ranks, info.vectors), ("job", 2, 4));
/// assert_eq!(guest.epoch(), 1);
/// assert_eq!(guest.peer(1), Some((PeerState::Alive, 1)));
/// assert_eq!(guest.peer(8), None, "outside the table of 8 peers");
/// ```
pub struct PoolHeader<'a> {
    shm: &'a Shm,
    geometry: PoolGeometry,
}

fn word32(shm: &Shm, off: usize) -> u32 {
    // Offsets are constants inside HEADER_SIZE, and every pool is at least a page.
    shm.u32_at(off).map_or(0, |w| w.load(Ordering::Acquire))
}

fn word64(shm: &Shm, off: usize) -> u64 {
    shm.u64_at(off).map_or(0, |w| w.load(Ordering::Acquire))
}

fn validate_name(name: &str) -> Result<(), LayoutError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.contains('\0') {
        return Err(LayoutError::BadName(name.to_string()));
    }
    Ok(())
}

impl<'a> PoolHeader<'a> {
    /// Writes a fresh header and an empty peer table (daemon side). The mapping must be zeroed.
    pub fn initialize(
        shm: &'a Shm,
        name: &str,
        ranks: u32,
        vectors: u32,
        max_peers: u32,
    ) -> Result<Self, LayoutError> {
        validate_name(name)?;
        let geometry = PoolGeometry::new(shm.len() as u64, max_peers)?;
        let w32 = |off, v| shm.u32_at(off).map(|w| w.store(v, Ordering::Relaxed));
        let w64 = |off, v| shm.u64_at(off).map(|w| w.store(v, Ordering::Relaxed));
        w32(OFF_VERSION, LAYOUT_VERSION);
        w32(OFF_HEADER_SIZE, HEADER_SIZE as u32);
        w64(OFF_POOL_SIZE, geometry.pool_size);
        w32(OFF_RANKS, ranks);
        w32(OFF_MAX_PEERS, max_peers);
        w32(OFF_VECTORS, vectors);
        w64(OFF_PEER_TABLE, geometry.peer_table_offset);
        w64(OFF_ENGINE, geometry.engine_offset);
        w64(OFF_ENGINE_SIZE, geometry.engine_size);
        let mut field = [0u8; MAX_NAME_LEN + 1];
        field[..name.len()].copy_from_slice(name.as_bytes());
        shm.write(OFF_NAME, &field);
        w64(OFF_EPOCH, 0);
        // The magic goes last, with Release, so a reader that sees it sees a complete header.
        shm.u64_at(OFF_MAGIC)
            .ok_or(LayoutError::Corrupt("mapping too small"))?
            .store(MAGIC, Ordering::Release);
        Ok(PoolHeader { shm, geometry })
    }

    /// Validates the header of a mapped pool (guest side) and returns an accessor.
    ///
    /// Every field is copied once and checked against the mapping's real length, so a corrupted
    /// header yields an error, never an out-of-bounds access.
    pub fn open(shm: &'a Shm) -> Result<(Self, PoolInfo), LayoutError> {
        if shm.len() < PAGE {
            return Err(LayoutError::Corrupt("mapping smaller than a page"));
        }
        let magic = word64(shm, OFF_MAGIC);
        if magic != MAGIC {
            return Err(LayoutError::BadMagic(magic));
        }
        let version = word32(shm, OFF_VERSION);
        if version != LAYOUT_VERSION {
            return Err(LayoutError::BadVersion(version));
        }
        if word32(shm, OFF_HEADER_SIZE) as usize != HEADER_SIZE {
            return Err(LayoutError::Corrupt("header size"));
        }
        if word64(shm, OFF_POOL_SIZE) != shm.len() as u64 {
            return Err(LayoutError::Corrupt("pool size differs from the mapping"));
        }
        let max_peers = word32(shm, OFF_MAX_PEERS);
        let geometry = PoolGeometry::new(shm.len() as u64, max_peers)
            .map_err(|_| LayoutError::Corrupt("max peers"))?;
        if word64(shm, OFF_PEER_TABLE) != geometry.peer_table_offset
            || word64(shm, OFF_ENGINE) != geometry.engine_offset
            || word64(shm, OFF_ENGINE_SIZE) != geometry.engine_size
        {
            return Err(LayoutError::Corrupt("area offsets"));
        }
        let mut field = [0u8; MAX_NAME_LEN + 1];
        shm.read(OFF_NAME, &mut field);
        let len = field
            .iter()
            .position(|&b| b == 0)
            .ok_or(LayoutError::Corrupt("name"))?;
        let name = std::str::from_utf8(&field[..len])
            .map_err(|_| LayoutError::Corrupt("name"))?
            .to_string();
        let info = PoolInfo {
            name,
            ranks: word32(shm, OFF_RANKS),
            vectors: word32(shm, OFF_VECTORS),
            geometry,
        };
        Ok((PoolHeader { shm, geometry }, info))
    }

    /// An accessor whose geometry comes from a trusted source — the daemon's own configuration, or
    /// a guest's `open` at join — never re-read from the (guest-writable) header. Panics only if
    /// `max_peers` does not fit `shm`, which both sources have checked.
    pub fn attach_trusted(shm: &'a Shm, max_peers: u32) -> Self {
        let geometry =
            PoolGeometry::new(shm.len() as u64, max_peers).expect("validated at pool creation");
        PoolHeader { shm, geometry }
    }

    /// The pool's geometry, as computed at construction (never re-read from the header).
    pub fn geometry(&self) -> PoolGeometry {
        self.geometry
    }

    /// The pool epoch, bumped on every join and departure.
    pub fn epoch(&self) -> u64 {
        word64(self.shm, OFF_EPOCH)
    }

    /// State and generation of peer `id`, or `None` if the id is outside the table or the slot holds
    /// a value no daemon writes.
    pub fn peer(&self, id: u32) -> Option<(PeerState, u64)> {
        let off = self.geometry.slot_offset(id)?;
        let state = PeerState::from_raw(self.shm.u32_at(off)?.load(Ordering::Acquire))?;
        let generation = self.shm.u64_at(off + 8)?.load(Ordering::Acquire);
        Some((state, generation))
    }

    /// Daemon side: records that peer `id` changed state, and bumps the epoch. The slot is written
    /// before the epoch (Release), so a reader that sees the new epoch sees the new slot.
    /// Returns the new epoch.
    pub fn set_peer(&self, id: u32, state: PeerState) -> Option<u64> {
        let off = self.geometry.slot_offset(id)?;
        let epoch = self.shm.u64_at(OFF_EPOCH)?;
        let next = epoch.load(Ordering::Relaxed).wrapping_add(1);
        self.shm.u64_at(off + 8)?.store(next, Ordering::Relaxed);
        self.shm
            .u32_at(off)?
            .store(state.to_raw(), Ordering::Release);
        epoch.store(next, Ordering::Release);
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::test_util::heap_shm;

    #[test]
    fn geometry_rules() {
        assert_eq!(PoolGeometry::new(3000, 4), Err(LayoutError::BadSize(3000)));
        assert_eq!(PoolGeometry::new(6000, 4), Err(LayoutError::BadSize(6000)));
        assert!(matches!(
            PoolGeometry::new(4096, 4),
            Err(LayoutError::TooSmall { .. })
        ));
        let g = PoolGeometry::new(8192, 4).unwrap();
        assert_eq!((g.engine_offset, g.engine_size), (4096, 4096));
        assert_eq!(
            PoolGeometry::new(1 << 20, 0),
            Err(LayoutError::BadMaxPeers(0))
        );
        assert_eq!(
            PoolGeometry::new(1 << 20, MAX_PEERS + 1),
            Err(LayoutError::BadMaxPeers(MAX_PEERS + 1))
        );
        let big = PoolGeometry::new(1 << 22, MAX_PEERS).unwrap();
        assert_eq!(
            big.engine_offset,
            (HEADER_SIZE + 16 * (1 << 16)).next_multiple_of(PAGE) as u64
        );
        let s = PoolGeometry::size_for(1 << 20, 64);
        assert!(s.is_power_of_two() && PoolGeometry::new(s, 64).unwrap().engine_size >= 1 << 20);
    }

    #[test]
    fn header_round_trip_and_peers() {
        let shm = heap_shm(1 << 16);
        let h = PoolHeader::initialize(&shm, "job-a", 4, 2, 8).unwrap();
        assert_eq!(h.peer(3), Some((PeerState::Free, 0)));
        assert_eq!(h.set_peer(3, PeerState::Alive), Some(1));
        assert_eq!(h.set_peer(3, PeerState::Dead), Some(2));
        assert_eq!(h.set_peer(8, PeerState::Alive), None, "outside the table");
        let (r, info) = PoolHeader::open(&shm).unwrap();
        assert_eq!(info.name, "job-a");
        assert_eq!(
            (info.ranks, info.vectors, info.geometry.max_peers),
            (4, 2, 8)
        );
        assert_eq!(r.epoch(), 2);
        assert_eq!(r.peer(3), Some((PeerState::Dead, 2)));
    }

    #[test]
    fn corrupt_headers_are_rejected() {
        let shm = heap_shm(1 << 16);
        assert!(matches!(
            PoolHeader::open(&shm),
            Err(LayoutError::BadMagic(0))
        ));
        PoolHeader::initialize(&shm, "p", 2, 1, 8).unwrap();
        shm.u32_at(OFF_MAX_PEERS)
            .unwrap()
            .store(u32::MAX, Ordering::Relaxed);
        assert!(PoolHeader::open(&shm).is_err());
        PoolHeader::initialize(&shm, "p", 2, 1, 8).unwrap();
        shm.write(OFF_NAME, &[b'x'; 64]);
        assert_eq!(
            PoolHeader::open(&shm).err(),
            Some(LayoutError::Corrupt("name"))
        );
        PoolHeader::initialize(&shm, "p", 2, 1, 8).unwrap();
        shm.u64_at(OFF_POOL_SIZE)
            .unwrap()
            .store(1 << 40, Ordering::Relaxed);
        assert!(PoolHeader::open(&shm).is_err());
        PoolHeader::initialize(&shm, "p", 2, 1, 8).unwrap();
        shm.u32_at(HEADER_SIZE)
            .unwrap()
            .store(77, Ordering::Relaxed);
        let (h, _) = PoolHeader::open(&shm).unwrap();
        assert_eq!(h.peer(0), None, "slot 0 state 77 is not a state");
        assert!(PoolHeader::initialize(&shm, "", 2, 1, 8).is_err());
        assert!(PoolHeader::initialize(&shm, &"n".repeat(64), 2, 1, 8).is_err());
    }
}
