#!/usr/bin/env bash
# Buildroot post-build script: on a board whose settings hand over to a slot's own kernel
# (oinit.kexec=1, docs/kexec.md) or whose U-Boot loads it (docs/uboot.md), the root filesystem
# gets its whole boot in /boot before Buildroot makes rootfs.squashfs of it: the kernel
# Buildroot built, its device tree, and an overlay-init initramfs for that kernel, at the paths
# the settings name. Inside the root image, dm-verity and a signed root hash cover them. Then
# they are checked the way `install` checks an image. Does nothing on a board whose slots share one kernel.
#
# Buildroot calls it with TARGET_DIR as $1; BR2_ROOTFS_POST_SCRIPT_ARGS adds the board name.
# OVERLAY_INIT_CONF, when set, is the config to use instead of board/BOARD/overlay-init.conf.
# Needs from the environment (Buildroot exports them): BINARIES_DIR, HOST_DIR, BUILD_DIR.
set -euo pipefail

target=$1
board=${2:?give the board (a folder of board/) in BR2_ROOTFS_POST_SCRIPT_ARGS}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
conf=${OVERLAY_INIT_CONF:-$top/board/$board/overlay-init.conf}
[ -f "$conf" ] || { echo "post-build: no $conf: BR2_ROOTFS_POST_SCRIPT_ARGS must name a board" >&2; exit 1; }
oi=$HOST_DIR/bin/overlay-init
# A board whose U-Boot boots each slot's own kernel (its boot script, board/BOARD/boot.cmd,
# boots with oinit.bootloader=uboot): its slot images carry their boot files as well, which
# `install` copies into the slot's boot partition (docs/uboot.md).
if [ -f "$top/board/$board/boot.cmd" ]; then
	uboot_conf=$(mktemp)
	trap 'rm -f "$uboot_conf"' EXIT
	{ cat "$conf"; echo; echo oinit.bootloader=uboot; } >"$uboot_conf"
	conf=$uboot_conf
fi

# Where the settings put the files (none: the hand-over is off, nothing to do).
files=$("$oi" kexec-files --config "$conf")
[ -n "$files" ] || exit 0
path() { awk -v k="$1" '$1 == k { print $2 }' <<<"$files"; }
kernel=$(path kernel)
initrd=$(path initrd)
dtb=$(path dtb)

# The kernel image Buildroot installed (BR2_LINUX_KERNEL_IMAGE_NAME is one of these).
image=
for name in Image zImage bzImage vmlinuz uImage; do
	if [ -f "$BINARIES_DIR/$name" ]; then image=$BINARIES_DIR/$name && break; fi
done
[ -n "$image" ] || { echo "post-build: no kernel image in $BINARIES_DIR: enable BR2_LINUX_KERNEL" >&2; exit 1; }
install -D -m 0644 "$image" "$target$kernel"

# An arm64 Image or a zImage does not say in its header which kernel it is: its banner, beside it
# in the same verified image, does (stage one compares it with the running kernel). The banner is
# read from the kernel build's vmlinux, or from an uncompressed image.
rm -f "$target$kernel.version"
vmlinux=$(find "$BUILD_DIR" -maxdepth 2 -path '*/linux-*/vmlinux' -type f 2>/dev/null | head -n 1)
for f in $vmlinux "$image"; do
	banner=$( (LC_ALL=C grep -a -o -m 1 'Linux version [[:print:]]*' "$f" || true) | head -n 1)
	if [ -n "$banner" ]; then echo "$banner" >"$target$kernel.version" && break; fi
done

if [ -n "$dtb" ]; then
	name=$(basename "$dtb")
	[ -f "$BINARIES_DIR/$name" ] || { echo "post-build: $conf names the device tree $dtb but $BINARIES_DIR has no $name: set BR2_LINUX_KERNEL_INTREE_DTS_NAME" >&2; exit 1; }
	install -D -m 0644 "$BINARIES_DIR/$name" "$target$dtb"
fi

TARGET_DIR=$target "$here/initramfs.sh" "$conf" "$BUILD_DIR/overlay-init-slot-initramfs" "$target$initrd"

# The checks `install` makes before a slot is offered: the kernel, its initramfs and device tree,
# and /lib/modules/RELEASE of that kernel in this root filesystem.
"$oi" kexec-check --config "$conf" "$target"
