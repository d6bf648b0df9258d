//! A hostile peer: it joins the pool like any VM and scribbles over the mailboxes, rings and header
//! while two real ranks talk. The ranks must never crash (a panic fails these tests), never hang
//! (their waits end by SNOO_TIMEOUT), never touch memory outside the pool or their buffers (every
//! access is bounds-checked), and must report corruption of their channel as an error.

use snoo_common::job::JobLayout;
use snoo_common::layout::PoolHeader;
use snoo_mpi::device::{Device, SocketDevice};
use snoo_mpi::{Error, World};
use snoo_tests::job_daemon;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Phases shared by the ranks and the attacker.
const JOINED: u32 = 2; // both ranks joined (the counter reaches 2)
const SENT: u32 = 3; // rank 0 has published its messages
const GO: u32 = 4; // the attack is done: rank 1 may read

fn wait_for(phase: &AtomicU32, at_least: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while phase.load(Ordering::Acquire) < at_least {
        assert!(Instant::now() < deadline, "phase {at_least} never came");
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Any outcome but a crash or a hang: results, or the errors corruption may cause.
fn only_clean_failures<T>(out: &[Result<T, Error>]) {
    for e in out.iter().filter_map(|o| o.as_ref().err()) {
        assert!(
            matches!(
                e,
                Error::Protocol { .. }
                    | Error::Timeout(_)
                    | Error::Truncate { .. }
                    | Error::PeerDead(_)
                    // The other rank failed first (one of the above) and finalized.
                    | Error::PeerFinalized(_)
            ),
            "{e}"
        );
    }
}

/// Runs two ranks doing `talk` and an attacker doing `attack` on the same pool.
fn scenario<T: Send>(
    tag: &str,
    talk: impl Fn(&World, &AtomicU32) -> T + Sync,
    attack: impl Fn(&SocketDevice, &JobLayout, &AtomicU32, &dyn Fn() -> bool) + Sync,
) -> Vec<T> {
    let (d, sock) = job_daemon(tag, 2, 64 << 10);
    scenario_on(d, sock, tag, talk, attack)
}

/// [`scenario`] on a pool of `size` bytes (room for heaps: `World::alloc_mem`).
fn scenario_sized<T: Send>(
    tag: &str,
    size: u64,
    talk: impl Fn(&World, &AtomicU32) -> T + Sync,
    attack: impl Fn(&SocketDevice, &JobLayout, &AtomicU32, &dyn Fn() -> bool) + Sync,
) -> Vec<T> {
    let (d, sock) = snoo_tests::pool_daemon(tag, 2, size);
    scenario_on(d, sock, tag, talk, attack)
}

fn scenario_on<T: Send>(
    _d: snoo_host::DaemonThread,
    sock: std::path::PathBuf,
    tag: &str,
    talk: impl Fn(&World, &AtomicU32) -> T + Sync,
    attack: impl Fn(&SocketDevice, &JobLayout, &AtomicU32, &dyn Fn() -> bool) + Sync,
) -> Vec<T> {
    let phase = AtomicU32::new(0);
    let started = Instant::now();
    let out = std::thread::scope(|s| {
        let ranks: Vec<_> = (0..2u32)
            .map(|r| {
                let (sock, phase, talk) = (&sock, &phase, &talk);
                s.spawn(move || {
                    let w = snoo_tests::join_rank(sock, tag, r, 2, Duration::from_secs(3));
                    phase.fetch_add(1, Ordering::AcqRel);
                    wait_for(phase, JOINED);
                    let o = talk(&w, phase);
                    let _ = w.finalize();
                    o
                })
            })
            .collect();
        let evil = SocketDevice::connect(&sock, Duration::from_secs(10)).unwrap();
        let (_, info) = PoolHeader::open(evil.shm()).unwrap();
        let l = JobLayout::new(&info.geometry, 2).unwrap();
        wait_for(&phase, JOINED);
        let running = || !ranks.iter().all(|h| h.is_finished());
        attack(&evil, &l, &phase, &running);
        ranks
            .into_iter()
            .map(|h| h.join().expect("a rank panicked"))
            .collect::<Vec<_>>()
    });
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    out
}

/// Rank 0 publishes 50 small messages; rank 1 reads them only after the attack.
fn send_then_read(w: &World, phase: &AtomicU32) -> Result<u32, Error> {
    if w.rank() == 0 {
        for i in 0..50u64 {
            w.send(&[i], 1, 1)?;
        }
        phase.store(SENT, Ordering::Release);
        Ok(50)
    } else {
        wait_for(phase, GO);
        let mut n = 0u64;
        for _ in 0..50 {
            let mut v = [0u64; 1];
            w.recv(&mut v, Some(0), Some(1))?;
            assert_eq!(v[0], n, "messages arrive whole and in order");
            n += 1;
        }
        Ok(n as u32)
    }
}

#[test]
fn garbage_in_a_mailbox_is_a_protocol_error_not_a_crash() {
    let out = scenario("mailbox", send_then_read, |dev, l, phase, _| {
        wait_for(phase, SENT);
        let (mb, _) = l.channel(0, 1).unwrap();
        let shm = dev.shm();
        let cons = shm.u64_at(mb + 64).unwrap().load(Ordering::Acquire) as usize;
        let prod = shm.u64_at(mb).unwrap().load(Ordering::Acquire) as usize;
        assert!(prod > cons, "messages are waiting in the mailbox");
        let mut seed = 0x2545F4914F6CDD1D;
        // Overwrite a word in the middle of the unread messages with a random one.
        let victim = cons + (prod - cons) / 2;
        let mut garbage = next(&mut seed);
        garbage &= !0xF;
        garbage |= 0xF; // a reserved kind: can never be valid
                        // In the lap bit of the victim's lap, or the slot would just read as not written yet.
        garbage &= !snoo_common::ring::LAP_BIT;
        if (victim / l.mailbox_words) % 2 == 1 {
            garbage |= snoo_common::ring::LAP_BIT;
        }
        shm.u64_at(mb + 128 + (victim % l.mailbox_words) * 8)
            .unwrap()
            .store(garbage, Ordering::Release);
        phase.store(GO, Ordering::Release);
    });
    assert!(out[0].is_ok(), "the sender is unaffected: {:?}", out[0]);
    match &out[1] {
        Err(Error::Protocol { rank: 0, what }) => eprintln!("reported: {what}"),
        other => {
            panic!("rank 1 must report a protocol error on its channel from rank 0: {other:?}")
        }
    }
}

/// Rank 0 publishes two messages that travel through the data ring; rank 1 reads them only after
/// the attack.
fn send_big_then_read(w: &World, phase: &AtomicU32) -> Result<u32, Error> {
    if w.rank() == 0 {
        for i in 0..2u8 {
            w.send(&[i; 300], 1, 1)?;
        }
        phase.store(SENT, Ordering::Release);
        Ok(2)
    } else {
        wait_for(phase, GO);
        for i in 0..2u8 {
            let mut v = [0u8; 300];
            w.recv(&mut v, Some(0), Some(1))?;
            assert_eq!(v, [i; 300]);
        }
        Ok(2)
    }
}

#[test]
fn a_wild_ring_index_is_a_protocol_error_not_a_crash() {
    let out = scenario("indices", send_big_then_read, |dev, l, phase, _| {
        wait_for(phase, SENT);
        let (_, ring) = l.channel(0, 1).unwrap();
        // The data ring's producer index jumps far beyond what the ring can hold.
        dev.shm()
            .u64_at(ring)
            .unwrap()
            .store(u64::MAX / 3, Ordering::Release);
        phase.store(GO, Ordering::Release);
    });
    assert!(out[0].is_ok(), "the sender is unaffected: {:?}", out[0]);
    match &out[1] {
        Err(Error::Protocol { rank: 0, .. }) => {}
        other => panic!("rank 1 must report a protocol error: {other:?}"),
    }
}

#[test]
fn a_wild_mailbox_producer_index_changes_nothing() {
    // The mailbox consumer polls the slots and never reads the producer index (ring.rs), so
    // scribbling over that index cannot lose, invent or reorder a message.
    let out = scenario("mbindex", send_then_read, |dev, l, phase, _| {
        wait_for(phase, SENT);
        let (mb, _) = l.channel(0, 1).unwrap();
        dev.shm()
            .u64_at(mb)
            .unwrap()
            .store(u64::MAX / 3, Ordering::Release);
        phase.store(GO, Ordering::Release);
    });
    assert_eq!(out[0].as_ref().ok(), Some(&50));
    assert_eq!(out[1].as_ref().ok(), Some(&50), "{:?}", out[1]);
}

#[test]
fn scribbling_everywhere_never_crashes_or_hangs() {
    let talk = |w: &World, _: &AtomicU32| -> Result<u32, Error> {
        let peer = 1 - w.rank();
        let data = vec![0xC3u8; 100_000];
        let mut buf = vec![0u8; 100_000];
        for i in 0..300u32 {
            let len = [8usize, 50, 200, 5000, 100_000][i as usize % 5];
            if w.rank() == 0 {
                w.send(&data[..len], peer, 1)?;
                w.recv(&mut buf, Some(peer), Some(2))?;
            } else {
                w.recv(&mut buf, Some(peer), Some(1))?;
                w.send(&data[..len], peer, 2)?;
            }
        }
        Ok(300)
    };
    let out = scenario("everywhere", talk, |dev, l, _, running| {
        let mut seed = 0x9E3779B97F4A7C15;
        let end = l.end();
        while running() {
            // Anywhere from the epoch word to the end of the job's channels.
            let off = (0x80 + next(&mut seed) as usize % (end - 0x80)) & !7;
            dev.shm()
                .u64_at(off)
                .unwrap()
                .store(next(&mut seed), Ordering::Relaxed);
            std::thread::sleep(Duration::from_micros(50));
        }
    });
    // Any outcome but a crash or a hang is acceptable: payload bytes in the rings are not
    // checksummed, so some corruption is delivered as data (docs/reliability.md says so).
    only_clean_failures(&out);
}

/// Rank 1 receives one message from rank 0 after the attack; rank 0 sends nothing.
fn read_one(w: &World, phase: &AtomicU32) -> Result<u32, Error> {
    if w.rank() == 1 {
        wait_for(phase, GO);
        let mut buf = vec![0u8; 1 << 20];
        w.recv(&mut buf, Some(0), Some(1))?;
    }
    Ok(0)
}

#[test]
fn a_rendezvous_buffer_outside_the_senders_heap_is_refused() {
    use snoo_common::register::{EnvLen, Path, Word};
    // Past the end of rank 0's heap, inside rank 1's own heap, the pool header, an overflow.
    let bad = |l: &JobLayout| {
        let (h0, len0) = l.heap(0).unwrap();
        let (h1, _) = l.heap(1).unwrap();
        [
            ((h0 + len0 - 4096) as u64, 8192u32),
            (h1 as u64, 4096),
            (0, 4096),
            (snoo_common::register::MAX_OFFSET, 4096),
        ]
    };
    for case in 0..4 {
        let out = scenario(&format!("rdv{case}"), read_one, |dev, l, phase, _| {
            let (mb, _) = l.channel(0, 1).unwrap();
            let shm = dev.shm();
            let (offset, len) = bad(l)[case];
            // A whole RENDEZVOUS message at the head of the empty mailbox, envelope last.
            let env = Word::Envelope {
                tag: 1,
                path: Path::Rendezvous,
                len: EnvLen::Short(len),
                head: [0; 2],
            };
            let slot = |i: usize| shm.u64_at(mb + 128 + i * 8).unwrap();
            slot(1).store(Word::Buffer { offset }.encode(), Ordering::Release);
            slot(0).store(env.encode(), Ordering::Release);
            phase.store(GO, Ordering::Release);
        });
        match &out[1] {
            Err(Error::Protocol { rank: 0, what }) => eprintln!("case {case}: {what}"),
            other => panic!("case {case}: rank 1 must refuse the buffer: {other:?}"),
        }
    }
}

/// A whole word at the head of the empty mailbox from `from` to `to`, as if `from` had sent it.
fn forge(dev: &SocketDevice, l: &JobLayout, from: u32, to: u32, word: u64) {
    let (mb, _) = l.channel(from, to).unwrap();
    dev.shm()
        .u64_at(mb + 128)
        .unwrap()
        .store(word, Ordering::Release);
}

#[test]
fn share_and_wrote_words_out_of_turn_are_refused() {
    use snoo_common::register::Word;
    // Rank 1 waits for a message from rank 0 and has no rendezvous of its own in flight: a WROTE
    // (no split payload to finish) or a SHARE (nothing of its own to share) from rank 0 is a lie.
    for (case, word) in [Word::Wrote { id: 0 }, Word::Share { offset: 0 }]
        .into_iter()
        .enumerate()
    {
        let out = scenario_sized(
            &format!("turn{case}"),
            4 << 20,
            read_one,
            |dev, l, phase, _| {
                forge(dev, l, 0, 1, word.encode());
                phase.store(GO, Ordering::Release);
            },
        );
        match &out[1] {
            Err(Error::Protocol { rank: 0, what }) => eprintln!("case {case}: {what}"),
            other => panic!("case {case}: rank 1 must refuse {word:?}: {other:?}"),
        }
    }
}

#[test]
fn a_share_outside_the_receivers_heap_is_refused() {
    use snoo_common::register::{Word, MAX_OFFSET};
    use snoo_mpi::SPLIT_MIN;
    const DONE: u32 = 5;
    // Rank 0 has a rendezvous in flight to rank 1; a forged SHARE "from rank 1" asks it to write
    // its share into its own heap, the pool header, past rank 1's heap, or off the pool.
    let bad = |l: &JobLayout| {
        let (h0, _) = l.heap(0).unwrap();
        let (h1, len1) = l.heap(1).unwrap();
        [h0 as u64, 0, (h1 + len1 - 4096) as u64, MAX_OFFSET]
    };
    for case in 0..4 {
        let talk = |w: &World, phase: &AtomicU32| -> Result<u32, Error> {
            if w.rank() == 0 {
                let mem = w.alloc_mem(2 * SPLIT_MIN)?;
                let r = w.scope(|s| {
                    let t = s.isend(&mem[..], 1, 1)?;
                    phase.store(SENT, Ordering::Release);
                    s.wait(t).map(|_| 0)
                });
                phase.store(DONE, Ordering::Release);
                r
            } else {
                // Stay out of the way (no receive, no finalize) until rank 0 has its answer.
                wait_for(phase, DONE);
                Ok(0)
            }
        };
        let out = scenario_sized(
            &format!("share{case}"),
            4 << 20,
            talk,
            |dev, l, phase, _| {
                wait_for(phase, SENT);
                let offset = bad(l)[case];
                forge(dev, l, 1, 0, Word::Share { offset }.encode());
                phase.store(GO, Ordering::Release);
            },
        );
        match &out[0] {
            Err(Error::Protocol { rank: 1, what }) => eprintln!("case {case}: {what}"),
            other => panic!("case {case}: rank 0 must refuse the SHARE: {other:?}"),
        }
    }
}

/// Each case's words at the head of the mailbox from rank 0 to rank 1, which waits for a message
/// from rank 0: rank 1 must refuse every one as a protocol error.
fn refused_streams(name: &str, cases: &[&[u64]]) {
    for (case, words) in cases.iter().enumerate() {
        let out = scenario(&format!("{name}{case}"), read_one, |dev, l, phase, _| {
            let (mb, _) = l.channel(0, 1).unwrap();
            // Later slots first: the receiver polls slot 0 and takes what follows as it finds it.
            for (i, &w) in words.iter().enumerate().rev() {
                dev.shm()
                    .u64_at(mb + 128 + 8 * i)
                    .unwrap()
                    .store(w, Ordering::Release);
            }
            phase.store(GO, Ordering::Release);
        });
        match &out[1] {
            Err(Error::Protocol { rank: 0, what }) => eprintln!("case {case}: {what}"),
            other => panic!("case {case}: rank 1 must refuse {words:x?}: {other:?}"),
        }
    }
}

#[test]
fn context_words_out_of_place_are_refused() {
    use snoo_common::register::{kind, Word};
    // Rank 1 waits for a message from rank 0. A CONTEXT word naming COMM_WORLD (context 0, never
    // sent), or one followed by anything but an envelope, is a broken stream.
    let ctx = Word::Context { ctx: 3 }.encode();
    let cases: [&[u64]; 3] = [
        &[u64::from(kind::CONTEXT)],
        &[ctx, ctx],
        &[ctx, Word::Fin { id: 0 }.encode()],
    ];
    refused_streams("ctx", &cases);
}

#[test]
fn sync_words_out_of_place_are_refused() {
    use snoo_common::register::{kind, Word};
    // Rank 1 waits for a message from rank 0. A SYNC word announces a synchronous send's envelope:
    // followed by anything else (another SYNC, a CONTEXT that must come first, an ACK), or with
    // reserved bits set, it is a broken stream.
    let sync = Word::Sync { id: 7 }.encode();
    let cases: [&[u64]; 4] = [
        &[sync, sync],
        &[sync, Word::Context { ctx: 3 }.encode()],
        &[sync, Word::Ack { id: 7 }.encode()],
        &[u64::from(kind::SYNC) | 0x10],
    ];
    refused_streams("sync", &cases);
}

/// Rank 1's collective area: the first block of its heap (nothing else is allocated there in these
/// tests). Its ARRIVE flag is at +0, the length of cell i at +8 + 8i (collective k uses cell
/// k mod DEPTH).
fn area_of(l: &JobLayout, r: u32) -> usize {
    l.heap(r).expect("rank's heap").0
}

/// A barrier sets the area up (collective 1); rank 1 then broadcasts 64 bytes (collective 2:
/// the root publishes and returns); rank 0 receives it only after the attack.
fn bcast_after_attack(w: &World, phase: &AtomicU32) -> Result<u32, Error> {
    w.comm().barrier()?;
    let mut b = vec![w.rank() as u8; 64];
    if w.rank() == 1 {
        w.comm().bcast_bytes(&mut b, 1)?;
        phase.store(SENT, Ordering::Release);
    } else {
        wait_for(phase, GO);
        w.comm().bcast_bytes(&mut b, 1)?;
        assert_eq!(b, vec![1u8; 64], "an honest broadcast arrives whole");
    }
    Ok(64)
}

#[test]
fn a_wild_length_in_a_collective_area_is_an_error_not_a_crash() {
    for (forged, want) in [(1u64 << 40, "truncat"), (3, "3 bytes where 64")] {
        let out = scenario_sized(
            "collarea",
            8 << 20,
            bcast_after_attack,
            |dev, l, phase, _| {
                wait_for(phase, SENT);
                // The broadcast is collective 2.
                let lens = area_of(l, 1) + 8 + 8 * (2 % snoo_mpi::collective::DEPTH as usize);
                dev.shm()
                    .u64_at(lens)
                    .unwrap()
                    .store(forged, Ordering::Release);
                phase.store(GO, Ordering::Release);
            },
        );
        assert!(out[1].is_ok(), "{:?}", out[1]);
        let e = out[0].as_ref().expect_err("the forged length is noticed");
        assert!(
            matches!(e, Error::Truncate { .. } | Error::Protocol { .. }),
            "{e}"
        );
        assert!(e.to_string().to_lowercase().contains(want), "{e}");
    }
}

#[test]
fn scribbling_over_collective_areas_never_crashes_or_hangs() {
    let talk = |w: &World, _: &AtomicU32| -> Result<u32, Error> {
        let c = w.comm();
        let mut out = vec![0u8; 8192];
        for i in 0..20_000u32 {
            let len = [8usize, 512, 4096][i as usize % 3];
            let data = vec![w.rank() as u8; len];
            c.barrier()?;
            c.allreduce_bytes(&data, &mut out[..len], &mut |a, b| {
                b.iter_mut().zip(a).for_each(|(x, y)| *x ^= y);
                Ok(())
            })?;
            let mut b = data.clone();
            c.bcast_bytes(&mut b, i % 2)?;
            c.alltoall_bytes(&data, &mut out[..len])?;
        }
        Ok(20_000)
    };
    let out = scenario_sized("collscribble", 8 << 20, talk, |dev, l, _, running| {
        let mut seed = 0x51ED_2701_9A4B_33C5;
        // Both ranks' areas: flags, lengths and cells.
        let span = 128 + snoo_mpi::collective::DEPTH as usize * snoo_mpi::collective::CELL;
        while running() {
            let r = (next(&mut seed) % 2) as u32;
            let off = (area_of(l, r) + next(&mut seed) as usize % span) & !7;
            dev.shm()
                .u64_at(off)
                .unwrap()
                .store(next(&mut seed), Ordering::Relaxed);
            std::thread::sleep(Duration::from_micros(50));
        }
    });
    eprintln!("outcomes: {out:?}");
    only_clean_failures(&out);
}
