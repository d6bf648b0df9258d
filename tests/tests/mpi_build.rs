//! Building MPI programs against SNOO with pkg-config: `cargo build` writes `snoo-mpi-abi.pc`
//! (the standard ABI, SNOO's own mpi.h) and `snoo-mpich.pc` (MPICH's binary interface, compiled
//! with MPICH's mpi.h) into target/<profile>/; tests/c/mpi_pkgconfig.c is compiled with those
//! flags and run as a 2-rank job under snoo-run.

use snoo_tests::{cargo_build, workspace_root};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds both faces, the launcher and the daemon; returns `target/<profile>`.
fn build() -> PathBuf {
    cargo_build(&[
        "-p",
        "snoo-libmpi",
        "-p",
        "snoo-libmpi-abi",
        "--lib",
        "-p",
        "snoo-host",
        "--bins",
    ])
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `pkg-config ARGS` with PKG_CONFIG_PATH at `dir`; `None` if it fails (a package not found).
fn pkg_config(dir: &Path, args: &[&str]) -> Option<Vec<String>> {
    let o = Command::new("pkg-config")
        .args(args)
        .env("PKG_CONFIG_PATH", dir)
        .output()
        .expect("pkg-config is installed");
    o.status.success().then(|| {
        String::from_utf8(o.stdout)
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    })
}

/// Compiles tests/c/mpi_pkgconfig.c to `exe` with `flags`.
fn compile(exe: &Path, flags: &[String]) {
    let src = workspace_root().join("tests/c/mpi_pkgconfig.c");
    let o = Command::new("gcc")
        .args(["-O2", "-Wall", "-Werror", "-std=c11"])
        .arg(&src)
        .arg("-o")
        .arg(exe)
        .args(flags)
        .output()
        .expect("gcc is installed");
    assert!(
        o.status.success(),
        "gcc {flags:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Runs `exe` as a 2-rank job and checks every rank's line.
fn run_two_ranks(bin: &Path, exe: &Path) {
    let o = Command::new(bin.join("snoo-run"))
        .args(["-n", "2", "--timeout", "120"])
        .arg(exe)
        .env("SNOO_TIMEOUT", "30")
        .output()
        .expect("snoo-run");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "snoo-run -n 2 {}: {out}{}",
        exe.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    // The token goes 1000 -> rank 1 adds 1 -> back to rank 0; the ranks sum to 1.
    for r in 0..2 {
        let line = format!("[{r}] rank {r} of 2: token 1001 sum 1");
        assert!(out.contains(&line), "missing `{line}` in:\n{out}");
    }
}

/// A fresh directory per test (the tests run in parallel and each removes its own).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("snoo-mpi-build-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn standard_abi_program_built_with_pkg_config_runs_under_snoo_run() {
    let bin = build();
    let pc = bin.join("snoo-mpi-abi.pc");
    assert!(pc.exists(), "cargo build did not write {}", pc.display());
    let flags = pkg_config(&bin, &["--cflags", "--libs", "snoo-mpi-abi"])
        .expect("pkg-config finds snoo-mpi-abi in target/<profile>");
    let include = format!(
        "-I{}",
        workspace_root().join("abi/standard/include").display()
    );
    assert!(flags.contains(&include), "{flags:?} lacks {include}");
    assert!(flags.contains(&format!("-L{}", bin.display())), "{flags:?}");
    assert!(flags.contains(&"-lmpi_abi".to_string()), "{flags:?}");
    let dir = scratch("abi");
    let exe = dir.join("mpi-pkgconfig-abi");
    compile(&exe, &flags);
    run_two_ranks(&bin, &exe);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The MPICH face has no header of its own: MPICH's mpi.h (Debian's libmpich-dev, found as
/// `pkg-config mpich`) with snoo-mpich.pc's link flags. Skipped, saying so, without MPICH.
#[test]
fn mpich_abi_program_built_with_pkg_config_runs_under_snoo_run() {
    let bin = build();
    let libs = pkg_config(&bin, &["--libs", "snoo-mpich"])
        .expect("pkg-config finds snoo-mpich in target/<profile>");
    assert!(libs.contains(&"-lmpi".to_string()), "{libs:?}");
    let Some(cflags) = pkg_config(&bin, &["--cflags", "mpich"]) else {
        eprintln!("skipped: MPICH's mpi.h is not installed (pkg-config mpich fails)");
        return;
    };
    let dir = scratch("mpich");
    let exe = dir.join("mpi-pkgconfig-mpich");
    compile(&exe, &[cflags, libs].concat());
    run_two_ranks(&bin, &exe);
    let _ = std::fs::remove_dir_all(&dir);
}
