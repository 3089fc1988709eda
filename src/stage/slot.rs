//! The A/B boot: data partition first (the slot state lives there), then the slot choice,
//! persisted before anything else; the chosen slot's lower, falling back to the other slot in the
//! same boot; factory reset and new-image uppers; then upper and overlay.

use crate::error::{Error, Result};
use crate::paths;
use crate::plan::{self, DataState, Found, Plan, Role, Step};
use crate::report::Report;
use crate::settings::Settings;
use crate::settings_ab::SlotSource;
use crate::slots::{self, Policy};
use crate::slots_file::{SlotsFile, SLOTS_FILE};
use crate::stage::mounts::{self, announce, assemble};
use crate::stage::{carry, upper};
use crate::state::{Reason, SlotId, State};
use crate::store::{self, Loaded, Store};
use std::path::{Path, PathBuf};

/// The state record, relative to the data partition.
pub const STATE_FILE: &str = ".overlay-init/state";
/// A factory reset that fails on this many boots in a row is given up, so the device still boots.
const MAX_RESET_ATTEMPTS: u8 = 3;

pub fn boot(s: &Settings, found: &mut Found, report: &mut Report) -> Result<Plan> {
    let policy = Policy { tries: s.ab.tries, late_fallback: s.ab.late_fallback, one_slot: s.ab.one_slot() };
    let data_plan = assemble(report, found, |f| plan::decide_data(&s.for_slot(SlotId::A), f))?;
    let writable = data_plan.volatile.is_none() && s.has_data();
    let state_path = Path::new(paths::DATA).join(STATE_FILE);
    let (mut store, mut st, loaded) = if writable {
        store::load_or_default(&state_path, policy.tries)
    } else {
        (None, State::factory(policy.tries), Loaded::Default("the data partition is not writable"))
    };
    if loaded == Loaded::New {
        log::info!("slot state: none yet (first boot on this data partition): slot a, the factory default");
    }
    if let Loaded::Default(why) = loaded {
        log::warn!("slot state: {why}; using the default (slot a)");
        report.fallbacks.push(format!("slot state: {why}; default used"));
    }

    let before = st.clone();
    let previous = before.last_booted;
    let mut choice = slots::choose(&mut st, policy);
    if let Err(e) = save(&mut store, &mut st) {
        if choice.counted {
            log::error!("cannot record the trial boot ({e}): booting the last good slot uncounted");
            choice = slots::uncounted(&before);
            st = before;
            st.active = choice.slot;
        }
    }
    log::info!("slot {}: {}", choice.slot.name(), choice.reason.text());

    let (slot, plan) = mount_lower(s, found, report, &mut st, &mut store, choice.slot)?;
    report.slot = Some((slot.name().into(), st.history.last().map_or("", |e| e.reason.text()).into()));

    if writable {
        uppers(s, found, &mut st, &mut store, (previous, slot), report)?;
    }
    let plan = match mounts::run(&upper_steps(&plan), report) {
        Ok(()) => plan,
        // Upper or work cannot be made (a full data partition, say): the same slot on a tmpfs
        // upper, or the data-missing policy's error.
        Err(e) if e.role == Role::Upper => {
            log::error!("{}", e.error);
            report.fallbacks.push(format!("slot {}: upper unusable: {}", slot.name(), e.error));
            found.data = DataState::Unmountable(e.error.to_string());
            let volatile = plan::decide(&s.for_slot(slot), found).map_err(Error::Plan)?;
            announce(&volatile, report);
            mounts::run(&upper_steps(&volatile), report).map_err(|e| *e.error)?;
            volatile
        }
        Err(e) => return Err(*e.error),
    };
    write_slots_file(s, found, slot, &state_path);
    Ok(plan)
}

/// The steps after the lower is mounted: tmpfs for a volatile upper, upper and work, overlay.
fn upper_steps(plan: &Plan) -> Vec<Step> {
    plan.steps.iter().filter(|x| matches!(x.role(), Role::Volatile | Role::Upper | Role::Overlay)).cloned().collect()
}

fn save(store: &mut Option<Store>, st: &mut State) -> std::result::Result<(), String> {
    match store {
        Some(store) => store.save(st).map_err(|e| e.to_string()),
        None => Err("no state file".into()),
    }
}

/// Mounts the slot's lower; if its image is missing or unmountable, marks it bad and tries the
/// other slot in the same boot.
fn mount_lower(
    s: &Settings,
    found: &mut Found,
    report: &mut Report,
    st: &mut State,
    store: &mut Option<Store>,
    first: SlotId,
) -> Result<(SlotId, Plan)> {
    let mut slot = first;
    let mut tried = 0;
    loop {
        tried += 1;
        let mut ss = s.for_slot(slot);
        if s.ab.slots[slot.index()].is_some() {
            found.root = found.slots[slot.index()].clone();
        }
        // A verified image is read in full once, on the first boot of that image.
        if ss.verity.enabled() {
            ss.verity.new_image = image_id(s, found, slot) != Some(st.slot(slot).image);
        }
        let attempt = plan::decide(&ss, found).map_err(Error::Plan).and_then(|plan| {
            announce(&plan, report);
            let lower: Vec<Step> =
                plan.steps.iter().filter(|x| matches!(x.role(), Role::LowerDev | Role::Lower)).cloned().collect();
            mounts::run(&lower, report).map_err(|e| *e.error)?;
            Ok(plan)
        });
        match attempt {
            Ok(plan) => return Ok((slot, plan)),
            Err(e) => {
                log::error!("slot {}: {e}", slot.name());
                report.fallbacks.push(format!("slot {} unusable: {e}", slot.name()));
                if s.ab.one_slot() {
                    return Err(e);
                }
                let Some(other) = slots::lower_failed(st, slot, tried > 1) else { return Err(e) };
                if let Err(w) = save(store, st) {
                    log::warn!("cannot record the failed slot: {w}");
                }
                log::warn!("falling back to slot {} in this boot", other.name());
                slot = other;
            }
        }
    }
}

/// Factory reset and new-image uppers, before upper and work are prepared.
/// `slots`: the slot booted before this boot (if known) and the slot booting now.
fn uppers(
    s: &Settings,
    found: &Found,
    st: &mut State,
    store: &mut Option<Store>,
    slots: (Option<SlotId>, SlotId),
    report: &mut Report,
) -> Result<()> {
    let (previous, slot) = slots;
    let base = Path::new(paths::DATA).join(&s.dir);
    let cycles = s.ab.reset_cycles;
    let trigger = if s.ab.factory_reset {
        Some("oinit.factoryreset on the command line")
    } else if st.reset_requested {
        Some("requested by 'overlay-init factory-reset'")
    } else if s.ab.reset_button.as_ref().is_some_and(|b| b.held()) {
        Some("the reset button was held at power-on")
    } else if cycles > 0 && st.unconfirmed_boots >= cycles {
        Some("too many boots in a row without mark-good")
    } else {
        None
    };
    if let Some(why) = trigger {
        factory_reset(s, st, store, &base, why, report)?;
    }
    let id = image_id(s, found, slot);
    if let Some(id) = id.filter(|id| *id != st.slot(slot).image) {
        let from_slot = previous.unwrap_or(slot);
        let n = carry::NewImage {
            base: &base,
            slot,
            from_slot,
            recorded: st.slot(slot).image,
            id,
            old_image: if from_slot == slot { None } else { source_path(s, found, from_slot) },
        };
        if carry::new_image(s, &n, report)? {
            st.record(slot, Reason::NewImage);
        }
        st.slot_mut(slot).image = id;
        if let Err(e) = save(store, st) {
            log::warn!("cannot record the image identity: {e}");
        }
    }
    upper::delete_trash_in_background(&base);
    Ok(())
}

fn factory_reset(
    s: &Settings,
    st: &mut State,
    store: &mut Option<Store>,
    base: &Path,
    why: &str,
    report: &mut Report,
) -> Result<()> {
    if st.reset_attempts >= MAX_RESET_ATTEMPTS {
        log::error!("factory reset failed on {MAX_RESET_ATTEMPTS} boots; giving up so the device boots");
        st.reset_requested = false;
        st.reset_attempts = 0;
        let _ = save(store, st);
        return Ok(());
    }
    // Count the attempt first: a reset that kills every boot must not loop forever.
    if st.reset_attempts == 0 {
        st.reset_boot = st.boots;
    }
    st.reset_attempts += 1;
    st.reset_requested = true;
    let _ = save(store, st);
    log::warn!("FACTORY RESET ({why}): every upper is moved aside and deleted");
    for slot in [SlotId::A, SlotId::B] {
        let original = format!("reset-{}-{}", st.reset_boot, slot.name());
        if base.join(upper::TRASH).join(&original).exists() {
            // An interrupted attempt moved the original aside already; what stands in its place
            // is an unfinished fresh upper.
            upper::move_aside(base, slot.name(), &format!("{original}-unfinished-{}", st.boots))?;
        } else {
            upper::move_aside(base, slot.name(), &original)?;
        }
        let from = base.join(upper::TRASH).join(&original).join("upper");
        // The same keep-list as a new image: the board's paths and those the keep file in
        // the old upper lists (OpenWRT's sysupgrade.conf), so one list says what survives.
        let keep = if from.is_dir() { upper::keep_list(&s.ab.keep, &s.ab.keep_file, &from) } else { Vec::new() };
        if !keep.is_empty() {
            let n = upper::carry(&keep, &from, &base.join(slot.name()).join("upper"));
            log::info!("factory reset: {n} kept entries carried into slot {}", slot.name());
        }
    }
    upper::sync_data(base);
    st.reset_requested = false;
    st.reset_attempts = 0;
    st.unconfirmed_boots = 0;
    st.record(st.active, Reason::FactoryReset);
    if let Err(e) = save(store, st) {
        log::warn!("cannot record the finished reset: {e}; it runs again on the next boot");
    }
    report.fallbacks.push(format!("factory reset: {why}"));
    Ok(())
}

/// The identity of the slot's image, read from its squashfs superblock.
fn image_id(s: &Settings, found: &Found, slot: SlotId) -> Option<u32> {
    crate::blockdev::image_id_at(&source_path(s, found, slot)?)
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

fn write_slots_file(s: &Settings, found: &Found, booted: SlotId, state: &Path) {
    let path = |slot: SlotId| source_path(s, found, slot).map(|p| p.display().to_string());
    let hash = |slot: SlotId| found.hash[slot.index()].as_ref().map(|h| format!("/dev/{}", h.name));
    let f = SlotsFile {
        booted: Some(booted),
        state: Some(state.to_path_buf()),
        tries: Some(s.ab.tries),
        sources: [path(SlotId::A), path(SlotId::B)],
        hash: [hash(SlotId::A), hash(SlotId::B)],
    };
    if let Err(e) = std::fs::write(SLOTS_FILE, f.render()) {
        log::warn!("cannot write {SLOTS_FILE}: {e}");
    }
}
