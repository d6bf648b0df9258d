//! A running guest: QEMU booted from a [`GuestImage`], running shell commands sent to its console.

use super::console::{reader_thread, Console, Shared};
use super::detect::find_qemu;
use super::image::GuestImage;
use super::spawn::spawn_orphan_proof;
use super::with_context;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Boot under TCG takes about 6 s on an idle machine; CI runners can be many times slower.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(120);

const READY_MARKER: &str = "@@SNOO-READY@@";
/// Bytes of base64 per console line (a canonical tty line holds at most 4095).
const CHUNK: usize = 512;
/// How much console output a timeout error quotes.
const TAIL_LINES: usize = 40;

/// How to start a guest.
#[derive(Debug, Clone)]
pub struct GuestConfig {
    /// `(daemon socket, vectors)`: one ivshmem-doorbell device each, in this order on the PCI bus.
    pub ivshmem: Vec<(PathBuf, u32)>,
    /// Add an Intel vIOMMU (`intel-iommu,intremap=on` and `intel_iommu=on`), which VFIO needs.
    pub iommu: bool,
    /// Guest RAM.
    pub memory_mb: u32,
    /// How long to wait for `/init` to report ready.
    pub boot_timeout: Duration,
    /// Appended to the kernel command line.
    pub extra_append: String,
    /// A name for logs and error messages.
    pub name: String,
}

impl Default for GuestConfig {
    fn default() -> Self {
        GuestConfig {
            ivshmem: Vec::new(),
            iommu: false,
            memory_mb: 512,
            boot_timeout: DEFAULT_BOOT_TIMEOUT,
            extra_append: String::new(),
            name: "guest".into(),
        }
    }
}

/// Every guest booted by this process, for [`live_console_tails`]; dropped guests leave a dead
/// `Weak` behind, pruned on the next boot's listing.
static LIVE: Mutex<Vec<(String, Weak<Shared>)>> = Mutex::new(Vec::new());

/// The console tail of every guest still running in this process (for the watchdog, which has no
/// handle on the tests' guests).
pub(super) fn live_console_tails() -> String {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    live.retain(|(_, w)| w.strong_count() > 0);
    let mut s = String::new();
    for (name, w) in live.iter() {
        if let Some(shared) = w.upgrade() {
            // try_lock: a thread stuck while holding a console lock must not stop the report.
            match shared.console.try_lock() {
                Ok(c) => {
                    let _ = write!(s, "--- console tail of {name} ---\n{}", c.tail(TAIL_LINES));
                }
                Err(_) => {
                    let _ = writeln!(s, "--- console of {name} is locked ---");
                }
            }
        }
    }
    s
}

/// A running QEMU guest. Dropping it kills QEMU.
pub struct Guest {
    name: String,
    child: Mutex<Child>,
    stdin: Mutex<Option<ChildStdin>>,
    shared: Arc<Shared>,
    readers: Vec<JoinHandle<()>>,
    next_id: AtomicU64,
    /// Serialises commands: the guest runs one at a time.
    cmd_lock: Mutex<()>,
    log_file: Option<PathBuf>,
    boot_time: Duration,
}

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guest").field("name", &self.name).finish()
    }
}

impl Guest {
    /// Starts QEMU and waits until the guest's `/init` is ready for commands.
    pub fn boot(image: &GuestImage, config: &GuestConfig) -> io::Result<Guest> {
        let qemu = find_qemu().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "qemu-system-x86_64 not found")
        })?;
        let mut append = String::from("console=ttyS0 quiet panic=-1");
        let mut cmd = Command::new(qemu);
        cmd.args(["-accel", "tcg", "-machine", "q35"]);
        if config.iommu {
            cmd.args(["-device", "intel-iommu,intremap=on"]);
            append.push_str(" intel_iommu=on");
        }
        if !config.extra_append.is_empty() {
            append.push(' ');
            append.push_str(&config.extra_append);
        }
        cmd.args(["-m", &config.memory_mb.to_string()]);
        cmd.args([
            "-nodefaults",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-monitor",
            "none",
            "-nic",
            "none",
            "-no-reboot",
        ]);
        cmd.arg("-kernel").arg(image.kernel.boot_image());
        cmd.arg("-initrd").arg(&image.initrd);
        cmd.arg("-append").arg(&append);
        for (i, (sock, vectors)) in config.ivshmem.iter().enumerate() {
            let sock = sock.to_str().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "socket path is not UTF-8")
            })?;
            if sock.contains(',') {
                // QEMU's option parser would split the path; ",," escapes a comma.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("socket path {sock:?} contains a comma"),
                ));
            }
            cmd.args(["-chardev", &format!("socket,path={sock},id=iv{i}")]);
            cmd.args([
                "-device",
                &format!("ivshmem-doorbell,chardev=iv{i},vectors={vectors}"),
            ]);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let cmdline = format!("{cmd:?}");

        let started = Instant::now();
        let mut child = spawn_orphan_proof(cmd)?;
        let shared = Arc::new(Shared {
            console: Mutex::new(Console::default()),
            cond: Condvar::new(),
        });
        let mut readers = Vec::new();
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        readers.push(reader_thread(out, shared.clone(), false));
        readers.push(reader_thread(err, shared.clone(), true));
        let log_file = std::env::var_os("SNOO_QEMU_LOG_DIR").map(|d| {
            static SEQ: AtomicU64 = AtomicU64::new(0);
            PathBuf::from(d).join(format!(
                "{}-{}-{}.log",
                config.name,
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ))
        });
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((config.name.clone(), Arc::downgrade(&shared)));
        let mut guest = Guest {
            name: config.name.clone(),
            stdin: Mutex::new(child.stdin.take()),
            child: Mutex::new(child),
            shared,
            readers,
            next_id: AtomicU64::new(1),
            cmd_lock: Mutex::new(()),
            log_file,
            boot_time: Duration::ZERO,
        };
        guest
            .wait_for(config.boot_timeout, |log| {
                log.find(READY_MARKER).map(|_| ())
            })
            .map_err(|e| with_context(e, format!("booting {} ({cmdline})", config.name)))?;
        guest.boot_time = started.elapsed();
        let log = guest.console_log();
        if let Some(i) = log.find("@@SNOO-INSMOD-FAILED") {
            let line = log[i..].lines().next().unwrap_or("");
            return Err(guest.error(io::ErrorKind::Other, format!("boot: {line}")));
        }
        Ok(guest)
    }

    /// The name given in [`GuestConfig::name`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// From spawning QEMU to `/init` being ready.
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// Everything the guest printed on its console so far (kernel messages included).
    pub fn console_log(&self) -> String {
        self.shared.console.lock().unwrap().log.clone()
    }

    /// What QEMU itself printed on stderr.
    pub fn qemu_stderr(&self) -> String {
        self.shared.console.lock().unwrap().stderr.clone()
    }

    /// The last `n` lines of the console log, followed by QEMU's stderr if any.
    pub fn log_tail(&self, n: usize) -> String {
        self.shared
            .console
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tail(n)
    }

    /// An error about this guest: `what`, followed by the tail of its console.
    pub(super) fn error(&self, kind: io::ErrorKind, what: String) -> io::Error {
        io::Error::new(
            kind,
            format!(
                "{}: {what}\n  console tail of {}:\n{}",
                self.name,
                self.name,
                self.log_tail(TAIL_LINES)
            ),
        )
    }

    /// Waits until `find` returns something for the console log, QEMU exits, or `timeout` passes.
    fn wait_for<T>(
        &self,
        timeout: Duration,
        mut find: impl FnMut(&str) -> Option<T>,
    ) -> io::Result<T> {
        let deadline = Instant::now() + timeout;
        let mut c = self.shared.console.lock().unwrap();
        loop {
            if let Some(t) = find(&c.log) {
                return Ok(t);
            }
            if c.closed {
                drop(c);
                let status = self.child.lock().unwrap().wait().ok();
                return Err(self.error(
                    io::ErrorKind::UnexpectedEof,
                    format!("QEMU exited ({status:?})"),
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                drop(c);
                return Err(self.error(
                    io::ErrorKind::TimedOut,
                    format!("timed out after {timeout:?}"),
                ));
            }
            c = self.shared.cond.wait_timeout(c, deadline - now).unwrap().0;
        }
    }

    /// Runs `script` with `sh` in the guest (stdin `/dev/null`, stderr merged into stdout) and
    /// returns its output and exit status. After `timeout` this returns an error with the console
    /// tail; the guest kills the script a little later so that later commands still work.
    pub fn run(&self, script: &str, timeout: Duration) -> io::Result<(String, i32)> {
        let _one_at_a_time = self.cmd_lock.lock().unwrap_or_else(|e| e.into_inner());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let guest_secs = timeout.as_secs() + 2;
        let mut msg = String::new();
        let b64 = base64(script.as_bytes());
        for chunk in b64.as_bytes().chunks(CHUNK) {
            msg.push_str("B ");
            msg.push_str(std::str::from_utf8(chunk).unwrap());
            msg.push('\n');
        }
        writeln!(msg, "R {id} {guest_secs}").unwrap();
        let begin = format!("@@SNOO-BEGIN {id}@@\n");
        let end = format!("\n@@SNOO-END {id} ");
        // Search only output that arrives after the command was sent.
        let start = {
            let mut c = self.shared.console.lock().unwrap();
            c.running = Some((abbreviate(script), Instant::now()));
            c.log.len()
        };
        {
            let mut stdin = self.stdin.lock().unwrap();
            let w = stdin
                .as_mut()
                .ok_or_else(|| self.error(io::ErrorKind::BrokenPipe, "stdin closed".into()))?;
            w.write_all(msg.as_bytes())
                .and_then(|_| w.flush())
                .map_err(|e| self.error(e.kind(), format!("writing to QEMU: {e}")))?;
        }
        let result = self
            .wait_for(timeout, |log| {
                let log = &log[start..];
                let b = log.find(&begin)? + begin.len();
                let e = b + log[b..].find(&end)?;
                let rest = &log[e + end.len()..];
                let close = rest.find("@@\n")?;
                let status = rest[..close].trim().parse::<i32>().ok()?;
                Some((log[b..e].to_string(), status))
            })
            .map_err(|e| {
                io::Error::new(e.kind(), format!("running {:?}: {e}", abbreviate(script)))
            });
        self.shared.console.lock().unwrap().running = None;
        result
    }

    /// Like [`Guest::run`], but a non-zero exit status is an error; returns the output.
    pub fn run_ok(&self, script: &str, timeout: Duration) -> io::Result<String> {
        let (out, status) = self.run(script, timeout)?;
        if status != 0 {
            return Err(self.error(
                io::ErrorKind::Other,
                format!(
                    "{:?} exited with status {status}, output:\n{out}",
                    abbreviate(script)
                ),
            ));
        }
        Ok(out)
    }

    /// Loads the modules of [`ImageSpec::modules`](super::ImageSpec::modules) in order (for images that did not load them at
    /// boot).
    pub fn load_modules(&self) -> io::Result<()> {
        self.run_ok(
            "set -e; for m in $(cat /lib/modules/snoo/order); do insmod /lib/modules/snoo/$m.ko; done",
            Duration::from_secs(60),
        )
        .map(|_| ())
    }

    /// Kills QEMU now and waits for it (what `Drop` does).
    pub fn kill(&mut self) {
        if let Some(stdin) = self.stdin.lock().unwrap().take() {
            drop(stdin);
        }
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        drop(child);
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.kill();
        if let Some(path) = &self.log_file {
            let c = self
                .shared
                .console
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let _ = fs::write(
                path,
                format!("{}\n--- qemu stderr ---\n{}", c.log, c.stderr),
            );
        }
        if std::thread::panicking() {
            eprintln!(
                "--- console tail of {} ---\n{}",
                self.name,
                self.log_tail(TAIL_LINES)
            );
        }
    }
}

/// Standard base64 (RFC 4648, with padding): how scripts reach the guest's `/init`.
fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// `s` on one line, cut to 80 characters: a script as error messages quote it.
fn abbreviate(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 80 {
        format!("{}...", one_line.chars().take(77).collect::<String>())
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::{qemu_or_skip, ImageSpec, VFIO_MODULES};

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    /// Boots one guest (vIOMMU, no devices), exercises the command channel and loads the VFIO
    /// modules.
    #[test]
    fn guest_runs_commands() {
        if !qemu_or_skip("guest_runs_commands").unwrap() {
            return;
        }
        let image = GuestImage::build_with(&ImageSpec::default().modules(VFIO_MODULES)).unwrap();
        let g = Guest::boot(
            &image,
            &GuestConfig {
                name: "smoke".into(),
                iommu: true,
                ..GuestConfig::default()
            },
        )
        .unwrap();
        eprintln!("smoke guest booted in {:.1?}", g.boot_time());
        let t = Duration::from_secs(60);
        assert_eq!(g.run("echo hello", t).unwrap(), ("hello\n".into(), 0));
        assert_eq!(
            g.run("printf 'a\\nb'; exit 3", t).unwrap(),
            ("a\nb".into(), 3)
        );
        // Quotes, markers and long scripts survive the trip.
        let long = format!("echo '@@SNOO-END 1 0@@' \"$((6*7))\" {}", "x".repeat(6000));
        let (out, st) = g.run(&long, t).unwrap();
        assert_eq!(st, 0);
        assert_eq!(out, format!("@@SNOO-END 1 0@@ 42 {}\n", "x".repeat(6000)));
        // The modules match the kernel, and VFIO finds the vIOMMU.
        g.load_modules().unwrap();
        let out = g
            .run_ok("cat /proc/modules | cut -d' ' -f1; ls /dev/vfio", t)
            .unwrap();
        for m in ["vfio_pci", "vfio_pci_core", "vfio_iommu_type1", "vfio"] {
            assert!(out.lines().any(|l| l == m), "{m} not loaded:\n{out}");
        }
        // A command that outlives its timeout is an error, and the guest recovers.
        let e = g.run("sleep 30", Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert_eq!(g.run("echo after", t).unwrap().0, "after\n");
    }
}
