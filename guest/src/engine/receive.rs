//! The receive state machine: a peer's mailbox words become envelopes, and envelopes go to the
//! matcher. A whole inline message is unpacked straight into the receive it matches; a ring or
//! RENDEZVOUS envelope becomes a [`Stream`] whose payload [`stream`](super::stream) moves.
//! FIN, SHARE and WROTE words between messages go to [`rendezvous`](super::rendezvous); a
//! CONTEXT word names the communicator of the envelope after it (none: COMM_WORLD).
//!
//! Only what is asked for is read: a peer's mailbox is read while a posted receive could take its
//! next message (or a RENDEZVOUS of ours waits for an answer), so a receive posted later takes its
//! message straight from the mailbox, and a full mailbox holds a sender that runs ahead.

use super::link::{unpack_inline, Inbox, Link, Rx, Stream};
use super::tuning::{INLINE_MAX, WORDS_PER_PASS};
use super::Engine;
use crate::error::{Error, Result};
use crate::matching::{Incoming, Matcher};
use snoo_common::job::JobLayout;
use snoo_common::register::{kind, Header, HeaderStart, InlineHeader, Path, Word};
use snoo_common::Shm;
use std::borrow::Borrow;

/// True while `link`'s incoming mailbox is to be read (see the module doc): everything is being
/// drained, a posted receive could take its next message, our rendezvous to that rank waits for
/// its SHARE or FIN, or its split rendezvous to us for its WROTE.
#[inline]
pub(super) fn reads_from(drain_all: bool, matcher: &Matcher, link: &Link) -> bool {
    drain_all
        || matcher.wants_from(link.rank)
        || link.awaiting_fin()
        || link.awaiting_wrote()
        || !link.unacked.is_empty()
}

/// What reading an envelope word gave (see [`Link::read_header`]).
enum Step {
    /// A complete envelope, taken from the mailbox.
    Header(Header),
    /// The rest of the message is not there yet: stop reading this mailbox for now.
    Wait,
    /// A word of a long envelope was taken: read on.
    More,
}

fn inline_too_long(src: u32, len: impl std::fmt::Display) -> Error {
    Error::protocol(src, format!("inline message of {len} bytes"))
}

impl Link {
    /// Takes the whole inline message of `n` words at the mailbox head (in `rx_words`) into the
    /// receive it matches, or the unexpected queue.
    #[inline]
    fn take_inline(&mut self, matcher: &mut Matcher, n: usize, h: InlineHeader) -> Result<()> {
        let src = self.rank;
        if h.len > INLINE_MAX {
            return Err(inline_too_long(src, h.len));
        }
        let msg = &self.rx_words[..n];
        let (ctx, sync) = (self.rx_ctx, self.rx_sync);
        matcher.deliver_with(src, ctx, h.tag, h.len, sync, |dst| {
            unpack_inline(src, msg, dst)
        })?;
        self.rx_ctx = 0;
        self.rx_sync = None;
        self.rx_mb.consume(n);
        Ok(())
    }

    /// Takes the control word `w` of kind `k` (FIN, SHARE, WROTE, CONTEXT, SYNC or ACK) at the
    /// mailbox head.
    fn take_control(&mut self, k: u8, w: u64, shm: &Shm, layout: &JobLayout) -> Result<()> {
        if (self.rx_ctx != 0 && k != kind::SYNC) || self.rx_sync.is_some() {
            // The sender pushes CONTEXT and SYNC words and their envelope together.
            return Err(Error::protocol(
                self.rank,
                format!("a {} word after a CONTEXT word", kind::name(k)),
            ));
        }
        self.pop()?;
        match k {
            kind::FIN => self.take_fin(w),
            kind::SHARE => {
                self.take_share(w, shm, layout)?;
                self.send_fins()
            }
            kind::CONTEXT => self.take_context(w),
            kind::SYNC => self.take_sync(w),
            kind::ACK => self.take_ack(w),
            _ => self.take_wrote(w),
        }
    }

    /// Takes a SYNC word: the next envelope is a synchronous send, to acknowledge when matched.
    fn take_sync(&mut self, w: u64) -> Result<()> {
        match Word::decode(w) {
            Ok(Word::Sync { id }) => {
                self.rx_sync = Some(id);
                Ok(())
            }
            Ok(_) | Err(_) => Err(Error::protocol(self.rank, format!("bad SYNC word {w:#x}"))),
        }
    }

    /// Takes an ACK word: our synchronous send `id` was matched. An id we do not wait for (any
    /// more) changes nothing.
    fn take_ack(&mut self, w: u64) -> Result<()> {
        match Word::decode(w) {
            Ok(Word::Ack { id }) => {
                self.unacked.retain(|&r| r != id);
                Ok(())
            }
            Ok(_) | Err(_) => Err(Error::protocol(self.rank, format!("bad ACK word {w:#x}"))),
        }
    }

    /// Takes a CONTEXT word: the next envelope is on that communicator.
    fn take_context(&mut self, w: u64) -> Result<()> {
        match Word::decode(w) {
            Ok(Word::Context { ctx }) => {
                self.rx_ctx = ctx;
                Ok(())
            }
            Ok(_) | Err(_) => Err(Error::protocol(
                self.rank,
                format!("bad CONTEXT word {w:#x}"),
            )),
        }
    }

    /// Takes the mailbox head word.
    #[inline]
    fn pop(&mut self) -> Result<Option<u64>> {
        self.rx_mb.pop().map_err(|e| Error::protocol(self.rank, e))
    }

    /// True once the mailbox holds `n` words from its head on.
    fn ready(&mut self, n: usize) -> Result<bool> {
        self.rx_mb
            .ready(n)
            .map_err(|e| Error::protocol(self.rank, e))
    }

    /// Reads the envelope word `w` at the mailbox head (not an inline message: those were taken
    /// whole), counting the words it takes into `words`.
    fn read_header(&mut self, w: u64, words: &mut usize) -> Result<Step> {
        let src = self.rank;
        let header = match std::mem::replace(&mut self.rx, Rx::Idle) {
            Rx::NeedLength(p) => {
                self.pop()?;
                *words += 1;
                p.finish(w).map_err(|e| Error::protocol(src, e))?
            }
            Rx::Idle => match Header::start(w) {
                // Every INLINE message that fits the mailbox scratch was taken whole.
                Ok(HeaderStart::Complete(h)) if h.path == Path::Inline => {
                    return Err(inline_too_long(src, h.len));
                }
                Ok(HeaderStart::Complete(h)) => {
                    // Take the whole message (BUFFER word) at once: the sender published it
                    // whole.
                    if h.path != Path::Ring && !self.ready(h.message_words())? {
                        return Ok(Step::Wait);
                    }
                    self.pop()?;
                    *words += 1;
                    h
                }
                Ok(HeaderStart::NeedsLength(p)) => {
                    // A long RENDEZVOUS header: wait until its BUFFER word is there too, so the
                    // header is never complete without it.
                    if p.path() == Path::Rendezvous && !self.ready(3)? {
                        return Ok(Step::Wait);
                    }
                    self.pop()?;
                    *words += 1;
                    self.rx = Rx::NeedLength(p);
                    return Ok(Step::More);
                }
                // Flow control and control words are not used by this engine version.
                Err(e) => {
                    return Err(Error::protocol(
                        src,
                        format!("unexpected mailbox word: {e}"),
                    ))
                }
            },
        };
        Ok(Step::Header(header))
    }

    /// Hands a ring or RENDEZVOUS envelope to the matcher and queues its payload's stream.
    fn announce(
        &mut self,
        header: Header,
        matcher: &mut Matcher,
        layout: &JobLayout,
        words: &mut usize,
    ) -> Result<()> {
        let src = self.rank;
        let len = header.len as usize;
        let incoming = Incoming {
            src,
            ctx: std::mem::take(&mut self.rx_ctx),
            tag: header.tag,
            len,
            sync: self.rx_sync.take(),
        };
        match header.path {
            // Only a long header gets here (a short one was taken whole): longer than any inline
            // message can be.
            Path::Inline => Err(inline_too_long(src, header.len)),
            Path::Ring => {
                let target = matcher.arrive(incoming);
                self.streams.push_back(Stream::ring(target, len));
                Ok(())
            }
            Path::Rendezvous => {
                // The BUFFER word was checked to be there before the envelope was popped.
                let w = self.pop()?;
                *words += 1;
                let Some(Ok(Word::Buffer { offset })) = w.map(Word::decode) else {
                    return Err(Error::protocol(
                        src,
                        "a RENDEZVOUS header without its BUFFER word",
                    ));
                };
                // Untrusted: the whole range must be the sender's own heap.
                if !layout.in_heap(src, offset, len as u64) {
                    return Err(Error::protocol(
                        src,
                        format!(
                            "rendezvous payload of {len} bytes at {offset:#x} is outside its heap"
                        ),
                    ));
                }
                let target = matcher.arrive(incoming);
                let id = self.rdv.next_in;
                self.streams
                    .push_back(Stream::rendezvous(target, len, offset as usize, id));
                self.rdv.next_in = id.wrapping_add(1);
                Ok(())
            }
        }
    }
}

impl Engine {
    /// Reads everything available from `src`'s mailbox and ring.
    pub(super) fn progress_rx(&mut self, src: u32) -> Result<bool> {
        // Payloads of messages already announced first, in order.
        let mut moved = self.progress_rx_streams(src)?;
        let Some(link) = self.links.get_mut(src as usize).and_then(Option::as_mut) else {
            return Ok(false);
        };
        // (read_some publishes the consumer index itself, chunk by chunk.)
        // Then new words in the mailbox.
        let mut words = 0;
        // Leave the mailbox alone while no posted receive could take a message from `src`:
        // a receive posted later then takes its message straight from the mailbox (no
        // unexpected-queue entry, no heap copy), and the full mailbox holds the sender back.
        // Probes, idle waits and Finalize read on (`drain_all`).
        let wanted = reads_from(self.drain_all, &self.matcher, link);
        while wanted || matches!(link.rx, Rx::NeedLength(_)) {
            let w = if matches!(link.rx, Rx::Idle) {
                // The common small message, whole in one pass: envelope and DATA words (the
                // sender published them together), straight into the receive it matches.
                match link.peek_inline().map_err(|e| Error::protocol(src, e))? {
                    Inbox::NotYet => break,
                    Inbox::Inline { words: n, hdr } => {
                        link.take_inline(&mut self.matcher, n, hdr)?;
                        words += n;
                        moved = true;
                        if words > WORDS_PER_PASS
                            || !reads_from(self.drain_all, &self.matcher, link)
                        {
                            break;
                        }
                        continue;
                    }
                    Inbox::Other(w) => w,
                }
            } else {
                match link.rx_mb.peek().map_err(|e| Error::protocol(src, e))? {
                    Some(w) => w,
                    None => break,
                }
            };
            let k = (w & kind::MASK) as u8;
            if matches!(link.rx, Rx::Idle)
                && matches!(
                    k,
                    kind::FIN | kind::SHARE | kind::WROTE | kind::CONTEXT | kind::SYNC | kind::ACK
                )
            {
                link.take_control(k, w, self.pool.borrow(), &self.layout)?;
                words += 1;
                moved = true;
                if !reads_from(self.drain_all, &self.matcher, link) {
                    break;
                }
                continue;
            }
            let header = match link.read_header(w, &mut words)? {
                Step::Header(h) => h,
                Step::Wait => break,
                Step::More => continue,
            };
            moved = true;
            link.announce(header, &mut self.matcher, &self.layout, &mut words)?;
            // Bound the work per call so that one busy peer cannot starve the others.
            if words > WORDS_PER_PASS {
                break;
            }
            // Once the receive that wanted a message from `src` is satisfied, stop (see above).
            if !reads_from(self.drain_all, &self.matcher, link) {
                break;
            }
        }
        // Hand the read slots back in batches: every release is a cache-line transfer to the
        // sender. Whatever is left is released as soon as this rank has nothing to do
        // (`release_idle`), so a sender waiting for room never waits on an idle receiver.
        let _ = link.release_batch();
        // A new stream may be readable right away.
        if link.streams.front().is_some_and(|s| s.done == 0) && words > 0 {
            self.progress_rx_streams(src)?;
        }
        self.wake(src);
        // Synchronous sends matched on the way are acknowledged now.
        self.send_acks()?;
        Ok(moved)
    }
}
