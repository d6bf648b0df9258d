//! Protocol conformance of `snoo-hostd`, checked with a raw client written here from QEMU's
//! description of the protocol (independent of the guest library's client).

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use snoo_common::layout::{PeerState, PoolHeader};
use snoo_common::Shm;
use std::io::{IoSliceMut, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(5);

struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Daemon {
    fn start(args: &[&str]) -> (Daemon, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("snoo-proto-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("pool.sock");
        let d = Self::start_in(dir, &[&["--socket", sock.to_str().unwrap()], args].concat());
        (d, sock)
    }

    fn start_in(dir: PathBuf, args: &[&str]) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_snoo-hostd"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("start snoo-hostd");
        let d = Daemon { child, dir };
        // Ready when every socket named on the command line exists.
        let socks: Vec<PathBuf> = args
            .iter()
            .flat_map(|a| a.split(','))
            .filter_map(|a| a.strip_prefix("socket=").map(PathBuf::from))
            .chain(
                args.windows(2)
                    .filter(|w| w[0] == "--socket")
                    .map(|w| PathBuf::from(w[1])),
            )
            .collect();
        let deadline = Instant::now() + T;
        while !socks.iter().all(|s| s.exists()) {
            assert!(
                Instant::now() < deadline,
                "daemon did not create its sockets"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        d
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A client that only reads, as QEMU does.
struct Raw {
    s: UnixStream,
}

impl Raw {
    fn connect(path: &Path) -> Raw {
        let s = UnixStream::connect(path).expect("connect");
        s.set_read_timeout(Some(T)).unwrap();
        Raw { s }
    }

    /// One message: value and optional fd. None on EOF.
    fn recv(&self) -> Option<(i64, Option<OwnedFd>)> {
        let mut buf = [0u8; 8];
        let mut got = 0;
        let mut fd = None;
        while got < 8 {
            let mut iov = [IoSliceMut::new(&mut buf[got..])];
            let mut space = nix::cmsg_space!([RawFd; 4]);
            let msg = recvmsg::<()>(
                self.s.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::empty(),
            )
            .expect("recvmsg (timed out?)");
            if msg.bytes == 0 {
                return None;
            }
            for c in msg.cmsgs().unwrap() {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    assert_eq!(fds.len(), 1, "at most one fd per message");
                    // SAFETY: the kernel just gave us this fd; we own it.
                    fd = Some(unsafe { OwnedFd::from_raw_fd(fds[0]) });
                }
            }
            got += msg.bytes;
        }
        Some((i64::from_le_bytes(buf), fd))
    }

    fn expect(&self, value: i64, with_fd: bool) -> Option<OwnedFd> {
        let (v, fd) = self.recv().expect("unexpected EOF");
        assert_eq!(v, value, "message value");
        assert_eq!(fd.is_some(), with_fd, "fd attached to message {v}");
        fd
    }

    /// The whole handshake for a pool with `vectors` vectors and the given existing peers.
    fn handshake(&self, vectors: usize, existing: &[i64]) -> Joined {
        self.expect(0, false);
        let (id, fd) = self.recv().unwrap();
        assert!(fd.is_none() && (0..=0xffff).contains(&id));
        let shm = self.expect(-1, true).unwrap();
        let mut peers = Vec::new();
        for &p in existing {
            let fds: Vec<OwnedFd> = (0..vectors)
                .map(|_| self.expect(p, true).unwrap())
                .collect();
            peers.push((p, fds));
        }
        let own: Vec<OwnedFd> = (0..vectors)
            .map(|_| self.expect(id, true).unwrap())
            .collect();
        Joined {
            id,
            shm,
            peers,
            own,
        }
    }

    fn nothing_pending(&self) -> bool {
        self.s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let r = nix::sys::socket::recv(self.s.as_raw_fd(), &mut b, MsgFlags::MSG_PEEK);
        self.s.set_nonblocking(false).unwrap();
        matches!(r, Err(nix::errno::Errno::EAGAIN))
    }
}

struct Joined {
    id: i64,
    shm: OwnedFd,
    peers: Vec<(i64, Vec<OwnedFd>)>,
    own: Vec<OwnedFd>,
}

fn map(fd: &OwnedFd) -> Shm {
    let file = std::fs::File::from(fd.try_clone().unwrap());
    let m = memmap2::MmapRaw::map_raw(&file).unwrap();
    let ptr = NonNull::new(m.as_mut_ptr()).unwrap();
    let len = m.len();
    // SAFETY: `map_raw` maps the whole file read-write and shared, page aligned; the mapping is
    // moved into the Shm as its owner, so it stays mapped as long as the Shm, and the test touches
    // it only through the Shm.
    unsafe { Shm::from_raw(ptr, len, Box::new(m)) }
}

fn eventfd_count(fd: &OwnedFd) -> Option<u64> {
    let mut b = [0u8; 8];
    match nix::unistd::read(fd, &mut b) {
        Ok(8) => Some(u64::from_ne_bytes(b)),
        _ => None,
    }
}

fn ring(fd: &OwnedFd) {
    std::fs::File::from(fd.try_clone().unwrap())
        .write_all(&1u64.to_ne_bytes())
        .unwrap();
}

#[test]
fn handshake_join_doorbell_and_departure() {
    let (_d, sock) = Daemon::start(&[
        "--size",
        "3M",
        "--vectors",
        "3",
        "--name",
        "conf",
        "--ranks",
        "2",
    ]);
    let a = Raw::connect(&sock);
    let ja = a.handshake(3, &[]);
    assert!(a.nothing_pending(), "nothing after a's own vectors");
    let st = nix::sys::stat::fstat(&ja.shm).unwrap();
    assert_eq!(st.st_size, 4 << 20, "3M is rounded up to a power of two");

    let b = Raw::connect(&sock);
    let jb = b.handshake(3, &[ja.id]);
    assert_ne!(ja.id, jb.id);
    // a hears of b: b's id three times, each with an eventfd.
    let b_fds: Vec<OwnedFd> = (0..3).map(|_| a.expect(jb.id, true).unwrap()).collect();
    assert!(a.nothing_pending());

    // Both map the same memory, and the header says who is alive.
    let (ma, mb) = (map(&ja.shm), map(&jb.shm));
    let (hdr, info) = PoolHeader::open(&ma).unwrap();
    assert_eq!(
        (info.name.as_str(), info.ranks, info.vectors),
        ("conf", 2, 3)
    );
    assert_eq!(hdr.peer(ja.id as u32).unwrap().0, PeerState::Alive);
    assert_eq!(hdr.peer(jb.id as u32).unwrap().0, PeerState::Alive);
    let off = info.geometry.engine_offset as usize;
    assert!(ma.write(off, b"hello"));
    let mut got = [0u8; 5];
    assert!(mb.read(off, &mut got));
    assert_eq!(&got, b"hello");

    // Doorbells: a rings b's vector 2 through the fd it was given; b's own fd for vector 2 fires.
    assert_eq!(eventfd_count(&jb.own[2]), None, "nothing pending yet");
    ring(&b_fds[2]);
    assert_eq!(eventfd_count(&jb.own[2]), Some(1));
    assert_eq!(eventfd_count(&jb.own[1]), None, "other vectors untouched");
    // And b rings a's vector 0 through the fd it got in its handshake.
    ring(&jb.peers[0].1[0]);
    assert_eq!(eventfd_count(&ja.own[0]), Some(1));

    // b leaves: it is marked dead, the epoch moves, then a is told (id, no fd).
    let epoch = hdr.epoch();
    drop(b);
    a.expect(jb.id, false);
    assert_eq!(hdr.peer(jb.id as u32).unwrap().0, PeerState::Dead);
    assert!(hdr.epoch() > epoch);
    // The departed peer's eventfds are closed by the daemon: ringing them wakes nobody.
    drop(jb);
}

#[test]
fn peer_limit_and_id_reuse_after_departure() {
    let (_d, sock) = Daemon::start(&["--size", "64K", "--max-peers", "2"]);
    let a = Raw::connect(&sock);
    let ja = a.handshake(1, &[]);
    let b = Raw::connect(&sock);
    let jb = b.handshake(1, &[ja.id]);
    a.expect(jb.id, true);
    // A third client is refused: closed without a handshake, and nobody else hears of it.
    let c = Raw::connect(&sock);
    assert!(c.recv().is_none(), "refused client gets EOF");
    assert!(a.nothing_pending() && b.nothing_pending());
    drop(b);
    a.expect(jb.id, false);
    let c = Raw::connect(&sock);
    let jc = c.handshake(1, &[ja.id]);
    assert_eq!(
        jc.id, jb.id,
        "the freed id is reused, and only after its departure"
    );
    a.expect(jc.id, true);
}

#[test]
fn hundreds_of_connects_leak_nothing() {
    let (d, sock) = Daemon::start(&["--size", "1M", "--vectors", "4"]);
    let anchor = Raw::connect(&sock);
    let ja = anchor.handshake(4, &[]);
    // Warm up allocators, then measure.
    let churn = |n: usize| {
        for _ in 0..n {
            let c = Raw::connect(&sock);
            let j = c.handshake(4, &[ja.id]);
            for _ in 0..4 {
                anchor.expect(j.id, true);
            }
            drop(c);
            anchor.expect(j.id, false);
        }
    };
    churn(20);
    let (fds, rss) = (d.open_fds(), d.rss_kib());
    churn(400);
    assert_eq!(d.open_fds(), fds, "fd count after 400 joins and departures");
    let grown = d.rss_kib().saturating_sub(rss);
    assert!(
        grown < 1024,
        "daemon RSS grew by {grown} KiB over 400 connections"
    );
}

#[test]
fn misbehaving_clients_do_not_disturb_others() {
    let (_d, sock) = Daemon::start(&["--size", "1M", "--vectors", "2"]);
    let a = Raw::connect(&sock);
    let ja = a.handshake(2, &[]);

    // A client that sends garbage is disconnected; a hears of its join and its departure only.
    let g = Raw::connect(&sock);
    let jg = g.handshake(2, &[ja.id]);
    (&g.s).write_all(b"garbage!garbage!").unwrap();
    a.expect(jg.id, true);
    a.expect(jg.id, true);
    a.expect(jg.id, false);

    // A client that disconnects mid-handshake (never reads anything).
    let m = UnixStream::connect(&sock).unwrap();
    drop(m);
    // A client that never reads while others come and go: the others' traffic goes on.
    let stall = UnixStream::connect(&sock).unwrap();
    let mut seen = Vec::new();
    for _ in 0..50 {
        let c = Raw::connect(&sock);
        let (v, _) = c.recv().unwrap();
        assert_eq!(v, 0);
        let (id, _) = c.recv().unwrap();
        seen.push(id);
        drop(c);
    }
    // a saw every join and departure in order (the mid-handshake one and the stalled one included).
    let mut joined = std::collections::HashSet::new();
    let deadline = Instant::now() + T;
    let mut departures = 0;
    while departures < 51 && Instant::now() < deadline {
        let (v, fd) = a.recv().unwrap();
        if fd.is_some() {
            joined.insert(v);
        } else {
            assert!(joined.contains(&v), "departure of {v} before its join");
            departures += 1;
        }
    }
    assert_eq!(departures, 51, "all short-lived clients announced as gone");
    // The anchor is still served: a new peer is announced to it normally.
    let n = Raw::connect(&sock);
    let existing: Vec<i64> = {
        let mut e = vec![ja.id];
        // the stalled client is still connected and has an id
        e.sort();
        e
    };
    n.expect(0, false);
    let (nid, _) = n.recv().unwrap();
    n.expect(-1, true);
    let mut from = Vec::new();
    loop {
        let (v, fd) = n.recv().unwrap();
        assert!(fd.is_some());
        if v == nid {
            break;
        }
        from.push(v);
    }
    assert!(from.contains(&existing[0]), "newcomer hears of the anchor");
    a.expect(nid, true);
    drop(stall);
}

#[test]
fn several_pools_are_isolated() {
    let dir = std::env::temp_dir().join(format!("snoo-proto-multi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (sa, sb) = (dir.join("a.sock"), dir.join("b.sock"));
    let pa = format!("name=alpha,socket={},size=64K,vectors=1", sa.display());
    let pb = format!(
        "name=beta,socket={},size=128K,vectors=2,ranks=4",
        sb.display()
    );
    let _d = Daemon::start_in(dir, &["--pool", &pa, "--pool", &pb]);
    let a = Raw::connect(&sa);
    let ja = a.handshake(1, &[]);
    let b = Raw::connect(&sb);
    let jb = b.handshake(2, &[]);
    assert!(
        a.nothing_pending(),
        "a pool's peers never hear of another pool's"
    );
    let (ma, mb) = (map(&ja.shm), map(&jb.shm));
    assert_eq!(PoolHeader::open(&ma).unwrap().1.name, "alpha");
    let (_, ib) = PoolHeader::open(&mb).unwrap();
    assert_eq!(
        (ib.name.as_str(), ib.ranks, ma.len(), mb.len()),
        ("beta", 4, 64 << 10, 128 << 10)
    );
    let off = 8192;
    assert!(ma.write(off, &[0xAA; 16]));
    let mut got = [0u8; 16];
    assert!(mb.read(off, &mut got));
    assert_eq!(got, [0; 16], "writes to alpha do not show in beta");
}

#[test]
fn socket_mode_and_uid_allow_list() {
    let dir = std::env::temp_dir().join(format!("snoo-proto-acl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (open, closed, listed) = (
        dir.join("open.sock"),
        dir.join("closed.sock"),
        dir.join("listed.sock"),
    );
    let spec = |n: &str, p: &Path| format!("name={n},socket={},size=64K", p.display());
    let _d1 = Daemon::start_in(
        dir.clone(),
        &[
            "--pool",
            &spec("open", &open),
            "--socket-mode",
            "0666",
            "--allow-uid",
            "4242",
        ],
    );
    let _d2 = Daemon::start_in(dir.clone(), &["--pool", &spec("closed", &closed)]);
    let _d3 = Daemon::start_in(
        dir.clone(),
        &[
            "--pool",
            &spec("listed", &listed),
            "--socket-mode",
            "666",
            "--allow-uid",
            "65534",
        ],
    );
    assert_eq!(
        std::fs::metadata(&closed).unwrap().permissions().mode() & 0o777,
        0o600,
        "default mode"
    );
    assert_eq!(
        std::fs::metadata(&open).unwrap().permissions().mode() & 0o777,
        0o666
    );
    if !nix::unistd::getuid().is_root() {
        eprintln!("not root: skipping the foreign-uid half of this test");
        return;
    }
    // As uid 65534: the 0600 socket refuses the connection; the open socket that lists only uid
    // 4242 accepts it and closes at once; the one listing 65534 serves it.
    assert_eq!(as_nobody(&closed), Outcome::ConnectRefused);
    assert_eq!(as_nobody(&open), Outcome::ClosedWithoutData);
    assert_eq!(as_nobody(&listed), Outcome::GotVersion);
    // The daemon's own uid is always served.
    Raw::connect(&open).handshake(1, &[]);
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    ConnectRefused,
    ClosedWithoutData,
    GotVersion,
}

/// Connects as uid/gid 65534 from a forked child (only raw syscalls between fork and _exit).
fn as_nobody(path: &Path) -> Outcome {
    use std::ffi::CString;
    let cpath = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: sockaddr_un is a C struct of integers and a char array, for which all-zero bytes
    // are a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (i, b) in cpath.as_bytes_with_nul().iter().enumerate() {
        addr.sun_path[i] = *b as libc::c_char;
    }
    // SAFETY: the child only makes raw system calls and exits; no allocation, no locks.
    match unsafe { nix::unistd::fork() }.unwrap() {
        // SAFETY: system calls of the async-signal-safe kind only (the child of a multi-threaded
        // process may not allocate or lock), then `_exit`: the child never returns into Rust code.
        // Every pointer passed is to a live local of the size given (`tv`, `addr`, `buf`).
        nix::unistd::ForkResult::Child => unsafe {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                libc::_exit(10);
            }
            let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            let tv = libc::timeval {
                tv_sec: 5,
                tv_usec: 0,
            };
            libc::setsockopt(
                s,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
            if libc::connect(
                s,
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_un>() as u32,
            ) != 0
            {
                libc::_exit(1);
            }
            let mut buf = [0u8; 8];
            let n = libc::recv(
                s,
                buf.as_mut_ptr() as *mut libc::c_void,
                8,
                libc::MSG_WAITALL,
            );
            libc::_exit(if n == 0 {
                2
            } else if n == 8 && buf == [0; 8] {
                3
            } else {
                11
            });
        },
        nix::unistd::ForkResult::Parent { child } => {
            match nix::sys::wait::waitpid(child, None).unwrap() {
                nix::sys::wait::WaitStatus::Exited(_, 1) => Outcome::ConnectRefused,
                nix::sys::wait::WaitStatus::Exited(_, 2) => Outcome::ClosedWithoutData,
                nix::sys::wait::WaitStatus::Exited(_, 3) => Outcome::GotVersion,
                other => panic!("child: {other:?}"),
            }
        }
    }
}

#[test]
fn refuses_a_second_daemon_and_replaces_stale_sockets() {
    let (_d, sock) = Daemon::start(&["--size", "64K"]);
    let out = Command::new(env!("CARGO_BIN_EXE_snoo-hostd"))
        .args(["--socket", sock.to_str().unwrap(), "--size", "64K"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already serves"));
    // The first daemon is undisturbed: a client still joins.
    Raw::connect(&sock).handshake(1, &[]);

    // A stale socket (bound, then its owner gone) is replaced.
    let dir = std::env::temp_dir().join(format!("snoo-proto-stale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stale = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let _d2 = Daemon::start_in(
        dir.clone(),
        &["--socket", stale.to_str().unwrap(), "--size", "64K"],
    );
    // The stale file existed before, so wait until the new daemon answers on it.
    let deadline = Instant::now() + T;
    while UnixStream::connect(&stale).is_err() {
        assert!(Instant::now() < deadline, "stale socket never replaced");
        std::thread::sleep(Duration::from_millis(10));
    }
    // (that probe joined and left; a real client now gets a full handshake)
    Raw::connect(&stale).handshake(1, &[]);

    // A regular file is never replaced.
    let file = dir.join("file.sock");
    std::fs::write(&file, b"keep me").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_snoo-hostd"))
        .args(["--socket", file.to_str().unwrap(), "--size", "64K"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn sigterm_removes_the_socket_and_exits_zero() {
    let dir = std::env::temp_dir().join(format!("snoo-proto-term-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("t.sock");
    let mut d = Daemon::start_in(
        dir.clone(),
        &["--socket", sock.to_str().unwrap(), "--size", "64K"],
    );
    let c = Raw::connect(&sock);
    c.handshake(1, &[]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = d.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(!sock.exists(), "socket removed");
    assert!(c.recv().is_none(), "clients see the server go");
}

#[test]
fn bad_command_lines_are_refused_clearly() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--socket", "/nonexistent-dir/x.sock", "--size", "1M"],
            "does not exist",
        ),
        (
            &["--socket", "/tmp/x.sock", "--size", "0"],
            "greater than 0",
        ),
        (
            &["--socket", "/tmp/x.sock", "--size", "lots"],
            "invalid size",
        ),
        (
            &["--socket", "/tmp/x.sock", "--size", "16384T"],
            "exceeds this machine's memory",
        ),
        (
            &["--socket", "/tmp/x.sock", "--size", "1M", "--vectors", "0"],
            "vectors must be",
        ),
        (
            &[
                "--socket",
                "/tmp/x.sock",
                "--size",
                "1M",
                "--socket-mode",
                "999",
            ],
            "invalid socket mode",
        ),
        (&["--socket", "/tmp/x.sock"], "--size is required"),
        (&[], "no pool to serve"),
        (&["--pool", "name=a,size=1M"], "socket= is required"),
        (
            &[
                "--socket",
                "/tmp/x.sock",
                "--size",
                "1M",
                "--mem-path",
                "/nonexistent",
            ],
            "not a directory",
        ),
        (
            &[
                "--socket",
                "/tmp/x.sock",
                "--size",
                "4K",
                "--max-peers",
                "65536",
            ],
            "too small",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_snoo-hostd"))
            .args(*args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: expected {want:?} in {err:?}");
    }
}

#[test]
fn file_backed_pool_under_dev_shm() {
    let mem = Path::new("/dev/shm");
    if !mem.is_dir() {
        eprintln!("no /dev/shm: skipped");
        return;
    }
    let before: usize = std::fs::read_dir(mem).unwrap().count();
    let (_d, sock) = Daemon::start(&["--size", "1M", "--mem-path", "/dev/shm"]);
    let c = Raw::connect(&sock);
    let j = c.handshake(1, &[]);
    assert_eq!(map(&j.shm).len(), 1 << 20);
    assert_eq!(
        std::fs::read_dir(mem).unwrap().count(),
        before,
        "the pool file is unlinked at once"
    );
}
