//! MPI message matching: posted receives, the unexpected-message queue, and completions.
//!
//! Messages are matched in arrival order per source (the mailbox is a FIFO and envelopes always go
//! through it), receives in posting order, so MPI's non-overtaking rule holds. This is the one module
//! that writes into application buffers through raw pointers: the API layers guarantee that a
//! posted buffer stays valid until its request completes.

use crate::error::Error;
use snoo_common::ring::RingError;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes request ids (small, unique, sequential integers) with one multiplication: the default
/// SipHash costs more than the rest of a small message's receive path.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Any source, any tag.
pub const ANY: Option<u32> = None;

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
    pub tag: u32,
    pub len: usize,
}

/// Where an incoming ring payload goes.
pub enum Target {
    /// Straight into a posted receive's buffer.
    Posted {
        req: u64,
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

struct Posted {
    req: u64,
    src: Option<u32>,
    tag: Option<u32>,
    ptr: *mut u8,
    cap: usize,
}

struct Unexpected {
    id: u64,
    src: u32,
    tag: u32,
    len: usize,
    data: Vec<u8>,
    complete: bool,
    // A receive matched this message while its payload was still arriving.
    claimed: Option<(u64, *mut u8, usize)>,
}

/// The matching state of one engine.
#[derive(Default)]
pub struct Matcher {
    posted: VecDeque<Posted>,
    unexpected: VecDeque<Unexpected>,
    done: HashMap<u64, (Status, Option<Error>), BuildHasherDefault<IdHasher>>,
    next_id: u64,
}

fn matches(src: Option<u32>, tag: Option<u32>, s: u32, t: u32) -> bool {
    src.is_none_or(|x| x == s) && tag.is_none_or(|x| x == t)
}

/// Bytes of a message read per step into the unexpected queue.
const UNEXPECTED_STEP: usize = 256 << 10;

impl Matcher {
    fn finish(&mut self, req: u64, src: u32, tag: u32, sent: usize, cap: usize) {
        let bytes = sent.min(cap);
        let err = (sent > cap).then_some(Error::Truncate {
            incoming: sent,
            capacity: cap,
        });
        self.done.insert(
            req,
            (
                Status {
                    source: src,
                    tag,
                    bytes,
                    sent,
                },
                err,
            ),
        );
    }

    /// Posts a receive of at most `cap` bytes into `ptr`.
    ///
    /// # Safety
    /// `ptr..ptr+cap` must stay writable, and not be accessed otherwise, until the request completes.
    pub unsafe fn post(
        &mut self,
        req: u64,
        src: Option<u32>,
        tag: Option<u32>,
        ptr: *mut u8,
        cap: usize,
    ) {
        if let Some(i) = self
            .unexpected
            .iter()
            .position(|u| u.claimed.is_none() && matches(src, tag, u.src, u.tag))
        {
            if self.unexpected[i].complete {
                let u = self.unexpected.remove(i).expect("index found");
                let n = u.len.min(cap);
                // SAFETY: the caller guarantees `ptr` has `cap` writable bytes; n <= cap and
                // n <= data.len() (a complete message holds len bytes).
                unsafe { std::ptr::copy_nonoverlapping(u.data.as_ptr(), ptr, n) };
                self.finish(req, u.src, u.tag, u.len, cap);
            } else {
                self.unexpected[i].claimed = Some((req, ptr, cap));
            }
            return;
        }
        self.posted.push_back(Posted {
            req,
            src,
            tag,
            ptr,
            cap,
        });
    }

    /// A ring message was announced: returns where its payload goes.
    pub fn arrive(&mut self, m: Incoming) -> Target {
        if let Some(i) = self
            .posted
            .iter()
            .position(|p| matches(p.src, p.tag, m.src, m.tag))
        {
            let p = self.posted.remove(i).expect("index found");
            return Target::Posted {
                req: p.req,
                src: m.src,
                tag: m.tag,
                ptr: p.ptr,
                cap: p.cap,
            };
        }
        let id = self.next_id;
        self.next_id += 1;
        // The length is untrusted: the buffer grows with what actually arrives.
        self.unexpected.push_back(Unexpected {
            id,
            src: m.src,
            tag: m.tag,
            len: m.len,
            data: Vec::new(),
            complete: false,
            claimed: None,
        });
        Target::Unexpected { id }
    }

    /// A whole message is here (inline, or a send to self).
    pub fn deliver_local(&mut self, src: u32, tag: u32, data: &[u8]) {
        if let Some(i) = self
            .posted
            .iter()
            .position(|p| matches(p.src, p.tag, src, tag))
        {
            let p = self.posted.remove(i).expect("index found");
            let n = data.len().min(p.cap);
            // SAFETY: `post`'s caller guarantees `p.ptr` has `p.cap` writable bytes.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p.ptr, n) };
            self.finish(p.req, src, tag, data.len(), p.cap);
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.unexpected.push_back(Unexpected {
            id,
            src,
            tag,
            len: data.len(),
            data: data.to_vec(),
            complete: true,
            claimed: None,
        });
    }

    /// Reads more of a ring payload into its target with `read`, at most `avail` bytes (what the
    /// ring holds now). Returns bytes consumed.
    pub fn fill(
        &mut self,
        target: &mut Target,
        done: usize,
        len: usize,
        avail: usize,
        mut read: impl FnMut(&mut [u8]) -> Result<usize, RingError>,
    ) -> Result<usize, RingError> {
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
        self.posted.iter().any(|p| p.src.is_none_or(|s| s == src))
    }

    /// True if a message from `src` would be matched by a receive posted now and nothing else:
    /// no posted receive could take it, and no message from `src` waits in the unexpected queue.
    #[inline]
    pub fn quiet_for(&self, src: u32) -> bool {
        !self.wants_from(src) && !self.unexpected.iter().any(|u| u.src == src)
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
        let u = self.unexpected.remove(i).expect("index found");
        let (req, ptr, cap) = u.claimed.expect("claimed");
        let n = u.data.len().min(cap);
        // SAFETY: as in `post`: the claiming receive's buffer has `cap` writable bytes; n <= cap.
        unsafe { std::ptr::copy_nonoverlapping(u.data.as_ptr(), ptr, n) };
        *target = Target::Posted {
            req,
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
                req, src, tag, cap, ..
            } => self.finish(req, src, tag, len, cap),
            Target::Discard => {}
            Target::Unexpected { id } => {
                let Some(i) = self.unexpected.iter().rposition(|u| u.id == id) else {
                    return;
                };
                self.unexpected[i].complete = true;
                if let Some((req, ptr, cap)) = self.unexpected[i].claimed {
                    let u = self.unexpected.remove(i).expect("index found");
                    let n = u.len.min(cap).min(u.data.len());
                    // SAFETY: as in `post`: the claiming receive's buffer has `cap` bytes.
                    unsafe { std::ptr::copy_nonoverlapping(u.data.as_ptr(), ptr, n) };
                    self.finish(req, u.src, u.tag, u.len, cap);
                }
            }
        }
    }

    /// Takes the completion of receive `req`, if it completed.
    pub fn take(&mut self, req: u64) -> Option<(Status, Option<Error>)> {
        self.done.remove(&req)
    }

    /// True if receive `req` is complete.
    pub fn is_done(&self, req: u64) -> bool {
        self.done.contains_key(&req)
    }

    /// The first queued message matching `src`/`tag`, without receiving it (MPI_Iprobe).
    pub fn probe(&self, src: Option<u32>, tag: Option<u32>) -> Option<Status> {
        self.unexpected
            .iter()
            .find(|u| u.claimed.is_none() && matches(src, tag, u.src, u.tag))
            .map(|u| Status {
                source: u.src,
                tag: u.tag,
                bytes: u.len,
                sent: u.len,
            })
    }

    /// Removes a pending receive (used when the job fails under it).
    pub fn fail(&mut self, req: u64, err: Error) {
        self.posted.retain(|p| p.req != req);
        for u in self.unexpected.iter_mut() {
            if u.claimed.is_some_and(|(r, ..)| r == req) {
                u.claimed = None;
            }
        }
        self.done.insert(
            req,
            (
                Status {
                    source: 0,
                    tag: 0,
                    bytes: 0,
                    sent: 0,
                },
                Some(err),
            ),
        );
    }
}
