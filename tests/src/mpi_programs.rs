//! The MPI test programs of `tests/mpi/`: building them the three ways users do — Debian's `mpicc`
//! (MPICH's ABI, `libmpi.so.12`), MPICH 5's `mpicc_abi` and SNOO's `snoo-mpicc` (the MPI 5.0
//! standard ABI, `libmpi_abi.so.1`) — and running one under real MPICH's `mpiexec` or under
//! `snoo-run`. A program prints on rank 0 only what any correct MPI must give, so the two runs'
//! outputs are compared as they are.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

use crate::{cargo_build, workspace_root};

/// How a program is built, and so which MPICH runs it for comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// Debian's `mpicc`: links `libmpi.so.12`; MPICH is Debian's (4.0) `mpiexec`.
    Mpicc,
    /// The same, with AddressSanitizer.
    MpiccAsan,
    /// MPICH 5's `mpicc_abi` (the `mpich` wheel): links `libmpi_abi.so.1`; MPICH is the wheel's.
    MpiccAbi,
    /// SNOO's `snoo-mpicc`: links SNOO's `libmpi_abi.so.1`, and the wheel's MPICH runs it over
    /// its own `libmpi_abi.so.1` (the standard ABI makes them interchangeable).
    SnooMpicc,
}

impl Build {
    /// Every way, for tests that cover them all.
    pub const ALL: [Build; 3] = [Build::Mpicc, Build::MpiccAbi, Build::SnooMpicc];

    fn name(self) -> &'static str {
        match self {
            Build::Mpicc => "mpicc",
            Build::MpiccAsan => "mpicc-asan",
            Build::MpiccAbi => "mpicc_abi",
            Build::SnooMpicc => "snoo-mpicc",
        }
    }
}

/// SNOO's libraries, launcher and compiler wrapper, built once per test process; `target/<profile>`.
pub fn snoo_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        cargo_build(&[
            "-p",
            "snoo-libmpi",
            "-p",
            "snoo-libmpi-abi",
            "-p",
            "snoo-host",
            "--bins",
            "--lib",
        ])
        .unwrap_or_else(|e| panic!("{e}"))
    })
}

/// MPICH 5 from the `mpich` wheel, unpacked by `tests/scripts/fetch-mpich-abi.sh` (which
/// `scripts/test.sh` runs): `target/mpich-abi`.
pub fn mpich_abi_dir() -> PathBuf {
    let dir = workspace_root().join("target/mpich-abi");
    if !dir.join("bin/mpicc_abi").exists() {
        let st = Command::new("sh")
            .arg(workspace_root().join("tests/scripts/fetch-mpich-abi.sh"))
            .status();
        assert!(
            st.is_ok_and(|s| s.success()) && dir.join("bin/mpicc_abi").exists(),
            "MPICH 5's mpicc_abi is missing: run tests/scripts/fetch-mpich-abi.sh (needs pip and \
             network once)"
        );
    }
    dir
}

/// Builds `tests/mpi/<prog>.c` (`prog` may name a subfolder: `collectives/vector`) the `how` way
/// into a fresh file under the temp dir; returns it.
pub fn build(prog: &str, how: Build) -> PathBuf {
    let src = workspace_root().join("tests/mpi").join(format!("{prog}.c"));
    let dir = std::env::temp_dir().join(format!("snoo-mpi-programs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = dir.join(format!("{}-{}", prog.replace('/', "-"), how.name()));
    let cc = match how {
        Build::Mpicc | Build::MpiccAsan => PathBuf::from("mpicc"),
        Build::MpiccAbi => mpich_abi_dir().join("bin/mpicc_abi"),
        Build::SnooMpicc => snoo_dir().join("snoo-mpicc"),
    };
    let mut cmd = Command::new(&cc);
    // -Wno-stringop-overflow: gcc reads MPI_STATUSES_IGNORE, a constant pointer, as an array.
    cmd.args(["-O1", "-g", "-Wall", "-Werror", "-Wno-stringop-overflow"]);
    if how == Build::MpiccAsan {
        cmd.args(["-fsanitize=address", "-fno-omit-frame-pointer"]);
    }
    let o = cmd
        .arg("-I")
        .arg(workspace_root().join("tests/mpi"))
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", cc.display()));
    assert!(
        o.status.success(),
        "{} {prog}.c failed:\n{}",
        how.name(),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// What one run gave: its exit status and rank 0's output (without snoo-run's `[0] ` prefix).
#[derive(Debug)]
pub struct Run {
    /// The launcher's exit status (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Rank 0's standard output lines.
    pub stdout: String,
    /// Standard error, every rank's.
    pub stderr: String,
}

impl Run {
    fn of(o: Output, snoo: bool) -> Run {
        let stdout = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| match snoo {
                true => l.strip_prefix("[0] ").unwrap_or(l),
                false => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        Run {
            code: o.status.code(),
            stdout,
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Panics with the run's output unless it exited 0.
    pub fn assert_ok(&self, what: &str) {
        assert!(
            self.code == Some(0),
            "{what}: exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
    }
}

/// One job at a time in this process: MPICH's ranks spin while they wait, so two jobs of four
/// ranks on a small machine would starve each other (and SNOO's joins) for seconds.
static ONE_JOB: Mutex<()> = Mutex::new(());

/// No run may hang a test: each is killed after this long.
const RUN_LIMIT: &str = "120";

/// Runs `bin` with `n` ranks under real MPICH (Debian's for `mpicc` builds, MPICH 5's otherwise).
pub fn run_mpich(bin: &Path, n: u32, how: Build) -> Run {
    let _one = ONE_JOB.lock().unwrap_or_else(|e| e.into_inner());
    let mut cmd = Command::new("timeout");
    cmd.arg(RUN_LIMIT);
    match how {
        Build::Mpicc | Build::MpiccAsan => {
            cmd.arg("mpiexec");
        }
        Build::MpiccAbi | Build::SnooMpicc => {
            let dir = mpich_abi_dir();
            cmd.arg(dir.join("bin/mpiexec"))
                .env("LD_LIBRARY_PATH", dir.join("lib"));
        }
    }
    if how == Build::MpiccAsan {
        // MPICH's own allocations at exit are not the program's leaks.
        cmd.env("ASAN_OPTIONS", "detect_leaks=0");
    }
    let o = cmd
        .args(["-n", &n.to_string()])
        .arg(bin)
        .stdin(Stdio::null())
        .output()
        .expect("mpiexec runs");
    Run::of(o, false)
}

/// Runs `bin` with `n` ranks under `snoo-run`, with `wrap` (e.g. valgrind) before the program.
pub fn run_snoo(bin: &Path, n: u32, wrap: &[&str]) -> Run {
    let _one = ONE_JOB.lock().unwrap_or_else(|e| e.into_inner());
    let mut cmd = Command::new("timeout");
    cmd.arg(RUN_LIMIT)
        .arg(snoo_dir().join("snoo-run"))
        .args(["-n", &n.to_string()])
        .args(wrap)
        .arg(bin)
        .env("ASAN_OPTIONS", "detect_leaks=0")
        .stdin(Stdio::null());
    Run::of(cmd.output().expect("snoo-run runs"), true)
}

/// The line a program prints last when every check passed: `<name>: ok`, its file's name.
pub fn ok_line(prog: &str) -> String {
    format!("{}: ok", prog.rsplit('/').next().unwrap_or(prog))
}

/// Runs `bin` under MPICH and under SNOO with `n` ranks; panics unless both succeed with the same
/// output. Returns that output.
pub fn same_under_both(prog: &str, bin: &Path, n: u32, how: Build) -> String {
    let what = format!("{prog} ({}, {n} ranks)", how.name());
    let m = run_mpich(bin, n, how);
    m.assert_ok(&format!(
        "{what} under MPICH (a test that fails there is wrong)"
    ));
    let s = run_snoo(bin, n, &[]);
    s.assert_ok(&format!("{what} under SNOO"));
    assert_eq!(
        s.stdout, m.stdout,
        "{what}: SNOO's output (left) differs from MPICH's (right)"
    );
    assert!(!s.stdout.is_empty(), "{what}: printed nothing");
    s.stdout
}

/// Builds each of `programs` the `how` way and runs it at every size of `ranks` under both
/// ([`same_under_both`]); each must end with its [`ok_line`].
pub fn every_program_and_size(programs: &[&str], ranks: std::ops::RangeInclusive<u32>, how: Build) {
    for &prog in programs {
        let bin = build(prog, how);
        for n in ranks.clone() {
            let out = same_under_both(prog, &bin, n, how);
            assert!(
                out.lines().last().is_some_and(|l| l == ok_line(prog)),
                "{prog} ({how:?}, {n} ranks) did not finish: {out}"
            );
        }
    }
}

/// Each of `programs` built with Debian's `mpicc`, run with `n` ranks under valgrind with SNOO's
/// library: no invalid read or write, no use of uninitialised memory, and its [`ok_line`].
pub fn under_valgrind(programs: &[&str], n: u32) {
    for &prog in programs {
        let bin = build(prog, Build::Mpicc);
        let r = run_snoo(
            &bin,
            n,
            &[
                "valgrind",
                "--quiet",
                "--error-exitcode=99",
                "--leak-check=no",
            ],
        );
        r.assert_ok(&format!("{prog} under valgrind"));
        assert!(r.stdout.ends_with(&ok_line(prog)), "{}", r.stdout);
    }
}
