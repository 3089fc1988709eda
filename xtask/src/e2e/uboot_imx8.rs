//! The imx8 board's own boot script (board/imx8/boot.cmd ahead of the common one, as its disk
//! carries it) run by a real U-Boot: i.MX 8M Plus silicon cannot run U-Boot in QEMU here, so
//! Debian's `qemu_arm64` U-Boot boots the imx8 board's genimage disk. Its stock distro boot
//! finds boot.scr on partition 1 (as the EVK's boot flow does), the script chooses and counts
//! with U-Boot's own environment (saveenv: the board keeps no selection area) and `oi_load`
//! loads the chosen slot's kernel, device tree and initramfs from its boot partition and starts
//! the kernel with `booti`. The kernel is the EVK's (its device tree does not fit QEMU's virt
//! machine), so each power-on ends at "Starting kernel".

use crate::board::Board;
use crate::e2e::harness::Ctx;
use crate::e2e::uboot::{flash, flash_args, host_init, power_on_cut, uboot_env};
use crate::image;
use crate::sh;
use std::path::Path;
use std::time::Duration;

pub fn board_script(ctx: &Ctx<'_>) -> Result<(), String> {
    let imx8 = Board::load(ctx.root, "imx8")?;
    let disk = ctx.work.join("imx8-emmc.img");
    image::disk::build(ctx.root, &imx8, &disk)?;
    let init = host_init(ctx)?;
    let (code, env, cfg) = flash(ctx, "uboot-imx8")?;
    // The board's load addresses need RAM to 2 GiB (QEMU's virt RAM starts at 1 GiB, as the EVK's).
    let firmware = [flash_args([&code, &env]), vec!["-m".into(), "1G".into()]].concat();
    let sizes = boot_file_sizes(ctx.root, &imx8)?;
    let boot = |n: u32, slot: &str, counts: &str| -> Result<(), String> {
        let log = format!("uboot-imx8-{n}");
        let console = power_on_cut(ctx, &firmware, &[&disk], ("Starting kernel", Duration::ZERO), &log)?;
        let chose = format!("U-Boot chose slot {slot} ({counts})");
        if !console.contains(&chose) {
            return Err(format!("power-on {n}: U-Boot's console lacks {chose:?} ({log}.log)"));
        }
        for (name, size) in &sizes {
            if !console.contains(&format!("{size} bytes read")) {
                return Err(format!("power-on {n}: U-Boot did not load {name} ({size} bytes) from slot {slot}'s boot partition ({log}.log)"));
            }
        }
        Ok(())
    };
    // A fresh environment: RAUC's defaults, slot A, its try saved by U-Boot.
    boot(1, "A", "BOOT_ORDER A B, A 2 left, B 3 left")?;
    let read = |name: &str| -> Result<String, String> {
        let ours = uboot_env(&init, &cfg, &["print", name])?;
        let theirs = sh::output(sh::cmd("fw_printenv").arg("-c").arg(&cfg).arg(name))?;
        if ours != theirs {
            return Err(format!("{name}: overlay-init reads {ours:?}, fw_printenv {theirs:?}"));
        }
        Ok(ours.trim().to_string())
    };
    if read("BOOT_A_LEFT")? != "BOOT_A_LEFT=2" {
        return Err(format!("after the first power-on U-Boot's environment says {}", read("BOOT_A_LEFT")?));
    }
    // B made primary in U-Boot's environment by overlay-init, slot A's boot partition wiped:
    // only partition 6 can boot now.
    uboot_env(&init, &cfg, &["set", "BOOT_ORDER", "B A"])?;
    let parts = image::partitions(&disk)?;
    let a = image::part(&parts, "boot_a")?;
    image::write_at(&disk, a.start, &vec![0u8; 1 << 20])?;
    boot(2, "B", "BOOT_ORDER B A, A 2 left, B 2 left")?;
    if read("BOOT_B_LEFT")? != "BOOT_B_LEFT=2" {
        return Err(format!("after the second power-on U-Boot's environment says {}", read("BOOT_B_LEFT")?));
    }
    println!(
        "uboot-imx8-board-script: Debian's U-Boot ran the imx8 disk's boot.scr, booted A from partition 5, then B \
         (made primary by overlay-init) from partition 6, each try saved where fw_printenv and overlay-init read it"
    );
    Ok(())
}

/// The sizes of the files in a slot's boot partition as the disk build made them.
fn boot_file_sizes(root: &Path, b: &Board) -> Result<Vec<(String, u64)>, String> {
    let kernel = std::fs::metadata(b.kernel_dir.join("vmlinuz")).map_err(|e| e.to_string())?.len();
    let initrd = std::fs::metadata(image::initramfs(root, b)?).map_err(|e| e.to_string())?.len();
    let dtb = b.dtb.as_ref().ok_or("board imx8 names no dtb")?;
    let dtb = std::fs::metadata(dtb).map_err(|e| e.to_string())?.len();
    Ok(vec![("vmlinuz".into(), kernel), ("initrd.img".into(), initrd), ("board.dtb".into(), dtb)])
}
