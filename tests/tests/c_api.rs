//! The C ABI: tests/c/pingpong.c compiled with gcc against snoo_mpi.h and each library (shared and
//! static), run as separate processes — 2 and 4 ranks — on the real daemon.

use snoo_common::job::{JobLayout, MAX_RING};
use snoo_tests::{cargo_build, workspace_root as workspace};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Compiles the C test: against the shared library with pkg-config's flags (snoo-mpi.pc is
/// written beside the libraries), or against libsnoo_mpi.a.
/// Builds the libraries and the launcher and daemon; returns `target/<profile>`.
fn build() -> PathBuf {
    cargo_build(&["-p", "snoo-mpi", "--lib", "-p", "snoo-host", "--bins"])
        .unwrap_or_else(|e| panic!("{e}"))
}

fn compile(libdir: &Path, out: &Path, static_lib: bool) {
    let src = workspace().join("tests/c/pingpong.c");
    let mut cmd = Command::new("gcc");
    cmd.args(["-O2", "-Wall", "-Werror", "-std=c11"])
        .arg(&src)
        .arg("-o")
        .arg(out);
    if static_lib {
        cmd.arg("-I").arg(workspace().join("guest/include"));
        cmd.arg(libdir.join("libsnoo_mpi.a"))
            .args(["-lpthread", "-ldl", "-lm"]);
    } else {
        let pc = Command::new("pkg-config")
            .args(["--cflags", "--libs", "snoo-mpi"])
            .env("PKG_CONFIG_PATH", libdir)
            .output()
            .expect("pkg-config is installed");
        assert!(
            pc.status.success(),
            "pkg-config: {}",
            String::from_utf8_lossy(&pc.stderr)
        );
        cmd.args(String::from_utf8(pc.stdout).unwrap().split_whitespace());
    }
    let o = cmd.output().expect("gcc is installed");
    assert!(
        o.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn check_ranks(out: &str, n: u32) {
    for r in 0..n {
        assert!(
            out.contains(&format!("[{r}] rank {r} of {n}: ok")),
            "rank {r} of {n} did not finish:\n{out}"
        );
    }
}

/// Through snoo-run with its embedded daemon.
fn run_job(bin: &Path, exe: &Path, n: u32) {
    let o = Command::new(bin.join("snoo-run"))
        .args(["-n", &n.to_string(), "--timeout", "120"])
        .arg(exe)
        .env("SNOO_TIMEOUT", "30")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "snoo-run -n {n}: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    check_ranks(&out, n);
}

#[test]
fn c_program_with_shared_and_static_library_through_snoo_run() {
    let bin = build();
    let dir = std::env::temp_dir().join(format!("snoo-c-build-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (static_lib, name) in [(false, "pingpong-shared"), (true, "pingpong-static")] {
        let exe = dir.join(name);
        compile(&bin, &exe, static_lib);
        for n in [2, 4] {
            run_job(&bin, &exe, n);
        }
    }
}

/// Ranks started by hand with SNOO_SOCKET/SNOO_RANK/SNOO_SIZE against a separately started
/// `snoo-hostd --name NAME --ranks N`, as an administrator would run them.
#[test]
fn ranks_started_by_hand_against_a_separate_daemon() {
    let bin = build();
    let dir = std::env::temp_dir().join(format!("snoo-c-hand-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("pingpong");
    compile(&bin, &exe, false);
    let sock = dir.join("job.sock");
    let n = 3u32;
    let size = JobLayout::pool_size_for(n, MAX_RING, 64).to_string();
    let mut daemon = Command::new(bin.join("snoo-hostd"))
        .args([
            "--socket",
            sock.to_str().unwrap(),
            "--size",
            &size,
            "--name",
            "byhand",
            "--ranks",
            "3",
        ])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "snoo-hostd did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // SNOO_SIZE is left out on purpose: the job size comes from the daemon's --ranks.
    let children: Vec<_> = (0..n)
        .map(|r| {
            Command::new(&exe)
                .env("SNOO_SOCKET", &sock)
                .env("SNOO_RANK", r.to_string())
                .env("SNOO_NAME", "byhand")
                .env("SNOO_TIMEOUT", "30")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut all = String::new();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        all.push_str(&String::from_utf8_lossy(&o.stdout));
    }
    for r in 0..n {
        assert!(all.contains(&format!("rank {r} of {n}: ok")), "{all}");
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    assert!(daemon.wait().unwrap().success());
}

/// The C test (bad arguments included) under valgrind's memcheck: no invalid read or write, no use
/// of uninitialised memory, in the C program or the library behind it.
#[test]
fn c_program_is_clean_under_valgrind() {
    let bin = build();
    let dir = std::env::temp_dir().join(format!("snoo-c-valgrind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("pingpong");
    compile(&bin, &exe, true);
    let o = Command::new(bin.join("snoo-run"))
        .args([
            "-n",
            "2",
            "--timeout",
            "300",
            "valgrind",
            "-q",
            "--error-exitcode=99",
        ])
        .arg(&exe)
        .env("SNOO_TIMEOUT", "120")
        .output()
        .expect("snoo-run");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "under valgrind: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    check_ranks(&out, 2);
}
