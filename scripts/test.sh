#!/bin/sh
# The whole test suite, QEMU guests included: installs what a fresh Debian machine lacks, then
# checks formatting and lints, and runs every test (unit, daemon conformance, multi-process, and the
# end-to-end tests that boot TCG guests attached to snoo-hostd).
set -eu
. "$(dirname "$0")/common.sh"
need_cargo
apt_install qemu-system-x86 busybox-static cpio xz-utils gcc pkgconf mpich libmpich-dev valgrind
python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
cd "$root"
# The QEMU tests download the guest kernel once into target/guest-cache.
sh tests/scripts/fetch-guest-kernel.sh
# The MPI tests compare SNOO's standard-ABI library with MPICH 5's (the `mpich` wheel), unpacked
# once into target/mpich-abi.
sh tests/scripts/fetch-mpich-abi.sh
cargo fmt --all -- --check
# Every unsafe block says why it is sound (`// SAFETY:`), enforced here rather than per crate.
cargo clippy --workspace --all-targets -q -- -D warnings -D clippy::undocumented_unsafe_blocks
# Short fuzzing runs of what is read from untrusted shared memory (docs/reliability.md has the long
# ones). Before the tests, so that the test summary is the last thing printed.
command -v cargo-fuzz >/dev/null 2>&1 || cargo install -q --locked cargo-fuzz
for target in register_decode ring_reader header_validate collective_area; do
    log=$(mktemp)
    if ! cargo fuzz run -s none "$target" -- -max_total_time="${SNOO_FUZZ_SECONDS:-10}" >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz target $target failed" >&2
        exit 1
    fi
    grep -E '^Done [0-9]+ runs' "$log" | sed "s/^/fuzz $target: /"
    rm -f "$log"
done
# QEMU is installed above, so its tests must run, never skip. The output is kept to print one total
# at the end (cargo's last summary is the doc-tests', often "0 passed").
log=$(mktemp)
rc=$(mktemp)
# (an AND-OR list, so that `set -e` does not end the group before the status is written)
{ SNOO_REQUIRE_QEMU=1 cargo test --workspace "$@" && echo 0 >"$rc" || echo $? >"$rc"; } 2>&1 | tee "$log"
status=$(cat "$rc")
passed=$(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' "$log" | awk '{s+=$1} END {print s+0}')
rm -f "$log" "$rc"
echo
echo "all tests: $passed passed, $failed failed"
exit "$status"
