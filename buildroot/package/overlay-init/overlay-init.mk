################################################################################
#
# overlay-init
#
################################################################################

OVERLAY_INIT_VERSION = 0.1.0
# Built from this checkout: the external tree lives in its buildroot/ folder.
OVERLAY_INIT_SITE = $(BR2_EXTERNAL_OVERLAY_INIT_PATH)/..
OVERLAY_INIT_SITE_METHOD = local
OVERLAY_INIT_LICENSE = MIT or Apache-2.0
OVERLAY_INIT_LICENSE_FILES = LICENSE-MIT LICENSE-APACHE
# The checkout's build output is not part of the source.
OVERLAY_INIT_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = --exclude target
OVERLAY_INIT_CARGO_BUILD_OPTS = --package overlay-init
OVERLAY_INIT_INSTALL_IMAGES = YES
# post-image.sh resolves the initramfs' modules with the host build of the same code.
OVERLAY_INIT_DEPENDENCIES = host-overlay-init

# The init runs before any library is there: link it statically.
OVERLAY_INIT_CARGO_ENV = \
	RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static"

# The userspace commands (status, mark-good, factory-reset, install) in the target.
define OVERLAY_INIT_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 \
		$(@D)/target/$(RUSTC_TARGET_NAME)/release/overlay-init \
		$(TARGET_DIR)/usr/bin/overlay-init
endef

# The same binary for the initramfs, which post-image.sh assembles.
define OVERLAY_INIT_INSTALL_IMAGES_CMDS
	$(INSTALL) -D -m 0755 \
		$(@D)/target/$(RUSTC_TARGET_NAME)/release/overlay-init \
		$(BINARIES_DIR)/overlay-init
endef

# The integration the running system needs (board/integration/): the slot is marked good once
# the boot completed, and a systemd that takes over the watchdog the init armed.
define OVERLAY_INIT_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/board/integration/systemd/overlay-init-mark-good.service \
		$(TARGET_DIR)/usr/lib/systemd/system/overlay-init-mark-good.service
	$(INSTALL) -D -m 0644 $(@D)/board/integration/systemd/system.conf.d/overlay-init-watchdog.conf \
		$(TARGET_DIR)/usr/lib/systemd/system.conf.d/overlay-init-watchdog.conf
endef

# BusyBox init and SysV init run /etc/init.d/S??*; the shutdown script is for the inittab's
# ::shutdown: line (board/integration/README.md).
define OVERLAY_INIT_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(@D)/board/integration/sysvinit/S99overlay-init-mark-good \
		$(TARGET_DIR)/etc/init.d/S99overlay-init-mark-good
	$(INSTALL) -D -m 0755 $(@D)/board/integration/sysvinit/overlay-init-shutdown \
		$(TARGET_DIR)/etc/init.d/overlay-init-shutdown
endef

# RAUC's custom bootloader backend calls the same binary by this name. Buildroot's RAUC asks the
# backend for the booted slot itself (1.11 and later): no service drop-in needed.
ifeq ($(BR2_PACKAGE_RAUC),y)
define OVERLAY_INIT_INSTALL_RAUC_BACKEND
	ln -sf overlay-init $(TARGET_DIR)/usr/bin/overlay-init-rauc
endef
OVERLAY_INIT_POST_INSTALL_TARGET_HOOKS += OVERLAY_INIT_INSTALL_RAUC_BACKEND
endif

$(eval $(cargo-package))
$(eval $(host-cargo-package))
