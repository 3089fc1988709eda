//! The boot under U-Boot (`oinit.bootloader=uboot`), acting on its environment: the selection
//! logged and the board's `fw_env.config` left for the userspace commands, and a slot whose boot
//! fails in the init marked bad (RAUC's mark-bad) before the reboot, so that U-Boot's next choice
//! is the other slot instead of this one's remaining tries.

use crate::config::paths::{RUN_DIR, UBOOT_ENV_CONFIG};
use crate::config::settings::Settings;
use crate::uboot::bootchooser::{bootname, describe, Change};
use crate::uboot::store;

/// Logs what U-Boot boots next and copies the board's `fw_env.config` to /run/overlay-init,
/// where `mark-good`, `rollback` and `fw_printenv -c` find it after the switch.
pub fn hand_over(s: &Settings) {
    let path = &s.ab.uboot_env;
    let copied = crate::fs::mkdir::mkdir_all(RUN_DIR).and_then(|()| crate::fs::copy::file(path, UBOOT_ENV_CONFIG));
    if let Err(e) = copied {
        log::warn!(
            "oinit.ubootenv {path}: {e}: mark-good and rollback cannot reach U-Boot's environment; add the \
             board's fw_env.config to the initramfs"
        );
        return;
    }
    match store::selection(path) {
        Ok(c) => log::info!("{}", describe(&c)),
        Err(e) => log::warn!("U-Boot's environment ({path}): {e}"),
    }
}

/// Marks the slot U-Boot chose bad in its environment: the boot failed in the init.
pub fn slot_failed(s: &Settings) {
    let Some(slot) = s.ab.uboot_slot else { return };
    match store::change(&s.ab.uboot_env, Change::Bad(slot)) {
        Ok(c) => log::error!("slot {} marked bad in U-Boot's environment: {}", bootname(slot), describe(&c)),
        Err(e) => log::error!(
            "cannot mark slot {} bad in U-Boot's environment ({}): {e}; U-Boot tries it again until its tries \
             are spent",
            bootname(slot),
            s.ab.uboot_env
        ),
    }
}
