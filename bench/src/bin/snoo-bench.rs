//! OSU-style micro-benchmarks over SNOO_MPI, with the same methods and output format as
//! `bench/mpich/osu_like.c` (and the OSU micro-benchmarks), so tables compare line by line.
//!
//! ```text
//! snoo-run -n 2 --name bench target/release/snoo-bench KIND [--json] [--min SIZE] [--max SIZE]
//!     [--total SIZE] [--max-msgs N] [--scale F] [--alloc-mem] [--no-progress]
//! ```
//! KIND: `latency` (osu_latency), `bw` (osu_bw), `bibw` (osu_bibw), `seed` (1 GiB moved with
//! blocking send/recv per buffer size), `wake` (one-way time to a receiver asleep on its doorbell).
//! Rank 0 prints the table; every other rank beyond 1 only joins and leaves.

use clap::Parser;
use console::Term;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use snoo_bench::{header, iterations, parse_size, row, to_json, Kind, WINDOW};
use snoo_mpi::{Error, Result, World};
use std::fs::{File, OpenOptions};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "OSU-style micro-benchmarks over SNOO_MPI (run under snoo-run -n 2)")]
struct Args {
    /// latency, bw, bibw, seed or wake.
    #[arg(value_parser = kind_arg)]
    kind: Kind,
    /// Print JSON instead of the OSU table.
    #[arg(long)]
    json: bool,
    /// Smallest message size (K/M/G suffixes).
    #[arg(long, value_parser = parse_size)]
    min: Option<usize>,
    /// Largest message size (K/M/G suffixes).
    #[arg(long, value_parser = parse_size)]
    max: Option<usize>,
    /// Bytes moved per size by `seed` (default 1G).
    #[arg(long, value_parser = parse_size, default_value = "1G")]
    total: usize,
    /// At most this many messages per size for `seed` (the total shrinks for small sizes).
    #[arg(long)]
    max_msgs: Option<usize>,
    /// Multiplies the timed iteration counts (e.g. 0.1 for a quick run).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Send from and receive into pool memory (`World::alloc_mem`, SNOO_MPI_Alloc_mem): sends of
    /// 32 KiB and more then take the single-copy rendezvous path, split between both ranks from
    /// 128 KiB. Start the pool with room for the heaps (snoo-run --size: 64M for seed up to 4 MiB
    /// messages, 1G for bw and bibw, whose 64 receive buffers of 4 MiB take 256 MiB).
    #[arg(long)]
    alloc_mem: bool,
    /// Never draw the progress bar.
    #[arg(long)]
    no_progress: bool,
}

/// A message buffer of `size` bytes of `fill`: pool memory with `--alloc-mem`, else the heap.
enum Buf<'w> {
    Heap(Vec<u8>),
    Pool(snoo_mpi::PoolMem<'w>),
}

impl<'w> Buf<'w> {
    fn new(w: &'w World, size: usize, fill: u8, pool: bool) -> Result<Buf<'w>> {
        if pool {
            let mut m = w.alloc_mem(size)?;
            m.fill(fill);
            Ok(Buf::Pool(m))
        } else {
            Ok(Buf::Heap(vec![fill; size]))
        }
    }
}

impl std::ops::Deref for Buf<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Buf::Heap(v) => v,
            Buf::Pool(m) => m,
        }
    }
}

impl std::ops::DerefMut for Buf<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Buf::Heap(v) => v,
            Buf::Pool(m) => m,
        }
    }
}

/// Where rank 0 draws its progress bar: stderr if it is a terminal. Under snoo-run, whose line
/// forwarder makes stderr a pipe: the controlling terminal, but only when the launcher's own
/// stdout is not that terminal (e.g. bench-report capturing the table), so that the forwarded
/// rows and the bar never share a screen line; else nowhere.
fn progress_target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        return ProgressDrawTarget::stderr();
    }
    // SAFETY: getppid has no preconditions.
    let ppid = unsafe { libc::getppid() };
    let parent_out = std::fs::read_link(format!("/proc/{ppid}/fd/1")).unwrap_or_default();
    if parent_out.starts_with("/dev/pts") || parent_out.starts_with("/dev/tty") {
        return ProgressDrawTarget::hidden();
    }
    match (
        File::open("/dev/tty"),
        OpenOptions::new().write(true).open("/dev/tty"),
    ) {
        (Ok(r), Ok(w)) => ProgressDrawTarget::term(Term::read_write_pair(r, w), 10),
        _ => ProgressDrawTarget::hidden(),
    }
}

fn kind_arg(s: &str) -> std::result::Result<Kind, String> {
    Kind::parse(s).ok_or_else(|| format!("{s:?}: expected latency, bw, bibw, seed or wake"))
}

const TAG: i32 = 1;
const ACK: i32 = 2;
const SYNC: i32 = 3;

/// A two-rank barrier (OSU calls MPI_Barrier before each size).
fn barrier(w: &World) -> Result<()> {
    let mut b = [0u8; 0];
    match w.rank() {
        0 => {
            w.send(&b, 1, SYNC)?;
            w.recv(&mut b, Some(1), Some(SYNC))?;
        }
        1 => {
            w.recv(&mut b, Some(0), Some(SYNC))?;
            w.send(&b, 0, SYNC)?;
        }
        _ => {}
    }
    Ok(())
}

fn latency(w: &World, size: usize, scale: f64, pool: bool) -> Result<f64> {
    let (skip, iters) = iterations(Kind::Latency, size, scale);
    let sbuf = Buf::new(w, size, b'a', pool)?;
    let mut rbuf = vec![b'b'; size];
    barrier(w)?;
    let mut t0 = Instant::now();
    for i in 0..skip + iters {
        if i == skip {
            t0 = Instant::now();
        }
        if w.rank() == 0 {
            w.send(&sbuf, 1, TAG)?;
            w.recv(&mut rbuf, Some(1), Some(TAG))?;
        } else {
            w.recv(&mut rbuf, Some(0), Some(TAG))?;
            w.send(&sbuf, 0, TAG)?;
        }
    }
    Ok(t0.elapsed().as_secs_f64() * 1e6 / (2.0 * iters as f64))
}

/// osu_bw (`both == false`) and osu_bibw: per iteration a window of 64 non-blocking operations;
/// osu_bw's receiver then acknowledges with 4 bytes. Receive buffers are distinct per window slot
/// (Rust forbids lending one buffer to 64 receives at once; osu_like.c does the same). With
/// `pool`, sends come from and receives go into pool memory (one block for the 64 receive
/// buffers), as in `seed --alloc-mem`.
fn bandwidth(w: &World, size: usize, scale: f64, both: bool, pool: bool) -> Result<f64> {
    let kind = if both { Kind::Bibw } else { Kind::Bw };
    let (skip, iters) = iterations(kind, size, scale);
    let sbuf = Buf::new(w, size, b'a', pool)?;
    let mut rbufs = Buf::new(w, size * WINDOW, b'b', pool)?;
    let mut ack = [0u8; 4];
    let rank = w.rank();
    let peer = 1 - rank;
    barrier(w)?;
    let mut t0 = Instant::now();
    for i in 0..skip + iters {
        if i == skip {
            t0 = Instant::now();
        }
        let sends = both || rank == 0;
        let recvs = both || rank == 1;
        w.scope(|s| -> Result<()> {
            let mut reqs = Vec::with_capacity(2 * WINDOW);
            if recvs {
                if size == 0 {
                    for _ in 0..WINDOW {
                        reqs.push(s.irecv(&mut [] as &mut [u8], Some(peer), Some(TAG))?);
                    }
                } else {
                    for b in rbufs.chunks_mut(size) {
                        reqs.push(s.irecv(b, Some(peer), Some(TAG))?);
                    }
                }
            }
            if sends {
                for _ in 0..WINDOW {
                    reqs.push(s.isend(&sbuf, peer, TAG)?);
                }
            }
            s.wait_all(reqs)?;
            Ok(())
        })?;
        if !both {
            if rank == 1 {
                w.send(&ack, 0, ACK)?;
            } else {
                w.recv(&mut ack, Some(1), Some(ACK))?;
            }
        }
    }
    let t = t0.elapsed().as_secs_f64();
    let dirs = if both { 2.0 } else { 1.0 };
    Ok(size as f64 * WINDOW as f64 * iters as f64 * dirs / t / 1e6)
}

/// The paper's experiment: `total` bytes (at most `max_msgs` messages) from rank 0 to rank 1 in
/// blocking sends of `size` bytes, timed on rank 0 until rank 1 acknowledges the last one.
fn seed(w: &World, size: usize, total: usize, max_msgs: usize, pool: bool) -> Result<f64> {
    let n = (total / size.max(1)).clamp(1, max_msgs.max(1));
    // Rank 0 sends from `buf`, rank 1 receives into it: with `--alloc-mem` both in pool memory,
    // so large messages are split rendezvous copies (both CPUs copy).
    let mut buf = Buf::new(w, size, b'a', pool)?;
    let mut ack = [0u8; 4];
    barrier(w)?;
    let t0 = Instant::now();
    if w.rank() == 0 {
        for _ in 0..n {
            w.send(&buf, 1, TAG)?;
        }
        w.recv(&mut ack, Some(1), Some(ACK))?;
    } else {
        for _ in 0..n {
            w.recv(&mut buf, Some(0), Some(TAG))?;
        }
        w.send(&ack, 0, ACK)?;
    }
    Ok((n * size) as f64 / t0.elapsed().as_secs_f64() / 1e6)
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Rank 1 posts a receive and waits; rank 0 waits long enough for it to fall asleep on its doorbell
/// (the engine polls only briefly), then sends its CLOCK_MONOTONIC time (one host, one clock).
/// The median one-way time over the trials, in microseconds, as rank 0 reports it.
fn wake(w: &World, scale: f64) -> Result<f64> {
    let (skip, iters) = iterations(Kind::Wake, 8, scale);
    let mut samples = Vec::with_capacity(iters);
    for i in 0..skip + iters {
        barrier(w)?;
        if w.rank() == 0 {
            // Not a multiple of the engine's 20 ms sleep bound, so its timed wake-ups don't line up.
            std::thread::sleep(Duration::from_millis(37));
            w.send(&[monotonic_ns()], 1, TAG)?;
        } else {
            let mut t = [0u64; 1];
            w.recv(&mut t, Some(0), Some(TAG))?;
            let dt = monotonic_ns().saturating_sub(t[0]);
            if i >= skip {
                samples.push(dt as f64 / 1e3);
            }
        }
    }
    let mut med = [0f64; 1];
    if w.rank() == 1 {
        samples.sort_by(|a, b| a.total_cmp(b));
        med[0] = samples[samples.len() / 2];
        eprintln!(
            "# wake: min {:.2} us, median {:.2} us, max {:.2} us over {} trials",
            samples[0],
            med[0],
            samples[samples.len() - 1],
            samples.len()
        );
        w.send(&med, 0, ACK)?;
    } else {
        w.recv(&mut med, Some(1), Some(ACK))?;
    }
    Ok(med[0])
}

fn run(args: &Args) -> Result<()> {
    let name = std::env::var("SNOO_NAME").unwrap_or_else(|_| "snoo".into());
    let world = snoo_mpi::init(&name)?;
    if world.size() < 2 {
        return Err(Error::Arg(
            "snoo-bench needs 2 ranks (snoo-run -n 2)".into(),
        ));
    }
    let kind = args.kind;
    let (dmin, dmax) = kind.default_range();
    let sizes = kind.sizes(args.min.unwrap_or(dmin), args.max.unwrap_or(dmax));
    let rank = world.rank();
    let printer = rank == 0 && !args.json;
    if printer {
        println!("{}", header("SNOO_MPI", kind));
    }
    let bar = if rank == 0 && !args.no_progress {
        let b = ProgressBar::with_draw_target(Some(sizes.len() as u64), progress_target());
        b.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} sizes, {elapsed}")
                .expect("valid template"),
        );
        b.set_prefix(kind.name());
        b
    } else {
        ProgressBar::hidden()
    };
    let mut rows = Vec::new();
    for &size in &sizes {
        if rank > 1 {
            continue;
        }
        let v = match kind {
            Kind::Latency => latency(&world, size, args.scale, args.alloc_mem)?,
            Kind::Bw => bandwidth(&world, size, args.scale, false, args.alloc_mem)?,
            Kind::Bibw => bandwidth(&world, size, args.scale, true, args.alloc_mem)?,
            Kind::Seed => seed(
                &world,
                size,
                args.total,
                args.max_msgs.unwrap_or(usize::MAX),
                args.alloc_mem,
            )?,
            Kind::Wake => wake(&world, args.scale)?,
        };
        if printer {
            bar.suspend(|| println!("{}", row(size, v)));
        }
        rows.push((size, v));
        bar.inc(1);
    }
    bar.finish_and_clear();
    if rank == 0 && args.json {
        println!("{}", to_json("SNOO_MPI", kind, &rows));
    }
    world.finalize()
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("snoo-bench: {e}");
            ExitCode::from(u8::try_from(e.code()).unwrap_or(1))
        }
    }
}
