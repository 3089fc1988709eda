//! The upper of a slot booting a new image, built from the upper of the slot booted before by
//! the board's carry policy (`oinit.carry`): reconciled against the old and new image, the
//! keep-list only, or everything. Crash-safe: the new upper is built in a staging directory on
//! the data partition, made durable, and renamed into place; the state record saying the slot
//! holds the new image is written after that. A power cut at any point leaves the slot's old
//! upper (or a finished new one) and the other slot's upper untouched, and the next boot redoes
//! the work from the same inputs.

use crate::error::{Error, Result};
use crate::paths;
use crate::reconcile::Outcome;
use crate::reconcile_fs::{self, Trees};
use crate::report::Report;
use crate::settings::Settings;
use crate::settings_ab::Carry;
use crate::stage::upper;
use crate::state::SlotId;
use crate::sys::{loopdev, mount};
use std::path::{Path, PathBuf};

/// A slot whose image changed.
pub struct NewImage<'a> {
    /// `oinit.dir` on the data partition.
    pub base: &'a Path,
    pub slot: SlotId,
    /// The slot booted before: its upper is what the user had.
    pub from_slot: SlotId,
    /// The image the slot's upper belongs to (0: unknown, the state record was lost).
    pub recorded: u32,
    pub id: u32,
    /// The image `from_slot`'s upper was made over, when it is still on disk: another slot's
    /// partition or file.
    pub old_image: Option<PathBuf>,
}

/// Makes the slot's new upper. Returns false when the slot's upper is kept as it is: after a
/// lost state record an upper is never replaced on a guess.
pub fn new_image(s: &Settings, n: &NewImage<'_>, report: &mut Report) -> Result<bool> {
    let slot_dir = n.base.join(n.slot.name());
    // Named after the image the old upper belongs to, so a boot cut after the rename finds it.
    let tag = format!("image-{:08x}-{}", n.recorded, n.slot.name());
    let aside = n.base.join(upper::TRASH).join(&tag);
    if n.recorded == 0 && slot_dir.join("upper").exists() {
        return Ok(false);
    }
    if n.recorded != 0 && aside.exists() && slot_dir.exists() {
        // A boot cut after the rename and before the state write: the new upper is whole.
        log::info!("slot {}: the new upper made by an interrupted boot is complete", n.slot.name());
        return Ok(true);
    }
    if slot_dir.exists() {
        // The old upper under its image's name; anything else found in the slot's place (no
        // upper in it: nothing of the user's) under a name of its own.
        let tag = if n.recorded == 0 || aside.exists() { format!("{tag}-{}", crate::report::now_us()) } else { tag };
        upper::move_aside(n.base, n.slot.name(), &tag)?;
    }
    let from = if n.from_slot == n.slot { aside.join("upper") } else { n.base.join(n.from_slot.name()).join("upper") };
    let staging_name = format!(".staging-{}", n.slot.name());
    let staging = n.base.join(&staging_name);
    // What a cut boot left half built goes to the trash, never into use.
    upper::move_aside(n.base, &staging_name, &format!("staging-{}-{}", n.slot.name(), crate::report::now_us()))?;
    std::fs::create_dir_all(&staging).map_err(|e| io("mkdir", &staging, e))?;
    let what = if from.is_dir() { carry(s, n, &from, &staging, report) } else { "nothing to carry".into() };
    upper::sync_data(n.base);
    rustix::fs::rename(&staging, &slot_dir)
        .map_err(|e| Error::sys("rename", staging.display().to_string(), e, "check the data partition"))?;
    upper::sync_dir(n.base)?;
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
fn carry(s: &Settings, n: &NewImage<'_>, from: &Path, staging: &Path, report: &mut Report) -> String {
    let to = staging.join("upper");
    let keep = upper::keep_list(&s.ab.keep, &s.ab.keep_file, from);
    let keep_list = |why: &str| {
        let k = upper::carry(&keep, from, &to);
        format!("{why}{k} keep-list entries carried")
    };
    match s.ab.carry {
        Carry::KeepList => keep_list(""),
        Carry::Keep => match crate::fscopy::copy_tree(from, &to) {
            Ok(k) => format!("the whole upper carried ({k} entries)"),
            Err(e) => {
                log::error!("carrying the whole upper of slot {}: {e}", n.from_slot.name());
                keep_list("copy failed; ")
            }
        },
        Carry::Reconcile => match n.old_image.as_deref().map(|img| reconcile(s, n, img, from, staging, &keep)) {
            Some(Ok(o)) => {
                report.reconcile = Some(o.summary());
                format!("reconciled: {}", o.summary())
            }
            Some(Err(e)) => {
                log::error!(
                    "reconciling the upper of slot {}: {e}; the keep-list is carried instead",
                    n.from_slot.name()
                );
                // Start again from an empty staging directory: nothing half reconciled is used.
                let name = format!(".staging-{}", n.slot.name());
                let _ = upper::move_aside(n.base, &name, &format!("failed-{}", crate::report::now_us()));
                let _ = std::fs::create_dir_all(staging);
                keep_list("reconciliation failed; ")
            }
            None => {
                log::warn!(
                    "the image the old upper was made over is gone (replaced in place); the keep-list is carried"
                );
                keep_list("old image gone; ")
            }
        },
    }
}

/// Mounts the old image read-only, reconciles, unmounts; writes `reconcile.json`.
fn reconcile(
    s: &Settings,
    n: &NewImage<'_>,
    image: &Path,
    from: &Path,
    staging: &Path,
    keep: &[String],
) -> std::result::Result<Outcome, String> {
    let target = paths::OLD_LOWER;
    std::fs::create_dir_all(target).map_err(|e| format!("mkdir {target}: {e}"))?;
    let file = image.display().to_string();
    let is_block = image.metadata().is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()));
    // A file slot needs a loop device; it goes away with the unmount (autoclear).
    let attached =
        if is_block { None } else { Some(loopdev::attach_ro(&file).map_err(|(c, e)| format!("{file}: {c}: {e}"))?) };
    let source = attached.as_ref().map_or(file.clone(), |a| a.path.clone());
    mount::mount_image_ro(&source, target).map_err(|e| format!("mount {source} on {target}: {e}"))?;
    let mut rules = s.ab.rules.clone();
    rules.keep = keep.to_vec();
    let trees = Trees { old: Path::new(target), new: Path::new(paths::LOWER), upper: from };
    let result = reconcile_fs::plan(&trees, &rules).and_then(|o| {
        reconcile_fs::build(&o, &trees, &staging.join("upper"), &staging.join("conflicts"))?;
        Ok(o)
    });
    if let Err(e) = mount::unmount_detach(target) {
        log::warn!("unmount {target}: {e}");
    }
    drop(attached);
    let o = result.map_err(|e| format!("reading or writing the uppers: {e}"))?;
    let header = [
        ("slot", n.slot.name().to_string()),
        ("from", n.from_slot.name().to_string()),
        ("old_image", file),
        ("new_image", format!("{:08x}", n.id)),
        ("conflicts", n.base.join(n.slot.name()).join("conflicts").display().to_string()),
    ];
    if let Err(e) = std::fs::write(paths::RECONCILE, o.to_json(&header)) {
        log::warn!("cannot write {}: {e}", paths::RECONCILE);
    }
    Ok(o)
}

fn io(call: &'static str, p: &Path, e: std::io::Error) -> Error {
    Error::sys(
        call,
        p.display().to_string(),
        rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO),
        "check the data partition",
    )
}
