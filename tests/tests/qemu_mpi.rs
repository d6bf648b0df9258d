//! SNOO_MPI between QEMU guests: tests/c/pingpong.c, linked statically against libsnoo_mpi.a, runs
//! as a 2-rank job
//! - between two guests without an IOMMU (the sysfs backend, found by scanning for the pool name),
//!   then between one of them and a host process (the socket backend) on the same pool;
//! - between two guests with a vIOMMU and the device bound to vfio-pci (the VFIO backend, MSI-X
//!   wake-ups), then tests/c/sweep.c between them (every size 0 B to 16 MiB, every byte checked,
//!   MB/s per size printed), then one of them and a host process.
//! - tests/c/guest_mpi.c, plain MPI, built by Debian's mpicc (dynamic, over SNOO's libmpi.so.12 in
//!   the guest) and by snoo-mpicc -static, between two guests.
//!
//! Skips (passes) when QEMU is not installed, unless SNOO_REQUIRE_QEMU is set.

use snoo_common::job::{rank_state, JobLayout, RANK_STATE};
use snoo_common::layout::PoolHeader;
use snoo_mpi::device::{Device, SocketDevice};
use snoo_tests::qemu::{
    mpicc_program, mpich_abi_runtime, qemu_or_skip, snoo_mpicc_static_program, static_c_program,
    static_rust_example, workspace_root, Guest, GuestConfig, GuestImage, HostDaemon, ImageSpec,
    ScratchDir, Watchdog, GUEST_LIB_DIR, TEST_LIMIT, VFIO_MODULES,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Rings of 64 KiB keep the pool small; the 1 MiB message of the C program and the 16 MiB of the
/// sweep stream through them.
const RING: usize = 64 << 10;
/// One job in TCG guests: boots are done, but every instruction is emulated.
const JOB: Duration = Duration::from_secs(300);
/// SNOO_TIMEOUT inside the guests (seconds without progress).
const SNOO_TIMEOUT: u32 = 120;

/// The tests of this file boot two TCG guests each; run them one at a time so that their timings
/// mean something on a small machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn pingpong() -> PathBuf {
    static_c_program(&workspace_root().join("tests/c/pingpong.c")).unwrap_or_else(|e| panic!("{e}"))
}

fn sweep() -> PathBuf {
    static_c_program(&workspace_root().join("tests/c/sweep.c")).unwrap_or_else(|e| panic!("{e}"))
}

/// Sizes tests/c/sweep.c checks: 0, the 25 powers of two up to 16 MiB, and 10 odd sizes.
const SWEEP_SIZES: usize = 36;

/// Runs tests/c/sweep.c as a 2-rank job, rank 0 in `a` and rank 1 in `b`, and checks that both
/// ranks verified every byte at every size. Prints rank 0's per-size MB/s lines and returns them.
fn sweep_job(a: &Guest, b: &Guest, name: &str, env_a: &str, env_b: &str) -> Vec<String> {
    let cmd = |rank: u32, env: &str| {
        format!(
            "SNOO_NAME={name} SNOO_RANK={rank} SNOO_SIZE=2 SNOO_TIMEOUT={SNOO_TIMEOUT} {env} /bin/sweep"
        )
    };
    let started = Instant::now();
    let (ra, rb) = std::thread::scope(|s| {
        let tb = s.spawn(|| b.run(&cmd(1, env_b), JOB));
        let ta = s.spawn(|| a.run(&cmd(0, env_a), JOB));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    let took = started.elapsed();
    let mut lines = Vec::new();
    for (rank, g, r) in [(0, a, ra), (1, b, rb)] {
        let (out, status) = r.unwrap_or_else(|e| panic!("sweep rank {rank} in {}: {e}", g.name()));
        assert_eq!(
            status,
            0,
            "sweep rank {rank} in {} failed:\n{out}",
            g.name()
        );
        assert!(
            out.contains(&format!("rank {rank} of 2: sweep ok ({SWEEP_SIZES} sizes)")),
            "sweep rank {rank} in {}:\n{out}",
            g.name()
        );
        if rank == 0 {
            lines = out
                .lines()
                .filter(|l| l.starts_with("sweep: "))
                .map(str::to_string)
                .collect();
        }
    }
    assert_eq!(lines.len(), SWEEP_SIZES, "{lines:#?}");
    for l in &lines {
        eprintln!("{} -> {}: {l}", a.name(), b.name());
    }
    eprintln!("sweep 0 B .. 16 MiB took {took:.1?}");
    lines
}

/// Serves pool `name` for a job of `ranks` ranks (RING-byte rings, one vector) on `socket`.
fn start_daemon(socket: &Path, name: &str, ranks: u32) -> HostDaemon {
    start_daemon_with_vectors(socket, name, ranks, 1)
}

/// [`start_daemon`] with `vectors` doorbell vectors per peer.
fn start_daemon_with_vectors(socket: &Path, name: &str, ranks: u32, vectors: u32) -> HostDaemon {
    let size = JobLayout::pool_size_for(ranks, RING, 64).to_string();
    let ranks = ranks.to_string();
    let vectors = vectors.to_string();
    HostDaemon::start(
        socket,
        &[
            "--size",
            &size,
            "--vectors",
            &vectors,
            "--name",
            name,
            "--ranks",
            &ranks,
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Boots guest-a and guest-b at once, attached to the job's pool; `extra_a` are more pools for
/// guest A, whose devices come first on its PCI bus.
fn boot_two(image: &GuestImage, socket: &Path, iommu: bool, extra_a: &[&Path]) -> (Guest, Guest) {
    boot_two_with_vectors(image, socket, iommu, extra_a, 1)
}

/// [`boot_two`] with `vectors` MSI-X vectors on the job's device.
fn boot_two_with_vectors(
    image: &GuestImage,
    socket: &Path,
    iommu: bool,
    extra_a: &[&Path],
    vectors: u32,
) -> (Guest, Guest) {
    let cfg = |name: &str, extra: &[&Path]| {
        let mut ivshmem: Vec<(PathBuf, u32)> = extra.iter().map(|p| (p.to_path_buf(), 1)).collect();
        ivshmem.push((socket.to_path_buf(), vectors));
        GuestConfig {
            ivshmem,
            iommu,
            name: name.into(),
            ..GuestConfig::default()
        }
    };
    std::thread::scope(|s| {
        let a = s.spawn(|| {
            Guest::boot(image, &cfg("guest-a", extra_a)).unwrap_or_else(|e| panic!("{e}"))
        });
        let b =
            s.spawn(|| Guest::boot(image, &cfg("guest-b", &[])).unwrap_or_else(|e| panic!("{e}")));
        (a.join().unwrap(), b.join().unwrap())
    })
}

/// The shell line that runs rank `rank` of job `name` in a guest; `env` adds variables.
fn rank_cmd(name: &str, rank: u32, env: &str) -> String {
    format!(
        "SNOO_NAME={name} SNOO_RANK={rank} SNOO_SIZE=2 SNOO_TIMEOUT={SNOO_TIMEOUT} {env} /bin/pingpong"
    )
}

/// Wraps a command so that it samples the guest's vfio-msix interrupt lines while it runs (they
/// exist only while a process has MSI-X enabled) and prints the last sample as `IRQ: ...`.
fn sampling_irqs(cmd: &str) -> String {
    format!(
        "{cmd} >/tmp/out 2>&1 & p=$!
         while kill -0 $p 2>/dev/null; do
             grep vfio-msix /proc/interrupts >/tmp/irq.new && mv /tmp/irq.new /tmp/irq
             sleep 0.05
         done
         wait $p; st=$?
         cat /tmp/out; echo \"IRQ: $(cat /tmp/irq 2>/dev/null)\"; exit $st"
    )
}

/// Runs both ranks at once, one per guest, and checks that both report success. Returns the time
/// the job took and both outputs.
fn run_job(a: &Guest, b: &Guest, cmd_a: &str, cmd_b: &str) -> (Duration, String, String) {
    run_job_with(a, b, cmd_a, cmd_b, || {})
}

/// Like [`run_job`], but starts rank 1 (in `b`) first and calls `before_a` before starting rank 0.
fn run_job_with(
    a: &Guest,
    b: &Guest,
    cmd_a: &str,
    cmd_b: &str,
    before_a: impl FnOnce(),
) -> (Duration, String, String) {
    let started = Instant::now();
    let (ra, rb) = std::thread::scope(|s| {
        let tb = s.spawn(|| b.run(cmd_b, JOB));
        before_a();
        let ta = s.spawn(|| a.run(cmd_a, JOB));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    let mut outs = Vec::new();
    for (rank, g, r) in [(0, a, ra), (1, b, rb)] {
        let (out, status) = r.unwrap_or_else(|e| panic!("rank {rank} in {}: {e}", g.name()));
        assert_eq!(status, 0, "rank {rank} in {} failed:\n{out}", g.name());
        assert!(
            out.contains(&format!("rank {rank} of 2: ok")),
            "rank {rank} in {}:\n{out}",
            g.name()
        );
        // The pool leaves room for a rendezvous-sized (>= 32 KiB) buffer: the single-copy path
        // ran between the guests.
        assert!(
            rank != 0
                || ["32768", "262144"]
                    .iter()
                    .any(|n| out.contains(&format!("pool memory: {n} bytes"))),
            "rank 0 in {} did not send from pool memory:\n{out}",
            g.name()
        );
        outs.push(out);
    }
    let b_out = outs.pop().unwrap();
    (started.elapsed(), outs.pop().unwrap(), b_out)
}

/// Rank 0 runs `cmd_a` in guest `a`, rank 1 is `exe` run on the host through the daemon socket.
fn guest_and_host_job(
    a: &Guest,
    exe: &Path,
    socket: &Path,
    name: &str,
    cmd_a: &str,
    daemon: &HostDaemon,
) -> Duration {
    let job = Instant::now();
    let host = std::thread::scope(|s| {
        let host = s.spawn(|| {
            let mut cmd = Command::new(exe);
            cmd.env("SNOO_SOCKET", socket)
                .env("SNOO_NAME", name)
                .env("SNOO_RANK", "1")
                .env("SNOO_SIZE", "2")
                .env("SNOO_TIMEOUT", SNOO_TIMEOUT.to_string());
            output_within(cmd, JOB)
        });
        let (out, status) = a
            .run(cmd_a, JOB)
            .unwrap_or_else(|e| panic!("rank 0 in {}: {e}", a.name()));
        assert_eq!(status, 0, "rank 0 in {}:\n{out}", a.name());
        assert!(out.contains("rank 0 of 2: ok"), "{out}");
        host.join().unwrap()
    });
    let out = String::from_utf8_lossy(&host.stdout);
    assert!(
        host.status.success() && out.contains("rank 1 of 2: ok"),
        "host rank: {}\n{out}{}\ndaemon log:\n{}",
        host.status,
        String::from_utf8_lossy(&host.stderr),
        daemon.log()
    );
    job.elapsed()
}

/// Runs `cmd` to completion like `Command::output`, but kills it after `limit`: a host rank that
/// never ends must fail the test, not hang it.
fn output_within(mut cmd: Command, limit: Duration) -> std::process::Output {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Binds the guest's only ivshmem device to vfio-pci; returns its address and peer id.
fn bind_vfio(g: &Guest) -> (String, u16) {
    let dev = g.ivshmem_device().unwrap_or_else(|e| panic!("{e}"));
    let id = g.iv_position(&dev).unwrap_or_else(|e| panic!("{e}"));
    // Bind every 1af4:1110 device to vfio-pci; each gets its own IOMMU group.
    let out = g
        .run_ok(
            &format!(
                "echo 1af4 1110 > /sys/bus/pci/drivers/vfio-pci/new_id && \
                 readlink /sys/bus/pci/devices/{0}/driver && \
                 ls /dev/vfio/$(basename $(readlink /sys/bus/pci/devices/{0}/iommu_group))",
                dev.bdf
            ),
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("vfio-pci"), "{} not bound: {out}", dev.bdf);
    (dev.bdf, id)
}

/// Sum of the per-CPU counts of an `IRQ:  25:  3  0  IR-PCI-MSI ... vfio-msix[0](...)` line.
fn irq_count(line: &str) -> u64 {
    line.split_whitespace()
        .skip(2)
        .map_while(|w| w.parse::<u64>().ok())
        .sum()
}

#[test]
fn c_job_between_two_guests_over_sysfs_then_with_a_host_process() {
    if !qemu_or_skip("c_job_between_two_guests_over_sysfs_then_with_a_host_process").unwrap() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _dog = Watchdog::arm(
        "c_job_between_two_guests_over_sysfs_then_with_a_host_process",
        TEST_LIMIT,
    );
    let started = Instant::now();
    let exe = pingpong();
    let dir = ScratchDir::new("qemu-mpi").unwrap();
    let socket = dir.join("job.sock");
    let name = "guestjob";
    let daemon = start_daemon(&socket, name, 2);
    let image = GuestImage::build_with(&ImageSpec::default().file(&exe, "/bin/pingpong"))
        .unwrap_or_else(|e| panic!("{e}"));
    // Guest A is also attached to another pool, on a device scanned before the job's: the rank
    // there must skip it by name.
    let decoy = dir.join("decoy.sock");
    let _decoy = HostDaemon::start(
        &decoy,
        &["--size", "1M", "--vectors", "1", "--name", "decoy"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = boot_two(&image, &socket, false, &[&decoy]);
    eprintln!("booted in {:.1?} and {:.1?}", a.boot_time(), b.boot_time());

    // No SNOO_DEVICE: each rank finds the pool by scanning its ivshmem devices for the name (past
    // the decoy in guest A); with no IOMMU and no driver bound, that is the sysfs backend.
    let (t, _, _) = run_job(&a, &b, &rank_cmd(name, 0, ""), &rank_cmd(name, 1, ""));
    eprintln!("guest <-> guest job (sysfs) took {t:.1?}");

    // The same pool again (the last rank out freed it): rank 0 in guest A, rank 1 a host process
    // running the same static program through the daemon socket.
    // This time guest A names its device (SNOO_DEVICE=pci:BDF, auto: sysfs).
    let devs = a.ivshmem_devices().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(devs.len(), 2, "guest A has the decoy and the job pool");
    let bdf = &devs[1].bdf;
    let env_a = format!("SNOO_DEVICE=pci:{bdf}");
    let t = guest_and_host_job(&a, &exe, &socket, name, &rank_cmd(name, 0, &env_a), &daemon);
    eprintln!("guest <-> host process job (sysfs) took {t:.1?}");
    drop((a, b));
    eprintln!("whole test took {:.1?}", started.elapsed());
}

#[test]
fn c_job_between_two_guests_over_vfio() {
    if !qemu_or_skip("c_job_between_two_guests_over_vfio").unwrap() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _dog = Watchdog::arm("c_job_between_two_guests_over_vfio", TEST_LIMIT);
    let started = Instant::now();
    let exe = pingpong();
    let sweep_exe = sweep();
    let dir = ScratchDir::new("qemu-vfio").unwrap();
    let socket = dir.join("job.sock");
    let name = "vfiojob";
    let daemon = start_daemon(&socket, name, 2);
    let spec = ImageSpec {
        load_modules_at_boot: true,
        ..ImageSpec::default()
            .file(&exe, "/bin/pingpong")
            .file(&sweep_exe, "/bin/sweep")
            .modules(VFIO_MODULES)
    };
    let image = GuestImage::build_with(&spec).unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = boot_two(&image, &socket, true, &[]);
    eprintln!("booted in {:.1?} and {:.1?}", a.boot_time(), b.boot_time());
    let mut bdfs = Vec::new();
    let mut ids = Vec::new();
    for g in [&a, &b] {
        let (bdf, id) = bind_vfio(g);
        ids.push(id);
        bdfs.push(bdf);
    }
    // A host process joins the pool as a plain peer (no rank), only to ring guest B's doorbell.
    let host = SocketDevice::connect(&socket, Duration::from_secs(10)).expect("host peer joins");
    // Guest A names the device and the backend; guest B finds the pool by name (auto: VFIO,
    // because the device is bound to vfio-pci). Both sample /proc/interrupts while they run: a
    // vfio-msix line proves that the backend routed the MSI-X vector to an eventfd.
    // Rank 1 starts first and waits for rank 0 on its doorbell vector; the host rings it meanwhile,
    // which must arrive as an interrupt in guest B.
    let (t, out_a, out_b) = run_job_with(
        &a,
        &b,
        &sampling_irqs(&rank_cmd(name, 0, &format!("SNOO_DEVICE=vfio:{}", bdfs[0]))),
        &sampling_irqs(&rank_cmd(name, 1, "")),
        || {
            // Rank 1 claims its slot after it opened the device (MSI-X is routed by then) and then
            // waits for rank 0, which is not started yet: ring it while it waits.
            let info = PoolHeader::open(host.shm()).expect("pool header").1;
            let slot = JobLayout::new(&info.geometry, 2)
                .expect("job layout")
                .rank_slot(1)
                .expect("rank 1");
            let state = host.shm().u32_at(slot + RANK_STATE).expect("in the pool");
            let deadline = Instant::now() + JOB;
            while state.load(Ordering::Acquire) == rank_state::FREE {
                assert!(Instant::now() < deadline, "rank 1 never claimed its slot");
                std::thread::sleep(Duration::from_millis(20));
            }
            for _ in 0..10 {
                host.doorbell(ids[1], 0).expect("ring guest B");
                std::thread::sleep(Duration::from_millis(100));
            }
        },
    );
    eprintln!("guest <-> guest job (VFIO) took {t:.1?}");
    // A bandwidth sweep 0 B .. 16 MiB on the same two guests, every byte checked at every size.
    sweep_job(&a, &b, name, &format!("SNOO_DEVICE=vfio:{}", bdfs[0]), "");
    let mut counts = Vec::new();
    for (g, out) in [(&a, &out_a), (&b, &out_b)] {
        let irq = out.lines().find(|l| l.starts_with("IRQ:")).unwrap_or("");
        eprintln!("{}: {irq}", g.name());
        assert!(
            irq.contains("vfio-msix"),
            "{}: no vfio-msix interrupt line while the job ran:\n{out}",
            g.name()
        );
        counts.push(irq_count(irq));
    }
    assert!(
        counts[1] > 0,
        "the host's doorbells never reached guest B as MSI-X interrupts:\n{out_b}"
    );
    drop(host);

    // The same pool again: rank 0 in guest A (VFIO), rank 1 a host process.
    let cmd = rank_cmd(name, 0, &format!("SNOO_DEVICE=pci:{}", bdfs[0]));
    let t = guest_and_host_job(&a, &exe, &socket, name, &cmd, &daemon);
    eprintln!("guest <-> host process job (VFIO) took {t:.1?}");
    drop((a, b));
    eprintln!("whole test took {:.1?}", started.elapsed());
}

/// Three guests and four ranks (sysfs): guest A runs two ranks on its one device, guests B and C one
/// each. The C program passes a ring of messages around all four ranks and fans in to rank 0 with
/// ANY_SOURCE, besides its ping-pong between ranks 0 and 1.
#[test]
fn c_job_across_three_guests_with_two_ranks_in_one() {
    if !qemu_or_skip("c_job_across_three_guests_with_two_ranks_in_one").unwrap() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _dog = Watchdog::arm(
        "c_job_across_three_guests_with_two_ranks_in_one",
        TEST_LIMIT,
    );
    let started = Instant::now();
    let exe = pingpong();
    let dir = ScratchDir::new("qemu-mpi3").unwrap();
    let socket = dir.join("job.sock");
    let name = "threeguests";
    let _daemon = start_daemon(&socket, name, 4);
    let image = GuestImage::build_with(&ImageSpec::default().file(&exe, "/bin/pingpong"))
        .unwrap_or_else(|e| panic!("{e}"));
    let cfg = |n: &str| GuestConfig {
        ivshmem: vec![(socket.clone(), 1)],
        name: n.into(),
        ..GuestConfig::default()
    };
    let guests: Vec<Guest> = std::thread::scope(|s| {
        let hs: Vec<_> = ["guest-a", "guest-b", "guest-c"]
            .into_iter()
            .map(|n| {
                let c = cfg(n);
                let image = &image;
                s.spawn(move || Guest::boot(image, &c).unwrap_or_else(|e| panic!("{e}")))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let cmd = |rank: u32| {
        format!(
            "SNOO_NAME={name} SNOO_RANK={rank} SNOO_SIZE=4 SNOO_TIMEOUT={SNOO_TIMEOUT} /bin/pingpong"
        )
    };
    // Guest A: ranks 0 and 3 at once, in the background of one shell command.
    let two_in_a = format!(
        "({} >/tmp/r0 2>&1; echo \"exit0=$?\" >>/tmp/r0) & ({} >/tmp/r3 2>&1; echo \"exit3=$?\" >>/tmp/r3) & wait; cat /tmp/r0 /tmp/r3",
        cmd(0),
        cmd(3)
    );
    let t0 = Instant::now();
    let outs: Vec<String> = std::thread::scope(|s| {
        let ha = s.spawn(|| guests[0].run(&two_in_a, JOB));
        let hb = s.spawn(|| guests[1].run(&cmd(1), JOB));
        let hc = s.spawn(|| guests[2].run(&cmd(2), JOB));
        [ha, hb, hc]
            .into_iter()
            .zip(&guests)
            .map(|(h, g)| {
                let (out, st) = h
                    .join()
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{}: {e}", g.name()));
                assert_eq!(st, 0, "{}:\n{out}", g.name());
                out
            })
            .collect()
    });
    for (rank, out) in [(0, &outs[0]), (3, &outs[0]), (1, &outs[1]), (2, &outs[2])] {
        assert!(
            out.contains(&format!("rank {rank} of 4: ok")),
            "rank {rank}:\n{out}"
        );
    }
    assert!(
        outs[0].contains("exit0=0") && outs[0].contains("exit3=0"),
        "{}",
        outs[0]
    );
    eprintln!(
        "4 ranks in 3 guests: job took {:.1?}, whole test {:.1?}",
        t0.elapsed(),
        started.elapsed()
    );
}

/// A guest killed mid-job: rank 0 streams 16 MiB messages from a guest (sysfs) to rank 1, a host
/// process on the same pool; QEMU gets SIGKILL while messages flow, and rank 1, blocked in a
/// receive, must fail with SNOO_MPI_ERR_PEER_DEAD and exit within a bounded time (SNOO_TIMEOUT is
/// far longer, so a timeout cannot pass for it). Every wait here has a deadline.
#[test]
fn guest_killed_mid_transfer_gives_peer_dead_to_the_host_rank() {
    if !qemu_or_skip("guest_killed_mid_transfer_gives_peer_dead_to_the_host_rank").unwrap() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _dog = Watchdog::arm(
        "guest_killed_mid_transfer_gives_peer_dead_to_the_host_rank",
        TEST_LIMIT,
    );
    /// From the kill to the survivor's exit: liveness is checked after every 20 ms sleep, and the
    /// daemon marks a peer dead as soon as its socket closes; the rest is slack for a loaded host.
    const BOUND: Duration = Duration::from_secs(20);
    let stream = static_c_program(&workspace_root().join("tests/c/stream.c"))
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = ScratchDir::new("qemu-kill").unwrap();
    let socket = dir.join("job.sock");
    let name = "killjob";
    let daemon = start_daemon(&socket, name, 2);
    let image = GuestImage::build_with(&ImageSpec::default().file(&stream, "/bin/stream"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut a = Guest::boot(
        &image,
        &GuestConfig {
            ivshmem: vec![(socket.clone(), 1)],
            name: "guest-a".into(),
            ..GuestConfig::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // Rank 1 on the host; its stdout lines arrive on a channel with their arrival time.
    let mut host = Command::new(&stream)
        .env("SNOO_SOCKET", &socket)
        .env("SNOO_NAME", name)
        .env("SNOO_RANK", "1")
        .env("SNOO_SIZE", "2")
        .env("SNOO_TIMEOUT", SNOO_TIMEOUT.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, String)>();
    let stdout = host.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send((Instant::now(), line));
        }
    });
    // Kills the host rank if anything below panics, so the test cannot hang on it.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut host = KillOnDrop(host);

    // Rank 0 in the guest, in the background so that the console stays free.
    a.run_ok(
        &format!(
            "SNOO_NAME={name} SNOO_RANK=0 SNOO_SIZE=2 SNOO_TIMEOUT={SNOO_TIMEOUT} \
             /bin/stream >/tmp/stream.out 2>&1 &"
        ),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // Wait until three messages arrived: the stream is flowing, and the next one is in transit.
    let deadline = Instant::now() + JOB;
    let mut received = 0;
    while received < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((_, l)) if l.starts_with("received ") => received += 1,
            Ok((_, l)) => panic!("host rank: unexpected {l:?}"),
            Err(e) => panic!(
                "host rank: no 3 messages within {JOB:?} ({e}); guest:\n{}\ndaemon:\n{}",
                a.run("cat /tmp/stream.out", Duration::from_secs(10))
                    .map(|r| r.0)
                    .unwrap_or_default(),
                daemon.log()
            ),
        }
    }

    let killed = Instant::now();
    a.kill(); // SIGKILL, then reaps QEMU.
    let reaped = killed.elapsed();

    // Rank 1 reports the death and exits.
    let mut error_line = None;
    let mut last_received = received;
    while error_line.is_none() {
        let left = (killed + BOUND).saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((t, l)) if l.starts_with("rank 1: error") => error_line = Some((t - killed, l)),
            Ok((_, l)) if l.starts_with("received ") => last_received += 1,
            Ok((_, l)) => panic!("host rank: unexpected {l:?}"),
            Err(e) => panic!(
                "host rank reported nothing within {BOUND:?} of the kill ({e}); daemon:\n{}",
                daemon.log()
            ),
        }
    }
    let (to_error, line) = error_line.unwrap();
    let status = loop {
        if let Some(st) = host.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            killed.elapsed() < BOUND,
            "host rank printed {line:?} but did not exit within {BOUND:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let to_exit = killed.elapsed();
    let _ = reader.join();
    eprintln!(
        "QEMU reaped {reaped:.1?} after SIGKILL; host rank: {line:?} {to_error:.1?} after the \
         kill, exited ({status}) after {to_exit:.1?}; {last_received} messages of 16 MiB got through"
    );
    assert!(
        line.contains("error 14 ") && line.contains("peer rank died"),
        "{line}"
    );
    assert_eq!(status.code(), Some(3), "exit status of the host rank");
    assert!(to_exit < BOUND);
}

/// A Rust program built with crt-static (guest/examples/pingpong.rs, see
/// `static_rust_example`) runs in the busybox initramfs, which has no libc, as rank 0 of a job
/// whose rank 1 is the same executable on the host; both check every byte of every message.
#[test]
fn static_rust_program_in_a_guest_talks_to_a_host_rank() {
    if !qemu_or_skip("static_rust_program_in_a_guest_talks_to_a_host_rank").unwrap() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _dog = Watchdog::arm(
        "static_rust_program_in_a_guest_talks_to_a_host_rank",
        TEST_LIMIT,
    );
    let started = Instant::now();
    let exe = static_rust_example("snoo-mpi", "pingpong").unwrap_or_else(|e| panic!("{e}"));
    eprintln!("built {} in {:.1?}", exe.display(), started.elapsed());
    let dir = ScratchDir::new("qemu-rust").unwrap();
    let socket = dir.join("job.sock");
    let name = "rustjob";
    let daemon = start_daemon(&socket, name, 2);
    let image = GuestImage::build_with(&ImageSpec::default().file(&exe, "/bin/rust-pingpong"))
        .unwrap_or_else(|e| panic!("{e}"));
    let a = Guest::boot(
        &image,
        &GuestConfig {
            ivshmem: vec![(socket.clone(), 1)],
            name: "guest-a".into(),
            ..GuestConfig::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Messages of 0, 1, 4, ... 1 MiB bytes (powers of four), 10 round trips each (2 from 1 MiB).
    let args = ["1048576", "10"];
    let t0 = Instant::now();
    let host = std::thread::scope(|s| {
        let host = s.spawn(|| {
            Command::new(&exe)
                .args(args)
                .env("SNOO_SOCKET", &socket)
                .env("SNOO_NAME", name)
                .env("SNOO_RANK", "1")
                .env("SNOO_SIZE", "2")
                .env("SNOO_TIMEOUT", SNOO_TIMEOUT.to_string())
                .output()
                .unwrap()
        });
        let (out, status) = a
            .run(
                &format!(
                    "SNOO_NAME={name} SNOO_RANK=0 SNOO_SIZE=2 SNOO_TIMEOUT={SNOO_TIMEOUT} \
                     /bin/rust-pingpong {}",
                    args.join(" ")
                ),
                JOB,
            )
            .unwrap_or_else(|e| panic!("rank 0 in {}: {e}", a.name()));
        assert_eq!(status, 0, "rank 0 in {}:\n{out}", a.name());
        // The last size is 4^10 = 1 MiB: rank 0 printed a line for it after checking its bytes.
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().next() == Some("1048576")),
            "rank 0 in {}:\n{out}",
            a.name()
        );
        eprintln!("rank 0 (Rust, static, in {}):\n{out}", a.name());
        host.join().unwrap()
    });
    assert!(
        host.status.success(),
        "host rank: {}\n{}{}\ndaemon log:\n{}",
        host.status,
        String::from_utf8_lossy(&host.stdout),
        String::from_utf8_lossy(&host.stderr),
        daemon.log()
    );
    eprintln!(
        "job took {:.1?}, whole test {:.1?}",
        t0.elapsed(),
        started.elapsed()
    );
}

/// Two ranks in one guest whose device is bound to vfio-pci, a third in another guest. Only one
/// process can open the VFIO group: the first rank of guest A opens it and lends the device fd
/// (guest/src/device/vfio_share.rs), the second maps the BARs from the lent fd and sleeps on
/// vector 1, lent with it. Both ranks of guest A force VFIO (SNOO_DEVICE=vfio:BDF), and the guest
/// samples which of them map the VFIO device and which holds the group (both must map it, exactly
/// one holds the group) and counts interrupts on vector 1: a doorbell must wake the borrower there.
#[test]
fn c_job_with_two_vfio_ranks_in_one_guest() {
    if !qemu_or_skip("c_job_with_two_vfio_ranks_in_one_guest").unwrap() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _dog = Watchdog::arm("c_job_with_two_vfio_ranks_in_one_guest", TEST_LIMIT);
    let started = Instant::now();
    let exe = pingpong();
    let dir = ScratchDir::new("qemu-vfio2").unwrap();
    let socket = dir.join("job.sock");
    let name = "vfiotwo";
    // Two vectors: the owner waits on vector 0 and lends vector 1 to the other rank of its VM.
    let _daemon = start_daemon_with_vectors(&socket, name, 3, 2);
    let spec = ImageSpec {
        load_modules_at_boot: true,
        ..ImageSpec::default()
            .file(&exe, "/bin/pingpong")
            .modules(VFIO_MODULES)
    };
    let image = GuestImage::build_with(&spec).unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = boot_two_with_vectors(&image, &socket, true, &[], 2);
    eprintln!("booted in {:.1?} and {:.1?}", a.boot_time(), b.boot_time());
    let (bdf_a, _) = bind_vfio(&a);
    bind_vfio(&b);
    let env = |rank: u32| {
        format!("SNOO_NAME={name} SNOO_RANK={rank} SNOO_SIZE=3 SNOO_TIMEOUT={SNOO_TIMEOUT}")
    };
    // Rank 2 starts first (it will most likely own the device), rank 0, which does the 1 MiB
    // ping-pong with rank 1, a second later; each runs under its own name so that the sampling
    // loop can tell them apart, and lingers in the job for 2 s, so that the loop (hundreds of
    // milliseconds per pass under TCG) cannot miss it. Rank 2 sends its fan-in message 6 s
    // late, so rank 0 sleeps on its doorbell until rank 2 rings it.
    let two_in_a = format!(
        "cp /bin/pingpong /tmp/pp0; cp /bin/pingpong /tmp/pp2; : >/tmp/ev
         {e2} PINGPONG_LINGER_MS=2000 PINGPONG_SEND_DELAY_MS=6000 SNOO_DEVICE=vfio:{bdf_a} /tmp/pp2 >/tmp/r2 2>&1 & P2=$!
         sleep 1
         {e0} PINGPONG_LINGER_MS=2000 SNOO_DEVICE=vfio:{bdf_a} /tmp/pp0 >/tmp/r0 2>&1 & P0=$!
         while kill -0 $P0 2>/dev/null || kill -0 $P2 2>/dev/null; do
             for r in 0 2; do
                 p=$(pidof pp$r) || continue
                 grep -q vfio /proc/$p/maps 2>/dev/null && echo \"rank $r maps the VFIO device\" >>/tmp/ev
                 ls -l /proc/$p/fd 2>/dev/null | grep -q '/dev/vfio/[0-9]' && echo \"rank $r holds the group\" >>/tmp/ev
                 ls -l /proc/$p/fd 2>/dev/null | grep -q 'eventfd' && echo \"rank $r holds an eventfd\" >>/tmp/ev
             done
             n=$(awk '/vfio-msix.1./ {{ n = 0; for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) n += $i; print n }}' /proc/interrupts)
             echo \"vector 1 interrupts: $n\" >>/tmp/ev
             echo \"vector 1 at $(cut -d' ' -f1 /proc/uptime): $n\" >>/tmp/v1
             grep vfio-msix /proc/interrupts >>/tmp/irqs
             sleep 0.05
         done
         wait $P0; s0=$?; wait $P2; s2=$?
         cat /tmp/r0 /tmp/r2; sort -u /tmp/ev; cat /tmp/v1; tail -2 /tmp/irqs; echo \"exit0=$s0 exit2=$s2\"",
        e0 = env(0),
        e2 = env(2),
    );
    let t0 = Instant::now();
    let (ra, rb) = std::thread::scope(|s| {
        let hb = s.spawn(|| b.run(&format!("{} /bin/pingpong", env(1)), JOB));
        let ha = s.spawn(|| a.run(&two_in_a, JOB));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    let (out_a, st_a) = ra.unwrap_or_else(|e| panic!("guest A: {e}"));
    let (out_b, st_b) = rb.unwrap_or_else(|e| panic!("guest B: {e}"));
    eprintln!("guest A:\n{out_a}\nguest B:\n{out_b}");
    assert_eq!(st_a, 0, "guest A:\n{out_a}");
    assert_eq!(st_b, 0, "guest B:\n{out_b}");
    assert!(out_a.contains("exit0=0 exit2=0"), "{out_a}");
    for (rank, out) in [(0, &out_a), (2, &out_a), (1, &out_b)] {
        assert!(
            out.contains(&format!("rank {rank} of 3: ok")),
            "rank {rank}:\n{out}"
        );
    }
    for rank in [0, 2] {
        assert!(
            out_a.contains(&format!("rank {rank} maps the VFIO device")),
            "rank {rank} never mapped the VFIO device:\n{out_a}"
        );
    }
    let holders = out_a.matches("holds the group").count();
    assert_eq!(
        holders, 1,
        "exactly one rank holds the VFIO group:\n{out_a}"
    );
    // The rank that borrowed the device got vector 1 (an eventfd of its own), and a doorbell
    // reached it there: rank 0 sleeps through rank 2's 6 s delay, so rank 2's fan-in send must
    // ring it, and guest A's kernel must count an interrupt on vector 1 after that send (the
    // sampler stamps each count with the guest's uptime, rank 2 its send).
    for rank in [0, 2] {
        assert!(
            out_a.contains(&format!("rank {rank} holds an eventfd")),
            "rank {rank} has no eventfd to wait on:\n{out_a}"
        );
    }
    let sent: f64 = out_a
        .lines()
        .find_map(|l| {
            l.strip_prefix("rank 2: fan-in send at ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("rank 2 never said when it sent:\n{out_a}"));
    let counts: Vec<(f64, u64)> = out_a
        .lines()
        .filter_map(|l| {
            let (at, n) = l.strip_prefix("vector 1 at ")?.split_once(": ")?;
            Some((at.parse().ok()?, n.trim().parse().ok()?))
        })
        .collect();
    let before = counts
        .iter()
        .filter(|(at, _)| *at <= sent)
        .map(|c| c.1)
        .max()
        .unwrap_or(0);
    let after = counts.iter().map(|c| c.1).max().unwrap_or(0);
    eprintln!(
        "interrupts on the borrower's vector 1: {before} before rank 2's send, {after} after"
    );
    assert!(
        after > before,
        "rank 2's send did not ring rank 0 on vector 1 ({before} interrupts before it, {after} after):\n{out_a}"
    );
    eprintln!(
        "3 ranks, 2 of them on one VFIO device: job took {:.1?}, whole test {:.1?}",
        t0.elapsed(),
        started.elapsed()
    );
}

/// tests/c/guest_mpi.c, a plain MPI program, built twice and run as a 2-rank job between two
/// guests (sysfs) on one pool, one build after the other in the same boot:
/// - by Debian's `mpicc`, unmodified and dynamically linked against `libmpich.so.12`; the guest has
///   no MPICH, only SNOO's `libmpi.so` (the MPICH ABI face) under MPICH's sonames, glibc and the
///   program interpreter, found through `LD_LIBRARY_PATH`;
/// - by `snoo-mpicc -static` (the MPI standard ABI face), which needs no library at all.
///
/// Both must report SNOO's library version, proof that SNOO's library is what ran.
#[test]
fn mpicc_built_and_static_mpi_programs_between_two_guests() {
    if !qemu_or_skip("mpicc_built_and_static_mpi_programs_between_two_guests").unwrap() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _dog = Watchdog::arm(
        "mpicc_built_and_static_mpi_programs_between_two_guests",
        TEST_LIMIT,
    );
    let started = Instant::now();
    let src = workspace_root().join("tests/c/guest_mpi.c");
    let dynamic = mpicc_program(&src).unwrap_or_else(|e| panic!("{e}"));
    let fully_static = snoo_mpicc_static_program(&src).unwrap_or_else(|e| panic!("{e}"));
    // Fails unless the mpicc build needs an MPICH soname and resolves it to SNOO's library.
    let libs = mpich_abi_runtime(&dynamic).unwrap_or_else(|e| panic!("{e}"));
    let mut spec = ImageSpec::default()
        .file(&dynamic, "/bin/guest_mpi-mpicc")
        .file(&fully_static, "/bin/guest_mpi-static");
    for (host, guest) in libs {
        spec = spec.file(host, guest);
    }
    let dir = ScratchDir::new("qemu-abi").unwrap();
    let socket = dir.join("job.sock");
    let name = "abijob";
    let _daemon = start_daemon(&socket, name, 2);
    let image = GuestImage::build_with(&spec).unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = boot_two(&image, &socket, false, &[]);
    eprintln!("booted in {:.1?} and {:.1?}", a.boot_time(), b.boot_time());

    let lib_path = format!("LD_LIBRARY_PATH={GUEST_LIB_DIR}");
    for (build, exe, env) in [
        ("mpicc", "/bin/guest_mpi-mpicc", lib_path.as_str()),
        ("snoo-mpicc -static", "/bin/guest_mpi-static", ""),
    ] {
        // The pool is free again once the previous job's last rank left it.
        let cmd = |rank: u32| {
            format!(
                "SNOO_NAME={name} SNOO_RANK={rank} SNOO_SIZE=2 SNOO_TIMEOUT={SNOO_TIMEOUT} {env} {exe}"
            )
        };
        let job = Instant::now();
        let (ra, rb) = std::thread::scope(|s| {
            let tb = s.spawn(|| b.run(&cmd(1), JOB));
            let ta = s.spawn(|| a.run(&cmd(0), JOB));
            (ta.join().unwrap(), tb.join().unwrap())
        });
        let took = job.elapsed();
        for (rank, g, r) in [(0, &a, ra), (1, &b, rb)] {
            let (out, status) =
                r.unwrap_or_else(|e| panic!("{build} build, rank {rank} in {}: {e}", g.name()));
            let ctx = format!("{build} build, rank {rank} in {}", g.name());
            assert_eq!(status, 0, "{ctx} failed:\n{out}");
            assert!(
                out.contains(&format!("rank {rank}: library: SNOO MPI ")),
                "{ctx}: not SNOO's library:\n{out}"
            );
            for line in [
                "checked: send/recv 6 sizes up to 1048579 bytes",
                &format!("checked: sendrecv from {}", 1 - rank),
                "checked: comm_dup, barrier, allreduce sum 3 max 1",
                &format!("rank {rank} of 2: guest_mpi ok"),
            ] {
                assert!(out.contains(line), "{ctx}: no {line:?}:\n{out}");
            }
            if rank == 0 {
                let lib = out.lines().find(|l| l.contains("library:")).unwrap_or("");
                eprintln!("{build}: {lib}");
            }
        }
        eprintln!("{build} build: guest <-> guest job took {took:.1?}");
    }
    drop((a, b));
    eprintln!("whole test took {:.1?}", started.elapsed());
}

/// Collectives across two guests and a host process: tests/mpi/collectives' v-forms program
/// (vector.c) and its non-blocking one (nonblocking.c), built by `snoo-mpicc -static`, as a
/// 3-rank job — rank 0 in guest A, rank 1 in guest B, rank 2 a host process on the daemon's
/// socket — each checking every result against its own reference, as under MPICH.
#[test]
fn collectives_across_two_guests_and_a_host_process() {
    if !qemu_or_skip("collectives_across_two_guests_and_a_host_process").unwrap() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _dog = Watchdog::arm(
        "collectives_across_two_guests_and_a_host_process",
        TEST_LIMIT,
    );
    let started = Instant::now();
    let progs: Vec<(&str, PathBuf)> = ["vector", "nonblocking"]
        .into_iter()
        .map(|p| {
            let src = workspace_root().join(format!("tests/mpi/collectives/{p}.c"));
            (
                p,
                snoo_mpicc_static_program(&src).unwrap_or_else(|e| panic!("{e}")),
            )
        })
        .collect();
    let mut spec = ImageSpec::default();
    for (p, exe) in &progs {
        spec = spec.file(exe, format!("/bin/{p}"));
    }
    let dir = ScratchDir::new("qemu-coll").unwrap();
    let socket = dir.join("job.sock");
    let name = "colljob";
    let daemon = start_daemon(&socket, name, 3);
    let image = GuestImage::build_with(&spec).unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = boot_two(&image, &socket, false, &[]);
    eprintln!("booted in {:.1?} and {:.1?}", a.boot_time(), b.boot_time());
    for (p, exe) in &progs {
        let cmd = |rank: u32| {
            format!(
                "SNOO_NAME={name} SNOO_RANK={rank} SNOO_SIZE=3 SNOO_TIMEOUT={SNOO_TIMEOUT} /bin/{p}"
            )
        };
        let job = Instant::now();
        let (ra, rb, host) = std::thread::scope(|s| {
            let tb = s.spawn(|| b.run(&cmd(1), JOB));
            let ta = s.spawn(|| a.run(&cmd(0), JOB));
            let th = s.spawn(|| {
                Command::new(exe)
                    .env("SNOO_SOCKET", &socket)
                    .env("SNOO_NAME", name)
                    .env("SNOO_RANK", "2")
                    .env("SNOO_SIZE", "3")
                    .env("SNOO_TIMEOUT", SNOO_TIMEOUT.to_string())
                    .output()
                    .unwrap()
            });
            (ta.join().unwrap(), tb.join().unwrap(), th.join().unwrap())
        });
        let took = job.elapsed();
        for (rank, g, r) in [(0, &a, ra), (1, &b, rb)] {
            let (out, status) =
                r.unwrap_or_else(|e| panic!("{p}: rank {rank} in {}: {e}", g.name()));
            assert_eq!(status, 0, "{p}: rank {rank} in {} failed:\n{out}", g.name());
            if rank == 0 {
                assert!(
                    out.contains(&format!("{p}: ok")),
                    "{p}: rank 0 did not finish:\n{out}"
                );
            }
        }
        assert!(
            host.status.success(),
            "{p}: host rank: {}\n{}{}\ndaemon log:\n{}",
            host.status,
            String::from_utf8_lossy(&host.stdout),
            String::from_utf8_lossy(&host.stderr),
            daemon.log()
        );
        eprintln!("{p}: guest, guest and host job took {took:.1?}");
    }
    drop((a, b));
    eprintln!("whole test took {:.1?}", started.elapsed());
}
