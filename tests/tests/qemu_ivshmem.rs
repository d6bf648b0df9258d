//! End to end: two TCG guests and a host process share one snoo-hostd pool through ivshmem.
//!
//! Proves that the daemon speaks QEMU's ivshmem-server protocol well enough for real QEMU: each guest
//! sees its own peer id in IVPosition, all three see the same memory, and a guest's doorbell wakes
//! the host process. Skips (passes) when QEMU is not installed, unless SNOO_REQUIRE_QEMU is set.

use snoo_common::layout::{PeerState, PoolHeader};
use snoo_mpi::device::{Device, SocketDevice};
use snoo_tests::qemu::{
    qemu_or_skip, Guest, GuestConfig, GuestImage, HostDaemon, IvshmemDevice, ScratchDir, Watchdog,
    TEST_LIMIT,
};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Beyond the pool header, the peer table and the start of the engine area of a 1 MiB pool.
const TEST_OFFSET: u64 = 0x80000;
const CMD: Duration = Duration::from_secs(60);

fn boot(image: &GuestImage, socket: &std::path::Path, name: &str) -> (Guest, IvshmemDevice, u16) {
    let guest = Guest::boot(
        image,
        &GuestConfig {
            ivshmem: vec![(socket.to_path_buf(), 2)],
            name: name.into(),
            ..GuestConfig::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dev = guest.ivshmem_device().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dev.shm_len(), 1 << 20, "{name}: BAR2 is the 1 MiB pool");
    let id = guest.iv_position(&dev).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{name}: booted in {:.1?}, ivshmem at {} (BAR0 {:#x}, BAR2 {:#x}), IVPosition {id}",
        guest.boot_time(),
        dev.bdf,
        dev.bar0.start,
        dev.bar2.start
    );
    (guest, dev, id)
}

/// Waits until `vector` of the host client is rung, tolerating early returns for peer events.
fn wait_rung(host: &SocketDevice, vector: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if host.wait(vector, left).expect("wait") {
            return true;
        }
        if left.is_zero() {
            return false;
        }
    }
}

#[test]
fn two_guests_and_a_host_process_share_a_pool() {
    if !qemu_or_skip("two_guests_and_a_host_process_share_a_pool").unwrap() {
        return;
    }
    let _dog = Watchdog::arm("two_guests_and_a_host_process_share_a_pool", TEST_LIMIT);
    let started = Instant::now();
    let dir = ScratchDir::new("qemu-ivshmem").unwrap();
    let socket = dir.join("pool.sock");
    let daemon = HostDaemon::start(&socket, &["--size", "1M", "--vectors", "2"])
        .unwrap_or_else(|e| panic!("{e}"));

    // The host process joins first, so the guests' QEMUs learn its eventfds during their handshake.
    let host = SocketDevice::connect(&socket, Duration::from_secs(10)).expect("host client joins");
    let host_id = host.own_id();
    assert_eq!(host.shm().len(), 1 << 20);

    let image = GuestImage::build(&[]).unwrap_or_else(|e| panic!("{e}"));
    // Boot both guests at once: TCG boots are single-threaded and take seconds each.
    let ((a, dev_a, id_a), (b, dev_b, id_b)) = std::thread::scope(|s| {
        let ta = s.spawn(|| boot(&image, &socket, "guest-a"));
        let tb = s.spawn(|| boot(&image, &socket, "guest-b"));
        (ta.join().unwrap(), tb.join().unwrap())
    });

    // (c) Distinct peer ids, equal to those the daemon assigned: its peer table marks them alive,
    // and it announced them to the host client.
    assert_ne!(id_a, id_b, "the guests got the same IVPosition");
    assert_ne!(id_a, host_id);
    assert_ne!(id_b, host_id);
    let (header, info) = PoolHeader::open(host.shm()).expect("daemon wrote a pool header");
    assert_eq!(info.vectors, 2);
    for id in [host_id, id_a, id_b] {
        assert_eq!(
            header.peer(u32::from(id)).map(|(s, _)| s),
            Some(PeerState::Alive),
            "peer {id} in the daemon's peer table\n{}",
            daemon.log()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(host.peers().contains(&id_a) && host.peers().contains(&id_b)) {
        assert!(
            Instant::now() < deadline,
            "host client knows peers {:?}, expected {id_a} and {id_b}",
            host.peers()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        TEST_OFFSET >= info.geometry.engine_offset,
        "test offset inside the header"
    );

    // Both guests see the daemon's header at the start of BAR2 ("SNOO" of the magic).
    for (g, d) in [(&a, &dev_a), (&b, &dev_b)] {
        assert_eq!(g.read32(d.shm(0)).unwrap(), u32::from_le_bytes(*b"SNOO"));
    }

    // A guest's write is seen by the other guest and by the host process...
    let v1 = 0x5A5A_0000 | u32::from(id_a);
    a.write32(dev_a.shm(TEST_OFFSET), v1).unwrap();
    assert_eq!(b.read32(dev_b.shm(TEST_OFFSET)).unwrap(), v1);
    let host_word = |off: u64| {
        host.shm()
            .u32_at(off as usize)
            .expect("in bounds")
            .load(Ordering::Acquire)
    };
    assert_eq!(host_word(TEST_OFFSET), v1);
    // ...and the host process's write by both guests.
    let v2 = 0xC0DE_0000 | u32::from(host_id);
    host.shm()
        .u32_at(TEST_OFFSET as usize + 4)
        .unwrap()
        .store(v2, Ordering::Release);
    assert_eq!(a.read32(dev_a.shm(TEST_OFFSET + 4)).unwrap(), v2);
    assert_eq!(b.read32(dev_b.shm(TEST_OFFSET + 4)).unwrap(), v2);

    // (d) Each guest's Doorbell write to the host client's vector 1 wakes its eventfd, and only
    // that vector.
    assert!(
        !host.wait(1, Duration::ZERO).unwrap(),
        "vector 1 rung early"
    );
    for (g, d) in [(&a, &dev_a), (&b, &dev_b)] {
        g.ring_doorbell(d, host_id, 1).unwrap();
        assert!(
            wait_rung(&host, 1, Duration::from_secs(30)),
            "{}'s doorbell did not wake the host client\n{}",
            g.name(),
            g.log_tail(20)
        );
        assert!(!host.wait(0, Duration::ZERO).unwrap(), "vector 0 rang too");
    }

    // The guests read their registers the same way after all that (no crash, no reset).
    assert_eq!(a.iv_position(&dev_a).unwrap(), id_a);
    assert_eq!(b.run("echo ok", CMD).unwrap(), ("ok\n".into(), 0));
    drop((a, b));
    eprintln!("whole test took {:.1?}", started.elapsed());
}
