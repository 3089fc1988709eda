//! Reconciliation against uppers the kernel made: an old image and a new one (directories, and
//! squashfs images for the dry run), a real overlayfs mount over the old one where the changes a
//! user makes are made (edits, `touch`, `chmod`, `rm`, `rm -rf` + `mkdir`), then
//! - `overlay-init reconcile` (the dry run) prints what an update would do; its output is pinned
//!   in tests/golden/reconcile-*.txt (`UPDATE_GOLDEN=1` rewrites them);
//! - the new upper built by the boot's code, mounted by overlayfs over the NEW image, shows what
//!   a user expects: their changes, the new image's files, nothing stale.
//!
//! Needs root (overlayfs's trusted.* xattrs, whiteouts, loop devices); elsewhere it says why it
//! skipped, and with OI_REQUIRE_ROOT=1 a missing privilege is a failure.

use crate::common::in_private_namespace;
use overlay_init::reconcile::rules::{Rules, Side};
use overlay_init::reconcile::walk::{self, Trees};
use overlay_init::sys::mount;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

fn can_run() -> bool {
    let root = rustix::process::geteuid().is_root();
    let tools = Command::new("sh").args(["-c", "command -v mksquashfs"]).output().is_ok_and(|o| o.status.success());
    if root && tools {
        return true;
    }
    let why = if root { "mksquashfs missing (run tests/setup.sh)" } else { "not root" };
    assert!(std::env::var_os("OI_REQUIRE_ROOT").is_none(), "reconcile tests cannot run: {why}");
    eprintln!("SKIPPED reconcile: {why}");
    false
}

fn put(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Image a and image b: what changed between them is what each file's name says.
fn images(base: &Path) -> (PathBuf, PathBuf) {
    let (old, new) = (base.join("old"), base.join("new"));
    for (root, v) in [(&old, "a"), (&new, "b")] {
        put(root, "etc/same.conf", "same\n");
        put(root, "etc/touched.conf", "same\n");
        put(root, "etc/chmodded-back.conf", &format!("{v}\n"));
        put(root, "etc/edited.conf", &format!("{v}\n"));
        put(root, "etc/deleted.conf", "x\n");
        put(root, "etc/modes.conf", "m\n");
        put(root, "etc/ssh/ssh_host_key", &format!("image {v}\n"));
        put(root, "etc/app/both", "both\n");
        put(root, "etc/tree/file", "f\n");
        put(root, "usr/lib/libx.so", &format!("lib {v}\n"));
        symlink("target-1", root.join("etc/link")).unwrap();
    }
    put(&old, "etc/removed.conf", "a\n");
    put(&old, "etc/app/old-only", "old\n");
    put(&new, "etc/app/added", "new\n");
    put(&new, "etc/collide.conf", "image\n");
    put(&new, "etc/ghost", "the new image ships it\n");
    (old, new)
}

fn sh(script: &str, dir: &Path) {
    let out = Command::new("sh").args(["-ec", script]).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The changes a user makes on the running system, through a real overlayfs over `old`, so
/// copy-ups, whiteouts and opaque directories are the kernel's own.
fn user_changes(base: &Path, old: &Path) -> PathBuf {
    let (upper, work, merged) = (base.join("upper"), base.join("work"), base.join("merged"));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d).unwrap();
    }
    let opts = format!("lowerdir={},upperdir={},workdir={}", old.display(), upper.display(), work.display());
    let m = merged.display().to_string();
    mount::mount_fs("overlay", &m, "overlay", &opts).unwrap();
    sh(
        "echo user >> etc/same.conf
         touch etc/touched.conf
         chmod 600 etc/chmodded-back.conf; chmod 644 etc/chmodded-back.conf
         echo user > etc/edited.conf
         echo user > etc/removed.conf
         rm etc/deleted.conf
         chmod 600 etc/modes.conf
         echo mine > etc/ssh/ssh_host_key
         rm -rf etc/app; mkdir etc/app; echo mine > etc/app/mine
         echo user > etc/collide.conf
         echo patched > usr/lib/libx.so
         ln -sfn target-2 etc/link
         rm -rf etc/tree; echo now-a-file > etc/tree
         mkdir -p var/lib/app; echo data > var/lib/app/db
         echo /etc/ssh > etc/overlay-init.keep",
        &merged,
    );
    // Detached: see the_new_upper_over_the_new_image_shows_what_the_user_expects.
    mount::unmount_detach(&m).unwrap();
    // A whiteout left from an even older image: of a path image a does not have.
    rustix::fs::mknodat(rustix::fs::CWD, upper.join("etc/ghost"), rustix::fs::FileType::CharacterDevice, 0.into(), 0)
        .unwrap();
    upper
}

fn squashfs(dir: &Path) -> PathBuf {
    let img = dir.with_extension("sqfs");
    let out = Command::new("mksquashfs").arg(dir).arg(&img).args(["-noappend", "-quiet", "-no-progress"]).output();
    assert!(out.is_ok_and(|o| o.status.success()), "mksquashfs {}", dir.display());
    img
}

fn fixture(name: &str) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!("oi-reconcile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let (old, new) = images(&base);
    let upper = {
        let (b, o) = (base.clone(), old.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        in_private_namespace(move || tx.send(user_changes(&b, &o)).unwrap());
        rx.recv().unwrap()
    };
    (base, old, new, upper)
}

fn golden(name: &str, got: &str) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("reconcile-{name}.txt"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&file, got).unwrap();
    }
    let want = std::fs::read_to_string(&file).unwrap_or_default();
    assert_eq!(got, want, "{} changed (UPDATE_GOLDEN=1 to accept)", file.display());
}

fn dry_run(args: &[&str], base: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_overlay-init")).arg("reconcile").args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().replace(&base.display().to_string(), "BASE")
}

#[test]
fn dry_run_prints_every_class() {
    if !can_run() {
        return;
    }
    let (base, old, new, upper) = fixture("dry");
    let (u, o, n) = (upper.to_str().unwrap(), old.to_str().unwrap(), new.to_str().unwrap());
    let from_dirs = dry_run(&["--old", o, "--new", n, "--upper", u], &base);
    golden("default", &from_dirs);
    // The same from squashfs images, mounted by the command itself: same answer.
    let (oi, ni) = (squashfs(&old), squashfs(&new));
    let from_images = dry_run(&["--old", oi.to_str().unwrap(), "--new", ni.to_str().unwrap(), "--upper", u], &base);
    assert_eq!(from_images, from_dirs);
    let config = base.join("board.conf");
    std::fs::write(&config, "oinit.conflict=image\noinit.userwins=/etc/edited.conf\noinit.shownew=0\n").unwrap();
    let c = config.to_str().unwrap();
    golden("image-wins", &dry_run(&["--old", o, "--new", n, "--upper", u, "--config", c, "--json"], &base));
    // A dry run changes nothing.
    assert!(upper.join("etc/touched.conf").exists());
    std::fs::remove_dir_all(&base).unwrap();
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| format!("<{e}>"))
}

#[test]
fn the_new_upper_over_the_new_image_shows_what_the_user_expects() {
    if !can_run() {
        return;
    }
    let (base, old, new, upper) = fixture("build");
    for (side, staging) in [(Side::User, base.join("user")), (Side::Image, base.join("image"))] {
        let rules = Rules {
            conflict: side,
            keep: overlay_init::boot::upper::keep_list(&[], "/etc/overlay-init.keep", &upper),
            ..Rules::default()
        };
        let trees = Trees { old: &old, new: &new, upper: &upper };
        let (outcome, _) =
            walk::reconcile(&trees, &rules, &staging.join("upper"), &staging.join("conflicts"), None).unwrap();
        // The boot lists one entry of the report; the upper it builds is the same.
        let bounded = base.join(format!("bounded-{side:?}"));
        let (small, _) =
            walk::reconcile(&trees, &rules, &bounded.join("upper"), &bounded.join("conflicts"), Some(1)).unwrap();
        assert_eq!(listing(&bounded), listing(&staging), "a bounded report changed the upper built");
        assert_eq!((small.entries.len(), small.summary()), (1, outcome.summary()));
        assert_eq!(walk::plan(&trees, &rules).unwrap().entries, outcome.entries, "the dry run differs");
        let (n, s) = (new.clone(), staging.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        in_private_namespace(move || {
            let merged = s.join("merged");
            std::fs::create_dir_all(s.join("work")).unwrap();
            std::fs::create_dir_all(&merged).unwrap();
            let opts = format!(
                "lowerdir={},upperdir={},workdir={}",
                n.display(),
                s.join("upper").display(),
                s.join("work").display()
            );
            mount::mount_fs("overlay", merged.to_str().unwrap(), "overlay", &opts).unwrap();
            let view: Vec<(String, String)> = [
                "etc/same.conf",
                "etc/touched.conf",
                "etc/chmodded-back.conf",
                "etc/edited.conf",
                "etc/removed.conf",
                "etc/deleted.conf",
                "etc/ssh/ssh_host_key",
                "etc/app/mine",
                "etc/app/added",
                "etc/app/both",
                "etc/app/old-only",
                "etc/collide.conf",
                "etc/ghost",
                "usr/lib/libx.so",
                "etc/tree",
                "var/lib/app/db",
            ]
            .iter()
            .map(|p| (p.to_string(), read(&merged, p)))
            .collect();
            let link = std::fs::read_link(merged.join("etc/link")).unwrap();
            let mode = std::fs::metadata(merged.join("etc/modes.conf")).unwrap().permissions().mode() & 0o777;
            // Detached, not unmounted: a process another test forks at this moment holds a copy
            // of every descriptor until its exec, which can make a plain unmount EBUSY.
            mount::unmount_detach(merged.to_str().unwrap()).unwrap();
            tx.send((view, link, mode)).unwrap();
        });
        let (view, link, mode) = rx.recv().unwrap();
        let get = |p: &str| view.iter().find(|(k, _)| k == p).map(|(_, v)| v.clone()).unwrap();
        let user = side == Side::User;
        assert_eq!(get("etc/same.conf"), "same\nuser\n", "a change over an unchanged file is kept");
        assert_eq!(get("etc/touched.conf"), "same\n");
        assert_eq!(get("etc/chmodded-back.conf"), "b\n", "a stale copy-up hid the new image's file");
        assert_eq!(get("etc/edited.conf"), if user { "user\n" } else { "b\n" });
        assert_eq!(get("etc/removed.conf").starts_with('<'), !user);
        assert_eq!(get("usr/lib/libx.so"), if user { "patched\n" } else { "lib b\n" });
        assert_eq!(get("etc/collide.conf"), if user { "user\n" } else { "image\n" });
        assert!(get("etc/deleted.conf").starts_with('<'), "the user's deletion came back");
        assert_eq!(get("etc/ssh/ssh_host_key"), "mine\n", "the keep-list always wins");
        assert_eq!(get("etc/app/mine"), "mine\n");
        assert_eq!(get("etc/app/added"), "new\n", "an opaque directory hid the new image's file");
        assert!(get("etc/app/both").starts_with('<'), "a file the user deleted came back");
        assert!(get("etc/app/old-only").starts_with('<'));
        assert_eq!(get("etc/ghost"), "the new image ships it\n", "a stale whiteout hid a new file");
        assert_eq!(get("etc/tree"), "now-a-file\n", "a type change lost the user's file");
        assert_eq!(get("var/lib/app/db"), "data\n");
        assert_eq!(link, Path::new("target-2"));
        assert_eq!(mode, 0o600);
        let saved = staging.join("conflicts");
        if user {
            assert!(!saved.exists() || std::fs::read_dir(&saved).unwrap().next().is_none());
        } else {
            assert_eq!(read(&saved, "etc/edited.conf"), "user\n", "the user's version was not saved");
            assert_eq!(read(&saved, "usr/lib/libx.so"), "patched\n");
        }
    }
    std::fs::remove_dir_all(&base).unwrap();
}

/// A name that is not UTF-8 and a path deeper than PATH_MAX beside ordinary files: the first is
/// carried byte for byte, the second is reported as skipped, and the rest is carried. Before,
/// either one failed the whole reconciliation and the boot carried only the keep-list.
#[test]
fn odd_paths_are_carried_or_reported_never_a_reason_to_drop_the_rest() {
    use std::os::unix::ffi::OsStrExt;
    let base = std::env::temp_dir().join(format!("oi-rc-odd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (old, new, upper, to) = (base.join("old"), base.join("new"), base.join("upper"), base.join("to"));
    for d in [&old, &new, &upper.join("etc")] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(upper.join("etc/hostname"), "router-7\n").unwrap();
    let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9.conf");
    std::fs::write(upper.join("etc").join(latin1), "mine").unwrap();
    // 20 levels of 250-byte names: 5 KB, more than PATH_MAX, made through directory fds.
    let mut dir =
        rustix::fs::open(&upper, rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::RDONLY, rustix::fs::Mode::empty())
            .unwrap();
    let long = "d".repeat(250);
    for _ in 0..20 {
        rustix::fs::mkdirat(&dir, long.as_str(), rustix::fs::Mode::from_raw_mode(0o755)).unwrap();
        dir = rustix::fs::openat(
            &dir,
            long.as_str(),
            rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::RDONLY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
    }
    rustix::fs::mkdirat(&dir, "leaf", rustix::fs::Mode::from_raw_mode(0o755)).unwrap();
    let trees = Trees { old: &old, new: &new, upper: &upper };
    let (outcome, _) = walk::reconcile(&trees, &Rules::default(), &to, &base.join("conflicts"), None).unwrap();
    assert_eq!(std::fs::read_to_string(to.join("etc/hostname")).unwrap(), "router-7\n");
    assert_eq!(
        std::fs::read_to_string(to.join("etc").join(latin1)).unwrap(),
        "mine",
        "the non-UTF-8 name was not carried"
    );
    assert!(!outcome.skipped.is_empty(), "the over-long path was not reported");
    assert!(outcome.skipped.iter().all(|k| k.path.starts_with("/dddd")), "{:?}", outcome.skipped);
    assert!(outcome.to_json(&[]).contains("\"skipped\": [\n    {\"path\": \"/dddd"));
    // Removing a tree deeper than PATH_MAX needs the careful (fd-relative) removal.
    let top =
        rustix::fs::open(&base, rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::RDONLY, rustix::fs::Mode::empty())
            .unwrap();
    overlay_init::fs::careful::remove_contents(top).unwrap();
    std::fs::remove_dir(&base).unwrap();
}

/// Every path under `dir` with its kind, mode, owner and content or link target, sorted.
fn listing(dir: &std::path::Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = p.symlink_metadata().unwrap();
            let what = if m.is_dir() {
                todo.push(p.clone());
                String::new()
            } else if m.file_type().is_symlink() {
                std::fs::read_link(&p).unwrap().display().to_string()
            } else if m.is_file() {
                String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned()
            } else {
                format!("rdev {}", m.rdev())
            };
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            out.push(format!("{rel} {:o} {}:{} {what}", m.mode(), m.uid(), m.gid()));
        }
    }
    out.sort();
    out
}
