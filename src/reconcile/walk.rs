//! Reconciliation on real trees: walks the old upper beside the old and new images (mounted, or
//! plain directories for the dry run) without following a symlink, classifies each entry with
//! `reconcile::classify`, and builds the new upper in a directory of its own.

use crate::reconcile::rules::{classify, Action, Class, Entry, Facts, Kind, Outcome, Rules, Skipped};
use crate::rt::ffi::OsString;
use crate::rt::fs::Metadata;
use crate::rt::io;
use crate::rt::os::unix::ffi::OsStrExt;
use crate::rt::os::unix::fs::{FileTypeExt, MetadataExt};
use crate::rt::path::{Path, PathBuf};
use crate::rt::prelude::*;
use io::Read;

/// The three trees a reconciliation reads.
pub struct Trees<'a> {
    pub old: &'a Path,
    pub new: &'a Path,
    pub upper: &'a Path,
}

/// What the walk hands its visitor, in depth-first order with names sorted: each entry (a
/// directory before its entries), the end of each directory it descended into, and each path it
/// could not read.
enum Event<'a> {
    Entry(Entry),
    Leave(&'a Path),
    Skipped(Skipped),
}

/// One directory being walked: its path, whether the images have a directory there, and the
/// names not visited yet. The walk holds one per level of the current path, so its memory grows
/// with the depth and the directories' sizes, not with the number of files in the upper.
struct Level {
    rel: PathBuf,
    old_dir: bool,
    new_dir: bool,
    names: alloc::vec::IntoIter<OsString>,
}

fn list(dir: &Path) -> io::Result<alloc::vec::IntoIter<OsString>> {
    let mut names =
        crate::rt::fs::read_dir(dir)?.map(|e| e.map(|e| e.file_name())).collect::<Result<Vec<OsString>, _>>()?;
    crate::util::sort::sort(&mut names);
    Ok(names.into_iter())
}

/// Walks the upper beside the images without following a symlink, classifying each entry.
/// Reads only. Err only when the upper itself cannot be listed.
fn walk(t: &Trees<'_>, rules: &Rules, visit: &mut dyn FnMut(Event<'_>)) -> io::Result<()> {
    let mut levels = vec![Level { rel: PathBuf::new(), old_dir: true, new_dir: true, names: list(t.upper)? }];
    while let Some(level) = levels.last_mut() {
        let Some(name) = level.names.next() else {
            if let Some(done) = levels.pop().filter(|l| !l.rel.as_os_str().is_empty()) {
                visit(Event::Leave(&done.rel));
            }
            continue;
        };
        let (p, old_dir, new_dir) = (level.rel.join(&name), level.old_dir, level.new_dir);
        let um = match t.upper.join(&p).symlink_metadata() {
            Ok(m) => m,
            Err(e) => {
                visit(Event::Skipped(skipped(&p, "lstat", &e)));
                continue;
            }
        };
        let facts = facts(t, &p, &um, old_dir, new_dir);
        let path = shown(&p);
        let (class, action, why) = classify(&path, &facts, rules);
        let descend = matches!(action, Action::Descend { .. } | Action::Unopaque);
        visit(Event::Entry(Entry { path, rel: p.clone(), class, action, why }));
        if descend {
            match list(&t.upper.join(&p)) {
                Ok(names) => levels.push(Level {
                    rel: p,
                    old_dir: facts.old == Some(Kind::Dir),
                    new_dir: facts.new == Some(Kind::Dir),
                    names,
                }),
                Err(e) => {
                    visit(Event::Skipped(skipped(&p, "list", &e)));
                    visit(Event::Leave(&p));
                }
            }
        }
    }
    Ok(())
}

/// What the classification needs to know about the upper's entry `p`.
fn facts(t: &Trees<'_>, p: &Path, um: &Metadata, old_dir: bool, new_dir: bool) -> Facts {
    let om = if old_dir { t.old.join(p).symlink_metadata().ok() } else { None };
    let nm = if new_dir { t.new.join(p).symlink_metadata().ok() } else { None };
    let upper = kind(um);
    let opaque = upper == Kind::Dir && is_opaque(&t.upper.join(p));
    Facts {
        upper,
        old: om.as_ref().map(kind),
        new: nm.as_ref().map(kind),
        same_as_old: om.as_ref().is_some_and(|om| same(&t.upper.join(p), um, &t.old.join(p), om)),
        image_changed: match (&om, &nm) {
            (Some(om), Some(nm)) => !same(&t.old.join(p), om, &t.new.join(p), nm),
            (None, None) => false,
            _ => true,
        },
        opaque,
        hides_new: opaque && !added_names(t, p, old_dir && om.as_ref().is_some_and(Metadata::is_dir)).is_empty(),
    }
}

/// The decisions for every entry of the upper, in walk order, every one listed (the dry run and
/// the tests). Reads only; nothing is changed. Paths are bytes throughout; an entry or directory
/// that cannot be read is reported in `skipped` and left out, the rest goes on. Err only when the
/// upper itself cannot be listed.
pub fn plan(t: &Trees<'_>, rules: &Rules) -> io::Result<Outcome> {
    let mut out = Outcome::listing(None);
    walk(t, rules, &mut |ev| match ev {
        Event::Entry(e) => out.add(e),
        Event::Skipped(k) => out.skip(k),
        Event::Leave(_) => {}
    })?;
    Ok(out)
}

/// The path as rules and reports see it: `/` and the relative path, lossy where not UTF-8.
fn shown(rel: &Path) -> String {
    format!("/{}", rel.display())
}

/// A path reconciliation leaves out, with the call that failed and its error.
fn skipped(rel: &Path, call: &str, e: &io::Error) -> Skipped {
    let path = shown(rel);
    log::warn!("reconcile: {path}: {call}: {e}; left out, the rest is reconciled");
    Skipped { path, why: format!("{call}: {e}") }
}

/// Names in the new image's directory `p` that the old image's did not have and the upper does
/// not name either: what an opaque directory at `p` would hide.
fn added_names(t: &Trees<'_>, p: &Path, old_is_dir: bool) -> Vec<OsString> {
    if !t.new.join(p).symlink_metadata().is_ok_and(|m| m.is_dir()) {
        return Vec::new();
    }
    let old = if old_is_dir { names(&t.old.join(p)) } else { Vec::new() };
    let upper = names(&t.upper.join(p));
    names(&t.new.join(p)).into_iter().filter(|n| !has(&old, n) && !has(&upper, n)).collect()
}

/// The sorted names in `dir`, none when it cannot be read (a directory only one tree has).
fn names(dir: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = crate::rt::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.file_name())).collect())
        .unwrap_or_default();
    crate::util::sort::sort(&mut v);
    v
}

/// Whether the sorted `names` holds `name`.
fn has(names: &[OsString], name: &OsString) -> bool {
    names.binary_search(name).is_ok()
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
            let name = crate::rt::ffi::OsStr::from_bytes(n);
            rustix::fs::lgetxattr(p, name, &mut value[..]).ok().map(|len| (n.to_vec(), value[..len].to_vec()))
        })
        .collect();
    crate::util::sort::sort(&mut out);
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
        Kind::Symlink => crate::rt::fs::read_link(a).ok() == crate::rt::fs::read_link(b).ok(),
        Kind::Whiteout | Kind::Other => am.mode() == bm.mode() && am.rdev() == bm.rdev(),
    }
}

fn same_content(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut fa, mut fb) = (crate::rt::fs::File::open(a)?, crate::rt::fs::File::open(b)?);
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

fn read_full(f: &mut crate::rt::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reconciles the upper into a new one at `to` while walking it, so memory stays bounded however
/// many files the user has: carried entries are copied with their metadata, set-aside ones go
/// under `conflicts`, plain parent directories are made only when something below them is
/// carried (with the new image's owner and mode, so a stale copy-up of a directory does not hide
/// the new image's), and an opaque directory turned plain gets whiteouts for the old image's
/// entries the user had deleted. The outcome counts every entry and lists up to `limit` of them.
/// Returns it with the number of entries written. An entry that cannot be copied (too deep a
/// path, a full partition) is reported in the outcome's `skipped` and left out, with what is
/// below it; Err only when the upper cannot be listed or `to` cannot be made.
pub fn reconcile(
    t: &Trees<'_>,
    rules: &Rules,
    to: &Path,
    conflicts: &Path,
    limit: Option<usize>,
) -> io::Result<(Outcome, usize)> {
    crate::fs::mkdir::mkdir_all(to)?;
    let mut b = Builder { t, to, conflicts, open: Vec::new(), failed: None, written: 0, out: Outcome::listing(limit) };
    walk(t, rules, &mut |ev| b.event(ev))?;
    Ok((b.out, b.written))
}

/// A directory the walk is in: made in the new upper yet or not (and its metadata, whose times
/// are set once its entries are written).
struct Open {
    entry: Entry,
    made: Option<(PathBuf, Metadata)>,
}

struct Builder<'a> {
    t: &'a Trees<'a>,
    to: &'a Path,
    conflicts: &'a Path,
    /// The directories of the current path the walk descended into, outermost first.
    open: Vec<Open>,
    /// An entry that failed: what is below it is left out with it (its own error says why).
    failed: Option<PathBuf>,
    written: usize,
    out: Outcome,
}

impl Builder<'_> {
    fn event(&mut self, ev: Event<'_>) {
        match ev {
            Event::Skipped(k) => self.out.skip(k),
            Event::Leave(rel) => {
                if self.failed.as_deref() == Some(rel) {
                    self.failed = None;
                }
                if self.open.last().is_some_and(|o| o.entry.rel == rel) {
                    // Times last: making entries in a directory changes its own.
                    if let Some((d, m)) = self.open.pop().and_then(|o| o.made) {
                        let _ = crate::fs::copy::set_times(&d, &m);
                    }
                }
            }
            Event::Entry(e) => {
                if self.failed.as_ref().is_none_or(|f| !e.rel.starts_with(f)) {
                    self.entry(&e);
                }
                self.out.add(e);
            }
        }
    }

    fn entry(&mut self, e: &Entry) {
        let dir = matches!(e.action, Action::Descend { .. } | Action::Unopaque);
        if dir {
            self.open.push(Open { entry: e.clone(), made: None });
        }
        let carried = matches!(e.action, Action::Carry | Action::Descend { keep: true } | Action::Unopaque);
        let result = if carried {
            // Every directory above it (and it, if it is one) made first, outermost first; one
            // that cannot be made is reported itself.
            if self.make_open().is_err() {
                return;
            }
            if dir {
                Ok(())
            } else {
                self.copy(e)
            }
        } else if e.action == Action::SaveAside {
            set_aside(e, self.t, self.conflicts)
        } else {
            Ok(())
        };
        if let Err(err) = result {
            log::warn!("reconcile: {}: {err}; left out, the rest is carried", e.path);
            self.out.skip(Skipped { path: e.path.clone(), why: err.to_string() });
            self.failed = Some(e.rel.clone());
        }
    }

    fn copy(&mut self, e: &Entry) -> io::Result<()> {
        self.written += crate::fs::copy::copy_tree(&self.t.upper.join(&e.rel), &self.to.join(&e.rel))?;
        Ok(())
    }

    /// Makes the open directories not made yet. One that fails is reported, and what is below
    /// it left out.
    fn make_open(&mut self) -> Result<(), ()> {
        for i in 0..self.open.len() {
            if self.open[i].made.is_some() {
                continue;
            }
            match make_dir(&self.open[i].entry, self.t, self.to) {
                Ok((n, made)) => {
                    self.written += n;
                    self.open[i].made = Some(made);
                }
                Err(err) => {
                    let o = &self.open[i].entry;
                    log::warn!("reconcile: {}: {err}; left out, the rest is carried", o.path);
                    self.out.skip(Skipped { path: o.path.clone(), why: err.to_string() });
                    self.failed = Some(o.rel.clone());
                    return Err(());
                }
            }
        }
        Ok(())
    }
}

fn set_aside(e: &Entry, t: &Trees<'_>, conflicts: &Path) -> io::Result<()> {
    let aside = conflicts.join(&e.rel);
    crate::fs::mkdir::mkdir_all(aside.parent().unwrap_or(conflicts))?;
    crate::fs::copy::copy_tree(&t.upper.join(&e.rel), &aside)?;
    Ok(())
}

/// Makes the directory of a Descend or Unopaque entry in the new upper: the entries written and
/// the directory with the metadata its times are set from.
fn make_dir(e: &Entry, t: &Trees<'_>, to: &Path) -> io::Result<(usize, (PathBuf, Metadata))> {
    let rel = &e.rel;
    let (src, dst) = (t.upper.join(rel), to.join(rel));
    let new_dir = t.new.join(rel);
    let from = match e.class {
        Class::Parent if new_dir.symlink_metadata().is_ok_and(|m| m.is_dir()) => new_dir,
        _ => src,
    };
    let m = from.symlink_metadata()?;
    crate::fs::mkdir::mkdir_one(&dst)?;
    crate::fs::copy::copy_metadata(&from, &dst, &m)?;
    let mut n = 1;
    if e.action == Action::Unopaque {
        let _ = rustix::fs::lremovexattr(&dst, OPAQUE);
        n += hide_deleted(t, rel, &dst)?;
    }
    Ok((n, (dst, m)))
}

/// In a formerly opaque directory: a whiteout for each entry both images have there that the
/// user's directory does not, so what the user deleted stays deleted.
fn hide_deleted(t: &Trees<'_>, rel: &Path, dst: &Path) -> io::Result<usize> {
    let (old, new, upper) = (names(&t.old.join(rel)), names(&t.new.join(rel)), names(&t.upper.join(rel)));
    let mut n = 0;
    for name in old.iter().filter(|x| has(&new, x) && !has(&upper, x)) {
        crate::fs::copy::whiteout(&dst.join(name))?;
        n += 1;
    }
    Ok(n)
}
