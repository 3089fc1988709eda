//! What a board's U-Boot loads: the boot script (the board's part, `board/NAME/boot.cmd`, ahead
//! of the common `board/integration/uboot/boot.cmd`) and each slot's boot partition.

use crate::board::Board;
use crate::sh;
use std::path::{Path, PathBuf};

/// The common script: slot choice and boot count with RAUC's variables.
pub fn common(root: &Path) -> PathBuf {
    root.join("board/integration/uboot/boot.cmd")
}

/// Compiles `parts` (script sources, in order) into one U-Boot script at `out` with `mkimage`.
pub fn compile(parts: &[PathBuf], out: &Path) -> Result<(), String> {
    let mut text = String::new();
    for p in parts {
        // Concatenated as they are, as Buildroot's post-image.sh does with cat.
        text.push_str(&std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?);
    }
    let source = out.with_extension("cmd");
    std::fs::write(&source, text).map_err(|e| format!("{}: {e}", source.display()))?;
    sh::quiet(sh::cmd("mkimage").args(["-A", "arm", "-T", "script", "-C", "none", "-d"]).arg(&source).arg(out))
}

/// The board's boot script: its own part, when it has one, then the common script.
pub fn board_script(root: &Path, b: &Board, out: &Path) -> Result<(), String> {
    let own = b.dir.join("boot.cmd");
    let parts: Vec<PathBuf> = [own].into_iter().filter(|p| p.exists()).chain([common(root)]).collect();
    compile(&parts, out)
}

/// The names in a slot's boot partition, as the board's `oi_load` loads them and `install`
/// writes them (src/cli/uboot_install.rs).
pub const BOOT_FILES: [&str; 3] = ["vmlinuz", "initrd.img", "board.dtb"];

/// A slot's boot partition at the factory, ext4 labelled `label` of `size` bytes: the board's
/// kernel as Debian ships it, its initramfs and its device tree (board.txt `dtb=`).
pub fn boot_partition(root: &Path, b: &Board, label: &str, size: u64, out: &Path) -> Result<(), String> {
    let dtb = b
        .dtb
        .as_ref()
        .ok_or(format!("board {}: a boot partition needs the device tree: set dtb= in board.txt", b.name))?;
    let dir = out.with_extension("d");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let initramfs = crate::image::initramfs(root, b)?;
    for (from, name) in
        [(&b.kernel_dir.join("vmlinuz"), BOOT_FILES[0]), (&initramfs, BOOT_FILES[1]), (dtb, BOOT_FILES[2])]
    {
        std::fs::copy(from, dir.join(name)).map_err(|e| format!("{}: {e}", from.display()))?;
    }
    std::fs::write(out, b"").map_err(|e| e.to_string())?;
    let made = sh::run(
        sh::cmd("mkfs.ext4")
            .args(["-q", "-F", "-L", label, "-E", "root_owner=0:0", "-d"])
            .arg(&dir)
            .arg(out)
            .arg(format!("{}k", size / 1024)),
    );
    let _ = std::fs::remove_dir_all(&dir);
    made
}

/// The files in the root directory of the ext4 filesystem image `img` (e2fsprogs' debugfs).
pub fn ext4_files(img: &Path) -> Result<Vec<String>, String> {
    // Its banner goes to stderr (kept apart); a damaged filesystem shows as missing files.
    let done = sh::cmd("debugfs").args(["-R", "ls -p /"]).arg(img).output().map_err(|e| format!("debugfs: {e}"))?;
    if !done.status.success() {
        return Err(format!("debugfs {}: {}", img.display(), String::from_utf8_lossy(&done.stderr)));
    }
    let out = String::from_utf8_lossy(&done.stdout);
    // `ls -p`: /inode/mode/uid/gid/name/size/ per entry.
    Ok(out
        .lines()
        .filter_map(|l| l.split('/').nth(5))
        .filter(|n| !n.is_empty() && !n.starts_with('.') && *n != "lost+found")
        .map(String::from)
        .collect())
}
