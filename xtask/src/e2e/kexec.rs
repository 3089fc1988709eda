//! End-to-end tests of the kernel hand-over (`oinit.kexec`): slot a carries Debian's 6.1 kernel
//! (the one the board boots, so stage one goes on without a hand-over), slot b the
//! bookworm-backports 6.12 kernel with an initramfs built for it; `uname -r` in the real init
//! says which kernel ran.

use crate::board::Board;
use crate::e2e::harness::{ab_settings, booted, contains, want, Ctx};
use crate::e2e::qemu::Boot;
use crate::image;
use std::path::{Path, PathBuf};

/// Where stage one finds the slot's kernel (the lower's mount point and the default name).
const LOWER_KERNEL: &str = "/run/overlay-init/lower/boot/vmlinuz";

/// The kernel series slot b carries.
const B_SERIES: &str = "6.12";

/// The A/B settings and the hand-over on.
fn settings(ctx: &Ctx<'_>, extra: &str) -> String {
    format!("{} oinit.kexec=1 {extra}", ab_settings(ctx.board))
}

fn boot(ctx: &Ctx<'_>, disk: &Path, extra: &str, log: &str) -> Result<Boot, String> {
    let b = ctx.boot(disk, &settings(ctx, extra), log)?;
    booted(&b)?;
    Ok(b)
}

/// A slot image: the test system with `kernel` and `initrd` as /boot/vmlinuz and
/// /boot/initrd.img (the settings' defaults), and beside an uncompressed kernel (arm64's Image)
/// its banner as /boot/vmlinuz.version, which says which kernel it is.
fn slot_image(ctx: &Ctx<'_>, variant: &str, name: &str, kernel: &Path, initrd: &Path) -> Result<PathBuf, String> {
    let dir = image::rootfs_tree(ctx.root, ctx.board, variant, name, &[])?;
    std::fs::create_dir_all(dir.join("boot")).map_err(|e| e.to_string())?;
    for (from, to) in [(kernel, "boot/vmlinuz"), (initrd, "boot/initrd.img")] {
        std::fs::copy(from, dir.join(to)).map_err(|e| format!("{}: {e}", from.display()))?;
    }
    let bytes = std::fs::read(kernel).map_err(|e| format!("{}: {e}", kernel.display()))?;
    if let Some(banner) = banner(&bytes) {
        std::fs::write(dir.join("boot/vmlinuz.version"), format!("{banner}\n")).map_err(|e| e.to_string())?;
    }
    image::squash(&dir, variant, &ctx.board.out_dir(ctx.root).join(format!("{name}.sqfs")))
}

/// The `Linux version ...` line of an uncompressed kernel, what /proc/version says when it runs.
pub fn banner(kernel: &[u8]) -> Option<String> {
    let at = kernel.windows(14).position(|w| w == b"Linux version ")?;
    let end = kernel[at..].iter().position(|b| *b == b'\n' || *b == 0)?;
    Some(String::from_utf8_lossy(&kernel[at..at + end]).into_owned())
}

/// The board with slot b's kernel series, and its initramfs (the same board config, that
/// kernel's modules).
fn b_kernel(ctx: &Ctx<'_>) -> Result<(Board, PathBuf), String> {
    let b = Board::load_series(ctx.root, &ctx.board.name, B_SERIES)
        .map_err(|e| format!("slot b's kernel {B_SERIES}: {e} (tests/setup.sh downloads it)"))?;
    let initrd = image::initramfs(ctx.root, &b)?;
    Ok((b, initrd))
}

/// A disk whose slot a holds the board's kernel and initramfs and slot b `b_kernel` and
/// `b_initrd`.
fn disk(ctx: &Ctx<'_>, name: &str, b_kernel: &Path, b_initrd: &Path) -> Result<PathBuf, String> {
    let a = slot_image(ctx, "a", "rootfs-kexec-a", &ctx.board.kernel_dir.join("vmlinuz"), &ctx.initrd)?;
    let b = slot_image(ctx, "b", &format!("rootfs-{name}-b"), b_kernel, b_initrd)?;
    let disk = ctx.work.join(format!("{name}.img"));
    image::disk::build_with(ctx.root, ctx.board, &[a, b], &disk)?;
    Ok(disk)
}

/// Slot a boots on the running kernel without a hand-over; slot b's trial boots run its own
/// 6.12 kernel through the hand-over, each counted once, its upper kept from one to the next;
/// never marked good, it rolls back to a and a's kernel. On a second disk b is marked good and
/// stays; a factory reset asked for on its boot happens in stage one and stage two boots the
/// fresh upper.
pub fn slot_kernels(ctx: &Ctx<'_>) -> Result<(), String> {
    let (kb, initrd_b) = b_kernel(ctx)?;
    let (a_kernel, b_kernel) = (ctx.board.kernel_version.as_str(), kb.kernel_version.as_str());
    let counter = |b: &Boot| b.marker("counter").and_then(|c| c.parse::<u32>().ok()).ok_or("no counter");

    let disk1 = disk(ctx, "kexec", &kb.kernel_dir.join("vmlinuz"), &initrd_b)?;
    let b = boot(ctx, &disk1, "oitest=mark-good,rollback", "kexec-1")?;
    want(&b, "slot", "a")?;
    want(&b, "kernel", a_kernel)?;
    contains(&b, "slot a's kernel is the running one")?;
    // Slot b's trial: stage one on a's kernel chooses and counts, stage two runs b's kernel.
    let b = boot(ctx, &disk1, "", "kexec-2")?;
    want(&b, "slot", "b")?;
    want(&b, "kernel", b_kernel)?;
    contains(&b, "slot b: handing over to its own kernel")?;
    contains(&b, &format!("stage two of a kernel hand-over: slot b chosen by stage one on {a_kernel}"))?;
    contains(&b, "OI-STATUS: kernel hand-over: \"stage1\": {\"kernel\":")?;
    contains(&b, "OI-STATUS: slot b: on trial, 1 tries left")?;
    // Stage one unmounted the data partition: stage two's kernel finds it clean.
    for dirty in ["unmount /run/overlay-init/data:", "recovery complete"] {
        if b.console.contains(dirty) {
            return Err(format!("the data partition was not left clean for stage two: console says {dirty:?}"));
        }
    }
    let before = counter(&b)?;
    let b = boot(ctx, &disk1, "", "kexec-3")?;
    want(&b, "kernel", b_kernel)?;
    contains(&b, "OI-STATUS: slot b: on trial, 0 tries left")?;
    if counter(&b)? != before + 1 {
        return Err(format!(
            "slot b's upper lost a write across the hand-over: counter {before} then {:?}",
            counter(&b)
        ));
    }
    // Never marked good: back to a, on a's kernel, without a hand-over.
    let b = boot(ctx, &disk1, "", "kexec-4")?;
    want(&b, "slot", "a")?;
    want(&b, "kernel", a_kernel)?;
    contains(&b, "rolled back")?;

    let disk2 = disk(ctx, "kexec-good", &kb.kernel_dir.join("vmlinuz"), &initrd_b)?;
    boot(ctx, &disk2, "oitest=mark-good,rollback", "kexec-good-1")?;
    let b = boot(ctx, &disk2, "oitest=mark-good", "kexec-good-2")?;
    want(&b, "kernel", b_kernel)?;
    want(&b, "mark-good-exit", "0")?;
    // Marked good, b stays on its own kernel; the reset is done by stage one.
    let b = boot(ctx, &disk2, "oinit.factoryreset", "kexec-good-3")?;
    want(&b, "slot", "b")?;
    want(&b, "kernel", b_kernel)?;
    contains(&b, "FACTORY RESET")?;
    contains(&b, "OI-STATUS: slot b: good")?;
    want(&b, "counter", "1")
}

/// Slot b's kernel refused, by the init (not a kernel), and on x86_64 by the running kernel
/// (6.12's bzImage with `XLF_KERNEL_64` cleared in its setup header: the init's header check
/// passes, the kernel's bzImage64 loader says ENOEXEC), on arm64 by the init's placement (an
/// Image asking for more memory than the board has): the slot fails like an image that does
/// not mount, slot a boots in the same boot on its kernel.
pub fn refused_falls_back(ctx: &Ctx<'_>) -> Result<(), String> {
    let (kb, initrd_b) = b_kernel(ctx)?;
    let dir = ctx.work.join("kexec-bad");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let script = dir.join("not-a-kernel");
    std::fs::write(&script, "#!/bin/sh\necho this is not a kernel\n").map_err(|e| e.to_string())?;
    let mut cases = vec![("kexec-notkernel", script, "/boot/vmlinuz is refused: not an".to_string())];
    let refused = dir.join("refused-kernel");
    std::fs::copy(kb.kernel_dir.join("vmlinuz"), &refused).map_err(|e| e.to_string())?;
    if ctx.board.rust_target.starts_with("x86_64") {
        // xloadflags (offset 0x236, Documentation/arch/x86/boot.rst), bit 0: XLF_KERNEL_64.
        let flags = image::read_at(&refused, 0x236, 1)?;
        image::write_at(&refused, 0x236, &[flags[0] & !1])?;
        cases.push(("kexec-not64", refused, format!("kexec_file_load {LOWER_KERNEL}: Exec format error")));
    } else {
        // image_size (offset 16 of the arm64 header): 64 GiB, more than any RAM range here.
        image::write_at(&refused, 16, &(64u64 << 30).to_le_bytes())?;
        cases.push(("kexec-toobig", refused, format!("kexec: {LOWER_KERNEL} is refused: no RAM range holds")));
    }
    for (name, kernel, says) in cases {
        let disk = disk(ctx, name, &kernel, &initrd_b)?;
        boot(ctx, &disk, "oitest=mark-good,rollback", &format!("{name}-1"))?;
        let b = boot(ctx, &disk, "", &format!("{name}-2"))?;
        contains(&b, &says)?;
        contains(&b, "falling back to slot a in this boot")?;
        want(&b, "slot", "a")?;
        want(&b, "kernel", &ctx.board.kernel_version)?;
        contains(&b, "OI-STATUS: slot b: bad")?;
    }
    Ok(())
}
