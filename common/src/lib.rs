//! Contracts shared by the SNOO host daemon and the guest library.
//!
//! Nothing in this crate performs I/O: it defines what travels on the daemon's socket
//! ([`protocol`]), how a pool's shared memory is laid out ([`layout`], [`job`], the rings in
//! [`ring`], the collective areas in [`collective_area`]) and a bounds-checked view of
//! that memory ([`shm`]), which every VM can write and so must be treated as untrusted.

#![deny(missing_docs)]

pub mod collective_area;
pub mod job;
pub mod layout;
pub mod protocol;
pub mod register;
pub mod ring;
pub mod shm;

pub use layout::{LayoutError, PoolGeometry, PoolHeader};
pub use register::{Header, Path, Word, WordError};
pub use ring::{
    ByteConsumer, ByteProducer, ByteRing, RingError, WordConsumer, WordFifo, WordProducer,
};
pub use shm::Shm;
