//! Reconciling an upper with an image change. Every entry of the old upper is compared with the
//! old image (what the user changed it from) and the new image (what the update ships), then
//! carried into the new upper, dropped, or set aside. The rules here are pure; `reconcile::walk`
//! reads the trees and builds the new upper.
//!
//! Why not carry the whole upper (what OpenWRT, overlayroot and most A/B systems do): a copy-up
//! the user never meant as a change (a `chmod` back and forth, a `touch`, a package database a
//! tool rewrote unchanged) would hide the new image's version forever, and a whiteout or opaque
//! directory would hide files the new image adds. Why not drop it (our `keeplist`): every change
//! outside the keep-list would be lost on each update.

use crate::rt::prelude::*;

/// What an entry is, as `lstat` says; a whiteout is overlayfs's character device 0:0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Whiteout,
    /// Device nodes, FIFOs and sockets.
    Other,
}

/// Who wins when the user and the image both changed a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    User,
    Image,
}

/// The board's reconciliation rules (`oinit.conflict`, `oinit.userwins`, `oinit.imagewins`,
/// `oinit.shownew`) and the keep-list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    pub conflict: Side,
    pub user_wins: Vec<String>,
    pub image_wins: Vec<String>,
    /// Drop whiteouts and opaque markers that would hide files the new image adds.
    pub show_new: bool,
    pub keep: Vec<String>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules { conflict: Side::User, user_wins: Vec::new(), image_wins: Vec::new(), show_new: true, keep: Vec::new() }
    }
}

impl Rules {
    /// The winner of a conflict on `path`: a `userwins` pattern, then an `imagewins` one, then
    /// the default.
    pub fn winner(&self, path: &str) -> Side {
        if self.user_wins.iter().any(|p| matches(p, path)) {
            Side::User
        } else if self.image_wins.iter().any(|p| matches(p, path)) {
            Side::Image
        } else {
            self.conflict
        }
    }

    /// `/etc/config/` on the keep-list means the directory as `/etc/config` does (OpenWRT's
    /// sysupgrade.conf lists directories either way; the keep-list carry already took both).
    fn kept(&self, path: &str) -> bool {
        self.keep.iter().any(|k| under(path, k))
    }
}

/// `path` is `dir` or below it; a trailing `/` on `dir` changes nothing.
fn under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// A path pattern: `*` matches any run of characters (`/` included), `?` one character; a
/// pattern without wildcards matches the path and everything under it.
pub fn matches(pattern: &str, path: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return under(path, pattern);
    }
    let (p, s) = (pattern.as_bytes(), path.as_bytes());
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < s.len() {
        if i < p.len() && (p[i] == b'?' || p[i] == s[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == b'*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(st) = star {
            i = st + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

/// What an upper entry is, against the two images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// On the keep-list: carried as it is.
    KeptByList,
    /// Not in the old image: the user made it.
    UserNew,
    /// Differs from the old image, which the new image left alone.
    UserChanged,
    /// A copy-up identical to the old image's file: the new image's version shows.
    StaleCopy,
    /// The user and the image both changed it.
    Conflict,
    /// A whiteout of a file both images ship the same: the user's deletion stands.
    Deleted,
    /// A whiteout with nothing left to hide.
    StaleWhiteout,
    /// A whiteout of a path the old image did not have and the new one ships.
    HidesNew,
    /// A directory the user emptied and remade (opaque) where the new image adds files.
    OpaqueHidesNew,
    /// A directory the user made opaque: its content is the user's, carried as it is.
    Opaque,
    /// A directory carried only because something under it is.
    Parent,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::KeptByList => "kept-by-list",
            Class::UserNew => "user-new",
            Class::UserChanged => "user-changed",
            Class::StaleCopy => "stale-copy",
            Class::Conflict => "conflict",
            Class::Deleted => "deleted",
            Class::StaleWhiteout => "stale-whiteout",
            Class::HidesNew => "hides-new",
            Class::OpaqueHidesNew => "opaque-hides-new",
            Class::Opaque => "opaque",
            Class::Parent => "parent",
        }
    }

    pub const ALL: [Class; 11] = [
        Class::KeptByList,
        Class::UserNew,
        Class::UserChanged,
        Class::StaleCopy,
        Class::Conflict,
        Class::Deleted,
        Class::StaleWhiteout,
        Class::HidesNew,
        Class::OpaqueHidesNew,
        Class::Opaque,
        Class::Parent,
    ];
}

/// What happens to an upper entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Copied into the new upper as it is (a directory with everything under it).
    Carry,
    /// Not carried.
    Drop,
    /// Not carried; the user's version is saved under the conflicts folder.
    SaveAside,
    /// A directory: made in the new upper (`keep`) or only if something under it is carried;
    /// its entries are reconciled one by one.
    Descend { keep: bool },
    /// An opaque directory turned into a plain one: its entries are reconciled, and whiteouts
    /// hide what the user had deleted from the old image's directory.
    Unopaque,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Carry => "carry",
            Action::Drop => "drop",
            Action::SaveAside => "save-aside",
            Action::Descend { .. } => "dir",
            Action::Unopaque => "unopaque",
        }
    }
}

/// What is known about one upper entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    pub upper: Kind,
    /// The entry at the same path in the old and the new image (None: absent, or under a
    /// non-directory there).
    pub old: Option<Kind>,
    pub new: Option<Kind>,
    /// The upper entry equals the old image's: kind, content or link target, mode, owner and
    /// the extended attributes that are not overlayfs's own (for a directory: not its entries).
    pub same_as_old: bool,
    /// The new image's entry differs from the old image's (added, removed or changed).
    pub image_changed: bool,
    /// A directory marked `trusted.overlay.opaque`.
    pub opaque: bool,
    /// For an opaque directory: the new image's directory has names the old one did not.
    pub hides_new: bool,
}

/// The decision for one entry, with why (for the report).
pub fn classify(path: &str, f: &Facts, r: &Rules) -> (Class, Action, &'static str) {
    if r.kept(path) {
        return (Class::KeptByList, Action::Carry, "");
    }
    let conflict = |why| match r.winner(path) {
        Side::User => (Class::Conflict, Action::Carry, why),
        // A deletion has nothing to save.
        Side::Image if f.upper == Kind::Whiteout => (Class::Conflict, Action::Drop, why),
        Side::Image => (Class::Conflict, Action::SaveAside, why),
    };
    match f.upper {
        Kind::Whiteout => match (f.old, f.new) {
            (Some(_), Some(_)) if f.image_changed => conflict("the user deleted it; the image changed it"),
            (Some(_), Some(_)) => (Class::Deleted, Action::Carry, ""),
            (None, Some(_)) if r.show_new => (Class::HidesNew, Action::Drop, "the new image ships it"),
            (None, Some(_)) => (Class::HidesNew, Action::Carry, "the new image ships it; kept hidden"),
            (_, None) => (Class::StaleWhiteout, Action::Drop, ""),
        },
        Kind::Dir if f.opaque && f.hides_new && r.show_new => {
            (Class::OpaqueHidesNew, Action::Unopaque, "the new image adds files in it")
        }
        Kind::Dir if f.opaque && f.hides_new => {
            (Class::OpaqueHidesNew, Action::Carry, "the new image's files stay hidden")
        }
        Kind::Dir if f.opaque => (Class::Opaque, Action::Carry, ""),
        // A directory where the old image had none (or had a file): the user's; what is under
        // it is the user's too, or collides with what the new image ships there.
        Kind::Dir if f.old != Some(Kind::Dir) => (Class::UserNew, Action::Descend { keep: true }, ""),
        Kind::Dir if f.same_as_old => (Class::Parent, Action::Descend { keep: false }, ""),
        Kind::Dir => (Class::UserChanged, Action::Descend { keep: true }, "owner, mode or attributes"),
        _ => match f.old {
            None if f.new.is_some() => conflict("the new image ships the same path"),
            None => (Class::UserNew, Action::Carry, ""),
            Some(_) if f.same_as_old => (Class::StaleCopy, Action::Drop, ""),
            Some(_) if !f.image_changed => (Class::UserChanged, Action::Carry, ""),
            Some(_) if f.new.is_none() => conflict("the image removed it"),
            Some(old) if f.new != Some(old) => conflict("the image changed its type"),
            Some(_) => conflict("the image changed it"),
        },
    }
}

/// One reconciled entry, for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The path as the rules and the reports see it (`/etc/x`; a name that is not UTF-8 shows
    /// with U+FFFD, so a rule cannot name it exactly).
    pub path: String,
    /// The same path as bytes, relative to the trees: what every file operation uses, so a
    /// name that is not UTF-8 is carried like any other.
    pub rel: crate::rt::path::PathBuf,
    pub class: Class,
    pub action: Action,
    pub why: &'static str,
}

/// What a reconciliation did, as the boot log, `reconcile.json` and the dry run show it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The entries in walk order (a directory before its entries), as far as `limit` allows.
    pub entries: Vec<Entry>,
    /// Paths reconciliation could not read or write, with the error: reported and left out,
    /// never a reason to drop everything else. As far as `limit` allows.
    pub skipped: Vec<Skipped>,
    /// Entries per class (by `Class::ALL` index) and paths skipped, listed or not.
    counts: [usize; Class::ALL.len()],
    skipped_total: usize,
    /// How many entries and skipped paths are listed at most; None: every one. The boot bounds
    /// it, so PID 1's memory does not grow with the user's millions of files; plain parent
    /// directories are then counted only.
    limit: Option<usize>,
}

/// A path reconciliation left out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub path: String,
    pub why: String,
}

impl Outcome {
    /// An outcome that lists at most `limit` entries and `limit` skipped paths (None: all).
    pub fn listing(limit: Option<usize>) -> Outcome {
        Outcome { limit, ..Outcome::default() }
    }

    /// Counts an entry and lists it if the limit allows.
    pub fn add(&mut self, e: Entry) {
        self.counts[e.class as usize] += 1;
        let listed = match self.limit {
            None => true,
            Some(n) => e.class != Class::Parent && self.entries.len() < n,
        };
        if listed {
            self.entries.push(e);
        }
    }

    /// Counts a skipped path and lists it if the limit allows.
    pub fn skip(&mut self, k: Skipped) {
        self.skipped_total += 1;
        if self.limit.is_none_or(|n| self.skipped.len() < n) {
            self.skipped.push(k);
        }
    }

    pub fn count(&self, c: Class) -> usize {
        self.counts[c as usize]
    }

    /// Entries (other than plain parent directories) and skipped paths counted but not listed.
    fn unlisted(&self) -> usize {
        let listed = self.entries.iter().filter(|e| e.class != Class::Parent).count();
        let counted: usize = self.counted().map(|(_, n)| n).sum();
        counted - listed + self.skipped_total - self.skipped.len()
    }

    fn counted(&self) -> impl Iterator<Item = (Class, usize)> + '_ {
        Class::ALL.into_iter().filter(|c| *c != Class::Parent).map(|c| (c, self.count(c))).filter(|(_, n)| *n > 0)
    }

    /// One line: counts per class, e.g. "2 user-changed, 1 stale-copy, 1 conflict".
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self.counted().map(|(c, n)| format!("{n} {}", c.name())).collect();
        if self.skipped_total > 0 {
            parts.push(format!("{} skipped", self.skipped_total));
        }
        if parts.is_empty() {
            "nothing to reconcile".into()
        } else {
            parts.join(", ")
        }
    }

    /// Every entry but plain parent directories, one per line: action, class, path, why.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for e in self.entries.iter().filter(|e| e.class != Class::Parent) {
            out.push_str(&format!("{:<10} {:<16} {}", e.action.name(), e.class.name(), e.path));
            if !e.why.is_empty() {
                out.push_str(&format!("  ({})", e.why));
            }
            out.push('\n');
        }
        for k in &self.skipped {
            out.push_str(&format!("{:<10} {:<16} {}  ({})\n", "skip", "unreadable", k.path, k.why));
        }
        if self.unlisted() > 0 {
            out.push_str(&format!("({} more not listed)\n", self.unlisted()));
        }
        out.push_str(&format!("summary: {}\n", self.summary()));
        out
    }

    pub fn to_json(&self, header: &[(&str, String)]) -> String {
        use crate::util::json::json_str;
        let mut out = String::from("{\n");
        for (k, v) in header {
            out.push_str(&format!("  {}: {},\n", json_str(k), json_str(v)));
        }
        let counts: Vec<String> = self.counted().map(|(c, n)| format!("{}: {n}", json_str(c.name()))).collect();
        out.push_str(&format!("  \"counts\": {{{}}},\n", counts.join(", ")));
        out.push_str(&format!("  \"skipped_count\": {},\n  \"unlisted\": {},\n", self.skipped_total, self.unlisted()));
        let entries: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.class != Class::Parent)
            .map(|e| {
                format!(
                    "    {{\"path\": {}, \"class\": {}, \"action\": {}, \"why\": {}}}",
                    json_str(&e.path),
                    json_str(e.class.name()),
                    json_str(e.action.name()),
                    json_str(e.why)
                )
            })
            .collect();
        let skipped: Vec<String> = self
            .skipped
            .iter()
            .map(|k| format!("    {{\"path\": {}, \"why\": {}}}", json_str(&k.path), json_str(&k.why)))
            .collect();
        let skipped = if skipped.is_empty() { String::new() } else { format!("\n{}\n  ", skipped.join(",\n")) };
        out.push_str(&format!("  \"entries\": [\n{}\n  ],\n", entries.join(",\n")));
        out.push_str(&format!("  \"skipped\": [{skipped}]\n}}\n"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(old: Option<Kind>, new: Option<Kind>, same_as_old: bool, image_changed: bool) -> Facts {
        Facts { upper: Kind::File, old, new, same_as_old, image_changed, opaque: false, hides_new: false }
    }

    const F: Option<Kind> = Some(Kind::File);

    #[test]
    fn files_against_both_images() {
        let r = Rules::default();
        let c = |f: Facts| classify("/etc/x", &f, &r).0;
        assert_eq!(c(file(F, F, true, false)), Class::StaleCopy);
        assert_eq!(c(file(F, F, true, true)), Class::StaleCopy, "a plain copy-up never hides the new version");
        assert_eq!(c(file(F, F, false, false)), Class::UserChanged);
        assert_eq!(c(file(F, F, false, true)), Class::Conflict);
        assert_eq!(c(file(F, None, false, true)), Class::Conflict);
        assert_eq!(c(file(None, None, false, false)), Class::UserNew);
        assert_eq!(c(file(None, F, false, true)), Class::Conflict);
        let (_, _, why) = classify("/etc/x", &file(Some(Kind::Dir), F, false, true), &r);
        assert_eq!(why, "the image changed its type");
    }

    #[test]
    fn conflicts_follow_the_board_rules() {
        let r = Rules {
            conflict: Side::User,
            image_wins: vec!["/usr/*".into(), "/etc/app".into()],
            user_wins: vec!["/usr/local/*".into()],
            ..Rules::default()
        };
        let f = file(F, F, false, true);
        assert_eq!(classify("/etc/x", &f, &r).1, Action::Carry);
        assert_eq!(classify("/usr/lib/y", &f, &r).1, Action::SaveAside);
        assert_eq!(classify("/etc/app/conf", &f, &r).1, Action::SaveAside);
        assert_eq!(classify("/etc/apps", &f, &r).1, Action::Carry, "a plain pattern is a path, not a prefix");
        assert_eq!(classify("/usr/local/bin/z", &f, &r).1, Action::Carry);
        let wh = Facts { upper: Kind::Whiteout, ..f };
        assert_eq!(classify("/usr/lib/y", &wh, &r).1, Action::Drop, "the image's version of a deleted file");
    }

    #[test]
    fn whiteouts_and_opaque_directories() {
        let r = Rules::default();
        let wh = |old, new, changed| Facts { upper: Kind::Whiteout, ..file(old, new, false, changed) };
        assert_eq!(classify("/a", &wh(F, F, false), &r).0, Class::Deleted);
        assert_eq!(classify("/a", &wh(F, None, true), &r).1, Action::Drop);
        assert_eq!(classify("/a", &wh(None, F, true), &r), (Class::HidesNew, Action::Drop, "the new image ships it"));
        let hide = Rules { show_new: false, ..Rules::default() };
        assert_eq!(classify("/a", &wh(None, F, true), &hide).1, Action::Carry);
        let dir = Facts { upper: Kind::Dir, opaque: true, hides_new: true, ..file(Some(Kind::Dir), None, false, true) };
        assert_eq!(classify("/d", &dir, &r).1, Action::Unopaque);
        assert_eq!(classify("/d", &dir, &hide).1, Action::Carry);
        assert_eq!(classify("/d", &Facts { hides_new: false, ..dir }, &r).0, Class::Opaque);
    }

    /// `/etc/ssh/` on the keep-list never matched in reconcile mode: the entries under it were
    /// reconciled like any other instead of carried as they are.
    #[test]
    fn a_keep_entry_with_a_trailing_slash_matches_its_directory() {
        for entry in ["/etc/ssh", "/etc/ssh/"] {
            let r = Rules { keep: vec![entry.into()], ..Rules::default() };
            assert!(r.kept("/etc/ssh") && r.kept("/etc/ssh/key"), "{entry}");
            assert!(!r.kept("/etc/sshd_config") && !r.kept("/etc"), "{entry}");
        }
        assert!(matches("/etc/config/", "/etc/config/network"));
    }

    #[test]
    fn directories_and_the_keep_list() {
        let r = Rules { keep: vec!["/etc/ssh".into()], ..Rules::default() };
        let d = |old, same| Facts { upper: Kind::Dir, ..file(old, Some(Kind::Dir), same, false) };
        assert_eq!(classify("/etc", &d(Some(Kind::Dir), true), &r).1, Action::Descend { keep: false });
        assert_eq!(classify("/etc", &d(Some(Kind::Dir), false), &r).1, Action::Descend { keep: true });
        assert_eq!(classify("/etc", &d(F, false), &r).0, Class::UserNew);
        assert_eq!(classify("/etc/ssh/key", &file(F, F, true, true), &r).0, Class::KeptByList);
        assert_eq!(classify("/etc/sshd", &file(F, F, true, true), &r).0, Class::StaleCopy);
    }

    #[test]
    fn patterns() {
        assert!(matches("/etc/*.conf", "/etc/a.conf"));
        assert!(matches("/etc/*.conf", "/etc/sub/a.conf"));
        assert!(!matches("/etc/*.conf", "/etc/a.confx"));
        assert!(matches("/var/?og", "/var/log"));
        assert!(matches("/var", "/var/log/x"));
        assert!(!matches("/var", "/various"));
        assert!(matches("*", "/anything"));
    }

    #[test]
    fn report_lines() {
        let mut o = Outcome::listing(None);
        for e in [
            Entry {
                path: "/etc".into(),
                rel: "etc".into(),
                class: Class::Parent,
                action: Action::Descend { keep: false },
                why: "",
            },
            Entry {
                path: "/etc/a".into(),
                rel: "etc/a".into(),
                class: Class::Conflict,
                action: Action::Carry,
                why: "the image changed it",
            },
            Entry {
                path: "/etc/b".into(),
                rel: "etc/b".into(),
                class: Class::StaleCopy,
                action: Action::Drop,
                why: "",
            },
        ] {
            o.add(e);
        }
        assert_eq!(
            o.to_text(),
            "carry      conflict         /etc/a  (the image changed it)\ndrop       stale-copy       /etc/b\nsummary: 1 stale-copy, 1 conflict\n"
        );
        assert!(o
            .to_json(&[("carry", "reconcile".into())])
            .contains("\"counts\": {\"stale-copy\": 1, \"conflict\": 1}"));
    }

    /// The boot lists a bounded number of entries and counts them all: what PID 1 holds for
    /// the report does not grow with the user's files.
    #[test]
    fn a_bounded_outcome_counts_everything_and_lists_its_limit() {
        let mut o = Outcome::listing(Some(2));
        for i in 0..1000 {
            let (class, action) = if i % 10 == 0 {
                (Class::Parent, Action::Descend { keep: false })
            } else {
                (Class::UserNew, Action::Carry)
            };
            o.add(Entry { path: format!("/d/{i}"), rel: format!("d/{i}").into(), class, action, why: "" });
            o.skip(Skipped { path: format!("/bad/{i}"), why: "lstat: EIO".into() });
        }
        assert_eq!((o.entries.len(), o.skipped.len()), (2, 2));
        assert_eq!((o.count(Class::UserNew), o.count(Class::Parent)), (900, 100));
        assert_eq!(o.summary(), "900 user-new, 1000 skipped");
        let json = o.to_json(&[]);
        assert!(json.contains("\"skipped_count\": 1000,") && json.contains("\"unlisted\": 1896,"), "{json}");
        assert!(o.to_text().contains("(1896 more not listed)"));
    }
}
