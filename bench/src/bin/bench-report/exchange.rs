//! The exchange section (every rank sends to every other rank, `bench/mpich/osu_exchange.c` and
//! `snoo-bench exchange`) and the 8-byte latency between ranks 0 and 1 with the job's other ranks
//! asleep in a receive (`snoo-bench latency` under more than 2 ranks).
//!
//! The exchange: one `osu_exchange` binary, built with `mpicc`, run under MPICH's `mpiexec`
//! (shared memory) and over SNOO's `libmpi.so.12` (`snoo-run`), and `snoo-bench exchange` (SNOO's
//! native API), interleaved, every rank bound to its own CPU, per-size medians and their spread;
//! goals: SNOO libmpi.so.12's aggregate bandwidth ≥ 1.0× MPICH's at 4 KiB and at 1 MiB per job
//! size, and the per-rank bandwidth at 16 ranks within 2× of that at 2 ranks at every size.
//! `BENCH_EXCHANGE_RANKS=2,4,8,16` measures more job sizes (default 2; give a machine with as many
//! CPUs). The sleepers: `snoo-bench latency` at 8 B with 2 ranks and with `BENCH_SLEEPERS_RANKS`
//! (default 16; 0 skips it), interleaved, ranks bound; goal: the many-rank latency ≤ 1.1× the
//! 2-rank one.

use crate::{cell, launcher, median, ratio, size_label, verdict, Ctx, RUN_TIMEOUT_S};
use snoo_bench::{parse_columns, parse_table, Table};
use std::fmt::Write as _;
use std::process::Command;
use std::time::Instant;

/// The exchange's implementations, in table order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    /// `osu_exchange` under MPICH's `mpiexec`.
    Mpich,
    /// The same binary over SNOO's `libmpi.so.12`.
    SnooLibmpi,
    /// `snoo-bench exchange` (the native API).
    Snoo,
}

const WHO: [Who; 3] = [Who::Mpich, Who::SnooLibmpi, Who::Snoo];

impl Who {
    fn label(self) -> &'static str {
        match self {
            Who::Mpich => "MPICH shm",
            Who::SnooLibmpi => "SNOO libmpi.so.12",
            Who::Snoo => "SNOO",
        }
    }
}

/// The exchange at one job size: per implementation (in `WHO` order) the medians of the
/// aggregate and the per-rank MB/s, and the aggregate's spread over the runs.
pub struct Exchange {
    ranks: u32,
    agg: [Option<Table>; 3],
    per_rank: [Option<Table>; 3],
    spread: [Option<Table>; 3],
}

/// The 8 B latency with 2 ranks and with `ranks` ranks, all beyond 1 asleep in a receive.
pub struct Sleepers {
    ranks: u32,
    /// The medians at 8 B, 2 ranks then `ranks` ranks.
    median: [Option<f64>; 2],
    /// Their spreads, in percent of the median.
    spread: [Option<f64>; 2],
    /// How many runs gave a value.
    runs: [usize; 2],
}

/// What this section measured.
pub struct Results {
    exchanges: Vec<Exchange>,
    sleepers: Option<Sleepers>,
}

/// A list of job sizes from the environment variable `var`, else `default`.
fn env_ranks(var: &str, default: &[u32]) -> Vec<u32> {
    std::env::var(var)
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<u32>| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

/// Runs `cmd` (`what`, for the log) and returns its stdout and a log line to complete with the
/// rows found, if it succeeded and ran the library it should: SNOO's (`Some(true)`) or another
/// (MPICH's). The native runs print no library line (`library: None`).
fn output(
    ctx: &mut Ctx,
    mut cmd: Command,
    what: &str,
    library: Option<bool>,
) -> Option<(String, String)> {
    eprintln!("bench-report: {what} ...");
    let t0 = Instant::now();
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => {
            let _ = writeln!(ctx.log, "- {what}: could not start: {e}");
            return None;
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if let Some(snoo) = library {
        let lib = stdout
            .lines()
            .find_map(|l| l.split_once("# library: ").map(|x| x.1));
        if snoo != lib.is_some_and(|l| l.starts_with("SNOO")) {
            let _ = writeln!(
                ctx.log,
                "- {what}: the wrong library ran ({lib:?}); dropped"
            );
            return None;
        }
    }
    let status = if out.status.code() == Some(124) {
        format!("killed after {RUN_TIMEOUT_S} s")
    } else {
        format!("{}", out.status)
    };
    let line = format!("- {what} (bound): {secs:.1} s, {status}");
    if !out.status.success() {
        let _ = writeln!(ctx.log, "{line}, 0 rows");
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some((stdout, line))
}

/// One exchange run with `n` ranks: (aggregate, per-rank) tables.
fn run_exchange(ctx: &mut Ctx, who: Who, n: u32) -> Option<(Table, Table)> {
    let mut cmd = launcher(ctx, who != Who::Mpich, n);
    match who {
        Who::Snoo => cmd.arg(ctx.bin.join("snoo-bench")).arg("exchange"),
        _ => cmd.arg(ctx.bin.join("osu_exchange")),
    };
    // OSU's counts make runs of milliseconds here, whose medians still spread by 20-60%: ten
    // times more, for both sides alike.
    cmd.args(["--scale", if ctx.quick { "0.05" } else { "10" }]);
    let library = match who {
        Who::Snoo => None,
        w => Some(w == Who::SnooLibmpi),
    };
    let what = format!("{} `exchange`, {n} ranks", who.label());
    let (stdout, line) = output(ctx, cmd, &what, library)?;
    match parse_columns(&stdout) {
        Ok(c) if c.rows.iter().all(|r| r.1.len() == 2) && !c.rows.is_empty() => {
            let _ = writeln!(ctx.log, "{line}, {} rows", c.rows.len());
            Some((c.column(0), c.column(1)))
        }
        Ok(_) => {
            let _ = writeln!(ctx.log, "{line}, no rows of SIZE AGGREGATE PER-RANK");
            None
        }
        Err(e) => {
            let _ = writeln!(ctx.log, "{line}, {e}");
            None
        }
    }
}

/// One `snoo-bench latency` run at 8 B with `n` ranks: the one-way time.
fn run_sleepers(ctx: &mut Ctx, n: u32) -> Option<f64> {
    let mut cmd = launcher(ctx, true, n);
    cmd.arg(ctx.bin.join("snoo-bench"))
        .args(["latency", "--min", "8", "--max", "8"]);
    // 100 000 round trips (a 25 ms run) rather than OSU's 10 000, as for the exchange.
    cmd.args(["--scale", if ctx.quick { "0.05" } else { "10" }]);
    let what = format!("SNOO `latency` at 8 B, {n} ranks ({} asleep)", n - 2);
    let (stdout, line) = output(ctx, cmd, &what, None)?;
    let v = parse_table(&stdout).ok().and_then(|t| t.get(8));
    let _ = writeln!(ctx.log, "{line}, {} rows", usize::from(v.is_some()));
    v
}

/// (max − min) / median of `v` in percent; `None` for no values.
fn spread_of(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let med = *v.get(v.len() / 2)?;
    (med > 0.0).then(|| (v[v.len() - 1] - v[0]) / med * 100.0)
}

/// Per size of the first run, the spread of the runs' values.
fn spread(runs: &[Table]) -> Option<Table> {
    let first = runs.first()?;
    let rows = first
        .rows
        .iter()
        .filter_map(|&(size, _)| {
            let v: Vec<f64> = runs.iter().filter_map(|t| t.get(size)).collect();
            Some((size, spread_of(&v)?))
        })
        .collect();
    Some(Table {
        title: first.title.clone(),
        rows,
    })
}

/// The exchange at every job size, then the sleepers, `repeats` times each, interleaved.
pub fn measure(ctx: &mut Ctx, repeats: usize) -> Results {
    let mut exchanges = Vec::new();
    for n in env_ranks("BENCH_EXCHANGE_RANKS", &[2]) {
        if n < 2 {
            continue;
        }
        let mut agg: [Vec<Table>; 3] = Default::default();
        let mut per: [Vec<Table>; 3] = Default::default();
        for _ in 0..repeats {
            for (i, who) in WHO.into_iter().enumerate() {
                if let Some((a, p)) = run_exchange(ctx, who, n) {
                    agg[i].push(a);
                    per[i].push(p);
                }
            }
        }
        exchanges.push(Exchange {
            ranks: n,
            spread: [spread(&agg[0]), spread(&agg[1]), spread(&agg[2])],
            agg: agg.map(|r| median(&r)),
            per_rank: per.map(|r| median(&r)),
        });
    }
    let sleepers = env_ranks("BENCH_SLEEPERS_RANKS", &[16])
        .into_iter()
        .find(|&n| n > 2)
        .map(|n| {
            let mut v: [Vec<f64>; 2] = Default::default();
            for _ in 0..repeats {
                v[0].extend(run_sleepers(ctx, 2));
                v[1].extend(run_sleepers(ctx, n));
            }
            let med = |v: &[f64]| {
                let mut v = v.to_vec();
                v.sort_by(|a, b| a.total_cmp(b));
                v.get(v.len() / 2).copied()
            };
            Sleepers {
                ranks: n,
                median: [med(&v[0]), med(&v[1])],
                spread: [spread_of(&v[0]), spread_of(&v[1])],
                runs: [v[0].len(), v[1].len()],
            }
        });
    Results {
        exchanges,
        sleepers,
    }
}

/// The smallest per-rank bandwidth ratio `b` / `a` over `a`'s sizes, and where.
fn min_ratio(a: &Table, b: &Table) -> Option<(f64, usize)> {
    a.rows
        .iter()
        .filter_map(|&(s, v)| ratio(b.get(s), Some(v)).map(|r| (r, s)))
        .min_by(|x, y| x.0.total_cmp(&y.0))
}

/// The goal rows: exchange at 4 KiB and 1 MiB per job size, per-rank bandwidth at 16 ranks
/// against 2, and the sleepers' latency.
pub fn goal_rows(r: &Results) -> String {
    let mut s = String::new();
    for e in &r.exchanges {
        for size in [4096, 1 << 20] {
            let at = |i: usize| e.agg[i].as_ref().and_then(|t| t.get(size));
            let x = ratio(at(1), at(0));
            let _ = writeln!(
                s,
                "| exchange {} ({} ranks): SNOO libmpi.so.12 aggregate bandwidth ≥ 1.0× MPICH shm | {}× ({} / {} MB/s) | {} |",
                size_label(size),
                e.ranks,
                cell(x),
                cell(at(1)),
                cell(at(0)),
                verdict(x.is_some_and(|x| x >= 1.0)),
            );
        }
    }
    let per = |n: u32, i: usize| {
        r.exchanges
            .iter()
            .find(|e| e.ranks == n)
            .and_then(|e| e.per_rank[i].as_ref())
    };
    if r.exchanges.iter().any(|e| e.ranks == 2) && r.exchanges.iter().any(|e| e.ranks == 16) {
        let w = per(2, 1).zip(per(16, 1)).and_then(|(a, b)| min_ratio(a, b));
        let m = per(2, 0).zip(per(16, 0)).and_then(|(a, b)| min_ratio(a, b));
        let _ = writeln!(
            s,
            "| exchange: SNOO libmpi.so.12 per-rank bandwidth at 16 ranks within 2× of that at 2 ranks (16 / 2 ≥ 0.5), every size | min {}× (at {}; MPICH shm: {}×) | {} |",
            cell(w.map(|w| w.0)),
            w.map_or("—".into(), |w| size_label(w.1)),
            cell(m.map(|m| m.0)),
            verdict(w.is_some_and(|w| w.0 >= 0.5)),
        );
    }
    if let Some(sl) = &r.sleepers {
        let x = ratio(sl.median[1], sl.median[0]);
        let _ = writeln!(
            s,
            "| one-way latency at 8 B between ranks 0 and 1 of {} ranks ({} asleep in a receive) ≤ 1.1× that of 2 ranks (SNOO) | {}× ({} / {} us) | {} |",
            sl.ranks,
            sl.ranks - 2,
            cell(x),
            cell(sl.median[1]),
            cell(sl.median[0]),
            verdict(x.is_some_and(|x| x <= 1.1)),
        );
    }
    s
}

/// The exchange tables, one per job size, and the sleepers' table.
pub fn tables(r: &Results) -> String {
    let mut s = String::new();
    if !r.exchanges.is_empty() {
        s.push_str(
            "\n## Exchange (every rank sends to every other rank, MB/s)\n\n\
Per iteration every rank posts a non-blocking receive from and a non-blocking send to every other \
rank, then waits for all (`bench/mpich/osu_exchange.c` under MPICH's `mpiexec` and over SNOO's \
`libmpi.so.12`, `snoo-bench exchange` for SNOO's native API), every rank bound to its own CPU. \
Aggregate: the bytes all ranks sent over the slowest rank's time; per rank: that over the ranks. \
Spread: (max − min) / median of the aggregate over the runs.\n",
        );
    }
    for e in &r.exchanges {
        let _ = write!(
            s,
            "\n### {} ranks\n\n\
| size | MPICH shm | SNOO libmpi.so.12 | SNOO | libmpi.so.12 / MPICH | SNOO / MPICH | MPICH per rank | libmpi.so.12 per rank | SNOO per rank | spread MPICH / libmpi.so.12 / SNOO |\n\
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            e.ranks
        );
        let sizes: Vec<usize> = e
            .agg
            .iter()
            .flatten()
            .next()
            .map(|t| t.rows.iter().map(|r| r.0).collect())
            .unwrap_or_default();
        for size in sizes {
            let get = |t: &[Option<Table>; 3], i: usize| t[i].as_ref().and_then(|t| t.get(size));
            let pct = |i: usize| get(&e.spread, i).map_or("—".into(), |p| format!("{p:.0}%"));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} |",
                size_label(size),
                cell(get(&e.agg, 0)),
                cell(get(&e.agg, 1)),
                cell(get(&e.agg, 2)),
                cell(ratio(get(&e.agg, 1), get(&e.agg, 0))),
                cell(ratio(get(&e.agg, 2), get(&e.agg, 0))),
                cell(get(&e.per_rank, 0)),
                cell(get(&e.per_rank, 1)),
                cell(get(&e.per_rank, 2)),
                pct(0),
                pct(1),
                pct(2),
            );
        }
    }
    if let Some(sl) = &r.sleepers {
        let _ = write!(
            s,
            "\n## Latency with sleeping ranks (8 B, one-way us)\n\n\
`snoo-bench latency --min 8 --max 8`: ping-pong between ranks 0 and 1 while every other rank \
waits in a blocking receive from any source (asleep on its doorbell) until rank 0 releases it \
after the measurement; ranks bound, 2-rank and {n}-rank runs interleaved.\n\n\
| ranks | median us | spread | runs |\n|---:|---:|---:|---:|\n\
| 2 | {} | {} | {} |\n| {n} | {} | {} | {} |\n",
            cell(sl.median[0]),
            sl.spread[0].map_or("—".into(), |p| format!("{p:.0}%")),
            sl.runs[0],
            cell(sl.median[1]),
            sl.spread[1].map_or("—".into(), |p| format!("{p:.0}%")),
            sl.runs[1],
            n = sl.ranks,
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[(usize, f64)]) -> Option<Table> {
        Some(Table {
            title: "t".into(),
            rows: rows.to_vec(),
        })
    }

    fn exchange(ranks: u32, mpich: f64, snoo: f64) -> Exchange {
        let agg = |v: f64| table(&[(4096, v), (1 << 20, v * 10.0)]);
        let per = |v: f64| table(&[(4096, v / ranks as f64), (1 << 20, v * 10.0 / ranks as f64)]);
        Exchange {
            ranks,
            agg: [agg(mpich), agg(snoo), agg(snoo)],
            per_rank: [per(mpich), per(snoo), per(snoo)],
            spread: [None, None, None],
        }
    }

    #[test]
    fn goal_rows_judge_ratios() {
        let r = Results {
            exchanges: vec![exchange(2, 100.0, 120.0), exchange(16, 400.0, 320.0)],
            sleepers: Some(Sleepers {
                ranks: 16,
                median: [Some(0.2), Some(0.21)],
                spread: [Some(5.0), Some(6.0)],
                runs: [5, 5],
            }),
        };
        let g = goal_rows(&r);
        let lines: Vec<&str> = g.lines().collect();
        assert_eq!(lines.len(), 6, "{g}");
        assert!(
            lines[0].contains("exchange 4 KiB (2 ranks)")
                && lines[0].contains("| 1.20× (120.00 / 100.00 MB/s) | met |"),
            "{g}"
        );
        assert!(
            lines[1].contains("exchange 1 MiB (2 ranks)") && lines[1].ends_with("| met |"),
            "{g}"
        );
        assert!(
            lines[2].contains("(16 ranks)")
                && lines[2].contains("0.80×")
                && lines[2].ends_with("**missed** |"),
            "{g}"
        );
        // Per rank: 320 / 16 = 20 against 120 / 2 = 60 is 0.33×, MPICH's 25 against 50 0.5×.
        assert!(
            lines[4].contains("min 0.33× (at 4 KiB; MPICH shm: 0.50×)")
                && lines[4].ends_with("**missed** |"),
            "{g}"
        );
        assert!(lines[5].contains("| 1.05× (0.21 / 0.20 us) | met |"), "{g}");
        let t = tables(&r);
        assert!(
            t.contains("### 16 ranks") && t.contains("| 16 | 0.21 | 6% | 5 |"),
            "{t}"
        );
    }

    #[test]
    fn spread_is_range_over_median() {
        assert_eq!(spread_of(&[9.0, 10.0, 11.0]), Some(20.0));
        assert_eq!(spread_of(&[]), None);
    }
}
