//! The machine's limits that bound any shared-memory messaging, measured in the same run as the
//! benchmarks:
//!
//! - single-thread memcpy bandwidth on buffers far larger than the caches;
//! - the one-way latency of a cache line bouncing between two threads on two CPUs (a flag written
//!   by one, spun on by the other): the floor under any small message;
//! - the best a *two-copy* design does here: two threads on two CPUs passing messages through a
//!   shared 4 MiB ring in 32 KiB chunks, the first copying each message in from its buffer, the
//!   second out into its own — SNOO's path for plain (not `SNOO_MPI_Alloc_mem`) buffers, which
//!   another VM cannot read, so every byte is copied twice. Into one receive buffer reused for
//!   every message (as the seed experiment) and into 64 in turn (as osu_bw's window);
//! - the best *any* design does for a 4 MiB message: both CPUs copying half of it each, once,
//!   from one buffer into another (SNOO's split rendezvous between `SNOO_MPI_Alloc_mem` buffers);
//! - how long a thread blocked on an eventfd takes to run again once it is written (the
//!   doorbell's floor), twice: first, while the CPUs have been idle, then right after the
//!   cache-line probe has kept both CPUs spinning. On a VM host the two can differ tenfold (a
//!   halted vCPU is woken through the hypervisor, and how fast depends on the host's state).
//!
//! ```text
//! limits [--json] [--quick]
//! ```
//! Prints `memcpy_mbps`, `cacheline_ns`, `ring_copy_mbps`, `ring_copy_window_mbps`,
//! `split_copy_mbps`, `eventfd_wake_idle_us` and `eventfd_wake_us` lines (or one JSON object). `--quick` measures
//! briefly (for tests: the numbers are then rough).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Copies 64 MiB buffers for about a second; MB/s of bytes copied (each byte counted once, as
/// memcpy benchmarks and MPI bandwidths do).
fn memcpy_mbps(quick: bool) -> f64 {
    let len = 64 << 20;
    let src = vec![1u8; len];
    let mut dst = vec![0u8; len];
    dst.copy_from_slice(&src); // fault the pages in
    let mut best: f64 = 0.0;
    let slice = Duration::from_millis(if quick { 20 } else { 300 });
    for _ in 0..3 {
        let t0 = Instant::now();
        let mut n = 0usize;
        while t0.elapsed() < slice {
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

/// CPUs this process may run on, counted before any thread pins itself (a pinned thread's
/// threads inherit its one CPU, and would count only that one).
fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

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
fn cacheline_ns(quick: bool) -> f64 {
    let ping = Line(AtomicU64::new(0));
    let pong = Line(AtomicU64::new(0));
    let rounds: u64 = if quick { 10_000 } else { 1_000_000 };
    let warm = rounds / 100;
    std::thread::scope(|s| {
        s.spawn(|| {
            pin(1 % cpus());
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

/// Ring of the two-copy probe: SNOO's default data ring per channel, and its chunk.
const RING: usize = 4 << 20;
const CHUNK: usize = 32 << 10;
/// Message size of the two-copy probe.
const RING_MSG: usize = 256 << 10;

/// The bytes of the two-copy probe's ring, shared by its two threads.
struct RingBytes(*mut u8);

// SAFETY: the two threads touch disjoint byte ranges of the ring at any time: the producer only
// writes bytes past the consumer's published `tail` and publishes them (Release) before the
// consumer reads them (Acquire), and the consumer publishes `tail` (Release) only after it has
// read the bytes before it. The allocation outlives both threads (scoped threads).
unsafe impl Send for RingBytes {}
// SAFETY: as above.
unsafe impl Sync for RingBytes {}

impl RingBytes {
    /// Copies `src` into the ring at `at`, which `src` does not run past.
    ///
    /// # Safety
    /// Only the producer calls it, on bytes the consumer has released.
    unsafe fn put(&self, at: usize, src: &[u8]) {
        // SAFETY: forwarded from the caller; `at + src.len() <= RING`.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.0.add(at), src.len()) };
    }

    /// Copies the ring's bytes at `at` into `dst`.
    ///
    /// # Safety
    /// Only the consumer calls it, on bytes the producer has published.
    unsafe fn get(&self, at: usize, dst: &mut [u8]) {
        // SAFETY: forwarded from the caller; `at + dst.len() <= RING`.
        unsafe { std::ptr::copy_nonoverlapping(self.0.add(at), dst.as_mut_ptr(), dst.len()) };
    }
}

/// Two threads on CPUs 0 and 1 move messages of [`RING_MSG`] bytes through a [`RING`]-byte ring
/// in [`CHUNK`]-byte chunks (memcpy both ways), the producer copying each chunk in from its one
/// source buffer, the consumer out into the next of `buffers` receive buffers. MB/s of messages
/// moved.
fn ring_copy_mbps(buffers: usize, quick: bool) -> f64 {
    let total: usize = if quick { 64 << 20 } else { 4 << 30 };
    let msgs = total / RING_MSG;
    let mut storage = vec![0u8; RING];
    let ring = RingBytes(storage.as_mut_ptr());
    let (head_at, tail_at) = (Line(AtomicU64::new(0)), Line(AtomicU64::new(0)));
    let src = vec![1u8; RING_MSG];
    let mbps = std::thread::scope(|s| {
        s.spawn(|| {
            pin(1 % cpus());
            let mut dst = vec![vec![0u8; RING_MSG]; buffers];
            let mut tail = 0usize;
            for m in 0..msgs {
                let buf = &mut dst[m % buffers];
                let mut off = 0;
                while off < RING_MSG {
                    let head = loop {
                        let h = head_at.0.load(Ordering::Acquire) as usize;
                        if h != tail {
                            break h;
                        }
                        std::hint::spin_loop();
                    };
                    // Published chunks never cross the ring's end (see the producer).
                    let n = (head - tail).min(RING_MSG - off).min(CHUNK);
                    // SAFETY: bytes tail..tail+n were published by the producer (Acquire above).
                    unsafe { ring.get(tail % RING, &mut buf[off..off + n]) };
                    tail += n;
                    off += n;
                    tail_at.0.store(tail as u64, Ordering::Release);
                }
            }
            black_box(&dst);
        });
        pin(0);
        let t0 = Instant::now();
        let mut head = 0usize;
        for _ in 0..msgs {
            for off in (0..RING_MSG).step_by(CHUNK) {
                // RING is a multiple of CHUNK, so a chunk never crosses the ring's end.
                while head + CHUNK - tail_at.0.load(Ordering::Acquire) as usize > RING {
                    std::hint::spin_loop();
                }
                // SAFETY: the consumer has released these bytes (Acquire above).
                unsafe { ring.put(head % RING, &src[off..off + CHUNK]) };
                head += CHUNK;
                head_at.0.store(head as u64, Ordering::Release);
            }
        }
        while tail_at.0.load(Ordering::Acquire) as usize != head {
            std::hint::spin_loop();
        }
        (msgs * RING_MSG) as f64 / t0.elapsed().as_secs_f64() / 1e6
    });
    drop(storage);
    mbps
}

/// Message size of the both-CPU single-copy probe: the seed experiment's largest.
const SPLIT_MSG: usize = 4 << 20;

/// Two threads on CPUs 0 and 1 each copy their half of a [`SPLIT_MSG`]-byte buffer into another
/// one, over and over, meeting at a barrier after each message: one copy of every byte, by both
/// CPUs at once, the least any design can do to move a message between two buffers (SNOO's split
/// rendezvous between two pool buffers does exactly this). MB/s of messages moved.
fn split_copy_mbps(quick: bool) -> f64 {
    let total: usize = if quick { 64 << 20 } else { 4 << 30 };
    let msgs = total / SPLIT_MSG;
    let half = SPLIT_MSG / 2;
    let src = vec![1u8; SPLIT_MSG];
    let mut dst = vec![0u8; SPLIT_MSG];
    let (src_a, src_b) = src.split_at(half);
    let (dst_a, dst_b) = dst.split_at_mut(half);
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            pin(1 % cpus());
            for _ in 0..msgs {
                dst_b.copy_from_slice(black_box(src_b));
                barrier.wait();
            }
        });
        pin(0);
        let t0 = Instant::now();
        for _ in 0..msgs {
            dst_a.copy_from_slice(black_box(src_a));
            barrier.wait();
        }
        (msgs * SPLIT_MSG) as f64 / t0.elapsed().as_secs_f64() / 1e6
    })
}

/// A thread blocked in `read` on an eventfd (as a SNOO rank asleep on its doorbell), woken by another
/// that writes it after 37 ms (as snoo-bench wake does): median microseconds from the write to the
/// reader running again, over 20 trials.
fn eventfd_wake_us(quick: bool) -> f64 {
    let trials = if quick { 3 } else { 20 };
    // SAFETY: plain syscalls on a descriptor this function owns and closes.
    let fd = unsafe { libc::eventfd(0, 0) };
    assert!(fd >= 0, "eventfd");
    let stamp = AtomicU64::new(0);
    let t0 = Instant::now();
    let mut samples = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            pin(1 % cpus());
            let mut out = Vec::new();
            for _ in 0..trials {
                let mut v = 0u64;
                // SAFETY: reads 8 bytes into `v`.
                unsafe { libc::read(fd, &mut v as *mut u64 as *mut libc::c_void, 8) };
                let now = t0.elapsed().as_nanos() as u64;
                out.push(now.saturating_sub(stamp.load(Ordering::Acquire)) as f64 / 1e3);
            }
            out
        });
        pin(0);
        for _ in 0..trials {
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
    let quick = std::env::args().any(|a| a == "--quick");
    cpus();
    // First, before anything has kept the CPUs busy.
    let wake_idle = eventfd_wake_us(quick);
    let m = memcpy_mbps(quick);
    let c = cacheline_ns(quick);
    // Right after the cache-line probe has kept both CPUs spinning (as limits v1 measured it).
    let w = eventfd_wake_us(quick);
    let r1 = ring_copy_mbps(1, quick);
    let r64 = ring_copy_mbps(64, quick);
    let split = split_copy_mbps(quick);
    let rows = [
        ("memcpy_mbps", m, 1),
        ("cacheline_ns", c, 1),
        ("ring_copy_mbps", r1, 1),
        ("ring_copy_window_mbps", r64, 1),
        ("split_copy_mbps", split, 1),
        ("eventfd_wake_idle_us", wake_idle, 2),
        ("eventfd_wake_us", w, 2),
    ];
    if json {
        let fields: Vec<String> = rows
            .iter()
            .map(|(k, v, p)| format!("\"{k}\":{v:.p$}", p = *p))
            .collect();
        println!("{{{}}}", fields.join(","));
    } else {
        println!("# Machine limits v2");
        for (k, v, p) in rows {
            println!("{k} {v:.p$}");
        }
    }
}
