//! What a daemon serves: validated pool specifications.

use snoo_common::layout::{PoolGeometry, MAX_NAME_LEN, MAX_PEERS};
use snoo_common::protocol::MAX_VECTORS;
use std::path::PathBuf;

/// A configuration error, worded for the command line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A size that does not parse.
    #[error("invalid size {0:?}: expected a positive number with an optional K, M, G or T suffix (powers of 1024)")]
    Size(String),
    /// A size of 0.
    #[error("size must be greater than 0")]
    ZeroSize,
    /// A pool larger than the machine's memory.
    #[error("pool size {size} bytes (rounded up to a power of two) exceeds this machine's memory ({mem} bytes)")]
    TooLarge {
        /// The pool size, rounded up.
        size: u64,
        /// The machine's memory.
        mem: u64,
    },
    /// A pool geometry the layout refuses.
    #[error("{0}")]
    Layout(#[from] snoo_common::LayoutError),
    /// A vector count outside 1..=MAX_VECTORS.
    #[error("vectors must be between 1 and {MAX_VECTORS}, got {0}")]
    Vectors(u32),
    /// A peer limit outside 1..=MAX_PEERS.
    #[error("max peers must be between 1 and {MAX_PEERS}, got {0}")]
    MaxPeers(u32),
    /// A pool name that is empty, too long, or has `/` or NUL.
    #[error(
        "pool name must be 1 to {MAX_NAME_LEN} bytes, printable, without '/' or NUL, got {0:?}"
    )]
    Name(String),
    /// A socket path whose directory does not exist.
    #[error("the directory of socket {0:?} does not exist")]
    SocketDir(PathBuf),
    /// A socket path too long for `sockaddr_un`.
    #[error("socket path {0:?} is too long for a UNIX socket (at most 107 bytes)")]
    SocketPathLen(PathBuf),
    /// A `--mem-path` that is not a directory.
    #[error("--mem-path {0:?} is not a directory")]
    MemPath(PathBuf),
    /// A socket mode that is not octal permission bits.
    #[error("invalid socket mode {0:?}: expected octal permission bits such as 0600 or 660")]
    Mode(String),
    /// A `--pool` option that does not parse.
    #[error("invalid --pool {spec:?}: {why}")]
    PoolSpec {
        /// The option's value.
        spec: String,
        /// What is wrong with it.
        why: String,
    },
    /// Two pools with the same name or socket.
    #[error("two pools use {0}")]
    Duplicate(String),
    /// Nothing to serve.
    #[error("no pool to serve: give --socket and --size, or --pool")]
    NoPool,
}

/// One pool a daemon serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    /// The key guests pass to `SNOO_MPI_Init`.
    pub name: String,
    /// Where QEMU and host processes connect.
    pub socket: PathBuf,
    /// Bytes, already a power of two.
    pub size: u64,
    /// Doorbell vectors per peer.
    pub vectors: u32,
    /// Ranks of a job on this pool (0: set by the job).
    pub ranks: u32,
    /// Most peers connected at once; also bounds peer ids.
    pub max_peers: u32,
    /// Directory for a file-backed pool (/dev/shm, a hugetlbfs mount); memfd when `None`.
    pub mem_path: Option<PathBuf>,
}

/// Everything a daemon serves, plus access control shared by its pools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The pools, each with its own socket.
    pub pools: Vec<PoolSpec>,
    /// Permission bits applied to every socket file.
    pub socket_mode: u32,
    /// When either list is non-empty, only clients whose uid or gid is listed (or that run as the
    /// daemon's own uid) are served.
    pub allow_uids: Vec<u32>,
    /// Groups served (see `allow_uids`).
    pub allow_gids: Vec<u32>,
}

/// Doorbell vectors per peer unless `--vectors` says otherwise.
pub const DEFAULT_VECTORS: u32 = 1;
/// Most peers of a pool unless `--max-peers` says otherwise.
pub const DEFAULT_MAX_PEERS: u32 = 64;
/// Socket permissions unless `--socket-mode` says otherwise: the daemon's user only.
pub const DEFAULT_SOCKET_MODE: u32 = 0o600;
/// The pool name unless `--name` says otherwise.
pub const DEFAULT_NAME: &str = "snoo";

/// Parses `4096`, `64K`, `1M`, `2G`, `1T` (also `KiB`, `MB`, lower case): powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, ConfigError> {
    let err = || ConfigError::Size(s.to_string());
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    if digits.is_empty() {
        return Err(err());
    }
    let n: u64 = digits.parse().map_err(|_| err())?;
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(err()),
    };
    let v = n.checked_mul(1u64 << shift).ok_or_else(err)?;
    if v == 0 {
        return Err(ConfigError::ZeroSize);
    }
    Ok(v)
}

/// Parses an octal mode such as `0660` or `660`.
pub fn parse_mode(s: &str) -> Result<u32, ConfigError> {
    let t = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(t, 8) {
        Ok(m) if m <= 0o777 && !t.is_empty() => Ok(m),
        _ => Err(ConfigError::Mode(s.to_string())),
    }
}

fn physical_memory() -> u64 {
    nix::sys::sysinfo::sysinfo()
        .map(|i| i.ram_total())
        .unwrap_or(u64::MAX)
}

impl PoolSpec {
    /// Builds and validates a pool: the size is rounded up to a power of two and must fit the
    /// header, the peer table and at least a page of engine area, and must not exceed physical memory.
    pub fn new(
        name: &str,
        socket: PathBuf,
        size: u64,
        vectors: u32,
        ranks: u32,
        max_peers: u32,
        mem_path: Option<PathBuf>,
    ) -> Result<Self, ConfigError> {
        let bad_name = name.is_empty()
            || name.len() > MAX_NAME_LEN
            || name.chars().any(|c| c == '/' || c.is_control());
        if bad_name {
            return Err(ConfigError::Name(name.to_string()));
        }
        if size == 0 {
            return Err(ConfigError::ZeroSize);
        }
        if vectors == 0 || vectors > MAX_VECTORS {
            return Err(ConfigError::Vectors(vectors));
        }
        if max_peers == 0 || max_peers > MAX_PEERS {
            return Err(ConfigError::MaxPeers(max_peers));
        }
        let size = size
            .checked_next_power_of_two()
            .ok_or(ConfigError::ZeroSize)?
            .max(4096);
        let mem = physical_memory();
        if size > mem {
            return Err(ConfigError::TooLarge { size, mem });
        }
        PoolGeometry::new(size, max_peers)?;
        if socket.as_os_str().len() > 107 {
            return Err(ConfigError::SocketPathLen(socket));
        }
        let dir = match socket.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(ConfigError::SocketDir(socket));
        }
        if let Some(m) = &mem_path {
            if !m.is_dir() {
                return Err(ConfigError::MemPath(m.clone()));
            }
        }
        Ok(PoolSpec {
            name: name.to_string(),
            socket,
            size,
            vectors,
            ranks,
            max_peers,
            mem_path,
        })
    }

    /// Parses `name=NAME,socket=PATH,size=SIZE[,vectors=N][,ranks=N][,max-peers=N][,mem-path=DIR]`.
    pub fn parse(spec: &str) -> Result<Self, ConfigError> {
        let bad = |why: &str| ConfigError::PoolSpec {
            spec: spec.to_string(),
            why: why.to_string(),
        };
        let (mut name, mut socket, mut size, mut mem_path) = (None, None, None, None);
        let (mut vectors, mut ranks, mut max_peers) = (DEFAULT_VECTORS, 0, DEFAULT_MAX_PEERS);
        for item in spec.split(',') {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| bad(&format!("{item:?} is not key=value")))?;
            let num = |v: &str| {
                v.parse::<u32>()
                    .map_err(|_| bad(&format!("{k}={v} is not a number")))
            };
            match k {
                "name" => name = Some(v.to_string()),
                "socket" => socket = Some(PathBuf::from(v)),
                "size" => size = Some(parse_size(v)?),
                "vectors" => vectors = num(v)?,
                "ranks" => ranks = num(v)?,
                "max-peers" => max_peers = num(v)?,
                "mem-path" => mem_path = Some(PathBuf::from(v)),
                _ => return Err(bad(&format!("unknown key {k:?}"))),
            }
        }
        let name = name.ok_or_else(|| bad("name= is required"))?;
        let socket = socket.ok_or_else(|| bad("socket= is required"))?;
        let size = size.ok_or_else(|| bad("size= is required"))?;
        Self::new(&name, socket, size, vectors, ranks, max_peers, mem_path)
    }
}

impl ServerConfig {
    /// Checks that no two pools share a name or a socket.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.pools.is_empty() {
            return Err(ConfigError::NoPool);
        }
        for (i, a) in self.pools.iter().enumerate() {
            for b in &self.pools[i + 1..] {
                if a.name == b.name {
                    return Err(ConfigError::Duplicate(format!("the name {:?}", a.name)));
                }
                if a.socket == b.socket {
                    return Err(ConfigError::Duplicate(format!("the socket {:?}", a.socket)));
                }
            }
        }
        Ok(())
    }

    /// A single-pool configuration with defaults, as used by tests and the launcher.
    pub fn single(spec: PoolSpec) -> Self {
        ServerConfig {
            pools: vec![spec],
            socket_mode: DEFAULT_SOCKET_MODE,
            allow_uids: Vec::new(),
            allow_gids: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("3MiB"), Ok(3 << 20));
        assert_eq!(parse_size("0"), Err(ConfigError::ZeroSize));
        for bad in ["", "M", "1X", "-1", "1.5M", "99999999999T"] {
            assert!(
                matches!(parse_size(bad), Err(ConfigError::Size(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0660"), Ok(0o660));
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert!(parse_mode("0999").is_err());
        assert!(parse_mode("7777").is_err());
        assert!(parse_mode("").is_err());
    }

    #[test]
    fn pool_specs() {
        let p = PoolSpec::parse("name=a,socket=/tmp/a.sock,size=3M,vectors=4,ranks=2").unwrap();
        assert_eq!(
            (p.size, p.vectors, p.ranks, p.max_peers),
            (4 << 20, 4, 2, DEFAULT_MAX_PEERS)
        );
        assert!(PoolSpec::parse("name=a,size=1M").is_err());
        assert!(PoolSpec::parse("name=a,socket=/tmp/a,size=1M,colour=red").is_err());
        assert!(PoolSpec::parse("name=a,socket=/nonexistent-dir/a,size=1M").is_err());
        assert!(PoolSpec::parse("name=a/b,socket=/tmp/a,size=1M").is_err());
        assert!(PoolSpec::parse("name=a,socket=/tmp/a,size=1M,vectors=0").is_err());
        assert!(PoolSpec::parse("name=a,socket=/tmp/a,size=1M,vectors=257").is_err());
        assert!(matches!(
            PoolSpec::parse("name=a,socket=/tmp/a,size=16384T"),
            Err(ConfigError::TooLarge { .. })
        ));
        assert!(matches!(
            PoolSpec::parse("name=a,socket=/tmp/a,size=4K,max-peers=65536"),
            Err(ConfigError::Layout(_))
        ));
    }
}
