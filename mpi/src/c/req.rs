//! Completing requests: MPI_Wait and MPI_Test and their all/any/some forms, MPI_Cancel,
//! MPI_Request_free, and starting persistent requests.

use super::p2p::start_persistent;
use super::{count, out, put, run, slice, slice_mut, status_out, statuses_out, Abi};
use crate::collective::Coll;
use crate::error::{err, Class, MpiError, MpiResult};
use crate::request::{Flight, Status};
use crate::state::Mpi;
use std::ffi::c_int;

type Outcome = Result<Status, (MpiError, Status)>;

/// True if request `h` has an operation in flight.
fn active<A: Abi>(m: &Mpi, h: A::Request) -> bool {
    h != A::REQUEST_NULL
        && A::request_id(h)
            .and_then(|id| m.requests.get(id))
            .is_some_and(|r| r.flight.is_some())
}

/// Checks that `h` is MPI_REQUEST_NULL or a live request.
fn check<A: Abi>(m: &Mpi, h: A::Request) -> MpiResult<()> {
    if h == A::REQUEST_NULL || A::request_id(h).and_then(|id| m.requests.get(id)).is_some() {
        Ok(())
    } else {
        err(
            Class::Request,
            "invalid request (freed, completed, or not a request)",
        )
    }
}

/// True if completing `h` would not block (an inactive or null request: trivially).
fn ready<A: Abi>(m: &Mpi, h: A::Request) -> MpiResult<bool> {
    if h == A::REQUEST_NULL {
        return Ok(true);
    }
    match A::request_id(h).and_then(|id| m.requests.get(id)) {
        None => err(Class::Request, "invalid request"),
        Some(r) => match &r.flight {
            None => Ok(true),
            Some(f) => f.ready(&m.world),
        },
    }
}

/// Waits until one of the active requests in `reqs` may have become ready (MPI_Waitany and
/// MPI_Waitsome between their rounds). Point-to-point operations are waited for in the engine,
/// which sleeps on the doorbell once idle; with a collective among them (advanced only when
/// polled) or one already done, a yield.
fn wait_for_one<A: Abi>(m: &Mpi, reqs: &[A::Request]) -> MpiResult<()> {
    let mut ops = Vec::with_capacity(reqs.len());
    for &h in reqs {
        let Some(r) = A::request_id(h).and_then(|id| m.requests.get(id)) else {
            continue;
        };
        match &r.flight {
            None => {}
            Some(Flight::Send { p, .. } | Flight::Recv { p, .. }) => ops.push(*p),
            Some(Flight::Done(_) | Flight::Coll(_)) => {
                std::thread::yield_now();
                return Ok(());
            }
        }
    }
    Ok(m.world.wait_any(&ops)?)
}

/// Completes `*h` (blocking): frees it unless it is persistent, and sets it to
/// MPI_REQUEST_NULL then.
fn complete<A: Abi>(m: &mut Mpi, h: &mut A::Request) -> Result<Outcome, MpiError> {
    if *h == A::REQUEST_NULL {
        return Ok(Ok(Status::EMPTY));
    }
    let invalid = || {
        MpiError::new(
            Class::Request,
            "invalid request (freed, completed, or not a request)",
        )
    };
    let id = A::request_id(*h).ok_or_else(invalid)?;
    let r = m.requests.get_mut(id).ok_or_else(invalid)?;
    let f = if r.persist.is_some() {
        r.flight.take()
    } else {
        *h = A::REQUEST_NULL;
        m.requests.remove(id).and_then(|r| r.flight)
    };
    Ok(match f {
        None => Ok(Status::EMPTY),
        Some(Flight::Coll(c)) => {
            progress_while(m, &c);
            Flight::Coll(c).finish(&m.world)
        }
        Some(f) => f.finish(&m.world),
    })
}

/// Waits until collective `c` can complete, advancing every other collective in flight
/// meanwhile: a peer may need this rank's next step of another collective before it can take
/// the step of `c` this rank waits for (MPI's progress rule). Each turn either moves some
/// schedule on or finds a dead peer, so the wait ends.
fn progress_while(m: &Mpi, c: &Coll) {
    loop {
        match c.ready(&m.world) {
            Ok(false) => {}
            Ok(true) | Err(_) => return,
        }
        for r in m.requests.values() {
            if let Some(Flight::Coll(o)) = &r.flight {
                let _ = o.ready(&m.world);
            }
        }
        for f in &m.orphans {
            if let Flight::Coll(o) = f {
                let _ = o.ready(&m.world);
            }
        }
        std::thread::yield_now();
    }
}

/// The result of one completion for a single-request call.
fn single<A: Abi>(o: Outcome, status: *mut A::Status) -> MpiResult<()> {
    match o {
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

/// MPI_Wait.
pub fn wait<A: Abi>(req: *mut A::Request, status: *mut A::Status) -> c_int {
    run::<A>("MPI_Wait", None, |m| {
        let h = out(req, "request")?;
        let o = complete::<A>(m, h)?;
        single::<A>(o, status)
    })
}

/// MPI_Test.
pub fn test<A: Abi>(req: *mut A::Request, flag: *mut c_int, status: *mut A::Status) -> c_int {
    run::<A>("MPI_Test", None, |m| {
        let h = out(req, "request")?;
        let f = out(flag, "flag")?;
        check::<A>(m, *h)?;
        if !ready::<A>(m, *h)? {
            *f = 0;
            return Ok(());
        }
        *f = 1;
        let o = complete::<A>(m, h)?;
        single::<A>(o, status)
    })
}

/// Completes every request of `reqs` that `pick` selects (all of them if `None`, so that Waitall
/// allocates nothing per call), writing statuses by index; returns whether any failed (then each
/// status's MPI_ERROR says which: MPI_ERR_IN_STATUS).
fn complete_many<A: Abi>(
    m: &mut Mpi,
    reqs: &mut [A::Request],
    pick: Option<&[bool]>,
    statuses: *mut A::Status,
    compact: Option<&mut [c_int]>,
) -> MpiResult<(bool, usize)> {
    let mut failed = false;
    let mut done = 0;
    let mut compact = compact;
    for i in 0..reqs.len() {
        if pick.is_some_and(|p| !p[i]) {
            continue;
        }
        let o = complete::<A>(m, &mut reqs[i])?;
        let st = match o {
            Ok(st) => st,
            Err((e, st)) => {
                failed = true;
                Status {
                    error: e.class,
                    ..st
                }
            }
        };
        let at = match compact.as_deref_mut() {
            Some(idx) => {
                idx[done] = i as c_int;
                done
            }
            None => i,
        };
        statuses_out::<A>(statuses, at, &st);
        done += 1;
    }
    Ok((failed, done))
}

fn in_status(failed: bool) -> MpiResult<()> {
    if failed {
        err(
            Class::InStatus,
            "a request failed: see the MPI_ERROR field of its status",
        )
    } else {
        Ok(())
    }
}

/// MPI_Waitall.
pub fn waitall<A: Abi>(n: c_int, reqs: *mut A::Request, statuses: *mut A::Status) -> c_int {
    run::<A>("MPI_Waitall", None, |m| {
        let reqs = slice_mut(reqs, count(n)?, "request")?;
        for &h in reqs.iter() {
            check::<A>(m, h)?;
        }
        let (failed, _) = complete_many::<A>(m, reqs, None, statuses, None)?;
        in_status(failed)
    })
}

/// MPI_Testall: completes all if all are ready, else none.
pub fn testall<A: Abi>(
    n: c_int,
    reqs: *mut A::Request,
    flag: *mut c_int,
    statuses: *mut A::Status,
) -> c_int {
    run::<A>("MPI_Testall", None, |m| {
        let reqs = slice_mut(reqs, count(n)?, "request")?;
        let f = out(flag, "flag")?;
        for &h in reqs.iter() {
            check::<A>(m, h)?;
        }
        for &h in reqs.iter() {
            if !ready::<A>(m, h)? {
                *f = 0;
                return Ok(());
            }
        }
        *f = 1;
        let (failed, _) = complete_many::<A>(m, reqs, None, statuses, None)?;
        in_status(failed)
    })
}

/// The first active request that is ready, if any; `None` inside when none is active.
fn first_ready<A: Abi>(m: &Mpi, reqs: &[A::Request]) -> MpiResult<Option<Option<usize>>> {
    let mut any_active = false;
    for (i, &h) in reqs.iter().enumerate() {
        if !active::<A>(m, h) {
            continue;
        }
        any_active = true;
        if ready::<A>(m, h)? {
            return Ok(Some(Some(i)));
        }
    }
    Ok(if any_active { None } else { Some(None) })
}

fn any_common<A: Abi>(
    m: &mut Mpi,
    reqs: &mut [A::Request],
    index: &mut c_int,
    status: *mut A::Status,
    i: Option<usize>,
) -> MpiResult<()> {
    match i {
        None => {
            *index = A::UNDEFINED;
            status_out::<A>(status, &Status::EMPTY);
            Ok(())
        }
        Some(i) => {
            *index = i as c_int;
            let o = complete::<A>(m, &mut reqs[i])?;
            single::<A>(o, status)
        }
    }
}

/// MPI_Waitany.
pub fn waitany<A: Abi>(
    n: c_int,
    reqs: *mut A::Request,
    index: *mut c_int,
    status: *mut A::Status,
) -> c_int {
    run::<A>("MPI_Waitany", None, |m| {
        let reqs = slice_mut(reqs, count(n)?, "request")?;
        let index = out(index, "index")?;
        for &h in reqs.iter() {
            check::<A>(m, h)?;
        }
        // Each round polls every request (which progresses the engine); a peer's death makes its
        // requests ready (to fail), so the loop always ends.
        let i = loop {
            if let Some(i) = first_ready::<A>(m, reqs)? {
                break i;
            }
            wait_for_one::<A>(m, reqs)?;
        };
        any_common::<A>(m, reqs, index, status, i)
    })
}

/// MPI_Testany.
pub fn testany<A: Abi>(
    n: c_int,
    reqs: *mut A::Request,
    index: *mut c_int,
    flag: *mut c_int,
    status: *mut A::Status,
) -> c_int {
    run::<A>("MPI_Testany", None, |m| {
        let reqs = slice_mut(reqs, count(n)?, "request")?;
        let index = out(index, "index")?;
        let f = out(flag, "flag")?;
        for &h in reqs.iter() {
            check::<A>(m, h)?;
        }
        match first_ready::<A>(m, reqs)? {
            None => {
                *f = 0;
                *index = A::UNDEFINED;
                Ok(())
            }
            Some(i) => {
                *f = 1;
                any_common::<A>(m, reqs, index, status, i)
            }
        }
    })
}

fn some_common<A: Abi>(
    name: &'static str,
    blocking: bool,
    n: c_int,
    reqs: *mut A::Request,
    outcount: *mut c_int,
    indices: *mut c_int,
    statuses: *mut A::Status,
) -> c_int {
    run::<A>(name, None, |m| {
        let reqs = slice_mut(reqs, count(n)?, "request")?;
        let oc = out(outcount, "outcount")?;
        for &h in reqs.iter() {
            check::<A>(m, h)?;
        }
        loop {
            let mut pick = vec![false; reqs.len()];
            let mut any_active = false;
            for (i, &h) in reqs.iter().enumerate() {
                if active::<A>(m, h) {
                    any_active = true;
                    pick[i] = ready::<A>(m, h)?;
                }
            }
            if !any_active {
                *oc = A::UNDEFINED;
                return Ok(());
            }
            let k = pick.iter().filter(|&&p| p).count();
            if k > 0 || !blocking {
                let idx = slice_mut(indices, k, "indices")?;
                let (failed, done) = complete_many::<A>(m, reqs, Some(&pick), statuses, Some(idx))?;
                *oc = done as c_int;
                return in_status(failed);
            }
            wait_for_one::<A>(m, reqs)?;
        }
    })
}

/// MPI_Waitsome.
pub fn waitsome<A: Abi>(
    n: c_int,
    reqs: *mut A::Request,
    outcount: *mut c_int,
    indices: *mut c_int,
    statuses: *mut A::Status,
) -> c_int {
    some_common::<A>("MPI_Waitsome", true, n, reqs, outcount, indices, statuses)
}

/// MPI_Testsome.
pub fn testsome<A: Abi>(
    n: c_int,
    reqs: *mut A::Request,
    outcount: *mut c_int,
    indices: *mut c_int,
    statuses: *mut A::Status,
) -> c_int {
    some_common::<A>("MPI_Testsome", false, n, reqs, outcount, indices, statuses)
}

/// MPI_Request_free: an operation in flight goes on and is completed by the library (a send's
/// data still arrives); the handle is freed now.
pub fn request_free<A: Abi>(req: *mut A::Request) -> c_int {
    run::<A>("MPI_Request_free", None, |m| {
        let h = out(req, "request")?;
        let id = A::request_id(*h)
            .filter(|&id| m.requests.get(id).is_some())
            .ok_or_else(|| {
                MpiError::new(
                    Class::Request,
                    "invalid request (MPI_REQUEST_NULL, freed, or not a request)",
                )
            })?;
        let r = m.requests.remove(id).expect("checked above");
        if let Some(f) = r.flight {
            m.orphans.push(f);
        }
        *h = A::REQUEST_NULL;
        Ok(())
    })
}

/// MPI_Cancel: a receive that no message has matched is cancelled; anything else completes
/// normally (MPI allows a cancel to fail), and MPI_Test_cancelled says which.
pub fn cancel<A: Abi>(req: *mut A::Request) -> c_int {
    run::<A>("MPI_Cancel", None, |m| {
        let h = *out(req, "request")?;
        let id = A::request_id(h)
            .filter(|&id| m.requests.get(id).is_some())
            .ok_or_else(|| MpiError::new(Class::Request, "invalid request"))?;
        let world = &m.world;
        let r = m.requests.get_mut(id).expect("checked above");
        if let Some(Flight::Recv { p, comm, .. }) = &r.flight {
            let c = world.attach(comm);
            if c.cancel(*p) {
                // The engine completed it empty; take that completion.
                let _ = c.complete(*p);
                r.flight = Some(Flight::Done(Status {
                    cancelled: true,
                    ..Status::EMPTY
                }));
            }
        }
        Ok(())
    })
}

/// MPI_Test_cancelled.
pub fn test_cancelled<A: Abi>(status: *const A::Status, flag: *mut c_int) -> c_int {
    run::<A>("MPI_Test_cancelled", None, |_| {
        let st = super::p2p::read_status::<A>(status)?;
        put(flag, c_int::from(st.cancelled), "flag")
    })
}

/// MPI_Start.
pub fn start<A: Abi>(req: *mut A::Request) -> c_int {
    run::<A>("MPI_Start", None, |m| {
        let h = *out(req, "request")?;
        start_one::<A>(m, h)
    })
}

/// MPI_Startall.
pub fn startall<A: Abi>(n: c_int, reqs: *mut A::Request) -> c_int {
    run::<A>("MPI_Startall", None, |m| {
        let reqs = slice(reqs, count(n)?, "request")?;
        for &h in reqs {
            start_one::<A>(m, h)?;
        }
        Ok(())
    })
}

fn start_one<A: Abi>(m: &mut Mpi, h: A::Request) -> MpiResult<()> {
    let id = A::request_id(h)
        .filter(|&id| m.requests.get(id).is_some())
        .ok_or_else(|| MpiError::new(Class::Request, "invalid request"))?;
    let r = m.requests.get(id).expect("checked above");
    let Some(p) = r.persist.clone() else {
        return err(
            Class::Request,
            "MPI_Start on a request that is not persistent",
        );
    };
    if r.flight.is_some() {
        return err(
            Class::Request,
            "MPI_Start on a persistent request that is still active",
        );
    }
    let f = start_persistent(m, &p)?;
    m.requests.get_mut(id).expect("checked above").flight = Some(f);
    Ok(())
}

/// MPI_Request_get_status: like MPI_Test, without freeing the request.
pub fn request_get_status<A: Abi>(
    req: A::Request,
    flag: *mut c_int,
    status: *mut A::Status,
) -> c_int {
    run::<A>("MPI_Request_get_status", None, |m| {
        let f = out(flag, "flag")?;
        check::<A>(m, req)?;
        let r = ready::<A>(m, req)?;
        *f = c_int::from(r);
        if r {
            // The status of a finished receive is known only by completing it; report it empty
            // for sends and inactive requests, as MPICH does for those.
            status_out::<A>(status, &Status::EMPTY);
        }
        Ok(())
    })
}
