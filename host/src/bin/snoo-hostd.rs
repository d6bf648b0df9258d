//! snoo-hostd: serves named shared-memory pools to QEMU guests (`-device ivshmem-doorbell`) and to
//! host processes, speaking QEMU's ivshmem-server protocol.

use clap::Parser;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use snoo_host::config::{
    parse_mode, ConfigError, PoolSpec, ServerConfig, DEFAULT_MAX_PEERS, DEFAULT_NAME,
    DEFAULT_VECTORS,
};
use snoo_host::{parse_size, Daemon};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

/// Serve SNOO shared-memory pools over QEMU's ivshmem-server protocol.
///
/// Simple form: one pool from --socket/--size/--vectors/--name/--ranks/--max-peers/--mem-path.
/// Several pools: repeat --pool name=NAME,socket=PATH,size=SIZE[,vectors=N][,ranks=N][,max-peers=N][,mem-path=DIR].
/// Runs in the foreground; SIGTERM or SIGINT removes the sockets and exits 0. Log level: RUST_LOG.
#[derive(Parser, Debug)]
#[command(name = "snoo-hostd", version, about, long_about)]
struct Cli {
    /// UNIX socket QEMU and host processes connect to (simple form).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Pool size in bytes, with optional K/M/G/T suffix; rounded up to a power of two.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    size: Option<u64>,
    /// Doorbell vectors per peer (QEMU's ivshmem `vectors=` must match), 1-256.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_VECTORS)]
    vectors: u32,
    /// Pool name: the key SNOO_MPI_Init(name) looks for.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_NAME)]
    name: String,
    /// Ranks of a job on this pool (0: each job says).
    #[arg(long, value_name = "N", default_value_t = 0)]
    ranks: u32,
    /// Most peers connected at once (bounds peer ids and the peer table).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_PEERS)]
    max_peers: u32,
    /// Back the pool with a file in DIR (e.g. /dev/shm or a hugetlbfs mount) instead of a memfd.
    #[arg(long, value_name = "DIR")]
    mem_path: Option<PathBuf>,
    /// Another pool, as name=NAME,socket=PATH,size=SIZE[,vectors=N][,ranks=N][,max-peers=N][,mem-path=DIR].
    #[arg(long = "pool", value_name = "SPEC", value_parser = PoolSpec::parse)]
    pools: Vec<PoolSpec>,
    /// Permission bits of the socket files, in octal.
    #[arg(long, value_name = "MODE", default_value = "0600", value_parser = parse_mode)]
    socket_mode: u32,
    /// Serve only clients with this uid (repeatable; the daemon's own uid is always served).
    #[arg(long = "allow-uid", value_name = "UID")]
    allow_uids: Vec<u32>,
    /// Serve only clients with this gid (repeatable).
    #[arg(long = "allow-gid", value_name = "GID")]
    allow_gids: Vec<u32>,
}

impl Cli {
    fn into_config(self) -> Result<ServerConfig, ConfigError> {
        let mut pools = Vec::new();
        match (self.socket, self.size) {
            (Some(socket), Some(size)) => pools.push(PoolSpec::new(
                &self.name,
                socket,
                size,
                self.vectors,
                self.ranks,
                self.max_peers,
                self.mem_path,
            )?),
            (Some(_), None) => {
                return Err(ConfigError::PoolSpec {
                    spec: "--socket".into(),
                    why: "--size is required with --socket".into(),
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::PoolSpec {
                    spec: "--size".into(),
                    why: "--socket is required with --size".into(),
                })
            }
            (None, None) => {}
        }
        pools.extend(self.pools);
        let config = ServerConfig {
            pools,
            socket_mode: self.socket_mode,
            allow_uids: self.allow_uids,
            allow_gids: self.allow_gids,
        };
        config.validate()?;
        Ok(config)
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match Cli::parse().into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("snoo-hostd: {e}");
            return ExitCode::from(2);
        }
    };
    // Block the stop signals and read them from a signalfd, so the event loop handles them in turn.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    let stop = mask
        .thread_block()
        .and_then(|_| SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC));
    let stop = match stop {
        Ok(s) => s,
        Err(e) => {
            eprintln!("snoo-hostd: cannot set up signal handling: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut daemon = match Daemon::bind(&config) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("snoo-hostd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = daemon.run(stop.as_fd());
    drop(daemon);
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("snoo-hostd: {e}");
            ExitCode::FAILURE
        }
    }
}
