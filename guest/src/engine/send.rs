//! The send paths. A small message goes into the mailbox whole (envelope and DATA words); a
//! medium one, when nothing is queued and the ring has room, goes payload first, then envelope,
//! so the receiver finds it whole; anything else queues on the link and streams through the ring
//! as room appears, or, from pool memory, travels as a RENDEZVOUS (see
//! [`rendezvous`](super::rendezvous)).

use super::link::{Link, Outgoing};
use super::tuning::{DIRECT_RING_MAX, INLINE_MAX, RDV_MIN};
use super::Engine;
use crate::error::{Error, Result};
use snoo_common::register::{Header, Path};

/// Where a message goes: the rank, the tag, and the communicator's context id (0: COMM_WORLD).
#[derive(Debug, Clone, Copy)]
pub(crate) struct To {
    pub(crate) dest: u32,
    pub(crate) tag: i32,
    pub(crate) ctx: u64,
}

impl Link {
    /// Sends a medium ring message whole if nothing is queued to this rank and the mailbox and
    /// ring have room now: payload, then envelope. The receiver then finds it whole as soon as it
    /// sees the envelope (the direct receive path). False if it must queue.
    #[inline]
    fn send_medium_now(&mut self, header: &Header, data: &[u8], ctx: u64) -> Result<bool> {
        if !self.outgoing.is_empty() || self.rdv.wrote_owed.is_some() {
            return Ok(false);
        }
        let rank = self.rank;
        if !self
            .tx_mb
            .has_room(header.message_words() + usize::from(ctx != 0))
            .map_err(|e| Error::protocol(rank, e))?
            || !self
                .tx_ring
                .write_all(data)
                .map_err(|e| Error::protocol(rank, e))?
        {
            return Ok(false);
        }
        // Room was checked, so the envelope goes in.
        let pushed = self.push_envelope(header, &[], None, ctx, None)?;
        debug_assert!(
            pushed,
            "mailbox room checked before the payload was written"
        );
        // The payload's publication was a plain store: the mailbox publication is the barrier
        // for both (see `ByteProducer::write_all`).
        Ok(true)
    }
}

impl Engine {
    /// Starts sending `len` bytes at `ptr` to `to`. Returns true if the send completed (the
    /// payload is in shared memory or delivered); otherwise the engine keeps `ptr` until
    /// [`Engine::send_done`] says so.
    ///
    /// With `batch` (non-blocking sends), a small or medium message may be left unpublished in
    /// the mailbox so that a burst of them costs one publication (a locked instruction, which
    /// waits for every store before it to reach the receiver's side) per
    /// [`TX_BATCH`](super::TX_BATCH) messages instead of one each. The receiver polls the slots,
    /// so it sees each message at once; only the doorbell for a sleeping receiver waits for the
    /// publication. The batch is published by the next engine call that makes progress (any
    /// wait, test, probe or blocking call), when it is full, or at once when the receiver has
    /// announced sleep (so a receiver asleep in a wait does not sleep on while the sender computes
    /// between calls; one that announces in the very instant of the send waits for the sender's
    /// next call or its own sleep's end).
    ///
    /// # Safety
    /// `ptr..ptr+len` must stay readable until the send is complete.
    pub(crate) unsafe fn start_send(
        &mut self,
        req: u64,
        ptr: *const u8,
        len: usize,
        to: To,
        batch: bool,
    ) -> Result<bool> {
        let To { dest, tag, ctx } = to;
        if dest == self.rank {
            // SAFETY: the caller guarantees the range is readable now.
            let data = unsafe { std::slice::from_raw_parts(ptr, len) };
            self.matcher
                .deliver_local(self.rank, ctx, tag as u32, data, None);
            return Ok(true);
        }
        let (header, buffer) = self.route(ptr, len, tag)?;
        let path = header.path;
        let link = self.live_link(dest)?;
        let sent_now = match path {
            // The common small message: straight into the mailbox, no queueing.
            Path::Inline if link.outgoing.is_empty() => {
                // SAFETY: the caller guarantees the range is readable now.
                let data = unsafe { std::slice::from_raw_parts(ptr, len) };
                link.push_envelope(&header, data, None, ctx, None)?
            }
            Path::Ring if len <= DIRECT_RING_MAX => {
                // SAFETY: the caller guarantees the range is readable now.
                let data = unsafe { std::slice::from_raw_parts(ptr, len) };
                link.send_medium_now(&header, data, ctx)?
            }
            _ => false,
        };
        if sent_now {
            if link.batch_sent(batch) {
                self.wake(dest);
            } else if self.asleep(dest) {
                // A receiver asleep would see this batch only at this rank's next call, after
                // whatever the program does meanwhile (the computation a non-blocking send
                // overlaps): publish and ring now. A burst to a busy receiver stays batched.
                self.live_link(dest)?.flush();
                self.wake(dest);
            } else {
                self.batching = true;
            }
            return Ok(true);
        }
        link.outgoing
            .push_back(Outgoing::new(req, header, ptr, len, buffer, ctx, None));
        self.progress_tx(dest)?;
        let link = self.live_link(dest)?;
        Ok(link.outgoing.back().is_none_or(|o| o.req != req))
    }

    /// Starts synchronous send `req` (MPI_Ssend, MPI_Issend): as [`Engine::start_send`], but the
    /// message goes out after a SYNC word, and the send completes only once the receiver's ACK
    /// says a receive (or a matched probe) took it. Always queued, so that ordinary sends keep
    /// their fast paths untouched.
    ///
    /// # Safety
    /// As for [`Engine::start_send`].
    pub(crate) unsafe fn start_ssend(
        &mut self,
        req: u64,
        ptr: *const u8,
        len: usize,
        to: To,
    ) -> Result<()> {
        let To { dest, tag, ctx } = to;
        if dest == self.rank {
            // SAFETY: the caller guarantees the range is readable now.
            let data = unsafe { std::slice::from_raw_parts(ptr, len) };
            self.self_unacked.push(req);
            self.matcher
                .deliver_local(self.rank, ctx, tag as u32, data, Some(req));
            self.send_acks()?;
            return Ok(());
        }
        let (header, buffer) = self.route(ptr, len, tag)?;
        let link = self.live_link(dest)?;
        link.unacked.push(req);
        link.outgoing
            .push_back(Outgoing::new(req, header, ptr, len, buffer, ctx, Some(req)));
        self.progress_tx(dest)?;
        Ok(())
    }

    /// Sends the acknowledgements the matcher owes to synchronous senders (to this rank's own
    /// sends at once).
    pub(crate) fn send_acks(&mut self) -> Result<()> {
        if self.matcher.acks.is_empty() {
            return Ok(());
        }
        let acks = std::mem::take(&mut self.matcher.acks);
        for (src, id) in acks {
            if src == self.rank {
                self.self_unacked.retain(|&r| r != id);
            } else if let Some(link) = self.link_opt(src) {
                link.acks_owed.push_back(id);
                link.send_acks()?;
                self.wake(src);
            }
        }
        Ok(())
    }

    /// How `len` bytes at `ptr` travel: INLINE in the mailbox if small, RENDEZVOUS from the pool
    /// if large and in this rank's heap (its offset returned too), through the RING otherwise.
    #[inline]
    fn route(&self, ptr: *const u8, len: usize, tag: i32) -> Result<(Header, Option<u64>)> {
        let buffer = if len >= RDV_MIN {
            self.heap_offset(ptr, len)
        } else {
            None
        };
        let path = if len <= INLINE_MAX {
            Path::Inline
        } else if buffer.is_some() {
            Path::Rendezvous
        } else {
            Path::Ring
        };
        let header = Header::new(tag, path, len).map_err(|_| Error::Tag(tag.into()))?;
        Ok((header, buffer))
    }

    /// The link to rank `r` for a send: an error if `r` is no other rank of the job, or dead.
    fn live_link(&mut self, r: u32) -> Result<&mut Link> {
        let size = self.size;
        let link = self.link_opt(r).ok_or_else(|| Error::Rank {
            rank: r.into(),
            size,
        })?;
        if link.health.dead {
            return Err(Error::PeerDead(r));
        }
        Ok(link)
    }

    /// Waits until send `req` to `dest` has left the caller's buffer. On error (peer death,
    /// timeout) the engine stops referencing the buffer before returning (see
    /// [`Engine::release_send`]), so the caller may free it.
    pub(crate) fn wait_send(&mut self, req: u64, dest: u32) -> Result<()> {
        self.wait_send_or(req, dest, |_| None)
    }

    /// [`Engine::wait_send`] that also gives up with `also`'s error (a collective's wait: a death
    /// anywhere in its communicator).
    pub(crate) fn wait_send_or(
        &mut self,
        req: u64,
        dest: u32,
        also: impl Fn(&Engine) -> Option<Error>,
    ) -> Result<()> {
        let r = self.wait_until(
            |e| Ok(e.send_done(req, dest)),
            |e| e.send_gone(dest).or_else(|| also(e)),
        );
        if r.is_err() {
            self.release_send(req, dest);
        }
        r
    }

    /// Makes send `req` independent of the caller's buffer: a send whose envelope is not out yet
    /// is dropped; one whose payload is partly in the ring keeps going from a private copy of
    /// the rest (the receiver expects the whole announced length). Nothing is waited for: for a
    /// caller giving up on a send after an error (a failed wait, an abandoned collective).
    pub(crate) fn release_send(&mut self, req: u64, dest: u32) {
        self.self_unacked.retain(|&r| r != req);
        let Some(link) = self.link_opt(dest) else {
            return;
        };
        // The caller gave up: no acknowledgement is waited for any more (one that comes later is
        // for an id no longer known, and is ignored: see `Link::take_ack`).
        link.unacked.retain(|&r| r != req);
        let Some(i) = link.outgoing.iter().position(|o| o.req == req) else {
            return;
        };
        let op = &mut link.outgoing[i];
        if !op.envelope_sent {
            link.outgoing.remove(i);
            return;
        }
        if op.buffer.is_some() {
            // A RENDEZVOUS payload is read where it lies: it cannot be copied away from the
            // receiver. The op waits for its FIN; a caller that reuses the buffer before then
            // (after an error) may have the new bytes received.
            return;
        }
        // SAFETY: the caller still holds the buffer (we are inside its wait), and
        // sent <= len.
        let rest = unsafe { std::slice::from_raw_parts(op.ptr.add(op.sent), op.len - op.sent) };
        let owned: Box<[u8]> = rest.into();
        op.ptr = owned.as_ptr();
        op.len = owned.len();
        op.sent = 0;
        op.owned = Some(owned);
    }

    /// True once send `req` to `dest` has left the caller's buffer (and, for a synchronous
    /// send, once a receive took it).
    pub(crate) fn send_done(&self, req: u64, dest: u32) -> bool {
        match self.link(dest) {
            Some(l) => !l.outgoing.iter().any(|o| o.req == req) && !l.unacked.contains(&req),
            None => !self.self_unacked.contains(&req),
        }
    }

    /// Pushes as much of `dest`'s outgoing queue as the mailbox and ring take.
    pub(super) fn progress_tx(&mut self, dest: u32) -> Result<bool> {
        let Some(link) = self.link_opt(dest) else {
            return Ok(false);
        };
        let mut moved = false;
        if !link.acks_owed.is_empty() {
            link.send_acks()?;
        }
        if link.rdv.fin_owed > 0 || link.rdv.wrote_owed.is_some() {
            link.send_fins()?;
            if link.rdv.wrote_owed.is_some() {
                // No room for it yet; nothing may overtake it.
                return Ok(false);
            }
        }
        link.flush();
        while let Some(op) = link.outgoing.front_mut() {
            if !op.envelope_sent {
                let (header, ptr, len, buffer, ctx, sync) =
                    (op.header, op.ptr, op.len, op.buffer, op.ctx, op.sync);
                let inline: &[u8] = if header.path == Path::Inline {
                    // SAFETY: start_send's caller keeps the buffer readable until the send completes.
                    unsafe { std::slice::from_raw_parts(ptr, len) }
                } else {
                    &[]
                };
                if !link.push_envelope(&header, inline, buffer, ctx, sync)? {
                    break;
                }
                link.flush();
                moved = true;
                if header.path == Path::Inline {
                    link.outgoing.pop_front();
                    continue;
                }
                let Some(op) = link.outgoing.front_mut() else {
                    break;
                };
                op.envelope_sent = true;
            }
            let Some(op) = link.outgoing.front_mut() else {
                break;
            };
            if op.buffer.is_some() {
                // Sent; done when the receiver's FIN comes back (`Link::take_fin`). Later sends
                // to this rank wait behind it, so FINs come back in order.
                break;
            }
            if op.sent < op.len {
                // SAFETY: as above.
                let rest =
                    unsafe { std::slice::from_raw_parts(op.ptr.add(op.sent), op.len - op.sent) };
                let n = link
                    .tx_ring
                    .write_some(rest)
                    .map_err(|e| Error::protocol(dest, e))?;
                if n > 0 {
                    op.sent += n;
                    link.bell.poke = true;
                    moved = true;
                }
            }
            if op.sent == op.len {
                link.outgoing.pop_front();
            } else {
                break;
            }
        }
        self.wake(dest);
        Ok(moved)
    }

    /// Publishes every batch of non-blocking sends still unpublished (and rings sleepers).
    #[inline]
    pub(crate) fn flush_batches(&mut self) {
        if !std::mem::take(&mut self.batching) {
            return;
        }
        for r in 0..self.links.len() {
            if let Some(link) = self.links[r].as_mut() {
                if link.batched > 0 {
                    link.flush();
                    self.wake(r as u32);
                }
            }
        }
    }
}
