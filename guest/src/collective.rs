//! Collective operations on a communicator, in a simple correct form over point-to-point
//! messages on the communicator's collective context (so they never match the program's own
//! receives): a dissemination barrier, a binomial-tree broadcast, and a reduction that combines
//! in rank order (correct for non-commutative operations). Shared-memory collectives designed for
//! the pool replace these algorithms later; the calls stay.

use crate::api::Comm;
use crate::error::{Error, Result};

/// How a reduction combines two buffers: `combine(a, b)` sets `b = a ∘ b`.
pub type Combine<'a> = dyn FnMut(&[u8], &mut [u8]) -> Result<()> + 'a;

/// Tags on the collective context (1 is communicator creation's).
const BARRIER_TAG: i32 = 2;
const BCAST_TAG: i32 = 3;
const REDUCE_TAG: i32 = 4;

impl Comm<'_> {
    fn coll_send(&self, data: &[u8], to: u32, tag: i32) -> Result<()> {
        let dest = self.ranks.to_world(to, self.size)?;
        self.world.send_bytes(data, dest, tag, self.coll_ctx())
    }

    fn coll_recv(&self, buf: &mut [u8], from: u32, tag: i32) -> Result<()> {
        let src = self.ranks.to_world(from, self.size)?;
        let st = self
            .world
            .recv_bytes(buf, Some(src), Some(tag), self.coll_ctx())?;
        if st.bytes != buf.len() {
            return Err(Error::protocol(
                src,
                format!(
                    "collective message of {} bytes where {} were expected (do all ranks pass the same count?)",
                    st.bytes,
                    buf.len()
                ),
            ));
        }
        Ok(())
    }

    /// Blocks until every rank of the communicator has called it (MPI_Barrier).
    pub fn barrier(&self) -> Result<()> {
        // Dissemination: in round k, tell rank + 2^k and hear from rank - 2^k. Empty messages are
        // inline, so the send never blocks and the rounds cannot deadlock.
        let n = self.size;
        let mut step = 1;
        while step < n {
            self.coll_send(&[], (self.rank + step) % n, BARRIER_TAG)?;
            self.coll_recv(&mut [], (self.rank + n - step) % n, BARRIER_TAG)?;
            step <<= 1;
        }
        Ok(())
    }

    /// Broadcasts `buf` from `root` to every rank (MPI_Bcast); every rank passes a buffer of the
    /// same length.
    pub fn bcast_bytes(&self, buf: &mut [u8], root: u32) -> Result<()> {
        let n = self.size;
        if root >= n {
            return Err(Error::Rank {
                rank: root.into(),
                size: n,
            });
        }
        // Binomial tree over ranks relative to the root.
        let me = (self.rank + n - root) % n;
        let mut mask = 1;
        while mask < n {
            if me & mask != 0 {
                self.coll_recv(buf, (me - mask + root) % n, BCAST_TAG)?;
                break;
            }
            mask <<= 1;
        }
        mask >>= 1;
        while mask > 0 {
            if me + mask < n {
                self.coll_send(buf, (me + mask + root) % n, BCAST_TAG)?;
            }
            mask >>= 1;
        }
        Ok(())
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
        let n = self.size;
        if root >= n {
            return Err(Error::Rank {
                rank: root.into(),
                size: n,
            });
        }
        if self.rank != root {
            return self.coll_send(data, root, REDUCE_TAG);
        }
        if out.len() != data.len() {
            return Err(Error::Arg(format!(
                "reduce: result buffer of {} bytes for {} bytes of data",
                out.len(),
                data.len()
            )));
        }
        // From the last rank down: acc = d_i ∘ acc.
        let mut incoming = vec![0u8; data.len()];
        let last = n - 1;
        if last == root {
            out.copy_from_slice(data);
        } else {
            self.coll_recv(out, last, REDUCE_TAG)?;
        }
        for r in (0..last).rev() {
            if r == root {
                combine(data, out)?;
            } else {
                self.coll_recv(&mut incoming, r, REDUCE_TAG)?;
                combine(&incoming, out)?;
            }
        }
        Ok(())
    }

    /// Reduces every rank's `data` into every rank's `out` (MPI_Allreduce), in rank order as
    /// [`Comm::reduce_bytes`].
    pub fn allreduce_bytes(
        &self,
        data: &[u8],
        out: &mut [u8],
        combine: &mut Combine<'_>,
    ) -> Result<()> {
        if out.len() != data.len() {
            return Err(Error::Arg(format!(
                "allreduce: result buffer of {} bytes for {} bytes of data",
                out.len(),
                data.len()
            )));
        }
        self.reduce_bytes(data, out, 0, combine)?;
        self.bcast_bytes(out, 0)
    }
}
