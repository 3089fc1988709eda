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

$(eval $(cargo-package))
