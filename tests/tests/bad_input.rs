//! Bad input to the Rust API: every misuse it can express fails with its exact `Error` variant, at
//! once (never after `SNOO_TIMEOUT`), and loses nothing: after each failing call, a valid message
//! still arrives intact. Ranks are threads with their own device connection (separate peers of the
//! pool, as processes or VMs would be); joining with a bad environment runs in child processes.
//!
//! (Calls after `finalize` cannot be expressed: `World::finalize` consumes the `World`.)

use snoo_mpi::device::SocketDevice;
use snoo_mpi::JoinOptions;
use snoo_mpi::{Error, World, TAG_UB};
use snoo_tests::{job_daemon, join_rank, pattern, ranks};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every call here either succeeds or fails at once; this is only the bound for a broken build.
const JOB_TIMEOUT: Duration = Duration::from_secs(60);
/// What "at once" means for a failing call (generous: the machine is shared).
const AT_ONCE: Duration = Duration::from_secs(5);

fn job<R: Send>(name: &str, n: u32, f: impl Fn(World) -> R + Sync) -> Vec<R> {
    let (_d, sock) = job_daemon(name, n, 64 << 10);
    ranks(&sock, name, n, JOB_TIMEOUT, f)
}

/// Asserts that `$e` (a `Result`) failed with an error matching `$pat`, within [`AT_ONCE`].
macro_rules! fails {
    ($e:expr, $pat:pat $(if $guard:expr)?) => {{
        let t = Instant::now();
        let r = $e;
        let took = t.elapsed();
        match r {
            Err($pat) $(if $guard)? => {}
            Err(other) => panic!("{}: expected {}, got {other:?}", stringify!($e), stringify!($pat)),
            Ok(_) => panic!("{}: expected {}, got Ok", stringify!($e), stringify!($pat)),
        }
        assert!(took < AT_ONCE, "{} took {took:?}", stringify!($e));
    }};
}

/// A valid message each way between ranks `a` and `b` (other ranks do nothing), alternately on the
/// inline and the ring path, checked byte for byte: what a failing call before it must not have
/// disturbed.
fn exchange_between(w: &World, a: u32, b: u32, step: u32) {
    let me = w.rank();
    if me != a && me != b {
        return;
    }
    let peer = if me == a { b } else { a };
    let len = if step.is_multiple_of(2) { 40 } else { 150_000 };
    let tag = 10_000 + step as i32;
    let mine = pattern(len, u64::from(step) << 8 | u64::from(me));
    let theirs = pattern(len, u64::from(step) << 8 | u64::from(peer));
    let mut got = vec![0u8; len];
    let recv = |got: &mut Vec<u8>| {
        let st = w.recv(got, Some(peer), Some(tag)).unwrap();
        assert_eq!((st.source, st.tag, st.bytes), (peer, tag, len));
    };
    if me == a {
        w.send(&mine, peer, tag).unwrap();
        recv(&mut got);
    } else {
        recv(&mut got);
        w.send(&mine, peer, tag).unwrap();
    }
    assert!(got == theirs, "step {step}: message from {peer} corrupted");
}

fn exchange(w: &World, step: u32) {
    exchange_between(w, 0, 1, step);
}

#[test]
fn a_rank_outside_the_job_is_refused_by_every_call() {
    job("badrank", 2, |w| {
        let mut buf = [0u8; 8];
        fails!(w.send(&[1u8], 2, 0), Error::Rank { rank: 2, size: 2 });
        exchange(&w, 0);
        fails!(
            w.send(&[1u8], u32::MAX, 0),
            Error::Rank {
                rank: 4294967295,
                size: 2
            }
        );
        exchange(&w, 1);
        fails!(
            w.recv(&mut buf, Some(2), Some(0)),
            Error::Rank { rank: 2, size: 2 }
        );
        exchange(&w, 2);
        fails!(
            w.recv(&mut buf, Some(2), None),
            Error::Rank { rank: 2, size: 2 }
        );
        exchange(&w, 3);
        fails!(w.probe(Some(2), None), Error::Rank { rank: 2, size: 2 });
        exchange(&w, 4);
        fails!(w.probe(Some(7), Some(1)), Error::Rank { rank: 7, size: 2 });
        exchange(&w, 5);
        fails!(w.iprobe(Some(2), None), Error::Rank { rank: 2, size: 2 });
        exchange(&w, 6);
        w.scope(|s| {
            fails!(s.isend(&[1u8; 300], 2, 0), Error::Rank { rank: 2, size: 2 });
            fails!(
                s.irecv(&mut buf, Some(2), Some(0)),
                Error::Rank { rank: 2, size: 2 }
            );
        });
        exchange(&w, 7);
        w.finalize().unwrap();
    });
}

#[test]
fn negative_tags_are_refused_and_the_highest_tag_works() {
    job("badtag", 2, |w| {
        let peer = 1 - w.rank();
        let mut buf = [0u8; 8];
        // In the Rust API ANY_TAG is `None`: every negative tag is an error, -1 included.
        for (i, t) in [-1, -2, -77, i32::MIN].into_iter().enumerate() {
            let step = 10 * i as u32;
            fails!(w.send(&[1u8], peer, t), Error::Tag(x) if x == i64::from(t));
            exchange(&w, step);
            fails!(w.recv(&mut buf, Some(peer), Some(t)), Error::Tag(x) if x == i64::from(t));
            exchange(&w, step + 1);
            fails!(w.recv(&mut buf, None, Some(t)), Error::Tag(x) if x == i64::from(t));
            exchange(&w, step + 2);
            fails!(w.probe(Some(peer), Some(t)), Error::Tag(x) if x == i64::from(t));
            exchange(&w, step + 3);
            fails!(w.iprobe(None, Some(t)), Error::Tag(x) if x == i64::from(t));
            exchange(&w, step + 4);
            w.scope(|s| {
                fails!(s.isend(&[1u8; 300], peer, t), Error::Tag(x) if x == i64::from(t));
                fails!(s.irecv(&mut buf, Some(peer), Some(t)), Error::Tag(x) if x == i64::from(t));
            });
            exchange(&w, step + 5);
        }
        // TAG_UB is a valid tag on both paths.
        for len in [3usize, 100_000] {
            let data = pattern(len, 5);
            let mut got = vec![0u8; len];
            if w.rank() == 0 {
                w.send(&data, 1, TAG_UB).unwrap();
            } else {
                let st = w.recv(&mut got, Some(0), Some(TAG_UB)).unwrap();
                assert_eq!((st.tag, st.bytes), (TAG_UB, len));
                assert!(got == data);
            }
        }
        exchange(&w, 100);
        w.finalize().unwrap();
    });
}

#[test]
fn truncation_reports_both_sizes_on_every_path() {
    job("badtrunc", 2, |w| {
        let me = w.rank();
        let inline = pattern(10, 1);
        let ring = pattern(200_000, 2);
        // Posted first, then the message comes (0 waits for 1's "ready" before sending).
        for (step, msg, cap) in [(0u32, &inline, 4usize), (1, &ring, 1000), (2, &ring, 0)] {
            if me == 0 {
                w.recv(&mut [0u8; 1], Some(1), Some(1)).unwrap();
                w.send(msg, 1, 2).unwrap();
            } else {
                let mut buf = vec![0xEEu8; cap];
                let r = w.scope(|s| {
                    let r = s.irecv(&mut buf, Some(0), Some(2)).unwrap();
                    w.send(&[0u8], 0, 1).unwrap();
                    s.wait(r)
                });
                let e = r.unwrap_err();
                assert!(
                    matches!(e, Error::Truncate { incoming, capacity }
                        if incoming == msg.len() && capacity == cap),
                    "posted, {} into {cap}: {e:?}",
                    msg.len()
                );
                assert!(buf == msg[..cap], "the buffer holds the message's start");
            }
            exchange(&w, step);
        }
        // Unexpected first (1 takes a later message before posting its receive).
        for (step, msg, cap) in [
            (10u32, &inline, 9usize),
            (11, &ring, 199_999),
            (12, &inline, 0),
        ] {
            if me == 0 {
                w.send(msg, 1, 3).unwrap();
                w.send(&[1u8], 1, 4).unwrap();
            } else {
                w.recv(&mut [0u8; 1], Some(0), Some(4)).unwrap();
                let mut buf = vec![0xEEu8; cap];
                let e = w.recv(&mut buf, Some(0), Some(3)).unwrap_err();
                assert!(
                    matches!(e, Error::Truncate { incoming, capacity }
                        if incoming == msg.len() && capacity == cap),
                    "unexpected, {} into {cap}: {e:?}",
                    msg.len()
                );
                assert!(buf == msg[..cap]);
            }
            exchange(&w, step);
        }
        // Typed buffers: sizes are in bytes. And a send to self.
        if me == 0 {
            w.send(&[1u64, 2, 3], 1, 5).unwrap();
        } else {
            let mut two = [0u64; 2];
            fails!(
                w.recv(&mut two, Some(0), Some(5)),
                Error::Truncate {
                    incoming: 24,
                    capacity: 16
                }
            );
            assert_eq!(two, [1, 2]);
        }
        w.send(&[7i32, 8, 9, 10, 11], me, 6).unwrap();
        let mut two = [0i32; 2];
        fails!(
            w.recv(&mut two, Some(me), Some(6)),
            Error::Truncate {
                incoming: 20,
                capacity: 8
            }
        );
        assert_eq!(two, [7, 8]);
        exchange(&w, 20);
        w.finalize().unwrap();
    });
}

#[test]
fn a_receive_only_this_rank_could_satisfy_fails_at_once() {
    job("badself", 2, |w| {
        let me = w.rank();
        let mut buf = [0i32; 4];
        // Nothing was sent to self: these would wait forever (the engine is single-threaded).
        fails!(w.recv(&mut buf, Some(me), None), Error::Arg(_));
        exchange(&w, 0);
        fails!(w.recv(&mut buf, Some(me), Some(3)), Error::Arg(_));
        exchange(&w, 1);
        fails!(w.probe(Some(me), None), Error::Arg(_));
        exchange(&w, 2);
        w.scope(|s| {
            let r = s.irecv(&mut buf, Some(me), Some(3)).unwrap();
            fails!(s.wait(r), Error::Arg(_));
        });
        exchange(&w, 3);
        // The failed receives left nothing posted: a send to self now is queued, then received.
        w.send(&[1i32, 2, 3], me, 3).unwrap();
        assert_eq!(w.iprobe(Some(me), Some(3)).unwrap().unwrap().bytes, 12);
        let st = w.recv(&mut buf, Some(me), Some(3)).unwrap();
        assert_eq!((st.source, st.tag, st.count::<i32>()), (me, 3, 3));
        assert_eq!(buf, [1, 2, 3, 0]);
        // Posted before the send to self: matched by it.
        let mut got = [0i32; 2];
        w.scope(|s| {
            let r = s.irecv(&mut got, Some(me), None).unwrap();
            w.send(&[5i32, 6], me, 9).unwrap();
            assert_eq!(s.wait(r).unwrap().unwrap().tag, 9);
        });
        assert_eq!(got, [5, 6]);
        exchange(&w, 4);
        w.finalize().unwrap();
    });
    // In a job of one, ANY_SOURCE can only be this rank.
    job("badself1", 1, |w| {
        let mut buf = [0u8; 4];
        fails!(w.recv(&mut buf, None, None), Error::Arg(_));
        fails!(w.probe(None, Some(1)), Error::Arg(_));
        w.send(&[4u8, 5], 0, 1).unwrap();
        let st = w.recv(&mut buf, None, None).unwrap();
        assert_eq!((st.source, st.tag, st.bytes), (0, 1, 2));
        w.finalize().unwrap();
    });
}

#[test]
fn zero_length_messages_on_every_path() {
    job("badzero", 2, |w| {
        let me = w.rank();
        let peer = 1 - me;
        let empty: [u8; 0] = [];
        if me == 0 {
            w.send(&empty, 1, 1).unwrap();
            w.send(&empty, 1, 2).unwrap();
            w.send::<f64>(&[], 1, 3).unwrap();
            w.send(&[1.5f64], 1, 3).unwrap();
        } else {
            let st = w.recv(&mut [0u8; 0], Some(0), Some(1)).unwrap();
            assert_eq!((st.source, st.tag, st.bytes), (0, 1, 0));
            let mut four = [9u8; 4];
            let st = w.recv(&mut four, Some(0), Some(2)).unwrap();
            assert_eq!(
                (st.bytes, four),
                (0, [9; 4]),
                "an empty message writes nothing"
            );
            // Two messages with the same tag, empty first: order is kept, probe sees 0 bytes.
            assert_eq!(w.probe(Some(0), Some(3)).unwrap().bytes, 0);
            let mut one = [0f64; 1];
            assert_eq!(
                w.recv(&mut one, Some(0), Some(3)).unwrap().count::<f64>(),
                0
            );
            assert_eq!(
                w.recv(&mut one, Some(0), Some(3)).unwrap().count::<f64>(),
                1
            );
            assert_eq!(one, [1.5]);
        }
        exchange(&w, 0);
        // Non-blocking, both ways at once, and to self.
        let mut a = [0u32; 0];
        let mut b = [0u32; 0];
        let none: [u32; 0] = [];
        w.scope(|s| {
            let r1 = s.irecv(&mut a, Some(peer), Some(4)).unwrap();
            let r2 = s.irecv(&mut b, Some(me), Some(4)).unwrap();
            let s1 = s.isend(&none, peer, 4).unwrap();
            let s2 = s.isend(&none, me, 4).unwrap();
            let st = s.wait_all(vec![r1, r2, s1, s2]).unwrap();
            assert_eq!(st[0].unwrap().source, peer);
            assert_eq!(st[1].unwrap().source, me);
            assert_eq!(st[0].unwrap().bytes + st[1].unwrap().bytes, 0);
        });
        exchange(&w, 1);
        w.finalize().unwrap();
    });
}

#[test]
fn messages_over_2_gib_are_a_count_error() {
    job("badcount", 2, |w| {
        let me = w.rank();
        // Allocated zeroed and never touched: the pages are never faulted in.
        let big = vec![0u8; snoo_mpi::MAX_MESSAGE + 1];
        let n = big.len() as i64;
        fails!(w.send(&big, 1 - me, 1), Error::Count(x) if x == n);
        exchange(&w, 0);
        fails!(w.send(&big, me, 1), Error::Count(x) if x == n);
        exchange(&w, 1);
        w.scope(|s| fails!(s.isend(&big, 1 - me, 1), Error::Count(x) if x == n));
        exchange(&w, 2);
        w.finalize().unwrap();
    });
}

#[test]
fn a_request_completes_once_and_only_in_its_scope() {
    job("badreq", 2, |w| {
        let peer = 1 - w.rank();
        let mut a = [0u8; 16];
        w.scope(|s| {
            let r = s.irecv(&mut a, Some(peer), Some(1)).unwrap();
            let sent = s.isend(&[3u8; 16], peer, 1).unwrap();
            let st = loop {
                if let Some(st) = s.test(&r).unwrap() {
                    break st.unwrap();
                }
            };
            assert_eq!(st.bytes, 16);
            // Completed by `test`: testing or waiting again is refused, at once.
            fails!(s.test(&r), Error::Request);
            fails!(s.wait(r), Error::Request);
            assert_eq!(s.wait(sent).unwrap(), None);
        });
        assert_eq!(a, [3; 16]);
        exchange(&w, 0);
        // A request of an outer scope is not the inner scope's to complete; the outer one still
        // completes it when it ends.
        let mut b = [0u8; 4];
        w.scope(|outer| {
            let r = outer.irecv(&mut b, Some(peer), Some(2)).unwrap();
            w.scope(|inner| fails!(inner.wait(r), Error::Request));
            let _sent = outer.isend(&[4u8; 4], peer, 2).unwrap();
        });
        assert_eq!(b, [4; 4]);
        exchange(&w, 1);
        w.finalize().unwrap();
    });
}

#[test]
fn a_dead_or_finished_peer_fails_the_calls_that_need_it() {
    job("baddead", 3, |w| {
        match w.rank() {
            1 => {
                // Sends one message, then leaves the pool for good.
                w.send(&pattern(5000, 1), 0, 1).unwrap();
                w.finalize().unwrap();
            }
            0 => {
                // What 1 sent before it left still arrives.
                let mut got = vec![0u8; 5000];
                w.recv(&mut got, Some(1), Some(1)).unwrap();
                assert!(got == pattern(5000, 1));
                // Then: gone. Rank 1 first marks itself finalized, then its process leaves the
                // pool, so the first call may see either.
                fails!(
                    w.recv(&mut got, Some(1), Some(1)),
                    Error::PeerDead(1) | Error::PeerFinalized(1)
                );
                std::thread::sleep(Duration::from_millis(100));
                fails!(w.recv(&mut got, Some(1), Some(1)), Error::PeerDead(1));
                exchange_between(&w, 0, 2, 0);
                fails!(w.recv(&mut got, Some(1), None), Error::PeerDead(1));
                exchange_between(&w, 0, 2, 1);
                fails!(w.probe(Some(1), None), Error::PeerDead(1));
                exchange_between(&w, 0, 2, 2);
                fails!(w.send(&[1u8; 10], 1, 1), Error::PeerDead(1));
                exchange_between(&w, 0, 2, 3);
                fails!(w.send(&pattern(1 << 20, 3), 1, 1), Error::PeerDead(1));
                exchange_between(&w, 0, 2, 4);
                w.scope(|s| {
                    fails!(s.isend(&[1u8; 10], 1, 1), Error::PeerDead(1));
                    let r = s.irecv(&mut got, Some(1), Some(1)).unwrap();
                    fails!(s.wait(r), Error::PeerDead(1));
                });
                assert_eq!(w.iprobe(Some(1), None).unwrap(), None);
                exchange_between(&w, 0, 2, 5);
                // ANY_SOURCE still hears the live rank.
                let st = w.recv(&mut got, None, Some(7)).unwrap();
                assert_eq!((st.source, st.bytes), (2, 3));
                // Once every other rank is gone, ANY_SOURCE fails too (naming a dead rank).
                w.send(&[0u8], 2, 8).unwrap();
                fails!(w.recv(&mut got, None, None), Error::PeerDead(1));
                w.finalize().unwrap();
            }
            _ => {
                for step in 0..6 {
                    exchange_between(&w, 0, 2, step);
                }
                w.send(&[2u8; 3], 0, 7).unwrap();
                w.recv(&mut [0u8; 1], Some(0), Some(8)).unwrap();
                w.finalize().unwrap();
            }
        }
    });
}

/// A rank that called Finalize but whose process goes on (it still holds its device, so it is
/// alive in the pool): receives from it fail once its messages are read, sends to it that cannot
/// complete fail, and neither waits for SNOO_TIMEOUT.
#[test]
fn a_finalized_but_running_rank_fails_the_calls_that_need_it() {
    let (_d, sock) = job_daemon("badfin", 2, 64 << 10);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let sock = &sock;
        s.spawn(move || {
            let dev = Arc::new(SocketDevice::connect(sock, Duration::from_secs(10)).unwrap());
            let opts = JoinOptions {
                name: "badfin".into(),
                rank: Some(1),
                size: Some(2),
                timeout: Duration::from_secs(30),
            };
            let w = World::join(dev.clone(), &opts).unwrap();
            w.send(&pattern(300, 9), 0, 3).unwrap();
            w.finalize().unwrap();
            // Keep the device (and so the peer) alive until rank 0 is done.
            rx.recv_timeout(Duration::from_secs(60)).unwrap();
            drop(dev);
        });
        let w = join_rank(sock, "badfin", 0, 2, Duration::from_secs(30));
        let mut got = vec![0u8; 300];
        w.recv(&mut got, Some(1), Some(3)).unwrap();
        assert!(got == pattern(300, 9));
        fails!(w.recv(&mut got, Some(1), None), Error::PeerFinalized(1));
        fails!(w.probe(Some(1), None), Error::PeerFinalized(1));
        // Larger than the 64 KiB ring: can never complete.
        fails!(w.send(&pattern(1 << 20, 4), 1, 1), Error::PeerFinalized(1));
        w.finalize().unwrap();
        tx.send(()).unwrap();
    });
}

#[test]
fn joining_with_bad_options_is_refused() {
    let (_d, sock) = job_daemon("badjoin", 2, 64 << 10);
    let join = |name: &str, rank: Option<u32>, size: Option<u32>| {
        snoo_tests::try_join(&sock, name, rank, size, Duration::from_secs(2))
            .err()
            .expect("join fails")
    };
    let e = join("badjoin", None, Some(0));
    assert!(matches!(e, Error::Arg(_)), "{e:?}");
    let e = join("badjoin", None, Some(1025));
    assert!(matches!(e, Error::Arg(_)), "{e:?}");
    let e = join("badjoin", None, Some(64));
    assert!(matches!(e, Error::PoolTooSmall(_)), "{e:?}");
    assert!(e.to_string().contains("--size"), "{e}");
    let e = join("badjoin", Some(2), Some(2));
    assert!(matches!(e, Error::Rank { rank: 2, size: 2 }), "{e:?}");
    let e = join("badjoin", Some(u32::MAX), None);
    assert!(matches!(e, Error::Rank { size: 2, .. }), "{e:?}");
    let e = join("other", Some(0), Some(2));
    assert!(
        matches!(&e, Error::NoPool { name, why } if name == "other" && why.contains("\"badjoin\"")),
        "{e:?}"
    );
    // None of that took a slot: a real job runs on the pool.
    ranks(&sock, "badjoin", 2, JOB_TIMEOUT, |w| {
        exchange(&w, 0);
        w.finalize().unwrap();
    });
}

/// Child mode of `init_refuses_a_bad_environment`: runs `snoo_mpi::init` with the environment the
/// parent set and prints the outcome; with `SNOO_BAD_INPUT_EXCHANGE`, also a message each way.
#[test]
fn init_child() {
    let Ok(name) = std::env::var("SNOO_BAD_INPUT_CHILD") else {
        return; // not a child: nothing to do
    };
    match snoo_mpi::init(&name) {
        Ok(w) => {
            if std::env::var_os("SNOO_BAD_INPUT_EXCHANGE").is_some() {
                exchange(&w, 0);
                exchange(&w, 1);
            }
            w.finalize().unwrap();
            println!("RESULT Ok");
        }
        Err(e) => println!("RESULT {e:?}"),
    }
}

#[test]
fn init_refuses_a_bad_environment() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let (_d, sock) = job_daemon("badenv", 2, 64 << 10);
    let child = |name: &str, env: &[(&str, &OsStr)]| {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "init_child", "--nocapture", "--test-threads=1"]);
        for v in [
            "SNOO_DEVICE",
            "SNOO_SOCKET",
            "SNOO_RANK",
            "SNOO_SIZE",
            "SNOO_TIMEOUT",
            "SNOO_BAD_INPUT_EXCHANGE",
        ] {
            cmd.env_remove(v);
        }
        cmd.env("SNOO_BAD_INPUT_CHILD", name)
            .env("SNOO_SOCKET", &sock)
            .env("SNOO_TIMEOUT", "10");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    };
    let run = |name: &str, env: &[(&str, &str)]| {
        let env: Vec<(&str, &OsStr)> = env.iter().map(|(k, v)| (*k, OsStr::new(v))).collect();
        let o = child(name, &env).output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{env:?}: {out}");
        out.lines()
            .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
            .unwrap_or_else(|| panic!("{env:?}: no result in {out}"))
            .to_string()
    };
    let expect = |name: &str, env: &[(&str, &str)], want: &str, detail: &str| {
        let t = Instant::now();
        let got = run(name, env);
        assert!(
            got.starts_with(want) && got.contains(detail),
            "{env:?}: expected {want}…{detail}…, got {got}"
        );
        assert!(t.elapsed() < Duration::from_secs(8), "{env:?}: too slow");
    };
    for (var, val) in [
        ("SNOO_RANK", "one"),
        ("SNOO_RANK", "-1"),
        ("SNOO_RANK", ""),
        ("SNOO_SIZE", "2x"),
        ("SNOO_SIZE", "-2"),
        ("SNOO_SIZE", "99999999999"),
        ("SNOO_TIMEOUT", "soon"),
        ("SNOO_TIMEOUT", "-5"),
        ("SNOO_TIMEOUT", "1.5"),
    ] {
        expect("badenv", &[(var, val)], "Arg(", var);
    }
    expect("badenv", &[("SNOO_TIMEOUT", "0")], "Arg(", "at least 1");
    expect("badenv", &[("SNOO_SIZE", "0")], "Arg(", "job size 0");
    expect("badenv", &[("SNOO_SIZE", "2000")], "Arg(", "job size 2000");
    // Not UTF-8: an error, not silently "unset".
    let o = child("badenv", &[("SNOO_RANK", OsStr::from_bytes(b"\xff1"))])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("RESULT Arg(") && out.contains("SNOO_RANK"),
        "{out}"
    );
    expect(
        "badenv",
        &[("SNOO_RANK", "2")],
        "Rank { rank: 2, size: 2 }",
        "",
    );
    expect(
        "badenv",
        &[("SNOO_SIZE", "40")],
        "PoolTooSmall(",
        "snoo-hostd --size",
    );
    for dev in ["bogus", "tcp:127.0.0.1:5000", "socket", ""] {
        expect("badenv", &[("SNOO_DEVICE", dev)], "Arg(", "SNOO_DEVICE");
    }
    expect(
        "badenv",
        &[("SNOO_DEVICE", "socket:/nonexistent/snoo.sock")],
        "NoPool {",
        "/nonexistent/snoo.sock",
    );
    expect(
        "badenv",
        &[("SNOO_DEVICE", "pci:0000:7f:1f.7")],
        "NoPool {",
        "0000:7f:1f.7",
    );
    expect(
        "badenv",
        &[("SNOO_SOCKET", "/nonexistent/snoo.sock")],
        "NoPool {",
        "/nonexistent/snoo.sock",
    );
    // The wrong pool name: the pool reached says which one it is.
    expect("wrongname", &[], "NoPool {", "named \\\"badenv\\\"");
    // The other ranks never come: a timeout, and the slot is given back.
    expect(
        "badenv",
        &[("SNOO_RANK", "0"), ("SNOO_TIMEOUT", "1")],
        "Timeout(",
        "1 of 2 ranks",
    );
    // After all that, a real job runs on the same pool, and its messages arrive intact.
    let kids: Vec<_> = (0..2)
        .map(|r| {
            let r = r.to_string();
            let env = [
                ("SNOO_RANK", OsStr::new(&r)),
                ("SNOO_BAD_INPUT_EXCHANGE", OsStr::new("1")),
            ];
            child("badenv", &env)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        let o = k.wait_with_output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success() && out.contains("RESULT Ok"), "{out}");
    }
}
