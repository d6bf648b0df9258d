//! Peer death, seen by the survivors (used by tests/tests/failures.rs, and a demonstration).
//!
//! Three ranks: rank 0 streams messages of mixed sizes to rank 1 until it is killed; rank 1 receives
//! them until its receive reports the death (`PeerDead`), prints `dead after N messages`, and then
//! ping-pongs 100 messages with rank 2 to show the survivors still talk; rank 2 answers them.
//! Exit code: 0 on success, else the SNOO_MPI error code.

use snoo_mpi::Error;
use std::io::Write;
use std::process::ExitCode;

fn run() -> snoo_mpi::Result<()> {
    let name = std::env::var("SNOO_NAME").unwrap_or_else(|_| "snoo".into());
    let w = snoo_mpi::init(&name)?;
    let sizes = [8usize, 100, 5000, 70_000, 1 << 20, 3];
    match w.rank() {
        0 => {
            let data = vec![0x5Au8; 1 << 20];
            let mut i = 0usize;
            loop {
                w.send(&data[..sizes[i % sizes.len()]], 1, 1)?;
                i += 1;
            }
        }
        1 => {
            let mut buf = vec![0u8; 1 << 20];
            let mut n = 0u64;
            loop {
                match w.recv(&mut buf, Some(0), Some(1)) {
                    Ok(st) => {
                        if buf[..st.bytes].iter().any(|&b| b != 0x5A) {
                            return Err(Error::Arg(format!("message {n} corrupted")));
                        }
                        n += 1;
                        if n == 1 {
                            println!("streaming");
                            std::io::stdout().flush().ok();
                        }
                    }
                    Err(Error::PeerDead(0)) => break,
                    Err(e) => return Err(e),
                }
            }
            println!("dead after {n} messages");
            std::io::stdout().flush().ok();
            for i in 0..100 {
                w.send(&[i as u32; 16], 2, 2)?;
                let mut back = [0u32; 16];
                w.recv(&mut back, Some(2), Some(2))?;
                if back != [i as u32 + 1; 16] {
                    return Err(Error::Arg("survivor traffic corrupted".into()));
                }
            }
            println!("survivors ok");
        }
        _ => {
            for _ in 0..100 {
                let mut v = [0u32; 16];
                w.recv(&mut v, Some(1), Some(2))?;
                w.send(&[v[0] + 1; 16], 1, 2)?;
            }
        }
    }
    // Finalize completes our own sends; the dead rank never finalizes, which is fine.
    w.finalize()
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("failover: {e}");
            ExitCode::from(u8::try_from(e.code()).unwrap_or(1))
        }
    }
}
