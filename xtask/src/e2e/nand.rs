//! End-to-end tests of the openwrt-nand board, OpenWRT's NAND layout on a stock kernel: the
//! board's genimage image, a UBI image made by mtd-utils' `ubinize` holding the squashfs volumes
//! `rootfs_a` and `rootfs_b` and no `rootfs_data`, on an MTD device (block2mtd over a virtio
//! disk). The init attaches UBI (`oinit.ubi=`, `UBI_IOCATT`), makes the volumes' block devices
//! (`UBI_IOCVOLCRBLK`), creates `rootfs_data` on the first boot and mounts it as UBIFS; one
//! scenario has the kernel attach UBI from module parameters instead, and the init leaves it be.

use crate::e2e::harness::{booted, contains, failed_with, want, Ctx, Needs, Scenario};
use crate::e2e::qemu::Boot;
use crate::image::flash;
use crate::sh;
use std::time::Duration;

pub const SCENARIOS: [Scenario; 6] = [
    ("openwrt-nand-ubi", nand_flash, Needs::Nothing),
    ("openwrt-nand-128k-eraseblocks", nand_128k, Needs::Nothing),
    ("openwrt-nand-ab-install", nand_ab, Needs::Nothing),
    ("openwrt-nand-recreate-reset", nand_recreate, Needs::Nothing),
    ("openwrt-nand-nandsim-bad-blocks-and-bitflips", nandsim, Needs::Nothing),
    crate::e2e::procd::NAND,
];

/// The physical eraseblock of the emulated flash (block2mtd's erase size here).
const PEB: usize = 64 << 10;

/// Overwrites the start of logical eraseblock 0 of UBI volume `vol_id`: its squashfs superblock.
/// Dynamic volumes carry no data checksum, so UBI reads the garbage and the squashfs mount
/// refuses it.
fn corrupt_volume(flash: &mut [u8], vol_id: u32) -> Result<(), String> {
    let (lebs, _) = flash::lebs(flash, PEB)?;
    let leb = lebs.iter().find(|l| l.vol_id == vol_id && l.lnum == 0).ok_or(format!("no volume {vol_id}"))?;
    flash[leb.data.start..leb.data.start + 4096].fill(0x5a);
    Ok(())
}

/// A/B on NAND: two squashfs volumes read through ubiblock, chosen by the same slot logic. A
/// corrupted volume falls back to the other slot in the same boot; `install` writes the other
/// slot's volume with one UBI volume update and it boots next; a power cut during that update
/// leaves the booted slot and the state as they were.
pub fn nand_ab(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("nand-ab")?;
    let mut bytes = std::fs::read(&disk).map_err(|e| e.to_string())?;
    corrupt_volume(&mut bytes, 1)?;
    std::fs::write(&disk, bytes).map_err(|e| e.to_string())?;
    // The kernel attaches UBI and makes both block devices from its module parameters here; the
    // init finds them done and leaves them be.
    let settings = "oinit.tries=2 ubi.mtd=ubi ubi.block=0,rootfs_a ubi.block=0,rootfs_b";
    let boot = |extra: &str, log: &str| -> Result<Boot, String> {
        let b = ctx.boot(&disk, &format!("{settings} {extra}"), log)?;
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
    let cut = ctx.boot_cut(&disk, &cmd, "nand-ab-cut", "OI-CLI: install: 24%", Duration::ZERO)?;
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
    let disk = ctx.fresh_disk("nand")?;
    let boot = |extra: &str, log: &str| -> Result<Boot, String> {
        let b = ctx.boot(&disk, extra, log)?;
        booted(&b)?;
        Ok(b)
    };
    // Flash that holds no UBI image (the squashfs written raw): the attach is refused with the
    // ioctl's errno and the fix, and the failure policy reboots.
    let raw = ctx.work.join("nand-raw.img");
    let mut bytes = std::fs::read(&ctx.sqfs).map_err(|e| e.to_string())?;
    bytes.resize(std::fs::metadata(&disk).map_err(|e| e.to_string())?.len() as usize, 0xff);
    std::fs::write(&raw, bytes).map_err(|e| e.to_string())?;
    let b = ctx.boot(&raw, "oinit.rebootdelay=1", "nand-not-ubi")?;
    failed_with(&b, "UBI_IOCATT /dev/ubi_ctrl (MTD partition ubi, mtd0): Invalid argument")?;
    contains(&b, "flash an image made by ubinize")?;
    let b = boot("oitest=sysupgrade-conf,keep,mark-good", "nand-1")?;
    contains(&b, "attached MTD partition ubi (mtd0) as UBI device ubi0")?;
    contains(&b, "UBI volume rootfs_a (ubi0_0) readable as /dev/ubiblock0_0")?;
    contains(&b, "UBI volume rootfs_b (ubi0_1) readable as /dev/ubiblock0_1")?;
    contains(&b, "create UBI volume rootfs_data on /dev/ubi0 as volume 2")?;
    // By its device node, the name OpenWRT's fstools looks for in /proc/self/mountinfo.
    contains(&b, "mount /dev/ubi0_2 on /run/overlay-init/data type ubifs")?;
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

/// A UBI image made for 128 KiB eraseblocks (mtd-utils' ubinize, as a board with larger blocks
/// ships it), tried as a user would: the board's block2mtd parameter says 64 KiB, the command
/// line's says 128 KiB and replaces it (both reached the module before, and both slots failed as
/// a corrupt squashfs). Without the command line the image would be attached on 64 KiB blocks
/// (each volume half its size, both slots refused as corrupt squashfs): the init reads the
/// image's eraseblock size from its headers first, does not attach, and names the fix.
pub fn nand_128k(ctx: &Ctx<'_>) -> Result<(), String> {
    let work = ctx.work.join("nand-128k");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let ini = work.join("ubinize.ini");
    let images = ctx.sqfs.parent().ok_or("no image folder")?;
    let mut cfg = String::new();
    for (id, slot) in ["a", "b"].iter().enumerate() {
        let image = images.join(format!("rootfs-{slot}.sqfs"));
        cfg.push_str(&format!(
            "[rootfs_{slot}]\nmode=ubi\nimage={}\nvol_id={id}\nvol_type=dynamic\nvol_name=rootfs_{slot}\nvol_size=4MiB\n",
            image.display()
        ));
    }
    std::fs::write(&ini, cfg).map_err(|e| e.to_string())?;
    let ubi = work.join("rootfs-128k.ubi");
    sh::run(sh::cmd("ubinize").arg("-o").arg(&ubi).args(["-p", "128KiB", "-m", "1", "-O", "64"]).arg(&ini))?;
    let disk = ctx.work.join("nand-128k.img");
    let mut bytes = std::fs::read(&ubi).map_err(|e| e.to_string())?;
    bytes.resize(32 << 20, 0xff);
    std::fs::write(&disk, bytes).map_err(|e| e.to_string())?;
    let b = ctx.boot(&disk, "block2mtd.block2mtd=/dev/vda,128KiB,ubi oitest=mark-good", "nand-128k-1")?;
    booted(&b)?;
    want(&b, "slot", "a")?;
    contains(&b, "block2mtd=/dev/vda,128KiB,ubi")?;
    if b.console.contains("block2mtd=/dev/vda,64KiB") {
        return Err("the board's 64 KiB block2mtd parameter still reached the module".into());
    }
    // The board's 64 KiB alone: the image is not attached, the cause and the fix are named.
    let b = ctx.boot(&disk, "oinit.rebootdelay=1", "nand-128k-2")?;
    failed_with(&b, "was made for 128 KiB eraseblocks, the flash has 64 KiB ones")?;
    contains(&b, "block2mtd.block2mtd=DEVICE,128KiB")
}

/// `oinit.datarecreate`, OpenWRT's jffs2reset on NAND: the first boot leaves room for the carry
/// volume; after `firstboot -y` the next boot removes `rootfs_data` and makes it again (a file
/// outside every upper goes too), with the keep-list and the state carried. A power cut right
/// after the old volume is removed is finished by the next boot from the carry volume; one right
/// after the carry volume is made leaves it unmarked, and the next boot drops it and resets.
pub fn nand_recreate(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("nand-recreate")?;
    let set = "oinit.datarecreate=2M";
    let boot = |extra: &str, log: &str| -> Result<Boot, String> {
        let b = ctx.boot(&disk, &format!("{set} {extra}"), log)?;
        booted(&b)?;
        Ok(b)
    };
    let volumes = "rootfs_a rootfs_b rootfs_data";
    let b = boot("oitest=sysupgrade-conf,keep,data-junk,mark-good", "nand-recreate-1")?;
    want(&b, "ubi-volumes", volumes)?;
    let b = boot("oitest=factory-reset", "nand-recreate-2")?;
    want(&b, "factory-reset-exit", "0")?;
    want(&b, "data-junk", "junk")?;
    let b = boot("", "nand-recreate-3")?;
    contains(&b, "FACTORY RESET (requested by 'overlay-init factory-reset'): UBI volume rootfs_data is removed")?;
    contains(&b, "state and keep-list carried in UBI volume oinit_carry")?;
    contains(&b, "UBI volume rootfs_data made again")?;
    want(&b, "counter", "1")?;
    want(&b, "keepme", "kept-from-a")?;
    want(&b, "data-junk", "")?;
    want(&b, "ubi-volumes", volumes)?;
    // Again, and the power goes as soon as the old volume is gone.
    let b = boot("oitest=data-junk,factory-reset", "nand-recreate-4")?;
    want(&b, "factory-reset-exit", "0")?;
    let marker = "factory reset: removed UBI volume rootfs_data";
    let cut = ctx.boot_cut(&disk, set, "nand-recreate-cut", marker, Duration::ZERO)?;
    if cut.console.contains("UBI volume rootfs_data made again") {
        return Err("the power cut landed after the volume was made again: the test proves nothing".into());
    }
    let b = boot("", "nand-recreate-5")?;
    contains(&b, "finishing the recreate of UBI volume rootfs_data a power cut interrupted")?;
    want(&b, "counter", "1")?;
    want(&b, "keepme", "kept-from-a")?;
    want(&b, "data-junk", "")?;
    want(&b, "ubi-volumes", volumes)?;
    // Once more, the power going as soon as the carry volume is made, before it is filled and
    // marked: the next boot drops it and resets from the start.
    let b = boot("oitest=data-junk,factory-reset", "nand-recreate-6")?;
    want(&b, "factory-reset-exit", "0")?;
    let marker = "carry volume oinit_carry made";
    let cut = ctx.boot_cut(&disk, set, "nand-recreate-cut-early", marker, Duration::ZERO)?;
    if cut.console.contains("state and keep-list carried") {
        return Err("the early power cut landed after the carry was marked complete: it proves nothing".into());
    }
    let b = boot("", "nand-recreate-7")?;
    contains(&b, "dropping the incomplete carry volume")?;
    contains(&b, "UBI volume rootfs_data made again")?;
    want(&b, "counter", "1")?;
    want(&b, "keepme", "kept-from-a")?;
    want(&b, "data-junk", "")?;
    want(&b, "ubi-volumes", volumes)
}

/// The board's UBI layout on a simulated raw NAND chip with faults (the kernel's nandsim: 64 MiB,
/// 2 KiB pages, 128 KiB eraseblocks, software Hamming ECC), not on block2mtd: two eraseblocks
/// marked bad at the factory and a random bit flip in about one page read of a thousand. nandsim
/// starts erased, so a test-only first stage (`rdinit=/nandsim-init`, busybox) loads it and
/// writes the UBI image with mtd-utils' `ubiformat`, which skips the bad blocks, then hands over
/// to the init; the kernel attaches UBI (`ubi.mtd=0`: nandsim's MTD name has spaces). UBI must
/// skip the bad blocks, correct and scrub the flipped bits, and the boot go on: slot a mounts
/// from its volume, the data volume is made and mounted, both images read back byte for byte
/// many times while bits flip.
pub fn nandsim(ctx: &Ctx<'_>) -> Result<(), String> {
    let work = ctx.work.join("nandsim");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let images = ctx.sqfs.parent().ok_or("no image folder")?;
    let mut cfg = String::new();
    let mut expect = Vec::new();
    for (id, slot) in ["a", "b"].iter().enumerate() {
        let image = images.join(format!("rootfs-{slot}.sqfs"));
        let bytes = std::fs::read(&image).map_err(|e| format!("{}: {e}", image.display()))?;
        let mut h = overlay_init::util::sha256::Sha256::default();
        h.update(&bytes);
        expect.push((bytes.len(), h.hex()));
        cfg.push_str(&format!(
            "[rootfs_{slot}]\nmode=ubi\nimage={}\nvol_id={id}\nvol_type=dynamic\nvol_name=rootfs_{slot}\n",
            image.display()
        ));
    }
    let ini = work.join("ubinize.ini");
    std::fs::write(&ini, cfg).map_err(|e| e.to_string())?;
    let ubi = work.join("nandsim.ubi");
    sh::run(sh::cmd("ubinize").arg("-o").arg(&ubi).args(["-p", "128KiB", "-m", "2048", "-s", "512"]).arg(&ini))?;
    let script = work.join("nandsim-init");
    std::fs::write(&script, NANDSIM_INIT).map_err(|e| e.to_string())?;
    let busybox = ctx.board.kernel_dir.join("busybox");
    let initrd = crate::image::initramfs_variant(
        ctx.root,
        ctx.board,
        "initramfs-nandsim",
        &["nandsim"],
        &[
            ("/nandsim-init", &script.display().to_string()),
            ("/bin/busybox", &busybox.display().to_string()),
            ("/usr/sbin/ubiformat", "/usr/sbin/ubiformat"),
            ("/nandsim.ubi", &ubi.display().to_string()),
        ],
    )?;
    // No block2mtd: the flash is nandsim's.
    let set = "rdinit=/nandsim-init oinit.modules=ubi,squashfs,zstd,ubifs,overlay ubi.mtd=0";
    let disk = ctx.fresh_disk("nandsim")?;
    let sizes = format!("oisize_0={} oisize_1={}", expect[0].0, expect[1].0);
    let b = ctx.boot_with(&initrd, &disk, &format!("{set} {sizes} oitest=read-volumes,dmesg-ubi"), "nandsim-1")?;
    booted(&b)?;
    contains(&b, "nandsim-init: ubiformat done")?;
    contains(&b, "bad PEBs: 2")?;
    want(&b, "slot", "a")?;
    want(&b, "overlay-fs", "ubifs")?;
    contains(&b, "create UBI volume rootfs_data on /dev/ubi0")?;
    contains(&b, "mount /dev/ubiblock0_0 on /run/overlay-init/lower type squashfs")?;
    for (v, (len, sha)) in expect.iter().enumerate() {
        want(&b, &format!("volume-{v}"), &format!("{len}:{sha}"))?;
    }
    if !b.console.contains("fixable bit-flip detected") {
        return Err("no bit flip was seen: the reads did not exercise UBI's correction".into());
    }
    contains(&b, "scrubbed PEB")
}

/// The test-only first stage of the nandsim scenario: nandsim with two bad blocks and bit flips,
/// the UBI image written by ubiformat, then the init as PID 1.
const NANDSIM_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox modprobe nandsim id_bytes=0x20,0xa2,0x00,0x15 badblocks=3,200 bitflips=1 || echo "nandsim-init: modprobe failed"
/usr/sbin/ubiformat /dev/mtd0 -f /nandsim.ubi -y -q && echo "nandsim-init: ubiformat done"
/bin/busybox umount /dev /sys /proc
exec /init "$@"
"#;
