//! Which slot boots, in the style of RAUC, Android A/B and ChromeOS: pure functions over the
//! state record. The boot persists the changed state (fsynced) BEFORE switching root.

use crate::ab::state::{Digest, Outcome, Reason, SlotId, State};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Trial boots a new slot gets before it is marked bad (1 is valid).
    pub tries: u8,
    /// Count boots of a good slot too, so that a good slot that stops booting falls back to the
    /// other (RAUC's "prevent late fallback" turned off). Off by default.
    pub late_fallback: bool,
    /// One image (`oinit.state` without slots): no tries to spend, nothing to roll back to.
    pub one_slot: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub slot: SlotId,
    pub reason: Reason,
    /// This boot used up a try: the state must be persisted before the switch, or the boot
    /// goes to the last good slot instead (`uncounted`).
    pub counted: bool,
}

/// Picks the slot for this boot and updates `st` in memory.
pub fn choose(st: &mut State, p: Policy) -> Choice {
    st.boots = st.boots.wrapping_add(1);
    st.unconfirmed_boots = st.unconfirmed_boots.saturating_add(1);
    let active = st.active;
    let choice = if p.one_slot {
        Choice { slot: SlotId::A, reason: Reason::OnlyImage, counted: false }
    } else {
        choose_slot(st, active, p)
    };
    st.active = choice.slot;
    st.last_booted = Some(choice.slot);
    st.slot_mut(choice.slot).last = Outcome::Unconfirmed;
    st.record(choice.slot, choice.reason);
    choice
}

fn choose_slot(st: &mut State, active: SlotId, p: Policy) -> Choice {
    match try_slot(st, active, p) {
        Some(c) => c,
        None => {
            // The active slot is out of tries (or bad): mark it bad and roll back.
            mark_bad(st, active);
            let other = active.other();
            match try_slot(st, other, p) {
                Some(c) => Choice { reason: Reason::RolledBack, ..c },
                None => {
                    // Never refuse to boot: both are bad, boot the last good one uncounted.
                    let slot = st.last_good.unwrap_or(SlotId::A);
                    st.active = slot;
                    Choice { slot, reason: Reason::BothBad, counted: false }
                }
            }
        }
    }
}

/// Boots `s` if it may: a good slot as it is, a trial slot by spending a try.
fn try_slot(st: &mut State, s: SlotId, p: Policy) -> Option<Choice> {
    let slot = st.slot_mut(s);
    if slot.bad {
        return None;
    }
    if slot.good && !p.late_fallback {
        return Some(Choice { slot: s, reason: Reason::Good, counted: false });
    }
    if slot.tries == 0 {
        return None;
    }
    slot.tries -= 1;
    let reason = if slot.good { Reason::Good } else { Reason::Trial };
    Some(Choice { slot: s, reason, counted: true })
}

/// The slot U-Boot's boot script chose and counted: recorded as booted, never counted again.
pub fn by_bootloader(st: &mut State, slot: SlotId) -> Choice {
    st.boots = st.boots.wrapping_add(1);
    st.unconfirmed_boots = st.unconfirmed_boots.saturating_add(1);
    st.active = slot;
    st.last_booted = Some(slot);
    st.slot_mut(slot).last = Outcome::Unconfirmed;
    st.record(slot, Reason::Bootloader);
    Choice { slot, reason: Reason::Bootloader, counted: false }
}

/// The state write for a counted boot failed: boot the last good slot without counting, and do
/// not pretend the trial happened.
pub fn uncounted(before: &State) -> Choice {
    let slot = before.last_good.unwrap_or(before.active);
    Choice { slot, reason: Reason::Uncounted, counted: false }
}

/// The chosen slot's image could not be mounted: mark it bad and fall back to the other in the
/// same boot, even when the other is marked bad as well (a slot marked bad by a failed trial may
/// still mount, and booting it beats rebooting forever). None once this boot has tried both.
pub fn lower_failed(st: &mut State, failed: SlotId, other_tried: bool) -> Option<SlotId> {
    mark_bad(st, failed);
    let other = failed.other();
    if other_tried {
        return None;
    }
    st.active = other;
    st.last_booted = Some(other);
    st.slot_mut(other).last = Outcome::Unconfirmed;
    st.record(other, Reason::LowerFailed);
    Some(other)
}

pub fn mark_good(st: &mut State, s: SlotId, p: Policy) {
    let slot = st.slot_mut(s);
    slot.good = true;
    slot.bad = false;
    slot.tries = p.tries;
    slot.last = Outcome::Good;
    st.last_good = Some(s);
    st.unconfirmed_boots = 0;
    st.record(s, Reason::MarkedGood);
}

pub fn mark_bad(st: &mut State, s: SlotId) {
    let slot = st.slot_mut(s);
    slot.bad = true;
    slot.good = false;
    slot.tries = 0;
    slot.last = Outcome::Failed;
}

/// An operator (or RAUC) rejects `s`: it is marked bad and, if it was to boot next, the other
/// slot boots next instead, so the active slot and what really boots agree.
pub fn reject(st: &mut State, s: SlotId) {
    mark_bad(st, s);
    if st.active == s {
        st.active = s.other();
    }
}

/// Makes `s` the slot of the next boot with fresh tries (after an install, or a rollback).
/// `written` is the digest of a new image just put in the slot, None when its image stays.
pub fn activate(st: &mut State, s: SlotId, p: Policy, written: Option<Digest>) {
    st.active = s;
    let slot = st.slot_mut(s);
    slot.bad = false;
    if let Some(digest) = written {
        slot.good = false;
        slot.tries = p.tries;
        // Two builds can share a superblock (reproducible builds, same sizes): an install says
        // "new image" itself, so the boot gives the slot a fresh upper whatever it reads.
        slot.image = crate::ab::state::IMAGE_INSTALLED;
        slot.digest = digest;
        // How the previous image's last boot ended says nothing about this one.
        slot.last = crate::ab::state::Outcome::Never;
    } else if !slot.good {
        slot.tries = p.tries;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ab::state::Slot;
    use SlotId::{A, B};

    const P: Policy = Policy { tries: 3, late_fallback: false, one_slot: false };

    fn st(active: SlotId, a: (u8, bool, bool), b: (u8, bool, bool), last_good: Option<SlotId>) -> State {
        let mut s = State::factory(3);
        s.active = active;
        let slot = |(tries, good, bad): (u8, bool, bool)| Slot { tries, good, bad, ..Slot::default() };
        s.slots = [slot(a), slot(b)];
        s.last_good = last_good;
        s
    }

    #[test]
    fn one_image_never_counts_or_rolls_back() {
        let p = Policy { one_slot: true, ..P };
        let mut s = st(A, (0, false, false), (0, false, false), None);
        for boot in 1..=5 {
            let c = choose(&mut s, p);
            assert_eq!((c.slot, c.reason, c.counted), (A, Reason::OnlyImage, false));
            assert_eq!(s.unconfirmed_boots, boot, "unconfirmed boots still counted for oinit.resetcycles");
        }
        assert!(!s.slot(A).bad);
    }

    #[test]
    fn decision_table() {
        // (name, state before, policy, slot booted, reason, counted, tries left on the booted slot)
        let cases = [
            (
                "good active boots uncounted",
                st(A, (3, true, false), (3, false, false), Some(A)),
                P,
                A,
                Reason::Good,
                false,
                3,
            ),
            ("trial spends a try", st(B, (3, true, false), (3, false, false), Some(A)), P, B, Reason::Trial, true, 2),
            ("last try", st(B, (3, true, false), (1, false, false), Some(A)), P, B, Reason::Trial, true, 0),
            (
                "tries used up: roll back",
                st(B, (3, true, false), (0, false, false), Some(A)),
                P,
                A,
                Reason::RolledBack,
                false,
                3,
            ),
            (
                "bad active: roll back",
                st(B, (3, true, false), (2, false, true), Some(A)),
                P,
                A,
                Reason::RolledBack,
                false,
                3,
            ),
            (
                "both bad: last good anyway",
                st(B, (0, false, true), (0, false, true), Some(A)),
                P,
                A,
                Reason::BothBad,
                false,
                0,
            ),
            (
                "both used up: last good anyway",
                st(A, (0, false, false), (0, false, false), Some(B)),
                P,
                B,
                Reason::BothBad,
                false,
                0,
            ),
            (
                "no late fallback: good slot is never counted",
                st(A, (0, true, false), (3, true, false), Some(A)),
                P,
                A,
                Reason::Good,
                false,
                0,
            ),
            (
                "late fallback: good slot counted",
                st(A, (2, true, false), (3, true, false), Some(A)),
                Policy { late_fallback: true, ..P },
                A,
                Reason::Good,
                true,
                1,
            ),
            (
                "late fallback: good slot out of tries falls back",
                st(A, (0, true, false), (3, true, false), Some(A)),
                Policy { late_fallback: true, ..P },
                B,
                Reason::RolledBack,
                true,
                2,
            ),
            (
                "one try policy",
                st(B, (1, true, false), (1, false, false), Some(A)),
                Policy { tries: 1, ..P },
                B,
                Reason::Trial,
                true,
                0,
            ),
            (
                "rollback target on trial is counted",
                st(A, (0, false, false), (2, false, false), None),
                P,
                B,
                Reason::RolledBack,
                true,
                1,
            ),
        ];
        for (name, mut s, p, slot, reason, counted, tries) in cases {
            let c = choose(&mut s, p);
            assert_eq!((c.slot, c.reason, c.counted), (slot, reason, counted), "{name}");
            assert_eq!(s.slot(slot).tries, tries, "{name}: tries");
            assert_eq!(s.active, slot, "{name}: active");
            assert_eq!(s.history.last().map(|e| (e.slot, e.reason)), Some((slot, reason)), "{name}: history");
        }
    }

    #[test]
    fn trial_that_never_gets_marked_good_ends_on_the_old_slot() {
        let mut s = st(A, (3, true, false), (3, false, false), Some(A));
        activate(&mut s, B, P, Some([7; 32]));
        let booted: Vec<SlotId> = (0..5).map(|_| choose(&mut s, P).slot).collect();
        assert_eq!(booted, [B, B, B, A, A]);
        assert!(s.slot(B).bad);
        assert_eq!(s.slot(B).last, Outcome::Failed);
        assert_eq!(s.slot(A).last, Outcome::Unconfirmed);
        assert_eq!(s.history.iter().filter(|e| e.reason == Reason::RolledBack).count(), 1);
    }

    #[test]
    fn mark_good_ends_the_trial() {
        let mut s = st(A, (3, true, false), (3, false, false), Some(A));
        activate(&mut s, B, P, Some([7; 32]));
        choose(&mut s, P);
        mark_good(&mut s, B, P);
        assert_eq!((s.last_good, s.slot(B).tries, s.unconfirmed_boots), (Some(B), 3, 0));
        assert_eq!(s.slot(B).last, Outcome::Good);
        for _ in 0..10 {
            assert_eq!(choose(&mut s, P).slot, B);
        }
    }

    #[test]
    fn lower_failure_falls_back_in_the_same_boot() {
        let mut s = st(B, (3, true, false), (2, false, false), Some(A));
        let c = choose(&mut s, P);
        assert_eq!(c.slot, B);
        assert_eq!(lower_failed(&mut s, B, false), Some(A));
        assert!(s.slot(B).bad);
        assert_eq!(s.active, A);
        assert_eq!(lower_failed(&mut s, A, true), None);
    }

    #[test]
    fn both_bad_and_the_last_good_does_not_mount_tries_the_other() {
        // B failed its trial (bad), A is last good but bad too (marked by hand): choose() takes
        // the last good one; when its image does not mount, B is tried rather than rebooting.
        let mut s = st(A, (0, false, true), (3, true, true), Some(A));
        assert_eq!(choose(&mut s, P).slot, A);
        assert_eq!(lower_failed(&mut s, A, false), Some(B));
        assert_eq!(s.active, B);
        assert_eq!(lower_failed(&mut s, B, true), None);
    }

    #[test]
    fn an_install_marks_the_image_new() {
        let mut s = st(A, (3, true, false), (3, true, false), Some(A));
        s.slots[1].image = 0x1234;
        activate(&mut s, B, P, Some([7; 32]));
        assert_eq!((s.active, s.slot(B).image, s.slot(B).good), (B, crate::ab::state::IMAGE_INSTALLED, false));
        assert_eq!(s.slot(B).digest, [7; 32], "the writer's digest is the new image's identity");
        activate(&mut s, A, P, None);
        assert_eq!(s.slot(A).image, 0, "a rollback keeps the identity");
    }

    #[test]
    fn uncounted_goes_to_last_good() {
        let s = st(B, (3, true, false), (2, false, false), Some(A));
        assert_eq!(uncounted(&s), Choice { slot: A, reason: Reason::Uncounted, counted: false });
    }
}
