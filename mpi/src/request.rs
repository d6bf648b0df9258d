//! Requests: operations in flight (sends, receives) and persistent templates, ABI-neutral, and
//! how one completes into a [`Status`].

use crate::datatype::Datatype;
use crate::error::{Class, MpiError, MpiResult};
use crate::handle::Id;
use snoo::{CommId, Pending, World};

/// Where a status says a message came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    /// A rank of the communicator.
    Rank(u32),
    /// A receive from MPI_PROC_NULL.
    ProcNull,
    /// Nothing (an empty status: MPI_ANY_SOURCE).
    Any,
}

/// A completed operation's status, neutral.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// Its source.
    pub source: Src,
    /// Its tag; `None` for MPI_ANY_TAG (empty or PROC_NULL statuses).
    pub tag: Option<i32>,
    /// MPI_ERROR: set by the multiple-completion calls.
    pub error: Class,
    /// Bytes received.
    pub bytes: usize,
    /// Whether the operation was cancelled.
    pub cancelled: bool,
}

impl Status {
    /// The empty status (MPI 4.1 §3.7.3): any source, any tag, no bytes.
    pub const EMPTY: Status = Status {
        source: Src::Any,
        tag: None,
        error: Class::Success,
        bytes: 0,
        cancelled: false,
    };

    /// A receive from MPI_PROC_NULL.
    pub const PROC_NULL: Status = Status {
        source: Src::ProcNull,
        tag: None,
        error: Class::Success,
        bytes: 0,
        cancelled: false,
    };

    /// From a receive's status in its communicator's ranks.
    pub fn of(st: snoo::Status) -> Status {
        Status {
            source: Src::Rank(st.source),
            tag: Some(st.tag),
            error: Class::Success,
            bytes: st.bytes,
            cancelled: false,
        }
    }
}

/// A receive into a temporary buffer, unpacked into the program's non-contiguous type when it
/// completes.
pub struct Unpack {
    /// The bytes as they arrive (boxed so its address stays put while the receive is in flight).
    pub buf: Box<[u8]>,
    /// The program's type.
    pub dt: Datatype,
    /// Elements of it.
    pub count: usize,
    /// Where they go.
    pub dst: *mut u8,
}

/// An operation in flight.
pub enum Flight {
    /// Complete already (sends that finished at once, PROC_NULL, cancelled receives).
    Done(Status),
    /// A send; `packed` holds the data of a non-contiguous type until it completes.
    Send {
        /// The engine's operation.
        p: Pending,
        /// Its communicator.
        comm: CommId,
        /// The packed copy it sends from, if any.
        packed: Option<Box<[u8]>>,
    },
    /// A non-blocking collective operation.
    Coll(Box<crate::collective::Coll>),
    /// A receive.
    Recv {
        /// The engine's operation.
        p: Pending,
        /// Its communicator.
        comm: CommId,
        /// A non-contiguous destination.
        unpack: Option<Box<Unpack>>,
    },
}

/// What a persistent request starts each time (MPI_Send_init, MPI_Recv_init).
#[derive(Clone)]
pub struct Persist {
    /// True for a send.
    pub send: bool,
    /// A synchronous send (MPI_Ssend_init): each start completes only once received.
    pub sync: bool,
    /// The buffer's address.
    pub buf: usize,
    /// Elements.
    pub count: usize,
    /// Their datatype.
    pub dt: Id,
    /// Destination or source (`None`: MPI_ANY_SOURCE; `Some(None)`-like PROC_NULL is `proc_null`).
    pub peer: Option<u32>,
    /// The peer is MPI_PROC_NULL.
    pub proc_null: bool,
    /// Tag (`None`: MPI_ANY_TAG).
    pub tag: Option<i32>,
    /// Communicator.
    pub comm: Id,
}

/// A request handle's object.
pub struct Req {
    /// The operation in flight; `None` for an inactive persistent request.
    pub flight: Option<Flight>,
    /// The template of a persistent request.
    pub persist: Option<Box<Persist>>,
}

impl Flight {
    /// True if completing it would not block.
    pub fn ready(&self, world: &World) -> MpiResult<bool> {
        Ok(match self {
            Flight::Done(_) => true,
            Flight::Coll(c) => c.ready(world)?,
            Flight::Send { p, comm, .. } | Flight::Recv { p, comm, .. } => {
                world.attach(comm).ready(*p)?
            }
        })
    }

    /// Completes it (blocking): its status, or the error it ended with and the status to report.
    pub fn finish(self, world: &World) -> Result<Status, (MpiError, Status)> {
        match self {
            Flight::Done(st) => Ok(st),
            Flight::Coll(c) => c
                .finish(world)
                .map(|()| Status::EMPTY)
                .map_err(|e| (e, Status::EMPTY)),
            Flight::Send { p, comm, packed } => {
                let r = world.attach(&comm).complete(p);
                drop(packed);
                match r {
                    Ok(_) => Ok(Status::EMPTY),
                    Err(e) => Err((e.into(), Status::EMPTY)),
                }
            }
            Flight::Recv { p, comm, unpack } => {
                let c = world.attach(&comm);
                let (r, st) = match c.complete(p) {
                    Ok(st) => {
                        let st = st.map(Status::of).unwrap_or(Status::EMPTY);
                        (Ok(()), st)
                    }
                    Err(e) => {
                        let st = c.take_truncated().map(Status::of).unwrap_or(Status::EMPTY);
                        (Err(MpiError::from(e)), st)
                    }
                };
                if let Some(u) = unpack {
                    let n = st.bytes.min(u.buf.len());
                    // SAFETY: the program lent `dst` for `count` elements of `dt` until this
                    // request completes (MPI's rule for receive buffers), and it completes now.
                    unsafe { u.dt.unpack(u.count, &u.buf[..n], u.dst) };
                }
                match r {
                    Ok(()) => Ok(st),
                    Err(e) => Err((e, st)),
                }
            }
        }
    }
}
