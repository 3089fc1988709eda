//! `overlay-init reconcile`: the dry run of what a new image would do to an upper, by the code
//! the boot runs, on a host or a device, changing nothing. Images are mounted read-only in a
//! private mount namespace of this process, so nothing stays mounted afterwards.

use crate::boot::upper;
use crate::reconcile::rules::{Rules, Side};
use crate::reconcile::walk::{self, Trees};
use crate::sys::{loopdev, mount};
use std::path::{Path, PathBuf};

#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    old: PathBuf,
    new: PathBuf,
    upper: PathBuf,
    config: Option<PathBuf>,
    keep: Option<PathBuf>,
    conflict: Option<Side>,
    json: bool,
}

/// The options checked by the shared parser; what is left: the three trees are required and
/// `--conflict` names a side.
fn from_args(a: &crate::cli::args::Args) -> Result<Args, String> {
    let required = |name: &str| a.path(name).ok_or_else(|| format!("{name} is required"));
    let conflict = match a.value("--conflict") {
        None => None,
        Some("user") => Some(Side::User),
        Some("image") => Some(Side::Image),
        Some(v) => return Err(format!("--conflict {v}: must be user or image")),
    };
    Ok(Args {
        old: required("--old")?,
        new: required("--new")?,
        upper: required("--upper")?,
        config: a.path("--config"),
        keep: a.path("--keep"),
        conflict,
        json: a.flag("--json"),
    })
}

/// Exit codes: 0 printed, 1 a tree cannot be read, 2 usage error.
pub fn run(args: &crate::cli::args::Args) -> i32 {
    let a = match from_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("overlay-init reconcile: {e}; see 'overlay-init reconcile --help'");
            return 2;
        }
    };
    match dry_run(&a) {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("overlay-init reconcile: {e}");
            1
        }
    }
}

fn dry_run(a: &Args) -> Result<String, String> {
    let (mut rules, keep_file) = match &a.config {
        Some(c) => {
            let text = std::fs::read(c).map_err(|e| format!("cannot read config {}: {e}", c.display()))?;
            let (s, loaded) =
                crate::config::settings::Settings::load(&crate::config::cmdline::decode(&text, "config").0, "");
            // A value the config gets wrong counts; what a board config lacks to boot does not.
            if let Some(e) =
                loaded.errors.iter().find(|e| matches!(e.source, crate::config::settings::Source::Config(_)))
            {
                return Err(format!("{}: {e}", c.display()));
            }
            let mut rules = s.ab.rules.clone();
            rules.keep = s.ab.keep.clone();
            (rules, s.ab.keep_file.clone())
        }
        None => (Rules::default(), crate::config::ab::AbSettings::default().keep_file),
    };
    if let Some(k) = &a.keep {
        let text = std::fs::read_to_string(k).map_err(|e| format!("cannot read keep file {}: {e}", k.display()))?;
        rules.keep.extend(upper::parse_keep(&text).0);
    }
    if let Some(side) = a.conflict {
        rules.conflict = side;
    }
    rules.keep = upper::keep_list(&rules.keep, &keep_file, &a.upper);
    let mounted = Mounts::new();
    let old = mounted.tree(&a.old, "old")?;
    let new = mounted.tree(&a.new, "new")?;
    let trees = Trees { old: &old, new: &new, upper: &a.upper };
    let outcome = walk::plan(&trees, &rules).map_err(|e| format!("reading {}: {e}", a.upper.display()))?;
    Ok(if a.json { outcome.to_json(&[("upper", a.upper.display().to_string())]) } else { outcome.to_text() })
}

/// Images mounted for the dry run, unmounted when dropped.
struct Mounts {
    dirs: std::cell::RefCell<Vec<PathBuf>>,
}

impl Mounts {
    fn new() -> Mounts {
        Mounts { dirs: Default::default() }
    }

    /// A directory as it is; an image file mounted read-only (squashfs or EROFS).
    fn tree(&self, p: &Path, name: &str) -> Result<PathBuf, String> {
        if p.is_dir() {
            return Ok(p.to_path_buf());
        }
        let file = p.display().to_string();
        if self.dirs.borrow().is_empty() {
            // This process's own mount namespace: the mounts vanish with it, whatever happens.
            mount::private_namespace()
                .map_err(|e| format!("{file}: a private mount namespace: {e} (mounting an image needs root)"))?;
        }
        let dir = std::env::temp_dir().join(format!("overlay-init-reconcile-{}-{name}", std::process::id()));
        crate::fs::mkdir::mkdir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let target = dir.display().to_string();
        let loop_dev = loopdev::attach_ro(&file).map_err(|(call, e)| format!("{file}: {call}: {e}"))?;
        if let Err(e) = mount::mount_image_ro(&loop_dev.path, &target) {
            let _ = std::fs::remove_dir(&dir);
            return Err(format!("{file}: mount: {e}: neither a squashfs nor an EROFS image (or no module for it)"));
        }
        self.dirs.borrow_mut().push(dir.clone());
        Ok(dir)
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for d in self.dirs.borrow().iter() {
            let _ = mount::unmount_detach(&d.display().to_string());
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Args, String> {
        let argv: Vec<String> = s.split_whitespace().map(String::from).collect();
        match crate::cli::args::parse(crate::cli::args::spec("reconcile").unwrap(), &argv)? {
            crate::cli::args::Parsed::Run(a) => from_args(&a),
            crate::cli::args::Parsed::Help => Err("help".into()),
        }
    }

    #[test]
    fn options() {
        let a = parse("--old a.sqfs --new b --upper u --json --conflict image").unwrap();
        assert_eq!((a.old.to_str(), a.json, a.conflict), (Some("a.sqfs"), true, Some(Side::Image)));
        assert_eq!(parse("--old a --new b").unwrap_err(), "--upper is required");
        assert!(parse("--old a --new b --upper u --fast").unwrap_err().starts_with("unknown option --fast"));
        assert!(parse("--old a --new b --upper u --conflict both").is_err());
    }
}
