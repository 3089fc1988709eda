#!/bin/sh
# Makes a downgrade token: permission, signed with the board's verity key, for devices of one
# product to take images from a security version up again (overlay-init install
# --downgrade-token FILE). Anti-rollback refuses any image below the highest security version a
# device marked good; this is the one way back, and only the key's holder can make it.
#
# usage: make-downgrade-token.sh COMPATIBLE SECURITY_VERSION ED25519_PRIVATE_KEY.pem OUT
# Needs openssl 3.
set -eu

[ $# -eq 4 ] || { echo "usage: $0 COMPATIBLE SECURITY_VERSION ED25519_PRIVATE_KEY.pem OUT" >&2; exit 2; }
compatible=$1 version=$2 key=$3 out=$4
case "$version" in *[!0-9]* | '') echo "$0: SECURITY_VERSION must be a number" >&2; exit 2 ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'overlay-init downgrade v1\ncompatible=%s\nsecurity_version=%s\n' "$compatible" "$version" >"$tmp/message"
openssl pkeyutl -sign -rawin -inkey "$key" -in "$tmp/message" -out "$tmp/sig"
sig=$(od -An -v -tx1 "$tmp/sig" | tr -d ' \n')
printf 'oidowngrade1\ncompatible=%s\nsecurity_version=%s\nsig=%s\n' "$compatible" "$version" "$sig" >"$out"
echo "$out: devices of $compatible may take images of security version $version and up" >&2
