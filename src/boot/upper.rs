//! Fresh uppers without losing what must be kept: an old upper is renamed aside atomically (a
//! power cut leaves it whole or gone from its place, never half-deleted in use), the keep-list is
//! copied into the new upper without following any symlink, and the old one is deleted off the
//! boot path.

use crate::boot::error::{Error, Result};
use crate::config::ab::AbSettings;
use crate::fs::careful;
use crate::fs::copy;
use crate::rt::os::fd::{AsRawFd, RawFd};
use crate::rt::path::{Path, PathBuf};
use crate::rt::prelude::*;
use crate::rt::Why;
use rustix::fs::{fsync, open, Mode, OFlags};
use rustix::io::Errno;

/// Where uppers wait to be deleted, under `oinit.dir`.
pub const TRASH: &str = ".trash";

/// fsync of a directory: the renames in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let fd = open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::sys("open", dir.display().to_string(), e, "check the data partition"))?;
    fsync(&fd).map_err(|e| Error::sys("fsync", dir.display().to_string(), e, "check the data partition"))
}

/// Renames `base/slot` to `base/.trash/tag`; returns the new path, or None if there was nothing.
pub fn move_aside(base: &Path, slot: &str, tag: &str) -> Result<Option<PathBuf>> {
    let src = base.join(slot);
    if !src.exists() {
        return Ok(None);
    }
    let trash = base.join(TRASH);
    // A `.trash` that is not a directory (a symlink planted on the data partition) is removed,
    // never followed: what is moved aside must stay on the data partition.
    if trash.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
        log::warn!("{} is not a directory; removed", trash.display());
        crate::rt::fs::remove_file(&trash).map_err(|e| io("unlink", &trash, e))?;
    }
    crate::fs::mkdir::mkdir_all(&trash).map_err(|e| io("mkdir", &trash, e))?;
    let dst = trash.join(tag);
    if dst.exists() {
        // Never replace what is already in the trash: it may be the only copy of the keep-list.
        return Err(Error::sys("rename", dst.display().to_string(), Errno::EXIST, "report this with the boot log"));
    }
    rustix::fs::rename(&src, &dst)
        .map_err(|e| Error::sys("rename", src.display().to_string(), e, "check the data partition"))?;
    sync_dir(&trash)?;
    sync_dir(base)?;
    Ok(Some(dst))
}

fn io(call: &'static str, p: &Path, e: crate::rt::io::Error) -> Box<Error> {
    Error::io(call, p, &e, "check the data partition")
}

/// The largest keep file read from an upper: a user (or an attacker with the data partition)
/// controls it, and PID 1 must not be made to hold gigabytes.
pub const KEEP_FILE_MAX: usize = 64 * 1024;

/// The keep-list: the board's paths plus those in the previous upper's keep file (same format as
/// OpenWRT's `/etc/sysupgrade.conf`: one absolute path per line, `#` comments). The keep file is
/// read only if it is a regular file of at most `KEEP_FILE_MAX` bytes reached without a symlink.
pub fn keep_list(board: &[String], keep_file: &str, old_upper: &Path) -> Vec<String> {
    let mut list = board.to_vec();
    let text = match safe_path(old_upper, keep_file).map(|p| careful::read_regular(&p, KEEP_FILE_MAX)) {
        Some(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        Some(Err(Errno::NOENT)) | None => String::new(),
        Some(Err(e)) => {
            log::warn!(
                "keep file {keep_file} in {}: {e} (it must be a regular file, no symlink, at most {KEEP_FILE_MAX} bytes); ignored",
                old_upper.display(), e = Why(e)
            );
            String::new()
        }
    };
    let (paths, rejected) = parse_keep(&text);
    for n in rejected {
        log::warn!("keep file {keep_file} line {n}: not an absolute path without '..'; ignored");
    }
    // The keep file keeps itself: what the user listed stays listed after a reset or an update
    // (OpenWRT's sysupgrade keeps /etc/sysupgrade.conf too).
    if !text.is_empty() {
        list.push(keep_file.to_string());
    }
    list.extend(paths);
    crate::util::sort::sort(&mut list);
    list.dedup();
    list
}

/// What a factory reset carries from an old upper: the board's paths, and the keep file's unless
/// `oinit.resetkeepfile=0` (OpenWRT's firstboot keeps nothing of sysupgrade.conf).
pub fn reset_keep_list(ab: &AbSettings, old_upper: &Path) -> Vec<String> {
    if ab.reset_keeps_file {
        keep_list(&ab.keep, &ab.keep_file, old_upper)
    } else {
        ab.keep.clone()
    }
}

/// The paths of a keep file: one absolute path per line, `#` comments and blank lines skipped.
/// Returns them and the 1-based numbers of the lines refused (relative, or with `..`).
pub fn parse_keep(text: &str) -> (Vec<String>, Vec<usize>) {
    let (mut paths, mut rejected) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('/') && !line.split('/').any(|c| c == "..") {
            paths.push(line.to_string());
        } else {
            rejected.push(i + 1);
        }
    }
    (paths, rejected)
}

/// `root/rel` if no component of it is a symlink (checked with lstat, component by component).
pub fn safe_path(root: &Path, rel: &str) -> Option<PathBuf> {
    let mut p = root.to_path_buf();
    for c in rel.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if c == ".." {
            return None;
        }
        p.push(c);
        if p.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) && p != root.join(rel.trim_start_matches('/'))
        {
            return None;
        }
    }
    Some(p)
}

/// Copies each kept path from `from` (an old upper) into `to` (the new one). Symlinks are copied
/// as links and never followed; a path whose parents include a symlink, in either tree, is
/// skipped. Returns how many entries were copied; a path that fails is logged and skipped.
pub fn carry(keep: &[String], from: &Path, to: &Path) -> usize {
    let mut copied = 0;
    for k in keep {
        match carry_one(k, from, to) {
            Ok(n) => copied += n,
            Err(e) => log::warn!("keep-list: {k}: {e}"),
        }
    }
    copied
}

/// Copies one kept path as `carry` does; Ok(0) when it is absent or goes through a symlink.
pub fn carry_one(k: &str, from: &Path, to: &Path) -> crate::rt::io::Result<usize> {
    let rel = k.trim_start_matches('/');
    let (Some(src), Some(dst)) = (safe_path(from, rel), safe_path(to, rel)) else {
        log::warn!("keep-list: {k} goes through a symlink; not carried over");
        return Ok(0);
    };
    if src.symlink_metadata().is_err() {
        return Ok(0);
    }
    copy::make_parents_like(from, to, Path::new(rel))?;
    copy::copy_tree(&src, &dst)
}

/// Makes everything written to the data filesystem durable (`syncfs`): the carried keep-list
/// must be on disk before the state says the old upper may be deleted.
pub fn sync_data(base: &Path) {
    if let Ok(fd) = open(base, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()) {
        if let Err(e) = rustix::fs::syncfs(&fd) {
            log::warn!("syncfs {}: {e}", base.display(), e = Why(e));
        }
    }
}

/// Deletes everything in `base/.trash` in a child process that outlives the exec of the real
/// init; the boot does not wait. An interrupted deletion resumes on the next boot.
pub fn delete_trash_in_background(base: &Path) {
    let trash = base.join(TRASH);
    // Nothing to delete on most boots: no fork then.
    if crate::rt::fs::read_dir(&trash).map_or(true, |mut d| d.next().is_none()) {
        return;
    }
    // Never through a symlink: `.trash -> ../victim` on the data partition must not empty victim.
    let fd = match careful::open_dir_nofollow(&trash) {
        Ok(fd) => fd,
        Err(e) => {
            log::warn!("{}: {e}: not a directory on the data partition; nothing deleted", trash.display(), e = Why(e));
            return;
        }
    };
    // The child keeps the directory it empties and the kernel log, nothing else: a copy of the
    // state record's descriptor would hold its flock, and mark-good would wait for the deletion.
    let keep: Vec<RawFd> = [Some(fd.as_raw_fd()), crate::boot::logger::kmsg_fd()].into_iter().flatten().collect();
    let started = crate::sys::process::spawn_detached(&keep, move || {
        let t = crate::sys::clock::now_us();
        match careful::remove_contents(fd) {
            Ok(n) => log::info!(
                "old uppers deleted: {} entries in {} ms ({} left that cannot be deleted)",
                n.removed,
                (crate::sys::clock::now_us() - t) / 1000,
                n.skipped
            ),
            Err(e) => {
                log::warn!("deleting old uppers stopped ({e}); it resumes on the next boot", e = Why(e))
            }
        }
    });
    if started {
        log::info!("deleting old uppers in {} in the background", trash.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn carries_keep_list_without_following_symlinks() {
        let base = std::env::temp_dir().join(format!("oi-carry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (old, new, outside) = (base.join("old"), base.join("new"), base.join("outside"));
        for d in [old.join("etc/ssh"), new.clone(), outside.clone()] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(old.join("etc/hostname"), "router-7\n").unwrap();
        std::fs::write(old.join("etc/ssh/key"), "secret").unwrap();
        std::fs::write(old.join("etc/junk"), "not kept").unwrap();
        std::fs::write(outside.join("passwd"), "host file").unwrap();
        std::os::unix::fs::symlink(&outside, old.join("etc/evil")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", old.join("etc/link")).unwrap();
        std::fs::write(old.join("etc/overlay-init.keep"), "/etc/ssh\n# comment\n/etc/evil/passwd\n../x\n").unwrap();
        let keep = keep_list(&["/etc/hostname".into(), "/etc/link".into()], "/etc/overlay-init.keep", &old);
        assert_eq!(keep, ["/etc/evil/passwd", "/etc/hostname", "/etc/link", "/etc/overlay-init.keep", "/etc/ssh"]);
        let n = carry(&keep, &old, &new);
        assert_eq!(n, 5); // hostname, link (as a link), the keep file, ssh/, ssh/key
        assert!(new.join("etc/overlay-init.keep").is_file(), "the keep file did not keep itself");
        assert_eq!(std::fs::read_to_string(new.join("etc/hostname")).unwrap(), "router-7\n");
        assert_eq!(std::fs::read_to_string(new.join("etc/ssh/key")).unwrap(), "secret");
        assert!(std::fs::symlink_metadata(new.join("etc/link")).unwrap().file_type().is_symlink());
        assert!(!new.join("etc/junk").exists());
        assert!(!new.join("etc/evil").exists(), "followed a symlink out of the upper");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn carry_keeps_setuid_owner_xattrs_and_times() {
        let base = std::env::temp_dir().join(format!("oi-carry-meta-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (old, new) = (base.join("old"), base.join("new"));
        std::fs::create_dir_all(old.join("opt/app/opaque")).unwrap();
        std::fs::create_dir_all(&new).unwrap();
        let bin = old.join("opt/app/tool");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        let root = rustix::process::geteuid().is_root();
        if root {
            std::os::unix::fs::lchown(&bin, Some(1000), Some(1000)).unwrap();
            // The marker overlayfs puts on a directory that hides the lower's one.
            rustix::fs::lsetxattr(
                old.join("opt/app/opaque"),
                "trusted.overlay.opaque",
                b"y",
                rustix::fs::XattrFlags::empty(),
            )
            .unwrap();
        }
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o4755)).unwrap();
        rustix::fs::lsetxattr(&bin, "user.origin", b"factory", rustix::fs::XattrFlags::empty()).unwrap();
        let t = rustix::fs::Timespec { tv_sec: 1_600_000_000, tv_nsec: 0 };
        let times = rustix::fs::Timestamps { last_access: t, last_modification: t };
        for p in [&bin, &old.join("opt/app")] {
            rustix::fs::utimensat(rustix::fs::CWD, p.as_path(), &times, rustix::fs::AtFlags::empty()).unwrap();
        }
        assert_eq!(carry(&["/opt/app".into()], &old, &new), 3);
        let m = std::fs::metadata(new.join("opt/app/tool")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o4755, "setuid lost");
        assert_eq!(m.mtime(), 1_600_000_000);
        assert_eq!(std::fs::metadata(new.join("opt/app")).unwrap().mtime(), 1_600_000_000);
        let mut v = [0u8; 16];
        let n = rustix::fs::lgetxattr(new.join("opt/app/tool"), "user.origin", &mut v[..]).unwrap();
        assert_eq!(&v[..n], b"factory");
        if root {
            assert_eq!((m.uid(), m.gid()), (1000, 1000));
            let n = rustix::fs::lgetxattr(new.join("opt/app/opaque"), "trusted.overlay.opaque", &mut v[..]).unwrap();
            assert_eq!(&v[..n], b"y");
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn reset_keeps_the_keep_file_unless_told_not_to() {
        let upper = std::env::temp_dir().join(format!("oi-reset-keep-{}", std::process::id()));
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/sysupgrade.conf"), "/etc/config/\n").unwrap();
        let mut ab = AbSettings {
            keep: vec!["/etc/dropbear".into()],
            keep_file: "/etc/sysupgrade.conf".into(),
            ..Default::default()
        };
        assert_eq!(reset_keep_list(&ab, &upper), ["/etc/config/", "/etc/dropbear", "/etc/sysupgrade.conf"]);
        // OpenWRT's firstboot: the board's paths only; an update still reads the file.
        ab.reset_keeps_file = false;
        assert_eq!(reset_keep_list(&ab, &upper), ["/etc/dropbear"]);
        assert_eq!(keep_list(&ab.keep, &ab.keep_file, &upper).len(), 3);
        std::fs::remove_dir_all(&upper).unwrap();
    }

    #[test]
    fn keep_file_lines() {
        let (paths, rejected) = parse_keep("# c\n/etc/hostname\n\netc/relative\n/etc/../shadow\n  /var/lib/x  \n");
        assert_eq!(paths, ["/etc/hostname", "/var/lib/x"]);
        assert_eq!(rejected, [4, 5]);
    }

    #[test]
    fn move_aside_never_into_a_planted_trash_link() {
        let base = std::env::temp_dir().join(format!("oi-aside-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("victim")).unwrap();
        std::fs::create_dir_all(base.join("b/upper")).unwrap();
        std::os::unix::fs::symlink("victim", base.join(TRASH)).unwrap();
        move_aside(&base, "b", "t").unwrap();
        assert_eq!(std::fs::read_dir(base.join("victim")).unwrap().count(), 0);
        assert!(base.join(TRASH).symlink_metadata().unwrap().is_dir());
        assert!(base.join(TRASH).join("t/upper").is_dir());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn move_aside_is_a_rename() {
        let base = std::env::temp_dir().join(format!("oi-aside-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("a/upper/etc")).unwrap();
        let moved = move_aside(&base, "a", "reset-1-a").unwrap().unwrap();
        assert!(!base.join("a").exists());
        assert!(moved.join("upper/etc").is_dir());
        assert_eq!(move_aside(&base, "a", "x").unwrap(), None);
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// A kept `/root/.ssh` and `/home/alice/.ssh`: the parents made in the new upper have the
    /// old upper's mode and owner, not root:root 0755 (root's home stays private).
    #[test]
    fn kept_paths_parents_keep_their_owner_and_mode() {
        let base = std::env::temp_dir().join(format!("oi-carry-parents-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (old, new) = (base.join("old"), base.join("new"));
        for d in ["root/.ssh", "home/alice/.ssh"] {
            std::fs::create_dir_all(old.join(d)).unwrap();
            std::fs::write(old.join(d).join("authorized_keys"), "ssh-ed25519 AAAA").unwrap();
        }
        // No new upper yet, as in a factory reset: the carry makes it.
        std::fs::set_permissions(old.join("root"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(old.join("home/alice"), std::fs::Permissions::from_mode(0o750)).unwrap();
        let root = rustix::process::geteuid().is_root();
        if root {
            std::os::unix::fs::lchown(old.join("home/alice"), Some(1000), Some(1000)).unwrap();
        }
        assert_eq!(carry(&["/root/.ssh".into(), "/home/alice/.ssh".into()], &old, &new), 4);
        let m = |p: &str| std::fs::metadata(new.join(p)).unwrap();
        assert_eq!(m("root").mode() & 0o777, 0o700, "/root became readable by others");
        assert_eq!(m("home/alice").mode() & 0o777, 0o750);
        if root {
            assert_eq!((m("home/alice").uid(), m("home/alice").gid()), (1000, 1000), "alice's home became root's");
        } else {
            eprintln!("not root: owners not checked");
        }
        std::fs::remove_dir_all(&base).unwrap();
    }
}
