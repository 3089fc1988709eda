#!/usr/bin/env bash
# The demo: installs what is missing, builds the static init, the initramfs and a GPT disk for
# the qemu-aarch64 board, and boots a Debian arm64 kernel twice in QEMU; the counter the test
# image keeps in /var/lib/boot-counter survives the reboot on the overlay's upper layer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
cargo xtask demo "${1:-qemu-aarch64}"
