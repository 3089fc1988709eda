//! End-to-end tests of the OpenWRT-style board: the data area appended to the squashfs partition
//! and formatted on first boot, `firstboot`, and a sysupgrade that keeps what
//! /etc/sysupgrade.conf lists.

use crate::e2e::harness::{booted, contains, ext4_header, file_in, needs_recovery, want, Ctx, Needs, Scenario};
use crate::e2e::qemu::Boot;
use crate::image;
use std::path::Path;

pub const SCENARIOS: [Scenario; 3] = [
    ("openwrt-appended-data", appended_data, Needs::Nothing),
    ("openwrt-firstboot-reset", firstboot, Needs::Nothing),
    ("openwrt-sysupgrade-keeps-list", sysupgrade, Needs::Nothing),
];

fn boot(ctx: &Ctx<'_>, disk: &Path, append: &str, log: &str) -> Result<Boot, String> {
    let b = ctx.boot(disk, append, log)?;
    booted(&b)?;
    Ok(b)
}

/// Where the data area starts in the rootfs partition: the image's bytes_used (its file length,
/// as mksquashfs pads to 4 KiB) rounded up to 64 KiB.
fn data_offset(ctx: &Ctx<'_>) -> Result<u64, String> {
    let sb = std::fs::read(&ctx.sqfs).map_err(|e| e.to_string())?;
    let used = u64::from_le_bytes(sb[40..48].try_into().map_err(|_| "short squashfs")?);
    Ok(used.div_ceil(65536) * 65536)
}

/// First boot formats the area after the squashfs; the second finds the counter there; the
/// squashfs itself is untouched.
fn appended_data(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("appended")?;
    let b = boot(ctx, &disk, "", "appended-1")?;
    contains(&b, "formatting blank data partition /dev/rootfs_data")?;
    contains(&b, &format!("attach /dev/vda2 from byte {}", data_offset(ctx)?))?;
    want(&b, "data-visible", "ext4")?;
    want(&b, "counter", "1")?;
    // OpenWRT's /rom and /overlay (oinit.openwrt=1): the image, and upper and work on the data.
    want(&b, "rom", "a")?;
    want(&b, "overlay-counter", "1")?;
    want(&b, "overlay-fs", "ext4")?;
    let b = boot(ctx, &disk, "", "appended-2")?;
    want(&b, "counter", "2")?;
    want(&b, "overlay-counter", "2")?;
    if b.console.contains("formatting") {
        return Err("the data area was formatted again on the second boot".into());
    }
    let stored = file_in(&disk, "rootfs", data_offset(ctx)?, "/overlay/a/upper/var/lib/boot-counter")?;
    if stored != "2" {
        return Err(format!("the appended area holds counter {stored:?}, want 2"));
    }
    // The poweroff went through /run/initramfs/shutdown: the area on its loop device is clean.
    if needs_recovery(&ext4_header(&disk, "rootfs", data_offset(ctx)?)?) {
        return Err("the appended data area needs journal recovery after a clean poweroff".into());
    }
    let p = image::part(&image::partitions(&disk)?, "rootfs")?;
    let sqfs = std::fs::read(&ctx.sqfs).map_err(|e| e.to_string())?;
    if image::read_at(&disk, p.start, sqfs.len() as u64)? != sqfs {
        return Err("the squashfs changed on disk".into());
    }
    Ok(())
}

/// OpenWRT's `firstboot -y` (overlay-init factory-reset) on a one-image board: the next boot
/// starts from an empty upper.
fn firstboot(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("firstboot")?;
    want(&boot(ctx, &disk, "oitest=mark-good", "firstboot-1")?, "counter", "1")?;
    let b = boot(ctx, &disk, "oitest=factory-reset", "firstboot-2")?;
    want(&b, "counter", "2")?;
    want(&b, "factory-reset-exit", "0")?;
    let b = boot(ctx, &disk, "", "firstboot-3")?;
    contains(&b, "FACTORY RESET (requested by 'overlay-init factory-reset')")?;
    want(&b, "counter", "1")
}

/// The rootfs_data-partition variant: a new image written over the squashfs (what sysupgrade
/// does) boots with a fresh upper that carries what /etc/sysupgrade.conf lists, and nothing else.
fn sysupgrade(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("sysupgrade")?;
    let own = "oinit.data=PARTLABEL=rootfs_data";
    let b = boot(ctx, &disk, &format!("{own} oitest=sysupgrade-conf,keep"), "sysupgrade-1")?;
    contains(&b, "formatting blank data partition /dev/vda3")?;
    want(&b, "image", "a")?;
    want(&boot(ctx, &disk, own, "sysupgrade-2")?, "counter", "2")?;
    let p = image::part(&image::partitions(&disk)?, "rootfs")?;
    let new = std::fs::read(ctx.board.out_dir(ctx.root).join("rootfs-b.sqfs")).map_err(|e| e.to_string())?;
    image::write_at(&disk, p.start, &new)?;
    let b = boot(ctx, &disk, own, "sysupgrade-3")?;
    want(&b, "image", "b")?;
    want(&b, "rom", "b")?;
    contains(&b, "new image")?;
    want(&b, "counter", "1")?;
    want(&b, "keepme", "kept-from-a")
}
