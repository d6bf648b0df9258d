//! The C calls, written once over an [`Abi`]: each face (MPICH's `libmpi.so.12`, the standard
//! `libmpi_abi.so.1`) says how its handles, constants and status look, and exports these
//! functions under both `MPI_` and `PMPI_` names with the [`export_mpi!`](crate::export_mpi)
//! macro. A call takes the library's lock, checks its arguments, and on an error applies the
//! error handler of the communicator involved (COMM_WORLD's otherwise).

// C entry points take raw pointers by nature; each dereference is checked and commented.
#![allow(clippy::not_unsafe_ptr_arg_deref)]
#![allow(clippy::too_many_arguments)]

pub mod coll;
pub mod comm;
pub mod dtype;
pub mod env;
pub mod errors;
pub mod group;
pub mod info;
pub mod p2p;
pub mod reduction;
pub mod req;
pub mod topo;

use crate::error::{err, Class, MpiError, MpiResult};
use crate::handle::Id;
use crate::request::{Src, Status};
use crate::state::{self, ErrhObj, Mpi, Phase, Thread};
use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Object kinds, for the faces' handle formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// MPI_Comm.
    Comm,
    /// MPI_Group.
    Group,
    /// MPI_Datatype.
    Datatype,
    /// MPI_Request.
    Request,
    /// MPI_Op.
    Op,
    /// MPI_Errhandler.
    Errhandler,
}

/// What a face defines: its handle types and how they map to object ids, its constants, its
/// status layout, and how it calls a program's callbacks.
pub trait Abi: 'static {
    /// MPI_Comm.
    type Comm: Copy + PartialEq;
    /// MPI_Group.
    type Group: Copy + PartialEq;
    /// MPI_Datatype.
    type Datatype: Copy + PartialEq + 'static;
    /// MPI_Request.
    type Request: Copy + PartialEq;
    /// MPI_Op.
    type Op: Copy + PartialEq;
    /// MPI_Errhandler.
    type Errhandler: Copy + PartialEq;
    /// MPI_Status.
    type Status;
    /// MPI_Info.
    type Info: Copy + PartialEq;
    /// MPI_Message.
    type Message: Copy + PartialEq;

    /// MPI_COMM_NULL.
    const COMM_NULL: Self::Comm;
    /// MPI_GROUP_NULL.
    const GROUP_NULL: Self::Group;
    /// MPI_DATATYPE_NULL.
    const DATATYPE_NULL: Self::Datatype;
    /// MPI_REQUEST_NULL.
    const REQUEST_NULL: Self::Request;
    /// MPI_OP_NULL.
    const OP_NULL: Self::Op;
    /// MPI_ERRHANDLER_NULL.
    const ERRHANDLER_NULL: Self::Errhandler;
    /// MPI_MESSAGE_NULL.
    const MESSAGE_NULL: Self::Message;
    /// MPI_MESSAGE_NO_PROC.
    const MESSAGE_NO_PROC: Self::Message;
    /// MPI_INFO_NULL.
    const INFO_NULL: Self::Info;
    /// The longest info key, in bytes without the NUL (a key buffer of MPI_MAX_INFO_KEY bytes
    /// or more holds it with its NUL).
    const MAX_INFO_KEY: usize;
    /// The longest info value, in bytes without the NUL (MPI_MAX_INFO_VAL).
    const MAX_INFO_VAL: usize;

    /// Handle of communicator `id`.
    fn comm(id: Id) -> Self::Comm;
    /// Communicator of handle `h`.
    fn comm_id(h: Self::Comm) -> Option<Id>;
    /// Handle of group `id`.
    fn group(id: Id) -> Self::Group;
    /// Group of handle `h`.
    fn group_id(h: Self::Group) -> Option<Id>;
    /// Handle of datatype `id`.
    fn datatype(id: Id) -> Self::Datatype;
    /// Datatype of handle `h`.
    fn datatype_id(h: Self::Datatype) -> Option<Id>;
    /// Handle of request `id`.
    fn request(id: Id) -> Self::Request;
    /// Request of handle `h`.
    fn request_id(h: Self::Request) -> Option<Id>;
    /// Handle of operation `id`.
    fn op(id: Id) -> Self::Op;
    /// Operation of handle `h`.
    fn op_id(h: Self::Op) -> Option<Id>;
    /// Handle of error handler `id`.
    fn errhandler(id: Id) -> Self::Errhandler;
    /// Error handler of handle `h`.
    fn errhandler_id(h: Self::Errhandler) -> Option<Id>;
    /// Handle of message `id`.
    fn message(id: Id) -> Self::Message;
    /// Message of handle `h`.
    fn message_id(h: Self::Message) -> Option<Id>;
    /// Handle of info `id`.
    fn info(id: Id) -> Self::Info;
    /// Info of handle `h`.
    fn info_id(h: Self::Info) -> Option<Id>;

    /// The face's code for `class`.
    fn code(class: Class) -> c_int;
    /// The class of a code this face returns.
    fn class(code: c_int) -> Option<Class>;

    /// MPI_ANY_SOURCE.
    const ANY_SOURCE: c_int;
    /// MPI_ANY_TAG.
    const ANY_TAG: c_int;
    /// MPI_PROC_NULL.
    const PROC_NULL: c_int;
    /// MPI_ROOT.
    const ROOT: c_int;
    /// MPI_UNDEFINED.
    const UNDEFINED: c_int;
    /// MPI_IN_PLACE's address.
    const IN_PLACE: usize;
    /// MPI_STATUS_IGNORE's address.
    const STATUS_IGNORE: usize;
    /// MPI_STATUSES_IGNORE's address.
    const STATUSES_IGNORE: usize;
    /// MPI_IDENT, MPI_CONGRUENT, MPI_SIMILAR, MPI_UNEQUAL.
    const COMPARE: [c_int; 4];
    /// MPI_THREAD_SINGLE, FUNNELED, SERIALIZED, MULTIPLE.
    const THREAD: [c_int; 4];
    /// MPI_COMM_TYPE_SHARED.
    const COMM_TYPE_SHARED: c_int;
    /// MPI_ORDER_C and MPI_ORDER_FORTRAN.
    const ORDER: [c_int; 2];
    /// MPI_CART.
    const CART: c_int;
    /// Attribute keys: MPI_TAG_UB, MPI_HOST, MPI_IO, MPI_WTIME_IS_GLOBAL, MPI_UNIVERSE_SIZE,
    /// MPI_LASTUSEDCODE, MPI_APPNUM.
    const ATTR_KEYS: [c_int; 7];
    /// MPI_VERSION, MPI_SUBVERSION.
    const VERSION: (c_int, c_int);
    /// MPI_BSEND_OVERHEAD.
    const BSEND_OVERHEAD: usize;
    /// MPI_KEYVAL_INVALID.
    const KEYVAL_INVALID: c_int;
    /// MPI_MAX_PROCESSOR_NAME.
    const MAX_PROCESSOR_NAME: usize;
    /// MPI_MAX_ERROR_STRING.
    const MAX_ERROR_STRING: usize;
    /// MPI_MAX_OBJECT_NAME.
    const MAX_OBJECT_NAME: usize;
    /// MPI_MAX_LIBRARY_VERSION_STRING.
    const MAX_LIBRARY_VERSION_STRING: usize;

    /// Writes `st` into the program's status.
    ///
    /// # Safety
    /// `s` points to a writable `Self::Status`.
    unsafe fn write_status(s: *mut Self::Status, st: &Status);
    /// Reads a status the library wrote.
    ///
    /// # Safety
    /// `s` points to a readable `Self::Status`.
    unsafe fn read_status(s: *const Self::Status) -> Status;

    /// Calls a user reduction function `f` (an `MPI_User_function*`).
    ///
    /// # Safety
    /// `f` came from the program through MPI_Op_create; the buffers hold `len` elements of `dt`.
    unsafe fn call_op(
        f: usize,
        invec: *mut c_void,
        inout: *mut c_void,
        len: c_int,
        dt: Self::Datatype,
    );
    /// Calls a user error handler `f` (an `MPI_Comm_errhandler_function*`).
    ///
    /// # Safety
    /// `f` came from the program through MPI_Comm_create_errhandler.
    unsafe fn call_errhandler(f: usize, comm: Self::Comm, code: c_int);
}

thread_local! {
    // The last error on this thread (code, full text), so that MPI_Error_string can give the
    // detail of the error just returned under MPI_ERRORS_RETURN.
    static LAST: RefCell<Option<(c_int, String)>> = const { RefCell::new(None) };
}

/// The detail of `code` if it is this thread's last error.
pub(crate) fn last_detail(code: c_int) -> Option<String> {
    LAST.try_with(|l| match &*l.borrow() {
        Some((c, s)) if *c == code => Some(s.clone()),
        _ => None,
    })
    .ok()
    .flatten()
}

/// A failed call: the error, the handler that applies and the rank (if in a job). Boxed so that
/// a successful call moves only a null pointer.
type Failure = Box<(MpiError, ErrhObj, Option<u32>)>;

/// Runs the body of the C call `name` with the running job. `comm` is the communicator whose
/// error handler applies (COMM_WORLD's if none or invalid).
#[inline]
pub fn run<A: Abi>(
    name: &'static str,
    comm: Option<A::Comm>,
    f: impl FnOnce(&mut Mpi) -> MpiResult<()>,
) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), Failure> {
        let mut g = match state::lock() {
            Ok(g) => g,
            Err(e) => return Err(Box::new((e, ErrhObj::Fatal, None))),
        };
        match &mut *g {
            Phase::Running(m) => f(m).map_err(|e| failure::<A>(m, comm, e)),
            Phase::Before => Err(outside("called before MPI_Init")),
            Phase::After => Err(outside("called after MPI_Finalize")),
        }
    }));
    match outcome {
        Ok(Ok(())) => A::code(Class::Success),
        Ok(Err(x)) => {
            let (e, h, rank) = *x;
            raise::<A>(name, comm, e, h, rank)
        }
        Err(panic) => panicked::<A>(name, comm, panic),
    }
}

/// The failure of a call in a job: the handler of `comm` (COMM_WORLD's if none or invalid).
#[cold]
fn failure<A: Abi>(m: &Mpi, comm: Option<A::Comm>, e: MpiError) -> Failure {
    let h = m.errhandler_of(comm.and_then(A::comm_id));
    Box::new((e, h, Some(m.world.rank())))
}

/// A call made outside a job: always fatal (no handler can be set before Init).
#[cold]
fn outside(what: &str) -> Failure {
    Box::new((MpiError::new(Class::Other, what), ErrhObj::Fatal, None))
}

/// A panic inside call `name`: a bug, reported as MPI_ERR_INTERN and fatal.
#[cold]
fn panicked<A: Abi>(
    name: &str,
    comm: Option<A::Comm>,
    panic: Box<dyn std::any::Any + Send>,
) -> c_int {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into());
    let e = MpiError::new(
        Class::Intern,
        format!("a bug in SNOO's MPI library: {what}"),
    );
    raise::<A>(name, comm, e, ErrhObj::Fatal, None)
}

/// Applies error handler `h` to error `e` of call `name`.
#[cold]
fn raise<A: Abi>(
    name: &str,
    comm: Option<A::Comm>,
    e: MpiError,
    h: ErrhObj,
    rank: Option<u32>,
) -> c_int {
    let code = A::code(e.class);
    let text = format!("{name}: {e}");
    let _ = LAST.try_with(|l| *l.borrow_mut() = Some((code, text.clone())));
    match h {
        ErrhObj::Return => code,
        ErrhObj::User(f) => {
            let c = comm.unwrap_or_else(|| A::comm(state::comm::WORLD));
            // SAFETY: `f` was registered by the program with MPI_Comm_create_errhandler.
            unsafe { A::call_errhandler(f, c, code) };
            code
        }
        ErrhObj::Fatal | ErrhObj::Abort => {
            let who = rank.map_or_else(|| "process".to_string(), |r| format!("rank {r}"));
            let _ = writeln!(
                std::io::stderr(),
                "Fatal error in {name} on {who}: {e}\n(MPI_ERRORS_ARE_FATAL: ending the job)"
            );
            // exit() flushes the program's stdio buffers; the launcher ends the other ranks.
            std::process::exit(code.clamp(1, 255))
        }
    }
}

/// For the few calls valid at any time (MPI_Initialized, MPI_Wtime, …): runs `f` outside the
/// lock; a panic is an internal error.
pub fn anytime<A: Abi>(name: &'static str, f: impl FnOnce() -> MpiResult<()>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => A::code(Class::Success),
        Ok(Err(e)) => raise::<A>(name, None, e, ErrhObj::Return, None),
        Err(_) => raise::<A>(
            name,
            None,
            MpiError::new(Class::Intern, "a bug in SNOO's MPI library"),
            ErrhObj::Return,
            None,
        ),
    }
}

/// A required output pointer: MPI_ERR_ARG if NULL.
pub(crate) fn out<'a, T>(p: *mut T, what: &str) -> MpiResult<&'a mut T> {
    if p.is_null() {
        return err(Class::Arg, format!("NULL {what} pointer"));
    }
    // SAFETY: non-NULL; the program passes a pointer to a writable T (the C prototype's type).
    Ok(unsafe { &mut *p })
}

/// Writes `v` through a required output pointer.
pub(crate) fn put<T>(p: *mut T, v: T, what: &str) -> MpiResult<()> {
    *out(p, what)? = v;
    Ok(())
}

/// A count argument: MPI_ERR_COUNT if negative.
#[inline]
pub(crate) fn count(n: c_int) -> MpiResult<usize> {
    usize::try_from(n).map_err(|_| MpiError::new(Class::Count, format!("negative count {n}")))
}

/// A C array of `n` elements (NULL allowed when `n` is 0).
pub(crate) fn slice<'a, T>(p: *const T, n: usize, what: &str) -> MpiResult<&'a [T]> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return err(Class::Arg, format!("NULL {what} array"));
    }
    // SAFETY: non-NULL; the program passes an array of at least `n` elements (the MPI call's
    // contract).
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// A writable C array of `n` elements.
pub(crate) fn slice_mut<'a, T>(p: *mut T, n: usize, what: &str) -> MpiResult<&'a mut [T]> {
    if n == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return err(Class::Arg, format!("NULL {what} array"));
    }
    // SAFETY: as in `slice`, and the array is writable.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, n) })
}

/// Writes `st` to the program's status unless it passed MPI_STATUS_IGNORE.
#[inline]
pub(crate) fn status_out<A: Abi>(s: *mut A::Status, st: &Status) {
    if s.is_null() || s as usize == A::STATUS_IGNORE {
        return;
    }
    // SAFETY: not MPI_STATUS_IGNORE and not NULL: the program's MPI_Status.
    unsafe { A::write_status(s, st) }
}

/// Writes status `i` of an array unless it is MPI_STATUSES_IGNORE.
pub(crate) fn statuses_out<A: Abi>(s: *mut A::Status, i: usize, st: &Status) {
    if s.is_null() || s as usize == A::STATUSES_IGNORE {
        return;
    }
    // SAFETY: the program's array of statuses, with at least as many entries as requests.
    unsafe { A::write_status(s.add(i), st) }
}

/// A source argument: a rank, MPI_ANY_SOURCE (`Ok(None)`), or MPI_PROC_NULL (`Err(())` inside).
pub(crate) enum Peer {
    /// A rank.
    Rank(u32),
    /// MPI_ANY_SOURCE.
    Any,
    /// MPI_PROC_NULL.
    Null,
}

/// Reads a source (`any`: MPI_ANY_SOURCE allowed) or destination argument.
#[inline]
pub(crate) fn peer<A: Abi>(r: c_int, size: u32, any: bool) -> MpiResult<Peer> {
    if r == A::PROC_NULL {
        return Ok(Peer::Null);
    }
    if any && r == A::ANY_SOURCE {
        return Ok(Peer::Any);
    }
    match u32::try_from(r) {
        Ok(r) if r < size => Ok(Peer::Rank(r)),
        _ => err(
            Class::Rank,
            format!("rank {r} is not in a communicator of {size} ranks"),
        ),
    }
}

/// A tag argument (`any`: MPI_ANY_TAG allowed, as `None`).
#[inline]
pub(crate) fn tag<A: Abi>(t: c_int, any: bool) -> MpiResult<Option<i32>> {
    if any && t == A::ANY_TAG {
        return Ok(None);
    }
    if t < 0 {
        return err(
            Class::Tag,
            format!("tag {t}: tags are 0 to MPI_TAG_UB ({})", snoo::TAG_UB),
        );
    }
    Ok(Some(t))
}

/// The neutral thread level of a face's constant.
pub(crate) fn thread_of<A: Abi>(level: c_int) -> MpiResult<Thread> {
    let t = [
        Thread::Single,
        Thread::Funneled,
        Thread::Serialized,
        Thread::Multiple,
    ];
    A::THREAD
        .iter()
        .position(|&l| l == level)
        .map(|i| t[i])
        .ok_or_else(|| MpiError::new(Class::Arg, format!("unknown thread level {level}")))
}

/// The face's constant of a thread level.
pub(crate) fn thread_code<A: Abi>(t: Thread) -> c_int {
    A::THREAD[t as usize]
}

/// The status source as the face writes it.
pub fn source_code<A: Abi>(s: Src) -> c_int {
    match s {
        Src::Rank(r) => r as c_int,
        Src::ProcNull => A::PROC_NULL,
        Src::Any => A::ANY_SOURCE,
    }
}

/// The status source from the face's field.
pub fn source_of<A: Abi>(s: c_int) -> Src {
    if s == A::PROC_NULL {
        Src::ProcNull
    } else if s < 0 {
        Src::Any
    } else {
        Src::Rank(s as u32)
    }
}

/// Every function not implemented: its symbol exists and returns MPI_ERR_UNSUPPORTED_OPERATION
/// through the error handler, naming the function.
pub fn unsupported<A: Abi>(name: &'static str) -> c_int {
    run::<A>(name, None, |_| {
        err(
            Class::UnsupportedOperation,
            format!("{name} is not implemented by SNOO's MPI library (docs/mpi.md lists what is)"),
        )
    })
}

/// Looks up a required object id or fails with `class`.
pub(crate) fn need(id: Option<Id>, class: Class, what: &str) -> MpiResult<Id> {
    id.ok_or_else(|| {
        MpiError::new(
            class,
            format!("invalid {what} (null, freed or not a {what})"),
        )
    })
}
