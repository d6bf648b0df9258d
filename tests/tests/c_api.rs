//! The C ABI: tests/c/pingpong.c compiled with gcc against snoo_mpi.h and each library (shared and
//! static), run as separate processes — 2 and 4 ranks — on the real daemon.

use snoo_common::job::{JobLayout, MAX_RING};
use snoo_host::config::{PoolSpec, ServerConfig};
use snoo_host::DaemonThread;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// target/<profile>, from this test binary's path (target/<profile>/deps/c_api-…).
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

fn build_libs() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", "snoo-mpi", "--lib"])
        .current_dir(workspace());
    if target_dir().ends_with("release") {
        cmd.arg("--release");
    }
    assert!(cmd.status().unwrap().success(), "cargo build -p snoo-mpi");
    target_dir()
}

fn compile(libdir: &Path, out: &Path, static_lib: bool) {
    let src = workspace().join("tests/c/pingpong.c");
    let include = workspace().join("guest/include");
    let mut cmd = Command::new("gcc");
    cmd.args(["-O2", "-Wall", "-Werror", "-std=c11"])
        .arg("-I")
        .arg(&include)
        .arg(&src)
        .arg("-o")
        .arg(out);
    if static_lib {
        cmd.arg(libdir.join("libsnoo_mpi.a"))
            .args(["-lpthread", "-ldl", "-lm"]);
    } else {
        cmd.arg("-L")
            .arg(libdir)
            .arg("-lsnoo_mpi")
            .arg(format!("-Wl,-rpath,{}", libdir.display()));
    }
    let o = cmd.output().expect("gcc is installed");
    assert!(
        o.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn run_job(exe: &Path, n: u32, tag: &str) {
    let dir = std::env::temp_dir().join(format!("snoo-c-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("pool.sock");
    let spec = PoolSpec::new(
        tag,
        sock.clone(),
        JobLayout::pool_size_for(n, MAX_RING, 64),
        1,
        n,
        64,
        None,
    )
    .unwrap();
    let _d = DaemonThread::spawn(ServerConfig::single(spec)).unwrap();
    let children: Vec<_> = (0..n)
        .map(|r| {
            Command::new(exe)
                .env("SNOO_SOCKET", &sock)
                .env("SNOO_RANK", r.to_string())
                .env("SNOO_SIZE", n.to_string())
                .env("SNOO_NAME", tag)
                .env("SNOO_TIMEOUT", "30")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (r, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert!(o.status.success(), "rank {r} of {n} failed: {err}");
        assert!(
            out.contains(&format!("rank {r} of {n}: ok")),
            "rank {r}: {out}"
        );
    }
}

#[test]
fn c_program_with_shared_and_static_library() {
    let libdir = build_libs();
    let dir = std::env::temp_dir().join(format!("snoo-c-build-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (static_lib, name) in [(false, "pingpong-shared"), (true, "pingpong-static")] {
        let exe = dir.join(name);
        compile(&libdir, &exe, static_lib);
        for n in [2, 4] {
            run_job(&exe, n, &format!("{name}-{n}"));
        }
    }
}
