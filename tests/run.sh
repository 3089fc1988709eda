#!/usr/bin/env bash
# The whole test suite: installs what is missing, then lint, unit, golden, loop-device mount and
# QEMU end-to-end tests on x86_64, aarch64 and armv7. Any failure stops the run with a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
step() { printf '\n== %s\n' "$*"; }
step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The boot path alone (no userspace commands) must build too.
cargo clippy --no-default-features --quiet -- -D warnings
step "unit, golden and mount tests"
# As root (CI), the loop-device tests must run, never skip.
if [ "$(id -u)" = 0 ]; then export OI_REQUIRE_ROOT=1; fi
cargo test --workspace --quiet
step "fuzzing smoke: each libFuzzer target for 5 s from the committed corpus"
cargo xtask fuzz 5
step "boards: settings against layout and kernel, disk images built with genimage and read back"
cargo xtask check-boards
# A vendor kernel's modules the way a BSP user gives them (a staging tree holding lib/modules/V).
cargo xtask check-boards imx8 --modules target/kernels/arm64-6.12
step "Buildroot external tree: style checks, post-image.sh's initramfs booted"
cargo xtask check-buildroot
step "Yocto layer: parsed and expanded by BitBake with OE-Core"
bash tests/yocto.sh
step "QEMU end-to-end tests, two QEMUs at a time (one per core)"
# qemu-x86_64 (its Debian systemd and RAUC scenarios make it the longest) on one core, every other
# board on the other; the second group's output follows the first's.
# The kernel matrix: the main scenarios (A/B with rollback, factory reset, verity, clean
# shutdown) on Debian 11's 5.10 and bookworm-backports' 6.12; 6.1 runs everything above.
matrix=persist-across,clean-shutdown,ab-trial,ab-factory,verity-signed
# BOARD [BOARD...]: the board's scenarios on 6.1, then the matrix of the first board; fails if any did.
side() {
  local r=0
  cargo xtask e2e "$@" || r=1
  for k in 5.10 6.12; do OI_SCENARIO=$matrix cargo xtask e2e --kernel "$k" "$1" || r=1; done
  return "$r"
}
others=$(mktemp)
side qemu-aarch64 qemu-armv7 openwrt openwrt-nor openwrt-nand imx6 >"$others" 2>&1 &
pid=$!
rc=0
side qemu-x86_64 imx8 || rc=$?
wait "$pid" || rc=$?
cat "$others"
rm -f "$others"
if [ "$rc" != 0 ]; then
  echo "QEMU end-to-end tests failed (see above)"
  exit "$rc"
fi
step "binary sizes (stripped, static)"
ls -l target/*-unknown-linux-*/release/overlay-init | awk '{ print $5, $9 }'
