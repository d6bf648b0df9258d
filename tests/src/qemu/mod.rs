//! A harness that boots QEMU guests (TCG) attached to ivshmem sockets and runs shell commands in them.
//!
//! * [`GuestImage`] is a Debian kernel (fetched once by `tests/scripts/fetch-guest-kernel.sh` into
//!   `target/guest-cache`) and an initramfs built here: busybox-static, the `/init` of
//!   `tests/guest/init.sh`, optional kernel modules and any files a test wants in the guest
//!   (static binaries, or dynamic ones with the libraries they need: the initramfs has no libc).
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
//!
//! One file per concern: `detect.rs` (finding QEMU, skipping), `kernel.rs` (the guest kernel),
//! `image.rs` and `cpio.rs` (the initramfs), `guest.rs` (a running guest and its console commands),
//! `ivshmem.rs` (the ivshmem PCI device as the guest sees it), `console.rs` and `spawn.rs` (the
//! child processes' output, and their death with the test), `hostd.rs` (`snoo-hostd`), `scratch.rs`
//! (a socket directory), `guest_programs.rs` (static executables for the guests) and `watchdog.rs`
//! (ending a test that hangs, with a report). The public
//! names are all re-exported here, so tests import them from `snoo_tests::qemu`.

mod console;
mod cpio;
mod detect;
mod guest;
mod guest_programs;
mod hostd;
mod image;
mod ivshmem;
mod kernel;
mod scratch;
mod spawn;
mod watchdog;

pub use crate::{profile_dir, workspace_root};
pub use detect::{qemu_available, qemu_or_skip};
pub use guest::{Guest, GuestConfig, DEFAULT_BOOT_TIMEOUT};
pub use guest_programs::{
    mpicc_program, mpich_abi_runtime, snoo_mpicc_static_program, static_c_program,
    static_rust_example, GUEST_LIB_DIR, MPICH_SONAMES,
};
pub use hostd::{hostd_binary, HostDaemon};
pub use image::{GuestImage, ImageSpec, VFIO_MODULES};
pub use ivshmem::{
    doorbell_value, IvshmemDevice, PciBar, IVSHMEM_DEVICE, IVSHMEM_VENDOR, REG_DOORBELL,
    REG_INTR_MASK, REG_INTR_STATUS, REG_IV_POSITION,
};
pub use kernel::{ensure_kernel, guest_cache_dir, GuestKernel};
pub use scratch::ScratchDir;
pub use watchdog::{Watchdog, TEST_LIMIT};

use std::io;

/// `e` with `what` (the file or command it concerns) in front of its message.
fn with_context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
