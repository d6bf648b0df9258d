//! What an in-VM endpoint learns from the pool alone, having no daemon socket and maybe no
//! interrupts: peer joins and departures from the pool's peer table ([`PeerWatch`]), and waiting
//! by polling ([`PollWait`]).

use super::PeerEvent;
use snoo_common::layout::{PeerState, PoolHeader};
use snoo_common::Shm;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How an endpoint without interrupts waits: it sleeps with a backoff from 50 µs to 1 ms, and the
/// engine re-checks shared memory after each nap. An idle waiter wakes at most a thousand times a
/// second; one that follows activity starts short again.
pub struct PollWait(Mutex<Backoff>);

struct Backoff {
    nap: Duration,
    last_end: Instant,
}

impl PollWait {
    /// First and longest sleep of an idle waiter.
    pub const MIN_NAP: Duration = Duration::from_micros(50);
    pub const MAX_NAP: Duration = Duration::from_millis(1);
    /// A wait that starts this long after the previous one ended follows activity.
    const ACTIVE_GAP: Duration = Duration::from_millis(2);

    pub fn new() -> PollWait {
        PollWait(Mutex::new(Backoff {
            nap: Self::MIN_NAP,
            last_end: Instant::now(),
        }))
    }

    /// Sleeps for the next nap of the backoff, at most `timeout`.
    pub fn nap(&self, timeout: Duration) {
        let nap = {
            let mut b = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if b.last_end.elapsed() > Self::ACTIVE_GAP {
                b.nap = Self::MIN_NAP;
            }
            let nap = b.nap;
            b.nap = (b.nap * 2).min(Self::MAX_NAP);
            nap
        };
        std::thread::sleep(nap.min(timeout));
        self.0.lock().unwrap_or_else(|p| p.into_inner()).last_end = Instant::now();
    }
}

impl Default for PollWait {
    fn default() -> Self {
        Self::new()
    }
}

/// Peer joins and departures read from the pool's peer table, as the daemon maintains it.
pub struct PeerWatch {
    own: u16,
    state: Mutex<WatchState>,
}

struct WatchState {
    epoch: Option<u64>,
    // Alive peers other than this one, with the generation they joined with.
    alive: BTreeMap<u16, u64>,
}

impl PeerWatch {
    pub fn new(own: u16) -> PeerWatch {
        PeerWatch {
            own,
            state: Mutex::new(WatchState {
                epoch: None,
                alive: BTreeMap::new(),
            }),
        }
    }

    /// Alive peers other than `own`, from the table as it is now (empty if the header is invalid).
    pub fn alive(&self, shm: &Shm) -> BTreeMap<u16, u64> {
        let mut out = BTreeMap::new();
        let Ok((header, info)) = PoolHeader::open(shm) else {
            return out;
        };
        // Peer ids are 16 bits, and PoolHeader bounds max_peers by that.
        for id in 0..info.geometry.max_peers.min(1 << 16) {
            if id == u32::from(self.own) {
                continue;
            }
            if let Some((PeerState::Alive, g)) = header.peer(id) {
                out.insert(id as u16, g);
            }
        }
        out
    }

    /// Changes since the last call (the first call reports every peer already there as joined).
    pub fn take_events(&self, shm: &Shm) -> Vec<PeerEvent> {
        let Ok((header, _)) = PoolHeader::open(shm) else {
            return Vec::new();
        };
        let epoch = header.epoch();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.epoch == Some(epoch) {
            return Vec::new();
        }
        let now = self.alive(shm);
        let mut events = Vec::new();
        for (id, g) in &st.alive {
            if now.get(id) != Some(g) {
                events.push(PeerEvent::Left(*id));
            }
        }
        for (id, g) in &now {
            if st.alive.get(id) != Some(g) {
                events.push(PeerEvent::Joined(*id));
            }
        }
        st.alive = now;
        st.epoch = Some(epoch);
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::map::anon_shm;

    #[test]
    fn peer_events_follow_the_peer_table() {
        let shm = anon_shm(1 << 16);
        let watch = PeerWatch::new(1);
        assert!(watch.take_events(&shm).is_empty(), "no header, no events");
        let h = PoolHeader::initialize(&shm, "job", 2, 1, 8).unwrap();
        h.set_peer(1, PeerState::Alive);
        h.set_peer(2, PeerState::Alive);
        // The first call reports the peers already there; our own slot is never a peer.
        assert_eq!(watch.take_events(&shm), [PeerEvent::Joined(2)]);
        assert!(watch.take_events(&shm).is_empty());
        h.set_peer(2, PeerState::Dead);
        h.set_peer(3, PeerState::Alive);
        assert_eq!(
            watch.take_events(&shm),
            [PeerEvent::Left(2), PeerEvent::Joined(3)]
        );
        // A slot reused by a new peer between two looks is a departure and a join.
        h.set_peer(3, PeerState::Dead);
        h.set_peer(3, PeerState::Alive);
        assert_eq!(
            watch.take_events(&shm),
            [PeerEvent::Left(3), PeerEvent::Joined(3)]
        );
        assert_eq!(watch.alive(&shm).into_keys().collect::<Vec<_>>(), [3]);
        // A corrupted slot state is not a live peer.
        shm.u32_at(snoo_common::layout::HEADER_SIZE + 3 * 16)
            .unwrap()
            .store(77, std::sync::atomic::Ordering::Relaxed);
        assert!(watch.alive(&shm).is_empty());
    }
}
