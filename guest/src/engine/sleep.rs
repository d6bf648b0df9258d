//! The sleep/doorbell handshake. A waiter sets its sleeping flag in the rank table, fences,
//! looks once more, then sleeps on its doorbell vector; a sender publishes with a full barrier,
//! then reads the flag and rings only if it is set. Either the sleeper sees the publication or
//! the sender sees the flag, so the fast path never rings (a doorbell is a VM exit) and no
//! wake-up is lost.

use super::Engine;
use crate::error::Result;
use snoo_common::job::JobTable;
use snoo_common::Shm;
use std::borrow::Borrow;
use std::sync::atomic::{fence, Ordering};
use std::time::Duration;

impl Engine {
    /// Rings `r`'s doorbell if something was published toward it and it announced sleep.
    #[inline]
    pub(super) fn wake(&mut self, r: u32) {
        let Some(link) = self.links.get_mut(r as usize).and_then(Option::as_mut) else {
            return;
        };
        if !link.bell.poke {
            return;
        }
        link.bell.poke = false;
        // SeqCst load after the SeqCst publication (ring.rs): pairs with the sleeper's SeqCst
        // fence between setting its flag and re-checking memory, so either it sees our
        // publication or we see its flag.
        if self.sleeping(r, Ordering::SeqCst) && self.ring(r) {
            self.rang = true;
        }
    }

    /// Rings rank `r` if it announced sleep, for a collective flag just stored. Unlike [`wake`]
    /// there is no full barrier between that store and this load (on the collectives' fast path
    /// it would stall every flag store until the line is owned), so a rank that announces sleep
    /// in the instant the store is still on its way can be missed: it then sleeps until its
    /// slice ends (collective waits sleep in bounded slices for that reason).
    ///
    /// [`wake`]: Engine::wake
    #[inline]
    pub(crate) fn ring_if_asleep(&self, r: u32) {
        if self.asleep(r) {
            self.ring(r);
        }
    }

    /// Whether rank `r` announced sleep: a plain look at its flag, without the handshake's
    /// barrier (see [`ring_if_asleep`](Engine::ring_if_asleep) on what that can miss).
    #[inline]
    pub(super) fn asleep(&self, r: u32) -> bool {
        self.sleeping(r, Ordering::Acquire)
    }

    /// Rank `r`'s sleeping flag, loaded with `order`.
    #[inline]
    fn sleeping(&self, r: u32, order: Ordering) -> bool {
        let Some(link) = self.links.get(r as usize).and_then(Option::as_ref) else {
            return false;
        };
        let shm: &Shm = self.pool.borrow();
        shm.u32_at(link.bell.sleeping_off)
            .is_some_and(|w| w.load(order) != 0)
    }

    /// Rings rank `r`'s doorbell; true if it rang (a failure is only logged: the sleeper's
    /// sleep is bounded anyway).
    fn ring(&self, r: u32) -> bool {
        let Some(link) = self.links.get(r as usize).and_then(Option::as_ref) else {
            return false;
        };
        match self.dev.doorbell(link.bell.peer, link.bell.vector) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(rank = r, error = %e, "doorbell");
                false
            }
        }
    }

    /// Before polling, lets a rank this one just woke run, if it was placed on our CPU: a woken
    /// sleeper often is (the other CPU may be idle in a deep state, or busy), and our polling would
    /// hold it off until our poll budget ends or the scheduler preempts us (20 us of a wake-up in
    /// `snoo-bench wake`). Costs one `sched_yield`, and only after a doorbell was really rung,
    /// which the fast path never does.
    #[inline]
    pub(super) fn yield_to_woken(&mut self) {
        if std::mem::take(&mut self.rang) {
            std::thread::yield_now();
        }
    }

    /// Announces sleep, looks once more, then sleeps on the doorbell for at most `max`.
    pub(crate) fn sleep(
        &mut self,
        max: Duration,
        done: &mut impl FnMut(&mut Engine) -> Result<bool>,
    ) -> Result<()> {
        // A sender that published before seeing the flag is caught by the re-check below; one that
        // publishes after sees the flag and rings (see ring.rs on the SeqCst handshake).
        let dev = self.dev.clone();
        let flag = JobTable::new(dev.shm(), &self.layout)
            .sleeping_flag(self.rank)
            .expect("own rank");
        // Without interrupts (sysfs), the "sleep" is a polling backoff: don't ask to be rung.
        let announce = dev.has_interrupts();
        if announce {
            flag.swap(1, Ordering::SeqCst);
        }
        fence(Ordering::SeqCst);
        let moved = self.progress()?;
        if !moved && !done(self)? {
            let _ = dev.wait(self.vector, max);
        }
        if announce {
            flag.store(0, Ordering::Relaxed);
        }
        Ok(())
    }
}
