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

/// The A/B settings and the hand-over on; `loop` among the modules, which `install` mounts the
/// image with to check its kernel (a boot from partitions does not load it by itself).
pub fn settings(ctx: &Ctx<'_>, extra: &str) -> String {
    let modules = ctx.board.modules().join(",");
    format!("{} oinit.kexec=1 oinit.modules={modules},loop {extra}", ab_settings(ctx.board))
}

fn boot(ctx: &Ctx<'_>, disk: &Path, extra: &str, log: &str) -> Result<Boot, String> {
    let b = ctx.boot(disk, &settings(ctx, extra), log)?;
    booted(&b)?;
    Ok(b)
}

/// Slot `variant`'s image `name` with its own boot (`files`: kernel, initramfs) and `kernel`'s
/// modules index.
fn slot_image(
    ctx: &Ctx<'_>,
    variant: &str,
    name: &str,
    kernel: &Board,
    files: (&Path, &Path),
) -> Result<PathBuf, String> {
    image::slot::build(ctx.root, ctx.board, variant, name, kernel, files)
}

/// The board with slot b's kernel series, and its initramfs (the same board config, that
/// kernel's modules).
pub fn b_kernel(ctx: &Ctx<'_>) -> Result<(Board, PathBuf), String> {
    let b = Board::load_series(ctx.root, &ctx.board.name, B_SERIES)
        .map_err(|e| format!("slot b's kernel {B_SERIES}: {e} (tests/setup.sh downloads it)"))?;
    let initrd = image::initramfs(ctx.root, &b)?;
    Ok((b, initrd))
}

/// A disk whose slot a holds the board's kernel and initramfs and slot b `b_kernel` and
/// `b_initrd` with `kb`'s modules (the data partition holds both images for `install`).
pub fn disk(ctx: &Ctx<'_>, name: &str, kb: &Board, b_kernel: &Path, b_initrd: &Path) -> Result<PathBuf, String> {
    let a_files = (ctx.board.kernel_dir.join("vmlinuz"), ctx.initrd.clone());
    let a = slot_image(ctx, "a", "rootfs-kexec-a", ctx.board, (&a_files.0, &a_files.1))?;
    let b = slot_image(ctx, "b", &format!("rootfs-{name}-b"), kb, (b_kernel, b_initrd))?;
    let disk = ctx.work.join(format!("{name}.img"));
    image::disk::build_with(ctx.root, ctx.board, &[a, b], &disk)?;
    Ok(disk)
}

/// Slot a boots on the running kernel without a hand-over; slot b's trial boots run its own
/// 6.12 kernel through the hand-over, each counted once, its upper kept from one to the next;
/// never marked good, it rolls back to a and a's kernel; `install` offers it again after checking
/// its kernel, initramfs and modules belong together. On a second disk b is marked good and
/// stays; a factory reset asked for on its boot happens in stage one and stage two boots the
/// fresh upper.
pub fn slot_kernels(ctx: &Ctx<'_>) -> Result<(), String> {
    let (kb, initrd_b) = b_kernel(ctx)?;
    let (a_kernel, b_kernel) = (ctx.board.kernel_version.as_str(), kb.kernel_version.as_str());
    let counter = |b: &Boot| b.marker("counter").and_then(|c| c.parse::<u32>().ok()).ok_or("no counter");

    let disk1 = disk(ctx, "kexec", &kb, &kb.kernel_dir.join("vmlinuz"), &initrd_b)?;
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
    // Installed again: the image's kernel, initramfs and modules are checked before it is written.
    let b = boot(ctx, &disk1, "oitest=install", "kexec-5")?;
    want(&b, "install-exit", "0")?;
    contains(
        &b,
        &format!(
            "install: its kernel {b_kernel}, its gzip-compressed cpio and /lib/modules/{b_kernel} belong together"
        ),
    )?;
    let b = boot(ctx, &disk1, "", "kexec-6")?;
    want(&b, "slot", "b")?;
    want(&b, "kernel", b_kernel)?;

    let disk2 = disk(ctx, "kexec-good", &kb, &kb.kernel_dir.join("vmlinuz"), &initrd_b)?;
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
/// Image asking for more memory than the board has; a device tree that is not one; a command line
/// that leaves no room for stage two's marker: the kernel cuts a longer one at 2047 bytes), on
/// 32-bit ARM by the init's check of the initramfs (not a cpio archive): the slot fails like an
/// image that does not mount, slot a boots in the same boot on its kernel.
pub fn refused_falls_back(ctx: &Ctx<'_>) -> Result<(), String> {
    let (kb, initrd_b) = b_kernel(ctx)?;
    let dir = ctx.work.join("kexec-bad");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let script = dir.join("not-a-kernel");
    std::fs::write(&script, "#!/bin/sh\necho this is not a kernel\n").map_err(|e| e.to_string())?;
    let kernel_b = kb.kernel_dir.join("vmlinuz");
    let says = "/boot/vmlinuz is refused: not an".to_string();
    let mut cases = vec![("kexec-notkernel", script.clone(), initrd_b.clone(), String::new(), says)];
    let refused = dir.join("refused-kernel");
    std::fs::copy(&kernel_b, &refused).map_err(|e| e.to_string())?;
    if ctx.board.rust_target.starts_with("x86_64") {
        // xloadflags (offset 0x236, Documentation/arch/x86/boot.rst), bit 0: XLF_KERNEL_64.
        let flags = image::read_at(&refused, 0x236, 1)?;
        image::write_at(&refused, 0x236, &[flags[0] & !1])?;
        let says = format!("kexec_file_load {LOWER_KERNEL}: Exec format error");
        cases.push(("kexec-not64", refused, initrd_b, String::new(), says));
    } else if ctx.board.rust_target.starts_with("aarch64") {
        // image_size (offset 16 of the arm64 header): 64 GiB, more than any RAM range here.
        image::write_at(&refused, 16, &(64u64 << 30).to_le_bytes())?;
        let says = format!("kexec: {LOWER_KERNEL} is refused: no RAM range holds");
        cases.push(("kexec-toobig", refused, initrd_b.clone(), String::new(), says));
        let says = "/run/overlay-init/lower/bin/busybox is refused: not a flattened device tree".to_string();
        cases.push(("kexec-notdtb", kernel_b.clone(), initrd_b.clone(), "oinit.kexecdtb=/bin/busybox".into(), says));
        // A parameter the kernel ignores (a module's, of no module), long enough to be cut.
        let pad = format!("oipad.x={}", "p".repeat(2100));
        let says = "/proc/cmdline is refused: the command line for the slot's kernel would be".to_string();
        cases.push(("kexec-longcmdline", kernel_b, initrd_b, pad, says));
    } else {
        let says = "/run/overlay-init/lower/boot/initrd.img is refused: not a cpio archive".to_string();
        cases.push(("kexec-notcpio", kernel_b, script, String::new(), says));
    }
    for (name, kernel, initrd, extra, says) in cases {
        let disk = disk(ctx, name, &kb, &kernel, &initrd)?;
        boot(ctx, &disk, &format!("oitest=mark-good,rollback {extra}"), &format!("{name}-1"))?;
        let b = boot(ctx, &disk, &extra, &format!("{name}-2"))?;
        contains(&b, &says)?;
        contains(&b, "falling back to slot a in this boot")?;
        want(&b, "slot", "a")?;
        want(&b, "kernel", &ctx.board.kernel_version)?;
        contains(&b, "OI-STATUS: slot b: bad")?;
        if name == "kexec-notkernel" {
            // The same image offered by install: refused before a byte is written.
            let b = boot(ctx, &disk, "oitest=install", &format!("{name}-3"))?;
            want(&b, "install-exit", "1")?;
            contains(&b, "/boot/vmlinuz in the image is refused: not an")?;
            contains(&b, "nothing written")?;
        }
    }
    Ok(())
}

/// The slot's kernel is read through dm-verity like every other file of its image: slot b's
/// signed image with one byte of its kernel's stored data changed, blocks checked as they are read
/// (`oinit.verityfullcheck=never`, so the kernel file itself is what finds it) and I/O errors
/// instead of a restart (`oinit.verityerror=eio`): stage one cannot read the kernel, refuses
/// the slot, and slot a (signed, intact) boots in the same boot. The unchanged image hands over,
/// and stage two's initramfs verifies the lower again with its own copy of the key.
pub fn verified_kernel(ctx: &Ctx<'_>) -> Result<(), String> {
    use crate::sh;
    let (kb, _) = b_kernel(ctx)?;
    let out = ctx.board.out_dir(ctx.root).join("kexec-verity");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let (key, public) = (out.join("test.key"), out.join("test.pub"));
    sh::run(sh::cmd("openssl").args(["genpkey", "-algorithm", "ed25519", "-out"]).arg(&key))?;
    std::fs::write(&public, sh::output_bytes(sh::cmd("openssl").args(["pkey", "-pubout", "-in"]).arg(&key))?)
        .map_err(|e| e.to_string())?;
    // Each kernel's initramfs with the key and dm-verity: stage one's and stage two's.
    let initrd = |b: &Board| -> Result<PathBuf, String> {
        let conf = out.join(format!("{}.conf", b.kernel_version));
        let board_conf = std::fs::read_to_string(b.dir.join("overlay-init.conf")).map_err(|e| e.to_string())?;
        std::fs::write(&conf, format!("{board_conf}\noinit.veritykey=/etc/overlay-init/verity.pub\n"))
            .map_err(|e| e.to_string())?;
        let (c, p) = (conf.display().to_string(), public.display().to_string());
        let files = [("/etc/overlay-init.conf", c.as_str()), ("/etc/overlay-init/verity.pub", p.as_str())];
        image::initramfs_variant(ctx.root, b, "initramfs-kexec-verity", &["dm_verity"], &files)
    };
    let (initrd_a, initrd_b) = (initrd(ctx.board)?, initrd(&kb)?);
    let a =
        slot_image(ctx, "a", "rootfs-kexec-verity-a", ctx.board, (&ctx.board.kernel_dir.join("vmlinuz"), &initrd_a))?;
    let b = slot_image(ctx, "b", "rootfs-kexec-verity-b", &kb, (&kb.kernel_dir.join("vmlinuz"), &initrd_b))?;
    // Made again with the kernel's data first: 1 MiB into the image is inside its (compressed)
    // blocks, past the superblock's verity block and before the tables at the end.
    let tree = ctx.board.out_dir(ctx.root).join("rootfs-kexec-verity-b");
    let sort = out.join("kernel-first.sort");
    std::fs::write(&sort, "boot/vmlinuz 32767\n").map_err(|e| e.to_string())?;
    sh::run(
        sh::cmd("mksquashfs")
            .arg(&tree)
            .arg(&b)
            .args(["-noappend", "-all-root", "-quiet", "-no-progress", "-sort"])
            .arg(&sort),
    )?;
    const IN_KERNEL: u64 = 1 << 20;
    let mut signed = Vec::new();
    for sqfs in [a, b] {
        let to = sqfs.with_extension("img");
        let script = ctx.root.join("board/integration/verity/sign-image.sh");
        sh::quiet(sh::cmd("sh").arg(script).arg(&sqfs).arg(&key).arg(&to))?;
        signed.push(to);
    }
    let disk = |name: &str, tamper: bool| -> Result<PathBuf, String> {
        let disk = ctx.fresh_disk(name)?;
        let parts = image::partitions(&disk)?;
        for (part, img) in crate::e2e::harness::slot_parts(ctx.board).iter().zip(&signed) {
            image::write_at(&disk, image::part(&parts, part)?.start, &std::fs::read(img).map_err(|e| e.to_string())?)?;
        }
        if tamper {
            let p = image::part(&parts, &crate::e2e::harness::slot_parts(ctx.board)[1])?;
            let byte = image::read_at(&disk, p.start + IN_KERNEL, 1)?;
            image::write_at(&disk, p.start + IN_KERNEL, &[byte[0] ^ 0x40])?;
        }
        Ok(disk)
    };
    let boot = |disk: &Path, extra: &str, log: &str| -> Result<Boot, String> {
        let b = ctx.boot_with(&initrd_a, disk, &settings(ctx, &format!("oinit.verityerror=eio {extra}")), log)?;
        booted(&b)?;
        Ok(b)
    };
    let good = disk("kexec-verity", false)?;
    boot(&good, "oitest=mark-good,rollback", "kexec-verity-1")?;
    let b = boot(&good, "", "kexec-verity-2")?;
    want(&b, "slot", "b")?;
    want(&b, "kernel", &kb.kernel_version)?;
    // Stage two set up dm-verity itself.
    contains(&b, "\"verity\": {\"device\": \"/dev/mapper/oinit-b\"")?;
    contains(&b, "slot b: handing over to its own kernel")?;
    let bad = disk("kexec-verity-tampered", true)?;
    boot(&bad, "oitest=mark-good,rollback", "kexec-verity-tampered-1")?;
    let b = boot(&bad, "oinit.verityfullcheck=never", "kexec-verity-tampered-2")?;
    // Read by the kernel inside kexec_file_load, through the verity device.
    contains(&b, &format!("{LOWER_KERNEL}: I/O error"))?;
    contains(&b, "dm-verity found a changed block")?;
    // The kernel's own word that dm-verity caught it.
    contains(&b, "device-mapper: verity: ")?;
    contains(&b, " is corrupted")?;
    contains(&b, "falling back to slot a in this boot")?;
    want(&b, "slot", "a")?;
    want(&b, "kernel", &ctx.board.kernel_version)
}

/// Power cut during the install of slot b's image (its own 6.12 kernel inside): wherever the cut
/// lands, the next boot runs: slot a on a's kernel while the install is unfinished, or slot b on
/// b's kernel once it completed; never a slot whose kernel and image disagree.
pub fn install_power_cut(ctx: &Ctx<'_>) -> Result<(), String> {
    let (kb, initrd_b) = b_kernel(ctx)?;
    let base = disk(ctx, "kexec-cut", &kb, &kb.kernel_dir.join("vmlinuz"), &initrd_b)?;
    // Slot a good, slot b's partition emptied: only the install can make it bootable.
    boot(ctx, &base, "oitest=mark-good", "kexec-cut-setup")?;
    let p = image::part(&image::partitions(&base)?, &crate::e2e::harness::slot_parts(ctx.board)[1])?;
    image::write_at(&base, p.start, &vec![0u8; p.size as usize])?;
    for (i, delay) in [1500u64, 4000].into_iter().enumerate() {
        let disk = ctx.work.join(format!("kexec-cut-{i}.img"));
        std::fs::copy(&base, &disk).map_err(|e| e.to_string())?;
        let append = settings(ctx, "oitest=install");
        let log = format!("kexec-cut-{i}-cut");
        let cut = ctx.boot_cut(&disk, &append, &log, "OI-REPORT-END", std::time::Duration::from_millis(delay))?;
        let finished = cut.console.contains("OI: install-exit=0");
        let b = boot(ctx, &disk, "", &format!("kexec-cut-{i}-after"))?;
        match b.marker("slot").as_deref() {
            Some("a") => want(&b, "kernel", &ctx.board.kernel_version)?,
            Some("b") if finished || b.console.contains("trial boot") => want(&b, "kernel", &kb.kernel_version)?,
            other => return Err(format!("cut {i} ({delay} ms): booted slot {other:?}")),
        }
        if b.console.contains("slot b unusable") {
            return Err(format!("cut {i} ({delay} ms): a half-installed slot b was offered"));
        }
        println!("kexec-install-power-cut: cut {i} after {delay} ms: install finished before the cut: {finished}");
    }
    Ok(())
}
