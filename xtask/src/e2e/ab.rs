//! End-to-end tests of A/B slots and factory reset, on the same boards and disks as `e2e`.

use crate::e2e::harness::{ab_settings, booted, contains, slot_parts, upper_file_at, want, Ctx};
use crate::image;

/// A keep-list path beside the board's A/B settings. These scenarios pin the `keeplist` carry
/// policy (a fresh upper per image); `reconcile` pins the default.
const KEEP: &str = "oinit.keep=/var/lib/keepme";
const KEEPLIST: &str = "oinit.carry=keeplist";

/// Both slots as partitions, two tries, the keep-list path.
fn ab(ctx: &Ctx<'_>) -> String {
    format!("{} {KEEP}", ab_settings(ctx.board))
}

fn boot(ctx: &Ctx<'_>, disk: &std::path::Path, extra: &str, log: &str) -> Result<crate::e2e::qemu::Boot, String> {
    let b = ctx.boot(disk, &format!("{} {KEEPLIST} {extra}", ab(ctx)), log)?;
    booted(&b)?;
    Ok(b)
}

/// The default carry policy: slot b's first boot reconciles slot a's upper with images a and b.
/// The user's edit of a file b leaves alone is kept, a touched (copied-up) file b changes shows
/// b's version, a file both changed keeps the user's version and is reported, the directory the
/// user emptied and remade shows b's new file beside the user's and not the one the user
/// deleted; the status says so; a rollback finds slot a's upper as it was.
pub fn reconcile(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("ab-reconcile")?;
    let b = ctx.boot(&disk, &format!("{} oitest=reconcile-setup,mark-good,rollback", ab(ctx)), "reconcile-1")?;
    booted(&b)?;
    want(&b, "slot", "a")?;
    let b = ctx.boot(&disk, &format!("{} oitest=reconcile-show", ab(ctx)), "reconcile-2")?;
    booted(&b)?;
    want(&b, "slot", "b")?;
    want(&b, "image", "b")?;
    want(&b, "counter", "2")?;
    want(&b, "rc-same", "same user")?;
    want(&b, "rc-changed", "b")?;
    want(&b, "rc-edited", "user")?;
    want(&b, "rc-app", "added mine")?;
    contains(&b, "OI-RC:     {\"path\": \"/etc/oi-reconcile/changed.conf\", \"class\": \"stale-copy\"")?;
    contains(&b, "OI-STATUS: conflicts: /etc/oi-reconcile/edited.conf")?;
    contains(&b, "OI-STATUS: reconciled upper: {")?;
    let b = ctx.boot(&disk, &format!("{} oitest=rollback", ab(ctx)), "reconcile-3")?;
    booted(&b)?;
    let b = ctx.boot(&disk, &format!("{} oitest=reconcile-show", ab(ctx)), "reconcile-4")?;
    booted(&b)?;
    want(&b, "slot", "a")?;
    want(&b, "counter", "2")?;
    want(&b, "rc-edited", "user")?;
    want(&b, "rc-changed", "a")?;
    want(&b, "rc-app", "mine")
}

/// Each slot keeps its own upper; a trial slot never marked good rolls back after its tries with
/// the old slot's upper intact but for the keep-list, which reaches the new slot's fresh upper
/// and follows the user back on the rollback.
pub fn trial_and_rollback(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("ab-rollback")?;
    let b = boot(ctx, &disk, "oitest=keep,mark-good", "ab-1")?;
    want(&b, "slot", "a")?;
    want(&b, "counter", "1")?;
    want(&b, "mark-good-exit", "0")?;
    let b = boot(ctx, &disk, "oitest=rollback", "ab-2")?;
    want(&b, "slot", "a")?;
    want(&b, "counter", "2")?;
    want(&b, "rollback-exit", "0")?;
    // Slot b: its own fresh upper, the kept file carried over from a (and rewritten on b).
    let b = boot(ctx, &disk, "oitest=keep", "ab-3")?;
    want(&b, "slot", "b")?;
    want(&b, "image", "b")?;
    want(&b, "counter", "1")?;
    want(&b, "keepme", "kept-from-a")?;
    contains(&b, "trial boot")?;
    let b = boot(ctx, &disk, "", "ab-4")?;
    want(&b, "slot", "b")?;
    want(&b, "counter", "2")?;
    // Never marked good: its two tries are used up, back to a with a's upper as it was.
    let b = boot(ctx, &disk, "", "ab-5")?;
    want(&b, "slot", "a")?;
    want(&b, "image", "a")?;
    want(&b, "counter", "3")?;
    // The keep-list follows the user back: b's version of the kept file replaced a's.
    want(&b, "keepme", "kept-from-b")?;
    contains(&b, "rolled back")?;
    contains(&b, "OI-STATUS: slot b: bad")?;
    contains(&b, "last boot failed")?;
    if upper_file_at(&disk, "/overlay/b/upper/var/lib/boot-counter")? != "2" {
        return Err("slot b's upper lost its counter".into());
    }
    Ok(())
}

/// Hostile input (issue 9): a byte that is not UTF-8 on the command line (in an unknown
/// `key=value` word, which becomes the init's environment) boots normally with every setting
/// read; a FIFO as the keep file, `.trash` and slot b's `work` planted as symlinks to another
/// directory neither hang the boot nor delete anything outside the data partition's own dirs:
/// slot b's place (no upper in it) goes to the trash whole, the `.trash` link is removed and a
/// real directory made, and the deletion removes links, never what they point to.
pub fn hostile_data(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("ab-hostile")?;
    let b = boot(ctx, &disk, "x=\\xff oitest=mark-good,hostile,rollback,victim", "hostile-1")?;
    want(&b, "slot", "a")?;
    want(&b, "rollback-exit", "0")?;
    want(&b, "victim", "precious")?;
    contains(&b, "byte 0xff at offset")?;
    // Slot b's first boot: its new upper reads a's keep file (the FIFO), its old place holds
    // the work link.
    let b = boot(ctx, &disk, "x=\\xff oitest=wait-trash,victim", "hostile-2")?;
    want(&b, "slot", "b")?;
    want(&b, "victim", "precious")?;
    contains(&b, "keep file /etc/overlay-init.keep")?;
    contains(&b, "overlay/.trash is not a directory; removed")?;
    contains(&b, "old uppers deleted")
}

/// Both slots bad (b marked bad by hand, a the last good one) and a's image no longer mounts:
/// the same boot tries b anyway instead of rebooting forever.
pub fn both_bad_tries_the_other(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("ab-both-bad")?;
    let b = boot(ctx, &disk, "oitest=mark-good,mark-bad-b", "both-bad-1")?;
    contains(&b, "slot b marked bad")?;
    let p = image::part(&image::partitions(&disk)?, &slot_parts(ctx.board)[0])?;
    image::write_at(&disk, p.start, &[0x5a; 4096])?;
    let b = boot(ctx, &disk, "", "both-bad-2")?;
    want(&b, "slot", "b")?;
    want(&b, "image", "b")?;
    contains(&b, "slot a unusable: ")?;
    contains(&b, "falling back to slot b in this boot (marked bad: tried anyway)")
}

/// The chosen slot's image is corrupt: the same boot falls back to the other slot.
pub fn corrupt_slot_falls_back(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("ab-corrupt")?;
    let b = boot(ctx, &disk, "oitest=mark-good,rollback", "ab-corrupt-1")?;
    want(&b, "rollback-exit", "0")?;
    let p = image::part(&image::partitions(&disk)?, &slot_parts(ctx.board)[1])?;
    image::write_at(&disk, p.start, &[0xa5; 4096])?;
    let b = boot(ctx, &disk, "", "ab-corrupt-2")?;
    want(&b, "slot", "a")?;
    want(&b, "counter", "2")?;
    contains(&b, "falling back to slot a in this boot")?;
    contains(&b, "slot b unusable")
}

/// Factory reset from the command line, then from the CLI: every upper is gone, the keep-list
/// (the board's paths and those the keep file in the upper lists) stays, the slot state stays.
pub fn factory_reset(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("ab-reset")?;
    boot(ctx, &disk, "oitest=keep,mark-good", "reset-1")?;
    let b = boot(ctx, &disk, "", "reset-2")?;
    want(&b, "counter", "2")?;
    let b = boot(ctx, &disk, "oinit.factoryreset", "reset-3")?;
    contains(&b, "FACTORY RESET (oinit.factoryreset on the command line)")?;
    want(&b, "counter", "1")?;
    want(&b, "keepme", "kept-from-a")?;
    want(&b, "kept-by-file", "yes")?;
    contains(&b, "OI-STATUS: slot a: good")?;
    let b = boot(ctx, &disk, "oitest=factory-reset", "reset-4")?;
    want(&b, "counter", "2")?;
    want(&b, "factory-reset-exit", "0")?;
    let b = boot(ctx, &disk, "", "reset-5")?;
    contains(&b, "FACTORY RESET (requested by 'overlay-init factory-reset')")?;
    want(&b, "counter", "1")?;
    want(&b, "keepme", "kept-from-a")?;
    // The requests are one-shot.
    let b = boot(ctx, &disk, "", "reset-6")?;
    want(&b, "counter", "2")
}

/// Slots as image files on the data partition.
pub fn file_slots(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("ab-files")?;
    let files = "oinit.afile=/images/rootfs.sqfs oinit.bfile=/images/b.sqfs";
    let b = ctx.boot(&disk, &format!("{files} oitest=mark-good,rollback"), "files-1")?;
    booted(&b)?;
    want(&b, "slot", "a")?;
    want(&b, "lower-visible", "/dev/loop0")?;
    let b = ctx.boot(&disk, files, "files-2")?;
    booted(&b)?;
    want(&b, "slot", "b")?;
    want(&b, "image", "b")
}

/// `overlay-init install` into the empty slot b: a wrong checksum and the booted slot are refused,
/// a good image is written, verified and boots next on trial with the keep-list carried over.
pub fn install(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("ab-install")?;
    let p = image::part(&image::partitions(&disk)?, &slot_parts(ctx.board)[1])?;
    image::write_at(&disk, p.start, &vec![0u8; p.size as usize])?;
    let b = boot(ctx, &disk, "oitest=keep,mark-good,install", "install-1")?;
    contains(&b, "--sha256 '0123' is not 64 hex digits; nothing written")?;
    contains(&b, &format!("expected {}; slot b marked bad, not activated", "0".repeat(64)))?;
    want(&b, "install-booted-exit", "1")?;
    want(&b, "install-exit", "0")?;
    contains(&b, "install: 100%")?;
    contains(&b, "into slot b; it boots next on trial")?;
    let b = boot(ctx, &disk, "oitest=mark-good", "install-2")?;
    want(&b, "slot", "b")?;
    want(&b, "image", "b")?;
    want(&b, "keepme", "kept-from-a")?;
    want(&b, "mark-good-exit", "0")?;
    let b = boot(ctx, &disk, "", "install-3")?;
    want(&b, "slot", "b")?;
    want(&b, "counter", "2")
}

/// A trial slot whose userspace hangs: the watchdog armed by the init resets the board, boot
/// counting uses up the tries, and the device comes back on the good slot by itself.
pub fn watchdog(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("ab-watchdog")?;
    let b = boot(ctx, &disk, "oitest=mark-good,rollback", "watchdog-1")?;
    want(&b, "rollback-exit", "0")?;
    let b =
        ctx.boot_allowing_resets(&disk, &format!("{} oinit.watchdogtimeout=5 oitest=hang-b", ab(ctx)), "watchdog-2")?;
    let hangs = b.console.matches("OI: hanging").count();
    if hangs != 2 {
        return Err(format!("expected 2 hung trial boots of b (oinit.tries=2), saw {hangs}"));
    }
    contains(&b, "watchdog /dev/watchdog armed: 5 s")?;
    booted(&b)?;
    want(&b, "slot", "a")?;
    contains(&b, "rolled back")
}

/// A full data partition, and a slot that has no upper yet: it still boots, on a tmpfs upper, and
/// says so; the slot state is still recorded (preallocated).
pub fn full_data_new_slot(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("ab-full")?;
    let b = boot(ctx, &disk, "oitest=mark-good,fill,rollback", "ab-full-1")?;
    want(&b, "filled", "0")?;
    want(&b, "rollback-exit", "0")?;
    let b = boot(ctx, &disk, "", "ab-full-2")?;
    want(&b, "slot", "b")?;
    want(&b, "image", "b")?;
    contains(&b, "OI-STATUS: slot b: on trial, 1 tries left")?;
    // Whether the last blocks root may still use (ext4 frees some after the filling write) hold
    // the new upper or not depends on the run: the mounted overlay (read from /proc/mounts in
    // the guest, not from the plan text logged before anything ran) uses it, or it is on the
    // tmpfs and the boot says so.
    match b.marker("upper").as_deref() {
        Some("/run/overlay-init/data/overlay/b/upper") => Ok(()),
        Some("/run/overlay-init/volatile/upper") => contains(&b, "VOLATILE ROOT"),
        other => Err(format!("slot b's overlay has upperdir {other:?}: neither its upper nor the tmpfs")),
    }
}

/// Boards without a button: `oinit.resetcycles=3` resets on the third boot in a row without a
/// mark-good in between (the third quick power cycle); a mark-good starts the count again.
pub fn reset_cycles(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("ab-cycles")?;
    // With two slots the count must exceed tries + 1 (a failing update's boots and its rollback).
    let cycles = "oinit.tries=1 oinit.resetcycles=3";
    want(&boot(ctx, &disk, &format!("{cycles} oitest=keep,mark-good"), "cycles-1")?, "counter", "1")?;
    want(&boot(ctx, &disk, cycles, "cycles-2")?, "counter", "2")?;
    // The second unconfirmed boot is confirmed before the third: the count starts again.
    want(&boot(ctx, &disk, &format!("{cycles} oitest=mark-good"), "cycles-3")?, "counter", "3")?;
    want(&boot(ctx, &disk, cycles, "cycles-4")?, "counter", "4")?;
    want(&boot(ctx, &disk, cycles, "cycles-5")?, "counter", "5")?;
    let b = boot(ctx, &disk, cycles, "cycles-6")?;
    contains(&b, "FACTORY RESET (too many boots in a row without mark-good)")?;
    want(&b, "counter", "1")?;
    want(&b, "keepme", "kept-from-a")
}

/// `mark-good` while the background deletion of a large old upper runs (51000 entries, left in
/// the trash by a factory reset, the deletion stopped with SIGSTOP so it is certainly running):
/// it returns at once and the slot is good. The deletion once inherited the state record's lock
/// and mark-good waited for it, long enough on slow flash to roll a good update back.
pub fn mark_good_beside_deletion(ctx: &Ctx<'_>) -> Result<(), String> {
    let disk = ctx.fresh_disk("ab-mark-good-deletion")?;
    let b = boot(ctx, &disk, "oitest=big-upper,mark-good", "deletion-1")?;
    want(&b, "big-upper", "51")?;
    let b = boot(ctx, &disk, "oinit.factoryreset oitest=mark-good-beside-deletion", "deletion-2")?;
    contains(&b, "deleting old uppers in")?;
    if b.marker("deleter").as_deref() == Some("gone") {
        return Err("the deletion had finished before userspace started: nothing tested".into());
    }
    want(&b, "mark-good-beside-deletion-exit", "0")?;
    if b.marker("trash-left").is_none_or(|n| n == "0") {
        return Err("the trash was empty when mark-good returned: it waited for the deletion".into());
    }
    contains(&b, "OI-STATUS: slot a: good")
}
