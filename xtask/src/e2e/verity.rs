//! End-to-end tests of verified lowers: both slots hold images made by Debian's `veritysetup`
//! and signed with openssl (board/integration/verity/sign-image.sh), the initramfs carries the
//! public key and dm-verity; the init sets up the devices itself.

use crate::e2e::harness::{ab_settings, booted, contains, slot_parts, want, Ctx};
use crate::e2e::qemu::Boot;
use crate::image;
use crate::sh;
use std::path::{Path, PathBuf};

const KEY_IN_INITRAMFS: &str = "/etc/overlay-init/verity.pub";

/// What every verity scenario of a board uses, built once per board and run.
#[derive(Clone)]
struct Setup {
    /// Signed verity images of the test system: slot a's carries the reference tools on the
    /// host's architecture.
    images: [PathBuf; 2],
    /// Slot a's image with error correction (2 parity bytes) after its signature block.
    fec: PathBuf,
    /// Slot a's image padded to whole blocks, and its hash tree, signature block and parity as
    /// the content of a hash partition of its own; then the same without parity.
    split: [PathBuf; 2],
    split_plain: [PathBuf; 2],
    roots: [String; 2],
    /// The board's initramfs with dm-verity and the public key (signed images required).
    signed: PathBuf,
    /// The same with dm-verity but no key: root hashes come from the command line.
    hashes: PathBuf,
    /// Byte offset of /usr/share/noise's data in slot a's image.
    noise: u64,
}

fn setup(ctx: &Ctx<'_>) -> Result<Setup, String> {
    static BUILT: std::sync::Mutex<Vec<(String, Setup)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().map_err(|_| "verity setup cache poisoned")?;
    if let Some((_, s)) = built.iter().find(|(b, _)| *b == ctx.board.name) {
        return Ok(s.clone());
    }
    let s = build_setup(ctx)?;
    built.push((ctx.board.name.clone(), s.clone()));
    Ok(s)
}

fn build_setup(ctx: &Ctx<'_>) -> Result<Setup, String> {
    let out = ctx.board.out_dir(ctx.root).join("verity");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let key = out.join("test.key");
    let public = out.join("test.pub");
    if !key.exists() {
        sh::run(sh::cmd("openssl").args(["genpkey", "-algorithm", "ed25519", "-out"]).arg(&key))?;
    }
    std::fs::write(&public, sh::output_bytes(sh::cmd("openssl").args(["pkey", "-pubout", "-in"]).arg(&key))?)
        .map_err(|e| e.to_string())?;
    // Incompressible, so squashfs stores it as it is and the test can find and corrupt it.
    let noise_file = out.join("noise");
    let noise = noise_bytes(256 * 1024);
    std::fs::write(&noise_file, &noise).map_err(|e| e.to_string())?;
    let noise_path = noise_file.display().to_string();
    let mut extra = vec![("/usr/share/noise", noise_path.as_str())];
    let host_arch = ctx.board.rust_target.starts_with(std::env::consts::ARCH);
    if host_arch {
        extra.extend([("/sbin/veritysetup", "/usr/sbin/veritysetup"), ("/sbin/dmsetup", "/usr/sbin/dmsetup")]);
    }
    let sign_with = |sqfs: &Path, signed: &Path, fec: &str, hash: Option<&Path>| {
        let mut cmd = sh::cmd("sh");
        cmd.arg(ctx.root.join("board/integration/verity/sign-image.sh"))
            .arg(sqfs)
            .arg(&key)
            .arg(signed)
            .env("VERITY_FEC_ROOTS", fec);
        if let Some(h) = hash {
            cmd.env("VERITY_HASH_FILE", h);
        }
        sh::quiet(&mut cmd)
    };
    let sign = |sqfs: &Path, signed: &Path, fec: &str| sign_with(sqfs, signed, fec, None);
    let mut images = Vec::new();
    let mut roots = Vec::new();
    let mut sqfs_a = PathBuf::new();
    for (variant, files) in [("verity-a", &extra[..]), ("verity-b", &extra[..1])] {
        let sqfs = image::rootfs_with(ctx.root, ctx.board, variant, files)?;
        let signed = out.join(format!("{variant}.img"));
        sign(&sqfs, &signed, "")?;
        let root = std::fs::read_to_string(out.join(format!("{variant}.img.roothash"))).map_err(|e| e.to_string())?;
        images.push(signed);
        roots.push(root.trim().to_string());
        if variant == "verity-a" {
            sqfs_a = sqfs;
        }
    }
    let fec = out.join("verity-a-fec.img");
    sign(&sqfs_a, &fec, "2")?;
    let split = [out.join("verity-a-data.img"), out.join("verity-a.hash")];
    sign_with(&sqfs_a, &split[0], "2", Some(&split[1]))?;
    let split_plain = [out.join("verity-a-data-plain.img"), out.join("verity-a-plain.hash")];
    sign_with(&sqfs_a, &split_plain[0], "", Some(&split_plain[1]))?;
    let a = std::fs::read(&images[0]).map_err(|e| e.to_string())?;
    let noise_at = a.windows(4096).position(|w| w == &noise[..4096]).ok_or("the noise file is not stored verbatim")?;
    let board_conf = std::fs::read_to_string(ctx.board.dir.join("overlay-init.conf")).map_err(|e| e.to_string())?;
    let mut initrds = Vec::new();
    for (name, key_line) in
        [("initramfs-verity", format!("oinit.veritykey={KEY_IN_INITRAMFS}\n")), ("initramfs-veritycmd", String::new())]
    {
        let conf = out.join(format!("{name}.conf"));
        // The init loads dm_verity by itself once verification is configured.
        std::fs::write(&conf, format!("{board_conf}\n{key_line}")).map_err(|e| e.to_string())?;
        let (c, p) = (conf.display().to_string(), public.display().to_string());
        // A second /etc/overlay-init.conf later in the archive replaces the board's.
        let files = [("/etc/overlay-init.conf", c.as_str()), (KEY_IN_INITRAMFS, p.as_str())];
        initrds.push(image::initramfs_variant(ctx.root, ctx.board, name, &["dm_verity"], &files)?);
    }
    let [a, b]: [PathBuf; 2] = images.try_into().map_err(|_| "two images")?;
    let [ra, rb]: [String; 2] = roots.try_into().map_err(|_| "two root hashes")?;
    let [signed, hashes]: [PathBuf; 2] = initrds.try_into().map_err(|_| "two initramfs")?;
    Ok(Setup { images: [a, b], fec, split, split_plain, roots: [ra, rb], signed, hashes, noise: noise_at as u64 })
}

/// xorshift bytes: the same every run, and nothing a compressor can shrink.
fn noise_bytes(n: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A fresh disk with the signed images in both slot partitions; `change` edits slot a's bytes.
fn verity_disk(ctx: &Ctx<'_>, v: &Setup, name: &str, change: impl Fn(&mut Vec<u8>)) -> Result<PathBuf, String> {
    disk_with(ctx, [&v.images[0], &v.images[1]], name, change)
}

fn disk_with(ctx: &Ctx<'_>, images: [&Path; 2], name: &str, change: impl Fn(&mut Vec<u8>)) -> Result<PathBuf, String> {
    let disk = ctx.fresh_disk(name)?;
    let parts = image::partitions(&disk)?;
    for (n, (part, img)) in slot_parts(ctx.board).iter().zip(images).enumerate() {
        let mut bytes = std::fs::read(img).map_err(|e| e.to_string())?;
        if n == 0 {
            change(&mut bytes);
        }
        image::write_at(&disk, image::part(&parts, part)?.start, &bytes)?;
    }
    Ok(disk)
}

/// `dmsetup table` of the init's device equals veritysetup's for the same image (both
/// printed by the `verity-table` action), and holds `part`.
fn same_table(b: &Boot, part: &str) -> Result<(), String> {
    let (ours, reference) = (b.marker("table-init"), b.marker("table-ref"));
    if ours.is_none() || ours != reference || !ours.as_deref().unwrap_or("").contains(part) {
        return Err(format!("dm tables differ: init {ours:?}, veritysetup {reference:?}"));
    }
    Ok(())
}

fn boot(ctx: &Ctx<'_>, initrd: &Path, disk: &Path, extra: &str, log: &str) -> Result<Boot, String> {
    let b = ctx.boot_with(initrd, disk, &format!("{} {extra}", ab_settings(ctx.board)), log)?;
    booted(&b)?;
    Ok(b)
}

/// `oitest=verity-table` runs veritysetup over loop devices in the guest, so these boots load
/// loop too (the board's list plus loop: a boot from partitions does not load it by itself).
fn with_loop(ctx: &Ctx<'_>) -> String {
    format!("oinit.modules={},loop", ctx.board.modules().join(","))
}

/// Signed slots boot through dm-verity devices the init made (the first boot of each image
/// reads it whole); the table is the one `veritysetup open` loads for the same image; `install`
/// takes only signed, unchanged images, and the installed one boots next from slot b.
pub fn signed_slots(ctx: &Ctx<'_>) -> Result<(), String> {
    let v = setup(ctx)?;
    let disk = verity_disk(ctx, &v, "verity-ab", |_| {})?;
    let host_arch = ctx.board.rust_target.starts_with(std::env::consts::ARCH);
    let actions = if host_arch {
        format!("oitest=mark-good,verity-install,verity-table {}", with_loop(ctx))
    } else {
        "oitest=mark-good,verity-install".into()
    };
    let b = boot(ctx, &v.signed, &disk, &actions, "verity-1")?;
    want(&b, "slot", "a")?;
    want(&b, "image", "verity-a")?;
    want(&b, "lower-visible", "/dev/mapper/oinit-a")?;
    contains(&b, "every block read once now (new image)")?;
    contains(&b, &format!("root hash signed by {KEY_IN_INITRAMFS}"))?;
    let report = b.report().ok_or("no boot report")?;
    if !report.contains(&format!("\"root_hash\": \"{}\"", v.roots[0])) || !report.contains("\"checked_all\": true") {
        return Err(format!("the report does not show slot a's verified root hash: {report}"));
    }
    contains(&b, "not a signed verity image")?;
    contains(&b, "the image was changed after signing")?;
    contains(&b, "install: signature and hash tree verified")?;
    want(&b, "verity-install-exit", "0")?;
    if host_arch {
        same_table(&b, " verity 1 ")?;
    }
    let b = boot(ctx, &v.signed, &disk, "oitest=mark-good", "verity-2")?;
    want(&b, "slot", "b")?;
    want(&b, "image", "verity-a")?;
    want(&b, "lower-visible", "/dev/mapper/oinit-b")?;
    contains(&b, "every block read once now (new image)")?;
    // The user's upper was reconciled against slot a's image read through dm-verity, never
    // unverified, and that device was gone before the switch (it would keep a's partition busy).
    contains(&b, " verified as /dev/mapper/oinit-a-old")?;
    contains(&b, "upper from slot a by oinit.carry: reconciled")?;
    want(&b, "mapper", "control oinit-b")?;
    // The image is known now: later boots check blocks as they are read.
    let b = boot(ctx, &v.signed, &disk, "", "verity-3")?;
    want(&b, "slot", "b")?;
    contains(&b, "blocks checked as read")
}

/// One flipped byte in slot a's data, in its hash tree or in its signature, or a root hash on the
/// command line that is not slot a's: the same boot falls back to slot b and says why.
pub fn tampered_falls_back(ctx: &Ctx<'_>) -> Result<(), String> {
    let v = setup(ctx)?;
    let len = std::fs::metadata(&v.images[0]).map_err(|e| e.to_string())?.len() as usize;
    // One byte changed to another of the same kind, so the parsers still read it: a hex digit
    // of the signature block's root hash stays a hex digit.
    let flip = |at: usize| move |b: &mut Vec<u8>| b[at] = if b[at] == b'0' { b'1' } else { b'0' };
    let cases: [(&str, usize, &str); 3] = [
        ("data", v.noise as usize + 100_000, "do not match the root hash"),
        ("tree", len - 4096 - 4096 + 8, "do not match the root hash"),
        ("signature", len - 4096 + "oiverity1\nroothash=".len() + 5, "is not signed by the board's key"),
    ];
    for (what, at, why) in cases {
        let disk = verity_disk(ctx, &v, &format!("verity-bad-{what}"), flip(at))?;
        let b = boot(ctx, &v.signed, &disk, "", &format!("verity-bad-{what}"))?;
        want(&b, "slot", "b").map_err(|e| format!("{what}: {e}"))?;
        contains(&b, "slot a unusable: dm-verity refuses ")?;
        contains(&b, why).map_err(|e| format!("{what}: {e}"))?;
        contains(&b, "falling back to slot b in this boot")?;
    }
    // Root hashes from the command line (a signed boot chain's), no key in the initramfs.
    let disk = verity_disk(ctx, &v, "verity-cmdline", |_| {})?;
    let hashes = format!("oinit.roothash={} oinit.broothash={}", v.roots[0], v.roots[1]);
    let b = boot(ctx, &v.hashes, &disk, &hashes, "verity-cmdline-good")?;
    want(&b, "slot", "a")?;
    contains(&b, "root hash from oinit.roothash")?;
    let disk = verity_disk(ctx, &v, "verity-cmdline-wrong", |_| {})?;
    let wrong = format!("oinit.roothash={} oinit.broothash={}", v.roots[1], v.roots[1]);
    let b = boot(ctx, &v.hashes, &disk, &wrong, "verity-cmdline-wrong")?;
    want(&b, "slot", "b")?;
    contains(&b, "falling back to slot b in this boot")
}

/// A block of a verified image corrupted on the medium after boot: with oinit.verityerror=eio
/// the read fails and the system goes on; with the default (restart) the kernel restarts the
/// machine, which comes back up.
pub fn runtime_corruption(ctx: &Ctx<'_>) -> Result<(), String> {
    let v = setup(ctx)?;
    let disk = verity_disk(ctx, &v, "verity-runtime", |_| {})?;
    let noise = format!("oinoise={}", v.noise);
    let b = boot(
        ctx,
        &v.signed,
        &disk,
        &format!("{noise} oinit.verityerror=eio oitest=mark-good,corrupt-noise,read-noise"),
        "verity-eio",
    )?;
    want(&b, "slot", "a")?;
    contains(&b, "on corruption: eio")?;
    want(&b, "noise-read", "1")?;
    contains(&b, "is corrupted")?;
    let b = ctx.boot_with_resets(
        &v.signed,
        &disk,
        &format!("{} oitest=read-noise-once", ab_settings(ctx.board)),
        "verity-restart",
    )?;
    contains(&b, "on corruption: restart")?;
    contains(&b, "OI: reading the corrupted file")?;
    if b.marker("noise-read").is_some() {
        return Err("the corrupted read returned instead of restarting the machine".into());
    }
    contains(&b, "OI: restarted-after-corruption")?;
    booted(&b)
}

/// Slot a's image with error correction and one byte changed in a file's data: dm-verity
/// repairs it from the parity (the kernel says so), slot a boots and the file reads back whole;
/// the table with `use_fec_from_device` is the one `veritysetup open --fec-device` loads.
pub fn fec_repairs(ctx: &Ctx<'_>) -> Result<(), String> {
    let v = setup(ctx)?;
    let at = v.noise as usize + 100_000;
    let disk = disk_with(ctx, [&v.fec, &v.images[1]], "verity-fec", |b| b[at] ^= 0xff)?;
    let host_arch = ctx.board.rust_target.starts_with(std::env::consts::ARCH);
    let actions = if host_arch {
        format!("oitest=read-noise,dmesg-verity,verity-table {}", with_loop(ctx))
    } else {
        "oitest=read-noise,dmesg-verity".into()
    };
    let b = boot(ctx, &v.signed, &disk, &actions, "verity-fec")?;
    want(&b, "slot", "a")?;
    want(&b, "image", "verity-a")?;
    contains(&b, "error correction with 2 parity bytes")?;
    contains(&b, "corrected 1 errors")?;
    want(&b, "noise-read", "0")?;
    if host_arch {
        same_table(&b, "use_fec_from_device")?;
    }
    Ok(())
}

/// The hash tree (with its signature block and parity) on a partition of its own, as systemd's
/// usr-verity layouts have it: one image, `oinit.hashdev=` names the partition; the boot goes
/// through dm-verity with both devices and (x86_64) the table equals veritysetup's for the same
/// two devices. One byte changed in the tree's top block: the image is refused and the board's
/// failure policy runs (no other slot to fall back to).
pub fn hash_partition(ctx: &Ctx<'_>) -> Result<(), String> {
    let v = setup(ctx)?;
    let settings = "root=PARTLABEL=rootfs oinit.hashdev=PARTLABEL=rootfs_b";
    let disk = disk_with(ctx, [&v.split[0], &v.split[1]], "verity-split", |_| {})?;
    let host_arch = ctx.board.rust_target.starts_with(std::env::consts::ARCH);
    let actions = if host_arch { format!("oitest=verity-table {}", with_loop(ctx)) } else { String::new() };
    let b = ctx.boot_with(&v.signed, &disk, &format!("{settings} {actions}"), "verity-split")?;
    booted(&b)?;
    want(&b, "lower-visible", "/dev/mapper/oinit-root")?;
    contains(&b, "(hash tree on /dev/vda3)")?;
    contains(&b, "error correction with 2 parity bytes")?;
    if host_arch {
        same_table(&b, " 254:1 254:3 ")?;
    }
    // The tree's top block is the first thing checked against the root hash (without parity,
    // which would repair one changed byte).
    let disk = disk_with(ctx, [&v.split_plain[0], &v.split_plain[1]], "verity-split-bad", |_| {})?;
    let p = image::part(&image::partitions(&disk)?, "rootfs_b")?;
    let mut top = image::read_at(&disk, p.start + 4096, 4096)?;
    top[10] ^= 0x01;
    image::write_at(&disk, p.start + 4096, &top)?;
    let b = ctx.boot_with(&v.signed, &disk, &format!("{settings} oinit.rebootdelay=1"), "verity-split-bad")?;
    contains(&b, "FATAL")?;
    // One image: the refusal is the boot's failure, not a slot's fallback.
    contains(&b, "FATAL: dm-verity refuses /dev/vda1")?;
    contains(&b, "do not match the root hash")?;
    if b.console.contains("OI: pid=") {
        return Err("the real init ran on a refused image".into());
    }
    Ok(())
}

/// Anti-rollback on a board with `oinit.compatible`: images signed with a manifest (product and
/// security version). Confirming slot a (version 2) raises the device's floor to 2; slot b's
/// older image (version 1) is then refused at boot and the same boot falls back to a; `install`
/// refuses another product's image and the older one, and takes the older one with a downgrade
/// token signed with the board's key, after which it boots.
pub fn anti_rollback(ctx: &Ctx<'_>) -> Result<(), String> {
    // The board's key and the test systems' squashfs images.
    setup(ctx)?;
    let out = ctx.board.out_dir(ctx.root).join("verity");
    let key = out.join("test.key");
    let product = format!("oi-test,{}", ctx.board.name);
    let sqfs = |variant: &str| out.parent().map(|o| o.join(format!("rootfs-{variant}.sqfs")));
    let sign = |variant: &str, name: &str, compatible: &str, version: &str| -> Result<PathBuf, String> {
        let signed = out.join(name);
        let src = sqfs(variant).ok_or("no output folder")?;
        sh::quiet(
            sh::cmd("sh")
                .arg(ctx.root.join("board/integration/verity/sign-image.sh"))
                .arg(&src)
                .arg(&key)
                .arg(&signed)
                .env("VERITY_COMPATIBLE", compatible)
                .env("VERITY_SECURITY_VERSION", version),
        )?;
        Ok(signed)
    };
    let new = sign("verity-a", "ar-new.img", &product, "2")?;
    let old = sign("verity-b", "ar-old.img", &product, "1")?;
    let other = sign("verity-b", "ar-other.img", "oi-test,another-board", "5")?;
    let token = out.join("ar.token");
    sh::quiet(
        sh::cmd("sh")
            .arg(ctx.root.join("board/integration/verity/make-downgrade-token.sh"))
            .arg(&product)
            .arg("1")
            .arg(&key)
            .arg(&token),
    )?;
    let board_conf = std::fs::read_to_string(ctx.board.dir.join("overlay-init.conf")).map_err(|e| e.to_string())?;
    let conf = out.join("initramfs-compatible.conf");
    let lines = format!("{board_conf}\noinit.veritykey={KEY_IN_INITRAMFS}\noinit.compatible={product}\n");
    std::fs::write(&conf, lines).map_err(|e| e.to_string())?;
    let (c, p) = (conf.display().to_string(), out.join("test.pub").display().to_string());
    let files = [("/etc/overlay-init.conf", c.as_str()), (KEY_IN_INITRAMFS, p.as_str())];
    let initrd = image::initramfs_variant(ctx.root, ctx.board, "initramfs-compatible", &["dm_verity"], &files)?;
    let disk = disk_with(ctx, [&new, &old], "verity-anti-rollback", |_| {})?;
    let put = |f: &Path, name: &str| format!("write {} images/{name}", f.display());
    let requests = [put(&old, "old.img"), put(&other, "other.img"), put(&token, "token")];
    crate::e2e::harness::debugfs_write(&disk, "userdata", &requests.iter().map(String::as_str).collect::<Vec<_>>())?;
    let b = boot(ctx, &initrd, &disk, "oitest=mark-good", "anti-rollback-1")?;
    want(&b, "slot", "a")?;
    contains(&b, &format!("for {product}, security version 2"))?;
    contains(&b, "OI-STATUS: signed images below security version 2 are refused")?;
    let b = boot(ctx, &initrd, &disk, "oitest=rollback", "anti-rollback-2")?;
    want(&b, "rollback-exit", "0")?;
    // Slot b's image is older than what the device confirmed: refused, a boots in this boot.
    let b = boot(ctx, &initrd, &disk, "", "anti-rollback-3")?;
    want(&b, "slot", "a")?;
    contains(&b, "its security version 1 is below 2, the highest this device marked good")?;
    contains(&b, "falling back to slot a in this boot")?;
    let b = boot(ctx, &initrd, &disk, "oitest=anti-rollback-install", "anti-rollback-4")?;
    want(&b, "install-other-exit", "1")?;
    contains(&b, "it is signed for 'oi-test,another-board', this device is")?;
    want(&b, "install-old-exit", "1")?;
    contains(&b, "a downgrade, refused")?;
    want(&b, "install-token-exit", "0")?;
    let b = boot(ctx, &initrd, &disk, "", "anti-rollback-5")?;
    want(&b, "slot", "b")?;
    want(&b, "image", "verity-b")?;
    contains(&b, &format!("for {product}, security version 1"))
}
