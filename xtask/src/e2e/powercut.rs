//! Power-cut tests: QEMU is killed (SIGKILL: guest RAM and unflushed guest caches are lost) at
//! spread-out delays after a console marker, during each writer: a factory reset (renaming
//! aside, and on NAND recreating `rootfs_data`), the boot's state writes, an install (a partition,
//! and a UBI volume update), the reconciliation of a new image's upper, and the keep-list carried
//! on a switch to an existing slot; the next boot must come up with the invariants a user relies
//! on. The same kinds are replayed from recorded write logs. The default test run samples a few
//! points per kind; `cargo xtask powercut N` runs N per kind.

use crate::board::Board;
use crate::e2e::harness::{booted, want, Ctx};
use crate::e2e::qemu::Boot;
use crate::writelog;
use std::path::Path;
use std::time::Duration;

/// The layout a board's power-cut kinds need.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// The qemu-* boards: two slot partitions and an ext4 data partition.
    Partitions,
    /// openwrt-nand: UBI volumes on NAND (block2mtd), UBIFS data.
    Ubi,
}

fn layout(board: &Board) -> Option<Layout> {
    match board.name.as_str() {
        n if n.starts_with("qemu-") => Some(Layout::Partitions),
        "openwrt-nand" => Some(Layout::Ubi),
        _ => None,
    }
}

/// The command line of every boot of a layout (the cut boot adds its own words).
fn settings(l: Layout) -> &'static str {
    match l {
        Layout::Partitions => {
            "oinit.a=PARTLABEL=rootfs oinit.b=PARTLABEL=rootfs_b oinit.tries=2 oinit.keep=/var/lib/keepme"
        }
        // Room for the carry volume of the recreating reset (OpenWRT's jffs2reset on NAND).
        Layout::Ubi => "oinit.tries=2 oinit.datarecreate=2M",
    }
}

/// How one kind of cut is set up, where it cuts, and what must hold afterwards.
struct Kind {
    name: &'static str,
    layout: Layout,
    /// Boots before the cut (each must succeed), as extra command-line words.
    setup: &'static [&'static str],
    /// The boot that is cut: its command line, the marker, and the longest delay after it.
    cut: (&'static str, &'static str, u64),
    /// On the cut boot's console once the work is complete: a cut after it tested nothing.
    done: &'static str,
    check: fn(&Boot) -> Result<(), String>,
}

const KINDS: [Kind; 7] = [
    Kind {
        name: "factory-reset",
        layout: Layout::Partitions,
        setup: &["oitest=keep,many,mark-good"],
        cut: ("oinit.factoryreset", "FACTORY RESET", 150),
        done: "OI: done",
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
        layout: Layout::Partitions,
        setup: &["oitest=reconcile-setup,mark-good,rollback"],
        // From the moment slot b's carry starts: a cut there leaves b's trial recorded and its
        // upper unfinished, which the next boot must build again from slot a's.
        cut: ("", "slot b: making its upper", 400),
        done: "OI: done",
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
        name: "keep-list-switch",
        layout: Layout::Partitions,
        // Slot a keeps a file and 2000 more; slot b (a new image, carried from a) keeps its own
        // version of the file; a rollback to a then carries b's kept paths into a's upper.
        setup: &["oitest=keep,many,mark-good,rollback", "oitest=keep,mark-good,rollback"],
        cut: ("oinit.keep=/var/lib/keepme,/var/lib/many", "carry the keep-list from", 1500),
        done: "keep-list: ",
        check: |b| {
            // The switch done, by the cut boot or again by this one (the record names b as the
            // slot booted last until the carry is done): b's versions, whole, in a's upper, and
            // b's upper untouched.
            want(b, "slot", "a")?;
            want(b, "keepme", "kept-from-b")?;
            want(b, "many", "2000")?;
            want(b, "kept-by-file", "yes")?;
            want(b, "other-keepme", "kept-from-b")
        },
    },
    Kind {
        name: "state-write",
        layout: Layout::Partitions,
        setup: &["oitest=mark-good,rollback"],
        cut: ("", "overlay-init 0.1.0 starting", 900),
        done: "OI: done",
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
        layout: Layout::Partitions,
        setup: &["oitest=mark-good"],
        cut: ("oitest=install-a", "OI-REPORT-END", 900),
        done: "OI: done",
        check: |b| {
            // Image a goes into slot b. The booted slot and the state stay as they were until the
            // install completed: the next boot is slot a, or slot b holding the whole new image.
            match b.marker("slot").as_deref() {
                Some("a" | "b") => want(b, "image", "a"),
                other => Err(format!("no slot booted ({other:?})")),
            }
        },
    },
    Kind {
        name: "ubi-volume-install",
        layout: Layout::Ubi,
        setup: &["oitest=sysupgrade-conf,keep,mark-good"],
        // Slot a's image copied into rootfs_b by one UBI volume update.
        cut: ("oitest=install-self", "OI-CLI: install: 24%", 400),
        done: "OI: install-self-exit",
        check: |b| {
            // Slot a as it was (an update cut short leaves rootfs_b marked corrupt by UBI and
            // never activated), or slot b with the whole image and the keep-list carried.
            match b.marker("slot").as_deref() {
                Some("a" | "b") => {
                    want(b, "image", "a")?;
                    want(b, "keepme", "kept-from-a")
                }
                other => Err(format!("no slot booted ({other:?})")),
            }
        },
    },
    Kind {
        name: "ubi-recreate-reset",
        layout: Layout::Ubi,
        setup: &["oitest=sysupgrade-conf,keep,data-junk,mark-good", "oitest=data-junk,factory-reset"],
        // rootfs_data removed and made again, the state and keep-list carried in a volume.
        cut: ("", "WARNING: FACTORY RESET", 240),
        done: "UBI volume rootfs_data made again",
        check: |b| {
            // The reset finished (by the cut boot or this one): the file outside every upper
            // gone, the kept file and every volume there, the upper fresh (the counter is 1, or 2
            // when the cut boot got as far as its userspace).
            want(b, "data-junk", "")?;
            want(b, "keepme", "kept-from-a")?;
            want(b, "ubi-volumes", "rootfs_a rootfs_b rootfs_data")?;
            match b.marker("counter").as_deref() {
                Some("1" | "2") => Ok(()),
                other => Err(format!("the upper was not reset: counter {other:?}")),
            }
        },
    },
];

/// The kinds a board's layout has.
fn kinds(board: &Board) -> impl Iterator<Item = &'static Kind> {
    let l = layout(board);
    KINDS.iter().filter(move |k| Some(k.layout) == l)
}

/// Whether the board has power-cut kinds at all.
pub fn applies(board: &Board) -> bool {
    layout(board).is_some()
}

/// The disk as the kind's setup boots leave it, made once per kind and run: each cut point
/// starts from a copy.
fn prepared(ctx: &Ctx<'_>, kind: &Kind, tag: &str) -> Result<std::path::PathBuf, String> {
    let disk = ctx.fresh_disk(&format!("{tag}-prepared"))?;
    for (n, extra) in kind.setup.iter().enumerate() {
        booted(&ctx.boot(&disk, &format!("{} {extra}", settings(kind.layout)), &format!("{tag}-setup{n}"))?)?;
    }
    Ok(disk)
}

/// Runs `points` cut points of every kind on `board`; returns (points that cut the work,
/// failures). A cut that lands after the guest finished its work tested nothing: it is checked
/// all the same (the next boot must still be right) but not counted, and the log says how many.
fn run(ctx: &Ctx<'_>, points: u64) -> (u64, Vec<String>) {
    let (mut tried, mut late) = (0, 0);
    let mut failures = Vec::new();
    for kind in kinds(ctx.board) {
        let base = match prepared(ctx, kind, &format!("cut-{}", kind.name)) {
            Ok(b) => b,
            Err(e) => {
                failures.push(format!("{} {} setup: {e}", ctx.board.name, kind.name));
                continue;
            }
        };
        for i in 0..points {
            // Spread the cut over the window, offset so repeated runs hit different instants.
            let delay = kind.cut.2 * (2 * i + 1) / (2 * points);
            match one(ctx, kind, &base, i, delay) {
                Ok(true) => tried += 1,
                Ok(false) => late += 1,
                Err(e) => {
                    tried += 1;
                    failures
                        .push(format!("{} {} cut {delay} ms after {:?}: {e}", ctx.board.name, kind.name, kind.cut.1))
                }
            }
        }
        let _ = std::fs::remove_file(&base);
    }
    println!(
        "power cuts on {}: {tried} cut the work, {late} more landed after it had finished (not counted)",
        ctx.board.name
    );
    (tried, failures)
}

/// One cut point; Ok(true) when the cut landed before the guest finished.
fn one(ctx: &Ctx<'_>, kind: &Kind, base: &Path, i: u64, delay: u64) -> Result<bool, String> {
    let disk = ctx.work.join(format!("cut-{}-{i}.img", kind.name));
    std::fs::copy(base, &disk).map_err(|e| e.to_string())?;
    let (cmd, marker, _) = kind.cut;
    let set = settings(kind.layout);
    let cut = ctx.boot_cut(
        &disk,
        &format!("{set} {cmd}"),
        &format!("cut-{}-{i}-cut", kind.name),
        marker,
        Duration::from_millis(delay),
    )?;
    if !cut.console.contains(marker) {
        return Err(format!("the marker {marker:?} never appeared"));
    }
    let after = ctx.boot(&disk, set, &format!("cut-{}-{i}-after", kind.name))?;
    booted(&after)?;
    (kind.check)(&after)?;
    let _ = std::fs::remove_file(&disk);
    Ok(!cut.console.contains(kind.done))
}

/// Cuts, write-log replays and failing-disk points on one board, `points` of each per kind
/// (replays: `replays` flush points); returns (points tried, failures), each printed.
pub fn campaign(ctx: &Ctx<'_>, points: u64, replays: usize) -> (u64, Vec<String>) {
    let name = &ctx.board.name;
    let (t, mut failures) = run(ctx, points);
    println!("power cuts on {name}: {t} tried, {} passed", t - failures.len() as u64);
    let (rt, rf) = replay(ctx, replays);
    println!("write-log replays on {name}: {rt} tried, {} passed", rt - rf.len() as u64);
    failures.extend(rf);
    let (ft, ff) = failing_disk(ctx, points);
    println!("failing-disk points on {name}: {ft} tried, {} passed", ft - ff.len() as u64);
    failures.extend(ff);
    (t + rt + ft, failures)
}

/// `cargo xtask powercut N BOARD...`: per kind on each board, N cuts, up to 4N flush points and
/// 4N points between flushes replayed, and N failing-disk points; two boards at a time (one QEMU
/// each).
pub fn main(root: &Path, boards: &[String], points: u64) -> Result<(), String> {
    let started = std::time::Instant::now();
    let next = std::sync::Mutex::new(boards.iter());
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while let Some(name) = next.lock().ok().and_then(|mut it| it.next().cloned()) {
                    let result = Board::load(root, &name).and_then(|board| {
                        if !applies(&board) {
                            return Err(format!("{name} has no power-cut kinds (qemu-* and openwrt-nand have)"));
                        }
                        let ctx = Ctx::build(root, &board)?;
                        Ok(campaign(&ctx, points, 4 * points as usize))
                    });
                    let result = result.unwrap_or_else(|e| (0, vec![format!("{name}: {e}")]));
                    if let Ok(mut r) = results.lock() {
                        r.push((name, result));
                    }
                }
            });
        }
    });
    let results = results.into_inner().map_err(|e| e.to_string())?;
    let mut tried = 0;
    let mut failures = Vec::new();
    for (name, (t, f)) in results {
        println!("{name}: {t} points, {} bad", f.len());
        tried += t;
        failures.extend(f);
    }
    for f in &failures {
        println!("FAIL {f}");
    }
    println!(
        "power cuts: {tried} tried, {} passed ({:.0} min)",
        tried - failures.len() as u64,
        started.elapsed().as_secs_f64() / 60.0
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} power-cut points failed", failures.len()))
    }
}

/// Write-log replay: a factory reset and an install are booted with every write and flush
/// recorded (QEMU blklogwrites); the disk is rebuilt as it was at `points` flushes spread over
/// the log (always including the last) and each is booted and checked like a cut.
fn replay(ctx: &Ctx<'_>, points: usize) -> (u64, Vec<String>) {
    let mut tried = 0;
    let mut failures = Vec::new();
    // Not on NAND: block2mtd keeps the flash in the disk's page cache and writes it back in
    // page order at a sync, so a prefix of the logged writes is a state no flash is ever left
    // in, and the only flush is at the end. The cuts stand for it there.
    for kind in kinds(ctx.board).filter(|k| k.name != "state-write" && k.layout == Layout::Partitions) {
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
    let disk = prepared(ctx, kind, &tag)?;
    let set = settings(kind.layout);
    let base = ctx.work.join(format!("{tag}-base.img"));
    std::fs::copy(&disk, &base).map_err(|e| e.to_string())?;
    let log = ctx.work.join(format!("{tag}.wlog"));
    booted(&ctx.boot_logged(&disk, &format!("{set} {}", kind.cut.0), &format!("{tag}-logged"), &log)?)?;
    let entries = writelog::parse(&std::fs::read(&log).map_err(|e| e.to_string())?)?;
    let flushes = writelog::flushes(&entries);
    // Flush points always include the last; points between flushes sit mid-way in their share
    // of the writes (the last write is followed by the last flush: that state is already booted).
    let spread = |of: &[usize], mid: bool| -> Vec<usize> {
        if of.len() <= points {
            of.to_vec()
        } else if mid {
            (1..=points).map(|k| of[((2 * k - 1) * of.len()) / (2 * points)]).collect()
        } else {
            (1..=points).map(|k| of[(k * of.len()) / points - 1]).collect()
        }
    };
    // The disk as each flush found it, and as a cut between flushes can leave it: the writes up
    // to one of them done, the rest lost (a virtio disk's cache loses what was not flushed).
    let writes: Vec<usize> =
        entries.iter().enumerate().filter(|(_, e)| !e.data.is_empty()).map(|(i, _)| i + 1).collect();
    let mut picks = spread(&flushes, false);
    let flush_points = picks.len();
    picks.extend(spread(&writes, true));
    picks.sort_unstable();
    picks.dedup();
    println!(
        "{} {}: {} writes, {} flushes logged; replaying {flush_points} flush points and {} between",
        ctx.board.name,
        kind.name,
        entries.len(),
        flushes.len(),
        picks.len() - flush_points
    );
    let mut failures = Vec::new();
    for &i in &picks {
        let img = ctx.work.join(format!("{tag}-at-{i}.img"));
        writelog::replay(&base, &entries[..i], &img)?;
        let result = ctx.boot(&img, set, &format!("{tag}-at-{i}")).and_then(|b| {
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
/// must hold the same invariants as after a power cut. (The partition layout only: on NAND a
/// failing write is UBI's to handle, the nandsim scenario's subject.)
fn failing_disk(ctx: &Ctx<'_>, points: u64) -> (u64, Vec<String>) {
    let kind = &KINDS[0];
    if layout(ctx.board) != Some(kind.layout) || points == 0 {
        return (0, Vec::new());
    }
    let base = match prepared(ctx, kind, "failing") {
        Ok(b) => b,
        Err(e) => return (points, vec![format!("{} failing-disk setup: {e}", ctx.board.name)]),
    };
    let mut failures = Vec::new();
    for k in 0..points {
        let n = 400 * (2 * k + 1) / (2 * points);
        if let Err(e) = failing_one(ctx, kind, &base, k, n) {
            failures.push(format!("{} {} with writes failing after the {n}th: {e}", ctx.board.name, kind.name));
        }
    }
    let _ = std::fs::remove_file(&base);
    (points, failures)
}

fn failing_one(ctx: &Ctx<'_>, kind: &Kind, base: &Path, k: u64, n: u64) -> Result<(), String> {
    let tag = format!("failing-{k}");
    let disk = ctx.work.join(format!("{tag}.img"));
    std::fs::copy(base, &disk).map_err(|e| e.to_string())?;
    let set = settings(kind.layout);
    // blkdebug has no counter: a chain of states, one per write, then an error in the last.
    let mut rules = String::new();
    for s in 1..=n {
        rules.push_str(&format!("[set-state]\nstate = \"{s}\"\nevent = \"pwritev\"\nnew_state = \"{}\"\n\n", s + 1));
    }
    rules.push_str(&format!("[inject-error]\nstate = \"{}\"\nevent = \"pwritev\"\nerrno = \"5\"\n", n + 1));
    let rules_path = ctx.work.join(format!("{tag}.blkdebug"));
    std::fs::write(&rules_path, rules).map_err(|e| e.to_string())?;
    ctx.boot_failing(&disk, &format!("{set} {}", kind.cut.0), &format!("{tag}-failing"), &rules_path)?;
    let after = ctx.boot(&disk, set, &format!("{tag}-after"))?;
    booted(&after)?;
    (kind.check)(&after)
}
