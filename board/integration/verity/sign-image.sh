#!/bin/sh
# Makes a verified, signed image for overlay-init from a squashfs or EROFS image:
#
#   image | verity superblock + hash tree (veritysetup format) | signature block (4 KiB)
#
# The hash tree starts at the first 4 KiB boundary after the image (squashfs: its bytes_used;
# EROFS: its block count times its block size, from the superblock at byte 1024); the
# signature block right after the tree holds the root hash and an ed25519 signature over
# "overlay-init verity v1 roothash=<hex>\n" made with openssl. The root hash is also written to
# OUT.roothash, for boards that pin it with oinit.roothash= instead of (or as well as) a key.
#
# With VERITY_HASH_FILE=PATH the superblock, tree, signature block (and parity) go to that file
# instead, for a hash partition of its own (oinit.hashdev=); OUT is then the padded squashfs.
#
# With VERITY_FEC_ROOTS=N (2 to 24), Reed-Solomon parity (veritysetup's --fec-device on the same
# file) follows the signature block and covers everything before it; dm-verity then repairs up to
# N/2 bad bytes per codeword on read, and the block says fec_roots=N so the init loads it.
#
# With VERITY_COMPATIBLE=PRODUCT and VERITY_SECURITY_VERSION=N the block is version 2: the
# signature covers a manifest (root hash, data blocks, salt, the product the image is for and its
# security version), and a device with oinit.compatible= boots only its own product's images and
# never one below the highest security version it marked good (see docs/verity.md).
#
# usage: sign-image.sh IMAGE ED25519_PRIVATE_KEY.pem OUT
# Make a key once:  openssl genpkey -algorithm ed25519 -out verity.key
# and its public half for the board's initramfs:  openssl pkey -in verity.key -pubout -out verity.pub
# Needs veritysetup (cryptsetup-bin) and openssl 3. VERITY_SALT=<hex> makes the output reproducible.
set -eu

[ $# -eq 3 ] || { echo "usage: $0 IMAGE ED25519_PRIVATE_KEY.pem OUT" >&2; exit 2; }
in=$1 key=$2 out=$3
if [ "$(head -c 4 "$in")" = hsqs ]; then
	used=$(od -An -tu8 -j40 -N8 "$in" | tr -d ' ')
elif [ "$(od -An -tx4 -j1024 -N4 "$in" | tr -d ' ')" = e0f5e1e2 ]; then
	bits=$(od -An -tu1 -j1036 -N1 "$in" | tr -d ' ')
	used=$(( $(od -An -tu4 -j1060 -N4 "$in" | tr -d ' ') << bits ))
else
	echo "$0: $in is neither a squashfs nor an EROFS image" >&2
	exit 1
fi
blocks=$(( (used + 4095) / 4096 ))
veritysetup=$(command -v veritysetup || echo /usr/sbin/veritysetup)

cp "$in" "$out"
truncate -s $((blocks * 4096)) "$out"
hash=${VERITY_HASH_FILE:-$out}
set -- format --data-blocks="$blocks"
if [ "$hash" = "$out" ]; then
	set -- "$@" --hash-offset=$((blocks * 4096))
else
	rm -f "$hash"
fi
if [ -n "${VERITY_SALT:-}" ]; then set -- "$@" --salt="$VERITY_SALT"; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$veritysetup" "$@" "$out" "$hash" >"$tmp/format"
root=$(awk '/^Root hash:/ { print $3 }' "$tmp/format")
[ ${#root} -eq 64 ] || { echo "$0: veritysetup format gave no root hash" >&2; exit 1; }

if [ -n "${VERITY_COMPATIBLE:-}${VERITY_SECURITY_VERSION:-}" ]; then
	[ -n "${VERITY_COMPATIBLE:-}" ] && [ -n "${VERITY_SECURITY_VERSION:-}" ] ||
		{ echo "$0: set both VERITY_COMPATIBLE and VERITY_SECURITY_VERSION" >&2; exit 2; }
	case "$VERITY_SECURITY_VERSION" in *[!0-9]* | '') echo "$0: VERITY_SECURITY_VERSION must be a number" >&2; exit 2 ;; esac
	salt=$(awk '/^Salt:/ { print $2 }' "$tmp/format")
	[ "$salt" = "-" ] && salt=
	printf 'roothash=%s\ndata_blocks=%s\nsalt=%s\ncompatible=%s\nsecurity_version=%s\n' \
		"$root" "$blocks" "$salt" "$VERITY_COMPATIBLE" "$VERITY_SECURITY_VERSION" >"$tmp/manifest"
	{ echo 'overlay-init verity v2'; cat "$tmp/manifest"; } >"$tmp/message"
	header=oiverity2
else
	printf 'overlay-init verity v1 roothash=%s\n' "$root" >"$tmp/message"
	printf 'roothash=%s\n' "$root" >"$tmp/manifest"
	header=oiverity1
fi
openssl pkeyutl -sign -rawin -inkey "$key" -in "$tmp/message" -out "$tmp/sig"
sig=$(od -An -v -tx1 "$tmp/sig" | tr -d ' \n')
{ echo "$header"; cat "$tmp/manifest"; echo "sig=$sig"; } >"$tmp/block"
if [ -n "${VERITY_FEC_ROOTS:-}" ]; then printf 'fec_roots=%s\n' "$VERITY_FEC_ROOTS" >>"$tmp/block"; fi
truncate -s 4096 "$tmp/block"
# veritysetup wrote the tree up to its last block: the signature block follows it.
end=$(stat -c %s "$hash")
cat "$tmp/block" >>"$hash"
if [ -n "${VERITY_FEC_ROOTS:-}" ]; then
	# The same format again (same salt and UUID, so the same tree and root hash), now with the
	# parity computed over data, hash area and signature block.
	salt=$(awk '/^Salt:/ { print $2 }' "$tmp/format")
	uuid=$(awk '/^UUID:/ { print $2 }' "$tmp/format")
	again=$("$veritysetup" "$@" --salt="$salt" --uuid="$uuid" --fec-device="$hash" \
		--fec-offset=$((end + 4096)) --fec-roots="$VERITY_FEC_ROOTS" "$out" "$hash" | awk '/^Root hash:/ { print $3 }')
	[ "$again" = "$root" ] || { echo "$0: the FEC pass changed the root hash" >&2; exit 1; }
fi
echo "$root" >"$out.roothash"
echo "$out: root hash $root, signed with $key" >&2
