#!/bin/sh
# The benchmarks in one command: installs MPICH (and a TTF font for the plot) if missing, builds
# everything in release, then runs SNOO_MPI, MPICH over shared memory, MPICH restricted to TCP
# and the machine-limit probes, and writes docs/benchmarks.md and docs/benchmarks.png.
# A full run takes about 4 minutes on 2 CPUs; `./scripts/bench.sh --quick` (tiny iteration
# counts, for checking the pipeline) well under a minute.
set -eu
. "$(dirname "$0")/common.sh"
need_cargo
apt_install mpich libmpich-dev fonts-dejavu-core
cd "$root"
cargo build --release -q -p snoo-host -p snoo-bench -p snoo-libmpi
exec target/release/bench-report "$@"
