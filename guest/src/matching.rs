//! MPI message matching: posted receives, the unexpected-message queue, and completions.
//!
//! Messages are matched in arrival order per source (the mailbox is a FIFO and envelopes always go
//! through it), receives in posting order, so MPI's non-overtaking rule holds. This is the one module
//! that writes into application buffers through raw pointers: the API layers guarantee that a
//! posted buffer stays valid until its request completes.

use crate::error::Error;
use std::collections::VecDeque;

/// What a receive reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub source: u32,
    pub tag: u32,
    /// Bytes received (at most the buffer's size).
    pub bytes: usize,
    /// Bytes that were sent (more than `bytes` when truncated).
    pub sent: usize,
}

/// An announced message from a peer's ring.
pub struct Incoming {
    pub src: u32,
    /// The communicator's context id (0: COMM_WORLD).
    pub ctx: u64,
    pub tag: u32,
    pub len: usize,
    /// A synchronous send's id, to acknowledge once a receive matches it.
    pub sync: Option<u64>,
}

/// Where an incoming ring payload goes.
pub enum Target {
    /// Straight into a posted receive's buffer.
    Posted {
        t: Ticket,
        src: u32,
        tag: u32,
        ptr: *mut u8,
        cap: usize,
    },
    /// Into the unexpected-message queue.
    Unexpected { id: u64 },
    /// Nowhere: the receive it was for was cancelled (its caller got an error and may have freed
    /// the buffer), but the bytes must still be consumed to keep the ring in step.
    Discard,
}

/// A posted receive's handle: its request id (unique in the process) and its entry in the
/// matcher's slab, where its completion is written in place (no table insert or lookup by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub req: u64,
    slot: u32,
}

/// Where a posted receive stands.
enum State {
    /// The entry is unused.
    Free,
    Waiting,
    Done(Status, Option<Error>),
}

/// A slab entry: `req` tells a stale ticket (its receive already taken, the entry reused) from
/// the current one.
struct Entry {
    req: u64,
    state: State,
}

struct Posted {
    t: Ticket,
    ctx: u64,
    src: Option<u32>,
    tag: Option<u32>,
    ptr: *mut u8,
    cap: usize,
}

struct Unexpected {
    id: u64,
    ctx: u64,
    src: u32,
    tag: u32,
    len: usize,
    data: Vec<u8>,
    complete: bool,
    // A receive matched this message while its payload was still arriving.
    claimed: Option<(Ticket, *mut u8, usize)>,
    // A matched probe (MPI_Mprobe) took it: only a receive of it by id (MPI_Mrecv) gets it.
    reserved: bool,
    // A synchronous send's id, acknowledged when a receive or matched probe takes it.
    sync: Option<u64>,
}

impl Unexpected {
    /// True if receives and probes may still match it.
    #[inline]
    fn open(&self) -> bool {
        self.claimed.is_none() && !self.reserved
    }
}

/// The matching state of one engine.
#[derive(Default)]
pub struct Matcher {
    posted: VecDeque<Posted>,
    unexpected: VecDeque<Unexpected>,
    // Receives posted and not yet taken; `free` lists the unused entries.
    slab: Vec<Entry>,
    free: Vec<u32>,
    next_id: u64,
    // How many posted receives take each source (any-source ones counted apart), and how many
    // unexpected messages each source has queued: the engine asks both for every message it
    // reads, and a count answers in O(1) where a queue scan would not.
    posted_from: Counts,
    unexpected_from: Counts,
    /// Synchronous sends matched since the engine last looked: (source, send id), each to be
    /// acknowledged to its sender.
    pub acks: Vec<(u32, u64)>,
}

/// Per-source counts of queue entries; `any` counts the entries for any source.
#[derive(Default)]
struct Counts {
    by_src: Vec<u32>,
    any: u32,
}

impl Counts {
    #[inline]
    fn add(&mut self, src: Option<u32>) {
        match src {
            None => self.any += 1,
            Some(s) => {
                let s = s as usize;
                if s >= self.by_src.len() {
                    self.by_src.resize(s + 1, 0);
                }
                self.by_src[s] += 1;
            }
        }
    }

    #[inline]
    fn remove(&mut self, src: Option<u32>) {
        let n = match src {
            None => &mut self.any,
            Some(s) => match self.by_src.get_mut(s as usize) {
                Some(n) => n,
                None => return,
            },
        };
        *n = n.saturating_sub(1);
    }

    /// Entries for `src` itself.
    #[inline]
    fn of(&self, src: u32) -> u32 {
        self.by_src.get(src as usize).copied().unwrap_or(0)
    }
}

/// Removes entry `i` of `q`. Matches are nearly always at the front, where `pop_front` costs a
/// few instructions and `remove` its general shifting code.
#[inline]
fn take_at<T>(q: &mut VecDeque<T>, i: usize) -> Option<T> {
    if i == 0 {
        q.pop_front()
    } else {
        q.remove(i)
    }
}

/// True if a receive on context `ctx` for `src`/`tag` (`None`: any) takes a message from `s` with
/// tag `t` on context `c`: communicators never share messages, whatever their ranks and tags.
#[inline]
fn matches(ctx: u64, src: Option<u32>, tag: Option<u32>, c: u64, s: u32, t: u32) -> bool {
    ctx == c && src.is_none_or(|x| x == s) && tag.is_none_or(|x| x == t)
}

/// Bytes of a message read per step into the unexpected queue.
const UNEXPECTED_STEP: usize = 256 << 10;

impl Matcher {
    /// The entry of a receive not yet taken.
    #[inline]
    fn entry(&mut self, t: Ticket) -> Option<&mut Entry> {
        self.slab
            .get_mut(t.slot as usize)
            .filter(|e| e.req == t.req && !matches!(e.state, State::Free))
    }

    #[inline]
    fn finish(&mut self, t: Ticket, src: u32, tag: u32, sent: usize, cap: usize) {
        let bytes = sent.min(cap);
        let err = (sent > cap).then_some(Error::Truncate {
            incoming: sent,
            capacity: cap,
        });
        if let Some(e) = self.entry(t) {
            e.state = State::Done(
                Status {
                    source: src,
                    tag,
                    bytes,
                    sent,
                },
                err,
            );
        }
    }

    /// Posts receive `req` (an id unique in the process) of at most `cap` bytes into `ptr`.
    /// Returns its ticket, by which it is waited for and taken.
    ///
    /// # Safety
    /// `ptr..ptr+cap` must stay writable, and not be accessed otherwise, until the request completes.
    pub unsafe fn post(
        &mut self,
        req: u64,
        ctx: u64,
        src: Option<u32>,
        tag: Option<u32>,
        ptr: *mut u8,
        cap: usize,
    ) -> Ticket {
        let t = self.new_entry(req);
        if let Some(i) = self
            .unexpected
            .iter()
            .position(|u| u.open() && matches(ctx, src, tag, u.ctx, u.src, u.tag))
        {
            self.matched(i);
            if self.unexpected[i].complete {
                let u = self.take_unexpected(i).expect("index found");
                let n = u.len.min(cap);
                // SAFETY: the caller guarantees `ptr` has `cap` writable bytes; n <= cap and
                // n <= data.len() (a complete message holds len bytes).
                unsafe { std::ptr::copy_nonoverlapping(u.data.as_ptr(), ptr, n) };
                self.finish(t, u.src, u.tag, u.len, cap);
            } else {
                self.unexpected[i].claimed = Some((t, ptr, cap));
            }
            return t;
        }
        self.posted_from.add(src);
        self.posted.push_back(Posted {
            t,
            ctx,
            src,
            tag,
            ptr,
            cap,
        });
        t
    }

    /// A slab entry for receive `req`, waiting.
    #[inline]
    fn new_entry(&mut self, req: u64) -> Ticket {
        let entry = Entry {
            req,
            state: State::Waiting,
        };
        let slot = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = entry;
                i
            }
            None => {
                // More receives outstanding at once than u32 can count cannot fit in memory.
                let i = u32::try_from(self.slab.len()).expect("fewer than 2^32 receives");
                self.slab.push(entry);
                i
            }
        };
        Ticket { req, slot }
    }

    /// Reserves the first queued message on context `ctx` matching `src`/`tag` for a later
    /// [`Matcher::post_reserved`] (MPI_Mprobe): no other receive or probe sees it any more.
    /// Returns its id and status.
    pub fn reserve(
        &mut self,
        ctx: u64,
        src: Option<u32>,
        tag: Option<u32>,
    ) -> Option<(u64, Status)> {
        let i = self
            .unexpected
            .iter()
            .position(|u| u.open() && matches(ctx, src, tag, u.ctx, u.src, u.tag))?;
        // A matched probe matches the message (MPI): its synchronous sender may go on.
        self.matched(i);
        let u = &mut self.unexpected[i];
        u.reserved = true;
        Some((
            u.id,
            Status {
                source: u.src,
                tag: u.tag,
                bytes: u.len,
                sent: u.len,
            },
        ))
    }

    /// Posts receive `req` of the message reserved as `id` (MPI_Mrecv); `None` if there is no
    /// such reserved message (already received).
    ///
    /// # Safety
    /// As for [`Matcher::post`].
    pub unsafe fn post_reserved(
        &mut self,
        req: u64,
        id: u64,
        ptr: *mut u8,
        cap: usize,
    ) -> Option<Ticket> {
        let i = self
            .unexpected
            .iter()
            .position(|u| u.id == id && u.reserved && u.claimed.is_none())?;
        let t = self.new_entry(req);
        if self.unexpected[i].complete {
            let u = self.take_unexpected(i).expect("index found");
            let n = u.len.min(cap);
            // SAFETY: the caller guarantees `ptr` has `cap` writable bytes; n <= cap and
            // n <= data.len() (a complete message holds len bytes).
            unsafe { std::ptr::copy_nonoverlapping(u.data.as_ptr(), ptr, n) };
            self.finish(t, u.src, u.tag, u.len, cap);
        } else {
            self.unexpected[i].claimed = Some((t, ptr, cap));
        }
        Some(t)
    }

    /// Unexpected message `i` is matched now: acknowledge it if it is a synchronous send.
    #[inline]
    fn matched(&mut self, i: usize) {
        let u = &mut self.unexpected[i];
        let (src, sync) = (u.src, u.sync.take());
        self.ack(src, sync);
    }

    /// A message from `src` is matched: if it is a synchronous send (`sync`: its id), its sender
    /// is owed an acknowledgement.
    #[inline]
    fn ack(&mut self, src: u32, sync: Option<u64>) {
        if let Some(id) = sync {
            self.acks.push((src, id));
        }
    }

    /// Removes posted receive `i`.
    #[inline]
    fn take_posted(&mut self, i: usize) -> Option<Posted> {
        let p = take_at(&mut self.posted, i)?;
        self.posted_from.remove(p.src);
        Some(p)
    }

    #[inline]
    fn push_unexpected(&mut self, u: Unexpected) {
        self.unexpected_from.add(Some(u.src));
        self.unexpected.push_back(u);
    }

    /// Removes unexpected message `i`.
    #[inline]
    fn take_unexpected(&mut self, i: usize) -> Option<Unexpected> {
        let u = take_at(&mut self.unexpected, i)?;
        self.unexpected_from.remove(Some(u.src));
        Some(u)
    }

    /// A ring message was announced: returns where its payload goes.
    pub fn arrive(&mut self, m: Incoming) -> Target {
        if let Some(i) = self
            .posted
            .iter()
            .position(|p| matches(p.ctx, p.src, p.tag, m.ctx, m.src, m.tag))
        {
            let p = self.take_posted(i).expect("index found");
            self.ack(m.src, m.sync);
            return Target::Posted {
                t: p.t,
                src: m.src,
                tag: m.tag,
                ptr: p.ptr,
                cap: p.cap,
            };
        }
        let id = self.next_id;
        self.next_id += 1;
        // The length is untrusted: the buffer grows with what actually arrives.
        self.push_unexpected(Unexpected {
            id,
            ctx: m.ctx,
            src: m.src,
            tag: m.tag,
            len: m.len,
            data: Vec::new(),
            complete: false,
            claimed: None,
            reserved: false,
            sync: m.sync,
        });
        Target::Unexpected { id }
    }

    /// A whole message is here (a send to self; `sync`: a synchronous one's id).
    pub fn deliver_local(&mut self, src: u32, ctx: u64, tag: u32, data: &[u8], sync: Option<u64>) {
        let r: Result<(), std::convert::Infallible> =
            self.deliver_with(src, ctx, tag, data.len(), sync, |d| {
                d.copy_from_slice(data);
                Ok(())
            });
        let Ok(()) = r;
    }

    /// A whole small message of `len` bytes is here; `fill` writes it into the slice it is given
    /// (exactly `len` bytes). That slice is the matching posted receive's buffer when it fits, so
    /// the common small message goes from the mailbox into place and completes there; otherwise a
    /// heap copy (a truncated receive, or no receive yet). If `fill` fails, nothing is matched.
    #[inline]
    pub fn deliver_with<E>(
        &mut self,
        src: u32,
        ctx: u64,
        tag: u32,
        len: usize,
        sync: Option<u64>,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let found = self
            .posted
            .iter()
            .position(|p| matches(p.ctx, p.src, p.tag, ctx, src, tag));
        if let Some(i) = found {
            let p = &self.posted[i];
            let (t, ptr, cap) = (p.t, p.ptr, p.cap);
            if len <= cap {
                // SAFETY: `post`'s caller guarantees `cap` writable bytes at `ptr`; len <= cap.
                fill(unsafe { std::slice::from_raw_parts_mut(ptr, len) })?;
            } else {
                let mut data = vec![0; len];
                fill(&mut data)?;
                // SAFETY: as above; cap < len = data.len().
                unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), ptr, cap) };
            }
            self.take_posted(i);
            self.finish(t, src, tag, len, cap);
            self.ack(src, sync);
            return Ok(());
        }
        let mut data = vec![0; len];
        fill(&mut data)?;
        let id = self.next_id;
        self.next_id += 1;
        self.push_unexpected(Unexpected {
            id,
            ctx,
            src,
            tag,
            len,
            data,
            complete: true,
            claimed: None,
            reserved: false,
            sync,
        });
        Ok(())
    }

    /// Reads more of a payload into its target with `read`, at most `avail` bytes (what the ring
    /// holds now). Returns bytes consumed, or `read`'s error.
    pub fn fill<E>(
        &mut self,
        target: &mut Target,
        done: usize,
        len: usize,
        avail: usize,
        mut read: impl FnMut(&mut [u8]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        match target {
            Target::Posted { ptr, cap, .. } => {
                if done < *cap {
                    let n = (len.min(*cap) - done).min(avail);
                    // SAFETY: `post`'s caller guarantees `cap` writable bytes at `ptr`, and
                    // done + n <= cap.
                    let dst = unsafe { std::slice::from_raw_parts_mut(ptr.add(done), n) };
                    read(dst)
                } else {
                    // Truncated: consume and drop the rest.
                    let mut scratch = [0u8; 4096];
                    let n = (len - done).min(scratch.len()).min(avail);
                    read(&mut scratch[..n])
                }
            }
            Target::Discard => {
                let mut scratch = [0u8; 4096];
                let n = (len - done).min(scratch.len()).min(avail);
                read(&mut scratch[..n])
            }
            Target::Unexpected { id } => {
                // Streams complete in arrival order, so the one being filled is near the back of
                // the queue: search from there (O(1) in practice, not O(queue length)).
                let Some(u) = self.unexpected.iter_mut().rev().find(|u| u.id == *id) else {
                    return Ok(0);
                };
                // Grow only by what is there to read: the announced length is untrusted, and
                // zero-filling space that stays empty would cost every poll.
                let step = (len - done).min(UNEXPECTED_STEP).min(avail);
                let at = u.data.len();
                u.data.resize(at + step, 0);
                let n = read(&mut u.data[at..]);
                let got = *n.as_ref().unwrap_or(&0);
                u.data.truncate(at + got);
                n
            }
        }
    }

    /// True if some posted receive could take a message from `src` (the source itself or any).
    /// While none can, the engine leaves unmatched ring payloads from `src` in the ring instead of
    /// buffering them (see `Engine::progress_rx_streams`).
    #[inline]
    pub fn wants_from(&self, src: u32) -> bool {
        self.posted_from.any > 0 || self.posted_from.of(src) > 0
    }

    /// True if a message from `src` would be matched by a receive posted now and nothing else:
    /// no posted receive could take it, and no message from `src` waits in the unexpected queue.
    #[inline]
    pub fn quiet_for(&self, src: u32) -> bool {
        !self.wants_from(src) && self.quiet_for_unexpected(src)
    }

    /// True if no message from `src` waits in the unexpected queue.
    #[inline]
    pub fn quiet_for_unexpected(&self, src: u32) -> bool {
        self.unexpected_from.of(src) == 0
    }

    /// If the unexpected message `target` streams into has been claimed by a receive, moves what
    /// arrived so far into that receive's buffer and turns `target` into the receive, so the rest
    /// of the payload goes straight there (one copy instead of two). Returns true if it did.
    pub fn bind(&mut self, target: &mut Target) -> bool {
        let Target::Unexpected { id } = *target else {
            return false;
        };
        let Some(i) = self
            .unexpected
            .iter()
            .position(|u| u.id == id && u.claimed.is_some())
        else {
            return false;
        };
        let u = self.take_unexpected(i).expect("index found");
        let (t, ptr, cap) = u.claimed.expect("claimed");
        let n = u.data.len().min(cap);
        // SAFETY: as in `post`: the claiming receive's buffer has `cap` writable bytes; n <= cap.
        unsafe { std::ptr::copy_nonoverlapping(u.data.as_ptr(), ptr, n) };
        *target = Target::Posted {
            t,
            src: u.src,
            tag: u.tag,
            ptr,
            cap,
        };
        true
    }

    /// A ring payload has fully arrived.
    pub fn complete(&mut self, target: Target, len: usize) {
        match target {
            Target::Posted {
                t, src, tag, cap, ..
            } => self.finish(t, src, tag, len, cap),
            Target::Discard => {}
            Target::Unexpected { id } => {
                let Some(i) = self.unexpected.iter().rposition(|u| u.id == id) else {
                    return;
                };
                self.unexpected[i].complete = true;
                if let Some((t, ptr, cap)) = self.unexpected[i].claimed {
                    let u = self.take_unexpected(i).expect("index found");
                    let n = u.len.min(cap).min(u.data.len());
                    // SAFETY: as in `post`: the claiming receive's buffer has `cap` bytes.
                    unsafe { std::ptr::copy_nonoverlapping(u.data.as_ptr(), ptr, n) };
                    self.finish(t, u.src, u.tag, u.len, cap);
                }
            }
        }
    }

    /// Takes the completion of receive `t`, if it completed; its entry is then free for reuse.
    #[inline]
    pub fn take(&mut self, t: Ticket) -> Option<(Status, Option<Error>)> {
        let e = self.entry(t)?;
        match std::mem::replace(&mut e.state, State::Free) {
            State::Done(st, err) => {
                self.free.push(t.slot);
                Some((st, err))
            }
            waiting => {
                e.state = waiting;
                None
            }
        }
    }

    /// True if receive `t` is complete.
    #[inline]
    pub fn is_done(&self, t: Ticket) -> bool {
        self.slab
            .get(t.slot as usize)
            .is_some_and(|e| e.req == t.req && matches!(e.state, State::Done(..)))
    }

    /// The first queued message on context `ctx` matching `src`/`tag`, without receiving it
    /// (MPI_Iprobe).
    pub fn probe(&self, ctx: u64, src: Option<u32>, tag: Option<u32>) -> Option<Status> {
        self.unexpected
            .iter()
            .find(|u| u.open() && matches(ctx, src, tag, u.ctx, u.src, u.tag))
            .map(|u| Status {
                source: u.src,
                tag: u.tag,
                bytes: u.len,
                sent: u.len,
            })
    }

    /// Withdraws receive `t` if no message has matched it yet (MPI_Cancel): true if it was
    /// withdrawn, and then it completes with an empty status (the caller knows it cancelled it). A receive already matched,
    /// even one whose payload is still arriving, is not withdrawn: it completes normally, and its
    /// message is never lost.
    pub fn withdraw(&mut self, t: Ticket) -> bool {
        let Some(i) = self.posted.iter().position(|p| p.t == t) else {
            return false;
        };
        self.take_posted(i);
        if let Some(e) = self.entry(t) {
            e.state = State::Done(
                Status {
                    source: 0,
                    tag: 0,
                    bytes: 0,
                    sent: 0,
                },
                None,
            );
        }
        true
    }

    /// Removes a pending receive (used when the job fails under it).
    pub fn fail(&mut self, t: Ticket, err: Error) {
        if let Some(i) = self.posted.iter().position(|p| p.t == t) {
            self.take_posted(i);
        }
        for u in self.unexpected.iter_mut() {
            if u.claimed.is_some_and(|(c, ..)| c == t) {
                u.claimed = None;
            }
        }
        if let Some(e) = self.entry(t) {
            e.state = State::Done(
                Status {
                    source: 0,
                    tag: 0,
                    bytes: 0,
                    sent: 0,
                },
                Some(err),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(m: &mut Matcher, req: u64, buf: &mut [u8]) -> Ticket {
        // SAFETY: every buffer outlives its receive in these tests.
        unsafe { m.post(req, 0, Some(1), Some(7), buf.as_mut_ptr(), buf.len()) }
    }

    #[test]
    fn completions_land_in_the_slab_and_stale_tickets_see_nothing() {
        let mut m = Matcher::default();
        let (mut a, mut b) = ([0u8; 4], [0u8; 4]);
        let ta = post(&mut m, 1, &mut a);
        assert!(!m.is_done(ta));
        assert!(m.take(ta).is_none(), "a waiting receive cannot be taken");
        m.deliver_local(1, 0, 7, b"abc", None);
        let (st, err) = m.take(ta).expect("completed in place");
        assert_eq!((st.bytes, st.sent, err.is_none()), (3, 3, true));
        assert_eq!(&a[..3], b"abc");
        // The entry is reused by the next receive; the old ticket must not see its completion.
        let tb = post(&mut m, 2, &mut b);
        assert_eq!(tb.slot, ta.slot);
        m.deliver_local(1, 0, 7, b"xy", None);
        assert!(!m.is_done(ta));
        assert!(m.take(ta).is_none());
        assert!(m.take(tb).is_some());
        assert!(m.take(tb).is_none(), "taken once");
    }

    #[test]
    fn deliver_with_truncates_queues_and_leaves_state_alone_on_error() {
        let mut m = Matcher::default();
        let mut small = [0u8; 2];
        let t = post(&mut m, 1, &mut small);
        // A failing fill matches nothing.
        let r: Result<(), &str> = m.deliver_with(1, 0, 7, 3, None, |_| Err("bad words"));
        assert!(r.is_err());
        assert!(!m.is_done(t));
        m.deliver_local(1, 0, 7, b"abc", None);
        let (st, err) = m.take(t).expect("done");
        assert_eq!((st.bytes, st.sent), (2, 3));
        assert!(matches!(
            err,
            Some(Error::Truncate {
                incoming: 3,
                capacity: 2
            })
        ));
        assert_eq!(&small, b"ab");
        // No receive: queued, then matched by the next one.
        m.deliver_local(1, 0, 7, b"late", None);
        let mut buf = [0u8; 8];
        let t = post(&mut m, 2, &mut buf);
        assert_eq!(m.take(t).map(|(s, _)| s.bytes), Some(4));
        assert_eq!(&buf[..4], b"late");
    }

    #[test]
    fn a_failed_receive_reports_its_error() {
        let mut m = Matcher::default();
        let mut buf = [0u8; 4];
        let t = post(&mut m, 1, &mut buf);
        m.fail(t, Error::PeerDead(1));
        assert!(!m.wants_from(1), "no longer posted");
        assert!(matches!(m.take(t), Some((_, Some(Error::PeerDead(1))))));
    }

    /// `wants_from` and `quiet_for` answer from counts; every way a receive or a message enters
    /// or leaves a queue must keep them right.
    #[test]
    fn source_counts_follow_the_queues() {
        let mut m = Matcher::default();
        let (mut a, mut b, mut c) = ([0u8; 4], [0u8; 4], [0u8; 4]);
        assert!(!m.wants_from(3) && m.quiet_for(3));
        // SAFETY: every buffer outlives its receive in this test.
        let any = unsafe { m.post(1, 0, None, None, a.as_mut_ptr(), a.len()) };
        assert!(m.wants_from(3) && m.wants_from(0) && !m.quiet_for(3));
        m.deliver_local(3, 0, 9, b"x", None);
        assert!(m.is_done(any) && !m.wants_from(3) && m.quiet_for(3));
        // An unexpected message makes its source not quiet until a receive takes it.
        m.deliver_local(2, 0, 9, b"y", None);
        assert!(!m.quiet_for(2) && m.quiet_for(3) && !m.wants_from(2));
        // SAFETY: as above.
        let t = unsafe { m.post(2, 0, Some(2), None, b.as_mut_ptr(), b.len()) };
        assert!(m.is_done(t) && m.quiet_for(2) && !m.wants_from(2));
        // A ring message announced with no receive, then bound to one; and a failed receive.
        let mut target = m.arrive(Incoming {
            src: 4,
            ctx: 0,
            tag: 1,
            len: 2,
            sync: None,
        });
        assert!(!m.quiet_for(4));
        // SAFETY: as above.
        let claim = unsafe { m.post(3, 0, Some(4), Some(1), c.as_mut_ptr(), c.len()) };
        assert!(m.bind(&mut target) && m.quiet_for(4));
        m.complete(target, 2);
        assert!(m.is_done(claim));
        let mut d = [0u8; 4];
        let f = post(&mut m, 4, &mut d);
        assert!(m.wants_from(1) && !m.wants_from(5));
        m.fail(f, Error::PeerDead(1));
        assert!(!m.wants_from(1) && m.quiet_for(1));
    }

    #[test]
    fn contexts_never_share_messages() {
        let mut m = Matcher::default();
        let mut a = [0u8; 4];
        // SAFETY: `a` outlives its receive.
        let dup = unsafe { m.post(1, 5, Some(1), Some(7), a.as_mut_ptr(), a.len()) };
        // Same source and tag on world (context 0): not the duplicate's receive's.
        m.deliver_local(1, 0, 7, b"world", None);
        assert!(!m.is_done(dup));
        assert!(m.probe(0, Some(1), Some(7)).is_some());
        assert!(m.probe(5, Some(1), Some(7)).is_none());
        m.deliver_local(1, 5, 7, b"dup", None);
        assert_eq!(m.take(dup).map(|(st, _)| st.bytes), Some(3));
        assert_eq!(&a[..3], b"dup");
        // A receive posted on world later takes world's message, queued all along.
        let mut b = [0u8; 8];
        // SAFETY: as above.
        let w = unsafe { m.post(2, 0, None, None, b.as_mut_ptr(), b.len()) };
        assert_eq!(m.take(w).map(|(st, _)| st.bytes), Some(5));
        assert_eq!(&b[..5], b"world");
    }
}
