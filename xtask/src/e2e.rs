//! End-to-end tests: real Debian kernels boot the project's initramfs in QEMU (TCG) and the
//! console and the disk afterwards are checked for what a user would check.

use crate::board::Board;
use crate::e2e_ab;
use crate::image::{self, DATA_UUID};
use crate::qemu::{self, Boot};
use crate::sh;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything one board's scenarios share: the built artefacts and a pristine disk to copy.
pub struct Ctx<'a> {
    pub root: &'a Path,
    pub board: &'a Board,
    pub initrd: PathBuf,
    pub sqfs: PathBuf,
    pub pristine: PathBuf,
    pub work: PathBuf,
}

impl<'a> Ctx<'a> {
    pub fn build(root: &'a Path, board: &'a Board) -> Result<Ctx<'a>, String> {
        if !board.bootable() {
            return Err(format!(
                "board {} is real hardware: QEMU cannot boot it (cargo xtask check-boards)",
                board.name
            ));
        }
        let out = board.out_dir(root);
        let pristine = out.join("disk.img");
        crate::disk::build(root, board, &pristine)?;
        // Built here, not left to an earlier command: a fresh clone runs the demo first.
        let initrd = image::initramfs(root, board)?;
        let sqfs = out.join("rootfs-a.sqfs");
        let work = out.join("e2e");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
        Ok(Ctx { root, board, initrd, sqfs, pristine, work })
    }

    pub fn fresh_disk(&self, name: &str) -> Result<PathBuf, String> {
        let d = self.work.join(format!("{name}.img"));
        std::fs::copy(&self.pristine, &d).map_err(|e| e.to_string())?;
        Ok(d)
    }

    pub fn boot(&self, disk: &Path, append: &str, log: &str) -> Result<Boot, String> {
        self.boot_with(&self.initrd, disk, append, log)
    }

    pub fn boot_with(&self, initrd: &Path, disk: &Path, append: &str, log: &str) -> Result<Boot, String> {
        finished(self.launch(&Launch { initrd, ..Launch::new(disk, append, log) }))
    }

    /// Boots and lets the guest reset (a watchdog) until it powers off.
    pub fn boot_allowing_resets(&self, disk: &Path, append: &str, log: &str) -> Result<Boot, String> {
        finished(self.launch(&Launch { allow_reboot: true, ..Launch::new(disk, append, log) }))
    }

    /// `boot_allowing_resets` with another initramfs.
    pub fn boot_with_resets(&self, initrd: &Path, disk: &Path, append: &str, log: &str) -> Result<Boot, String> {
        finished(self.launch(&Launch { initrd, allow_reboot: true, ..Launch::new(disk, append, log) }))
    }

    /// Boots with every write and flush recorded in `write_log` (see `writelog`).
    pub fn boot_logged(&self, disk: &Path, append: &str, log: &str, write_log: &Path) -> Result<Boot, String> {
        std::fs::write(write_log, b"").map_err(|e| e.to_string())?;
        finished(self.launch(&Launch { drive: qemu::Drive::WriteLog(write_log), ..Launch::new(disk, append, log) }))
    }

    /// Boots and cuts the power `delay` after `marker` shows on the console.
    pub fn boot_cut(
        &self,
        disk: &Path,
        append: &str,
        log: &str,
        marker: &str,
        delay: Duration,
    ) -> Result<Boot, String> {
        self.launch(&Launch { cut: Some((marker, delay)), ..Launch::new(disk, append, log) }).map(|(b, _)| b)
    }

    /// Boots on a disk that fails as the blkdebug `rules` say; only a kernel panic is an error.
    pub fn boot_failing(&self, disk: &Path, append: &str, log: &str, rules: &Path) -> Result<Boot, String> {
        let (b, log) = self.launch(&Launch { drive: qemu::Drive::Debug(rules), ..Launch::new(disk, append, log) })?;
        if b.panicked {
            return Err(format!("Kernel panic on a failing disk (see {})", log.display()));
        }
        Ok(b)
    }

    fn launch(&self, l: &Launch<'_>) -> Result<(Boot, PathBuf), String> {
        let log = self.work.join(format!("{}.log", l.log));
        let initrd = if l.initrd.as_os_str().is_empty() { &self.initrd } else { l.initrd };
        let b = qemu::boot(&qemu::Run {
            board: self.board,
            initrd,
            disk: Some(l.disk),
            append: l.append.to_string(),
            timeout: Duration::from_secs(240),
            log: &log,
            allow_reboot: l.allow_reboot,
            cut: l.cut,
            drive: l.drive,
        })?;
        Ok((b, log))
    }
}

/// One QEMU run of a scenario; `initrd` empty means the board's.
struct Launch<'a> {
    initrd: &'a Path,
    disk: &'a Path,
    append: &'a str,
    log: &'a str,
    allow_reboot: bool,
    cut: Option<(&'a str, Duration)>,
    drive: qemu::Drive<'a>,
}

impl<'a> Launch<'a> {
    fn new(disk: &'a Path, append: &'a str, log: &'a str) -> Launch<'a> {
        Launch { initrd: Path::new(""), disk, append, log, allow_reboot: false, cut: None, drive: qemu::Drive::Plain }
    }
}

/// A run that must end by itself (poweroff or reboot), without a kernel panic.
fn finished(run: Result<(Boot, PathBuf), String>) -> Result<Boot, String> {
    let (b, log) = run?;
    if b.panicked {
        return Err(format!("Kernel panic on the console (see {})", log.display()));
    }
    if b.timed_out {
        return Err(format!("no poweroff within the timeout (see {})", log.display()));
    }
    Ok(b)
}

pub fn want(b: &Boot, key: &str, value: &str) -> Result<(), String> {
    match b.marker(key) {
        Some(v) if v == value => Ok(()),
        other => Err(format!("expected {key}={value}, console said {other:?}")),
    }
}

pub fn contains(b: &Boot, text: &str) -> Result<(), String> {
    if b.console.contains(text) {
        Ok(())
    } else {
        Err(format!("console lacks {text:?}"))
    }
}

/// A boot that reached the real init on an overlay root as PID 1 and finished its script.
pub fn booted(b: &Boot) -> Result<(), String> {
    want(b, "pid", "1")?;
    want(b, "rootfs", "overlay")?;
    initramfs_freed(b)?;
    contains(b, "OI: done")
}

/// The initramfs was deleted at the switch: the RAM held by tmpfs/ramfs that no visible mount
/// accounts for is far below the smallest board's initramfs (over 3 MiB unpacked). Up to 2 MiB
/// may remain while the background deletion of old uppers runs: that child process still maps
/// the init's own executable (at most 1 MiB, armv7's static glibc binary) until it ends.
fn initramfs_freed(b: &Boot) -> Result<(), String> {
    let kb: i64 = b.marker("hidden-ram-kb").and_then(|v| v.parse().ok()).ok_or("no hidden-ram-kb on the console")?;
    if kb >= 2048 {
        return Err(format!("{kb} kB of tmpfs/ramfs memory outside any visible mount: the initramfs was not freed"));
    }
    Ok(())
}

/// A boot that failed cleanly: the FATAL line, no kernel panic, the machine rebooted by itself.
fn failed_with(b: &Boot, text: &str) -> Result<(), String> {
    contains(b, "FATAL")?;
    contains(b, text)?;
    if b.console.contains("OI: pid=") {
        return Err("the real init ran although the boot should have failed".into());
    }
    Ok(())
}

/// Reads a file from the upper on the data partition of `disk`, with debugfs (no mount needed).
fn upper_file(disk: &Path, path: &str) -> Result<String, String> {
    upper_file_at(disk, &format!("/overlay/upper{path}"))
}

/// Reads a file at `path` on the data partition of `disk`.
pub fn upper_file_at(disk: &Path, path: &str) -> Result<String, String> {
    file_in(disk, "userdata", 0, path)
}

/// Reads a file at `path` on the ext4 that starts `offset` bytes into partition `part`.
pub fn file_in(disk: &Path, part: &str, offset: u64, path: &str) -> Result<String, String> {
    with_fs_copy(disk, part, offset, |img| sh::output(sh::cmd("debugfs").arg("-R").arg(format!("cat {path}")).arg(img)))
        .map(|s| s.trim().to_string())
}

/// Runs `f` on a copy of the filesystem that starts `offset` bytes into partition `part`
/// (the host tools read image files, not partitions of a disk image).
fn with_fs_copy<T>(
    disk: &Path,
    part: &str,
    offset: u64,
    f: impl FnOnce(&Path) -> Result<T, String>,
) -> Result<T, String> {
    let p = image::part(&image::partitions(disk)?, part)?;
    let img = disk.with_extension(format!("{part}-copy"));
    std::fs::write(&img, image::read_at(disk, p.start + offset, p.size - offset)?).map_err(|e| e.to_string())?;
    let out = f(&img);
    let _ = std::fs::remove_file(&img);
    out
}

/// `dumpe2fs -h` of the ext4 that starts `offset` bytes into partition `part`.
pub fn ext4_header(disk: &Path, part: &str, offset: u64) -> Result<String, String> {
    with_fs_copy(disk, part, offset, |img| sh::output(sh::cmd("dumpe2fs").arg("-h").arg(img)))
}

/// Whether the data filesystem was unmounted cleanly: no journal to replay.
pub fn needs_recovery(header: &str) -> bool {
    header.lines().any(|l| l.starts_with("Filesystem features:") && l.contains("needs_recovery"))
}

/// A normal poweroff returns to /run/initramfs/shutdown, which unmounts overlay, lower and data:
/// the ext4 needs no journal replay. The same boot powered off hard leaves it dirty, so the
/// check can tell the two apart.
fn clean_shutdown(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("shutdown")?;
    let b = ctx.boot(&disk, "", "shutdown-clean")?;
    booted(&b)?;
    contains(&b, "shutdown: ")?;
    contains(&b, "left read-only; poweroff")?;
    let header = ext4_header(&disk, "userdata", 0)?;
    if needs_recovery(&header) {
        return Err("the data partition needs journal recovery after a clean poweroff".into());
    }
    let b = ctx.boot(&disk, "oitest=hardoff", "shutdown-hard")?;
    booted(&b)?;
    if !needs_recovery(&ext4_header(&disk, "userdata", 0)?) {
        return Err("a hard poweroff left a clean journal: the check cannot tell".into());
    }
    Ok(())
}

fn lower_unchanged(ctx: &Ctx<'_>, disk: &Path) -> Result<(), String> {
    let parts = image::partitions(disk)?;
    let p = image::part(&parts, "rootfs")?;
    let want = std::fs::read(&ctx.sqfs).map_err(|e| e.to_string())?;
    let got = image::read_at(disk, p.start, want.len() as u64)?;
    if got == want {
        Ok(())
    } else {
        Err("the lower image changed on disk".into())
    }
}

/// What a scenario needs from the board beyond a disk and a kernel.
#[derive(Clone, Copy)]
pub enum Needs {
    Nothing,
    /// Host tools packed into the initramfs must run on the guest: the host's architecture.
    HostArch,
    /// A watchdog the board's config arms (`oinit.watchdog`).
    Watchdog,
    /// Proven on one architecture, the x86_64 QEMU board: the scenario builds something of its
    /// own per CPU (a Debian tree by debootstrap, a test build of the init).
    X86Only,
    /// dm-verity lowers: proven on the two 64-bit QEMU boards (x86_64 and aarch64).
    Verity,
}

impl Needs {
    /// Why the board cannot run the scenario, if it cannot.
    fn unmet(self, b: &Board) -> Option<String> {
        match self {
            Needs::Nothing => None,
            Needs::HostArch if b.rust_target.starts_with(std::env::consts::ARCH) => None,
            Needs::HostArch => {
                Some(format!("packs {} host tools, the board is {}", std::env::consts::ARCH, b.rust_target))
            }
            Needs::Watchdog if b.config.lines().any(|l| l.trim_start().starts_with("oinit.watchdog=")) => None,
            Needs::Watchdog => Some("the board's kernel has no watchdog driver for this QEMU machine".into()),
            Needs::X86Only if b.name == "qemu-x86_64" => None,
            Needs::X86Only => Some("runs on qemu-x86_64 only: one architecture proves it".into()),
            Needs::Verity if matches!(b.name.as_str(), "qemu-x86_64" | "qemu-aarch64") => None,
            Needs::Verity => Some("verified lowers are proven on the qemu-x86_64 and qemu-aarch64 boards".into()),
        }
    }
}

/// A scenario: its name, the test, and what it needs from the board.
pub type Scenario = (&'static str, fn(&Ctx<'_>) -> Result<(), String>, Needs);

const SCENARIOS: [Scenario; 32] = [
    ("persist-across-boots", persist, Needs::Nothing),
    ("clean-shutdown", clean_shutdown, Needs::Nothing),
    ("device-spec-forms", specs, Needs::Nothing),
    ("lower-image-file", lower_file, Needs::Nothing),
    ("missing-data-is-volatile", missing_data, Needs::Nothing),
    ("lower-missing-or-corrupt", bad_lower, Needs::Nothing),
    ("bad-settings-named", bad_settings, Needs::Nothing),
    ("failure-policies", failure_policies, Needs::Nothing),
    ("failure-shell", failure_shell, Needs::Nothing),
    ("panic-hook-reboots", panic_hook, Needs::X86Only),
    ("failsafe-keeps-upper", failsafe, Needs::Nothing),
    ("full-data-partition", full_data, Needs::Nothing),
    ("blank-data-formatted-and-checked", blank_data, Needs::HostArch),
    ("fsck-repairs-and-budget", fsck_repairs_and_budget, Needs::HostArch),
    ("ab-trial-and-rollback", e2e_ab::trial_and_rollback, Needs::Nothing),
    ("ab-corrupt-slot-falls-back", e2e_ab::corrupt_slot_falls_back, Needs::Nothing),
    ("ab-hostile-data", e2e_ab::hostile_data, Needs::Nothing),
    ("ab-both-bad-tries-the-other", e2e_ab::both_bad_tries_the_other, Needs::Nothing),
    ("ab-factory-reset", e2e_ab::factory_reset, Needs::Nothing),
    ("ab-file-slots", e2e_ab::file_slots, Needs::Nothing),
    ("ab-install", e2e_ab::install, Needs::Nothing),
    ("ab-reconcile", e2e_ab::reconcile, Needs::Nothing),
    ("ab-watchdog-rollback", e2e_ab::watchdog, Needs::Watchdog),
    ("ab-full-data-new-slot", e2e_ab::full_data_new_slot, Needs::Nothing),
    ("ab-reset-after-unconfirmed-boots", e2e_ab::reset_cycles, Needs::Nothing),
    ("verity-signed-slots", crate::e2e_verity::signed_slots, Needs::Verity),
    ("verity-tampered-falls-back", crate::e2e_verity::tampered_falls_back, Needs::Verity),
    ("verity-runtime-corruption", crate::e2e_verity::runtime_corruption, Needs::Verity),
    ("verity-fec-repairs", crate::e2e_verity::fec_repairs, Needs::Verity),
    ("verity-hash-partition", crate::e2e_verity::hash_partition, Needs::Verity),
    ("debian-systemd", crate::e2e_debian::systemd, Needs::X86Only),
    ("debian-rauc", crate::e2e_debian::rauc, Needs::X86Only),
];

/// PARTLABEL= for both; a file written in boot 1 is there in boot 2 and lives in the upper;
/// init arguments pass, loader variables do not; the lower is byte-identical afterwards.
fn persist(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("persist")?;
    let b1 = ctx.boot(&disk, "LD_PRELOAD=/evil.so -- single", "persist-1")?;
    booted(&b1)?;
    want(&b1, "counter", "1")?;
    want(&b1, "args", "single")?;
    want(&b1, "ld_preload", "unset")?;
    want(&b1, "data-visible", "ext4")?;
    want(&b1, "lower-visible", "/dev/vda1")?;
    let report = b1.report().ok_or("no boot report")?;
    for key in
        ["\"stages\"", "\"name\": \"modules\"", "\"volatile\": null", "PARTLABEL=rootfs", "redirect_dir=nofollow"]
    {
        if !report.contains(key) {
            return Err(format!("boot report lacks {key}: {report}"));
        }
    }
    let b2 = ctx.boot(&disk, "", "persist-2")?;
    booted(&b2)?;
    want(&b2, "counter", "2")?;
    let stored = upper_file(&disk, "/var/lib/boot-counter")?;
    if stored != "2" {
        return Err(format!("upper holds counter {stored:?}, want 2"));
    }
    lower_unchanged(ctx, &disk)
}

/// PARTUUID= and LABEL= in one boot, /dev/NAME and UUID= in the next; same upper both times.
fn specs(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("specs")?;
    let b =
        ctx.boot(&disk, "root=PARTUUID=1b9e7c52-3f4a-4d6b-8c2e-5a7f9d0b1c3e oinit.data=LABEL=userdata", "specs-1")?;
    booted(&b)?;
    want(&b, "counter", "1")?;
    let b = ctx.boot(&disk, &format!("root=/dev/vda1 oinit.data=UUID={DATA_UUID}"), "specs-2")?;
    booted(&b)?;
    want(&b, "counter", "2")
}

fn lower_file(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("lowerfile")?;
    let b = ctx.boot(&disk, "root=PARTLABEL=userdata oinit.lowerfile=/images/rootfs.sqfs", "lowerfile")?;
    booted(&b)?;
    want(&b, "counter", "1")?;
    want(&b, "lower-visible", "/dev/loop0")?;
    contains(&b, "read-only loop device")
}

fn missing_data(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("nodata")?;
    let b = ctx.boot(&disk, "oinit.data=PARTLABEL=nothere oinit.timeout=2", "nodata")?;
    booted(&b)?;
    contains(&b, "VOLATILE ROOT")?;
    contains(&b, "PARTLABEL=nothere not found")?;
    want(&b, "data-visible", "")?;
    let report = b.report().ok_or("no boot report")?;
    if report.contains("\"volatile\": null") {
        return Err("the report does not say the boot was volatile".into());
    }
    Ok(())
}

fn bad_lower(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("badlower")?;
    let quick = "oinit.rebootdelay=1 oinit.timeout=2";
    let b = ctx.boot(&disk, &format!("root=PARTLABEL=nope {quick}"), "lower-missing")?;
    failed_with(&b, "PARTLABEL=nope not found after 2 s; saw: /dev/vda")?;
    let b = ctx.boot(
        &disk,
        &format!("root=PARTLABEL=userdata oinit.lowerfile=/images/gone.sqfs {quick}"),
        "lowerfile-missing",
    )?;
    failed_with(&b, "/images/gone.sqfs")?;
    let b = ctx.boot(&disk, &format!("root=PARTLABEL=userdata {quick}"), "lower-not-squashfs")?;
    failed_with(&b, "holds ext4, not a squashfs image")?;
    // Corrupt the squashfs superblock on disk, as a bad flash would.
    let p = image::part(&image::partitions(&disk)?, "rootfs")?;
    image::write_at(&disk, p.start, &[0x5a; 4096])?;
    let b = ctx.boot(&disk, quick, "lower-corrupt")?;
    failed_with(&b, "holds no known filesystem, not a squashfs image")?;
    contains(&b, "rebooting in 1 s")
}

fn bad_settings(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("badsettings")?;
    let b = ctx.boot(&disk, "oinit.timeout=soon oinit.data=UUID=xyz oinit.rebootdelay=1", "bad-settings")?;
    failed_with(&b, "oinit.timeout=\"soon\"")?;
    contains(&b, "oinit.data=\"UUID=xyz\"")
}

/// oinit.failsafe boots the image alone; the upper is untouched and back on the next boot.
fn failsafe(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("failsafe")?;
    booted(&ctx.boot(&disk, "", "failsafe-0")?)?;
    let b = ctx.boot(&disk, "oinit.failsafe", "failsafe-1")?;
    booted(&b)?;
    want(&b, "counter", "1")?;
    contains(&b, "failsafe boot")?;
    let b = ctx.boot(&disk, "", "failsafe-2")?;
    booted(&b)?;
    want(&b, "counter", "2")
}

/// A data partition filled to the last block still boots (upper and work exist already).
fn full_data(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("full")?;
    let b = ctx.boot(&disk, "oitest=fill", "full-1")?;
    booted(&b)?;
    want(&b, "filled", "0")?;
    let b = ctx.boot(&disk, "", "full-2")?;
    booted(&b)?;
    want(&b, "data-visible", "ext4")
}

/// A factory-blank data partition is formatted by mkfs.ext4 from the initramfs, and e2fsck -p
/// checks it on the next boot. Uses the host's tools (same architecture), so x86_64 only.
fn blank_data(ctx: &Ctx<'_>) -> Result<(), String> {
    let tools = [("/sbin/mkfs.ext4", "/sbin/mke2fs"), ("/sbin/e2fsck.static", "/sbin/e2fsck.static")];
    let initrd = image::initramfs_with_tools(ctx.root, ctx.board, "initramfs-tools", &tools)?;
    let disk = ctx.fresh_disk("blank")?;
    let p = image::part(&image::partitions(&disk)?, "userdata")?;
    image::write_at(&disk, p.start, &vec![0u8; p.size as usize])?;
    let opts = "oinit.mkfs=1 oinit.fsck=1";
    let b = ctx.boot_with(&initrd, &disk, opts, "blank-1")?;
    booted(&b)?;
    contains(&b, "formatting blank data partition /dev/vda2")?;
    want(&b, "data-visible", "ext4")?;
    want(&b, "counter", "1")?;
    let b = ctx.boot_with(&initrd, &disk, opts, "blank-2")?;
    booted(&b)?;
    contains(&b, "check /dev/vda2 with e2fsck -p")?;
    want(&b, "counter", "2")?;
    let stored = upper_file(&disk, "/var/lib/boot-counter")?;
    if stored != "2" {
        return Err(format!("upper holds counter {stored:?}, want 2"));
    }
    Ok(())
}

/// The failure policy runs for real: a missing init reboots after the delay with the FATAL line
/// naming what was tried; `oinit.failure=poweroff` powers off and `halt` halts (QEMU is cut
/// once the kernel says so), each without a kernel panic.
fn failure_policies(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("policies")?;
    let b = ctx.boot(&disk, "init=/sbin/nothere oinit.rebootdelay=1", "policy-no-init")?;
    failed_with(&b, "no executable init in the new root /newroot (tried /sbin/nothere)")?;
    contains(&b, "rebooting in 1 s")?;
    let bad = "root=PARTLABEL=nope oinit.timeout=1";
    let b = ctx.boot(&disk, &format!("{bad} oinit.failure=poweroff"), "policy-poweroff")?;
    failed_with(&b, "PARTLABEL=nope not found")?;
    contains(&b, "powering off in 0 s")?;
    contains(&b, "reboot: Power down")?;
    let b = ctx.boot_cut(
        &disk,
        &format!("{bad} oinit.failure=halt"),
        "policy-halt",
        "halting in 0 s",
        Duration::from_secs(5),
    )?;
    if b.panicked {
        return Err("kernel panic instead of a halt".into());
    }
    failed_with(&b, "PARTLABEL=nope not found")?;
    contains(&b, "reboot: System halted")
}

/// `oinit.failure=shell`, allowed by the board config only: the rescue program the config names
/// runs on the console after the FATAL line, and the device reboots when it exits.
fn failure_shell(ctx: &Ctx<'_>) -> Result<(), String> {
    let conf = ctx.work.join("shell.conf");
    let board_conf = std::fs::read_to_string(ctx.board.dir.join("overlay-init.conf")).map_err(|e| e.to_string())?;
    std::fs::write(&conf, format!("{board_conf}\noinit.allowshell=1\noinit.shell=/bin/rescue\n"))
        .map_err(|e| e.to_string())?;
    let rescue = ctx.work.join("rescue");
    std::fs::write(&rescue, "#!/bin/sh\necho OI: rescue=ran\n").map_err(|e| e.to_string())?;
    let busybox = ctx.board.kernel_dir.join("busybox");
    let (c, r, bb) = (conf.display().to_string(), rescue.display().to_string(), busybox.display().to_string());
    // A second /etc/overlay-init.conf later in the archive replaces the board's when the kernel
    // unpacks it.
    let files = [("/etc/overlay-init.conf", c.as_str()), ("/bin/rescue", r.as_str()), ("/bin/sh", bb.as_str())];
    let initrd = image::initramfs_with_tools(ctx.root, ctx.board, "initramfs-shell", &files)?;
    let disk = ctx.fresh_disk("shell")?;
    let b = ctx.boot_with(&initrd, &disk, "root=PARTLABEL=nope oinit.timeout=1 oinit.failure=shell", "policy-shell")?;
    failed_with(&b, "PARTLABEL=nope not found")?;
    contains(&b, "starting the rescue shell /bin/rescue")?;
    want(&b, "rescue", "ran")?;
    contains(&b, "rebooting in 0 s")
}

/// A panic in PID 1 (a test build's `oinit.testpanic`) is logged by the panic hook and the
/// device reboots, instead of the kernel panicking on a dead init.
fn panic_hook(ctx: &Ctx<'_>) -> Result<(), String> {
    let target_dir = ctx.root.join("target/panic-test");
    sh::run(
        sh::cmd("cargo")
            .args(["build", "--release", "--quiet", "-p", "overlay-init", "--features", "panic-test", "--target"])
            .arg(&ctx.board.rust_target)
            .arg("--target-dir")
            .arg(&target_dir)
            .current_dir(ctx.root),
    )?;
    let init = target_dir.join(&ctx.board.rust_target).join("release/overlay-init").display().to_string();
    // A second /init later in the archive replaces the product's when the kernel unpacks it.
    let initrd = image::initramfs_with_tools(ctx.root, ctx.board, "initramfs-panic", &[("/init", init.as_str())])?;
    let disk = ctx.fresh_disk("panic")?;
    let b = ctx.boot_with(&initrd, &disk, "oinit.testpanic", "panic-hook")?;
    contains(&b, "FATAL: overlay-init panicked")?;
    contains(&b, "This is a bug; please report it with the boot log")?;
    contains(&b, "rebooting in 5 s")?;
    if b.console.contains("OI: pid=") {
        return Err("the real init ran after the panic".into());
    }
    Ok(())
}

/// e2fsck really runs: a link count broken on the host is repaired at the next boot (exit 1 in
/// the boot report, the counter goes on); an e2fsck that outlives `oinit.fscktimeout` is killed
/// and the data-missing policy applies (a volatile boot that says why).
fn fsck_repairs_and_budget(ctx: &Ctx<'_>) -> Result<(), String> {
    let tools = [("/sbin/e2fsck.static", "/sbin/e2fsck.static")];
    let initrd = image::initramfs_with_tools(ctx.root, ctx.board, "initramfs-fsck", &tools)?;
    let disk = ctx.fresh_disk("fsck")?;
    let b = ctx.boot_with(&initrd, &disk, "oinit.fsck=1", "fsck-1")?;
    booted(&b)?;
    want_report(&b, "\"fsck_exit\": 0")?;
    // A wrong link count, and the superblock marked not clean so that `e2fsck -p` looks.
    debugfs_write(
        &disk,
        "userdata",
        &["set_inode_field /overlay/upper/var/lib/boot-counter links_count 7", "ssv state 0"],
    )?;
    let b = ctx.boot_with(&initrd, &disk, "oinit.fsck=1", "fsck-2")?;
    booted(&b)?;
    contains(&b, "errors corrected (exit 1)")?;
    want_report(&b, "\"fsck_exit\": 1")?;
    want(&b, "counter", "2")?;
    // An e2fsck that hangs: a script run by the guest's busybox that never ends.
    let script = ctx.work.join("slow-e2fsck");
    std::fs::write(&script, "#!/bin/sh\nsleep 600\n").map_err(|e| e.to_string())?;
    let busybox = ctx.board.kernel_dir.join("busybox");
    let (script_s, busybox_s) = (script.display().to_string(), busybox.display().to_string());
    let slow =
        [("/sbin/e2fsck", script_s.as_str()), ("/bin/sh", busybox_s.as_str()), ("/bin/sleep", busybox_s.as_str())];
    let initrd = image::initramfs_with_tools(ctx.root, ctx.board, "initramfs-slowfsck", &slow)?;
    let b = ctx.boot_with(&initrd, &disk, "oinit.fsck=1 oinit.fscktimeout=3", "fsck-3")?;
    booted(&b)?;
    contains(&b, "killed after its 3 s budget")?;
    contains(&b, "VOLATILE ROOT")
}

fn want_report(b: &Boot, text: &str) -> Result<(), String> {
    match b.report() {
        Some(r) if r.contains(text) => Ok(()),
        r => Err(format!("boot report lacks {text}: {r:?}")),
    }
}

/// Runs `debugfs -w` requests on the ext4 of partition `part`, in place.
fn debugfs_write(disk: &Path, part: &str, requests: &[&str]) -> Result<(), String> {
    let p = image::part(&image::partitions(disk)?, part)?;
    let img = disk.with_extension("debugfs");
    let cmds = disk.with_extension("debugfs-cmds");
    std::fs::write(&img, image::read_at(disk, p.start, p.size)?).map_err(|e| e.to_string())?;
    std::fs::write(&cmds, requests.join("\n") + "\n").map_err(|e| e.to_string())?;
    sh::output(sh::cmd("debugfs").arg("-w").arg("-f").arg(&cmds).arg(&img))?;
    let bytes = std::fs::read(&img).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&img);
    image::write_at(disk, p.start, &bytes)
}

/// The scenarios for a board: the qemu-* boards share one layout; others bring their own.
fn scenarios(b: &Board) -> &'static [Scenario] {
    match b.name.as_str() {
        "openwrt" => &crate::e2e_openwrt::SCENARIOS,
        _ => &SCENARIOS,
    }
}

pub fn main(root: &Path, args: &[String]) -> Result<(), String> {
    let default = crate::QEMU_BOARDS.map(String::from);
    let boards = if args.is_empty() { &default[..] } else { args };
    let only = std::env::var("OI_SCENARIO").ok();
    let mut failures = Vec::new();
    let mut passed = 0;
    for name in boards {
        let board = Board::load(root, name)?;
        let ctx = Ctx::build(root, &board)?;
        for (sname, f, needs) in
            scenarios(&board).iter().filter(|(n, _, _)| only.as_deref().is_none_or(|o| n.contains(o)))
        {
            if let Some(why) = needs.unmet(&board) {
                println!("SKIP {name} {sname}: {why}");
                continue;
            }
            let t = std::time::Instant::now();
            match f(&ctx) {
                Ok(()) => {
                    passed += 1;
                    println!("PASS {name} {sname} ({:.0} s)", t.elapsed().as_secs_f64());
                }
                Err(e) => {
                    println!("FAIL {name} {sname}: {e}");
                    failures.push(format!("{name} {sname}"));
                }
            }
        }
    }
    if only.is_none() || only.as_deref() == Some("powercut") {
        // The power-cut points use the qemu-* layout (two slots and a data partition).
        for name in boards.iter().filter(|n| n.starts_with("qemu-")) {
            let board = Board::load(root, name)?;
            let ctx = Ctx::build(root, &board)?;
            // A sample: one cut point per kind; `cargo xtask powercut N` runs more.
            let (tried, mut failed) = crate::powercut::run(&ctx, 1);
            println!("power cuts on {name}: {tried} tried, {} passed", tried - failed.len() as u64);
            // And two flush points per kind from a recorded write log.
            let (rt, rf) = crate::powercut::replay(&ctx, 2);
            println!("write-log replays on {name}: {rt} tried, {} passed", rt - rf.len() as u64);
            failed.extend(rf);
            // And a disk whose writes start failing in the middle of a factory reset.
            let (ft, ff) = crate::powercut::failing_disk(&ctx, 1);
            println!("failing-disk points on {name}: {ft} tried, {} passed", ft - ff.len() as u64);
            failed.extend(ff);
            for f in &failed {
                println!("FAIL {f}");
                failures.push(f.clone());
            }
        }
    }
    println!("e2e: {passed} passed, {} failed", failures.len());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("failed: {}", failures.join(", ")))
    }
}

/// The README's demo: boot the board twice and show the counter kept on the overlay.
pub fn demo(root: &Path, board: &Board) -> Result<(), String> {
    let ctx = Ctx::build(root, board)?;
    let disk = ctx.fresh_disk("demo")?;
    for n in 1..=2 {
        let b = ctx.boot(&disk, "", &format!("demo-{n}"))?;
        for line in b.console.lines().filter(|l| l.contains("overlay-init") || l.contains("OI: ")) {
            println!("{}", line.trim_end());
        }
        booted(&b)?;
        println!(
            "== boot {n} of {}: the counter in /var/lib/boot-counter is {} ==",
            board.name,
            b.marker("counter").unwrap_or_default()
        );
    }
    Ok(())
}
