//! End-to-end tests: real Debian kernels boot the project's initramfs in QEMU (TCG) and the
//! console and the disk afterwards are checked for what a user would check.

pub mod ab;
pub mod debian;
pub mod erofs;
pub mod harness;
pub mod imx6;
pub mod imx8;
pub mod imx_uboot;
pub mod kexec;
pub mod nand;
pub mod nor;
pub mod openwrt;
pub mod powercut;
pub mod procd;
pub mod qemu;
pub mod rauc_uboot;
pub mod uboot;
pub mod uboot_imx8;
pub mod verity;

use crate::board::Board;
use crate::board::DATA_UUID;
use crate::e2e::harness::{
    booted, contains, debugfs_write, ext4_header, failed_with, needs_recovery, upper_file, want, Ctx, Needs, Scenario,
};
use crate::e2e::qemu::Boot;
use crate::image;
use crate::sh;
use std::path::Path;
use std::time::Duration;

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

/// The boot path alone (`--no-default-features`: no std, no userspace commands), the init a
/// Yocto build without its `cli` PACKAGECONFIG packs: it boots and keeps the upper, returns at
/// poweroff as the shutdown program (a copy of itself) and leaves the data partition clean, and
/// a boot whose lower is missing fails naming it.
fn boot_path_alone(ctx: &Ctx<'_>) -> Result<(), String> {
    let init = image::build_init_only(ctx.root, ctx.board)?;
    let initrd = image::initramfs_of(ctx.root, ctx.board, "initramfs-boot-only", &init, &[], &[])?;
    let disk = ctx.fresh_disk("boot-only")?;
    let b = ctx.boot_with(&initrd, &disk, "", "boot-only-1")?;
    booted(&b)?;
    want(&b, "counter", "1")?;
    want(&b, "data-visible", "ext4")?;
    contains(&b, "left read-only; poweroff")?;
    if needs_recovery(&ext4_header(&disk, "userdata", 0)?) {
        return Err("the boot path alone left the data partition needing journal recovery at poweroff".into());
    }
    let report = b.report().ok_or("no boot report")?;
    if !report.contains("\"name\": \"modules+devices\"") {
        return Err(format!("the boot report lacks its stages: {report}"));
    }
    let b = ctx.boot_with(&initrd, &disk, "", "boot-only-2")?;
    booted(&b)?;
    want(&b, "counter", "2")?;
    let b =
        ctx.boot_with(&initrd, &disk, "root=PARTLABEL=nope oinit.timeout=2 oinit.rebootdelay=1", "boot-only-missing")?;
    failed_with(&b, "PARTLABEL=nope not found after 2 s; saw: /dev/vda")?;
    contains(&b, "rebooting in 1 s")
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

const SCENARIOS: [Scenario; 48] = [
    ("persist-across-boots", persist, Needs::Nothing),
    ("clean-shutdown", clean_shutdown, Needs::Nothing),
    ("boot-path-alone", boot_path_alone, Needs::BootPathAlone),
    ("device-spec-forms", specs, Needs::Nothing),
    ("lower-image-file", lower_file, Needs::Nothing),
    ("missing-data-is-volatile", missing_data, Needs::Nothing),
    ("lower-missing-or-corrupt", bad_lower, Needs::Nothing),
    ("bad-settings-named", bad_settings, Needs::Nothing),
    ("quiet-console-keeps-warnings", quiet_console, Needs::Nothing),
    ("failure-policies", failure_policies, Needs::Nothing),
    ("failure-shell", failure_shell, Needs::Nothing),
    ("panic-hook-reboots", panic_hook, Needs::X86Only),
    ("failsafe-keeps-upper", failsafe, Needs::Nothing),
    ("full-data-partition", full_data, Needs::Nothing),
    ("blank-data-formatted-and-checked", blank_data, Needs::HostArch),
    ("fsck-repairs-and-budget", fsck_repairs_and_budget, Needs::HostArch),
    ("ab-trial-and-rollback", ab::trial_and_rollback, Needs::Nothing),
    ("ab-corrupt-slot-falls-back", ab::corrupt_slot_falls_back, Needs::Nothing),
    ("ab-hostile-data", ab::hostile_data, Needs::Nothing),
    ("ab-both-bad-tries-the-other", ab::both_bad_tries_the_other, Needs::Nothing),
    ("ab-factory-reset", ab::factory_reset, Needs::Nothing),
    ("ab-file-slots", ab::file_slots, Needs::Nothing),
    ("ab-install", ab::install, Needs::Nothing),
    ("ab-reconcile", ab::reconcile, Needs::Nothing),
    ("ab-watchdog-rollback", ab::watchdog, Needs::Watchdog),
    ("ab-full-data-new-slot", ab::full_data_new_slot, Needs::Nothing),
    ("ab-reset-after-unconfirmed-boots", ab::reset_cycles, Needs::Nothing),
    ("ab-mark-good-beside-deletion", ab::mark_good_beside_deletion, Needs::X86Only),
    ("verity-signed-slots", crate::e2e::verity::signed_slots, Needs::Verity),
    ("verity-tampered-falls-back", crate::e2e::verity::tampered_falls_back, Needs::Verity),
    ("verity-runtime-corruption", crate::e2e::verity::runtime_corruption, Needs::Verity),
    ("verity-fec-repairs", crate::e2e::verity::fec_repairs, Needs::Verity),
    ("verity-hash-partition", crate::e2e::verity::hash_partition, Needs::Verity),
    ("verity-anti-rollback", crate::e2e::verity::anti_rollback, Needs::Verity),
    ("erofs-slots", crate::e2e::erofs::erofs_slots, Needs::Erofs),
    ("debian-systemd", crate::e2e::debian::systemd, Needs::X86Only),
    ("debian-rauc", crate::e2e::debian::rauc, Needs::X86Only),
    ("debian-rauc-uboot", crate::e2e::rauc_uboot::rauc, Needs::X86Only),
    ("kexec-slot-kernels", crate::e2e::kexec::slot_kernels, Needs::Kexec),
    ("kexec-refused-falls-back", crate::e2e::kexec::refused_falls_back, Needs::Kexec),
    // One architecture proves that the kernel file is read through dm-verity.
    ("kexec-verified-kernel", crate::e2e::kexec::verified_kernel, Needs::Kexec64),
    ("kexec-install-power-cut", crate::e2e::kexec::install_power_cut, Needs::Kexec64),
    ("uboot-env-both-ways", crate::e2e::uboot::env_both_ways, Needs::UBoot),
    ("uboot-boot-count", crate::e2e::uboot::boot_count, Needs::UBoot),
    ("uboot-whole-system", crate::e2e::uboot::whole_system, Needs::UBoot),
    ("uboot-power-cut", crate::e2e::uboot::power_cut, Needs::UBoot),
    ("uboot-install", crate::e2e::uboot::install, Needs::UBoot),
    ("uboot-imx8-board-script", crate::e2e::uboot_imx8::board_script, Needs::UBootArm64),
];

/// PARTLABEL= for both; a file written in boot 1 is there in boot 2 and lives in the upper;
/// init arguments pass, loader variables do not; the lower is byte-identical afterwards.
fn persist(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("persist")?;
    // A module parameter the modprobe way: the init hands it to finit_module with its module.
    let b1 = ctx.boot(&disk, "LD_PRELOAD=/evil.so -- single", "persist-1")?;
    booted(&b1)?;
    // The kernel this run chose (`--kernel`), not whichever the image happened to hold.
    want(&b1, "kernel", &ctx.board.kernel_version)?;
    want(&b1, "counter", "1")?;
    // Nothing in this boot attaches a loop device, so loop stays out of the boot.
    want(&b1, "loop-max-part", "")?;
    want(&b1, "args", "single")?;
    want(&b1, "ld_preload", "unset")?;
    want(&b1, "data-visible", "ext4")?;
    want(&b1, "lower-visible", "/dev/vda1")?;
    let report = b1.report().ok_or("no boot report")?;
    for key in [
        "\"stages\"",
        "\"name\": \"modules+devices\"",
        "\"volatile\": null",
        "PARTLABEL=rootfs",
        "redirect_dir=nofollow",
    ] {
        if !report.contains(key) {
            return Err(format!("boot report lacks {key}: {report}"));
        }
    }
    // No module is tried that the CPU cannot run: QEMU's TCG CPUs lack SSE4.2 (crc32c_intel)
    // and ARMv8's CRC32 (crc32_arm_ce), whose inits fail with ENODEV after a full load.
    let modules = report.split("\"modules\": [").nth(1).and_then(|r| r.split(']').next()).unwrap_or_default();
    if modules.is_empty() || modules.contains("failed") {
        return Err(format!("the report's modules are missing or one failed: {modules}"));
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

/// The boards' own command line (`quiet`, without the `oinit.showinfo` the other scenarios add):
/// the console shows the init's warnings, its info lines are in the kernel log only, and the
/// shutdown program follows the same rule.
fn quiet_console(ctx: &Ctx<'_>) -> Result<(), String> {
    let quiet = Ctx { show_info: false, ..ctx.clone() };
    let disk = quiet.fresh_disk("quiet")?;
    let b = quiet.boot(&disk, "oitest=dmesg oinit.nosuchkey=1", "quiet")?;
    booted(&b)?;
    let (dmesg, console): (Vec<&str>, Vec<&str>) = b.console.lines().partition(|l| l.contains("OI-DMESG: "));
    let has = |lines: &[&str], text: &str| lines.iter().any(|l| l.contains(text));
    for info in ["overlay-init: stage early done", "overlay-init: exec /sbin/init"] {
        if has(&console, info) {
            return Err(format!("under quiet the console shows the info line {info:?}"));
        }
        if !has(&dmesg, info) {
            return Err(format!("the kernel log lacks the info line {info:?}"));
        }
    }
    if has(&console, "overlay-init: shutdown: ") {
        return Err("under quiet the shutdown program printed its info line on the console".into());
    }
    if !console.iter().any(|l| l.starts_with("overlay-init: WARNING: unknown setting oinit.nosuchkey")) {
        return Err("the console lacks the warning about oinit.nosuchkey".into());
    }
    Ok(())
}

fn lower_file(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("lowerfile")?;
    // The image file makes the boot load loop; a module parameter reaches it the modprobe way.
    let append = "root=PARTLABEL=userdata oinit.lowerfile=/images/rootfs.sqfs loop.max_part=7";
    let b = ctx.boot(&disk, append, "lowerfile")?;
    booted(&b)?;
    want(&b, "loop-max-part", "7")?;
    contains(&b, "loop (max_part=7) loaded in")?;
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
    failed_with(&b, "holds ext4, not a squashfs or EROFS image")?;
    // Corrupt the squashfs superblock on disk, as a bad flash would.
    let p = image::part(&image::partitions(&disk)?, "rootfs")?;
    image::write_at(&disk, p.start, &[0x5a; 4096])?;
    let b = ctx.boot(&disk, quick, "lower-corrupt")?;
    failed_with(&b, "holds no known filesystem, not a squashfs or EROFS image")?;
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
    let init = target_dir.join(&ctx.board.rust_target).join("release/overlay-init");
    let initrd = image::initramfs_of(ctx.root, ctx.board, "initramfs-panic", &init, &[], &[])?;
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

/// The imx8 board on QEMU's i.MX 8M Plus EVK: its own first boot, then the A/B, reset, watchdog
/// and verity scenarios of the qemu-* boards on the board's own slots (`rootfs_a`, `rootfs_b`).
const IMX8: [Scenario; 8] = [
    ("imx8-evk-emmc-four-cores", crate::e2e::imx8::emmc_on_four_cores, Needs::Nothing),
    ("imx8-evk-no-usdhc-driver", crate::e2e::imx8::no_usdhc_driver, Needs::Nothing),
    ("imx8-evk-ab-trial-and-rollback", ab::trial_and_rollback, Needs::Nothing),
    ("imx8-evk-factory-reset", ab::factory_reset, Needs::Nothing),
    ("imx8-evk-watchdog-rollback", ab::watchdog, Needs::Watchdog),
    ("imx8-evk-verity-signed-slots", crate::e2e::verity::signed_slots, Needs::Verity),
    ("imx8-evk-verity-tampered-falls-back", crate::e2e::verity::tampered_falls_back, Needs::Verity),
    ("imx8-uboot-ab-settings-boot-slot-b", crate::e2e::imx_uboot::slot_b_as_uboot_names_it, Needs::Nothing),
];

/// The scenarios for a board: the qemu-* boards share one layout; others bring their own.
fn scenarios(b: &Board) -> &'static [Scenario] {
    match b.name.as_str() {
        "openwrt" => &crate::e2e::openwrt::SCENARIOS,
        "imx6" => &crate::e2e::imx6::SCENARIOS,
        "imx8" => &IMX8,
        "openwrt-nor" => &crate::e2e::nor::SCENARIOS,
        "openwrt-nand" => &crate::e2e::nand::SCENARIOS,
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
        for (sname, f, needs) in scenarios(&board)
            .iter()
            .filter(|(n, _, _)| only.as_deref().is_none_or(|o| o.split(',').any(|o| n.contains(o))))
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
        // The power-cut kinds of the boards that have them (the qemu-* layout, UBI on NAND).
        for name in boards {
            let board = Board::load(root, name)?;
            if !crate::e2e::powercut::applies(&board) {
                continue;
            }
            let ctx = Ctx::build(root, &board)?;
            // A sample: one cut point per kind, one flush point and one point between flushes per
            // kind from a recorded write log, and one disk whose writes start failing; `cargo
            // xtask powercut N` runs more.
            let (_, failed) = crate::e2e::powercut::campaign(&ctx, 1, 1);
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
