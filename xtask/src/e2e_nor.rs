//! End-to-end tests of the openwrt-nor board, OpenWRT's NOR layout on a stock kernel: one MTD
//! device (block2mtd over a virtio disk, 64 KiB erase blocks) holding the squashfs followed by
//! erased flash, as the board's genimage.cfg makes it. The init splits `rootfs_data` off after
//! the squashfs with BLKPG and mounts it as jffs2; the squashfs is read through mtdblock.

use crate::harness::{booted, contains, want, Ctx, Needs, Scenario};
use crate::qemu::Boot;
use std::path::Path;

pub const SCENARIOS: [Scenario; 1] = [("openwrt-nor-flash", nor_flash, Needs::Nothing)];

const ERASE: usize = 64 << 10;

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
    let b = boot("oitest=sysupgrade-conf,keep,mark-good", "nor-1")?;
    let a = read(&img_a)?;
    let offset = a.len().div_ceil(ERASE) * ERASE;
    contains(&b, &format!("add MTD partition rootfs_data to /dev/mtd0 from byte {offset}"))?;
    contains(&b, "mount mtd:rootfs_data on /run/overlay-init/data type jffs2")?;
    want(&b, "counter", "1")?;
    want(&b, "rom", "a")?;
    want(&b, "overlay-fs", "jffs2")?;
    let b = boot("", "nor-2")?;
    want(&b, "counter", "2")?;
    want(&b, "overlay-counter", "2")?;
    // The squashfs itself is never written.
    if read(&disk)?[..a.len()] != a[..] {
        return Err("the squashfs changed on the flash".into());
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
    flash[..new.len()].copy_from_slice(&new);
    std::fs::write(&disk, flash).map_err(|e| e.to_string())?;
    let b = boot("", "nor-5")?;
    want(&b, "image", "b")?;
    want(&b, "rom", "b")?;
    want(&b, "counter", "1")?;
    want(&b, "keepme", "kept-from-a")?;
    contains(&b, "old image gone")
}
