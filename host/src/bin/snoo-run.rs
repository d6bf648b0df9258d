//! snoo-run: an mpiexec-like launcher for SNOO jobs on one host.
//!
//! `snoo-run -n N [--name NAME] [--socket PATH] [--size SIZE] [--timeout SECS] [--bind-to core]
//! [--genv NAME VALUE]… PROGRAM [ARGS…]`, also in mpiexec's spellings (`-np N`, `-bind-to core`,
//! `-genv NAME VALUE`).
//!
//! Without `--socket`, an embedded daemon serves a fresh pool for the job on a socket in a private
//! temporary directory (removed at exit). With `--socket`, a running `snoo-hostd` (started with
//! `--name NAME --ranks N`) is used instead.
//!
//! Every rank is started with `SNOO_SOCKET`, `SNOO_RANK`, `SNOO_SIZE` and `SNOO_NAME` in its
//! environment, and with `LD_LIBRARY_PATH` leading to SNOO's MPI libraries under the names MPI
//! binaries need (`libmpi.so.12`, `libmpich.so.12`, `libmpi_abi.so.1`), so that a program built
//! against MPICH or for the MPI 5.0 standard interface runs on SNOO unmodified. In the embedded daemon's pool without `--name`, the pool is the job's own and a
//! program joins it whatever name it passes to `SNOO_MPI_Init` (the ranks also get
//! `SNOO_ANY_NAME=1`); with `--name` or `--socket`, the name passed must be the pool's, which
//! programs can read from `SNOO_NAME`. Each line a rank writes to stdout or stderr is forwarded with a
//! `[rank] ` prefix. Rank 0 inherits stdin unless it is a terminal; the other ranks read
//! /dev/null. Each rank leads its own process group, so whatever it starts is terminated with it.
//!
//! Exit status: 0 when every rank exits 0; otherwise the first non-zero status observed (128+S for
//! a rank killed by signal S). When a rank fails, the others are terminated (SIGTERM, then SIGKILL
//! after 2 s). 124 on `--timeout`, 127 when PROGRAM cannot be found, 2 for usage errors.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use snoo_common::job::JobLayout;
use snoo_common::layout::PoolGeometry;
use snoo_host::{parse_size, DaemonThread, PoolSpec, ServerConfig};

/// Grace period between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);
/// How long forwarded output may still trickle in after every rank is gone.
const DRAIN: Duration = Duration::from_secs(2);
/// Child polling period.
const TICK: Duration = Duration::from_millis(20);

const EXIT_USAGE: u8 = 2;
const EXIT_TIMEOUT: u8 = 124;
const EXIT_NOEXEC: u8 = 126;
const EXIT_NOTFOUND: u8 = 127;

#[derive(Parser, Debug)]
#[command(
    name = "snoo-run",
    version,
    about = "Launch an N-rank SNOO job on this host (like mpiexec)",
    after_help = "Each rank gets SNOO_SOCKET, SNOO_RANK, SNOO_SIZE and SNOO_NAME in its environment. \
                  Without --name and --socket the pool is the job's own: SNOO_MPI_Init joins it \
                  whatever name it is given. mpiexec's spellings -np N, -bind-to core and \
                  -genv NAME VALUE are accepted too."
)]
struct Cli {
    /// Number of ranks to start.
    #[arg(short = 'n', long = "np", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    ranks: u32,
    /// Pool name (the key programs pass to SNOO_MPI_Init; ranks see it as SNOO_NAME); default
    /// snoo-run-<pid>, or "snoo" (snoo-hostd's default) with --socket.
    #[arg(long)]
    name: Option<String>,
    /// Use a running snoo-hostd on this socket instead of an embedded daemon.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Pool size for the embedded daemon (K/M/G suffixes); default: enough for N ranks and a pool
    /// heap of at least 4 MiB each (MPI_Alloc_mem).
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    size: Option<u64>,
    /// Kill the job and exit 124 when it runs longer than this many seconds.
    #[arg(long, value_name = "SECS", value_parser = timeout_arg)]
    timeout: Option<Duration>,
    /// Pin ranks to CPUs, like mpiexec's -bind-to: `core` puts rank i on the i-th CPU (modulo
    /// their number) of those snoo-run may run on (each logical CPU counts as a core); `none`
    /// (the default) leaves placement to the scheduler.
    #[arg(long = "bind-to", value_name = "WHAT", value_enum, default_value_t = Bind::None)]
    bind: Bind,
    /// Set NAME=VALUE in every rank's environment (repeatable), like mpiexec's -genv.
    #[arg(long = "genv", num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append)]
    genv: Vec<OsString>,
    /// The program to run, and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PROGRAM [ARGS]..."
    )]
    command: Vec<OsString>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Bind {
    None,
    Core,
}

/// The CPUs this process may run on, in ascending order.
fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, and sched_getaffinity writes at most
    // size_of::<cpu_set_t>() bytes into it.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        set
    };
    // SAFETY: CPU_ISSET only reads the set, for indices below CPU_SETSIZE.
    Ok((0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// The CPU set of one CPU.
fn one_cpu(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: as in `allowed_cpus`; `cpu` came from there, so it is below CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        set
    }
}

fn size_arg(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

fn timeout_arg(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse_from(mpiexec_spellings(std::env::args_os()));
    ExitCode::from(run(cli))
}

/// Rewrites mpiexec's single-dash spellings of snoo-run's options (`-np`, `-bind-to`, `-genv`)
/// into their long forms, up to the program: what follows it is the program's own.
fn mpiexec_spellings(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args = args.into_iter();
    let mut out: Vec<OsString> = args.next().into_iter().collect();
    // Values still to skip after an option that takes some.
    let mut values = 0;
    for a in args.by_ref() {
        if values > 0 {
            values -= 1;
            out.push(a);
            continue;
        }
        let long = match a.to_str() {
            Some("-np") => "--np",
            Some("-bind-to") => "--bind-to",
            Some("-genv") => "--genv",
            _ => "",
        };
        let arg = if long.is_empty() { a } else { long.into() };
        let text = arg.to_string_lossy().into_owned();
        if text == "--" || !text.starts_with('-') {
            // The program (or the separator before it): the rest is its own.
            out.push(arg);
            break;
        }
        values = match text.as_str() {
            "-n" | "--np" | "--name" | "--socket" | "--size" | "--timeout" | "--bind-to" => 1,
            "--genv" => 2,
            _ => 0,
        };
        out.push(arg);
    }
    out.extend(args);
    out
}

/// A private temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let mut bases = Vec::new();
        if let Some(t) = std::env::var_os("TMPDIR").filter(|t| !t.is_empty()) {
            bases.push(PathBuf::from(t));
        }
        bases.push(PathBuf::from("/tmp"));
        let mut last = std::io::Error::other("no temporary directory");
        for base in bases {
            // Leave room for "/snoo.sock" within the 107-byte socket path limit.
            if base.as_os_str().len() > 80 {
                continue;
            }
            match nix::unistd::mkdtemp(&base.join("snoo-run.XXXXXX")) {
                Ok(p) => return Ok(TempDir(p)),
                Err(e) => last = e.into(),
            }
        }
        Err(last)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// SNOO's MPI libraries under the names MPI binaries look for: `libmpi.so.12` and
/// `libmpich.so.12` (MPICH's interface; Debian's programs link the latter) and `libmpi_abi.so.1`
/// (the MPI 5.0 standard interface), as links in a private directory that the ranks' dynamic loader
/// searches first (`LD_LIBRARY_PATH`). So an MPI program built against MPICH or for the standard
/// interface runs on SNOO unmodified, with no flag. The libraries are found in
/// `$SNOO_MPI_LIBDIR`, else beside this executable (a cargo build), else in `../lib` from it.
struct MpiLibs(TempDir);

impl MpiLibs {
    /// The directory of links, or `None` (with a note on stderr only if linking failed) when the
    /// libraries are not built: programs of SNOO's own API still run.
    fn link() -> Option<MpiLibs> {
        let exe_dir = std::env::current_exe().ok()?.parent()?.to_path_buf();
        let dirs = [
            std::env::var_os("SNOO_MPI_LIBDIR").map(PathBuf::from),
            Some(exe_dir.clone()),
            Some(exe_dir.join("../lib")),
        ];
        let found = |file: &str| {
            dirs.iter()
                .flatten()
                .map(|d| d.join(file))
                .find(|p| p.is_file())
        };
        let mpich = found("libmpi.so");
        let standard = found("libmpi_abi.so");
        if mpich.is_none() && standard.is_none() {
            return None;
        }
        let dir = TempDir::new().ok()?;
        let links = [
            (&mpich, "libmpi.so.12"),
            (&mpich, "libmpich.so.12"),
            (&standard, "libmpi_abi.so.1"),
        ];
        for (target, name) in links {
            if let Some(t) = target {
                let t = t.canonicalize().unwrap_or_else(|_| t.clone());
                if let Err(e) = std::os::unix::fs::symlink(&t, dir.0.join(name)) {
                    eprintln!("snoo-run: cannot link {name} to {}: {e}", t.display());
                    return None;
                }
            }
        }
        Some(MpiLibs(dir))
    }

    /// `LD_LIBRARY_PATH` for the ranks: the links first, then what the environment had.
    fn library_path(&self) -> OsString {
        let mut p = self.0 .0.clone().into_os_string();
        if let Some(old) = std::env::var_os("LD_LIBRARY_PATH").filter(|o| !o.is_empty()) {
            p.push(":");
            p.push(old);
        }
        p
    }
}

/// Finds PROGRAM as the shell would: a path when it contains a slash, else a search of PATH.
fn resolve(program: &OsStr) -> Result<PathBuf, u8> {
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.is_empty() {
        eprintln!("snoo-run: empty program name");
        return Err(EXIT_NOTFOUND);
    }
    if program.as_bytes().contains(&b'/') {
        let p = PathBuf::from(program);
        if !p.exists() {
            eprintln!("snoo-run: {}: no such file or directory", p.display());
            return Err(EXIT_NOTFOUND);
        }
        if !executable(&p) {
            eprintln!("snoo-run: {}: not an executable file", p.display());
            return Err(EXIT_NOEXEC);
        }
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let p = dir.join(program);
        if executable(&p) {
            return Ok(p);
        }
    }
    eprintln!(
        "snoo-run: {}: command not found",
        Path::new(program).display()
    );
    Err(EXIT_NOTFOUND)
}

/// Forwards `from` line by line to stdout or stderr with a `[rank] ` prefix.
fn forward(rank: u32, from: impl Read, to_stderr: bool, done: mpsc::Sender<()>) {
    let mut reader = BufReader::new(from);
    let prefix = format!("[{rank}] ");
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        let r = if to_stderr {
            let mut e = std::io::stderr().lock();
            e.write_all(prefix.as_bytes())
                .and_then(|_| e.write_all(&line))
                .and_then(|_| e.flush())
        } else {
            let mut o = std::io::stdout().lock();
            o.write_all(prefix.as_bytes())
                .and_then(|_| o.write_all(&line))
                .and_then(|_| o.flush())
        };
        if r.is_err() {
            // Keep draining so the rank never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
            break;
        }
    }
    let _ = done.send(());
}

/// Exit code of a rank's status: its code, or 128+S when killed by signal S.
fn code_of(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 1,
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => format!("ended with {status}"),
    }
}

struct Rank {
    child: Child,
    status: Option<ExitStatus>,
}

/// Reaps every rank that has exited; returns (rank, status) of those newly reaped.
fn reap(ranks: &mut [Rank]) -> Vec<(usize, ExitStatus)> {
    let mut out = Vec::new();
    for (i, r) in ranks.iter_mut().enumerate() {
        if r.status.is_none() {
            if let Ok(Some(st)) = r.child.try_wait() {
                r.status = Some(st);
                out.push((i, st));
            }
        }
    }
    out
}

/// Signals the process group of every rank still running (each rank leads its own group, so
/// whatever it started goes too).
fn signal_running(ranks: &[Rank], sig: Signal) {
    for r in ranks.iter().filter(|r| r.status.is_none()) {
        let _ = kill(Pid::from_raw(-(r.child.id() as i32)), sig);
    }
}

/// SIGKILLs whatever is left in every rank's process group (stray background processes).
fn kill_groups(ranks: &[Rank]) {
    for r in ranks {
        let _ = kill(Pid::from_raw(-(r.child.id() as i32)), Signal::SIGKILL);
    }
}

/// SIGTERM to every running rank, SIGKILL after the grace period; returns once all are reaped.
fn terminate(ranks: &mut [Rank]) {
    signal_running(ranks, Signal::SIGTERM);
    let deadline = Instant::now() + GRACE;
    while ranks.iter().any(|r| r.status.is_none()) {
        reap(ranks);
        if Instant::now() >= deadline {
            signal_running(ranks, Signal::SIGKILL);
            for r in ranks.iter_mut().filter(|r| r.status.is_none()) {
                if let Ok(st) = r.child.wait() {
                    r.status = Some(st);
                }
            }
            break;
        }
        std::thread::sleep(TICK);
    }
}

/// How a job that got its ranks started ended.
enum Outcome {
    /// Every rank exited 0.
    Succeeded,
    /// A rank failed first with this exit code (128+S for signal S); the others were terminated.
    Failed(i32),
    /// `--timeout` passed; the ranks were terminated.
    TimedOut,
    /// snoo-run got this stop signal; the ranks were terminated.
    Signalled(i32),
}

impl Outcome {
    /// snoo-run's exit status for this outcome.
    fn exit_code(&self) -> u8 {
        match *self {
            Outcome::Succeeded => 0,
            Outcome::Failed(c) => c.clamp(1, 255) as u8,
            Outcome::TimedOut => EXIT_TIMEOUT,
            Outcome::Signalled(sig) => (128 + sig).clamp(0, 255) as u8,
        }
    }
}

/// Runs the job `cli` describes and returns snoo-run's exit status.
fn run(cli: Cli) -> u8 {
    match run_job(&cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(code) => code,
    }
}

/// The job's steps in order. A step that fails has printed why and returns the exit status.
fn run_job(cli: &Cli) -> Result<Outcome, u8> {
    check_genv(&cli.genv)?;
    let name = job_name(cli);
    let program = resolve(&cli.command[0])?;
    let sigfd = block_stop_signals()?;
    let pool = Pool::open(cli, &name)?;
    let cpus = cpus_to_bind(cli.bind)?;
    let libs = MpiLibs::link();
    let mut job = Job::spawn(cli, &program, &name, &pool.socket, &cpus, libs.as_ref())?;
    let outcome = job.supervise(cli.timeout, &sigfd);
    job.finish();
    // `pool` drops only now: the embedded daemon serves until the ranks are gone and drained.
    Ok(outcome)
}

/// Refuses a `--genv` name that no environment can hold (empty, or with `=` or NUL in it).
fn check_genv(genv: &[OsString]) -> Result<(), u8> {
    for name in genv.iter().step_by(2) {
        let b = name.as_bytes();
        if b.is_empty() || b.contains(&b'=') || b.contains(&0) {
            eprintln!(
                "snoo-run: --genv {}: not a variable name (empty, or with '=' in it)",
                name.to_string_lossy()
            );
            return Err(EXIT_USAGE);
        }
    }
    Ok(())
}

/// The pool name: `--name`, else snoo-hostd's default with `--socket`, else one of this launcher's
/// own.
fn job_name(cli: &Cli) -> String {
    match (&cli.name, &cli.socket) {
        (Some(n), _) => n.clone(),
        // A running snoo-hostd serves its default name unless told otherwise.
        (None, Some(_)) => snoo_host::config::DEFAULT_NAME.to_string(),
        (None, None) => format!("snoo-run-{}", std::process::id()),
    }
}

/// Blocks the stop signals (SIGTERM, SIGINT, SIGHUP) and returns a signalfd that reads them.
///
/// Called before any thread exists, since threads inherit the mask. Children get an empty mask back
/// in their pre_exec.
fn block_stop_signals() -> Result<SignalFd, u8> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGHUP);
    mask.thread_block()
        .and_then(|_| SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK))
        .map_err(|e| {
            eprintln!("snoo-run: cannot set up signal handling: {e}");
            1
        })
}

/// The pool the ranks join: served by an embedded daemon in a private directory, or by a running
/// snoo-hostd (`--socket`).
struct Pool {
    /// What the ranks get as `SNOO_SOCKET`.
    socket: PathBuf,
    /// The embedded daemon. Fields drop in order, so it stops before its directory is removed.
    _daemon: Option<DaemonThread>,
    /// The embedded daemon's private directory, which holds its socket.
    _dir: Option<TempDir>,
}

impl Pool {
    /// The pool of a running snoo-hostd with `--socket`, else a fresh embedded one.
    fn open(cli: &Cli, name: &str) -> Result<Pool, u8> {
        match &cli.socket {
            Some(s) => Pool::running(s, cli.size.is_some()),
            None => Pool::embedded(cli, name),
        }
    }

    /// A running snoo-hostd's pool at `socket`, which must be a socket.
    fn running(socket: &Path, size_given: bool) -> Result<Pool, u8> {
        if size_given {
            eprintln!("snoo-run: --size is ignored with --socket (the daemon sizes the pool)");
        }
        let is_socket = std::fs::metadata(socket)
            .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
            .unwrap_or(false);
        if !is_socket {
            eprintln!(
                "snoo-run: {}: no socket there (is snoo-hostd running?)",
                socket.display()
            );
            return Err(EXIT_USAGE);
        }
        Ok(Pool {
            socket: socket.to_path_buf(),
            _daemon: None,
            _dir: None,
        })
    }

    /// A fresh pool named `name` for the job's ranks (`--size`, else enough for them), served by a
    /// daemon on a thread of this process.
    fn embedded(cli: &Cli, name: &str) -> Result<Pool, u8> {
        let n = cli.ranks;
        let dir = TempDir::new().map_err(|e| {
            eprintln!("snoo-run: cannot create a temporary directory: {e}");
            1
        })?;
        let socket = dir.0.join("snoo.sock");
        let max_peers = 64u32.max(n.saturating_add(8));
        // Linear in the ranks (docs/layout.md): the channels plus a heap per rank for
        // MPI_Alloc_mem and collective areas.
        let size = cli
            .size
            .unwrap_or_else(|| JobLayout::default_pool_size(n, max_peers));
        let spec =
            PoolSpec::new(name, socket.clone(), size, 1, n, max_peers, None).map_err(|e| {
                eprintln!("snoo-run: {e}");
                EXIT_USAGE
            })?;
        // Refuse a pool the job cannot fit before starting N ranks that would all fail in Init.
        let fits = PoolGeometry::new(spec.size, max_peers)
            .map_err(|e| e.to_string())
            .and_then(|g| JobLayout::new(&g, n).map_err(|e| e.to_string()));
        if let Err(e) = fits {
            eprintln!(
                "snoo-run: --size {}: {}",
                spec.size,
                e.replace("snoo-hostd --size", "--size")
            );
            return Err(EXIT_USAGE);
        }
        let daemon = DaemonThread::spawn(ServerConfig::single(spec)).map_err(|e| {
            eprintln!("snoo-run: cannot start the daemon: {e}");
            1
        })?;
        Ok(Pool {
            socket,
            _daemon: Some(daemon),
            _dir: Some(dir),
        })
    }
}

/// The CPUs to pin ranks to: none without `--bind-to core`, else those snoo-run may run on.
fn cpus_to_bind(bind: Bind) -> Result<Vec<usize>, u8> {
    match bind {
        Bind::None => Ok(Vec::new()),
        Bind::Core => match allowed_cpus() {
            Ok(c) if !c.is_empty() => Ok(c),
            Ok(_) => {
                eprintln!("snoo-run: --bind-to core: no CPU to bind to");
                Err(1)
            }
            Err(e) => {
                eprintln!("snoo-run: --bind-to core: cannot read the CPU affinity: {e}");
                Err(1)
            }
        },
    }
}

/// The running ranks and the threads forwarding their output.
struct Job {
    ranks: Vec<Rank>,
    /// One message from each forwarding thread when its pipe closes.
    done_rx: mpsc::Receiver<()>,
    /// Forwarding threads started.
    readers: usize,
}

impl Job {
    /// Starts the job's ranks, each in its process group with its output forwarded. If one cannot
    /// be started, those already running are terminated.
    fn spawn(
        cli: &Cli,
        program: &Path,
        name: &str,
        socket: &Path,
        cpus: &[usize],
        libs: Option<&MpiLibs>,
    ) -> Result<Job, u8> {
        let n = cli.ranks;
        // Start the ranks, all from this (the main) thread: PR_SET_PDEATHSIG fires when the thread
        // that forked the child exits, so a helper thread would be the wrong parent.
        let parent = std::process::id() as libc::pid_t;
        let (done_tx, done_rx) = mpsc::channel();
        let mut readers = 0usize;
        let mut ranks: Vec<Rank> = Vec::with_capacity(n as usize);
        // Ranks run in their own process groups: reading a terminal from there would stop them.
        let tty_stdin = std::io::IsTerminal::is_terminal(&std::io::stdin());
        // The embedded pool is the job's own unless it was named: any name joins it.
        let any_name = cli.name.is_none() && cli.socket.is_none();
        for i in 0..n {
            let mut cmd = Command::new(program);
            cmd.arg0(&cli.command[0])
                .args(&cli.command[1..])
                .env("SNOO_SOCKET", socket)
                .env("SNOO_RANK", i.to_string())
                .env("SNOO_SIZE", n.to_string())
                .env("SNOO_NAME", name)
                .envs(cli.genv.chunks_exact(2).map(|kv| (&kv[0], &kv[1])))
                .stdin(if i == 0 && !tty_stdin {
                    Stdio::inherit()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if any_name {
                cmd.env("SNOO_ANY_NAME", "1");
            }
            if let Some(l) = libs {
                cmd.env("LD_LIBRARY_PATH", l.library_path());
                // A --genv LD_LIBRARY_PATH still has the last word.
                cmd.envs(cli.genv.chunks_exact(2).map(|kv| (&kv[0], &kv[1])));
            }
            let cpu = (!cpus.is_empty()).then(|| one_cpu(cpus[i as usize % cpus.len()]));
            confine_rank(&mut cmd, cpu, parent);
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("snoo-run: cannot start {}: {e}", program.display());
                    terminate(&mut ranks);
                    kill_groups(&ranks);
                    return Err(match e.kind() {
                        std::io::ErrorKind::NotFound => EXIT_NOTFOUND,
                        std::io::ErrorKind::PermissionDenied => EXIT_NOEXEC,
                        _ => 1,
                    });
                }
            };
            readers += forward_output(i, &mut child, &done_tx);
            ranks.push(Rank {
                child,
                status: None,
            });
        }
        drop(done_tx);
        Ok(Job {
            ranks,
            done_rx,
            readers,
        })
    }

    /// Waits until every rank has exited, a rank fails, `timeout` passes or a stop signal comes
    /// on `sigfd`; in the last three cases the ranks still running are terminated.
    fn supervise(&mut self, timeout: Option<Duration>, sigfd: &SignalFd) -> Outcome {
        let ranks = &mut self.ranks;
        let started = Instant::now();
        let mut first_failure: Option<i32> = None;
        while ranks.iter().any(|r| r.status.is_none()) {
            for (i, st) in reap(ranks) {
                if !st.success() && first_failure.is_none() {
                    eprintln!("snoo-run: rank {i} {}", describe(st));
                    first_failure = Some(code_of(st));
                }
            }
            if let Some(code) = first_failure {
                terminate(ranks);
                return Outcome::Failed(code);
            }
            if ranks.iter().all(|r| r.status.is_some()) {
                break;
            }
            if let Some(t) = timeout {
                if started.elapsed() >= t {
                    eprintln!(
                        "snoo-run: timed out after {} s; killing the job",
                        t.as_secs_f64()
                    );
                    terminate(ranks);
                    return Outcome::TimedOut;
                }
            }
            if let Some(sig) = stop_signal(sigfd, TICK) {
                eprintln!("snoo-run: got signal {sig}; terminating the job");
                terminate(ranks);
                return Outcome::Signalled(sig);
            }
        }
        Outcome::Succeeded
    }

    /// Kills whatever the ranks left behind and lets their forwarded output drain.
    fn finish(self) {
        // Nothing a rank started outlives the job.
        kill_groups(&self.ranks);

        // Let the forwarded output drain, but never hang on a pipe a stray grandchild keeps open.
        let deadline = Instant::now() + DRAIN;
        let mut readers = self.readers;
        while readers > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.done_rx.recv_timeout(left) {
                Ok(()) => readers -= 1,
                Err(_) => break,
            }
        }
    }
}

/// Sets up what a rank's process does between fork and exec: pin itself to `cpu` if given, die
/// with the launcher (whose pid is `parent`), lead its own process group, and unblock the signals
/// the launcher blocked.
fn confine_rank(cmd: &mut Command, cpu: Option<libc::cpu_set_t>, parent: libc::pid_t) {
    // SAFETY: only async-signal-safe calls (prctl, getppid, setpgid, sigprocmask, raise,
    // sched_setaffinity) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(set) = &cpu {
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The launcher may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::raise(libc::SIGKILL);
            }
            // A group of its own, so the rank and its descendants are signalled together.
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
}

/// Starts a thread forwarding each of rank `i`'s piped stdout and stderr; returns how many.
fn forward_output(i: u32, child: &mut Child, done_tx: &mpsc::Sender<()>) -> usize {
    let mut readers = 0;
    if let Some(out) = child.stdout.take() {
        let tx = done_tx.clone();
        readers += 1;
        std::thread::spawn(move || forward(i, out, false, tx));
    }
    if let Some(err) = child.stderr.take() {
        let tx = done_tx.clone();
        readers += 1;
        std::thread::spawn(move || forward(i, err, true, tx));
    }
    readers
}

/// Waits up to `wait` for a stop signal on `sigfd`; returns its number if one came.
fn stop_signal(sigfd: &SignalFd, wait: Duration) -> Option<i32> {
    let mut fds = [PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
    let ms = wait.as_millis() as u16;
    if matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0) {
        if let Ok(Some(info)) = sigfd.read_signal() {
            return Some(info.ssi_signo as i32);
        }
    }
    None
}
