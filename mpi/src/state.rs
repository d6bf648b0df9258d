//! The process's MPI state: before Init, running (the job and every object table), or after
//! Finalize; and the lock every call takes. The library provides MPI_THREAD_SERIALIZED: a call
//! made while another thread is inside the library is refused with a clear error instead of
//! waiting (a blocking receive holding the lock could otherwise wait forever for a send that the
//! other thread cannot make).

use crate::basic::Basic;
use crate::datatype::Datatype;
use crate::error::{err, Class, MpiError, MpiResult};
use crate::handle::{Id, Table};
use crate::op::Predefined;
use crate::request::{Flight, Req};
use snoo::{CommId, World};
use std::cell::UnsafeCell;
use std::collections::{BTreeMap, HashMap};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// A communicator and what MPI attaches to it.
pub struct CommObj {
    /// The communicator itself.
    pub id: CommId,
    /// MPI_Comm_set_name's.
    pub name: String,
    /// Its error handler (an id in [`Mpi::errhandlers`]).
    pub errh: Id,
    /// A Cartesian topology, from MPI_Cart_create.
    pub cart: Option<Cart>,
    /// Attributes set with MPI_Comm_set_attr, by keyval.
    pub attrs: BTreeMap<i32, usize>,
    /// Collective operations started on it so far: each one's messages carry its own tag, so
    /// that non-blocking collectives in flight together never match each other's messages (every
    /// rank starts a communicator's collectives in the same order, so the numbers agree).
    pub colls: std::cell::Cell<u32>,
}

/// A Cartesian topology.
#[derive(Clone, Debug)]
pub struct Cart {
    /// Ranks along each dimension.
    pub dims: Vec<u32>,
    /// Whether each dimension wraps around.
    pub periods: Vec<bool>,
}

/// A datatype and its MPI state.
pub struct TypeObj {
    /// Its type map.
    pub t: Datatype,
    /// MPI_Type_commit was called (predefined types are committed).
    pub committed: bool,
    /// MPI_Type_set_name's.
    pub name: String,
}

/// A reduction operation.
#[derive(Clone, Copy, Debug)]
pub enum OpObj {
    /// One of the standard's.
    Predef(Predefined),
    /// MPI_Op_create's: the face's function pointer, and whether it commutes.
    User {
        /// The C function, as the face stores it.
        f: usize,
        /// Commutative.
        commute: bool,
    },
}

impl OpObj {
    /// Whether the operation commutes (MPI_Op_commutative): every predefined one does.
    pub fn commutes(&self) -> bool {
        match self {
            OpObj::Predef(_) => true,
            OpObj::User { commute, .. } => *commute,
        }
    }
}

/// An error handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrhObj {
    /// MPI_ERRORS_ARE_FATAL: print and end the job.
    Fatal,
    /// MPI_ERRORS_RETURN: return the code.
    Return,
    /// MPI_ERRORS_ABORT: print and end the job (MPI 4).
    Abort,
    /// MPI_Comm_create_errhandler's: the face's function pointer.
    User(usize),
}

/// Predefined error handlers' ids.
pub mod errh {
    use crate::handle::Id;
    /// MPI_ERRORS_ARE_FATAL.
    pub const FATAL: Id = Id::predefined(0);
    /// MPI_ERRORS_RETURN.
    pub const RETURN: Id = Id::predefined(1);
    /// MPI_ERRORS_ABORT.
    pub const ABORT: Id = Id::predefined(2);
}

/// Predefined communicators' ids.
pub mod comm {
    use crate::handle::Id;
    /// MPI_COMM_WORLD.
    pub const WORLD: Id = Id::predefined(0);
    /// MPI_COMM_SELF.
    pub const SELF: Id = Id::predefined(1);
}

/// MPI_GROUP_EMPTY's id.
pub const GROUP_EMPTY: Id = Id::predefined(0);

/// MPI_INFO_ENV's id.
pub const INFO_ENV: Id = Id::predefined(0);

/// The id of predefined datatype `b`.
pub fn basic_id(b: Basic) -> Id {
    Id::predefined(b as u16)
}

/// The id of predefined operation `op`.
pub fn op_id(op: Predefined) -> Id {
    Id::predefined(Predefined::ALL.iter().position(|&o| o == op).unwrap_or(0) as u16)
}

/// A running job and its objects.
pub struct Mpi {
    /// COMM_WORLD's job.
    pub world: World,
    /// Communicators; WORLD and SELF first.
    pub comms: Table<CommObj>,
    /// Groups, as world ranks; GROUP_EMPTY first.
    pub groups: Table<Vec<u32>>,
    /// Datatypes; the predefined ones first, in [`Basic::ALL`] order.
    pub types: Table<TypeObj>,
    /// Operations; the predefined ones first, in [`Predefined::ALL`] order.
    pub ops: Table<OpObj>,
    /// Error handlers; FATAL, RETURN, ABORT first.
    pub errhandlers: Table<ErrhObj>,
    /// Requests.
    pub requests: Table<Req>,
    /// Info objects; MPI_INFO_ENV first.
    pub infos: Table<crate::info::Info>,
    /// Messages taken by MPI_Mprobe/MPI_Improbe, with their communicator.
    pub messages: Table<(snoo::Message, CommId)>,
    /// The buffer of MPI_Buffer_attach: (address, size).
    pub bsend: Option<(usize, usize)>,
    /// MPI_Alloc_mem blocks from process memory, by address: what the pool heap had no room for
    /// (sends from them are not single-copy, but the program runs, as under MPICH).
    pub private_mem: HashMap<usize, Vec<u128>>,
    /// Attribute keys created by MPI_Comm_create_keyval: next one.
    pub next_keyval: i32,
    /// The thread level granted by MPI_Init_thread.
    pub thread_level: Thread,
    /// Buffered sends in flight (MPI_Bsend): their copies count against the attached buffer.
    pub buffered: Vec<Flight>,
    /// Operations whose request the program freed (MPI_Request_free): completed by the library.
    pub orphans: Vec<Flight>,
    /// Per predefined datatype, its size if any number of elements is one run of bytes (0 if
    /// not, as for MPI_DOUBLE_INT): the send and receive fast path.
    contiguous: [usize; Basic::ALL.len()],
}

/// MPI_INFO_ENV: what MPI 4.0 suggests that SNOO knows (the job's size as `maxprocs`, the
/// granted thread level as `thread_level`).
fn env_info(world: &World, level: Thread) -> crate::info::Info {
    let procs = world.size().to_string();
    let level = match level {
        Thread::Single => "MPI_THREAD_SINGLE",
        Thread::Funneled => "MPI_THREAD_FUNNELED",
        Thread::Serialized => "MPI_THREAD_SERIALIZED",
        Thread::Multiple => "MPI_THREAD_MULTIPLE",
    };
    crate::info::Info::of(&[("maxprocs", &procs), ("thread_level", level)])
}

/// Thread support levels, neutral.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Thread {
    /// MPI_THREAD_SINGLE.
    Single,
    /// MPI_THREAD_FUNNELED.
    Funneled,
    /// MPI_THREAD_SERIALIZED: the most this library provides.
    Serialized,
    /// MPI_THREAD_MULTIPLE.
    Multiple,
}

// SAFETY: `Mpi` is reached only through the STATE mutex, by one thread at a time (the library
// provides MPI_THREAD_SERIALIZED and refuses overlapping calls); the raw buffers its requests point
// into are the C caller's to keep valid, as in MPI.
unsafe impl Send for Mpi {}

impl Mpi {
    /// The job just joined, with the predefined objects.
    pub fn new(world: World, thread_level: Thread) -> Mpi {
        let env = env_info(&world, thread_level);
        let world_comm = world.comm().detach();
        let self_comm = world.comm_self().detach();
        let obj = |id: CommId, name: &str| CommObj {
            id,
            name: name.to_string(),
            errh: errh::FATAL,
            cart: None,
            attrs: BTreeMap::new(),
            colls: Default::default(),
        };
        Mpi {
            comms: Table::new([
                obj(world_comm, "MPI_COMM_WORLD"),
                obj(self_comm, "MPI_COMM_SELF"),
            ]),
            world,
            groups: Table::new([Vec::new()]),
            types: Table::new(Basic::ALL.iter().map(|&b| TypeObj {
                t: Datatype::basic(b),
                committed: true,
                name: String::new(),
            })),
            ops: Table::new(Predefined::ALL.iter().map(|&o| OpObj::Predef(o))),
            errhandlers: Table::new([ErrhObj::Fatal, ErrhObj::Return, ErrhObj::Abort]),
            requests: Table::new([]),
            messages: Table::new([]),
            infos: Table::new([env]),
            bsend: None,
            private_mem: HashMap::new(),
            next_keyval: 1,
            thread_level,
            buffered: Vec::new(),
            orphans: Vec::new(),
            contiguous: Basic::ALL.map(|b| {
                let t = Datatype::basic(b);
                match t.contiguous_run(2) {
                    Some((0, len)) if len == 2 * t.size() => t.size(),
                    _ => 0,
                }
            }),
        }
    }

    /// Completes the buffered sends that are done.
    pub fn reap_buffered(&mut self) {
        let world = &self.world;
        self.buffered.retain(|f| !f.ready(world).unwrap_or(true));
    }

    /// Bytes of the attached buffer in use by buffered sends in flight.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
            .iter()
            .map(|f| match f {
                Flight::Send { packed, .. } => packed.as_ref().map_or(0, |p| p.len()),
                Flight::Done(st) => st.bytes,
                Flight::Recv { .. } | Flight::Coll(_) => 0,
            })
            .sum()
    }

    /// Waits for every buffered send, and every orphaned operation, to complete.
    pub fn drain_buffered(&mut self) -> MpiResult<()> {
        let mut first = Ok(());
        for f in self.buffered.drain(..).chain(self.orphans.drain(..)) {
            if let Err((e, _)) = f.finish(&self.world) {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// The communicator `id` names, or MPI_ERR_COMM.
    #[inline]
    pub fn comm(&self, id: Option<Id>) -> MpiResult<&CommObj> {
        id.and_then(|id| self.comms.get(id)).ok_or_else(|| {
            MpiError::new(
                Class::Comm,
                "invalid communicator (null, freed or not a communicator)",
            )
        })
    }

    /// The size of predefined datatype `id` if it is contiguous (see `contiguous`); `None` for
    /// every other id, to take the general path.
    #[inline]
    pub fn contiguous_basic(&self, id: Option<Id>) -> Option<usize> {
        // A predefined id is its slot (generation 0); every other id is larger than the table.
        let size = *self.contiguous.get(id?.raw() as usize)?;
        (size != 0).then_some(size)
    }

    /// The datatype `id` names, committed, or MPI_ERR_TYPE.
    #[inline]
    pub fn datatype(&self, id: Option<Id>) -> MpiResult<&TypeObj> {
        let t = id.and_then(|id| self.types.get(id)).ok_or_else(|| {
            MpiError::new(
                Class::Type,
                "invalid datatype (null, freed or not a datatype)",
            )
        })?;
        if !t.committed {
            return err(
                Class::Type,
                "datatype not committed (call MPI_Type_commit first)",
            );
        }
        Ok(t)
    }

    /// The error handler of communicator `id` (COMM_WORLD's when `id` names none).
    pub fn errhandler_of(&self, id: Option<Id>) -> ErrhObj {
        let c = id
            .and_then(|id| self.comms.get(id))
            .or_else(|| self.comms.get(comm::WORLD));
        c.and_then(|c| self.errhandlers.get(c.errh))
            .copied()
            .unwrap_or(ErrhObj::Fatal)
    }
}

/// Where the process stands.
pub enum Phase {
    /// MPI_Init not called yet.
    Before,
    /// In a job.
    Running(Box<Mpi>),
    /// MPI_Finalize returned.
    After,
}

/// The state and its busy flag. Not a `Mutex`: every call only tries the lock once (a second
/// thread is refused, never queued), so a flag is all it needs, and it spares each call the
/// mutex's poison bookkeeping (a call that panics is reported, and the state stays usable).
struct State {
    busy: AtomicBool,
    phase: UnsafeCell<Phase>,
}

// SAFETY: `phase` is reached only through a `Guard`, and `lock` hands out at most one at a time
// (the `busy` flag, taken with Acquire and given back with Release, orders the accesses).
unsafe impl Sync for State {}

static STATE: State = State {
    busy: AtomicBool::new(false),
    phase: UnsafeCell::new(Phase::Before),
};

/// The locked state; unlocks when dropped (also while unwinding from a panic).
pub struct Guard(());

impl Deref for Guard {
    type Target = Phase;
    #[inline]
    fn deref(&self) -> &Phase {
        // SAFETY: this guard is the only one (see `State`), so no `&mut` to the phase exists.
        unsafe { &*STATE.phase.get() }
    }
}

impl DerefMut for Guard {
    #[inline]
    fn deref_mut(&mut self) -> &mut Phase {
        // SAFETY: this guard is the only one, and `&mut self` makes this borrow unique.
        unsafe { &mut *STATE.phase.get() }
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        STATE.busy.store(false, Ordering::Release);
    }
}

/// 0 before Init, 1 running, 2 after Finalize: MPI_Initialized and MPI_Finalized read it without
/// the lock (they may be called from any thread at any time).
static PHASE: AtomicU8 = AtomicU8::new(0);

/// The phase, without the lock.
pub fn phase() -> u8 {
    PHASE.load(Ordering::Acquire)
}

/// Sets the lock-free phase.
pub fn set_phase(p: u8) {
    PHASE.store(p, Ordering::Release)
}

/// The state, locked; an error if another thread is inside the library.
#[inline]
pub fn lock() -> MpiResult<Guard> {
    if STATE.busy.swap(true, Ordering::Acquire) {
        return busy();
    }
    Ok(Guard(()))
}

#[cold]
fn busy() -> MpiResult<Guard> {
    err(
        Class::Other,
        "called while another thread is inside the MPI library: this library provides \
         MPI_THREAD_SERIALIZED (one thread in MPI at a time)",
    )
}
