//! Two host processes standing in for two VMs: they join a pool through `snoo-hostd`, pass a message
//! through the shared memory and wake each other with doorbells (the emulated inter-core interrupt).
//!
//! ```text
//! snoo-hostd --socket /tmp/snoo.sock --size 1M &
//! cargo run --release -p snoo-mpi --example pool_demo -- /tmp/snoo.sock pong &
//! cargo run --release -p snoo-mpi --example pool_demo -- /tmp/snoo.sock ping 10000
//! ```
//! `ping` sends ROUNDS messages, each answered by `pong`, and prints the round-trip time. This uses
//! the raw device layer; SNOO_MPI programs use the MPI-like API instead.

use snoo_common::layout::PoolHeader;
use snoo_mpi::device::{Device, SocketDevice};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(sock), Some(role)) = (args.get(1), args.get(2)) else {
        return Err("usage: pool_demo SOCKET ping|pong [ROUNDS]".into());
    };
    let rounds: u64 = args
        .get(3)
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(10_000);
    let dev = SocketDevice::connect(sock.as_ref(), T)?;
    let (_, info) = PoolHeader::open(dev.shm())?;
    // Two counters in the engine area, one per direction, each on its own cache line.
    let base = info.geometry.engine_offset as usize;
    let (ping_word, pong_word) = (
        dev.shm().u64_at(base).unwrap(),
        dev.shm().u64_at(base + 64).unwrap(),
    );
    println!(
        "{role}: joined pool {:?} as peer {} ({} bytes)",
        info.name,
        dev.own_id(),
        dev.shm().len()
    );
    let deadline = Instant::now() + T;
    let peer = loop {
        if let Some(&p) = dev.peers().first() {
            break p;
        }
        if Instant::now() > deadline {
            return Err("no peer joined within 10 s".into());
        }
        dev.wait(0, Duration::from_millis(50))?;
    };
    // Waits spin briefly on the shared word, then sleep on the doorbell: the doorbell is a wake-up,
    // the word is the message.
    let await_value = |word: &std::sync::atomic::AtomicU64, want: u64| -> Result<(), String> {
        let deadline = Instant::now() + T;
        while word.load(Ordering::Acquire) < want {
            if Instant::now() > deadline {
                return Err(format!("peer did not answer message {want}"));
            }
            dev.wait(0, Duration::from_millis(1))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    match role.as_str() {
        "ping" => {
            ping_word.store(0, Ordering::Release);
            let t0 = Instant::now();
            for i in 1..=rounds {
                ping_word.store(i, Ordering::Release);
                dev.doorbell(peer, 0)?;
                await_value(pong_word, i)?;
            }
            let rtt = t0.elapsed() / rounds.max(1) as u32;
            ping_word.store(u64::MAX, Ordering::Release);
            dev.doorbell(peer, 0)?;
            println!("ping: {rounds} round trips through shared memory + doorbells, {rtt:?} each");
        }
        "pong" => {
            let mut i = 0;
            loop {
                await_value(ping_word, i + 1)?;
                i = ping_word.load(Ordering::Acquire);
                if i == u64::MAX {
                    break;
                }
                pong_word.store(i, Ordering::Release);
                dev.doorbell(peer, 0)?;
            }
            println!("pong: answered every message");
        }
        other => return Err(format!("unknown role {other:?}: use ping or pong").into()),
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pool_demo: {e}");
            ExitCode::FAILURE
        }
    }
}
