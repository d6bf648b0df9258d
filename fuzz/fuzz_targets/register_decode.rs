//! Register words come from another VM: decoding any 64-bit value must never panic, an accepted
//! word must re-encode to the same bits, and inline payload unpacking must stay in bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snoo_common::register::{unpack, Header, HeaderStart, Word};

fuzz_target!(|data: &[u8]| {
    let words: Vec<u64> = data
        .chunks(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect();
    for &w in &words {
        if let Ok(word) = Word::decode(w) {
            assert_eq!(word.encode(), w, "accepted words have one encoding");
        }
    }
    if let Some((&first, rest)) = words.split_first() {
        if let Ok(HeaderStart::NeedsLength(p)) = Header::start(first) {
            if let Some(&second) = rest.first() {
                let _ = p.finish(second);
            }
        }
    }
    if let Some((&first, rest)) = words.split_first() {
        let mut buf = [0u8; 64];
        if let Ok(n) = unpack(first, rest, &mut buf) {
            assert!(n <= buf.len());
        }
    }
});
