//! End-to-end tests of OpenWRT's NAND layout on a stock kernel: a UBI image made by mtd-utils'
//! `ubinize` holding the squashfs volume `rootfs` and no `rootfs_data`, on an MTD device
//! (block2mtd over a virtio disk). The kernel attaches UBI and makes the ubiblock device from
//! module parameters; the init creates `rootfs_data` on the first boot and mounts it as UBIFS.

use crate::harness::{booted, contains, want, Ctx};
use crate::qemu::Boot;
use crate::sh;

const FLASH: usize = 32 << 20;

/// What an OpenWRT NAND board sets, plus what a stock kernel needs for it.
const NAND: &str = "root=ubi:rootfs oinit.data=ubi:rootfs_data oinit.state=1 oinit.keepfile=/etc/sysupgrade.conf \
    oinit.openwrt=1 oinit.modules=virtio_pci,virtio_blk,block2mtd,ubi,squashfs,zstd,ubifs,overlay \
    block2mtd.block2mtd=/dev/vda,64KiB,ubi ubi.mtd=ubi ubi.block=0,rootfs";

/// Writes a UBI image of `volumes` (`(name, image, size)`, dynamic) followed by erased flash.
fn flash(
    ctx: &Ctx<'_>,
    name: &str,
    volumes: &[(&str, &std::path::Path, Option<&str>)],
) -> Result<std::path::PathBuf, String> {
    let mut text = String::new();
    for (i, (vol, image, size)) in volumes.iter().enumerate() {
        text.push_str(&format!(
            "[{vol}]\nmode=ubi\nimage={}\nvol_id={i}\nvol_type=dynamic\nvol_name={vol}\n",
            image.display()
        ));
        if let Some(size) = size {
            text.push_str(&format!("vol_size={size}\n"));
        }
    }
    let ini = ctx.work.join(format!("{name}.ini"));
    std::fs::write(&ini, text).map_err(|e| e.to_string())?;
    let ubi = ctx.work.join(format!("{name}.ubi"));
    // NOR-like geometry, as block2mtd presents it: 64 KiB eraseblocks, 1-byte writes.
    sh::run(sh::cmd("ubinize").arg("-o").arg(&ubi).args(["-p", "65536", "-m", "1"]).arg(&ini))?;
    let mut flash = std::fs::read(&ubi).map_err(|e| e.to_string())?;
    flash.resize(FLASH, 0xff);
    let disk = ctx.work.join(format!("{name}.img"));
    std::fs::write(&disk, flash).map_err(|e| e.to_string())?;
    Ok(disk)
}

/// A/B on NAND: two squashfs volumes read through ubiblock, chosen by the same slot logic;
/// `install` writes the other slot's volume with one UBI volume update, and it boots next.
pub fn nand_ab(ctx: &Ctx<'_>) -> Result<(), String> {
    let out = ctx.board.out_dir(ctx.root);
    let (a, b) = (out.join("rootfs-a.sqfs"), out.join("rootfs-b.sqfs"));
    let disk = flash(ctx, "nand-ab", &[("rootfs_a", &a, Some("4MiB")), ("rootfs_b", &b, Some("4MiB"))])?;
    let modules = ["block2mtd", "ubi", "zstd", "ubifs"];
    let initrd = crate::image::initramfs_variant(ctx.root, ctx.board, "initramfs-nand", &modules, &[])?;
    // root= overrides the board config's partition name (it names slot a's image here).
    let settings =
        "root=ubi:rootfs_a oinit.a=ubi:rootfs_a oinit.b=ubi:rootfs_b oinit.tries=2 oinit.data=ubi:rootfs_data \
        oinit.modules=virtio_pci,virtio_blk,block2mtd,ubi,squashfs,zstd,ubifs,overlay \
        block2mtd.block2mtd=/dev/vda,64KiB,ubi ubi.mtd=ubi ubi.block=0,rootfs_a ubi.block=0,rootfs_b";
    let boot = |extra: &str, log: &str| -> Result<Boot, String> {
        let b = ctx.boot_with(&initrd, &disk, &format!("{settings} {extra}"), log)?;
        booted(&b)?;
        Ok(b)
    };
    let b = boot("oitest=mark-good,install-self", "nand-ab-1")?;
    want(&b, "slot", "a")?;
    want(&b, "image", "a")?;
    contains(&b, "mount /dev/ubiblock0_0 on /run/overlay-init/lower type squashfs")?;
    want(&b, "install-self-exit", "0")?;
    contains(&b, "into slot b; it boots next on trial")?;
    let b = boot("", "nand-ab-2")?;
    want(&b, "slot", "b")?;
    want(&b, "image", "a")?;
    want(&b, "counter", "2")?;
    contains(&b, "mount /dev/ubiblock0_1 on /run/overlay-init/lower type squashfs")
}

/// First boot creates `rootfs_data` with the space left and UBIFS formats it; a file persists
/// on it; `/rom` and `/overlay` are OpenWRT's; `firstboot` empties the upper but the keep-list.
pub fn nand_flash(ctx: &Ctx<'_>) -> Result<(), String> {
    let image = ctx.board.out_dir(ctx.root).join("rootfs-a.sqfs");
    let disk = flash(ctx, "nand", &[("rootfs", &image, None)])?;
    let modules = ["block2mtd", "ubi", "zstd", "ubifs"];
    let initrd = crate::image::initramfs_variant(ctx.root, ctx.board, "initramfs-nand", &modules, &[])?;
    let boot = |extra: &str, log: &str| -> Result<Boot, String> {
        let b = ctx.boot_with(&initrd, &disk, &format!("{NAND} {extra}"), log)?;
        booted(&b)?;
        Ok(b)
    };
    let b = boot("oitest=sysupgrade-conf,keep,mark-good", "nand-1")?;
    contains(&b, "create UBI volume rootfs_data on /dev/ubi0")?;
    contains(&b, "mount ubi0:rootfs_data on /run/overlay-init/data type ubifs")?;
    contains(&b, "mount /dev/ubiblock0_0 on /run/overlay-init/lower type squashfs")?;
    want(&b, "counter", "1")?;
    want(&b, "rom", "a")?;
    want(&b, "overlay-fs", "ubifs")?;
    let b = boot("", "nand-2")?;
    want(&b, "counter", "2")?;
    if b.console.contains("create UBI volume") {
        return Err("rootfs_data was created again on the second boot".into());
    }
    let b = boot("oitest=factory-reset", "nand-3")?;
    want(&b, "factory-reset-exit", "0")?;
    let b = boot("", "nand-4")?;
    contains(&b, "FACTORY RESET")?;
    want(&b, "counter", "1")?;
    want(&b, "keepme", "kept-from-a")
}
