//! A ring's indices and contents are written by the other side, possibly hostile: attaching a
//! consumer to arbitrary bytes and reading must never panic, read out of bounds or loop forever.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snoo_common::register::{inline_header, unpack};
use snoo_common::ring::{ByteConsumer, ByteRing, Head, WordConsumer, WordFifo};
use snoo_common::Shm;
use std::ptr::NonNull;

const WORDS: usize = 64;
const BYTES: usize = 256;

fuzz_target!(|data: &[u8]| {
    let len = WordFifo::footprint(WORDS) + ByteRing::footprint(BYTES);
    let mut mem = vec![0u64; len.div_ceil(8)];
    let ptr = NonNull::new(mem.as_mut_ptr() as *mut u8).unwrap();
    // SAFETY: the Vec's buffer is 8-aligned, at least `len` readable and writable bytes, and lives
    // as long as the Shm that owns the Vec (moving a Vec moves neither its buffer nor, unlike a
    // Box, asserts unique access to it); only the Shm accesses it.
    let shm = unsafe { Shm::from_raw(ptr, len, Box::new(mem)) };
    // The first bytes steer the reads; the rest become the shared memory, indices included.
    let (steer, mem_bytes) = data.split_at(data.len().min(16));
    shm.write(0, &mem_bytes[..mem_bytes.len().min(len)]);
    let ring_off = WordFifo::footprint(WORDS);
    if let Ok(mut c) = WordConsumer::new(&shm, 0, WORDS) {
        for _ in 0..(WORDS * 2) {
            match c.pop() {
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        c.release();
    }
    // As the receive paths read the mailbox head: whole INLINE messages by their envelopes'
    // word counts (the engine's scratch holds 17 words), anything else word by word.
    if let Ok(mut c) = WordConsumer::new(&shm, 0, WORDS) {
        let mut scratch = [0u64; 17];
        for _ in 0..(WORDS * 2) {
            let mut hdr = None;
            match c.peek_message(&mut scratch, |w| {
                hdr = inline_header(w);
                hdr.map(|h| h.words())
            }) {
                Ok(Head::Whole(n)) => {
                    assert!(n <= scratch.len() && hdr.is_some_and(|h| h.words() == n));
                    let mut out = [0u8; 255];
                    let _ = unpack(scratch[0], &scratch[1..n], &mut out);
                    c.consume(n);
                }
                Ok(Head::Other(_)) => match c.pop() {
                    Ok(Some(_)) => {}
                    _ => break,
                },
                Ok(Head::Empty | Head::Partial) | Err(_) => break,
            }
        }
    }
    if let Ok(mut c) = ByteConsumer::new(&shm, ring_off, BYTES) {
        let mut buf = [0u8; BYTES * 2];
        for &s in steer {
            let want = (s as usize % buf.len()) + 1;
            match c.read_some(&mut buf[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => assert!(n <= want),
            }
        }
    }
});
