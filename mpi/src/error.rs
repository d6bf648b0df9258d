//! MPI error classes, ABI-neutral (each face maps them to its codes), and the error value every
//! call returns: a class plus a message naming what was wrong.

use std::fmt;

/// The MPI error classes this library raises (MPI 4.1 §9.4). A face maps each to its code; the
/// codes a program receives are classes (no per-instance codes), so `MPI_Error_class` is the
/// identity and `MPI_Error_string` gives the class's text.
#[allow(missing_docs)] // MPI's names: Buffer is MPI_ERR_BUFFER, …
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    Success,
    Buffer,
    Count,
    Type,
    Tag,
    Comm,
    Rank,
    Request,
    Root,
    Group,
    Op,
    Topology,
    Dims,
    Arg,
    Unknown,
    Truncate,
    Other,
    Intern,
    InStatus,
    Pending,
    Keyval,
    NoMem,
    Info,
    InfoKey,
    InfoValue,
    InfoNokey,
    Errhandler,
    UnsupportedOperation,
    ProcAborted,
}

impl Class {
    /// Every class, for the faces' tables.
    pub const ALL: [Class; 29] = {
        use Class::*;
        [
            Success,
            Buffer,
            Count,
            Type,
            Tag,
            Comm,
            Rank,
            Request,
            Root,
            Group,
            Op,
            Topology,
            Dims,
            Arg,
            Unknown,
            Truncate,
            Other,
            Intern,
            InStatus,
            Pending,
            Keyval,
            NoMem,
            Info,
            InfoKey,
            InfoValue,
            InfoNokey,
            Errhandler,
            UnsupportedOperation,
            ProcAborted,
        ]
    };

    /// MPI_Error_string's text for the class (MPICH's wording where it has one).
    pub fn text(self) -> &'static str {
        use Class::*;
        match self {
            Success => "No MPI error",
            Buffer => "Invalid buffer pointer",
            Count => "Invalid count",
            Type => "Invalid datatype",
            Tag => "Invalid tag",
            Comm => "Invalid communicator",
            Rank => "Invalid rank",
            Request => "Invalid MPI_Request",
            Root => "Invalid root",
            Group => "Invalid group",
            Op => "Invalid MPI_Op",
            Topology => "Invalid topology",
            Dims => "Invalid dimension argument",
            Arg => "Invalid argument",
            Unknown => "Unknown error",
            Truncate => "Message truncated",
            Other => "Other MPI error",
            Intern => "Internal MPI error!",
            InStatus => "See the MPI_ERROR field in MPI_Status for the error code",
            Pending => "Pending request (no error)",
            Keyval => "Invalid keyval",
            NoMem => "Out of memory",
            Info => "Invalid MPI_Info",
            InfoKey => "Invalid key for MPI_Info",
            InfoValue => "Invalid MPI_Info value",
            InfoNokey => "MPI_Info key is not defined",
            Errhandler => "Invalid MPI_Errhandler",
            UnsupportedOperation => "Unsupported operation",
            ProcAborted => "Communication with a process that failed or aborted",
        }
    }
}

/// A failed call: its class and what was wrong, for the error handler's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpiError {
    /// The class the call returns.
    pub class: Class,
    /// What was wrong, in words ("rank 5 is not in a communicator of 2 ranks").
    pub detail: String,
}

impl MpiError {
    /// An error of `class` saying `detail`.
    pub fn new(class: Class, detail: impl Into<String>) -> MpiError {
        MpiError {
            class,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for MpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class.text(), self.detail)
    }
}

/// The result of an MPI call.
pub type MpiResult<T> = Result<T, MpiError>;

impl From<snoo::Error> for MpiError {
    fn from(e: snoo::Error) -> MpiError {
        use snoo::Error as E;
        let class = match &e {
            E::Buffer => Class::Buffer,
            E::Count(_) => Class::Count,
            E::Datatype(_) => Class::Type,
            E::Tag(_) => Class::Tag,
            E::Comm(_) => Class::Comm,
            E::Rank { .. } => Class::Rank,
            E::Request => Class::Request,
            E::Truncate { .. } => Class::Truncate,
            E::NotInitialized | E::AlreadyInitialized => Class::Other,
            E::PeerDead(_) | E::PeerFinalized(_) => Class::ProcAborted,
            E::NoMem { .. } => Class::NoMem,
            E::Arg(_) => Class::Arg,
            E::NoPool { .. }
            | E::PoolTooSmall(_)
            | E::Timeout(_)
            | E::Protocol { .. }
            | E::Device(_) => Class::Other,
        };
        MpiError::new(class, e.to_string())
    }
}

/// Shorthand for an error of `class`.
pub fn err<T>(class: Class, detail: impl Into<String>) -> MpiResult<T> {
    Err(MpiError::new(class, detail))
}
