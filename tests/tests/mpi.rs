//! SNOO_MPI semantics over the real daemon. Each rank is a thread with its own device connection,
//! so every rank is a separate peer of the pool, exactly as separate processes or VMs would be.

use snoo_common::job::{JobLayout, MAX_RING};
use snoo_mpi::device::SocketDevice;
use snoo_mpi::{Error, World};
use snoo_tests::{job_daemon, pattern, try_join};
use std::path::Path;
use std::time::Duration;

fn job<R: Send>(tag: &str, n: u32, ring: usize, f: impl Fn(&World) -> R + Sync) -> Vec<R> {
    let (_d, sock) = job_daemon(tag, n, ring);
    ranks(&sock, tag, n, f)
}

/// Runs `f` as every rank of an `n`-rank job on the pool at `sock` (see [`snoo_tests::ranks`]),
/// and finalizes each rank after.
fn ranks<R: Send>(sock: &Path, tag: &str, n: u32, f: impl Fn(&World) -> R + Sync) -> Vec<R> {
    snoo_tests::ranks(sock, tag, n, Duration::from_secs(60), |world| {
        let out = f(&world);
        world.finalize().unwrap();
        out
    })
}

/// A non-blocking send to a receiver asleep in a wait wakes it at once, not at the sender's next
/// call: the sender computes (sleeps) 0.5 s between its isend and its wait, as a program
/// overlapping a send does. Rank 1 must have its message within 50 ms of the isend, three times
/// (a send waiting in its batch arrived when rank 1's own sleep ended, up to 200 ms later).
#[test]
fn a_nonblocking_send_rings_a_sleeping_receiver_at_once() {
    let sent = std::sync::Mutex::new(None::<std::time::Instant>);
    job("isendwake", 2, 64 << 10, |w| {
        for round in 0..3u8 {
            w.comm().barrier().unwrap();
            if w.rank() == 0 {
                // Rank 1 has been waiting long enough to sleep in long slices.
                std::thread::sleep(Duration::from_millis(300));
                let data = [round; 8];
                w.scope(|s| {
                    *sent.lock().unwrap() = Some(std::time::Instant::now());
                    let r = s.isend(&data, 1, 5).unwrap();
                    std::thread::sleep(Duration::from_millis(500));
                    s.wait(r).unwrap();
                });
            } else {
                let mut got = [0u8; 8];
                w.recv(&mut got, Some(0), Some(5)).unwrap();
                let late = sent.lock().unwrap().take().expect("rank 0 sent").elapsed();
                assert_eq!(got, [round; 8]);
                assert!(
                    late < Duration::from_millis(50),
                    "round {round}: the message came {late:?} after the isend"
                );
            }
        }
    });
}

#[test]
fn ping_pong_every_path_and_size() {
    let inline = snoo_mpi::INLINE_MAX;
    let ring = 64 << 10;
    let sizes = [
        0,
        1,
        7,
        8,
        9,
        inline - 1,
        inline,
        inline + 1,
        ring - 1,
        ring,
        ring + 1,
        64 << 10,
        1 << 20,
        16 << 20,
    ];
    job("pingpong", 2, ring, |w| {
        for (i, &len) in sizes.iter().enumerate() {
            let data = pattern(len, i as u64);
            let mut buf = vec![0u8; len];
            if w.rank() == 0 {
                w.send(&data, 1, i as i32).unwrap();
                let st = w.recv(&mut buf, Some(1), Some(i as i32)).unwrap();
                assert_eq!((st.source, st.tag, st.bytes), (1, i as i32, len));
            } else {
                let st = w.recv(&mut buf, Some(0), Some(i as i32)).unwrap();
                assert_eq!(st.bytes, len);
                assert!(buf == data, "payload of {len} bytes corrupted");
                w.send(&buf, 0, i as i32).unwrap();
            }
            assert!(
                w.rank() == 1 || buf == data,
                "echo of {len} bytes corrupted"
            );
        }
    });
}

#[test]
fn big_message_through_a_small_ring_and_typed_buffers() {
    job("big", 2, 16 << 10, |w| {
        let len = 256 << 20;
        if w.rank() == 0 {
            let data: Vec<u64> = (0..len as u64 / 8).collect();
            w.send(&data, 1, 5).unwrap();
        } else {
            let mut buf = vec![0u64; len / 8];
            let st = w.recv(&mut buf, Some(0), Some(5)).unwrap();
            assert_eq!(st.count::<u64>(), len / 8);
            assert!(buf.iter().enumerate().all(|(i, &v)| v == i as u64));
        }
    });
}

#[test]
fn four_rank_ring_and_any_source_fan_in() {
    job("ring4", 4, MAX_RING, |w| {
        let (r, n) = (w.rank(), w.size());
        let next = (r + 1) % n;
        let prev = (r + n - 1) % n;
        let token = pattern(100_000, r.into());
        let mut got = vec![0u8; 100_000];
        if r == 0 {
            w.send(&token, next, 1).unwrap();
            w.recv(&mut got, Some(prev), Some(1)).unwrap();
        } else {
            w.recv(&mut got, Some(prev), Some(1)).unwrap();
            w.send(&token, next, 1).unwrap();
        }
        assert!(got == pattern(100_000, prev.into()));
        // Fan-in: everyone sends its rank to 0, which takes them in any order.
        if r == 0 {
            let mut seen = vec![false; n as usize];
            for _ in 1..n {
                let mut v = [0u32; 1];
                let st = w.recv(&mut v, None, None).unwrap();
                assert_eq!(v[0], st.source);
                assert_eq!(st.tag, 9);
                seen[st.source as usize] = true;
            }
            assert!(seen[1..].iter().all(|&s| s));
        } else {
            w.send(&[r], 0, 9).unwrap();
        }
    });
}

#[test]
fn order_is_kept_across_paths_and_unexpected_messages() {
    job("order", 2, 32 << 10, |w| {
        let lens = [5usize, 300_000, 1, 0, 70_000, 8, 1 << 20, 3];
        if w.rank() == 0 {
            for (i, &l) in lens.iter().enumerate() {
                w.send(&pattern(l, i as u64), 1, 3).unwrap();
            }
            w.send(&[1u8], 1, 4).unwrap();
        } else {
            // Take a later message with another tag first: the tag-3 ones queue as unexpected.
            let mut one = [0u8; 1];
            w.recv(&mut one, Some(0), Some(4)).unwrap();
            for (i, &l) in lens.iter().enumerate() {
                let probe = w.probe(Some(0), Some(3)).unwrap();
                assert_eq!(probe.bytes, l, "probe sees message {i} next");
                let mut buf = vec![0u8; l];
                let st = w.recv(&mut buf, Some(0), Some(3)).unwrap();
                assert_eq!(st.bytes, l, "message {i} arrived in order");
                assert!(buf == pattern(l, i as u64));
            }
        }
    });
}

#[test]
fn hundreds_of_outstanding_requests_and_self_sends() {
    job("nonblocking", 2, 64 << 10, |w| {
        let peer = 1 - w.rank();
        let n = 300;
        let outgoing: Vec<Vec<u8>> = (0..n)
            .map(|i| pattern(i * 37 % 5000, i as u64 + 100 * w.rank() as u64))
            .collect();
        let mut incoming: Vec<Vec<u8>> = (0..n).map(|i| vec![0u8; i * 37 % 5000]).collect();
        w.scope(|s| {
            let mut reqs = Vec::new();
            for (i, buf) in incoming.iter_mut().enumerate() {
                reqs.push(s.irecv(buf, Some(peer), Some(i as i32)).unwrap());
            }
            for (i, buf) in outgoing.iter().enumerate() {
                reqs.push(s.isend(buf, peer, i as i32).unwrap());
            }
            let st = s.wait_all(reqs).unwrap();
            assert_eq!(st.iter().flatten().count(), n);
        });
        for (i, buf) in incoming.iter().enumerate() {
            assert!(
                *buf == pattern(i * 37 % 5000, i as u64 + 100 * peer as u64),
                "message {i}"
            );
        }
        // Self-send: buffered, then received.
        w.send(&[42i32, 43], w.rank(), 77).unwrap();
        let mut v = [0i32; 2];
        let st = w.recv(&mut v, Some(w.rank()), Some(77)).unwrap();
        assert_eq!((v, st.source), ([42, 43], w.rank()));
    });
}

#[test]
fn truncation_and_bad_arguments_are_errors() {
    job("trunc", 2, 64 << 10, |w| {
        if w.rank() == 0 {
            w.send(&[7u8; 10], 1, 1).unwrap();
            w.send(&pattern(200_000, 1), 1, 2).unwrap();
            w.send(&[1u8], 1, 3).unwrap();
            assert!(matches!(w.send(&[1u8], 5, 1), Err(Error::Rank { .. })));
            assert!(matches!(w.send(&[1u8], 1, -1), Err(Error::Tag(_))));
        } else {
            let mut small = [0u8; 4];
            let e = w.recv(&mut small, Some(0), Some(1)).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Truncate {
                        incoming: 10,
                        capacity: 4
                    }
                ),
                "{e}"
            );
            assert_eq!(small, [7; 4]);
            let mut mid = vec![0u8; 1000];
            let e = w.recv(&mut mid, Some(0), Some(2)).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Truncate {
                        incoming: 200_000,
                        capacity: 1000
                    }
                ),
                "{e}"
            );
            assert!(mid == pattern(200_000, 1)[..1000]);
            // The stream after a truncated message is intact.
            let mut one = [0u8; 1];
            w.recv(&mut one, Some(0), Some(3)).unwrap();
            assert_eq!(one, [1]);
        }
    });
}

#[test]
fn a_pool_hosts_successive_jobs_and_replaces_a_dead_one() {
    let (_d, sock) = job_daemon("successive", 2, 64 << 10);
    let exchange = |w: &World| {
        let peer = 1 - w.rank();
        w.send(&[w.rank() as u8; 300], peer, 1).unwrap();
        let mut got = [0u8; 300];
        w.recv(&mut got, Some(peer), Some(1)).unwrap();
        assert_eq!(got, [peer as u8; 300]);
    };
    // Two jobs one after the other: Finalize frees the pool for the next.
    ranks(&sock, "successive", 2, exchange);
    ranks(&sock, "successive", 2, exchange);

    // A job whose only member died without Finalize (its peer left the pool) is replaced.
    {
        use snoo_common::job::{
            job_state, rank_state, JOB_STATE, RANK_GENERATION, RANK_PEER, RANK_STATE,
        };
        use snoo_common::layout::PoolHeader;
        use snoo_mpi::device::Device;
        use std::sync::atomic::Ordering;
        let dev = SocketDevice::connect(&sock, Duration::from_secs(10)).unwrap();
        let (hdr, info) = PoolHeader::open(dev.shm()).unwrap();
        let l = JobLayout::new(&info.geometry, 2).unwrap();
        let shm = dev.shm();
        let (_, generation) = hdr.peer(dev.own_id().into()).unwrap();
        let slot = l.rank_slot(0).unwrap();
        shm.u32_at(slot + RANK_PEER)
            .unwrap()
            .store(dev.own_id().into(), Ordering::Relaxed);
        shm.u64_at(slot + RANK_GENERATION)
            .unwrap()
            .store(generation, Ordering::Relaxed);
        shm.u32_at(slot + RANK_STATE)
            .unwrap()
            .store(rank_state::CLAIMED, Ordering::Release);
        assert_eq!(
            shm.u32_at(l.header + JOB_STATE)
                .unwrap()
                .load(Ordering::Acquire),
            job_state::FREE
        );
        shm.u32_at(l.header + JOB_STATE)
            .unwrap()
            .store(job_state::RUNNING, Ordering::Release);
        // (a "job" is now running with rank 0 held by this peer; it dies here)
        let id = dev.own_id();
        drop(dev);
        // Wait until the daemon has marked it dead, so the ranks below meet a job whose member
        // is already dead (a death racing the joins is the check in `wait_for_ranks`).
        let watch = SocketDevice::connect(&sock, Duration::from_secs(10)).unwrap();
        let (hdr, _) = PoolHeader::open(watch.shm()).unwrap();
        let t = std::time::Instant::now();
        while matches!(hdr.peer(id.into()), Some((snoo_common::layout::PeerState::Alive, g)) if g == generation)
        {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the daemon never saw it leave"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    ranks(&sock, "successive", 2, exchange);
}

#[test]
fn init_errors_are_clear() {
    let (_d, sock) = job_daemon("initerr", 2, 64 << 10);
    let join = |name: &str, size: Option<u32>, rank: Option<u32>| {
        try_join(&sock, name, rank, size, Duration::from_millis(300))
            .err()
            .expect("join must fail")
    };
    assert!(matches!(join("other", Some(2), None), Error::NoPool { .. }));
    assert!(matches!(
        join("initerr", Some(2), Some(2)),
        Error::Rank { .. }
    ));
    let e = join("initerr", Some(64), None);
    assert!(matches!(e, Error::PoolTooSmall(_)), "{e}");
    assert!(e.to_string().contains("snoo-hostd --size"), "{e}");
    let e = join("initerr", Some(2), None);
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    assert!(e.to_string().contains("1 of 2 ranks"), "{e}");
}

/// Both ranks send far more than their mailbox and ring hold before receiving anything (legal
/// with eager buffering, MPI's "unsafe" pattern): unmatched messages are left in the mailbox and
/// ring while nobody wants them, so this only completes because an idle wait buffers them. Then a
/// receive posted late takes a message the receiver never buffered, straight from the ring.
#[test]
fn flooding_before_receiving_does_not_deadlock() {
    let n_small = 3000u32; // 3000 x 3 words: far beyond the 1024-word mailbox
    let n_big = 40u32; // 40 x 20 KiB: far beyond the 64 KiB ring
    job("flood", 2, 64 << 10, |w| {
        let peer = 1 - w.rank();
        for i in 0..n_small {
            w.send(&i.to_le_bytes(), peer, 1).unwrap();
        }
        for i in 0..n_big {
            w.send(&pattern(20 << 10, u64::from(i)), peer, 2).unwrap();
        }
        let mut b = [0u8; 4];
        for i in 0..n_small {
            let st = w.recv(&mut b, Some(peer), Some(1)).unwrap();
            assert_eq!((st.bytes, u32::from_le_bytes(b)), (4, i));
        }
        let mut big = vec![0u8; 20 << 10];
        for i in 0..n_big {
            w.recv(&mut big, Some(peer), Some(2)).unwrap();
            assert!(big == pattern(20 << 10, u64::from(i)), "big message {i}");
        }
        // The late receive: rank 0 sends after rank 1 has been busy elsewhere for a while.
        if w.rank() == 0 {
            w.send(&pattern(30 << 10, 99), 1, 3).unwrap();
        } else {
            std::thread::sleep(Duration::from_millis(50));
            let mut late = vec![0u8; 30 << 10];
            let st = w.recv(&mut late, Some(0), Some(3)).unwrap();
            assert_eq!(st.bytes, 30 << 10);
            assert!(late == pattern(30 << 10, 99), "late message");
        }
    });
}

/// The small-message fast path (a receive that takes the head of its source's mailbox straight
/// into its buffer) must never break MPI's rules: a message with another tag is skipped and
/// queued, later receives still match in send order, a receive completes at post time only with
/// its own message, and a message too long for the buffer is a truncation, as on the general path.
#[test]
fn small_receives_on_the_fast_path_keep_mpi_order() {
    job("fastpath", 2, 64 << 10, |w| {
        if w.rank() == 0 {
            for (tag, v) in [(1, 10u64), (2, 20), (1, 11), (3, 30), (4, 40)] {
                w.send(&[v], 1, tag).unwrap();
            }
            w.send(&[7u8; 16], 1, 5).unwrap();
            // Wait until rank 1 has taken everything, so its Irecvs below find their messages
            // already in the mailbox.
            let mut ack = [0u8; 1];
            w.recv(&mut ack, Some(1), Some(9)).unwrap();
        } else {
            let mut v = [0u64; 1];
            // Tag 2 is behind a tag-1 message: that one is queued, not lost or reordered.
            let st = w.recv(&mut v, Some(0), Some(2)).unwrap();
            assert_eq!((st.tag, v[0]), (2, 20));
            w.recv(&mut v, Some(0), Some(1)).unwrap();
            assert_eq!(v[0], 10, "first tag-1 message first");
            w.recv(&mut v, Some(0), Some(1)).unwrap();
            assert_eq!(v[0], 11);
            // Wait until the rest is surely there, then post receives for it.
            std::thread::sleep(Duration::from_millis(50));
            let (mut a, mut b) = ([0u64; 1], [0u64; 1]);
            w.scope(|s| {
                let ra = s.irecv(&mut a, Some(0), Some(3)).unwrap();
                let rb = s.irecv(&mut b, Some(0), None).unwrap();
                let sa = s.test(&ra).unwrap().expect("its message was waiting");
                let sb = s.wait(rb).unwrap().unwrap();
                assert_eq!((sa.unwrap().tag, sb.tag), (3, 4));
            });
            assert_eq!((a[0], b[0]), (30, 40));
            let mut short = [0u8; 8];
            match w.recv(&mut short, Some(0), Some(5)) {
                Err(Error::Truncate { incoming, capacity }) => {
                    assert_eq!((incoming, capacity), (16, 8))
                }
                other => panic!("expected a truncation, got {other:?}"),
            }
            assert_eq!(short, [7u8; 8]);
            w.send(&[1u8], 0, 9).unwrap();
        }
    });
}

#[test]
fn medium_receives_straight_from_the_ring_keep_mpi_order() {
    // Ring messages up to DIRECT_RING_MAX that are all in the ring are taken straight from it
    // (no matcher, no stream); larger ones, and any that must wait behind another, are not.
    let max = snoo_mpi::DIRECT_RING_MAX;
    let msgs = [
        (1, 200),
        (2, 5000),
        (1, max),
        (3, max + 1),
        (1, 40),
        (4, 3000),
    ];
    job("direct-ring", 2, 64 << 10, |w| {
        if w.rank() == 0 {
            for (i, &(tag, len)) in msgs.iter().enumerate() {
                w.send(&pattern(len, i as u64), 1, tag).unwrap();
            }
            w.send(&pattern(1000, 99), 1, 5).unwrap();
        } else {
            let mut got = vec![Vec::new(); msgs.len()];
            let mut recv = |i: usize, room: usize| {
                let (tag, len) = msgs[i];
                let mut buf = vec![0u8; room];
                let st = w
                    .recv(&mut buf, Some(0), Some(tag))
                    .unwrap_or_else(|e| panic!("message {i}: {e:?}"));
                assert_eq!((st.tag, st.bytes), (tag, len), "message {i}");
                buf.truncate(len);
                got[i] = buf;
            };
            // In order, one into a larger buffer; then tag 3 while a tag-1 message waits
            // before it (queued, then taken from the queue).
            for (i, room) in [
                (0, 300),
                (1, 5000),
                (3, max + 1),
                (2, max),
                (4, 40),
                (5, 3000),
            ] {
                recv(i, room);
            }
            for (i, d) in got.iter().enumerate() {
                assert!(*d == pattern(msgs[i].1, i as u64), "message {i} corrupted");
            }
            // A medium message into a short buffer is a truncation, as on the general path.
            let mut short = vec![0u8; 999];
            match w.recv(&mut short, Some(0), Some(5)) {
                Err(Error::Truncate { incoming, capacity }) => {
                    assert_eq!((incoming, capacity), (1000, 999))
                }
                other => panic!("expected a truncation, got {other:?}"),
            }
            assert!(short[..] == pattern(1000, 99)[..999]);
        }
    });
}

#[test]
fn receives_posted_behind_earlier_ones_keep_mpi_order() {
    // A receive posted while earlier ones from the same rank still wait first lets what has
    // arrived complete those, then may take its own message straight from the mailbox. Tags and
    // paths are mixed so that the arrivals match the earlier receives out of arrival order, some
    // go to the unexpected queue on the way, and the window is posted both before and after
    // its messages are there.
    let msgs = [
        (2, 8),
        (1, 1),
        (1, 64),
        (3, 200),
        (1, 0),
        (2, 5000),
        (3, 100),
    ];
    // Receives in posting order: (tag, index of the message MPI's rules give it).
    let recvs = [(1, 1), (2, 0), (1, 2), (3, 3), (1, 4), (3, 6), (2, 5)];
    job("behind", 2, 64 << 10, |w| {
        for round in 0..2u64 {
            if w.rank() == 0 {
                if round == 1 {
                    // Let rank 1 post its whole window before anything arrives.
                    std::thread::sleep(Duration::from_millis(30));
                }
                for (i, &(tag, len)) in msgs.iter().enumerate() {
                    w.send(&pattern(len, 10 * round + i as u64), 1, tag)
                        .unwrap();
                }
                w.recv(&mut [0u8; 0], Some(1), Some(9)).unwrap();
            } else {
                if round == 0 {
                    // Everything is in the mailbox (and ring) before the first receive.
                    std::thread::sleep(Duration::from_millis(30));
                }
                let mut bufs: Vec<Vec<u8>> =
                    recvs.iter().map(|&(_, m)| vec![0u8; msgs[m].1]).collect();
                w.scope(|s| {
                    let reqs: Vec<_> = bufs
                        .iter_mut()
                        .zip(recvs)
                        .map(|(b, (tag, _))| s.irecv(&mut b[..], Some(0), Some(tag)).unwrap())
                        .collect();
                    for (st, &(tag, m)) in s.wait_all(reqs).unwrap().iter().zip(&recvs) {
                        let st = st.expect("a receive reports its status");
                        assert_eq!((st.tag, st.bytes), (tag, msgs[m].1), "round {round}");
                    }
                });
                for (b, &(_, m)) in bufs.iter().zip(&recvs) {
                    let want = pattern(msgs[m].1, 10 * round + m as u64);
                    assert!(
                        *b == want,
                        "round {round}: message {m} went to the wrong receive"
                    );
                }
                w.send(&[0u8; 0], 0, 9).unwrap();
            }
        }
        // Same tag: the first receive is posted before its message, the second after both
        // arrived. The second must get the second message, not the one at the mailbox's head.
        if w.rank() == 0 {
            w.recv(&mut [0u8; 0], Some(1), Some(9)).unwrap();
            w.send(&[1u64], 1, 7).unwrap();
            w.send(&[2u64], 1, 7).unwrap();
        } else {
            let (mut a, mut b) = ([0u64; 1], [0u64; 1]);
            w.scope(|s| {
                let ra = s.irecv(&mut a, Some(0), Some(7)).unwrap();
                w.send(&[0u8; 0], 0, 9).unwrap();
                std::thread::sleep(Duration::from_millis(30));
                let rb = s.irecv(&mut b, Some(0), Some(7)).unwrap();
                s.wait_all(vec![ra, rb]).unwrap();
            });
            assert_eq!((a[0], b[0]), (1, 2));
        }
    });
}

#[test]
fn what_a_rank_sent_before_leaving_is_still_received() {
    // Rank 0 sends (inline, medium and streamed ring messages) and leaves the pool at once. Rank
    // 1 first waits for rank 2, long enough for its liveness checks to find rank 0 gone, then
    // receives from rank 0: everything it sent arrives, and only then does a receive from it fail.
    let sizes = [8, 3000, 16 << 10, 100 << 10, 50];
    job("leaver", 3, 256 << 10, |w| match w.rank() {
        0 => {
            for (i, &len) in sizes.iter().enumerate() {
                w.send(&pattern(len, i as u64), 1, i as i32).unwrap();
            }
        }
        2 => {
            std::thread::sleep(Duration::from_millis(200));
            w.send(&[2u8], 1, 7).unwrap();
        }
        _ => {
            let mut one = [0u8; 1];
            w.recv(&mut one, Some(2), Some(7)).unwrap();
            // Message 3 first: message 2 is read into the unexpected queue on the way.
            for i in [0, 1, 3, 2, 4] {
                let len = sizes[i];
                let mut buf = vec![0u8; len];
                let st = w
                    .recv(&mut buf, Some(0), Some(i as i32))
                    .unwrap_or_else(|e| panic!("message {i}: {e:?}"));
                assert_eq!(st.bytes, len);
                assert!(buf == pattern(len, i as u64), "message {i} corrupted");
            }
            let mut more = [0u8; 8];
            match w.recv(&mut more, Some(0), None) {
                Err(Error::PeerDead(0) | Error::PeerFinalized(0)) => {}
                other => panic!("expected the sender to be gone, got {other:?}"),
            }
        }
    });
}

#[test]
fn sends_from_pool_memory_take_the_single_copy_path() {
    use snoo_mpi::RDV_MIN;
    // 16 MiB for 2 ranks: 4 MiB rings, and about 4 MiB of heap per rank.
    let (_d, sock) = snoo_tests::pool_daemon("rdv", 2, 16 << 20);
    let big = 1 << 20;
    ranks(&sock, "rdv", 2, |w| {
        if w.rank() == 0 {
            let mut mem = w.alloc_mem(big).unwrap();
            assert!(mem.iter().all(|&b| b == 0), "zeroed");
            for i in 0..4u64 {
                mem.copy_from_slice(&pattern(big, i));
                // Returns once the receiver has copied it out (FIN): the next round rewrites it.
                w.send(&mem, 1, 1).unwrap();
                w.send(&[i as u8], 1, 2).unwrap();
            }
            mem.copy_from_slice(&pattern(big, 9));
            w.send(&mem, 1, 3).unwrap(); // truncated by the receiver
            w.send(&mem[..RDV_MIN], 1, 4).unwrap(); // a slice of the block, at the threshold
            assert!(matches!(w.alloc_mem(64 << 20), Err(Error::NoMem { .. })));
            // Unlike a ring send (the ring has room for it), a rendezvous is not complete before
            // its receiver has read it (rank 1 makes no SNOO_MPI call for a while); and two
            // sends can come from one block.
            w.scope(|s| {
                let a = s.isend(&mem[..big / 2], 1, 5).unwrap();
                let b = s.isend(&mem[big / 2..], 1, 5).unwrap();
                std::thread::sleep(Duration::from_millis(30));
                assert!(s.test(&a).unwrap().is_none(), "complete before any receive");
                s.wait_all(vec![a, b]).unwrap();
            });
            let other = w.alloc_mem(1000).unwrap();
            drop(mem);
            drop(other);
            // Everything merged back: the first block can be had again.
            let again = w.alloc_mem(big).unwrap();
            assert_eq!(again.len(), big);
        } else {
            let mut buf = vec![0u8; big];
            for i in 0..4u64 {
                let st = w.recv(&mut buf, Some(0), Some(1)).unwrap();
                assert_eq!(st.bytes, big);
                assert!(buf == pattern(big, i), "rendezvous payload {i} corrupted");
                let mut one = [0u8; 1];
                w.recv(&mut one, Some(0), Some(2)).unwrap();
                assert_eq!(one[0], i as u8, "order across paths");
            }
            let mut small = vec![0u8; 1000];
            let e = w.recv(&mut small, Some(0), Some(3)).unwrap_err();
            assert!(
                matches!(e, Error::Truncate { incoming, capacity: 1000 } if incoming == big),
                "{e}"
            );
            assert!(small[..] == pattern(big, 9)[..1000]);
            // Probed first: buffered as an unexpected message, then received from there.
            let st = w.probe(Some(0), Some(4)).unwrap();
            assert_eq!(st.bytes, RDV_MIN);
            let mut part = vec![0u8; RDV_MIN];
            w.recv(&mut part, Some(0), Some(4)).unwrap();
            assert!(part[..] == pattern(big, 9)[..RDV_MIN]);
            std::thread::sleep(Duration::from_millis(100));
            let mut halves = vec![0u8; big];
            let (x, y) = halves.split_at_mut(big / 2);
            w.scope(|s| {
                let a = s.irecv(x, None, Some(5)).unwrap();
                let b = s.irecv(y, Some(0), None).unwrap();
                s.wait_all(vec![a, b]).unwrap();
            });
            assert!(halves == pattern(big, 9));
        }
    });
}

#[test]
fn two_ranks_sending_rendezvous_to_each_other_first_do_not_deadlock() {
    // Both block in a send before either receives (legal with eager buffering): each one's idle
    // wait buffers the other's payload, which answers its FIN.
    let (_d, sock) = snoo_tests::pool_daemon("rdvx", 2, 16 << 20);
    let big = 1 << 20;
    ranks(&sock, "rdvx", 2, |w| {
        let peer = 1 - w.rank();
        let mut mem = w.alloc_mem(big).unwrap();
        mem.copy_from_slice(&pattern(big, w.rank().into()));
        for _ in 0..3 {
            w.send(&mem, peer, 8).unwrap();
        }
        let mut buf = vec![0u8; big];
        for _ in 0..3 {
            w.recv(&mut buf, Some(peer), Some(8)).unwrap();
            assert!(buf == pattern(big, peer.into()));
        }
    });
}

#[test]
fn pool_to_pool_rendezvous_splits_the_copy_between_both_ranks() {
    use snoo_mpi::SPLIT_MIN;
    // Sizes around the split threshold and the page-rounded share: below it (not split), at it,
    // odd lengths, and a receive buffer larger than the message.
    let sizes = [
        SPLIT_MIN - 1,
        SPLIT_MIN,
        SPLIT_MIN + 4095,
        (1 << 20) + 12345,
        3 << 20,
    ];
    let big = 3 << 20;
    let (_d, sock) = snoo_tests::pool_daemon("split", 2, 32 << 20);
    ranks(&sock, "split", 2, |w| {
        let peer = 1 - w.rank();
        let mut tx = w.alloc_mem(big).unwrap();
        let mut rx = w.alloc_mem(big + 4096).unwrap();
        for (i, &n) in sizes.iter().enumerate() {
            let seed = (i as u64) << 8 | u64::from(w.rank());
            tx[..n].copy_from_slice(&pattern(n, seed));
            rx.fill(0xEE);
            // Both directions at once: each rank has a split rendezvous in flight as sender and
            // as receiver, so FIN, SHARE and WROTE words of both cross in each mailbox.
            let st = w.scope(|s| {
                let r = s.irecv(&mut rx[..], Some(peer), Some(6)).unwrap();
                let t = s.isend(&tx[..n], peer, 6).unwrap();
                s.wait_all(vec![r, t]).unwrap()
            });
            let st = st[0].expect("a receive has a status");
            assert_eq!(st.bytes, n);
            let want = pattern(n, (i as u64) << 8 | u64::from(peer));
            assert!(rx[..n] == want[..], "size {n}: payload corrupted");
            assert!(
                rx[n..].iter().all(|&b| b == 0xEE),
                "size {n}: wrote past the message"
            );
            // A blocking receive into pool memory, and order against a small message behind it.
            if w.rank() == 0 {
                w.send(&tx[..n], 1, 7).unwrap();
                w.send(&[i as u8], 1, 8).unwrap();
            } else {
                rx.fill(0);
                w.recv(&mut rx[..n], Some(0), Some(7)).unwrap();
                assert!(
                    rx[..n] == pattern(n, (i as u64) << 8)[..],
                    "size {n}: blocking"
                );
                let mut one = [0u8; 1];
                w.recv(&mut one, Some(0), Some(8)).unwrap();
                assert_eq!(one[0], i as u8);
            }
        }
        // Truncated into pool memory: not split (the sender would write past the buffer), the
        // prefix still arrives.
        if w.rank() == 0 {
            w.send(&tx[..1 << 20], 1, 9).unwrap();
        } else {
            let cap = SPLIT_MIN + 100;
            let e = w.recv(&mut rx[..cap], Some(0), Some(9)).unwrap_err();
            assert!(matches!(e, Error::Truncate { .. }), "{e}");
            let last = sizes.len() - 1;
            assert!(rx[..cap] == pattern(1 << 20, (last as u64) << 8)[..cap]);
        }
    });
}

/// A rank whose build speaks another register-word format than the job it joins is refused at
/// Init with a clear error, instead of misreading its peers' messages.
#[test]
fn a_rank_of_another_wire_format_is_refused() {
    use snoo_common::job::{job_state, JOB_STATE, JOB_WIRE};
    use snoo_common::layout::PoolHeader;
    use snoo_common::register::WIRE_VERSION;
    use snoo_mpi::device::Device;
    use std::sync::atomic::Ordering;
    let (_d, sock) = job_daemon("wire", 2, 64 << 10);
    let join = |rank: u32, timeout: Duration| try_join(&sock, "wire", Some(rank), Some(2), timeout);
    std::thread::scope(|s| {
        // Rank 0 forms the job and waits for rank 1.
        let first = s.spawn(|| join(0, Duration::from_secs(3)).err());
        let dev = SocketDevice::connect(&sock, Duration::from_secs(10)).unwrap();
        let (_, info) = PoolHeader::open(dev.shm()).unwrap();
        let l = JobLayout::new(&info.geometry, 2).unwrap();
        let word = |off: usize| dev.shm().u32_at(l.header + off).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while word(JOB_STATE).load(Ordering::Acquire) != job_state::RUNNING {
            assert!(std::time::Instant::now() < deadline, "the job never formed");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(word(JOB_WIRE).load(Ordering::Acquire), WIRE_VERSION);
        // As if rank 0 were a build of format 1.
        word(JOB_WIRE).store(1, Ordering::Release);
        let e = join(1, Duration::from_secs(1))
            .err()
            .expect("join must fail");
        assert!(matches!(e, Error::Arg(_)), "{e}");
        assert!(
            e.to_string().contains("register-word format 1"),
            "names the other format: {e}"
        );
        assert!(
            first.join().unwrap().is_some(),
            "rank 0 never gets its peer"
        );
    });
}

#[test]
fn duplicates_never_take_each_others_messages_on_any_path() {
    // Small enough ring that 40 KiB streams through it; the sizes cover the inline path, the
    // direct medium path and a streamed ring message.
    let sizes = [3usize, snoo_mpi::INLINE_MAX, 4 << 10, 40 << 10];
    let out = job("dupctx", 3, 16 << 10, |w| {
        let a = w.dup().unwrap();
        let b = a.dup().unwrap();
        let me = w.rank();
        if me == 0 {
            // The same source and tag on all three communicators, in the order a receive on the
            // wrong one would take first.
            for (i, &n) in sizes.iter().enumerate() {
                b.send(&pattern(n, 30 + i as u64), 1, 7)?;
                a.send(&pattern(n, 20 + i as u64), 1, 7)?;
                w.send(&pattern(n, 10 + i as u64), 1, 7)?;
            }
            // Non-blocking sends on a duplicate, to rank 2, which receives on the world first.
            let msgs: Vec<Vec<u8>> = (0..8).map(|i| pattern(100 + i, 40 + i as u64)).collect();
            a.scope(|s| {
                let rs: Vec<_> = msgs.iter().map(|m| s.isend(m, 2, 5).unwrap()).collect();
                s.wait_all(rs).map(|_| ())
            })?;
            w.send(&[9u8], 2, 5)?;
            Ok::<_, Error>(Vec::new())
        } else if me == 1 {
            let mut got = Vec::new();
            for (i, &n) in sizes.iter().enumerate() {
                let mut buf = vec![0u8; 64 << 10];
                // Wildcards on the world: they must pass over the duplicates' messages.
                let st = w.recv(&mut buf, None, None)?;
                got.push((
                    st.source,
                    st.tag,
                    buf[..st.bytes] == pattern(n, 10 + i as u64),
                ));
                assert!(w.iprobe(Some(0), Some(7))?.is_none() || i + 1 < sizes.len());
                let st = a.recv(&mut buf, Some(0), Some(7))?;
                got.push((
                    st.source,
                    st.tag,
                    buf[..st.bytes] == pattern(n, 20 + i as u64),
                ));
                let st = b.recv(&mut buf, Some(0), None)?;
                got.push((
                    st.source,
                    st.tag,
                    buf[..st.bytes] == pattern(n, 30 + i as u64),
                ));
            }
            Ok(got)
        } else {
            let mut one = [0u8; 1];
            // The world's message arrives after eight on the duplicate, from the same source and
            // with the same tag.
            let st = w.recv(&mut one, Some(0), Some(5))?;
            assert_eq!((st.bytes, one[0]), (1, 9));
            let mut got = Vec::new();
            let st = a.probe(Some(0), Some(5))?;
            got.push((st.source, st.tag, st.bytes == 100));
            for i in 0..8 {
                let mut buf = vec![0u8; 200];
                let st = a.recv(&mut buf, Some(0), Some(5))?;
                got.push((
                    st.source,
                    st.tag,
                    buf[..st.bytes] == pattern(100 + i, 40 + i as u64),
                ));
            }
            // Sends to self on a duplicate are not the world's.
            a.send(&[1u8], 2, 3)?;
            assert!(w.iprobe(Some(2), Some(3))?.is_none());
            assert!(a.iprobe(Some(2), Some(3))?.is_some());
            a.recv(&mut one, Some(2), Some(3))?;
            Ok(got)
        }
    });
    let out: Vec<_> = out.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(out[1].len(), 3 * sizes.len());
    assert!(
        out[1].iter().all(|&(s, t, ok)| s == 0 && t == 7 && ok),
        "{:?}",
        out[1]
    );
    assert_eq!(out[2].len(), 9);
    assert!(
        out[2].iter().all(|&(s, t, ok)| s == 0 && t == 5 && ok),
        "{:?}",
        out[2]
    );
}

#[test]
fn split_with_odd_sizes_reversed_keys_and_nested_communicators() {
    let out = job(
        "commsplit",
        5,
        64 << 10,
        |w| -> Result<Vec<String>, Error> {
            let me = w.rank();
            let mut log = Vec::new();
            // Even and odd world ranks, each in reverse order; rank 1 asks for no communicator.
            let color = (me != 1).then_some(me % 2);
            let half = w.split(color, -(me as i32))?;
            let Some(half) = half else {
                assert_eq!(me, 1);
                // Still takes part in the world's later creations.
                let dup = w.dup()?;
                dup.send(&[me], 0, 0)?;
                return Ok(log);
            };
            // Evens {4, 2, 0} -> ranks 0, 1, 2; odds {3} -> rank 0 (1 took none).
            let (n, r) = (half.size(), half.rank());
            let want = if me % 2 == 0 {
                (3, (4 - me) / 2)
            } else {
                (1, 0)
            };
            assert_eq!((n, r), want, "world rank {me}");
            // A ring on the half, with the world's ranks in the payload, and the same tag in flight
            // on the world at once.
            let next = (r + 1) % n;
            let prev = (r + n - 1) % n;
            half.send(&[me], next, 3)?;
            w.send(&[me + 100], me, 3)?;
            let mut got = [0u32];
            let st = half.recv(&mut got, None, None)?;
            log.push(format!(
                "half {r}/{n}: from {} payload {}",
                st.source, got[0]
            ));
            assert_eq!(st.source, prev);
            w.recv(&mut got, Some(me), Some(3))?;
            assert_eq!(got[0], me + 100);
            // The evens split again: keep {4, 0} in world order (key 0, ties by rank in `half`).
            let mut nested = None;
            if me % 2 == 0 {
                nested = half.split((me != 2).then_some(7), 0)?;
                if let Some(q) = &nested {
                    assert_eq!((q.size(), q.rank()), (2, u32::from(me == 0)));
                }
            }
            // Every world rank duplicates the world: its id must differ from the nested one even
            // though only the evens made that.
            let dup = w.dup()?;
            if me == 0 {
                let mut from = Vec::new();
                for _ in 1..5 {
                    let st = dup.recv(&mut got, None, Some(0))?;
                    from.push((st.source, got[0]));
                }
                from.sort_unstable();
                assert_eq!(from, vec![(1, 1), (2, 2), (3, 3), (4, 4)]);
                let q = nested
                    .as_ref()
                    .expect("rank 0 is in the nested communicator");
                let st = q.recv(&mut got, None, None)?;
                log.push(format!("nested from {} payload {}", st.source, got[0]));
                assert_eq!((st.source, got[0]), (0, 4));
            } else {
                dup.send(&[me], 0, 0)?;
                if let Some(q) = &nested {
                    q.send(&[me], 1, 0)?;
                }
            }
            // Non-blocking calls on the half use its ranks too.
            let out = [me];
            let mut inb = [0u32];
            half.scope(|s| {
                let rx = s.irecv(&mut inb, Some(prev), Some(9))?;
                let tx = s.isend(&out, next, 9)?;
                s.wait(tx)?;
                let st = s.wait(rx)?.expect("a receive reports its status");
                assert_eq!(st.source, prev);
                Ok::<_, Error>(())
            })?;
            assert!(
                half.send(&[0u8], n, 0).is_err(),
                "rank {n} is outside a {n}-rank communicator"
            );
            Ok(log)
        },
    );
    for (r, o) in out.into_iter().enumerate() {
        let log = o.unwrap_or_else(|e| panic!("rank {r}: {e}"));
        eprintln!("rank {r}: {log:?}");
    }
}
