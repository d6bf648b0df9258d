//! The machine's limits that bound any shared-memory messaging: single-thread memcpy bandwidth on
//! buffers far larger than the caches, and the one-way latency of a cache line bouncing between
//! two threads on two CPUs (a flag written by one, spun on by the other), and how long a thread
//! blocked on an eventfd takes to run again once it is written (the doorbell's floor).
//!
//! ```text
//! limits [--json]
//! ```
//! Prints `memcpy_mbps`, `cacheline_ns` and `eventfd_wake_us` lines (or one JSON object).

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

/// A thread blocked in `read` on an eventfd (as a SNOO rank asleep on its doorbell), woken by another
/// that writes it after 37 ms (as snoo-bench wake does): median microseconds from the write to the reader running again, over
/// 20 trials. The floor under SNOO's doorbell wake-up on this machine.
fn eventfd_wake_us() -> f64 {
    // SAFETY: plain syscalls on a descriptor this function owns and closes.
    let fd = unsafe { libc::eventfd(0, 0) };
    assert!(fd >= 0, "eventfd");
    let stamp = AtomicU64::new(0);
    let t0 = Instant::now();
    let mut samples = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            pin(1 % std::thread::available_parallelism().map_or(1, |n| n.get()));
            let mut out = Vec::new();
            for _ in 0..20 {
                let mut v = 0u64;
                // SAFETY: reads 8 bytes into `v`.
                unsafe { libc::read(fd, &mut v as *mut u64 as *mut libc::c_void, 8) };
                let now = t0.elapsed().as_nanos() as u64;
                out.push(now.saturating_sub(stamp.load(Ordering::Acquire)) as f64 / 1e3);
            }
            out
        });
        pin(0);
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(37));
            stamp.store(t0.elapsed().as_nanos() as u64, Ordering::Release);
            let one = 1u64;
            // SAFETY: writes 8 bytes from `one`.
            unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
        }
        reader.join().expect("reader")
    });
    // SAFETY: closes our own descriptor.
    unsafe { libc::close(fd) };
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let m = memcpy_mbps();
    let c = cacheline_ns();
    let w = eventfd_wake_us();
    if json {
        println!("{{\"memcpy_mbps\":{m:.1},\"cacheline_ns\":{c:.1},\"eventfd_wake_us\":{w:.2}}}");
    } else {
        println!("# Machine limits v1");
        println!("memcpy_mbps {m:.1}");
        println!("cacheline_ns {c:.1}");
        println!("eventfd_wake_us {w:.2}");
    }
}
