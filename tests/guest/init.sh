#!/bin/busybox sh
# /init of the SNOO test guests (built into the initramfs by tests/src/qemu.rs).
#
# Sets up a minimal busybox system, enables memory decoding on every ivshmem device, then serves
# commands from the host on the serial console:
#   "B <base64>"        appends a chunk of a base64-encoded shell script
#   "R <id> <seconds>"  runs the script (stdin /dev/null, stderr merged into stdout, killed after
#                       <seconds>), printing "@@SNOO-BEGIN <id>@@" before its output and
#                       "\n@@SNOO-END <id> <status>@@" after it
# Scripts travel base64-encoded so that neither the tty echo nor the shell's quoting can corrupt
# them or fake a marker, and in short lines because a canonical tty line holds at most 4095 bytes.
# This script must never exit: the kernel panics when init dies (and panic=-1 then ends QEMU).

/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp /run
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
exec </dev/console >/dev/console 2>&1

# The PCI command register of an ivshmem device is 0 after reset: no driver binds it, so enable
# memory decoding here or BAR accesses through /dev/mem read all-ones and writes are dropped.
for d in /sys/bus/pci/devices/*; do
    [ -e "$d/vendor" ] || continue
    if [ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x1110 ]; then
        echo 1 >"$d/enable"
    fi
done

# Kernel modules copied into the image, in load order (see ImageSpec::modules).
if [ -f /lib/modules/snoo/load-at-boot ]; then
    for m in $(cat /lib/modules/snoo/order); do
        insmod "/lib/modules/snoo/$m.ko" || echo "@@SNOO-INSMOD-FAILED $m@@"
    done
fi

stty -echo 2>/dev/null
cd /
echo "@@SNOO-READY@@"

while :; do
    if ! IFS= read -r line; then
        sleep 1
        continue
    fi
    case "$line" in
    "B "*)
        printf '%s\n' "${line#B }" >>/tmp/.snoo-cmd.b64
        ;;
    "R "*)
        set -- ${line#R }
        base64 -d /tmp/.snoo-cmd.b64 >/tmp/.snoo-cmd.sh 2>/dev/null
        rm -f /tmp/.snoo-cmd.b64
        echo "@@SNOO-BEGIN $1@@"
        (cd / && timeout -s KILL "$2" sh /tmp/.snoo-cmd.sh </dev/null 2>&1)
        printf '\n@@SNOO-END %s %d@@\n' "$1" "$?"
        ;;
    esac
done
