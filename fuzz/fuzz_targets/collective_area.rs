//! A collective area is announced by another member and written by it: any announcement, heap
//! and area contents must be refused or give positions inside the owner's heap, and reading a
//! cell as the guest does (length checked first) must stay inside the area.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snoo_common::collective_area::{check_len, Announce, Area, Flag, CELL, DEPTH, SIZE};
use snoo_common::Shm;
use std::ptr::NonNull;

const LEN: usize = 2 * SIZE + 4096;

fn word(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    let part = b.get(i..).unwrap_or(&[]);
    let n = part.len().min(8);
    w[..n].copy_from_slice(&part[..n]);
    u64::from_le_bytes(w)
}

fuzz_target!(|data: &[u8]| {
    let mut mem = vec![0u64; LEN / 8];
    let ptr = NonNull::new(mem.as_mut_ptr() as *mut u8).unwrap();
    // SAFETY: the Vec's buffer is 8-aligned, LEN readable and writable bytes, and lives as long
    // as the Shm that owns the Vec (moving a Vec moves neither its buffer nor, unlike a Box,
    // asserts unique access to it); only the Shm accesses it.
    let shm = unsafe { Shm::from_raw(ptr, LEN, Box::new(mem)) };
    // 16 bytes of announcement, 16 of heap, 8 of collective number, 8 of expected length; the
    // rest is written over the area as the owner would.
    let (steer, contents) = data.split_at(data.len().min(48));
    let mut rec = [0u8; Announce::BYTES];
    let n = steer.len().min(16);
    rec[..n].copy_from_slice(&steer[..n]);
    let announced = Announce::decode(&rec);
    // The job's layout puts every heap inside the pool; the fuzzer picks where.
    let start = (word(steer, 16) % LEN as u64) as usize;
    let heap = (start, (word(steer, 24) % (LEN - start + 1) as u64) as usize);
    let k = word(steer, 32);
    let want = (word(steer, 40) % (2 * CELL as u64)) as usize;
    let Ok(a) = Area::check(announced, heap) else {
        return;
    };
    let (off, end) = (a.offset(), heap.0 + heap.1);
    assert!(off % 64 == 0 && off >= heap.0 && off + SIZE <= end && end <= LEN);
    shm.write(off, &contents[..contents.len().min(SIZE)]);
    for k in [k, k.wrapping_add(1), k.wrapping_add(DEPTH), u64::MAX] {
        for f in [a.flag(Flag::Arrive), a.flag(Flag::Done), a.len_at(k)] {
            assert!(
                f >= off && f + 8 <= off + 128,
                "a word of the area's header"
            );
            let v = shm.u64_at(f).expect("aligned and in the pool");
            let _ = v.load(std::sync::atomic::Ordering::Acquire) >= a.target(k);
        }
        let _ = a.reused_after(k);
        let cell = a.cell(k);
        assert!(cell >= off + 128 && cell + CELL <= off + SIZE);
        let got = shm
            .u64_at(a.len_at(k))
            .unwrap()
            .load(std::sync::atomic::Ordering::Acquire);
        if check_len(got, want).is_ok() {
            assert!(got == want as u64 && want <= CELL);
            let mut buf = vec![0u8; want];
            shm.read(cell, &mut buf);
        }
    }
});
