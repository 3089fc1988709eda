//! `install` on a board that hands over to slot kernels (`oinit.kexec`): before an image goes
//! into a slot, its own kernel, initramfs and device tree are checked as stage one will check
//! them, and the kernel's modules must be in the image (`/lib/modules/RELEASE`), so that a slot
//! whose kernel and root image disagree is never offered. The image is mounted read-only in a
//! mount namespace of this process's own.

use crate::ab::handoff::BootFiles;
use crate::kexec::image::{self, Arch};
use crate::sys::{loopdev, mount};
use std::io::Read;
use std::path::Path;

/// What was checked, for the install's output; Err says which file and why.
pub fn check(image_file: &Path, files: &BootFiles) -> Result<String, String> {
    let file = image_file.display().to_string();
    mount::private_namespace().map_err(|e| format!("{file}: a private mount namespace: {e}"))?;
    let dir = std::env::temp_dir().join(format!("overlay-init-install-{}", std::process::id()));
    crate::fs::mkdir::mkdir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let target = dir.display().to_string();
    let loop_dev = loopdev::attach_ro(&file).map_err(|(call, e)| {
        format!("{call}: {e}: the image is mounted to check its kernel (is the loop module loaded?)")
    })?;
    let checked = mount::mount_image_ro(&loop_dev.path, &target)
        .map_err(|e| format!("{file}: mount: {e}: neither a squashfs nor an EROFS image"))
        .and_then(|_| check_tree(&dir, files, Some(Arch::current())));
    let _ = mount::unmount_detach(&target);
    let _ = std::fs::remove_dir(&dir);
    checked
}

/// `kexec-files`: the settings' boot file paths for a build script, nothing when the hand-over is
/// off.
pub fn files_cmd(files: Option<BootFiles>) -> i32 {
    if let Some(f) = files {
        println!("kernel {}\ninitrd {}", f.kernel, f.initrd);
        if let Some(dtb) = f.dtb {
            println!("dtb {dtb}");
        }
    }
    0
}

/// `kexec-check ROOT`: a slot image's tree checked on the build host, before it becomes an image.
/// The kernel may be of any architecture the hand-over knows (the host is rarely the target).
pub fn tree_cmd(root: &Path, files: Option<BootFiles>) -> i32 {
    let checked = files
        .ok_or_else(|| "the settings boot no slot's own kernel (oinit.kexec=1 or oinit.bootloader=uboot)".to_string())
        .and_then(|f| {
            if !root.join(f.kernel.trim_start_matches('/')).exists() {
                return Err(format!("{} has no {}: the settings' oinit.kexeckernel", root.display(), f.kernel));
            }
            check_tree(root, &f, None)
        });
    match checked {
        Ok(what) => {
            println!("{}: {what}", root.display());
            0
        }
        Err(e) => {
            eprintln!("overlay-init: kexec-check: {}: {e}", root.display());
            1
        }
    }
}

/// Checks an image's tree; `arch` None: the kernel's own, found from its header.
fn check_tree(root: &Path, files: &BootFiles, arch: Option<Arch>) -> Result<String, String> {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let kernel = at(&files.kernel);
    if !kernel.exists() {
        return Ok(format!("no kernel of its own ({}): it boots on the stage-one kernel", files.kernel));
    }
    let refused = |p: &str, why: String| format!("{p} in the image is refused: {why}");
    let head_bytes = head(&kernel)?;
    let arch = arch.or_else(|| image::arch_of(&head_bytes)).ok_or_else(|| {
        refused(&files.kernel, "not a kernel image of an architecture the hand-over knows (x86, arm64, arm)".into())
    })?;
    let mut img = image::kernel(&head_bytes, arch).map_err(|w| refused(&files.kernel, w))?;
    if img.version.is_none() {
        let banner = std::fs::read_to_string(format!("{}.version", kernel.display())).unwrap_or_default();
        img.version = image::from_banner(&banner);
    }
    let release = image::release(&img).ok_or_else(|| {
        refused(
            &files.kernel,
            format!("it does not say which kernel it is: write its banner to {}.version", files.kernel),
        )
    })?;
    if !at(&format!("/lib/modules/{release}")).is_dir() {
        return Err(format!(
            "the image's kernel is {release} but the image has no /lib/modules/{release}: its kernel and root image \
             do not belong together"
        ));
    }
    let kind = image::initramfs(&head(&at(&files.initrd))?).map_err(|w| refused(&files.initrd, w))?;
    if let Some(dtb) = &files.dtb {
        let bytes = std::fs::read(at(dtb)).map_err(|e| format!("{dtb} in the image: {e}"))?;
        image::device_tree(&bytes).map_err(|w| refused(dtb, w))?;
    }
    Ok(format!("its kernel {release}, its {kind} and /lib/modules/{release} belong together"))
}

fn head(path: &Path) -> Result<Vec<u8>, String> {
    let mut buf = Vec::with_capacity(image::HEAD);
    std::fs::File::open(path)
        .and_then(|f| f.take(image::HEAD as u64).read_to_end(&mut buf))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image tree with a bzImage naming `release`, a gzip initramfs and `modules` releases.
    fn tree(name: &str, release: &str, initrd: &[u8], modules: &[&str]) -> std::path::PathBuf {
        let root = std::env::temp_dir().join(format!("oi-kernel-check-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("boot")).unwrap();
        let mut k = vec![0u8; 0x1000];
        k[0x1fe..0x200].copy_from_slice(&[0x55, 0xaa]);
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k[0x20e..0x210].copy_from_slice(&0x300u16.to_le_bytes());
        let v = format!("{release} (builder@host) #1 SMP Debian");
        k[0x500..0x500 + v.len()].copy_from_slice(v.as_bytes());
        std::fs::write(root.join("boot/vmlinuz"), k).unwrap();
        std::fs::write(root.join("boot/initrd.img"), initrd).unwrap();
        for m in modules {
            std::fs::create_dir_all(root.join("lib/modules").join(m)).unwrap();
        }
        root
    }

    #[test]
    fn kernel_initramfs_and_modules_belong_together() {
        let files = BootFiles { kernel: "/boot/vmlinuz".into(), initrd: "/boot/initrd.img".into(), dtb: None };
        let gz = [0x1f, 0x8b, 8, 0];
        let ok = tree("ok", "6.12.9-amd64", &gz, &["6.12.9-amd64"]);
        assert_eq!(
            check_tree(&ok, &files, None).unwrap(),
            "its kernel 6.12.9-amd64, its gzip-compressed cpio and /lib/modules/6.12.9-amd64 belong together"
        );
        let other = tree("other", "6.12.9-amd64", &gz, &["6.1.0-28-amd64"]);
        assert!(check_tree(&other, &files, None).unwrap_err().contains("has no /lib/modules/6.12.9-amd64"));
        let not_cpio = tree("notcpio", "6.12.9-amd64", b"\x7fELF....", &["6.12.9-amd64"]);
        assert!(check_tree(&not_cpio, &files, Some(Arch::X86))
            .unwrap_err()
            .contains("/boot/initrd.img in the image is refused"));
        let with_dtb = BootFiles { dtb: Some("/boot/board.dtb".into()), ..files.clone() };
        std::fs::write(ok.join("boot/board.dtb"), b"not a tree").unwrap();
        assert!(check_tree(&ok, &with_dtb, None).unwrap_err().contains("/boot/board.dtb in the image is refused"));
        std::fs::write(not_cpio.join("boot/vmlinuz"), b"#!/bin/sh\n").unwrap();
        assert!(check_tree(&not_cpio, &files, None).unwrap_err().contains("not a kernel image of an architecture"));
        std::fs::remove_file(ok.join("boot/vmlinuz")).unwrap();
        assert!(check_tree(&ok, &files, None).unwrap().starts_with("no kernel of its own"));
        for d in [ok, other, not_cpio] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
