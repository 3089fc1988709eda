#!/usr/bin/env bash
# Assembles an overlay-init initramfs: initramfs/base.list (the kernel's gen_init_cpio format),
# the kernel modules the settings name and, for signed images, the public verity key. Run by
# post-image.sh (the boot partition's initramfs) and post-build.sh (the one a slot image carries
# in /boot for the kernel hand-over): both are for the kernel Buildroot built.
#
# Usage: initramfs.sh CONF WORKDIR OUT. WORKDIR gets the gen_init_cpio list and the modules'
# index; OUT the gzip-compressed cpio. Needs BINARIES_DIR, TARGET_DIR, HOST_DIR, BUILD_DIR (Buildroot
# exports them) and OVERLAY_INIT_VERITY_KEY when the config sets oinit.veritykey.
set -euo pipefail

conf=$1
work=$2
out=$3
top=$(cd "$(dirname "$0")/../../.." && pwd)
mkdir -p "$work"
list=$work/initramfs.list
export OVERLAY_INIT_BIN=$BINARIES_DIR/overlay-init OVERLAY_INIT_CONF=$conf
cp "$top/initramfs/base.list" "$list"

# Modules: what the settings name (and dm-verity or loop when they need them), with what each
# needs, resolved by the project's own code (the host build of overlay-init, as the init does it
# at boot) from the kernel's modules.dep; built-in ones need nothing (modules.builtin).
moddir=$(find -L "$TARGET_DIR/lib/modules" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -n 1)
if [ -n "$moddir" ]; then
	"$HOST_DIR/bin/overlay-init" initramfs-modules --config "$conf" "$moddir" "$work/initramfs-modules" >>"$list"
fi

# Signed images (oinit.veritykey in the config): the public half of OVERLAY_INIT_VERITY_KEY goes
# into the initramfs where the config says.
veritykey=$(sed -n 's/^oinit\.veritykey=//p' "$conf")
if [ -n "$veritykey" ]; then
	: "${OVERLAY_INIT_VERITY_KEY:?the board config sets oinit.veritykey: export OVERLAY_INIT_VERITY_KEY=<ed25519 private key>}"
	openssl pkey -in "$OVERLAY_INIT_VERITY_KEY" -pubout -out "$work/verity.pub"
	d=$(dirname "$veritykey")
	rm -f "$list.keydirs"
	while [ "$d" != / ]; do
		grep -qx "dir $d 0755 0 0" "$list" || echo "dir $d 0755 0 0" >>"$list.keydirs"
		d=$(dirname "$d")
	done
	if [ -f "$list.keydirs" ]; then tac "$list.keydirs" >>"$list" && rm -f "$list.keydirs"; fi
	echo "file $veritykey $work/verity.pub 0644 0 0" >>"$list"
fi

# The board's U-Boot environment location (oinit.bootloader=uboot), when it keeps a
# fw_env.config beside its overlay-init.conf: the init marks a failed slot bad through it.
if [ -f "$(dirname "$conf")/fw_env.config" ]; then
	echo "file /etc/fw_env.config $(dirname "$conf")/fw_env.config 0644 0 0" >>"$list"
fi

# The kernel's own gen_init_cpio, from the Linux build Buildroot just did.
gen=$(find "$BUILD_DIR" -maxdepth 3 -path '*/usr/gen_init_cpio' -type f | head -n 1)
[ -n "$gen" ] || { echo "initramfs.sh: no usr/gen_init_cpio in $BUILD_DIR/linux-*: enable BR2_LINUX_KERNEL" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
"$gen" -t 0 "$list" | gzip -9n >"$out"
echo "initramfs.sh: $out from $list"
