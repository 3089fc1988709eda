#!/usr/bin/env bash
# Buildroot post-image script: assembles the overlay-init initramfs from initramfs/base.list
# (the kernel's gen_init_cpio format) plus the kernel modules the board's settings name, then
# builds the board's disk image when the board has a genimage.cfg and its inputs are there.
#
# Buildroot calls it with BINARIES_DIR as $1; BR2_ROOTFS_POST_SCRIPT_ARGS adds the board name.
# Needs from the environment (Buildroot exports them): BR2_EXTERNAL_OVERLAY_INIT_PATH, TARGET_DIR,
# HOST_DIR, BUILD_DIR.
set -euo pipefail

binaries=$1
board=${2:?give the board (a folder of board/) in BR2_ROOTFS_POST_SCRIPT_ARGS}
top=$(cd "${BR2_EXTERNAL_OVERLAY_INIT_PATH}/.." && pwd)
conf=$top/board/$board/overlay-init.conf
[ -f "$conf" ] || { echo "post-image: no $conf: BR2_ROOTFS_POST_SCRIPT_ARGS must name a board" >&2; exit 1; }

list=$binaries/initramfs.list
export OVERLAY_INIT_BIN=$binaries/overlay-init OVERLAY_INIT_CONF=$conf
cp "$top/initramfs/base.list" "$list"

# Modules: what the settings name (and dm-verity or loop when they need them), with what each
# needs, resolved by the project's own code (the host build of overlay-init, as the init does it
# at boot) from the kernel's modules.dep; built-in ones need nothing (modules.builtin).
moddir=$(find -L "$TARGET_DIR/lib/modules" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -n 1)
if [ -n "$moddir" ]; then
	"$HOST_DIR/bin/overlay-init" initramfs-modules --config "$conf" "$moddir" "$binaries/initramfs-modules" >>"$list"
fi

# Signed images (oinit.veritykey in the config): the public half of OVERLAY_INIT_VERITY_KEY goes
# into the initramfs where the config says, and rootfs.squashfs is signed into rootfs.verity
# (veritysetup and openssl from the host, see board/integration/verity/sign-image.sh).
veritykey=$(sed -n 's/^oinit\.veritykey=//p' "$conf")
if [ -n "$veritykey" ]; then
	: "${OVERLAY_INIT_VERITY_KEY:?the board config sets oinit.veritykey: export OVERLAY_INIT_VERITY_KEY=<ed25519 private key>}"
	openssl pkey -in "$OVERLAY_INIT_VERITY_KEY" -pubout -out "$binaries/verity.pub"
	d=$(dirname "$veritykey")
	while [ "$d" != / ]; do
		grep -qx "dir $d 0755 0 0" "$list" || echo "dir $d 0755 0 0" >>"$list.keydirs"
		d=$(dirname "$d")
	done
	if [ -f "$list.keydirs" ]; then tac "$list.keydirs" >>"$list" && rm -f "$list.keydirs"; fi
	echo "file $veritykey $binaries/verity.pub 0644 0 0" >>"$list"
	PATH=$HOST_DIR/sbin:$HOST_DIR/bin:$PATH sh "$top/board/integration/verity/sign-image.sh" \
		"$binaries/rootfs.squashfs" "$OVERLAY_INIT_VERITY_KEY" "$binaries/rootfs.verity"
fi

# The kernel's own gen_init_cpio, from the Linux build Buildroot just did.
gen=$(find "$BUILD_DIR" -maxdepth 3 -path '*/usr/gen_init_cpio' -type f | head -n 1)
[ -n "$gen" ] || { echo "post-image: no usr/gen_init_cpio in $BUILD_DIR/linux-*: enable BR2_LINUX_KERNEL" >&2; exit 1; }
"$gen" -t 0 "$list" | gzip -9n >"$binaries/initramfs.cpio.gz"
echo "post-image: $binaries/initramfs.cpio.gz from $list"

# The disk: genimage.cfg names its inputs the way cargo xtask makes them; Buildroot's are renamed.
cfg=$top/board/$board/genimage.cfg
if [ -f "$cfg" ] && [ -x "$HOST_DIR/bin/genimage" ]; then
	# One image in both slots at the factory; slot b gets its own by the first update.
	image=rootfs.squashfs
	if [ -n "$veritykey" ]; then image=rootfs.verity; fi
	for slot in a b; do ln -sf "$image" "$binaries/rootfs-$slot.sqfs"; done
	dtb=$(grep -o '"[^"]*\.dtb"' "$cfg" | tr -d '"' | head -n 1 || true)
	{
		printf 'default overlay-init\nlabel overlay-init\n  kernel /Image\n'
		if [ -n "$dtb" ]; then printf '  fdt /%s\n' "$dtb"; fi
		printf '  initrd /initramfs.cpio.gz\n  append %s\n' "$(cat "$top/board/$board/cmdline")"
	} >"$binaries/extlinux.conf"
	# An empty ext4 labelled after the partition that holds userdata.ext4, of its size.
	read -r part size < <(awk '/partition /{ p = $2; s = ""; i = "" } /size *=/{ s = $3 } /image *=/{ i = $3 }
		/}/{ if (i == "\"userdata.ext4\"") { print p, s; i = "" } }' "$cfg")
	if [ -n "${part:-}" ]; then
		rm -f "$binaries/userdata.ext4"
		"$HOST_DIR/sbin/mkfs.ext4" -q -F -L "$part" "$binaries/userdata.ext4" "$size"
	fi
	tmp=$(mktemp -d)
	"$HOST_DIR/bin/genimage" --config "$top/board/$board/genimage.cfg" --inputpath "$binaries" \
		--outputpath "$binaries" --rootpath "$tmp/root" --tmppath "$tmp/tmp"
	rm -rf "$tmp"
fi
