//! Settings of the A/B slots, factory reset and keep-list: same `oinit.` prefix and parser as
//! every other key (see `settings`).

use crate::block::spec::DevSpec;
use crate::config::values::{abs_path, flag, list, need, seconds, size};
use crate::reconcile::rules::{Rules, Side};
use crate::rt::prelude::*;

/// What the upper of a slot that boots a new image starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carry {
    /// The previous upper reconciled with the old and new images (see `reconcile`).
    Reconcile,
    /// A fresh upper holding only the keep-list.
    KeepList,
    /// The previous upper as it is, stale copies and all (what most systems do).
    Keep,
}

/// Comma-separated absolute path patterns (`*` and `?` as in `reconcile::matches`).
fn patterns(v: &str) -> Result<Vec<String>, String> {
    let l = list(v);
    if let Some(bad) = l.iter().find(|p| !p.starts_with('/') && !p.starts_with('*')) {
        return Err(format!("{bad}: a pattern starts with / or *"));
    }
    Ok(l)
}

/// Where a slot's image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotSource {
    Partition(DevSpec),
    /// A squashfs file on the data partition.
    File(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbSettings {
    pub slots: [Option<SlotSource>; 2],
    pub tries: u8,
    pub late_fallback: bool,
    /// Command line trigger: wipe every upper on this boot.
    pub factory_reset: bool,
    /// Factory reset after this many boots in a row that never reached mark-good (0: off).
    pub reset_cycles: u8,
    /// Paths carried into a fresh upper (after an install or a factory reset).
    pub keep: Vec<String>,
    /// What a new image's upper starts from (`oinit.carry`).
    pub carry: Carry,
    /// Conflict rules of `oinit.carry=reconcile` (the keep-list is filled in when it is read).
    pub rules: Rules,
    /// The file in the old upper that adds to the keep-list (`/etc/sysupgrade.conf` on OpenWRT).
    pub keep_file: String,
    /// Whether a factory reset carries what the keep file lists too (`oinit.resetkeepfile`, on
    /// by default). Off is OpenWRT's `firstboot`, which keeps nothing of sysupgrade.conf: only
    /// the board's `oinit.keep=` paths survive a reset, the keep file still applies to updates.
    pub reset_keeps_file: bool,
    /// `oinit.state=1` on a board with one image: the state record without slots, for factory
    /// reset, mark-good bookkeeping and a fresh upper (plus keep-list) when the image changes.
    pub single: bool,
    /// A watchdog armed before the switch, so a hung userspace resets the board and boot
    /// counting rolls back; the real system must take it over.
    pub watchdog: Option<String>,
    pub watchdog_timeout: u32,
    /// A GPIO button that, held at power-on, triggers a factory reset.
    pub reset_button: Option<crate::ab::button::Button>,
    /// `oinit.datarecreate=SIZE`: a factory reset removes and recreates the UBI data volume
    /// (OpenWRT's jffs2reset) instead of moving the uppers aside; this many bytes of the UBI
    /// device stay free for the volume that carries the keep-list and state meanwhile.
    pub recreate: Option<u64>,
    /// `oinit.bootloader=uboot`: U-Boot's boot script chooses the slot and counts its tries
    /// (RAUC's BOOT_ORDER and BOOT_x_LEFT); the init boots the slot it names.
    pub uboot: bool,
    /// The slot U-Boot chose, from RAUC's `rauc.slot=A` (or `B`) on the command line.
    pub uboot_slot: Option<crate::ab::state::SlotId>,
    /// `oinit.ubootenv=`: the `fw_env.config` in the initramfs that says where U-Boot's
    /// environment is, for marking a slot bad when its boot fails in the init.
    pub uboot_env: String,
    /// `oinit.aboot=`, `oinit.bboot=`: each slot's boot partition (ext2/3/4), where U-Boot loads
    /// the slot's kernel, initramfs and device tree from and `install` writes them with its image.
    pub boot_parts: [Option<DevSpec>; 2],
}

impl Default for AbSettings {
    fn default() -> Self {
        AbSettings {
            slots: [None, None],
            tries: 3,
            late_fallback: false,
            factory_reset: false,
            reset_cycles: 0,
            keep: Vec::new(),
            carry: Carry::Reconcile,
            rules: Rules::default(),
            keep_file: "/etc/overlay-init.keep".into(),
            reset_keeps_file: true,
            single: false,
            watchdog: None,
            watchdog_timeout: 60,
            reset_button: None,
            recreate: None,
            uboot: false,
            uboot_slot: None,
            uboot_env: "/etc/fw_env.config".into(),
            boot_parts: [None, None],
        }
    }
}

impl AbSettings {
    /// Whether the boot keeps a state record (A/B slots, or one image with `oinit.state`).
    pub fn enabled(&self) -> bool {
        self.single || self.slots.iter().any(Option::is_some)
    }

    /// One image, no second slot to roll back to.
    pub fn one_slot(&self) -> bool {
        self.slots[1].is_none()
    }

    pub(crate) fn set(&mut self, name: &str, v: Option<&str>) -> Result<bool, String> {
        match name {
            "a" => self.slots[0] = Some(SlotSource::Partition(DevSpec::parse(need(v)?)?)),
            "b" => self.slots[1] = Some(SlotSource::Partition(DevSpec::parse(need(v)?)?)),
            "afile" => self.slots[0] = Some(SlotSource::File(abs_path(need(v)?)?)),
            "bfile" => self.slots[1] = Some(SlotSource::File(abs_path(need(v)?)?)),
            "tries" => {
                self.tries = need(v)?.parse().ok().filter(|t| (1..=20).contains(t)).ok_or("must be 1 to 20")?;
            }
            "latefallback" => self.late_fallback = flag(v)?,
            "state" => self.single = flag(v)?,
            "bootloader" => {
                self.uboot = match need(v)? {
                    "uboot" => true,
                    "own" => false,
                    _ => {
                        return Err(
                            "must be own (overlay-init counts the tries) or uboot (U-Boot's boot script does)".into()
                        )
                    }
                }
            }
            "ubootenv" => self.uboot_env = abs_path(need(v)?)?,
            "aboot" => self.boot_parts[0] = Some(DevSpec::parse(need(v)?)?),
            "bboot" => self.boot_parts[1] = Some(DevSpec::parse(need(v)?)?),
            "keepfile" => self.keep_file = abs_path(need(v)?)?,
            "resetkeepfile" => self.reset_keeps_file = flag(v)?,
            "factoryreset" => self.factory_reset = flag(v)?,
            "resetcycles" => {
                self.reset_cycles = need(v)?.parse().map_err(|_| "must be a count of boots from 0 (off) to 255")?
            }
            "keep" => {
                self.keep = list(need(v)?).into_iter().map(|p| abs_path(&p)).collect::<Result<_, _>>()?;
            }
            "carry" => {
                self.carry = match need(v)? {
                    "reconcile" => Carry::Reconcile,
                    "keeplist" => Carry::KeepList,
                    "keep" => Carry::Keep,
                    _ => return Err("must be reconcile, keeplist or keep".into()),
                }
            }
            "conflict" => {
                self.rules.conflict = match need(v)? {
                    "user" => Side::User,
                    "image" => Side::Image,
                    _ => return Err("must be user or image".into()),
                }
            }
            "userwins" => self.rules.user_wins = patterns(need(v)?)?,
            "imagewins" => self.rules.image_wins = patterns(need(v)?)?,
            "shownew" => self.rules.show_new = flag(v)?,
            "watchdog" => self.watchdog = Some(need(v)?).filter(|w| *w != "none").map(abs_path).transpose()?,
            "datarecreate" => self.recreate = Some(need(v)?).filter(|v| *v != "0").map(size).transpose()?,
            "resetbutton" => self.reset_button = Some(crate::ab::button::Button::parse(need(v)?)?),
            "watchdogtimeout" => {
                self.watchdog_timeout =
                    seconds(need(v)?).ok().filter(|t| *t >= 1).ok_or("must be 1 to 3600 seconds")?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The first problem with the slot settings: (key, reason).
    pub(crate) fn validate(&self, has_data: bool) -> Option<(&'static str, &'static str)> {
        match &self.slots {
            [None, None] if self.single && !has_data => {
                Some(("oinit.data", "oinit.state keeps its record on the data partition: set oinit.data="))
            }
            [None, None] => None,
            [Some(_), None] => Some(("oinit.b", "slot a is set but slot b is not: set oinit.b= or oinit.bfile=")),
            [None, Some(_)] => Some(("oinit.a", "slot b is set but slot a is not: set oinit.a= or oinit.afile=")),
            _ if !has_data => Some(("oinit.data", "A/B slots keep their state on the data partition: set oinit.data=")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ab::state::SlotId;
    use crate::config::settings::Settings;

    #[test]
    fn slots_from_partitions_and_files() {
        let (s, l) = Settings::load(
            "oinit.data=PARTLABEL=userdata oinit.a=PARTLABEL=rootfs oinit.bfile=/images/b.sqfs",
            "oinit.tries=1 oinit.keep=/etc/hostname,/etc/ssh",
        );
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        assert_eq!(s.ab.tries, 1);
        assert_eq!(s.ab.keep, ["/etc/hostname", "/etc/ssh"]);
        let a = s.for_slot(SlotId::A);
        assert_eq!(
            (a.root, a.lower_file, a.dir.as_str()),
            (Some(DevSpec::PartLabel("rootfs".into())), None, "overlay/a")
        );
        let b = s.for_slot(SlotId::B);
        assert_eq!((b.root, b.lower_file.as_deref(), b.dir.as_str()), (None, Some("/images/b.sqfs"), "overlay/b"));
    }

    #[test]
    fn one_image_with_state_and_an_appended_data_area() {
        let (s, l) = Settings::load(
            "root=PARTLABEL=rootfs oinit.data=appended",
            "oinit.state=1 oinit.keepfile=/etc/sysupgrade.conf",
        );
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        assert!(s.ab.enabled() && s.ab.one_slot() && s.data_appended && s.has_data());
        assert_eq!(s.ab.keep_file, "/etc/sysupgrade.conf");
        let a = s.for_slot(SlotId::A);
        assert_eq!((a.root, a.dir.as_str()), (Some(DevSpec::PartLabel("rootfs".into())), "overlay/a"));
        // The command line can name a partition instead of the appended area.
        let (s, _) = Settings::load("root=/dev/vda2 oinit.data=appended", "oinit.data=PARTLABEL=rootfs_data");
        assert!(!s.data_appended && s.data.is_some());
        let (_, l) = Settings::load("", "oinit.state=1 root=/dev/vda2");
        assert_eq!(l.errors[0].key, "oinit.data");
    }

    #[test]
    fn bad_slot_settings_name_the_key() {
        for (cmd, key) in [
            ("oinit.a=/dev/vda1", "oinit.b"),
            ("oinit.tries=0", "oinit.tries"),
            ("oinit.keep=etc/x", "oinit.keep"),
            ("oinit.bfile=b.sqfs", "oinit.bfile"),
        ] {
            let (_, l) = Settings::load("root=/dev/vda1 oinit.data=/dev/vda2", cmd);
            assert_eq!(l.errors.first().map(|e| e.key.as_str()), Some(key), "{cmd}: {:?}", l.errors);
        }
        let (_, l) = Settings::load("", "oinit.a=/dev/vda1 oinit.b=/dev/vda2");
        assert_eq!(l.errors[0].key, "oinit.data");
    }
}
