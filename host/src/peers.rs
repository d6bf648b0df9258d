//! The daemon's peer table for one pool: who is connected, with which id and eventfds, and what is
//! still queued to be sent to them.
//!
//! Sends never block the daemon: each client has a bounded queue of protocol messages, flushed
//! whenever its socket is writable. A client that stops reading only fills its own queue, and is
//! dropped when the queue is full, so it cannot stall the other peers.

use snoo_common::protocol::{encode, MSG_LEN};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

/// A file descriptor that may be queued to several clients at once.
pub type SharedFd = Rc<dyn AsRawFd>;

/// Most messages queued to one client before it is considered stalled and dropped. A full
/// handshake needs 3 + (peers + 1) × vectors messages, so this admits the largest pools.
pub const MAX_QUEUED: usize = 1 << 20;

/// One connected client (a QEMU guest or a host process).
pub struct Peer {
    pub id: u16,
    pub stream: UnixStream,
    /// One eventfd per vector: writing one wakes this peer.
    pub vectors: Vec<SharedFd>,
    pub uid: u32,
    pub pid: i32,
    queue: VecDeque<(i64, Option<SharedFd>)>,
}

/// Outcome of flushing a client's queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Flush {
    /// Everything was sent.
    Done,
    /// The socket is full; wait for it to become writable.
    Pending,
    /// The client is gone or broken.
    Failed,
}

impl Peer {
    pub fn new(id: u16, stream: UnixStream, vectors: Vec<SharedFd>, uid: u32, pid: i32) -> Self {
        Peer {
            id,
            stream,
            vectors,
            uid,
            pid,
            queue: VecDeque::new(),
        }
    }

    /// Queues one message. Returns false if the queue is full (the client must be dropped).
    pub fn push(&mut self, value: i64, fd: Option<SharedFd>) -> bool {
        if self.queue.len() >= MAX_QUEUED {
            return false;
        }
        self.queue.push_back((value, fd));
        true
    }

    /// True if messages wait for the socket to become writable.
    pub fn has_pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Sends queued messages until the queue is empty or the socket is full.
    pub fn flush(&mut self) -> Flush {
        while let Some((value, fd)) = self.queue.front() {
            let buf = encode(*value);
            let fds: Vec<RawFd> = fd.iter().map(|f| f.as_raw_fd()).collect();
            match self.stream.send_with_fds(&[&buf[..]], &fds) {
                // A stream socket accepts all 8 bytes or none for such a small message with
                // ancillary data; a short write would corrupt the framing.
                Ok(MSG_LEN) => {
                    self.queue.pop_front();
                }
                Ok(_) => return Flush::Failed,
                Err(e) if e.errno() == libc::EAGAIN || e.errno() == libc::EWOULDBLOCK => {
                    return Flush::Pending
                }
                Err(e) if e.errno() == libc::EINTR => continue,
                Err(_) => return Flush::Failed,
            }
        }
        Flush::Done
    }
}

/// Why a client was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("pool is full ({0} peers)")]
    Full(u32),
}

/// All peers of one pool, by id.
pub struct PeerTable {
    max_peers: u32,
    next: u32,
    peers: BTreeMap<u16, Peer>,
}

impl PeerTable {
    pub fn new(max_peers: u32) -> Self {
        PeerTable {
            max_peers,
            next: 0,
            peers: BTreeMap::new(),
        }
    }

    /// Picks a free id below `max_peers`, rotating so that a departed peer's id is reused as late
    /// as possible (survivors see the departure before the id comes back).
    pub fn allocate(&mut self) -> Result<u16, Refusal> {
        if self.peers.len() as u32 >= self.max_peers {
            return Err(Refusal::Full(self.max_peers));
        }
        for _ in 0..self.max_peers {
            let id = self.next as u16;
            self.next = (self.next + 1) % self.max_peers;
            if !self.peers.contains_key(&id) {
                return Ok(id);
            }
        }
        Err(Refusal::Full(self.max_peers))
    }

    pub fn insert(&mut self, peer: Peer) {
        self.peers.insert(peer.id, peer);
    }

    pub fn remove(&mut self, id: u16) -> Option<Peer> {
        self.peers.remove(&id)
    }

    pub fn get_mut(&mut self, id: u16) -> Option<&mut Peer> {
        self.peers.get_mut(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Peer> {
        self.peers.values_mut()
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }
}

/// Creates `n` non-blocking eventfds, as QEMU's own server does.
pub fn new_vectors(n: u32) -> io::Result<Vec<SharedFd>> {
    (0..n)
        .map(|_| {
            let efd = vmm_sys_util::eventfd::EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?;
            Ok(Rc::new(efd) as SharedFd)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_rotate_and_are_bounded() {
        let mut t = PeerTable::new(3);
        let mk = |id| Peer::new(id, UnixStream::pair().unwrap().0, vec![], 0, 0);
        for want in 0..3 {
            let id = t.allocate().unwrap();
            assert_eq!(id, want);
            t.insert(mk(id));
        }
        assert_eq!(t.allocate(), Err(Refusal::Full(3)));
        t.remove(1);
        assert_eq!(t.allocate(), Ok(1));
        t.insert(mk(1));
        t.remove(0);
        t.remove(2);
        // Rotation continues after the last id handed out.
        assert_eq!(t.allocate(), Ok(2));
    }

    #[test]
    fn queue_is_bounded_and_flushes() {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut p = Peer::new(0, a, vec![], 0, 0);
        assert!(p.push(7, None));
        assert!(p.push(-1, Some(new_vectors(1).unwrap().remove(0))));
        assert_eq!(p.flush(), Flush::Done);
        let mut buf = [0u8; 8];
        use std::io::Read;
        (&b).read_exact(&mut buf).unwrap();
        assert_eq!(i64::from_le_bytes(buf), 7);
        drop(b);
        assert!(p.push(1, None));
        assert_eq!(p.flush(), Flush::Failed);
    }
}
