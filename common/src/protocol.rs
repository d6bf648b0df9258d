//! QEMU's ivshmem-server wire protocol, version 0, as the daemon speaks it and clients parse it.
//!
//! Every message is one `sendmsg` of an 8-byte little-endian `i64`, carrying at most one file
//! descriptor as `SCM_RIGHTS`. Only the server sends; clients never write. On connect a client gets:
//!
//! 1. `0`, the protocol version, no fd;
//! 2. its own peer id, no fd;
//! 3. `-1` with the shared-memory fd;
//! 4. for every existing peer P, `P` once per vector, each with P's eventfd for that vector;
//! 5. its own id once per vector, with its own eventfds.
//!
//! Existing peers are told of a newcomer (its id once per vector, with its eventfds) before steps 4-5.
//! A departure is the departed id sent with no fd. QEMU 7.2 crashes if its own eventfds arrive before
//! the shared-memory fd, and aborts if the memory size is not a power of two.

/// The only protocol version QEMU accepts.
pub const PROTOCOL_VERSION: i64 = 0;
/// The value that accompanies the shared-memory fd.
pub const SHM_MARKER: i64 = -1;
/// Size of every message on the wire.
pub const MSG_LEN: usize = 8;
/// Highest valid peer id (ids are 16 bits in the doorbell register).
pub const MAX_PEER_ID: i64 = 0xFFFF;
/// Most vectors per peer that a doorbell can address (only its low 8 bits count).
pub const MAX_VECTORS: u32 = 256;

/// Encodes one message value.
pub fn encode(value: i64) -> [u8; MSG_LEN] {
    value.to_le_bytes()
}

/// Decodes one message value.
pub fn decode(bytes: [u8; MSG_LEN]) -> i64 {
    i64::from_le_bytes(bytes)
}

/// One decoded server message, as a client sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<F> {
    /// Handshake finished: own id, shared memory, and own eventfds in vector order.
    Ready {
        /// This client's peer id.
        own_id: u16,
        /// The shared-memory fd.
        shm: F,
        /// This client's eventfds, one per vector.
        own_vectors: Vec<F>,
    },
    /// Peer `id` got the eventfd for its vector `vector`.
    PeerVector {
        /// The peer's id.
        id: u16,
        /// The vector, numbered from 0 in the order the peer's eventfds arrive.
        vector: u32,
        /// The eventfd: writing to it rings that vector of the peer.
        fd: F,
    },
    /// Peer `id` left.
    PeerGone {
        /// The departed peer's id.
        id: u16,
    },
}

/// Protocol violations a client can see.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// The server's first message is not [`PROTOCOL_VERSION`].
    #[error("server speaks protocol version {0}, expected {PROTOCOL_VERSION}")]
    Version(i64),
    /// A message that should carry a peer id holds a value outside 0..=[`MAX_PEER_ID`].
    #[error("invalid peer id {0} from server")]
    BadId(i64),
    /// A message the decoder's state does not allow: a wrong value, or an fd missing or extra.
    #[error("unexpected message {value} (fd attached: {has_fd}) in handshake state {state}")]
    Unexpected {
        /// The message's value.
        value: i64,
        /// Whether an fd came with it.
        has_fd: bool,
        /// The decoder state it arrived in.
        state: &'static str,
    },
    /// The server sent more than [`MAX_VECTORS`] eventfds for one peer.
    #[error("more than {MAX_VECTORS} eventfds for peer {0}")]
    TooManyVectors(u16),
}

#[derive(Debug)]
enum State<F> {
    Version,
    OwnId,
    Shm {
        own_id: u16,
    },
    Peers {
        own_id: u16,
        shm: Option<F>,
        own: Vec<F>,
    },
    Running {
        own_id: u16,
    },
}

/// Client-side decoder: feed it each `(value, fd)` read from the socket, in order.
///
/// Before the handshake completes, the client cannot know how many vectors it has, so the own-id
/// eventfds are collected until the first message that is not one of them; `finish_handshake` ends
/// the collection when the socket goes quiet (nothing else would follow).
///
/// # Example
///
/// A client with id 3 joining a pool where peer 1 is already connected, one vector each (strings
/// stand in for the file descriptors):
///
/// ```
/// use snoo_common::protocol::{ClientDecoder, Event, ProtocolError};
///
/// let mut d = ClientDecoder::new();
/// assert_eq!(d.feed(0, None), Ok(vec![]), "protocol version");
/// assert_eq!(d.feed(3, None), Ok(vec![]), "own id");
/// assert_eq!(d.feed(-1, Some("pool")), Ok(vec![]), "the shared memory");
/// assert_eq!(d.pending_shm(), Some(&"pool"));
/// assert_eq!(
///     d.feed(1, Some("peer 1, vector 0")),
///     Ok(vec![Event::PeerVector { id: 1, vector: 0, fd: "peer 1, vector 0" }])
/// );
/// assert_eq!(d.feed(3, Some("own vector 0")), Ok(vec![]));
/// // The socket goes quiet: the own eventfds are complete.
/// assert_eq!(
///     d.finish_handshake(),
///     Some(Event::Ready { own_id: 3, shm: "pool", own_vectors: vec!["own vector 0"] })
/// );
/// // Later, peer 1 leaves: its id without an fd.
/// assert_eq!(d.feed(1, None), Ok(vec![Event::PeerGone { id: 1 }]));
///
/// // What the daemon sends is checked too.
/// assert_eq!(ClientDecoder::<()>::new().feed(1, None), Err(ProtocolError::Version(1)));
/// ```
#[derive(Debug)]
pub struct ClientDecoder<F> {
    state: State<F>,
    // Per-peer count of vectors announced so far, so that repeated announcements number correctly.
    vectors_seen: std::collections::HashMap<u16, u32>,
}

impl<F> Default for ClientDecoder<F> {
    fn default() -> Self {
        ClientDecoder {
            state: State::Version,
            vectors_seen: Default::default(),
        }
    }
}

fn peer_id(value: i64) -> Result<u16, ProtocolError> {
    if (0..=MAX_PEER_ID).contains(&value) {
        Ok(value as u16)
    } else {
        Err(ProtocolError::BadId(value))
    }
}

impl<F> ClientDecoder<F> {
    /// A decoder awaiting the server's first message, the protocol version.
    pub fn new() -> Self {
        Self::default()
    }

    /// Own peer id, once known.
    pub fn own_id(&self) -> Option<u16> {
        match &self.state {
            State::Version | State::OwnId => None,
            State::Shm { own_id } | State::Peers { own_id, .. } | State::Running { own_id } => {
                Some(*own_id)
            }
        }
    }

    /// The shared-memory fd, once received and until `Ready` hands it over.
    pub fn pending_shm(&self) -> Option<&F> {
        match &self.state {
            State::Peers { shm, .. } => shm.as_ref(),
            _ => None,
        }
    }

    /// True once `Ready` has been produced.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    fn next_vector(&mut self, id: u16) -> Result<u32, ProtocolError> {
        let n = self.vectors_seen.entry(id).or_insert(0);
        if *n >= MAX_VECTORS {
            return Err(ProtocolError::TooManyVectors(id));
        }
        *n += 1;
        Ok(*n - 1)
    }

    /// Feeds one message. Returns the events it completes (at most two).
    pub fn feed(&mut self, value: i64, fd: Option<F>) -> Result<Vec<Event<F>>, ProtocolError> {
        let has_fd = fd.is_some();
        let unexpected = |state| ProtocolError::Unexpected {
            value,
            has_fd,
            state,
        };
        let mut out = Vec::new();
        self.state = match std::mem::replace(&mut self.state, State::Version) {
            State::Version => {
                if value != PROTOCOL_VERSION {
                    return Err(ProtocolError::Version(value));
                }
                if has_fd {
                    return Err(unexpected("version"));
                }
                State::OwnId
            }
            State::OwnId => {
                if has_fd {
                    return Err(unexpected("own id"));
                }
                State::Shm {
                    own_id: peer_id(value)?,
                }
            }
            State::Shm { own_id } => match (value, fd) {
                (SHM_MARKER, Some(f)) => State::Peers {
                    own_id,
                    shm: Some(f),
                    own: Vec::new(),
                },
                _ => return Err(unexpected("shared memory")),
            },
            State::Peers {
                own_id,
                shm,
                mut own,
            } => {
                let id = peer_id(value)?;
                match fd {
                    Some(f) if id == own_id => {
                        self.next_vector(id)?;
                        own.push(f);
                        State::Peers { own_id, shm, own }
                    }
                    Some(f) if own.is_empty() => {
                        let vector = self.next_vector(id)?;
                        out.push(Event::PeerVector { id, vector, fd: f });
                        State::Peers { own_id, shm, own }
                    }
                    _ => {
                        // Something other than an own eventfd after them: the handshake is over.
                        let shm = shm.ok_or(unexpected("peers"))?;
                        if own.is_empty() {
                            return Err(unexpected("peers"));
                        }
                        out.push(Event::Ready {
                            own_id,
                            shm,
                            own_vectors: own,
                        });
                        self.state = State::Running { own_id };
                        out.extend(self.feed(value, fd)?);
                        return Ok(out);
                    }
                }
            }
            State::Running { own_id } => {
                let id = peer_id(value)?;
                match fd {
                    Some(f) => {
                        if id == own_id {
                            return Err(unexpected("running"));
                        }
                        let vector = self.next_vector(id)?;
                        out.push(Event::PeerVector { id, vector, fd: f });
                    }
                    None => {
                        self.vectors_seen.remove(&id);
                        out.push(Event::PeerGone { id });
                    }
                }
                State::Running { own_id }
            }
        };
        Ok(out)
    }

    /// Completes the handshake once the socket has gone quiet after the own eventfds arrived.
    /// Returns `None` if the handshake is not at that point.
    pub fn finish_handshake(&mut self) -> Option<Event<F>> {
        match std::mem::replace(&mut self.state, State::Version) {
            State::Peers {
                own_id,
                shm: Some(shm),
                own,
            } if !own.is_empty() => {
                self.state = State::Running { own_id };
                Some(Event::Ready {
                    own_id,
                    shm,
                    own_vectors: own,
                })
            }
            other => {
                self.state = other;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for v in [0, -1, 1, 65535, i64::MIN, i64::MAX] {
            assert_eq!(decode(encode(v)), v);
        }
        assert_eq!(encode(-1), [0xff; 8]);
    }

    #[test]
    fn handshake_with_one_existing_peer() {
        let mut d = ClientDecoder::<u32>::new();
        assert!(d.feed(0, None).unwrap().is_empty());
        assert!(d.feed(3, None).unwrap().is_empty());
        assert_eq!(d.own_id(), Some(3));
        assert!(d.feed(-1, Some(100)).unwrap().is_empty());
        let e = d.feed(1, Some(10)).unwrap();
        assert_eq!(
            e,
            vec![Event::PeerVector {
                id: 1,
                vector: 0,
                fd: 10
            }]
        );
        let e = d.feed(1, Some(11)).unwrap();
        assert_eq!(
            e,
            vec![Event::PeerVector {
                id: 1,
                vector: 1,
                fd: 11
            }]
        );
        assert!(d.feed(3, Some(30)).unwrap().is_empty());
        assert!(d.feed(3, Some(31)).unwrap().is_empty());
        // A later departure completes the handshake and is reported after it.
        let e = d.feed(1, None).unwrap();
        assert_eq!(
            e,
            vec![
                Event::Ready {
                    own_id: 3,
                    shm: 100,
                    own_vectors: vec![30, 31]
                },
                Event::PeerGone { id: 1 }
            ]
        );
        assert!(d.is_ready());
        // The id can be reused: its vectors number from 0 again.
        assert_eq!(
            d.feed(1, Some(12)).unwrap(),
            vec![Event::PeerVector {
                id: 1,
                vector: 0,
                fd: 12
            }]
        );
    }

    #[test]
    fn finish_on_quiet_socket() {
        let mut d = ClientDecoder::<u32>::new();
        d.feed(0, None).unwrap();
        d.feed(0, None).unwrap();
        assert!(d.finish_handshake().is_none(), "no shm yet");
        d.feed(-1, Some(5)).unwrap();
        assert!(d.finish_handshake().is_none(), "no own vectors yet");
        d.feed(0, Some(6)).unwrap();
        assert_eq!(
            d.finish_handshake(),
            Some(Event::Ready {
                own_id: 0,
                shm: 5,
                own_vectors: vec![6]
            })
        );
    }

    #[test]
    fn violations() {
        assert_eq!(
            ClientDecoder::<u32>::new().feed(1, None),
            Err(ProtocolError::Version(1))
        );
        let mut d = ClientDecoder::<u32>::new();
        d.feed(0, None).unwrap();
        assert_eq!(d.feed(70000, None), Err(ProtocolError::BadId(70000)));
        let mut d = ClientDecoder::<u32>::new();
        d.feed(0, None).unwrap();
        d.feed(2, None).unwrap();
        assert!(
            matches!(d.feed(2, Some(1)), Err(ProtocolError::Unexpected { .. })),
            "own fd before shm"
        );
    }
}
