#!/bin/sh
# Fetches a Debian kernel for the QEMU test guests into CACHE_DIR (default: <workspace>/target/guest-cache):
#   CACHE_DIR/vmlinuz    the kernel image
#   CACHE_DIR/modules/   its lib/modules/<version> tree (the VFIO tests insmod modules from it)
#   CACHE_DIR/version    the kernel package name, e.g. linux-image-6.1.0-56-amd64
#   CACHE_DIR/vmlinux    the uncompressed ELF kernel, if it can be extracted (see below)
#
# QEMU boots the ELF vmlinux through its PVH entry point, which skips the bzImage's self-decompression:
# under TCG that decompression takes about 4 s of a 9 s boot. The harness falls back to vmlinuz when
# vmlinux is missing.
#
# Idempotent: once vmlinuz, modules/ and version are in place it does not download again. The kernel
# package is the one `linux-image-amd64` currently depends on, so the guest kernel follows Debian's
# updates. Needs apt-get, apt-cache and dpkg-deb (a Debian or Ubuntu host), and xz-utils for vmlinux
# (busybox unxz rejects the data that follows the payload). `apt-get update` is run only if the
# download fails, which requires root.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cache=${1:-$here/../../target/guest-cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# Finds the compressed payload inside vmlinuz and decompresses it to $cache/vmlinux.
extract_vmlinux() {
    [ -s "$cache/vmlinux" ] && return 0
    for fmt in 'xz:\xfd7zXZ\x00:xz -dc --single-stream' 'zstd:\x28\xb5\x2f\xfd:zstd -dc' \
        'gzip:\x1f\x8b\x08:gzip -dc'; do
        magic=$(printf %s "$fmt" | cut -d: -f2)
        tool=$(printf %s "$fmt" | cut -d: -f3)
        command -v "${tool%% *}" >/dev/null 2>&1 || continue
        for off in $(LC_ALL=C grep -obUaP "$magic" "$cache/vmlinuz" 2>/dev/null | cut -d: -f1 | head -n 5); do
            tail -c +$((off + 1)) "$cache/vmlinuz" | $tool >"$cache/vmlinux.tmp" 2>/dev/null || true
            if [ "$(head -c 4 "$cache/vmlinux.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
                mv "$cache/vmlinux.tmp" "$cache/vmlinux"
                return 0
            fi
        done
    done
    rm -f "$cache/vmlinux.tmp"
    echo "fetch-guest-kernel: could not extract vmlinux (is xz-utils installed?); guests will boot the slower bzImage" >&2
}

# Two test processes may fetch at once.
exec 9>"$cache/.lock"
flock 9

if [ -s "$cache/vmlinuz" ] && [ -d "$cache/modules/kernel" ] && [ -s "$cache/version" ]; then
    extract_vmlinux
    exit 0
fi

pkg_name() {
    # "  Depends: linux-image-6.1.0-56-amd64" -> linux-image-6.1.0-56-amd64
    apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -n 1
}

pkg=$(pkg_name || true)
if [ -z "$pkg" ]; then
    echo "fetch-guest-kernel: apt does not know linux-image-amd64; running apt-get update" >&2
    apt-get update >&2
    pkg=$(pkg_name)
fi
if [ -z "$pkg" ]; then
    echo "fetch-guest-kernel: cannot name the kernel package (apt-cache depends linux-image-amd64)" >&2
    exit 1
fi

work=$(mktemp -d "$cache/fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

# apt-get download writes into the current directory. As root it drops privileges to user _apt,
# which must be able to write there, hence the chmod.
chmod 0777 "$work"
if ! (cd "$work" && apt-get download "$pkg" >&2); then
    echo "fetch-guest-kernel: download failed; running apt-get update and retrying" >&2
    apt-get update >&2
    (cd "$work" && apt-get download "$pkg" >&2)
fi

deb=$(ls "$work"/*.deb | head -n 1)
dpkg-deb -x "$deb" "$work/root"

kimg=$(ls "$work"/root/boot/vmlinuz-* | head -n 1)
mods=$(ls -d "$work"/root/lib/modules/* | head -n 1)
if [ ! -f "$kimg" ] || [ ! -d "$mods/kernel" ]; then
    echo "fetch-guest-kernel: $deb has no /boot/vmlinuz-* or /lib/modules/<version>/kernel" >&2
    exit 1
fi

# Replace the cache contents; `version` goes last because its presence marks a complete cache.
rm -rf "$cache/modules" "$cache/vmlinuz" "$cache/vmlinux" "$cache/version"
mv "$kimg" "$cache/vmlinuz"
mv "$mods" "$cache/modules"
echo "$pkg" > "$cache/version.tmp"
mv "$cache/version.tmp" "$cache/version"
extract_vmlinux
echo "fetch-guest-kernel: $pkg -> $cache" >&2
