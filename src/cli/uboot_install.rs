//! `install` under U-Boot (`oinit.bootloader=uboot` with `oinit.aboot`/`oinit.bboot`): a slot is
//! its root image and its boot partition, which U-Boot loads the slot's kernel, initramfs and
//! device tree from (it cannot read squashfs). The slot leaves U-Boot's order first (RAUC's
//! mark-bad); the image is written and read back; its kernel files are copied from the image
//! just written into the boot partition, each synced, renamed into place and read back; only
//! then is the slot made primary. A power cut anywhere before that leaves the slot out of
//! U-Boot's order: a slot whose kernel and image disagree is never offered.

use crate::ab::handoff::{BootFiles, Context};
use crate::ab::state::SlotId;
use crate::cli::medium::{hash_from, hash_medium};
use crate::config::paths::UBOOT_ENV_CONFIG;
use crate::sys::{loopdev, mount};
use crate::uboot::bootchooser::{bootname, describe, Change};
use crate::uboot::store;
use std::fs::File;
use std::path::Path;

/// The names in the boot partition, as the board's `oi_load` loads them.
const KERNEL: &str = "vmlinuz";
const INITRD: &str = "initrd.img";
const DTB: &str = "board.dtb";

/// Takes `target` out of U-Boot's order before anything of it is written.
pub fn withdraw(target: SlotId) -> Result<(), String> {
    store::change(UBOOT_ENV_CONFIG, Change::Bad(target))
        .map(|c| {
            eprintln!("install: slot {} out of U-Boot's order while it is written ({})", bootname(target), describe(&c))
        })
        .map_err(|e| format!("cannot take slot {} out of U-Boot's order: {e}; nothing written", bootname(target)))
}

/// Copies the kernel files of the image now in `image_dev` into `target`'s boot partition.
pub fn write_boot(ctx: &Context, target: SlotId, image_dev: &str) -> Result<String, String> {
    let files = ctx.kexec.as_ref().ok_or("the boot left no kernel file paths in /run/overlay-init/slots")?;
    let boot = ctx.boot[target.index()].as_deref().ok_or_else(|| {
        format!("slot {} has no boot partition (oinit.aboot/oinit.bboot, or it was not found at boot)", target.name())
    })?;
    mount::private_namespace().map_err(|e| format!("a private mount namespace: {e}"))?;
    let dir = std::env::temp_dir().join(format!("overlay-init-install-{}", std::process::id()));
    let (image_dir, boot_dir) = (dir.join("image"), dir.join("boot"));
    for d in [&image_dir, &boot_dir] {
        crate::fs::mkdir::mkdir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let (image_at, boot_at) = (image_dir.display().to_string(), boot_dir.display().to_string());
    let loop_dev = loopdev::attach_ro(image_dev).map_err(|(call, e)| format!("{image_dev}: {call}: {e}"))?;
    let result = mount::mount_image_ro(&loop_dev.path, &image_at)
        .map_err(|e| format!("{image_dev}: mount the image just written: {e}"))
        .and_then(|_| {
            mount::mount_fs(boot, &boot_at, "ext4", "")
                .map_err(|e| format!("{boot}: mount ext4: {e}: the boot partition of slot {}", target.name()))
        })
        .and_then(|()| {
            let copied = copy_files(&image_dir, &boot_dir, files);
            let unmounted = mount::unmount(&boot_at).map_err(|e| format!("{boot}: unmount: {e}"));
            copied.and_then(|n| unmounted.map(|()| n))
        });
    let _ = mount::unmount_detach(&image_at);
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|n| format!("{n} boot files written to {boot} and read back"))
}

/// Each of the image's boot files into the boot partition under its fixed name; a device tree
/// the image no longer has is removed. Returns how many were written.
fn copy_files(image: &Path, boot: &Path, files: &BootFiles) -> Result<usize, String> {
    let mut wanted = vec![(files.kernel.as_str(), KERNEL), (files.initrd.as_str(), INITRD)];
    match &files.dtb {
        Some(dtb) => wanted.push((dtb.as_str(), DTB)),
        None => match std::fs::remove_file(boot.join(DTB)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(format!("{DTB}: {e}")),
            _ => {}
        },
    }
    for (from, name) in &wanted {
        let src = image.join(from.trim_start_matches('/'));
        let mut input = File::open(&src).map_err(|e| format!("{from} in the image: {e}"))?;
        let dest = boot.join(name);
        let tmp = boot.join(format!(".{name}.new"));
        let mut f = File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        // Streamed: a kernel is tens of MiB, more than a small board wants in RAM at once.
        let len = std::io::copy(&mut input, &mut f)
            .and_then(|n| f.sync_all().map(|()| n))
            .map_err(|e| format!("{from} to {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &dest).map_err(|e| format!("rename {} to {name}: {e}", tmp.display()))?;
        File::open(boot).and_then(|d| d.sync_all()).map_err(|e| format!("{}: fsync: {e}", boot.display()))?;
        // The image is read-only and was just read: its hash from the page cache is its content.
        if hash_medium(&dest, len)? != hash_from(&input, len, from)? {
            return Err(format!("{}: read back differs from {from} in the image", dest.display()));
        }
    }
    Ok(wanted.len())
}

/// Makes `target` primary with fresh tries (RAUC's set-primary): U-Boot boots it next.
pub fn offer(target: SlotId) -> Result<String, String> {
    store::change(UBOOT_ENV_CONFIG, Change::Primary(target))
        .map(|c| describe(&c))
        .map_err(|e| format!("slot {} is written but could not be made primary: {e}", bootname(target)))
}
