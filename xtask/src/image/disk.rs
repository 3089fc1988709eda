//! The board's disk image: makes every input the board's genimage.cfg names (squashfs images,
//! the ext4 data partition, kernel, device tree, initramfs, extlinux.conf, U-Boot's boot script,
//! the slots' boot partitions), checks that each fits
//! its partition, and runs genimage.

use crate::board::Board;
use crate::board::DATA_UUID;
use crate::image;
use crate::sh;
use std::path::{Path, PathBuf};

/// Builds the board's disk image at `out`.
pub fn build(root: &Path, b: &Board, out: &Path) -> Result<(), String> {
    // Both test images, built once: the disk and the tests that compare against them must see
    // the same bytes (mksquashfs stamps each build with its time).
    let sqfs = [image::rootfs(root, b, "a")?, image::rootfs(root, b, "b")?];
    build_with(root, b, &sqfs, out)
}

/// The board's disk image at `out` with other root images (`sqfs`: images a and b).
pub fn build_with(root: &Path, b: &Board, sqfs: &[PathBuf; 2], out: &Path) -> Result<(), String> {
    let dir = b.out_dir(root);
    let inputs = dir.join("inputs");
    let _ = std::fs::remove_dir_all(&inputs);
    std::fs::create_dir_all(&inputs).map_err(|e| e.to_string())?;
    for name in needed(b) {
        let made = input(root, b, sqfs, &name, &inputs.join(&name))
            .map_err(|e| format!("board {}: input {name} of genimage.cfg: {e}", b.name))?;
        if let Some(p) = b.layout.holding(&name).filter(|p| p.size.is_some_and(|s| made > s)) {
            return Err(format!(
                "board {}: {name} is {made} bytes, more than partition {} ({} bytes): raise its size in genimage.cfg",
                b.name,
                p.name,
                p.size.unwrap_or_default()
            ));
        }
    }
    let (images, tmp, gen_root) = (dir.join("images"), dir.join("genimage-tmp"), dir.join("genimage-root"));
    for d in [&images, &tmp, &gen_root] {
        let _ = std::fs::remove_dir_all(d);
    }
    std::fs::create_dir_all(&gen_root).map_err(|e| e.to_string())?;
    sh::quiet(
        sh::cmd("genimage")
            .arg("--config")
            .arg(b.dir.join("genimage.cfg"))
            .arg("--inputpath")
            .arg(&inputs)
            .arg("--outputpath")
            .arg(&images)
            .arg("--rootpath")
            .arg(&gen_root)
            .arg("--tmppath")
            .arg(&tmp),
    )?;
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::rename(images.join(&b.layout.disk), out).map_err(|e| format!("{}: {e}", out.display()))
}

/// Files genimage reads from the input path: partition images no other image section makes,
/// the files of vfat images and the images in UBI volumes.
fn needed(b: &Board) -> Vec<String> {
    let made: Vec<&str> = b.layout.images.iter().map(|s| s.name.as_str()).collect();
    let mut names: Vec<String> =
        b.layout.partitions.iter().filter_map(|p| p.image.clone()).filter(|i| !made.contains(&i.as_str())).collect();
    names.extend(b.layout.vfat_files(None).into_iter().map(|f| f.input));
    names.extend(b.layout.ubi_volumes().into_iter().filter_map(|(_, _, input)| input));
    names.sort();
    names.dedup();
    names
}

/// Makes one input; returns its size.
fn input(root: &Path, b: &Board, sqfs: &[PathBuf; 2], name: &str, dest: &Path) -> Result<u64, String> {
    let copy = |from: &Path| std::fs::copy(from, dest).map_err(|e| format!("{}: {e}", from.display()));
    match name {
        "rootfs-a.sqfs" => copy(&sqfs[0]),
        "rootfs-b.sqfs" => copy(&sqfs[1]),
        "userdata.ext4" => userdata(root, b, sqfs, dest),
        "initramfs.cpio.gz" => copy(&image::initramfs(root, b)?),
        "boot.scr" => {
            image::uboot::board_script(root, b, dest)?;
            Ok(std::fs::metadata(dest).map_err(|e| e.to_string())?.len())
        }
        // A slot's boot partition, labelled after the partition that holds it.
        boot if boot.starts_with("boot-") && boot.ends_with(".ext4") => {
            let part = b.layout.holding(boot).ok_or("no partition holds it")?;
            let size = part.size.ok_or(format!("partition {} has no size", part.name))?;
            image::uboot::boot_partition(root, b, &part.name, size, dest)?;
            Ok(size)
        }
        "extlinux.conf" => {
            let text = extlinux(b)?;
            std::fs::write(dest, &text).map_err(|e| e.to_string())?;
            Ok(text.len() as u64)
        }
        // U-Boot's booti wants an uncompressed arm64 Image; Debian ships it gzipped.
        "Image" => {
            let raw = sh::output_bytes(sh::cmd("gzip").arg("-dcf").arg(b.kernel_dir.join("vmlinuz")))?;
            std::fs::write(dest, &raw).map_err(|e| e.to_string())?;
            Ok(raw.len() as u64)
        }
        "zImage" | "bzImage" | "vmlinuz" => copy(&b.kernel_dir.join("vmlinuz")),
        dtb if dtb.ends_with(".dtb") => copy(&find_dtb(&b.kernel_dir.join("dtbs"), dtb).ok_or(format!(
            "no {dtb} in the {} kernel's device trees ({})",
            b.kernel_version,
            b.kernel_dir.join("dtbs").display()
        ))?),
        other => Err(format!(
            "the build makes no {other}: use rootfs-a.sqfs, rootfs-b.sqfs, userdata.ext4, initramfs.cpio.gz, \
             extlinux.conf, boot.scr, boot-SLOT.ext4, zImage, Image or a .dtb of the kernel"
        )),
    }
}

/// The ext4 data partition: labelled after its partition, with copies of both test images under
/// /images/ (for the lower-as-file modes), sized to fill the partition.
fn userdata(root: &Path, b: &Board, sqfs: &[PathBuf; 2], dest: &Path) -> Result<u64, String> {
    let part = b.layout.holding("userdata.ext4").ok_or("no partition holds it")?;
    let size = part.size.ok_or(format!("partition {} has no size", part.name))?;
    let content = b.out_dir(root).join("data-content");
    let _ = std::fs::remove_dir_all(&content);
    std::fs::create_dir_all(content.join("images")).map_err(|e| e.to_string())?;
    for (image, file) in sqfs.iter().zip(["rootfs.sqfs", "b.sqfs"]) {
        std::fs::copy(image, content.join("images").join(file)).map_err(|e| e.to_string())?;
    }
    // An existing (empty) file keeps mke2fs from announcing that it creates one.
    std::fs::write(dest, b"").map_err(|e| e.to_string())?;
    sh::run(
        sh::cmd("mkfs.ext4")
            .args(["-q", "-F", "-L", &part.name, "-U", DATA_UUID, "-E", "root_owner=0:0", "-d"])
            .arg(&content)
            .arg(dest)
            .arg(format!("{}k", size / 1024)),
    )?;
    Ok(size)
}

/// U-Boot's generic distro boot reads /extlinux/extlinux.conf from the boot partition: the
/// kernel and device tree of the vfat image, the initramfs, and the board's command line.
fn extlinux(b: &Board) -> Result<String, String> {
    let files: Vec<String> = b.layout.vfat_files(None).into_iter().map(|f| f.path).collect();
    let kernel = files
        .iter()
        .find(|f| ["zImage", "Image", "vmlinuz"].contains(&f.as_str()))
        .ok_or("extlinux.conf needs a kernel (zImage or Image) in the vfat files")?;
    let mut text = format!("default overlay-init\nlabel overlay-init\n  kernel /{kernel}\n");
    if let Some(dtb) = files.iter().find(|f| f.ends_with(".dtb")) {
        text.push_str(&format!("  fdt /{dtb}\n"));
    }
    text.push_str(&format!("  initrd /initramfs.cpio.gz\n  append {}\n", b.cmdline));
    Ok(text)
}

fn find_dtb(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        if p.is_dir() {
            if let Some(found) = find_dtb(&p, name) {
                return Some(found);
            }
        } else if p.file_name().is_some_and(|f| f == name) {
            return Some(p);
        }
    }
    None
}
