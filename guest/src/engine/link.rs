//! Everything about one other rank: the channel both ways (mailbox and data ring), the queues of
//! sends and payloads in flight, and the scratch for one message's mailbox words. The
//! bookkeeping that only one concern needs lives in that concern's module: the doorbell in
//! [`sleep`](super::sleep), liveness in [`liveness`](super::liveness), FIN/SHARE/WROTE in
//! [`rendezvous`](super::rendezvous).

use super::liveness::Health;
use super::pool::Pool;
use super::rendezvous::RdvBook;
use super::send::Outgoing;
use super::sleep::Bell;
use super::stream::Stream;
use super::tuning::{INLINE_WORDS, TX_BATCH};
use crate::error::{Error, Result};
use snoo_common::job::JobLayout;
use snoo_common::register::{
    inline_header, pack_inline, Header, InlineHeader, Path, PendingHeader, Word,
};
use snoo_common::ring::{ByteConsumer, ByteProducer, Head, RingError, WordConsumer, WordProducer};
use std::collections::VecDeque;

/// Where the receive state machine stands on a peer's mailbox (see [`receive`](super::receive)).
pub(super) enum Rx {
    /// Between messages.
    Idle,
    /// A long envelope was read; its LENGTH word comes next.
    NeedLength(PendingHeader),
}

/// The head of a peer's mailbox, as the receive paths see it (see [`Link::peek_inline`]).
pub(super) enum Inbox {
    /// Nothing, or a message whose last words are still on their way.
    NotYet,
    /// A whole INLINE message of `words` mailbox words in `Link::rx_words`.
    Inline { words: usize, hdr: InlineHeader },
    /// Any other word (lap bit cleared), for the general path.
    Other(u64),
}

/// This rank's side of the pair with one other rank.
pub(super) struct Link {
    pub(super) rank: u32,
    pub(super) tx_mb: WordProducer<Pool>,
    pub(super) tx_ring: ByteProducer<Pool>,
    pub(super) rx_mb: WordConsumer<Pool>,
    pub(super) rx_ring: ByteConsumer<Pool>,
    pub(super) rx: Rx,
    // Announced messages whose payloads are being read, in order.
    pub(super) streams: VecDeque<Stream>,
    // Sends that did not fit at once, in order.
    pub(super) outgoing: VecDeque<Outgoing>,
    // Messages pushed into the mailbox but not yet published (see `Engine::start_send`).
    pub(super) batched: u32,
    pub(super) bell: Bell,
    pub(super) health: Health,
    pub(super) rdv: RdvBook,
    // Scratch for one message's mailbox words, outgoing and incoming: kept here so that no
    // message pays for zeroing a buffer on the stack.
    pub(super) tx_words: [u64; INLINE_WORDS + 1],
    pub(super) rx_words: [u64; INLINE_WORDS],
}

impl Link {
    /// The link from this rank `me` to rank `r`, over the channels `layout` gives the pair.
    pub(super) fn new(
        pool: &Pool,
        layout: &JobLayout,
        me: u32,
        r: u32,
        bell: Bell,
        generation: u64,
    ) -> Result<Link> {
        let (tx_mb, tx_ring) = layout.channel(me, r).expect("pair in job");
        let (rx_mb, rx_ring) = layout.channel(r, me).expect("pair in job");
        let ring_err = |e| Error::protocol(r, e);
        let (words, bytes) = (layout.mailbox_words, layout.ring_bytes);
        Ok(Link {
            rank: r,
            tx_mb: WordProducer::new(pool.clone(), tx_mb, words).map_err(ring_err)?,
            tx_ring: ByteProducer::new(pool.clone(), tx_ring, bytes).map_err(ring_err)?,
            rx_mb: WordConsumer::new(pool.clone(), rx_mb, words).map_err(ring_err)?,
            rx_ring: ByteConsumer::new(pool.clone(), rx_ring, bytes).map_err(ring_err)?,
            rx: Rx::Idle,
            streams: VecDeque::new(),
            outgoing: VecDeque::new(),
            batched: 0,
            bell,
            health: Health::new(generation),
            rdv: RdvBook::default(),
            tx_words: [0; INLINE_WORDS + 1],
            rx_words: [0; INLINE_WORDS],
        })
    }

    /// Publishes a message's envelope (and its payload, if inline) in the mailbox. False if the
    /// mailbox has no room for all of it yet.
    #[inline]
    pub(super) fn push_envelope(
        &mut self,
        header: &Header,
        inline: &[u8],
        buffer: Option<u64>,
    ) -> Result<bool> {
        // A whole INLINE message (at most INLINE_WORDS), or envelope (and LENGTH) and BUFFER
        // word.
        let buf = &mut self.tx_words;
        let mut n = 0;
        if header.path == Path::Inline {
            n = pack_inline(header.tag, inline, buf)
                .ok_or_else(|| Error::protocol(self.rank, "inline payload too long"))?;
        } else {
            header.encode(&mut |w| {
                buf[n] = w;
                n += 1;
            });
        }
        if let Some(offset) = buffer {
            buf[n] = Word::Buffer { offset }.encode();
            n += 1;
        }
        // All of it or, if the mailbox has no room for all of it yet, none of it.
        if !self
            .tx_mb
            .push_all(&buf[..n])
            .map_err(|e| Error::protocol(self.rank, e))?
        {
            // Let the receiver drain what is batched.
            self.flush();
            return Ok(false);
        }
        Ok(true)
    }

    /// Pushes one control word (FIN, SHARE, WROTE). False if the mailbox has no room for it yet.
    #[inline]
    pub(super) fn push_word(&mut self, w: u64) -> Result<bool> {
        self.tx_mb
            .push(w)
            .map_err(|e| Error::protocol(self.rank, e))
    }

    /// What the head of the mailbox from this rank holds: a whole INLINE message (copied into
    /// `rx_words`, not taken yet: `rx_mb.consume` takes it), or another word for the general
    /// path, or nothing whole yet.
    #[inline]
    pub(super) fn peek_inline(&mut self) -> std::result::Result<Inbox, RingError> {
        let mut hdr = None;
        let head = self.rx_mb.peek_message(&mut self.rx_words, |w| {
            hdr = inline_header(w);
            hdr.map(|h| h.words())
        })?;
        Ok(match (head, hdr) {
            (Head::Whole(words), Some(hdr)) => Inbox::Inline { words, hdr },
            (Head::Other(w), _) => Inbox::Other(w),
            // (`Whole` always comes with the header the closure found.)
            (Head::Empty | Head::Partial | Head::Whole(_), _) => Inbox::NotYet,
        })
    }

    /// Hands read mailbox slots back once they are an eighth of the mailbox: every release is a
    /// cache-line transfer to the sender (the rest goes back when the rank idles, `release_idle`).
    /// Returns true if it did.
    #[inline]
    pub(super) fn release_batch(&mut self) -> bool {
        let due = self.rx_mb.unreleased() >= self.rx_mb.capacity() / 8;
        if due {
            self.rx_mb.release();
            self.bell.poke = true;
        }
        due
    }

    /// Counts a message that `Engine::start_send` pushed whole and publishes the batch when it
    /// is due: at once for a blocking send, every [`TX_BATCH`] messages for non-blocking ones.
    /// True if it published (the caller then rings the peer if it sleeps).
    #[inline]
    pub(super) fn batch_sent(&mut self, batch: bool) -> bool {
        self.batched += 1;
        let due = !batch || self.batched >= TX_BATCH;
        if due {
            self.flush();
        }
        due
    }

    /// Publishes every word pushed into the mailbox (one index store) and marks the peer to be
    /// rung if it sleeps.
    #[inline]
    pub(super) fn flush(&mut self) {
        if self.tx_mb.pending() > 0 {
            self.tx_mb.publish();
            self.bell.poke = true;
        }
        self.batched = 0;
    }
}

/// Unpacks an inline message from `src`, its envelope and DATA `words`, into `dst`, exactly the
/// length its envelope announced.
#[inline]
pub(super) fn unpack_inline(src: u32, words: &[u64], dst: &mut [u8]) -> Result<()> {
    let (&envelope, data) = words
        .split_first()
        .ok_or_else(|| Error::protocol(src, "inline message without its envelope"))?;
    let got = snoo_common::register::unpack(envelope, data, dst)
        .map_err(|e| Error::protocol(src, format!("bad inline data: {e}")))?;
    if got != dst.len() {
        return Err(Error::protocol(
            src,
            "inline envelope shorter than the length it was matched with",
        ));
    }
    Ok(())
}
