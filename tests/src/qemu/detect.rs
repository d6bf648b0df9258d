//! Finding the QEMU binary, and skipping (or failing) a test when there is none.

use std::io::{self, Write};
use std::path::PathBuf;

/// True if QEMU for x86_64 can be found (`SNOO_QEMU` or `qemu-system-x86_64` on `PATH`).
pub fn qemu_available() -> bool {
    find_qemu().is_some()
}

/// The QEMU binary: `SNOO_QEMU`, else the first `qemu-system-x86_64` on `PATH`.
pub(super) fn find_qemu() -> Option<PathBuf> {
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
