//! OSU-style micro-benchmarks over SNOO_MPI, with the same methods and output format as
//! `bench/mpich/osu_like.c` (and the OSU micro-benchmarks), so tables compare line by line.
//!
//! ```text
//! snoo-run -n 2 --name bench target/release/snoo-bench KIND [--json] [--min SIZE] [--max SIZE]
//!     [--total SIZE] [--max-msgs N] [--scale F] [--alloc-mem] [--no-progress]
//! ```
//! KIND: `latency` (osu_latency), `bw` (osu_bw), `bibw` (osu_bibw), `seed` (1 GiB moved with
//! blocking send/recv per buffer size), `wake` (one-way time to a receiver asleep on its doorbell),
//! `exchange` (every rank sends to every other one; `bench/mpich/osu_exchange.c`).
//! Rank 0 prints the table. `exchange` uses every rank of the job; the other kinds ranks 0 and 1
//! only: in `latency` every rank beyond 1 waits in a blocking receive from any source (asleep on
//! its doorbell) until rank 0 releases it after the last size, in the other kinds it only joins
//! and leaves.

use clap::Parser;
use console::Term;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use snoo_bench::{header, iterations, parse_size, row_values, to_json_values, Kind, WINDOW};
use snoo_mpi::{Error, Result, World};
use std::fs::{File, OpenOptions};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "OSU-style micro-benchmarks over SNOO_MPI (run under snoo-run -n 2, or -n N)")]
struct Args {
    /// latency, bw, bibw, seed, wake or exchange.
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
    Kind::parse(s)
        .ok_or_else(|| format!("{s:?}: expected latency, bw, bibw, seed, wake or exchange"))
}

const TAG: i32 = 1;
const ACK: i32 = 2;
const SYNC: i32 = 3;
/// Rank 0 to the ranks beyond 1 of a `latency` job: the measurement is over.
const RELEASE: i32 = 4;
/// Every rank to rank 0 in `exchange`: how long its timed iterations took.
const TIME: i32 = 5;

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

/// A barrier of every rank of the job: each tells rank 0 it is there, rank 0 then tells each.
fn barrier_all(w: &World) -> Result<()> {
    let mut b = [0u8; 0];
    if w.rank() == 0 {
        for r in 1..w.size() {
            w.recv(&mut b, Some(r), Some(SYNC))?;
        }
        for r in 1..w.size() {
            w.send(&b, r, SYNC)?;
        }
    } else {
        w.send(&b, 0, SYNC)?;
        w.recv(&mut b, Some(0), Some(SYNC))?;
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

/// Byte `i` of what rank `from` sends in `exchange`'s check: differs between ranks and offsets.
fn pattern(from: u32, i: usize) -> u8 {
    (from as usize * 37 + i * 13 + 1) as u8
}

/// One exchange: every rank posts a receive from every other rank into its own slot of `rbufs`
/// (`size` bytes each; slot k − 1 for rank − k), then sends `sbuf` to each, and waits for all.
/// Ranks are visited in a rotation (`rank + k`, k = 1 … n − 1), so that not every rank sends to
/// rank 0 first.
fn exchange_once(w: &World, sbuf: &[u8], rbufs: &mut [u8], size: usize) -> Result<()> {
    let (rank, n) = (w.rank(), w.size());
    w.scope(|s| -> Result<()> {
        let mut reqs = Vec::with_capacity(2 * n as usize);
        if size == 0 {
            for k in 1..n {
                reqs.push(s.irecv(&mut [] as &mut [u8], Some((rank + n - k) % n), Some(TAG))?);
            }
        } else {
            for (k, b) in (1..n).zip(rbufs.chunks_mut(size)) {
                reqs.push(s.irecv(b, Some((rank + n - k) % n), Some(TAG))?);
            }
        }
        for k in 1..n {
            reqs.push(s.isend(sbuf, (rank + k) % n, TAG)?);
        }
        s.wait_all(reqs)?;
        Ok(())
    })
}

/// The exchange (as `bench/mpich/osu_exchange.c`): per iteration every rank sends `size` bytes to
/// every other rank with non-blocking sends, receives as much from each with non-blocking
/// receives, and waits for all; no barrier between iterations (each one waits for every peer's).
/// First one checked exchange (the data from each peer, where it belongs; a wrong byte ends the
/// process with exit code 3), then `skip` warm-up and `iters` timed iterations. Returns (aggregate MB/s: the bytes all ranks sent over the
/// slowest rank's time, per-rank MB/s: that over the ranks), valid at rank 0.
fn exchange(w: &World, size: usize, scale: f64, pool: bool) -> Result<(f64, f64)> {
    let (skip, iters) = iterations(Kind::Exchange, size, scale);
    let (rank, n) = (w.rank(), w.size());
    let peers = n as usize - 1;
    let mut sbuf = Buf::new(w, size, 0, pool)?;
    let mut rbufs = Buf::new(w, size * peers, 0, pool)?;
    for (i, b) in sbuf.iter_mut().enumerate() {
        *b = pattern(rank, i);
    }
    // Every received byte starts as the complement of what must arrive there.
    for (k, chunk) in (1..n).zip(rbufs.chunks_mut(size.max(1))) {
        let from = (rank + n - k) % n;
        for (i, b) in chunk.iter_mut().enumerate() {
            *b = !pattern(from, i);
        }
    }
    barrier_all(w)?;
    exchange_once(w, &sbuf, &mut rbufs, size)?;
    for (k, chunk) in (1..n).zip(rbufs.chunks(size.max(1))) {
        let from = (rank + n - k) % n;
        if let Some(i) = (0..chunk.len()).find(|&i| chunk[i] != pattern(from, i)) {
            // As osu_exchange.c's MPI_Abort(…, 3): the job fails, whatever the other ranks do.
            eprintln!(
                "snoo-bench: exchange check failed at {size} B: rank {rank} got byte {i} from \
                 rank {from} as {:#04x}, expected {:#04x}",
                chunk[i],
                pattern(from, i)
            );
            std::process::exit(3);
        }
    }
    barrier_all(w)?;
    let mut t0 = Instant::now();
    for i in 0..skip + iters {
        if i == skip {
            t0 = Instant::now();
        }
        exchange_once(w, &sbuf, &mut rbufs, size)?;
    }
    let mut t = [t0.elapsed().as_secs_f64()];
    if rank == 0 {
        let mut other = [0f64];
        for r in 1..n {
            w.recv(&mut other, Some(r), Some(TIME))?;
            t[0] = t[0].max(other[0]);
        }
    } else {
        w.send(&t, 0, TIME)?;
    }
    let total = size as f64 * (n as usize * peers) as f64 * iters as f64;
    let aggregate = total / t[0] / 1e6;
    Ok((aggregate, aggregate / n as f64))
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

/// Rank 0 releases every rank beyond 1 from its receive (`latency` with more than 2 ranks).
fn release_sleepers(w: &World) -> Result<()> {
    if w.rank() == 0 {
        for r in 2..w.size() {
            w.send(&[1u8], r, RELEASE)?;
        }
    }
    Ok(())
}

fn run(args: &Args) -> Result<()> {
    let name = std::env::var("SNOO_NAME").unwrap_or_else(|_| "snoo".into());
    let world = snoo_mpi::init(&name)?;
    if world.size() < 2 {
        return Err(Error::Arg(
            "snoo-bench needs 2 ranks (snoo-run -n 2)".into(),
        ));
    }
    if args.kind == Kind::Latency && world.rank() > 1 {
        // Sleep in a blocking receive from any source, as a rank waiting for work does, until
        // rank 0 is done: the latency between ranks 0 and 1 should not depend on how many of
        // these there are.
        let mut b = [0u8; 1];
        world.recv(&mut b, None, Some(RELEASE))?;
        return world.finalize();
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
        let v = match kind {
            Kind::Exchange => {
                let (aggregate, per_rank) = exchange(&world, size, args.scale, args.alloc_mem)?;
                vec![aggregate, per_rank]
            }
            _ if rank > 1 => continue,
            Kind::Latency => vec![latency(&world, size, args.scale, args.alloc_mem)?],
            Kind::Bw => vec![bandwidth(&world, size, args.scale, false, args.alloc_mem)?],
            Kind::Bibw => vec![bandwidth(&world, size, args.scale, true, args.alloc_mem)?],
            Kind::Seed => vec![seed(
                &world,
                size,
                args.total,
                args.max_msgs.unwrap_or(usize::MAX),
                args.alloc_mem,
            )?],
            Kind::Wake => vec![wake(&world, args.scale)?],
        };
        if printer {
            bar.suspend(|| println!("{}", row_values(size, &v)));
        }
        rows.push((size, v));
        bar.inc(1);
    }
    bar.finish_and_clear();
    if kind == Kind::Latency && world.size() > 2 {
        release_sleepers(&world)?;
    }
    if rank == 0 && args.json {
        println!("{}", to_json_values("SNOO_MPI", kind, &rows));
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
