#!/bin/sh
# The whole test suite, QEMU guests included: installs what a fresh Debian machine lacks, then
# checks formatting and lints, and runs every test (unit, daemon conformance, multi-process, and the
# end-to-end tests that boot TCG guests attached to snoo-hostd).
set -eu
. "$(dirname "$0")/common.sh"
need_cargo
apt_install qemu-system-x86 busybox-static cpio xz-utils gcc pkgconf
cd "$root"
# The QEMU tests download the guest kernel once into target/guest-cache.
sh tests/scripts/fetch-guest-kernel.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
# QEMU is installed above, so its tests must run, never skip.
SNOO_REQUIRE_QEMU=1 cargo test --workspace "$@"
