//! The OSU collective latency methods (`bench/mpich/osu_coll.c`): one binary, built with
//! `mpicc`, run under MPICH's `mpiexec` (shared memory) and over SNOO's `libmpi.so.12`
//! (`snoo-run`), ranks bound, interleaved, per-size medians; the tables and the goals of the
//! collectives issue (SNOO ≤ 0.8× MPICH's latency at every size for barrier, bcast, reduce and
//! allreduce, ≤ 1.0× for allgather and alltoall). `BENCH_COLL_RANKS=2,4,8,16` measures more job
//! sizes (the default is 2; give a machine with as many CPUs).

use crate::{cell, launcher, median, ratio, size_label, verdict, Ctx};
use snoo_bench::{parse_table, Table};
use std::fmt::Write as _;
use std::time::Instant;

/// Each method and its goal (the largest SNOO / MPICH latency ratio allowed).
pub const KINDS: [(&str, f64); 6] = [
    ("barrier", 0.8),
    ("bcast", 0.8),
    ("reduce", 0.8),
    ("allreduce", 0.8),
    ("allgather", 1.0),
    ("alltoall", 1.0),
];

/// One method at one job size: the medians under MPICH and over SNOO.
pub struct Coll {
    kind: &'static str,
    goal: f64,
    ranks: u32,
    mpich: Option<Table>,
    snoo: Option<Table>,
}

/// The job sizes to measure (`BENCH_COLL_RANKS`, default 2).
fn job_sizes() -> Vec<u32> {
    std::env::var("BENCH_COLL_RANKS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<u32>| !v.is_empty())
        .unwrap_or_else(|| vec![2])
}

/// One run of `kind` with `n` ranks, each bound to its own CPU.
fn run(ctx: &mut Ctx, snoo: bool, kind: &str, n: u32) -> Option<Table> {
    let mut cmd = launcher(ctx, snoo, n);
    cmd.arg(ctx.bin.join("osu_coll")).arg(kind);
    if ctx.quick {
        cmd.args(["--max", "4096"]);
    }
    let who = if snoo {
        "SNOO libmpi.so.12"
    } else {
        "MPICH shm"
    };
    eprintln!("bench-report: {who} osu_{kind}, {n} ranks ...");
    let t0 = Instant::now();
    let out = cmd.output().ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let library = stdout
        .lines()
        .find_map(|l| l.split_once("# library: ").map(|x| x.1));
    if snoo != library.is_some_and(|l| l.starts_with("SNOO")) {
        let _ = writeln!(
            ctx.log,
            "- {who} `osu_{kind}` ({n} ranks): the wrong library ran ({library:?}); dropped"
        );
        return None;
    }
    let t = parse_table(&stdout).ok();
    let _ = writeln!(
        ctx.log,
        "- {who} `osu_{kind}` ({n} ranks, bound): {:.1} s, {}, {} rows",
        t0.elapsed().as_secs_f64(),
        out.status,
        t.as_ref().map_or(0, |t| t.rows.len())
    );
    t
}

/// Every method at every job size, `repeats` times each, MPICH and SNOO alternating.
pub fn measure(ctx: &mut Ctx, repeats: usize) -> Vec<Coll> {
    let mut all = Vec::new();
    for n in job_sizes() {
        for (kind, goal) in KINDS {
            let (mut m, mut s) = (Vec::new(), Vec::new());
            for _ in 0..repeats {
                m.extend(run(ctx, false, kind, n));
                s.extend(run(ctx, true, kind, n));
            }
            all.push(Coll {
                kind,
                goal,
                ranks: n,
                mpich: median(&m),
                snoo: median(&s),
            });
        }
    }
    all
}

/// The largest SNOO / MPICH ratio over the sizes, and where.
fn worst(c: &Coll) -> Option<(f64, usize)> {
    let (m, s) = (c.mpich.as_ref()?, c.snoo.as_ref()?);
    s.rows
        .iter()
        .filter_map(|&(size, v)| ratio(Some(v), m.get(size)).map(|r| (r, size)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// The goal rows, one per method and job size.
pub fn goal_rows(all: &[Coll]) -> String {
    let mut s = String::new();
    for c in all {
        let w = worst(c);
        let _ = writeln!(
            s,
            "| osu_{} ({} ranks): SNOO libmpi.so.12 ≤ {:.1}× MPICH shm latency at every size | worst {} at {} | {} |",
            c.kind,
            c.ranks,
            c.goal,
            cell(w.map(|x| x.0)),
            w.map_or("—".into(), |x| size_label(x.1)),
            verdict(w.is_some_and(|x| x.0 <= c.goal)),
        );
    }
    s
}

/// A table per method and job size: average latency per size under both, and the ratio.
pub fn tables(all: &[Coll]) -> String {
    let mut s = String::from(
        "\n## Collectives (OSU methods: average latency per call, us)\n\n\
`bench/mpich/osu_coll.c`, built once with `mpicc`, run under MPICH's `mpiexec` and over SNOO's \
`libmpi.so.12` under `snoo-run`, every rank bound to its own CPU; sizes are bytes per rank (per \
pair for alltoall), reductions are MPI_SUM over MPI_INT.\n",
    );
    for c in all {
        let _ = write!(
            s,
            "\n### osu_{}, {} ranks\n\n| size | MPICH shm us | SNOO libmpi.so.12 us | SNOO / MPICH |\n|---:|---:|---:|---:|\n",
            c.kind, c.ranks
        );
        let sizes: Vec<usize> = c
            .mpich
            .as_ref()
            .or(c.snoo.as_ref())
            .map(|t| t.rows.iter().map(|r| r.0).collect())
            .unwrap_or_default();
        for size in sizes {
            let m = c.mpich.as_ref().and_then(|t| t.get(size));
            let v = c.snoo.as_ref().and_then(|t| t.get(size));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                size_label(size),
                cell(m),
                cell(v),
                cell(ratio(v, m))
            );
        }
    }
    s
}
