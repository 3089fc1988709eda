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

/// First boot creates `rootfs_data` with the space left and UBIFS formats it; a file persists
/// on it; `/rom` and `/overlay` are OpenWRT's; `firstboot` empties the upper but the keep-list.
pub fn nand_flash(ctx: &Ctx<'_>) -> Result<(), String> {
    let out = ctx.board.out_dir(ctx.root);
    let ini = ctx.work.join("ubinize.ini");
    let text = format!(
        "[rootfs]\nmode=ubi\nimage={}\nvol_id=0\nvol_type=dynamic\nvol_name=rootfs\n",
        out.join("rootfs-a.sqfs").display()
    );
    std::fs::write(&ini, text).map_err(|e| e.to_string())?;
    let ubi = ctx.work.join("ubi.img");
    // NOR-like geometry, as block2mtd presents it: 64 KiB eraseblocks, 1-byte writes.
    sh::run(sh::cmd("ubinize").arg("-o").arg(&ubi).args(["-p", "65536", "-m", "1"]).arg(&ini))?;
    let mut flash = std::fs::read(&ubi).map_err(|e| e.to_string())?;
    flash.resize(FLASH, 0xff);
    let disk = ctx.work.join("nand.img");
    std::fs::write(&disk, flash).map_err(|e| e.to_string())?;
    // UBIFS sets up every compressor it was built with at load; zstd is a module in Debian's
    // kernel and there is no modprobe in the initramfs to load it on demand.
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
