//! Power-cut tests: QEMU is killed (SIGKILL: guest RAM and unflushed guest caches are lost) at
//! spread-out delays after a console marker, during a factory reset, the boot's state writes and
//! an install; the next boot must come up with the invariants a user relies on. The default test
//! run samples a few cut points per kind; `cargo xtask powercut N` runs N per kind.

use crate::board::Board;
use crate::e2e::harness::{booted, want, Ctx};
use crate::e2e::qemu::Boot;
use crate::writelog;
use std::path::Path;
use std::time::Duration;

const AB: &str = "oinit.a=PARTLABEL=rootfs oinit.b=PARTLABEL=rootfs_b oinit.tries=2 oinit.keep=/var/lib/keepme";

/// How one kind of cut is set up, where it cuts, and what must hold afterwards.
struct Kind {
    name: &'static str,
    /// Boots before the cut (each must succeed), as extra command-line words.
    setup: &'static [&'static str],
    /// The boot that is cut: its command line, the marker, and the longest delay after it.
    cut: (&'static str, &'static str, u64),
    check: fn(&Boot) -> Result<(), String>,
}

const KINDS: [Kind; 4] = [
    Kind {
        name: "factory-reset",
        setup: &["oitest=keep,many,mark-good"],
        cut: ("oinit.factoryreset", "FACTORY RESET", 150),
        check: |b| {
            // The old upper whole, or a clean new one; the kept file survives either way.
            let many = b.marker("many").unwrap_or_default();
            if many != "0" && many != "2000" {
                return Err(format!("half-wiped upper mounted: {many} of 2000 files"));
            }
            want(b, "keepme", "kept-from-a")?;
            want(b, "slot", "a")
        },
    },
    Kind {
        name: "reconcile",
        setup: &["oitest=reconcile-setup,mark-good,rollback"],
        // From the moment slot b's carry starts: a cut there leaves b's trial recorded and its
        // upper unfinished, which the next boot must build again from slot a's.
        cut: ("", "slot b: making its upper", 400),
        check: |b| {
            // Slot a's upper untouched, or slot b's reconciled one whole: never a mix.
            want(b, "rc-edited", "user")?;
            match b.marker("slot").as_deref() {
                Some("a") => want(b, "rc-app", "mine"),
                Some("b") => {
                    want(b, "rc-same", "same user")?;
                    want(b, "rc-changed", "b")?;
                    want(b, "rc-app", "added mine")
                }
                other => Err(format!("no slot booted ({other:?})")),
            }
        },
    },
    Kind {
        name: "state-write",
        setup: &["oitest=mark-good,rollback"],
        cut: ("", "overlay-init 0.1.0 starting", 900),
        check: |b| {
            // Slot b was on trial with 2 tries: the record is the one before the cut (this boot
            // spends the second try: 1 left) or the one the cut boot wrote (0 left), and either
            // way slot b boots. Slot a would mean the record was lost and defaulted.
            want(b, "slot", "b")?;
            if !["slot b: on trial, 1 tries left", "slot b: on trial, 0 tries left"]
                .iter()
                .any(|t| b.console.contains(t))
            {
                return Err("the state record is neither the one before the cut nor the one it wrote".into());
            }
            if b.console.contains("OI-STATUS: overlay-init: cannot") {
                return Err("the state record is unreadable".into());
            }
            // Both copies torn at once would send the boot back to the factory default silently.
            if b.console.contains("no valid copy of the state record") {
                return Err("the cut left no valid copy of the state record".into());
            }
            Ok(())
        },
    },
    Kind {
        name: "install",
        setup: &["oitest=mark-good"],
        cut: ("oitest=install-a", "OI-REPORT-END", 900),
        check: |b| {
            // Image a goes into slot b. The booted slot and the state stay as they were until the
            // install completed: the next boot is slot a, or slot b holding the whole new image.
            match b.marker("slot").as_deref() {
                Some("a" | "b") => want(b, "image", "a"),
                other => Err(format!("no slot booted ({other:?})")),
            }
        },
    },
];

/// Runs `points` cut points of every kind on `board`; returns (points that cut the work,
/// failures). A cut that lands after the guest finished its work tested nothing: it is checked
/// all the same (the next boot must still be right) but not counted, and the log says how many.
pub fn run(ctx: &Ctx<'_>, points: u64) -> (u64, Vec<String>) {
    let (mut tried, mut late) = (0, 0);
    let mut failures = Vec::new();
    for kind in &KINDS {
        for i in 0..points {
            // Spread the cut over the window, offset so repeated runs hit different instants.
            let delay = kind.cut.2 * (2 * i + 1) / (2 * points);
            match one(ctx, kind, i, delay) {
                Ok(true) => tried += 1,
                Ok(false) => late += 1,
                Err(e) => {
                    tried += 1;
                    failures
                        .push(format!("{} {} cut {delay} ms after {:?}: {e}", ctx.board.name, kind.name, kind.cut.1))
                }
            }
        }
    }
    println!(
        "power cuts on {}: {tried} cut the work, {late} more landed after it had finished (not counted)",
        ctx.board.name
    );
    (tried, failures)
}

/// One cut point; Ok(true) when the cut landed before the guest finished.
fn one(ctx: &Ctx<'_>, kind: &Kind, i: u64, delay: u64) -> Result<bool, String> {
    let disk = ctx.fresh_disk(&format!("cut-{}-{i}", kind.name))?;
    for (n, extra) in kind.setup.iter().enumerate() {
        booted(&ctx.boot(&disk, &format!("{AB} {extra}"), &format!("cut-{}-{i}-setup{n}", kind.name))?)?;
    }
    let (cmd, marker, _) = kind.cut;
    let cut = ctx.boot_cut(
        &disk,
        &format!("{AB} {cmd}"),
        &format!("cut-{}-{i}-cut", kind.name),
        marker,
        Duration::from_millis(delay),
    )?;
    if !cut.console.contains(marker) {
        return Err(format!("the marker {marker:?} never appeared"));
    }
    let after = ctx.boot(&disk, AB, &format!("cut-{}-{i}-after", kind.name))?;
    booted(&after)?;
    (kind.check)(&after)?;
    Ok(!cut.console.contains("OI: done"))
}

pub fn main(root: &Path, boards: &[String], points: u64) -> Result<(), String> {
    let mut tried = 0;
    let mut failures = Vec::new();
    for name in boards {
        let board = Board::load(root, name)?;
        let ctx = Ctx::build(root, &board)?;
        let (t, f) = run(&ctx, points);
        println!("power cuts on {name}: {t} tried, {} passed", t - f.len() as u64);
        let (rt, rf) = replay(&ctx, points as usize);
        println!("write-log replays on {name}: {rt} tried, {} passed", rt - rf.len() as u64);
        let (ft, ff) = failing_disk(&ctx, points);
        println!("failing-disk points on {name}: {ft} tried, {} passed", ft - ff.len() as u64);
        tried += t + rt + ft;
        failures.extend(f);
        failures.extend(rf);
        failures.extend(ff);
    }
    for f in &failures {
        println!("FAIL {f}");
    }
    println!("power cuts: {tried} tried, {} passed", tried - failures.len() as u64);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} power-cut points failed", failures.len()))
    }
}

/// Write-log replay: a factory reset and an install are booted with every write and flush
/// recorded (QEMU blklogwrites); the disk is rebuilt as it was at `points` flushes spread over
/// the log (always including the last) and each is booted and checked like a cut.
pub fn replay(ctx: &Ctx<'_>, points: usize) -> (u64, Vec<String>) {
    let mut tried = 0;
    let mut failures = Vec::new();
    for kind in KINDS.iter().filter(|k| k.name != "state-write") {
        match replay_kind(ctx, kind, points) {
            Ok((t, f)) => {
                tried += t;
                failures.extend(f);
            }
            Err(e) => failures.push(format!("{} {} write-log replay: {e}", ctx.board.name, kind.name)),
        }
    }
    (tried, failures)
}

fn replay_kind(ctx: &Ctx<'_>, kind: &Kind, points: usize) -> Result<(u64, Vec<String>), String> {
    let tag = format!("replay-{}", kind.name);
    let disk = ctx.fresh_disk(&tag)?;
    for (n, extra) in kind.setup.iter().enumerate() {
        booted(&ctx.boot(&disk, &format!("{AB} {extra}"), &format!("{tag}-setup{n}"))?)?;
    }
    let base = ctx.work.join(format!("{tag}-base.img"));
    std::fs::copy(&disk, &base).map_err(|e| e.to_string())?;
    let log = ctx.work.join(format!("{tag}.wlog"));
    booted(&ctx.boot_logged(&disk, &format!("{AB} {}", kind.cut.0), &format!("{tag}-logged"), &log)?)?;
    let entries = writelog::parse(&std::fs::read(&log).map_err(|e| e.to_string())?)?;
    let flushes = writelog::flushes(&entries);
    let picks: Vec<usize> = if flushes.len() <= points {
        flushes.clone()
    } else {
        (1..=points).map(|k| flushes[(k * flushes.len()) / points - 1]).collect()
    };
    println!(
        "{} {}: {} writes, {} flushes logged; replaying {} flush points",
        ctx.board.name,
        kind.name,
        entries.len(),
        flushes.len(),
        picks.len()
    );
    let mut failures = Vec::new();
    for &i in &picks {
        let img = ctx.work.join(format!("{tag}-at-{i}.img"));
        writelog::replay(&base, &entries[..i], &img)?;
        let result = ctx.boot(&img, AB, &format!("{tag}-at-{i}")).and_then(|b| {
            booted(&b)?;
            (kind.check)(&b)
        });
        if let Err(e) = result {
            failures.push(format!("{} {} replayed to flush {i} of {}: {e}", ctx.board.name, kind.name, entries.len()));
        }
        let _ = std::fs::remove_file(&img);
    }
    Ok((picks.len() as u64, failures))
}

/// A disk that starts failing: every write after the Nth returns EIO (QEMU blkdebug) during a
/// factory reset, N spread over the first 400 writes; then the next boot on the healthy disk
/// must hold the same invariants as after a power cut.
pub fn failing_disk(ctx: &Ctx<'_>, points: u64) -> (u64, Vec<String>) {
    let kind = &KINDS[0];
    let mut failures = Vec::new();
    for k in 0..points {
        let n = 400 * (2 * k + 1) / (2 * points);
        if let Err(e) = failing_one(ctx, kind, k, n) {
            failures.push(format!("{} {} with writes failing after the {n}th: {e}", ctx.board.name, kind.name));
        }
    }
    (points, failures)
}

fn failing_one(ctx: &Ctx<'_>, kind: &Kind, k: u64, n: u64) -> Result<(), String> {
    let tag = format!("failing-{k}");
    let disk = ctx.fresh_disk(&tag)?;
    for (i, extra) in kind.setup.iter().enumerate() {
        booted(&ctx.boot(&disk, &format!("{AB} {extra}"), &format!("{tag}-setup{i}"))?)?;
    }
    // blkdebug has no counter: a chain of states, one per write, then an error in the last.
    let mut rules = String::new();
    for s in 1..=n {
        rules.push_str(&format!("[set-state]\nstate = \"{s}\"\nevent = \"pwritev\"\nnew_state = \"{}\"\n\n", s + 1));
    }
    rules.push_str(&format!("[inject-error]\nstate = \"{}\"\nevent = \"pwritev\"\nerrno = \"5\"\n", n + 1));
    let rules_path = ctx.work.join(format!("{tag}.blkdebug"));
    std::fs::write(&rules_path, rules).map_err(|e| e.to_string())?;
    ctx.boot_failing(&disk, &format!("{AB} {}", kind.cut.0), &format!("{tag}-failing"), &rules_path)?;
    let after = ctx.boot(&disk, AB, &format!("{tag}-after"))?;
    booted(&after)?;
    (kind.check)(&after)
}
