//! Where things are mounted. These stay visible to userspace after the switch (under /run), so
//! tools can reach the lower image and the data partition; the README documents them.

pub const RUN_DIR: &str = "/run/overlay-init";
pub const LOWER: &str = "/run/overlay-init/lower";
pub const DATA: &str = "/run/overlay-init/data";
/// The partition holding the lower image file, when that is not the data partition.
pub const LOWER_DEV: &str = "/run/overlay-init/lowerdev";
/// tmpfs holding upper and work for a volatile boot.
pub const VOLATILE: &str = "/run/overlay-init/volatile";
/// The image a previous upper was made over, mounted while it is reconciled.
pub const OLD_LOWER: &str = "/run/overlay-init/old-lower";
/// What the last reconciliation did (`oinit.carry=reconcile`).
pub const RECONCILE: &str = "/run/overlay-init/reconcile.json";
/// Where the boot leaves a copy of the board's verity key for `install`.
pub const DEVICE_KEY: &str = "/run/overlay-init/verity.pub";
/// The board's `fw_env.config` (`oinit.ubootenv`) as the boot used it, for the userspace
/// commands under U-Boot (`fw_printenv -c` reads it too).
pub const UBOOT_ENV_CONFIG: &str = "/run/overlay-init/fw_env.config";
pub const REPORT: &str = "/run/overlay-init/report.json";
/// The merged root before the switch. Not under /run: /run is moved into it.
pub const NEWROOT: &str = "/newroot";
/// The board config inside the initramfs.
pub const CONFIG: &str = "/etc/overlay-init.conf";
/// The loop device over an appended data area (`oinit.data=appended`), named as OpenWRT does.
pub const APPENDED_DATA: &str = "/dev/rootfs_data";

/// The state record, relative to the data partition.
pub const STATE_FILE: &str = ".overlay-init/state";

/// The UBI volume that carries the state and keep-list while a factory reset recreates the data
/// volume (`oinit.datarecreate`).
pub const CARRY_VOLUME: &str = "oinit_carry";
