//! The handle to the pool mapping that every ring of the engine holds.

use crate::device::Device;
use snoo_common::Shm;
use std::borrow::Borrow;
use std::sync::Arc;

/// A handle to the pool mapping that the ring types can hold. It caches the address of the
/// device's `Shm`: every ring operation borrows it, and going through `dyn Device` each time
/// cost a virtual call per mailbox word.
#[derive(Clone)]
pub(super) struct Pool {
    // Keeps the device, and so the mapping, alive.
    _dev: Arc<dyn Device>,
    shm: std::ptr::NonNull<Shm>,
}

impl Pool {
    pub(super) fn new(dev: Arc<dyn Device>) -> Pool {
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
