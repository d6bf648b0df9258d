//! The idiomatic Rust API.
//!
//! ```no_run
//! let world = snoo_mpi::init("job")?;
//! if world.rank() == 0 {
//!     world.send(&[1.0f64, 2.0], 1, 7)?;
//! } else if world.rank() == 1 {
//!     let mut buf = [0.0f64; 2];
//!     let status = world.recv(&mut buf, Some(0), Some(7))?;
//!     assert_eq!(status.count::<f64>(), 2);
//! }
//! world.finalize()?;
//! # Ok::<(), snoo_mpi::Error>(())
//! ```

use crate::device::{find_pool, open_pci, Device, PciMode, SocketDevice};
use crate::engine::{Direct, Engine, JoinOptions, To};
use crate::error::{Error, Result};
use crate::matching::{Status as RawStatus, Ticket};
use snoo_common::layout::PoolHeader;
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Highest valid tag.
pub const TAG_UB: i32 = i32::MAX;

/// Element types that travel as their bytes. Sealed: only plain numbers, for which every bit
/// pattern is a valid value and there is no padding.
pub trait Equivalence: Copy + sealed::Sealed {}

mod sealed {
    pub trait Sealed {}
}

macro_rules! equivalence {
    ($($t:ty),*) => {$(impl sealed::Sealed for $t {} impl Equivalence for $t {})*};
}
equivalence!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);

fn bytes<T: Equivalence>(s: &[T]) -> &[u8] {
    // SAFETY: T is a plain number type without padding (sealed trait), so its bytes are initialized.
    unsafe { std::slice::from_raw_parts(s.as_ptr() as *const u8, std::mem::size_of_val(s)) }
}

fn bytes_mut<T: Equivalence>(s: &mut [T]) -> &mut [u8] {
    // SAFETY: as above, and every bit pattern is a valid T, so writing any bytes is sound.
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr() as *mut u8, std::mem::size_of_val(s)) }
}

/// What a completed receive reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The sender's rank.
    pub source: u32,
    /// The message's tag.
    pub tag: i32,
    /// Bytes received.
    pub bytes: usize,
}

impl Status {
    pub(crate) fn from_raw(s: RawStatus) -> Self {
        Status {
            source: s.source,
            tag: s.tag as i32,
            bytes: s.bytes,
        }
    }

    /// Elements of `T` received (MPI_Get_count).
    pub fn count<T>(&self) -> usize {
        self.bytes / std::mem::size_of::<T>().max(1)
    }
}

/// Where the job's pool is reached:
/// - `SNOO_DEVICE=socket:PATH`: the daemon socket at PATH (a host process);
/// - `SNOO_DEVICE=pci:BDF`: the ivshmem device at BDF inside a VM, through VFIO if it is bound to
///   `vfio-pci`, else through sysfs; `vfio:BDF` and `sysfs:BDF` force one;
/// - else `SNOO_SOCKET` if set;
/// - else the first ivshmem device of this VM whose pool is named `name`;
/// - else the daemon socket `/run/snoo/NAME.sock`.
fn open_device(name: &str, timeout: Duration) -> Result<Arc<dyn Device>> {
    let no_pool = |why: String| Error::NoPool {
        name: name.to_string(),
        why,
    };
    let socket = |path: PathBuf| -> Result<Arc<dyn Device>> {
        let dev = SocketDevice::connect(&path, timeout).map_err(|e| no_pool(e.to_string()))?;
        Ok(Arc::new(dev))
    };
    if let Ok(d) = std::env::var("SNOO_DEVICE") {
        let mode = match d.split_once(':') {
            Some(("socket", p)) => return socket(PathBuf::from(p)),
            Some(("pci", _)) => PciMode::Auto,
            Some(("sysfs", _)) => PciMode::Sysfs,
            Some(("vfio", _)) => PciMode::Vfio,
            _ => {
                return Err(Error::Arg(format!(
                    "SNOO_DEVICE={d:?}: expected socket:PATH, pci:BDF, sysfs:BDF or vfio:BDF"
                )))
            }
        };
        let bdf = d.split_once(':').map_or("", |(_, b)| b);
        return open_pci(bdf, mode).map_err(|e| no_pool(format!("SNOO_DEVICE={d}: {e}")));
    }
    if let Some(p) = std::env::var_os("SNOO_SOCKET") {
        return socket(PathBuf::from(p));
    }
    let (found, tried) = find_pool(name);
    if let Some(dev) = found {
        return Ok(dev);
    }
    let path = PathBuf::from(format!("/run/snoo/{name}.sock"));
    socket(path.clone()).map_err(|e| {
        let pci = if tried.is_empty() {
            "no ivshmem PCI device in this machine".to_string()
        } else {
            format!("ivshmem devices tried: {}", tried.join("; "))
        };
        match e {
            Error::NoPool { why, .. } => no_pool(format!("{pci}; and {why}")),
            e => e,
        }
    })
}

/// A number from the environment. A value that is set but is not a non-negative integer (or not
/// UTF-8) is an error, never silently ignored: a typo must not put a rank in the wrong job.
fn env_u32(var: &str) -> Result<Option<u32>> {
    let bad = |v: &dyn std::fmt::Debug| {
        Error::Arg(format!(
            "{var}={v:?} is not a number (expected an integer from 0 to {})",
            u32::MAX
        ))
    };
    match std::env::var(var) {
        Ok(v) => v.trim().parse().map(Some).map_err(|_| bad(&v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(bad(&v)),
    }
}

/// Joins the job on the pool named `name` (MPI_Init). The rank comes from `SNOO_RANK` or join order,
/// the job size from `SNOO_SIZE` or the pool's `--ranks`; `SNOO_TIMEOUT` (seconds, at least 1,
/// default 60) bounds waiting for the other ranks and any wait without progress. With
/// `SNOO_ANY_NAME=1` and `SNOO_SOCKET` (what `snoo-run` sets for the pool it serves a job without
/// `--name`), the pool at that socket is joined whatever its name: it is the job's own.
///
/// Errors: [`Error::Arg`] for a malformed `SNOO_RANK`, `SNOO_SIZE`, `SNOO_TIMEOUT` or
/// `SNOO_DEVICE`, or a job size outside 1..=1024; [`Error::Rank`] for `SNOO_RANK` ≥ the job size;
/// [`Error::NoPool`] if the pool cannot be reached or is not named `name`;
/// [`Error::PoolTooSmall`] if the pool cannot hold a job of this size; [`Error::Timeout`] if the
/// other ranks do not all join in time.
pub fn init(name: &str) -> Result<World> {
    let timeout = match env_u32("SNOO_TIMEOUT")? {
        None => 60,
        Some(0) => {
            return Err(Error::Arg(
                "SNOO_TIMEOUT=0: the timeout is in seconds and must be at least 1".into(),
            ))
        }
        Some(s) => s,
    };
    let timeout = Duration::from_secs(timeout.into());
    let any_name = match env_u32("SNOO_ANY_NAME")? {
        None | Some(0) => false,
        Some(1) => std::env::var_os("SNOO_SOCKET").is_some(),
        Some(v) => return Err(Error::Arg(format!("SNOO_ANY_NAME={v}: expected 0 or 1"))),
    };
    let mut opts = JoinOptions {
        name: name.to_string(),
        rank: env_u32("SNOO_RANK")?,
        size: env_u32("SNOO_SIZE")?,
        timeout,
    };
    let dev = open_device(name, timeout)?;
    if any_name {
        // The launcher's own pool: join it under its name. (A pool that does not open is left to
        // the join to report.)
        if let Ok((_, info)) = PoolHeader::open(dev.shm()) {
            opts.name = info.name;
        }
    }
    World::join(dev, &opts)
}

/// COMM_WORLD's context id: its messages carry no CONTEXT word.
pub(crate) const WORLD: u64 = 0;

/// COMM_SELF's context id: its group is this rank alone, so every rank may use the same id.
pub(crate) const SELF: u64 = 1;

/// Context ids with this bit carry a communicator's own collective traffic (the exchanges of
/// `dup` and `split`), so that it never matches the program's receives on that communicator.
pub(crate) const COLL_BIT: u64 = 1 << 55;
/// The tag of a communicator-creation exchange on the collective context.
const CREATE_TAG: i32 = 1;

/// The ranks of a communicator over part of the world: its rank `i` is world rank `members[i]`.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) members: Vec<u32>,
    // World rank -> rank here, or `u32::MAX` for a world rank not in the group.
    rank_of: Vec<u32>,
}

impl Group {
    pub(crate) fn new(members: Vec<u32>, world_size: u32) -> Group {
        let mut rank_of = vec![u32::MAX; world_size as usize];
        for (i, &w) in members.iter().enumerate() {
            rank_of[w as usize] = i as u32;
        }
        Group { members, rank_of }
    }
}

/// How a communicator's ranks map to the world's: through a [`Group`], or one to one (the world
/// and its duplicates).
#[derive(Debug, Clone, Default)]
pub(crate) struct Ranks(pub(crate) Option<std::rc::Rc<Group>>);

impl Ranks {
    /// The world rank of rank `r` of a communicator of `size` ranks.
    pub(crate) fn to_world(&self, r: u32, size: u32) -> Result<u32> {
        let bad = || Error::Rank {
            rank: r.into(),
            size,
        };
        match &self.0 {
            None => (r < size).then_some(r).ok_or_else(bad),
            Some(g) => g.members.get(r as usize).copied().ok_or_else(bad),
        }
    }

    /// A source selector in the communicator's ranks, in the world's.
    pub(crate) fn source(&self, s: Option<u32>, size: u32) -> Result<Option<u32>> {
        s.map(|r| self.to_world(r, size)).transpose()
    }

    /// A status as the communicator names its source.
    pub(crate) fn status(&self, mut st: Status) -> Status {
        if let Some(g) = &self.0 {
            st.source = g
                .rank_of
                .get(st.source as usize)
                .copied()
                .unwrap_or(u32::MAX);
        }
        st
    }
}

/// A communicator with its own message space: a duplicate of COMM_WORLD ([`World::dup`]), or a
/// part of one ([`World::split`]). A message sent on it is received only on it; ranks are its
/// own (0 to `size() - 1`); blocking calls live on it, and non-blocking ones in its
/// [`Comm::scope`], as on the world.
///
/// ```no_run
/// # fn main() -> snoo_mpi::Result<()> {
/// let world = snoo_mpi::init("job")?;
/// let lib = world.dup()?; // a library's own traffic
/// if world.rank() == 0 {
///     lib.send(&[1u32], 1, 7)?;
///     world.send(&[2u32], 1, 7)?;
/// } else if world.rank() == 1 {
///     let mut x = [0u32];
///     world.recv(&mut x, Some(0), Some(7))?; // the world's message, though sent second
///     assert_eq!(x, [2]);
///     lib.recv(&mut x, Some(0), Some(7))?;
///     assert_eq!(x, [1]);
/// }
/// // Even and odd ranks, each half in reverse order.
/// let half = world.split(Some(world.rank() % 2), -(world.rank() as i32))?.unwrap();
/// assert_eq!(half.size(), (world.size() + 1 - world.rank() % 2) / 2);
/// # world.finalize()
/// # }
/// ```
pub struct Comm<'w> {
    pub(crate) world: &'w World,
    pub(crate) ctx: u64,
    pub(crate) ranks: Ranks,
    pub(crate) rank: u32,
    pub(crate) size: u32,
}

impl<'w> Comm<'w> {
    /// This process's rank in the communicator.
    pub fn rank(&self) -> u32 {
        self.rank
    }

    /// Ranks in the communicator.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Duplicates this communicator (MPI_Comm_dup): the same ranks, a new message space.
    /// Collective: every rank of the communicator calls it.
    pub fn dup(&self) -> Result<Comm<'w>> {
        let ctx = self.agree(0, self.rank.into())?.0;
        Ok(Comm {
            world: self.world,
            ctx,
            ranks: self.ranks.clone(),
            rank: self.rank,
            size: self.size,
        })
    }

    /// Splits this communicator (MPI_Comm_split): the ranks that pass the same `color` form a new
    /// communicator, ordered by `key`, then by their rank here; `None` (MPI_UNDEFINED) takes part
    /// and gets no communicator. Collective: every rank of the communicator calls it.
    pub fn split(&self, color: Option<u32>, key: i32) -> Result<Option<Comm<'w>>> {
        // Colors travel as u64 with u64::MAX for none; keys as their i32 bit pattern.
        let mine = color.map_or(u64::MAX, u64::from);
        let (ctx, all) = self.agree(mine, u64::from(key as u32))?;
        let Some(color) = color else {
            return Ok(None);
        };
        let mut members: Vec<(i32, u32)> = all
            .iter()
            .enumerate()
            .filter(|(_, &(c, _))| c == u64::from(color))
            .map(|(r, &(_, k))| (k as u32 as i32, r as u32))
            .collect();
        members.sort_unstable();
        let world_ranks = members
            .iter()
            .map(|&(_, r)| self.ranks.to_world(r, self.size))
            .collect::<Result<Vec<u32>>>()?;
        let rank = members
            .iter()
            .position(|&(_, r)| r == self.rank)
            .expect("this rank passed its own color") as u32;
        let size = world_ranks.len() as u32;
        Ok(Some(Comm {
            world: self.world,
            ctx,
            ranks: Ranks(Some(std::rc::Rc::new(Group::new(
                world_ranks,
                self.world.size,
            )))),
            rank,
            size,
        }))
    }

    /// Exchanges `(a, b)` with every rank of the communicator on its collective context and
    /// agrees on a context id for a new communicator: larger than every id any of them has used,
    /// so no rank of it has another communicator with that id (ranks outside it may: they never
    /// exchange messages on it). Returns the id and every rank's pair, by rank.
    fn agree(&self, a: u64, b: u64) -> Result<(u64, Vec<(u64, u64)>)> {
        let w = self.world;
        let coll = self.ctx | COLL_BIT;
        let mine = [a, b, w.next_ctx.get()];
        // Three words of 8 bytes: inline, so every send completes at once, and the receives
        // after them cannot deadlock.
        for r in (0..self.size).filter(|&r| r != self.rank) {
            let dest = self.ranks.to_world(r, self.size)?;
            w.send_bytes(bytes(&mine), dest, CREATE_TAG, coll)?;
        }
        let mut all = vec![(0, 0); self.size as usize];
        let mut next = mine[2];
        for r in 0..self.size {
            let theirs = if r == self.rank {
                mine
            } else {
                let mut got = [0u64; 3];
                let src = self.ranks.to_world(r, self.size)?;
                let st = w.recv_bytes(bytes_mut(&mut got), Some(src), Some(CREATE_TAG), coll)?;
                if st.bytes != std::mem::size_of_val(&got) {
                    return Err(Error::protocol(
                        src,
                        "communicator creation message of the wrong size",
                    ));
                }
                got
            };
            all[r as usize] = (theirs[0], theirs[1]);
            next = next.max(theirs[2]);
        }
        if next >= COLL_BIT {
            return Err(Error::Arg("no communicator context ids left".into()));
        }
        w.next_ctx.set(next + 1);
        Ok((next, all))
    }

    /// Blocking send on this communicator (MPI_Send).
    pub fn send<T: Equivalence>(&self, buf: &[T], dest: u32, tag: i32) -> Result<()> {
        let dest = self.ranks.to_world(dest, self.size)?;
        self.world.send_bytes(bytes(buf), dest, tag, self.ctx)
    }

    /// Blocking receive on this communicator (MPI_Recv); `None` means ANY_SOURCE/ANY_TAG.
    pub fn recv<T: Equivalence>(
        &self,
        buf: &mut [T],
        source: Option<u32>,
        tag: Option<i32>,
    ) -> Result<Status> {
        let source = self.ranks.source(source, self.size)?;
        let st = self
            .world
            .recv_bytes(bytes_mut(buf), source, tag, self.ctx)?;
        Ok(self.ranks.status(st))
    }

    /// Waits for a matching message on this communicator without receiving it (MPI_Probe).
    pub fn probe(&self, source: Option<u32>, tag: Option<i32>) -> Result<Status> {
        let source = self.ranks.source(source, self.size)?;
        let st = self.world.probe_on(self.ctx, source, tag)?;
        Ok(self.ranks.status(st))
    }

    /// Checks for a matching message on this communicator (MPI_Iprobe).
    pub fn iprobe(&self, source: Option<u32>, tag: Option<i32>) -> Result<Option<Status>> {
        let source = self.ranks.source(source, self.size)?;
        let st = self.world.iprobe_on(self.ctx, source, tag)?;
        Ok(st.map(|st| self.ranks.status(st)))
    }

    /// Runs `f` with a scope for non-blocking operations on this communicator (see
    /// [`World::scope`]).
    pub fn scope<R>(&self, f: impl FnOnce(&Scope<'w>) -> R) -> R {
        self.world
            .scope_on(self.ctx, self.ranks.clone(), self.size, f)
    }
}

impl std::fmt::Debug for Comm<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Comm")
            .field("ctx", &self.ctx)
            .field("rank", &self.rank)
            .field("size", &self.size)
            .finish()
    }
}

/// A joined job: COMM_WORLD.
pub struct World {
    pub(crate) engine: RefCell<Engine>,
    // The engine's, fixed at join: every call checks ranks against them.
    rank: u32,
    size: u32,
    next: Cell<u64>,
    // The context id of the next communicator created (COMM_WORLD's is 0).
    next_ctx: Cell<u64>,
    // What the last truncated receive got (source, tag, bytes), for the C status.
    pub(crate) truncated: Cell<Option<Status>>,
    // The request table of the last scope that ended, emptied: the next scope reuses its
    // allocation (a window of requests per scope is the common pattern, and growing a fresh
    // table to it cost an allocation per doubling).
    spare: Cell<Requests>,
    // Every communicator's area for shared-memory collectives.
    pub(crate) areas: RefCell<crate::collective::Areas>,
}

pub(crate) fn check_tag(tag: i32) -> Result<u32> {
    u32::try_from(tag).map_err(|_| Error::Tag(tag.into()))
}

/// Largest message, in bytes (2 GiB: what an envelope can announce).
pub const MAX_MESSAGE: usize = snoo_common::register::MAX_LEN as usize;

pub(crate) fn check_len(len: usize) -> Result<()> {
    if len > MAX_MESSAGE {
        return Err(Error::Count(i64::try_from(len).unwrap_or(i64::MAX)));
    }
    Ok(())
}

impl World {
    /// Joins a job through an already opened device.
    ///
    /// A job size of 0 or over 1024 is an [`Error::Arg`] (not a pool that is too small).
    pub fn join(dev: Arc<dyn Device>, opts: &JoinOptions) -> Result<World> {
        if let Some(n) = opts.size {
            if n == 0 || n > snoo_common::job::MAX_RANKS {
                return Err(Error::Arg(format!(
                    "job size {n}: a job has 1 to {} ranks",
                    snoo_common::job::MAX_RANKS
                )));
            }
        }
        let engine = Engine::join(dev, opts)?;
        Ok(World {
            rank: engine.rank(),
            size: engine.size(),
            engine: RefCell::new(engine),
            next: Cell::new(1),
            next_ctx: Cell::new(SELF + 1),
            truncated: Cell::new(None),
            spare: Cell::new(Requests::default()),
            areas: RefCell::default(),
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> u32 {
        self.rank
    }

    /// Ranks in the job.
    pub fn size(&self) -> u32 {
        self.size
    }

    pub(crate) fn id(&self) -> u64 {
        let id = self.next.get();
        self.next.set(id + 1);
        id
    }

    fn check_rank(&self, r: u32) -> Result<()> {
        let size = self.size();
        if r >= size {
            return Err(Error::Rank {
                rank: r.into(),
                size,
            });
        }
        Ok(())
    }

    /// Blocking send (MPI_Send): returns once `buf` may be reused.
    pub fn send<T: Equivalence>(&self, buf: &[T], dest: u32, tag: i32) -> Result<()> {
        self.send_bytes(bytes(buf), dest, tag, WORLD)
    }

    /// COMM_WORLD as a [`Comm`], to create communicators from.
    pub(crate) fn as_comm(&self) -> Comm<'_> {
        Comm {
            world: self,
            ctx: WORLD,
            ranks: Ranks::default(),
            rank: self.rank,
            size: self.size,
        }
    }

    /// Duplicates COMM_WORLD (MPI_Comm_dup): a communicator of the same ranks whose messages never
    /// match receives on any other communicator, whatever their source and tag. Collective: every
    /// rank calls it (the ranks agree on the new communicator's context id).
    pub fn dup(&self) -> Result<Comm<'_>> {
        self.as_comm().dup()
    }

    /// Splits COMM_WORLD (MPI_Comm_split); see [`Comm::split`].
    pub fn split(&self, color: Option<u32>, key: i32) -> Result<Option<Comm<'_>>> {
        self.as_comm().split(color, key)
    }

    pub(crate) fn send_bytes(&self, data: &[u8], dest: u32, tag: i32, ctx: u64) -> Result<()> {
        self.check_rank(dest)?;
        check_tag(tag)?;
        check_len(data.len())?;
        let req = self.id();
        let mut e = self.engine.borrow_mut();
        let to = To { dest, tag, ctx };
        // SAFETY: `data` stays borrowed until this function returns, and it returns only once the
        // send no longer references it (completed, or its peer is dead and the link dropped it).
        if unsafe { e.start_send(req, data.as_ptr(), data.len(), to, false)? } {
            return Ok(());
        }
        e.wait_send(req, dest)
    }

    /// Blocking receive (MPI_Recv). `source`/`tag` `None` mean ANY_SOURCE/ANY_TAG.
    pub fn recv<T: Equivalence>(
        &self,
        buf: &mut [T],
        source: Option<u32>,
        tag: Option<i32>,
    ) -> Result<Status> {
        self.recv_bytes(bytes_mut(buf), source, tag, WORLD)
    }

    pub(crate) fn recv_bytes(
        &self,
        buf: &mut [u8],
        source: Option<u32>,
        tag: Option<i32>,
        ctx: u64,
    ) -> Result<Status> {
        if let Some(s) = source {
            // The fast path: the message is (or soon will be) at the head of `s`'s mailbox.
            let tag = self.check_selector(source, tag)?;
            if let Some(st) = self
                .engine
                .borrow_mut()
                .recv_direct_spin(s, tag, ctx, buf)?
            {
                return Ok(Status::from_raw(st));
            }
        }
        match self.post_recv(buf, source, tag, ctx)? {
            Op::Recv { t, source } => self.wait_recv(t, source),
            Op::Received { st, .. } => Ok(Status::from_raw(st)),
            Op::Send { .. } | Op::Sent { .. } => Err(Error::Request),
        }
    }

    /// Blocking receive into `len` bytes at `ptr` (C ABI).
    ///
    /// # Safety
    /// The bytes must be writable, and untouched by the caller, for the duration of the call.
    pub unsafe fn recv_raw(
        &self,
        ptr: *mut u8,
        len: usize,
        source: Option<u32>,
        tag: Option<i32>,
    ) -> Result<Status> {
        // SAFETY: forwarded from the caller.
        let buf = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
        self.recv_bytes(buf, source, tag, WORLD)
    }

    /// Validates a (source, tag) selector of a receive or probe.
    fn check_selector(&self, source: Option<u32>, tag: Option<i32>) -> Result<Option<u32>> {
        if let Some(s) = source {
            self.check_rank(s)?;
        }
        tag.map(check_tag).transpose()
    }

    /// Posts a receive; a message already at the head of its source's mailbox completes it at
    /// once (`Op::Received`), without a trip through the matcher.
    pub(crate) fn post_recv(
        &self,
        buf: &mut [u8],
        source: Option<u32>,
        tag: Option<i32>,
        ctx: u64,
    ) -> Result<Op> {
        let tag = self.check_selector(source, tag)?;
        let id = self.id();
        let mut e = self.engine.borrow_mut();
        if let Some(s) = source {
            if let Direct::Taken(st) = e.recv_direct(s, tag, ctx, buf)? {
                return Ok(Op::Received { id, st });
            }
        }
        // A dead source is not refused here: what it sent before dying can still be received; the
        // wait reports its death once nothing more can arrive.
        // SAFETY: callers keep `buf` borrowed until the request completes or is failed (which
        // removes the pointer from the matcher).
        let t = unsafe {
            e.matcher
                .post(id, ctx, source, tag, buf.as_mut_ptr(), buf.len())
        };
        // A synchronous send it matched may complete now.
        e.send_acks()?;
        Ok(Op::Recv { t, source })
    }

    pub(crate) fn wait_recv(&self, req: Ticket, source: Option<u32>) -> Result<Status> {
        self.wait_recv_or(req, source, |_| None)
    }

    /// [`World::wait_recv`] that also gives up with `also`'s error (a collective's wait: a death
    /// anywhere in its communicator).
    pub(crate) fn wait_recv_or(
        &self,
        req: Ticket,
        source: Option<u32>,
        also: impl Fn(&Engine) -> Option<Error>,
    ) -> Result<Status> {
        let mut e = self.engine.borrow_mut();
        let r = if e.matcher.is_done(req) {
            Ok(())
        } else if let Some(err) = self_deadlock(&e, source, "receive") {
            Err(err)
        } else {
            e.wait_until(
                |e| Ok(e.matcher.is_done(req)),
                |e| source_gone(e, source).or_else(|| also(e)),
            )
        };
        if let Err(err) = r {
            if !e.matcher.is_done(req) {
                e.cancel_recv(req, Error::Arg("cancelled".into()));
                e.matcher.take(req);
                return Err(err);
            }
        }
        match e.matcher.take(req) {
            Some((st, None)) => Ok(Status::from_raw(st)),
            Some((st, Some(err))) => {
                if matches!(err, Error::Truncate { .. }) {
                    self.truncated.set(Some(Status::from_raw(st)));
                }
                Err(err)
            }
            None => Err(Error::Request),
        }
    }

    /// Waits for a matching message without receiving it (MPI_Probe).
    pub fn probe(&self, source: Option<u32>, tag: Option<i32>) -> Result<Status> {
        self.probe_on(WORLD, source, tag)
    }

    pub(crate) fn probe_on(
        &self,
        ctx: u64,
        source: Option<u32>,
        tag: Option<i32>,
    ) -> Result<Status> {
        let tag = self.check_selector(source, tag)?;
        let mut e = self.engine.borrow_mut();
        let mut found = e.matcher.probe(ctx, source, tag);
        if found.is_none() {
            if let Some(err) = self_deadlock(&e, source, "probe") {
                return Err(err);
            }
            e.wait_until(
                |e| {
                    e.progress_all()?;
                    found = e.matcher.probe(ctx, source, tag);
                    Ok(found.is_some())
                },
                |e| source_gone(e, source),
            )?;
        }
        Ok(Status::from_raw(found.expect("probe found a message")))
    }

    /// Checks for a matching message (MPI_Iprobe).
    pub fn iprobe(&self, source: Option<u32>, tag: Option<i32>) -> Result<Option<Status>> {
        self.iprobe_on(WORLD, source, tag)
    }

    pub(crate) fn iprobe_on(
        &self,
        ctx: u64,
        source: Option<u32>,
        tag: Option<i32>,
    ) -> Result<Option<Status>> {
        let tag = self.check_selector(source, tag)?;
        let mut e = self.engine.borrow_mut();
        e.progress_all()?;
        Ok(e.matcher.probe(ctx, source, tag).map(Status::from_raw))
    }

    /// Runs `f` with a scope for non-blocking operations; every request started in it is complete
    /// when `scope` returns (so buffers lent to requests are never used after they are released).
    pub fn scope<'env, R>(&'env self, f: impl FnOnce(&Scope<'env>) -> R) -> R {
        self.scope_on(WORLD, Ranks::default(), self.size, f)
    }

    fn scope_on<'env, R>(
        &'env self,
        ctx: u64,
        ranks: Ranks,
        size: u32,
        f: impl FnOnce(&Scope<'env>) -> R,
    ) -> R {
        let scope = Scope {
            world: self,
            ctx,
            ranks,
            size,
            id: self.id(),
            pending: RefCell::new(self.spare.take()),
        };
        let r = f(&scope);
        // Whatever the closure left incomplete, in start order (slot order, for the most part).
        let mut slot = 0usize;
        loop {
            let next = scope.pending.borrow().next_from(slot);
            let Some((at, p)) = next else { break };
            let _ = scope.finish(&scope.request(p, at));
            slot = at as usize + 1;
        }
        self.spare.set(scope.pending.into_inner());
        r
    }

    /// Starts a send of `len` bytes at `ptr` (C ABI).
    ///
    /// # Safety
    /// The bytes must stay readable until the returned operation completes.
    pub unsafe fn isend_raw(
        &self,
        ptr: *const u8,
        len: usize,
        dest: u32,
        tag: i32,
    ) -> Result<Option<Pending>> {
        self.check_rank(dest)?;
        check_tag(tag)?;
        check_len(len)?;
        let id = self.id();
        // SAFETY: forwarded from the caller.
        let done = unsafe {
            self.engine.borrow_mut().start_send(
                id,
                ptr,
                len,
                To {
                    dest,
                    tag,
                    ctx: WORLD,
                },
                true,
            )?
        };
        Ok((!done).then_some(Pending(Op::Send { id, dest })))
    }

    /// Posts a receive into `len` bytes at `ptr` (C ABI).
    ///
    /// # Safety
    /// The bytes must stay writable, and untouched by the caller, until the operation completes.
    pub unsafe fn irecv_raw(
        &self,
        ptr: *mut u8,
        len: usize,
        source: Option<u32>,
        tag: Option<i32>,
    ) -> Result<Pending> {
        // SAFETY: forwarded from the caller.
        let buf = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
        self.post_recv(buf, source, tag, WORLD).map(Pending)
    }

    /// Waits for an operation from [`World::isend_raw`] or [`World::irecv_raw`]; receives report
    /// their status.
    pub fn complete(&self, p: Pending) -> Result<Option<Status>> {
        match p.0 {
            Op::Send { id, dest } => {
                self.engine.borrow_mut().wait_send(id, dest)?;
                Ok(None)
            }
            Op::Recv { t, source } => self.wait_recv(t, source).map(Some),
            Op::Received { st, .. } => Ok(Some(Status::from_raw(st))),
            Op::Sent { .. } => Ok(None),
        }
    }

    /// What the last receive that failed with [`Error::Truncate`] got (its source, tag, and the
    /// bytes written), once (C ABI: MPI fills the status of a truncated receive).
    pub fn take_truncated(&self) -> Option<Status> {
        self.truncated.take()
    }

    /// True if waiting for `p` would not block.
    pub fn ready(&self, p: Pending) -> Result<bool> {
        let mut e = self.engine.borrow_mut();
        e.progress()?;
        Ok(p.0.ready_in(&e))
    }

    /// Blocks until waiting for one of `ops` would not block (MPI_Waitany, MPI_Waitsome): polls,
    /// then sleeps on the doorbell, as a wait for one operation does. Returns at once for an
    /// empty list; a peer's death makes its operations ready (to fail).
    pub fn wait_any(&self, ops: &[Pending]) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        self.engine
            .borrow_mut()
            .wait_until(|e| Ok(ops.iter().any(|p| p.0.ready_in(e))), |_| None)
    }

    /// Allocates `len` bytes of this rank's heap in the pool (MPI_Alloc_mem), zeroed. Sends of
    /// [`RDV_MIN`](crate::RDV_MIN) bytes or more from such memory take the
    /// single-copy path: the receiver copies the payload straight out of it (other VMs can read
    /// the pool), instead of the sender copying it through the data ring first. When the receive
    /// buffer is pool memory too and the message is [`SPLIT_MIN`](crate::SPLIT_MIN)
    /// bytes or more, sender and receiver copy half each, at once. The block is
    /// freed when the [`PoolMem`] is dropped. [`Error::NoMem`] when the heap has no room: the
    /// heaps share what the pool has left after the channels, so start a larger pool.
    pub fn alloc_mem(&self, len: usize) -> Result<PoolMem<'_>> {
        let ptr = self.alloc_raw(len)?;
        // The pool's base is a non-null mapping, so no block address is null.
        let ptr = std::ptr::NonNull::new(ptr).ok_or(Error::NoMem {
            size: len,
            largest: 0,
            heap: 0,
        })?;
        Ok(PoolMem {
            world: self,
            ptr,
            len,
        })
    }

    /// Allocates zeroed pool memory (SNOO_MPI_Alloc_mem); freed with [`World::free_raw`].
    pub fn alloc_raw(&self, len: usize) -> Result<*mut u8> {
        check_len(len)?;
        self.engine.borrow_mut().alloc_mem(len)
    }

    /// Frees pool memory from [`World::alloc_raw`] (SNOO_MPI_Free_mem).
    pub fn free_raw(&self, ptr: *mut u8) -> Result<()> {
        self.engine.borrow_mut().free_mem(ptr)
    }

    /// Completes outstanding sends and leaves the job (MPI_Finalize). It consumes the `World`, so
    /// no call can follow it (unlike C, where that is `SNOO_MPI_ERR_NOT_INITIALIZED`):
    ///
    /// ```compile_fail,E0382
    /// let world = snoo_mpi::init("job")?;
    /// world.finalize()?;
    /// world.send(&[1u8], 0, 0)?; // use of moved value: `world`
    /// # Ok::<(), snoo_mpi::Error>(())
    /// ```
    pub fn finalize(self) -> Result<()> {
        self.engine.borrow_mut().finalize()
    }
}

/// A block of this rank's heap in the pool, from [`World::alloc_mem`]; dereferences to its bytes.
///
/// Other ranks (other VMs) can read the pool, which is the point: a large send from here is
/// copied once, by the receiver. They can also write it; an honest peer never does, so treat the
/// contents as trusted only as far as you trust the job's members. It borrows the `World`, so
/// it cannot outlive the job.
pub struct PoolMem<'w> {
    world: &'w World,
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

impl std::ops::Deref for PoolMem<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` is a live block of this rank's heap, inside the pool mapping
        // that the world's device keeps mapped for the world's life (which `'w` outlives), and no
        // other `PoolMem` covers it (the heap hands each block out once).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for PoolMem<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference into the block.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for PoolMem<'_> {
    fn drop(&mut self) {
        // A send from the block is complete by now: sends borrow the `PoolMem`, and scopes and
        // blocking sends end only after their sends are complete.
        if let Err(e) = self.world.free_raw(self.ptr.as_ptr()) {
            tracing::warn!(error = %e, "freeing pool memory");
        }
    }
}

impl std::fmt::Debug for PoolMem<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolMem").field("len", &self.len).finish()
    }
}

/// The error of a blocking receive or probe from `source` (None: ANY_SOURCE) that nothing can
/// satisfy any more because every rank that could send it is dead.
fn source_gone(e: &Engine, source: Option<u32>) -> Option<Error> {
    match source {
        Some(s) => e.gone(s),
        None => {
            let mut others = (0..e.size()).filter(|&r| r != e.rank()).peekable();
            let first = *others.peek()?;
            let err = e.gone(first);
            others.all(|r| e.is_dead(r)).then_some(err).flatten()
        }
    }
}

/// A blocking receive or probe that only this rank could satisfy (from itself, or ANY_SOURCE in a
/// job of one) and that no earlier send to self matched would wait forever: the engine is
/// single-threaded and a send to self is delivered at once, so nothing can match it later.
fn self_deadlock(e: &Engine, source: Option<u32>, what: &str) -> Option<Error> {
    let only_self = match source {
        Some(s) => s == e.rank(),
        None => e.size() == 1,
    };
    only_self.then(|| {
        Error::Arg(format!(
            "{what} from rank {} (this rank) with no matching message sent to self: \
             it would wait forever",
            e.rank()
        ))
    })
}

/// An operation in flight, as scopes and [`Pending`] track it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Send {
        id: u64,
        dest: u32,
    },
    Recv {
        t: Ticket,
        source: Option<u32>,
    },
    /// A receive that completed when it was posted.
    Received {
        id: u64,
        st: RawStatus,
    },
    /// A send that completed when it was started (a scope still waits for it once).
    Sent {
        id: u64,
    },
}

impl Op {
    /// True if waiting for it would not block: done, or its peer is gone (it then fails).
    fn ready_in(&self, e: &Engine) -> bool {
        match *self {
            Op::Send { id, dest } => e.send_done(id, dest) || e.unreachable(dest),
            Op::Recv { t, source } => e.matcher.is_done(t) || source.is_some_and(|s| e.is_dead(s)),
            Op::Received { .. } | Op::Sent { .. } => true,
        }
    }

    /// The request's id: unique in its [`World`], counting up from 1 (never 0, never reused).
    pub fn id(&self) -> u64 {
        match *self {
            Op::Send { id, .. } | Op::Received { id, .. } | Op::Sent { id } => id,
            Op::Recv { t, .. } => t.req,
        }
    }
}

/// An operation in flight, as the C ABI tracks it: what [`World::isend_raw`] and
/// [`World::irecv_raw`] return, to pass to [`World::complete`] or [`World::ready`]. An opaque
/// handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending(pub(crate) Op);

impl Pending {
    /// The request's id: unique in its [`World`], counting up from 1 (never 0, never reused).
    pub fn id(&self) -> u64 {
        self.0.id()
    }
}

/// A non-blocking operation in flight: the operation, the scope that started it, and its slot in
/// that scope's table (none for one that completed when it started).
#[must_use = "wait for or test the request"]
#[derive(Debug)]
pub struct Request {
    p: Op,
    scope: u64,
    slot: u32,
    // Completed through `Scope::test`: waiting for it, or testing it again, is refused.
    consumed: Cell<bool>,
}

/// The slot of a request that completed when it started (most small sends and receives): the
/// scope has nothing to finish for it, so it stays out of the table.
const NO_SLOT: u32 = u32::MAX;

/// A scope's requests not yet complete (the ones it must finish if the closure does not), each in
/// a slot that its [`Request`] names, so that completing one finds it without a search. A request
/// whose slot no longer holds it (already waited for) is refused with `Error::Request`.
#[derive(Default)]
struct Requests {
    slots: Vec<Option<Op>>,
    // Slots emptied while others are still in use; all of them are dropped once none is.
    free: Vec<u32>,
    live: usize,
}

impl Requests {
    fn insert(&mut self, p: Op) -> u32 {
        self.live += 1;
        if let Some(i) = self.free.pop() {
            self.slots[i as usize] = Some(p);
            return i;
        }
        // More requests in flight at once than u32 can count cannot fit in memory.
        let i = u32::try_from(self.slots.len()).expect("fewer than 2^32 requests");
        self.slots.push(Some(p));
        i
    }

    /// True if `r` is in flight in this table.
    fn holds(&self, r: &Request) -> bool {
        self.slots.get(r.slot as usize) == Some(&Some(r.p))
    }

    /// Takes `r` out of the table; false if it is not there.
    fn remove(&mut self, r: &Request) -> bool {
        if !self.holds(r) {
            return false;
        }
        self.slots[r.slot as usize] = None;
        self.live -= 1;
        if self.live == 0 {
            // The common case (a window completed): start the next one from slot 0.
            self.slots.clear();
            self.free.clear();
        } else {
            self.free.push(r.slot);
        }
        true
    }

    /// The first request in flight at slot `from` or after it.
    fn next_from(&self, from: usize) -> Option<(u32, Op)> {
        let (i, p) = self
            .slots
            .iter()
            .enumerate()
            .skip(from)
            .find_map(|(i, s)| s.map(|p| (i, p)))?;
        Some((i as u32, p))
    }
}

/// Non-blocking operations whose buffers live at least as long as `'env`.
pub struct Scope<'env> {
    world: &'env World,
    // The communicator its operations are on: its context, how its ranks map to the world's,
    // and its size.
    ctx: u64,
    ranks: Ranks,
    size: u32,
    // Unique in the process (drawn from the request ids): tells this scope's requests apart.
    id: u64,
    pending: RefCell<Requests>,
}

impl<'env> Scope<'env> {
    /// The request for `p`, at `slot` of this scope's table.
    fn request(&self, p: Op, slot: u32) -> Request {
        Request {
            p,
            scope: self.id,
            slot,
            consumed: Cell::new(false),
        }
    }

    /// The request for `p`, just started: in the table unless it is complete already.
    fn started(&self, p: Op) -> Request {
        let slot = match p {
            Op::Sent { .. } | Op::Received { .. } => NO_SLOT,
            Op::Send { .. } | Op::Recv { .. } => self.pending.borrow_mut().insert(p),
        };
        self.request(p, slot)
    }

    /// Starts a send (MPI_Isend).
    pub fn isend<T: Equivalence>(&self, buf: &'env [T], dest: u32, tag: i32) -> Result<Request> {
        let w = self.world;
        let dest = self.ranks.to_world(dest, self.size)?;
        check_tag(tag)?;
        let data = bytes(buf);
        check_len(data.len())?;
        let id = w.id();
        let to = To {
            dest,
            tag,
            ctx: self.ctx,
        };
        // SAFETY: `buf` outlives the scope, and the scope completes every request before it ends.
        // (A send that completed at once is still a request of this scope, to be waited for once.)
        let done = unsafe {
            w.engine
                .borrow_mut()
                .start_send(id, data.as_ptr(), data.len(), to, true)?
        };
        // A send that is already complete needs no engine call when it is waited for.
        let p = if done {
            Op::Sent { id }
        } else {
            Op::Send { id, dest }
        };
        Ok(self.started(p))
    }

    /// Starts a receive (MPI_Irecv).
    pub fn irecv<T: Equivalence>(
        &self,
        buf: &'env mut [T],
        source: Option<u32>,
        tag: Option<i32>,
    ) -> Result<Request> {
        let source = self.ranks.source(source, self.size)?;
        let p = self
            .world
            .post_recv(bytes_mut(buf), source, tag, self.ctx)?;
        Ok(self.started(p))
    }

    /// True if `r` is this scope's and not completed through it yet.
    fn owns(&self, r: &Request) -> bool {
        r.scope == self.id
            && !r.consumed.get()
            && (r.slot == NO_SLOT || self.pending.borrow().holds(r))
    }

    fn finish(&self, r: &Request) -> Result<Option<Status>> {
        // Completed already (by `test`), or started in another scope.
        if r.scope != self.id || r.consumed.get() {
            return Err(Error::Request);
        }
        if r.slot != NO_SLOT && !self.pending.borrow_mut().remove(r) {
            return Err(Error::Request);
        }
        match r.p {
            Op::Send { id, dest } => {
                let mut e = self.world.engine.borrow_mut();
                if e.send_done(id, dest) {
                    return Ok(None);
                }
                e.wait_send(id, dest)?;
                Ok(None)
            }
            Op::Recv { t, source } => self
                .world
                .wait_recv(t, source)
                .map(|st| Some(self.ranks.status(st))),
            Op::Received { st, .. } => Ok(Some(self.ranks.status(Status::from_raw(st)))),
            Op::Sent { .. } => Ok(None),
        }
    }

    /// Waits for a request (MPI_Wait). Sends report `None`. A request that [`Scope::test`] already
    /// completed, or one started in another scope, is an [`Error::Request`].
    pub fn wait(&self, r: Request) -> Result<Option<Status>> {
        self.finish(&r)
    }

    /// Waits for all requests (MPI_Waitall), in order; the first error is returned after all have
    /// completed.
    pub fn wait_all(&self, rs: Vec<Request>) -> Result<Vec<Option<Status>>> {
        let mut out = Vec::with_capacity(rs.len());
        let mut first_err = None;
        for r in rs {
            match self.finish(&r) {
                Ok(s) => out.push(s),
                Err(e) => {
                    out.push(None);
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Checks a request without blocking (MPI_Test): `Some` once complete. The request is then
    /// consumed: testing or waiting for it again is an [`Error::Request`].
    pub fn test(&self, r: &Request) -> Result<Option<Option<Status>>> {
        if !self.owns(r) {
            return Err(Error::Request);
        }
        if self.world.ready(Pending(r.p))? {
            let done = self.finish(r);
            r.consumed.set(true);
            done.map(Some)
        } else {
            Ok(None)
        }
    }
}
