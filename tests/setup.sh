#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh Debian machine that has only the
# Rust toolchain: host packages, rustup targets, and the Debian kernels the QEMU boards boot.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
KDIR=${KDIR:-target/kernels}

log() { printf '[setup] %s\n' "$*" >&2; }

# apt-get, loop devices, mounts and QEMU's disk images all need root: say so before anything runs.
if [ "$(id -u)" != 0 ]; then
  log "needs root: it installs Debian packages and the tests mount loop devices (run: sudo bash $0)"
  exit 1
fi

need_pkgs=()
for p in squashfs-tools:mksquashfs kmod:depmod fdisk:sfdisk e2fsprogs:mkfs.ext4 e2fsck-static:e2fsck.static \
         genimage:genimage dosfstools:mkfs.vfat mtools:mcopy gcc-arm-linux-gnueabihf:arm-linux-gnueabihf-gcc \
         libc6-dev-armhf-cross:/usr/arm-linux-gnueabihf/lib/libc.a \
         shellcheck:shellcheck libmagic1:/usr/lib/x86_64-linux-gnu/libmagic.so.1 \
         debootstrap:debootstrap rauc:rauc openssl:openssl cryptsetup-bin:/usr/sbin/veritysetup \
         erofs-utils:mkfs.erofs mtd-utils:/usr/sbin/ubinize \
         chrpath:chrpath diffstat:diffstat gawk:gawk cpio:cpio python3-pexpect:/usr/lib/python3/dist-packages/pexpect \
         locales:locale-gen cmake:cmake libjson-c-dev:/usr/include/json-c/json.h \
         libblkid-dev:/usr/include/blkid/blkid.h libbsd-dev:/usr/include/bsd/string.h \
         libubootenv-tool:fw_printenv u-boot-tools:mkenvimage u-boot-qemu:/usr/lib/u-boot/qemu_arm64/u-boot.bin; do
  [ -e "${p#*:}" ] || command -v "${p#*:}" >/dev/null 2>&1 || need_pkgs+=("${p%%:*}")
done
# QEMU's aarch64 firmware-less boot needs nothing more; x86 needs SeaBIOS (pulled by qemu-system-x86).
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "apt-get install ${need_pkgs[*]}"
  apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# QEMU 10 from bookworm-backports for every board: its imx8mp-evk machine (the i.MX 8M Plus EVK)
# boots the imx8 board, which QEMU 7.2 cannot; x86 comes along because both packages must
# share one qemu-system-common (docs/testing.md has the before/after figures of the switch).
if ! qemu-system-aarch64 -machine help 2>/dev/null | grep -q '^imx8mp-evk' || ! command -v qemu-system-x86_64 >/dev/null; then
  bpo=/etc/apt/sources.list.d/bookworm-backports.list
  [ -f "$bpo" ] || echo "deb http://deb.debian.org/debian bookworm-backports main" >"$bpo"
  log "apt-get install -t bookworm-backports qemu-system-arm qemu-system-x86"
  apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports \
    qemu-system-arm qemu-system-x86 >/dev/null
fi

# BitBake (tests/yocto.sh) wants a UTF-8 locale and OE-Core's sanity checks the tools above.
if ! locale -a 2>/dev/null | grep -qi '^en_US.utf8$'; then
  log "locale-gen en_US.UTF-8"
  grep -q '^en_US.UTF-8 UTF-8' /etc/locale.gen 2>/dev/null || echo 'en_US.UTF-8 UTF-8' >>/etc/locale.gen
  locale-gen >/dev/null
fi

# Buildroot's own utils/check-package (check-buildroot) imports python-magic and runs flake8.
if ! python3 -c 'import magic' 2>/dev/null || ! python3 -m flake8 --version >/dev/null 2>&1; then
  log "pip install python-magic flake8"
  python3 -m pip install -q --root-user-action=ignore python-magic flake8
fi

# The fuzz targets (fuzz/) build with cargo-fuzz on the machine's nightly toolchain.
command -v cargo-fuzz >/dev/null 2>&1 || { log "cargo install cargo-fuzz"; cargo install -q --locked cargo-fuzz; }

installed=$(rustup target list --installed)
# armv7 has no musl target in rustup here: glibc, linked statically with Debian's cross gcc.
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf; do
  grep -qx "$t" <<<"$installed" || { log "rustup target add $t"; rustup target add "$t"; }
done

# fetch_kernel ARCH FLAVOUR [SUITE NAME]: downloads Debian's linux-image-FLAVOUR for ARCH (from
# SUITE, default the machine's own) and unpacks it into $KDIR/NAME (default ARCH): vmlinuz,
# lib/modules/VERSION with a fresh modules.dep, dtbs/, a static busybox.
fetch_kernel() {
  local arch=$1 flavour=$2 suite=${3:-} out=$KDIR/${4:-$1}
  [ -f "$out/.done" ] && [ -d "$out/dtbs" ] && return 0
  rm -rf "$out"; mkdir -p "$out"
  local o=()
  if [ "$arch" != "$(dpkg --print-architecture)" ] || [ -n "$suite" ]; then
    local lists; lists=$(mktemp -d); mkdir -p "$lists/partial"
    o=(-oAPT::Architecture="$arch" -oAPT::Architectures="$arch" -oDir::State::Lists="$lists")
    if [ -n "$suite" ]; then
      # Another suite than the machine's: a source list of its own, the machine's left alone.
      # A backports suite holds the kernel, its base suite busybox-static.
      # (Not inside the lists directory: apt-get update deletes what it does not know there.)
      local sources; sources=$(mktemp)
      printf 'deb http://deb.debian.org/debian %s main\n' "$suite" "${suite%-backports}" | sort -u >"$sources"
      o+=(-oDir::Etc::SourceList="$sources" -oDir::Etc::SourceParts=/dev/null)
      [ "$suite" = "${suite%-backports}" ] || o+=(-oAPT::Default-Release="$suite")
    fi
    log "apt-get update for $arch${suite:+ from $suite}"
    apt-get "${o[@]}" update -qq 2>&1 | grep -v unsandboxed || true
  fi
  local pkg
  pkg=$(apt-cache "${o[@]}" depends "linux-image-$flavour:$arch" 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
  if [ -z "$pkg" ]; then
    apt-get "${o[@]}" update -qq 2>&1 | grep -v unsandboxed || true
    pkg=$(apt-cache "${o[@]}" depends "linux-image-$flavour:$arch" | awk '/Depends: linux-image-/{print $2; exit}')
  fi
  [ -n "$pkg" ] || { log "cannot resolve linux-image-$flavour for $arch from the Debian archive"; exit 1; }
  pkg=${pkg%%:*}
  log "downloading $pkg and busybox-static ($arch)"
  (cd "$out" && apt-get "${o[@]}" download -qq "$pkg:$arch" "busybox-static:$arch" 2>&1 | grep -v unsandboxed || true)
  for deb in "$out"/*.deb; do dpkg -x "$deb" "$out/root"; done
  rm -f "$out"/*.deb
  # The guest's userspace (a test rootfs) is this static busybox.
  cp "$out/root/bin/busybox" "$out/busybox"
  local ver; ver=$(ls "$out/root/lib/modules")
  cp "$out/root/boot/vmlinuz-$ver" "$out/vmlinuz"
  mkdir -p "$out/lib/modules" "$out/dtbs"; mv "$out/root/lib/modules/$ver" "$out/lib/modules/"
  # Device trees (arm64, armhf) for the boot partitions of the real-hardware boards.
  if [ -d "$out/root/usr/lib/linux-image-$ver" ]; then cp -r "$out/root/usr/lib/linux-image-$ver/." "$out/dtbs/"; fi
  rm -rf "$out/root"
  depmod -b "$out" "$ver"
  echo "$ver" >"$out/version"
  touch "$out/.done"
  log "kernel $ver ready in $out"
}
fetch_kernel amd64 amd64
fetch_kernel arm64 arm64
fetch_kernel armhf armmp
# The kernel matrix (tests/run.sh): the series before and after bookworm's 6.1.
fetch_kernel amd64 amd64 bullseye amd64-5.10
fetch_kernel arm64 arm64 bullseye arm64-5.10
fetch_kernel amd64 amd64 bookworm-backports amd64-6.12
fetch_kernel arm64 arm64 bookworm-backports arm64-6.12
# Slot b's kernel in the armv7 hand-over scenarios (docs/kexec.md).
fetch_kernel armhf armmp bookworm-backports armhf-6.12

# The kernel's own usr/gen_init_cpio, built from Debian's linux-source: the tests hand it the
# initramfs lists unchanged, as CONFIG_INITRAMFS_SOURCE would, and compare its archive with ours.
if [ ! -x "$KDIR/gen_init_cpio" ]; then
  log "building the kernel's gen_init_cpio from linux-source"
  src=$(mktemp -d) series=$(cut -d. -f1,2 "$KDIR/amd64/version")
  (cd "$src" && apt-get download -qq "linux-source-$series" 2>&1 | grep -v unsandboxed || true)
  dpkg-deb --fsys-tarfile "$src"/linux-source-*.deb | tar -x -C "$src" --wildcards './usr/src/linux-source-*.tar.xz'
  tar -xJf "$src"/usr/src/linux-source-*.tar.xz -C "$src" --wildcards '*/usr/gen_init_cpio.c'
  cc -O2 -o "$KDIR/gen_init_cpio" "$src"/linux-source-*/usr/gen_init_cpio.c
  rm -rf "$src"
fi

# OpenWRT's procd, ubus, uci, logd and fstools from ../shared/openwrt/, for the flash boards'
# OpenWRT userspace scenarios (cached in target/openwrt/). The demo does not need them: a
# checkout without the sources beside it (a user's clone) skips this.
if compgen -G "${SHARED:-$PWD/../shared}/openwrt/*.tar.gz" >/dev/null; then
  bash tests/openwrt/build.sh
else
  log "no ../shared/openwrt/ beside the checkout: OpenWRT's userspace not built (only its scenarios need it)"
fi
