//! Helpers shared by the cross-crate tests: building workspace binaries in the profile the tests
//! run in, and serving a pool for a job. The QEMU harness is in [`qemu`].

pub mod qemu;

use snoo_common::job::JobLayout;
use snoo_host::config::{PoolSpec, ServerConfig};
use snoo_host::DaemonThread;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
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

/// Serves a pool named `tag`, sized for `ranks` ranks with data rings of `ring` bytes, from the
/// real daemon on a thread; its socket is in a fresh directory under the temp dir.
pub fn job_daemon(tag: &str, ranks: u32, ring: usize) -> (DaemonThread, PathBuf) {
    let dir = std::env::temp_dir().join(format!("snoo-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sock = dir.join("pool.sock");
    let size = JobLayout::pool_size_for(ranks, ring, 64);
    let spec = PoolSpec::new(tag, sock.clone(), size, 1, ranks, 64, None).expect("valid pool");
    (
        DaemonThread::spawn(ServerConfig::single(spec)).expect("daemon starts"),
        sock,
    )
}
