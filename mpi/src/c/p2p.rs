//! Point-to-point calls: blocking and non-blocking sends and receives, probes, the buffered send
//! buffer. Data of non-contiguous datatypes is packed into a temporary buffer to send, and
//! received into one and unpacked.

use super::{count, need, out, peer, put, run, status_out, tag, Abi, Peer};
use crate::error::{err, Class, MpiError, MpiResult};
use crate::handle::Id;
use crate::request::{Flight, Persist, Req, Status, Unpack};
use crate::state::Mpi;
use snoo::{CommId, Pending};
use std::ffi::{c_int, c_void};

/// Send data: the program's bytes in place, or a packed copy.
pub(crate) enum SendBuf {
    /// Contiguous bytes of the program's buffer.
    Contig(*const u8, usize),
    /// A packed copy of a non-contiguous type.
    Packed(Box<[u8]>),
}

impl SendBuf {
    pub(crate) fn ptr_len(&self) -> (*const u8, usize) {
        match self {
            SendBuf::Contig(p, n) => (*p, *n),
            SendBuf::Packed(b) => (b.as_ptr(), b.len()),
        }
    }
}

/// Receive room: the program's bytes in place, or a temporary buffer to unpack from.
pub(crate) enum RecvBuf {
    /// Contiguous bytes of the program's buffer.
    Contig(*mut u8, usize),
    /// Non-contiguous: receive into a temporary buffer.
    Unpack(Box<Unpack>),
}

/// The fast path of [`send_buf`] and [`recv_buf`]: `n` elements of a contiguous predefined
/// datatype `dt` at `buf` are `n * size` bytes in place (`None`: another datatype).
#[inline(always)]
fn basic_run(
    m: &Mpi,
    buf: *const c_void,
    n: usize,
    dt: Option<Id>,
) -> Option<MpiResult<(*const u8, usize)>> {
    let size = m.contiguous_basic(dt)?;
    Some(match size * n {
        0 => Ok((std::ptr::NonNull::dangling().as_ptr(), 0)),
        _ if buf.is_null() => err(Class::Buffer, format!("NULL buffer with count {n}")),
        len => Ok((buf as *const u8, len)),
    })
}

/// The bytes `count` elements of `dt` at `buf` send.
#[inline(always)]
pub(crate) fn send_buf(
    m: &Mpi,
    buf: *const c_void,
    n: c_int,
    dt: Option<Id>,
) -> MpiResult<SendBuf> {
    let n = count(n)?;
    if let Some(run) = basic_run(m, buf, n, dt) {
        return run.map(|(p, len)| SendBuf::Contig(p, len));
    }
    let t = m.datatype(dt)?;
    match t.t.contiguous_run(n) {
        Some((_, 0)) => Ok(SendBuf::Contig(std::ptr::NonNull::dangling().as_ptr(), 0)),
        Some((off, len)) => {
            if buf.is_null() && t.t.named().is_some() {
                return err(Class::Buffer, format!("NULL buffer with count {n}"));
            }
            Ok(SendBuf::Contig(
                (buf as *const u8).wrapping_offset(off),
                len,
            ))
        }
        None => {
            let mut v = Vec::with_capacity(t.t.size().saturating_mul(n));
            // SAFETY: the program passes `n` elements of this type at `buf` (MPI's contract).
            unsafe { t.t.pack(n, buf as *const u8, &mut v) };
            Ok(SendBuf::Packed(v.into_boxed_slice()))
        }
    }
}

/// Where `count` elements of `dt` at `buf` are received.
#[inline(always)]
pub(crate) fn recv_buf(m: &Mpi, buf: *mut c_void, n: c_int, dt: Option<Id>) -> MpiResult<RecvBuf> {
    let n = count(n)?;
    if let Some(run) = basic_run(m, buf, n, dt) {
        return run.map(|(p, len)| RecvBuf::Contig(p as *mut u8, len));
    }
    let t = m.datatype(dt)?;
    match t.t.contiguous_run(n) {
        Some((_, 0)) => Ok(RecvBuf::Contig(std::ptr::NonNull::dangling().as_ptr(), 0)),
        Some((off, len)) => {
            if buf.is_null() && t.t.named().is_some() {
                return err(Class::Buffer, format!("NULL buffer with count {n}"));
            }
            Ok(RecvBuf::Contig((buf as *mut u8).wrapping_offset(off), len))
        }
        None => {
            let len =
                t.t.size()
                    .checked_mul(n)
                    .filter(|&l| l <= snoo::MAX_MESSAGE);
            let len = len.ok_or_else(|| {
                MpiError::new(
                    Class::Count,
                    format!("count {n} of this type is over the 2 GiB message limit"),
                )
            })?;
            Ok(RecvBuf::Unpack(Box::new(Unpack {
                buf: vec![0u8; len].into_boxed_slice(),
                dt: t.t.clone(),
                count: n,
                dst: buf as *mut u8,
            })))
        }
    }
}

/// Starts a send; the flight to complete.
pub(crate) fn start_send(
    m: &Mpi,
    cid: &CommId,
    b: SendBuf,
    dest: u32,
    tag: i32,
) -> MpiResult<Flight> {
    let (ptr, len) = b.ptr_len();
    let c = m.world.attach(cid);
    // SAFETY: the bytes are the program's buffer, which it keeps until the request completes
    // (MPI's rule), or the packed copy, which the flight owns until then.
    let p = unsafe { c.isend_raw(ptr, len, dest, tag)? };
    Ok(match p {
        None => Flight::Done(Status::EMPTY),
        Some(p) => in_flight(p, cid, b),
    })
}

/// A send in flight on `cid`, owning its packed copy if it has one until it completes.
fn in_flight(p: Pending, cid: &CommId, b: SendBuf) -> Flight {
    Flight::Send {
        p,
        comm: cid.clone(),
        packed: match b {
            SendBuf::Packed(v) => Some(v),
            SendBuf::Contig(..) => None,
        },
    }
}

/// Starts a synchronous send (it completes once a receive took it); the flight to complete.
pub(crate) fn start_ssend(
    m: &Mpi,
    cid: &CommId,
    b: SendBuf,
    dest: u32,
    tag: i32,
) -> MpiResult<Flight> {
    let (ptr, len) = b.ptr_len();
    let c = m.world.attach(cid);
    // SAFETY: as in `start_send`.
    let p = unsafe { c.issend_raw(ptr, len, dest, tag)? };
    Ok(in_flight(p, cid, b))
}

/// Posts a receive; the flight to complete.
pub(crate) fn start_recv(
    m: &Mpi,
    cid: &CommId,
    b: RecvBuf,
    src: Option<u32>,
    tag: Option<i32>,
) -> MpiResult<Flight> {
    let c = m.world.attach(cid);
    let (ptr, len, unpack) = match b {
        RecvBuf::Contig(p, n) => (p, n, None),
        RecvBuf::Unpack(mut u) => (u.buf.as_mut_ptr(), u.buf.len(), Some(u)),
    };
    // SAFETY: the program's buffer, kept until the request completes (MPI's rule), or the
    // temporary buffer, which the flight owns (a Box: its address does not move).
    let p = unsafe { c.irecv_raw(ptr, len, src, tag)? };
    Ok(Flight::Recv {
        p,
        comm: cid.clone(),
        unpack,
    })
}

/// Checks the arguments of a send and starts it (`None` for MPI_PROC_NULL).
#[inline(always)]
fn send_args<A: Abi>(
    m: &Mpi,
    buf: *const c_void,
    n: c_int,
    dt: A::Datatype,
    dest: c_int,
    t: c_int,
    comm: A::Comm,
) -> MpiResult<(&CommId, SendBuf, Option<u32>, i32)> {
    let c = m.comm(A::comm_id(comm))?;
    let t = tag::<A>(t, false)?.unwrap_or(0);
    let d = peer::<A>(dest, c.id.size(), false)?;
    let b = send_buf(m, buf, n, A::datatype_id(dt))?;
    let d = match d {
        Peer::Rank(r) => Some(r),
        _ => None,
    };
    Ok((&c.id, b, d, t))
}

/// A receive's checked arguments: communicator, room, source (outer `None`: MPI_PROC_NULL;
/// inner `None`: any) and tag (`None`: any).
type RecvArgs<'m> = (&'m CommId, RecvBuf, Option<Source>, Option<i32>);

/// A source selector: a rank, or `None` for any.
type Source = Option<u32>;

/// Checks the arguments of a receive.
#[inline(always)]
fn recv_args<A: Abi>(
    m: &Mpi,
    buf: *mut c_void,
    n: c_int,
    dt: A::Datatype,
    source: c_int,
    t: c_int,
    comm: A::Comm,
) -> MpiResult<RecvArgs<'_>> {
    let c = m.comm(A::comm_id(comm))?;
    let t = tag::<A>(t, true)?;
    let s = peer::<A>(source, c.id.size(), true)?;
    let b = recv_buf(m, buf, n, A::datatype_id(dt))?;
    let s = match s {
        Peer::Rank(r) => Some(Some(r)),
        Peer::Any => Some(None),
        Peer::Null => None,
    };
    Ok((&c.id, b, s, t))
}

/// A blocking send: standard and ready mode (see docs/mpi.md), or synchronous (`sync`).
fn blocking_send<A: Abi>(
    name: &'static str,
    sync: bool,
    buf: *const c_void,
    n: c_int,
    dt: A::Datatype,
    dest: c_int,
    t: c_int,
    comm: A::Comm,
) -> c_int {
    run::<A>(name, Some(comm), |m| {
        let (cid, b, d, t) = send_args::<A>(m, buf, n, dt, dest, t, comm)?;
        let Some(d) = d else { return Ok(()) };
        let (ptr, len) = b.ptr_len();
        let c = m.world.attach(cid);
        // Published before returning (never held back in a batch): a receiver must get a
        // completed send whatever this rank does next (MPI's progress rule).
        // SAFETY: the program's buffer (or our packed copy), valid for the call.
        unsafe {
            if sync {
                c.ssend_raw(ptr, len, d, t)?
            } else {
                c.send_raw(ptr, len, d, t)?
            }
        };
        Ok(())
    })
}

/// MPI_Send.
pub fn send<A: Abi>(
    buf: *const c_void,
    n: c_int,
    dt: A::Datatype,
    dest: c_int,
    t: c_int,
    comm: A::Comm,
) -> c_int {
    blocking_send::<A>("MPI_Send", false, buf, n, dt, dest, t, comm)
}

/// MPI_Ssend.
pub fn ssend<A: Abi>(
    buf: *const c_void,
    n: c_int,
    dt: A::Datatype,
    dest: c_int,
    t: c_int,
    comm: A::Comm,
) -> c_int {
    blocking_send::<A>("MPI_Ssend", true, buf, n, dt, dest, t, comm)
}

/// MPI_Rsend.
pub fn rsend<A: Abi>(
    buf: *const c_void,
    n: c_int,
    dt: A::Datatype,
    dest: c_int,
    t: c_int,
    comm: A::Comm,
) -> c_int {
    blocking_send::<A>("MPI_Rsend", false, buf, n, dt, dest, t, comm)
}

/// MPI_Bsend: the data is copied (packed) at once and sent in the background, within the room
/// of the attached buffer.
pub fn bsend<A: Abi>(
    buf: *const c_void,
    n: c_int,
    dt: A::Datatype,
    dest: c_int,
    t: c_int,
    comm: A::Comm,
) -> c_int {
    run::<A>("MPI_Bsend", Some(comm), |m| {
        let (cid, b, d, t) = send_args::<A>(m, buf, n, dt, dest, t, comm)?;
        let Some(d) = d else { return Ok(()) };
        let f = start_buffered::<A>(m, &cid.clone(), b, d, t)?;
        m.buffered.push(f);
        // Publish it now, and ring a receiver asleep on its doorbell, as MPI_Send does: a started
        // send waits in its batch for the program's next MPI call otherwise. What goes on in the
        // background is only what does not fit the channel yet; an error shows when the send is
        // reaped (a later call, MPI_Buffer_detach).
        if let Some(f) = m.buffered.last() {
            let _ = f.ready(&m.world);
        }
        Ok(())
    })
}

/// Starts a buffered send: a copy of the data, counted against the attached buffer.
fn start_buffered<A: Abi>(
    m: &mut Mpi,
    cid: &CommId,
    b: SendBuf,
    d: u32,
    t: i32,
) -> MpiResult<Flight> {
    m.reap_buffered();
    let (ptr, len) = b.ptr_len();
    let Some((_, room)) = m.bsend else {
        return err(
            Class::Buffer,
            "buffered send with no buffer attached (MPI_Buffer_attach)",
        );
    };
    let need = len + A::BSEND_OVERHEAD;
    if m.buffered_bytes() + need > room {
        return err(
            Class::Buffer,
            format!(
                "the attached buffer ({room} bytes) has no room for {len} more bytes (+{} overhead); {} bytes are in flight",
                A::BSEND_OVERHEAD,
                m.buffered_bytes()
            ),
        );
    }
    let copy = match b {
        SendBuf::Packed(v) => v,
        // SAFETY: the program's buffer, valid for the call.
        SendBuf::Contig(..) => unsafe { std::slice::from_raw_parts(ptr, len) }.into(),
    };
    start_send(m, cid, SendBuf::Packed(copy), d, t).map(|f| match f {
        Flight::Done(st) => Flight::Done(Status {
            bytes: len + A::BSEND_OVERHEAD,
            ..st
        }),
        f => f,
    })
}

/// MPI_Recv.
pub fn recv<A: Abi>(
    buf: *mut c_void,
    n: c_int,
    dt: A::Datatype,
    source: c_int,
    t: c_int,
    comm: A::Comm,
    status: *mut A::Status,
) -> c_int {
    run::<A>("MPI_Recv", Some(comm), |m| {
        let (cid, b, s, t) = recv_args::<A>(m, buf, n, dt, source, t, comm)?;
        let Some(s) = s else {
            status_out::<A>(status, &Status::PROC_NULL);
            return Ok(());
        };
        if let RecvBuf::Contig(ptr, len) = b {
            let c = m.world.attach(cid);
            // SAFETY: the program's buffer, writable for the call.
            return match unsafe { c.recv_raw(ptr, len, s, t) } {
                Ok(st) => {
                    status_out::<A>(status, &Status::of(st));
                    Ok(())
                }
                Err(e) => {
                    if let Some(st) = c.take_truncated() {
                        status_out::<A>(status, &Status::of(st));
                    }
                    Err(e.into())
                }
            };
        }
        let f = start_recv(m, cid, b, s, t)?;
        finish_out::<A>(m, f, status)
    })
}

/// Completes a flight and writes its status (also for a truncated receive).
pub(crate) fn finish_out<A: Abi>(m: &Mpi, f: Flight, status: *mut A::Status) -> MpiResult<()> {
    match f.finish(&m.world) {
        Ok(st) => {
            status_out::<A>(status, &st);
            Ok(())
        }
        Err((e, st)) => {
            status_out::<A>(status, &st);
            Err(e)
        }
    }
}

/// Stores a new request and writes its handle.
pub(crate) fn new_request<A: Abi>(m: &mut Mpi, r: Req, req: *mut A::Request) -> MpiResult<()> {
    let slot = out(req, "request")?;
    let id = m
        .requests
        .insert(r)
        .ok_or_else(|| MpiError::new(Class::Intern, "too many requests in flight (65536)"))?;
    *slot = A::request(id);
    Ok(())
}

/// How a non-blocking send is started.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Standard (and ready) mode.
    Standard,
    /// Buffered: completes at once, from a copy in the attached buffer.
    Buffered,
    /// Synchronous: completes once a receive took the message.
    Synchronous,
}

fn nonblocking_send<A: Abi>(
    name: &'static str,
    mode: Mode,
    buf: *const c_void,
    n: c_int,
    dt: A::Datatype,
    dest: c_int,
    t: c_int,
    comm: A::Comm,
    req: *mut A::Request,
) -> c_int {
    run::<A>(name, Some(comm), |m| {
        out(req, "request")?;
        let (cid, b, d, t) = send_args::<A>(m, buf, n, dt, dest, t, comm)?;
        let f = match d {
            None => Flight::Done(Status::EMPTY),
            Some(d) if mode == Mode::Buffered => {
                // The request completes at once; the copy travels in the background.
                let f = start_buffered::<A>(m, &cid.clone(), b, d, t)?;
                m.buffered.push(f);
                Flight::Done(Status::EMPTY)
            }
            Some(d) if mode == Mode::Synchronous => start_ssend(m, cid, b, d, t)?,
            Some(d) => start_send(m, cid, b, d, t)?,
        };
        new_request::<A>(
            m,
            Req {
                flight: Some(f),
                persist: None,
            },
            req,
        )
    })
}

/// MPI_Isend.
pub fn isend<A: Abi>(
    buf: *const c_void,
    n: c_int,
    dt: A::Datatype,
    dest: c_int,
    t: c_int,
    comm: A::Comm,
    req: *mut A::Request,
) -> c_int {
    nonblocking_send::<A>("MPI_Isend", Mode::Standard, buf, n, dt, dest, t, comm, req)
}

/// MPI_Issend.
pub fn issend<A: Abi>(
    buf: *const c_void,
    n: c_int,
    dt: A::Datatype,
    dest: c_int,
    t: c_int,
    comm: A::Comm,
    req: *mut A::Request,
) -> c_int {
    nonblocking_send::<A>(
        "MPI_Issend",
        Mode::Synchronous,
        buf,
        n,
        dt,
        dest,
        t,
        comm,
        req,
    )
}

/// MPI_Irsend.
pub fn irsend<A: Abi>(
    buf: *const c_void,
    n: c_int,
    dt: A::Datatype,
    dest: c_int,
    t: c_int,
    comm: A::Comm,
    req: *mut A::Request,
) -> c_int {
    nonblocking_send::<A>("MPI_Irsend", Mode::Standard, buf, n, dt, dest, t, comm, req)
}

/// MPI_Ibsend.
pub fn ibsend<A: Abi>(
    buf: *const c_void,
    n: c_int,
    dt: A::Datatype,
    dest: c_int,
    t: c_int,
    comm: A::Comm,
    req: *mut A::Request,
) -> c_int {
    nonblocking_send::<A>("MPI_Ibsend", Mode::Buffered, buf, n, dt, dest, t, comm, req)
}

/// MPI_Irecv.
pub fn irecv<A: Abi>(
    buf: *mut c_void,
    n: c_int,
    dt: A::Datatype,
    source: c_int,
    t: c_int,
    comm: A::Comm,
    req: *mut A::Request,
) -> c_int {
    run::<A>("MPI_Irecv", Some(comm), |m| {
        out(req, "request")?;
        let (cid, b, s, t) = recv_args::<A>(m, buf, n, dt, source, t, comm)?;
        let f = match s {
            None => Flight::Done(Status::PROC_NULL),
            Some(s) => start_recv(m, cid, b, s, t)?,
        };
        new_request::<A>(
            m,
            Req {
                flight: Some(f),
                persist: None,
            },
            req,
        )
    })
}

fn persistent<A: Abi>(
    name: &'static str,
    send: bool,
    sync: bool,
    buf: *mut c_void,
    n: c_int,
    dt: A::Datatype,
    peer_rank: c_int,
    t: c_int,
    comm: A::Comm,
    req: *mut A::Request,
) -> c_int {
    run::<A>(name, Some(comm), |m| {
        out(req, "request")?;
        let cid = need(A::comm_id(comm), Class::Comm, "communicator")?;
        let c = m.comm(Some(cid))?;
        let tg = tag::<A>(t, !send)?;
        let p = peer::<A>(peer_rank, c.id.size(), !send)?;
        let count = count(n)?;
        let dtid = need(A::datatype_id(dt), Class::Type, "datatype")?;
        m.datatype(Some(dtid))?;
        if buf.is_null() && count > 0 && m.types.is_predefined(dtid) {
            return err(Class::Buffer, format!("NULL buffer with count {count}"));
        }
        let persist = Persist {
            send,
            sync,
            buf: buf as usize,
            count,
            dt: dtid,
            peer: match p {
                Peer::Rank(r) => Some(r),
                _ => None,
            },
            proc_null: matches!(p, Peer::Null),
            tag: tg,
            comm: cid,
        };
        new_request::<A>(
            m,
            Req {
                flight: None,
                persist: Some(Box::new(persist)),
            },
            req,
        )
    })
}

/// MPI_Send_init (and the synchronous and ready modes).
pub fn send_init<A: Abi>(
    buf: *const c_void,
    n: c_int,
    dt: A::Datatype,
    dest: c_int,
    t: c_int,
    comm: A::Comm,
    req: *mut A::Request,
) -> c_int {
    persistent::<A>(
        "MPI_Send_init",
        true,
        false,
        buf as *mut c_void,
        n,
        dt,
        dest,
        t,
        comm,
        req,
    )
}

/// MPI_Ssend_init.
pub fn ssend_init<A: Abi>(
    buf: *const c_void,
    n: c_int,
    dt: A::Datatype,
    dest: c_int,
    t: c_int,
    comm: A::Comm,
    req: *mut A::Request,
) -> c_int {
    persistent::<A>(
        "MPI_Ssend_init",
        true,
        true,
        buf as *mut c_void,
        n,
        dt,
        dest,
        t,
        comm,
        req,
    )
}

/// MPI_Recv_init.
pub fn recv_init<A: Abi>(
    buf: *mut c_void,
    n: c_int,
    dt: A::Datatype,
    source: c_int,
    t: c_int,
    comm: A::Comm,
    req: *mut A::Request,
) -> c_int {
    persistent::<A>(
        "MPI_Recv_init",
        false,
        false,
        buf,
        n,
        dt,
        source,
        t,
        comm,
        req,
    )
}

/// Starts a persistent request's operation.
pub(crate) fn start_persistent(m: &Mpi, p: &Persist) -> MpiResult<Flight> {
    let c = m.comm(Some(p.comm))?;
    let cid = c.id.clone();
    let n = c_int::try_from(p.count).unwrap_or(c_int::MAX);
    if p.proc_null {
        return Ok(Flight::Done(if p.send {
            Status::EMPTY
        } else {
            Status::PROC_NULL
        }));
    }
    if p.send {
        let b = send_buf(m, p.buf as *const c_void, n, Some(p.dt))?;
        let (dest, tag) = (p.peer.unwrap_or(0), p.tag.unwrap_or(0));
        if p.sync {
            return start_ssend(m, &cid, b, dest, tag);
        }
        start_send(m, &cid, b, dest, tag)
    } else {
        let b = recv_buf(m, p.buf as *mut c_void, n, Some(p.dt))?;
        start_recv(m, &cid, b, p.peer, p.tag)
    }
}

/// MPI_Sendrecv.
pub fn sendrecv<A: Abi>(
    sbuf: *const c_void,
    scount: c_int,
    sdt: A::Datatype,
    dest: c_int,
    stag: c_int,
    rbuf: *mut c_void,
    rcount: c_int,
    rdt: A::Datatype,
    source: c_int,
    rtag: c_int,
    comm: A::Comm,
    status: *mut A::Status,
) -> c_int {
    run::<A>("MPI_Sendrecv", Some(comm), |m| {
        let (cid, sb, d, st) = send_args::<A>(m, sbuf, scount, sdt, dest, stag, comm)?;
        let (_, rb, s, rt) = recv_args::<A>(m, rbuf, rcount, rdt, source, rtag, comm)?;
        sendrecv_flights::<A>(m, cid, sb, d, st, rb, s, rt, status)
    })
}

/// Posts the receive, starts the send, completes both.
fn sendrecv_flights<A: Abi>(
    m: &Mpi,
    cid: &CommId,
    sb: SendBuf,
    d: Option<u32>,
    st: i32,
    rb: RecvBuf,
    s: Option<Source>,
    rt: Option<i32>,
    status: *mut A::Status,
) -> MpiResult<()> {
    let rf = match s {
        None => Flight::Done(Status::PROC_NULL),
        Some(s) => start_recv(m, cid, rb, s, rt)?,
    };
    let sf = match d {
        None => Flight::Done(Status::EMPTY),
        Some(d) => start_send(m, cid, sb, d, st)?,
    };
    let r = finish_out::<A>(m, rf, status);
    sf.finish(&m.world).map_err(|(e, _)| e)?;
    r
}

/// MPI_Sendrecv_replace: the outgoing data is packed first, so the receive can reuse the buffer.
pub fn sendrecv_replace<A: Abi>(
    buf: *mut c_void,
    n: c_int,
    dt: A::Datatype,
    dest: c_int,
    stag: c_int,
    source: c_int,
    rtag: c_int,
    comm: A::Comm,
    status: *mut A::Status,
) -> c_int {
    run::<A>("MPI_Sendrecv_replace", Some(comm), |m| {
        let (cid, sb, d, st) = send_args::<A>(m, buf, n, dt, dest, stag, comm)?;
        let sb = match sb {
            SendBuf::Contig(p, len) => {
                // SAFETY: the program's buffer, valid for the call; copied before the receive
                // writes it.
                SendBuf::Packed(unsafe { std::slice::from_raw_parts(p, len) }.into())
            }
            packed => packed,
        };
        let (_, rb, s, rt) = recv_args::<A>(m, buf, n, dt, source, rtag, comm)?;
        sendrecv_flights::<A>(m, cid, sb, d, st, rb, s, rt, status)
    })
}

fn probe_common<A: Abi>(
    name: &'static str,
    blocking: bool,
    source: c_int,
    t: c_int,
    comm: A::Comm,
    flag: *mut c_int,
    status: *mut A::Status,
) -> c_int {
    run::<A>(name, Some(comm), |m| {
        if !blocking {
            out(flag, "flag")?;
        }
        let c = m.comm(A::comm_id(comm))?;
        let t = tag::<A>(t, true)?;
        let s = match peer::<A>(source, c.id.size(), true)? {
            Peer::Null => {
                status_out::<A>(status, &Status::PROC_NULL);
                if !blocking {
                    put(flag, 1, "flag")?;
                }
                return Ok(());
            }
            Peer::Any => None,
            Peer::Rank(r) => Some(r),
        };
        let comm = m.world.attach(&c.id);
        if blocking {
            let st = comm.probe(s, t)?;
            status_out::<A>(status, &Status::of(st));
        } else {
            let st = comm.iprobe(s, t)?;
            put(flag, c_int::from(st.is_some()), "flag")?;
            if let Some(st) = st {
                status_out::<A>(status, &Status::of(st));
            }
        }
        Ok(())
    })
}

/// MPI_Probe.
pub fn probe<A: Abi>(source: c_int, t: c_int, comm: A::Comm, status: *mut A::Status) -> c_int {
    probe_common::<A>(
        "MPI_Probe",
        true,
        source,
        t,
        comm,
        std::ptr::null_mut(),
        status,
    )
}

/// MPI_Iprobe.
pub fn iprobe<A: Abi>(
    source: c_int,
    t: c_int,
    comm: A::Comm,
    flag: *mut c_int,
    status: *mut A::Status,
) -> c_int {
    probe_common::<A>("MPI_Iprobe", false, source, t, comm, flag, status)
}

/// MPI_Buffer_attach.
pub fn buffer_attach<A: Abi>(buf: *mut c_void, size: c_int) -> c_int {
    run::<A>("MPI_Buffer_attach", None, |m| {
        let size = usize::try_from(size)
            .map_err(|_| MpiError::new(Class::Arg, format!("negative buffer size {size}")))?;
        if m.bsend.is_some() {
            return err(
                Class::Buffer,
                "a buffer is already attached (MPI_Buffer_detach it first)",
            );
        }
        m.bsend = Some((buf as usize, size));
        Ok(())
    })
}

/// MPI_Buffer_detach: waits for the buffered sends in flight, then returns the buffer.
pub fn buffer_detach<A: Abi>(buf: *mut c_void, size: *mut c_int) -> c_int {
    run::<A>("MPI_Buffer_detach", None, |m| {
        let addr = out(buf as *mut usize, "buffer address")?;
        let sz = out(size, "size")?;
        m.drain_buffered()?;
        let (a, s) = m.bsend.take().unwrap_or((0, 0));
        *addr = a;
        *sz = c_int::try_from(s).unwrap_or(c_int::MAX);
        Ok(())
    })
}

/// MPI_Get_count: elements of `dt` in the status, or MPI_UNDEFINED.
pub fn get_count<A: Abi>(status: *const A::Status, dt: A::Datatype, n: *mut c_int) -> c_int {
    run::<A>("MPI_Get_count", None, |m| {
        let st = read_status::<A>(status)?;
        let t = m.datatype(A::datatype_id(dt))?;
        let size = t.t.size();
        let v = if size == 0 {
            if st.bytes == 0 {
                0
            } else {
                A::UNDEFINED
            }
        } else if st.bytes % size != 0 {
            A::UNDEFINED
        } else {
            c_int::try_from(st.bytes / size).unwrap_or(A::UNDEFINED)
        };
        put(n, v, "count")
    })
}

/// MPI_Get_elements: basic elements in the status, or MPI_UNDEFINED.
pub fn get_elements<A: Abi>(status: *const A::Status, dt: A::Datatype, n: *mut c_int) -> c_int {
    run::<A>("MPI_Get_elements", None, |m| {
        let st = read_status::<A>(status)?;
        let t = m.datatype(A::datatype_id(dt))?;
        let v =
            t.t.elements(st.bytes)
                .and_then(|e| c_int::try_from(e).ok())
                .unwrap_or(A::UNDEFINED);
        put(n, v, "count")
    })
}

/// A status the program passes in.
pub(crate) fn read_status<A: Abi>(s: *const A::Status) -> MpiResult<Status> {
    if s.is_null() || s as usize == A::STATUS_IGNORE {
        return err(
            Class::Arg,
            "NULL status (or MPI_STATUS_IGNORE) where a status is read",
        );
    }
    // SAFETY: a non-NULL status the program passes for reading.
    Ok(unsafe { A::read_status(s) })
}

fn mprobe_common<A: Abi>(
    name: &'static str,
    blocking: bool,
    source: c_int,
    t: c_int,
    comm: A::Comm,
    flag: *mut c_int,
    message: *mut A::Message,
    status: *mut A::Status,
) -> c_int {
    run::<A>(name, Some(comm), |m| {
        let slot = out(message, "message")?;
        if !blocking {
            out(flag, "flag")?;
        }
        let c = m.comm(A::comm_id(comm))?;
        let cid = c.id.clone();
        let t = tag::<A>(t, true)?;
        let s = match peer::<A>(source, c.id.size(), true)? {
            Peer::Null => {
                *slot = A::MESSAGE_NO_PROC;
                status_out::<A>(status, &Status::PROC_NULL);
                if !blocking {
                    put(flag, 1, "flag")?;
                }
                return Ok(());
            }
            Peer::Any => None,
            Peer::Rank(r) => Some(r),
        };
        let comm = m.world.attach(&cid);
        let got = if blocking {
            Some(comm.mprobe(s, t)?)
        } else {
            comm.improbe(s, t)?
        };
        if !blocking {
            put(flag, c_int::from(got.is_some()), "flag")?;
        }
        if let Some((msg, st)) = got {
            let id = m
                .messages
                .insert((msg, cid))
                .ok_or_else(|| MpiError::new(Class::Intern, "too many matched messages (65536)"))?;
            *slot = A::message(id);
            status_out::<A>(status, &Status::of(st));
        }
        Ok(())
    })
}

/// MPI_Mprobe.
pub fn mprobe<A: Abi>(
    source: c_int,
    t: c_int,
    comm: A::Comm,
    message: *mut A::Message,
    status: *mut A::Status,
) -> c_int {
    mprobe_common::<A>(
        "MPI_Mprobe",
        true,
        source,
        t,
        comm,
        std::ptr::null_mut(),
        message,
        status,
    )
}

/// MPI_Improbe.
pub fn improbe<A: Abi>(
    source: c_int,
    t: c_int,
    comm: A::Comm,
    flag: *mut c_int,
    message: *mut A::Message,
    status: *mut A::Status,
) -> c_int {
    mprobe_common::<A>("MPI_Improbe", false, source, t, comm, flag, message, status)
}

/// Starts the receive of a matched message; `None` for MPI_MESSAGE_NO_PROC. Sets the handle to
/// MPI_MESSAGE_NULL.
fn start_mrecv<A: Abi>(
    m: &mut Mpi,
    buf: *mut c_void,
    n: c_int,
    dt: A::Datatype,
    message: *mut A::Message,
) -> MpiResult<Option<Flight>> {
    let h = out(message, "message")?;
    let b = recv_buf(m, buf, n, A::datatype_id(dt))?;
    if *h == A::MESSAGE_NO_PROC {
        *h = A::MESSAGE_NULL;
        return Ok(None);
    }
    let id = need(A::message_id(*h), Class::Request, "message")?;
    let (msg, cid) = m
        .messages
        .remove(id)
        .ok_or_else(|| MpiError::new(Class::Request, "invalid message (already received?)"))?;
    *h = A::MESSAGE_NULL;
    let c = m.world.attach(&cid);
    let (ptr, len, unpack) = match b {
        RecvBuf::Contig(p, n) => (p, n, None),
        RecvBuf::Unpack(mut u) => (u.buf.as_mut_ptr(), u.buf.len(), Some(u)),
    };
    // SAFETY: as in `start_recv`.
    let p = unsafe { c.mrecv_raw(msg, ptr, len)? };
    Ok(Some(Flight::Recv {
        p,
        comm: cid,
        unpack,
    }))
}

/// MPI_Mrecv.
pub fn mrecv<A: Abi>(
    buf: *mut c_void,
    n: c_int,
    dt: A::Datatype,
    message: *mut A::Message,
    status: *mut A::Status,
) -> c_int {
    run::<A>("MPI_Mrecv", None, |m| {
        match start_mrecv::<A>(m, buf, n, dt, message)? {
            None => {
                status_out::<A>(status, &Status::PROC_NULL);
                Ok(())
            }
            Some(f) => finish_out::<A>(m, f, status),
        }
    })
}

/// MPI_Imrecv.
pub fn imrecv<A: Abi>(
    buf: *mut c_void,
    n: c_int,
    dt: A::Datatype,
    message: *mut A::Message,
    req: *mut A::Request,
) -> c_int {
    run::<A>("MPI_Imrecv", None, |m| {
        out(req, "request")?;
        let f =
            start_mrecv::<A>(m, buf, n, dt, message)?.unwrap_or(Flight::Done(Status::PROC_NULL));
        new_request::<A>(
            m,
            Req {
                flight: Some(f),
                persist: None,
            },
            req,
        )
    })
}
