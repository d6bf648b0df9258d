//! The receive fast path: a receive from a named source takes its message straight from the head
//! of that source's mailbox (an inline message) or ring (a medium one, whole), when MPI's ordering
//! rules make it the receive's match. No queue, completion entry or heap is touched; anything
//! else takes the general path ([`receive`](super::receive) and the matcher), which handles every
//! case, errors included.

use super::link::{unpack_inline, Inbox, Link, Rx};
use super::tuning::{DIRECT_RING_MAX, INLINE_MAX, SHARED_LINE_MAX, SPIN_CHECK, YIELD_AFTER};
use super::Engine;
use crate::error::{Error, Result};
use crate::matching::Status;
use snoo_common::register::{Header, HeaderStart, Path};
use std::time::Instant;

/// What [`Engine::recv_direct`] did.
pub(crate) enum Direct {
    /// It took the message.
    Taken(Status),
    /// Nothing (whole) there yet: try again.
    NotYet,
    /// The fast path does not apply: use the general one.
    Never,
}

impl Link {
    /// Takes the message at the head of this rank's mailbox into `buf` if it is whole, has a tag
    /// `tag` accepts and fits: an inline message, or a ring message of at most
    /// [`DIRECT_RING_MAX`] bytes. The caller made sure nothing from this rank is queued,
    /// streaming or wanted by an earlier receive. The second value says whether the peer should
    /// be rung (mailbox slots or ring space went back).
    #[inline]
    fn take_head(&mut self, tag: Option<u32>, buf: &mut [u8]) -> Result<(Direct, bool)> {
        let src = self.rank;
        // (A word the general path must judge, errors included, is left to it.)
        let w = match self.peek_inline() {
            Ok(Inbox::NotYet) => return Ok((Direct::NotYet, false)),
            Ok(Inbox::Inline { words: n, hdr: h }) => {
                let (t, len) = (h.tag, h.len);
                if len > INLINE_MAX || len > buf.len() || tag.is_some_and(|want| want != t) {
                    return Ok((Direct::Never, false));
                }
                unpack_inline(src, &self.rx_words[..n], &mut buf[..len])?;
                self.rx_mb.consume(n);
                let ring = self.release_batch();
                return Ok((Direct::Taken(taken(src, t, len)), ring));
            }
            Ok(Inbox::Other(w)) => w,
            Err(_) => return Ok((Direct::Never, false)),
        };
        let Ok(HeaderStart::Complete(h)) = Header::start(w) else {
            return Ok((Direct::Never, false));
        };
        let len = h.len as usize;
        if len > buf.len()
            || tag.is_some_and(|t| t != h.tag)
            || h.path != Path::Ring
            || len > DIRECT_RING_MAX
            || len > self.rx_ring.capacity() / 2
        {
            return Ok((Direct::Never, false));
        }
        // Nothing from `src` is streaming, so the ring's next bytes are this message's, and they
        // fit the ring at once. The sender publishes them right after the envelope.
        if !self
            .rx_ring
            .read_exact(&mut buf[..len])
            .map_err(|e| Error::protocol(src, e))?
        {
            return Ok((Direct::NotYet, false));
        }
        self.rx_mb.pop().map_err(|e| Error::protocol(src, e))?;
        // Ring space went back: a sender asleep waiting for it must hear.
        self.bell.poke = true;
        let _ = self.release_batch();
        Ok((Direct::Taken(taken(src, h.tag, len)), true))
    }
}

/// The status of a whole message of `len` bytes taken directly.
#[inline]
fn taken(source: u32, tag: u32, len: usize) -> Status {
    Status {
        source,
        tag,
        bytes: len,
        sent: len,
    }
}

impl Engine {
    /// Takes the next message from `src` straight into `buf`, bypassing the matcher, when MPI's
    /// ordering rules make it the receive's match: nothing from `src` is queued or streaming, no
    /// posted receive could take it first, and it is an inline message, or a ring message of at
    /// most [`DIRECT_RING_MAX`] bytes, with a matching tag, that fits `buf`. Anything else is
    /// [`Direct::Never`]: the caller takes the general path.
    ///
    /// This is the fast path of blocking and non-blocking receives of small and medium messages
    /// on COMM_WORLD (`ctx` 0): one slot load when nothing is there, and no queue, table or heap
    /// operation when something is. Other communicators' messages start with a CONTEXT word and
    /// take the general path.
    #[inline]
    pub(crate) fn recv_direct(
        &mut self,
        src: u32,
        tag: Option<u32>,
        ctx: u64,
        buf: &mut [u8],
    ) -> Result<Direct> {
        if src == self.rank || ctx != 0 {
            return Ok(Direct::Never);
        }
        if !self.matcher.quiet_for(src) && !self.let_earlier_receives_complete(src, buf.len())? {
            return Ok(Direct::Never);
        }
        let Some(link) = self.links.get_mut(src as usize).and_then(Option::as_mut) else {
            return Ok(Direct::Never);
        };
        if !link.streams.is_empty()
            || !matches!(link.rx, Rx::Idle)
            || link.rx_ctx != 0
            || link.rx_sync.is_some()
        {
            return Ok(Direct::Never);
        }
        let (direct, ring) = link.take_head(tag, buf)?;
        if ring {
            self.wake(src);
        }
        Ok(direct)
    }

    /// Receives posted earlier that could take a message from `src` come first. Lets what has
    /// arrived complete them (one progress pass on `src`'s mailbox); true if none is left, so a
    /// receive into `len` bytes may still take its message straight from the mailbox. (In a
    /// window of receives posted ahead of their messages, as osu_bw's, all but the first few
    /// then do.)
    #[inline]
    fn let_earlier_receives_complete(&mut self, src: u32, len: usize) -> Result<bool> {
        // Not for a buffer larger than any message the direct path takes: the pass would only
        // copy large payloads into the earlier receives now, holding up whatever this rank does
        // next (its own sends, in osu_bibw: 25% of its rate at 32 KiB - 4 MiB).
        if len > DIRECT_RING_MAX
            || !self.matcher.wants_from(src)
            || !self.matcher.quiet_for_unexpected(src)
        {
            return Ok(false);
        }
        // A small message shares its slot line with the ones after it: reading it while the
        // sender still fills that line takes the line from under the sender, once per message.
        // Until the sender publishes its batch (every TX_BATCH messages), leave the mailbox to
        // it and post this receive like the earlier ones.
        if len <= SHARED_LINE_MAX
            && self
                .link(src)
                .is_some_and(|l| l.rx_mb.published_ahead() == 0)
        {
            return Ok(false);
        }
        self.progress_rx(src)?;
        Ok(self.matcher.quiet_for(src))
    }

    /// True if nothing but receives is in flight: no send waits for room in any mailbox or ring,
    /// and no payload is streaming in. A blocking receive may then poll one mailbox alone for a
    /// while without holding anything else up.
    #[inline]
    fn only_receiving(&self) -> bool {
        self.links
            .iter()
            .flatten()
            .all(|l| l.outgoing.is_empty() && l.streams.is_empty())
    }

    /// Polls `src`'s mailbox alone, a bounded number of times, for a message [`recv_direct`]
    /// can take. Used by blocking receives before they post; gives up at once when anything
    /// else is in flight, and after about [`YIELD_AFTER`] of empty polls (then the general wait,
    /// with its liveness checks, timeout and sleep, takes over).
    ///
    /// [`recv_direct`]: Engine::recv_direct
    pub(crate) fn recv_direct_spin(
        &mut self,
        src: u32,
        tag: Option<u32>,
        ctx: u64,
        buf: &mut [u8],
    ) -> Result<Option<Status>> {
        if ctx != 0 {
            return Ok(None);
        }
        self.flush_batches();
        if !self.only_receiving() {
            return Ok(None);
        }
        self.yield_to_woken();
        // The clock is read only once polling has gone on for a while, so a message that is
        // already there costs no clock read.
        let mut deadline = None;
        for polls in 1u32.. {
            match self.recv_direct(src, tag, ctx, buf)? {
                Direct::Taken(st) => return Ok(Some(st)),
                Direct::Never => return Ok(None),
                // No `release_idle` here: a consumer-index store per message would cost the
                // sender a cache-line transfer each (see `wait_until`).
                Direct::NotYet => {
                    if polls.is_multiple_of(SPIN_CHECK) {
                        let now = Instant::now();
                        match deadline {
                            None => deadline = Some(now + YIELD_AFTER),
                            Some(d) if now >= d => break,
                            Some(_) => {}
                        }
                    }
                    std::hint::spin_loop();
                }
            }
        }
        Ok(None)
    }
}
