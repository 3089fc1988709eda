//! End-to-end tests of EROFS lowers: the test system built as LZ4-compressed EROFS images by
//! Debian's erofs-utils, written into both slots, booted, reconciled and installed.

use crate::e2e::harness::{booted, contains, want, Ctx};
use crate::image;
use crate::sh;
use std::path::PathBuf;

/// `rootfstype=erofs` loads the erofs module the board config does not list.
const AB: &str = "oinit.a=PARTLABEL=rootfs oinit.b=PARTLABEL=rootfs_b oinit.tries=2 rootfstype=erofs";

/// The test system's tree (made by `image::rootfs`) as an EROFS image with a fixed build time.
fn erofs(ctx: &Ctx<'_>, variant: &str, time: &str) -> Result<PathBuf, String> {
    let out = ctx.board.out_dir(ctx.root);
    let img = out.join(format!("rootfs-{variant}.erofs"));
    let _ = std::fs::remove_file(&img);
    sh::run(
        sh::cmd("mkfs.erofs")
            .args(["-zlz4hc", "--all-root", "--quiet", "-T", time])
            .arg(&img)
            .arg(out.join(format!("rootfs-{variant}"))),
    )?;
    Ok(img)
}

/// Slot a and slot b hold EROFS images: slot a boots from its EROFS partition (the type read
/// from the superblock), slot b's first boot reconciles a's upper with the old image mounted as
/// EROFS, and `install` takes an EROFS image into the other slot, which boots it next.
pub fn erofs_slots(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("erofs")?;
    let parts = image::partitions(&disk)?;
    for (variant, time, part) in [("a", "1700000000", "rootfs"), ("b", "1700086400", "rootfs_b")] {
        let img = std::fs::read(erofs(ctx, variant, time)?).map_err(|e| e.to_string())?;
        image::write_at(&disk, image::part(&parts, part)?.start, &img)?;
    }
    let initrd = image::initramfs_variant(ctx.root, ctx.board, "initramfs-erofs", &["erofs"], &[])?;
    let boot = |extra: &str, log: &str| {
        let b = ctx.boot_with(&initrd, &disk, &format!("{AB} {extra}"), log)?;
        booted(&b)?;
        Ok::<_, String>(b)
    };
    let b = boot("oitest=reconcile-setup,mark-good,rollback", "erofs-1")?;
    want(&b, "slot", "a")?;
    want(&b, "image", "a")?;
    contains(&b, "on /run/overlay-init/lower type erofs (ro)")?;
    let b = boot("oitest=mark-good,install-self", "erofs-2")?;
    want(&b, "slot", "b")?;
    want(&b, "image", "b")?;
    want(&b, "rc-changed", "b")?;
    want(&b, "rc-edited", "user")?;
    want(&b, "rc-app", "added mine")?;
    contains(&b, "from slot a's by reconcile")?;
    want(&b, "install-self-exit", "0")?;
    contains(&b, "into slot a; it boots next on trial")?;
    let b = boot("", "erofs-3")?;
    want(&b, "slot", "a")?;
    want(&b, "image", "b")
}
