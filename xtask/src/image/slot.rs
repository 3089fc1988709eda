//! Slot images that carry their own boot, for boards that hand over to a slot's kernel
//! (`oinit.kexec`): the test system with the kernel and its initramfs at the settings' default
//! paths (/boot/vmlinuz, /boot/initrd.img) and that kernel's /lib/modules/RELEASE.

use crate::board::Board;
use crate::image;
use std::path::{Path, PathBuf};

/// `target/boards/BOARD/NAME.sqfs`: board `b`'s test system for slot `variant` with `files`
/// (kernel, initramfs) in /boot and `kernel`'s modules index; beside an uncompressed kernel
/// (arm64's Image), its banner as /boot/vmlinuz.version, which says which kernel it is.
pub fn build(
    root: &Path,
    b: &Board,
    variant: &str,
    name: &str,
    kernel: &Board,
    files: (&Path, &Path),
) -> Result<PathBuf, String> {
    let (kernel_file, initrd) = files;
    let dir = image::rootfs_tree(root, b, variant, name, &[])?;
    // The kernel's modules, as a real image has them (the index is enough for the checks).
    let modules = dir.join("lib/modules").join(&kernel.kernel_version);
    std::fs::create_dir_all(&modules).map_err(|e| e.to_string())?;
    std::fs::copy(kernel.module_dir().join("modules.dep"), modules.join("modules.dep")).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir.join("boot")).map_err(|e| e.to_string())?;
    for (from, to) in [(kernel_file, "boot/vmlinuz"), (initrd, "boot/initrd.img")] {
        std::fs::copy(from, dir.join(to)).map_err(|e| format!("{}: {e}", from.display()))?;
    }
    let bytes = std::fs::read(kernel_file).map_err(|e| format!("{}: {e}", kernel_file.display()))?;
    if let Some(banner) = banner(&bytes).or_else(|| banner(&zimage_payload(&bytes))) {
        std::fs::write(dir.join("boot/vmlinuz.version"), format!("{banner}\n")).map_err(|e| e.to_string())?;
    }
    image::squash(&dir, variant, &b.out_dir(root).join(format!("{name}.sqfs")))
}

/// The kernel a zImage carries, decompressed: Debian's armhf zImage holds an xz stream (the
/// kernel's `xz_wrap.sh`) after its decompressor, whose own text holds the magic too: the first
/// candidate that decompresses is the kernel. Empty for anything else.
fn zimage_payload(zimage: &[u8]) -> Vec<u8> {
    const XZ: &[u8] = b"\xfd7zXZ\x00";
    if zimage.get(0x24..0x28) != Some(&0x016f_2818u32.to_le_bytes()) {
        return Vec::new();
    }
    let candidates = zimage.windows(XZ.len()).enumerate().filter(|(_, w)| *w == XZ).map(|(at, _)| at);
    candidates.map(|at| unxz(&zimage[at..]).unwrap_or_default()).find(|k| !k.is_empty()).unwrap_or_default()
}

/// `xz -dc` of the first stream in `data` (what follows it is ignored).
fn unxz(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    use std::process::Stdio;
    let mut xz = crate::sh::cmd("xz")
        .args(["-dc", "--single-stream"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = xz.stdin.take().ok_or(std::io::ErrorKind::BrokenPipe)?;
    let input = data.to_vec();
    // Fed from a thread: xz writes while it reads, and a full pipe would stall both.
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = xz.wait_with_output()?;
    let _ = feeder.join();
    Ok(if out.status.success() { out.stdout } else { Vec::new() })
}

/// `cargo xtask slot BOARD`: an update image for `install` carrying the kernel the run boots
/// (`--kernel SERIES` for another one) with an initramfs built for it.
pub fn for_install(root: &Path, b: &Board) -> Result<PathBuf, String> {
    let initrd = image::initramfs(root, b)?;
    build(root, b, "b", "slot", b, (&b.kernel_dir.join("vmlinuz"), &initrd))
}

/// The `Linux version ...` line of an uncompressed kernel, what /proc/version says when it runs.
pub fn banner(kernel: &[u8]) -> Option<String> {
    let at = kernel.windows(14).position(|w| w == b"Linux version ")?;
    let end = kernel[at..].iter().position(|b| *b == b'\n' || *b == 0)?;
    Some(String::from_utf8_lossy(&kernel[at..at + end]).into_owned())
}
