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

# Modules: those oinit.modules names that the kernel built as modules, with what modules.dep
# says they need (NAME? too, when the kernel has it). Built-in ones need nothing (the init reads
# modules.builtin).
modules=$(sed -n 's/^oinit\.modules=//p' "$conf" | tr ',' ' ' | tr -d '?')
# A verified lower (a key or a root hash in the config): the init loads dm-verity by itself.
if grep -qE '^oinit\.(veritykey|a?roothash|broothash)=' "$conf"; then modules="$modules dm-verity"; fi
moddir=$(find -L "$TARGET_DIR/lib/modules" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -n 1)
if [ -n "$modules" ] && [ -n "$moddir" ]; then
	ver=${moddir##*/}
	dep=$moddir/modules.dep
	# modules.dep lists every module a module needs, transitively, on its own line; soft
	# dependencies (ext4 wants crc32c) are followed one level, through modules.alias.
	line_of() {
		awk -F: -v n="${1//-/_}" '{ b = $1; sub(".*/", "", b); sub("\\.ko.*", "", b); gsub("-", "_", b); if (b == n) { print $0; exit } }' "$dep"
	}
	soft_of() {
		awk -v n="$1" '$1 == "softdep" && $2 == n { for (i = 3; i <= NF; i++) if ($i != "pre:" && $i != "post:") print $i }' "$moddir/modules.softdep" 2>/dev/null
	}
	alias_of() {
		awk -v n="$1" '$1 == "alias" && $2 == n { print $3; found = 1; exit } END { if (!found) print n }' "$moddir/modules.alias" 2>/dev/null
	}
	want=()
	for m in $modules; do
		for n in "$m" $(for s in $(soft_of "${m//-/_}"); do alias_of "$s"; done); do
			path=$(line_of "$n")
			if [ -n "$path" ]; then read -r -a words <<<"${path/:/}"; want+=("${words[@]}"); fi
		done
	done
	echo "dir /lib/modules/$ver 0755 0 0" >>"$list"
	for f in $(printf '%s\n' "${want[@]}" | sort -u); do
		d=$(dirname "$f")
		while [ "$d" != "." ] && ! grep -qx "dir /lib/modules/$ver/$d 0755 0 0" "$list"; do
			echo "dir /lib/modules/$ver/$d 0755 0 0" >>"$list.dirs"
			d=$(dirname "$d")
		done
		echo "file /lib/modules/$ver/$f $moddir/$f 0644 0 0" >>"$list.files"
	done
	if [ -f "$list.dirs" ]; then sort -u "$list.dirs" | awk '{ print length($2), $0 }' | sort -n | cut -d' ' -f2- >>"$list"; fi
	if [ -f "$list.files" ]; then cat "$list.files" >>"$list"; fi
	rm -f "$list.dirs" "$list.files"
	for f in modules.dep modules.softdep modules.alias modules.builtin; do
		[ -f "$moddir/$f" ] && echo "file /lib/modules/$ver/$f $moddir/$f 0644 0 0" >>"$list"
	done
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
