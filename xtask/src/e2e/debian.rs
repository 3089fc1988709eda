//! A real Debian 12 userspace as the lower: `debootstrap --variant=minbase` with systemd, udev,
//! RAUC and kmod (cached under target/debian, so only the first run pays), squashed into both
//! slots of a disk of its own, booted by the qemu-x86_64 board's initramfs. A systemd unit
//! reports on the console what a user would check, then runs `systemctl poweroff`.

use crate::e2e::harness::{contains, ext4_header, needs_recovery, want, Ctx};
use crate::image;
use crate::sh;
use std::path::{Path, PathBuf};

const SUITE: &str = "bookworm";
const PACKAGES: &str = "systemd-sysv,udev,rauc,rauc-service,kmod,e2fsprogs,libubootenv-tool";
const MIRROR: &str = "http://deb.debian.org/debian";
/// Both slots as partitions, as a product with RAUC has them.
const AB: &str = "oinit.a=PARTLABEL=rootfs oinit.b=PARTLABEL=rootfs_b oinit.tries=3";

/// Real RAUC (Debian's 1.8) drives the slots through `bootloader=custom`: `rauc status` names
/// the booted slot (the service drop-in), a bundle signed on the host is installed into slot b,
/// which boots on trial and is confirmed by the mark-good unit; `rauc status mark-active booted`
/// keeps the upper; `mark-bad booted` sends the next boot to a and `mark-good other` +
/// `mark-active other` bring b back, RAUC's and overlay-init's views agreeing after each; a
/// second update that is never confirmed rolls back after its one try, with the old slot's data
/// intact.
pub fn rauc(ctx: &Ctx<'_>) -> Result<(), String> {
    let (a, b) = (debian_image(ctx, "a")?, debian_image(ctx, "b")?);
    let bundle = rauc_bundle(ctx, &b)?;
    let disk = debian_disk(ctx, &a, Some(&bundle))?;
    // RAUC mounts a plain bundle through a loop device, and this Debian tree carries no kernel
    // modules for the kernel to load it from: the initramfs loads loop (a boot from partition
    // slots does not need it itself).
    let modules = format!("oinit.modules={},loop", ctx.board.modules().join(","));
    let boot = |extra: &str, log: &str| ctx.boot(&disk, &format!("{AB} {modules} {extra}"), log);
    let r = boot("oi.rauc=install", "rauc-1")?;
    want(&r, "slot", "a")?;
    contains(&r, "OI-RAUC: Booted from: rootfs.0 (a)")?;
    want(&r, "rauc-install-exit", "0")?;
    contains(&r, "OI-STATUS: slot b: not booted yet")?;
    let r = boot("", "rauc-2")?;
    want(&r, "slot", "b")?;
    want(&r, "image", "b")?;
    // The default carry policy reconciled a's upper into b's: the counter came along.
    want(&r, "counter", "2")?;
    contains(&r, "OI-STATUS: slot b: good")?;
    let r = boot("oi.rauc=mark-active", "rauc-3")?;
    want(&r, "rauc-mark-active-exit", "0")?;
    want(&r, "counter", "3")?;
    contains(&r, "OI-STATUS: slot b: good")?;
    want(&r, "rauc-boot-status-b", "good")?;
    // `rauc status mark-bad booted`: RAUC and overlay-init agree b is bad, and a boots next.
    let r = boot("oi.rauc=mark-bad-booted", "rauc-3b")?;
    want(&r, "rauc-mark-bad-booted-exit", "0")?;
    want(&r, "rauc-boot-status-b", "bad")?;
    contains(&r, "OI-STATUS: slot b: bad")?;
    want(&r, "rauc-primary", "rootfs.0")?;
    // From a: `mark-good other` and `mark-active other` bring b back, upper and all.
    let r = boot("oi.rauc=mark-good-other,mark-active-other", "rauc-3c")?;
    want(&r, "slot", "a")?;
    want(&r, "counter", "2")?;
    want(&r, "rauc-mark-good-other-exit", "0")?;
    want(&r, "rauc-boot-status-b", "good")?;
    contains(&r, "OI-STATUS: slot b: good")?;
    want(&r, "rauc-primary", "rootfs.1")?;
    // The upper survived mark-active, and an update that is never confirmed rolls back.
    let r = boot("oi.rauc=install oinit.tries=1", "rauc-4")?;
    want(&r, "slot", "b")?;
    want(&r, "counter", "5")?;
    want(&r, "rauc-install-exit", "0")?;
    let r = boot("oi.nomarkgood", "rauc-5")?;
    want(&r, "slot", "a")?;
    contains(&r, "OI-STATUS: slot a: on trial")?;
    let r = boot("", "rauc-6")?;
    want(&r, "slot", "b")?;
    want(&r, "counter", "6")?;
    contains(&r, "rolled back")
}

/// systemd is PID 1 on the overlay, no unit failed, the mark-good unit ran after
/// boot-complete.target and took the slot out of its trial, systemd took over the watchdog the
/// init armed, a counter persists, and `systemctl poweroff` leaves the data ext4 clean.
pub fn systemd(ctx: &Ctx<'_>) -> Result<(), String> {
    let sqfs = debian_image(ctx, "a")?;
    let disk = debian_disk(ctx, &sqfs, None)?;
    for n in 1..=2 {
        let b = ctx.boot(&disk, AB, &format!("debian-{n}"))?;
        want(&b, "pid1", "systemd")?;
        want(&b, "rootfs", "overlay")?;
        want(&b, "failed-units", "0")?;
        want(&b, "counter", &n.to_string())?;
        want(&b, "mark-good", "active")?;
        want(&b, "mark-good-after-boot-complete", "yes")?;
        want(&b, "watchdog", "1min")?;
        contains(&b, "OI-STATUS: slot a: good")?;
        contains(&b, "shutdown: ")?;
        if needs_recovery(&ext4_header(&disk, "userdata", 0)?) {
            return Err(format!("boot {n}: the data partition needs journal recovery after systemctl poweroff"));
        }
    }
    Ok(())
}

/// The cached debootstrap tree, made on first use.
fn debian_rootfs(root: &Path) -> Result<PathBuf, String> {
    let dir = root.join("target/debian");
    let rootfs = dir.join("rootfs");
    // The marker holds the package list: a tree made with other packages is made again.
    if std::fs::read_to_string(dir.join("rootfs.done")).is_ok_and(|p| p == PACKAGES) {
        return Ok(rootfs);
    }
    let _ = std::fs::remove_dir_all(&rootfs);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    println!("debootstrap {SUITE} ({PACKAGES}) into {} (once; cached)", rootfs.display());
    sh::quiet(
        sh::cmd("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={PACKAGES}"))
            .arg(SUITE)
            .arg(&rootfs)
            .arg(MIRROR),
    )?;
    std::fs::write(dir.join("rootfs.done"), PACKAGES).map_err(|e| e.to_string())?;
    Ok(rootfs)
}

/// The tree with overlay-init, the board integration and the report unit, squashed; `variant`
/// names the image (/etc/image-version, and a build time of its own as two releases have).
fn debian_image(ctx: &Ctx<'_>, variant: &str) -> Result<PathBuf, String> {
    debian_image_as(ctx, variant, None)
}

/// `debian_image`; with `uboot` (the board's fw_env.config) RAUC's U-Boot configuration instead
/// of the custom backend's, and the environment's place for RAUC's fw_printenv and fw_setenv.
pub(super) fn debian_image_as(ctx: &Ctx<'_>, variant: &str, uboot: Option<&Path>) -> Result<PathBuf, String> {
    // Built once per run: both scenarios boot the same image a.
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let root = ctx.root;
    let name = if uboot.is_some() { format!("{variant}-uboot") } else { variant.to_string() };
    let img = root.join(format!("target/debian/rootfs-{name}.sqfs"));
    let mut built = BUILT.lock().map_err(|_| "image cache lock poisoned")?;
    if built.contains(&name) && img.exists() {
        return Ok(img);
    }
    built.push(name);
    let rootfs = debian_rootfs(root)?;
    let stage = root.join("target/debian/stage");
    let _ = std::fs::remove_dir_all(&stage);
    sh::run(sh::cmd("cp").arg("-a").arg(&rootfs).arg(&stage))?;
    let init = image::build_init(root, ctx.board)?;
    let integration = root.join("board/integration");
    let mut copies = vec![
        (init.clone(), "usr/bin/overlay-init"),
        (root.join("tests/debian/oi-report"), "usr/local/sbin/oi-report"),
        (root.join("tests/debian/oi-report.service"), "etc/systemd/system/oi-report.service"),
        (
            integration.join("systemd/overlay-init-mark-good.service"),
            "etc/systemd/system/overlay-init-mark-good.service",
        ),
        (
            integration.join("systemd/system.conf.d/overlay-init-watchdog.conf"),
            "etc/systemd/system.conf.d/overlay-init-watchdog.conf",
        ),
        (rauc_keys(root)?.0, "etc/rauc/keyring.pem"),
        (root.join("tests/debian/no-mark-good.conf"), "etc/systemd/system/overlay-init-mark-good.service.d/test.conf"),
    ];
    match uboot {
        // RAUC reads the booted slot from rauc.slot=, which U-Boot's boot script sets.
        Some(env) => copies.extend([
            (integration.join("rauc/system-uboot.conf"), "etc/rauc/system.conf"),
            (env.to_path_buf(), "etc/fw_env.config"),
        ]),
        None => copies.extend([
            (integration.join("rauc/system.conf"), "etc/rauc/system.conf"),
            (
                integration.join("rauc/rauc.service.d/overlay-init-boot-slot.conf"),
                "etc/systemd/system/rauc.service.d/overlay-init-boot-slot.conf",
            ),
        ]),
    }
    for (src, dst) in copies {
        let to = stage.join(dst);
        std::fs::create_dir_all(to.parent().unwrap_or(&stage)).map_err(|e| e.to_string())?;
        std::fs::copy(&src, &to).map_err(|e| format!("{}: {e}", src.display()))?;
    }
    use std::os::unix::fs::PermissionsExt;
    for exe in ["usr/bin/overlay-init", "usr/local/sbin/oi-report"] {
        std::fs::set_permissions(stage.join(exe), std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    }
    let links = [
        ("overlay-init", "usr/bin/overlay-init-rauc"),
        ("/etc/systemd/system/oi-report.service", "etc/systemd/system/multi-user.target.wants/oi-report.service"),
        (
            "/etc/systemd/system/overlay-init-mark-good.service",
            "etc/systemd/system/basic.target.wants/overlay-init-mark-good.service",
        ),
    ];
    for (target, link) in links {
        let at = stage.join(link);
        std::fs::create_dir_all(at.parent().unwrap_or(&stage)).map_err(|e| e.to_string())?;
        std::os::unix::fs::symlink(target, &at).map_err(|e| format!("{link}: {e}"))?;
    }
    // The root is the overlay the init assembled: nothing in fstab mounts it again.
    std::fs::write(stage.join("etc/fstab"), "# / is the overlay assembled by overlay-init\n")
        .map_err(|e| e.to_string())?;
    std::fs::write(stage.join("etc/hostname"), "oi-debian\n").map_err(|e| e.to_string())?;
    std::fs::write(stage.join("etc/image-version"), format!("{variant}\n")).map_err(|e| e.to_string())?;
    let time = if variant == "a" { "1700000000" } else { "1700086400" };
    sh::run(sh::cmd("mksquashfs").arg(&stage).arg(&img).args([
        "-noappend",
        "-quiet",
        "-no-progress",
        "-no-xattrs",
        "-mkfs-time",
        time,
    ]))?;
    Ok(img)
}

/// A test signing key and its self-signed certificate (the image's keyring), made once.
fn rauc_keys(root: &Path) -> Result<(PathBuf, PathBuf), String> {
    let dir = root.join("target/debian");
    let (cert, key) = (dir.join("rauc-cert.pem"), dir.join("rauc-key.pem"));
    if !cert.exists() || !key.exists() {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        sh::quiet(
            sh::cmd("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "3650",
                    "-subj",
                    "/CN=overlay-init test",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        )?;
    }
    Ok((cert, key))
}

/// A RAUC bundle for the rootfs slot class holding `image`, signed with the test key.
fn rauc_bundle(ctx: &Ctx<'_>, image: &Path) -> Result<PathBuf, String> {
    rauc_bundle_with(ctx, image, None)
}

/// `rauc_bundle`, with the boot slot class's image (`boot`, an ext4 image) when given.
pub(super) fn rauc_bundle_with(ctx: &Ctx<'_>, image: &Path, boot: Option<&Path>) -> Result<PathBuf, String> {
    let (cert, key) = rauc_keys(ctx.root)?;
    let dir = ctx.work.join("bundle");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::copy(image, dir.join("rootfs.img")).map_err(|e| e.to_string())?;
    // RAUC's plain format: a verity bundle needs dm-verity in the running system, and this test
    // image carries no kernel modules (the initramfs loads what the boot needs).
    let mut manifest =
        "[update]\ncompatible=example-gateway\nversion=2\n\n[bundle]\nformat=plain\n\n[image.rootfs]\nfilename=rootfs.img\n"
            .to_string();
    if let Some(boot) = boot {
        std::fs::copy(boot, dir.join("boot.ext4")).map_err(|e| e.to_string())?;
        manifest.push_str("\n[image.boot]\nfilename=boot.ext4\n");
    }
    std::fs::write(dir.join("manifest.raucm"), manifest).map_err(|e| e.to_string())?;
    let out = ctx.work.join("update.raucb");
    let _ = std::fs::remove_file(&out);
    sh::quiet(
        sh::cmd("rauc")
            .arg("bundle")
            .arg(format!("--cert={}", cert.display()))
            .arg(format!("--key={}", key.display()))
            .arg(&dir)
            .arg(&out),
    )?;
    Ok(out)
}

/// GPT: rootfs and rootfs_b (the image in both), userdata (a fresh ext4, holding `bundle` as
/// /update.raucb when given).
pub(super) fn debian_disk(ctx: &Ctx<'_>, sqfs: &Path, bundle: Option<&Path>) -> Result<PathBuf, String> {
    const MIB: u64 = 1 << 20;
    let slot = std::fs::metadata(sqfs).map_err(|e| e.to_string())?.len().div_ceil(MIB) * MIB + 8 * MIB;
    let bundle_len = bundle.map_or(0, |b| std::fs::metadata(b).map_or(0, |m| m.len()));
    let data = (192 * MIB + bundle_len).div_ceil(MIB) * MIB;
    let disk = ctx.work.join("debian.img");
    let size = MIB + 2 * slot + data + MIB;
    let f = std::fs::File::create(&disk).map_err(|e| e.to_string())?;
    f.set_len(size).map_err(|e| e.to_string())?;
    let s = slot / 512;
    let script = format!(
        "label: gpt\nstart=2048, size={s}, name=rootfs\nsize={}, name=userdata\nsize={s}, name=rootfs_b\n",
        data / 512
    );
    sh::run_stdin(sh::cmd("sfdisk").arg("-q").arg(&disk), &script)?;
    let ext4 = ctx.work.join("debian-userdata.ext4");
    let _ = std::fs::remove_file(&ext4);
    let content = ctx.work.join("debian-userdata");
    let _ = std::fs::remove_dir_all(&content);
    std::fs::create_dir_all(&content).map_err(|e| e.to_string())?;
    if let Some(b) = bundle {
        std::fs::copy(b, content.join("update.raucb")).map_err(|e| e.to_string())?;
    }
    sh::quiet(
        sh::cmd("mkfs.ext4")
            .args(["-q", "-L", "userdata", "-d"])
            .arg(&content)
            .arg(&ext4)
            .arg(format!("{}k", data / 1024)),
    )?;
    let parts = image::partitions(&disk)?;
    let bytes = std::fs::read(sqfs).map_err(|e| e.to_string())?;
    for name in ["rootfs", "rootfs_b"] {
        image::write_at(&disk, image::part(&parts, name)?.start, &bytes)?;
    }
    let data_bytes = std::fs::read(&ext4).map_err(|e| e.to_string())?;
    image::write_at(&disk, image::part(&parts, "userdata")?.start, &data_bytes)?;
    Ok(disk)
}
