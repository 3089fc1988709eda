#!/usr/bin/env bash
# Checks meta-overlay-init with Yocto's own parser: BitBake and OE-Core from ../shared/yocto/,
# run as an unprivileged user (BitBake refuses root), offline. The layer must parse with OE-Core,
# `bitbake -e` of its recipes must expand with the SRC_URI, DEPENDS, RDEPENDS and packages a
# Yocto build would use, and the initramfs image without board settings must be skipped with
# the message that names the fix. Nothing is built: the toolchain is not available offline.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
shared=${SHARED:-$top/../shared}/yocto
work=$top/target/yocto
user=oiyocto

log() { printf '[yocto] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

# A machine where the user was removed may keep its group: join it rather than fail on it.
if ! id "$user" >/dev/null 2>&1; then
  group_arg=(--user-group)
  getent group "$user" >/dev/null && group_arg=(--gid "$user")
  useradd --system --create-home --shell /bin/bash "${group_arg[@]}" "$user"
fi
if [ ! -d "$work/bitbake" ] || [ ! -d "$work/openembedded-core" ]; then
  rm -rf "$work"; mkdir -p "$work"
  for t in "$shared"/bitbake-*.tar.gz "$shared"/openembedded-core-*.tar.gz; do tar -xzf "$t" -C "$work"; done
fi
# BitBake keeps its caches in the build directory and reads the layer where it is (its recipe
# builds this checkout): the user needs to read the tree, not to write it.
rm -rf "$work/build"
chown -R "$user" "$work"
layer=$top/meta-overlay-init

as_user() {
  runuser -u "$user" -- env -i HOME="/home/$user" PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=en_US.UTF-8 \
    ${OVERLAY_INIT_BOARD:+OVERLAY_INIT_BOARD=$OVERLAY_INIT_BOARD BB_ENV_PASSTHROUGH_ADDITIONS=OVERLAY_INIT_BOARD} \
    bash -c "cd '$work' && export BBPATH= && . openembedded-core/oe-init-build-env build >/dev/null && $1"
}

log "BitBake and OE-Core from $(cd "$shared" && echo bitbake-*.tar.gz openembedded-core-*.tar.gz)"
as_user "bitbake-layers add-layer '$layer' >/dev/null"
cat >>"$work/build/conf/local.conf" <<CONF
BB_NO_NETWORK = "1"
CONNECTIVITY_CHECK_URIS = ""
DISTRO_FEATURES:append = " systemd usrmerge"
INIT_MANAGER = "systemd"
# rauc needs meta-rauc (not in OE-Core): its PACKAGECONFIG is left to a build that has it.
PACKAGECONFIG:pn-overlay-init = "cli systemd"
CONF

# The board's settings for the whole parse (the recipes' own expansion does not depend on them).
export OVERLAY_INIT_BOARD=imx8
log "bitbake -e overlay-init (parses OE-Core and the layer: minutes)"
as_user "bitbake -e overlay-init" >"$work/overlay-init.env" 2>"$work/overlay-init.err" ||
  { cat "$work/overlay-init.err" >&2; fail "bitbake -e overlay-init"; }
var() { sed -n "s/^\\(export \\)\\{0,1\\}$2=\"\\(.*\\)\"\$/\\2/p" "$work/$1.env"; }
want() { # FILE VAR WORD...: each WORD is in VAR's expanded value
  local f=$1 v=$2 value; shift 2
  value=" $(var "$f" "$v") "
  for w in "$@"; do
    [[ "$value" == *" $w "* ]] || fail "$f: $v lacks '$w': $value"
  done
  log "$f: $v has $*"
}
crates=$(grep -c 'crate://crates.io/' "$top/meta-overlay-init/recipes-core/overlay-init/overlay-init-crates.inc")
got=$(var overlay-init SRC_URI | tr ' ' '\n' | grep -c '^crate://crates.io/' || true)
[ "$got" = "$crates" ] || fail "SRC_URI holds $got crate:// entries, the crate list $crates"
log "overlay-init: SRC_URI has the $crates crates of Cargo.lock (and nothing to fetch but them: EXTERNALSRC)"
want overlay-init EXTERNALSRC "$top"
want overlay-init DEPENDS cargo-native
want overlay-init RDEPENDS:overlay-init systemd
want overlay-init RDEPENDS:overlay-init-initramfs overlay-init
want overlay-init PACKAGES overlay-init-initramfs overlay-init
want overlay-init SYSTEMD_SERVICE:overlay-init overlay-init-mark-good.service
want overlay-init CARGO_BUILD_FLAGS --frozen --package overlay-init

log "bitbake -e overlay-init-initramfs with OVERLAY_INIT_BOARD=imx8 "
as_user "bitbake -e overlay-init-initramfs" >"$work/overlay-init-initramfs.env" \
  2>"$work/overlay-init-initramfs.err" || { cat "$work/overlay-init-initramfs.err" >&2; fail "bitbake -e overlay-init-initramfs"; }
want overlay-init-initramfs PACKAGE_INSTALL overlay-init-initramfs kernel-module-sdhci-esdhc-imx \
  kernel-module-squashfs kernel-module-ext4 kernel-module-overlay kernel-module-imx2-wdt
want overlay-init-initramfs OVERLAY_INIT_CONF "$top/board/imx8/overlay-init.conf"
want overlay-init-initramfs IMAGE_FSTYPES "$(var overlay-init-initramfs INITRAMFS_FSTYPES)"

log "bitbake -e overlay-init-initramfs without board settings: skipped, saying what to set (reparses: minutes)"
unset OVERLAY_INIT_BOARD
if as_user "bitbake -e overlay-init-initramfs" >"$work/skip.env" 2>"$work/skip.err"; then
  fail "overlay-init-initramfs expanded without board settings"
fi
grep -q "no board settings: set OVERLAY_INIT_BOARD" "$work/skip.err" "$work/skip.env" ||
  { cat "$work/skip.err" >&2; fail "the skip reason is not shown"; }

log "PASS: the layer parses with OE-Core and its recipes expand"

# `tests/yocto.sh --check-layer`: OE-Core's own yocto-check-layer on top (about 10 minutes: it
# builds world's task signatures with and without the layer), outside the suite's time budget.
if [ "${1:-}" = --check-layer ]; then
  log "yocto-check-layer (the layer under test must not be in bblayers.conf: removed first)"
  as_user "bitbake-layers remove-layer '$layer' >/dev/null && yocto-check-layer --no-auto-dependency '$layer'" \
    >"$work/check-layer.log" 2>&1 || { tail -40 "$work/check-layer.log" >&2; fail "yocto-check-layer"; }
  # Each test's name, then its result on the next line.
  grep -E '^INFO: (test_|setUpClass| \.\.\. )' "$work/check-layer.log" | sed 's/^INFO: *//' | paste - - >&2
  log "PASS: yocto-check-layer"
fi
