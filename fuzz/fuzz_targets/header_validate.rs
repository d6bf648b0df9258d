//! The pool header is writable by every VM: validating arbitrary bytes must never panic, and an
//! accepted header must describe a geometry inside the mapping.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snoo_common::layout::PoolHeader;
use snoo_common::Shm;
use std::ptr::NonNull;

fuzz_target!(|data: &[u8]| {
    let len = 1 << 16;
    let mut mem = vec![0u64; len / 8];
    let ptr = NonNull::new(mem.as_mut_ptr() as *mut u8).unwrap();
    // SAFETY: the Vec's buffer is 8-aligned, `len` readable and writable bytes, and lives as long
    // as the Shm that owns the Vec (moving a Vec moves neither its buffer nor, unlike a Box,
    // asserts unique access to it); only the Shm accesses it.
    let shm = unsafe { Shm::from_raw(ptr, len, Box::new(mem)) };
    // Start from a valid header so that the fuzzer explores past the magic: its bytes are XORed
    // over the header, the peer table and the first engine page.
    PoolHeader::initialize(&shm, "fuzz", 4, 2, 64).unwrap();
    let n = data.len().min(8192);
    let mut cur = vec![0u8; n];
    shm.read(0, &mut cur);
    for (c, d) in cur.iter_mut().zip(data) {
        *c ^= d;
    }
    shm.write(0, &cur);
    if let Ok((h, info)) = PoolHeader::open(&shm) {
        let g = info.geometry;
        assert!(g.engine_offset + g.engine_size <= len as u64);
        for id in 0..g.max_peers.min(4096) {
            let _ = h.peer(id);
        }
        let _ = h.epoch();
    }
});
