//! Everything about one other rank: the channel both ways (mailbox and data ring), the queues of
//! sends and payloads in flight, the scratch for one message's mailbox words, and the state each
//! concern keeps per peer (its doorbell, its liveness, its rendezvous bookkeeping). This is the
//! data and the channel primitives; the modules above it ([`send`](super::send),
//! [`receive`](super::receive), [`stream`](super::stream), [`rendezvous`](super::rendezvous),
//! [`liveness`](super::liveness), [`sleep`](super::sleep)) hold what is done with them.

use super::pool::Pool;
use super::tuning::{INLINE_WORDS, TX_BATCH};
use crate::error::{Error, Result};
use crate::matching::Target;
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
    // The communicator a CONTEXT word announced for the next envelope (0: COMM_WORLD).
    pub(super) rx_ctx: u64,
    // The send id a SYNC word announced for the next envelope (a synchronous send).
    pub(super) rx_sync: Option<u64>,
    // Our synchronous sends to this rank (their request ids) not yet acknowledged.
    pub(super) unacked: Vec<u64>,
    // Acknowledgements owed to this rank's synchronous sends, not yet in the mailbox.
    pub(super) acks_owed: VecDeque<u64>,
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
    pub(super) tx_words: [u64; INLINE_WORDS + 2],
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
            rx_ctx: 0,
            rx_sync: None,
            unacked: Vec::new(),
            acks_owed: VecDeque::new(),
            streams: VecDeque::new(),
            outgoing: VecDeque::new(),
            batched: 0,
            bell,
            health: Health::new(generation),
            rdv: RdvBook::default(),
            tx_words: [0; INLINE_WORDS + 2],
            rx_words: [0; INLINE_WORDS],
        })
    }

    /// Publishes a message's envelope (and its payload, if inline) in the mailbox, after a
    /// CONTEXT word for a communicator other than COMM_WORLD (`ctx` 0) and a SYNC word for a
    /// synchronous send (`sync`: its id). False if the mailbox has no room for all of it yet.
    #[inline]
    pub(super) fn push_envelope(
        &mut self,
        header: &Header,
        inline: &[u8],
        buffer: Option<u64>,
        ctx: u64,
        sync: Option<u64>,
    ) -> Result<bool> {
        if ctx != 0 || sync.is_some() {
            return self.push_with_context(header, inline, buffer, ctx, sync);
        }
        let n = envelope_words(self.rank, &mut self.tx_words, header, inline, buffer)?;
        self.push_scratch(n)
    }

    /// Pushes the first `n` words of the send scratch: all of them or, if the mailbox has no
    /// room for all of them yet, none.
    #[inline]
    fn push_scratch(&mut self, n: usize) -> Result<bool> {
        if !self
            .tx_mb
            .push_all(&self.tx_words[..n])
            .map_err(|e| Error::protocol(self.rank, e))?
        {
            // Let the receiver drain what is batched.
            self.flush();
            return Ok(false);
        }
        Ok(true)
    }

    /// [`Link::push_envelope`] for a communicator other than COMM_WORLD or a synchronous send:
    /// a CONTEXT word, a SYNC word, then the envelope words, in one push. Kept out of line so
    /// that ordinary world messages pay one compare.
    #[cold]
    #[inline(never)]
    fn push_with_context(
        &mut self,
        header: &Header,
        inline: &[u8],
        buffer: Option<u64>,
        ctx: u64,
        sync: Option<u64>,
    ) -> Result<bool> {
        let buf = &mut self.tx_words;
        let mut n = 0;
        if ctx != 0 {
            buf[n] = Word::Context { ctx }.encode();
            n += 1;
        }
        if let Some(id) = sync {
            buf[n] = Word::Sync { id }.encode();
            n += 1;
        }
        n += envelope_words(self.rank, &mut buf[n..], header, inline, buffer)?;
        self.push_scratch(n)
    }

    /// Pushes the ACK words owed to this rank's synchronous sends, as many as fit.
    pub(super) fn send_acks(&mut self) -> Result<()> {
        let mut pushed = false;
        while let Some(&id) = self.acks_owed.front() {
            if !self.push_word(Word::Ack { id }.encode())? {
                break;
            }
            self.acks_owed.pop_front();
            pushed = true;
        }
        if pushed {
            self.flush();
        }
        Ok(())
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

/// Writes a message's envelope words into `buf`: a whole INLINE message (at most INLINE_WORDS),
/// or envelope (and LENGTH) and BUFFER word. Returns how many.
#[inline]
fn envelope_words(
    rank: u32,
    buf: &mut [u64],
    header: &Header,
    inline: &[u8],
    buffer: Option<u64>,
) -> Result<usize> {
    let mut n = 0;
    if header.path == Path::Inline {
        n = pack_inline(header.tag, inline, buf)
            .ok_or_else(|| Error::protocol(rank, "inline payload too long"))?;
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
    Ok(n)
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

// ---- the parts of a link, each used by the module named in its doc ----

/// How to wake one other rank, and whether it needs waking.
pub(super) struct Bell {
    /// Its peer id in the pool (the doorbell's target).
    pub(super) peer: u16,
    /// The doorbell vector it sleeps on.
    pub(super) vector: u32,
    /// Pool offset of its sleeping flag in the rank table.
    pub(super) sleeping_off: usize,
    /// Something was published toward it since it was last considered: ring it if it sleeps.
    pub(super) poke: bool,
}

/// What this rank knows of one other rank's life.
pub(super) struct Health {
    /// The peer's generation when it joined: a peer id alive with another generation is a
    /// different process or VM.
    pub(super) generation: u64,
    pub(super) dead: bool,
    /// The rank called Finalize; and, since the last liveness check, everything it sent was read.
    pub(super) finished: bool,
    pub(super) drained: bool,
    /// The rank is dead and nothing more was read from it between the last two liveness checks:
    /// whatever is left (a message it died writing) will never be whole. And where reading from
    /// it stood at the last check (mailbox words, ring bytes).
    pub(super) stalled: bool,
    pub(super) rx_mark: (u64, u64),
}

impl Health {
    pub(super) fn new(generation: u64) -> Health {
        Health {
            generation,
            dead: false,
            finished: false,
            drained: false,
            stalled: false,
            rx_mark: (0, 0),
        }
    }
}

/// FINs and WROTEs owed and expected on one link.
#[derive(Default)]
pub(super) struct RdvBook {
    /// FINs owed to the peer: its payloads read, the answer not pushed yet.
    pub(super) fin_owed: u32,
    /// The id of the next FIN we send.
    pub(super) fin_next: u32,
    /// The id of the next FIN we expect, for our own RENDEZVOUS sends.
    pub(super) fin_expect: u32,
    /// A WROTE owed to the peer (its id), not pushed yet for want of mailbox room: nothing else
    /// is sent to the peer before it.
    pub(super) wrote_owed: Option<u32>,
    /// The id of the next RENDEZVOUS from the peer.
    pub(super) next_in: u32,
}

/// An outgoing message that did not fit at once.
pub(super) struct Outgoing {
    pub(super) req: u64,
    pub(super) header: Header,
    pub(super) ptr: *const u8,
    pub(super) len: usize,
    /// Bytes of the payload already in the ring (the envelope is sent when this is first pushed).
    pub(super) sent: usize,
    pub(super) envelope_sent: bool,
    /// The rest of the payload, copied when the caller gave up waiting (`ptr` then points here).
    pub(super) owned: Option<Box<[u8]>>,
    /// RENDEZVOUS: the payload's pool offset. The op stays queued until the receiver's FIN.
    pub(super) buffer: Option<u64>,
    /// RENDEZVOUS: the receiver sent SHARE and we wrote our share of the payload.
    pub(super) shared: bool,
    /// The communicator's context id (0: COMM_WORLD).
    pub(super) ctx: u64,
    /// A synchronous send: its id, sent in a SYNC word before the envelope.
    pub(super) sync: Option<u64>,
}

impl Outgoing {
    /// A send not started yet: nothing of it in the mailbox or ring.
    pub(super) fn new(
        req: u64,
        header: Header,
        ptr: *const u8,
        len: usize,
        buffer: Option<u64>,
        ctx: u64,
        sync: Option<u64>,
    ) -> Outgoing {
        Outgoing {
            req,
            header,
            ptr,
            len,
            sent: 0,
            envelope_sent: false,
            owned: None,
            buffer,
            shared: false,
            ctx,
            sync,
        }
    }
}

/// A message being read into its target: from a peer's data ring or, for a RENDEZVOUS message,
/// from the peer's buffer in the pool at offset `rdv` (checked to lie in the peer's heap).
pub(super) struct Stream {
    pub(super) target: Target,
    pub(super) len: usize,
    pub(super) done: usize,
    pub(super) rdv: Option<usize>,
    /// RENDEZVOUS: its implicit id (the count of RENDEZVOUS messages from this rank before it).
    pub(super) rdv_id: u32,
    /// A split RENDEZVOUS (SHARE sent): the address of the receive buffer, whose first bytes the
    /// sender writes itself. The receive completes on the WROTE naming `rdv_id`, and until then
    /// the `len` bytes there must not be freed, even if the receive is cancelled.
    pub(super) split: Option<usize>,
    /// The FIN for this RENDEZVOUS payload was queued (our part of it is read).
    pub(super) fin_queued: bool,
}

impl Stream {
    /// The payload of a ring message of `len` bytes.
    pub(super) fn ring(target: Target, len: usize) -> Stream {
        Stream {
            target,
            len,
            done: 0,
            rdv: None,
            rdv_id: 0,
            split: None,
            fin_queued: false,
        }
    }

    /// The payload of RENDEZVOUS number `id`: `len` bytes at pool offset `offset`.
    pub(super) fn rendezvous(target: Target, len: usize, offset: usize, id: u32) -> Stream {
        Stream {
            rdv: Some(offset),
            rdv_id: id,
            ..Stream::ring(target, len)
        }
    }
}
