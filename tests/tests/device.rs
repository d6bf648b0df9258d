//! The host-process device against the real daemon (run in-process on its own thread).

use snoo_common::layout::{PeerState, PoolHeader};
use snoo_host::config::{PoolSpec, ServerConfig};
use snoo_host::DaemonThread;
use snoo_mpi::device::{Device, DeviceError, PeerEvent, SocketDevice};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(5);

fn daemon(tag: &str, size: u64, vectors: u32, max_peers: u32) -> (DaemonThread, PathBuf) {
    let dir = std::env::temp_dir().join(format!("snoo-dev-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("pool.sock");
    let spec = PoolSpec::new(tag, sock.clone(), size, vectors, 2, max_peers, None).unwrap();
    (
        DaemonThread::spawn(ServerConfig::single(spec)).unwrap(),
        sock,
    )
}

#[test]
fn two_devices_share_memory_and_ring_each_other() {
    let (_d, sock) = daemon("pair", 1 << 20, 2, 8);
    let a = SocketDevice::connect(&sock, T).unwrap();
    let b = SocketDevice::connect(&sock, T).unwrap();
    assert_ne!(a.own_id(), b.own_id());
    assert_eq!((a.vectors(), b.vectors()), (2, 2));
    let info = a.header().unwrap();
    assert_eq!(info.name, "pair");
    assert_eq!(a.take_events(), vec![PeerEvent::Joined(b.own_id())]);
    assert_eq!(b.peers(), vec![a.own_id()]);

    let off = info.geometry.engine_offset as usize;
    a.shm()
        .u64_at(off)
        .unwrap()
        .store(0xfeed, Ordering::Release);
    assert_eq!(b.shm().u64_at(off).unwrap().load(Ordering::Acquire), 0xfeed);

    // Nothing rings: the wait times out.
    let t0 = Instant::now();
    assert!(!b.wait(1, Duration::from_millis(50)).unwrap());
    assert!(t0.elapsed() >= Duration::from_millis(50));
    // A doorbell from another thread wakes a sleeping waiter on that vector only.
    std::thread::scope(|s| {
        let waiter = s.spawn(|| b.wait(1, T).unwrap());
        std::thread::sleep(Duration::from_millis(20));
        a.doorbell(b.own_id(), 1).unwrap();
        assert!(waiter.join().unwrap());
    });
    assert!(
        !b.wait(0, Duration::from_millis(10)).unwrap(),
        "vector 0 was not rung"
    );
    assert!(matches!(
        a.doorbell(b.own_id(), 2),
        Err(DeviceError::BadVector { .. })
    ));
    assert!(matches!(
        a.doorbell(999, 0),
        Err(DeviceError::NoSuchPeer(999))
    ));
}

#[test]
fn departure_wakes_waiters_and_is_marked_in_the_pool() {
    let (_d, sock) = daemon("leave", 1 << 20, 1, 8);
    let a = SocketDevice::connect(&sock, T).unwrap();
    let b = SocketDevice::connect(&sock, T).unwrap();
    let bid = b.own_id();
    let (hdr, _) = PoolHeader::open(a.shm()).unwrap();
    assert_eq!(hdr.peer(bid.into()).unwrap().0, PeerState::Alive);
    assert_eq!(a.take_events(), vec![PeerEvent::Joined(bid)]);
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let t0 = Instant::now();
            let rang = a.wait(0, T).unwrap();
            (rang, t0.elapsed())
        });
        std::thread::sleep(Duration::from_millis(20));
        drop(b);
        let (rang, took) = waiter.join().unwrap();
        assert!(!rang, "a departure is not a doorbell");
        assert!(took < T, "the departure ended the wait");
    });
    assert_eq!(a.take_events(), vec![PeerEvent::Left(bid)]);
    assert_eq!(hdr.peer(bid.into()).unwrap().0, PeerState::Dead);
    assert!(matches!(
        a.doorbell(bid, 0),
        Err(DeviceError::NoSuchPeer(_))
    ));
}

#[test]
fn daemon_death_keeps_memory_and_doorbells_working() {
    let (d, sock) = daemon("survive", 1 << 20, 1, 8);
    let a = SocketDevice::connect(&sock, T).unwrap();
    let b = SocketDevice::connect(&sock, T).unwrap();
    let _ = a.take_events();
    d.stop().unwrap();
    assert!(!sock.exists(), "the stopped daemon removed its socket");
    // Waits end when the daemon goes, then keep working on the eventfds alone.
    assert!(!a.wait(0, T).unwrap());
    assert!(a.daemon_gone());
    b.doorbell(a.own_id(), 0).unwrap();
    assert!(a.wait(0, T).unwrap());
    let off = 0x8000;
    b.shm().write(off, b"still here");
    let mut got = [0u8; 10];
    a.shm().read(off, &mut got);
    assert_eq!(&got, b"still here");
}

#[test]
fn connection_errors_are_clear() {
    let missing = std::env::temp_dir().join("snoo-no-such-daemon.sock");
    let e = SocketDevice::connect(&missing, T).err().unwrap();
    assert!(matches!(e, DeviceError::Connect { .. }), "{e}");
    assert!(e.to_string().contains("snoo-no-such-daemon.sock"));
    let (_d, sock) = daemon("full", 1 << 16, 1, 1);
    let _a = SocketDevice::connect(&sock, T).unwrap();
    let e = SocketDevice::connect(&sock, T).err().unwrap();
    assert!(matches!(e, DeviceError::Refused), "{e}");
}
