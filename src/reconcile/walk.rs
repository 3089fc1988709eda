//! Reconciliation on real trees: walks the old upper beside the old and new images (mounted, or
//! plain directories for the dry run) without following a symlink, classifies each entry with
//! `reconcile::classify`, and builds the new upper in a directory of its own.

use crate::reconcile::rules::{classify, Action, Class, Entry, Facts, Kind, Outcome, Rules, Skipped};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The three trees a reconciliation reads.
pub struct Trees<'a> {
    pub old: &'a Path,
    pub new: &'a Path,
    pub upper: &'a Path,
}

/// The decisions for every entry of the upper, in walk order (a directory before its entries).
/// Reads only; nothing is changed. Paths are bytes throughout; an entry or directory that cannot
/// be read is reported in `skipped` and left out, the rest goes on. Err only when the upper
/// itself cannot be listed.
pub fn plan(t: &Trees<'_>, rules: &Rules) -> std::io::Result<Outcome> {
    let mut out = Outcome::default();
    // (path relative to the trees, old image has a directory there, new image has one)
    let mut stack = vec![(PathBuf::new(), true, true)];
    while let Some((rel, old_dir, new_dir)) = stack.pop() {
        let listed = std::fs::read_dir(t.upper.join(&rel))
            .and_then(|d| d.map(|e| e.map(|e| e.file_name())).collect::<Result<Vec<OsString>, _>>());
        let mut names = match listed {
            Ok(names) => names,
            Err(e) if rel.as_os_str().is_empty() => return Err(e),
            Err(e) => {
                skip(&mut out, &rel, "list", &e);
                continue;
            }
        };
        names.sort();
        let mut children = Vec::new();
        for name in names {
            let p = rel.join(&name);
            let um = match t.upper.join(&p).symlink_metadata() {
                Ok(m) => m,
                Err(e) => {
                    skip(&mut out, &p, "lstat", &e);
                    continue;
                }
            };
            let om = if old_dir { t.old.join(&p).symlink_metadata().ok() } else { None };
            let nm = if new_dir { t.new.join(&p).symlink_metadata().ok() } else { None };
            let upper = kind(&um);
            let opaque = upper == Kind::Dir && is_opaque(&t.upper.join(&p));
            let facts = Facts {
                upper,
                old: om.as_ref().map(kind),
                new: nm.as_ref().map(kind),
                same_as_old: om.as_ref().is_some_and(|om| same(&t.upper.join(&p), &um, &t.old.join(&p), om)),
                image_changed: match (&om, &nm) {
                    (Some(om), Some(nm)) => !same(&t.old.join(&p), om, &t.new.join(&p), nm),
                    (None, None) => false,
                    _ => true,
                },
                opaque,
                hides_new: opaque
                    && !added_names(t, &p, old_dir && om.as_ref().is_some_and(Metadata::is_dir)).is_empty(),
            };
            let path = shown(&p);
            let (class, action, why) = classify(&path, &facts, rules);
            if matches!(action, Action::Descend { .. } | Action::Unopaque) {
                let o = facts.old == Some(Kind::Dir);
                children.push((p.clone(), o, facts.new == Some(Kind::Dir)));
            }
            out.entries.push(Entry { path, rel: p, class, action, why });
        }
        stack.extend(children.into_iter().rev());
    }
    // By path components: a directory before its entries, and the report reads like a listing.
    out.entries.sort_by(|a, b| a.rel.components().cmp(b.rel.components()));
    Ok(out)
}

/// The path as rules and reports see it: `/` and the relative path, lossy where not UTF-8.
fn shown(rel: &Path) -> String {
    format!("/{}", rel.display())
}

/// Reports a path reconciliation leaves out, with the call that failed and its error.
fn skip(out: &mut Outcome, rel: &Path, call: &str, e: &std::io::Error) {
    let path = shown(rel);
    log::warn!("reconcile: {path}: {call}: {e}; left out, the rest is reconciled");
    out.skipped.push(Skipped { path, why: format!("{call}: {e}") });
}

/// Names in the new image's directory `p` that the old image's did not have and the upper does
/// not name either: what an opaque directory at `p` would hide.
fn added_names(t: &Trees<'_>, p: &Path, old_is_dir: bool) -> BTreeSet<OsString> {
    let names = |dir: PathBuf| -> BTreeSet<OsString> {
        std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.file_name())).collect()).unwrap_or_default()
    };
    if !t.new.join(p).symlink_metadata().is_ok_and(|m| m.is_dir()) {
        return BTreeSet::new();
    }
    let old = if old_is_dir { names(t.old.join(p)) } else { BTreeSet::new() };
    let upper = names(t.upper.join(p));
    names(t.new.join(p)).into_iter().filter(|n| !old.contains(n) && !upper.contains(n)).collect()
}

fn kind(m: &Metadata) -> Kind {
    let ft = m.file_type();
    if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_char_device() && m.rdev() == 0 {
        Kind::Whiteout
    } else {
        Kind::Other
    }
}

const OPAQUE: &str = "trusted.overlay.opaque";

fn is_opaque(p: &Path) -> bool {
    let mut v = [0u8; 4];
    rustix::fs::lgetxattr(p, OPAQUE, &mut v[..]).is_ok_and(|n| &v[..n] == b"y")
}

/// The extended attributes that describe the file, not overlayfs's bookkeeping of it
/// (`trusted.overlay.*`: origin, impure, opaque), sorted.
fn xattrs(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = vec![0u8; 64 * 1024];
    let Ok(len) = rustix::fs::llistxattr(p, &mut names[..]) else { return Vec::new() };
    let mut value = vec![0u8; 64 * 1024];
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = names[..len]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty() && !n.starts_with(b"trusted.overlay."))
        .filter_map(|n| {
            let name = std::ffi::OsStr::from_bytes(n);
            rustix::fs::lgetxattr(p, name, &mut value[..]).ok().map(|len| (n.to_vec(), value[..len].to_vec()))
        })
        .collect();
    out.sort();
    out
}

/// Whether two entries are the same to a user: kind, owner, mode, content or link target or
/// device number, and attributes. Times are not compared: a copy-up keeps them, a `touch` alone
/// is not a change worth hiding an update for.
fn same(a: &Path, am: &Metadata, b: &Path, bm: &Metadata) -> bool {
    if kind(am) != kind(bm) || am.uid() != bm.uid() || am.gid() != bm.gid() || xattrs(a) != xattrs(b) {
        return false;
    }
    match kind(am) {
        Kind::Dir => am.mode() == bm.mode(),
        Kind::File => am.mode() == bm.mode() && am.size() == bm.size() && same_content(a, b).unwrap_or(false),
        Kind::Symlink => std::fs::read_link(a).ok() == std::fs::read_link(b).ok(),
        Kind::Whiteout | Kind::Other => am.mode() == bm.mode() && am.rdev() == bm.rdev(),
    }
}

fn same_content(a: &Path, b: &Path) -> std::io::Result<bool> {
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = read_full(&mut fa, &mut ba)?;
        if n != read_full(&mut fb, &mut bb)? || ba[..n] != bb[..n] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Builds the new upper at `to` from the decisions: carried entries are copied with their
/// metadata, set-aside ones go under `conflicts`, plain parent directories are made only where
/// something below them is carried (with the new image's owner and mode, so a stale copy-up of a
/// directory does not hide the new image's), and an opaque directory turned plain gets
/// whiteouts for the old image's entries the user had deleted. Returns the entries written. An
/// entry that cannot be copied (too deep a path, a full partition) is reported in the outcome's
/// `skipped` and left out, with what is below it; Err only when `to` itself cannot be made.
pub fn build(o: &mut Outcome, t: &Trees<'_>, to: &Path, conflicts: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(to)?;
    let carried = |e: &Entry| matches!(e.action, Action::Carry | Action::Descend { keep: true } | Action::Unopaque);
    // A directory is needed if it is kept itself or anything under it is.
    let mut needed = BTreeSet::new();
    for e in o.entries.iter().filter(|e| carried(e)) {
        needed.extend(e.rel.ancestors().map(Path::to_path_buf));
    }
    let (mut n, mut dirs, mut failed) = (0, Vec::new(), Vec::<PathBuf>::new());
    let mut skipped = Vec::new();
    for e in &o.entries {
        // Below an entry that failed: left out with it (its own error says why).
        if failed.iter().any(|f| e.rel.starts_with(f)) {
            continue;
        }
        match build_one(e, t, to, conflicts, needed.contains(&e.rel)) {
            Ok((k, dir)) => {
                n += k;
                dirs.extend(dir);
            }
            Err(err) => {
                log::warn!("reconcile: {}: {err}; left out, the rest is carried", e.path);
                skipped.push(Skipped { path: e.path.clone(), why: err.to_string() });
                failed.push(e.rel.clone());
            }
        }
    }
    o.skipped.extend(skipped);
    // Times last: making entries in a directory changes its own.
    for (d, m) in dirs.iter().rev() {
        let _ = crate::fs::copy::set_times(d, m);
    }
    Ok(n)
}

/// One entry of `build`: the entries written, and a directory made (whose times are set last).
fn build_one(
    e: &Entry,
    t: &Trees<'_>,
    to: &Path,
    conflicts: &Path,
    needed: bool,
) -> std::io::Result<(usize, Option<(PathBuf, Metadata)>)> {
    let rel = &e.rel;
    let (src, dst) = (t.upper.join(rel), to.join(rel));
    match e.action {
        Action::Carry => Ok((crate::fs::copy::copy_tree(&src, &dst)?, None)),
        Action::SaveAside => {
            let aside = conflicts.join(rel);
            std::fs::create_dir_all(aside.parent().unwrap_or(conflicts))?;
            crate::fs::copy::copy_tree(&src, &aside)?;
            Ok((0, None))
        }
        Action::Descend { .. } | Action::Unopaque if needed => {
            let new_dir = t.new.join(rel);
            let from = match e.class {
                Class::Parent if new_dir.symlink_metadata().is_ok_and(|m| m.is_dir()) => new_dir,
                _ => src.clone(),
            };
            let m = from.symlink_metadata()?;
            std::fs::create_dir(&dst)?;
            crate::fs::copy::copy_metadata(&from, &dst, &m)?;
            let mut n = 1;
            if e.action == Action::Unopaque {
                let _ = rustix::fs::lremovexattr(&dst, OPAQUE);
                n += hide_deleted(t, rel, &dst)?;
            }
            Ok((n, Some((dst, m))))
        }
        Action::Drop | Action::Descend { .. } | Action::Unopaque => Ok((0, None)),
    }
}

/// In a formerly opaque directory: a whiteout for each entry both images have there that the
/// user's directory does not, so what the user deleted stays deleted.
fn hide_deleted(t: &Trees<'_>, rel: &Path, dst: &Path) -> std::io::Result<usize> {
    let names = |d: PathBuf| -> BTreeSet<OsString> {
        std::fs::read_dir(d).map(|d| d.filter_map(|e| e.ok().map(|e| e.file_name())).collect()).unwrap_or_default()
    };
    let (old, new, upper) = (names(t.old.join(rel)), names(t.new.join(rel)), names(t.upper.join(rel)));
    let mut n = 0;
    for name in old.intersection(&new).filter(|x| !upper.contains(*x)) {
        crate::fs::copy::whiteout(&dst.join(name))?;
        n += 1;
    }
    Ok(n)
}
