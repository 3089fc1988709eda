//! Settings: board defaults from the config file, then the kernel command line on top, through the
//! same parser and the same keys. Kernel conventions (`root=`, `init=`, ...) keep their names; our
//! own keys share the `oinit.` prefix (not `overlay.`, which the kernel hands to the overlay module).

use crate::ab::state::SlotId;
use crate::block::spec::DevSpec;
pub use crate::config::ab::AbSettings;
use crate::config::ab::SlotSource;
use crate::config::cmdline::{self, Param};
pub use crate::config::kexec::KexecSettings;
pub use crate::config::values::Source;
use crate::config::values::{abs_path, flag, list, need, optional, rel_path, seconds, word};
pub use crate::config::verity::VeritySettings;
use crate::rt::prelude::*;
use core::fmt;

pub const PREFIX: &str = "oinit.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    Reboot,
    Halt,
    Poweroff,
    Shell,
}

/// What to do when the data partition is missing or cannot be mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataMissing {
    Volatile,
    Fail,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub root: Option<DevSpec>,
    pub rootfstype: Option<String>,
    pub rootflags: String,
    pub rootwait: Option<u32>,
    pub rootdelay: u32,
    pub init: Option<String>,
    pub init_args: Vec<String>,
    pub read_only: bool,
    pub data: Option<DevSpec>,
    /// `oinit.data=appended`: the data area is the rest of the root partition after the squashfs
    /// (OpenWRT's rootfs_data on block devices), reached through a loop device with an offset.
    pub data_appended: bool,
    pub data_fstype: String,
    pub data_flags: String,
    pub dir: String,
    pub overlay_flags: String,
    /// The explicit opt-in for overlay features that trust the upper (`oinit.overlayunsafe`).
    pub overlay_unsafe: bool,
    pub volatile: bool,
    pub failsafe: bool,
    pub lower_file: Option<String>,
    pub modules: Vec<String>,
    /// `module.param=value` words (board config or command line), passed to `finit_module` when
    /// that module loads, as modprobe does with /proc/cmdline.
    pub module_params: Vec<(String, String)>,
    /// How many of `module_params` (the last ones) came from the command line.
    cmdline_params: usize,
    /// OpenWRT's mount points in the new root: the lower at /rom, the directory holding upper
    /// and work at /overlay (what `df /overlay`, LuCI and sysupgrade look at).
    pub openwrt: bool,
    /// OpenWRT's `failsafe=` on the command line (what a router's bootloader sets when the
    /// reset button is held): with `openwrt`, the same as `oinit.failsafe`, so the overlay and
    /// OpenWRT's preinit agree on failsafe.
    openwrt_failsafe: bool,
    /// The kernel's `mtdparts=`, added with BLKPG where the kernel has no parser for it.
    pub mtdparts: Vec<crate::flash::mtdparts::Table>,
    /// The MTD partition the init attaches as a UBI device (`oinit.ubi=NAME`), unless the
    /// kernel attached it (`ubi.mtd=`).
    pub ubi_mtd: Option<String>,
    /// Seconds the devices are waited for, counted from when the module loader is done.
    pub timeout: u32,
    /// Seconds the module inits may take in all: a slow driver init (seconds under emulation
    /// or on a loaded CPU) is waited for; one that never returns is named at this deadline.
    pub module_timeout: u32,
    pub failure: FailurePolicy,
    pub reboot_delay: u32,
    pub allow_shell: bool,
    pub shell: String,
    pub data_missing: DataMissing,
    pub mkfs: bool,
    pub fsck: bool,
    pub fsck_timeout: u32,
    pub log_level: log::LevelFilter,
    /// `oinit.showinfo`: the init's info lines on the console even when the kernel prints only
    /// warnings there (`quiet`); they always go to the kernel log.
    pub show_info: bool,
    /// A/B slots, factory reset and keep-list.
    pub ab: AbSettings,
    /// Verified lowers (dm-verity).
    pub verity: VeritySettings,
    /// Booting the chosen slot's own kernel (`oinit.kexec`).
    pub kexec: KexecSettings,
    /// The key that named `root`, for messages (`root`, or `oinit.a` when booting slot a).
    pub root_key: &'static str,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            root: None,
            rootfstype: None,
            rootflags: String::new(),
            rootwait: None,
            rootdelay: 0,
            init: None,
            init_args: Vec::new(),
            read_only: false,
            data: None,
            data_appended: false,
            data_fstype: "ext4".into(),
            data_flags: String::new(),
            dir: "overlay".into(),
            overlay_flags: String::new(),
            overlay_unsafe: false,
            volatile: false,
            failsafe: false,
            lower_file: None,
            modules: Vec::new(),
            module_params: Vec::new(),
            cmdline_params: 0,
            openwrt: false,
            openwrt_failsafe: false,
            ubi_mtd: None,
            mtdparts: Vec::new(),
            timeout: 10,
            module_timeout: 60,
            failure: FailurePolicy::Reboot,
            reboot_delay: 10,
            allow_shell: false,
            shell: "/bin/sh".into(),
            data_missing: DataMissing::Volatile,
            mkfs: false,
            fsck: false,
            fsck_timeout: 60,
            log_level: log::LevelFilter::Info,
            show_info: false,
            ab: AbSettings::default(),
            verity: VeritySettings::default(),
            kexec: KexecSettings::default(),
            root_key: "root",
        }
    }
}

/// A setting that cannot be used: names the key, the value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub key: String,
    pub value: String,
    pub source: Source,
    pub reason: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "setting {}={:?} ({}): {}", self.key, self.value, self.source, self.reason)
    }
}

/// The outcome of reading all settings: errors are collected, not stopped at, so that one boot
/// shows every bad key; warnings are for unknown keys under our prefix.
#[derive(Debug, Default)]
pub struct Loaded {
    pub errors: Vec<SettingError>,
    pub warnings: Vec<String>,
}

impl Settings {
    /// Board config first, then the command line overriding it.
    pub fn load(config: &str, cmdline: &str) -> (Settings, Loaded) {
        let mut s = Settings::default();
        let mut out = Loaded::default();
        for (line, p) in cmdline::parse_config(config) {
            s.apply(&p, Source::Config(line), &mut out);
        }
        let words = cmdline::parse(cmdline);
        for p in &words.params {
            s.apply(p, Source::Cmdline, &mut out);
        }
        if !words.init_args.is_empty() {
            s.init_args = words.init_args;
        }
        s.failsafe |= s.openwrt && s.openwrt_failsafe;
        s.validate(&mut out);
        (s, out)
    }

    fn apply(&mut self, p: &Param<'_>, src: Source, out: &mut Loaded) {
        let value = p.value.as_deref();
        let err = |reason: String| SettingError {
            key: p.key.to_string(),
            value: value.unwrap_or("").to_string(),
            source: src,
            reason,
        };
        let result = self.set(p.key, value, src);
        match result {
            Ok(true) => {}
            Ok(false) if p.key.starts_with(PREFIX) => {
                out.warnings.push(format!("unknown setting {} ({src}) ignored; see the README's settings table", p.key))
            }
            Ok(false) => {} // a kernel parameter that is not ours
            Err(reason) => out.errors.push(err(reason)),
        }
    }

    /// Sets one key; Ok(false) when the key is not ours.
    fn set(&mut self, key: &str, v: Option<&str>, src: Source) -> Result<bool, String> {
        match key {
            "root" => self.root = Some(DevSpec::parse(need(v)?)?),
            "rootfstype" => self.rootfstype = Some(word(v)?),
            "rootflags" => self.rootflags = need(v)?.to_string(),
            "rootwait" => self.rootwait = Some(v.map(seconds).transpose()?.unwrap_or(60)),
            "rootdelay" => self.rootdelay = seconds(need(v)?)?,
            "init" => self.init = Some(abs_path(need(v)?)?),
            "mtdparts" => self.mtdparts = crate::flash::mtdparts::parse(need(v)?)?,
            "ro" => self.read_only = true,
            "failsafe" => {
                self.openwrt_failsafe = true;
                return Ok(false);
            }
            "rw" => self.read_only = false,
            // RAUC's convention, which U-Boot's boot script follows: the slot it chose.
            "rauc.slot" => {
                self.ab.uboot_slot = Some(match need(v)? {
                    "A" | "a" => crate::ab::state::SlotId::A,
                    "B" | "b" => crate::ab::state::SlotId::B,
                    other => return Err(format!("{other}: the slots are A and B")),
                });
                return Ok(false);
            }
            _ if !key.starts_with(PREFIX) && key.contains('.') => {
                // Only kept when its module loads; anything else dotted is not ours to judge.
                if let Some((module, param)) = crate::kmod::module_param(key, v) {
                    if src == Source::Cmdline {
                        // The command line overrides the board: the kernel would apply both
                        // (block2mtd makes a device for each), so the board's goes. Repeats
                        // within one source stay: they can mean one device each.
                        let board = self.module_params.len() - self.cmdline_params;
                        let same = |(m, p): &(String, String)| *m == module && param_name(p) == param_name(&param);
                        let mut i = 0;
                        self.module_params.retain(|mp| {
                            i += 1;
                            i > board || !same(mp)
                        });
                        self.cmdline_params += 1;
                    }
                    self.module_params.push((module, param));
                }
                return Ok(false);
            }
            _ => return self.set_own(key, v, src),
        }
        Ok(true)
    }

    fn set_own(&mut self, key: &str, v: Option<&str>, src: Source) -> Result<bool, String> {
        let Some(name) = key.strip_prefix(PREFIX) else {
            return Ok(false);
        };
        match name {
            "data" => {
                self.data_appended = v == Some("appended");
                self.data = if self.data_appended { None } else { optional(v, DevSpec::parse)? };
            }
            "datafstype" => self.data_fstype = word(v)?,
            "openwrt" => self.openwrt = flag(v)?,
            "ubi" => self.ubi_mtd = optional(v, mtd_name)?,
            "dataflags" => self.data_flags = data_flags(need(v)?)?,
            "dir" => self.dir = rel_path(need(v)?)?,
            "overlayflags" => self.overlay_flags = need(v)?.to_string(),
            "overlayunsafe" => self.overlay_unsafe = flag(v)?,
            "volatile" => self.volatile = flag(v)?,
            "failsafe" => self.failsafe = flag(v)?,
            "lowerfile" => self.lower_file = optional(v, abs_path)?,
            "modules" => self.modules = list(need(v)?),
            "timeout" => self.timeout = seconds(need(v)?)?,
            "moduletimeout" => self.module_timeout = seconds(need(v)?)?,
            "failure" => self.failure = failure(need(v)?)?,
            "rebootdelay" => self.reboot_delay = seconds(need(v)?)?,
            "allowshell" if src == Source::Cmdline => {
                return Err("only the board config may allow a rescue shell".into())
            }
            "allowshell" => self.allow_shell = flag(v)?,
            "shell" => self.shell = abs_path(need(v)?)?,
            "datamissing" => self.data_missing = data_missing(need(v)?)?,
            "mkfs" => self.mkfs = flag(v)?,
            "fsck" => self.fsck = flag(v)?,
            "fscktimeout" => self.fsck_timeout = seconds(need(v)?)?,
            "loglevel" => self.log_level = level(need(v)?)?,
            "showinfo" => self.show_info = flag(v)?,
            other if self.verity.set(other, v, src)? => {}
            other if self.kexec.set(other, v, src)? => {}
            other => return self.ab.set(other, v),
        }
        Ok(true)
    }

    /// Where a slot image carries its own kernel, initramfs and device tree, when its slot boots
    /// them: handed over to by kexec, or loaded by U-Boot from the slot's boot partition, into
    /// which `install` copies them from the image.
    pub fn slot_boot_files(&self) -> Option<crate::ab::handoff::BootFiles> {
        self.kexec.files().or_else(|| self.ab.uboot.then(|| self.kexec.paths()))
    }

    /// The modules the boot loads: `oinit.modules`, plus dm-verity when a lower is verified (so
    /// a board turns verification on with its key or root hash alone).
    pub fn boot_modules(&self) -> Vec<String> {
        let mut m = self.modules.clone();
        let verity = self.verity.key.is_some() || self.verity.root_hash.iter().any(Option::is_some);
        if verity && !m.iter().any(|x| x.replace('-', "_") == "dm_verity") {
            m.push("dm_verity".into());
        }
        // An EROFS lower named by its type needs the module before the lower can mount.
        if self.rootfstype.as_deref() == Some("erofs") && !m.iter().any(|x| x == "erofs") {
            m.push("erofs".into());
        }
        // loop only when this boot attaches a loop device: an image file as the lower or a slot,
        // or a data area appended to a squashfs partition (on MTD the kernel splits it instead).
        if self.uses_loop() && !m.iter().any(|x| x == "loop") {
            m.push("loop".into());
        }
        m
    }

    fn uses_loop(&self) -> bool {
        let file_slot = self.ab.slots.iter().flatten().any(|s| matches!(s, crate::config::ab::SlotSource::File(_)));
        let appended_on_block = self.data_appended && !matches!(self.root, Some(DevSpec::Mtd(_)));
        self.lower_file.is_some() || file_slot || appended_on_block
    }

    /// Whether a data area is configured (a partition, or the rest of the root partition).
    pub fn has_data(&self) -> bool {
        self.data.is_some() || self.data_appended
    }

    fn validate(&self, out: &mut Loaded) {
        let mut bad = |key: &str, value: &str, reason: &str| {
            out.errors.push(SettingError {
                key: key.into(),
                value: value.into(),
                source: Source::Cmdline,
                reason: reason.into(),
            })
        };
        if let Some((key, reason)) = self.ab.validate(self.has_data()) {
            bad(key, "", reason);
        }
        if self.data_appended && self.verity.enabled() {
            bad(
                "oinit.data",
                "appended",
                "a verified image has its hash tree after the squashfs, where the appended data area would start",
            );
        }
        if self.data_appended && (self.root.is_none() || self.lower_file.is_some()) {
            bad(
                "oinit.data",
                "appended",
                "the data follows the squashfs in its partition: set root= to that partition",
            );
        }
        if self.root.is_none() && !self.ab.enabled() && !(self.lower_file.is_some() && self.data.is_some()) {
            bad(
                "root",
                "",
                "no lower image: set root= to the squashfs partition, or oinit.lowerfile= with oinit.data=",
            );
        }
        if self.timeout == 0 {
            bad("oinit.timeout", "0", "must be at least 1 second");
        }
        if self.module_timeout == 0 {
            bad("oinit.moduletimeout", "0", "must be at least 1 second (0 would fail every boot that loads a module)");
        }
        if self.fsck_timeout == 0 {
            bad(
                "oinit.fscktimeout",
                "0",
                "must be at least 1 second (0 would send every boot to the fsck failure path)",
            );
        }
        let trusting = trusting_overlay_options(&self.overlay_flags);
        if !trusting.is_empty() && !self.overlay_unsafe {
            bad(
                "oinit.overlayflags",
                &self.overlay_flags,
                "redirect_dir/metacopy let what is written in the upper redirect lookups and metadata (a crafted \
                 data partition then reaches files it should not): set oinit.overlayunsafe=1 as well to accept that",
            );
        } else if !trusting.is_empty() {
            out.warnings.push(format!("oinit.overlayunsafe: the overlay trusts the upper ({})", trusting.join(",")));
        }
        for (set, key) in [
            (self.ab.factory_reset, "oinit.factoryreset"),
            (!self.ab.keep.is_empty(), "oinit.keep"),
            (self.ab.reset_button.is_some(), "oinit.resetbutton"),
            (self.ab.recreate.is_some(), "oinit.datarecreate"),
        ] {
            if set && !self.ab.enabled() {
                out.warnings.push(format!(
                    "{key} is ignored: it needs A/B slots or oinit.state=1 (a reset is recorded in the state record)"
                ));
            }
        }
        if self.ab.recreate.is_some() {
            let files = self.lower_file.is_some()
                || self.ab.slots.iter().flatten().any(|s| matches!(s, crate::config::ab::SlotSource::File(_)));
            if !matches!(self.data, Some(DevSpec::Ubi { .. })) {
                bad("oinit.datarecreate", "", "recreates a UBI volume: the data must be one (oinit.data=ubi:NAME)");
            } else if files {
                bad("oinit.datarecreate", "", "the image files live on the data volume, which a recreate removes");
            }
        }
        // A failing update is booted `tries` times unconfirmed, then once more on the way back
        // (the rollback boot, confirmed only when its userspace runs mark-good): a count that
        // these boots reach would wipe the user's data before the rollback is done.
        let two_slots = self.ab.slots.iter().all(Option::is_some);
        let cycles = u16::from(self.ab.reset_cycles);
        if two_slots && cycles > 0 && cycles <= u16::from(self.ab.tries) + 1 {
            bad(
                "oinit.resetcycles",
                &cycles.to_string(),
                &format!(
                    "must be more than oinit.tries + 1 ({}): the unconfirmed boots of a failing update and its \
                     rollback would trigger the factory reset before the rollback is done",
                    u16::from(self.ab.tries) + 1
                ),
            );
        }
        if self.ab.uboot && !two_slots {
            bad("oinit.bootloader", "uboot", "U-Boot chooses between two slots: needs oinit.a= and oinit.b=");
        }
        if self.ab.boot_parts.iter().any(Option::is_some) {
            if !self.ab.uboot {
                bad(
                    "oinit.aboot",
                    "",
                    "a slot's boot partition is where U-Boot loads it from: needs oinit.bootloader=uboot",
                );
            } else if self.ab.boot_parts.iter().any(Option::is_none) {
                bad("oinit.aboot", "", "both slots need a boot partition (oinit.aboot= and oinit.bboot=)");
            }
        }
        if self.ab.uboot && self.kexec.enabled {
            bad("oinit.bootloader", "uboot", "U-Boot loads each slot's kernel itself: turn oinit.kexec off");
        }
        if (self.kexec.enabled || self.kexec.stage2.is_some()) && !two_slots {
            bad("oinit.kexec", "", "hands over to a slot's own kernel: needs two slots (oinit.a= and oinit.b=)");
        }
        if self.failure == FailurePolicy::Shell && !self.allow_shell {
            bad("oinit.failure", "shell", "the board config does not allow a rescue shell (oinit.allowshell=1)");
        }
    }

    /// The `init=` to run and its fallbacks, like the kernel's own list.
    pub fn init_candidates(&self) -> Vec<String> {
        match &self.init {
            Some(i) => vec![i.clone()],
            None => ["/sbin/init", "/etc/init", "/bin/init", "/bin/sh"].map(String::from).to_vec(),
        }
    }

    /// How long to wait for the lower's device: `rootwait[=N]` or else `oinit.timeout`.
    pub fn root_wait(&self) -> u32 {
        self.rootwait.unwrap_or(self.timeout)
    }
}

/// Extra data mount options. `nodev,nosuid` are always there (whoever writes the data partition
/// must not get device nodes or setuid programs honoured), so options that undo them are refused.
fn data_flags(v: &str) -> Result<String, String> {
    match v.split(',').find(|o| matches!(o.trim(), "dev" | "suid" | "defaults")) {
        Some(o) => Err(format!("'{o}' would undo nodev,nosuid, which the data partition always has")),
        None => Ok(v.to_string()),
    }
}

/// The options in `flags` that make overlayfs follow what the upper says (redirects, metadata-only
/// copy-ups): unsafe when the data partition is not trusted.
pub fn trusting_overlay_options(flags: &str) -> Vec<&str> {
    flags
        .split(',')
        .filter(|o| {
            let (k, v) = o.split_once('=').unwrap_or((o, ""));
            (k == "redirect_dir" && !matches!(v, "nofollow" | "off")) || (k == "metacopy" && v != "off")
        })
        .collect()
}

impl Settings {
    /// Whether the device search acts on UBI (attach, block devices): then it must not start
    /// before the ubi module has finished its init.
    pub fn needs_ubi(&self) -> bool {
        let slots = self.ab.slots.iter().flatten().filter_map(|src| match src {
            crate::config::ab::SlotSource::Partition(spec) => Some(spec),
            crate::config::ab::SlotSource::File(_) => None,
        });
        self.ubi_mtd.is_some() || self.root.iter().chain(slots).any(|d| matches!(d, DevSpec::Ubi { .. }))
    }
}

/// An MTD partition's name as `/proc/mtd` shows it (no spaces: the config and the command line
/// split on them).
fn mtd_name(v: &str) -> Result<String, String> {
    if v.chars().all(|c| c.is_ascii_graphic()) {
        Ok(v.into())
    } else {
        Err("must be an MTD partition name as /proc/mtd shows it, like ubi".into())
    }
}

fn failure(v: &str) -> Result<FailurePolicy, String> {
    Ok(match v {
        "reboot" => FailurePolicy::Reboot,
        "halt" => FailurePolicy::Halt,
        "poweroff" => FailurePolicy::Poweroff,
        "shell" => FailurePolicy::Shell,
        _ => return Err("must be reboot, halt, poweroff or shell".into()),
    })
}

fn data_missing(v: &str) -> Result<DataMissing, String> {
    match v {
        "volatile" => Ok(DataMissing::Volatile),
        "fail" => Ok(DataMissing::Fail),
        _ => Err("must be volatile or fail".into()),
    }
}

/// A module parameter's name (`block2mtd` of `block2mtd=/dev/vda,64KiB`); the kernel treats `-`
/// and `_` in parameter names alike.
fn param_name(p: &str) -> String {
    p.split('=').next().unwrap_or(p).replace('-', "_")
}

fn level(v: &str) -> Result<log::LevelFilter, String> {
    v.parse().map_err(|_| "must be off, error, warn, info, debug or trace".into())
}

impl Settings {
    /// The settings that boot `slot`: its image as the lower, its own upper under `oinit.dir`.
    pub fn for_slot(&self, slot: SlotId) -> Settings {
        let mut s = self.clone();
        match &self.ab.slots[slot.index()] {
            Some(SlotSource::Partition(spec)) => {
                s.root = Some(spec.clone());
                s.lower_file = None;
            }
            Some(SlotSource::File(path)) => {
                s.root = None;
                s.lower_file = Some(path.clone());
            }
            None => {}
        }
        s.dir = format!("{}/{}", self.dir, slot.name());
        s.verity.slot = slot.index();
        s.verity.name = format!("oinit-{}", slot.name());
        s.root_key = match slot {
            SlotId::A => "oinit.a",
            SlotId::B => "oinit.b",
        };
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_overrides_config() {
        let config = "root=PARTLABEL=rootfs\noinit.data=PARTLABEL=userdata oinit.modules=ext4,loop\n";
        let (s, l) = Settings::load(config, "console=ttyS0 root=/dev/vdb oinit.timeout=3 ro init=/bin/sh -- -x");
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        assert_eq!(s.root, Some(DevSpec::Path("vdb".into())));
        assert_eq!(s.data, Some(DevSpec::PartLabel("userdata".into())));
        assert_eq!(s.modules, vec!["ext4", "loop"]);
        assert_eq!(s.timeout, 3);
        assert!(s.read_only);
        assert_eq!(s.init_candidates(), vec!["/bin/sh"]);
        assert_eq!(s.init_args, vec!["-x"]);
    }

    #[test]
    fn openwrt_failsafe_key_means_failsafe_only_on_openwrt_boards() {
        let failsafe = |config: &str, cmdline: &str| Settings::load(config, cmdline).0.failsafe;
        assert!(failsafe("oinit.openwrt=1", "failsafe=true"));
        assert!(failsafe("", "failsafe=1 oinit.openwrt=1"));
        assert!(!failsafe("", "failsafe=1"));
        assert!(!failsafe("oinit.openwrt=1", ""));
    }

    #[test]
    fn loop_only_when_the_boot_attaches_a_loop_device() {
        let board = "root=PARTLABEL=rootfs\noinit.modules=squashfs,ext4\n";
        let modules = |cmdline: &str| Settings::load(board, cmdline).0.boot_modules();
        assert_eq!(modules(""), ["squashfs", "ext4"]);
        for uses in ["oinit.lowerfile=/images/r.sqfs", "oinit.data=appended", "oinit.afile=/a.sqfs oinit.bfile=/b.sqfs"]
        {
            assert_eq!(modules(uses), ["squashfs", "ext4", "loop"], "{uses}");
        }
        // NOR: the kernel splits the MTD partition, no loop device.
        assert_eq!(modules("root=mtd:firmware oinit.data=appended"), ["squashfs", "ext4"]);
        // Listed by the board: loaded, once.
        let listed = Settings::load("oinit.modules=loop", "oinit.lowerfile=/r.sqfs").0.boot_modules();
        assert_eq!(listed, ["loop"]);
    }

    #[test]
    fn defaults() {
        let (s, l) = Settings::load("", "root=/dev/vda1");
        assert!(l.errors.is_empty());
        assert_eq!(s.data_flags, "", "no extra data mount options; nodev,nosuid are always added");
        assert_eq!(s.failure, FailurePolicy::Reboot);
        assert_eq!(s.data_missing, DataMissing::Volatile);
        assert_eq!(s.init_candidates()[0], "/sbin/init");
        assert_eq!(s.root_wait(), 10);
        let (s, _) = Settings::load("", "root=/dev/vda1 rootwait");
        assert_eq!(s.root_wait(), 60);
    }

    #[test]
    fn every_bad_value_names_its_key() {
        let cases = [
            ("root=sda1", "root"),
            ("oinit.timeout=soon", "oinit.timeout"),
            ("oinit.timeout=0", "oinit.timeout"),
            ("oinit.failure=explode", "oinit.failure"),
            ("oinit.failure=shell", "oinit.failure"),
            ("oinit.allowshell=1", "oinit.allowshell"),
            ("oinit.dir=/abs", "oinit.dir"),
            ("oinit.dir=a/../b", "oinit.dir"),
            ("oinit.volatile=maybe", "oinit.volatile"),
            ("oinit.loglevel=loud", "oinit.loglevel"),
            ("oinit.data=UUID=zz", "oinit.data"),
            ("init=sbin/init", "init"),
            ("rootdelay=", "rootdelay"),
            ("oinit.datafstype=ext4,rw", "oinit.datafstype"),
        ];
        for (cmd, key) in cases {
            let (_, l) = Settings::load("", &format!("root=/dev/vda1 {cmd}"));
            assert_eq!(l.errors.len(), 1, "{cmd}: {:?}", l.errors);
            assert_eq!(l.errors[0].key, key, "{cmd}");
            assert!(l.errors[0].to_string().contains(key));
        }
    }

    #[test]
    fn missing_lower_is_an_error() {
        let (_, l) = Settings::load("", "");
        assert_eq!(l.errors[0].key, "root");
        let (_, l) = Settings::load("oinit.data=LABEL=d", "oinit.lowerfile=/images/a.squashfs");
        assert!(l.errors.is_empty());
    }

    #[test]
    fn unknown_own_keys_warn_foreign_keys_pass() {
        let (_, l) = Settings::load("", "root=/dev/vda1 oinit.colour=blue quiet overlay.metacopy=off");
        assert!(l.errors.is_empty());
        assert_eq!(l.warnings.len(), 1);
        assert!(l.warnings[0].contains("oinit.colour"));
    }

    #[test]
    fn shell_needs_the_board_config() {
        let (s, l) = Settings::load("oinit.allowshell=1", "root=/dev/vda1 oinit.failure=shell");
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        assert_eq!(s.failure, FailurePolicy::Shell);
    }

    /// The board's `block2mtd.block2mtd=` is replaced by the command line's, not added to: both
    /// reached the module, the board's made mtd0 and the command line's failed on the same disk.
    #[test]
    fn the_command_line_replaces_a_board_module_parameter() {
        let board = "block2mtd.block2mtd=/dev/vda,64KiB,ubi loop.max_part=7 block2mtd.block2mtd=/dev/vdb,64KiB";
        let (s, _) = Settings::load(board, "block2mtd.block2mtd=/dev/vda,128KiB,ubi loop.max-part=3");
        assert_eq!(
            s.module_params,
            [
                ("block2mtd".to_string(), "block2mtd=/dev/vda,128KiB,ubi".to_string()),
                ("loop".to_string(), "max-part=3".to_string())
            ]
        );
        // Within one source, repeats are kept: one block2mtd device each.
        let (s, _) = Settings::load(board, "");
        assert_eq!(
            crate::kmod::params_for("block2mtd", &s.module_params),
            "block2mtd=/dev/vda,64KiB,ubi block2mtd=/dev/vdb,64KiB"
        );
        let (s, _) = Settings::load("", "block2mtd.block2mtd=/dev/vda block2mtd.block2mtd=/dev/vdb");
        assert_eq!(s.module_params.len(), 2);
    }

    #[test]
    fn error_mentions_source() {
        let (_, l) = Settings::load("\n\noinit.timeout=x", "root=/dev/vda1");
        assert!(l.errors[0].to_string().contains("config line 3"), "{}", l.errors[0]);
    }

    #[test]
    fn every_value_is_checked_with_its_key() {
        let errors = |cmdline: &str| {
            let (_, l) = Settings::load("", &format!("root=/dev/vda1 oinit.data=/dev/vda2 {cmdline}"));
            l.errors.iter().map(|e| format!("{}: {}", e.key, e.reason)).collect::<Vec<_>>().join("; ")
        };
        assert!(errors("oinit.dataflags=noatime,dev").contains("oinit.dataflags: 'dev' would undo nodev,nosuid"));
        assert!(errors("oinit.dataflags=suid").contains("oinit.dataflags"));
        assert_eq!(errors("oinit.dataflags=noatime"), "");
        assert!(errors("oinit.datarecreate=2M").contains("the data must be one (oinit.data=ubi:NAME)"));
        assert!(errors("oinit.datarecreate=2X").contains("must be a size like 2M"));
        let (s, l) = Settings::load("oinit.state oinit.data=ubi:rootfs_data", "oinit.datarecreate=2m");
        assert_eq!((s.ab.recreate, l.errors.len()), (Some(2 << 20), 0));
        let (s, _) = Settings::load("oinit.state oinit.data=ubi:d", "oinit.datarecreate=0x200000");
        assert_eq!(s.ab.recreate, Some(2 << 20));
        let (s, _) = Settings::load("oinit.state oinit.data=ubi:d oinit.datarecreate=512K", "oinit.datarecreate=0");
        assert_eq!(s.ab.recreate, None);
        let files = "oinit.data=ubi:d oinit.afile=/a.sqfs oinit.bfile=/b.sqfs oinit.datarecreate=1048576";
        assert!(errors(files).contains("image files live on the data volume"));
        assert!(errors("oinit.resetcycles=300").contains("oinit.resetcycles: must be a count of boots"));
        assert!(errors("oinit.watchdogtimeout=0").contains("oinit.watchdogtimeout: must be 1 to 3600"));
        assert!(errors("oinit.fscktimeout=0").contains("oinit.fscktimeout"));
        assert!(errors("oinit.moduletimeout=0").contains("oinit.moduletimeout"));
        // Two slots, 3 tries: the 4th unconfirmed boot is the rollback's, so 4 is too few.
        let ab = "oinit.a=PARTLABEL=a oinit.b=PARTLABEL=b oinit.data=PARTLABEL=d";
        assert!(errors(&format!("{ab} oinit.resetcycles=4")).contains("must be more than oinit.tries + 1 (4)"));
        assert!(!errors(&format!("{ab} oinit.resetcycles=5")).contains("oinit.resetcycles"));
        assert!(!errors(&format!("{ab} oinit.tries=1 oinit.resetcycles=3")).contains("oinit.resetcycles"));
        assert!(errors("oinit.overlayflags=metacopy=on").contains("oinit.overlayflags: redirect_dir/metacopy"));
        assert!(errors("oinit.overlayflags=redirect_dir=follow").contains("oinit.overlayunsafe=1"));
        assert_eq!(errors("oinit.overlayflags=volatile"), "");
        let (_, l) = Settings::load("", "root=/dev/vda1 oinit.overlayflags=metacopy=on oinit.overlayunsafe=1");
        assert!(l.errors.is_empty() && l.warnings.iter().any(|w| w.contains("trusts the upper (metacopy=on)")));
        // Keys that need the state record say so instead of being silently ignored.
        let (_, l) = Settings::load("", "root=/dev/vda1 oinit.factoryreset oinit.keep=/etc/hostname");
        assert_eq!(l.warnings.iter().filter(|w| w.contains("is ignored: it needs A/B slots")).count(), 2);
        // Boot partitions: where U-Boot loads a slot's kernel from; both, and only under U-Boot.
        let boots = "oinit.aboot=PARTLABEL=boot_a oinit.bboot=PARTLABEL=boot_b";
        assert!(errors(&format!("{ab} {boots}")).contains("needs oinit.bootloader=uboot"));
        assert!(errors(&format!("{ab} oinit.bootloader=uboot oinit.aboot=/dev/vdb2")).contains("both slots need"));
        let (s, l) = Settings::load(ab, &format!("{boots} oinit.bootloader=uboot oinit.ubootenv=/etc/env.config"));
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        assert_eq!(
            (s.ab.boot_parts[1].as_ref().map(|d| d.to_string()), s.ab.uboot_env.as_str()),
            (Some("PARTLABEL=boot_b".into()), "/etc/env.config")
        );
    }
}
