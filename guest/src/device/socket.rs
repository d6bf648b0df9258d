//! Host-process backend: joins a pool through `snoo-hostd`'s socket, exactly as QEMU does.
//!
//! The socket is only read, never written. Protocol messages (peer joins with their eventfds, and
//! departures) are drained lazily, whenever the engine rings an unknown peer, waits, or asks for
//! events, so the library needs no background thread.

use super::map::map_file;
use super::{Device, DeviceError, PeerEvent};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use snoo_common::layout::{PoolHeader, MAGIC, OFF_MAGIC, OFF_VECTORS};
use snoo_common::protocol::{decode, ClientDecoder, Event, MAX_VECTORS, MSG_LEN};
use snoo_common::Shm;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

/// How long the own eventfds may trickle in when the pool has no SNOO header saying how many to
/// expect (a pool served by QEMU's own ivshmem-server).
const QUIET: Duration = Duration::from_millis(100);

struct Link {
    stream: UnixStream,
    decoder: ClientDecoder<File>,
    // Bytes of a message split across reads, and the fd that came with it.
    partial: Vec<u8>,
    partial_fd: Option<File>,
    // Eventfds of every other peer, by vector.
    peers: HashMap<u16, Vec<Option<File>>>,
    events: VecDeque<PeerEvent>,
    // The daemon closed the socket: mappings and eventfds stay valid, but no news will come.
    closed: bool,
}

/// A pool joined through the daemon's UNIX socket.
pub struct SocketDevice {
    path: PathBuf,
    shm: Shm,
    own_id: u16,
    own: Vec<File>,
    link: Mutex<Link>,
    // A dup of the link's socket, polled by waiters without taking the lock.
    watch: UnixStream,
}

fn cloexec(f: &File) {
    // recvmsg does not set close-on-exec on received fds; ranks launch programs, so set it.
    let _ = fcntl(f, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
}

impl Link {
    /// Reads one message, waiting at most `timeout` (None: don't wait). Ok(None): nothing yet.
    fn read_one(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Option<(i64, Option<File>)>, DeviceError> {
        loop {
            if self.closed {
                return Ok(None);
            }
            if let Some(t) = timeout {
                let ms = PollTimeout::try_from(t.as_millis().min(i32::MAX as u128) as i32)
                    .unwrap_or(PollTimeout::MAX);
                let mut fds = [PollFd::new(self.stream.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, ms) {
                    Ok(0) => return Ok(None),
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(io::Error::from(e).into()),
                }
            }
            let mut buf = [0u8; MSG_LEN];
            let want = MSG_LEN - self.partial.len();
            match self.stream.recv_with_fd(&mut buf[..want]) {
                Ok((0, _)) => {
                    self.closed = true;
                    return Ok(None);
                }
                Ok((n, fd)) => {
                    if let Some(f) = fd {
                        cloexec(&f);
                        // At most one fd per message; a second one is a protocol violation we
                        // tolerate by closing it.
                        if self.partial_fd.is_none() {
                            self.partial_fd = Some(f);
                        }
                    }
                    self.partial.extend_from_slice(&buf[..n]);
                    if self.partial.len() == MSG_LEN {
                        let mut msg = [0u8; MSG_LEN];
                        msg.copy_from_slice(&self.partial);
                        self.partial.clear();
                        return Ok(Some((decode(msg), self.partial_fd.take())));
                    }
                }
                Err(e) if e.errno() == libc::EAGAIN || e.errno() == libc::EWOULDBLOCK => {
                    return Ok(None)
                }
                Err(e) if e.errno() == libc::EINTR => continue,
                Err(e) => return Err(io::Error::from_raw_os_error(e.errno()).into()),
            }
        }
    }

    fn apply(&mut self, events: Vec<Event<File>>) {
        for ev in events {
            match ev {
                Event::PeerVector { id, vector, fd } => {
                    let slots = self.peers.entry(id).or_default();
                    let v = vector as usize;
                    if slots.len() <= v {
                        slots.resize_with(v + 1, || None);
                    }
                    if v == 0 {
                        self.events.push_back(PeerEvent::Joined(id));
                    }
                    slots[v] = Some(fd);
                }
                Event::PeerGone { id } => {
                    self.peers.remove(&id);
                    self.events.push_back(PeerEvent::Left(id));
                }
                Event::Ready { .. } => {}
            }
        }
    }

    /// Drains every message available now.
    fn pump(&mut self) -> Result<(), DeviceError> {
        while let Some((value, fd)) = self.read_one(None)? {
            let evs = self.decoder.feed(value, fd)?;
            self.apply(evs);
        }
        Ok(())
    }
}

/// Reads the vector count from a SNOO pool header, if the memory has one.
fn header_vectors(shm: &Shm) -> Option<usize> {
    if shm.u64_at(OFF_MAGIC)?.load(Ordering::Acquire) != MAGIC {
        return None;
    }
    let v = shm.u32_at(OFF_VECTORS)?.load(Ordering::Acquire);
    (1..=MAX_VECTORS).contains(&v).then_some(v as usize)
}

impl SocketDevice {
    /// Connects to the daemon at `path` and completes the handshake within `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<SocketDevice, DeviceError> {
        let stream = UnixStream::connect(path).map_err(|source| DeviceError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        stream.set_nonblocking(true)?;
        let mut link = Link {
            stream,
            decoder: ClientDecoder::new(),
            partial: Vec::new(),
            partial_fd: None,
            peers: HashMap::new(),
            events: VecDeque::new(),
            closed: false,
        };
        let deadline = Instant::now() + timeout;
        let mut shm: Option<Shm> = None;
        let mut expected: Option<usize> = None;
        let mut own_seen = 0usize;
        let ready = loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(DeviceError::HandshakeTimeout(path.to_path_buf()));
            }
            // Once the own eventfds have started and the count is unknown, a quiet socket ends them.
            let quiet = expected.is_none() && own_seen > 0;
            let wait = if quiet {
                QUIET.min(deadline - now)
            } else {
                deadline - now
            };
            let msg = link.read_one(Some(wait))?;
            let Some((value, fd)) = msg else {
                if link.closed {
                    return Err(DeviceError::Refused);
                }
                if quiet {
                    if let Some(Event::Ready {
                        own_id,
                        shm: f,
                        own_vectors,
                    }) = link.decoder.finish_handshake()
                    {
                        break (own_id, f, own_vectors);
                    }
                }
                continue;
            };
            let is_own = fd.is_some()
                && Some(value) == link.decoder.own_id().map(i64::from)
                && shm.is_some();
            let mut evs = link.decoder.feed(value, fd)?;
            if shm.is_none() {
                // The memory just arrived (the decoder has accepted it): map it to learn the count.
                if let Some(f) = link.decoder.pending_shm() {
                    let s = map_file(f)?;
                    expected = header_vectors(&s);
                    shm = Some(s);
                }
            }
            if is_own {
                own_seen += 1;
            }
            if let Some(pos) = evs.iter().position(|e| matches!(e, Event::Ready { .. })) {
                let Event::Ready {
                    own_id,
                    shm: f,
                    own_vectors,
                } = evs.remove(pos)
                else {
                    unreachable!()
                };
                link.apply(evs);
                break (own_id, f, own_vectors);
            }
            link.apply(evs);
            if expected.is_some_and(|n| own_seen == n) {
                if let Some(Event::Ready {
                    own_id,
                    shm: f,
                    own_vectors,
                }) = link.decoder.finish_handshake()
                {
                    break (own_id, f, own_vectors);
                }
            }
        };
        let (own_id, _shm_file, own) = ready;
        let shm = shm.ok_or(DeviceError::Refused)?;
        tracing::debug!(path = %path.display(), own_id, vectors = own.len(), "joined pool");
        let watch = link.stream.try_clone()?;
        Ok(SocketDevice {
            path: path.to_path_buf(),
            shm,
            own_id,
            own,
            link: Mutex::new(link),
            watch,
        })
    }

    /// The socket this device joined through.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Validated header of the pool, if it is a SNOO pool.
    pub fn header(&self) -> Result<snoo_common::layout::PoolInfo, DeviceError> {
        Ok(PoolHeader::open(&self.shm)?.1)
    }

    /// True once the daemon has gone away (the pool and known peers keep working).
    pub fn daemon_gone(&self) -> bool {
        self.lock().closed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Link> {
        // A panic while holding the lock leaves the link in a consistent state (each step is
        // applied whole), so a poisoned lock is still usable.
        self.link.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Device for SocketDevice {
    fn shm(&self) -> &Shm {
        &self.shm
    }

    fn own_id(&self) -> u16 {
        self.own_id
    }

    fn vectors(&self) -> u32 {
        self.own.len() as u32
    }

    fn doorbell(&self, peer: u16, vector: u32) -> Result<(), DeviceError> {
        let mut link = self.lock();
        if !link.peers.contains_key(&peer) {
            link.pump()?;
        }
        let fd = link
            .peers
            .get(&peer)
            .ok_or(DeviceError::NoSuchPeer(peer))?
            .get(vector as usize)
            .and_then(Option::as_ref)
            .ok_or(DeviceError::BadVector {
                vector,
                vectors: self.own.len() as u32,
            })?;
        match (&*fd).write(&1u64.to_ne_bytes()) {
            Ok(_) => Ok(()),
            // The counter is saturated: the peer has wake-ups pending already.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn wait(&self, vector: u32, timeout: Duration) -> Result<bool, DeviceError> {
        let efd = self
            .own
            .get(vector as usize)
            .ok_or(DeviceError::BadVector {
                vector,
                vectors: self.own.len() as u32,
            })?;
        let deadline = Instant::now() + timeout;
        loop {
            let mut buf = [0u8; 8];
            match (&*efd).read(&mut buf) {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Ok(false);
            }
            let ms = i32::try_from(remaining.as_millis().max(1)).unwrap_or(i32::MAX);
            // Watch the socket too, so that a departure ends the wait. A dup of it is polled, so the
            // link's lock is not held while sleeping (doorbells from other threads go on).
            let closed = self.lock().closed;
            let mut fds = vec![PollFd::new(efd.as_fd(), PollFlags::POLLIN)];
            if !closed {
                fds.push(PollFd::new(self.watch.as_fd(), PollFlags::POLLIN));
            }
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(io::Error::from(e).into()),
            }
            let news = fds
                .get(1)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty());
            if news && !closed {
                let mut link = self.lock();
                let before = link.events.len();
                link.pump()?;
                if link.events.len() != before || link.closed {
                    return Ok(false);
                }
            }
        }
    }

    fn take_events(&self) -> Vec<PeerEvent> {
        let mut link = self.lock();
        if let Err(e) = link.pump() {
            tracing::warn!(error = %e, "reading daemon messages");
        }
        link.events.drain(..).collect()
    }

    fn peers(&self) -> Vec<u16> {
        let mut link = self.lock();
        let _ = link.pump();
        let mut ids: Vec<u16> = link.peers.keys().copied().collect();
        ids.sort_unstable();
        ids
    }
}
