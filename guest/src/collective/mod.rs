//! Collective operations on a communicator. Each algorithm is written once as a
//! [`Schedule`](schedule::Schedule) of point-to-point steps on the communicator's collective
//! context (so they never match the program's own receives): the blocking calls here run one at
//! once, and bindings (the MPI library's non-blocking collectives) start one and advance it with
//! [`Schedule::test`](schedule::Schedule::test). Shared-memory algorithms designed for the pool
//! can replace an algorithm without changing the calls.

pub mod algorithm;
pub mod schedule;
mod shared;

use crate::api::Comm;
use crate::error::{Error, Result};
use schedule::{whole, whole_mut, Region, Schedule};

pub use schedule::{Combine, Elements};
pub(crate) use shared::Areas;
pub use shared::{CELL, DEPTH};

/// Tags on the collective context below this one are the blocking calls' own (1 is communicator
/// creation's); a binding numbering its schedules uses tags from here on.
pub const FIRST_FREE_TAG: i32 = 16;

const BARRIER_TAG: i32 = 2;
const BCAST_TAG: i32 = 3;
const REDUCE_TAG: i32 = 4;
const GATHER_TAG: i32 = 5;
const SCATTER_TAG: i32 = 6;
const ALLGATHER_TAG: i32 = 7;
const ALLTOALL_TAG: i32 = 8;
const SCAN_TAG: i32 = 9;

fn same_len(what: &str, out: usize, data: usize) -> Result<()> {
    if out != data {
        return Err(Error::Arg(format!(
            "{what}: result buffer of {out} bytes for {data} bytes of data"
        )));
    }
    Ok(())
}

/// `buf` cut into `n` blocks of equal length.
fn blocks(buf: Region, n: u32, what: &str) -> Result<Vec<Region>> {
    let n = n as usize;
    if !buf.len().is_multiple_of(n) {
        return Err(Error::Arg(format!(
            "{what}: a buffer of {} bytes is not {n} equal blocks",
            buf.len()
        )));
    }
    let b = buf.len() / n;
    Ok((0..n).map(|i| buf.part(i * b, b)).collect())
}

impl Comm<'_> {
    fn check_root(&self, root: u32) -> Result<()> {
        if root >= self.size {
            return Err(Error::Rank {
                rank: root.into(),
                size: self.size,
            });
        }
        Ok(())
    }

    /// Blocks until every rank of the communicator has called it (MPI_Barrier).
    pub fn barrier(&self) -> Result<()> {
        if self.shm_barrier()?.is_some() {
            return Ok(());
        }
        let mut s = Schedule::new(BARRIER_TAG);
        algorithm::barrier(&mut s, self.rank, self.size);
        s.wait(self)
    }

    /// Broadcasts `buf` from `root` to every rank (MPI_Bcast); every rank passes a buffer of the
    /// same length.
    pub fn bcast_bytes(&self, buf: &mut [u8], root: u32) -> Result<()> {
        self.check_root(root)?;
        if self.shm_bcast(buf, root)?.is_some() {
            return Ok(());
        }
        let mut s = Schedule::new(BCAST_TAG);
        algorithm::bcast(&mut s, whole_mut(buf), root, self.rank, self.size);
        s.wait(self)
    }

    /// Reduces every rank's `data` into `out` at `root` (MPI_Reduce): `out = d0 ∘ d1 ∘ … ∘ dn−1`
    /// in rank order, where `combine(a, b)` sets `b = a ∘ b` (MPI's user-function convention:
    /// `inoutvec = invec ∘ inoutvec`). `out` is used at the root only and has `data`'s length.
    pub fn reduce_bytes(
        &self,
        data: &[u8],
        out: &mut [u8],
        root: u32,
        combine: &mut Combine<'_>,
    ) -> Result<()> {
        self.check_root(root)?;
        if self.rank == root {
            same_len("reduce", out.len(), data.len())?;
        }
        let mine: &mut [u8] = if self.rank == root { out } else { &mut [] };
        let out = match self.shm_reduce(data, mine, Some(root), combine)? {
            Some(()) => return Ok(()),
            None => mine,
        };
        let mut s = Schedule::new(REDUCE_TAG);
        s.reduce_with(Box::new(combine));
        algorithm::reduce(
            &mut s,
            whole(data),
            whole_mut(out),
            root,
            self.rank,
            self.size,
        );
        s.wait(self)
    }

    /// Reduces every rank's `data` into every rank's `out` (MPI_Allreduce), in rank order as
    /// [`Comm::reduce_bytes`]; `combine` always sees the whole data.
    pub fn allreduce_bytes(
        &self,
        data: &[u8],
        out: &mut [u8],
        combine: &mut Combine<'_>,
    ) -> Result<()> {
        self.allreduce_elements(data, out, None, combine)
    }

    /// [`Comm::allreduce_bytes`] for data of the given [`Elements`]. Large data is then split
    /// at element boundaries and each rank reduces its own slice, in parallel with the others,
    /// so `combine` may see any run of whole elements, never a part of one, and, for a
    /// commutative operation, its operands in any order. Every rank passes the same `shape`.
    ///
    /// ```no_run
    /// # fn main() -> snoo_mpi::Result<()> {
    /// let world = snoo_mpi::init("job")?;
    /// let comm = world.dup()?;
    /// // Sum 8-byte integers: the combine works on any whole number of them.
    /// let data: Vec<u8> = (0..16384u64).flat_map(|i| i.to_le_bytes()).collect();
    /// let mut out = vec![0u8; data.len()];
    /// let shape = snoo_mpi::collective::Elements { unit: 8, commutative: true };
    /// comm.allreduce_elements(&data, &mut out, Some(shape), &mut |a, b| {
    ///     for (x, y) in a.chunks(8).zip(b.chunks_mut(8)) {
    ///         let s = u64::from_le_bytes(x.try_into().unwrap())
    ///             + u64::from_le_bytes(y.try_into().unwrap());
    ///         y.copy_from_slice(&s.to_le_bytes());
    ///     }
    ///     Ok(())
    /// })?;
    /// assert_eq!(out[8..16], (world.size() as u64).to_le_bytes());
    /// # world.finalize()
    /// # }
    /// ```
    pub fn allreduce_elements(
        &self,
        data: &[u8],
        out: &mut [u8],
        shape: Option<Elements>,
        combine: &mut Combine<'_>,
    ) -> Result<()> {
        same_len("allreduce", out.len(), data.len())?;
        if self.shm_reduce(data, out, None, combine)?.is_some() {
            return Ok(());
        }
        let mut s = Schedule::new(REDUCE_TAG);
        s.reduce_with(Box::new(combine));
        algorithm::allreduce_in_slices(
            &mut s,
            whole(data),
            whole_mut(out),
            shape,
            self.rank,
            self.size,
        );
        s.wait(self)
    }

    /// Gathers every rank's `data` at `root`, in rank order, into `out` (MPI_Gather): `out` has
    /// `size × data.len()` bytes at the root and is unused elsewhere.
    pub fn gather_bytes(&self, data: &[u8], out: &mut [u8], root: u32) -> Result<()> {
        self.check_root(root)?;
        let mut s = Schedule::new(GATHER_TAG);
        let parts = if self.rank == root {
            same_len(
                "gather",
                out.len(),
                data.len().saturating_mul(self.size as usize),
            )?;
            blocks(whole_mut(out), self.size, "gather")?
        } else {
            Vec::new()
        };
        algorithm::gather(
            &mut s,
            Some(whole(data)),
            &parts,
            root,
            self.rank,
            self.size,
        );
        s.wait(self)
    }

    /// Scatters the root's `data` (`size` equal blocks, unused elsewhere) so that rank `r` gets
    /// block `r` in `out` (MPI_Scatter).
    pub fn scatter_bytes(&self, data: &[u8], out: &mut [u8], root: u32) -> Result<()> {
        self.check_root(root)?;
        let mut s = Schedule::new(SCATTER_TAG);
        let parts = if self.rank == root {
            same_len(
                "scatter",
                data.len(),
                out.len().saturating_mul(self.size as usize),
            )?;
            blocks(whole(data), self.size, "scatter")?
        } else {
            Vec::new()
        };
        algorithm::scatter(
            &mut s,
            &parts,
            Some(whole_mut(out)),
            root,
            self.rank,
            self.size,
        );
        s.wait(self)
    }

    /// Every rank's `data`, in rank order, into every rank's `out` (MPI_Allgather).
    pub fn allgather_bytes(&self, data: &[u8], out: &mut [u8]) -> Result<()> {
        same_len(
            "allgather",
            out.len(),
            data.len().saturating_mul(self.size as usize),
        )?;
        if self.shm_allgather(data, out)?.is_some() {
            return Ok(());
        }
        let mut s = Schedule::new(ALLGATHER_TAG);
        let parts = blocks(whole_mut(out), self.size, "allgather")?;
        algorithm::allgather(&mut s, Some(whole(data)), &parts, self.rank, self.size);
        s.wait(self)
    }

    /// Block `r` of every rank's `data` into block `me` of rank `r`'s `out` (MPI_Alltoall).
    pub fn alltoall_bytes(&self, data: &[u8], out: &mut [u8]) -> Result<()> {
        same_len("alltoall", out.len(), data.len())?;
        let send = blocks(whole(data), self.size, "alltoall")?;
        if self.shm_alltoall(data, out)?.is_some() {
            return Ok(());
        }
        let mut s = Schedule::new(ALLTOALL_TAG);
        let recv = blocks(whole_mut(out), self.size, "alltoall")?;
        algorithm::alltoall(&mut s, &send, &recv, self.rank, self.size);
        s.wait(self)
    }

    /// Inclusive prefix reduction (MPI_Scan): `out = d0 ∘ … ∘ d_rank`.
    pub fn scan_bytes(&self, data: &[u8], out: &mut [u8], combine: &mut Combine<'_>) -> Result<()> {
        same_len("scan", out.len(), data.len())?;
        let mut s = Schedule::new(SCAN_TAG);
        s.reduce_with(Box::new(combine));
        algorithm::scan(&mut s, whole(data), whole_mut(out), self.rank, self.size);
        s.wait(self)
    }

    /// Exclusive prefix reduction (MPI_Exscan): `out = d0 ∘ … ∘ d_(rank−1)`; rank 0's `out` is
    /// left unchanged.
    pub fn exscan_bytes(
        &self,
        data: &[u8],
        out: &mut [u8],
        combine: &mut Combine<'_>,
    ) -> Result<()> {
        same_len("exscan", out.len(), data.len())?;
        let mut s = Schedule::new(SCAN_TAG);
        s.reduce_with(Box::new(combine));
        algorithm::exscan(&mut s, whole(data), whole_mut(out), self.rank, self.size);
        s.wait(self)
    }
}
