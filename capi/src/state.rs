//! The process-wide job behind the C calls, and how a call's result becomes a C code: the error
//! (and this thread's detail message) or a caught panic.

use snoo::error::{code, Error, Result};
use snoo::{Pending, World};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};

/// The job of this process. `World` holds raw pointers to buffers lent by C callers, so it is not
/// `Send` by itself; it is only ever touched with this mutex held.
pub(crate) struct Job {
    pub(crate) world: World,
    // Requests handed to C, by handle. A handle is the request's id, unique for the life of the
    // job, so a stale copy of a completed request's handle never names a newer request.
    pub(crate) requests: HashMap<i64, Pending>,
}

// SAFETY: all access to the Job goes through the STATE mutex, one thread at a time; the buffers it
// points into are the C caller's responsibility (as with MPI).
unsafe impl Send for Job {}

/// Where the process stands: before `SNOO_MPI_Init`, in a job, or after `SNOO_MPI_Finalize`.
pub(crate) enum State {
    Uninit,
    Running(Box<Job>),
    Finalized,
}

static STATE: Mutex<State> = Mutex::new(State::Uninit);

/// Locks the process's state, also when a panic caught by [`guard`] poisoned the lock: that call
/// returned `SNOO_MPI_ERR_INTERN`, and later calls go on.
pub(crate) fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

thread_local! {
    // The full message of the last call that failed on this thread ("SNOO_MPI_Send: invalid rank 5
    // (job size 2)"), for SNOO_MPI_Error_detail. Successful calls leave it alone, like errno.
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

pub(crate) fn set_detail(msg: String) {
    // (try_with: a call made while this thread's locals are being destroyed has no detail.)
    let _ = LAST_ERROR.try_with(|l| *l.borrow_mut() = msg);
}

pub(crate) fn detail() -> String {
    LAST_ERROR
        .try_with(|l| l.borrow().clone())
        .unwrap_or_default()
}

/// Runs `f` for the C call `call` with the job, or fails with NOT_INITIALIZED.
pub(crate) fn with_job(call: &str, f: impl FnOnce(&mut Job) -> Result<()>) -> c_int {
    guard(call, || {
        let mut st = state();
        match &mut *st {
            State::Running(job) => f(job),
            _ => Err(Error::NotInitialized),
        }
    })
}

/// Runs the body of the C call `call`: its error becomes a code and this thread's detail, and a
/// panic (a bug) becomes `SNOO_MPI_ERR_INTERN` instead of unwinding into C.
pub(crate) fn guard(call: &str, f: impl FnOnce() -> Result<()>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => code::SUCCESS,
        Ok(Err(e)) => {
            tracing::debug!(call, error = %e, "SNOO_MPI call failed");
            set_detail(format!("{call}: {e}"));
            e.code()
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            set_detail(format!(
                "{call}: internal error (a bug in SNOO_MPI): {what}"
            ));
            code::ERR_INTERN
        }
    }
}

/// True if `SNOO_QUIET` asks the library not to print (set, not empty, not "0").
pub(crate) fn quiet() -> bool {
    std::env::var_os("SNOO_QUIET").is_some_and(|v| !v.is_empty() && v != "0")
}
