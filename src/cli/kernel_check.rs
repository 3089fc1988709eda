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
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let target = dir.display().to_string();
    let loop_dev = loopdev::attach_ro(&file).map_err(|(call, e)| {
        format!("{call}: {e}: the image is mounted to check its kernel (is the loop module loaded?)")
    })?;
    let checked = mount::mount_image_ro(&loop_dev.path, &target)
        .map_err(|e| format!("{file}: mount: {e}: neither a squashfs nor an EROFS image"))
        .and_then(|_| check_tree(&dir, files));
    let _ = mount::unmount_detach(&target);
    let _ = std::fs::remove_dir(&dir);
    checked
}

fn check_tree(root: &Path, files: &BootFiles) -> Result<String, String> {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let kernel = at(&files.kernel);
    if !kernel.exists() {
        return Ok(format!("no kernel of its own ({}): it boots on the stage-one kernel", files.kernel));
    }
    let refused = |p: &str, why: String| format!("{p} in the image is refused: {why}");
    let mut img = image::kernel(&head(&kernel)?, Arch::current()).map_err(|w| refused(&files.kernel, w))?;
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
#[cfg(target_arch = "x86_64")]
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
            check_tree(&ok, &files).unwrap(),
            "its kernel 6.12.9-amd64, its gzip-compressed cpio and /lib/modules/6.12.9-amd64 belong together"
        );
        let other = tree("other", "6.12.9-amd64", &gz, &["6.1.0-28-amd64"]);
        assert!(check_tree(&other, &files).unwrap_err().contains("has no /lib/modules/6.12.9-amd64"));
        let not_cpio = tree("notcpio", "6.12.9-amd64", b"\x7fELF....", &["6.12.9-amd64"]);
        assert!(check_tree(&not_cpio, &files).unwrap_err().contains("/boot/initrd.img in the image is refused"));
        let with_dtb = BootFiles { dtb: Some("/boot/board.dtb".into()), ..files.clone() };
        std::fs::write(ok.join("boot/board.dtb"), b"not a tree").unwrap();
        assert!(check_tree(&ok, &with_dtb).unwrap_err().contains("/boot/board.dtb in the image is refused"));
        std::fs::remove_file(ok.join("boot/vmlinuz")).unwrap();
        assert!(check_tree(&ok, &files).unwrap().starts_with("no kernel of its own"));
        for d in [ok, other, not_cpio] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
