//! The listening sockets and the event loop: QEMU's ivshmem-server protocol, version 0.
//!
//! One thread serves every pool. Nothing it does blocks: clients are accepted non-blocking, messages
//! are queued per client and flushed as sockets become writable (see [`crate::peers`]). The daemon
//! never reads from a client: a readable socket means the client sent something it should not have,
//! or closed, and either way it is treated as a departure, exactly as QEMU's own server does.

use crate::config::{ConfigError, ServerConfig};
use crate::peers::{new_vectors, Flush, Peer, PeerTable, SharedFd};
use crate::pool::Pool;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use snoo_common::layout::PeerState;
use snoo_common::protocol::{PROTOCOL_VERSION, SHM_MARKER};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Errors that stop the daemon from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Another daemon serves that socket.
    #[error("another snoo-hostd already serves {0:?}")]
    AlreadyRunning(PathBuf),
    /// Something else listens on that socket.
    #[error("a live server (not snoo-hostd) already listens on {0:?}")]
    ForeignServer(PathBuf),
    /// The socket path is taken by a file that is not a socket.
    #[error("{0:?} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What the daemon was doing.
        context: String,
        /// The error.
        source: io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> DaemonError {
    let context = context.into();
    move |source| DaemonError::Io { context, source }
}

struct PoolServer {
    pool: Pool,
    shm_fd: SharedFd,
    listener: UnixListener,
    socket: PathBuf,
    peers: PeerTable,
    // An abstract-namespace socket bound for the daemon's lifetime: the kernel releases it when the
    // process dies, so a crashed daemon never leaves a lock behind.
    _lock: UnixListener,
}

/// A running daemon: its pools, sockets and peers.
pub struct Daemon {
    pools: Vec<PoolServer>,
    allow_uids: Vec<u32>,
    allow_gids: Vec<u32>,
    own_uid: u32,
}

fn lock_name(socket: &Path) -> Result<Vec<u8>, DaemonError> {
    let dir = match socket.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = dir.canonicalize().map_err(io_err(format!(
        "cannot resolve the directory of {socket:?}"
    )))?;
    let canonical = dir.join(socket.file_name().unwrap_or_default());
    // Abstract names are limited like paths (108 bytes); long paths are hashed (FNV-1a, stable).
    let bytes = canonical.as_os_str().as_encoded_bytes();
    let mut name = b"snoo-hostd:".to_vec();
    if bytes.len() <= 90 {
        name.extend_from_slice(bytes);
    } else {
        let h = bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
        name.extend_from_slice(format!("{h:016x}").as_bytes());
    }
    Ok(name)
}

fn bind_socket(socket: &Path, mode: u32) -> Result<(UnixListener, UnixListener), DaemonError> {
    let addr =
        SocketAddr::from_abstract_name(lock_name(socket)?).map_err(io_err("abstract lock name"))?;
    let lock = match UnixListener::bind_addr(&addr) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            return Err(DaemonError::AlreadyRunning(socket.to_path_buf()))
        }
        Err(e) => return Err(io_err("cannot take the daemon lock")(e)),
    };
    // We hold the lock, so a socket file here belongs to a dead snoo-hostd, or to another program.
    match std::fs::symlink_metadata(socket) {
        Ok(m) if m.file_type().is_socket() => match UnixStream::connect(socket) {
            Ok(_) => return Err(DaemonError::ForeignServer(socket.to_path_buf())),
            Err(_) => {
                tracing::info!(socket = %socket.display(), "replacing stale socket");
                std::fs::remove_file(socket)
                    .map_err(io_err(format!("cannot remove stale socket {socket:?}")))?;
            }
        },
        Ok(_) => return Err(DaemonError::NotASocket(socket.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(format!("cannot inspect {socket:?}"))(e)),
    }
    let listener =
        UnixListener::bind(socket).map_err(io_err(format!("cannot listen on {socket:?}")))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("cannot set the mode of {socket:?}")))?;
    listener
        .set_nonblocking(true)
        .map_err(io_err("non-blocking listener"))?;
    Ok((listener, lock))
}

impl Daemon {
    /// Creates every pool's memory object and listening socket.
    pub fn bind(config: &ServerConfig) -> Result<Daemon, DaemonError> {
        config.validate()?;
        let mut pools = Vec::new();
        for spec in &config.pools {
            let pool = Pool::create(spec)
                .map_err(io_err(format!("cannot create pool {:?}", spec.name)))?;
            let shm_fd: SharedFd = Rc::new(
                pool.fd()
                    .try_clone_to_owned()
                    .map_err(io_err("dup pool fd"))?,
            );
            let (listener, lock) = bind_socket(&spec.socket, config.socket_mode)?;
            tracing::info!(pool = %spec.name, socket = %spec.socket.display(), size = spec.size,
                vectors = spec.vectors, ranks = spec.ranks, max_peers = spec.max_peers, "serving pool");
            pools.push(PoolServer {
                pool,
                shm_fd,
                listener,
                socket: spec.socket.clone(),
                peers: PeerTable::new(spec.max_peers),
                _lock: lock,
            });
        }
        Ok(Daemon {
            pools,
            allow_uids: config.allow_uids.clone(),
            allow_gids: config.allow_gids.clone(),
            own_uid: nix::unistd::getuid().as_raw(),
        })
    }

    /// Serves until `stop` becomes readable (a signalfd, an eventfd, a pipe).
    pub fn run(&mut self, stop: BorrowedFd<'_>) -> Result<(), DaemonError> {
        loop {
            // Index of every polled fd: stop, then per pool its listener and its peers.
            let mut what: Vec<(usize, Option<u16>)> = Vec::new();
            let mut fds = vec![PollFd::new(stop, PollFlags::POLLIN)];
            for (pi, ps) in self.pools.iter().enumerate() {
                fds.push(PollFd::new(ps.listener.as_fd(), PollFlags::POLLIN));
                what.push((pi, None));
                for peer in ps.peers.iter() {
                    let mut ev = PollFlags::POLLIN;
                    if peer.has_pending() {
                        ev |= PollFlags::POLLOUT;
                    }
                    fds.push(PollFd::new(peer.stream.as_fd(), ev));
                    what.push((pi, Some(peer.id)));
                }
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(io_err("poll")(e.into())),
            }
            if fds[0].revents().is_some_and(|r| !r.is_empty()) {
                return Ok(());
            }
            let ready: Vec<(usize, Option<u16>, PollFlags)> = fds[1..]
                .iter()
                .zip(&what)
                .filter_map(|(f, &(pi, id))| {
                    f.revents().filter(|r| !r.is_empty()).map(|r| (pi, id, r))
                })
                .collect();
            drop(fds);
            for (pi, id, revents) in ready {
                match id {
                    None => self.accept_all(pi),
                    Some(id) => {
                        let gone = PollFlags::POLLIN
                            | PollFlags::POLLHUP
                            | PollFlags::POLLERR
                            | PollFlags::POLLNVAL;
                        if revents.intersects(gone) {
                            self.depart(pi, id, "disconnected");
                        } else if revents.contains(PollFlags::POLLOUT) {
                            self.flush(pi, vec![id]);
                        }
                    }
                }
            }
        }
    }

    /// Socket paths served, in configuration order.
    pub fn sockets(&self) -> Vec<PathBuf> {
        self.pools.iter().map(|p| p.socket.clone()).collect()
    }

    fn allowed(&self, uid: u32, gid: u32) -> bool {
        (self.allow_uids.is_empty() && self.allow_gids.is_empty())
            || uid == self.own_uid
            || self.allow_uids.contains(&uid)
            || self.allow_gids.contains(&gid)
    }

    fn accept_all(&mut self, pi: usize) {
        loop {
            let stream = match self.pools[pi].listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: leave the connection in the backlog, try again later.
                    tracing::warn!(error = %e, "accept failed");
                    return;
                }
            };
            self.admit(pi, stream);
        }
    }

    fn admit(&mut self, pi: usize, stream: UnixStream) {
        let name = self.pools[pi].pool.spec.name.clone();
        let (uid, gid, pid) = match getsockopt(&stream, PeerCredentials) {
            Ok(c) => (c.uid(), c.gid(), c.pid()),
            Err(e) => {
                tracing::warn!(pool = %name, error = %e, "refused a client: no credentials");
                return;
            }
        };
        if !self.allowed(uid, gid) {
            tracing::warn!(pool = %name, uid, gid, pid, "refused a client: uid/gid not allowed");
            return;
        }
        if let Err(e) = stream.set_nonblocking(true) {
            tracing::warn!(pool = %name, error = %e, "refused a client");
            return;
        }
        let ps = &mut self.pools[pi];
        let id = match ps.peers.allocate() {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(pool = %name, uid, pid, "refused a client: {e}");
                return;
            }
        };
        let vectors = match new_vectors(ps.pool.spec.vectors) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(pool = %name, error = %e, "refused a client: cannot create eventfds");
                return;
            }
        };
        let mut peer = Peer::new(id, stream, vectors.clone(), uid, pid);
        // Steps 1-3 of the handshake: version, own id, the memory. Own eventfds must come after the
        // memory (QEMU 7.2 crashes otherwise), and after every other peer's.
        peer.push(PROTOCOL_VERSION, None);
        peer.push(i64::from(id), None);
        peer.push(SHM_MARKER, Some(ps.shm_fd.clone()));
        // Mark it alive before anyone hears of it, so an announced peer is always alive in the pool.
        ps.pool.set_peer(id, PeerState::Alive);
        let mut stalled = Vec::new();
        for other in ps.peers.iter_mut() {
            for v in &vectors {
                if !other.push(i64::from(id), Some(v.clone())) {
                    stalled.push(other.id);
                }
            }
            for v in &other.vectors {
                peer.push(i64::from(other.id), Some(v.clone()));
            }
        }
        for v in &vectors {
            peer.push(i64::from(id), Some(v.clone()));
        }
        tracing::info!(pool = %name, id, uid, pid, peers = ps.peers.len() + 1, "peer joined");
        ps.peers.insert(peer);
        let mut targets: Vec<u16> = ps.peers.iter().map(|p| p.id).collect();
        targets.retain(|t| !stalled.contains(t));
        for s in stalled {
            self.depart(pi, s, "send queue full");
        }
        self.flush(pi, targets);
    }

    fn flush(&mut self, pi: usize, ids: Vec<u16>) {
        let mut failed = Vec::new();
        for id in ids {
            if let Some(p) = self.pools[pi].peers.get_mut(id) {
                if p.flush() == Flush::Failed {
                    failed.push(id);
                }
            }
        }
        for id in failed {
            self.depart(pi, id, "send failed");
        }
    }

    /// Removes a peer: marks it dead in the pool (bumping the epoch), then tells the others.
    fn depart(&mut self, pi: usize, id: u16, why: &str) {
        let mut work = vec![(id, why.to_string())];
        while let Some((id, why)) = work.pop() {
            let ps = &mut self.pools[pi];
            let Some(peer) = ps.peers.remove(id) else {
                continue;
            };
            ps.pool.set_peer(id, PeerState::Dead);
            tracing::info!(pool = %ps.pool.spec.name, id, uid = peer.uid, pid = peer.pid, reason = %why,
                peers = ps.peers.len(), "peer left");
            // Dropping `peer` closes its socket; its eventfds close once no queue holds them.
            drop(peer);
            for other in ps.peers.iter_mut() {
                if !other.push(i64::from(id), None) || other.flush() == Flush::Failed {
                    work.push((other.id, "send failed".into()));
                }
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // The lock is still held here, so no other snoo-hostd can have replaced these sockets.
        for ps in &self.pools {
            let _ = std::fs::remove_file(&ps.socket);
        }
    }
}

/// A daemon serving on its own thread, for the job launcher and tests: stopped and joined on drop.
pub struct DaemonThread {
    stop: std::io::PipeWriter,
    join: Option<std::thread::JoinHandle<Result<(), DaemonError>>>,
    sockets: Vec<PathBuf>,
}

impl DaemonThread {
    /// Binds every pool (errors are returned here, not later) and serves them on a new thread.
    pub fn spawn(config: ServerConfig) -> Result<DaemonThread, DaemonError> {
        // Writing to (or dropping) the pipe's write end makes the read end readable: the stop signal.
        let (thread_stop, stop) = std::io::pipe().map_err(io_err("pipe"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let join = std::thread::Builder::new()
            .name("snoo-hostd".into())
            .spawn(move || {
                // The daemon is built on its thread: it is single-threaded by design (not Send).
                let mut daemon = match Daemon::bind(&config) {
                    Ok(d) => {
                        let _ = tx.send(Ok(d.sockets()));
                        d
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return Ok(());
                    }
                };
                let fd = std::os::fd::AsFd::as_fd(&thread_stop);
                daemon.run(fd)
            })
            .map_err(io_err("cannot start the daemon thread"))?;
        match rx.recv() {
            Ok(Ok(sockets)) => Ok(DaemonThread {
                stop,
                join: Some(join),
                sockets,
            }),
            Ok(Err(e)) => {
                let _ = join.join();
                Err(e)
            }
            Err(_) => Err(io_err("daemon thread")(io::Error::other(
                "exited during start-up",
            ))),
        }
    }

    /// Sockets served, in configuration order.
    pub fn sockets(&self) -> &[PathBuf] {
        &self.sockets
    }

    /// Stops the daemon (removing its sockets) and waits for its thread.
    pub fn stop(mut self) -> Result<(), DaemonError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), DaemonError> {
        let _ = std::io::Write::write(&mut self.stop, &[1]);
        match self.join.take().map(|j| j.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io_err("daemon thread")(io::Error::other("panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for DaemonThread {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "daemon thread");
        }
    }
}
