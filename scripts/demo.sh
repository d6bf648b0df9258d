#!/bin/sh
# The main job on the embedded default: snoo-run starts an embedded snoo-hostd and two ranks as
# host processes (standing in for two VMs: same protocol and memory layout as QEMU guests); they
# ping-pong SNOO_MPI messages from 0 B to 16 MiB, checking every byte, and rank 0 reports round-trip
# time and bandwidth. Small messages travel as mailbox register words, large ones through the rings.
set -eu
. "$(dirname "$0")/common.sh"
need_cargo
cd "$root"
cargo build --release -q -p snoo-host --bins
cargo build --release -q -p snoo-mpi --example pingpong -p snoo-mpi-capi --lib
exec "$root/target/release/snoo-run" -n 2 --name demo --timeout 300 \
    "$root/target/release/examples/pingpong" "${MAX_BYTES:-16777216}" "${ITERATIONS:-1000}"
