//! The entry points of `snoo_mpi.h`: the paper's six calls with their exact names and argument
//! orders, plus non-blocking calls, probes and error strings.

// C entry points take raw pointers by nature; each dereference is checked for NULL and commented.
#![allow(clippy::not_unsafe_ptr_arg_deref)]
#![allow(non_snake_case)]

use crate::abi::{code, type_size, CStatus, REQUEST_NULL};
use crate::args::{
    buffer, buffer_mut, check_comm, dest_arg, source_arg, tag_arg, write_out, write_status,
};
use crate::state::{detail, guard, quiet, set_detail, state, with_job, Job, State};
use snoo::error::{describe, Error, Result};
use snoo::{Pending, Status, World};
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_long, c_void, CStr};
use std::io::Write;

/// Completes `p` for a C call (see [`report`]).
fn complete(j: &mut Job, p: Pending, got: &mut Option<Status>) -> Result<()> {
    report(j, got, |w| w.complete(p))
}

/// Runs `op` (a completion or a blocking receive) and stores its status in `got`, also for a
/// truncated receive (MPI reports what arrived).
fn report(
    j: &mut Job,
    got: &mut Option<Status>,
    op: impl FnOnce(&World) -> Result<Option<Status>>,
) -> Result<()> {
    let _ = j.world.take_truncated();
    match op(&j.world) {
        Ok(st) => {
            *got = st;
            Ok(())
        }
        Err(e) => {
            if matches!(e, Error::Truncate { .. }) {
                *got = j.world.take_truncated();
            }
            Err(e)
        }
    }
}

/// Joins the job on the pool named `name` (see `snoo_mpi::init`). When joining fails, the reason is
/// also printed to stderr (C programs often print only the code), unless `SNOO_QUIET` is set; a
/// second Init, which leaves the job running, prints nothing.
#[no_mangle]
pub extern "C" fn SNOO_MPI_Init(name: *const c_char) -> c_int {
    let rc = init(name);
    if rc != code::SUCCESS && rc != code::ERR_ALREADY_INITIALIZED && !quiet() {
        let _ = writeln!(std::io::stderr(), "{}", detail());
    }
    rc
}

fn init(name: *const c_char) -> c_int {
    guard("SNOO_MPI_Init", || {
        if name.is_null() {
            return Err(Error::Arg("NULL pool name".into()));
        }
        // SAFETY: non-NULL (checked above); the caller passes a NUL-terminated string.
        let name = unsafe { CStr::from_ptr(name) }
            .to_str()
            .map_err(|_| Error::Arg("pool name is not UTF-8".into()))?;
        let mut st = state();
        match &*st {
            State::Running(_) => return Err(Error::AlreadyInitialized),
            State::Finalized => {
                return Err(Error::Arg("SNOO_MPI_Init after SNOO_MPI_Finalize".into()))
            }
            State::Uninit => {}
        }
        let world = snoo::init(name)?;
        *st = State::Running(Box::new(Job {
            world,
            requests: HashMap::new(),
        }));
        Ok(())
    })
}

/// Completes outstanding sends and leaves the job.
#[no_mangle]
pub extern "C" fn SNOO_MPI_Finalize() -> c_int {
    guard("SNOO_MPI_Finalize", || {
        let mut st = state();
        match std::mem::replace(&mut *st, State::Finalized) {
            State::Running(job) => job.world.finalize(),
            other => {
                *st = other;
                Err(Error::NotInitialized)
            }
        }
    })
}

/// Sets `*flag` to 1 if SNOO_MPI_Init succeeded and Finalize has not been called.
#[no_mangle]
pub extern "C" fn SNOO_MPI_Initialized(flag: *mut c_int) -> c_int {
    guard("SNOO_MPI_Initialized", || {
        let st = state();
        write_out(flag, matches!(*st, State::Running(_)) as c_int, "flag")
    })
}

/// Job size.
#[no_mangle]
pub extern "C" fn SNOO_MPI_Comm_size(size: *mut c_int) -> c_int {
    with_job("SNOO_MPI_Comm_size", |j| {
        write_out(size, j.world.size() as c_int, "size")
    })
}

/// This process's rank.
#[no_mangle]
pub extern "C" fn SNOO_MPI_Comm_rank(rank: *mut c_int) -> c_int {
    with_job("SNOO_MPI_Comm_rank", |j| {
        write_out(rank, j.world.rank() as c_int, "rank")
    })
}

/// Blocking send; `flag` is the tag.
#[no_mangle]
pub extern "C" fn SNOO_MPI_Send(
    message: *const u8,
    count: c_int,
    dest: c_int,
    flag: c_int,
    datatype: c_int,
    comm: c_int,
) -> c_int {
    with_job("SNOO_MPI_Send", |j| {
        check_comm(comm)?;
        let (ptr, len) = buffer(message, count, datatype)?;
        let dest = dest_arg(dest, j.world.size())?;
        // A blocking send: published (and a sleeping receiver rung) before it returns. Not
        // `isend_raw`, whose batch waits for the caller's next call: a receiver asleep on its
        // doorbell then slept on until its next timeout (up to 200 ms per message).
        // SAFETY: the caller's buffer holds `len` bytes and stays valid for this blocking call.
        unsafe { j.world.comm().send_raw(ptr, len, dest, flag) }
    })
}

/// Blocking receive; `flag` is the tag (`SNOO_MPI_ANY_TAG` allowed), `source` may be
/// `SNOO_MPI_ANY_SOURCE`.
#[no_mangle]
pub extern "C" fn SNOO_MPI_Recv(
    message: *mut u8,
    count: c_int,
    source: c_int,
    datatype: c_int,
    flag: c_int,
    comm: c_int,
) -> c_int {
    SNOO_MPI_Recv_status(
        message,
        count,
        source,
        datatype,
        flag,
        comm,
        std::ptr::null_mut(),
    )
}

/// `SNOO_MPI_Recv` that also fills `status` (may be NULL).
#[no_mangle]
pub extern "C" fn SNOO_MPI_Recv_status(
    message: *mut u8,
    count: c_int,
    source: c_int,
    datatype: c_int,
    flag: c_int,
    comm: c_int,
    status: *mut CStatus,
) -> c_int {
    let mut got = None;
    let rc = with_job("SNOO_MPI_Recv", |j| {
        check_comm(comm)?;
        let (ptr, len) = buffer_mut(message, count, datatype)?;
        let source = source_arg(source, j.world.size())?;
        let tag = tag_arg(flag)?;
        report(j, &mut got, |w| {
            // SAFETY: the caller's buffer holds `len` bytes (or `len` is 0 and `ptr` dangling but
            // unused) and stays valid and untouched for this blocking call.
            unsafe { w.recv_raw(ptr, len, source, tag) }.map(Some)
        })
    });
    write_status(status, got, rc);
    rc
}

fn store_request(j: &mut Job, p: Option<Pending>, out: *mut i64) -> Result<()> {
    let handle = match p {
        None => REQUEST_NULL,
        Some(p) => {
            let id = p.id();
            // Ids count up from 1: positive, never REQUEST_NULL (0), never reused.
            let h = i64::try_from(id).map_err(|_| Error::Arg("request ids exhausted".into()))?;
            j.requests.insert(h, p);
            h
        }
    };
    // SAFETY: checked non-NULL by the callers.
    unsafe { out.write(handle) };
    Ok(())
}

/// Pool memory (MPI_Alloc_mem): `*(void **)baseptr` receives a zeroed block of `size` bytes in
/// this rank's heap in the pool.
#[no_mangle]
pub extern "C" fn SNOO_MPI_Alloc_mem(size: c_long, baseptr: *mut c_void) -> c_int {
    with_job("SNOO_MPI_Alloc_mem", |j| {
        // (`c_long` is not i64 on every target.)
        #[allow(clippy::unnecessary_cast)]
        let len = usize::try_from(size).map_err(|_| Error::Count(size as i64))?;
        if baseptr.is_null() {
            return Err(Error::Arg("NULL baseptr".into()));
        }
        let p = j.world.alloc_raw(len)?;
        // SAFETY: non-NULL; MPI's `void *baseptr` points to the caller's `void *`.
        unsafe { (baseptr as *mut *mut c_void).write(p.cast()) };
        Ok(())
    })
}

/// Frees pool memory from `SNOO_MPI_Alloc_mem` (NULL: nothing).
#[no_mangle]
pub extern "C" fn SNOO_MPI_Free_mem(base: *mut c_void) -> c_int {
    with_job("SNOO_MPI_Free_mem", |j| {
        if base.is_null() {
            return Ok(());
        }
        j.world.free_raw(base.cast())
    })
}

/// Non-blocking send. `*request` is `SNOO_MPI_REQUEST_NULL` (0) if it completed at once.
#[no_mangle]
pub extern "C" fn SNOO_MPI_Isend(
    message: *const u8,
    count: c_int,
    dest: c_int,
    flag: c_int,
    datatype: c_int,
    comm: c_int,
    request: *mut i64,
) -> c_int {
    with_job("SNOO_MPI_Isend", |j| {
        check_comm(comm)?;
        if request.is_null() {
            return Err(Error::Request);
        }
        let (ptr, len) = buffer(message, count, datatype)?;
        let dest = dest_arg(dest, j.world.size())?;
        // SAFETY: the C caller keeps the buffer valid until the request completes (MPI's rule).
        let p = unsafe { j.world.isend_raw(ptr, len, dest, flag)? };
        store_request(j, p, request)
    })
}

/// Non-blocking receive.
#[no_mangle]
pub extern "C" fn SNOO_MPI_Irecv(
    message: *mut u8,
    count: c_int,
    source: c_int,
    datatype: c_int,
    flag: c_int,
    comm: c_int,
    request: *mut i64,
) -> c_int {
    with_job("SNOO_MPI_Irecv", |j| {
        check_comm(comm)?;
        if request.is_null() {
            return Err(Error::Request);
        }
        let (ptr, len) = buffer_mut(message, count, datatype)?;
        let source = source_arg(source, j.world.size())?;
        // SAFETY: the C caller keeps the buffer valid and untouched until the request completes.
        let p = unsafe { j.world.irecv_raw(ptr, len, source, tag_arg(flag)?)? };
        store_request(j, Some(p), request)
    })
}

fn take_request(j: &mut Job, request: *mut i64) -> Result<Option<Pending>> {
    if request.is_null() {
        return Err(Error::Request);
    }
    // SAFETY: non-NULL pointer to a request handle from the caller.
    let h = unsafe { request.read() };
    if h == REQUEST_NULL {
        return Ok(None);
    }
    let p = j.requests.remove(&h).ok_or(Error::Request)?;
    // SAFETY: as above.
    unsafe { request.write(REQUEST_NULL) };
    Ok(Some(p))
}

/// Waits for a request and sets it to `SNOO_MPI_REQUEST_NULL`; `status` may be NULL.
#[no_mangle]
pub extern "C" fn SNOO_MPI_Wait(request: *mut i64, status: *mut CStatus) -> c_int {
    let mut got = None;
    let rc = with_job("SNOO_MPI_Wait", |j| match take_request(j, request)? {
        Some(p) => complete(j, p, &mut got),
        None => Ok(()),
    });
    write_status(status, got, rc);
    rc
}

/// Waits for `count` requests; `statuses` may be NULL. Returns the first error after all completed.
#[no_mangle]
pub extern "C" fn SNOO_MPI_Waitall(
    count: c_int,
    requests: *mut i64,
    statuses: *mut CStatus,
) -> c_int {
    let mut n = 0;
    let rc = with_job("SNOO_MPI_Waitall", |_| {
        n = usize::try_from(count).map_err(|_| Error::Count(count.into()))?;
        if n > 0 && requests.is_null() {
            return Err(Error::Request);
        }
        Ok(())
    });
    if rc != code::SUCCESS {
        return rc;
    }
    let mut first = code::SUCCESS;
    let mut first_detail = String::new();
    for i in 0..n {
        // SAFETY: the caller passes arrays of `count` elements.
        let (r, s) = unsafe {
            (
                requests.add(i),
                if statuses.is_null() {
                    statuses
                } else {
                    statuses.add(i)
                },
            )
        };
        let rc = SNOO_MPI_Wait(r, s);
        if first == code::SUCCESS && rc != code::SUCCESS {
            first = rc;
            first_detail = format!("SNOO_MPI_Waitall: request {i}: {}", detail());
        }
    }
    if first != code::SUCCESS {
        // The detail of the error returned, not of a later one.
        set_detail(first_detail);
    }
    first
}

/// Sets `*flag` to 1 and completes the request if it is done, else 0.
#[no_mangle]
pub extern "C" fn SNOO_MPI_Test(
    request: *mut i64,
    flag: *mut c_int,
    status: *mut CStatus,
) -> c_int {
    let mut ready = false;
    let rc = with_job("SNOO_MPI_Test", |j| {
        if request.is_null() {
            return Err(Error::Request);
        }
        if flag.is_null() {
            return Err(Error::Arg("NULL flag".into()));
        }
        // SAFETY: non-NULL pointer to a request handle.
        let h = unsafe { request.read() };
        ready = h == REQUEST_NULL
            || match j.requests.get(&h) {
                Some(&p) => j.world.ready(p)?,
                None => return Err(Error::Request),
            };
        Ok(())
    });
    if flag.is_null() {
        return rc;
    }
    // SAFETY: non-NULL pointer to an int.
    unsafe { flag.write(ready as c_int) };
    if rc != code::SUCCESS || !ready {
        return rc;
    }
    SNOO_MPI_Wait(request, status)
}

/// Blocks until a matching message can be received, and describes it.
#[no_mangle]
pub extern "C" fn SNOO_MPI_Probe(
    source: c_int,
    flag: c_int,
    comm: c_int,
    status: *mut CStatus,
) -> c_int {
    let mut got = None;
    let rc = with_job("SNOO_MPI_Probe", |j| {
        check_comm(comm)?;
        let source = source_arg(source, j.world.size())?;
        got = Some(j.world.probe(source, tag_arg(flag)?)?);
        Ok(())
    });
    write_status(status, got, rc);
    rc
}

/// Sets `*found` to 1 (and fills `status`) if a matching message can be received now.
#[no_mangle]
pub extern "C" fn SNOO_MPI_Iprobe(
    source: c_int,
    flag: c_int,
    comm: c_int,
    found: *mut c_int,
    status: *mut CStatus,
) -> c_int {
    let mut got = None;
    let rc = with_job("SNOO_MPI_Iprobe", |j| {
        check_comm(comm)?;
        if found.is_null() {
            return Err(Error::Arg("NULL found".into()));
        }
        let source = source_arg(source, j.world.size())?;
        got = j.world.iprobe(source, tag_arg(flag)?)?;
        Ok(())
    });
    if found.is_null() {
        return rc;
    }
    // SAFETY: non-NULL pointer to an int.
    unsafe { found.write(got.is_some() as c_int) };
    if got.is_some() {
        write_status(status, got, rc);
    }
    rc
}

/// Elements of `datatype` in a received message (MPI_Get_count).
#[no_mangle]
pub extern "C" fn SNOO_MPI_Get_count(
    status: *const CStatus,
    datatype: c_int,
    count: *mut c_int,
) -> c_int {
    guard("SNOO_MPI_Get_count", || {
        if status.is_null() || count.is_null() {
            return Err(Error::Arg("NULL status or count".into()));
        }
        let size = type_size(datatype)?;
        // SAFETY: non-NULL pointers from the caller.
        let bytes = unsafe { (*status).count_bytes };
        let n = if bytes < 0 || !(bytes as usize).is_multiple_of(size) {
            -1
        } else {
            (bytes as usize / size) as c_int
        };
        // SAFETY: as above.
        unsafe { count.write(n) };
        Ok(())
    })
}

/// A fixed, NUL-terminated description of an error code.
#[no_mangle]
pub extern "C" fn SNOO_MPI_Error_string(errorcode: c_int) -> *const c_char {
    // The strings are 'static; a NUL-terminated copy of each is built once.
    static STRINGS: std::sync::OnceLock<Vec<std::ffi::CString>> = std::sync::OnceLock::new();
    let table = STRINGS.get_or_init(|| {
        (0..=code::ERR_LASTCODE + 1)
            .map(|c| std::ffi::CString::new(describe(c)).expect("no NUL in descriptions"))
            .collect()
    });
    let idx = if (0..=code::ERR_LASTCODE).contains(&errorcode) {
        errorcode as usize
    } else {
        table.len() - 1
    };
    table[idx].as_ptr()
}

/// Copies this thread's last error message (the call and its full reason, e.g. `SNOO_MPI_Init: a
/// pool of 65536 bytes is too small for 4 ranks: … (snoo-hostd --size 1048576)`) into `buf` as a
/// NUL-terminated string of at most `len` bytes, cut on a character boundary. Returns the message's full length (without the
/// NUL), as `snprintf` does, so a return value ≥ `len` means it was cut; 0 (and "") if no call has
/// failed on this thread; -1 if `len` < 0 or `buf` is NULL with `len` > 0.
#[no_mangle]
pub extern "C" fn SNOO_MPI_Error_detail(buf: *mut c_char, len: c_int) -> c_int {
    let Ok(cap) = usize::try_from(len) else {
        return -1;
    };
    if buf.is_null() && cap > 0 {
        return -1;
    }
    let msg = detail();
    if cap > 0 {
        let mut n = msg.len().min(cap - 1);
        while !msg.is_char_boundary(n) {
            n -= 1;
        }
        // SAFETY: the caller passes `len` writable bytes at `buf`; n + 1 <= len.
        unsafe {
            std::ptr::copy_nonoverlapping(msg.as_ptr(), buf.cast::<u8>(), n);
            buf.add(n).write(0);
        }
    }
    c_int::try_from(msg.len()).unwrap_or(c_int::MAX)
}
