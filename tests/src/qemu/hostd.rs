//! `snoo-hostd` for a test: finding (and building) the binary, and running it until dropped.

use super::console::{reader_thread, Console, Shared};
use super::spawn::spawn_orphan_proof;
use super::with_context;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The `snoo-hostd` binary: `SNOO_HOSTD` if set, else `target/<profile>/snoo-hostd` next to the
/// running test, (re)built once per process with `cargo build -p snoo-host --bin snoo-hostd` so that
/// `cargo test -p snoo-tests` never runs a stale daemon.
pub fn hostd_binary() -> io::Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| locate_hostd().map_err(|e| e.to_string()))
        .clone()
        .map_err(io::Error::other)
}

/// `SNOO_HOSTD`, else the freshly built `snoo-hostd` (or a stale one, with a warning, if the build
/// fails).
fn locate_hostd() -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os("SNOO_HOSTD") {
        return Ok(PathBuf::from(p));
    }
    let bin = crate::profile_dir()?.join("snoo-hostd");
    match crate::cargo_build(&["-p", "snoo-host", "--bin", "snoo-hostd"]) {
        Ok(_) if bin.is_file() => Ok(bin),
        result => {
            let why = match result {
                Ok(_) => "it produced no binary".to_string(),
                Err(e) => e.to_string(),
            };
            if bin.is_file() {
                eprintln!(
                    "warning: could not rebuild snoo-hostd ({why}); using {}",
                    bin.display()
                );
                Ok(bin)
            } else {
                Err(io::Error::other(format!(
                    "snoo-hostd not found at {} and `cargo build -p snoo-host` failed: {why}",
                    bin.display()
                )))
            }
        }
    }
}

/// A running `snoo-hostd`, stopped (SIGTERM, then SIGKILL) on drop.
pub struct HostDaemon {
    child: Child,
    socket: PathBuf,
    log: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HostDaemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostDaemon")
            .field("pid", &self.child.id())
            .field("socket", &self.socket)
            .finish()
    }
}

impl HostDaemon {
    /// Starts `snoo-hostd --socket SOCKET ARGS...` and waits until the socket is listening.
    pub fn start(socket: &Path, args: &[&str]) -> io::Result<HostDaemon> {
        let bin = hostd_binary()?;
        let mut cmd = Command::new(&bin);
        cmd.arg("--socket")
            .arg(socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = spawn_orphan_proof(cmd)
            .map_err(|e| with_context(e, format!("starting {}", bin.display())))?;
        let log = Arc::new(Shared {
            console: Mutex::new(Console::default()),
            cond: Condvar::new(),
        });
        let reader = reader_thread(child.stderr.take().expect("piped"), log.clone(), false);
        let mut d = HostDaemon {
            child,
            socket: socket.to_path_buf(),
            log,
            reader: Some(reader),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if is_listening(socket) {
                return Ok(d);
            }
            if let Some(status) = d.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "{} exited ({status}) before listening:\n{}",
                    bin.display(),
                    d.log()
                )));
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} is not listening on {}:\n{}",
                        bin.display(),
                        socket.display(),
                        d.log()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The socket guests and host processes connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// What the daemon wrote on stderr so far.
    pub fn log(&self) -> String {
        self.log
            .console
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .log
            .clone()
    }

    /// Stops the daemon (SIGTERM, SIGKILL after 5 s) and returns its log.
    pub fn stop(&mut self) -> String {
        if self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.log()
    }
}

impl Drop for HostDaemon {
    fn drop(&mut self) {
        let log = self.stop();
        if std::thread::panicking() {
            eprintln!("--- snoo-hostd log ---\n{log}");
        }
    }
}

/// True if a UNIX socket bound to `path` is listening (from /proc/net/unix, without connecting,
/// which to snoo-hostd would be a peer joining).
fn is_listening(path: &Path) -> bool {
    const SO_ACCEPTCON: u32 = 0x10000;
    let Ok(table) = fs::read_to_string("/proc/net/unix") else {
        return path.exists();
    };
    let want = path.as_os_str().to_string_lossy();
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 8
            && f[7] == want
            && u32::from_str_radix(f[3], 16).is_ok_and(|flags| flags & SO_ACCEPTCON != 0)
    })
}
