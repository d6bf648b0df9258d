//! Which peers died or finished, and what that ends. The daemon marks a peer dead in the pool's
//! peer table when its socket closes; a rank that called Finalize says so in the rank table.
//! Messages either published before it went are still received: a peer is gone for receives only
//! once everything it sent has been read.

use super::link::Rx;
use super::Engine;
use crate::error::Error;
use snoo_common::job::{JobTable, RankState};
use snoo_common::layout::{PeerState, PoolHeader};

impl Engine {
    /// Marks ranks whose peers left the pool (or were replaced) as dead.
    pub(crate) fn check_liveness(&mut self) {
        // The geometry was validated at join; re-validating the (guest-writable) header on every
        // sleep cost time and let a scribbled header switch liveness checks off altogether.
        let shm = self.dev.shm();
        let header = PoolHeader::attach_trusted(shm, self.info.geometry.max_peers);
        let job = JobTable::new(shm, &self.layout);
        for link in self.links.iter_mut().flatten() {
            let h = &mut link.health;
            let was_dead = h.dead;
            if !h.dead {
                match header.peer(link.bell.peer.into()) {
                    Some((PeerState::Alive, g)) if g == h.generation => {}
                    _ => {
                        tracing::warn!(rank = link.rank, peer = link.bell.peer, "peer died");
                        h.dead = true;
                    }
                }
            }
            if !h.finished && !h.dead {
                h.finished = job.rank_state(link.rank) == Some(RankState::Finalized);
            }
            // A finished or dead rank is gone for receives once everything it sent has been read
            // (what it wrote before dying stays in the pool, readable). A dead rank may have left
            // a message half written: once a whole liveness period (with progress passes in it)
            // reads nothing more from it, nothing more will come.
            h.drained = (h.finished || h.dead)
                && link.streams.is_empty()
                && matches!(link.rx, Rx::Idle)
                && link.rx_ctx == 0
                && link.rx_sync.is_none()
                && link.rx_mb.peek().is_ok_and(|w| w.is_none());
            let mark = (link.rx_mb.consumed(), link.rx_ring.consumed());
            h.stalled = was_dead && mark == h.rx_mark;
            h.rx_mark = mark;
        }
    }

    /// Why a receive from rank `r` can no longer be satisfied, if so: nothing more from it can
    /// arrive. It called Finalize or died, and everything it sent has been read (or, if it died,
    /// nothing more was readable for a whole liveness period: see `check_liveness`).
    pub(crate) fn gone(&self, r: u32) -> Option<Error> {
        let h = &self.link(r)?.health;
        // Then it is dead or drained, and `send_gone` names which.
        let over = h.drained || h.dead && h.stalled;
        self.send_gone(r).filter(|_| over)
    }

    /// Why a send to rank `r` can no longer complete, if so: it died, or it called Finalize and
    /// everything it sent has been read.
    pub(crate) fn send_gone(&self, r: u32) -> Option<Error> {
        let h = &self.link(r)?.health;
        if h.dead {
            Some(Error::PeerDead(r))
        } else if h.drained {
            Some(Error::PeerFinalized(r))
        } else {
            None
        }
    }

    /// True if rank `r` died: left the pool without calling Finalize (a rank that finalized and
    /// then left did its part of everything), whatever it left unread.
    pub(crate) fn died(&self, r: u32) -> bool {
        self.link(r).is_some_and(|l| {
            l.health.dead
                && !l.health.finished
                && JobTable::new(self.dev.shm(), &self.layout).rank_state(r)
                    != Some(RankState::Finalized)
        })
    }

    /// True if nothing more can be received from rank `r` (see [`Engine::gone`]).
    pub(crate) fn is_dead(&self, r: u32) -> bool {
        self.gone(r).is_some()
    }

    /// True if no send to rank `r` can complete any more (see [`Engine::send_gone`]).
    pub(crate) fn unreachable(&self, r: u32) -> bool {
        self.send_gone(r).is_some()
    }
}
