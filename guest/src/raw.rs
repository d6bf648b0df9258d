//! Pointer-based calls for bindings that keep communicators and requests in handle tables (the
//! MPI library's C faces): a [`CommId`] is a communicator without its borrow of the [`World`],
//! and the `*_raw` calls take buffers as pointers whose lifetime the binding's caller guarantees,
//! as MPI's C API does.

use crate::api::{check_len, check_tag, Comm, Op, Pending, Ranks, Status, World, SELF, WORLD};
use crate::engine::To;
use crate::error::Result;

/// A communicator detached from its [`World`]: what a binding stores; [`World::attach`] gives the
/// [`Comm`] back. Cheap to clone (its group is shared).
#[derive(Clone, Debug)]
pub struct CommId {
    ctx: u64,
    ranks: Ranks,
    rank: u32,
    size: u32,
}

impl CommId {
    /// This process's rank in it.
    pub fn rank(&self) -> u32 {
        self.rank
    }

    /// Its number of ranks.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Its context id: equal ids on communicators with a common member mean the same
    /// communicator (MPI_Comm_compare's IDENT).
    pub fn context(&self) -> u64 {
        self.ctx
    }
}

impl World {
    /// The communicator `c` names, on this world.
    #[inline]
    pub fn attach(&self, c: &CommId) -> Comm<'_> {
        Comm {
            world: self,
            ctx: c.ctx,
            ranks: c.ranks.clone(),
            rank: c.rank,
            size: c.size,
        }
    }

    /// COMM_WORLD as a [`Comm`].
    pub fn comm(&self) -> Comm<'_> {
        self.as_comm()
    }

    /// COMM_SELF: this rank alone. Created without communication (every rank's has the same
    /// context id, which is harmless: no two of them have a member in common).
    pub fn comm_self(&self) -> Comm<'_> {
        Comm {
            world: self,
            ctx: SELF,
            ranks: Ranks(Some(std::rc::Rc::new(crate::api::Group::new(
                vec![self.rank()],
                self.size(),
            )))),
            rank: 0,
            size: 1,
        }
    }
}

impl<'w> Comm<'w> {
    /// This communicator without its borrow of the world, to store.
    pub fn detach(&self) -> CommId {
        CommId {
            ctx: self.ctx,
            ranks: self.ranks.clone(),
            rank: self.rank,
            size: self.size,
        }
    }

    /// The world rank of each of its ranks, in order.
    pub fn world_ranks(&self) -> Vec<u32> {
        match &self.ranks.0 {
            Some(g) => g.members.clone(),
            None => (0..self.size).collect(),
        }
    }

    /// Starts a send of `len` bytes at `ptr` to rank `dest` of this communicator; `None` if it
    /// completed at once (the buffer may be reused).
    ///
    /// # Safety
    /// The bytes must stay readable until the returned operation completes.
    #[inline]
    pub unsafe fn isend_raw(
        &self,
        ptr: *const u8,
        len: usize,
        dest: u32,
        tag: i32,
    ) -> Result<Option<Pending>> {
        let w = self.world;
        let (id, to) = self.send_to(len, dest, tag)?;
        let dest = to.dest;
        // SAFETY: forwarded from the caller.
        let done = unsafe { w.engine.borrow_mut().start_send(id, ptr, len, to, true)? };
        Ok((!done).then_some(Pending(Op::Send { id, dest })))
    }

    /// Checks a send of `len` bytes to rank `dest` of this communicator with `tag`; its request
    /// id and where it goes (`dest` in world ranks).
    #[inline]
    fn send_to(&self, len: usize, dest: u32, tag: i32) -> Result<(u64, To)> {
        let dest = self.ranks.to_world(dest, self.size)?;
        check_tag(tag)?;
        check_len(len)?;
        let to = To {
            dest,
            tag,
            ctx: self.ctx,
        };
        Ok((self.world.id(), to))
    }

    /// Starts a synchronous send of `len` bytes at `ptr` to rank `dest` (MPI_Issend): it
    /// completes only once a receive (or a matched probe) on `dest` has taken the message.
    ///
    /// # Safety
    /// The bytes must stay readable until the returned operation completes.
    pub unsafe fn issend_raw(
        &self,
        ptr: *const u8,
        len: usize,
        dest: u32,
        tag: i32,
    ) -> Result<Pending> {
        let w = self.world;
        let (id, to) = self.send_to(len, dest, tag)?;
        let dest = to.dest;
        // SAFETY: forwarded from the caller.
        unsafe { w.engine.borrow_mut().start_ssend(id, ptr, len, to)? };
        Ok(Pending(Op::Send { id, dest }))
    }

    /// Blocking synchronous send (MPI_Ssend): returns once a receive on `dest` took the message.
    ///
    /// # Safety
    /// The bytes must be readable for the duration of the call.
    pub unsafe fn ssend_raw(&self, ptr: *const u8, len: usize, dest: u32, tag: i32) -> Result<()> {
        // SAFETY: forwarded from the caller; the send completes before this returns.
        let p = unsafe { self.issend_raw(ptr, len, dest, tag)? };
        self.complete(p).map(|_| ())
    }

    /// Blocking send of `len` bytes at `ptr` (MPI_Send).
    ///
    /// # Safety
    /// The bytes must be readable for the duration of the call.
    #[inline]
    pub unsafe fn send_raw(&self, ptr: *const u8, len: usize, dest: u32, tag: i32) -> Result<()> {
        let dest = self.ranks.to_world(dest, self.size)?;
        // SAFETY: forwarded from the caller.
        let data = unsafe { std::slice::from_raw_parts(ptr, len) };
        self.world.send_bytes(data, dest, tag, self.ctx)
    }

    /// Posts a receive into `len` bytes at `ptr`; `None` selects any source or tag.
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
        let source = self.ranks.source(source, self.size)?;
        // SAFETY: forwarded from the caller.
        let buf = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
        self.world
            .post_recv(buf, source, tag, self.ctx)
            .map(Pending)
    }

    /// Blocking receive into `len` bytes at `ptr` (MPI_Recv). A truncated receive fails with
    /// [`Error::Truncate`]; [`Comm::take_truncated`] then says what arrived.
    ///
    /// # Safety
    /// The bytes must be writable, and untouched by the caller, for the duration of the call.
    #[inline]
    pub unsafe fn recv_raw(
        &self,
        ptr: *mut u8,
        len: usize,
        source: Option<u32>,
        tag: Option<i32>,
    ) -> Result<Status> {
        let source = self.ranks.source(source, self.size)?;
        // SAFETY: forwarded from the caller.
        let buf = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
        let st = self.world.recv_bytes(buf, source, tag, self.ctx)?;
        Ok(self.ranks.status(st))
    }

    /// Waits for an operation started on this communicator; receives report their status in its
    /// ranks.
    pub fn complete(&self, p: Pending) -> Result<Option<Status>> {
        Ok(self.world.complete(p)?.map(|st| self.ranks.status(st)))
    }

    /// True if completing `p` would not block.
    pub fn ready(&self, p: Pending) -> Result<bool> {
        self.world.ready(p)
    }

    /// What the last receive that failed with [`Error::Truncate`] got, in this communicator's
    /// ranks, once.
    pub fn take_truncated(&self) -> Option<Status> {
        self.world.take_truncated().map(|st| self.ranks.status(st))
    }

    /// Cancels a receive that no message has matched yet (MPI_Cancel): true if it is cancelled (it
    /// then completes at once with an empty status); false for a send, or a receive already
    /// matched, which completes normally.
    pub fn cancel(&self, p: Pending) -> bool {
        match p.0 {
            Op::Recv { t, .. } => self.world.engine.borrow_mut().matcher.withdraw(t),
            _ => false,
        }
    }

    /// The context of this communicator's own collective traffic.
    pub(crate) fn coll_ctx(&self) -> u64 {
        self.ctx | crate::api::COLL_BIT
    }

    /// True for COMM_WORLD itself.
    pub fn is_world(&self) -> bool {
        self.ctx == WORLD
    }
}

/// A message taken by a matched probe ([`Comm::mprobe`]): only [`Comm::mrecv_raw`] receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    id: u64,
    // Its sender's world rank.
    src: u32,
}

impl<'w> Comm<'w> {
    /// Takes the first message matching `source`/`tag` (`None`: any) if one is here
    /// (MPI_Improbe): later receives and probes no longer see it.
    pub fn improbe(
        &self,
        source: Option<u32>,
        tag: Option<i32>,
    ) -> Result<Option<(Message, Status)>> {
        let src = self.ranks.source(source, self.size)?;
        let tag = tag.map(check_tag).transpose()?;
        let mut e = self.world.engine.borrow_mut();
        e.progress_all()?;
        let found = e.matcher.reserve(self.ctx, src, tag);
        // A matched probe matches: a synchronous sender may go on.
        e.send_acks()?;
        Ok(found.map(|(id, st)| {
            let m = Message { id, src: st.source };
            (m, self.ranks.status(Status::from_raw(st)))
        }))
    }

    /// Waits for a message matching `source`/`tag` and takes it (MPI_Mprobe).
    pub fn mprobe(&self, source: Option<u32>, tag: Option<i32>) -> Result<(Message, Status)> {
        // The wait of a plain probe (with its timeout and dead-peer checks), then the reservation:
        // nothing else runs between them on this single-threaded engine.
        self.probe(source, tag)?;
        self.improbe(source, tag)?
            .ok_or_else(|| crate::error::Error::Arg("a probed message vanished".into()))
    }

    /// Receives message `m` into `len` bytes at `ptr` (MPI_Imrecv; complete it with
    /// [`Comm::complete`]).
    ///
    /// # Safety
    /// As for [`Comm::irecv_raw`].
    pub unsafe fn mrecv_raw(&self, m: Message, ptr: *mut u8, len: usize) -> Result<Pending> {
        let w = self.world;
        let id = w.id();
        // SAFETY: forwarded from the caller.
        let t = unsafe {
            w.engine
                .borrow_mut()
                .matcher
                .post_reserved(id, m.id, ptr, len)
        };
        let t = t.ok_or(crate::error::Error::Request)?;
        Ok(Pending(Op::Recv {
            t,
            source: Some(m.src),
        }))
    }
}
