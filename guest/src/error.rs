//! Errors of the SNOO_MPI API: Rust values, and the integer codes of the C ABI.

use crate::device::DeviceError;

/// Everything a SNOO_MPI call can report. Each variant has a stable C code ([`Error::code`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A NULL buffer with a non-zero count.
    #[error("invalid buffer: NULL with a non-zero count")]
    Buffer,
    /// A negative count, or a message over 2 GiB.
    #[error("invalid count {0}")]
    Count(i64),
    /// An unknown datatype.
    #[error("invalid datatype {0}")]
    Datatype(i64),
    /// A tag outside `0..=TAG_UB` (the wildcard only where a receive allows it).
    #[error("invalid tag {0}: tags are 0..={max}", max = crate::TAG_UB)]
    Tag(i64),
    /// An unknown communicator.
    #[error("invalid communicator {0}")]
    Comm(i64),
    /// A rank outside the job.
    #[error("invalid rank {rank} (job size {size})")]
    Rank {
        /// The rank given.
        rank: i64,
        /// Ranks in the job.
        size: u32,
    },
    /// A request that is unknown, already completed, or another scope's.
    #[error("invalid or completed request")]
    Request,
    /// The message was longer than the receive buffer (which holds its first bytes).
    #[error("message truncated: {incoming} bytes arrived for a {capacity}-byte buffer")]
    Truncate {
        /// Bytes that were sent.
        incoming: usize,
        /// Bytes the buffer holds.
        capacity: usize,
    },
    /// A call before Init or after Finalize.
    #[error("SNOO_MPI is not initialized (call SNOO_MPI_Init first, and not after Finalize)")]
    NotInitialized,
    /// Init called twice.
    #[error("SNOO_MPI is already initialized")]
    AlreadyInitialized,
    /// No pool with that name could be joined.
    #[error("no pool named {name:?}: {why}")]
    NoPool {
        /// The name asked for.
        name: String,
        /// What went wrong.
        why: String,
    },
    /// The pool cannot hold a job of this size (the message says what size it needs).
    #[error("{0}")]
    PoolTooSmall(String),
    /// No progress within the job timeout (`SNOO_TIMEOUT`).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The rank's process or VM died, and nothing more it sent can arrive.
    #[error("rank {0} died (its VM or process is gone)")]
    PeerDead(u32),
    /// The rank called Finalize and everything it sent has been received: nothing more can come
    /// from it, and nothing more sent to it will be received (C: `SNOO_MPI_ERR_PEER_DEAD`).
    #[error("rank {0} has called Finalize: nothing more comes from it or reaches it")]
    PeerFinalized(u32),
    /// Shared memory written by that rank broke the protocol (a bug or a hostile peer).
    #[error("corrupt shared memory on the channel with rank {rank}: {what}")]
    Protocol {
        /// The rank whose channel it was.
        rank: u32,
        /// What was wrong.
        what: String,
    },
    /// The daemon or the device failed.
    #[error("device: {0}")]
    Device(#[from] DeviceError),
    /// Any other invalid argument or environment.
    #[error("invalid argument: {0}")]
    Arg(String),
    /// `alloc_mem` found no room in this rank's pool heap.
    #[error("no room for {size} bytes in this rank's pool heap ({heap} bytes, largest free block {largest}): start the pool larger (snoo-run --size, snoo-hostd --size)")]
    NoMem {
        /// Bytes asked for.
        size: usize,
        /// The largest free block.
        largest: usize,
        /// Bytes of the whole heap.
        heap: usize,
    },
}

impl Error {
    /// Corrupt shared memory on the channel with `rank`.
    pub(crate) fn protocol(rank: u32, what: impl std::fmt::Display) -> Error {
        Error::Protocol {
            rank,
            what: what.to_string(),
        }
    }
}

/// `Result` with SNOO_MPI's error.
pub type Result<T> = std::result::Result<T, Error>;

/// The C codes, in `snoo_mpi.h` order: the only table of them. The C ABI crate (`snoo-mpi-capi`)
/// re-exports it and checks `snoo_mpi.h` against it; `ERR_LASTCODE` is the highest, and every code
/// from 0 to it is used once.
#[allow(missing_docs)] // each code's meaning is `describe`'s text for it
pub mod code {
    pub const SUCCESS: i32 = 0;
    pub const ERR_BUFFER: i32 = 1;
    pub const ERR_COUNT: i32 = 2;
    pub const ERR_TYPE: i32 = 3;
    pub const ERR_TAG: i32 = 4;
    pub const ERR_COMM: i32 = 5;
    pub const ERR_RANK: i32 = 6;
    pub const ERR_REQUEST: i32 = 7;
    pub const ERR_TRUNCATE: i32 = 8;
    pub const ERR_NOT_INITIALIZED: i32 = 9;
    pub const ERR_ALREADY_INITIALIZED: i32 = 10;
    pub const ERR_NO_POOL: i32 = 11;
    pub const ERR_POOL_TOO_SMALL: i32 = 12;
    pub const ERR_TIMEOUT: i32 = 13;
    pub const ERR_PEER_DEAD: i32 = 14;
    pub const ERR_PROTOCOL: i32 = 15;
    pub const ERR_DEVICE: i32 = 16;
    pub const ERR_ARG: i32 = 17;
    pub const ERR_INTERN: i32 = 18;
    pub const ERR_NO_MEM: i32 = 19;
    pub const ERR_LASTCODE: i32 = 19;
}

impl Error {
    /// The stable C code of this error.
    pub fn code(&self) -> i32 {
        use code::*;
        match self {
            Error::Buffer => ERR_BUFFER,
            Error::Count(_) => ERR_COUNT,
            Error::Datatype(_) => ERR_TYPE,
            Error::Tag(_) => ERR_TAG,
            Error::Comm(_) => ERR_COMM,
            Error::Rank { .. } => ERR_RANK,
            Error::Request => ERR_REQUEST,
            Error::Truncate { .. } => ERR_TRUNCATE,
            Error::NotInitialized => ERR_NOT_INITIALIZED,
            Error::AlreadyInitialized => ERR_ALREADY_INITIALIZED,
            Error::NoPool { .. } => ERR_NO_POOL,
            Error::PoolTooSmall(_) => ERR_POOL_TOO_SMALL,
            Error::Timeout(_) => ERR_TIMEOUT,
            Error::PeerDead(_) | Error::PeerFinalized(_) => ERR_PEER_DEAD,
            Error::Protocol { .. } => ERR_PROTOCOL,
            Error::Device(_) => ERR_DEVICE,
            Error::Arg(_) => ERR_ARG,
            Error::NoMem { .. } => ERR_NO_MEM,
        }
    }
}

/// A fixed description of each C code, for `SNOO_MPI_Error_string`.
pub fn describe(code: i32) -> &'static str {
    use code::*;
    match code {
        SUCCESS => "success",
        ERR_BUFFER => "invalid buffer pointer",
        ERR_COUNT => "invalid count argument",
        ERR_TYPE => "invalid datatype argument",
        ERR_TAG => "invalid tag argument",
        ERR_COMM => "invalid communicator",
        ERR_RANK => "invalid rank",
        ERR_REQUEST => "invalid request",
        ERR_TRUNCATE => "message truncated on receive",
        ERR_NOT_INITIALIZED => "SNOO_MPI is not initialized",
        ERR_ALREADY_INITIALIZED => "SNOO_MPI is already initialized",
        ERR_NO_POOL => "no shared-memory pool with that name could be joined",
        ERR_POOL_TOO_SMALL => "the pool is too small for this job",
        ERR_TIMEOUT => "timed out",
        ERR_PEER_DEAD => "a peer rank died",
        ERR_PROTOCOL => "corrupt data in shared memory",
        ERR_DEVICE => "device or daemon I/O error",
        ERR_ARG => "invalid argument",
        ERR_INTERN => "internal error",
        ERR_NO_MEM => "no room left in this rank's pool heap",
        _ => "unknown error code",
    }
}
