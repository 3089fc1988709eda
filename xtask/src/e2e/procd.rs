//! OpenWRT's own userspace on the flash boards: procd (with its preinit `init`), ubusd, logd,
//! uci and fstools' `mount_root`, built from ../shared/openwrt/ by tests/openwrt/build.sh, in a
//! test image whose base-files part (preinit, the boot, done and test init scripts) is
//! tests/openwrt/rootfs/. The initramfs is the board's own. docs/openwrt.md has the findings.

use crate::e2e::harness::{contains, want, Ctx, Needs, Scenario};
use crate::e2e::qemu::Boot;
use crate::image;
use crate::sh;
use std::path::{Path, PathBuf};

pub const NOR: Scenario = ("openwrt-nor-procd", nor, Needs::Nothing);
pub const NAND: Scenario = ("openwrt-nand-procd", nand, Needs::Nothing);

/// OpenWRT's `firstboot` keeps nothing of sysupgrade.conf (where the test lists /etc/config/ for
/// sysupgrade).
const OPENWRT: &str = "oinit.resetkeepfile=0";

/// A boot of the OpenWRT image that reached procd's services and powered off through procd.
fn procd_boot(ctx: &Ctx<'_>, disk: &Path, append: &str, log: &str) -> Result<Boot, String> {
    let b = ctx.boot(disk, &format!("{OPENWRT} {append}"), log)?;
    want(&b, "pid1", "procd")?;
    contains(&b, "OI: done")?;
    Ok(b)
}

/// OpenWRT's userspace built once (tests/openwrt/build.sh caches it in target/openwrt/).
fn userspace(root: &Path) -> Result<PathBuf, String> {
    sh::run(sh::cmd("bash").arg(root.join("tests/openwrt/build.sh")))?;
    Ok(root.join("target/openwrt/root"))
}

/// Image `variant` (a or b) of the OpenWRT test system: the usual test tree (busybox,
/// overlay-init, `firstboot`) with OpenWRT's programs and tests/openwrt/rootfs/ over it, procd's
/// `init` as /sbin/init and /var laid out as OpenWRT's (run, lock and state in /tmp).
fn procd_image(ctx: &Ctx<'_>, variant: &str) -> Result<PathBuf, String> {
    let (root, b) = (ctx.root, ctx.board);
    let owrt = userspace(root)?;
    let name = format!("procd-rootfs-{variant}");
    let dir = image::rootfs_tree(root, b, variant, &name, &[])?;
    // Our reset under fstools' names (base-files' `firstboot` calls jffs2reset): fstools' own
    // factoryreset would erase the mounted data file by file under the running overlay.
    std::fs::rename(dir.join("sbin/firstboot"), dir.join("sbin/factoryreset")).map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink("factoryreset", dir.join("sbin/jffs2reset")).map_err(|e| e.to_string())?;
    for from in [owrt, root.join("tests/openwrt/rootfs")] {
        sh::run(sh::cmd("cp").arg("-a").arg(format!("{}/.", from.display())).arg(&dir))?;
    }
    for (link, to) in [("var/run", "/tmp/run"), ("var/lock", "/tmp/lock"), ("var/state", "/tmp/state")] {
        std::os::unix::fs::symlink(to, dir.join(link)).map_err(|e| format!("{link}: {e}"))?;
    }
    image::squash(&dir, variant, &b.out_dir(root).join(format!("{name}.sqfs")))
}

/// The board's flash image with the OpenWRT test system in it (both slots on NAND), and the
/// two images.
fn procd_flash(ctx: &Ctx<'_>) -> Result<(PathBuf, [PathBuf; 2]), String> {
    let sqfs = [procd_image(ctx, "a")?, procd_image(ctx, "b")?];
    let disk = ctx.work.join("procd-pristine.img");
    image::disk::build_with(ctx.root, ctx.board, &sqfs, &disk)?;
    Ok((disk, sqfs))
}

/// On NOR: the common scenario, then a sysupgrade (image b written over the squashfs, as
/// sysupgrade does on NOR) that keeps /etc/config through sysupgrade.conf and nothing else.
fn nor(ctx: &Ctx<'_>) -> Result<(), String> {
    let (disk, sqfs) = procd_flash(ctx)?;
    common(ctx, &disk, "nor")?;
    let b = procd_boot(ctx, &disk, "oitest=uci-set", "procd-nor-upgrade-1")?;
    want(&b, "hostname", "OpenWrt")?;
    let firmware: u64 =
        ctx.board.layout.partitions.iter().take_while(|p| p.name != "firmware").map(|p| p.size.unwrap_or(0)).sum();
    let erase = ctx.board.layout.pebsize().ok_or("genimage.cfg has no flash pebsize")?;
    let (a, new) = (read(&sqfs[0])?, read(&sqfs[1])?);
    if (a.len() as u64).div_ceil(erase) != (new.len() as u64).div_ceil(erase) {
        return Err("images a and b end in different erase blocks: rootfs_data would move".into());
    }
    image::write_at(&disk, firmware, &new)?;
    let b = procd_boot(ctx, &disk, "", "procd-nor-upgrade-2")?;
    want(&b, "image", "b")?;
    want(&b, "rom", "b")?;
    want(&b, "counter", "1")?;
    want(&b, "hostname", "oitest-changed")
}

/// On NAND (A/B on UBI volumes, UBIFS rootfs_data): the common scenario, then a sysupgrade as
/// A/B does it: image b installed into the other slot by `overlay-init install`; with
/// `oinit.carry=keeplist` (sysupgrade's semantics: the keep-list, not the whole upper) the next
/// boot is image b with /etc/config kept and nothing else.
fn nand(ctx: &Ctx<'_>) -> Result<(), String> {
    let (disk, _) = procd_flash(ctx)?;
    common(ctx, &disk, "nand")?;
    let b = procd_boot(ctx, &disk, "oitest=uci-set,upgrade-other", "procd-nand-upgrade-1")?;
    want(&b, "slot", "a")?;
    want(&b, "install-exit", "0")?;
    let b = procd_boot(ctx, &disk, "oinit.carry=keeplist", "procd-nand-upgrade-2")?;
    want(&b, "slot", "b")?;
    want(&b, "image", "b")?;
    want(&b, "counter", "1")?;
    want(&b, "hostname", "oitest-changed")
}

fn read(p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// procd boots to its services on our overlay: preinit skipped mount_root (INITRAMFS=1), one
/// overlay on /, /rom the image and /overlay on the data, logd running under procd; a `uci
/// commit` survives a reboot; preinit running mount_root anyway changes nothing; failsafe= gives
/// OpenWRT's failsafe on a tmpfs upper with the data untouched; `firstboot -y && reboot` goes
/// through our reset and the next boot starts from the image's configuration.
fn common(ctx: &Ctx<'_>, disk: &Path, tag: &str) -> Result<(), String> {
    let fs = if tag == "nor" { "jffs2" } else { "ubifs" };
    let b = procd_boot(ctx, disk, "oitest=uci-set", &format!("procd-{tag}-1"))?;
    want(&b, "preinit-initramfs", "1")?;
    want(&b, "root-overlays", "1")?;
    want(&b, "rom", "a")?;
    want(&b, "overlay-fs", fs)?;
    want(&b, "logd-running", "yes")?;
    want(&b, "logread", "1")?;
    want(&b, "hostname", "OpenWrt")?;
    want(&b, "uci-commit-exit", "0")?;
    let b = procd_boot(ctx, disk, "", &format!("procd-{tag}-2"))?;
    want(&b, "counter", "2")?;
    want(&b, "hostname", "oitest-changed")?;
    // An image whose preinit runs mount_root although the root is assembled: fstools finds
    // rootfs_data mounted and refuses; the root and the user's configuration stay.
    let b = procd_boot(ctx, disk, "oitest=preinit-mount-root", &format!("procd-{tag}-mount-root"))?;
    contains(&b, "is already mounted as /run/overlay-init/data")?;
    want(&b, "root-overlays", "1")?;
    want(&b, "counter", "3")?;
    want(&b, "hostname", "oitest-changed")?;
    // OpenWRT's failsafe (what a bootloader's reset button puts on the command line).
    let b = ctx.boot(disk, &format!("{OPENWRT} failsafe=1"), &format!("procd-{tag}-failsafe"))?;
    want(&b, "failsafe", "yes")?;
    want(&b, "failsafe-upper", "/run/overlay-init/volatile/upper")?;
    want(&b, "failsafe-hostname", "OpenWrt")?;
    want(&b, "failsafe-counter", "")?;
    let b = procd_boot(ctx, disk, "", &format!("procd-{tag}-after-failsafe"))?;
    want(&b, "counter", "4")?;
    want(&b, "hostname", "oitest-changed")?;
    // `firstboot -y && reboot`, as OpenWRT's documentation has it.
    let b = ctx.boot(disk, &format!("{OPENWRT} oitest=firstboot"), &format!("procd-{tag}-firstboot"))?;
    contains(&b, "OI: firstboot")?;
    contains(&b, "reboot: Restarting system")?;
    let b = procd_boot(ctx, disk, "", &format!("procd-{tag}-after-reset"))?;
    contains(&b, "FACTORY RESET (requested by 'overlay-init factory-reset')")?;
    want(&b, "counter", "1")?;
    want(&b, "hostname", "OpenWrt")
}
