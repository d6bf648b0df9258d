//! The guest image: the kernel and an initramfs built here (busybox, `/init`, modules, files).

use super::cpio::CpioWriter;
use super::kernel::{ensure_kernel, guest_cache_dir, GuestKernel};
use super::with_context;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// The guest's `/init`.
const INIT_SCRIPT: &str = include_str!("../../guest/init.sh");

/// The modules VFIO needs in the Debian guest kernel, in load order.
pub const VFIO_MODULES: &[&str] = &[
    "irqbypass",
    "vfio",
    "vfio_iommu_type1",
    "vfio_virqfd",
    "vfio-pci-core",
    "vfio-pci",
];

/// What goes into a guest image besides busybox and `/init`.
#[derive(Debug, Clone, Default)]
pub struct ImageSpec {
    /// `(host path, absolute guest path)`: regular files copied with their permission bits.
    pub files: Vec<(PathBuf, String)>,
    /// Kernel module names (as in `VFIO_MODULES`, `-` and `_` are interchangeable) copied to
    /// `/lib/modules/snoo/<name>.ko`; `/lib/modules/snoo/order` lists them in this order.
    pub modules: Vec<String>,
    /// Have `/init` insmod the modules, in order, before it reports ready. Otherwise a test can
    /// load them later with [`Guest::load_modules`](super::Guest::load_modules).
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
pub(super) fn check_static(path: &Path) -> io::Result<()> {
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
