//! End-to-end tests of the `snoo-run` launcher, with /bin/sh as the rank program.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn snoo_run(args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_snoo-run"))
        .args(args)
        .output()
        .expect("run snoo-run");
    (out, start.elapsed())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_rank_gets_its_environment_and_prefix() {
    let (out, _) = snoo_run(&[
        "-n",
        "3",
        "--name",
        "launcher-env",
        "/bin/sh",
        "-c",
        "echo rank=$SNOO_RANK size=$SNOO_SIZE name=$SNOO_NAME; \
         echo err=$SNOO_RANK >&2; \
         test -S \"$SNOO_SOCKET\" && echo socket=$SNOO_SOCKET",
    ]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let mut sockets = Vec::new();
    for i in 0..3 {
        let want = format!("[{i}] rank={i} size=3 name=launcher-env");
        assert!(stdout.lines().any(|l| l == want), "{want:?} in\n{stdout}");
        let want = format!("[{i}] err={i}");
        assert!(stderr.lines().any(|l| l == want), "{want:?} in\n{stderr}");
        let prefix = format!("[{i}] socket=");
        let socket = stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("rank {i} saw no socket:\n{stdout}"));
        sockets.push(PathBuf::from(socket));
    }
    assert!(sockets.iter().all(|s| *s == sockets[0]));
    // The socket and its private directory are gone once the job is over.
    assert!(
        !sockets[0].exists(),
        "{} still exists",
        sockets[0].display()
    );
    assert!(!sockets[0].parent().unwrap().exists());
}

#[test]
fn mpiexec_spellings_and_genv_reach_every_rank() {
    let (out, _) = snoo_run(&[
        "-np",
        "2",
        "-bind-to",
        "core",
        "-genv",
        "SNOO_T_A",
        "one",
        "--genv",
        "SNOO_T_B",
        "two words",
        "/bin/sh",
        "-c",
        // The program's own arguments keep their spelling, mpiexec's options included.
        "echo size=$SNOO_SIZE a=$SNOO_T_A b=$SNOO_T_B any=$SNOO_ANY_NAME args=\"$*\"",
        "sh",
        "-np",
        "-genv",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for i in 0..2 {
        let want = format!("[{i}] size=2 a=one b=two words any=1 args=-np -genv");
        assert!(stdout.lines().any(|l| l == want), "{want:?} in\n{stdout}");
    }
    // A named pool is not the job's own: the name passed to SNOO_MPI_Init must match it.
    let (out, _) = snoo_run(&[
        "-n",
        "1",
        "--name",
        "x",
        "/bin/sh",
        "-c",
        "echo any=$SNOO_ANY_NAME",
    ]);
    assert_eq!(text(&out.stdout).trim(), "[0] any=");
}

#[test]
fn default_name_is_per_launcher() {
    let (out, _) = snoo_run(&["-n", "1", "/bin/sh", "-c", "echo $SNOO_NAME"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("[0] snoo-run-"), "{stdout}");
}

#[test]
fn failing_rank_sets_exit_code_and_kills_the_rest() {
    let (out, took) = snoo_run(&[
        "-n",
        "3",
        "/bin/sh",
        "-c",
        "if [ \"$SNOO_RANK\" = 2 ]; then exit 3; fi; sleep 300",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("snoo-run: rank 2 exited with status 3"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn rank_killed_by_signal_counts_as_128_plus_signal() {
    let (out, took) = snoo_run(&[
        "-n",
        "2",
        "/bin/sh",
        "-c",
        "if [ \"$SNOO_RANK\" = 1 ]; then kill -9 $$; fi; sleep 300",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(137), "{stderr}");
    assert!(
        stderr.contains("snoo-run: rank 1 killed by signal 9"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn missing_program_is_127() {
    let (out, _) = snoo_run(&["-n", "2", "snoo-no-such-program-xyz"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{stderr}");
    assert!(stderr.contains("snoo-no-such-program-xyz"), "{stderr}");
    let (out, _) = snoo_run(&["-n", "2", "/nonexistent/snoo-prog"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{stderr}");
    assert!(stderr.contains("/nonexistent/snoo-prog"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["-n", "0", "/bin/true"][..],
        &["-n", "2"][..],
        &["/bin/true"][..],
        &["-n", "2", "--size", "12Q", "/bin/true"][..],
        &["-n", "2", "--timeout", "soon", "/bin/true"][..],
        &["-n", "2", "--bind-to", "socket", "/bin/true"][..],
        &["-n", "1", "--genv", "A=B", "c", "/bin/true"][..],
        &["-n", "1", "-genv", "", "c", "/bin/true"][..],
        &["-n", "1", "--genv", "ONLY_NAME"][..],
    ] {
        let (out, _) = snoo_run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

/// The CPUs a process may run on, as /proc/self/status lists them.
fn cpus_allowed(status: &str) -> Option<&str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(str::trim)
}

#[test]
fn bind_to_core_pins_rank_i_to_the_ith_allowed_cpu() {
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let own = cpus_allowed(&own).expect("Cpus_allowed_list").to_string();
    // Expand "0-3,6" into [0, 1, 2, 3, 6].
    let mut cpus = Vec::new();
    for part in own.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        cpus.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap());
    }
    let n = cpus.len() + 1;
    let (out, _) = snoo_run(&[
        "-n",
        &n.to_string(),
        "--bind-to",
        "core",
        "/bin/sh",
        "-c",
        "grep Cpus_allowed_list /proc/self/status",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for i in 0..n {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("[{i}] ")))
            .unwrap_or_else(|| panic!("no line from rank {i}:\n{stdout}"));
        // One more rank than CPUs: the last one wraps around to the first CPU.
        let want = cpus[i % cpus.len()].to_string();
        assert_eq!(cpus_allowed(line), Some(want.as_str()), "rank {i}");
    }
    // Without the option, ranks keep the launcher's CPUs.
    let (out, _) = snoo_run(&[
        "-n",
        "1",
        "/bin/sh",
        "-c",
        "grep Cpus_allowed_list /proc/self/status",
    ]);
    let stdout = text(&out.stdout);
    let line = stdout.strip_prefix("[0] ").unwrap_or(&stdout);
    assert_eq!(cpus_allowed(line), Some(own.as_str()));
}

#[test]
fn explicit_size_is_accepted() {
    let (out, _) = snoo_run(&["-n", "2", "--size", "64M", "/bin/sh", "-c", "exit 0"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn timeout_ends_a_hung_job_with_124() {
    let (out, took) = snoo_run(&["-n", "2", "--timeout", "1", "/bin/sh", "-c", "sleep 300"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(124), "{stderr}");
    assert!(stderr.contains("timed out"), "{stderr}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn sigterm_to_the_launcher_stops_the_job() {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_snoo-run"))
        .args(["-n", "2", "/bin/sh", "-c", "echo up; sleep 300"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Once a rank has spoken, the launcher handles its signals.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert!(line.ends_with("] up\n"), "{line:?}");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn socket_option_uses_a_running_daemon() {
    use snoo_common::job::{JobLayout, MAX_RING};
    use snoo_host::{DaemonThread, PoolSpec, ServerConfig};
    let dir = std::env::temp_dir().join(format!("snoo-run-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("pool.sock");
    let size = JobLayout::pool_size_for(2, MAX_RING, 64);
    let spec = PoolSpec::new("ext", sock.clone(), size, 1, 2, 64, None).unwrap();
    let daemon = DaemonThread::spawn(ServerConfig::single(spec)).unwrap();
    let sock_s = sock.to_str().unwrap();
    let (out, _) = snoo_run(&[
        "-n",
        "2",
        "--name",
        "ext",
        "--socket",
        sock_s,
        "/bin/sh",
        "-c",
        "test -S \"$SNOO_SOCKET\" && echo at=$SNOO_SOCKET name=$SNOO_NAME",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for i in 0..2 {
        let want = format!("[{i}] at={sock_s} name=ext");
        assert!(stdout.lines().any(|l| l == want), "{want:?} in\n{stdout}");
    }
    // The launcher leaves a daemon it did not start alone.
    assert!(sock.exists());
    daemon.stop().unwrap();
    let (out, _) = snoo_run(&["-n", "2", "--socket", sock_s, "/bin/true"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(sock_s));
    let _ = std::fs::remove_dir_all(&dir);
}
