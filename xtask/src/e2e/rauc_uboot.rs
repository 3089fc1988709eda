//! Real RAUC (Debian 12's 1.8) with its own `bootloader=uboot` backend, on Debian's real U-Boot
//! for QEMU's x86 PC (`u-boot-qemu`'s 32-bit `qemu-x86/u-boot.rom`: its 64-bit build does not start Linux; environment
//! nowhere): U-Boot's distro boot finds `boot.scr` on the first disk's first partition, which
//! sets the board's variables and runs the board boot script (board/integration/uboot/boot.cmd),
//! the selection in an area of its own on that disk (one copy: this U-Boot has no setexpr). RAUC and overlay-init drive the same
//! BOOT_ORDER and BOOT_x_LEFT: RAUC through libubootenv's fw_printenv/fw_setenv, overlay-init
//! through its own code. A slot is its root image and its boot partition; RAUC's bundle carries
//! both.

use crate::e2e::harness::{contains, want, Ctx};
use crate::e2e::qemu::Boot;
use crate::e2e::uboot::{boot_disk_with, boot_script, power_on_cut};
use crate::{image, sh};
use std::path::Path;
use std::time::Duration;

/// The selection area on the boot disk (the first virtio disk: /dev/vda): one copy, since this
/// U-Boot has no setexpr for the redundant pair's flags (board/integration/uboot/boot.cmd).
const FW_ENV: &str = "/dev/vda 0x8000 0x4000\n";
/// Both slots as partitions of the Debian disk, U-Boot choosing; each slot's boot partition.
const AB: &str = "oinit.a=PARTLABEL=rootfs oinit.b=PARTLABEL=rootfs_b oinit.bootloader=uboot \
                  oinit.aboot=PARTLABEL=boot_a oinit.bboot=PARTLABEL=boot_b oinit.rebootdelay=1";

/// Bundle 1 installs slot B (root image and boot partition, the bookworm-backports kernel) from
/// A; U-Boot boots B on that kernel; `rauc status mark-good booted` keeps it. Bundle 2, installed
/// from B into A, is never confirmed: its first boot runs without mark-good, two more hang
/// before their kernel (QEMU stopped), and U-Boot returns to B after A's three tries; RAUC
/// then calls A bad and B primary. After each step the host reads the selection with
/// fw_printenv.
pub fn rauc(ctx: &Ctx<'_>) -> Result<(), String> {
    let env = ctx.work.join("rauc-uboot-fw_env.config");
    std::fs::write(&env, FW_ENV).map_err(|e| e.to_string())?;
    let files: [(&str, &str); 1] = [("/etc/fw_env.config", env.to_str().unwrap_or_default())];
    // RAUC mounts a plain bundle through a loop device; the initramfs loads loop.
    let initrd_a = image::initramfs_variant(ctx.root, ctx.board, "initramfs-uboot", &["loop"], &files)?;
    let (kb, _) = crate::e2e::kexec::b_kernel(ctx)?;
    let initrd_b = image::initramfs_variant(ctx.root, &kb, "initramfs-uboot", &["loop"], &files)?;
    let (ka, kbf) = (ctx.board.kernel_dir.join("vmlinuz"), kb.kernel_dir.join("vmlinuz"));

    let a = crate::e2e::debian::debian_image_as(ctx, "a", Some(&env))?;
    let b = crate::e2e::debian::debian_image_as(ctx, "b", Some(&env))?;
    let boot_b = boot_image(ctx, &kbf, &initrd_b)?;
    let bundle = crate::e2e::debian::rauc_bundle_with(ctx, &b, Some(&boot_b))?;
    let disk = crate::e2e::debian::debian_disk(ctx, &a, Some(&bundle))?;

    let modules = format!("oinit.modules={},loop", ctx.board.modules().join(","));
    let args = format!("{} {} {AB} {modules}", ctx.board.cmdline, crate::e2e::harness::SHOW_INFO);
    let wrapper = wrapper(ctx, &args)?;
    let script = boot_script(ctx)?;
    let uboot_files = [(wrapper.as_path(), "boot.scr"), (script.as_path(), "oi-boot.scr")];
    let boot_disk = boot_disk_with(ctx, "rauc-uboot", &uboot_files, [Some((&ka, &initrd_a)), None])?;
    let area = ctx.work.join("rauc-uboot-area.config");
    std::fs::write(&area, FW_ENV.replace("/dev/vda", &boot_disk.display().to_string())).map_err(|e| e.to_string())?;

    // No VGA: this U-Boot's video probe hung one power-on in three on a loaded host.
    let firmware = ["-bios", "/usr/lib/u-boot/qemu-x86/u-boot.rom", "-vga", "none"].map(String::from);
    let disks = [boot_disk.as_path(), disk.as_path()];
    // U-Boot's environment is nowhere on x86: the test's words for the kernel command line are a
    // file on the boot disk that the first script imports.
    let extra_file = ctx.work.join("rauc-uboot-extra.env");
    let set_extra = |extra: &str| -> Result<(), String> {
        std::fs::write(&extra_file, format!("oi_extra={extra}\n")).map_err(|e| e.to_string())?;
        let write = format!("write {} extra.env", extra_file.display());
        crate::e2e::harness::debugfs_write(&boot_disk, "uboot", &["rm extra.env", &write])
    };
    let power = |extra: &str, until: &str, log: &str| -> Result<Boot, String> {
        set_extra(extra)?;
        let console = power_on_cut(ctx, &firmware, &disks, (until, Duration::ZERO), log)?;
        Ok(Boot { console, timed_out: false, panicked: false })
    };
    let boot = |slot: &str, kernel: &str, extra: &str, log: &str| -> Result<Boot, String> {
        let r = power(extra, "", log)?;
        if !r.console.contains("OI: done") {
            return Err(format!("{log}: the Debian system did not finish its report ({log}.log)"));
        }
        want(&r, "slot", slot)?;
        want(&r, "kernel", kernel)?;
        Ok(r)
    };
    let selection = || -> Result<String, String> {
        let out =
            sh::output(sh::cmd("fw_printenv").arg("-c").arg(&area).args(["BOOT_ORDER", "BOOT_A_LEFT", "BOOT_B_LEFT"]))?;
        Ok(out.lines().collect::<Vec<_>>().join(" "))
    };
    let want_sel = |what: &str, want: &str| -> Result<(), String> {
        let got = selection()?;
        if got != want {
            return Err(format!("{what}: fw_printenv reads {got:?}, want {want:?}"));
        }
        Ok(())
    };
    let (ka_v, kb_v) = (ctx.board.kernel_version.as_str(), kb.kernel_version.as_str());

    let r = boot("a", ka_v, "oi.rauc=install", "rauc-uboot-1")?;
    want(&r, "rauc-install-exit", "0")?;
    contains(&r, "OI-RAUC: Booted from: rootfs.0 (A)")?;
    want_sel(
        "after RAUC's install into B (A confirmed by its mark-good unit)",
        "BOOT_ORDER=B A BOOT_A_LEFT=3 BOOT_B_LEFT=3",
    )?;
    let r = boot("b", kb_v, "oi.nomarkgood oi.rauc=mark-good-booted", "rauc-uboot-2")?;
    want(&r, "rauc-mark-good-booted-exit", "0")?;
    want(&r, "rauc-boot-status-B", "good")?;
    want_sel("after RAUC's mark-good", "BOOT_ORDER=B A BOOT_A_LEFT=3 BOOT_B_LEFT=3")?;
    // Bundle 2 from B into A, never confirmed.
    let r = boot("b", kb_v, "oi.nomarkgood oi.rauc=install", "rauc-uboot-3")?;
    want(&r, "rauc-install-exit", "0")?;
    want_sel("after RAUC's install into A", "BOOT_ORDER=A B BOOT_A_LEFT=3 BOOT_B_LEFT=2")?;
    boot("a", kb_v, "oi.nomarkgood", "rauc-uboot-4")?;
    for i in 0..2 {
        power("", "overlay-init: U-Boot chose slot A", &format!("rauc-uboot-hang-{i}"))?;
    }
    want_sel("A's tries spent", "BOOT_ORDER=A B BOOT_A_LEFT=0 BOOT_B_LEFT=2")?;
    let r = boot("b", kb_v, "", "rauc-uboot-5")?;
    want(&r, "rauc-boot-status-A", "bad")?;
    want(&r, "rauc-primary", "rootfs.1")?;
    println!("debian-rauc-uboot: RAUC's U-Boot backend installed B ({kb_v}) from A ({ka_v}), marked it good; a bundle into A never confirmed was rolled back by U-Boot after its tries");
    Ok(())
}

/// The boot slot class's image: ext4 with `vmlinuz` and `initrd.img`.
fn boot_image(ctx: &Ctx<'_>, kernel: &Path, initrd: &Path) -> Result<std::path::PathBuf, String> {
    let dir = ctx.work.join("rauc-uboot-boot");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::copy(kernel, dir.join("vmlinuz")).map_err(|e| e.to_string())?;
    std::fs::copy(initrd, dir.join("initrd.img")).map_err(|e| e.to_string())?;
    let img = ctx.work.join("rauc-uboot-boot.ext4");
    let _ = std::fs::remove_file(&img);
    sh::quiet(sh::cmd("mkfs.ext4").args(["-q", "-L", "boot", "-d"]).arg(&dir).arg(&img).arg("64M"))?;
    Ok(img)
}

/// The first script U-Boot's distro boot finds: the board's variables (the selection area on
/// this disk, `oi_load` for x86's `zboot`), then the board boot script.
fn wrapper(ctx: &Ctx<'_>, args: &str) -> Result<std::path::PathBuf, String> {
    let text = format!(
        "setenv oi_state_if virtio\nsetenv oi_state_dev 0\nsetenv oi_state_blk1 0x40\n\
         setenv oi_state_cnt 0x20\nsetenv oi_state_size 0x4000\nsetenv oi_state_addr 0x08000000\n\
         setenv oi_extra\nload virtio 0:1 0x08100000 extra.env && env import -t 0x08100000 ${{filesize}}\n\
         setenv oi_load 'setenv oi_part 3; test ${{oi_slot}} = A && setenv oi_part 2; \
         setenv bootargs \"{args} rauc.slot=${{oi_slot}} ${{oi_extra}}\"; \
         load virtio 0:${{oi_part}} ${{kernel_addr_r}} vmlinuz && load virtio 0:${{oi_part}} 0x0a000000 initrd.img \
         && zboot ${{kernel_addr_r}} 0 0x0a000000 ${{filesize}}'\n\
         load virtio 0:1 0x09000000 oi-boot.scr && source 0x09000000\n"
    );
    let src = ctx.work.join("rauc-uboot-wrapper.cmd");
    std::fs::write(&src, text).map_err(|e| e.to_string())?;
    let out = ctx.work.join("rauc-uboot-wrapper.scr");
    sh::quiet(sh::cmd("mkimage").args(["-A", "x86", "-T", "script", "-C", "none", "-d"]).arg(&src).arg(&out))?;
    Ok(out)
}
