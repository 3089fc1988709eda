//! Factory reset by recreating the UBI data volume, OpenWRT's `jffs2reset` on NAND, when the
//! board asks for it (`oinit.datarecreate=SIZE`): every byte of the old UBIFS goes, a damaged
//! filesystem included, where the usual reset only moves the uppers aside.
//!
//! Crash-safe through a carry volume in the space the setting keeps free: the state record and
//! each slot's keep-list are copied into a small UBIFS volume of their own and marked complete;
//! only then is the data volume removed, made again and filled from the carry, and the carry
//! removed last. A power cut before the mark leaves the old volume untouched (the next boot drops
//! the carry, and the reset, still requested in the state record, runs again); after it, the next
//! boot finishes the work from the carry before anything reads the data.

use crate::ab::state::SlotId;
use crate::block::device::{self, BlockDev};
use crate::boot::error::{Error, Result};
use crate::boot::mounts;
use crate::boot::report::Report;
use crate::boot::upper;
use crate::config::paths;
use crate::config::paths::CARRY_VOLUME;
use crate::config::settings::Settings;
use crate::plan::data::ubi_data_mount;
use crate::plan::{DataState, Found, Step};
use crate::rt::path::Path;
use crate::rt::prelude::*;
use crate::rt::Why;
use crate::sys::{mount, ubi};

const CARRY_DIR: &str = "/run/overlay-init/carry";
/// Written last into the carry, after everything else in it is durable.
const COMPLETE: &str = "complete";
/// UBIFS's smallest volume in eraseblocks (`UBIFS_MIN_LEB_CNT`): superblock, master, log, LPT,
/// orphan and main areas.
const UBIFS_MIN_LEBS: u64 = 17;

/// The size of the carry volume: what `oinit.datarecreate` keeps free in whole eraseblocks
/// (UBI rounds the data volume up to them, so only those whole ones are left), or why a reset
/// cannot recreate the data volume (it moves the uppers aside instead). `free` is what the UBI
/// device has left, `leb` its eraseblock size.
pub fn carry_size(free: u64, keep_free: u64, leb: u64) -> core::result::Result<u64, String> {
    let bytes = keep_free / leb.max(1) * leb;
    if bytes < UBIFS_MIN_LEBS * leb {
        return Err(format!(
            "oinit.datarecreate={keep_free} is less than the {UBIFS_MIN_LEBS} eraseblocks ({} bytes) of the smallest UBIFS",
            UBIFS_MIN_LEBS * leb
        ));
    }
    if free < bytes {
        return Err(format!(
            "the UBI device has {free} bytes free, the carry volume needs {bytes} (the data volume was made \
             before oinit.datarecreate was set, or takes the space it keeps free)"
        ));
    }
    Ok(bytes)
}

/// The UBI device and volume name of the data, and the mount that makes it the data.
pub struct Target {
    pub ubi: u32,
    /// The data volume's ID, kept when it is made again (the mount names it).
    pub vol: u32,
    pub name: String,
    pub mount: Step,
}

impl Target {
    /// None unless the data is a UBI volume the settings let a reset recreate.
    pub fn of(s: &Settings, found: &Found) -> Option<Target> {
        s.ab.recreate?;
        let DataState::Found { dev, .. } = &found.data else { return None };
        let u = dev.ubi.as_ref()?;
        Some(Target {
            ubi: u.dev,
            vol: u.vol,
            name: u.name.clone(),
            mount: Step::Mount(ubi_data_mount(s, u.dev, u.vol)),
        })
    }

    fn dev(&self) -> String {
        format!("/dev/ubi{}", self.ubi)
    }

    /// Volume `name` of this UBI device: its volume ID and its entry.
    fn volume(&self, name: &str) -> Option<(u32, BlockDev)> {
        device::ubi_volumes(Path::new("/sys")).into_iter().find_map(|v| {
            let u = v.ubi.as_ref()?;
            (u.dev == self.ubi && u.name == name).then(|| (u.vol, v.clone()))
        })
    }
}

/// The factory reset with the data volume mounted at `paths::DATA`. Ok(false) when it removed
/// nothing (refused, or the carry could not be filled): the caller moves the uppers aside.
/// Leaves the new, empty data volume mounted, holding the state and the kept paths.
pub fn reset(s: &Settings, t: &Target, report: &mut Report) -> Result<bool> {
    let sysfs = Path::new("/sys");
    let free = device::ubi_free(sysfs, t.ubi).unwrap_or(0);
    let leb = device::ubi_leb_size(sysfs, t.ubi).unwrap_or(0);
    let keep_free = s.ab.recreate.unwrap_or(0);
    let bytes = match carry_size(free, keep_free, leb) {
        Ok(bytes) => bytes,
        Err(why) => {
            log::warn!("factory reset: {why}; moving the uppers aside instead");
            return Ok(false);
        }
    };
    if let Err(e) = fill_carry(s, t, bytes) {
        log::warn!("factory reset: cannot fill the carry volume ({e}); moving the uppers aside instead");
        drop_carry(t)?;
        return Ok(false);
    }
    if let Err(e) = mount::unmount(paths::DATA) {
        log::warn!("factory reset: umount {}: {e}; moving the uppers aside instead", paths::DATA, e = Why(e));
        drop_carry(t)?;
        return Ok(false);
    }
    finish(s, t, report)?;
    Ok(true)
}

/// Before the data is read: finishes a recreate a power cut interrupted after its carry was
/// complete, or drops a carry left incomplete. `found.data` then names the volume as it is.
pub fn recover(s: &Settings, found: &mut Found, report: &mut Report) -> Result<()> {
    let Some(t) = Target::of(s, found) else { return Ok(()) };
    let Some((_, carry)) = t.volume(CARRY_VOLUME) else { return Ok(()) };
    let complete = mount_carry(&t).is_ok() && Path::new(CARRY_DIR).join(COMPLETE).exists();
    if !complete {
        log::warn!("factory reset: dropping the incomplete carry volume {} of an interrupted reset", carry.name);
        return drop_carry(&t);
    }
    log::warn!("factory reset: finishing the recreate of UBI volume {} a power cut interrupted", t.name);
    finish(s, &t, report)?;
    mount::unmount(paths::DATA).map_err(|e| Error::sys("umount", paths::DATA, e, "report this with the boot log"))?;
    if let Some((_, dev)) = t.volume(&t.name) {
        found.data = DataState::Found { dev, blank: false, offset: 0 };
    }
    Ok(())
}

/// Makes the carry volume and fills it: the state record, each slot's kept paths, then the mark.
fn fill_carry(s: &Settings, t: &Target, bytes: u64) -> Result<()> {
    ubi::make_volume(&t.dev(), None, CARRY_VOLUME, bytes)
        .map_err(|(call, e)| Error::sys(call, t.dev(), e, "check the UBI device's free space (ubinfo)"))?;
    durable();
    log::info!("factory reset: carry volume {CARRY_VOLUME} made, {bytes} bytes");
    mount_carry(t)?;
    let carry = Path::new(CARRY_DIR);
    let data = Path::new(paths::DATA);
    let state = data.join(crate::config::paths::STATE_FILE);
    // The data partition is hostile: the record is read as a regular file, bounded, never
    // through a symlink (a link to a device or a FIFO in its place would block or leak here).
    match crate::fs::careful::read_regular(&state, crate::ab::state::FILE_LEN as usize) {
        Ok(bytes) => {
            crate::rt::fs::write(carry.join("state"), bytes).map_err(|e| io("write", &carry.join("state"), &e))?
        }
        Err(rustix::io::Errno::NOENT) => {}
        Err(e) => {
            log::warn!("factory reset: the state record {} is not carried: {e}", state.display(), e = Why(e))
        }
    }
    let base = data.join(&s.dir);
    for slot in [SlotId::A, SlotId::B] {
        let from = base.join(slot.name()).join("upper");
        if !from.is_dir() {
            continue;
        }
        let to = carry.join("slots").join(slot.name()).join("upper");
        crate::fs::mkdir::mkdir_all(&to).map_err(|e| io("mkdir", &to, &e))?;
        for k in upper::reset_keep_list(&s.ab, &from) {
            upper::carry_one(&k, &from, &to).map_err(|e| io("copy", &from.join(k.trim_start_matches('/')), &e))?;
        }
    }
    upper::sync_data(carry);
    let mark = carry.join(COMPLETE);
    crate::rt::fs::write(&mark, b"").map_err(|e| io("write", &mark, &e))?;
    upper::sync_dir(carry)?;
    log::info!("factory reset: state and keep-list carried in UBI volume {CARRY_VOLUME}");
    Ok(())
}

/// With the carry complete and mounted and the data unmounted: removes the data volume, makes
/// it again with all the space left, fills it from the carry, and removes the carry. Each step
/// can run again after a power cut.
fn finish(s: &Settings, t: &Target, report: &mut Report) -> Result<()> {
    let hint = "the carry volume keeps the state and keep-list; the next boot tries again";
    if let Some((id, old)) = t.volume(&t.name) {
        ubi::remove_volume(&t.dev(), id).map_err(|(call, e)| Error::sys(call, t.dev(), e, hint))?;
        durable();
        log::warn!("factory reset: removed UBI volume {} ({})", t.name, old.name);
    }
    let free = device::ubi_free(Path::new("/sys"), t.ubi).unwrap_or(0);
    ubi::make_volume(&t.dev(), Some(t.vol), &t.name, free).map_err(|(call, e)| Error::sys(call, t.dev(), e, hint))?;
    durable();
    mounts::run(core::slice::from_ref(&t.mount), report).map_err(|e| *e.error)?;
    let carry = Path::new(CARRY_DIR);
    let data = Path::new(paths::DATA);
    let state = carry.join("state");
    if state.exists() {
        let to = data.join(crate::config::paths::STATE_FILE);
        if let Some(dir) = to.parent() {
            crate::fs::mkdir::mkdir_all(dir).map_err(|e| io("mkdir", dir, &e))?;
        }
        crate::fs::copy::file(&state, &to).map_err(|e| io("copy", &to, &e))?;
    }
    let slots = carry.join("slots");
    if slots.is_dir() {
        let base = data.join(&s.dir);
        crate::fs::mkdir::mkdir_all(&base).map_err(|e| io("mkdir", &base, &e))?;
        crate::fs::copy::copy_tree(&slots, &base).map_err(|e| io("copy", &base, &e))?;
    }
    upper::sync_data(data);
    log::warn!("factory reset: UBI volume {} made again, {free} bytes, with the state and keep-list", t.name);
    drop_carry(t)
}

/// Unmounts and removes the carry volume, if there is one.
fn drop_carry(t: &Target) -> Result<()> {
    let _ = mount::unmount(CARRY_DIR);
    if let Some((id, _)) = t.volume(CARRY_VOLUME) {
        ubi::remove_volume(&t.dev(), id)
            .map_err(|(call, e)| Error::sys(call, t.dev(), e, "remove it with ubirmvol; the data is intact"))?;
        durable();
    }
    Ok(())
}

fn mount_carry(t: &Target) -> Result<()> {
    crate::fs::mkdir::mkdir_all(CARRY_DIR).map_err(|e| io("mkdir", Path::new(CARRY_DIR), &e))?;
    let source = format!("ubi{}:{CARRY_VOLUME}", t.ubi);
    mount::mount_fs(&source, CARRY_DIR, "ubifs", "nodev,nosuid,noexec")
        .map_err(|e| Error::sys("mount", source, e, "check the UBI device (ubinfo -a)"))
}

/// Volume-table changes reach the flash before the next step relies on them: UBI writes through
/// its MTD driver, and an MTD over a block device (block2mtd) caches until synced.
fn durable() {
    rustix::fs::sync();
}

/// An error while the carry fills (the data volume is intact) or while the new volume is filled.
fn io(call: &'static str, p: &Path, e: &crate::rt::io::Error) -> Box<Error> {
    Error::io(call, p, e, "the data or the carry volume holds everything; the next boot tries again")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carry_is_whole_eraseblocks_of_a_ubifs_that_fits() {
        let leb = 126_976;
        // 4 MiB is 33 whole eraseblocks and a part: the part is not asked for.
        assert_eq!(carry_size(10 << 20, 4 << 20, leb), Ok(33 * leb));
        assert_eq!(carry_size(33 * leb, 4 << 20, leb), Ok(33 * leb));
        assert!(carry_size(10 << 20, 1 << 20, leb).unwrap_err().contains("17 eraseblocks (2158592 bytes)"));
        let short = carry_size(2 << 20, 4 << 20, leb).unwrap_err();
        assert!(short.contains("has 2097152 bytes free, the carry volume needs 4190208"), "{short}");
    }
}
