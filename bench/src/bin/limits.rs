//! The machine's limits that bound any shared-memory messaging: single-thread memcpy bandwidth on
//! buffers far larger than the caches, and the one-way latency of a cache line bouncing between
//! two threads on two CPUs (a flag written by one, spun on by the other).
//!
//! ```text
//! limits [--json]
//! ```
//! Prints `memcpy_mbps VALUE` and `cacheline_ns VALUE` lines (or one JSON object).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Copies 64 MiB buffers for about a second; MB/s of bytes copied (each byte counted once, as
/// memcpy benchmarks and MPI bandwidths do).
fn memcpy_mbps() -> f64 {
    let len = 64 << 20;
    let src = vec![1u8; len];
    let mut dst = vec![0u8; len];
    dst.copy_from_slice(&src); // fault the pages in
    let mut best: f64 = 0.0;
    for _ in 0..3 {
        let t0 = Instant::now();
        let mut n = 0usize;
        while t0.elapsed() < Duration::from_millis(300) {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
            n += 1;
        }
        best = best.max((n * len) as f64 / t0.elapsed().as_secs_f64() / 1e6);
    }
    best
}

#[repr(align(128))]
struct Line(AtomicU64);

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET and sched_setaffinity only touch it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Two threads on CPUs 0 and 1 pass a counter back and forth through two cache lines; one-way ns is
/// half the round trip.
fn cacheline_ns() -> f64 {
    let ping = Line(AtomicU64::new(0));
    let pong = Line(AtomicU64::new(0));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rounds: u64 = 1_000_000;
    let warm = 10_000;
    std::thread::scope(|s| {
        s.spawn(|| {
            pin(1 % cpus);
            for i in 1..=rounds + warm {
                while ping.0.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                pong.0.store(i, Ordering::Release);
            }
        });
        pin(0);
        let mut t0 = Instant::now();
        for i in 1..=rounds + warm {
            if i == warm + 1 {
                t0 = Instant::now();
            }
            ping.0.store(i, Ordering::Release);
            while pong.0.load(Ordering::Acquire) != i {
                std::hint::spin_loop();
            }
        }
        t0.elapsed().as_secs_f64() * 1e9 / (2.0 * rounds as f64)
    })
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let m = memcpy_mbps();
    let c = cacheline_ns();
    if json {
        println!("{{\"memcpy_mbps\":{m:.1},\"cacheline_ns\":{c:.1}}}");
    } else {
        println!("# Machine limits v1");
        println!("memcpy_mbps {m:.1}");
        println!("cacheline_ns {c:.1}");
    }
}
