//! The SNOO_MPI engine: joins a job in a pool, moves messages through the per-pair mailboxes
//! (register words) and data rings, and matches them to receives with MPI's rules.
//!
//! Single-threaded by design (one engine per process, like MPI_THREAD_SINGLE); the C ABI wraps it
//! in a mutex. All waiting goes through [`Engine::wait_until`]: it drives progress, spins briefly,
//! then announces sleep in the rank table and sleeps on the device's doorbell, so senders ring only
//! sleepers. Every wait ends: on success, on a peer's death, or at the job timeout.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::heap::Heap;
use crate::matching::{Incoming, Matcher, Status, Target, Ticket};
use snoo_common::job::{job_state, rank_state, JobLayout, JOB_FINALIZED, JOB_ID, JOB_MAILBOX_LOG2};
use snoo_common::job::{
    JOB_RANKS, JOB_RING_LOG2, JOB_STATE, JOB_WIRE, RANK_GENERATION, RANK_PEER, RANK_SLEEPING,
};
use snoo_common::job::{RANK_STATE, RANK_VECTOR};
use snoo_common::layout::{PeerState, PoolHeader, PoolInfo};
use snoo_common::register::{
    inline_header, kind, pack_inline, sender_share, Header, HeaderStart, InlineHeader, Path,
    PendingHeader, Word,
};
use snoo_common::ring::{
    ByteConsumer, ByteProducer, ByteRing, Head, RingError, WordConsumer, WordFifo, WordProducer,
};
use snoo_common::Shm;
use std::borrow::Borrow;
use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest payload sent inline as DATA words in the mailbox; larger ones go through the ring.
pub const INLINE_MAX: usize = 112;
/// Largest ring message a receive takes straight from the ring ([`Engine::recv_direct`]) when
/// it is all there: larger ones stream through the general path, chunk by chunk, while the
/// sender is still writing them.
pub const DIRECT_RING_MAX: usize = 16 << 10;
/// Mailbox words of the largest inline message: its envelope and DATA words.
const INLINE_WORDS: usize = 1 + snoo_common::register::data_words_for(INLINE_MAX);
/// Smallest send from this rank's pool heap (`alloc_mem`) that takes the single-copy RENDEZVOUS
/// path: below it, the FIN round trip costs more than the copy it saves.
pub const RDV_MIN: usize = 32 << 10;
/// Smallest RENDEZVOUS whose receive buffer, if it lies in the receiver's heap too, is split
/// between both CPUs (SHARE / WROTE, register.rs): below it, the extra round trip costs more than
/// copying half the payload saves.
pub const SPLIT_MIN: usize = 128 << 10;
/// How long a waiter polls shared memory before it sleeps on its doorbell. A doorbell wake-up costs
/// tens to hundreds of microseconds (eventfd, scheduler; a VM exit and an interrupt in a guest), so
/// polling for a while is cheaper whenever the peer answers within that time.
const SPIN_TIME: Duration = Duration::from_micros(50);
/// While a RENDEZVOUS of ours waits for its FIN (or a split one of the peer's for its WROTE), the
/// peer is copying the payload: a waiter polls for as long as that copy takes at this rate
/// (conservative: copies run at 10-90 GB/s here), up to [`RDV_SPIN_MAX`], before it sleeps.
/// Sleeping sooner only adds a wake-up to the copy: osu_bw from Alloc_mem buffers at 1-4 MiB
/// (a copy of 50-300 us) lost a third of its rate to the sender's sleeps.
const RDV_SPIN_BYTES_PER_US: u64 = 2000;
/// Longest poll while waiting for a peer's copy (a peer that posted no receive yet never copies).
const RDV_SPIN_MAX: Duration = Duration::from_millis(5);
/// Most non-blocking small sends left unpublished in a mailbox (see [`Engine::start_send`]).
pub const TX_BATCH: u32 = 16;
/// Largest receive buffer, in bytes, for which a receive posted behind others waits for the
/// sender's published batch before it reads the mailbox ([`Engine::recv_direct`]): messages of
/// up to 16 B are at most 3 mailbox words, so several share each slot line. osu_bw, 9
/// interleaved pinned runs both ways: +10-24% at 1-16 B; waiting for larger messages too lost
/// 6-28% at 32-256 B (the receiver then fell back to the matcher for most of them).
const SHARED_LINE_MAX: usize = 16;
/// Idle time after which a waiter yields its CPU between polls.
const YIELD_AFTER: Duration = Duration::from_micros(5);
/// Idle polls between two looks at the clock.
const SPIN_CHECK: u32 = 64;
/// Longest single sleep.
const SLEEP_SLICE: Duration = Duration::from_millis(20);
/// How often a waiter checks that its peers are alive, busy or not.
const LIVENESS_PERIOD: Duration = Duration::from_millis(10);

/// A handle to the pool mapping that the ring types can hold. It caches the address of the
/// device's `Shm`: every ring operation borrows it, and going through `dyn Device` each time
/// cost a virtual call per mailbox word.
#[derive(Clone)]
pub(crate) struct Pool {
    // Keeps the device, and so the mapping, alive.
    _dev: Arc<dyn Device>,
    shm: std::ptr::NonNull<Shm>,
}

impl Pool {
    fn new(dev: Arc<dyn Device>) -> Pool {
        let shm = std::ptr::NonNull::from(dev.shm());
        Pool { _dev: dev, shm }
    }
}

impl Borrow<Shm> for Pool {
    #[inline]
    fn borrow(&self) -> &Shm {
        // SAFETY: `shm` points into the device that `dev` keeps alive, and a device hands out the
        // same `Shm`, never moved or replaced, for its whole life (see `Device::shm`).
        unsafe { self.shm.as_ref() }
    }
}

/// What [`Engine::recv_direct`] did.
pub(crate) enum Direct {
    /// It took the message.
    Taken(Status),
    /// Nothing (whole) there yet: try again.
    NotYet,
    /// The fast path does not apply: use the general one.
    Never,
}

/// A message being read into its target: from a peer's data ring or, for a RENDEZVOUS message,
/// from the peer's buffer in the pool at offset `rdv` (checked to lie in the peer's heap).
struct Stream {
    target: Target,
    len: usize,
    done: usize,
    rdv: Option<usize>,
    // RENDEZVOUS: its implicit id (the count of RENDEZVOUS messages from this rank before it).
    rdv_id: u32,
    // A split RENDEZVOUS (SHARE sent): the address of the receive buffer, whose first bytes the
    // sender writes itself. The receive completes on the WROTE naming `rdv_id`, and until then
    // the `len` bytes there must not be freed, even if the receive is cancelled.
    split: Option<usize>,
    // The FIN for this RENDEZVOUS payload was queued (our part of it is read).
    fin_queued: bool,
}

/// An outgoing message that did not fit at once.
struct Outgoing {
    req: u64,
    header: Header,
    ptr: *const u8,
    len: usize,
    // Bytes of the payload already in the ring (the envelope is sent when this is first pushed).
    sent: usize,
    envelope_sent: bool,
    // The rest of the payload, copied when the caller gave up waiting (`ptr` then points here).
    owned: Option<Box<[u8]>>,
    // RENDEZVOUS: the payload's pool offset. The op stays queued until the receiver's FIN.
    buffer: Option<u64>,
    // RENDEZVOUS: the receiver sent SHARE and we wrote our share of the payload.
    shared: bool,
}

enum Rx {
    Idle,
    NeedLength(PendingHeader),
}

/// The head of a peer's mailbox, as the receive paths see it (see `Link::peek_inline`).
enum Inbox {
    /// Nothing, or a message whose last words are still on their way.
    NotYet,
    /// A whole INLINE message of `words` mailbox words in `Link::rx_words`.
    Inline { words: usize, hdr: InlineHeader },
    /// Any other word (lap bit cleared), for the general path.
    Other(u64),
}

/// Everything about one other rank.
struct Link {
    rank: u32,
    peer: u16,
    generation: u64,
    vector: u32,
    sleeping_off: usize,
    tx_mb: WordProducer<Pool>,
    tx_ring: ByteProducer<Pool>,
    rx_mb: WordConsumer<Pool>,
    rx_ring: ByteConsumer<Pool>,
    rx: Rx,
    streams: VecDeque<Stream>,
    outgoing: VecDeque<Outgoing>,
    dead: bool,
    // Set when something was published toward this rank: ring it if it sleeps.
    poke: bool,
    // Messages pushed into the mailbox but not yet published (see `Engine::start_send`).
    batched: u32,
    // The rank called Finalize; and, since the last liveness check, everything it sent was read.
    finished: bool,
    drained: bool,
    // The rank is dead and nothing more was read from it between the last two liveness checks:
    // whatever is left (a message it died writing) will never be whole. And where reading from
    // it stood at the last check (mailbox words, ring bytes).
    stalled: bool,
    rx_mark: (u64, u64),
    // RENDEZVOUS bookkeeping: FINs owed to this rank (payloads read, answer not pushed yet), the
    // id of the next FIN we send, and of the next FIN we expect for our own RENDEZVOUS sends.
    fin_owed: u32,
    fin_next: u32,
    fin_expect: u32,
    // A WROTE owed to this rank (its id), not pushed yet for want of mailbox room (nothing else
    // is sent to this rank before it); and the id of the next RENDEZVOUS from this rank.
    wrote_owed: Option<u32>,
    rdv_next_in: u32,
    // Scratch for one message's mailbox words, outgoing and incoming: kept here so that no
    // message pays for zeroing a buffer on the stack.
    tx_words: [u64; INLINE_WORDS + 1],
    rx_words: [u64; INLINE_WORDS],
}

impl Link {
    /// Publishes a message's envelope (and its payload, if inline) in the mailbox. False if the
    /// mailbox has no room for all of it yet.
    #[inline]
    fn push_envelope(
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

    /// What the head of the mailbox from this rank holds: a whole INLINE message (copied into
    /// `rx_words`, not taken yet: `rx_mb.consume` takes it), or another word for the general
    /// path, or nothing whole yet.
    #[inline]
    fn peek_inline(&mut self) -> std::result::Result<Inbox, RingError> {
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
    fn release_batch(&mut self) -> bool {
        let due = self.rx_mb.unreleased() >= self.rx_mb.capacity() / 8;
        if due {
            self.rx_mb.release();
            self.poke = true;
        }
        due
    }

    /// True while our oldest send to this rank is a RENDEZVOUS waiting for its FIN (the mailbox
    /// from this rank must then be read even if no receive wants anything from it).
    #[inline]
    fn awaiting_fin(&self) -> bool {
        self.outgoing
            .front()
            .is_some_and(|o| o.buffer.is_some() && o.envelope_sent)
    }

    /// Takes a FIN word from this rank: our RENDEZVOUS send at the head of the queue is done.
    fn take_fin(&mut self, word: u64) -> Result<()> {
        match Word::decode(word) {
            Ok(Word::Fin { id }) if id == self.fin_expect && self.awaiting_fin() => {
                self.outgoing.pop_front();
                self.fin_expect = self.fin_expect.wrapping_add(1);
                Ok(())
            }
            Ok(Word::Fin { id }) => Err(Error::protocol(
                self.rank,
                format!(
                    "FIN {id} with no such rendezvous in flight (expected {})",
                    self.fin_expect
                ),
            )),
            Ok(_) | Err(_) => Err(Error::protocol(
                self.rank,
                format!("bad FIN word {word:#x}"),
            )),
        }
    }

    /// Takes a SHARE word from this rank: its receive buffer for our RENDEZVOUS in flight lies in
    /// its heap at the word's offset. Writes our share of the payload there (both CPUs copy at
    /// once) and owes the receiver a WROTE.
    fn take_share(&mut self, word: u64, shm: &Shm, layout: &JobLayout) -> Result<()> {
        let rank = self.rank;
        let Ok(Word::Share { offset }) = Word::decode(word) else {
            return Err(Error::protocol(rank, format!("bad SHARE word {word:#x}")));
        };
        let awaiting = self.awaiting_fin();
        let Some(op) = self.outgoing.front_mut().filter(|o| awaiting && !o.shared) else {
            return Err(Error::protocol(
                rank,
                "SHARE with no rendezvous of ours waiting for one",
            ));
        };
        let share = sender_share(op.len);
        // Untrusted: the whole range must be the receiver's own heap (it can only hurt itself).
        if op.len < SPLIT_MIN || !layout.in_heap(rank, offset, share as u64) {
            return Err(Error::protocol(
                rank,
                format!("SHARE of {share} bytes at {offset:#x} is outside its heap or too small"),
            ));
        }
        // SAFETY: start_send's caller keeps the buffer readable until the send completes, and
        // share <= len.
        let src = unsafe { std::slice::from_raw_parts(op.ptr, share) };
        // In the receiver's heap (checked above), so inside the pool, and disjoint from our own
        // heap that `src` lies in: `write` cannot fail.
        if !shm.write(offset as usize, src) {
            return Err(Error::protocol(rank, "SHARE range outside the pool"));
        }
        op.shared = true;
        self.wrote_owed = Some(self.fin_expect);
        Ok(())
    }

    /// Takes a WROTE word from this rank: the sender's share of the split RENDEZVOUS we are
    /// reading is in our receive buffer.
    fn take_wrote(&mut self, word: u64) -> Result<()> {
        match (Word::decode(word), self.streams.front_mut()) {
            (Ok(Word::Wrote { id }), Some(s)) if s.split.is_some() && s.rdv_id == id => {
                s.split = None;
                Ok(())
            }
            _ => Err(Error::protocol(
                self.rank,
                format!("WROTE word {word:#x} with no split rendezvous waiting for it"),
            )),
        }
    }

    /// True while the payload we are reading from this rank is split and its WROTE has not come.
    #[inline]
    fn awaiting_wrote(&self) -> bool {
        self.streams.front().is_some_and(|s| s.split.is_some())
    }

    /// Pushes the WROTE and FINs owed to this rank, as far as the mailbox has room (the rest go
    /// with the next progress pass).
    fn send_fins(&mut self) -> Result<()> {
        if let Some(id) = self.wrote_owed {
            let w = Word::Wrote { id }.encode();
            if !self
                .tx_mb
                .push(w)
                .map_err(|e| Error::protocol(self.rank, e))?
            {
                self.flush();
                return Ok(());
            }
            self.wrote_owed = None;
        }
        while self.fin_owed > 0 {
            let w = Word::Fin { id: self.fin_next }.encode();
            if !self
                .tx_mb
                .push(w)
                .map_err(|e| Error::protocol(self.rank, e))?
            {
                break;
            }
            self.fin_owed -= 1;
            self.fin_next = self.fin_next.wrapping_add(1);
        }
        self.flush();
        Ok(())
    }

    /// Counts a message that [`Engine::start_send`] pushed whole and publishes the batch when it
    /// is due: at once for a blocking send, every [`TX_BATCH`] messages for non-blocking ones.
    /// True if it published (the caller then rings the peer if it sleeps).
    #[inline]
    fn batch_sent(&mut self, batch: bool) -> bool {
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
    fn flush(&mut self) {
        if self.tx_mb.pending() > 0 {
            self.tx_mb.publish();
            self.poke = true;
        }
        self.batched = 0;
    }
}

/// A joined job.
pub struct Engine {
    dev: Arc<dyn Device>,
    pool: Pool,
    info: PoolInfo,
    layout: JobLayout,
    rank: u32,
    size: u32,
    vector: u32,
    links: Vec<Option<Link>>,
    pub(crate) matcher: Matcher,
    timeout: Duration,
    finalized: bool,
    // Read every payload even if no receive wants it (set while finalizing).
    drain_all: bool,
    // A doorbell was rung since the last wait began (see `yield_to_woken`).
    rang: bool,
    // This rank's heap in the pool (alloc_mem).
    heap: Heap,
}

/// True while `link`'s incoming mailbox is to be read (see `Engine::progress_rx`): everything is
/// being drained, a posted receive could take its next message, our rendezvous to that rank
/// waits for its SHARE or FIN, or its split rendezvous to us for its WROTE.
#[inline]
fn reads_from(drain_all: bool, matcher: &Matcher, link: &Link) -> bool {
    drain_all || matcher.wants_from(link.rank) || link.awaiting_fin() || link.awaiting_wrote()
}

/// The pool offset of `len` bytes at `ptr` if they lie in `rank`'s heap (a free function so that
/// it can be called while a link is borrowed).
fn own_heap_offset(
    shm: &Shm,
    layout: &JobLayout,
    rank: u32,
    ptr: *const u8,
    len: usize,
) -> Option<u64> {
    let off = (ptr as usize).checked_sub(shm.as_ptr() as usize)? as u64;
    layout.in_heap(rank, off, len as u64).then_some(off)
}

/// Unpacks an inline message from `src`, its envelope and DATA `words`, into `dst`, exactly the
/// length its envelope announced.
#[inline]
fn unpack_inline(src: u32, words: &[u64], dst: &mut [u8]) -> Result<()> {
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

fn word32(shm: &Shm, off: usize) -> &AtomicU32 {
    // Offsets come from JobLayout, which was validated against the pool size.
    shm.u32_at(off).expect("job layout inside the pool")
}

/// How a job is joined.
pub struct JoinOptions {
    pub name: String,
    pub rank: Option<u32>,
    pub size: Option<u32>,
    pub timeout: Duration,
}

impl Engine {
    /// Joins the job on the pool reached through `dev`.
    pub fn join(dev: Arc<dyn Device>, opts: &JoinOptions) -> Result<Engine> {
        let shm = dev.shm();
        let (header, info) = PoolHeader::open(shm).map_err(|e| Error::NoPool {
            name: opts.name.clone(),
            why: e.to_string(),
        })?;
        if info.name != opts.name {
            return Err(Error::NoPool {
                name: opts.name.clone(),
                why: format!("the pool reached is named {:?}", info.name),
            });
        }
        let size = match opts.size.or((info.ranks > 0).then_some(info.ranks)) {
            Some(n) => n,
            None => {
                return Err(Error::Arg(
                    "job size unknown: set SNOO_SIZE or start snoo-hostd with --ranks".into(),
                ))
            }
        };
        let layout =
            JobLayout::new(&info.geometry, size).map_err(|e| Error::PoolTooSmall(e.to_string()))?;
        if let Some(r) = opts.rank {
            if r >= size {
                return Err(Error::Rank {
                    rank: r.into(),
                    size,
                });
            }
        }
        let own = dev.own_id();
        let (_, own_gen) = header.peer(own.into()).unwrap_or((PeerState::Free, 0));
        let deadline = Instant::now() + opts.timeout;
        // Claim a rank; if the job is re-formed under us (it had a dead member), claim again.
        let (rank, job_id) = loop {
            let (rank, job_id) = claim(shm, &header, &layout, opts.rank, own, own_gen, deadline)?;
            match wait_for_ranks(shm, &layout, job_id, &*dev, deadline, &info.name) {
                Ok(()) => break (rank, job_id),
                Err(None) => continue,
                Err(Some(e)) => {
                    // Give the slot back so that a retry (or another process) can take it.
                    let slot = layout.rank_slot(rank).expect("own rank");
                    word32(shm, slot + RANK_STATE).store(rank_state::FREE, Ordering::Release);
                    return Err(e);
                }
            }
        };
        tracing::debug!(rank, job_id, "joined job");
        let pool = Pool::new(dev.clone());
        let mut engine = Engine {
            dev: dev.clone(),
            pool,
            info,
            layout,
            rank,
            size,
            vector: 0,
            links: Vec::new(),
            matcher: Matcher::default(),
            timeout: opts.timeout,
            // Not a member until the links are up: a failed join must not run Finalize.
            finalized: true,
            drain_all: false,
            rang: false,
            heap: {
                let (start, len) = layout.heap(rank).expect("own rank");
                Heap::new(start, len)
            },
        };
        if let Err(e) = engine.connect_links() {
            // Give the slot back so that a retry (or another process) can take it.
            let slot = engine.layout.rank_slot(rank).expect("own rank");
            word32(engine.dev.shm(), slot + RANK_STATE).store(rank_state::FREE, Ordering::Release);
            return Err(e);
        }
        engine.finalized = false;
        Ok(engine)
    }

    pub fn rank(&self) -> u32 {
        self.rank
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    pub fn pool_info(&self) -> &PoolInfo {
        &self.info
    }

    /// Data ring bytes per channel in this job.
    pub fn ring_bytes(&self) -> usize {
        self.layout.ring_bytes
    }

    fn connect_links(&mut self) -> Result<()> {
        let shm = self.dev.shm();
        let l = &self.layout;
        for r in 0..self.size {
            if r == self.rank {
                self.links.push(None);
                continue;
            }
            let slot = l.rank_slot(r).expect("rank in job");
            let peer = word32(shm, slot + RANK_PEER).load(Ordering::Acquire);
            let generation = shm
                .u64_at(slot + RANK_GENERATION)
                .expect("in pool")
                .load(Ordering::Acquire);
            let vector = word32(shm, slot + RANK_VECTOR).load(Ordering::Acquire);
            if peer >= self.info.geometry.max_peers || peer > u32::from(u16::MAX) {
                return Err(Error::protocol(r, "peer id out of range in the rank table"));
            }
            if vector >= self.info.vectors.max(1) {
                return Err(Error::protocol(
                    r,
                    "doorbell vector out of range in the rank table",
                ));
            }
            let (tx_mb, tx_ring) = l.channel(self.rank, r).expect("pair in job");
            let (rx_mb, rx_ring) = l.channel(r, self.rank).expect("pair in job");
            let ring_err = |e| Error::protocol(r, e);
            let p = &self.pool;
            self.links.push(Some(Link {
                rank: r,
                peer: peer as u16,
                generation,
                vector,
                sleeping_off: slot + RANK_SLEEPING,
                tx_mb: WordProducer::new(p.clone(), tx_mb, l.mailbox_words).map_err(ring_err)?,
                tx_ring: ByteProducer::new(p.clone(), tx_ring, l.ring_bytes).map_err(ring_err)?,
                rx_mb: WordConsumer::new(p.clone(), rx_mb, l.mailbox_words).map_err(ring_err)?,
                rx_ring: ByteConsumer::new(p.clone(), rx_ring, l.ring_bytes).map_err(ring_err)?,
                rx: Rx::Idle,
                streams: VecDeque::new(),
                outgoing: VecDeque::new(),
                dead: false,
                poke: false,
                batched: 0,
                finished: false,
                drained: false,
                stalled: false,
                rx_mark: (0, 0),
                fin_owed: 0,
                fin_next: 0,
                fin_expect: 0,
                wrote_owed: None,
                rdv_next_in: 0,
                tx_words: [0; INLINE_WORDS + 1],
                rx_words: [0; INLINE_WORDS],
            }));
        }
        Ok(())
    }

    // ---- sending ------------------------------------------------------------------------------

    /// Starts sending `len` bytes at `ptr` to `dest`. Returns true if the send completed (the
    /// payload is in shared memory or delivered); otherwise the engine keeps `ptr` until
    /// [`Engine::send_done`] says so.
    ///
    /// With `batch` (non-blocking sends), a small or medium message may be left unpublished in
    /// the mailbox so that a burst of them costs one publication (a locked instruction, which
    /// waits for every store before it to reach the receiver's side) per [`TX_BATCH`] messages
    /// instead of one each. The receiver polls the slots, so it sees each message at once; only
    /// the doorbell for a sleeping receiver waits for the publication. The batch is published by
    /// the next engine call that makes progress (any wait, test, probe or blocking call) or when
    /// it is full, so a message never waits for more than the caller's next SNOO_MPI call.
    ///
    /// # Safety
    /// `ptr..ptr+len` must stay readable until the send is complete.
    pub(crate) unsafe fn start_send(
        &mut self,
        req: u64,
        ptr: *const u8,
        len: usize,
        dest: u32,
        tag: i32,
        batch: bool,
    ) -> Result<bool> {
        if dest == self.rank {
            // SAFETY: the caller guarantees the range is readable now.
            let data = unsafe { std::slice::from_raw_parts(ptr, len) };
            self.matcher.deliver_local(self.rank, tag as u32, data);
            return Ok(true);
        }
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
        let link = self.link_mut(dest)?;
        if path == Path::Inline && link.outgoing.is_empty() {
            // The common small message: straight into the mailbox, no queueing.
            // SAFETY: the caller guarantees the range is readable now.
            let data = unsafe { std::slice::from_raw_parts(ptr, len) };
            if link.push_envelope(&header, data, None)? {
                if link.batch_sent(batch) {
                    self.wake(dest);
                }
                return Ok(true);
            }
        }
        if path == Path::Ring
            && len <= DIRECT_RING_MAX
            && link.outgoing.is_empty()
            && link.wrote_owed.is_none()
        {
            // A medium message that fits the ring now: payload, then envelope, no queueing. The
            // receiver then finds it whole as soon as it sees the envelope (`recv_direct`).
            // SAFETY: the caller guarantees the range is readable now.
            let data = unsafe { std::slice::from_raw_parts(ptr, len) };
            if link
                .tx_mb
                .has_room(header.message_words())
                .map_err(|e| Error::protocol(dest, e))?
                && link
                    .tx_ring
                    .write_all(data)
                    .map_err(|e| Error::protocol(dest, e))?
            {
                // Room was checked, so the envelope goes in.
                let pushed = link.push_envelope(&header, &[], None)?;
                debug_assert!(
                    pushed,
                    "mailbox room checked before the payload was written"
                );
                // The payload's publication was a plain store: the mailbox publication is the
                // barrier for both (see `ByteProducer::write_all`).
                if link.batch_sent(batch) {
                    self.wake(dest);
                }
                return Ok(true);
            }
        }
        let op = Outgoing {
            req,
            header,
            ptr,
            len,
            sent: 0,
            envelope_sent: false,
            owned: None,
            buffer,
            shared: false,
        };
        link.outgoing.push_back(op);
        self.progress_tx(dest)?;
        let link = self.link_mut(dest)?;
        Ok(link.outgoing.back().is_none_or(|o| o.req != req))
    }

    /// The pool offset of `len` bytes at `ptr` if they lie in this rank's heap.
    fn heap_offset(&self, ptr: *const u8, len: usize) -> Option<u64> {
        own_heap_offset(self.pool.borrow(), &self.layout, self.rank, ptr, len)
    }

    /// Allocates `size` zeroed bytes in this rank's heap in the pool (MPI_Alloc_mem). Large
    /// sends from there take the single-copy RENDEZVOUS path.
    pub(crate) fn alloc_mem(&mut self, size: usize) -> Result<*mut u8> {
        let off = self.heap.alloc(size).ok_or(Error::NoMem {
            size,
            largest: self.heap.largest_free(),
            heap: self.heap.size(),
        })?;
        let shm = self.dev.shm();
        // In bounds: the heap lies inside the pool (JobLayout).
        shm.fill_zero(off, size);
        Ok(shm.as_ptr().wrapping_add(off))
    }

    /// Frees a block from [`Engine::alloc_mem`]. Refused while a send from it is in flight.
    pub(crate) fn free_mem(&mut self, ptr: *mut u8) -> Result<()> {
        let not_ours = || Error::Arg("not a pointer from SNOO_MPI_Alloc_mem".into());
        let off = (ptr as usize)
            .checked_sub(self.dev.shm().as_ptr() as usize)
            .ok_or_else(not_ours)?;
        let len = self.heap.block_len(off).ok_or_else(not_ours)?;
        let block = ptr as usize..ptr as usize + len;
        // A send still reading the block (one that copied its rest away does not), or a live
        // sender still writing its share of a split RENDEZVOUS into it (even for a receive that
        // was cancelled: the sender does not know).
        let busy = self.links.iter().flatten().any(|l| {
            l.outgoing
                .iter()
                .any(|o| o.owned.is_none() && block.contains(&(o.ptr as usize)))
                || (!l.dead
                    && l.streams.iter().any(|s| {
                        s.split
                            .is_some_and(|p| p < block.end && block.start < p.saturating_add(s.len))
                    }))
        });
        if busy {
            return Err(Error::Arg(
                "the buffer is still being sent or received (wait for that first)".into(),
            ));
        }
        self.heap.free(off);
        Ok(())
    }

    /// Waits until send `req` to `dest` has left the caller's buffer. On error (peer death,
    /// timeout) the engine stops referencing the buffer before returning (see
    /// [`Engine::release_send`]), so the caller may free it.
    pub(crate) fn wait_send(&mut self, req: u64, dest: u32) -> Result<()> {
        let r = self.wait_until(|e| Ok(e.send_done(req, dest)), |e| e.send_gone(dest));
        if r.is_err() {
            self.release_send(req, dest);
        }
        r
    }

    /// Makes send `req` independent of the caller's buffer: a send whose envelope is not out yet
    /// is dropped; one whose payload is partly in the ring keeps going from a private copy of
    /// the rest (the receiver expects the whole announced length).
    fn release_send(&mut self, req: u64, dest: u32) {
        let Some(link) = self.links.get_mut(dest as usize).and_then(Option::as_mut) else {
            return;
        };
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

    /// True once send `req` to `dest` has left the caller's buffer.
    pub(crate) fn send_done(&self, req: u64, dest: u32) -> bool {
        match self.links.get(dest as usize).and_then(Option::as_ref) {
            Some(l) => !l.outgoing.iter().any(|o| o.req == req),
            None => true,
        }
    }

    fn link_mut(&mut self, r: u32) -> Result<&mut Link> {
        let size = self.size;
        let link = self
            .links
            .get_mut(r as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| Error::Rank {
                rank: r.into(),
                size,
            })?;
        if link.dead {
            return Err(Error::PeerDead(r));
        }
        Ok(link)
    }

    /// Pushes as much of `dest`'s outgoing queue as the mailbox and ring take.
    fn progress_tx(&mut self, dest: u32) -> Result<bool> {
        let Some(link) = self.links.get_mut(dest as usize).and_then(Option::as_mut) else {
            return Ok(false);
        };
        let mut moved = false;
        if link.fin_owed > 0 || link.wrote_owed.is_some() {
            link.send_fins()?;
            if link.wrote_owed.is_some() {
                // No room for it yet; nothing may overtake it.
                return Ok(false);
            }
        }
        link.flush();
        while let Some(op) = link.outgoing.front_mut() {
            if !op.envelope_sent {
                let (header, ptr, len, buffer) = (op.header, op.ptr, op.len, op.buffer);
                let inline: &[u8] = if header.path == Path::Inline {
                    // SAFETY: start_send's caller keeps the buffer readable until the send completes.
                    unsafe { std::slice::from_raw_parts(ptr, len) }
                } else {
                    &[]
                };
                if !link.push_envelope(&header, inline, buffer)? {
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
                    link.poke = true;
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

    /// Rings `r`'s doorbell if something was published toward it and it announced sleep.
    #[inline]
    fn wake(&mut self, r: u32) {
        let Some(link) = self.links.get_mut(r as usize).and_then(Option::as_mut) else {
            return;
        };
        if !link.poke {
            return;
        }
        link.poke = false;
        // SeqCst load after the SeqCst publication (ring.rs): pairs with the sleeper's SeqCst
        // fence between setting its flag and re-checking memory, so either it sees our
        // publication or we see its flag.
        let shm: &Shm = self.pool.borrow();
        let sleeping = shm
            .u32_at(link.sleeping_off)
            .map_or(0, |w| w.load(Ordering::SeqCst));
        if sleeping != 0 {
            match self.dev.doorbell(link.peer, link.vector) {
                Ok(()) => self.rang = true,
                Err(e) => tracing::debug!(rank = r, error = %e, "doorbell"),
            }
        }
    }

    // ---- receiving ----------------------------------------------------------------------------

    /// Reads everything available from `src`'s mailbox and ring.
    fn progress_rx(&mut self, src: u32) -> Result<bool> {
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
                    Inbox::Inline { words: n, hdr: h } => {
                        if h.len > INLINE_MAX {
                            return Err(Error::protocol(
                                src,
                                format!("inline message of {} bytes", h.len),
                            ));
                        }
                        let msg = &link.rx_words[..n];
                        self.matcher
                            .deliver_with(src, h.tag, h.len, |dst| unpack_inline(src, msg, dst))?;
                        link.rx_mb.consume(n);
                        words += n;
                        moved = true;
                        if words > 4096 || !reads_from(self.drain_all, &self.matcher, link) {
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
            if matches!(link.rx, Rx::Idle) && matches!(k, kind::FIN | kind::SHARE | kind::WROTE) {
                link.rx_mb.pop().map_err(|e| Error::protocol(src, e))?;
                words += 1;
                match k {
                    kind::FIN => link.take_fin(w)?,
                    kind::SHARE => {
                        link.take_share(w, self.pool.borrow(), &self.layout)?;
                        link.send_fins()?;
                    }
                    _ => link.take_wrote(w)?,
                }
                moved = true;
                if !reads_from(self.drain_all, &self.matcher, link) {
                    break;
                }
                continue;
            }
            let header = match std::mem::replace(&mut link.rx, Rx::Idle) {
                Rx::NeedLength(p) => {
                    link.rx_mb.pop().map_err(|e| Error::protocol(src, e))?;
                    words += 1;
                    p.finish(w).map_err(|e| Error::protocol(src, e))?
                }
                Rx::Idle => match Header::start(w) {
                    Ok(HeaderStart::Complete(h)) if h.path == Path::Inline => {
                        // Every INLINE message that fits the mailbox scratch was taken above.
                        return Err(Error::protocol(
                            src,
                            format!("inline message of {} bytes", h.len),
                        ));
                    }
                    Ok(HeaderStart::Complete(h)) => {
                        if h.path != Path::Ring {
                            // Take the whole message (inline data, BUFFER word) at once: the
                            // sender published it whole.
                            let need = h.message_words();
                            if !link
                                .rx_mb
                                .ready(need)
                                .map_err(|e| Error::protocol(src, e))?
                            {
                                break;
                            }
                        }
                        link.rx_mb.pop().map_err(|e| Error::protocol(src, e))?;
                        words += 1;
                        h
                    }
                    Ok(HeaderStart::NeedsLength(p)) => {
                        // A long RENDEZVOUS header: wait until its BUFFER word is there too, so
                        // the header is never complete without it.
                        if p.path() == Path::Rendezvous
                            && !link.rx_mb.ready(3).map_err(|e| Error::protocol(src, e))?
                        {
                            break;
                        }
                        link.rx_mb.pop().map_err(|e| Error::protocol(src, e))?;
                        words += 1;
                        link.rx = Rx::NeedLength(p);
                        continue;
                    }
                    Err(e) => {
                        // Flow control and control words are not used by this engine version.
                        return Err(Error::protocol(
                            src,
                            format!("unexpected mailbox word: {e}"),
                        ));
                    }
                },
            };
            moved = true;
            match header.path {
                Path::Inline => {
                    // Only a long header gets here (a short one was taken whole above): longer
                    // than any inline message can be.
                    return Err(Error::protocol(
                        src,
                        format!("inline message of {} bytes", header.len),
                    ));
                }
                Path::Ring => {
                    let target = self.matcher.arrive(Incoming {
                        src,
                        tag: header.tag,
                        len: header.len as usize,
                    });
                    link.streams.push_back(Stream {
                        target,
                        len: header.len as usize,
                        done: 0,
                        rdv: None,
                        rdv_id: 0,
                        split: None,
                        fin_queued: false,
                    });
                }
                Path::Rendezvous => {
                    // The BUFFER word was checked to be there before the envelope was popped.
                    let w = link.rx_mb.pop().map_err(|e| Error::protocol(src, e))?;
                    words += 1;
                    let len = header.len as usize;
                    let offset = match w.map(Word::decode) {
                        Some(Ok(Word::Buffer { offset })) => offset,
                        _ => {
                            return Err(Error::protocol(
                                src,
                                "a RENDEZVOUS header without its BUFFER word",
                            ))
                        }
                    };
                    // Untrusted: the whole range must be the sender's own heap.
                    if !self.layout.in_heap(src, offset, len as u64) {
                        return Err(Error::protocol(
                            src,
                            format!("rendezvous payload of {len} bytes at {offset:#x} is outside its heap"),
                        ));
                    }
                    let target = self.matcher.arrive(Incoming {
                        src,
                        tag: header.tag,
                        len,
                    });
                    link.streams.push_back(Stream {
                        target,
                        len,
                        done: 0,
                        rdv: Some(offset as usize),
                        rdv_id: link.rdv_next_in,
                        split: None,
                        fin_queued: false,
                    });
                    link.rdv_next_in = link.rdv_next_in.wrapping_add(1);
                }
            }
            // Bound the work per call so that one busy peer cannot starve the others.
            if words > 4096 {
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
        Ok(moved)
    }

    /// Takes the next message from `src` straight into `buf`, bypassing the matcher, when MPI's
    /// ordering rules make it the receive's match: nothing from `src` is queued or streaming, no
    /// posted receive could take it first, and it is an inline message, or a ring message of at
    /// most [`DIRECT_RING_MAX`] bytes, with a matching tag, that fits `buf`. Anything else is
    /// [`Direct::Never`]: the caller takes the general path, which handles every case, errors
    /// included.
    ///
    /// This is the fast path of blocking and non-blocking receives of small and medium messages:
    /// one slot load when nothing is there, and no queue, table or heap operation when something
    /// is.
    #[inline]
    pub(crate) fn recv_direct(
        &mut self,
        src: u32,
        tag: Option<u32>,
        buf: &mut [u8],
    ) -> Result<Direct> {
        if src == self.rank {
            return Ok(Direct::Never);
        }
        if !self.matcher.quiet_for(src) {
            // Receives posted earlier that could take a message from `src` come first. Let what
            // has arrived complete them: once none is left, this receive may still take its
            // message straight from the mailbox. (In a window of receives posted ahead of their
            // messages, as osu_bw's, all but the first few then do.) Not for a buffer larger
            // than any message the direct path takes: the pass would only copy large payloads
            // into the earlier receives now, holding up whatever this rank does next (its own
            // sends, in osu_bibw: 25% of its rate at 32 KiB - 4 MiB).
            if buf.len() > DIRECT_RING_MAX
                || !self.matcher.wants_from(src)
                || !self.matcher.quiet_for_unexpected(src)
            {
                return Ok(Direct::Never);
            }
            // A small message shares its slot line with the ones after it: reading it while
            // the sender still fills that line takes the line from under the sender, once per
            // message. Until the sender publishes its batch (every TX_BATCH messages), leave
            // the mailbox to it and post this receive like the earlier ones.
            if buf.len() <= SHARED_LINE_MAX
                && self
                    .links
                    .get(src as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|l| l.rx_mb.published_ahead() == 0)
            {
                return Ok(Direct::Never);
            }
            self.progress_rx(src)?;
            if !self.matcher.quiet_for(src) {
                return Ok(Direct::Never);
            }
        }
        let Some(link) = self.links.get_mut(src as usize).and_then(Option::as_mut) else {
            return Ok(Direct::Never);
        };
        if !link.streams.is_empty() || !matches!(link.rx, Rx::Idle) {
            return Ok(Direct::Never);
        }
        // (A word the general path must judge, errors included, is left to it.)
        let w = match link.peek_inline() {
            Ok(Inbox::NotYet) => return Ok(Direct::NotYet),
            Ok(Inbox::Inline { words: n, hdr: h }) => {
                let (t, len) = (h.tag, h.len);
                if len > INLINE_MAX || len > buf.len() || tag.is_some_and(|want| want != t) {
                    return Ok(Direct::Never);
                }
                let msg = &link.rx_words[..n];
                unpack_inline(src, msg, &mut buf[..len])?;
                link.rx_mb.consume(n);
                if link.release_batch() {
                    self.wake(src);
                }
                return Ok(Direct::Taken(Status {
                    source: src,
                    tag: t,
                    bytes: len,
                    sent: len,
                }));
            }
            Ok(Inbox::Other(w)) => w,
            Err(_) => return Ok(Direct::Never),
        };
        let Ok(HeaderStart::Complete(h)) = Header::start(w) else {
            return Ok(Direct::Never);
        };
        let len = h.len as usize;
        if len > buf.len() || tag.is_some_and(|t| t != h.tag) {
            return Ok(Direct::Never);
        }
        match h.path {
            Path::Ring if len <= DIRECT_RING_MAX && len <= link.rx_ring.capacity() / 2 => {
                // Nothing from `src` is streaming, so the ring's next bytes are this message's,
                // and they fit the ring at once. The sender publishes them right after the
                // envelope.
                if !link
                    .rx_ring
                    .read_exact(&mut buf[..len])
                    .map_err(|e| Error::protocol(src, e))?
                {
                    return Ok(Direct::NotYet);
                }
                link.rx_mb.pop().map_err(|e| Error::protocol(src, e))?;
                // Ring space went back: a sender asleep waiting for it must hear.
                link.poke = true;
                let _ = link.release_batch();
                self.wake(src);
            }
            _ => return Ok(Direct::Never),
        }
        Ok(Direct::Taken(Status {
            source: src,
            tag: h.tag,
            bytes: len,
            sent: len,
        }))
    }

    /// Publishes every batch of non-blocking sends still unpublished (and rings sleepers).
    #[inline]
    pub(crate) fn flush_batches(&mut self) {
        for r in 0..self.links.len() {
            if let Some(link) = self.links[r].as_mut() {
                if link.batched > 0 {
                    link.flush();
                    self.wake(r as u32);
                }
            }
        }
    }

    /// True if nothing but receives is in flight: no send waits for room in any mailbox or ring,
    /// and no payload is streaming in. A blocking receive may then poll one mailbox alone for a
    /// while without holding anything else up.
    #[inline]
    pub(crate) fn only_receiving(&self) -> bool {
        self.links
            .iter()
            .flatten()
            .all(|l| l.outgoing.is_empty() && l.streams.is_empty())
    }

    /// Polls `src`'s mailbox alone, a bounded number of times, for a message [`recv_direct`]
    /// can take. Used by blocking receives before they post; gives up at once when anything
    /// else is in flight, and after about [`YIELD_AFTER`] of empty polls (then the general wait, with
    /// its liveness checks, timeout and sleep, takes over).
    ///
    /// [`recv_direct`]: Engine::recv_direct
    pub(crate) fn recv_direct_spin(
        &mut self,
        src: u32,
        tag: Option<u32>,
        buf: &mut [u8],
    ) -> Result<Option<Status>> {
        self.flush_batches();
        if !self.only_receiving() {
            return Ok(None);
        }
        self.yield_to_woken();
        // The clock is read only once polling has gone on for a while, so a message that is
        // already there costs no clock read.
        let mut deadline = None;
        for polls in 1u32.. {
            match self.recv_direct(src, tag, buf)? {
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

    /// Moves ring payload into the targets of announced messages, in order.
    fn progress_rx_streams(&mut self, src: u32) -> Result<bool> {
        let Some(link) = self.links.get_mut(src as usize).and_then(Option::as_mut) else {
            return Ok(false);
        };
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
            let stream = link.streams.front_mut().expect("front exists");
            // A RENDEZVOUS into a receive buffer that is pool memory too: let the sender copy the
            // first part of the payload into it while we copy the rest (SHARE / WROTE).
            let share_into = match stream.target {
                Target::Posted { ptr, cap, .. }
                    if stream.rdv.is_some()
                        && stream.done == 0
                        && stream.split.is_none()
                        && stream.len >= SPLIT_MIN
                        && cap >= stream.len =>
                {
                    let shm: &Shm = self.pool.borrow();
                    own_heap_offset(shm, &self.layout, self.rank, ptr, stream.len)
                        .map(|offset| (ptr as usize, offset))
                }
                _ => None,
            };
            if let Some((ptr, offset)) = share_into {
                let pushed = link
                    .tx_mb
                    .push(Word::Share { offset }.encode())
                    .map_err(|e| Error::protocol(src, e))?;
                if pushed {
                    link.flush();
                    let stream = link.streams.front_mut().expect("front exists");
                    stream.split = Some(ptr);
                    stream.done = sender_share(stream.len);
                }
            }
            let stream = link.streams.front_mut().expect("front exists");
            if stream.done < stream.len && stream.rdv.is_some() {
                let at = stream.rdv.unwrap_or(0) + stream.done;
                let skip = match stream.target {
                    Target::Discard => true,
                    Target::Posted { cap, .. } => stream.done >= cap,
                    Target::Unexpected { .. } => false,
                };
                let n = if skip {
                    // Nothing wants these bytes: no need to read them.
                    stream.len - stream.done
                } else {
                    let shm: &Shm = self.pool.borrow();
                    self.matcher
                        .fill(
                            &mut stream.target,
                            stream.done,
                            stream.len,
                            stream.len - stream.done,
                            |dst| {
                                // In the sender's heap (checked when the BUFFER word came), so
                                // inside the pool: `read` cannot fail.
                                if shm.read(at, dst) {
                                    Ok(dst.len())
                                } else {
                                    Err(snoo_common::ring::RingError::OutOfBounds {
                                        offset: at,
                                        footprint: dst.len(),
                                        len: shm.len(),
                                    })
                                }
                            },
                        )
                        .map_err(|e| Error::protocol(src, e))?
                };
                stream.done += n;
                moved = true;
            } else if stream.done < stream.len {
                // Ask the ring first: an empty ring costs one index load, not a buffer operation.
                let avail = link
                    .rx_ring
                    .readable()
                    .map_err(|e| Error::protocol(src, e))?;
                if avail == 0 {
                    break;
                }
                let n = self
                    .matcher
                    .fill(&mut stream.target, stream.done, stream.len, avail, |dst| {
                        link.rx_ring.read_some(dst)
                    })
                    .map_err(|e| Error::protocol(src, e))?;
                if n == 0 {
                    break;
                }
                stream.done += n;
                moved = true;
            }
            if stream.done == stream.len {
                if stream.rdv.is_some() && !stream.fin_queued {
                    // Our part is read: the sender may have its buffer back.
                    link.fin_owed += 1;
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
        if link.fin_owed > 0 {
            // The sender may reuse its buffer once it has this.
            link.send_fins()?;
        }
        if moved {
            link.poke = true;
        }
        Ok(moved)
    }

    /// One pass over every peer. Returns true if anything moved.
    pub(crate) fn progress(&mut self) -> Result<bool> {
        let mut moved = false;
        for r in 0..self.size {
            let Some(link) = self.links.get(r as usize).and_then(Option::as_ref) else {
                continue;
            };
            // A dead peer's published messages are still read: it may have sent them and exited.
            if !link.dead {
                moved |= self.progress_tx(r)?;
            }
            moved |= self.progress_rx(r)?;
        }
        Ok(moved)
    }

    /// Marks ranks whose peers left the pool (or were replaced) as dead.
    fn check_liveness(&mut self) {
        // The geometry was validated at join; re-validating the (guest-writable) header on every
        // sleep cost time and let a scribbled header switch liveness checks off altogether.
        let header = PoolHeader::attach_trusted(self.dev.shm(), self.info.geometry.max_peers);
        for link in self.links.iter_mut().flatten() {
            let was_dead = link.dead;
            if !link.dead {
                match header.peer(link.peer.into()) {
                    Some((PeerState::Alive, g)) if g == link.generation => {}
                    _ => {
                        tracing::warn!(rank = link.rank, peer = link.peer, "peer died");
                        link.dead = true;
                    }
                }
            }
            if !link.finished && !link.dead {
                let state = self
                    .layout
                    .rank_slot(link.rank)
                    .and_then(|slot| self.dev.shm().u32_at(slot + RANK_STATE))
                    .map_or(0, |w| w.load(Ordering::Acquire));
                link.finished = state == rank_state::FINALIZED;
            }
            // A finished or dead rank is gone for receives once everything it sent has been read
            // (what it wrote before dying stays in the pool, readable). A dead rank may have left
            // a message half written: once a whole liveness period (with progress passes in it)
            // reads nothing more from it, nothing more will come.
            link.drained = (link.finished || link.dead)
                && link.streams.is_empty()
                && matches!(link.rx, Rx::Idle)
                && link.rx_mb.peek().is_ok_and(|w| w.is_none());
            let mark = (link.rx_mb.consumed(), link.rx_ring.consumed());
            link.stalled = was_dead && mark == link.rx_mark;
            link.rx_mark = mark;
        }
    }

    /// Why a receive from rank `r` can no longer be satisfied, if so: nothing more from it can
    /// arrive. It called Finalize or died, and everything it sent has been read (or, if it died,
    /// nothing more was readable for a whole liveness period: see `check_liveness`).
    pub(crate) fn gone(&self, r: u32) -> Option<Error> {
        let l = self.links.get(r as usize).and_then(Option::as_ref)?;
        // Then it is dead or drained, and `send_gone` names which.
        let over = l.drained || l.dead && l.stalled;
        self.send_gone(r).filter(|_| over)
    }

    /// Why a send to rank `r` can no longer complete, if so: it died, or it called Finalize and
    /// everything it sent has been read.
    pub(crate) fn send_gone(&self, r: u32) -> Option<Error> {
        let l = self.links.get(r as usize).and_then(Option::as_ref)?;
        if l.dead {
            Some(Error::PeerDead(r))
        } else if l.drained {
            Some(Error::PeerFinalized(r))
        } else {
            None
        }
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

    /// True if nothing more can be received from rank `r` (see [`Engine::gone`]).
    pub(crate) fn is_dead(&self, r: u32) -> bool {
        self.gone(r).is_some()
    }

    /// True if no send to rank `r` can complete any more (see [`Engine::send_gone`]).
    pub(crate) fn unreachable(&self, r: u32) -> bool {
        self.send_gone(r).is_some()
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
        let start = Instant::now();
        // The timeout counts time without progress: a long transfer that keeps moving never expires.
        let mut last_moved = start;
        let mut next_check = start + LIVENESS_PERIOD;
        let mut idle_since: Option<Instant> = None;
        let mut progressed = moved;
        let mut polls = 0u32;
        loop {
            polls = polls.wrapping_add(1);
            if !polls.is_multiple_of(SPIN_CHECK) {
                if !moved {
                    std::hint::spin_loop();
                }
                moved = self.progress()?;
                progressed |= moved;
                if done(self)? {
                    return Ok(());
                }
                continue;
            }
            // Every SPIN_CHECK polls: look at the clock.
            let now = Instant::now();
            if progressed {
                last_moved = now;
                idle_since = None;
                progressed = false;
            }
            let mut check = now >= next_check;
            let since = *idle_since.get_or_insert(now);
            let idle = now.duration_since(since);
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
                if self.progress_all()? {
                    // Buffering what nobody asked for yet is progress too (see progress_all).
                    progressed = true;
                } else {
                    self.sleep(
                        next_check.saturating_duration_since(now).min(SLEEP_SLICE),
                        &mut done,
                    )?;
                    // Woken, most likely by what we wait for: look for it before anything else.
                    progressed |= self.progress()?;
                    if done(self)? {
                        return Ok(());
                    }
                    // After a sleep, poll again for a while before the next one.
                    idle_since = None;
                    check = true;
                }
            }
            if check {
                next_check = Instant::now() + LIVENESS_PERIOD;
                self.check_liveness();
                // A peer found dead may have published its last messages just before it went:
                // read them before deciding that what we wait for can no longer happen.
                progressed |= self.progress()?;
                if done(self)? {
                    return Ok(());
                }
                if let Some(e) = stuck(self) {
                    return Err(e);
                }
            }
            if !progressed && now.duration_since(last_moved) > self.timeout {
                return Err(Error::Timeout(format!(
                    "no progress for {:?} (SNOO_TIMEOUT)",
                    self.timeout
                )));
            }
            moved = self.progress()?;
            progressed |= moved;
            if done(self)? {
                return Ok(());
            }
        }
    }

    /// How long a wait polls before it sleeps: [`SPIN_TIME`], or longer while a peer copies a
    /// RENDEZVOUS payload that we wait for (see [`RDV_SPIN_BYTES_PER_US`]).
    fn spin_budget(&self) -> Duration {
        let copying = self
            .links
            .iter()
            .flatten()
            .map(|l| {
                let ours = match l.outgoing.front() {
                    Some(o) if l.awaiting_fin() => o.len,
                    _ => 0,
                };
                let theirs = match l.streams.front() {
                    Some(st) if l.awaiting_wrote() => sender_share(st.len),
                    _ => 0,
                };
                ours.max(theirs)
            })
            .max()
            .unwrap_or(0);
        let copy = Duration::from_micros(copying as u64 / RDV_SPIN_BYTES_PER_US);
        copy.clamp(SPIN_TIME, RDV_SPIN_MAX.max(SPIN_TIME))
    }

    /// Before polling, lets a rank this one just woke run, if it was placed on our CPU: a woken
    /// sleeper often is (the other CPU may be idle in a deep state, or busy), and our polling would
    /// hold it off until our poll budget ends or the scheduler preempts us (20 us of a wake-up in
    /// `snoo-bench wake`). Costs one `sched_yield`, and only after a doorbell was really rung,
    /// which the fast path never does.
    #[inline]
    fn yield_to_woken(&mut self) {
        if std::mem::take(&mut self.rang) {
            std::thread::yield_now();
        }
    }

    /// Releases every mailbox slot read but not yet handed back (see `progress_rx`).
    fn release_idle(&mut self) {
        for r in 0..self.links.len() {
            let Some(link) = self.links[r].as_mut() else {
                continue;
            };
            if link.rx_mb.unreleased() > 0 {
                link.rx_mb.release();
                link.poke = true;
                self.wake(r as u32);
            }
        }
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

    /// Announces sleep, looks once more, then sleeps on the doorbell for at most `max`.
    fn sleep(
        &mut self,
        max: Duration,
        done: &mut impl FnMut(&mut Engine) -> Result<bool>,
    ) -> Result<()> {
        // A sender that published before seeing the flag is caught by the re-check below; one that
        // publishes after sees the flag and rings (see ring.rs on the SeqCst handshake).
        let slot = self.layout.rank_slot(self.rank).expect("own rank");
        let dev = self.dev.clone();
        let flag = word32(dev.shm(), slot + RANK_SLEEPING);
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

    /// Completes outstanding sends and leaves the job; the last rank out frees the pool for the
    /// next job.
    pub fn finalize(&mut self) -> Result<()> {
        if self.finalized {
            return Ok(());
        }
        // Messages sent to us that nobody will receive: read them anyway, so that their senders'
        // rings drain and those senders can finish too.
        self.drain_all = true;
        let result = self.wait_until(
            |e| {
                Ok(e.links
                    .iter()
                    .flatten()
                    .all(|l| l.outgoing.is_empty() || l.dead || l.finished))
            },
            |_| None,
        );
        let _ = self.progress();
        self.release_idle();
        self.finalized = true;
        let shm = self.dev.shm();
        let l = &self.layout;
        let slot = l.rank_slot(self.rank).expect("own rank");
        word32(shm, slot + RANK_STATE).store(rank_state::FINALIZED, Ordering::Release);
        let done = word32(shm, l.header + JOB_FINALIZED).fetch_add(1, Ordering::AcqRel) + 1;
        if done >= self.size {
            // Everyone is out: free the pool for the next job.
            word32(shm, l.header + JOB_STATE).store(job_state::FREE, Ordering::Release);
        }
        result
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if !self.finalized {
            let _ = self.finalize();
        }
    }
}

/// Waits until all ranks of job `job_id` have claimed their slots. `Err(None)`: the job was re-formed
/// meanwhile (claim again).
fn wait_for_ranks(
    shm: &Shm,
    l: &JobLayout,
    job_id: u64,
    dev: &dyn Device,
    deadline: Instant,
    name: &str,
) -> std::result::Result<(), Option<Error>> {
    loop {
        let current = shm
            .u64_at(l.header + JOB_ID)
            .map_or(0, |w| w.load(Ordering::Acquire));
        if current != job_id
            || word32(shm, l.header + JOB_STATE).load(Ordering::Acquire) != job_state::RUNNING
        {
            return Err(None);
        }
        let mut joined = 0;
        for r in 0..l.ranks {
            let off = l.rank_slot(r).expect("rank in job");
            let st = word32(shm, off + RANK_STATE).load(Ordering::Acquire);
            // A rank that already finished (FINALIZED) joined too: its messages wait for us.
            if matches!(
                st,
                rank_state::CLAIMED | rank_state::READY | rank_state::FINALIZED
            ) {
                joined += 1;
            }
        }
        if joined == l.ranks {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Some(Error::Timeout(format!(
                "{joined} of {} ranks joined pool {name:?} before the timeout",
                l.ranks
            ))));
        }
        let _ = dev.wait(0, Duration::from_millis(2));
    }
}

/// Members of the job currently in the pool: (live, dead, finished) counts of slots. A slot's peer
/// is live if the daemon's peer table still has it alive with the generation it claimed with. The
/// rank count is read from shared memory, so it is clamped and every access is bounds-checked.
fn members(shm: &Shm, header: &PoolHeader<'_>, l: &JobLayout) -> (u32, u32, u32) {
    let ranks = shm
        .u32_at(l.header + JOB_RANKS)
        .map_or(0, |w| w.load(Ordering::Acquire))
        .min(snoo_common::job::MAX_RANKS);
    let (mut live, mut dead, mut finished) = (0, 0, 0);
    for r in 0..ranks {
        let slot = l.rank_table + r as usize * snoo_common::job::RANK_SLOT;
        let Some(st) = shm
            .u32_at(slot + RANK_STATE)
            .map(|w| w.load(Ordering::Acquire))
        else {
            break;
        };
        if st == rank_state::FINALIZED {
            finished += 1;
        }
        if !matches!(
            st,
            rank_state::CLAIMED | rank_state::READY | rank_state::CLAIMING
        ) {
            continue;
        }
        let peer = shm
            .u32_at(slot + RANK_PEER)
            .map_or(u32::MAX, |w| w.load(Ordering::Acquire));
        let generation = shm
            .u64_at(slot + RANK_GENERATION)
            .map_or(0, |g| g.load(Ordering::Acquire));
        if matches!(header.peer(peer), Some((PeerState::Alive, g)) if g == generation) {
            live += 1;
        } else {
            dead += 1;
        }
    }
    (live, dead, finished)
}

/// Takes a rank slot in the job, forming the job if the pool has none, or only a stale one (a job
/// some of whose ranks died and none of whose ranks is still running).
fn claim(
    shm: &Shm,
    header: &PoolHeader<'_>,
    l: &JobLayout,
    want: Option<u32>,
    own: u16,
    own_gen: u64,
    deadline: Instant,
) -> Result<(u32, u64)> {
    let state = word32(shm, l.header + JOB_STATE);
    loop {
        match state.load(Ordering::Acquire) {
            job_state::FREE => {
                if state
                    .compare_exchange(
                        job_state::FREE,
                        job_state::FORMING,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok()
                {
                    form(shm, l);
                    continue;
                }
            }
            job_state::RUNNING => {
                let (live, dead, finished) = members(shm, header, l);
                let ranks_now = word32(shm, l.header + JOB_RANKS).load(Ordering::Acquire);
                // A job with a dead member is finished for good if nobody in it is still running,
                // or if it never got all its ranks (it can never start): start over. Ranks waiting
                // in it notice the new job id and claim again.
                if dead > 0 && (live == 0 || live + dead + finished < ranks_now) {
                    tracing::info!(dead, "replacing a stale job in the pool");
                    let _ = state.compare_exchange(
                        job_state::RUNNING,
                        job_state::FREE,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                    continue;
                }
                let ranks = word32(shm, l.header + JOB_RANKS).load(Ordering::Acquire);
                let ring = word32(shm, l.header + JOB_RING_LOG2).load(Ordering::Acquire);
                let wire = word32(shm, l.header + JOB_WIRE).load(Ordering::Acquire);
                if ranks != l.ranks || ring != l.ring_bytes.trailing_zeros() {
                    if Instant::now() > deadline {
                        return Err(Error::Arg(format!(
                            "the pool is busy with another job of {ranks} ranks (this job has {})",
                            l.ranks
                        )));
                    }
                } else if wire != snoo_common::register::WIRE_VERSION {
                    // Another build's ranks: they would misread each other's register words.
                    return Err(Error::Arg(format!(
                        "the job in this pool speaks register-word format {wire}, this build \
                         speaks {}: every rank of a job must run the same SNOO release",
                        snoo_common::register::WIRE_VERSION
                    )));
                } else {
                    let candidates: Vec<u32> = match want {
                        Some(r) => vec![r],
                        None => (0..l.ranks).collect(),
                    };
                    for r in candidates {
                        let slot = l.rank_slot(r).expect("rank in job");
                        let st = word32(shm, slot + RANK_STATE);
                        if st
                            .compare_exchange(
                                rank_state::FREE,
                                rank_state::CLAIMING,
                                Ordering::AcqRel,
                                Ordering::Acquire,
                            )
                            .is_ok()
                        {
                            // The slot is ours: fill it, then publish it with Release.
                            word32(shm, slot + RANK_PEER).store(own.into(), Ordering::Relaxed);
                            if let Some(g) = shm.u64_at(slot + RANK_GENERATION) {
                                g.store(own_gen, Ordering::Relaxed);
                            }
                            word32(shm, slot + RANK_VECTOR).store(0, Ordering::Relaxed);
                            word32(shm, slot + RANK_SLEEPING).store(0, Ordering::Relaxed);
                            st.store(rank_state::CLAIMED, Ordering::Release);
                            let id = shm
                                .u64_at(l.header + JOB_ID)
                                .map_or(0, |w| w.load(Ordering::Acquire));
                            return Ok((r, id));
                        }
                    }
                    if Instant::now() > deadline {
                        return Err(match want {
                            Some(r) => Error::Arg(format!("rank {r} is already taken in this job")),
                            None => {
                                Error::Arg(format!("all {} ranks of the job are taken", l.ranks))
                            }
                        });
                    }
                }
            }
            _ => {
                // FORMING: someone is laying out the job; it takes microseconds unless it died.
                if Instant::now() > deadline {
                    let _ = state.compare_exchange(
                        job_state::FORMING,
                        job_state::FREE,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                }
            }
        }
        if Instant::now() > deadline + Duration::from_secs(1) {
            return Err(Error::Timeout("could not claim a rank in the job".into()));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Lays out a fresh job: parameters, an empty rank table, zeroed channels; then RUNNING.
fn form(shm: &Shm, l: &JobLayout) {
    let w = |off: usize, v: u32| word32(shm, l.header + off).store(v, Ordering::Relaxed);
    w(JOB_RANKS, l.ranks);
    w(JOB_RING_LOG2, l.ring_bytes.trailing_zeros());
    w(JOB_MAILBOX_LOG2, l.mailbox_words.trailing_zeros());
    w(JOB_FINALIZED, 0);
    w(JOB_WIRE, snoo_common::register::WIRE_VERSION);
    if let Some(id) = shm.u64_at(l.header + JOB_ID) {
        id.fetch_add(1, Ordering::Relaxed);
    }
    shm.fill_zero(l.rank_table, l.ranks as usize * snoo_common::job::RANK_SLOT);
    for i in 0..l.ranks {
        for j in 0..l.ranks {
            if let Some((mb, ring)) = l.channel(i, j) {
                let _ = WordFifo::init(shm, mb, l.mailbox_words);
                let _ = ByteRing::init(shm, ring, l.ring_bytes);
            }
        }
    }
    word32(shm, l.header + JOB_STATE).store(job_state::RUNNING, Ordering::Release);
}
