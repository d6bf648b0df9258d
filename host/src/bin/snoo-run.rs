//! snoo-run: an mpiexec-like launcher for SNOO jobs on one host.
//!
//! `snoo-run -n N [--name NAME] [--socket PATH] [--size SIZE] [--timeout SECS] [--bind-to core]
//! PROGRAM [ARGS…]`
//!
//! Without `--socket`, an embedded daemon serves a fresh pool for the job on a socket in a private
//! temporary directory (removed at exit). With `--socket`, a running `snoo-hostd` (started with
//! `--name NAME --ranks N`) is used instead.
//!
//! Every rank is started with `SNOO_SOCKET`, `SNOO_RANK`, `SNOO_SIZE` and `SNOO_NAME` in its
//! environment. The name a program passes to `SNOO_MPI_Init` must match the pool's name: programs
//! should read it from `SNOO_NAME`. Each line a rank writes to stdout or stderr is forwarded with a
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
use snoo_common::job::{JobLayout, MAX_RING};
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
    after_help = "Each rank gets SNOO_SOCKET, SNOO_RANK, SNOO_SIZE and SNOO_NAME in its environment; \
                  the name passed to SNOO_MPI_Init must match SNOO_NAME."
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
    /// Pool size for the embedded daemon (K/M/G suffixes); default: enough for N ranks.
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
    let cli = Cli::parse();
    ExitCode::from(run(cli))
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

fn run(cli: Cli) -> u8 {
    let n = cli.ranks;
    let name = match (&cli.name, &cli.socket) {
        (Some(n), _) => n.clone(),
        // A running snoo-hostd serves its default name unless told otherwise.
        (None, Some(_)) => snoo_host::config::DEFAULT_NAME.to_string(),
        (None, None) => format!("snoo-run-{}", std::process::id()),
    };
    let program = match resolve(&cli.command[0]) {
        Ok(p) => p,
        Err(code) => return code,
    };

    // Block the stop signals before any thread exists (threads inherit the mask) and read them
    // from a signalfd. Children get an empty mask back in pre_exec.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGHUP);
    let sigfd = match mask
        .thread_block()
        .and_then(|_| SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("snoo-run: cannot set up signal handling: {e}");
            return 1;
        }
    };

    // The pool: an embedded daemon in a private directory, or a running snoo-hostd.
    let mut _tmp = None;
    let mut _daemon = None;
    let socket = match &cli.socket {
        Some(s) => {
            if cli.size.is_some() {
                eprintln!("snoo-run: --size is ignored with --socket (the daemon sizes the pool)");
            }
            let is_socket = std::fs::metadata(s)
                .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                .unwrap_or(false);
            if !is_socket {
                eprintln!(
                    "snoo-run: {}: no socket there (is snoo-hostd running?)",
                    s.display()
                );
                return EXIT_USAGE;
            }
            s.clone()
        }
        None => {
            let tmp = match TempDir::new() {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("snoo-run: cannot create a temporary directory: {e}");
                    return 1;
                }
            };
            let socket = tmp.0.join("snoo.sock");
            _tmp = Some(tmp);
            let max_peers = 64u32.max(n.saturating_add(8));
            let size = cli
                .size
                .unwrap_or_else(|| JobLayout::pool_size_for(n, MAX_RING, max_peers));
            let spec = match PoolSpec::new(&name, socket.clone(), size, 1, n, max_peers, None) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("snoo-run: {e}");
                    return EXIT_USAGE;
                }
            };
            match DaemonThread::spawn(ServerConfig::single(spec)) {
                Ok(d) => _daemon = Some(d),
                Err(e) => {
                    eprintln!("snoo-run: cannot start the daemon: {e}");
                    return 1;
                }
            }
            socket
        }
    };

    let cpus = match cli.bind {
        Bind::None => Vec::new(),
        Bind::Core => match allowed_cpus() {
            Ok(c) if !c.is_empty() => c,
            Ok(_) => {
                eprintln!("snoo-run: --bind-to core: no CPU to bind to");
                return 1;
            }
            Err(e) => {
                eprintln!("snoo-run: --bind-to core: cannot read the CPU affinity: {e}");
                return 1;
            }
        },
    };

    // Start the ranks, all from this (the main) thread: PR_SET_PDEATHSIG fires when the thread
    // that forked the child exits, so a helper thread would be the wrong parent.
    let parent = std::process::id() as libc::pid_t;
    let (done_tx, done_rx) = mpsc::channel();
    let mut readers = 0usize;
    let mut ranks: Vec<Rank> = Vec::with_capacity(n as usize);
    // Ranks run in their own process groups: reading a terminal from there would stop them.
    let tty_stdin = std::io::IsTerminal::is_terminal(&std::io::stdin());
    for i in 0..n {
        let mut cmd = Command::new(&program);
        cmd.arg0(&cli.command[0])
            .args(&cli.command[1..])
            .env("SNOO_SOCKET", &socket)
            .env("SNOO_RANK", i.to_string())
            .env("SNOO_SIZE", n.to_string())
            .env("SNOO_NAME", &name)
            .stdin(if i == 0 && !tty_stdin {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let cpu = (!cpus.is_empty()).then(|| one_cpu(cpus[i as usize % cpus.len()]));
        // SAFETY: only async-signal-safe calls (prctl, getppid, setpgid, sigprocmask, raise,
        // sched_setaffinity) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(set) = &cpu {
                    if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) != 0
                    {
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
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("snoo-run: cannot start {}: {e}", program.display());
                terminate(&mut ranks);
                kill_groups(&ranks);
                return match e.kind() {
                    std::io::ErrorKind::NotFound => EXIT_NOTFOUND,
                    std::io::ErrorKind::PermissionDenied => EXIT_NOEXEC,
                    _ => 1,
                };
            }
        };
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
        ranks.push(Rank {
            child,
            status: None,
        });
    }
    drop(done_tx);

    let started = Instant::now();
    let mut result: Option<u8> = None;
    let mut first_failure: Option<i32> = None;
    while ranks.iter().any(|r| r.status.is_none()) {
        for (i, st) in reap(&mut ranks) {
            if !st.success() && first_failure.is_none() {
                eprintln!("snoo-run: rank {i} {}", describe(st));
                first_failure = Some(code_of(st));
            }
        }
        if first_failure.is_some() {
            terminate(&mut ranks);
            break;
        }
        if ranks.iter().all(|r| r.status.is_some()) {
            break;
        }
        if let Some(t) = cli.timeout {
            if started.elapsed() >= t {
                eprintln!(
                    "snoo-run: timed out after {} s; killing the job",
                    t.as_secs_f64()
                );
                terminate(&mut ranks);
                result = Some(EXIT_TIMEOUT);
                break;
            }
        }
        let mut fds = [PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        let ms = TICK.as_millis() as u16;
        if matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0) {
            if let Ok(Some(info)) = sigfd.read_signal() {
                let sig = info.ssi_signo as i32;
                eprintln!("snoo-run: got signal {sig}; terminating the job");
                terminate(&mut ranks);
                result = Some((128 + sig).clamp(0, 255) as u8);
                break;
            }
        }
    }

    // Nothing a rank started outlives the job.
    kill_groups(&ranks);

    // Let the forwarded output drain, but never hang on a pipe a stray grandchild keeps open.
    let deadline = Instant::now() + DRAIN;
    while readers > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok(()) => readers -= 1,
            Err(_) => break,
        }
    }

    if let Some(r) = result {
        return r;
    }
    match first_failure {
        Some(c) => c.clamp(1, 255) as u8,
        None => 0,
    }
}
