//! Daemon death and restart: a running job keeps communicating when snoo-hostd goes away (the
//! mappings and eventfds stay valid), and a daemon restarted on the same socket serves a new job.

use snoo_common::job::JobLayout;
use snoo_host::config::{PoolSpec, ServerConfig};
use snoo_host::DaemonThread;
use snoo_mpi::World;
use std::sync::{Barrier, Mutex};
use std::time::Duration;

fn spec(sock: &std::path::Path) -> ServerConfig {
    let size = JobLayout::pool_size_for(2, 64 << 10, 64);
    ServerConfig::single(
        PoolSpec::new("restart", sock.to_path_buf(), size, 1, 2, 64, None).unwrap(),
    )
}

fn join(sock: &std::path::Path, r: u32) -> World {
    snoo_tests::join_rank(sock, "restart", r, 2, Duration::from_secs(30))
}

fn exchange(w: &World, rounds: u32) {
    let peer = 1 - w.rank();
    for i in 0..rounds {
        let data = vec![(i % 251) as u8; 1 + (i as usize * 7919) % 300_000];
        let mut buf = vec![0u8; data.len()];
        if w.rank() == 0 {
            w.send(&data, peer, 1).unwrap();
            w.recv(&mut buf, Some(peer), Some(1)).unwrap();
        } else {
            w.recv(&mut buf, Some(peer), Some(1)).unwrap();
            w.send(&buf, peer, 1).unwrap();
        }
        assert!(buf == data, "round {i}");
    }
}

#[test]
fn a_job_survives_the_daemon_and_a_restarted_daemon_serves_the_next() {
    let dir = std::env::temp_dir().join(format!("snoo-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("pool.sock");
    let daemon = Mutex::new(Some(DaemonThread::spawn(spec(&sock)).unwrap()));
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        for r in 0..2 {
            let (sock, daemon, barrier) = (&sock, &daemon, &barrier);
            s.spawn(move || {
                let w = join(sock, r);
                exchange(&w, 50);
                // Both ranks are mid-job: the daemon goes away.
                if barrier.wait().is_leader() {
                    daemon.lock().unwrap().take().unwrap().stop().unwrap();
                }
                barrier.wait();
                exchange(&w, 50);
                w.finalize().unwrap();
            });
        }
    });
    assert!(!sock.exists(), "the stopped daemon removed its socket");
    // A new daemon on the same path: a new pool, a new job.
    let _again = DaemonThread::spawn(spec(&sock)).unwrap();
    std::thread::scope(|s| {
        for r in 0..2 {
            let sock = &sock;
            s.spawn(move || {
                let w = join(sock, r);
                exchange(&w, 20);
                w.finalize().unwrap();
            });
        }
    });
}
