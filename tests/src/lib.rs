//! Helpers shared by the cross-crate tests: building workspace binaries in the profile the tests
//! run in, serving a pool for a job, joining it as ranks, and test payloads. The QEMU harness is in
//! [`qemu`].

pub mod mpi_programs;
pub mod qemu;

use snoo_common::job::JobLayout;
use snoo_host::config::{PoolSpec, ServerConfig};
use snoo_host::DaemonThread;
use snoo_mpi::device::SocketDevice;
use snoo_mpi::JoinOptions;
use snoo_mpi::World;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `target/<profile>` of the running test (its executable is `target/<profile>/deps/<test>-<hash>`).
pub fn profile_dir() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().expect("executable has a parent").to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    Ok(dir)
}

/// Runs `cargo build ARGS` for this workspace in the running test's profile and target directory,
/// so tests never run a stale binary of another package. Returns `target/<profile>`.
pub fn cargo_build(args: &[&str]) -> io::Result<PathBuf> {
    let dir = profile_dir()?;
    let profile = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--quiet")
        .args(args)
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(dir.parent().unwrap_or(Path::new("target")));
    profile_args(&mut cmd, &profile);
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "cargo build {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(dir)
}

/// Adds the `cargo build` arguments that select `profile` (the name of a `target/` subdirectory).
pub fn profile_args(cmd: &mut Command, profile: &str) {
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
}

/// Serves a pool named `tag`, sized for `ranks` ranks with data rings of `ring` bytes, from the
/// real daemon on a thread; its socket is in a fresh directory under the temp dir.
pub fn job_daemon(tag: &str, ranks: u32, ring: usize) -> (DaemonThread, PathBuf) {
    pool_daemon(tag, ranks, JobLayout::pool_size_for(ranks, ring, 64))
}

/// Like [`job_daemon`], with a pool of `size` bytes (a power of two): what the channels leave is
/// the ranks' heaps (`World::alloc_mem`).
pub fn pool_daemon(tag: &str, ranks: u32, size: u64) -> (DaemonThread, PathBuf) {
    let dir = std::env::temp_dir().join(format!("snoo-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sock = dir.join("pool.sock");
    let spec = PoolSpec::new(tag, sock.clone(), size, 1, ranks, 64, None).expect("valid pool");
    (
        DaemonThread::spawn(ServerConfig::single(spec)).expect("daemon starts"),
        sock,
    )
}

/// Tries to join job `name` on the pool at `sock` (as `rank` of `size` where given), through a
/// device connection of its own (so a peer of its own, as a separate process or VM would be).
pub fn try_join(
    sock: &Path,
    name: &str,
    rank: Option<u32>,
    size: Option<u32>,
    timeout: Duration,
) -> Result<World, snoo_mpi::Error> {
    let dev = SocketDevice::connect(sock, Duration::from_secs(10)).expect("daemon reachable");
    let opts = JoinOptions {
        name: name.to_string(),
        rank,
        size,
        timeout,
    };
    World::join(Arc::new(dev), &opts)
}

/// Joins job `name` on the pool at `sock` as `rank` of `size` ([`try_join`], which must succeed).
pub fn join_rank(sock: &Path, name: &str, rank: u32, size: u32, timeout: Duration) -> World {
    let world = try_join(sock, name, Some(rank), Some(size), timeout).expect("joins the job");
    assert_eq!((world.rank(), world.size()), (rank, size));
    world
}

/// Runs `f` as every rank of an `n`-rank job on the pool at `sock`, one thread (and one
/// [`join_rank`] peer) per rank. `f` owns its `World`: it finalizes or drops it when it wants.
pub fn ranks<R: Send>(
    sock: &Path,
    name: &str,
    n: u32,
    timeout: Duration,
    f: impl Fn(World) -> R + Sync,
) -> Vec<R> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|r| {
                let f = &f;
                s.spawn(move || f(join_rank(sock, name, r, n, timeout)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// `len` bytes of an xorshift stream seeded by `seed`: not periodic at any power of two, so a
/// chunk delivered at the wrong offset shows.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// CPU time (user and system) the calling thread has used, from `/proc/thread-self/stat` (in
/// clock ticks: 10 ms resolution here).
pub fn thread_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc/thread-self/stat");
    // Fields after the command name (which may hold spaces, within parentheses): state is field
    // 3, utime 14 and stime 15.
    let rest = &stat[stat.rfind(')').expect("stat format") + 1..];
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse().expect("utime and stime"))
        .collect();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    Duration::from_millis((fields[0] + fields[1]) * 1000 / hz)
}
