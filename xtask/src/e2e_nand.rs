//! End-to-end tests of OpenWRT's NAND layout on a stock kernel: a UBI image made by mtd-utils'
//! `ubinize` holding the squashfs volume `rootfs` and no `rootfs_data`, on an MTD device
//! (block2mtd over a virtio disk). On the one-image board the init attaches UBI (`oinit.ubi=`,
//! `UBI_IOCATT`) and makes the squashfs volume's block device (`UBI_IOCVOLCRBLK`); on the A/B one
//! the kernel does both from module parameters and the init leaves them be. The init creates
//! `rootfs_data` on the first boot and mounts it as UBIFS.

use crate::harness::{booted, contains, failed_with, want, Ctx};
use crate::qemu::Boot;
use crate::sh;
use std::time::Duration;

const FLASH: usize = 32 << 20;
/// The physical eraseblock of the emulated flash (block2mtd's erase size here).
const PEB: usize = 64 << 10;

/// What an OpenWRT NAND board sets, plus what a stock kernel needs for it.
const NAND: &str = "root=ubi:rootfs oinit.data=ubi:rootfs_data oinit.state=1 oinit.keepfile=/etc/sysupgrade.conf \
    oinit.openwrt=1 oinit.modules=virtio_pci,virtio_blk,block2mtd,ubi,squashfs,zstd,ubifs,overlay \
    block2mtd.block2mtd=/dev/vda,64KiB,ubi oinit.ubi=ubi";

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

/// Overwrites the start of logical eraseblock 0 of UBI volume `vol_id` in a UBI image: its
/// squashfs superblock. Dynamic volumes carry no data checksum, so UBI reads the garbage and
/// the squashfs mount refuses it. Headers as in `<mtd/ubi-media.h>` (big endian): the erase
/// counter header gives the VID header's and the data's offsets; the VID header the volume and
/// the logical block.
fn corrupt_volume(flash: &mut [u8], vol_id: u32) -> Result<(), String> {
    let be32 = |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
    for peb in flash.chunks_mut(PEB) {
        if &peb[..4] != b"UBI#" {
            continue;
        }
        let (vid, data) = (be32(peb, 16), be32(peb, 20));
        if &peb[vid..vid + 4] == b"UBI!" && be32(peb, vid + 8) == vol_id as usize && be32(peb, vid + 12) == 0 {
            peb[data..data + 4096].fill(0x5a);
            return Ok(());
        }
    }
    Err(format!("no eraseblock of volume {vol_id} in the UBI image"))
}

/// A/B on NAND: two squashfs volumes read through ubiblock, chosen by the same slot logic. A
/// corrupted volume falls back to the other slot in the same boot; `install` writes the other
/// slot's volume with one UBI volume update and it boots next; a power cut during that update
/// leaves the booted slot and the state as they were.
pub fn nand_ab(ctx: &Ctx<'_>) -> Result<(), String> {
    let out = ctx.board.out_dir(ctx.root);
    let (a, b) = (out.join("rootfs-a.sqfs"), out.join("rootfs-b.sqfs"));
    let disk = flash(ctx, "nand-ab", &[("rootfs_a", &a, Some("4MiB")), ("rootfs_b", &b, Some("4MiB"))])?;
    let mut bytes = std::fs::read(&disk).map_err(|e| e.to_string())?;
    corrupt_volume(&mut bytes, 1)?;
    std::fs::write(&disk, bytes).map_err(|e| e.to_string())?;
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
    let b = boot("oitest=mark-good,rollback", "nand-ab-1")?;
    want(&b, "slot", "a")?;
    contains(&b, "mount /dev/ubiblock0_0 on /run/overlay-init/lower type squashfs")?;
    // Slot b next: its volume is corrupt, so the same boot falls back to a, which then installs
    // its own image into b's volume.
    let b = boot("oitest=install-self", "nand-ab-2")?;
    want(&b, "slot", "a")?;
    contains(&b, "slot b unusable")?;
    want(&b, "install-self-exit", "0")?;
    contains(&b, "into slot b; it boots next on trial")?;
    let b = boot("oitest=mark-good", "nand-ab-3")?;
    want(&b, "slot", "b")?;
    want(&b, "image", "a")?;
    contains(&b, "mount /dev/ubiblock0_1 on /run/overlay-init/lower type squashfs")?;
    // The power goes while slot b installs its image into slot a's volume, a quarter written.
    // The next boot is still b: the install never activated a.
    let cmd = format!("{settings} oitest=install-self");
    let cut = ctx.boot_cut_with(&initrd, &disk, &cmd, "nand-ab-cut", ("OI-CLI: install: 24%", Duration::ZERO))?;
    if cut.console.contains("OI: install-self-exit") {
        return Err("the power cut landed after the install finished: the test proves nothing".into());
    }
    let b = boot("oitest=rollback", "nand-ab-4")?;
    want(&b, "slot", "b")?;
    want(&b, "rollback-exit", "0")?;
    // Slot a next: UBI marked the volume whose update was cut as corrupted; it does not mount,
    // and the same boot falls back to b.
    let b = boot("", "nand-ab-5")?;
    want(&b, "slot", "b")?;
    contains(&b, "slot a unusable")
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
    // Flash that holds no UBI image (the squashfs written raw): the attach is refused with the
    // ioctl's errno and the fix, and the failure policy reboots.
    let raw = ctx.work.join("nand-raw.img");
    let mut bytes = std::fs::read(&image).map_err(|e| e.to_string())?;
    bytes.resize(FLASH, 0xff);
    std::fs::write(&raw, bytes).map_err(|e| e.to_string())?;
    let b = ctx.boot_with(&initrd, &raw, &format!("{NAND} oinit.rebootdelay=1"), "nand-not-ubi")?;
    failed_with(&b, "UBI_IOCATT /dev/ubi_ctrl (MTD partition ubi, mtd0): Invalid argument")?;
    contains(&b, "flash an image made by ubinize")?;
    let b = boot("oitest=sysupgrade-conf,keep,mark-good", "nand-1")?;
    contains(&b, "attached MTD partition ubi (mtd0) as UBI device ubi0")?;
    contains(&b, "UBI volume rootfs (ubi0_0) readable as /dev/ubiblock0_0")?;
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
