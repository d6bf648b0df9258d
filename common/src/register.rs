//! Register words: the 64-bit messages two ranks exchange through a pair's mailbox
//! ([`crate::ring::WordFifo`]).
//!
//! The mailbox carries every small message of the engine: message envelopes, small payloads
//! inline, flow-control credits, rendezvous clear-to-send and control messages. Each slot holds one
//! `u64`, and its **low 4 bits tag the kind** of the word. A mailbox slot is written by another VM,
//! so [`Word::decode`] validates everything (reserved kinds, reserved bits, field ranges) and never
//! panics.
//!
//! # Kinds
//!
//! | kind      | name     | direction          | meaning                                              |
//! |-----------|----------|--------------------|------------------------------------------------------|
//! | `0x0`     | —        | —                  | never valid: a zeroed or never-written slot           |
//! | `0x1`     | ENVELOPE | sender → receiver  | starts a message: tag, path, length (if short)        |
//! | `0x2`     | LENGTH   | sender → receiver  | follows a *long* ENVELOPE: the length (≥ 16 MiB)      |
//! | `0x3`     | DATA     | sender → receiver  | 1 to 7 payload bytes of an INLINE message             |
//! | `0x4`     | CREDIT   | receiver → sender  | flow control: the receiver gives back eager budget    |
//! | `0x5`     | FIN      | receiver → sender  | a RENDEZVOUS payload was copied out: buffer released  |
//! | `0x6`     | CONTROL  | either             | barrier, finalize, abort                              |
//! | `0x7`     | BUFFER   | sender → receiver  | follows a RENDEZVOUS header: where its payload lies   |
//! | `0x8`     | SHARE    | receiver → sender  | RENDEZVOUS into pool memory: copy your share here     |
//! | `0x9`     | WROTE    | sender → receiver  | the sender's share of a RENDEZVOUS payload is written |
//! | `0xA`     | CONTEXT  | sender → receiver  | the next message's communicator (none: COMM_WORLD)    |
//! | `0xB`     | SYNC     | sender → receiver  | the next message is a synchronous send: ACK when matched |
//! | `0xC`     | ACK      | receiver → sender  | the synchronous send with this id was matched         |
//! | `0xD-0xF` | reserved | —                  | decode as [`WordError::ReservedKind`]                 |
//!
//! # Bit layouts
//!
//! Bit 0 is the least significant bit; the word is stored little-endian, so byte *n* of a slot holds
//! bits `8n..8n+7`. Fields marked `0` are reserved and must be zero: a word with a reserved bit set
//! is rejected, so future versions can give them a meaning. Most fields are byte aligned so that a
//! hex dump of a mailbox is readable: the last hex digit is the kind. **Bit 7 is zero in every
//! kind**: in a mailbox slot it is the ring's lap bit ([`crate::ring::LAP_BIT`]), set by the
//! producer on odd laps and cleared before the word is decoded.
//!
//! ```text
//! ENVELOPE (0x1)
//!   63            40 39 38                       8  7  6  5 4  3  0
//!  +----------------+--+--------------------------+--+--+----+-----+
//!  | short length   | 0| tag (31 bits)            | 0| L|path| 0x1 |
//!  +----------------+--+--------------------------+--+--+----+-----+
//!   path: 0 INLINE      payload follows as DATA words in this mailbox
//!         1 RING        payload streams through the pair's data ring (eager, pipelined)
//!         2 RENDEZVOUS  single copy: the payload stays in the sender's buffer in the pool
//!                       (a BUFFER word after the header says where); the receiver copies it
//!                       out once a receive matches, then answers FIN
//!         3 reserved
//!   L = 0: the length is the 24-bit short length (0 ..= 16 MiB - 1)
//!   L = 1: "long": the short length must be 0 and a LENGTH word follows immediately
//!   tag: the MPI tag, a non-negative i32 (bits 8..=39 read as a u32 are the tag; bit 39 is its
//!        sign and must be 0)
//!
//! ENVELOPE (0x1) of an INLINE message (path 0): the short-length field holds the length and the
//! payload's first two bytes
//!   63      56 55      48 47      40 39 38                       8  7  6  5 4  3  0
//!  +----------+----------+----------+--+--------------------------+--+--+----+-----+
//!  | byte 1   | byte 0   | length   | 0| tag (31 bits)            | 0| 0| 0  | 0x1 |
//!  +----------+----------+----------+--+--------------------------+--+--+----+-----+
//!   length: 0..=255 (L must be 0); payload bytes 0 and 1 ride in the envelope, bytes 2.. follow
//!   as DATA words; byte fields at and beyond the length must be 0
//!
//! LENGTH (0x2)
//!   63            40 39                          8  7   4  3  0
//!  +----------------+-----------------------------+------+-----+
//!  | 0              | length (u32, <= 2^31)       | 0    | 0x2 |
//!  +----------------+-----------------------------+------+-----+
//!   only valid right after a long ENVELOPE, and then the length must be >= 2^24
//!   (a shorter one would have fitted in the envelope: one encoding per header)
//!
//! DATA (0x3)
//!   63                                           8  7   4  3  0
//!  +----------------------------------------------+------+-----+
//!  | b6 | b5 | b4 | b3 | b2 | b1 | b0             |count | 0x3 |
//!  +----------------------------------------------+------+-----+
//!   count: payload bytes in this word, 1..=7; byte i of the chunk is byte i+1 of the word
//!   bytes at and beyond count must be 0
//!   an INLINE payload of n bytes is its envelope plus ceil((n - 2) / 7) DATA words (none for
//!   n <= 2), all full (count 7) except the last
//!
//! CREDIT (0x4)
//!   63            40 39                          8  7   4  3  0
//!  +----------------+-----------------------------+------+-----+
//!  | 0              | amount (u32)                | unit | 0x4 |
//!  +----------------+-----------------------------+------+-----+
//!   unit: 0 BYTES     the receiver freed `amount` bytes of its eager (unexpected-message) budget
//!         1 MESSAGES  the receiver freed `amount` eager message slots
//!         2..=15 reserved
//!
//! FIN (0x5)
//!   63            40 39                          8  7   4  3  0
//!  +----------------+-----------------------------+------+-----+
//!  | 0              | rendezvous id (u32)         | 0    | 0x5 |
//!  +----------------+-----------------------------+------+-----+
//!   id: which RENDEZVOUS message's payload the receiver has finished reading (or dropped): its
//!   buffer is the sender's again. Ids are implicit: the i-th RENDEZVOUS envelope a sender puts
//!   in a mailbox has id i (counting from 0, wrapping at 2^32). The mailbox is an ordered,
//!   lossless FIFO and payloads are read in order, so both sides count the same way and the
//!   envelope needs no id field.
//!
//! CONTROL (0x6)
//!   63                              16 15        8  7   4  3  0
//!  +----------------------------------+-----------+------+-----+
//!  | argument (48 bits)               | op        | 0    | 0x6 |
//!  +----------------------------------+-----------+------+-----+
//!   op 1 BARRIER   argument: barrier generation, modulo 2^48
//!   op 2 FINALIZE  argument: 0
//!   op 3 ABORT     argument: the MPI error code, an i32 stored as its u32 bit pattern in bits
//!                  16..=47; bits 48..=63 must be 0
//!   op 0 and 4..=255 reserved
//!
//! BUFFER (0x7)
//!   63                                           8  7   4  3  0
//!  +----------------------------------------------+------+-----+
//!  | pool offset (56 bits)                        | 0    | 0x7 |
//!  +----------------------------------------------+------+-----+
//!   only valid right after a RENDEZVOUS header (after its LENGTH word, if any): the payload is
//!   the header's length in bytes from this offset of the pool. The receiver checks that the
//!   whole range lies in the sender's own heap (job.rs) before reading a byte of it.
//!
//! SHARE (0x8)
//!   63                                           8  7   4  3  0
//!  +----------------------------------------------+------+-----+
//!  | pool offset (56 bits)                        | 0    | 0x8 |
//!  +----------------------------------------------+------+-----+
//!   the answer to the sender's RENDEZVOUS in flight (at most one per direction of a pair) when
//!   the matching receive buffer lies in the receiver's own heap: the receive buffer starts at
//!   this offset. The two sides then copy at once, each on its own CPU: the sender the first
//!   sender_share(len) bytes of the payload (see [`sender_share`]), the receiver the rest. The
//!   sender checks that its share's range lies in the receiver's heap before writing, writes,
//!   and answers WROTE; the receiver answers FIN once it has read its part, as before, and
//!   completes the receive only on WROTE.
//!
//! WROTE (0x9)
//!   63            40 39                          8  7   4  3  0
//!  +----------------+-----------------------------+------+-----+
//!  | 0              | rendezvous id (u32)         | 0    | 0x9 |
//!  +----------------+-----------------------------+------+-----+
//!   id: as for FIN, the RENDEZVOUS whose SHARE the sender has written. Only valid while the
//!   receiver waits for it.
//!
//! CONTEXT (0xA)
//!   63                                           8  7   4  3  0
//!  +----------------------------------------------+------+-----+
//!  | context id (56 bits, not 0)                  | 0    | 0xA |
//!  +----------------------------------------------+------+-----+
//!   the communicator of the message whose ENVELOPE follows at once (in the same push). A message
//!   without one is COMM_WORLD's (context 0), so world traffic costs no extra word; a context of
//!   0 is therefore never sent (one encoding per message).
//!
//! SYNC (0xB), ACK (0xC)
//!   63                                           8  7   4  3  0
//!  +----------------------------------------------+------+-----+
//!  | send id (56 bits)                            | 0    | kind|
//!  +----------------------------------------------+------+-----+
//!   SYNC: the message whose ENVELOPE follows (after its CONTEXT word, if any, in the same push)
//!   is a synchronous send (MPI_Ssend); the id is the sender's, opaque to the receiver. ACK: the
//!   receiver matched that message to a receive (or a matched probe), echoing the id; only then
//!   does the synchronous send complete. An ACK for an id the sender does not wait for (a late
//!   one, after the sender gave up on the send) is ignored: it changes nothing.
//! ```
//!
//! # Why these choices
//!
//! * **Kind 0 is invalid** so that a zeroed slot (fresh pool, or a slot a buggy peer never wrote)
//!   cannot be mistaken for a message.
//! * **Short messages stay compact.** The envelope holds tag and a 24-bit length in one word. An
//!   INLINE length needs only 8 of those bits, so the other 16 carry the first two payload bytes:
//!   a message of up to 2 bytes is a single word, an 8-byte one costs 2 words (envelope with 2
//!   bytes + one DATA word with 6) and a 64-byte one 10. Every word keeps its kind nibble and bit 7
//!   clear (the lap bit), so a DATA word cannot carry more than 7 bytes and a count. Only messages
//!   of 16 MiB or more pay for a LENGTH word, which is noise next to copying 16 MiB. Lengths up to
//!   2^31 bytes are expressible (MPI counts are `int`).
//! * **Three paths.** INLINE suits payloads that fit the mailbox; RING streams through the data
//!   ring as soon as it is sent (eager, two copies, the receiver may have to buffer it if
//!   unmatched); RENDEZVOUS, for large sends from pool memory (`SNOO_MPI_Alloc_mem`), leaves the
//!   payload where it is and lets the receiver make the only copy, at the price of the FIN answer
//!   before the sender may reuse its buffer. When the receive buffer is pool memory too, SHARE
//!   and WROTE let both CPUs copy half each (two copies in parallel run nearly twice as fast as
//!   one here; one more word each way is noise next to a payload of 256 KiB or more).
//! * **No source rank in the word**: a mailbox belongs to one ordered pair of ranks, so the source
//!   is implicit. **The communicator rides in a CONTEXT word** before the envelope, only for
//!   communicators other than COMM_WORLD: the envelope has no bits to spare (the tag keeps its 31
//!   bits), and the common case pays nothing.

use thiserror::Error;

/// Kind codes: the low 4 bits of every word.
pub mod kind {
    /// Mask of the kind bits.
    pub const MASK: u64 = 0xF;
    /// Never valid: a zeroed or never-written slot.
    pub const INVALID: u8 = 0x0;
    /// Starts a message.
    pub const ENVELOPE: u8 = 0x1;
    /// The length of a long envelope.
    pub const LENGTH: u8 = 0x2;
    /// 1 to 7 inline payload bytes.
    pub const DATA: u8 = 0x3;
    /// Flow-control credit, receiver to sender.
    pub const CREDIT: u8 = 0x4;
    /// A rendezvous payload was read: its buffer is released, receiver to sender.
    pub const FIN: u8 = 0x5;
    /// Barrier, finalize, abort.
    pub const CONTROL: u8 = 0x6;
    /// Where a rendezvous payload lies in the pool.
    pub const BUFFER: u8 = 0x7;
    /// Where the sender copies its share of a rendezvous payload, receiver to sender.
    pub const SHARE: u8 = 0x8;
    /// The sender's share of a rendezvous payload is written, sender to receiver.
    pub const WROTE: u8 = 0x9;
    /// The communicator of the next message, sender to receiver.
    pub const CONTEXT: u8 = 0xA;
    /// The next message is a synchronous send, sender to receiver.
    pub const SYNC: u8 = 0xB;
    /// A synchronous send was matched, receiver to sender.
    pub const ACK: u8 = 0xC;

    /// Human-readable name of a kind code, for logs and errors.
    pub fn name(kind: u8) -> &'static str {
        match kind {
            INVALID => "INVALID",
            ENVELOPE => "ENVELOPE",
            LENGTH => "LENGTH",
            DATA => "DATA",
            CREDIT => "CREDIT",
            FIN => "FIN",
            CONTROL => "CONTROL",
            BUFFER => "BUFFER",
            SHARE => "SHARE",
            WROTE => "WROTE",
            CONTEXT => "CONTEXT",
            SYNC => "SYNC",
            ACK => "ACK",
            _ => "RESERVED",
        }
    }
}

/// Version of this format. The rank that forms a job records it in the job header (job.rs) and
/// the others check it: ranks of different builds would misread each other's words. 1: INLINE
/// payloads in DATA words only; 2: an INLINE envelope carries the first two payload bytes; 3: a
/// CONTEXT word names the communicator of a message not on COMM_WORLD; 4: SYNC and ACK words make
/// synchronous sends wait for their match.
pub const WIRE_VERSION: u32 = 4;
/// Lengths below this fit in the envelope's 24-bit short-length field.
pub const SHORT_LEN_LIMIT: u32 = 1 << 24;
/// Longest expressible message, in bytes.
pub const MAX_LEN: u32 = 1 << 31;
/// Largest MPI tag (tags are non-negative `i32`s).
pub const MAX_TAG: u32 = i32::MAX as u32;
/// Payload bytes carried by one DATA word.
pub const DATA_BYTES: usize = 7;
/// INLINE messages are shorter than this: their envelope has 8 bits of length.
pub const INLINE_LEN_LIMIT: u32 = 1 << 8;
/// Payload bytes an INLINE envelope carries (the first ones).
pub const HEAD_BYTES: usize = 2;
/// Largest BARRIER generation (48 bits).
pub const MAX_BARRIER_GENERATION: u64 = (1 << 48) - 1;

// Field positions.
const ENV_PATH_SHIFT: u32 = 4;
const ENV_LONG_BIT: u64 = 1 << 6;
const ENV_TAG_SHIFT: u32 = 8;
const ENV_LEN_SHIFT: u32 = 40;
const ENV_HEAD_SHIFT: u32 = 48; // INLINE envelopes: payload bytes 0 and 1
const U32_SHIFT: u32 = 8; // LENGTH, CREDIT amount, FIN id
const OFFSET_SHIFT: u32 = 8; // BUFFER and SHARE offset
/// Largest pool offset a BUFFER or SHARE word can carry.
pub const MAX_OFFSET: u64 = (1 << 56) - 1;
/// Largest communicator context id a CONTEXT word can carry (0 is COMM_WORLD's, never sent).
pub const MAX_CONTEXT: u64 = (1 << 56) - 1;
/// Largest send id a SYNC or ACK word can carry.
pub const MAX_SYNC_ID: u64 = (1 << 56) - 1;
const NIBBLE_SHIFT: u32 = 4; // DATA count, CREDIT unit
const CTRL_OP_SHIFT: u32 = 8;
const CTRL_ARG_SHIFT: u32 = 16;

/// Bits that may be set in each kind's words (kind bits included).
const ENVELOPE_BITS: u64 = 0xFFFF_FF7F_FFFF_FF7F; // all but bit 7 and bit 39
const U32_FIELD_BITS: u64 = 0x0000_00FF_FFFF_FF00; // bits 8..=39
const NIBBLE_BITS: u64 = 0xF0; // bits 4..=7

/// Why a word (or a sequence of words) was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum WordError {
    /// Kind 0: an empty slot, never a message.
    #[error("word {word:#018x} has kind 0, which is never valid (an empty slot)")]
    ZeroKind {
        /// The word that failed to decode.
        word: u64,
    },
    /// One of the reserved kinds 0xA..=0xF.
    #[error("word {word:#018x} has reserved kind {kind:#x}")]
    ReservedKind {
        /// The word that failed to decode.
        word: u64,
        /// Its kind code, 0xA to 0xF.
        kind: u8,
    },
    /// A bit that must be zero is set.
    #[error("{} word {word:#018x} has reserved bits set", kind::name((word & kind::MASK) as u8))]
    ReservedBits {
        /// The word that failed to decode.
        word: u64,
    },
    /// A field holds a value outside its range (path 3, DATA count 0, unknown control op...).
    #[error("{} word {word:#018x}: invalid {field} {value}", kind::name((word & kind::MASK) as u8))]
    BadField {
        /// The word that failed to decode, or 0 for a hand-built word ([`Word::validate`],
        /// [`Word::data`]).
        word: u64,
        /// The field's name (`"path"`, `"count"`, `"unit"`...).
        field: &'static str,
        /// The out-of-range value the field held.
        value: u64,
    },
    /// A tag that is not a non-negative `i32`.
    #[error("tag {0} is not a non-negative i32")]
    TagOutOfRange(i64),
    /// A length above 2^31.
    #[error("length {0} exceeds the maximum of 2^31 bytes")]
    LengthOutOfRange(u64),
    /// An INLINE message of 256 bytes or more (its envelope has 8 bits of length).
    #[error("an INLINE message of {0} bytes: INLINE lengths are below 256")]
    InlineTooLong(u64),
    /// DATA words that do not add up to the length their envelope announced.
    #[error("DATA words do not add up to the {announced} bytes their envelope announced")]
    LengthMismatch {
        /// The payload length the envelope announced, in bytes.
        announced: usize,
    },
    /// A valid word of the wrong kind at this point of a message.
    #[error("expected a {expected} word, got {word:#018x}")]
    UnexpectedKind {
        /// The kind of word the message called for here (`"LENGTH"`, `"DATA"`...).
        expected: &'static str,
        /// The word that came instead.
        word: u64,
    },
    /// A second encoding of something that has a canonical one (a short DATA word before the last,
    /// a LENGTH word holding a length that fits in the envelope).
    #[error("non-canonical {what} in word {word:#018x}")]
    NonCanonical {
        /// The offending word, or 0 for a hand-built word checked by [`Word::validate`].
        word: u64,
        /// What has another, canonical encoding.
        what: &'static str,
    },
    /// The payload does not fit the destination buffer.
    #[error("payload overflows the {capacity}-byte buffer")]
    Overflow {
        /// Size of the destination buffer, in bytes.
        capacity: usize,
    },
}

/// How a message's payload travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    /// The payload follows as DATA words in the same mailbox.
    Inline,
    /// The payload streams through the pair's data ring right away (eager).
    Ring,
    /// Single copy: the payload stays in the sender's pool buffer (a BUFFER word follows the
    /// header) until the receiver has copied it out and answered FIN.
    Rendezvous,
}

impl Path {
    #[inline]
    fn to_raw(self) -> u64 {
        match self {
            Path::Inline => 0,
            Path::Ring => 1,
            Path::Rendezvous => 2,
        }
    }

    #[inline]
    fn from_raw(raw: u64) -> Option<Path> {
        match raw {
            0 => Some(Path::Inline),
            1 => Some(Path::Ring),
            2 => Some(Path::Rendezvous),
            _ => None,
        }
    }
}

/// The length field of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnvLen {
    /// The length itself, below [`SHORT_LEN_LIMIT`].
    Short(u32),
    /// The length is in the LENGTH word that follows.
    Long,
}

/// What a CREDIT word gives back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CreditUnit {
    /// Bytes of the receiver's eager (unexpected-message) budget.
    Bytes,
    /// Eager message slots.
    Messages,
}

impl CreditUnit {
    fn to_raw(self) -> u64 {
        match self {
            CreditUnit::Bytes => 0,
            CreditUnit::Messages => 1,
        }
    }

    fn from_raw(raw: u64) -> Option<CreditUnit> {
        match raw {
            0 => Some(CreditUnit::Bytes),
            1 => Some(CreditUnit::Messages),
            _ => None,
        }
    }
}

/// A CONTROL word's operation and argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Control {
    /// A barrier arrival; `generation` (at most [`MAX_BARRIER_GENERATION`]) tells barriers apart.
    Barrier {
        /// Which barrier this is: a counter modulo 2^48.
        generation: u64,
    },
    /// The sender called `MPI_Finalize`.
    Finalize,
    /// The sender called `MPI_Abort` with this error code.
    Abort {
        /// The MPI error code given to `MPI_Abort`.
        code: i32,
    },
}

const OP_BARRIER: u64 = 1;
const OP_FINALIZE: u64 = 2;
const OP_ABORT: u64 = 3;

/// One decoded register word.
///
/// Fields have the ranges given in the module documentation. [`Word::decode`] only produces valid
/// words; a hand-built word can be checked with [`Word::validate`] or encoded with
/// [`Word::try_encode`].
///
/// # Example
///
/// ```
/// use snoo_common::register::{kind, CreditUnit, Word, WordError};
///
/// let credit = Word::Credit { unit: CreditUnit::Bytes, amount: 4096 };
/// let bits = credit.encode();
/// // amount in bits 8..=39, unit in bits 4..=7, the kind in the low 4 bits.
/// assert_eq!(bits, 4096 << 8 | 0x4);
/// assert_eq!(bits & kind::MASK, u64::from(kind::CREDIT));
/// // Bit 7 is zero in every kind: in a mailbox slot it is the ring's lap bit.
/// assert_eq!(bits & 1 << 7, 0);
/// assert_eq!(Word::decode(bits), Ok(credit));
///
/// // The kind nibble of every kind, and back.
/// let fin = Word::Fin { id: 9 };
/// assert_eq!(fin.encode() & kind::MASK, u64::from(fin.kind()));
/// assert_eq!(kind::name(fin.kind()), "FIN");
///
/// // A word from another VM is checked, never trusted, and never makes decoding panic.
/// assert_eq!(Word::decode(0), Err(WordError::ZeroKind { word: 0 }));
/// assert_eq!(
///     Word::decode(0xD),
///     Err(WordError::ReservedKind { word: 0xD, kind: 0xD })
/// );
/// assert!(matches!(
///     Word::decode(bits | 1 << 63),
///     Err(WordError::ReservedBits { .. })
/// ));
/// assert!(matches!(
///     Word::decode(u64::from(kind::CREDIT) | 2 << 4),
///     Err(WordError::BadField { field: "unit", .. })
/// ));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Word {
    /// Starts a message. `tag` is at most [`MAX_TAG`]. `head` holds the first payload bytes of
    /// an INLINE message (its length is then below [`INLINE_LEN_LIMIT`], and bytes at and past
    /// the length are 0); it is all 0 for the other paths.
    Envelope {
        /// MPI tag, at most [`MAX_TAG`].
        tag: u32,
        /// How the payload travels.
        path: Path,
        /// The payload length, or [`EnvLen::Long`] if a LENGTH word follows.
        len: EnvLen,
        /// The first payload bytes of an INLINE message; 0 past its length and for other paths.
        head: [u8; HEAD_BYTES],
    },
    /// The length of a long envelope, at most [`MAX_LEN`].
    Length {
        /// Payload length in bytes, at most [`MAX_LEN`].
        len: u32,
    },
    /// `count` (1..=7) payload bytes in `bytes[..count]`; the rest are zero.
    Data {
        /// Bytes of payload in this DATA word (1 to 7).
        count: u8,
        /// The payload bytes, then zero padding.
        bytes: [u8; DATA_BYTES],
    },
    /// Flow-control credit.
    Credit {
        /// What `amount` counts: eager budget bytes or eager message slots.
        unit: CreditUnit,
        /// How many units the receiver freed.
        amount: u32,
    },
    /// The payload of the RENDEZVOUS message with implicit id `id` has been read.
    Fin {
        /// Implicit id of the RENDEZVOUS message (see the module documentation).
        id: u32,
    },
    /// Barrier, finalize, abort.
    Control(Control),
    /// The pool offset of a RENDEZVOUS payload, at most [`MAX_OFFSET`].
    Buffer {
        /// Pool offset where the payload starts.
        offset: u64,
    },
    /// The pool offset of the receive buffer the sender copies its share into, at most
    /// [`MAX_OFFSET`].
    Share {
        /// Pool offset where the receive buffer starts.
        offset: u64,
    },
    /// The sender's share of the RENDEZVOUS message with implicit id `id` is written.
    Wrote {
        /// Implicit id of the RENDEZVOUS message, as for FIN.
        id: u32,
    },
    /// The communicator of the message whose envelope follows: 1 to [`MAX_CONTEXT`].
    Context {
        /// The communicator's context id (COMM_WORLD's, 0, is never sent).
        ctx: u64,
    },
    /// The message whose envelope follows is a synchronous send, to acknowledge when matched.
    Sync {
        /// The sender's id of the send (0 to [`MAX_SYNC_ID`]), echoed in the ACK.
        id: u64,
    },
    /// The synchronous send `id` was matched by a receive.
    Ack {
        /// The id from the send's SYNC word.
        id: u64,
    },
}

/// Bytes of a `len`-byte RENDEZVOUS payload that the sender copies itself after a SHARE word:
/// the first half, rounded down to whole 4 KiB pages so that both copies start page aligned
/// when the buffers are. The receiver copies the rest. Both sides must use this rule.
#[inline]
pub const fn sender_share(len: usize) -> usize {
    (len / 2) & !4095
}

fn bad(word: u64, field: &'static str, value: u64) -> WordError {
    WordError::BadField { word, field, value }
}

impl Word {
    /// The kind code of this word.
    pub fn kind(&self) -> u8 {
        match self {
            Word::Envelope { .. } => kind::ENVELOPE,
            Word::Length { .. } => kind::LENGTH,
            Word::Data { .. } => kind::DATA,
            Word::Credit { .. } => kind::CREDIT,
            Word::Fin { .. } => kind::FIN,
            Word::Control(_) => kind::CONTROL,
            Word::Buffer { .. } => kind::BUFFER,
            Word::Share { .. } => kind::SHARE,
            Word::Wrote { .. } => kind::WROTE,
            Word::Context { .. } => kind::CONTEXT,
            Word::Sync { .. } => kind::SYNC,
            Word::Ack { .. } => kind::ACK,
        }
    }

    /// A DATA word holding `chunk`, which must be 1 to 7 bytes long.
    pub fn data(chunk: &[u8]) -> Result<Word, WordError> {
        if chunk.is_empty() || chunk.len() > DATA_BYTES {
            return Err(bad(0, "count", chunk.len() as u64));
        }
        let mut bytes = [0u8; DATA_BYTES];
        bytes[..chunk.len()].copy_from_slice(chunk);
        Ok(Word::Data {
            count: chunk.len() as u8,
            bytes,
        })
    }

    /// Checks that every field is within its range.
    pub fn validate(&self) -> Result<(), WordError> {
        match *self {
            Word::Envelope {
                tag,
                path,
                len,
                head,
            } => {
                if tag > MAX_TAG {
                    return Err(WordError::TagOutOfRange(tag.into()));
                }
                if let EnvLen::Short(len) = len {
                    if len >= SHORT_LEN_LIMIT {
                        return Err(WordError::NonCanonical {
                            word: 0,
                            what: "short length of 2^24 or more",
                        });
                    }
                }
                let used = match (path, len) {
                    (Path::Inline, EnvLen::Short(n)) if n < INLINE_LEN_LIMIT => n as usize,
                    (Path::Inline, EnvLen::Short(n)) => {
                        return Err(WordError::InlineTooLong(n.into()))
                    }
                    (Path::Inline, EnvLen::Long) => {
                        return Err(WordError::InlineTooLong(SHORT_LEN_LIMIT.into()))
                    }
                    _ => 0,
                };
                if head[used.min(HEAD_BYTES)..].iter().any(|&b| b != 0) {
                    return Err(WordError::NonCanonical {
                        word: 0,
                        what: "envelope byte past the payload",
                    });
                }
                Ok(())
            }
            Word::Length { len } if len > MAX_LEN => Err(WordError::LengthOutOfRange(len.into())),
            Word::Data { count, bytes } => {
                if count == 0 || count as usize > DATA_BYTES {
                    return Err(bad(0, "count", count.into()));
                }
                if bytes[count as usize..].iter().any(|&b| b != 0) {
                    return Err(WordError::NonCanonical {
                        word: 0,
                        what: "non-zero padding byte",
                    });
                }
                Ok(())
            }
            Word::Control(Control::Barrier { generation })
                if generation > MAX_BARRIER_GENERATION =>
            {
                Err(bad(0, "barrier generation", generation))
            }
            Word::Buffer { offset } | Word::Share { offset } if offset > MAX_OFFSET => {
                Err(bad(0, "offset", offset))
            }
            Word::Context { ctx } if ctx == 0 || ctx > MAX_CONTEXT => Err(bad(0, "context", ctx)),
            Word::Sync { id } | Word::Ack { id } if id > MAX_SYNC_ID => Err(bad(0, "send id", id)),
            _ => Ok(()),
        }
    }

    /// Validates, then encodes.
    pub fn try_encode(&self) -> Result<u64, WordError> {
        self.validate()?;
        Ok(self.encode())
    }

    /// Encodes this word.
    ///
    /// The word must be valid (see [`Word::validate`]): words from [`Word::decode`] and the
    /// helpers of this module are. Out-of-range fields of a hand-built word are caught by a debug
    /// assertion; in release builds they are truncated to their field width, which can produce a
    /// word that does not decode. Use [`Word::try_encode`] for unchecked input.
    #[inline]
    pub fn encode(&self) -> u64 {
        debug_assert_eq!(self.validate(), Ok(()), "encoding an invalid word {self:?}");
        let k = u64::from(self.kind());
        match *self {
            Word::Envelope {
                tag,
                path,
                len,
                head,
            } => {
                let (long, short) = match len {
                    EnvLen::Short(n) => (0, u64::from(n) & 0xFF_FFFF),
                    EnvLen::Long => (ENV_LONG_BIT, 0),
                };
                k | path.to_raw() << ENV_PATH_SHIFT
                    | long
                    | u64::from(tag & MAX_TAG) << ENV_TAG_SHIFT
                    | short << ENV_LEN_SHIFT
                    | u64::from(u16::from_le_bytes(head)) << ENV_HEAD_SHIFT
            }
            Word::Length { len } => k | u64::from(len) << U32_SHIFT,
            Word::Data { count, bytes } => {
                let count = count.min(DATA_BYTES as u8);
                let mut raw = [0u8; 8];
                raw[0] = kind::DATA | count << NIBBLE_SHIFT;
                raw[1..1 + count as usize].copy_from_slice(&bytes[..count as usize]);
                u64::from_le_bytes(raw)
            }
            Word::Credit { unit, amount } => {
                k | unit.to_raw() << NIBBLE_SHIFT | u64::from(amount) << U32_SHIFT
            }
            Word::Fin { id } | Word::Wrote { id } => k | u64::from(id) << U32_SHIFT,
            Word::Buffer { offset } | Word::Share { offset } => {
                k | (offset & MAX_OFFSET) << OFFSET_SHIFT
            }
            Word::Context { ctx } => k | (ctx & MAX_CONTEXT) << OFFSET_SHIFT,
            Word::Sync { id } | Word::Ack { id } => k | (id & MAX_SYNC_ID) << OFFSET_SHIFT,
            Word::Control(c) => {
                let (op, arg) = match c {
                    Control::Barrier { generation } => {
                        (OP_BARRIER, generation & MAX_BARRIER_GENERATION)
                    }
                    Control::Finalize => (OP_FINALIZE, 0),
                    Control::Abort { code } => (OP_ABORT, u64::from(code as u32)),
                };
                k | op << CTRL_OP_SHIFT | arg << CTRL_ARG_SHIFT
            }
        }
    }

    /// Decodes and validates a word read from a mailbox. Never panics.
    #[inline]
    pub fn decode(word: u64) -> Result<Word, WordError> {
        let k = (word & kind::MASK) as u8;
        let reserved = |allowed: u64| -> Result<(), WordError> {
            if word & !allowed != 0 {
                Err(WordError::ReservedBits { word })
            } else {
                Ok(())
            }
        };
        match k {
            kind::INVALID => Err(WordError::ZeroKind { word }),
            kind::ENVELOPE => {
                reserved(ENVELOPE_BITS)?;
                let raw_path = (word >> ENV_PATH_SHIFT) & 0x3;
                let path = Path::from_raw(raw_path).ok_or(bad(word, "path", raw_path))?;
                let tag = ((word >> ENV_TAG_SHIFT) as u32) & MAX_TAG;
                let mut short = (word >> ENV_LEN_SHIFT) as u32;
                let mut head = [0; HEAD_BYTES];
                if path == Path::Inline {
                    if word & ENV_LONG_BIT != 0 {
                        return Err(bad(word, "long flag of an INLINE envelope", 1));
                    }
                    head = ((word >> ENV_HEAD_SHIFT) as u16).to_le_bytes();
                    short &= INLINE_LEN_LIMIT - 1;
                    if head[(short as usize).min(HEAD_BYTES)..]
                        .iter()
                        .any(|&b| b != 0)
                    {
                        return Err(WordError::NonCanonical {
                            word,
                            what: "envelope byte past the payload",
                        });
                    }
                }
                let len = if word & ENV_LONG_BIT != 0 {
                    if short != 0 {
                        return Err(bad(word, "short length of a long envelope", short.into()));
                    }
                    EnvLen::Long
                } else {
                    EnvLen::Short(short)
                };
                Ok(Word::Envelope {
                    tag,
                    path,
                    len,
                    head,
                })
            }
            kind::LENGTH => {
                reserved(U32_FIELD_BITS | kind::MASK)?;
                let len = (word >> U32_SHIFT) as u32;
                if len > MAX_LEN {
                    return Err(WordError::LengthOutOfRange(len.into()));
                }
                Ok(Word::Length { len })
            }
            kind::DATA => {
                let count = ((word >> NIBBLE_SHIFT) & 0xF) as u8;
                if count == 0 || count as usize > DATA_BYTES {
                    return Err(bad(word, "count", count.into()));
                }
                // Payload bytes at and beyond `count` must be zero; count 7 leaves no padding.
                if word.checked_shr(8 + 8 * u32::from(count)).unwrap_or(0) != 0 {
                    return Err(WordError::NonCanonical {
                        word,
                        what: "non-zero padding byte",
                    });
                }
                let raw = word.to_le_bytes();
                let mut bytes = [0u8; DATA_BYTES];
                bytes.copy_from_slice(&raw[1..]);
                Ok(Word::Data { count, bytes })
            }
            kind::CREDIT => {
                reserved(U32_FIELD_BITS | NIBBLE_BITS | kind::MASK)?;
                let raw_unit = (word >> NIBBLE_SHIFT) & 0xF;
                let unit = CreditUnit::from_raw(raw_unit).ok_or(bad(word, "unit", raw_unit))?;
                Ok(Word::Credit {
                    unit,
                    amount: (word >> U32_SHIFT) as u32,
                })
            }
            kind::FIN => {
                reserved(U32_FIELD_BITS | kind::MASK)?;
                Ok(Word::Fin {
                    id: (word >> U32_SHIFT) as u32,
                })
            }
            kind::BUFFER => {
                reserved(!NIBBLE_BITS)?;
                Ok(Word::Buffer {
                    offset: word >> OFFSET_SHIFT,
                })
            }
            kind::SHARE => {
                reserved(!NIBBLE_BITS)?;
                Ok(Word::Share {
                    offset: word >> OFFSET_SHIFT,
                })
            }
            kind::WROTE => {
                reserved(U32_FIELD_BITS | kind::MASK)?;
                Ok(Word::Wrote {
                    id: (word >> U32_SHIFT) as u32,
                })
            }
            kind::CONTEXT => {
                reserved(!NIBBLE_BITS)?;
                match word >> OFFSET_SHIFT {
                    0 => Err(bad(word, "context", 0)),
                    ctx => Ok(Word::Context { ctx }),
                }
            }
            kind::SYNC => {
                reserved(!NIBBLE_BITS)?;
                Ok(Word::Sync {
                    id: word >> OFFSET_SHIFT,
                })
            }
            kind::ACK => {
                reserved(!NIBBLE_BITS)?;
                Ok(Word::Ack {
                    id: word >> OFFSET_SHIFT,
                })
            }
            kind::CONTROL => {
                reserved(!NIBBLE_BITS)?;
                let op = (word >> CTRL_OP_SHIFT) & 0xFF;
                let arg = word >> CTRL_ARG_SHIFT;
                let c = match op {
                    OP_BARRIER => Control::Barrier { generation: arg },
                    OP_FINALIZE if arg == 0 => Control::Finalize,
                    OP_ABORT if arg <= u64::from(u32::MAX) => Control::Abort {
                        code: arg as u32 as i32,
                    },
                    OP_FINALIZE | OP_ABORT => return Err(bad(word, "control argument", arg)),
                    _ => return Err(bad(word, "control op", op)),
                };
                Ok(Word::Control(c))
            }
            _ => Err(WordError::ReservedKind { word, kind: k }),
        }
    }
}

/// A complete message header: what an ENVELOPE (plus, for long messages, a LENGTH word) says.
///
/// # Example
///
/// ```
/// use snoo_common::register::{Header, HeaderStart, Path};
///
/// // A 64 KiB message through the data ring: one ENVELOPE word.
/// let h = Header::new(7, Path::Ring, 64 << 10).unwrap();
/// let mut words = Vec::new();
/// h.encode(&mut |w| words.push(w));
/// assert_eq!((words.len(), h.word_count()), (1, 1));
/// assert_eq!(Header::start(words[0]), Ok(HeaderStart::Complete(h)));
///
/// // From 16 MiB on, the length no longer fits: a LENGTH word follows the envelope.
/// let big = Header::new(7, Path::Ring, 32 << 20).unwrap();
/// let mut words = Vec::new();
/// big.encode(&mut |w| words.push(w));
/// assert_eq!(words.len(), 2);
/// let Ok(HeaderStart::NeedsLength(pending)) = Header::start(words[0]) else {
///     panic!("a long envelope")
/// };
/// assert_eq!(pending.path(), Path::Ring);
/// assert_eq!(pending.finish(words[1]), Ok(big));
///
/// // Negative tags and INLINE messages of 256 bytes or more have no encoding.
/// assert!(Header::new(-1, Path::Ring, 8).is_err());
/// assert!(Header::new(0, Path::Inline, 256).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// MPI tag, at most [`MAX_TAG`].
    pub tag: u32,
    /// How the payload travels.
    pub path: Path,
    /// Payload length in bytes, at most [`MAX_LEN`].
    pub len: u32,
}

/// The result of decoding an ENVELOPE word: either the whole header, or a header that still needs
/// the LENGTH word that follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderStart {
    /// A short envelope: the whole header.
    Complete(Header),
    /// A long envelope: pass the next word to [`PendingHeader::finish`].
    NeedsLength(PendingHeader),
}

/// A long envelope waiting for its LENGTH word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingHeader {
    tag: u32,
    path: Path,
}

impl PendingHeader {
    /// The path the envelope announced.
    #[inline]
    pub fn path(&self) -> Path {
        self.path
    }

    /// Completes the header with the word that followed the envelope, which must be a LENGTH word
    /// holding a length of at least [`SHORT_LEN_LIMIT`].
    #[inline]
    pub fn finish(self, word: u64) -> Result<Header, WordError> {
        match Word::decode(word)? {
            Word::Length { len } if len >= SHORT_LEN_LIMIT => Ok(Header {
                tag: self.tag,
                path: self.path,
                len,
            }),
            Word::Length { .. } => Err(WordError::NonCanonical {
                word,
                what: "long length below 2^24",
            }),
            _ => Err(WordError::UnexpectedKind {
                expected: "LENGTH",
                word,
            }),
        }
    }
}

impl Header {
    /// A header for a message with MPI tag `tag` and `len` payload bytes.
    #[inline]
    pub fn new(tag: i32, path: Path, len: usize) -> Result<Header, WordError> {
        let tag = u32::try_from(tag).map_err(|_| WordError::TagOutOfRange(tag.into()))?;
        let len = u32::try_from(len)
            .ok()
            .filter(|&l| l <= MAX_LEN)
            .ok_or(WordError::LengthOutOfRange(len as u64))?;
        if path == Path::Inline && len >= INLINE_LEN_LIMIT {
            return Err(WordError::InlineTooLong(len.into()));
        }
        Ok(Header { tag, path, len })
    }

    /// Words this header takes in the mailbox: 1, or 2 for lengths of 16 MiB and more.
    #[inline]
    pub fn word_count(&self) -> usize {
        if self.len < SHORT_LEN_LIMIT {
            1
        } else {
            2
        }
    }

    /// Words the whole message takes in the mailbox: the header plus, for INLINE messages, the
    /// DATA words, and for RENDEZVOUS messages the BUFFER word.
    #[inline]
    pub fn message_words(&self) -> usize {
        let data = match self.path {
            Path::Inline => data_words_for(self.len as usize),
            Path::Ring => 0,
            Path::Rendezvous => 1,
        };
        self.word_count() + data
    }

    /// Emits the header's words (ENVELOPE, then LENGTH if needed) of a RING or RENDEZVOUS
    /// message. An INLINE message's envelope carries payload bytes: [`pack_inline`] writes it.
    #[inline]
    pub fn encode(&self, emit: &mut impl FnMut(u64)) {
        debug_assert!(self.tag <= MAX_TAG && self.len <= MAX_LEN);
        debug_assert!(
            self.path != Path::Inline || self.len == 0,
            "INLINE envelopes come from pack_inline"
        );
        if self.len < SHORT_LEN_LIMIT {
            emit(
                Word::Envelope {
                    tag: self.tag,
                    path: self.path,
                    len: EnvLen::Short(self.len),
                    head: [0; HEAD_BYTES],
                }
                .encode(),
            );
        } else {
            emit(
                Word::Envelope {
                    tag: self.tag,
                    path: self.path,
                    len: EnvLen::Long,
                    head: [0; HEAD_BYTES],
                }
                .encode(),
            );
            emit(Word::Length { len: self.len }.encode());
        }
    }

    /// Decodes the first word of a message, which must be an ENVELOPE.
    #[inline]
    pub fn start(word: u64) -> Result<HeaderStart, WordError> {
        // The common case first, in a few instructions: a short ENVELOPE with no reserved bit
        // set and a valid path. Anything else, errors included, takes the general decoder.
        const SHORT: u64 = kind::MASK | ENV_LONG_BIT | !ENVELOPE_BITS;
        if word & SHORT == u64::from(kind::ENVELOPE) {
            let tag = ((word >> ENV_TAG_SHIFT) as u32) & MAX_TAG;
            let field = word >> ENV_LEN_SHIFT;
            let raw_path = (word >> ENV_PATH_SHIFT) & 0x3;
            if raw_path == 0 {
                if let Some(len) = inline_len(word) {
                    return Ok(HeaderStart::Complete(Header {
                        tag,
                        path: Path::Inline,
                        len,
                    }));
                }
            } else if let Some(path) = Path::from_raw(raw_path) {
                return Ok(HeaderStart::Complete(Header {
                    tag,
                    path,
                    len: field as u32,
                }));
            }
        }
        match Word::decode(word)? {
            Word::Envelope {
                tag,
                path,
                len: EnvLen::Short(len),
                ..
            } => Ok(HeaderStart::Complete(Header { tag, path, len })),
            Word::Envelope {
                tag,
                path,
                len: EnvLen::Long,
                ..
            } => Ok(HeaderStart::NeedsLength(PendingHeader { tag, path })),
            _ => Err(WordError::UnexpectedKind {
                expected: "ENVELOPE",
                word,
            }),
        }
    }
}

/// DATA words after the envelope of an INLINE message of `len` bytes.
pub const fn data_words_for(len: usize) -> usize {
    len.saturating_sub(HEAD_BYTES).div_ceil(DATA_BYTES)
}

/// The DATA word carrying the low `count` bytes of `bytes` (little-endian).
#[inline]
fn data_word_from(bytes: u64, count: usize) -> u64 {
    u64::from(kind::DATA | (count as u8) << NIBBLE_SHIFT) | bytes << 8
}

/// Writes a whole INLINE message with MPI tag `tag` to the start of `out`: its ENVELOPE (with
/// the first [`HEAD_BYTES`] payload bytes), then the rest of `payload` as
/// [`data_words_for`]`(payload.len())` DATA words, full 7-byte words and a shorter last one if
/// need be. Returns how many words it wrote, or `None`, writing nothing, if `out` is too short,
/// the payload is [`INLINE_LEN_LIMIT`] bytes or longer, or the tag is above [`MAX_TAG`].
///
/// # Example
///
/// ```
/// use snoo_common::register::{data_words_for, inline_header, pack_inline, unpack};
///
/// // 14 bytes: 2 ride in the envelope, 12 in two DATA words (7 + 5).
/// let payload = b"hello, mailbox";
/// let mut words = [0u64; 8];
/// let n = pack_inline(42, payload, &mut words).unwrap();
/// assert_eq!(n, 1 + data_words_for(payload.len()));
/// assert_eq!(n, 3);
///
/// // The receiver's view: the envelope says how many words to wait for.
/// let head = inline_header(words[0]).unwrap();
/// assert_eq!((head.tag, head.len, head.words()), (42, 14, 3));
/// let mut out = [0u8; 64];
/// assert_eq!(unpack(words[0], &words[1..n], &mut out), Ok(14));
/// assert_eq!(&out[..14], payload);
///
/// // Too short a buffer: nothing written.
/// assert_eq!(pack_inline(42, payload, &mut [0u64; 2]), None);
/// ```
#[inline]
pub fn pack_inline(tag: u32, payload: &[u8], out: &mut [u64]) -> Option<usize> {
    let len = payload.len();
    if len >= INLINE_LEN_LIMIT as usize || tag > MAX_TAG {
        return None;
    }
    let n = data_words_for(len);
    let (envelope, data) = out.get_mut(..n + 1)?.split_first_mut()?;
    let (head, payload) = payload.split_at(len.min(HEAD_BYTES));
    // The encoding of Word::Envelope for path INLINE (0), built directly: every field is in range.
    *envelope = u64::from(kind::ENVELOPE)
        | u64::from(tag) << ENV_TAG_SHIFT
        | (len as u64) << ENV_LEN_SHIFT
        | load_le(head) << ENV_HEAD_SHIFT;
    let (last, full) = match data.split_last_mut() {
        Some(split) => split,
        None => return Some(1),
    };
    // Every full word has an 8th byte after its 7 (the last word has at least one): one
    // unaligned 8-byte load each, the 8th byte shifted out. (Assembling words byte by byte
    // stalled on store forwarding.)
    for (i, o) in full.iter_mut().enumerate() {
        let pos = i * DATA_BYTES;
        *o = data_word_from(load_le(&payload[pos..pos + 8]), DATA_BYTES);
    }
    let tail = &payload[full.len() * DATA_BYTES..];
    *last = data_word_from(load_le(tail), tail.len());
    Some(n + 1)
}

/// The 0 to 8 bytes of `b` as a little-endian integer, with two possibly overlapping loads
/// instead of a byte loop or a `memcpy` call (the counterpart of [`store_short`]).
#[inline]
fn load_le(b: &[u8]) -> u64 {
    let n = b.len();
    let word = |x: &[u8]| -> u64 {
        let mut raw = [0u8; 8];
        raw[..x.len()].copy_from_slice(x);
        u64::from_le_bytes(raw)
    };
    if n == 8 {
        word(b)
    } else if n >= 4 {
        word(&b[..4]) | word(&b[n - 4..]) << (8 * (n - 4))
    } else if n >= 2 {
        word(&b[..2]) | word(&b[n - 2..]) << (8 * (n - 2))
    } else {
        b.first().map_or(0, |&x| u64::from(x))
    }
}

/// Decodes one DATA word into its byte count and bytes.
#[inline]
fn unpack_data(word: u64) -> Result<(usize, [u8; 8]), WordError> {
    match Word::decode(word) {
        Ok(Word::Data { count, .. }) => Ok((count as usize, word.to_le_bytes())),
        Ok(_) => Err(WordError::UnexpectedKind {
            expected: "DATA",
            word,
        }),
        Err(e) => Err(e),
    }
}

/// The 8-bit length of an envelope already known to be a short INLINE one (kind, path, long flag
/// and reserved bits checked), or `None` if a head byte past that length is set.
#[inline]
fn inline_len(envelope: u64) -> Option<u32> {
    let len = (envelope >> ENV_LEN_SHIFT) & u64::from(INLINE_LEN_LIMIT - 1);
    (len >= HEAD_BYTES as u64 || envelope >> (ENV_HEAD_SHIFT + 8 * len as u32) == 0)
        .then_some(len as u32)
}

/// The length of a valid INLINE envelope, checked as [`Word::decode`] does but in a few
/// instructions; `None` for any other word.
#[inline]
fn inline_fast(envelope: u64) -> Option<usize> {
    // Kind ENVELOPE, path INLINE (0), not long, no reserved bit.
    const CHECK: u64 = kind::MASK | 0x3 << ENV_PATH_SHIFT | ENV_LONG_BIT | !ENVELOPE_BITS;
    if envelope & CHECK != u64::from(kind::ENVELOPE) {
        return None;
    }
    inline_len(envelope).map(|len| len as usize)
}

/// What a valid INLINE envelope announces (see [`inline_header`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InlineHeader {
    /// The MPI tag.
    pub tag: u32,
    /// Payload bytes.
    pub len: usize,
}

impl InlineHeader {
    /// Mailbox words of the whole message: the envelope and its DATA words.
    #[inline]
    pub fn words(&self) -> usize {
        1 + data_words_for(self.len)
    }
}

/// The tag and length of the INLINE message that `envelope` starts, or `None` if `envelope` is
/// not a valid INLINE envelope (checked as [`Word::decode`] does, in a few instructions): the
/// receiver's question when it looks at the head of a mailbox
/// ([`crate::ring::WordConsumer::peek_message`]).
#[inline]
pub fn inline_header(envelope: u64) -> Option<InlineHeader> {
    let len = inline_fast(envelope)?;
    Some(InlineHeader {
        tag: ((envelope >> ENV_TAG_SHIFT) as u32) & MAX_TAG,
        len,
    })
}

/// The length and head bytes (little-endian) of an INLINE envelope, validated as
/// [`Word::decode`] does, without building a [`Word`] in the common case.
#[inline]
fn inline_head(envelope: u64) -> Result<(usize, u64), WordError> {
    if let Some(len) = inline_fast(envelope) {
        return Ok((len, envelope >> ENV_HEAD_SHIFT));
    }
    // Rejected: the general decoder says why (a proptest checks that it accepts no INLINE
    // envelope the check above refuses).
    Word::decode(envelope)?;
    Err(WordError::UnexpectedKind {
        expected: "INLINE ENVELOPE",
        word: envelope,
    })
}

/// Unpacks an INLINE message, its `envelope` and the DATA words that followed it, into `dst`;
/// returns the payload length (the envelope's).
///
/// The envelope must be a valid INLINE envelope, the words valid DATA words, all but the last
/// full (7 bytes) as [`pack_inline`] produces them, that add up to the envelope's length, and the
/// payload must fit in `dst`. Bytes of `dst` past the payload are left untouched; on error, `dst`
/// may have been partly written.
#[inline]
pub fn unpack(envelope: u64, words: &[u64], dst: &mut [u8]) -> Result<usize, WordError> {
    let capacity = dst.len();
    let (len, head) = inline_head(envelope)?;
    if len > capacity {
        return Err(WordError::Overflow { capacity });
    }
    let (first, rest) = dst[..len].split_at_mut(len.min(HEAD_BYTES));
    store_short(first, head);
    let mismatch = WordError::LengthMismatch { announced: len };
    match unpack_data_words(words, rest) {
        Ok(n) if n == rest.len() => Ok(len),
        Ok(_) | Err(WordError::Overflow { .. }) => Err(mismatch),
        Err(e) => Err(e),
    }
}

/// The DATA-word half of [`unpack`]: writes the words' bytes to the start of `dst` and returns
/// how many there were.
#[inline]
fn unpack_data_words(words: &[u64], dst: &mut [u8]) -> Result<usize, WordError> {
    let capacity = dst.len();
    // A full DATA word's low byte: kind DATA, count 7 (and no reserved bits there).
    const FULL: u8 = kind::DATA | (DATA_BYTES as u8) << NIBBLE_SHIFT;
    let Some((&last, full)) = words.split_last() else {
        return Ok(0);
    };
    // Fast path, one pass: while the payload fits with a byte to spare, store each word but the
    // last as 8 bytes (the 8th is overwritten by the next word) and OR together how its low byte
    // differs from a full word's: that byte is a full word's whole validation (its 7 payload
    // bytes are arbitrary). Words that are not all full take the checked path below.
    let mut pos = 0usize;
    let mut odd = u8::from(full.len() * DATA_BYTES >= capacity);
    if odd == 0 {
        for &w in full {
            odd |= w as u8 ^ FULL;
            // In bounds: pos + 8 <= 7 * full.len() + 1 <= capacity.
            if let Some(out) = dst.get_mut(pos..pos + 8) {
                out.copy_from_slice(&(w >> 8).to_le_bytes());
            }
            pos += DATA_BYTES;
        }
    }
    if odd != 0 {
        pos = 0;
        for &word in full {
            let (count, raw) = unpack_data(word)?;
            if count != DATA_BYTES {
                return Err(WordError::NonCanonical {
                    word,
                    what: "short DATA word before the last",
                });
            }
            let out = dst
                .get_mut(pos..pos + DATA_BYTES)
                .ok_or(WordError::Overflow { capacity })?;
            out.copy_from_slice(&raw[1..]);
            pos += DATA_BYTES;
        }
    }
    let count = data_count(last)?;
    let out = dst
        .get_mut(pos..pos + count)
        .ok_or(WordError::Overflow { capacity })?;
    store_short(out, last >> 8);
    Ok(pos + count)
}

/// The byte count of a valid DATA word: the checks of [`Word::decode`] for this kind without
/// building a [`Word`]; an invalid word gets its error from the general decoder.
#[inline]
fn data_count(word: u64) -> Result<usize, WordError> {
    let count = ((word >> NIBBLE_SHIFT) & 0xF) as usize;
    // Bytes at and beyond `count` are zero (count 7 has none).
    let padding = word.checked_shr(8 + 8 * count as u32).unwrap_or(0);
    if word & kind::MASK == u64::from(kind::DATA)
        && (1..=DATA_BYTES).contains(&count)
        && padding == 0
    {
        return Ok(count);
    }
    unpack_data(word).map(|(count, _)| count)
}

/// Stores the low `out.len()` (1 to 8) bytes of `bytes` into `out`, little-endian, with two
/// possibly overlapping stores instead of a byte loop or a `memcpy` call.
#[inline]
fn store_short(out: &mut [u8], bytes: u64) {
    let n = out.len();
    let b = bytes.to_le_bytes();
    if n >= 4 {
        out[..4].copy_from_slice(&b[..4]);
        out[n - 4..].copy_from_slice(&b[n - 4..n]);
    } else if n >= 2 {
        out[..2].copy_from_slice(&b[..2]);
        out[n - 2..].copy_from_slice(&b[n - 2..n]);
    } else if n == 1 {
        out[0] = b[0];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn word() -> impl Strategy<Value = Word> {
        prop_oneof![
            (
                0..=MAX_TAG,
                prop_oneof![Just(Path::Ring), Just(Path::Rendezvous)],
                prop_oneof![
                    (0..SHORT_LEN_LIMIT).prop_map(EnvLen::Short),
                    Just(EnvLen::Long)
                ]
            )
                .prop_map(|(tag, path, len)| Word::Envelope {
                    tag,
                    path,
                    len,
                    head: [0; HEAD_BYTES]
                }),
            (0..=MAX_TAG, 0..INLINE_LEN_LIMIT, any::<[u8; HEAD_BYTES]>()).prop_map(
                |(tag, n, mut head)| {
                    head[(n as usize).min(HEAD_BYTES)..].fill(0);
                    Word::Envelope {
                        tag,
                        path: Path::Inline,
                        len: EnvLen::Short(n),
                        head,
                    }
                }
            ),
            (0..=MAX_LEN).prop_map(|len| Word::Length { len }),
            proptest::collection::vec(any::<u8>(), 1..=DATA_BYTES)
                .prop_map(|v| Word::data(&v).unwrap()),
            (
                prop_oneof![Just(CreditUnit::Bytes), Just(CreditUnit::Messages)],
                any::<u32>()
            )
                .prop_map(|(unit, amount)| Word::Credit { unit, amount }),
            any::<u32>().prop_map(|id| Word::Fin { id }),
            (0..=MAX_OFFSET).prop_map(|offset| Word::Buffer { offset }),
            (0..=MAX_OFFSET).prop_map(|offset| Word::Share { offset }),
            any::<u32>().prop_map(|id| Word::Wrote { id }),
            (1..=MAX_CONTEXT).prop_map(|ctx| Word::Context { ctx }),
            (0..=MAX_SYNC_ID).prop_map(|id| Word::Sync { id }),
            (0..=MAX_SYNC_ID).prop_map(|id| Word::Ack { id }),
            (0..=MAX_BARRIER_GENERATION)
                .prop_map(|generation| Word::Control(Control::Barrier { generation })),
            Just(Word::Control(Control::Finalize)),
            any::<i32>().prop_map(|code| Word::Control(Control::Abort { code })),
        ]
    }

    /// Raw words biased towards valid ones: few bits set (AND of random values), any kind.
    fn raw_word() -> impl Strategy<Value = u64> {
        prop_oneof![
            any::<u64>(),
            (any::<u64>(), any::<u64>(), any::<u64>(), 0u64..16).prop_map(|(a, b, c, k)| (a
                & b
                & c
                & !kind::MASK)
                | k),
            (any::<u64>(), any::<u64>(), 0u64..16).prop_map(|(a, b, k)| (a & b & !kind::MASK) | k),
        ]
    }

    proptest! {
        #[test]
        fn every_word_round_trips(w in word()) {
            let raw = w.try_encode().unwrap();
            prop_assert_ne!(raw, 0);
            prop_assert_eq!(raw & kind::MASK, u64::from(w.kind()));
            prop_assert_eq!(raw & crate::ring::LAP_BIT, 0, "bit 7 is the mailbox's lap bit");
            prop_assert_eq!(Word::decode(raw), Ok(w));
        }

        #[test]
        fn decode_never_panics_and_ok_re_encodes(raw in raw_word()) {
            if let Ok(w) = Word::decode(raw) {
                prop_assert_eq!(raw & crate::ring::LAP_BIT, 0, "bit 7 is the mailbox's lap bit");
                prop_assert_eq!(w.validate(), Ok(()));
                prop_assert_eq!(w.encode(), raw);
            }
        }

        #[test]
        fn header_start_agrees_with_decode(raw in raw_word()) {
            // The short-envelope fast path accepts exactly what the general decoder accepts.
            let want = match Word::decode(raw) {
                Ok(Word::Envelope { tag, path, len: EnvLen::Short(len), .. }) => {
                    Some(HeaderStart::Complete(Header { tag, path, len }))
                }
                Ok(Word::Envelope { tag, path, len: EnvLen::Long, .. }) => {
                    Some(HeaderStart::NeedsLength(PendingHeader { tag, path }))
                }
                _ => None,
            };
            prop_assert_eq!(Header::start(raw).ok(), want);
        }

        #[test]
        fn inline_head_agrees_with_decode(raw in raw_word()) {
            // Bias towards INLINE envelopes: kind 1, path 0, not long.
            for w in [raw, raw & !(0x3 << ENV_PATH_SHIFT | ENV_LONG_BIT | kind::MASK) | 1] {
                let want = match Word::decode(w) {
                    Ok(Word::Envelope { path: Path::Inline, len: EnvLen::Short(n), head, .. }) => {
                        Some((n as usize, u64::from(u16::from_le_bytes(head))))
                    }
                    _ => None,
                };
                prop_assert_eq!(inline_head(w).ok(), want, "{:#x}", w);
                // And the receiver's view of the same message: tag, length, and its envelope and
                // DATA words.
                let hdr = match Word::decode(w) {
                    Ok(Word::Envelope { tag, path: Path::Inline, len: EnvLen::Short(n), .. }) => {
                        Some((tag, n as usize, Header::new(0, Path::Inline, n as usize).unwrap().message_words()))
                    }
                    _ => None,
                };
                prop_assert_eq!(inline_header(w).map(|h| (h.tag, h.len, h.words())), hdr, "{:#x}", w);
            }
        }

        #[test]
        fn unpack_accepts_only_an_inline_envelope_and_data_words(
            env in raw_word(),
            raw in proptest::collection::vec(raw_word(), 0..4),
            room in 0usize..40,
        ) {
            let mut dst = vec![0u8; room];
            // Mostly an INLINE envelope (path 0, short) so that the DATA words get looked at.
            let env = env & !(0x3 << ENV_PATH_SHIFT | ENV_LONG_BIT) & !kind::MASK | 1;
            if let Ok(n) = unpack(env, &raw, &mut dst) {
                prop_assert!(n <= room);
                let inline = matches!(
                    Word::decode(env),
                    Ok(Word::Envelope { path: Path::Inline, len: EnvLen::Short(l), .. }) if l as usize == n
                );
                prop_assert!(inline, "accepted envelope {:#x}", env);
                for &w in &raw {
                    let data = matches!(Word::decode(w), Ok(Word::Data { .. }));
                    prop_assert!(data, "accepted {:#x}", w);
                }
            }
        }

        #[test]
        fn inline_pack_unpack_round_trips(
            tag in 0..=MAX_TAG,
            payload in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..=20),
                proptest::collection::vec(any::<u8>(), 0..INLINE_LEN_LIMIT as usize),
            ],
        ) {
            let n = 1 + data_words_for(payload.len());
            let mut words = vec![0; n];
            prop_assert_eq!(pack_inline(tag, &payload, &mut words), Some(n));
            let mut short = vec![0; n - 1];
            prop_assert_eq!(pack_inline(tag, &payload, &mut short), None);
            // The envelope is the one Word::Envelope encodes, and Header::start reads it.
            let mut head = [0; HEAD_BYTES];
            let h = payload.len().min(HEAD_BYTES);
            head[..h].copy_from_slice(&payload[..h]);
            let env = Word::Envelope { tag, path: Path::Inline, len: EnvLen::Short(payload.len() as u32), head };
            prop_assert_eq!(env.try_encode(), Ok(words[0]));
            let want = Header { tag, path: Path::Inline, len: payload.len() as u32 };
            prop_assert_eq!(Header::start(words[0]), Ok(HeaderStart::Complete(want)));
            prop_assert_eq!(want.message_words(), n);

            let mut out = vec![0u8; 300];
            prop_assert_eq!(unpack(words[0], &words[1..], &mut out), Ok(payload.len()));
            prop_assert_eq!(&out[..payload.len()], &payload[..]);
            prop_assert!(out[payload.len()..].iter().all(|&b| b == 0), "nothing past the payload");
            // Exactly the payload's room (the engine's case), and one byte too few.
            let mut exact = vec![0u8; payload.len()];
            prop_assert_eq!(unpack(words[0], &words[1..], &mut exact), Ok(payload.len()));
            prop_assert_eq!(&exact, &payload);
            if !payload.is_empty() {
                let mut short = vec![0u8; payload.len() - 1];
                let overflow = matches!(unpack(words[0], &words[1..], &mut short), Err(WordError::Overflow { .. }));
                prop_assert!(overflow);
            }
            // A word missing or one too many.
            let mut out = vec![0u8; 300];
            if n > 1 {
                let missing = unpack(words[0], &words[1..n - 1], &mut out);
                prop_assert_eq!(missing, Err(WordError::LengthMismatch { announced: payload.len() }));
            }
            let mut extra = words.clone();
            extra.push(data_word_from(0x41, 1));
            prop_assert!(unpack(extra[0], &extra[1..], &mut out).is_err());
        }

        #[test]
        fn headers_round_trip(tag in 0..=i32::MAX, p in prop_oneof![Just(Path::Ring), Just(Path::Rendezvous)], len in prop_oneof![0..=MAX_LEN, 0..70u32, (SHORT_LEN_LIMIT - 2)..(SHORT_LEN_LIMIT + 2)]) {
            let h = Header::new(tag, p, len as usize).unwrap();
            let mut words = Vec::new();
            h.encode(&mut |w| words.push(w));
            prop_assert_eq!(words.len(), h.word_count());
            let got = match Header::start(words[0]).unwrap() {
                HeaderStart::Complete(h) => { prop_assert_eq!(words.len(), 1); h }
                HeaderStart::NeedsLength(p) => { prop_assert_eq!(words.len(), 2); p.finish(words[1]).unwrap() }
            };
            prop_assert_eq!(got, h);
        }
    }

    #[test]
    fn zero_and_reserved_kinds_are_rejected() {
        assert_eq!(Word::decode(0), Err(WordError::ZeroKind { word: 0 }));
        assert!(matches!(
            Word::decode(0xFF00),
            Err(WordError::ZeroKind { .. })
        ));
        for k in 0xD..=0xFu64 {
            assert_eq!(
                Word::decode(k),
                Err(WordError::ReservedKind {
                    word: k,
                    kind: k as u8
                })
            );
        }
    }

    #[test]
    fn buffer_and_fin_words() {
        let w = Word::Buffer {
            offset: 0x1234_5678,
        }
        .encode();
        assert_eq!(w, 0x12_3456_7807);
        assert_eq!(
            Word::decode(w),
            Ok(Word::Buffer {
                offset: 0x1234_5678
            })
        );
        // Bits 4..=7 are reserved; the offset has 56 bits.
        assert_eq!(
            Word::decode(w | 0x10),
            Err(WordError::ReservedBits { word: w | 0x10 })
        );
        assert!(Word::Buffer {
            offset: MAX_OFFSET + 1
        }
        .try_encode()
        .is_err());
        let fin = Word::Fin { id: 7 }.encode();
        assert_eq!(fin, 0x705);
        assert!(
            Word::decode(fin | 1 << 40).is_err(),
            "FIN bits above the id"
        );
        let h = Header::new(3, Path::Rendezvous, 1 << 20).unwrap();
        assert_eq!(h.message_words(), 2, "envelope + BUFFER");
    }

    #[test]
    fn context_words() {
        let w = Word::Context { ctx: 0x2_0001 }.encode();
        assert_eq!(w, 0x200_010A);
        assert_eq!(Word::decode(w), Ok(Word::Context { ctx: 0x2_0001 }));
        // COMM_WORLD's context is implicit: a CONTEXT word naming it is not canonical.
        assert!(Word::decode(u64::from(kind::CONTEXT)).is_err());
        assert!(Word::Context { ctx: 0 }.try_encode().is_err());
        assert!(Word::Context {
            ctx: MAX_CONTEXT + 1
        }
        .try_encode()
        .is_err());
        assert_eq!(
            Word::decode(w | 0x40),
            Err(WordError::ReservedBits { word: w | 0x40 })
        );
        assert_eq!(kind::name(kind::CONTEXT), "CONTEXT");
    }

    #[test]
    fn share_and_wrote_words() {
        let w = Word::Share { offset: 0x40_0000 }.encode();
        assert_eq!(w, 0x4000_0008);
        assert_eq!(Word::decode(w), Ok(Word::Share { offset: 0x40_0000 }));
        assert_eq!(
            Word::decode(w | 0x80),
            Err(WordError::ReservedBits { word: w | 0x80 })
        );
        assert!(Word::Share {
            offset: MAX_OFFSET + 1
        }
        .try_encode()
        .is_err());
        let wrote = Word::Wrote { id: 9 }.encode();
        assert_eq!(wrote, 0x909);
        assert_eq!(Word::decode(wrote), Ok(Word::Wrote { id: 9 }));
        assert!(
            Word::decode(wrote | 1 << 40).is_err(),
            "WROTE bits above the id"
        );
        // FIN and WROTE carry the same field but are different kinds: a rank with rendezvous in
        // flight both ways tells "my payload was read" from "your share was written".
        assert_ne!(Word::Fin { id: 9 }.encode(), wrote);
    }

    #[test]
    fn sender_share_is_page_aligned_and_at_most_half() {
        for len in [
            0usize,
            4095,
            8192,
            32 << 10,
            (1 << 20) + 3,
            4 << 20,
            12345678,
        ] {
            let s = sender_share(len);
            assert_eq!(s % 4096, 0, "{len}");
            assert!(s <= len / 2, "{len}");
            assert!(len / 2 - s < 4096, "{len}");
        }
        assert_eq!(sender_share(4 << 20), 2 << 20);
    }

    #[test]
    fn field_validation() {
        // Envelope: bit 7, bit 39 (tag sign), path 3, long with a short length.
        let env = Word::Envelope {
            tag: 5,
            path: Path::Ring,
            len: EnvLen::Short(9),
            head: [0; HEAD_BYTES],
        }
        .encode();
        assert_eq!(env, 0x0000_0900_0000_0511);
        assert!(Word::decode(env).is_ok());
        assert!(matches!(
            Word::decode(env | 1 << 7),
            Err(WordError::ReservedBits { .. })
        ));
        assert!(matches!(
            Word::decode(env | 1 << 39),
            Err(WordError::ReservedBits { .. })
        ));
        assert!(matches!(
            Word::decode(env | 3 << 4),
            Err(WordError::BadField { field: "path", .. })
        ));
        assert!(matches!(
            Word::decode(env | ENV_LONG_BIT),
            Err(WordError::BadField { .. })
        ));
        // INLINE envelopes: 8 bits of length, then the head bytes, none set past the length; no
        // long form.
        let inline = |len: u64, head: u64| 0x01 | 5 << 8 | len << 40 | head << 48;
        assert_eq!(
            Word::decode(inline(1, 0x61)),
            Ok(Word::Envelope {
                tag: 5,
                path: Path::Inline,
                len: EnvLen::Short(1),
                head: [0x61, 0]
            })
        );
        for (len, head) in [(0, 1), (0, 0x100), (1, 0x6100)] {
            assert!(matches!(
                Word::decode(inline(len, head)),
                Err(WordError::NonCanonical { .. })
            ));
            assert!(Header::start(inline(len, head)).is_err());
        }
        assert!(matches!(
            Word::decode(inline(0, 0) | ENV_LONG_BIT),
            Err(WordError::BadField { .. })
        ));
        assert_eq!(
            Header::start(inline(255, 0xFFFF)),
            Ok(HeaderStart::Complete(Header {
                tag: 5,
                path: Path::Inline,
                len: 255
            }))
        );
        // Length above 2^31.
        let len = |n: u64| u64::from(kind::LENGTH) | n << 8;
        assert_eq!(
            Word::decode(len(1 << 31)),
            Ok(Word::Length { len: MAX_LEN })
        );
        assert_eq!(
            Word::decode(len((1 << 31) + 1)),
            Err(WordError::LengthOutOfRange((1 << 31) + 1))
        );
        assert!(matches!(
            Word::decode(len(1) | 1 << 40),
            Err(WordError::ReservedBits { .. })
        ));
        // Data: counts 0 and 8..=15, non-zero padding.
        for c in [0u64, 8, 15] {
            assert!(matches!(
                Word::decode(u64::from(kind::DATA) | c << 4),
                Err(WordError::BadField { field: "count", .. })
            ));
        }
        assert!(matches!(
            Word::decode(0x13 | 0xAB << 16),
            Err(WordError::NonCanonical { .. })
        ));
        assert_eq!(
            Word::decode(0xFFFF_FFFF_FFFF_FF73).unwrap().kind(),
            kind::DATA
        );
        // Credit: reserved unit, reserved high bits.
        assert!(matches!(
            Word::decode(0x24),
            Err(WordError::BadField { field: "unit", .. })
        ));
        assert!(matches!(
            Word::decode(0x04 | 1 << 63),
            Err(WordError::ReservedBits { .. })
        ));
        // Control: unknown op, finalize with argument, abort with a >32-bit argument.
        assert!(matches!(
            Word::decode(0x0006),
            Err(WordError::BadField {
                field: "control op",
                ..
            })
        ));
        assert!(matches!(
            Word::decode(0x1_0206),
            Err(WordError::BadField { .. })
        ));
        assert!(matches!(
            Word::decode(0x1_0000_0000_0306),
            Err(WordError::BadField { .. })
        ));
        assert_eq!(
            Word::decode(Word::Control(Control::Abort { code: -1 }).encode()),
            Ok(Word::Control(Control::Abort { code: -1 }))
        );
    }

    #[test]
    fn hand_built_words_are_validated() {
        let bad_tag = Word::Envelope {
            tag: 1 << 31,
            path: Path::Inline,
            len: EnvLen::Short(0),
            head: [0; HEAD_BYTES],
        };
        assert_eq!(bad_tag.try_encode(), Err(WordError::TagOutOfRange(1 << 31)));
        let inline = |len, head| Word::Envelope {
            tag: 1,
            path: Path::Inline,
            len,
            head,
        };
        assert!(inline(EnvLen::Short(255), [1, 2]).validate().is_ok());
        assert_eq!(
            inline(EnvLen::Short(256), [0, 0]).validate(),
            Err(WordError::InlineTooLong(256))
        );
        assert!(inline(EnvLen::Long, [0, 0]).validate().is_err());
        assert!(inline(EnvLen::Short(1), [1, 2]).validate().is_err());
        let ring_head = Word::Envelope {
            tag: 1,
            path: Path::Ring,
            len: EnvLen::Short(9),
            head: [1, 0],
        };
        assert!(ring_head.validate().is_err());
        assert_eq!(
            Header::new(0, Path::Inline, 256),
            Err(WordError::InlineTooLong(256))
        );
        assert_eq!(pack_inline(0, &[0; 256], &mut [0; 64]), None);
        assert_eq!(pack_inline(1 << 31, &[], &mut [0; 64]), None);
        assert!(Word::data(&[]).is_err());
        assert!(Word::data(&[0; 8]).is_err());
        assert!(Word::Data {
            count: 1,
            bytes: [1, 2, 0, 0, 0, 0, 0]
        }
        .validate()
        .is_err());
        assert!(Header::new(-1, Path::Inline, 0).is_err());
        assert!(Header::new(0, Path::Ring, (1 << 31) + 1).is_err());
        assert!(Header::new(i32::MAX, Path::Rendezvous, 1 << 31).is_ok());
    }

    #[test]
    fn small_messages_cost_few_words() {
        // 8 bytes: the envelope carries "ab", one DATA word "cdefgh".
        let h = Header::new(7, Path::Inline, 8).unwrap();
        assert_eq!(h.message_words(), 2);
        let mut words = [0; 3];
        assert_eq!(pack_inline(7, b"abcdefgh", &mut words), Some(2));
        assert_eq!(words[0], 0x6261_0800_0000_0701);
        assert_eq!(words[1], 0x0068_6766_6564_6363);
        // Up to 2 bytes: the envelope alone. 64 bytes: envelope + 9 DATA words.
        for (len, n) in [
            (0, 1),
            (1, 1),
            (2, 1),
            (3, 2),
            (9, 2),
            (10, 3),
            (64, 10),
            (112, 17),
        ] {
            assert_eq!(
                Header::new(0, Path::Inline, len).unwrap().message_words(),
                n,
                "{len}"
            );
        }
    }

    #[test]
    fn long_headers_need_a_canonical_length_word() {
        let h = Header::new(1, Path::Ring, 1 << 30).unwrap();
        let mut words = Vec::new();
        h.encode(&mut |w| words.push(w));
        let HeaderStart::NeedsLength(p) = Header::start(words[0]).unwrap() else {
            panic!("expected a long envelope");
        };
        assert_eq!(p.finish(words[1]), Ok(h));
        let short_len = Word::Length { len: 5 }.encode();
        assert!(matches!(
            p.finish(short_len),
            Err(WordError::NonCanonical { .. })
        ));
        assert!(matches!(
            p.finish(words[0]),
            Err(WordError::UnexpectedKind { .. })
        ));
        assert!(matches!(
            Header::start(words[1]),
            Err(WordError::UnexpectedKind { .. })
        ));
    }

    #[test]
    fn unpack_checks_bounds_kinds_and_canonical_form() {
        let mut words = vec![0; 4];
        assert_eq!(pack_inline(3, &[9u8; 20], &mut words), Some(4));
        let (env, data) = (words[0], &words[1..]);
        let mut small = [0u8; 19];
        assert_eq!(
            unpack(env, data, &mut small),
            Err(WordError::Overflow { capacity: 19 })
        );
        let mut buf = [0u8; 32];
        // 20 bytes: 2 in the envelope, then 7 + 7 + 4; a short word first is not canonical.
        let short_first = [
            data_word_from(0x0201, 2),
            data_word_from(0x03, 7),
            data_word_from(0x03, 7),
        ];
        assert!(matches!(
            unpack(env, &short_first, &mut buf),
            Err(WordError::NonCanonical { .. })
        ));
        assert!(matches!(
            unpack(env, &[Word::Fin { id: 1 }.encode()], &mut buf),
            Err(WordError::UnexpectedKind { .. })
        ));
        assert!(matches!(
            unpack(env, &[0], &mut buf),
            Err(WordError::ZeroKind { .. })
        ));
        // Not an INLINE envelope.
        let ring = Word::Envelope {
            tag: 3,
            path: Path::Ring,
            len: EnvLen::Short(20),
            head: [0; HEAD_BYTES],
        };
        assert!(matches!(
            unpack(ring.encode(), data, &mut buf),
            Err(WordError::UnexpectedKind { .. })
        ));
        assert!(matches!(
            unpack(data[0], data, &mut buf),
            Err(WordError::UnexpectedKind { .. })
        ));
        assert_eq!(unpack(env, data, &mut buf), Ok(20));
        assert_eq!(buf[..20], [9; 20]);
    }
}
