//! Soak: 4 ranks (and 16, issue #20) each send to every other rank a stream of messages of random
//! sizes (0 B to 8 MiB) and random tags, mixing blocking and non-blocking calls; receivers check
//! that nothing is lost, reordered or corrupted. Short in CI; `SNOO_SOAK_ROUNDS=N` for a long run.

use snoo_common::job::{JobLayout, MAX_RING};
use snoo_tests::{job_daemon, pool_daemon};
use std::path::Path;
use std::time::{Duration, Instant};

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ceb9fe1a85ec53);
    x ^ (x >> 33)
}

/// Size, tag and content of message `k` from `src` to `dst`: both sides derive them.
fn message(src: u32, dst: u32, k: u32) -> (usize, i32, u64) {
    let h = mix(u64::from(src) << 40 | u64::from(dst) << 32 | u64::from(k));
    let size = match h % 100 {
        0..=69 => (h >> 8) as usize % 1024,
        70..=94 => (h >> 8) as usize % (256 << 10),
        _ => (h >> 8) as usize % (8 << 20),
    };
    (size, ((h >> 40) % 5) as i32, h)
}

fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
}

/// Rounds of a soak: `SNOO_SOAK_ROUNDS`, else `default`.
fn rounds(default: u32) -> u32 {
    std::env::var("SNOO_SOAK_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn four_ranks_random_traffic_nothing_lost_reordered_or_corrupt() {
    let (_d, sock) = job_daemon("soak", 4, MAX_RING);
    soak(&sock, "soak", 4, rounds(25));
}

/// The same at 16 ranks, in the pool snoo-run gives a 16-rank job by default (smaller rings than
/// the 4-rank soak's, so large messages wrap them many times), 240 streams at once.
#[test]
fn sixteen_ranks_random_traffic_nothing_lost_reordered_or_corrupt() {
    let n = 16;
    let (_d, sock) = pool_daemon("soak16", n, JobLayout::default_pool_size(n, 64));
    soak(&sock, "soak16", n, rounds(10));
}

/// `n` ranks, one thread each, on the pool `name` at `sock`: `rounds` rounds of messages from
/// every rank to every other, each received and checked.
fn soak(sock: &Path, name: &str, n: u32, rounds: u32) {
    let start = Instant::now();
    let totals: Vec<(u64, u64)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|r| {
                s.spawn(move || {
                    let w = snoo_tests::join_rank(sock, name, r, n, Duration::from_secs(120));
                    let (mut msgs, mut bytes) = (0u64, 0u64);
                    let mut expect = Vec::new();
                    for k in 0..rounds {
                        // Send this round's message to every other rank, blocking on even rounds,
                        // non-blocking (all at once) on odd ones.
                        let outgoing: Vec<(u32, Vec<u8>, i32)> = (0..n)
                            .filter(|&d| d != r)
                            .map(|d| {
                                let (size, tag, seed) = message(r, d, k);
                                let mut b = vec![0u8; size];
                                fill(&mut b, seed);
                                (d, b, tag)
                            })
                            .collect();
                        if k % 2 == 0 {
                            for (d, b, tag) in &outgoing {
                                w.send(b, *d, *tag).unwrap();
                            }
                        } else {
                            w.scope(|sc| {
                                let reqs: Vec<_> = outgoing
                                    .iter()
                                    .map(|(d, b, tag)| sc.isend(b, *d, *tag).unwrap())
                                    .collect();
                                sc.wait_all(reqs).unwrap();
                            });
                        }
                        // Receive this round's message from every other rank, by its tag, in order:
                        // a lost or overtaking message shows up as a wrong size or content.
                        let sources: Vec<u32> = (0..n).filter(|&x| x != r).collect();
                        let mut bufs: Vec<Vec<u8>> = sources
                            .iter()
                            .map(|&src| vec![0u8; message(src, r, k).0])
                            .collect();
                        if k % 3 == 0 {
                            w.scope(|sc| {
                                let reqs: Vec<_> = bufs
                                    .iter_mut()
                                    .zip(&sources)
                                    .map(|(b, &src)| {
                                        sc.irecv(b, Some(src), Some(message(src, r, k).1)).unwrap()
                                    })
                                    .collect();
                                for st in sc.wait_all(reqs).unwrap() {
                                    let st = st.unwrap();
                                    assert_eq!(
                                        st.bytes,
                                        message(st.source, r, k).0,
                                        "size of {k} from {}",
                                        st.source
                                    );
                                }
                            });
                        } else {
                            for (b, &src) in bufs.iter_mut().zip(&sources) {
                                let st = w.recv(b, Some(src), Some(message(src, r, k).1)).unwrap();
                                assert_eq!(
                                    (st.source, st.bytes),
                                    (src, b.len()),
                                    "message {k} from {src}"
                                );
                            }
                        }
                        for (b, &src) in bufs.iter().zip(&sources) {
                            let (size, _, seed) = message(src, r, k);
                            expect.resize(size, 0);
                            fill(&mut expect, seed);
                            assert!(*b == expect, "message {k} from {src} to {r} corrupted");
                            msgs += 1;
                            bytes += size as u64;
                        }
                    }
                    w.finalize().unwrap();
                    (msgs, bytes)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let msgs: u64 = totals.iter().map(|t| t.0).sum();
    let bytes: u64 = totals.iter().map(|t| t.1).sum();
    assert_eq!(
        msgs,
        u64::from(rounds * n * (n - 1)),
        "every message received"
    );
    eprintln!(
        "soak, {n} ranks: {msgs} messages, {:.1} MiB, 0 lost, 0 reordered, 0 corrupt, in {:?}",
        bytes as f64 / (1 << 20) as f64,
        start.elapsed()
    );
}
