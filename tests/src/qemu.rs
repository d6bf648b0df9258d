//! A harness that boots QEMU guests (TCG) attached to ivshmem sockets and runs shell commands in them.
//!
//! * [`GuestImage`] is a Debian kernel (fetched once by `tests/scripts/fetch-guest-kernel.sh` into
//!   `target/guest-cache`) and an initramfs built here: busybox-static, the `/init` of
//!   `tests/guest/init.sh`, optional kernel modules and any files a test wants in the guest
//!   (static binaries: the initramfs has no libc).
//! * [`Guest`] is one running QEMU. [`Guest::run`] sends a shell script over the serial console and
//!   returns its output and exit status. QEMU is killed when the `Guest` is dropped, and also if the
//!   test process dies without dropping it (`PR_SET_PDEATHSIG`).
//! * [`IvshmemDevice`] locates an ivshmem-doorbell device's BARs in the guest so that tests can poke
//!   its registers and shared memory with busybox `devmem`.
//! * [`HostDaemon`] runs `snoo-hostd` for a test, and [`ScratchDir`] holds its socket.
//!
//! A guest boots in about 4 s under TCG here (1 vCPU, `-kernel vmlinux` through PVH); every wait has
//! a timeout, and errors quote the tail of the guest's console.
//!
//! Environment: `SNOO_GUEST_CACHE` overrides the kernel cache directory, `SNOO_GUEST_KERNEL` the
//! kernel image, `SNOO_QEMU` the QEMU binary, `SNOO_HOSTD` the daemon binary, and
//! `SNOO_QEMU_LOG_DIR` makes every guest write its full console log to a file there.
//! `SNOO_REQUIRE_QEMU=1` turns "QEMU not installed" from a skip into a failure.

pub use crate::{profile_dir, workspace_root};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The guest's `/init`.
const INIT_SCRIPT: &str = include_str!("../guest/init.sh");

/// PCI ids of QEMU's ivshmem devices (Red Hat / Qumranet vendor id).
pub const IVSHMEM_VENDOR: u16 = 0x1af4;
pub const IVSHMEM_DEVICE: u16 = 0x1110;

/// BAR0 register offsets of ivshmem-doorbell (32-bit accesses only).
pub const REG_INTR_MASK: u64 = 0x00;
pub const REG_INTR_STATUS: u64 = 0x04;
pub const REG_IV_POSITION: u64 = 0x08;
pub const REG_DOORBELL: u64 = 0x0C;

/// The modules VFIO needs in the Debian guest kernel, in load order.
pub const VFIO_MODULES: &[&str] = &[
    "irqbypass",
    "vfio",
    "vfio_iommu_type1",
    "vfio_virqfd",
    "vfio-pci-core",
    "vfio-pci",
];

/// Boot under TCG takes about 6 s on an idle machine; CI runners can be many times slower.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(120);

const READY_MARKER: &str = "@@SNOO-READY@@";
/// Bytes of base64 per console line (a canonical tty line holds at most 4095).
const CHUNK: usize = 512;
/// How much console output a timeout error quotes.
const TAIL_LINES: usize = 40;

/// True if QEMU for x86_64 can be found (`SNOO_QEMU` or `qemu-system-x86_64` on `PATH`).
pub fn qemu_available() -> bool {
    find_qemu().is_some()
}

fn find_qemu() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SNOO_QEMU") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("qemu-system-x86_64"))
        .find(|p| p.is_file())
}

/// Decides whether a QEMU test can run: `Ok(true)` if QEMU is installed, `Ok(false)` (after printing
/// why) if it is not and `SNOO_REQUIRE_QEMU` is unset, and an error if it is missing and
/// `SNOO_REQUIRE_QEMU` is set (to anything).
pub fn qemu_or_skip(test: &str) -> io::Result<bool> {
    if qemu_available() {
        return Ok(true);
    }
    if std::env::var_os("SNOO_REQUIRE_QEMU").is_some() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "SNOO_REQUIRE_QEMU is set but qemu-system-x86_64 is not installed",
        ));
    }
    // Straight to fd 2: the test harness captures eprintln!, and a skip must be visible.
    let _ = writeln!(
        io::stderr(),
        "SKIPPED {test}: qemu-system-x86_64 is not installed \
         (set SNOO_REQUIRE_QEMU=1 to make this a failure)"
    );
    Ok(false)
}

/// Where the guest kernel is cached: `SNOO_GUEST_CACHE`, else `<workspace>/target/guest-cache`.
pub fn guest_cache_dir() -> PathBuf {
    match std::env::var_os("SNOO_GUEST_CACHE") {
        Some(d) => PathBuf::from(d),
        None => workspace_root().join("target").join("guest-cache"),
    }
}

/// A fetched guest kernel.
#[derive(Debug, Clone)]
pub struct GuestKernel {
    /// The bzImage.
    pub vmlinuz: PathBuf,
    /// The same kernel uncompressed (ELF), if the fetch script could extract it.
    pub vmlinux: Option<PathBuf>,
    /// Its `lib/modules/<version>` tree.
    pub modules: PathBuf,
}

impl GuestKernel {
    /// What `-kernel` gets: `SNOO_GUEST_KERNEL` if set, else the ELF vmlinux, which QEMU boots
    /// through the PVH entry point without the bzImage's self-decompression (about 4 s under TCG),
    /// else the bzImage.
    pub fn boot_image(&self) -> PathBuf {
        if let Some(p) = std::env::var_os("SNOO_GUEST_KERNEL") {
            return PathBuf::from(p);
        }
        self.vmlinux.clone().unwrap_or_else(|| self.vmlinuz.clone())
    }
}

/// Makes sure the kernel is in the cache, running `tests/scripts/fetch-guest-kernel.sh` if needed.
pub fn ensure_kernel() -> io::Result<GuestKernel> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let cache = guest_cache_dir();
    let vmlinux = cache.join("vmlinux");
    let mut kernel = GuestKernel {
        vmlinuz: cache.join("vmlinuz"),
        vmlinux: None,
        modules: cache.join("modules"),
    };
    let complete = kernel.vmlinuz.is_file() && cache.join("version").is_file();
    if complete && is_elf(&vmlinux) {
        kernel.vmlinux = Some(vmlinux);
        return Ok(kernel);
    }
    let script = workspace_root().join("tests/scripts/fetch-guest-kernel.sh");
    let out = Command::new("sh")
        .arg(&script)
        .arg(&cache)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| with_context(e, format!("running {}", script.display())))?;
    if !out.status.success() || !kernel.vmlinuz.is_file() {
        return Err(io::Error::other(format!(
            "{} {} failed ({}):\n{}{}",
            script.display(),
            cache.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    if is_elf(&vmlinux) {
        kernel.vmlinux = Some(vmlinux);
    }
    Ok(kernel)
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"\x7fELF"
}

/// What goes into a guest image besides busybox and `/init`.
#[derive(Debug, Clone, Default)]
pub struct ImageSpec {
    /// `(host path, absolute guest path)`: regular files copied with their permission bits.
    pub files: Vec<(PathBuf, String)>,
    /// Kernel module names (as in `VFIO_MODULES`, `-` and `_` are interchangeable) copied to
    /// `/lib/modules/snoo/<name>.ko`; `/lib/modules/snoo/order` lists them in this order.
    pub modules: Vec<String>,
    /// Have `/init` insmod the modules, in order, before it reports ready. Otherwise a test can
    /// load them later with [`Guest::load_modules`].
    pub load_modules_at_boot: bool,
}

impl ImageSpec {
    /// Adds a file to copy into the guest.
    pub fn file(mut self, host: impl Into<PathBuf>, guest: impl Into<String>) -> Self {
        self.files.push((host.into(), guest.into()));
        self
    }

    /// Adds kernel modules (load order).
    pub fn modules(mut self, names: &[&str]) -> Self {
        self.modules.extend(names.iter().map(|s| s.to_string()));
        self
    }
}

/// A kernel and an initramfs to boot. The initramfs file is deleted when this is dropped.
#[derive(Debug)]
pub struct GuestImage {
    pub kernel: GuestKernel,
    pub initrd: PathBuf,
}

impl GuestImage {
    /// Builds an image with extra files `(host path, absolute guest path)`.
    pub fn build(extra_files: &[(&Path, &str)]) -> io::Result<GuestImage> {
        let spec = ImageSpec {
            files: extra_files
                .iter()
                .map(|(h, g)| (h.to_path_buf(), g.to_string()))
                .collect(),
            ..ImageSpec::default()
        };
        Self::build_with(&spec)
    }

    /// Builds an image from a full specification.
    pub fn build_with(spec: &ImageSpec) -> io::Result<GuestImage> {
        let kernel = ensure_kernel()?;
        let busybox = Path::new("/bin/busybox");
        check_static(busybox)?;

        static SEQ: AtomicU64 = AtomicU64::new(0);
        let dir = guest_cache_dir().join("images");
        fs::create_dir_all(&dir)?;
        remove_orphaned_images(&dir);
        let initrd = dir.join(format!(
            "initrd-{}-{}.cpio",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let image = GuestImage {
            kernel,
            initrd: initrd.clone(),
        };
        let mut w = CpioWriter::new(BufWriter::new(File::create(&initrd)?));
        for d in [
            "bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "run", "lib",
        ] {
            w.dir(d, 0o755)?;
        }
        // The kernel opens /dev/console for init before init can mount devtmpfs.
        w.char_dev("dev/console", 0o600, 5, 1)?;
        w.char_dev("dev/null", 0o666, 1, 3)?;
        w.file_from_path("bin/busybox", 0o755, busybox)?;
        w.file_bytes("init", 0o755, INIT_SCRIPT.as_bytes())?;

        if !spec.modules.is_empty() {
            w.dir("lib/modules", 0o755)?;
            w.dir("lib/modules/snoo", 0o755)?;
            let mut order = String::new();
            for name in &spec.modules {
                let ko = find_module(&image.kernel.modules, name)?;
                w.file_from_path(&format!("lib/modules/snoo/{name}.ko"), 0o644, &ko)?;
                writeln!(order, "{name}").unwrap();
            }
            w.file_bytes("lib/modules/snoo/order", 0o644, order.as_bytes())?;
            if spec.load_modules_at_boot {
                w.file_bytes("lib/modules/snoo/load-at-boot", 0o644, b"")?;
            }
        }

        let mut made = std::collections::HashSet::new();
        for (host, guest) in &spec.files {
            let rel = guest.trim_start_matches('/');
            if rel.is_empty() || !guest.starts_with('/') {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("guest path {guest:?} must be absolute"),
                ));
            }
            // Parent directories (duplicates in a newc archive are harmless, but keep it tidy).
            let mut acc = String::new();
            let parts: Vec<&str> = rel.split('/').collect();
            for p in &parts[..parts.len() - 1] {
                if !acc.is_empty() {
                    acc.push('/');
                }
                acc.push_str(p);
                if made.insert(acc.clone()) {
                    w.dir(&acc, 0o755)?;
                }
            }
            let mode = {
                use std::os::unix::fs::PermissionsExt;
                fs::metadata(host)
                    .map_err(|e| with_context(e, format!("guest file {}", host.display())))?
                    .permissions()
                    .mode()
                    & 0o7777
            };
            w.file_from_path(rel, mode, host)?;
        }
        w.finish()?;
        Ok(image)
    }
}

impl Drop for GuestImage {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.initrd);
    }
}

/// Deletes initramfs files left by test processes that were killed before dropping their image.
fn remove_orphaned_images(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("initrd-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// Finds `<name>.ko` (or `.ko.xz` / `.ko.zst`, decompressed) in a modules tree.
fn find_module(tree: &Path, name: &str) -> io::Result<PathBuf> {
    let want = |f: &str| {
        let base = f
            .strip_suffix(".ko")
            .or_else(|| f.strip_suffix(".ko.xz"))
            .or_else(|| f.strip_suffix(".ko.zst"));
        base.is_some_and(|b| b.replace('-', "_") == name.replace('-', "_"))
    };
    let mut stack = vec![tree.join("kernel")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(|e| with_context(e, d.display().to_string()))? {
            let e = e?;
            let p = e.path();
            if e.file_type()?.is_dir() {
                stack.push(p);
            } else if want(&e.file_name().to_string_lossy()) {
                let f = p.to_string_lossy().to_string();
                if f.ends_with(".ko") {
                    return Ok(p);
                }
                // Compressed: busybox insmod cannot read it, so decompress next to the image.
                let tool = if f.ends_with(".xz") { "xz" } else { "zstd" };
                let out = guest_cache_dir().join("images").join(format!("{name}.ko"));
                let tmp = out.with_extension(format!("ko.{}", std::process::id()));
                let status = Command::new(tool)
                    .args(["-d", "-c", &f])
                    .stdout(File::create(&tmp)?)
                    .status()?;
                if !status.success() {
                    let _ = fs::remove_file(&tmp);
                    return Err(io::Error::other(format!("{tool} -d {f} failed")));
                }
                fs::rename(&tmp, &out)?;
                return Ok(out);
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("kernel module {name} not found under {}", tree.display()),
    ))
}

/// Refuses a dynamically linked busybox (package `busybox` instead of `busybox-static`): it would
/// die in the initramfs, which has no libc, and the guest would just hang at boot.
fn check_static(path: &Path) -> io::Result<()> {
    let data = fs::read(path)
        .map_err(|e| with_context(e, format!("{} (install busybox-static)", path.display())))?;
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 {
        return Err(io::Error::other(format!(
            "{} is not an ELF64 file",
            path.display()
        )));
    }
    let phoff = u64::from_le_bytes(data[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        if o + 4 <= data.len() && u32::from_le_bytes(data[o..o + 4].try_into().unwrap()) == 3 {
            return Err(io::Error::other(format!(
                "{} is dynamically linked; install busybox-static",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Writes a cpio "newc" archive (what the kernel unpacks as an initramfs). Written here rather than
/// with cpio(1) so that device nodes and root ownership need no privileges.
struct CpioWriter<W: Write> {
    out: W,
    ino: u32,
    pos: u64,
}

impl<W: Write> CpioWriter<W> {
    fn new(out: W) -> Self {
        CpioWriter {
            out,
            ino: 1,
            pos: 0,
        }
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn pad4(&mut self) -> io::Result<()> {
        let n = (4 - (self.pos % 4) as usize) % 4;
        self.put(&[0u8; 3][..n])
    }

    fn header(&mut self, name: &str, mode: u32, size: u64, rdev: (u32, u32)) -> io::Result<()> {
        let size = u32::try_from(size).map_err(|_| io::Error::other("file too large for cpio"))?;
        let ino = self.ino;
        self.ino += 1;
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime
            size,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        let mut h = String::from("070701");
        for f in fields {
            write!(h, "{f:08X}").unwrap();
        }
        self.put(h.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad4()
    }

    fn dir(&mut self, name: &str, perm: u32) -> io::Result<()> {
        self.header(name, 0o040000 | perm, 0, (0, 0))
    }

    fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.header(name, 0o020000 | perm, 0, (major, minor))
    }

    fn file_bytes(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.header(name, 0o100000 | perm, data.len() as u64, (0, 0))?;
        self.put(data)?;
        self.pad4()
    }

    fn file_from_path(&mut self, name: &str, perm: u32, path: &Path) -> io::Result<()> {
        let mut f = File::open(path).map_err(|e| with_context(e, path.display().to_string()))?;
        let len = f.metadata()?.len();
        self.header(name, 0o100000 | perm, len, (0, 0))?;
        let copied = io::copy(&mut (&mut f).take(len), &mut self.out)?;
        if copied != len {
            return Err(io::Error::other(format!("{} shrank", path.display())));
        }
        self.pos += len;
        self.pad4()
    }

    fn finish(mut self) -> io::Result<()> {
        self.header("TRAILER!!!", 0, 0, (0, 0))?;
        self.out.flush()
    }
}

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

#[derive(Default)]
struct Console {
    /// Everything the guest wrote to its serial port, with `\r` removed.
    log: String,
    /// QEMU's stderr.
    stderr: String,
    /// QEMU closed its stdout: it exited.
    closed: bool,
}

struct Shared {
    console: Mutex<Console>,
    cond: Condvar,
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
        let c = self.shared.console.lock().unwrap();
        let mut tail: VecDeque<&str> = VecDeque::new();
        for l in c.log.lines() {
            if tail.len() == n {
                tail.pop_front();
            }
            tail.push_back(l);
        }
        let mut s = String::new();
        for l in tail {
            s.push_str("    | ");
            match l.char_indices().nth(300) {
                Some((cut, _)) => {
                    s.push_str(&l[..cut]);
                    s.push_str(" [...]");
                }
                None => s.push_str(l),
            }
            s.push('\n');
        }
        if !c.stderr.is_empty() {
            s.push_str("  qemu stderr:\n");
            for l in c.stderr.lines() {
                s.push_str("    ! ");
                s.push_str(l);
                s.push('\n');
            }
        }
        if c.closed {
            s.push_str("  (QEMU has exited)\n");
        }
        s
    }

    fn error(&self, kind: io::ErrorKind, what: String) -> io::Error {
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
        let start = self.shared.console.lock().unwrap().log.len();
        {
            let mut stdin = self.stdin.lock().unwrap();
            let w = stdin
                .as_mut()
                .ok_or_else(|| self.error(io::ErrorKind::BrokenPipe, "stdin closed".into()))?;
            w.write_all(msg.as_bytes())
                .and_then(|_| w.flush())
                .map_err(|e| self.error(e.kind(), format!("writing to QEMU: {e}")))?;
        }
        self.wait_for(timeout, |log| {
            let log = &log[start..];
            let b = log.find(&begin)? + begin.len();
            let e = b + log[b..].find(&end)?;
            let rest = &log[e + end.len()..];
            let close = rest.find("@@\n")?;
            let status = rest[..close].trim().parse::<i32>().ok()?;
            Some((log[b..e].to_string(), status))
        })
        .map_err(|e| io::Error::new(e.kind(), format!("running {:?}: {e}", abbreviate(script))))
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

    /// Loads the modules of [`ImageSpec::modules`] in order (for images that did not load them at
    /// boot).
    pub fn load_modules(&self) -> io::Result<()> {
        self.run_ok(
            "set -e; for m in $(cat /lib/modules/snoo/order); do insmod /lib/modules/snoo/$m.ko; done",
            Duration::from_secs(60),
        )
        .map(|_| ())
    }

    /// The ivshmem devices of this guest, in PCI address order (which for devices added by
    /// [`Guest::boot`] is the order of [`GuestConfig::ivshmem`]).
    pub fn ivshmem_devices(&self) -> io::Result<Vec<IvshmemDevice>> {
        let out = self.run_ok(
            r#"for d in /sys/bus/pci/devices/*; do
                 [ "$(cat $d/vendor)" = 0x1af4 ] && [ "$(cat $d/device)" = 0x1110 ] || continue
                 echo "DEV ${d##*/} $(head -n 3 $d/resource | tr '\n' ' ')"
               done"#,
            Duration::from_secs(30),
        )?;
        let mut devs = Vec::new();
        for line in out.lines() {
            let Some(rest) = line.strip_prefix("DEV ") else {
                continue;
            };
            let dev = IvshmemDevice::parse(rest).ok_or_else(|| {
                self.error(
                    io::ErrorKind::InvalidData,
                    format!("cannot parse ivshmem device line {line:?}"),
                )
            })?;
            devs.push(dev);
        }
        devs.sort_by(|a, b| a.bdf.cmp(&b.bdf));
        Ok(devs)
    }

    /// The only ivshmem device; an error if there is not exactly one.
    pub fn ivshmem_device(&self) -> io::Result<IvshmemDevice> {
        let mut devs = self.ivshmem_devices()?;
        if devs.len() != 1 {
            return Err(self.error(
                io::ErrorKind::NotFound,
                format!("expected one ivshmem device, found {}", devs.len()),
            ));
        }
        Ok(devs.remove(0))
    }

    /// A 32-bit read of guest-physical `addr` with busybox devmem.
    pub fn read32(&self, addr: u64) -> io::Result<u32> {
        let out = self.run_ok(&format!("devmem {addr:#x} 32"), Duration::from_secs(30))?;
        let t = out.trim();
        u32::from_str_radix(t.trim_start_matches("0x").trim_start_matches("0X"), 16).map_err(|_| {
            self.error(
                io::ErrorKind::InvalidData,
                format!("devmem {addr:#x} printed {t:?}"),
            )
        })
    }

    /// A 32-bit write of guest-physical `addr` with busybox devmem.
    pub fn write32(&self, addr: u64, value: u32) -> io::Result<()> {
        self.run_ok(
            &format!("devmem {addr:#x} 32 {value:#x}"),
            Duration::from_secs(30),
        )
        .map(|_| ())
    }

    /// The device's IVPosition register: this guest's peer id on its daemon.
    pub fn iv_position(&self, dev: &IvshmemDevice) -> io::Result<u16> {
        let v = self.read32(dev.reg(REG_IV_POSITION))?;
        u16::try_from(v).map_err(|_| {
            self.error(
                io::ErrorKind::InvalidData,
                format!("IVPosition reads {v:#x}"),
            )
        })
    }

    /// Rings `vector` of `peer` through the device's Doorbell register.
    pub fn ring_doorbell(&self, dev: &IvshmemDevice, peer: u16, vector: u8) -> io::Result<()> {
        self.write32(dev.reg(REG_DOORBELL), doorbell_value(peer, vector))
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

/// The Doorbell register value that rings `vector` of `peer`.
pub fn doorbell_value(peer: u16, vector: u8) -> u32 {
    (u32::from(peer) << 16) | u32::from(vector)
}

/// One PCI BAR as the guest's sysfs `resource` file describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciBar {
    /// Guest-physical start address.
    pub start: u64,
    /// Guest-physical last address (inclusive).
    pub end: u64,
    /// Linux `IORESOURCE_*` flags.
    pub flags: u64,
}

impl PciBar {
    pub fn len(&self) -> u64 {
        if self.end < self.start {
            0
        } else {
            self.end - self.start + 1
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An ivshmem device in a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IvshmemDevice {
    /// PCI address, e.g. `0000:00:02.0`.
    pub bdf: String,
    /// Registers (256 bytes).
    pub bar0: PciBar,
    /// MSI-X table (ivshmem-doorbell only; empty for ivshmem-plain).
    pub bar1: PciBar,
    /// The shared memory.
    pub bar2: PciBar,
}

impl IvshmemDevice {
    /// Parses `BDF start end flags start end flags start end flags`.
    fn parse(line: &str) -> Option<IvshmemDevice> {
        let mut it = line.split_whitespace();
        let bdf = it.next()?.to_string();
        let mut num = || -> Option<u64> {
            let s = it.next()?;
            u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
        };
        let mut bar = || -> Option<PciBar> {
            Some(PciBar {
                start: num()?,
                end: num()?,
                flags: num()?,
            })
        };
        let (bar0, bar1, bar2) = (bar()?, bar()?, bar()?);
        if bar0.is_empty() || bar2.is_empty() {
            return None;
        }
        Some(IvshmemDevice {
            bdf,
            bar0,
            bar1,
            bar2,
        })
    }

    /// Guest-physical address of a BAR0 register.
    pub fn reg(&self, offset: u64) -> u64 {
        self.bar0.start + offset
    }

    /// Guest-physical address of byte `offset` of the shared memory.
    pub fn shm(&self, offset: u64) -> u64 {
        assert!(offset < self.bar2.len(), "offset {offset:#x} beyond BAR2");
        self.bar2.start + offset
    }

    /// Size of the shared memory.
    pub fn shm_len(&self) -> u64 {
        self.bar2.len()
    }
}

/// A scratch directory under the system temp dir, removed (with its contents) on drop. Its path is
/// short, so UNIX sockets fit in it (108 bytes at most).
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(tag: &str) -> io::Result<ScratchDir> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "snoo-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p)?;
        Ok(ScratchDir(p))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The `snoo-hostd` binary: `SNOO_HOSTD` if set, else `target/<profile>/snoo-hostd` next to the
/// running test, (re)built once per process with `cargo build -p snoo-host --bin snoo-hostd` so that
/// `cargo test -p snoo-tests` never runs a stale daemon.
pub fn hostd_binary() -> io::Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| locate_hostd().map_err(|e| e.to_string()))
        .clone()
        .map_err(io::Error::other)
}

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

/// Compiles the C program `src` into a static executable for the guests (the initramfs has no
/// libc): `gcc -static` against `libsnoo_mpi.a`, which is (re)built first with the running test's
/// profile. Returns the executable, written under `target/<profile>/guest-bin/`.
pub fn static_c_program(src: &Path) -> io::Result<PathBuf> {
    static LIB: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = LIB
        .get_or_init(|| build_static_lib().map_err(|e| e.to_string()))
        .clone()
        .map_err(io::Error::other)?;
    let stem = src
        .file_stem()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let out_dir = dir.join("guest-bin");
    fs::create_dir_all(&out_dir)?;
    // Linked under a private name, then renamed over the shared one: test processes running at the
    // same time never see a half-written executable, and runs leave one file per program.
    let out = out_dir.join(stem);
    let tmp = out_dir.join(format!(
        ".{}-{}",
        stem.to_string_lossy(),
        std::process::id()
    ));
    let o = Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-Werror", "-std=c11", "-I"])
        .arg(workspace_root().join("guest/include"))
        .arg(src)
        .arg("-o")
        .arg(&tmp)
        .arg(dir.join("libsnoo_mpi.a"))
        .args(["-lpthread", "-ldl", "-lm"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| with_context(e, "running gcc".into()))?;
    if !o.status.success() {
        let _ = fs::remove_file(&tmp);
        return Err(io::Error::other(format!(
            "gcc -static {}: {}",
            src.display(),
            String::from_utf8_lossy(&o.stderr)
        )));
    }
    fs::rename(&tmp, &out)?;
    Ok(out)
}

/// Builds example `name` of package `package` as a static executable for the guests:
/// `RUSTFLAGS="-C target-feature=+crt-static" cargo build --target x86_64-unknown-linux-gnu
/// --example NAME`, in the running test's profile but in its own target directory
/// (`target/guest-static`), so that the flags never invalidate the workspace's normal builds.
/// Returns the executable, checked to have no program interpreter.
pub fn static_rust_example(package: &str, name: &str) -> io::Result<PathBuf> {
    const TRIPLE: &str = "x86_64-unknown-linux-gnu";
    let profile_dir = crate::profile_dir()?;
    let profile = profile_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target_dir = workspace_root().join("target").join("guest-static");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "-p",
        package,
        "--example",
        name,
        "--target",
        TRIPLE,
    ])
    .arg("--manifest-path")
    .arg(workspace_root().join("Cargo.toml"))
    .arg("--target-dir")
    .arg(&target_dir)
    // RUSTFLAGS applies only to the target with --target, not to build scripts.
    .env_remove("CARGO_ENCODED_RUSTFLAGS")
    .env("RUSTFLAGS", "-C target-feature=+crt-static");
    crate::profile_args(&mut cmd, &profile);
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "crt-static build of {package} example {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let exe = target_dir
        .join(TRIPLE)
        .join(&profile)
        .join("examples")
        .join(name);
    check_static(&exe).map_err(|e| {
        io::Error::other(format!(
            "{} was built with crt-static but is not a static executable: {e}",
            exe.display()
        ))
    })?;
    Ok(exe)
}

fn build_static_lib() -> io::Result<PathBuf> {
    let dir = crate::cargo_build(&["-p", "snoo-mpi", "--lib"])?;
    if !dir.join("libsnoo_mpi.a").is_file() {
        return Err(io::Error::other(
            "cargo build -p snoo-mpi --lib made no libsnoo_mpi.a",
        ));
    }
    Ok(dir)
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

/// Spawns `cmd` so that the child is killed if this process dies, however it dies.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process, and test
/// threads come and go; so every QEMU is forked by one thread that lives as long as the process.
fn spawn_orphan_proof(cmd: Command) -> io::Result<Child> {
    type Job = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("qemu-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(spawn_with_pdeathsig(&mut cmd));
                }
                // The sender lives in a static, so this thread never gets here.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn qemu-spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    tx.lock()
        .unwrap()
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("qemu-spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("qemu-spawner thread is gone"))?
}

fn spawn_with_pdeathsig(cmd: &mut Command) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

fn reader_thread(
    mut src: impl Read + Send + 'static,
    shared: Arc<Shared>,
    is_stderr: bool,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // A UTF-8 sequence can straddle two reads.
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) | Err(_) => 0,
                Ok(n) => n,
            };
            let mut c = shared.console.lock().unwrap_or_else(|e| e.into_inner());
            if n == 0 {
                if !is_stderr {
                    c.closed = true;
                }
                shared.cond.notify_all();
                return;
            }
            pending.extend(buf[..n].iter().copied().filter(|&b| b != b'\r'));
            let valid = match std::str::from_utf8(&pending) {
                Ok(s) => s.len(),
                Err(e) if e.error_len().is_none() => e.valid_up_to(),
                Err(_) => pending.len(),
            };
            let text = String::from_utf8_lossy(&pending[..valid]).into_owned();
            pending.drain(..valid);
            if is_stderr {
                c.stderr.push_str(&text);
            } else {
                c.log.push_str(&text);
            }
            shared.cond.notify_all();
        }
    })
}

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

fn abbreviate(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 80 {
        format!("{}...", one_line.chars().take(77).collect::<String>())
    } else {
        one_line
    }
}

fn with_context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn parses_sysfs_resource_lines() {
        let d = IvshmemDevice::parse(
            "0000:00:02.0 0x00000000febf1000 0x00000000febf10ff 0x0000000000040200 \
             0x00000000febf0000 0x00000000febf0fff 0x0000000000040200 \
             0x00000000fe800000 0x00000000fe8fffff 0x000000000014220c",
        )
        .unwrap();
        assert_eq!(d.bdf, "0000:00:02.0");
        assert_eq!(d.reg(REG_DOORBELL), 0xfebf100c);
        assert_eq!(d.bar0.len(), 256);
        assert_eq!(d.shm_len(), 1 << 20);
        assert_eq!(d.shm(0x80000), 0xfe880000);
        assert_eq!(doorbell_value(3, 1), 0x0003_0001);
    }

    #[test]
    fn cpio_is_newc() {
        let mut v = Vec::new();
        let mut w = CpioWriter::new(&mut v);
        w.file_bytes("init", 0o755, b"hi").unwrap();
        w.finish().unwrap();
        assert!(v.starts_with(b"070701"));
        assert_eq!(v.len() % 4, 0);
        // 110-byte header + "init\0" padded to 116, + 2 data bytes padded to 4.
        assert_eq!(&v[116..118], b"hi");
        assert!(v.windows(10).any(|w| w == b"TRAILER!!!"));
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
