//! The upper of a slot booting a new image, built from the upper of the slot booted before by
//! the board's carry policy (`oinit.carry`): reconciled against the old and new image, the
//! keep-list only, or everything. Crash-safe: the new upper is built in a staging directory on
//! the data partition, made durable, and renamed into place; the state record saying the slot
//! holds the new image is written after that. A power cut at any point leaves the slot's old
//! upper (or a finished new one) and the other slot's upper untouched, and the next boot redoes
//! the work from the same inputs.

use crate::ab::state::SlotId;
use crate::boot::error::{Error, Result};
use crate::boot::report::Report;
use crate::boot::upper;
use crate::config::ab::Carry;
use crate::config::paths;
use crate::config::settings::Settings;
use crate::plan::NewUpper;
use crate::reconcile::rules::Outcome;
use crate::reconcile::walk::{self, Trees};
use crate::rt::path::Path;
use crate::rt::prelude::*;
use crate::rt::Why;
use crate::sys::{loopdev, mount};
use rustix::fs::{renameat_with, RenameFlags, CWD};

/// Makes the slot's new upper (the plan leaves an upper of unknown image alone: after a lost
/// state record an upper is never replaced on a guess). Returns false when the slot's upper was
/// found already finished by an interrupted boot.
pub fn new_image(s: &Settings, n: &NewUpper, report: &mut Report) -> Result<bool> {
    let base = Path::new(&n.base);
    let slot_dir = base.join(n.slot.name());
    // Named after the image the old upper belongs to, so a boot cut after the rename finds it.
    let tag = format!("image-{:08x}-{}", n.recorded, n.slot.name());
    let aside = base.join(upper::TRASH).join(&tag);
    if n.recorded != 0 && aside.exists() && slot_dir.exists() {
        // A boot cut after the rename and before the state write: the new upper is whole.
        log::info!("slot {}: the new upper made by an interrupted boot is complete", n.slot.name());
        return Ok(false);
    }
    if slot_dir.exists() {
        // The old upper under its image's name; anything else found in the slot's place (no
        // upper in it: nothing of the user's) under a name of its own.
        let tag =
            if n.recorded == 0 || aside.exists() { format!("{tag}-{}", crate::sys::clock::now_us()) } else { tag };
        upper::move_aside(base, n.slot.name(), &tag)?;
    }
    let from = if n.from_slot == n.slot { aside.join("upper") } else { base.join(n.from_slot.name()).join("upper") };
    log::info!("slot {}: making its upper for image {:08x} from slot {}'s", n.slot.name(), n.id, n.from_slot.name());
    let staging_name = format!(".staging-{}", n.slot.name());
    let staging = base.join(&staging_name);
    // What a cut boot left half built goes to the trash, never into use.
    upper::move_aside(base, &staging_name, &format!("staging-{}-{}", n.slot.name(), crate::sys::clock::now_us()))?;
    crate::fs::mkdir::mkdir_all(&staging).map_err(|e| io("mkdir", &staging, e))?;
    let what = if from.is_dir() { carry(s, n, &from, &staging, report) } else { "nothing to carry".into() };
    upper::sync_data(base);
    rustix::fs::rename(&staging, &slot_dir)
        .map_err(|e| Error::sys("rename", staging.display().to_string(), e, "check the data partition"))?;
    upper::sync_dir(base)?;
    log::info!(
        "slot {}: new image {:08x}: upper from slot {} by oinit.carry: {what}",
        n.slot.name(),
        n.id,
        n.from_slot.name()
    );
    report.fallbacks.push(format!("slot {} boots image {:08x} for the first time: {what}", n.slot.name(), n.id));
    Ok(true)
}

/// Fills `staging` from the upper `from`; returns what was done, for the log.
fn carry(s: &Settings, n: &NewUpper, from: &Path, staging: &Path, report: &mut Report) -> String {
    let to = staging.join("upper");
    let keep = upper::keep_list(&s.ab.keep, &s.ab.keep_file, from);
    let keep_list = |why: &str| {
        let k = upper::carry(&keep, from, &to);
        format!("{why}{k} keep-list entries carried")
    };
    match s.ab.carry {
        Carry::KeepList => keep_list(""),
        Carry::Keep => match crate::fs::copy::copy_tree(from, &to) {
            Ok(k) => format!("the whole upper carried ({k} entries)"),
            Err(e) => {
                log::error!(
                    "carrying the whole upper of slot {}: {e}; the keep-list is carried instead",
                    n.from_slot.name()
                );
                restart(n, staging);
                keep_list("copy failed; ")
            }
        },
        Carry::Reconcile => {
            match n.old_image.as_deref().map(|img| reconcile(s, n, Path::new(img), from, staging, &keep, report)) {
                Some(Ok(o)) => {
                    report.reconcile = Some(o.summary());
                    // What was left out is named where the operator looks first, too.
                    report
                        .fallbacks
                        .extend(o.skipped.iter().map(|k| format!("reconcile: {} left out: {}", k.path, k.why)));
                    format!("reconciled: {}", o.summary())
                }
                Some(Err(e)) => {
                    log::error!(
                        "reconciling the upper of slot {}: {e}; the keep-list is carried instead",
                        n.from_slot.name()
                    );
                    restart(n, staging);
                    keep_list("reconciliation failed; ")
                }
                None => {
                    log::warn!(
                        "the image the old upper was made over is gone (replaced in place); the keep-list is carried"
                    );
                    keep_list("old image gone; ")
                }
            }
        }
    }
}

/// Starts again from an empty staging directory: nothing half carried is used.
fn restart(n: &NewUpper, staging: &Path) {
    let name = format!(".staging-{}", n.slot.name());
    let _ = upper::move_aside(Path::new(&n.base), &name, &format!("failed-{}", crate::sys::clock::now_us()));
    let _ = crate::fs::mkdir::mkdir_all(staging);
}

/// Mounts the old image read-only, reconciles, unmounts; writes `reconcile.json`.
fn reconcile(
    s: &Settings,
    n: &NewUpper,
    image: &Path,
    from: &Path,
    staging: &Path,
    keep: &[String],
    report: &mut Report,
) -> core::result::Result<Outcome, String> {
    let target = paths::OLD_LOWER;
    crate::fs::mkdir::mkdir_all(target).map_err(|e| format!("mkdir {target}: {e}"))?;
    let file = image.display().to_string();
    // On a board that verifies its lowers the old image is read through dm-verity too: what a
    // reconciliation compares the user's files with must be the signed image, not whatever is
    // on the inactive slot's partition now.
    let verified = match &n.old_verity {
        Some(v) => Some(crate::boot::verity::open_device(v, report).map_err(|e| format!("verifying {file}: {e}"))?),
        None => None,
    };
    let is_block =
        image.metadata().is_ok_and(|m| crate::rt::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()));
    // A file slot needs a loop device; it goes away with the unmount (autoclear).
    let attached = if is_block || verified.is_some() {
        None
    } else {
        Some(loopdev::attach_ro(&file).map_err(|(c, e)| format!("{file}: {c}: {e}", e = Why(e)))?)
    };
    let source = match &verified {
        Some(v) => v.device.clone(),
        None => attached.as_ref().map_or_else(|| file.clone(), |a| a.path.clone()),
    };
    let result = reconcile_mounted(s, &source, from, staging, keep);
    drop(attached);
    if let (Some(v), Some(d)) = (&n.old_verity, &verified) {
        let _ = crate::rt::fs::remove_file(&d.device);
        if let Err((call, e)) = crate::sys::dm::remove_deferred(&v.name) {
            log::warn!("dm-verity device {} of the old image: {call}: {e}", v.name, e = Why(e));
        }
    }
    let o = result?;
    let header = [
        ("slot", n.slot.name().to_string()),
        ("from", n.from_slot.name().to_string()),
        ("old_image", file),
        ("new_image", format!("{:08x}", n.id)),
        ("conflicts", format!("{}/{}/conflicts", n.base, n.slot.name())),
    ];
    // The report names the user's files: readable by root alone, like the upper it describes.
    if let Err(e) = crate::fs::careful::write_private(Path::new(paths::RECONCILE), o.to_json(&header).as_bytes()) {
        log::warn!("cannot write {}: {e}", paths::RECONCILE);
    }
    Ok(o)
}

/// How many entries (and skipped paths) `reconcile.json` lists at most; every one is counted.
/// What the boot holds in memory for the report stays bounded however many files the user has.
const REPORT_LISTS: usize = 1000;

/// Mounts the old image's device read-only, reconciles `from` into `staging`, unmounts.
fn reconcile_mounted(
    s: &Settings,
    source: &str,
    from: &Path,
    staging: &Path,
    keep: &[String],
) -> core::result::Result<Outcome, String> {
    let target = paths::OLD_LOWER;
    mount::mount_image_ro(source, target).map_err(|e| format!("mount {source} on {target}: {e}", e = Why(e)))?;
    let mut rules = s.ab.rules.clone();
    rules.keep = keep.to_vec();
    let trees = Trees { old: Path::new(target), new: Path::new(paths::LOWER), upper: from };
    let (to, conflicts) = (staging.join("upper"), staging.join("conflicts"));
    let result = walk::reconcile(&trees, &rules, &to, &conflicts, Some(REPORT_LISTS)).map(|(o, _)| o);
    if let Err(e) = mount::unmount_detach(target) {
        log::warn!("unmount {target}: {e}", e = Why(e));
    }
    result.map_err(|e| format!("reading or writing the uppers: {e}"))
}

fn io(call: &'static str, p: &Path, e: crate::rt::io::Error) -> Box<Error> {
    Error::io(call, p, &e, "check the data partition")
}

/// A switch to a slot that has its image already (rollback, `mark-active other`): each path of
/// the keep-list in the upper of the slot booted before replaces the one in this slot's upper.
/// Each is copied into a staging directory first and then renamed into place, the replaced one
/// going to the trash, so a power cut leaves either version of a path, never half of one.
pub fn keep_list_switch(s: &Settings, base: &Path, from_slot: SlotId, slot: SlotId) -> Result<usize> {
    let (from, to) = (base.join(from_slot.name()).join("upper"), base.join(slot.name()).join("upper"));
    if !from.is_dir() || !to.is_dir() {
        return Ok(0);
    }
    let keep = upper::keep_list(&s.ab.keep, &s.ab.keep_file, &from);
    // A path under another kept path moves with it.
    let tops: Vec<&String> = keep
        .iter()
        .filter(|k| !keep.iter().any(|o| o != *k && k.strip_prefix(o.as_str()).is_some_and(|r| r.starts_with('/'))))
        .collect();
    if tops.is_empty() {
        return Ok(0);
    }
    let name = ".staging-keep";
    upper::move_aside(base, name, &format!("staging-keep-{}", crate::sys::clock::now_us()))?;
    let staging = base.join(name);
    crate::fs::mkdir::mkdir_all(&staging).map_err(|e| io("mkdir", &staging, e))?;
    upper::carry(&keep, &from, &staging);
    upper::sync_data(base);
    let mut n = 0;
    for k in &tops {
        let rel = k.trim_start_matches('/');
        let (Some(src), Some(dst)) = (upper::safe_path(&staging, rel), upper::safe_path(&to, rel)) else { continue };
        if src.symlink_metadata().is_err() {
            continue;
        }
        let swap = dst.symlink_metadata().is_ok();
        if !swap {
            crate::fs::copy::make_parents_like(&staging, &to, Path::new(rel))
                .map_err(|e| io("mkdir", dst.parent().unwrap_or(&to), e))?;
        }
        // One atomic exchange (renameat2 RENAME_EXCHANGE) when the path exists, directory or
        // not: at every instant the slot's upper holds the old or the new version.
        let flags = if swap { RenameFlags::EXCHANGE } else { RenameFlags::NOREPLACE };
        renameat_with(CWD, &src, CWD, &dst, flags)
            .map_err(|e| Error::sys("renameat2", dst.display().to_string(), e, "check the data partition"))?;
        n += 1;
    }
    upper::sync_data(base);
    // What was replaced is in the staging directory now: to the trash with it.
    upper::move_aside(base, name, &format!("keep-replaced-{}", crate::sys::clock::now_us()))?;
    Ok(n)
}
