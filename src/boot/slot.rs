//! The A/B boot, acting: the data partition first (the slot state lives there), then the facts
//! the decision reads (state record, image identities, uppers present, reset button), then the
//! plan of `plan::ab` executed step by step, handing over to its alternative plan when the counted
//! state write or the lower fails.

use crate::ab::handoff::{SlotsFile, SLOTS_FILE};
use crate::ab::state::{SlotId, State};
use crate::ab::store::{self, Loaded, Store};
use crate::boot::error::{Error, Result};
use crate::boot::mounts::{self, announce, assemble, StepError};
use crate::boot::report::Report;
use crate::boot::{carry, recreate, upper};
use crate::config::ab::SlotSource;
use crate::config::paths::{self, STATE_FILE};
use crate::config::settings::Settings;
use crate::plan::{self, Found, Plan, Role, Step};
use crate::rt::path::{Path, PathBuf};
use crate::rt::prelude::*;
use crate::rt::Why;

pub fn boot(s: &Settings, found: &mut Found, report: &mut Report) -> Result<Plan> {
    // A data volume recreate cut by a power cut is finished (or undone) before the data is read.
    recreate::recover(s, found, report)?;
    let data_plan = assemble(report, found, |f| plan::decide_data(&s.for_slot(SlotId::A), f))?;
    let writable = data_plan.volatile.is_none() && s.has_data();
    let state_path = Path::new(paths::DATA).join(STATE_FILE);
    let (mut store, st, loaded) = if writable {
        store::load_or_default(&state_path, s.ab.tries)
    } else {
        (None, State::factory(s.ab.tries), Loaded::Default("the data partition is not writable"))
    };
    if loaded == Loaded::New {
        log::info!("slot state: none yet (first boot on this data partition): slot a, the factory default");
    }
    if let Loaded::Default(why) = loaded {
        log::warn!("slot state: {why}; using the default (slot a)");
        report.fallbacks.push(format!("slot state: {why}; default used"));
    }
    let base = Path::new(paths::DATA).join(&s.dir);
    let slots = [SlotId::A, SlotId::B];
    // The button is sampled only when nothing else asks for a reset (it costs 100 ms).
    let button =
        !s.ab.factory_reset && !st.reset_requested && s.ab.reset_button.as_ref().is_some_and(crate::boot::button::held);
    let facts = plan::ab::Facts {
        writable: store.is_some(),
        images: slots.map(|slot| image_id(s, found, slot)),
        sources: slots.map(|slot| source_path(s, found, slot).map(|p| p.display().to_string())),
        uppers: slots.map(|slot| base.join(slot.name()).join("upper").exists()),
        button,
        state: st,
        loaded,
    };
    let plan = plan::ab::decide(s, found, &facts).map_err(Error::Plan)?;
    let plan = execute(s, found, plan, &mut store, report)?;
    if let Some((slot, why)) = &plan.slot {
        report.slot = Some((slot.name().into(), why.clone()));
        let version = report.verity.as_ref().and_then(|v| v.security_version);
        write_slots_file(s, found, *slot, &state_path, version);
    }
    Ok(plan)
}

/// Runs the A/B plan's steps after the data partition's (already run). A failed step hands over
/// to the plan's alternative for it (the counted state write, the lower); a failed upper to the
/// same slot on a tmpfs upper; anything else fails the boot.
fn execute(
    s: &Settings,
    found: &mut Found,
    mut plan: Plan,
    store: &mut Option<Store>,
    report: &mut Report,
) -> Result<Plan> {
    announce(&plan, report);
    let mut steps = plan.steps.iter().filter(|x| x.role() != Role::Data);
    let Some(e) = steps.find_map(|step| run_step(s, found, step, store, report).err()) else {
        return Ok(plan);
    };
    let alternative = plan.alternatives.iter().position(|a| match a.when {
        Role::Lower => matches!(e.role, Role::Lower | Role::LowerDev),
        when => when == e.role,
    });
    let Some(i) = alternative else { return Err(e.error) };
    // Taken out of the failed plan rather than copied: the failed plan is not used again.
    let a = plan.alternatives.swap_remove(i);
    let name = |p: &Plan| p.slot.as_ref().map_or("?", |(slot, _)| slot.name());
    let (from, to) = (name(&plan), name(&a.plan));
    let msg = match a.when {
        Role::State => format!("cannot record the trial boot ({}): booting slot {to} uncounted", e.error),
        Role::Upper => format!("slot {from}: upper unusable: {}", e.error),
        _ => format!("slot {from} unusable: {}; falling back to slot {to} in this boot", e.error),
    };
    log::error!("{msg}");
    log::warn!("{}", a.why);
    report.fallbacks.push(msg);
    execute(s, found, *a.plan, store, report)
}

fn run_step(
    s: &Settings,
    found: &Found,
    step: &Step,
    store: &mut Option<Store>,
    report: &mut Report,
) -> core::result::Result<(), StepError> {
    let slot_err = |error: Box<Error>| StepError { role: Role::Slot, error };
    match step {
        Step::SaveState { state, why, critical } => {
            let mut st = (**state).clone();
            // The plan has no state writes without a store; a store that went away is read-only.
            let saved = store.as_mut().map_or(Err(rustix::io::Errno::ROFS), |store| store.save(&mut st));
            match saved {
                Ok(()) => {}
                Err(e) if *critical => {
                    let error = Error::sys("write", STATE_FILE, e, "check the data partition");
                    return Err(StepError { role: Role::State, error });
                }
                Err(e) => log::warn!("cannot write the state record ({why}): {e}", e = Why(e)),
            }
        }
        Step::FactoryReset { why, base, tag, boot, recreate } => {
            let target = if *recreate { recreate::Target::of(s, found) } else { None };
            let recreated = match target {
                Some(t) => recreate_data(s, &t, why, store, report).map_err(slot_err)?,
                None => false,
            };
            if !recreated {
                factory_reset(s, Path::new(base), tag, *boot, why, report).map_err(slot_err)?
            }
        }
        Step::NewUpper(n) => {
            carry::new_image(s, n, report).map_err(slot_err)?;
        }
        Step::CarryKeepList { base, from_slot, slot } => {
            let n = carry::keep_list_switch(s, Path::new(base), *from_slot, *slot).map_err(slot_err)?;
            if n > 0 {
                log::info!("keep-list: {n} entries carried from slot {} into slot {}", from_slot.name(), slot.name());
            }
        }
        Step::DeleteTrash { base } => upper::delete_trash_in_background(Path::new(base)),
        Step::Kexec { slot, lower, kernel, initrd, dtb, verity } => {
            let files = crate::boot::kexec::Files {
                slot: *slot,
                lower,
                kernel,
                initrd,
                dtb: dtb.as_deref(),
                verity: verity.as_deref(),
            };
            // The state record's file is open: the data partition could not be unmounted before
            // the hand-over. Opened again for the other slot's plan when the slot is refused.
            *store = None;
            let refused = crate::boot::kexec::hand_over(&files, report);
            *store = reopen_store();
            refused?
        }
        other => return mounts::run(core::slice::from_ref(other), report),
    }
    report.steps.push(step.to_string());
    Ok(())
}

/// Moves every slot's upper aside (an interrupted attempt's originals stay where the first
/// attempt put them) and carries the keep-list into fresh uppers.
fn factory_reset(s: &Settings, base: &Path, tag: &str, boot: u32, why: &str, report: &mut Report) -> Result<()> {
    log::warn!("FACTORY RESET ({why}): every upper is moved aside and deleted");
    for slot in [SlotId::A, SlotId::B] {
        let original = format!("{tag}-{}", slot.name());
        if base.join(upper::TRASH).join(&original).exists() {
            // An interrupted attempt moved the original aside already; what stands in its place
            // is an unfinished fresh upper.
            upper::move_aside(base, slot.name(), &format!("{original}-unfinished-{boot}"))?;
        } else {
            upper::move_aside(base, slot.name(), &original)?;
        }
        let from = base.join(upper::TRASH).join(&original).join("upper");
        // The board's paths and (unless oinit.resetkeepfile=0) those the keep file in the old
        // upper lists, as for an update.
        let keep = if from.is_dir() { upper::reset_keep_list(&s.ab, &from) } else { Vec::new() };
        if !keep.is_empty() {
            let n = upper::carry(&keep, &from, &base.join(slot.name()).join("upper"));
            log::info!("factory reset: {n} kept entries carried into slot {}", slot.name());
        }
    }
    upper::sync_data(base);
    report.fallbacks.push(format!("factory reset: {why}"));
    Ok(())
}

/// The factory reset that recreates the UBI data volume (`oinit.datarecreate`). The state record
/// is closed while its volume goes and opened again on the new one. Ok(false): nothing was
/// removed, the uppers are to be moved aside instead.
fn recreate_data(
    s: &Settings,
    t: &recreate::Target,
    why: &str,
    store: &mut Option<Store>,
    report: &mut Report,
) -> Result<bool> {
    log::warn!("FACTORY RESET ({why}): UBI volume {} is removed and made again", t.name);
    *store = None;
    let recreated = recreate::reset(s, t, report)?;
    *store = reopen_store();
    if recreated {
        report.fallbacks.push(format!("factory reset: {why} (data volume recreated)"));
    }
    Ok(recreated)
}

/// The state record opened again after it was closed for an operation on the data partition.
fn reopen_store() -> Option<Store> {
    let state_path = Path::new(paths::DATA).join(STATE_FILE);
    match Store::open(&state_path) {
        Ok((store, _)) => Some(store),
        Err(e) => {
            log::warn!("cannot open the state record {} again: {e}", state_path.display(), e = Why(e));
            None
        }
    }
}

/// The identity of the slot's image, read from its squashfs superblock.
fn image_id(s: &Settings, found: &Found, slot: SlotId) -> Option<u32> {
    crate::block::device::image_id_at(&source_path(s, found, slot)?)
}

/// Where a slot's image is: its partition's device node, or the file on the data partition.
fn source_path(s: &Settings, found: &Found, slot: SlotId) -> Option<PathBuf> {
    match &s.ab.slots[slot.index()] {
        Some(SlotSource::File(f)) => Some(PathBuf::from(format!("{}{f}", paths::DATA))),
        Some(SlotSource::Partition(_)) => {
            found.slots[slot.index()].as_ref().map(|d| PathBuf::from(format!("/dev/{}", d.name)))
        }
        // One image (oinit.state): root= is slot a.
        None if slot == SlotId::A && s.ab.one_slot() => {
            found.root.as_ref().map(|d| PathBuf::from(format!("/dev/{}", d.name)))
        }
        None => None,
    }
}

/// The slots' boot partitions (`oinit.aboot`, `oinit.bboot`) as device nodes, for `install`.
fn boot_partitions(s: &Settings) -> [Option<String>; 2] {
    if s.ab.boot_parts.iter().all(Option::is_none) {
        return [None, None];
    }
    // Only LABEL=, UUID= and PARTUUID= need the devices read; PARTLABEL= (the boards') does not.
    let mut devs = crate::block::device::list(Path::new("/sys"));
    if s.ab.boot_parts.iter().flatten().any(|spec| spec.reads_device()) {
        devs.iter_mut().for_each(|d| crate::block::device::identify(d, Path::new("/dev")));
    }
    s.ab.boot_parts.clone().map(|spec| {
        let found = spec.as_ref().and_then(|spec| crate::boot::devices::lookup(&devs, spec));
        if let (Some(spec), None) = (&spec, found) {
            log::warn!("boot partition {spec} not found: install cannot write that slot's kernel");
        }
        found.map(|d| format!("/dev/{}", d.name))
    })
}

fn write_slots_file(s: &Settings, found: &Found, booted: SlotId, state: &Path, security_version: Option<u32>) {
    let path = |slot: SlotId| source_path(s, found, slot).map(|p| p.display().to_string());
    let hash = |slot: SlotId| found.hash[slot.index()].as_ref().map(|h| format!("/dev/{}", h.name));
    let f = SlotsFile {
        booted: Some(booted),
        state: Some(state.to_path_buf()),
        tries: Some(s.ab.tries),
        sources: [path(SlotId::A), path(SlotId::B)],
        hash: [hash(SlotId::A), hash(SlotId::B)],
        compatible: s.verity.compatible.clone(),
        unversioned: s.verity.unversioned,
        security_version,
        // Under U-Boot with boot partitions, install copies the image's kernel files there.
        kexec: s.slot_boot_files(),
        uboot: s.ab.uboot,
        boot: boot_partitions(s),
    };
    if let Err(e) = crate::rt::fs::write(SLOTS_FILE, f.render()) {
        log::warn!("cannot write {SLOTS_FILE}: {e}");
    }
}
