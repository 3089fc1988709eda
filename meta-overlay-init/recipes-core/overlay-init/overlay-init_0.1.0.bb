SUMMARY = "overlay-init: the initramfs' PID 1 for a read-only image with an overlay, A/B slots and factory reset"
DESCRIPTION = "A static Rust init that mounts a squashfs or EROFS root image under an ext4, UBIFS \
or jffs2 overlay, chooses an A/B slot with boot counting, verifies it with dm-verity and \
switch_roots into it; the same binary marks the slot good, rolls back, resets and installs."
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE-MIT;md5=506963e95e1d90f6662973e0ee7a7c1b \
                    file://LICENSE-APACHE;md5=3b83ef96387f14655fc854ddc3c6bd57"

# Built from the checkout this layer sits in (conf/layer.conf); to build a release instead, set
# SRC_URI to its git or tarball and drop EXTERNALSRC in a .bbappend.
inherit cargo externalsrc
EXTERNALSRC ?= "${OVERLAY_INIT_TOPDIR}"
EXTERNALSRC_BUILD ?= "${WORKDIR}/build"

# Every crate of Cargo.lock, in the form cargo-update-recipe-crates writes (cargo xtask
# yocto-crates regenerates it; the suite checks it against Cargo.lock).
require ${BPN}-crates.inc

# The workspace holds the test tools too; only the init is built.
CARGO_BUILD_FLAGS:append = " --package overlay-init"
# PID 1 of an initramfs: one static binary with nothing to load (Rust targets musl or glibc).
RUSTFLAGS:append = " -C target-feature=+crt-static"

# cli: the userspace commands (status, mark-good, install, rauc, ...) in the same binary; without
# it the binary is the boot path alone, for an initramfs whose system has its own copy.
# systemd: the mark-good unit after boot-complete.target and the watchdog drop-in.
# sysvinit: the mark-good and shutdown init scripts instead.
# rauc: `overlay-init-rauc` for RAUC's custom bootloader backend, and the service drop-in that
# tells RAUC before 1.11 which slot booted.
PACKAGECONFIG ??= "cli ${@bb.utils.filter('DISTRO_FEATURES', 'systemd', d)} \
                   ${@bb.utils.contains('DISTRO_FEATURES', 'sysvinit', 'sysvinit', '', d)}"
PACKAGECONFIG[cli] = ",--no-default-features"
PACKAGECONFIG[systemd] = ",,,systemd"
PACKAGECONFIG[sysvinit] = ",,,"
PACKAGECONFIG[rauc] = ",,,rauc"

inherit systemd update-rc.d
SYSTEMD_SERVICE:${PN} = "${@bb.utils.contains('PACKAGECONFIG', 'systemd', 'overlay-init-mark-good.service', '', d)}"
INITSCRIPT_NAME = "overlay-init-mark-good"
INITSCRIPT_PARAMS = "start 99 2 3 4 5 ."

do_install:append() {
    integration=${S}/board/integration
    if ${@bb.utils.contains('PACKAGECONFIG', 'systemd', 'true', 'false', d)}; then
        install -D -m 0644 $integration/systemd/overlay-init-mark-good.service \
            ${D}${systemd_system_unitdir}/overlay-init-mark-good.service
        install -D -m 0644 $integration/systemd/system.conf.d/overlay-init-watchdog.conf \
            ${D}${systemd_unitdir}/system.conf.d/overlay-init-watchdog.conf
    fi
    if ${@bb.utils.contains('PACKAGECONFIG', 'sysvinit', 'true', 'false', d)}; then
        install -D -m 0755 $integration/sysvinit/S99overlay-init-mark-good \
            ${D}${sysconfdir}/init.d/overlay-init-mark-good
        install -D -m 0755 $integration/sysvinit/overlay-init-shutdown \
            ${D}${sysconfdir}/init.d/overlay-init-shutdown
    fi
    if ${@bb.utils.contains('PACKAGECONFIG', 'rauc', 'true', 'false', d)}; then
        ln -sf overlay-init ${D}${bindir}/overlay-init-rauc
        if ${@bb.utils.contains('PACKAGECONFIG', 'systemd', 'true', 'false', d)}; then
            install -D -m 0644 $integration/rauc/rauc.service.d/overlay-init-boot-slot.conf \
                ${D}${systemd_system_unitdir}/rauc.service.d/overlay-init-boot-slot.conf
        fi
    fi
    # The initramfs side: the binary as /init and the mount points it needs before /proc exists.
    install -d ${D}/dev ${D}/proc ${D}/sys ${D}/run ${D}/newroot ${D}${nonarch_base_libdir}/modules
    ln -sf ${bindir}/overlay-init ${D}/init
}

PACKAGES =+ "${PN}-initramfs"
SUMMARY:${PN}-initramfs = "overlay-init as /init of an initramfs"
FILES:${PN}-initramfs = "/init /dev /proc /sys /run /newroot ${nonarch_base_libdir}/modules"
RDEPENDS:${PN}-initramfs = "${PN}"
FILES:${PN} += "${systemd_unitdir}/system.conf.d ${systemd_system_unitdir}"
