//! The C ABI: tests/c/pingpong.c compiled with gcc against snoo_mpi.h and each library (shared and
//! static), run as separate processes — 2 and 4 ranks — on the real daemon; tests/c/bad_input.c
//! (every bad argument and its documented code), also under AddressSanitizer and valgrind.

use snoo_common::job::{JobLayout, MAX_RING};
use snoo_tests::{cargo_build, workspace_root as workspace};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Compiles the C test: against the shared library with pkg-config's flags (snoo-mpi.pc is
/// written beside the libraries), or against libsnoo_mpi.a.
/// Builds the libraries and the launcher and daemon; returns `target/<profile>`.
fn build() -> PathBuf {
    cargo_build(&["-p", "snoo-mpi-capi", "--lib", "-p", "snoo-host", "--bins"])
        .unwrap_or_else(|e| panic!("{e}"))
}

fn compile(libdir: &Path, out: &Path, static_lib: bool) {
    let o = compile_c("pingpong.c", libdir, out, static_lib, &[]);
    assert!(
        o.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Compiles `tests/c/SRC` with `extra` gcc flags; returns gcc's output (the caller checks it).
fn compile_c(
    src: &str,
    libdir: &Path,
    out: &Path,
    static_lib: bool,
    extra: &[&str],
) -> std::process::Output {
    let src = workspace().join("tests/c").join(src);
    let mut cmd = Command::new("gcc");
    cmd.args(["-O2", "-Wall", "-Werror", "-std=c11"])
        .args(extra)
        .arg(&src)
        .arg("-o")
        .arg(out);
    if static_lib {
        cmd.arg("-I").arg(workspace().join("capi/include"));
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
    cmd.output().expect("gcc is installed")
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

/// Compiles tests/c/bad_input.c against the shared library (with `extra` gcc flags) into a fresh
/// directory named after `tag`.
fn bad_input_program(bin: &Path, tag: &str, extra: &[&str]) -> (PathBuf, std::process::Output) {
    let dir = std::env::temp_dir().join(format!("snoo-c-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("bad_input");
    let o = compile_c("bad_input.c", bin, &exe, false, extra);
    (exe, o)
}

/// Runs `cmd` (the program, or a wrapper and the program) as a 2-rank job under snoo-run and checks
/// that both ranks got through every bad call. The pool is named, so that a wrong name passed to
/// SNOO_MPI_Init is refused (snoo-run's unnamed pool takes any name).
fn run_bad_input(bin: &Path, cmd: &[&std::ffi::OsStr], env: &[(&str, &str)]) {
    let o = Command::new(bin.join("snoo-run"))
        .args(["-n", "2", "--timeout", "300", "--name", "bad-input"])
        .args(cmd)
        .env("SNOO_TIMEOUT", "120")
        .envs(env.iter().copied())
        .output()
        .expect("snoo-run");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{cmd:?}: {out}{err}");
    // Every refused Init ran with SNOO_QUIET=1, except a second Init, which prints nothing.
    assert!(
        !out.contains("SNOO_MPI_Init:") && !err.contains("SNOO_MPI_Init:"),
        "{out}{err}"
    );
    for r in 0..2 {
        assert!(
            out.contains(&format!("[{r}] rank {r} of 2: ok after")),
            "rank {r} did not finish:\n{out}{err}"
        );
    }
}

/// Every bad input of the C API gets its documented SNOO_MPI_ERR_* code and a detail naming the
/// call, and loses nothing: a good message each way after each bad call, none stray at the end.
#[test]
fn bad_input_gets_documented_codes_and_loses_nothing() {
    let bin = build();
    let (exe, o) = bad_input_program(&bin, "bad-input", &[]);
    assert!(
        o.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    run_bad_input(&bin, &[exe.as_os_str()], &[]);
}

/// The same under AddressSanitizer (gcc -fsanitize=address, against the shared library): no
/// invalid access or leak, in the program or through the library's use of its buffers.
#[test]
fn bad_input_is_clean_under_address_sanitizer() {
    let bin = build();
    let flags = ["-g", "-fsanitize=address", "-fno-omit-frame-pointer"];
    let (exe, o) = bad_input_program(&bin, "bad-input-asan", &flags);
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        // Only a gcc without AddressSanitizer (no libasan) is a reason to skip; anything else fails.
        if err.contains("asan") {
            eprintln!("SKIPPED: gcc cannot build with -fsanitize=address here:\n{err}");
            return;
        }
        panic!("gcc -fsanitize=address: {err}");
    }
    run_bad_input(
        &bin,
        &[exe.as_os_str()],
        &[(
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=0:exitcode=97",
        )],
    );
}

/// The same under valgrind's memcheck.
#[test]
fn bad_input_is_clean_under_valgrind() {
    let bin = build();
    let (exe, o) = bad_input_program(&bin, "bad-input-valgrind", &["-g"]);
    assert!(
        o.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let cmd = ["valgrind", "-q", "--error-exitcode=99"].map(std::ffi::OsStr::new);
    run_bad_input(&bin, &[cmd[0], cmd[1], cmd[2], exe.as_os_str()], &[]);
}

/// A C program only gets a code from SNOO_MPI_Init; the reason is printed to stderr (one line,
/// the same text as SNOO_MPI_Error_detail) unless SNOO_QUIET is set.
#[test]
fn init_failure_is_explained_on_stderr_unless_quiet() {
    let bin = build();
    let (exe, o) = bad_input_program(&bin, "init-detail", &[]);
    assert!(
        o.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (_d, sock) = snoo_tests::job_daemon("cinit", 2, 64 << 10);
    let nowhere = Path::new("/nonexistent/snoo.sock");
    let cases: [(&Path, &str, i32, &str); 3] = [
        (nowhere, "2", 11, "SNOO_MPI_Init: no pool named \"cinit\""),
        (&sock, "200", 12, "(snoo-hostd --size "),
        (&sock, "2x", 17, "SNOO_SIZE=\"2x\""),
    ];
    for (socket, size, code, want) in cases {
        for quiet in [None, Some("1"), Some("0")] {
            let mut cmd = Command::new(&exe);
            cmd.args(["init-fails", &code.to_string()])
                .env("SNOO_SOCKET", socket)
                .env("SNOO_NAME", "cinit")
                .env("SNOO_SIZE", size)
                .env("SNOO_TIMEOUT", "10")
                .env_remove("SNOO_QUIET")
                .env_remove("SNOO_DEVICE")
                .env_remove("SNOO_RANK");
            if let Some(q) = quiet {
                cmd.env("SNOO_QUIET", q);
            }
            let o = cmd.output().unwrap();
            let out = String::from_utf8_lossy(&o.stdout);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "SNOO_SIZE={size}: {out}{err}");
            let detail = out
                .lines()
                .find_map(|l| l.strip_prefix("detail: "))
                .unwrap_or_else(|| panic!("no detail in {out}"));
            assert!(detail.contains(want), "detail {detail:?} lacks {want:?}");
            if quiet == Some("1") {
                assert_eq!(err, "", "SNOO_QUIET=1 must silence Init");
            } else {
                assert_eq!(err.trim_end(), detail, "stderr (SNOO_QUIET={quiet:?})");
            }
        }
    }
}
