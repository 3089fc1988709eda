//! End-to-end tests of the openwrt-nor board, OpenWRT's NOR layout on a stock kernel: one MTD
//! master (block2mtd over a virtio disk, 64 KiB erase blocks) partitioned as an MT7621 router's
//! SPI-NOR (u-boot, u-boot-env, factory, then firmware: the squashfs followed by erased flash),
//! as the board's genimage.cfg makes it. Debian's kernel has no `mtdparts=` parser, so the init
//! adds the partitions with BLKPG, then splits `rootfs_data` off the firmware partition after the
//! squashfs (in the master: BLKPG works on masters only) and mounts it as jffs2; the squashfs is
//! read through mtdblock.

use crate::e2e::harness::{booted, contains, failed_with, want, Ctx, Needs, Scenario};
use crate::e2e::qemu::Boot;
use std::path::Path;

pub const SCENARIOS: [Scenario; 2] = [("openwrt-nor-flash", nor_flash, Needs::Nothing), crate::e2e::procd::NOR];

const ERASE: usize = 64 << 10;
/// Where the firmware partition starts: after u-boot, u-boot-env and factory.
const FIRMWARE: usize = 320 << 10;

/// First boot splits off and mounts the erased area (an empty jffs2), a file persists across
/// boots on it, OpenWRT's /rom and /overlay are there; `firstboot` empties the upper but for the
/// keep-list; a sysupgrade (image b written over the squashfs) carries what
/// /etc/sysupgrade.conf lists and nothing else.
pub fn nor_flash(ctx: &Ctx<'_>) -> Result<(), String> {
    let out = ctx.board.out_dir(ctx.root);
    let (img_a, img_b) = (out.join("rootfs-a.sqfs"), out.join("rootfs-b.sqfs"));
    let disk = ctx.fresh_disk("nor")?;
    let boot = |extra: &str, log: &str| -> Result<Boot, String> {
        let b = ctx.boot(&disk, extra, log)?;
        booted(&b)?;
        Ok(b)
    };
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let bootloader = read(&disk)?[..FIRMWARE].to_vec();
    // A table off the erase blocks is refused before any partition is added.
    let bad = "oinit.rebootdelay=1 mtdparts=spi-nor:100k(u-boot),-(firmware)";
    let b = ctx.boot(&disk, bad, "nor-bad-mtdparts")?;
    failed_with(
        &b,
        "mtdparts: spi-nor: partition u-boot (102400 bytes at byte 0) is not in whole 65536-byte erase blocks",
    )?;
    let b = boot("oitest=sysupgrade-conf,keep,mark-good", "nor-1")?;
    let a = read(&img_a)?;
    let offset = a.len().div_ceil(ERASE) * ERASE;
    contains(&b, "mtdparts: added MTD partition firmware to /dev/mtd0 from byte 327680")?;
    contains(&b, &format!("add MTD partition rootfs_data to /dev/mtd0 from byte {}", FIRMWARE + offset))?;
    contains(&b, "mount mtd:rootfs_data on /run/overlay-init/data type jffs2")?;
    want(&b, "counter", "1")?;
    want(&b, "rom", "a")?;
    want(&b, "overlay-fs", "jffs2")?;
    let b = boot("", "nor-2")?;
    want(&b, "counter", "2")?;
    want(&b, "overlay-counter", "2")?;
    // The squashfs itself and the bootloader's partitions before it are never written.
    let flash = read(&disk)?;
    if flash[FIRMWARE..FIRMWARE + a.len()] != a[..] {
        return Err("the squashfs changed on the flash".into());
    }
    if flash[..FIRMWARE] != bootloader[..] {
        return Err("the partitions before firmware (u-boot, u-boot-env, factory) changed".into());
    }
    let b = boot("oitest=factory-reset", "nor-3")?;
    want(&b, "factory-reset-exit", "0")?;
    let b = boot("", "nor-4")?;
    contains(&b, "FACTORY RESET")?;
    want(&b, "counter", "1")?;
    want(&b, "keepme", "kept-from-a")?;
    // sysupgrade: image b over the squashfs. The data area stays where it was: both images end
    // in the same erase block (they differ in one file).
    let new = read(&img_b)?;
    if new.len().div_ceil(ERASE) * ERASE != offset {
        return Err("images a and b end in different erase blocks: the data area would move".into());
    }
    let mut flash = read(&disk)?;
    flash[FIRMWARE..FIRMWARE + new.len()].copy_from_slice(&new);
    std::fs::write(&disk, flash).map_err(|e| e.to_string())?;
    let b = boot("", "nor-5")?;
    want(&b, "image", "b")?;
    want(&b, "rom", "b")?;
    want(&b, "counter", "1")?;
    want(&b, "keepme", "kept-from-a")?;
    contains(&b, "old image gone")
}
