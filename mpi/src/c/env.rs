//! The environment: Init and Finalize, thread levels, Abort, timers, versions, the processor
//! name, and pool memory (MPI_Alloc_mem from the rank's heap in the pool).

use super::{anytime, out, put, run, thread_code, thread_of, Abi};
use crate::error::{err, Class, MpiError, MpiResult};
use crate::state::{self, Mpi, Phase, Thread};
use std::ffi::{c_char, c_double, c_int, c_void};
use std::io::Write;
use std::sync::OnceLock;
use std::time::Instant;

/// Joins the job: the pool is named by `SNOO_NAME` (set by snoo-run), "snoo" otherwise.
fn init_common<A: Abi>(name: &'static str, level: Thread) -> c_int {
    let r = std::panic::catch_unwind(|| -> MpiResult<()> {
        let mut g = state::lock()?;
        match &*g {
            Phase::Running(_) => return err(Class::Other, "MPI is already initialized"),
            Phase::After => {
                return err(
                    Class::Other,
                    "MPI cannot be initialized again after MPI_Finalize",
                )
            }
            Phase::Before => {}
        }
        let pool = std::env::var("SNOO_NAME").unwrap_or_else(|_| "snoo".to_string());
        let world = snoo::init(&pool)
            .map_err(|e| MpiError::new(Class::Other, format!("cannot join the job: {e}")))?;
        let _ = epoch();
        *g = Phase::Running(Box::new(Mpi::new(world, level.min(Thread::Serialized))));
        state::set_phase(1);
        Ok(())
    });
    match r {
        Ok(Ok(())) => A::code(Class::Success),
        Ok(Err(e)) => {
            // Before Init, errors are fatal (MPI 4.1 §9.3): say why and end.
            let _ = writeln!(std::io::stderr(), "Fatal error in {name}: {e}");
            std::process::exit(1)
        }
        Err(_) => {
            let _ = writeln!(std::io::stderr(), "Fatal error in {name}: internal error");
            std::process::exit(1)
        }
    }
}

/// MPI_Init.
pub fn init<A: Abi>(_argc: *mut c_int, _argv: *mut *mut *mut c_char) -> c_int {
    init_common::<A>("MPI_Init", Thread::Single)
}

/// MPI_Init_thread: grants at most MPI_THREAD_SERIALIZED.
pub fn init_thread<A: Abi>(
    _argc: *mut c_int,
    _argv: *mut *mut *mut c_char,
    required: c_int,
    provided: *mut c_int,
) -> c_int {
    let level = match thread_of::<A>(required) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "Fatal error in MPI_Init_thread: {e}");
            std::process::exit(1)
        }
    };
    let rc = init_common::<A>("MPI_Init_thread", level);
    if !provided.is_null() {
        // SAFETY: non-NULL: the program's int.
        unsafe { *provided = thread_code::<A>(level.min(Thread::Serialized)) };
    }
    rc
}

/// MPI_Finalize: completes buffered sends, then leaves the job.
pub fn finalize<A: Abi>() -> c_int {
    run::<A>("MPI_Finalize", None, |m| {
        m.drain_buffered()?;
        Ok(())
    });
    let r = (|| -> MpiResult<()> {
        let mut g = state::lock()?;
        let Phase::Running(m) = std::mem::replace(&mut *g, Phase::After) else {
            return err(Class::Other, "MPI_Finalize without MPI_Init, or twice");
        };
        state::set_phase(2);
        m.world.finalize()?;
        Ok(())
    })();
    match r {
        Ok(()) => A::code(Class::Success),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "Fatal error in MPI_Finalize: {e}");
            std::process::exit(1)
        }
    }
}

/// MPI_Initialized.
pub fn initialized<A: Abi>(flag: *mut c_int) -> c_int {
    anytime::<A>("MPI_Initialized", || {
        put(flag, c_int::from(state::phase() >= 1), "flag")
    })
}

/// MPI_Finalized.
pub fn finalized<A: Abi>(flag: *mut c_int) -> c_int {
    anytime::<A>("MPI_Finalized", || {
        put(flag, c_int::from(state::phase() == 2), "flag")
    })
}

/// MPI_Query_thread.
pub fn query_thread<A: Abi>(provided: *mut c_int) -> c_int {
    run::<A>("MPI_Query_thread", None, |m| {
        put(provided, thread_code::<A>(m.thread_level), "provided")
    })
}

/// MPI_Is_thread_main: the library does not track threads; the main thread is the one that
/// called Init, and with SERIALIZED any thread may call, so every caller is told 1.
pub fn is_thread_main<A: Abi>(flag: *mut c_int) -> c_int {
    run::<A>("MPI_Is_thread_main", None, |_| put(flag, 1, "flag"))
}

/// MPI_Abort: prints who aborted and ends the process with `code`; the launcher ends the rest
/// of the job (as mpiexec does).
pub fn abort<A: Abi>(_comm: A::Comm, code: c_int) -> c_int {
    let rank = match state::lock() {
        Ok(g) => match &*g {
            Phase::Running(m) => m.world.rank().to_string(),
            _ => "?".into(),
        },
        Err(_) => "?".into(),
    };
    let _ = writeln!(
        std::io::stderr(),
        "MPI_Abort on rank {rank} with error code {code}"
    );
    std::process::exit(if code == 0 { 1 } else { code & 0xff }.max(1))
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// MPI_Wtime: seconds since the library first looked at the clock (a monotonic clock).
pub fn wtime<A: Abi>() -> c_double {
    epoch().elapsed().as_secs_f64()
}

/// MPI_Wtick: the monotonic clock's resolution (nanoseconds).
pub fn wtick<A: Abi>() -> c_double {
    1e-9
}

/// Copies `s` into a C string buffer of `cap` bytes and writes its length.
fn c_string(buf: *mut c_char, cap: usize, s: &str, len: *mut c_int) -> MpiResult<()> {
    let n = s.len().min(cap.saturating_sub(1));
    if buf.is_null() {
        return err(Class::Arg, "NULL string buffer");
    }
    // SAFETY: the program's buffer holds `cap` bytes (the MPI_MAX_* constant of the call);
    // n + 1 <= cap.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf as *mut u8, n);
        *buf.add(n) = 0;
    }
    put(len, n as c_int, "length")
}

/// Writes a C string for calls whose buffer size is an MPI_MAX_* constant.
pub(crate) fn write_c_string(
    buf: *mut c_char,
    cap: usize,
    s: &str,
    len: *mut c_int,
) -> MpiResult<()> {
    c_string(buf, cap, s, len)
}

/// MPI_Get_processor_name: the host name.
pub fn get_processor_name<A: Abi>(name: *mut c_char, len: *mut c_int) -> c_int {
    let cap = A::MAX_PROCESSOR_NAME;
    anytime::<A>("MPI_Get_processor_name", || {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        c_string(name, cap, &host, len)
    })
}

/// MPI_Get_version.
pub fn get_version<A: Abi>(version: *mut c_int, subversion: *mut c_int) -> c_int {
    anytime::<A>("MPI_Get_version", || {
        put(version, A::VERSION.0, "version")?;
        put(subversion, A::VERSION.1, "subversion")
    })
}

/// MPI_Get_library_version.
pub fn get_library_version<A: Abi>(v: *mut c_char, len: *mut c_int) -> c_int {
    let cap = A::MAX_LIBRARY_VERSION_STRING;
    anytime::<A>("MPI_Get_library_version", || {
        let s = format!(
            "SNOO MPI {} (MPI {}.{}): MPI between VMs through hypervisor shared memory",
            env!("CARGO_PKG_VERSION"),
            A::VERSION.0,
            A::VERSION.1
        );
        c_string(v, cap, &s, len)
    })
}

/// MPI_Alloc_mem: memory in this rank's heap in the pool (large sends from it are single-copy), or
/// process memory when the heap has no room.
pub fn alloc_mem<A: Abi>(size: isize, _info: A::Info, baseptr: *mut c_void) -> c_int {
    run::<A>("MPI_Alloc_mem", None, |m| {
        let slot = out(baseptr as *mut *mut u8, "base pointer")?;
        let size = usize::try_from(size)
            .map_err(|_| MpiError::new(Class::Arg, format!("negative size {size}")))?;
        *slot = match m.world.alloc_raw(size.max(1)) {
            Ok(p) => p,
            // The pool heap is full (heaps shrink as ranks grow): process memory, zeroed and
            // 16-byte aligned like the heap's blocks, kept until MPI_Free_mem.
            Err(snoo::Error::NoMem { .. }) => {
                let mut block = vec![0u128; size.max(1).div_ceil(16)];
                let p = block.as_mut_ptr().cast::<u8>();
                m.private_mem.insert(p as usize, block);
                p
            }
            Err(e) => return Err(e.into()),
        };
        Ok(())
    })
}

/// MPI_Free_mem.
pub fn free_mem<A: Abi>(base: *mut c_void) -> c_int {
    run::<A>("MPI_Free_mem", None, |m| {
        if base.is_null() {
            return Ok(());
        }
        if m.private_mem.remove(&(base as usize)).is_some() {
            return Ok(());
        }
        m.world
            .free_raw(base as *mut u8)
            .map_err(|e| MpiError::new(Class::Arg, format!("not memory from MPI_Alloc_mem: {e}")))
    })
}
