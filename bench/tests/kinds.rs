//! Every kind of `snoo-bench` runs briefly through `snoo-run` and prints a well-formed OSU table (or
//! JSON): the header lines, one row per size, positive numbers. No timing is asserted: this checks
//! the harness, not the performance (docs/benchmarks.md is where numbers go).

use snoo_bench::{parse_columns, parse_table, Kind};
use std::path::{Path, PathBuf};
use std::process::Command;

fn target_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// snoo-run lives in another package: build it in the profile these tests run in.
fn snoo_run() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", "snoo-host", "--bin", "snoo-run"]);
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap());
    if target_dir().ends_with("release") {
        cmd.arg("--release");
    }
    assert!(cmd.status().unwrap().success(), "cargo build snoo-run");
    target_dir().join("snoo-run")
}

fn run(name: &str, args: &[&str]) -> String {
    run_n(2, name, args)
}

/// `snoo-bench ARGS` in a job of `n` ranks.
fn run_n(n: u32, name: &str, args: &[&str]) -> String {
    // Pool-memory runs need heap room for their buffers (64 receive buffers in bw and bibw).
    let pool: &[&str] = if args.contains(&"--alloc-mem") {
        &["--size", "64M"]
    } else {
        &[]
    };
    let o = Command::new(snoo_run())
        .args(["-n", &n.to_string(), "--name", name, "--timeout", "120"])
        .args(pool)
        .arg(env!("CARGO_BIN_EXE_snoo-bench"))
        .args(args)
        .arg("--no-progress")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "snoo-bench {args:?}: {}\n{out}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn check(kind: Kind, args: &[&str], sizes: &[usize]) {
    check_n(2, kind, args, sizes);
}

fn check_n(n: u32, kind: Kind, args: &[&str], sizes: &[usize]) {
    let mut all = vec![kind.name()];
    all.extend_from_slice(args);
    let out = run_n(n, &format!("bench-{}-{n}", kind.name()), &all);
    let t = parse_table(&out).unwrap_or_else(|e| panic!("{}: {e}\n{out}", kind.name()));
    assert_eq!(t.title, format!("SNOO_MPI {} v1", kind.title()), "{out}");
    assert!(out.contains(&kind.column()), "{out}");
    let got: Vec<usize> = t.rows.iter().map(|r| r.0).collect();
    assert_eq!(got, sizes, "{out}");
    for (size, v) in &t.rows {
        assert!(
            v.is_finite() && *v > 0.0,
            "{} at {size}: {v}\n{out}",
            kind.name()
        );
    }
}

#[test]
fn latency_table() {
    check(
        Kind::Latency,
        &["--max", "4K", "--scale", "0.01"],
        &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096],
    );
}

#[test]
fn bw_table() {
    check(
        Kind::Bw,
        &["--min", "64", "--max", "256K", "--scale", "0.05"],
        &[
            64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144,
        ],
    );
}

#[test]
fn bibw_table() {
    check(
        Kind::Bibw,
        &["--min", "1K", "--max", "64K", "--scale", "0.05"],
        &[1024, 2048, 4096, 8192, 16384, 32768, 65536],
    );
}

#[test]
fn seed_table() {
    check(
        Kind::Seed,
        &["--total", "1M", "--max-msgs", "256", "--max", "1M"],
        &[64, 256, 1024, 4096, 16384, 65536, 262144, 1 << 20],
    );
}

#[test]
fn wake_table() {
    check(Kind::Wake, &["--scale", "0.05"], &[8]);
}

#[test]
fn exchange_table() {
    // Every rank sends to every other: 4 ranks, both values positive, per-rank = aggregate / 4.
    // (Each size starts with a checked exchange; a wrong delivery fails the run.)
    let out = run_n(
        4,
        "bench-exchange",
        &["exchange", "--max", "4K", "--scale", "0.01"],
    );
    let t = parse_columns(&out).unwrap_or_else(|e| panic!("exchange: {e}\n{out}"));
    assert_eq!(t.title, "SNOO_MPI Exchange Bandwidth Test v1", "{out}");
    assert!(out.contains(&Kind::Exchange.column()), "{out}");
    let got: Vec<usize> = t.rows.iter().map(|r| r.0).collect();
    assert_eq!(got, [1, 4, 16, 64, 256, 1024, 4096], "{out}");
    for (size, v) in &t.rows {
        assert_eq!(v.len(), 2, "{out}");
        assert!(v[0].is_finite() && v[0] > 0.0, "at {size}: {v:?}\n{out}");
        assert!(
            (v[1] * 4.0 - v[0]).abs() <= 0.05 + v[0] * 1e-3,
            "at {size}: {v:?}\n{out}"
        );
    }
}

#[test]
fn latency_with_sleeping_ranks() {
    // Ranks 2 and 3 wait in a receive from any source until rank 0 releases them: the job ends,
    // and rank 0's table is that of a 2-rank job.
    check_n(
        4,
        Kind::Latency,
        &["--max", "8", "--scale", "0.01"],
        &[1, 2, 4, 8],
    );
}

#[test]
fn json_output() {
    let out = run(
        "bench-json",
        &["latency", "--json", "--max", "8", "--scale", "0.01"],
    );
    let line = out
        .lines()
        .map(|l| l.split_once("] ").map_or(l, |x| x.1))
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line\n{out}"));
    assert!(
        line.starts_with(r#"{"implementation":"SNOO_MPI","kind":"latency","unit":"us","results":[{"size":1,"value":"#),
        "{line}"
    );
    assert_eq!(line.matches("\"size\":").count(), 4, "{line}");
    assert!(line.ends_with("}]}"), "{line}");
    assert!(!out.contains("# Size"), "--json prints no table\n{out}");
}

#[test]
fn pool_memory_tables() {
    // Sends from and receives into alloc_mem buffers: 32 KiB and up are single-copy rendezvous,
    // split between both ranks from 128 KiB (a window of them in bw and bibw queues behind each
    // one's FIN).
    check(
        Kind::Seed,
        &[
            "--alloc-mem",
            "--total",
            "1M",
            "--max-msgs",
            "64",
            "--min",
            "16K",
            "--max",
            "1M",
        ],
        &[16384, 65536, 262144, 1 << 20],
    );
    check(
        Kind::Bw,
        &[
            "--alloc-mem",
            "--min",
            "16K",
            "--max",
            "256K",
            "--scale",
            "0.05",
        ],
        &[16384, 32768, 65536, 131072, 262144],
    );
    check(
        Kind::Bibw,
        &[
            "--alloc-mem",
            "--min",
            "32K",
            "--max",
            "128K",
            "--scale",
            "0.05",
        ],
        &[32768, 65536, 131072],
    );
}

/// `limits` measures every machine limit the report shows, as a positive number, in text and in
/// JSON (`--quick`: briefly, so the numbers are rough; only their presence is checked).
#[test]
fn limits_reports_every_probe() {
    let keys = [
        "memcpy_mbps",
        "cacheline_ns",
        "ring_copy_mbps",
        "ring_copy_window_mbps",
        "split_copy_mbps",
        "eventfd_wake_idle_us",
        "eventfd_wake_us",
    ];
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_limits"))
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "limits {args:?}: {}", o.status);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let text = run(&["--quick"]);
    assert_eq!(text.lines().next(), Some("# Machine limits v2"), "{text}");
    for k in keys {
        let v: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {k} line in\n{text}"));
        assert!(v > 0.0 && v.is_finite(), "{k} = {v}");
    }
    let json = run(&["--quick", "--json"]);
    for k in keys {
        assert!(json.contains(&format!("\"{k}\":")), "{k} in {json}");
    }
}
