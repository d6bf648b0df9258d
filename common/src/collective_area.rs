//! The collective area: the block of its heap through which each member of a communicator takes
//! part in small collectives (the guest's `collective::shared` drives the protocol). Laid out as
//!
//! | offset | what |
//! |---|---|
//! | 0 | ARRIVE flag: the owner's count of collectives it has published |
//! | 8 + 8i | the length of the data in cell i (i < [`DEPTH`]), on ARRIVE's cache line |
//! | 64 | DONE flag: the owner's count of collectives it has finished reading |
//! | 128 + i·[`CELL`] | cell i: the data of collective k lies in cell (base + k) mod [`DEPTH`] |
//!
//! Every word of an area has one writer, its owner; every other member reads it, so all of it is
//! untrusted. A member announces its area once (offset and where its flag count starts, an
//! [`Announce`] sent by message); [`Area::check`] accepts it only wholly inside the owner's heap.
//! From then on every position is computed from the checked offset alone, never from anything
//! read from the area: a flag is only a number to wait for, a length is only compared with the
//! length expected ([`check_len`]) and a cell is opaque bytes.
//!
//! ```
//! use snoo_common::collective_area::{check_len, Announce, Area, LenError, CELL, SIZE};
//!
//! // Rank 3's heap is 1 MiB at 4 MiB; it announces an area at its start, counting from 7.
//! let heap = (4 << 20, 1 << 20);
//! let wire = Announce { offset: Some(4 << 20), count: 7 }.encode();
//! let a = Area::check(Announce::decode(&wire), heap).unwrap();
//! assert!(a.cell(1) + CELL <= (4 << 20) + SIZE);
//! assert_eq!(a.target(1), 8);
//! // A member that published 100 bytes where 64 were expected: the reader's data was truncated.
//! assert_eq!(check_len(100, 64), Err(LenError::Longer(100)));
//! // An area reaching past the heap's end is refused.
//! let late = Announce { offset: Some((5 << 20) - 64), count: 0 };
//! assert!(Area::check(late, heap).is_err());
//! ```

use thiserror::Error;

/// The most bytes one member writes for one collective.
pub const CELL: usize = 32768;
/// Cells per area: a member that only writes (a broadcast's root) runs up to `DEPTH` collectives
/// ahead of its readers before it waits for the cell it is about to overwrite. Four took
/// osu_bcast (2 ranks) from 1.19 to 1.00 µs at 8 KiB against two; eight gained nothing more
/// (docs/collectives.md).
pub const DEPTH: u64 = 4;
/// Offset of the ARRIVE flag.
const ARRIVE: usize = 0;
/// Offset of the cells' lengths (one word per cell).
const LENS: usize = 8;
/// Offset of the DONE flag, on its own cache line.
const DONE: usize = 64;
/// Offset of the first cell.
const CELLS: usize = 128;
/// Bytes of an area.
pub const SIZE: usize = CELLS + DEPTH as usize * CELL;
/// An area starts on a cache line, so that each flag has one of its own.
pub const ALIGN: u64 = 64;
/// Flag counts at or above this are refused when announced: a count grows by one per collective,
/// so with counts below it the sums the protocol makes never overflow.
pub const MAX_COUNT: u64 = 1 << 62;

const _: () = assert!(
    LENS + DEPTH as usize * 8 <= DONE,
    "the lengths share ARRIVE's line"
);

/// What a member tells the others when a communicator first uses the areas: where its area is
/// (`None`: it has none, and the communicator runs its collectives by message) and the value its
/// flags hold now (they only ever grow, also across communicators reusing an area).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announce {
    /// Pool offset of the area.
    pub offset: Option<u64>,
    /// The area's flag count before this communicator's first collective.
    pub count: u64,
}

impl Announce {
    /// Bytes of an encoded announcement.
    pub const BYTES: usize = 16;

    /// Little-endian offset (all ones for none), then count.
    pub fn encode(&self) -> [u8; Self::BYTES] {
        let mut b = [0u8; Self::BYTES];
        b[..8].copy_from_slice(&self.offset.unwrap_or(u64::MAX).to_le_bytes());
        b[8..].copy_from_slice(&self.count.to_le_bytes());
        b
    }

    /// Any 16 bytes decode; [`Area::check`] judges the result.
    pub fn decode(b: &[u8; Self::BYTES]) -> Self {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let off = word(0);
        Announce {
            offset: (off != u64::MAX).then_some(off),
            count: word(8),
        }
    }
}

/// Why an announced area is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AreaError {
    /// The area is not [`ALIGN`]-byte aligned or does not lie wholly in its owner's heap.
    #[error("collective area at pool offset {0:#x} is not in its heap")]
    NotInHeap(u64),
    /// The flag count is [`MAX_COUNT`] or more.
    #[error("collective area flag count {0:#x} is out of range")]
    Count(u64),
}

/// An area's two flags, each on its own cache line and written by the owner only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// How many collectives the owner has published (its data in its cell).
    Arrive,
    /// How many collectives the owner has finished reading.
    Done,
}

/// A member's area, its place checked against its owner's heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Area {
    off: usize,
    base: u64,
}

impl Area {
    /// Accepts an announced area that lies, aligned, wholly in `heap` (pool offset and length of
    /// the owner's heap) with a flag count below [`MAX_COUNT`]. An announcement without an
    /// offset is not an area: refused as not in the heap.
    pub fn check(a: Announce, heap: (usize, usize)) -> Result<Self, AreaError> {
        let off = a.offset.unwrap_or(u64::MAX);
        let (start, len) = (heap.0 as u64, heap.1 as u64);
        let inside = off >= start
            && off
                .checked_add(SIZE as u64)
                .zip(start.checked_add(len))
                .is_some_and(|(end, heap_end)| end <= heap_end);
        if !off.is_multiple_of(ALIGN) || !inside {
            return Err(AreaError::NotInHeap(off));
        }
        if a.count >= MAX_COUNT {
            return Err(AreaError::Count(a.count));
        }
        let off = usize::try_from(off).map_err(|_| AreaError::NotInHeap(off))?;
        Ok(Area { off, base: a.count })
    }

    /// Pool offset of the area.
    pub fn offset(&self) -> usize {
        self.off
    }

    /// The flag count the area started this communicator with.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Pool offset of a flag.
    pub fn flag(&self, which: Flag) -> usize {
        self.off
            + match which {
                Flag::Arrive => ARRIVE,
                Flag::Done => DONE,
            }
    }

    /// The value the owner's flags reach in the communicator's `k`-th collective.
    pub fn target(&self, k: u64) -> u64 {
        self.base.wrapping_add(k)
    }

    /// The DONE value that says the owner has finished the collective that last used the cell
    /// of collective `k`; `None` while `k` is among the first [`DEPTH`] (the cell is unused).
    pub fn reused_after(&self, k: u64) -> Option<u64> {
        (k > DEPTH).then(|| self.target(k - DEPTH))
    }

    fn slot(&self, k: u64) -> usize {
        (self.target(k) % DEPTH) as usize
    }

    /// Pool offset of the owner's cell for collective `k` ([`CELL`] bytes, all in the area).
    pub fn cell(&self, k: u64) -> usize {
        self.off + CELLS + self.slot(k) * CELL
    }

    /// Pool offset of the word holding the length of the owner's data for collective `k`.
    pub fn len_at(&self, k: u64) -> usize {
        self.off + LENS + self.slot(k) * 8
    }
}

/// A member's published length that is not the one expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum LenError {
    /// More bytes than expected (the reader would truncate them).
    #[error("collective message of {0} bytes is longer than expected")]
    Longer(u64),
    /// Fewer bytes than expected.
    #[error("collective message of {0} bytes is shorter than expected")]
    Shorter(u64),
}

/// Compares a length read from an area with the length `want` every member passes alike; only
/// an exact match lets the reader copy `want` bytes (never more than a [`CELL`]: a longer `want`
/// never takes the area).
pub fn check_len(got: u64, want: usize) -> Result<(), LenError> {
    match got.cmp(&(want as u64)) {
        std::cmp::Ordering::Equal if want <= CELL => Ok(()),
        std::cmp::Ordering::Less => Err(LenError::Shorter(got)),
        _ => Err(LenError::Longer(got)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAP: (usize, usize) = (1 << 20, 1 << 20);

    fn at(off: u64, count: u64) -> Result<Area, AreaError> {
        Area::check(
            Announce {
                offset: Some(off),
                count,
            },
            HEAP,
        )
    }

    #[test]
    fn announcements_round_trip() {
        for a in [
            Announce {
                offset: None,
                count: 3,
            },
            Announce {
                offset: Some(0x4000),
                count: u64::MAX,
            },
        ] {
            assert_eq!(Announce::decode(&a.encode()), a);
        }
    }

    #[test]
    fn only_aligned_areas_wholly_in_the_heap_are_accepted() {
        let end = (HEAP.0 + HEAP.1) as u64;
        assert!(at(HEAP.0 as u64, 0).is_ok());
        assert!(at(end - SIZE as u64, 0).is_ok());
        for off in [
            0,
            HEAP.0 as u64 - 64,
            HEAP.0 as u64 + 8,
            end - SIZE as u64 + 64,
            end,
            u64::MAX - 63,
        ] {
            assert_eq!(at(off, 0), Err(AreaError::NotInHeap(off)), "{off:#x}");
        }
        let none = Announce {
            offset: None,
            count: 0,
        };
        assert!(Area::check(none, HEAP).is_err());
        assert_eq!(
            at(HEAP.0 as u64, MAX_COUNT),
            Err(AreaError::Count(MAX_COUNT))
        );
    }

    #[test]
    fn cells_rotate_from_the_announced_count() {
        let a = at(HEAP.0 as u64, 6).unwrap();
        let cells: Vec<_> = (1..=5)
            .map(|k| (a.cell(k) - a.offset() - CELLS) / CELL)
            .collect();
        assert_eq!(cells, [3, 0, 1, 2, 3]);
        assert_eq!(a.len_at(2), a.offset() + LENS);
        assert_eq!(a.reused_after(4), None);
        assert_eq!(a.reused_after(5), Some(7));
        assert_eq!(a.flag(Flag::Arrive), a.offset());
        assert_eq!(a.flag(Flag::Done), a.offset() + 64);
    }

    #[test]
    fn only_the_expected_length_passes() {
        assert_eq!(check_len(64, 64), Ok(()));
        assert_eq!(check_len(3, 64), Err(LenError::Shorter(3)));
        assert_eq!(check_len(1 << 40, 64), Err(LenError::Longer(1 << 40)));
        let big = CELL + 1;
        assert!(check_len(big as u64, big).is_err());
    }
}
