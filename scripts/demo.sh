#!/bin/sh
# The main job on the embedded default: snoo-hostd serves a pool, two host processes (standing in
# for two VMs, same protocol and memory layout as QEMU guests) join it and ping-pong through the
# shared memory, waking each other with doorbells.
set -eu
. "$(dirname "$0")/common.sh"
need_cargo
cd "$root"
cargo build --release -q -p snoo-host --bins
cargo build --release -q -p snoo-mpi --example pool_demo
bin=$root/target/release
dir=$(mktemp -d /tmp/snoo-demo.XXXXXX)
sock=$dir/snoo.sock
cleanup() { kill "$daemon" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT INT TERM
RUST_LOG=${RUST_LOG:-warn} "$bin/snoo-hostd" --socket "$sock" --size 1M --vectors 1 --name demo &
daemon=$!
i=0
while [ ! -S "$sock" ]; do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "snoo-hostd did not start" >&2; exit 1; }
    sleep 0.05
done
"$bin/examples/pool_demo" "$sock" pong &
pong=$!
"$bin/examples/pool_demo" "$sock" ping "${ROUNDS:-20000}"
wait "$pong"
