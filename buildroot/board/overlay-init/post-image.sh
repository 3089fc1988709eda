#!/usr/bin/env bash
# Buildroot post-image script: assembles the overlay-init initramfs (initramfs.sh: base.list,
# the kernel modules the board's settings name), signs the root image when the settings ask for
# signed images, then builds the board's disk image when the board has a genimage.cfg and its
# inputs are there.
#
# Buildroot calls it with BINARIES_DIR as $1; BR2_ROOTFS_POST_SCRIPT_ARGS adds the board name.
# OVERLAY_INIT_CONF, when set, is the config to use instead of board/BOARD/overlay-init.conf.
# Needs from the environment (Buildroot exports them): TARGET_DIR, HOST_DIR, BUILD_DIR.
set -euo pipefail

binaries=$1
board=${2:?give the board (a folder of board/) in BR2_ROOTFS_POST_SCRIPT_ARGS}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
conf=${OVERLAY_INIT_CONF:-$top/board/$board/overlay-init.conf}
[ -f "$conf" ] || { echo "post-image: no $conf: BR2_ROOTFS_POST_SCRIPT_ARGS must name a board" >&2; exit 1; }

# The boot partition's initramfs, for the kernel Buildroot built.
BINARIES_DIR=$binaries "$here/initramfs.sh" "$conf" "$binaries" "$binaries/initramfs.cpio.gz"

# Signed images (oinit.veritykey in the config): rootfs.squashfs is signed into rootfs.verity
# (veritysetup and openssl from the host, see board/integration/verity/sign-image.sh).
veritykey=$(sed -n 's/^oinit\.veritykey=//p' "$conf")
if [ -n "$veritykey" ]; then
	PATH=$HOST_DIR/sbin:$HOST_DIR/bin:$PATH sh "$top/board/integration/verity/sign-image.sh" \
		"$binaries/rootfs.squashfs" "$OVERLAY_INIT_VERITY_KEY" "$binaries/rootfs.verity"
fi

# The disk: genimage.cfg names its inputs the way cargo xtask makes them; Buildroot's are renamed.
cfg=$top/board/$board/genimage.cfg
if [ -f "$cfg" ] && [ -x "$HOST_DIR/bin/genimage" ]; then
	# One image in both slots at the factory; slot b gets its own by the first update.
	image=rootfs.squashfs
	if [ -n "$veritykey" ]; then image=rootfs.verity; fi
	for slot in a b; do ln -sf "$image" "$binaries/rootfs-$slot.sqfs"; done
	if grep -q '"extlinux.conf"' "$cfg"; then
		dtb=$(grep -o '"[^"]*\.dtb"' "$cfg" | tr -d '"' | head -n 1 || true)
		{
			printf 'default overlay-init\nlabel overlay-init\n  kernel /Image\n'
			if [ -n "$dtb" ]; then printf '  fdt /%s\n' "$dtb"; fi
			printf '  initrd /initramfs.cpio.gz\n  append %s\n' "$(cat "$top/board/$board/cmdline")"
		} >"$binaries/extlinux.conf"
	fi
	# A slot is the whole system under U-Boot (docs/uboot.md): the boot script (the board's part
	# ahead of the common one) and each slot's boot partition (boot-SLOT.ext4, labelled after its
	# partition) with the kernel, initramfs and device tree (board.txt dtb=) U-Boot loads.
	if grep -q '"boot.scr"' "$cfg"; then
		parts=("$top/board/integration/uboot/boot.cmd")
		if [ -f "$top/board/$board/boot.cmd" ]; then parts=("$top/board/$board/boot.cmd" "${parts[@]}"); fi
		cat "${parts[@]}" >"$binaries/boot.cmd"
		"$HOST_DIR/bin/mkimage" -A arm -T script -C none -d "$binaries/boot.cmd" "$binaries/boot.scr"
	fi
	while read -r part img size; do
		kernel=
		for name in Image zImage bzImage; do
			if [ -f "$binaries/$name" ]; then kernel=$binaries/$name && break; fi
		done
		dtb=$(sed -n 's/^dtb=//p' "$top/board/$board/board.txt")
		if [ -z "$kernel" ] || [ -z "$dtb" ] || [ ! -f "$binaries/$(basename "$dtb")" ]; then
			echo "post-image: $img needs the kernel image and the device tree board.txt names (dtb=$dtb) in $binaries" >&2
			exit 1
		fi
		files=$(mktemp -d)
		cp "$kernel" "$files/vmlinuz"
		cp "$binaries/initramfs.cpio.gz" "$files/initrd.img"
		cp "$binaries/$(basename "$dtb")" "$files/board.dtb"
		rm -f "$binaries/$img"
		"$HOST_DIR/sbin/mkfs.ext4" -q -F -L "$part" -E root_owner=0:0 -d "$files" "$binaries/$img" "$size"
		rm -rf "$files"
	done < <(awk '/partition /{ p = $2; s = ""; i = "" } /size *=/{ s = $3 } /image *=/{ i = $3 }
		/}/{ if (i ~ /^"boot-.*\.ext4"$/) { gsub(/"/, "", i); print p, i, s; i = "" } }' "$cfg")
	# An empty ext4 labelled after the partition that holds userdata.ext4, of its size.
	read -r part size < <(awk '/partition /{ p = $2; s = ""; i = "" } /size *=/{ s = $3 } /image *=/{ i = $3 }
		/}/{ if (i == "\"userdata.ext4\"") { print p, s; i = "" } }' "$cfg")
	if [ -n "${part:-}" ]; then
		rm -f "$binaries/userdata.ext4"
		"$HOST_DIR/sbin/mkfs.ext4" -q -F -L "$part" "$binaries/userdata.ext4" "$size"
	fi
	# genimage copies its root path first, even when no image is made from it: an empty one.
	tmp=$(mktemp -d)
	mkdir "$tmp/root"
	"$HOST_DIR/bin/genimage" --config "$top/board/$board/genimage.cfg" --inputpath "$binaries" \
		--outputpath "$binaries" --rootpath "$tmp/root" --tmppath "$tmp/tmp"
	rm -rf "$tmp"
fi
