//! Progress passes and the wait loop. The engine makes progress only inside calls: a pass pushes
//! every link's queued sends and reads what its receives want; a wait repeats passes, spinning,
//! then yielding, then sleeping ([`sleep`](super::sleep)), with a liveness check every
//! [`LIVENESS_PERIOD`] and a timeout that counts only time without progress.

use super::tuning::{
    IDLE_SLICE, LIVENESS_PERIOD, LONG_IDLE, RDV_SPIN_BYTES_PER_US, RDV_SPIN_MAX, SLEEP_SLICE,
    SPIN_CHECK, SPIN_TIME, YIELD_AFTER,
};
use super::Engine;
use crate::error::{Error, Result};
use std::time::{Duration, Instant};

/// The clock of one wait: when it last made progress, when it went idle, when liveness is next
/// checked. Read only every [`SPIN_CHECK`] polls.
struct WaitClock {
    last_moved: Instant,
    next_check: Instant,
    idle_since: Option<Instant>,
    /// Something moved since the clock was last read.
    progressed: bool,
}

impl WaitClock {
    fn new(now: Instant, progressed: bool) -> WaitClock {
        WaitClock {
            last_moved: now,
            next_check: now + LIVENESS_PERIOD,
            idle_since: None,
            progressed,
        }
    }

    /// How long to sleep at most, and to wait between liveness checks, at `now`: longer once the
    /// wait has made no progress for [`LONG_IDLE`].
    fn slice(&self, now: Instant) -> Duration {
        if now.duration_since(self.last_moved) >= LONG_IDLE {
            IDLE_SLICE
        } else {
            LIVENESS_PERIOD
        }
    }

    /// Reads the clock at `now`: how long the wait has been idle, and whether liveness is due.
    fn tick(&mut self, now: Instant) -> (Duration, bool) {
        if std::mem::take(&mut self.progressed) {
            self.last_moved = now;
            self.idle_since = None;
        }
        let since = *self.idle_since.get_or_insert(now);
        (now.duration_since(since), now >= self.next_check)
    }
}

impl Engine {
    /// One pass over every peer. Returns true if anything moved.
    pub(crate) fn progress(&mut self) -> Result<bool> {
        let mut moved = false;
        for r in 0..self.size {
            let Some(link) = self.link(r) else {
                continue;
            };
            // A dead peer's published messages are still read: it may have sent them and exited.
            if !link.health.dead {
                moved |= self.progress_tx(r)?;
            }
            moved |= self.progress_rx(r)?;
        }
        Ok(moved)
    }

    /// One progress pass that also reads messages nobody has posted a receive for yet into the
    /// unexpected queue (payloads included). Probes need it; waits do it only once idle for their
    /// poll budget, so that a program whose ranks all block in sends before receiving (legal
    /// with eager buffering) cannot deadlock on full rings. Returns true if anything moved.
    pub(crate) fn progress_all(&mut self) -> Result<bool> {
        let was = std::mem::replace(&mut self.drain_all, true);
        let moved = self.progress();
        self.drain_all = was;
        moved
    }

    /// Drives progress until `done` says so, sleeping on the doorbell when idle. `stuck` is
    /// consulted after every liveness check: it returns an error if what the caller waits for can
    /// no longer happen (its peer died).
    ///
    /// Liveness is checked after every sleep and, while traffic with other ranks keeps this rank
    /// busy (so it never sleeps), every [`LIVENESS_PERIOD`]; a dead peer is thus noticed within
    /// that period either way.
    pub(crate) fn wait_until(
        &mut self,
        mut done: impl FnMut(&mut Engine) -> Result<bool>,
        mut stuck: impl FnMut(&Engine) -> Option<Error>,
    ) -> Result<()> {
        // Most waits end at once (the message is already here, the send already left): no
        // progress pass and no clock read for those.
        if done(self)? {
            return Ok(());
        }
        let mut moved = self.progress()?;
        if done(self)? {
            return Ok(());
        }
        // A peer already known to be gone fails the wait at once.
        if let Some(e) = stuck(self) {
            return Err(e);
        }
        self.yield_to_woken();
        let mut clock = WaitClock::new(Instant::now(), moved);
        let mut polls = 0u32;
        loop {
            polls = polls.wrapping_add(1);
            if !polls.is_multiple_of(SPIN_CHECK) {
                if !moved {
                    std::hint::spin_loop();
                }
                moved = self.progress()?;
                clock.progressed |= moved;
                if done(self)? {
                    return Ok(());
                }
                continue;
            }
            // Every SPIN_CHECK polls: look at the clock.
            let now = Instant::now();
            let (idle, mut check) = clock.tick(now);
            if idle >= YIELD_AFTER {
                // Hand back read mailbox slots only once idle for a while: each release is a
                // locked store to the consumer index, a line the sender reads back. (Unreleased
                // slots never block a sender on their own: progress_rx releases them by the time
                // they are an eighth of the mailbox.)
                self.release_idle();
                // If the rank we wait for shares our CPU (more ranks than CPUs, or a busy host),
                // spinning only delays it: let it run. Without such a rank this returns at once.
                std::thread::yield_now();
            }
            if idle >= SPIN_TIME && idle >= self.spin_budget() {
                if self.idle_turn(&mut clock, now, &mut done)? {
                    return Ok(());
                }
                check |= clock.idle_since.is_none();
            }
            if check && self.liveness_turn(&mut clock, &mut done, &mut stuck)? {
                return Ok(());
            }
            if !clock.progressed && now.duration_since(clock.last_moved) > self.timeout {
                return Err(Error::Timeout(format!(
                    "no progress for {:?} (SNOO_TIMEOUT)",
                    self.timeout
                )));
            }
            moved = self.progress()?;
            clock.progressed |= moved;
            if done(self)? {
                return Ok(());
            }
        }
    }

    /// A wait idle for its poll budget: buffers what nobody asked for yet (progress too), or,
    /// with nothing at all to do, sleeps until the next liveness check at the latest. True if
    /// the wait is over. After a sleep the clock's idle time starts again (poll again for a while
    /// before the next one).
    fn idle_turn(
        &mut self,
        clock: &mut WaitClock,
        now: Instant,
        done: &mut impl FnMut(&mut Engine) -> Result<bool>,
    ) -> Result<bool> {
        if self.progress_all()? {
            clock.progressed = true;
            return Ok(false);
        }
        let max = clock
            .next_check
            .saturating_duration_since(now)
            .min(SLEEP_SLICE.max(clock.slice(now)));
        self.sleep(max, done)?;
        // Woken, most likely by what we wait for: look for it before anything else.
        clock.progressed |= self.progress()?;
        if done(self)? {
            return Ok(true);
        }
        clock.idle_since = None;
        Ok(false)
    }

    /// Checks which peers are alive, reads what the ones found dead published last, and asks
    /// `stuck` whether the wait can still end. True if it is over; `stuck`'s error if it can never
    /// be.
    fn liveness_turn(
        &mut self,
        clock: &mut WaitClock,
        done: &mut impl FnMut(&mut Engine) -> Result<bool>,
        stuck: &mut impl FnMut(&Engine) -> Option<Error>,
    ) -> Result<bool> {
        let now = Instant::now();
        clock.next_check = now + clock.slice(now);
        self.check_liveness();
        // A peer found dead may have published its last messages just before it went: read them
        // before deciding that what we wait for can no longer happen.
        clock.progressed |= self.progress()?;
        if done(self)? {
            return Ok(true);
        }
        match stuck(self) {
            Some(e) => Err(e),
            None => Ok(false),
        }
    }

    /// How long a wait polls before it sleeps: [`SPIN_TIME`], or longer while a peer copies a
    /// RENDEZVOUS payload that we wait for (see [`RDV_SPIN_BYTES_PER_US`]).
    fn spin_budget(&self) -> Duration {
        let copying = self
            .links
            .iter()
            .flatten()
            .map(|l| l.peer_copying())
            .max()
            .unwrap_or(0);
        let copy = Duration::from_micros(copying as u64 / RDV_SPIN_BYTES_PER_US);
        copy.clamp(SPIN_TIME, RDV_SPIN_MAX.max(SPIN_TIME))
    }

    /// Releases every mailbox slot read but not yet handed back (see `progress_rx`).
    pub(super) fn release_idle(&mut self) {
        for r in 0..self.links.len() {
            let Some(link) = self.links[r].as_mut() else {
                continue;
            };
            if link.rx_mb.unreleased() > 0 {
                link.rx_mb.release();
                link.bell.poke = true;
                self.wake(r as u32);
            }
        }
    }
}
