//! Rust SNOO_MPI programs as separate processes through `snoo-run`: the pingpong example moves
//! every size from 0 B to 256 MiB between two processes with content checks.

use snoo_tests::cargo_build;
use std::path::PathBuf;
use std::process::Command;

fn build() -> PathBuf {
    cargo_build(&[
        "-p",
        "snoo-host",
        "--bins",
        "-p",
        "snoo-mpi",
        "--example",
        "pingpong",
    ])
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn pingpong_processes_up_to_256_mib() {
    let bin = build();
    let o = Command::new(bin.join("snoo-run"))
        .args(["-n", "2", "--name", "pp", "--timeout", "600"])
        .arg(bin.join("examples/pingpong"))
        .args(["268435456", "4"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Rank 0 prints one row per size; the last is 256 MiB (a corrupted payload fails the run).
    assert!(out.contains("[0]    268435456"), "{out}");
    assert!(
        out.lines().filter(|l| l.starts_with("[0]   ")).count() >= 15,
        "{out}"
    );
}

#[test]
fn more_ranks_than_the_program_uses_join_and_leave() {
    let bin = build();
    let o = Command::new(bin.join("snoo-run"))
        .args(["-n", "3", "--timeout", "300"])
        .arg(bin.join("examples/pingpong"))
        .args(["4096", "10"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn init_joins_the_launchers_own_pool_under_any_name() {
    let bin = build();
    // pingpong passes SNOO_NAME to SNOO_MPI_Init: here a name the pool does not have.
    let run = |extra: &[&str]| {
        Command::new(bin.join("snoo-run"))
            .args(["-n", "2", "--timeout", "120"])
            .args(extra)
            .args(["-genv", "SNOO_NAME", "job"])
            .arg(bin.join("examples/pingpong"))
            .args(["4096", "4"])
            .output()
            .unwrap()
    };
    let o = run(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("[0]         4096"));
    // A pool named with --name is joined only under that name.
    let o = run(&["--name", "pp"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("no pool named \"job\""), "{err}");
}
