//! Runs every benchmark in one go — SNOO_MPI (`snoo-bench` under `snoo-run`), MPICH over shared
//! memory and MPICH restricted to TCP (`bench/mpich/osu_like.c` under `mpiexec`), the same
//! `osu_like` binary over SNOO's `libmpi.so.12` (under `snoo-run`), and the machine's limits —
//! then writes `docs/benchmarks.md` and `docs/benchmarks.png`.
//!
//! ```text
//! cargo build --release -p snoo-host -p snoo-bench -p snoo-libmpi && target/release/bench-report [--quick]
//! ```
//! (`scripts/bench.sh` does both, and installs MPICH.) The programs are taken from the directory
//! of this executable; `osu_like`, `osu_coll` and `osu_exchange` are compiled there with `mpicc`.
//!
//! `BENCH_ONLY=SECTION[,SECTION…]` runs only those sections — `limits` (the machine's limits),
//! `p2p` (latency, bw, bibw, seed and the wake-up), `collectives`, `exchange` (the exchange and the
//! latency with sleeping ranks) — and prints their report on stdout instead of writing
//! `docs/benchmarks.md` and its plot. `BENCH_COLL_RANKS`, `BENCH_EXCHANGE_RANKS` and
//! `BENCH_SLEEPERS_RANKS` choose job sizes (see collectives.rs and exchange.rs).

mod collectives;
mod exchange;

use plotters::prelude::*;
use snoo_bench::{parse_table, Kind, Table};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Messages per size at most in MPICH-over-TCP's `seed` runs: at 64 B, TCP moves about 8 MB/s,
/// so a full GiB would take over two minutes per run (SNOO and MPICH shm move the full GiB).
const SEED_TCP_MAX_MSGS: usize = 65536;
/// Runs of each implementation and kind; tables show the per-size median.
const REPEATS: usize = 5;
/// A single benchmark run taking longer than this is killed and reported as missing.
const RUN_TIMEOUT_S: u32 = 240;
/// MPICH restricted to TCP: Debian's MPICH is ch4:ucx; NOLOCAL makes ch4 treat the peer as remote
/// (no shared-memory module), and UCX_TLS leaves UCX only its TCP transport.
const TCP_ENV: [(&str, &str); 2] = [("MPIR_CVAR_NOLOCAL", "1"), ("UCX_TLS", "tcp,self")];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Imp {
    Snoo,
    MpichShm,
    MpichTcp,
    /// SNOO with `SNOO_MPI_Alloc_mem` buffers on both sides (single-copy rendezvous, split
    /// between both ranks from 128 KiB), seed only.
    SnooPool,
    /// MPICH's `osu_like` binary, unchanged, over SNOO's `libmpi.so.12` (`snoo-run` loads it).
    SnooLibmpi,
}

/// Pool for the `SnooPool` runs of `kind`: room in each rank's heap for its buffers. Seed needs
/// one 4 MiB buffer a rank (64M: 4 MiB rings leave each rank a heap of about 28 MiB); osu_bw a
/// 4 MiB send buffer and 64 receive buffers of 4 MiB (1G: about 500 MiB a rank).
fn pool_run_size(kind: Kind) -> &'static str {
    match kind {
        Kind::Bw | Kind::Bibw => "1G",
        _ => "64M",
    }
}

/// The kinds that also run with `SnooPool`.
const POOL_KINDS: [Kind; 2] = [Kind::Bw, Kind::Seed];

impl Imp {
    fn label(self) -> &'static str {
        match self {
            Imp::Snoo => "SNOO",
            Imp::MpichShm => "MPICH shm",
            Imp::MpichTcp => "MPICH TCP",
            Imp::SnooPool => "SNOO, Alloc_mem buffers",
            Imp::SnooLibmpi => "SNOO libmpi.so.12",
        }
    }
}

struct Ctx {
    root: PathBuf,
    bin: PathBuf,
    quick: bool,
    log: String,
    /// The sections measured (every one unless `BENCH_ONLY` chose).
    only: Vec<Section>,
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

impl Ctx {
    fn args(&self, imp: Imp, kind: Kind) -> Vec<String> {
        let mut a = vec![kind.name().to_string()];
        if self.quick {
            a.extend(["--scale".into(), "0.05".into()]);
        }
        if kind == Kind::Seed {
            let total = if self.quick { "64M" } else { "1G" };
            a.extend(["--total".into(), total.into()]);
            let max_msgs = match (self.quick, imp) {
                (true, _) => Some(1024),
                (false, Imp::MpichTcp) => Some(SEED_TCP_MAX_MSGS),
                (false, _) => None,
            };
            if let Some(m) = max_msgs {
                a.extend(["--max-msgs".into(), m.to_string()]);
            }
        }
        if imp == Imp::SnooPool {
            a.push("--alloc-mem".into());
        }
        a
    }

    /// One run of `kind`; with `bind`, each rank pinned to its own CPU (`snoo-run --bind-to core`,
    /// `mpiexec -bind-to core`).
    fn run(&mut self, imp: Imp, kind: Kind, bind: bool) -> Option<Table> {
        let mut cmd = Command::new("timeout");
        cmd.arg(RUN_TIMEOUT_S.to_string());
        match imp {
            Imp::Snoo | Imp::SnooPool | Imp::SnooLibmpi => {
                cmd.arg(self.bin.join("snoo-run"))
                    .args(["-n", "2", "--name", "bench"]);
                if bind {
                    cmd.args(["--bind-to", "core"]);
                }
                if imp == Imp::SnooPool {
                    cmd.args(["--size", pool_run_size(kind)]);
                }
                cmd.arg(self.bin.join(if imp == Imp::SnooLibmpi {
                    "osu_like"
                } else {
                    "snoo-bench"
                }));
            }
            Imp::MpichShm | Imp::MpichTcp => {
                cmd.args(["mpiexec", "-n", "2"]);
                if bind {
                    cmd.args(["-bind-to", "core"]);
                }
                if imp == Imp::MpichTcp {
                    for (k, v) in TCP_ENV {
                        cmd.args(["-genv", k, v]);
                    }
                }
                cmd.arg(self.bin.join("osu_like"));
            }
        }
        cmd.args(self.args(imp, kind));
        let placement = if bind { "ranks bound" } else { "unbound" };
        eprintln!(
            "bench-report: {} {} ({placement}) ...",
            imp.label(),
            kind.name()
        );
        let t0 = Instant::now();
        let out = cmd.output();
        let secs = t0.elapsed().as_secs_f64();
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                let _ = writeln!(
                    self.log,
                    "- {} {}: could not start: {e}",
                    imp.label(),
                    kind.name()
                );
                return None;
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let status = if out.status.code() == Some(124) {
            format!("killed after {RUN_TIMEOUT_S} s")
        } else {
            format!("{}", out.status)
        };
        // The same binary runs over both libraries: make sure the intended one ran.
        let library = stdout
            .lines()
            .find_map(|l| l.split_once("# library: ").map(|x| x.1));
        if imp == Imp::SnooLibmpi && !library.is_some_and(|l| l.starts_with("SNOO")) {
            let _ = writeln!(
                self.log,
                "- {} `{}`: not SNOO's library ({library:?}); result dropped",
                imp.label(),
                kind.name()
            );
            return None;
        }
        let t = parse_table(&stdout).ok();
        let rows = t.as_ref().map_or(0, |t| t.rows.len());
        let _ = writeln!(
            self.log,
            "- {} `{}` ({placement}): {secs:.1} s, {status}, {rows} rows",
            imp.label(),
            kind.name(),
        );
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        }
        t
    }
}

/// The command that runs `n` ranks each bound to its own CPU, under SNOO's launcher or MPICH's.
pub(crate) fn launcher(ctx: &Ctx, snoo: bool, n: u32) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.arg(RUN_TIMEOUT_S.to_string());
    let n_s = n.to_string();
    if snoo {
        cmd.arg(ctx.bin.join("snoo-run")).args([
            "-n",
            &n_s,
            "--name",
            "bench",
            "--bind-to",
            "core",
        ]);
    } else {
        cmd.args(["mpiexec", "-n", &n_s, "-bind-to", "core"]);
    }
    cmd
}

/// The per-size median of several runs' tables (sizes of the first run; a size missing from a run
/// is skipped there).
fn median(runs: &[Table]) -> Option<Table> {
    let first = runs.first()?;
    let rows = first
        .rows
        .iter()
        .map(|&(size, _)| {
            let mut v: Vec<f64> = runs.iter().filter_map(|t| t.get(size)).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            (size, v[v.len() / 2])
        })
        .collect();
    Some(Table {
        title: first.title.clone(),
        rows,
    })
}

fn cell(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.2}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn size_label(s: usize) -> String {
    match s {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

/// The medians of SNOO's native API, MPICH shm, MPICH TCP and SNOO's libmpi.so.12, in that order.
type Results = [Option<Table>; 4];

fn table_md(kind: Kind, r: &Results) -> String {
    let mut s = String::new();
    let unit = if kind.higher_is_better() {
        "MB/s"
    } else {
        "us"
    };
    let _ = writeln!(
        s,
        "| size | SNOO {unit} | SNOO libmpi.so.12 {unit} | MPICH shm {unit} | MPICH TCP {unit} | SNOO / MPICH shm | libmpi.so.12 / MPICH shm | libmpi.so.12 / SNOO | SNOO / MPICH TCP |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let sizes: Vec<usize> = r
        .iter()
        .flatten()
        .next()
        .map(|t| t.rows.iter().map(|r| r.0).collect())
        .unwrap_or_default();
    for size in sizes {
        let v: Vec<Option<f64>> = r
            .iter()
            .map(|t| t.as_ref().and_then(|t| t.get(size)))
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            size_label(size),
            cell(v[0]),
            cell(v[3]),
            cell(v[1]),
            cell(v[2]),
            cell(ratio(v[0], v[1])),
            cell(ratio(v[3], v[1])),
            cell(ratio(v[3], v[0])),
            cell(ratio(v[0], v[2])),
        );
    }
    s
}

/// (min ratio SNOO/other over sizes selected by `pick`, the size where it occurs).
fn min_ratio(
    a: &Option<Table>,
    b: &Option<Table>,
    pick: impl Fn(usize) -> bool,
) -> Option<(f64, usize)> {
    let (a, b) = (a.as_ref()?, b.as_ref()?);
    a.rows
        .iter()
        .filter(|r| pick(r.0))
        .filter_map(|&(s, v)| ratio(Some(v), b.get(s)).map(|r| (r, s)))
        .min_by(|x, y| x.0.total_cmp(&y.0))
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

/// The goal rows of the point-to-point kinds and the wake-up (the table's header is the caller's).
fn goals(
    all: &[(Kind, Results)],
    wake: Option<f64>,
    pool: &Option<Table>,
    pool_bw: &Option<Table>,
) -> String {
    let get = |k: Kind| &all.iter().find(|x| x.0 == k).expect("kind run").1;
    let mut s = String::new();
    let lat = get(Kind::Latency);
    let at8 = |i: usize| lat[i].as_ref().and_then(|t| t.get(8));
    let l8 = ratio(at8(3), at8(1));
    let _ = writeln!(
        s,
        "| one-way latency at 8 B ≤ 0.5× MPICH shm (libmpi.so.12) | {}× | {} |",
        cell(l8),
        verdict(l8.is_some_and(|r| r <= 0.5))
    );
    let native = at8(0);
    let over = ratio(at8(3), native);
    let over_ns = at8(3).zip(native).map(|(a, n)| (a - n) * 1000.0);
    let _ = writeln!(
        s,
        "| the ABI face adds ≤ 5% and ≤ 20 ns to the native API's 8 B latency | {}× ({} ns) | {} |",
        cell(over),
        cell(over_ns),
        verdict(over.is_some_and(|r| r <= 1.05) && over_ns.is_some_and(|d| d <= 20.0))
    );
    let bw = get(Kind::Bw);
    let mut line = |what: &str, m: Option<(f64, usize)>, goal: f64| {
        let _ = writeln!(
            s,
            "| {what} ≥ {goal}× | min {}× (at {}) | {} |",
            cell(m.map(|m| m.0)),
            m.map_or("—".into(), |m| size_label(m.1)),
            verdict(m.is_some_and(|m| m.0 >= goal))
        );
    };
    line(
        "osu_bw vs MPICH shm (libmpi.so.12), every size 1 B – 4 MiB",
        min_ratio(&bw[3], &bw[1], |_| true),
        1.0,
    );
    line(
        "osu_bw vs MPICH shm (libmpi.so.12), sizes ≤ 256 B",
        min_ratio(&bw[3], &bw[1], |s| s <= 256),
        2.0,
    );
    line(
        "osu_bw vs MPICH shm (native API), every size 1 B – 4 MiB",
        min_ratio(&bw[0], &bw[1], |_| true),
        1.0,
    );
    line(
        "osu_bw vs MPICH shm (native API), sizes ≤ 256 B",
        min_ratio(&bw[0], &bw[1], |s| s <= 256),
        2.0,
    );
    line(
        "osu_bw from Alloc_mem buffers vs MPICH shm, every size 1 B – 4 MiB",
        min_ratio(pool_bw, &bw[1], |_| true),
        1.0,
    );
    line(
        "osu_bw from Alloc_mem buffers vs MPICH shm, sizes ≤ 256 B",
        min_ratio(pool_bw, &bw[1], |s| s <= 256),
        2.0,
    );
    let seed = get(Kind::Seed);
    line(
        "seed vs MPICH shm, every size",
        min_ratio(&seed[0], &seed[1], |_| true),
        1.0,
    );
    line(
        "seed vs MPICH TCP, every size",
        min_ratio(&seed[0], &seed[2], |_| true),
        10.0,
    );
    line(
        "seed from Alloc_mem buffers vs MPICH shm, every size",
        min_ratio(pool, &seed[1], |_| true),
        1.0,
    );
    line(
        "seed from Alloc_mem buffers vs MPICH TCP, every size",
        min_ratio(pool, &seed[2], |_| true),
        10.0,
    );
    let _ = writeln!(
        s,
        "| receiver asleep on the doorbell woken in ≤ 10 us (ranks placed by the scheduler) | median {} us | {} |",
        cell(wake),
        verdict(wake.is_some_and(|w| w <= 10.0))
    );
    s
}

/// A plotted line: label, colour, (log2 size, MB/s) points.
type Series = (&'static str, RGBColor, Vec<(f64, f64)>);

fn plot(path: &Path, seed: &Results, pool: &Option<Table>, lim: &Limits) -> Result<(), String> {
    let font = ["DejaVuSans.ttf", "LiberationSans-Regular.ttf"]
        .iter()
        .flat_map(|f| {
            [
                format!("/usr/share/fonts/truetype/dejavu/{f}"),
                format!("/usr/share/fonts/truetype/liberation/{f}"),
            ]
        })
        .find_map(|p| std::fs::read(p).ok())
        .ok_or("no TTF font found (apt-get install fonts-dejavu-core)")?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into()))
        .map_err(|_| "bad font file")?;
    let series: Vec<Series> = seed[..3]
        .iter()
        .chain([pool, &seed[3]])
        .zip([
            Imp::Snoo,
            Imp::MpichShm,
            Imp::MpichTcp,
            Imp::SnooPool,
            Imp::SnooLibmpi,
        ])
        .zip([RED, BLUE, GREEN, MAGENTA, RGBColor(230, 140, 0)])
        .filter_map(|((t, imp), c)| {
            let t = t.as_ref()?;
            let pts = t
                .rows
                .iter()
                .filter(|r| r.0 > 0 && r.1 > 0.0)
                .map(|r| ((r.0 as f64).log2(), r.1))
                .collect();
            Some((imp.label(), c, pts))
        })
        .collect();
    let xs = series.iter().flat_map(|s| s.2.iter().map(|p| p.0));
    let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    if x0 > x1 {
        return Err("no seed results to plot".into());
    }
    let ys = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .chain(lim.memcpy)
        .chain(lim.ring_copy);
    let (y0, y1) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Seed experiment: blocking send/recv bandwidth vs buffer size (2 processes, one host)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x0 - 0.3..x1 + 0.3, (y0 / 2.0..y1 * 2.0).log_scale())
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("message buffer size")
        .y_desc("MB/s (log scale)")
        .x_label_formatter(&|x| size_label(2f64.powf(x.round()) as usize))
        .x_labels(((x1 - x0) / 2.0) as usize + 1)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    for (label, c, pts) in &series {
        let c = *c;
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(e)?
            .label(*label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(e)?;
    }
    // The machine's limits as horizontal lines: one thread's memcpy, and two CPUs copying through
    // a ring (the best any two-copy design, SNOO's plain-buffer path among them, does here).
    let flat = [
        (lim.memcpy, "memcpy limit (1 thread, 64 MiB buffers)", BLACK),
        (
            lim.ring_copy,
            "two-copy limit (2 CPUs through a ring)",
            RGBColor(230, 140, 0),
        ),
    ];
    for (v, label, c) in flat {
        let Some(m) = v else { continue };
        chart
            .draw_series(LineSeries::new(
                [(x0 - 0.3, m), (x1 + 0.3, m)],
                c.stroke_width(1),
            ))
            .map_err(e)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

/// What `limits` measured (see bench/src/bin/limits.rs); `None` where it printed nothing (or
/// where it did not run).
#[derive(Default)]
struct Limits {
    memcpy: Option<f64>,
    cacheline: Option<f64>,
    ring_copy: Option<f64>,
    ring_copy_window: Option<f64>,
    split_copy: Option<f64>,
    wake_idle: Option<f64>,
    wake: Option<f64>,
}

fn limits(bin: &Path, quick: bool) -> Limits {
    let args: &[&str] = if quick { &["--quick"] } else { &[] };
    let out = sh(bin.join("limits").to_str().unwrap_or("limits"), args);
    // "name value" lines; a name is never a prefix of another one followed by a space.
    let get = |k: &str| {
        out.lines().find_map(|l| {
            let (name, v) = l.split_once(' ')?;
            (name == k).then(|| v.trim().parse::<f64>().ok())?
        })
    };
    Limits {
        memcpy: get("memcpy_mbps"),
        cacheline: get("cacheline_ns"),
        ring_copy: get("ring_copy_mbps"),
        ring_copy_window: get("ring_copy_window_mbps"),
        split_copy: get("split_copy_mbps"),
        wake_idle: get("eventfd_wake_idle_us"),
        wake: get("eventfd_wake_us"),
    }
}

/// The commit the programs were built from, `-dirty` if the work tree had changes.
fn git_describe(root: &Path) -> String {
    Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

/// The report's sections, as `BENCH_ONLY` names them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    /// The machine's limits (`limits`).
    Limits,
    /// Latency, bw, bibw, seed (with their Alloc_mem runs) and the wake-up.
    P2p,
    /// The OSU collective methods (collectives.rs).
    Collectives,
    /// The exchange and the latency with sleeping ranks (exchange.rs).
    Exchange,
}

impl Section {
    const ALL: [Section; 4] = [
        Section::Limits,
        Section::P2p,
        Section::Collectives,
        Section::Exchange,
    ];

    fn name(self) -> &'static str {
        match self {
            Section::Limits => "limits",
            Section::P2p => "p2p",
            Section::Collectives => "collectives",
            Section::Exchange => "exchange",
        }
    }
}

/// The sections `BENCH_ONLY` selects (a comma-separated list), or every one when it is unset or
/// empty.
fn sections() -> Result<Vec<Section>, String> {
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only.trim().is_empty() {
        return Ok(Section::ALL.to_vec());
    }
    let mut out = Vec::new();
    for name in only.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let s = Section::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                format!("BENCH_ONLY: unknown section {name:?} (limits, p2p, collectives, exchange)")
            })?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// Builds the MPI programs, measures the limits and every benchmark, then writes the report and
/// its plot (with `BENCH_ONLY`, measures those sections and prints their report).
fn main() -> Result<(), String> {
    let quick = std::env::args().any(|a| a == "--quick");
    let only = sections()?;
    let full = only.len() == Section::ALL.len();
    let (bin, root) = locate()?;
    let started = Instant::now();
    build_osu_like(&bin, &root)?;
    let mut ctx = Ctx {
        root,
        bin,
        quick,
        log: String::new(),
        only: only.clone(),
    };
    let lim = if only.contains(&Section::Limits) {
        limits(&ctx.bin, quick)
    } else {
        Limits::default()
    };
    let m = measure(&mut ctx, &only);
    let elapsed = started.elapsed().as_secs_f64();
    let md = report(&ctx, &m, &lim, elapsed);
    if !full {
        print!("{md}");
        let names: Vec<&str> = only.iter().map(|s| s.name()).collect();
        eprintln!(
            "bench-report: BENCH_ONLY={}: report printed, docs/benchmarks.md left as it was ({elapsed:.0} s)",
            names.join(",")
        );
        return Ok(());
    }
    let docs = ctx.root.join("docs");
    std::fs::write(docs.join("benchmarks.md"), md).map_err(|e| e.to_string())?;
    plot(&docs.join("benchmarks.png"), m.seed(), &m.pool, &lim)?;
    eprintln!("bench-report: wrote docs/benchmarks.md and docs/benchmarks.png in {elapsed:.0} s");
    Ok(())
}

/// The directory of this executable (where the programs are) and the workspace root.
fn locate() -> Result<(PathBuf, PathBuf), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe.parent().ok_or("no exe dir")?.to_path_buf();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace")?
        .to_path_buf();
    Ok((bin, root))
}

/// Compiles `bench/mpich/osu_like.c`, `osu_coll.c` and `osu_exchange.c` into `bin` with `mpicc`.
fn build_osu_like(bin: &Path, root: &Path) -> Result<(), String> {
    for prog in ["osu_like", "osu_coll", "osu_exchange"] {
        let st = Command::new("mpicc")
            .args(["-O2", "-o"])
            .arg(bin.join(prog))
            .arg(root.join(format!("bench/mpich/{prog}.c")))
            .status()
            .map_err(|e| format!("mpicc: {e} (install mpich libmpich-dev)"))?;
        if !st.success() {
            return Err(format!("mpicc {prog}.c failed"));
        }
    }
    Ok(())
}

/// What the report shows: the medians of every kind's runs, and the wake-up.
struct Measurements {
    /// Per kind, the medians of SNOO, MPICH shm, MPICH TCP and SNOO libmpi.so.12, in that order
    /// (empty when the `p2p` section did not run).
    all: Vec<(Kind, Results)>,
    /// The `SnooPool` medians of seed.
    pool: Option<Table>,
    /// The `SnooPool` medians of osu_bw.
    pool_bw: Option<Table>,
    /// Median one-way wake-up at 8 B, ranks placed by the scheduler.
    wake: Option<f64>,
    /// The same with each rank bound to its own CPU.
    wake_bound: Option<f64>,
    /// The collective methods (empty when that section did not run).
    colls: Vec<collectives::Coll>,
    /// The exchange and the sleepers' latency, when that section ran.
    exchange: Option<exchange::Results>,
}

impl Measurements {
    /// The seed medians of SNOO, MPICH shm, MPICH TCP and SNOO libmpi.so.12.
    fn seed(&self) -> &Results {
        &self
            .all
            .iter()
            .find(|x| x.0 == Kind::Seed)
            .expect("seed run")
            .1
    }
}

/// Runs the sections in `only`: every kind (`REPEATS` times, once with `--quick`) and the
/// wake-up, the collectives, the exchange.
fn measure(ctx: &mut Ctx, only: &[Section]) -> Measurements {
    let repeats = if ctx.quick { 1 } else { REPEATS };
    let mut all: Vec<(Kind, Results)> = Vec::new();
    let (mut pool, mut pool_bw) = (None, None);
    let p2p = only.contains(&Section::P2p);
    let kinds: &[Kind] = if p2p {
        &[Kind::Latency, Kind::Bw, Kind::Bibw, Kind::Seed]
    } else {
        &[]
    };
    for &kind in kinds {
        let (results, pooled) = measure_kind(ctx, kind, repeats);
        all.push((kind, results));
        match kind {
            Kind::Seed => pool = pooled,
            Kind::Bw => pool_bw = pooled,
            _ => {}
        }
    }
    // The wake-up as snoo-run starts a job by default (the scheduler places the woken rank), and
    // with both ranks pinned (the sleeper's own CPU must then be woken): see method.md.
    let (mut wake, mut wake_bound) = (None, None);
    if p2p {
        wake = ctx.run(Imp::Snoo, Kind::Wake, false).and_then(|t| t.get(8));
        wake_bound = ctx.run(Imp::Snoo, Kind::Wake, true).and_then(|t| t.get(8));
    }
    let colls = if only.contains(&Section::Collectives) {
        collectives::measure(ctx, repeats)
    } else {
        Vec::new()
    };
    let exchange = only
        .contains(&Section::Exchange)
        .then(|| exchange::measure(ctx, repeats));
    Measurements {
        all,
        pool,
        pool_bw,
        wake,
        wake_bound,
        colls,
        exchange,
    }
}

/// Runs `kind` `repeats` times with each implementation, ranks bound; returns the medians of SNOO,
/// MPICH shm, MPICH TCP and SNOO's libmpi.so.12, and that of `SnooPool` (`None` unless `kind` is
/// in `POOL_KINDS`).
fn measure_kind(ctx: &mut Ctx, kind: Kind, repeats: usize) -> (Results, Option<Table>) {
    let imps = [Imp::Snoo, Imp::MpichShm, Imp::MpichTcp, Imp::SnooLibmpi];
    let mut runs: [Vec<Table>; 4] = Default::default();
    let mut pool_runs = Vec::new();
    // Interleaved, so a slow phase of the machine does not hit one implementation only.
    for _ in 0..repeats {
        for (i, imp) in imps.into_iter().enumerate() {
            runs[i].extend(ctx.run(imp, kind, true));
        }
        if POOL_KINDS.contains(&kind) {
            pool_runs.extend(ctx.run(Imp::SnooPool, kind, true));
        }
    }
    (runs.map(|r| median(&r)), median(&pool_runs))
}

/// The text of `docs/benchmarks.md`; `elapsed` is how long the runs took, in seconds.
fn report(ctx: &Ctx, m: &Measurements, lim: &Limits, elapsed: f64) -> String {
    let mut md = String::new();
    write_machine(&mut md, ctx, lim, elapsed);
    let mut rows = String::new();
    if !m.all.is_empty() {
        rows += &goals(&m.all, m.wake, &m.pool, &m.pool_bw);
    }
    rows += &collectives::goal_rows(&m.colls);
    if let Some(x) = &m.exchange {
        rows += &exchange::goal_rows(x);
    }
    if !rows.is_empty() {
        let _ = write!(
            md,
            "## Goals (from the issue)\n\n| goal | measured | verdict |\n|---|---|---|\n{rows}\n\
Ratios are SNOO / MPICH: for latency lower is better, for bandwidth higher is better.\n\n",
        );
    }
    let _ = write!(md, "{}", include_str!("../../../method.md"));
    write_kind_tables(&mut md, m);
    if !m.colls.is_empty() {
        md.push_str(&collectives::tables(&m.colls));
    }
    if let Some(x) = &m.exchange {
        md.push_str(&exchange::tables(x));
    }
    write_wake_and_runs(&mut md, m, lim, &ctx.log);
    md
}

/// The CPU model, from /proc/cpuinfo.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|x| x.1.trim().to_string())
            })
        })
        .unwrap_or_else(|| "?".into())
}

/// MPICH's version and device, from `mpichversion`.
fn mpich_version() -> String {
    let mpich = sh("mpichversion", &[]);
    mpich
        .lines()
        .filter(|l| l.starts_with("MPICH Version") || l.starts_with("MPICH Device"))
        .map(|l| l.split_whitespace().last().unwrap_or("?"))
        .collect::<Vec<_>>()
        .join(", device ")
}

/// The report's title, plot and machine table (the machine's limits and the run time included).
fn write_machine(md: &mut String, ctx: &Ctx, lim: &Limits, elapsed: f64) {
    let cpu = cpu_model();
    let mpich_v = mpich_version();
    let (by, plot) = if ctx.only.len() == Section::ALL.len() {
        (
            "Generated by `scripts/bench.sh`".to_string(),
            "![seed experiment](benchmarks.png)\n\n",
        )
    } else {
        let names: Vec<&str> = ctx.only.iter().map(|s| s.name()).collect();
        (
            format!("Part of the report: `BENCH_ONLY={}`", names.join(",")),
            "",
        )
    };
    let _ = write!(
        md,
        "# Benchmarks\n\n\
{by} (`target/release/bench-report`{}); do not edit by hand — rerun it.\n\
Every number below comes from one run on the machine described here; nothing is copied from elsewhere.\n\n\
{plot}\
## Machine\n\n\
| | |\n|---|---|\n\
| date (UTC) | {} |\n| measured tree (`git describe --always --dirty`) | {} |\n| CPUs (`nproc`) | {} |\n| CPU | {} |\n| kernel | {} |\n| rustc | {} |\n| MPICH | {} |\n\
| memcpy, 1 thread, 64 MiB buffers | {} MB/s |\n| cache-line ping-pong between 2 CPUs, one way | {} ns |\n\
| two-copy limit: 256 KiB messages through a 4 MiB ring between 2 CPUs, into 1 buffer (as seed) | {} MB/s |\n\
| the same into 64 buffers in turn (as osu_bw's window) | {} MB/s |\n\
| single-copy limit: a 4 MiB message copied once by both CPUs, half each (as a split rendezvous) | {} MB/s |\n\
| thread blocked on an eventfd woken by a write 37 ms later (median), CPUs idle before | {} us |\n\
| the same right after the cache-line probe | {} us |\n| whole run | {:.0} s |\n\n",
        if ctx.quick { " --quick" } else { "" },
        sh("date", &["-u", "+%Y-%m-%d %H:%M"]),
        git_describe(&ctx.root),
        sh("nproc", &[]),
        cpu,
        sh("uname", &["-r"]),
        sh("rustc", &["--version"]),
        mpich_v,
        cell(lim.memcpy),
        cell(lim.cacheline),
        cell(lim.ring_copy),
        cell(lim.ring_copy_window),
        cell(lim.split_copy),
        cell(lim.wake_idle),
        cell(lim.wake),
        elapsed,
    );
}

/// A table per kind, each followed for seed and osu_bw by its table from Alloc_mem buffers.
fn write_kind_tables(md: &mut String, m: &Measurements) {
    for (kind, r) in &m.all {
        let what = match kind {
            Kind::Latency => "Latency (osu_latency method, one-way us = round trip / 2)",
            Kind::Bw => "Bandwidth (osu_bw method, window of 64, MB/s)",
            Kind::Bibw => {
                "Bi-directional bandwidth (osu_bibw method, MB/s, both directions summed)"
            }
            Kind::Seed => "Seed experiment (blocking send/recv, MB/s)",
            Kind::Wake => "Wake",
            Kind::Exchange => "Exchange",
        };
        let _ = write!(md, "\n## {what}\n\n{}", table_md(*kind, r));
        let (title, p) = match kind {
            Kind::Seed => ("Seed experiment", &m.pool),
            Kind::Bw => ("Bandwidth (osu_bw method)", &m.pool_bw),
            _ => continue,
        };
        let r = [p.clone(), r[1].clone(), r[2].clone(), None];
        let _ = write!(
            md,
            "\n## {title}, buffers from SNOO_MPI_Alloc_mem (MB/s)\n\n\
Both ranks send from and receive into pool memory (`snoo-bench {} --alloc-mem`, pool of {}): from \
32 KiB on, every message is a RENDEZVOUS, copied straight from the sender's buffer into the \
receiver's, by the receiver alone up to 128 KiB and from there by both ranks, half each (SHARE / \
WROTE); smaller messages take the same paths as above. The SNOO columns below are that run; the \
MPICH columns are the runs above (MPICH's `MPI_Alloc_mem` is `malloc` for this device).\n\n{}",
            kind.name(),
            pool_run_size(*kind),
            table_md(*kind, &r)
        );
    }
}

/// The doorbell wake-up section (when the `p2p` section ran) and the log of every run.
fn write_wake_and_runs(md: &mut String, m: &Measurements, lim: &Limits, log: &str) {
    if m.all.is_empty() {
        let _ = write!(md, "\n## Runs\n\n{log}");
        return;
    }
    let _ = write!(
        md,
        "\n## Doorbell wake-up\n\nMedian one-way time to a receiver asleep on its doorbell: {} us \
with the ranks placed by the scheduler (snoo-run's default, the goal row), {} us with each rank \
pinned to its own CPU (SNOO only; MPICH's receivers never sleep, they spin). The machine's floor \
for the same wake-up — a thread pinned to the other CPU, blocked on an eventfd, woken by a write — \
is {} us with the CPUs idle before, {} us right after the cache-line probe (table above).\n\n\
## Runs\n\n{}",
        cell(m.wake),
        cell(m.wake_bound),
        cell(lim.wake_idle),
        cell(lim.wake),
        log
    );
}
