#!/bin/sh
# Fetches MPICH 5 (the `mpich` wheel from PyPI) into DEST (default: <workspace>/target/mpich-abi):
# its `mpicc_abi` builds C programs for the MPI 5.0 standard ABI (libmpi_abi.so.1), and its
# `mpiexec` runs them over MPICH's own libmpi_abi, so that the MPI tests compare SNOO's standard-ABI
# library with a real one. The wheel is unpacked, never installed into a Python environment.
#   DEST/bin/mpicc_abi, DEST/bin/mpiexec, DEST/lib/libmpi_abi.so.1, DEST/include/mpi.h
# Idempotent: nothing is downloaded once DEST/bin/mpicc_abi exists. Needs pip (python3 -m pip)
# and unzip or python3's zipfile.
set -eu

version=5.0.2
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-$here/../../target/mpich-abi}
[ -x "$dest/bin/mpicc_abi" ] && exit 0
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --dest "$tmp" "mpich==$version" >&2
wheel=$(ls "$tmp"/mpich-*.whl)
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$wheel" "$tmp/x"
data="$tmp/x/mpich-$version.data/data"
for d in bin lib include; do
    rm -rf "${dest:?}/$d"
    cp -a "$data/$d" "$dest/$d"
done
chmod +x "$dest"/bin/*
echo "MPICH $version (mpicc_abi, mpiexec) in $dest" >&2
