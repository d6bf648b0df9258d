//! Payloads moving into their receives: the bytes of an announced ring message, read from the
//! peer's data ring chunk by chunk while the sender still writes them, or of a RENDEZVOUS, read
//! straight from the sender's buffer in the pool (split with the sender when the receive buffer
//! is pool memory too). A payload nobody wants yet stays where it is, so the receive that later
//! matches it takes it with one copy, and a full ring holds the sender back.

use super::alloc::own_heap_offset;
use super::link::{Link, Stream};
use super::tuning::SPLIT_MIN;
use super::Engine;
use crate::error::{Error, Result};
use crate::matching::{Matcher, Target, Ticket};
use snoo_common::job::JobLayout;
use snoo_common::register::{sender_share, Word};
use snoo_common::Shm;
use std::borrow::Borrow;

impl Stream {
    /// Where in this rank's heap the sender may write its share of this RENDEZVOUS: its receive
    /// buffer's address and pool offset, if that buffer is pool memory, holds the whole message,
    /// and the payload is large enough to be worth splitting.
    fn share_into(&self, shm: &Shm, layout: &JobLayout, rank: u32) -> Option<(usize, u64)> {
        match self.target {
            Target::Posted { ptr, cap, .. }
                if self.rdv.is_some()
                    && self.done == 0
                    && self.split.is_none()
                    && self.len >= SPLIT_MIN
                    && cap >= self.len =>
            {
                own_heap_offset(shm, layout, rank, ptr, self.len).map(|off| (ptr as usize, off))
            }
            _ => None,
        }
    }

    /// True if no receive wants any of this payload's bytes.
    fn unwanted(&self) -> bool {
        match self.target {
            Target::Discard => true,
            Target::Posted { cap, .. } => self.done >= cap,
            Target::Unexpected { .. } => false,
        }
    }
}

impl Link {
    /// Asks the sender of the RENDEZVOUS at the head of the streams to write its share into
    /// `ptr` (pool offset `offset`): one SHARE word. The stream then reads only the rest.
    fn offer_share(&mut self, ptr: usize, offset: u64) -> Result<()> {
        if self.push_word(Word::Share { offset }.encode())? {
            self.flush();
            let stream = self.streams.front_mut().expect("front exists");
            stream.split = Some(ptr);
            stream.done = sender_share(stream.len);
        }
        Ok(())
    }

    /// Reads more of the RENDEZVOUS at the head of the streams from the sender's heap.
    fn read_rendezvous(&mut self, matcher: &mut Matcher, shm: &Shm) -> Result<()> {
        let src = self.rank;
        let stream = self.streams.front_mut().expect("front exists");
        let at = stream.rdv.unwrap_or(0) + stream.done;
        let n = if stream.unwanted() {
            // Nothing wants these bytes: no need to read them.
            stream.len - stream.done
        } else {
            let rest = stream.len - stream.done;
            matcher.fill(&mut stream.target, stream.done, stream.len, rest, |dst| {
                // In the sender's heap (checked when the BUFFER word came), so inside the pool:
                // `read` cannot fail.
                if shm.read(at, dst) {
                    Ok(dst.len())
                } else {
                    Err(Error::protocol(
                        src,
                        format!(
                            "rendezvous read of {} bytes at {at:#x} outside the pool",
                            dst.len()
                        ),
                    ))
                }
            })?
        };
        stream.done += n;
        Ok(())
    }

    /// Reads what the ring holds of the ring message at the head of the streams. False if the
    /// ring had nothing for it.
    fn read_ring(&mut self, matcher: &mut Matcher) -> Result<bool> {
        let src = self.rank;
        // Ask the ring first: an empty ring costs one index load, not a buffer operation.
        let avail = self
            .rx_ring
            .readable()
            .map_err(|e| Error::protocol(src, e))?;
        if avail == 0 {
            return Ok(false);
        }
        let stream = self.streams.front_mut().expect("front exists");
        let ring = &mut self.rx_ring;
        let n = matcher.fill(&mut stream.target, stream.done, stream.len, avail, |dst| {
            ring.read_some(dst).map_err(|e| Error::protocol(src, e))
        })?;
        stream.done += n;
        Ok(n > 0)
    }
}

impl Engine {
    /// Moves payload into the targets of announced messages from `src`, in order.
    pub(super) fn progress_rx_streams(&mut self, src: u32) -> Result<bool> {
        let Some(link) = self.links.get_mut(src as usize).and_then(Option::as_mut) else {
            return Ok(false);
        };
        let shm: &Shm = self.pool.borrow();
        let mut moved = false;
        while let Some(stream) = link.streams.front_mut() {
            if matches!(stream.target, Target::Unexpected { .. })
                && !self.matcher.bind(&mut stream.target)
                && !self.drain_all
                && !self.matcher.wants_from(src)
                && !link
                    .streams
                    .iter()
                    .skip(1)
                    .any(|s| matches!(s.target, Target::Posted { .. }))
            {
                // Nobody wants this payload yet, nor anything behind it from this rank (a posted
                // receive, or a stream already bound to one): leave it in the ring. The receive
                // that later matches it takes it straight from the ring (no heap buffer, no
                // second copy), and the full ring holds the sender back.
                break;
            }
            // A RENDEZVOUS into a receive buffer that is pool memory too: let the sender copy the
            // first part of the payload into it while we copy the rest (SHARE / WROTE).
            let stream = link.streams.front().expect("front exists");
            if let Some((ptr, offset)) = stream.share_into(shm, &self.layout, self.rank) {
                link.offer_share(ptr, offset)?;
            }
            let stream = link.streams.front().expect("front exists");
            if stream.done < stream.len && stream.rdv.is_some() {
                link.read_rendezvous(&mut self.matcher, shm)?;
                moved = true;
            } else if stream.done < stream.len {
                if !link.read_ring(&mut self.matcher)? {
                    break;
                }
                moved = true;
            }
            let stream = link.streams.front_mut().expect("front exists");
            if stream.done == stream.len {
                if stream.rdv.is_some() && !stream.fin_queued {
                    // Our part is read: the sender may have its buffer back.
                    link.rdv.fin_owed += 1;
                    stream.fin_queued = true;
                }
                if stream.split.is_some() {
                    // The sender's part is written when its WROTE comes (progress_rx).
                    break;
                }
                let s = link.streams.pop_front().expect("front exists");
                self.matcher.complete(s.target, s.len);
            }
        }
        if link.rdv.fin_owed > 0 {
            // The sender may reuse its buffer once it has this.
            link.send_fins()?;
        }
        if moved {
            link.bell.poke = true;
        }
        Ok(moved)
    }

    /// Gives up on receive `t` with `err`: it leaves the matcher, and a payload already streaming
    /// into its buffer is consumed and dropped instead (the caller may free the buffer now).
    pub(crate) fn cancel_recv(&mut self, t: Ticket, err: Error) {
        self.matcher.fail(t, err);
        for link in self.links.iter_mut().flatten() {
            for s in link.streams.iter_mut() {
                if matches!(s.target, Target::Posted { t: r, .. } if r == t) {
                    s.target = Target::Discard;
                }
            }
        }
    }
}
