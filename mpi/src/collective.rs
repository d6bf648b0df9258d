//! A collective operation in flight: its schedule (from `snoo::collective`), the communicator it
//! runs on, and what happens once it completes (scratch buffers unpacked into the program's
//! non-contiguous types, reduction results written back). The blocking calls run one to the
//! end at once; the non-blocking ones (MPI_Ibcast, …) keep it in a request that MPI_Test
//! advances and MPI_Wait finishes.

use crate::error::{MpiError, MpiResult};
use snoo::collective::schedule::{Region, Schedule};
use snoo::{CommId, World};
use std::cell::RefCell;

/// Writes a completed scratch region back into the program's memory.
pub type Finish = Box<dyn FnOnce(&[u8])>;

/// A collective operation and its completion work.
pub struct Coll {
    /// The steps and their scratch memory (a cell: testing advances it through a shared borrow
    /// of the request table).
    sched: RefCell<Schedule<'static>>,
    /// Where it runs.
    comm: CommId,
    /// Run in order once every step completed, each with its region's bytes.
    finish: Vec<(Region, Finish)>,
    /// The error it ended with while advanced on the way to another request's completion,
    /// reported when the program completes this one.
    failed: RefCell<Option<MpiError>>,
}

impl Coll {
    /// A collective on `comm` with schedule `sched`.
    pub fn new(comm: CommId, sched: Schedule<'static>) -> Coll {
        Coll {
            sched: RefCell::new(sched),
            comm,
            finish: Vec::new(),
            failed: RefCell::new(None),
        }
    }

    /// The schedule, to add steps and scratch buffers to while building.
    pub fn sched(&mut self) -> &mut Schedule<'static> {
        self.sched.get_mut()
    }

    /// Runs `f` with scratch region `r`'s bytes once the collective has completed.
    pub fn then(&mut self, r: Region, f: Finish) {
        self.finish.push((r, f));
    }

    /// Advances it without blocking: true once completing it would not block (it has completed,
    /// or failed: [`Coll::finish`] then reports the error).
    pub fn ready(&self, world: &World) -> MpiResult<bool> {
        if self.failed.borrow().is_some() {
            return Ok(true);
        }
        let c = world.attach(&self.comm);
        let r = self.sched.borrow_mut().test(&c);
        match r {
            Ok(done) => Ok(done),
            Err(e) => {
                *self.failed.borrow_mut() = Some(e.into());
                Ok(true)
            }
        }
    }

    /// Completes it (blocking), writing its results into the program's buffers.
    pub fn finish(self, world: &World) -> MpiResult<()> {
        if let Some(e) = self.failed.into_inner() {
            return Err(e);
        }
        let c = world.attach(&self.comm);
        let mut s = self.sched.into_inner();
        s.wait(&c).map_err(MpiError::from)?;
        for (r, f) in self.finish {
            f(s.bytes(r));
        }
        Ok(())
    }
}
