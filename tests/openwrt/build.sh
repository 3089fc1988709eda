#!/usr/bin/env bash
# Builds OpenWRT's own userspace from the source snapshots in ../shared/openwrt/ (test fixtures:
# never copied into the project) into target/openwrt/: libubox, ubus, uci, udebug's library, ubox
# (logd, kmodloader), procd (procd, its preinit `init`, upgraded) and fstools (mount_root, block;
# its factoryreset is built but left out of the image: docs/openwrt.md), with Debian's gcc and
# glibc. target/openwrt/root/ is then a tree ready to copy
# into a test image: OpenWRT's programs and every shared library they load, at the paths
# they are loaded from. Cached: a second run does nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
shared=${SHARED:-$top/../shared}/openwrt
out=$top/target/openwrt
log() { printf '[openwrt] %s\n' "$*" >&2; }

[ -f "$out/root.done" ] && exit 0
compgen -G "$shared/*.tar.gz" >/dev/null ||
  { log "no OpenWRT sources in $shared (set SHARED= to the folder holding openwrt/)"; exit 1; }
need=()
for p in cmake pkg-config libjson-c-dev libblkid-dev libbsd-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
fi
rm -rf "$out"; mkdir -p "$out/src" "$out/stage"
stage=$out/stage
for t in "$shared"/*.tar.gz; do
  name=$(basename "$t" .tar.gz); name=${name%-*}
  mkdir -p "$out/src/$name"; tar -xzf "$t" -C "$out/src/$name"
done
src() { echo "$out/src/$1/$1"; }

# One cmake project into the stage; later projects find the earlier ones' headers and libraries
# there. -Wno-error (and procd's -Werror removed): gcc 12 and glibc warn where OpenWRT's
# compiler and musl do not.
build() {
  local name=$1; shift
  log "building $name"
  local b=$out/build/$name
  mkdir -p "$b"
  cmake -S "$(src "$name")" -B "$b" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$stage" \
    -DCMAKE_PREFIX_PATH="$stage" -DCMAKE_C_FLAGS="-I$stage/include -Wno-error $EXTRA_CFLAGS" \
    -DCMAKE_EXE_LINKER_FLAGS="-L$stage/lib" -DCMAKE_C_STANDARD_LIBRARIES="$EXTRA_LIBS" -DCMAKE_SHARED_LINKER_FLAGS="-L$stage/lib" \
    -DCMAKE_INSTALL_RPATH=/usr/lib "$@" >"$b.log" 2>&1 || { tail -30 "$b.log"; exit 1; }
  make -C "$b" -j"$(nproc)" ${TARGETS:+"$TARGETS"} >>"$b.log" 2>&1 || { tail -30 "$b.log"; exit 1; }
  if [ -n "${TARGETS:-}" ]; then return; fi
  make -C "$b" install >>"$b.log" 2>&1 || { tail -30 "$b.log"; exit 1; }
}
export EXTRA_CFLAGS="" EXTRA_LIBS=""
build libubox -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF
build ubus -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF
build uci -DBUILD_LUA=OFF
# udebug's ucode module needs ucode's headers, which Debian lacks: its library alone.
TARGETS=udebug build udebug -Ducode_include_dir="$stage/include"
cp -a "$out/build/udebug"/libudebug.so* "$stage/lib/"
cp "$(src udebug)/udebug.h" "$stage/include/"
build ubox
# procd uses strlcpy, which glibc has only from 2.38: libbsd's. Jails, seccomp and utrace are
# Linux-distribution features OpenWRT builds separately.
sed -i "s/ -Werror / /" "$(src procd)/CMakeLists.txt" "$(src procd)/upgraded/CMakeLists.txt"
EXTRA_CFLAGS="-D_GNU_SOURCE -include bsd/string.h" EXTRA_LIBS="-lbsd" \
  build procd -DJAIL_SUPPORT=OFF -DSECCOMP_SUPPORT=OFF -DUTRACE_SUPPORT=OFF -DCMAKE_SKIP_RPATH=ON
build fstools

# The tree a test image gets: the programs where OpenWRT installs them, the libraries in /usr/lib
# and the C library where ldd finds it.
root=$out/root
mkdir -p "$root/sbin" "$root/usr/lib" "$root/bin"
for p in procd init upgraded udevtrigger mount_root block ubusd logd logread kmodloader; do
  cp "$stage/sbin/$p" "$root/sbin/$p"
done
cp "$stage/bin/uci" "$stage/bin/ubus" "$root/bin/"
cp -a "$stage/lib"/*.so* "$root/usr/lib/"
LD_LIBRARY_PATH=$stage/lib ldd "$root"/sbin/* "$root"/bin/* 2>/dev/null |
  awk '/=> \//{print $3} /^\t\/lib/{print $1}' | sort -u | grep -v "^$stage" |
  while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
touch "$out/root.done"
log "OpenWRT userspace in $root"
