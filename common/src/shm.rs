//! A bounds-checked view of a shared-memory mapping.
//!
//! Every other VM (or process) attached to a pool can write any byte of it at any time, with any
//! access size, and Rust's memory model knows nothing of those writers. What this module does
//! about it, and what it relies on:
//!
//! * Every offset is checked against the mapping's length (and alignment, for words) before use.
//! * It never forms a Rust reference to plain bytes of the mapping (`&[u8]`, `&mut [u8]`, `&u64`),
//!   which would promise that nobody writes them while the reference lives. The only references it
//!   hands out are to atomics (`&AtomicU32`, `&AtomicU64`, `&[AtomicU64]`), whose type says that
//!   the value may change under them.
//! * Words (indices, mailbox slots, header fields) are loaded and stored as those aligned atomics,
//!   one access each (aligned 4- and 8-byte accesses are single-copy atomic on x86-64): a load
//!   returns a value a writer stored whole, never a mix, as long as writers store whole words, as
//!   this code does. A writer that stores a word piecemeal can still make a load a mix of its
//!   stores; it is then just another untrusted value.
//! * Byte ranges are copied in or out ([`Shm::read`], [`Shm::write`], [`Shm::fill_zero`]) through
//!   raw pointers with ordinary loads and stores (`memcpy`, or 16-byte SSE2 moves): neither
//!   volatile nor atomic. A copy that races with another VM's writes can give any mix of old and
//!   new bytes (a torn read). Within one program that would be a data race, which Rust does not
//!   define; the writers here are other processes the compiler never sees, and the code relies on
//!   each copy reading the mapping when it runs and on callers using only their private copy
//!   afterwards, never reading the same bytes of the mapping again and expecting them to agree.
//! * Nothing read is trusted. Callers validate every index, length and tag they load before using
//!   it, and treat copied payload as opaque bytes; the protocols read a range only after its writer
//!   published it (a Release store of an index, loaded with Acquire), so an honest writer's data is
//!   never torn, and a hostile writer can make what is read wrong, but not out of bounds.
//!
//! This is the only module of the crate with `unsafe` code.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A mapping of shared memory that stays valid for the lifetime of this value.
pub struct Shm {
    ptr: NonNull<u8>,
    len: usize,
    // Keeps the underlying mapping (an mmap of a memfd, a PCI BAR, ...) alive.
    _owner: Box<dyn Send + Sync>,
}

// SAFETY: a `Shm` is a pointer into a mapping and its length, kept alive by an owner that is
// itself Send + Sync; nothing in it belongs to the thread that made it.
unsafe impl Send for Shm {}
// SAFETY: `&Shm` only gives atomic accesses and raw-pointer copies (see the module docs). Threads of
// this process using one `Shm` at once are more concurrent accessors of the kind the module already
// expects from other VMs: their atomics are ordinary atomics, their copies may tear each other's
// bytes, and none of them holds a reference to plain bytes of the mapping.
unsafe impl Sync for Shm {}

impl std::fmt::Debug for Shm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shm")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .finish()
    }
}

impl Shm {
    /// Wraps `len` bytes at `ptr`, kept alive by `owner`.
    ///
    /// # Safety
    /// `ptr..ptr+len` must be a readable and writable mapping, aligned to at least 8 bytes, that stays
    /// mapped for as long as `owner` lives. Other processes may write it concurrently. Code in this
    /// process must not hold Rust references to its bytes (other than to atomics) while this value
    /// lives, and should access it only through this value (or its [`as_ptr`](Self::as_ptr), under
    /// the same rules as this module: see the module docs).
    ///
    /// # Example
    ///
    /// Heap memory standing in for a pool, as tests and examples do (a real pool is a mapping of
    /// the daemon's memory object, or an ivshmem device's BAR2):
    ///
    /// ```
    /// use snoo_common::Shm;
    /// use std::ptr::NonNull;
    /// use std::sync::atomic::Ordering;
    ///
    /// let mut mem = vec![0u64; 512]; // 4 KiB, 8-byte aligned
    /// let ptr = NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
    /// // SAFETY: the Vec's buffer is 4096 readable and writable bytes, 8-byte aligned. Moving the
    /// // Vec into the Shm as its owner does not move the buffer, which then lives as long as the
    /// // Shm, and nothing else accesses it.
    /// let shm = unsafe { Shm::from_raw(ptr, 4096, Box::new(mem)) };
    ///
    /// // Bytes are copied in and out; words are atomics.
    /// assert!(shm.write(8, b"snoo"));
    /// let mut name = [0u8; 4];
    /// assert!(shm.read(8, &mut name));
    /// assert_eq!(&name, b"snoo");
    /// shm.u64_at(16).unwrap().store(7, Ordering::Release);
    /// assert_eq!(shm.u64_at(16).unwrap().load(Ordering::Acquire), 7);
    ///
    /// // Out of bounds or misaligned: refused, nothing touched.
    /// assert!(!shm.read(4093, &mut name));
    /// assert!(shm.u64_at(4).is_none());
    /// assert!(shm.u32_at(4096).is_none());
    /// ```
    pub unsafe fn from_raw(ptr: NonNull<u8>, len: usize, owner: Box<dyn Send + Sync>) -> Self {
        debug_assert_eq!(ptr.as_ptr() as usize % 8, 0);
        Shm {
            ptr,
            len,
            _owner: owner,
        }
    }

    /// Length of the mapping in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the mapping is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Raw base pointer, for the few engine modules that copy bulk payloads. Whoever dereferences
    /// it takes on what the module docs describe: raw copies only, bytes that may change at any
    /// time, values untrusted.
    #[inline]
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    #[inline]
    fn check(&self, off: usize, size: usize, align: usize) -> Option<*mut u8> {
        let end = off.checked_add(size)?;
        if end > self.len || !off.is_multiple_of(align) {
            return None;
        }
        // SAFETY: off <= off + size <= len (checked, without overflow), so the result stays inside
        // the mapping, or one past its end for an empty range at the end.
        Some(unsafe { self.ptr.as_ptr().add(off) })
    }

    /// The 32-bit word at `off`, or `None` if it is out of bounds or misaligned.
    #[inline]
    pub fn u32_at(&self, off: usize) -> Option<&AtomicU32> {
        let p = self.check(off, 4, 4)?;
        // SAFETY: the 4 bytes at `p` are inside the mapping and 4-aligned (`off` is a multiple of 4
        // and the base 8-aligned, a `from_raw` requirement), readable and writable, and stay mapped
        // for as long as `&self` (so for the returned lifetime). AtomicU32 has the size and
        // alignment of u32, and a shared reference to an atomic allows the value to change under
        // it, which is what other VMs' writes do.
        Some(unsafe { &*(p as *const AtomicU32) })
    }

    /// The 64-bit word at `off`, or `None` if it is out of bounds or misaligned.
    #[inline]
    pub fn u64_at(&self, off: usize) -> Option<&AtomicU64> {
        let p = self.check(off, 8, 8)?;
        // SAFETY: as for `u32_at`, for 8 bytes at an 8-aligned `off`.
        Some(unsafe { &*(p as *const AtomicU64) })
    }

    /// `n` consecutive 64-bit words from `off`, or `None` if they are out of bounds or misaligned.
    /// For loops over many words (a mailbox's slots): one bounds check for all of them.
    #[inline]
    pub fn u64s(&self, off: usize, n: usize) -> Option<&[AtomicU64]> {
        let p = self.check(off, n.checked_mul(8)?, 8)?;
        // SAFETY: as for `u64_at`, for every one of the `n` words: all inside the mapping (checked
        // as one range of n * 8 bytes, without overflow), consecutive and 8-aligned.
        Some(unsafe { std::slice::from_raw_parts(p as *const AtomicU64, n) })
    }

    /// Copies `dst.len()` bytes from offset `off` out of the mapping. Returns false (copying nothing)
    /// if the range is out of bounds.
    #[inline]
    pub fn read(&self, off: usize, dst: &mut [u8]) -> bool {
        let Some(p) = self.check(off, dst.len(), 1) else {
            return false;
        };
        // SAFETY: the source range is inside the mapping (checked) and readable. `dst` is a
        // `&mut [u8]`, memory no other access may touch while it lives, so it does not overlap the
        // source (a `&mut` into the mapping would take `unsafe` code outside this crate that
        // promised nobody else accesses those bytes). Other VMs may write the source meanwhile:
        // the copy may then be torn, a mix of old and new bytes, which callers validate (module
        // docs); no reference to the source is formed.
        unsafe { copy_bytes(p, dst.as_mut_ptr(), dst.len()) };
        true
    }

    /// Copies `src` into the mapping at offset `off`. Returns false (writing nothing) if the range is
    /// out of bounds.
    #[inline]
    pub fn write(&self, off: usize, src: &[u8]) -> bool {
        let Some(p) = self.check(off, src.len(), 1) else {
            return false;
        };
        // SAFETY: the destination range is inside the mapping (checked) and writable. `src` is a
        // `&[u8]`, which nothing may write while it lives, so it does not overlap the destination
        // (for the same reason as in `read`). Other VMs reading the range meanwhile may see a mix
        // of old and new bytes; no reference to the destination is formed.
        unsafe { copy_bytes(src.as_ptr(), p, src.len()) };
        true
    }

    /// Asks for the cache line at `off` in a state fit for writing (x86 PREFETCHW), so that a
    /// store to it soon does not wait for the line to come over from another CPU. A hint only:
    /// out-of-bounds offsets are ignored, and it changes no memory.
    #[inline]
    pub fn prefetch_write(&self, off: usize) {
        #[cfg(target_arch = "x86_64")]
        if let Some(p) = self.check(off, 1, 1) {
            // SAFETY: PREFETCHW only hints the cache; it never faults and writes nothing (CPUs
            // without it execute the opcode as a NOP), and `p` is inside the mapping anyway.
            unsafe {
                std::arch::asm!("prefetchw [{}]", in(reg) p, options(nostack, preserves_flags, readonly))
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = off;
    }

    /// Reads one word in every 4 KiB page of `len` bytes at `off`, so that the pages are mapped
    /// in (and the memory behind them committed) now rather than by a page fault in the middle of
    /// a message. The values read are discarded. Returns false, touching nothing, if the range is
    /// out of bounds.
    pub fn touch_pages(&self, off: usize, len: usize) -> bool {
        const PAGE: usize = 4096;
        if self.check(off, len, 1).is_none() {
            return false;
        }
        let first = off & !7;
        let end = off + len;
        let mut at = first;
        while at < end {
            // (A last word reaching past the mapping's end is skipped by `u64_at`'s check.)
            if let Some(w) = self.u64_at(at) {
                std::hint::black_box(w.load(Ordering::Relaxed));
            }
            at = (at & !(PAGE - 1)) + PAGE;
        }
        true
    }

    /// Zeroes `len` bytes at `off`. Returns false if the range is out of bounds.
    pub fn fill_zero(&self, off: usize, len: usize) -> bool {
        let Some(p) = self.check(off, len, 1) else {
            return false;
        };
        // SAFETY: the range is inside the mapping (checked) and writable; plain stores through a raw
        // pointer, which concurrent readers may see half done (module docs).
        unsafe { std::ptr::write_bytes(p, 0, len) };
        true
    }
}

/// Bytes from which [`copy_bytes`] checks the relative placement of the two buffers.
const ALIAS_CHECK_MIN: usize = 2048;

/// True on AMD CPUs, where `rep movsb` suffers most from 4K aliasing (see [`copy_bytes`]). Asked
/// of the CPU once.
#[cfg(target_arch = "x86_64")]
fn movsb_aliases() -> bool {
    static AMD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AMD.get_or_init(|| {
        // CPUID leaf 0 exists on every x86-64 CPU (an `unsafe fn` before Rust 1.87 or so).
        #[allow(unused_unsafe)]
        // SAFETY: CPUID has no preconditions on x86-64.
        let id = unsafe { std::arch::x86_64::__cpuid(0) };
        // "AuthenticAMD" in EBX, EDX, ECX.
        (id.ebx, id.edx, id.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163)
    })
}

/// Bytes from which a copy on a CPU other than AMD's goes through `memcpy` even when the two
/// buffers alias (see [`copy_bytes`]).
const ALIAS_COPY_MAX: usize = 1 << 20;

/// `memcpy`, except when the destination starts 1 to 63 bytes past the source modulo 4 KiB, as a
/// receive buffer from `malloc` (page + 16 bytes) against a page-aligned pool buffer does: every
/// store of glibc's `rep movsb` copy then 4K-aliases a load about to be issued. On AMD Zen such a
/// copy runs at about a twentieth of its speed (measured on an EPYC host: 1.6 GB/s instead of
/// 30-40 GB/s for 128 KiB); on Intel it loses about an eighth (measured on a Xeon host: 44
/// against 50 GB/s at 32-256 KiB). Those copies go through 16-byte SSE2 moves instead, which do
/// not care. Except, on Intel, from [`ALIAS_COPY_MAX`] up: such a copy no longer fits the caches,
/// and `rep movsb` claims whole destination lines without reading them first (18-20 against
/// 14.5 GB/s into cold 1 MiB buffers, the rendezvous case).
///
/// # Safety
/// `src..src+len` readable, `dst..dst+len` writable, the two not overlapping.
#[inline]
unsafe fn copy_bytes(src: *const u8, dst: *mut u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    if len >= ALIAS_CHECK_MIN
        && (1..64).contains(&((dst as usize).wrapping_sub(src as usize) & 4095))
        && (len < ALIAS_COPY_MAX || movsb_aliases())
    {
        // SAFETY: forwarded from the caller.
        unsafe { copy_sse2(src, dst, len) };
        return;
    }
    // SAFETY: forwarded from the caller.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
}

/// 64 bytes per step with unaligned 16-byte loads and stores, then `memcpy` for the tail.
///
/// # Safety
/// As [`copy_bytes`].
#[cfg(target_arch = "x86_64")]
#[inline(never)]
unsafe fn copy_sse2(src: *const u8, dst: *mut u8, len: usize) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_storeu_si128};
    let mut i = 0;
    while i + 64 <= len {
        // SAFETY: i + 64 <= len, so all four 16-byte loads and stores are in range, and
        // `loadu`/`storeu` take unaligned addresses. SSE2 is part of x86-64.
        unsafe {
            let s = src.add(i) as *const __m128i;
            let d = dst.add(i) as *mut __m128i;
            let (a, b) = (_mm_loadu_si128(s), _mm_loadu_si128(s.add(1)));
            let (c, e) = (_mm_loadu_si128(s.add(2)), _mm_loadu_si128(s.add(3)));
            _mm_storeu_si128(d, a);
            _mm_storeu_si128(d.add(1), b);
            _mm_storeu_si128(d.add(2), c);
            _mm_storeu_si128(d.add(3), e);
        }
        i += 64;
    }
    // SAFETY: the remaining `len - i` bytes are in range.
    unsafe { std::ptr::copy_nonoverlapping(src.add(i), dst.add(i), len - i) };
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// A heap-backed `Shm` for unit tests.
    pub fn heap_shm(len: usize) -> Shm {
        let mut v = vec![0u64; len.div_ceil(8)];
        let ptr = NonNull::new(v.as_mut_ptr() as *mut u8).unwrap();
        // SAFETY: the Vec's buffer is 8-aligned, at least `len` readable and writable bytes, and
        // the Vec is moved into the owner, so the buffer lives as long as the Shm; moving a Vec
        // moves neither its buffer nor (unlike a Box) asserts unique access to it, so `ptr` stays
        // usable. Only the Shm accesses it.
        unsafe { Shm::from_raw(ptr, len, Box::new(v)) }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::heap_shm;
    use std::sync::atomic::Ordering;

    #[test]
    fn bounds_and_alignment_are_checked() {
        let shm = heap_shm(64);
        assert!(shm.u64_at(56).is_some());
        assert!(shm.u64_at(60).is_none(), "would run past the end");
        assert!(shm.u64_at(4).is_none(), "misaligned");
        assert!(shm.u32_at(usize::MAX - 1).is_none(), "overflowing offset");
        let mut buf = [0u8; 8];
        assert!(!shm.read(60, &mut buf));
        assert!(!shm.write(usize::MAX, &buf));
        assert!(shm.write(8, b"abcdefgh"));
        assert!(shm.read(8, &mut buf));
        assert_eq!(&buf, b"abcdefgh");
        shm.u32_at(0).unwrap().store(7, Ordering::Relaxed);
        assert_eq!(shm.u32_at(0).unwrap().load(Ordering::Relaxed), 7);
    }

    #[test]
    fn touching_pages_checks_bounds_and_changes_nothing() {
        let shm = heap_shm(3 * 4096);
        for i in 0..3 * 4096 / 8 {
            shm.u64_at(i * 8)
                .unwrap()
                .store(i as u64, Ordering::Relaxed);
        }
        assert!(shm.touch_pages(0, 3 * 4096));
        assert!(shm.touch_pages(4093, 5000), "unaligned start and length");
        assert!(shm.touch_pages(3 * 4096 - 1, 1), "the last byte");
        assert!(shm.touch_pages(3 * 4096, 0), "an empty range at the end");
        assert!(
            !shm.touch_pages(4096, 2 * 4096 + 1),
            "one byte past the end"
        );
        assert!(!shm.touch_pages(usize::MAX, 2), "overflowing range");
        for i in 0..3 * 4096 / 8 {
            assert_eq!(shm.u64_at(i * 8).unwrap().load(Ordering::Relaxed), i as u64);
        }
    }
}
