//! The Rust API's collectives over the real daemon, one thread (and one pool peer) per rank:
//! every collective against a reference computed here, on the world, a duplicate and a split,
//! 1 to 5 ranks, every root, through messages and through the collective areas, sizes from 0 B to 1 MiB, a non-commutative reduction in rank order
//! (whole, and split between the ranks at element boundaries);
//! mismatched counts are errors, not corruption; a rank that leaves makes the others' collective
//! fail instead of hang.

use snoo_mpi::collective::Elements;
use snoo_mpi::{Comm, Error, World};
use snoo_tests::{job_daemon, pattern};
use std::time::{Duration, Instant};

/// An affine map x -> m·x + c as 16 bytes: composition is associative and not commutative.
fn affine(m: u64, c: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&m.to_le_bytes());
    b[8..].copy_from_slice(&c.to_le_bytes());
    b
}

fn parts(b: &[u8]) -> (u64, u64) {
    (
        u64::from_le_bytes(b[..8].try_into().unwrap()),
        u64::from_le_bytes(b[8..16].try_into().unwrap()),
    )
}

/// `inout = a ∘ inout`, element-wise over 16-byte affine maps: (a ∘ b)(x) = a(b(x)).
fn compose(a: &[u8], inout: &mut [u8]) -> snoo_mpi::Result<()> {
    for (x, y) in a.chunks(16).zip(inout.chunks_mut(16)) {
        let ((am, ac), (bm, bc)) = (parts(x), parts(y));
        let r = affine(am.wrapping_mul(bm), am.wrapping_mul(bc).wrapping_add(ac));
        y.copy_from_slice(&r);
    }
    Ok(())
}

/// Rank `r`'s affine maps, `k` of them.
fn maps(r: u32, k: usize) -> Vec<u8> {
    (0..k)
        .flat_map(|i| affine(2 * r as u64 + 3 + i as u64, r as u64 * 7 + i as u64))
        .collect()
}

/// The composition of ranks `from..to`'s maps, in rank order.
fn composed(from: u32, to: u32, k: usize) -> Vec<u8> {
    let mut acc = maps(from, k);
    for r in from + 1..to {
        let mut next = maps(r, k);
        // acc ∘ next: combine(a = acc, inout = next).
        compose(&acc, &mut next).unwrap();
        acc = next;
    }
    acc
}

fn check_comm(c: &Comm<'_>, len: usize) {
    let (me, n) = (c.rank(), c.size());
    let nu = n as usize;
    c.barrier().unwrap();
    for root in 0..n {
        let mut b = if me == root {
            pattern(len, u64::from(root))
        } else {
            vec![0; len]
        };
        c.bcast_bytes(&mut b, root).unwrap();
        assert!(b == pattern(len, u64::from(root)), "bcast from {root}");

        let mine = pattern(len, u64::from(me) + 100);
        let mut all = vec![0u8; if me == root { len * nu } else { 0 }];
        c.gather_bytes(&mine, &mut all, root).unwrap();
        if me == root {
            for r in 0..n {
                let at = r as usize * len;
                assert!(
                    all[at..at + len] == pattern(len, u64::from(r) + 100),
                    "gather"
                );
            }
        }

        let src: Vec<u8> = if me == root {
            (0..n)
                .flat_map(|r| pattern(len, u64::from(r) + 200))
                .collect()
        } else {
            Vec::new()
        };
        let mut got = vec![0u8; len];
        c.scatter_bytes(&src, &mut got, root).unwrap();
        assert!(got == pattern(len, u64::from(me) + 200), "scatter");

        let k = len / 16;
        let mut out = vec![0u8; if me == root { k * 16 } else { 0 }];
        c.reduce_bytes(&maps(me, k), &mut out, root, &mut compose)
            .unwrap();
        if me == root {
            assert!(out == composed(0, n, k), "reduce at {root}");
        }
    }
    let mut all = vec![0u8; len * nu];
    c.allgather_bytes(&pattern(len, u64::from(me)), &mut all)
        .unwrap();
    for r in 0..n {
        let at = r as usize * len;
        assert!(all[at..at + len] == pattern(len, u64::from(r)), "allgather");
    }
    let block = |from: u32, to: u32| pattern(len, u64::from(from) * 64 + u64::from(to));
    let send: Vec<u8> = (0..n).flat_map(|to| block(me, to)).collect();
    let mut recv = vec![0u8; len * nu];
    c.alltoall_bytes(&send, &mut recv).unwrap();
    for r in 0..n {
        let at = r as usize * len;
        assert!(recv[at..at + len] == block(r, me), "alltoall from {r}");
    }
    let k = len / 16;
    let mut out = vec![0u8; k * 16];
    c.allreduce_bytes(&maps(me, k), &mut out, &mut compose)
        .unwrap();
    assert!(out == composed(0, n, k), "allreduce");
    // Split between the ranks at 16-byte elements (from 32 KiB): each rank combines only its
    // slice, always whole maps, and the result is the same.
    let mut parts_seen = 0;
    let maps_shape = Elements {
        unit: 16,
        commutative: false,
    };
    c.allreduce_elements(&maps(me, k), &mut out, Some(maps_shape), &mut |a, b| {
        assert!(
            a.len() % 16 == 0 && a.len() == b.len(),
            "a run of whole elements: {} and {} bytes",
            a.len(),
            b.len()
        );
        if a.len() < k * 16 {
            parts_seen += 1;
        }
        compose(a, b)
    })
    .unwrap();
    assert!(out == composed(0, n, k), "allreduce in slices");
    if n > 1 && k * 16 > 32 << 10 {
        assert!(parts_seen > 0, "{} bytes were not split", k * 16);
    }
    // A commutative sum of 8-byte integers, whose combines may come in any order.
    let words = len / 8;
    let mine: Vec<u8> = (0..words as u64)
        .flat_map(|i| (i * 1000 + u64::from(me)).to_le_bytes())
        .collect();
    let mut sum = vec![0u8; words * 8];
    let sum_shape = Elements {
        unit: 8,
        commutative: true,
    };
    c.allreduce_elements(&mine, &mut sum, Some(sum_shape), &mut |a, b| {
        assert!(a.len() % 8 == 0 && a.len() == b.len(), "whole words");
        for (x, y) in a.chunks(8).zip(b.chunks_mut(8)) {
            let s = u64::from_le_bytes(x.try_into().unwrap())
                .wrapping_add(u64::from_le_bytes(y.try_into().unwrap()));
            y.copy_from_slice(&s.to_le_bytes());
        }
        Ok(())
    })
    .unwrap();
    let ranks = u64::from(n);
    for (i, w) in sum.chunks(8).enumerate() {
        let want = ranks * i as u64 * 1000 + ranks * (ranks - 1) / 2;
        assert_eq!(
            u64::from_le_bytes(w.try_into().unwrap()),
            want,
            "sum word {i}"
        );
    }
    c.scan_bytes(&maps(me, k), &mut out, &mut compose).unwrap();
    assert!(out == composed(0, me + 1, k), "scan");
    let mut ex = vec![7u8; k * 16];
    c.exscan_bytes(&maps(me, k), &mut ex, &mut compose).unwrap();
    if me == 0 {
        assert!(ex.iter().all(|&b| b == 7), "exscan leaves rank 0's buffer");
    } else {
        assert!(ex == composed(0, me, k), "exscan");
    }
}

/// Runs `f` as every rank of an `n`-rank job in a pool sized for the channels only: no heap
/// room for collective areas, so collectives take messages.
fn run_job(tag: &str, n: u32, f: impl Fn(&World) + Sync) {
    let (_d, sock) = job_daemon(tag, n, 64 << 10);
    run_on(&sock, tag, n, f);
}

fn run_on(sock: &std::path::Path, tag: &str, n: u32, f: impl Fn(&World) + Sync) {
    snoo_tests::ranks(sock, tag, n, Duration::from_secs(60), |w| {
        f(&w);
        w.finalize().unwrap();
    });
}

#[test]
fn every_collective_matches_its_reference_on_world_dup_and_split() {
    // Both paths: messages (no heap) and, up to a cell, the collective areas (heaps of 3 MiB).
    for (n, areas) in (1..=5).flat_map(|n| [(n, false), (n, true)]) {
        let tag = format!("coll{n}{}", if areas { "a" } else { "m" });
        let (_d, sock) = if areas {
            snoo_tests::pool_daemon(&tag, n, 16 << 20)
        } else {
            job_daemon(&tag, n, 64 << 10)
        };
        run_on(&sock, &tag, n, |w| {
            for len in [0, 16, 4096, 100 << 10] {
                check_comm(&w.comm(), len);
            }
            let dup = w.dup().unwrap();
            check_comm(&dup, 48);
            // Odd and even ranks, in reverse order.
            let half = w
                .split(Some(w.rank() % 2), -(w.rank() as i32))
                .unwrap()
                .unwrap();
            check_comm(&half, 4096);
            // The world again after the others: nothing of theirs is left in its way.
            check_comm(&w.comm(), 32);
        });
    }
}

#[test]
fn one_mebibyte_collectives() {
    run_job("coll1m", 3, |w| check_comm(&w.comm(), 1 << 20));
}

#[test]
fn mismatched_lengths_are_errors_not_corruption() {
    run_job("collbad", 2, |w| {
        // Rank 0 broadcasts 64 bytes; rank 1 expects 32 (the engine's truncation error) and
        // then 128 (the collective's own length check).
        let mut b = vec![1u8; if w.rank() == 0 { 64 } else { 32 }];
        let r = w.comm().bcast_bytes(&mut b, 0);
        if w.rank() == 1 {
            assert!(matches!(r, Err(Error::Truncate { .. })), "{r:?}");
        } else {
            r.unwrap();
        }
        let mut b = vec![1u8; if w.rank() == 0 { 64 } else { 128 }];
        let r = w.comm().bcast_bytes(&mut b, 0);
        if w.rank() == 1 {
            let e = r.unwrap_err();
            assert!(e.to_string().contains("64 bytes where 128"), "{e}");
        } else {
            r.unwrap();
        }
        // Both go on with a correct one.
        let mut b = vec![w.rank() as u8; 8];
        w.comm().bcast_bytes(&mut b, 0).unwrap();
        assert_eq!(b, vec![0u8; 8]);
    });
}

/// A member that waits long in a collective sleeps on its doorbell instead of spinning, and the
/// member it waits for rings it: rank 0 waits about half a second in each of a Barrier, a Bcast
/// from rank 1 and an Allreduce (all through the collective area) while rank 1 sleeps before
/// joining. Rank 0's thread must use little CPU in them (spinning and yielding took all of the
/// wait: 590 ms of 600), and must return soon after rank 1's call starts: without the ring it
/// would sleep on to the end of its current sleep (slices of 1, 2, 4, … ms up to 200: at 470 ms
/// into the wait, the slice ending at 655 ms).
#[test]
fn a_member_waiting_long_in_a_collective_sleeps() {
    const LATE: Duration = Duration::from_millis(470);
    // A pool with heaps, so that collectives take the area (sized for channels only, as
    // `run_job`'s, they would take messages, whose waits sleep anyway).
    let (_d, sock) = snoo_tests::pool_daemon("collsleep", 2, 16 << 20);
    let joined = std::sync::Mutex::new(None::<Instant>);
    snoo_tests::ranks(&sock, "collsleep", 2, Duration::from_secs(60), |w| {
        let c = w.comm();
        c.barrier().unwrap();
        for kind in ["barrier", "bcast", "allreduce"] {
            let mut b = [w.rank() as u8; 64];
            let mut out = [0u8; 64];
            let mut call = || match kind {
                "barrier" => c.barrier(),
                "bcast" => c.bcast_bytes(&mut b, 1),
                _ => c.allreduce_bytes(&[1u8; 64], &mut out, &mut |a, b| {
                    b.iter_mut().zip(a).for_each(|(x, y)| *x += y);
                    Ok(())
                }),
            };
            if w.rank() == 1 {
                std::thread::sleep(LATE);
                *joined.lock().unwrap() = Some(Instant::now());
                call().unwrap();
            } else {
                let (cpu, wall) = (snoo_tests::thread_cpu_time(), Instant::now());
                call().unwrap();
                let (cpu, wall) = (snoo_tests::thread_cpu_time() - cpu, wall.elapsed());
                let late = joined
                    .lock()
                    .unwrap()
                    .take()
                    .expect("rank 1 joined")
                    .elapsed();
                eprintln!("{kind}: waited {wall:?}, {cpu:?} of CPU, {late:?} after rank 1 joined");
                assert!(
                    cpu < LATE / 3,
                    "{kind}: {cpu:?} of CPU in {wall:?} waiting, as if spinning"
                );
                assert!(
                    late < Duration::from_millis(100),
                    "{kind} returned {late:?} after rank 1 joined: not rung"
                );
            }
            // Nothing else follows rank 1's late call: the next collective starts together.
            c.barrier().unwrap();
            if kind == "bcast" {
                assert_eq!(b, [1u8; 64]);
            }
            if kind == "allreduce" {
                assert_eq!(out, [2u8; 64]);
            }
        }
        w.finalize().unwrap();
    });
}

/// As a rank of `a_killed_rank_fails_the_others_collectives` (this test binary run again, with
/// `SNOO_COLL_RANK` set): collectives in a loop until one fails, then report and wait to be
/// killed (so that no second departure muddles the others' view).
fn killed_rank_child() {
    let rank: u32 = std::env::var("SNOO_COLL_RANK").unwrap().parse().unwrap();
    let sock = std::path::PathBuf::from(std::env::var("SNOO_SOCKET").unwrap());
    let w = snoo_tests::join_rank(&sock, "collkill", rank, 3, Duration::from_secs(60));
    println!("COLL running");
    let mut b = vec![0u8; 1 << 20];
    let mut calls = 0u64;
    let e = loop {
        calls += 1;
        let mut out = [0u8; 64];
        if let Err(e) = w
            .comm()
            .allreduce_bytes(&[1u8; 64], &mut out, &mut |_, _| Ok(()))
        {
            break e;
        }
        if let Err(e) = w.comm().bcast_bytes(&mut b, 2) {
            break e;
        }
    };
    println!("COLL failed {e:?} after {calls} calls");
    std::thread::sleep(Duration::from_secs(600));
}

/// A rank SIGKILLed in the middle of collectives (a 1 MiB broadcast from it, a reduction): both
/// survivors' calls fail with PEER_DEAD naming it, including the one that only waits on the
/// other survivor (whose own call failed), instead of waiting for its timeout.
#[test]
fn a_killed_rank_fails_the_others_collectives() {
    if std::env::var("SNOO_COLL_RANK").is_ok() {
        return killed_rank_child();
    }
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let (_d, sock) = job_daemon("collkill", 3, 64 << 10);
    let exe = std::env::current_exe().unwrap();
    let mut kids: Vec<_> = (0..3)
        .map(|r| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "a_killed_rank_fails_the_others_collectives",
                    "--nocapture",
                ])
                .env("SNOO_COLL_RANK", r.to_string())
                .env("SNOO_SOCKET", &sock)
                .env("SNOO_TIMEOUT", "60")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let (tx, rx) = std::sync::mpsc::channel();
    for (r, k) in kids.iter_mut().enumerate() {
        let out = k.stdout.take().unwrap();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(l) = line.strip_prefix("COLL ") {
                    let _ = tx.send((r, Instant::now(), l.to_string()));
                }
            }
        });
    }
    for _ in 0..3 {
        let (_, _, l) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("ranks start");
        assert_eq!(l, "running");
    }
    std::thread::sleep(Duration::from_millis(300));
    kids[2].kill().unwrap();
    let killed = Instant::now();
    kids[2].wait().unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let (r, at, l) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("both survivors report a failure, no hang");
        eprintln!(
            "rank {r}: {l} ({:?} after the kill)",
            at.duration_since(killed)
        );
        assert!(l.starts_with("failed PeerDead(2)"), "rank {r}: {l}");
        // "Within a second" is the goal; allow for a loaded machine.
        assert!(
            at.duration_since(killed) < Duration::from_secs(10),
            "rank {r}"
        );
        seen.push(r);
    }
    for mut k in kids.into_iter().take(2) {
        let _ = k.kill();
        let _ = k.wait();
    }
}
