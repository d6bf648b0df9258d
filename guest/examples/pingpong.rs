//! A SNOO_MPI job: rank 0 and rank 1 ping-pong messages of growing size, checking every byte, and
//! report round-trip time and bandwidth; other ranks only join and leave.
//!
//! ```text
//! snoo-run -n 2 --name demo target/release/examples/pingpong [MAX_BYTES] [ITERATIONS]
//! ```
//! The pool name comes from `SNOO_NAME` (set by snoo-run), else "snoo".

use std::process::ExitCode;
use std::time::Instant;

fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(131) ^ seed.wrapping_mul(7)) as u8)
        .collect()
}

fn run() -> snoo_mpi::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let max: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4 << 20);
    let iters: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100);
    let name = std::env::var("SNOO_NAME").unwrap_or_else(|_| "snoo".into());
    let world = snoo_mpi::init(&name)?;
    let (rank, size) = (world.rank(), world.size());
    if size < 2 {
        return Err(snoo_mpi::Error::Arg(
            "pingpong needs at least 2 ranks".into(),
        ));
    }
    if rank == 0 {
        println!("# SNOO_MPI ping-pong, {size} ranks, pool {name:?}");
        println!("# {:>10} {:>14} {:>12}", "bytes", "round trip us", "MB/s");
    }
    let mut len = 0usize;
    while len <= max {
        let data = pattern(len, len);
        let mut buf = vec![0u8; len];
        let n = if len >= 1 << 20 {
            iters.div_ceil(10).max(2)
        } else {
            iters
        };
        let t0 = Instant::now();
        for i in 0..n {
            let tag = (i % 1000) as i32;
            if rank == 0 {
                world.send(&data, 1, tag)?;
                world.recv(&mut buf, Some(1), Some(tag))?;
            } else if rank == 1 {
                world.recv(&mut buf, Some(0), Some(tag))?;
                world.send(&buf, 0, tag)?;
            }
        }
        let rtt = t0.elapsed().as_secs_f64() / n as f64;
        if rank <= 1 && buf != data {
            return Err(snoo_mpi::Error::Arg(format!(
                "rank {rank}: {len}-byte message corrupted"
            )));
        }
        if rank == 0 {
            let mbs = if rtt > 0.0 {
                2.0 * len as f64 / rtt / 1e6
            } else {
                0.0
            };
            println!("  {len:>10} {:>14.2} {mbs:>12.1}", rtt * 1e6);
        }
        len = if len == 0 { 1 } else { len * 4 };
    }
    world.finalize()
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pingpong: {e}");
            ExitCode::from(u8::try_from(e.code()).unwrap_or(1))
        }
    }
}
