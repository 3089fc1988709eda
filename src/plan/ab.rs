//! The A/B boot as one plan: from the settings, the devices, the state record and what the data
//! partition holds, every step of the boot after the data partition is mounted: the slot choice
//! and its state write, the lower, factory reset, the new image's upper, the keep-list on a slot
//! switch, each state write, and the overlay; with the plans that take over when the counted
//! state write or the lower fails. Pure: the boot executes it, `overlay-init plan --state FILE`
//! prints it, golden tests pin it.

use super::root;
use super::step::{Alternative, DataState, Found, NewUpper, Plan, PlanError, Role, Source, Step, Trust, Verity};
use crate::ab::slots::{self, Choice, Policy};
use crate::ab::state::{Reason, SlotId, State};
use crate::ab::store::Loaded;
use crate::config::settings::Settings;
use crate::rt::prelude::*;
use crate::verity::hashtree::OnCorruption;

/// A factory reset that fails on this many boots in a row is given up, so the device still boots.
pub const MAX_RESET_ATTEMPTS: u8 = 3;

/// What the A/B decision reads besides settings and devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub state: State,
    pub loaded: Loaded,
    /// The state record can be written (the data partition is mounted read-write).
    pub writable: bool,
    /// The identity of each slot's image (its squashfs superblock), when readable.
    pub images: [Option<u32>; 2],
    /// Where each slot's image is: a partition's device node or a file.
    pub sources: [Option<String>; 2],
    /// Each slot's upper exists on the data partition.
    pub uppers: [bool; 2],
    /// The reset button is held.
    pub button: bool,
}

pub fn policy(s: &Settings) -> Policy {
    Policy { tries: s.ab.tries, late_fallback: s.ab.late_fallback, one_slot: s.ab.one_slot() }
}

/// The whole A/B boot. The data partition's steps come first, as in every plan; the boot has run
/// them already to read the state.
pub fn decide(s: &Settings, found: &Found, f: &Facts) -> Result<Plan, PlanError> {
    if let Some(st2) = &s.kexec.stage2 {
        return stage_two(s, found, f, st2.slot);
    }
    if s.ab.uboot {
        return by_uboot(s, found, f);
    }
    let mut st = f.state.clone();
    let previous = st.last_booted;
    let choice = slots::choose(&mut st, policy(s));
    let mut p = slot_plan(s, found, f, &st, previous, choice, 1)?;
    if f.writable {
        let why = format!("slot {}: {}", choice.slot.name(), choice.reason.text());
        p.steps.insert(first_after_data(&p), save(&st, &why, choice.counted));
        if choice.counted {
            // The trial cannot be recorded: the last good slot, uncounted, nothing written.
            let c = slots::uncounted(&f.state);
            let mut before = f.state.clone();
            before.active = c.slot;
            let facts = Facts { writable: false, ..f.clone() };
            match slot_plan(s, found, &facts, &before, previous, c, 1) {
                Ok(alt) => {
                    let why = format!("the state write fails: slot {} uncounted", c.slot.name());
                    p.alternatives.insert(0, Alternative { when: Role::State, why, plan: Box::new(alt) });
                }
                Err(e) => p.warnings.push(format!("if the state write fails, the boot fails: {}", e.what)),
            }
        }
    }
    keep_switch_pending(&mut p);
    Ok(p)
}

/// Stage two of a kernel hand-over: the slot stage one chose, counted and prepared (its state
/// writes, reset and upper are done), booted as decided: no state write, no second choice. Its
/// lower is verified again. A lower that fails here fails the boot: the other slot's image would
/// run on this slot's kernel, and the next boot's stage one counts the try.
fn stage_two(s: &Settings, found: &Found, f: &Facts, slot: SlotId) -> Result<Plan, PlanError> {
    let last = f.state.history.last().filter(|e| e.slot == slot).map_or(Reason::Trial, |e| e.reason);
    let choice = Choice { slot, reason: last, counted: false };
    let facts = Facts { writable: false, ..f.clone() };
    let mut p = slot_plan(s, found, &facts, &f.state, f.state.last_booted, choice, 2)?;
    p.steps.retain(|x| !matches!(x, Step::Kexec { .. }));
    if f.writable {
        let at = p.steps.iter().position(|x| x.role() == Role::Upper).unwrap_or(p.steps.len());
        p.steps.insert(at, Step::DeleteTrash { base: base(s) });
    }
    Ok(p)
}

/// `oinit.bootloader=uboot`: U-Boot's boot script chose the slot and spent its try; its kernel
/// runs now. The init boots that slot, records it (uncounted: a failed write costs nothing), and
/// has no other slot to fall back to in this boot: the other slot's image would run on this
/// slot's kernel. A lower that fails fails the boot, the board reboots, and U-Boot counts.
fn by_uboot(s: &Settings, found: &Found, f: &Facts) -> Result<Plan, PlanError> {
    let slot = s.ab.uboot_slot.ok_or_else(|| PlanError {
        what: "oinit.bootloader=uboot, but the command line has no rauc.slot=A or rauc.slot=B".into(),
        hint: "U-Boot's boot script (board/integration/uboot/boot.cmd) adds rauc.slot=${oi_slot} to bootargs".into(),
    })?;
    let mut st = f.state.clone();
    let previous = st.last_booted;
    let choice = slots::by_bootloader(&mut st, slot);
    let mut p = slot_plan(s, found, f, &st, previous, choice, 2)?;
    if f.writable {
        let why = format!("slot {}: {}", slot.name(), choice.reason.text());
        p.steps.insert(first_after_data(&p), save(&st, &why, false));
    }
    keep_switch_pending(&mut p);
    Ok(p)
}

/// Until the keep-list of a switch is carried, the record keeps naming the slot it comes from as
/// the slot booted last: a power cut during the carry leaves the next boot to carry it again,
/// not a record saying the switch is done while the slot's upper still has the old versions.
fn keep_switch_pending(p: &mut Plan) {
    let from = p.steps.iter().find_map(|x| match x {
        Step::CarryKeepList { from_slot, .. } => Some(*from_slot),
        _ => None,
    });
    if let Some(from) = from {
        for x in p.steps.iter_mut().take_while(|x| !matches!(x, Step::CarryKeepList { .. })) {
            if let Step::SaveState { state, .. } = x {
                state.last_booted = Some(from);
            }
        }
    }
    for a in &mut p.alternatives {
        keep_switch_pending(&mut a.plan);
    }
}

/// The plan once `choice` is made and recorded in `st`: the lower of the chosen slot (with the
/// other slot's plan for when it fails, on the first try), then uppers and overlay.
fn slot_plan(
    s: &Settings,
    found: &Found,
    f: &Facts,
    st: &State,
    previous: Option<SlotId>,
    choice: Choice,
    attempt: u8,
) -> Result<Plan, PlanError> {
    let slot = choice.slot;
    let mut ss = s.for_slot(slot);
    let mut found = found.clone();
    if s.ab.slots[slot.index()].is_some() {
        found.root = found.slots[slot.index()].clone();
    }
    let id = f.images[slot.index()];
    if ss.verity.enabled() {
        // A verified image is read in full once, on the first boot of that image.
        ss.verity.new_image = id != Some(st.slot(slot).image);
    }
    let mut st = st.clone();
    let mut p = match root::decide(&ss, &found) {
        Ok(p) => p,
        Err(e) => return fall_back(s, &found, f, &st, previous, slot, attempt, e),
    };
    p.slot = Some((slot, st.history.last().map_or("", |e| e.reason.text()).to_string()));
    // No image below the highest security version marked good boots (anti-rollback).
    for step in &mut p.steps {
        if let Step::Verity(Verity { trust: Trust::Signed { accept, .. }, .. }) = step {
            accept.floor = st.security_floor;
        }
    }
    if !s.ab.one_slot() && attempt == 1 {
        let mut other = st.clone();
        // A slot marked bad by a failed trial may still mount: booting it beats rebooting forever.
        let anyway = if st.slot(slot.other()).bad { " (marked bad: tried anyway)" } else { "" };
        if let Some(o) = slots::lower_failed(&mut other, slot, false) {
            match after_lower_failed(s, &found, f, &other, previous, o) {
                Ok(alt) => {
                    let why = format!(
                        "slot {}'s image does not mount: slot {} marked bad, slot {}{anyway}",
                        slot.name(),
                        slot.name(),
                        o.name()
                    );
                    p.alternatives.push(Alternative { when: Role::Lower, why, plan: Box::new(alt) });
                }
                Err(e) => p.warnings.push(format!(
                    "if slot {}'s image does not mount, slot {} cannot boot either ({}): the boot fails",
                    slot.name(),
                    o.name(),
                    e.what
                )),
            }
        }
    }
    if f.writable {
        let mut uppers = upper_steps(s, &found, f, &mut st, previous, slot, id);
        let at = p.steps.iter().position(|x| x.role() == Role::Upper).unwrap_or(p.steps.len());
        uppers.push(Step::DeleteTrash { base: base(s) });
        p.steps.splice(at..at, uppers);
    }
    if s.kexec.enabled {
        add_kexec(s, &mut p, slot);
    }
    if p.volatile.is_none() && f.writable {
        let why = format!("slot {}'s upper cannot be made: slot {} on a tmpfs upper", slot.name(), slot.name());
        match on_tmpfs(&ss, &found) {
            Ok(mut alt) => {
                alt.slot = p.slot.clone();
                p.alternatives.push(Alternative { when: Role::Upper, why, plan: Box::new(alt) });
            }
            Err(e) => {
                p.warnings.push(format!("if slot {}'s upper cannot be made, the boot fails: {}", slot.name(), e.what))
            }
        }
    }
    Ok(p)
}

/// The hand-over to the slot's own kernel, once everything on the data partition is done for
/// this boot (state writes, reset, the new upper; before the trash deletion, whose process would
/// keep the data partition busy): stage two then only mounts.
fn add_kexec(s: &Settings, p: &mut Plan, slot: SlotId) {
    let lower = p.steps.iter().find_map(|x| match x {
        Step::Mount(m) if m.role == Role::Lower => Some(m.target.clone()),
        _ => None,
    });
    let Some(lower) = lower else { return };
    let at = p
        .steps
        .iter()
        .position(|x| matches!(x, Step::DeleteTrash { .. }) || x.role() == Role::Upper)
        .unwrap_or(p.steps.len());
    let verity = p.steps.iter().find_map(|x| match x {
        Step::Verity(v) => Some(v.name.clone()),
        _ => None,
    });
    let k = &s.kexec;
    let (kernel, initrd, dtb) = (k.kernel.clone(), k.initrd.clone(), k.dtb.clone());
    p.steps.insert(at, Step::Kexec { slot, lower, kernel, initrd, dtb, verity });
}

/// The old image a reconciliation reads, and where the board verifies its lowers, the dm-verity
/// device it is read through: set up as a boot of that slot would, under a name of its own. An
/// old image that cannot be verified (its hash partition is missing) is an error: not read.
fn old_lower(s: &Settings, found: &Found, from: SlotId, image: String) -> Result<(String, Option<Verity>), String> {
    let mut ss = s.for_slot(from);
    if !ss.verity.enabled() {
        return Ok((image, None));
    }
    ss.verity.name = format!("{}-old", ss.verity.name);
    // The old image was read in full when it was new; reconciling reads what it compares.
    ss.verity.new_image = false;
    let source = match s.ab.slots[from.index()] {
        Some(crate::config::ab::SlotSource::File(_)) => Source::LoopFile(image.clone()),
        _ => Source::Device(image.clone()),
    };
    let mut scratch = Plan::new();
    root::verified(&ss, found, source, &mut scratch).map_err(|e| e.what)?;
    match scratch.steps.pop() {
        // A corrupted block of the old image fails the reconciliation (the keep-list is carried
        // instead), it does not restart the machine in the middle of an update's first boot.
        Some(Step::Verity(v)) => Ok((image, Some(Verity { on_corruption: OnCorruption::Eio, ..v }))),
        _ => Ok((image, None)),
    }
}

/// Why the upper is on a tmpfs when the data partition is mounted but the upper or work
/// directory cannot be made there.
const UPPER_UNUSABLE: &str = "the upper or work directory cannot be made on the data partition (full or read-only)";

/// The slot's own steps on a tmpfs upper, taking over after its lower is mounted: the same plan
/// decided for a data partition that cannot hold the upper, from its tmpfs on (the data-missing
/// policy decides whether there is one).
fn on_tmpfs(ss: &Settings, found: &Found) -> Result<Plan, PlanError> {
    let mut found = found.clone();
    found.data = DataState::Unmountable(UPPER_UNUSABLE.into());
    let mut p = root::decide(ss, &found)?;
    p.devices.clear();
    p.steps.retain(|x| matches!(x.role(), Role::Volatile | Role::Upper | Role::Overlay | Role::Switch));
    Ok(p)
}

/// The plan of the other slot after `failed`'s plan could not even be made (its device is
/// missing): the same as a lower that does not mount.
#[allow(clippy::too_many_arguments)]
fn fall_back(
    s: &Settings,
    found: &Found,
    f: &Facts,
    st: &State,
    previous: Option<SlotId>,
    failed: SlotId,
    attempt: u8,
    e: PlanError,
) -> Result<Plan, PlanError> {
    if s.ab.one_slot() || attempt > 1 {
        return Err(e);
    }
    let mut other = st.clone();
    let anyway = if st.slot(failed.other()).bad { " (marked bad: tried anyway)" } else { "" };
    let Some(o) = slots::lower_failed(&mut other, failed, false) else { return Err(e) };
    let mut p = after_lower_failed(s, found, f, &other, previous, o)?;
    let why =
        format!("slot {} unusable: {}; falling back to slot {} in this boot{anyway}", failed.name(), e.what, o.name());
    p.warnings.insert(0, why);
    Ok(p)
}

fn after_lower_failed(
    s: &Settings,
    found: &Found,
    f: &Facts,
    st: &State,
    previous: Option<SlotId>,
    slot: SlotId,
) -> Result<Plan, PlanError> {
    let choice = Choice { slot, reason: Reason::LowerFailed, counted: false };
    let mut p = slot_plan(s, found, f, st, previous, choice, 2)?;
    if f.writable {
        let why =
            format!("slot {} marked bad, slot {}: {}", slot.other().name(), slot.name(), Reason::LowerFailed.text());
        p.steps.insert(first_after_data(&p), save(st, &why, false));
    }
    Ok(p)
}

fn first_after_data(p: &Plan) -> usize {
    p.steps.iter().position(|x| x.role() != Role::Data).unwrap_or(p.steps.len())
}

fn save(st: &State, why: &str, critical: bool) -> Step {
    Step::SaveState { state: Box::new(st.clone()), why: why.to_string(), critical }
}

fn base(s: &Settings) -> String {
    format!("{}/{}", crate::config::paths::DATA, s.dir)
}

/// Factory reset, then the new image's upper or the keep-list of a slot switch, each followed by
/// the state write that records it.
fn upper_steps(
    s: &Settings,
    found: &Found,
    f: &Facts,
    st: &mut State,
    previous: Option<SlotId>,
    slot: SlotId,
    id: Option<u32>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let cycles = s.ab.reset_cycles;
    let trigger = if s.ab.factory_reset {
        Some("oinit.factoryreset on the command line")
    } else if st.reset_requested {
        Some("requested by 'overlay-init factory-reset'")
    } else if f.button {
        Some("the reset button was held at power-on")
    } else if cycles > 0 && st.unconfirmed_boots >= cycles {
        Some("too many boots in a row without mark-good")
    } else {
        None
    };
    let mut reset = false;
    if let Some(why) = trigger {
        if st.reset_attempts >= MAX_RESET_ATTEMPTS {
            st.reset_requested = false;
            st.reset_attempts = 0;
            steps.push(save(st, &format!("factory reset failed on {MAX_RESET_ATTEMPTS} boots: given up"), false));
        } else {
            // Count the attempt first: a reset that kills every boot must not loop forever.
            if st.reset_attempts == 0 {
                st.reset_boot = st.boots;
            }
            st.reset_attempts += 1;
            st.reset_requested = true;
            steps.push(save(st, &format!("factory reset attempt {}", st.reset_attempts), false));
            steps.push(Step::FactoryReset {
                why: why.to_string(),
                base: base(s),
                tag: format!("reset-{}", st.reset_boot),
                boot: st.boots,
                recreate: s.ab.recreate.is_some(),
            });
            st.reset_requested = false;
            st.reset_attempts = 0;
            st.unconfirmed_boots = 0;
            st.record(st.active, Reason::FactoryReset);
            steps.push(save(st, "factory reset done", false));
            reset = true;
        }
    }
    // The user's changes are in the upper of the slot booted last; but when that is this slot
    // and its upper was never finished for this image (a power cut during the carry, after the
    // trial was recorded), they are still in the other slot's upper.
    let unfinished = previous == Some(slot) && id.is_some_and(|id| id != st.slot(slot).image);
    let from_slot = if unfinished && !s.ab.one_slot() && f.uppers[slot.other().index()] {
        slot.other()
    } else {
        previous.unwrap_or(slot)
    };
    match id.filter(|id| *id != st.slot(slot).image) {
        Some(id) => {
            let recorded = st.slot(slot).image;
            // After a lost state record (identity 0) an existing upper is kept, never replaced
            // on a guess.
            let keeps = recorded == 0 && f.uppers[slot.index()] && !reset;
            if !keeps {
                let old = if from_slot == slot { None } else { f.sources[from_slot.index()].clone() };
                let (old_image, old_verity) = match old.map(|o| old_lower(s, found, from_slot, o)) {
                    Some(Ok((image, v))) => (Some(image), v),
                    // Without a way to verify it, the old image is not read: the keep-list is
                    // carried, as when it is gone.
                    Some(Err(why)) => {
                        log::warn!("slot {}'s image is not used to reconcile: {why}", from_slot.name());
                        (None, None)
                    }
                    None => (None, None),
                };
                steps.push(Step::NewUpper(Box::new(NewUpper {
                    base: base(s),
                    slot,
                    from_slot,
                    recorded,
                    id,
                    carry: s.ab.carry,
                    old_image,
                    old_verity,
                })));
                st.record(slot, Reason::NewImage);
            }
            st.slot_mut(slot).image = id;
            if recorded != crate::ab::state::IMAGE_INSTALLED {
                // Written behind the writers' back (dd, a flasher): the digest a writer recorded
                // names the image that was there before, not this one.
                st.slot_mut(slot).digest = crate::ab::state::DIGEST_UNKNOWN;
            }
            steps.push(save(st, &format!("slot {} holds image {id:08x}", slot.name()), false));
        }
        // A switch to a slot that has its image already: what the keep-list names follows the
        // user from the slot booted before.
        None if from_slot != slot && !reset => {
            steps.push(Step::CarryKeepList { base: base(s), from_slot, slot });
            steps.push(save(st, &format!("keep-list carried from slot {}", from_slot.name()), false));
        }
        None => {}
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::device::BlockDev;
    use crate::block::probe::{probe_fs, tests::ext4_image, tests::squashfs_image};

    fn dev(name: &str, fs: Option<crate::block::probe::FsInfo>) -> BlockDev {
        BlockDev { name: name.into(), size: 1 << 24, fs, ..Default::default() }
    }

    fn setup(b_fs: bool) -> (Settings, Found, Facts) {
        let s = Settings::load("oinit.a=/dev/vda1 oinit.b=/dev/vda3 oinit.data=/dev/vda2 oinit.tries=2", "").0;
        let sq = || probe_fs(&squashfs_image(4096));
        let found = Found {
            root: None,
            data: DataState::Found {
                dev: dev("vda2", probe_fs(&ext4_image([1; 16], "data", 1024))),
                blank: false,
                offset: 0,
            },
            slots: [Some(dev("vda1", sq())), Some(dev("vda3", if b_fs { sq() } else { None }))],
            hash: [None, None],
        };
        let p = policy(&s);
        let mut st = State::factory(2);
        slots::choose(&mut st, p);
        st.slot_mut(SlotId::A).image = 7;
        slots::mark_good(&mut st, SlotId::A, p);
        slots::activate(&mut st, SlotId::B, p, Some([9; 32]));
        let facts = Facts {
            state: st,
            loaded: Loaded::Valid,
            writable: true,
            images: [Some(7), Some(9)],
            sources: [Some("/dev/vda1".into()), Some("/dev/vda3".into())],
            uppers: [true, true],
            button: false,
        };
        (s, found, facts)
    }

    #[test]
    fn a_slot_without_an_image_falls_back_in_the_plan() {
        let (s, found, facts) = setup(false);
        let p = decide(&s, &found, &facts).unwrap();
        assert_eq!(p.slot.as_ref().map(|x| x.0), Some(SlotId::A));
        assert!(p.warnings[0].starts_with("slot b unusable: "), "{:?}", p.warnings);
    }

    #[test]
    fn a_new_image_is_carried_then_recorded() {
        let (s, found, facts) = setup(true);
        let p = decide(&s, &found, &facts).unwrap();
        let kinds: Vec<String> = p.steps.iter().map(|x| format!("{:?}", x.role())).collect();
        assert_eq!(kinds, ["Data", "State", "Lower", "Slot", "State", "Slot", "Upper", "Overlay", "Switch"]);
        assert!(
            matches!(&p.steps[3], Step::NewUpper(n) if n.from_slot == SlotId::A && n.old_image.as_deref() == Some("/dev/vda1"))
        );
        // The trial write, the lower, and the upper (the same slot on a tmpfs).
        let whens: Vec<Role> = p.alternatives.iter().map(|a| a.when).collect();
        assert_eq!(whens, [Role::State, Role::Lower, Role::Upper]);
        let tmpfs = &p.alternatives[2].plan;
        assert_eq!((tmpfs.slot.as_ref().map(|x| x.0), tmpfs.steps[0].role()), (Some(SlotId::B), Role::Volatile));
    }

    /// The record written after a new image's upper: the writer's digest stays with the image
    /// it installed; an image that changed behind the writers' back gets no digest (the old one
    /// names the image that was there before).
    #[test]
    fn a_new_image_keeps_its_writers_digest_and_an_unannounced_one_has_none() {
        let digest_saved = |facts: &Facts| {
            let (s, found, _) = setup(true);
            let p = decide(&s, &found, facts).unwrap();
            let saved = p.steps.iter().rev().find_map(|x| match x {
                Step::SaveState { state, .. } => Some(*state.slot(SlotId::B)),
                _ => None,
            });
            saved.map(|v| (v.image, v.digest))
        };
        let (_, _, mut facts) = setup(true);
        assert_eq!(digest_saved(&facts), Some((9, [9; 32])));
        // b was a confirmed image (fingerprint 5, digest 3...) and someone dd'ed image 9 over it.
        let b = facts.state.slot_mut(SlotId::B);
        (b.image, b.digest) = (5, [3; 32]);
        assert_eq!(digest_saved(&facts), Some((9, crate::ab::state::DIGEST_UNKNOWN)));
    }

    /// A rollback to slot a, which has its image and upper: the keep-list follows from slot b.
    /// The record written before the carry still says b was booted last, so a power cut during
    /// the carry leaves the next boot to carry it again; the write after it says a.
    #[test]
    fn a_keep_list_switch_cut_short_is_carried_again() {
        let (s, found, mut facts) = setup(true);
        let p = policy(&s);
        let st = &mut facts.state;
        st.slot_mut(SlotId::B).image = 9;
        slots::mark_good(st, SlotId::B, p);
        st.last_booted = Some(SlotId::B);
        slots::activate(st, SlotId::A, p, None);
        let saved = |plan: &Plan| -> Vec<Option<SlotId>> {
            plan.steps
                .iter()
                .filter_map(|x| match x {
                    Step::SaveState { state, .. } => Some(state.last_booted),
                    _ => None,
                })
                .collect()
        };
        let carries = |plan: &Plan| plan.steps.iter().any(|x| matches!(x, Step::CarryKeepList { .. }));
        let plan = decide(&s, &found, &facts).unwrap();
        assert!(carries(&plan));
        assert_eq!(saved(&plan), [Some(SlotId::B), Some(SlotId::A)]);
        // The power goes during the carry: the record is the first write's.
        let Some(Step::SaveState { state, .. }) = plan.steps.iter().find(|x| matches!(x, Step::SaveState { .. }))
        else {
            panic!("no state write")
        };
        facts.state = (**state).clone();
        let again = decide(&s, &found, &facts).unwrap();
        assert_eq!(again.slot.as_ref().map(|x| x.0), Some(SlotId::A));
        assert!(carries(&again), "the keep-list switch cut short is not carried again");
    }

    /// A power cut during slot b's carry, after its trial was recorded: the state says b was
    /// booted last, but b's upper was never finished for its image. The next boot carries from
    /// slot a's upper again (it carried from b's own, empty one: the user's changes were gone).
    #[test]
    fn a_carry_cut_short_is_made_again_from_the_slot_that_has_the_changes() {
        let (s, found, mut facts) = setup(true);
        let p = policy(&s);
        slots::choose(&mut facts.state, p);
        // The cut boot recorded b's trial, not the image b's finished upper belongs to (9).
        assert_eq!(facts.state.last_booted, Some(SlotId::B));
        assert_ne!(facts.state.slot(SlotId::B).image, 9);
        facts.uppers = [true, false];
        let plan = decide(&s, &found, &facts).unwrap();
        let from = plan.steps.iter().find_map(|x| match x {
            Step::NewUpper(n) => Some(n.from_slot),
            _ => None,
        });
        assert_eq!((plan.slot.map(|x| x.0), from), (Some(SlotId::B), Some(SlotId::A)));
    }

    /// On a board that verifies its lowers, the old image a reconciliation reads goes through
    /// dm-verity as a boot of its slot would (under a name of its own); one that cannot be
    /// verified is not read at all.
    #[test]
    fn the_old_image_is_reconciled_through_dm_verity() {
        let (_, found, facts) = setup(true);
        let hashes = "oinit.roothash=1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f \
                      oinit.broothash=2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e";
        let s = Settings::load(&format!("oinit.a=/dev/vda1 oinit.b=/dev/vda3 oinit.data=/dev/vda2 {hashes}"), "").0;
        let new_upper = |p: &Plan| {
            p.steps.iter().find_map(|x| match x {
                Step::NewUpper(n) => Some(n.clone()),
                _ => None,
            })
        };
        let n = new_upper(&decide(&s, &found, &facts).unwrap()).unwrap();
        let v = n.old_verity.expect("the old image is read unverified");
        assert_eq!(
            (v.name.as_str(), &v.data, n.old_image.as_deref()),
            ("oinit-a-old", &Source::Device("/dev/vda1".into()), Some("/dev/vda1"))
        );
        assert!(matches!(v.trust, crate::plan::Trust::RootHash { hash, .. } if hash == [0x1f; 32]));
        assert_eq!(v.on_corruption, OnCorruption::Eio, "a bad block of the old image must not restart the machine");
        // Slot a's tree on a hash partition that is not there: its image is not read.
        let s = Settings::load(
            &format!(
                "oinit.a=/dev/vda1 oinit.b=/dev/vda3 oinit.data=/dev/vda2 {hashes} oinit.hashdev=PARTLABEL=nothere"
            ),
            "",
        )
        .0;
        let n = new_upper(&decide(&s, &found, &facts).unwrap_or_else(|e| panic!("{e:?}"))).unwrap();
        assert_eq!((n.old_image, n.old_verity), (None, None));
    }

    /// Stage one hands over after everything on the data partition is done for the boot, in the
    /// chosen slot's plan and in the other slot's (the fallback); stage two boots the slot it was
    /// told without a state write, a second choice or a second hand-over.
    #[test]
    fn kexec_stage_one_and_two() {
        let (mut s, found, facts) = setup(true);
        s.kexec.enabled = true;
        let p = decide(&s, &found, &facts).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(p.slot.as_ref().map(|x| x.0), Some(SlotId::B));
        let at = |p: &Plan, f: &dyn Fn(&Step) -> bool| p.steps.iter().position(f);
        let kexec = at(&p, &|x| matches!(x, Step::Kexec { slot: SlotId::B, .. })).expect("no kexec step");
        let last_save = p.steps.iter().rposition(|x| matches!(x, Step::SaveState { .. })).unwrap_or(0);
        let lower = at(&p, &|x| matches!(x, Step::Mount(m) if m.role == Role::Lower)).unwrap_or(usize::MAX);
        let trash = at(&p, &|x| matches!(x, Step::DeleteTrash { .. })).unwrap_or(0);
        assert!(lower < kexec && last_save < kexec && kexec < trash, "{p}");
        let alt = p.alternatives.iter().find(|a| a.when == Role::Lower).expect("no lower alternative");
        assert!(alt.plan.steps.iter().any(|x| matches!(x, Step::Kexec { slot: SlotId::A, .. })), "{}", alt.plan);
        // Stage two: the state stage one wrote names slot b on trial.
        let mut st = facts.state.clone();
        let c = slots::choose(&mut st, policy(&s));
        assert_eq!(c.slot, SlotId::B);
        s.kexec.stage2 =
            Some(crate::config::kexec::Stage2 { slot: SlotId::B, from_release: "6.1".into(), stage1_ms: 9 });
        let facts2 = Facts { state: st.clone(), ..facts.clone() };
        let p2 = decide(&s, &found, &facts2).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(p2.slot.as_ref().map(|x| (x.0, x.1.as_str())), Some((SlotId::B, "trial boot")));
        assert!(!p2.steps.iter().any(|x| matches!(
            x,
            Step::SaveState { .. } | Step::Kexec { .. } | Step::NewUpper(_) | Step::FactoryReset { .. }
        )));
        assert!(p2.steps.iter().any(|x| matches!(x, Step::DeleteTrash { .. })), "{p2}");
        assert!(p2.alternatives.iter().all(|a| a.when != Role::Lower), "{p2}");
    }

    #[test]
    fn uboot_chooses_and_the_plan_follows() {
        let (mut s, found, facts) = setup(true);
        s.ab.uboot = true;
        // Without U-Boot's word, no boot: the init does not choose for it.
        assert!(decide(&s, &found, &facts).unwrap_err().what.contains("no rauc.slot=A or rauc.slot=B"));
        // The state says b is on trial; U-Boot chose a: a boots, recorded uncounted, no tries spent.
        s.ab.uboot_slot = Some(SlotId::A);
        let p = decide(&s, &found, &facts).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            p.slot.as_ref().map(|x| (x.0, x.1.as_str())),
            Some((SlotId::A, "chosen by U-Boot (BOOT_ORDER, BOOT_x_LEFT)"))
        );
        let saved = p.steps.iter().find_map(|x| match x {
            Step::SaveState { state, critical, .. } => Some((state.clone(), *critical)),
            _ => None,
        });
        let (st, critical) = saved.expect("no state write");
        assert!(!critical, "{p}");
        assert_eq!((st.active, st.last_booted), (SlotId::A, Some(SlotId::A)));
        assert_eq!(st.slot(SlotId::B).tries, facts.state.slot(SlotId::B).tries);
        // No other slot in this boot: its image would run on this slot's kernel.
        assert!(p.alternatives.iter().all(|a| a.when != Role::Lower), "{p}");
    }
}
