//! The guest kernel: fetched once into the cache directory, booted with `-kernel`.

use super::{with_context, workspace_root};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

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
