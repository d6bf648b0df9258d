//! The bookkeeping of single-copy sends from pool memory (RENDEZVOUS, register.rs). The sender
//! names its buffer's pool offset; the receiver copies straight out of it and answers FIN, and
//! FINs come back in order because later sends to that rank queue behind a RENDEZVOUS. When the
//! receive buffer is pool memory too, the receiver answers SHARE (its buffer's offset) first: the
//! sender copies its share into it and answers WROTE, so both CPUs copy at once.

use super::link::Link;
use super::tuning::SPLIT_MIN;
use crate::error::{Error, Result};
use snoo_common::job::JobLayout;
use snoo_common::register::{sender_share, Word};
use snoo_common::Shm;

impl Link {
    /// True while our oldest send to this rank is a RENDEZVOUS waiting for its FIN (the mailbox
    /// from this rank must then be read even if no receive wants anything from it).
    #[inline]
    pub(super) fn awaiting_fin(&self) -> bool {
        self.outgoing
            .front()
            .is_some_and(|o| o.buffer.is_some() && o.envelope_sent)
    }

    /// True while the payload we are reading from this rank is split and its WROTE has not come.
    #[inline]
    pub(super) fn awaiting_wrote(&self) -> bool {
        self.streams.front().is_some_and(|s| s.split.is_some())
    }

    /// Bytes the peer is copying for us right now: our RENDEZVOUS waiting for its FIN, or its
    /// share of a split one we wait for its WROTE of (0 if none).
    pub(super) fn peer_copying(&self) -> usize {
        let ours = match self.outgoing.front() {
            Some(o) if self.awaiting_fin() => o.len,
            _ => 0,
        };
        let theirs = match self.streams.front() {
            Some(st) if self.awaiting_wrote() => sender_share(st.len),
            _ => 0,
        };
        ours.max(theirs)
    }

    /// Takes a FIN word from this rank: our RENDEZVOUS send at the head of the queue is done.
    pub(super) fn take_fin(&mut self, word: u64) -> Result<()> {
        match Word::decode(word) {
            Ok(Word::Fin { id }) if id == self.rdv.fin_expect && self.awaiting_fin() => {
                self.outgoing.pop_front();
                self.rdv.fin_expect = self.rdv.fin_expect.wrapping_add(1);
                Ok(())
            }
            Ok(Word::Fin { id }) => Err(Error::protocol(
                self.rank,
                format!(
                    "FIN {id} with no such rendezvous in flight (expected {})",
                    self.rdv.fin_expect
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
    pub(super) fn take_share(&mut self, word: u64, shm: &Shm, layout: &JobLayout) -> Result<()> {
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
        self.rdv.wrote_owed = Some(self.rdv.fin_expect);
        Ok(())
    }

    /// Takes a WROTE word from this rank: the sender's share of the split RENDEZVOUS we are
    /// reading is in our receive buffer.
    pub(super) fn take_wrote(&mut self, word: u64) -> Result<()> {
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

    /// Pushes the WROTE and FINs owed to this rank, as far as the mailbox has room (the rest go
    /// with the next progress pass).
    pub(super) fn send_fins(&mut self) -> Result<()> {
        if let Some(id) = self.rdv.wrote_owed {
            if !self.push_word(Word::Wrote { id }.encode())? {
                self.flush();
                return Ok(());
            }
            self.rdv.wrote_owed = None;
        }
        while self.rdv.fin_owed > 0 {
            if !self.push_word(
                Word::Fin {
                    id: self.rdv.fin_next,
                }
                .encode(),
            )? {
                break;
            }
            self.rdv.fin_owed -= 1;
            self.rdv.fin_next = self.rdv.fin_next.wrapping_add(1);
        }
        self.flush();
        Ok(())
    }
}
