//! Careful deletion through directory fds: never follows a symlink, never enters another
//! filesystem, iterative (no recursion depth limit on a deep tree).

use crate::rt::ffi::CString;
use crate::rt::io;
use crate::rt::path::Path;
use crate::rt::prelude::*;
use crate::rt::Why;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{fstat, openat, statat, unlinkat, AtFlags, Dir, FileType, Mode, OFlags, CWD};
use rustix::io::Errno;

/// Opens a file found on the data partition (or any place a user can write) the way PID 1 may:
/// never through a symlink in the last component, never blocking on a FIFO, and only a regular
/// file (a device node or socket is refused with `EINVAL`).
pub fn open_regular(path: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
    let fd = openat(
        CWD,
        path,
        flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if FileType::from_raw_mode(fstat(&fd)?.st_mode) != FileType::RegularFile {
        return Err(Errno::INVAL);
    }
    Ok(fd)
}

/// Reads at most `max` bytes of a regular file opened by `open_regular`; a longer file is
/// refused with `EFBIG` rather than read in part (a truncated keep-list would drop paths).
pub fn read_regular(path: &Path, max: usize) -> Result<Vec<u8>, Errno> {
    let fd = open_regular(path, OFlags::RDONLY)?;
    let mut buf = vec![0u8; max.saturating_add(1)];
    let mut len = 0;
    while len < buf.len() {
        match rustix::io::read(&fd, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    if len > max {
        return Err(Errno::FBIG);
    }
    buf.truncate(len);
    Ok(buf)
}

struct Frame {
    fd: OwnedFd,
    name: Option<CString>,
    subdirs: Vec<CString>,
}

/// What a deletion did: entries removed, and entries it could not remove and left in place
/// (an immutable file, an I/O error), each logged with its name.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub removed: u64,
    pub skipped: u64,
}

/// Opens a directory below `parent` without following a symlink in the last component.
pub fn open_dir_at(parent: impl AsFd, name: &crate::rt::ffi::CStr) -> Result<OwnedFd, Errno> {
    openat(parent, name, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
}

/// Opens the directory `path` one component at a time, none of them through a symlink: a
/// directory on the data partition replaced by a link (`work -> ../../victim`) is refused with
/// `ELOOP`/`ENOTDIR` instead of leading a deletion elsewhere.
pub fn open_dir_nofollow(path: &Path) -> Result<OwnedFd, Errno> {
    let start = if path.is_absolute() { "/" } else { "." };
    let mut fd = openat(CWD, start, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    for c in path.components() {
        if let crate::rt::path::Component::Normal(name) = c {
            let name = CString::new(name.as_encoded_bytes()).map_err(|_| Errno::INVAL)?;
            fd = open_dir_at(&fd, &name)?;
        } else if c == crate::rt::path::Component::ParentDir {
            return Err(Errno::INVAL);
        }
    }
    Ok(fd)
}

/// Unlinks the non-directories of `fd` and lists its subdirectories on device `dev`. An entry
/// that cannot be removed is logged and left; the walk goes on.
fn scan(fd: OwnedFd, name: Option<CString>, dev: u64, done: &mut Removed) -> Frame {
    let mut subdirs = Vec::new();
    let entries = match Dir::read_from(&fd) {
        Ok(d) => d,
        Err(e) => {
            log::warn!("cannot list {name:?} for deletion: {e}; left in place", e = Why(e));
            done.skipped += 1;
            return Frame { fd, name, subdirs };
        }
    };
    for entry in entries {
        let Ok(entry) = entry else {
            done.skipped += 1;
            break;
        };
        let n = entry.file_name();
        if n.to_bytes() == b"." || n.to_bytes() == b".." {
            continue;
        }
        let result = statat(&fd, n, AtFlags::SYMLINK_NOFOLLOW).and_then(|st| {
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                return unlinkat(&fd, n, AtFlags::empty()).map(|()| done.removed += 1);
            }
            // A directory on another device is a mount point: leave it and what is under it.
            if st.st_dev == dev {
                subdirs.push(n.to_owned());
            }
            Ok(())
        });
        if let Err(e) = result {
            log::warn!("cannot delete {n:?}: {e}; left in place", e = Why(e));
            done.skipped += 1;
        }
    }
    Frame { fd, name, subdirs }
}

/// Removes everything inside the directory `root` that is on the same filesystem as `root`,
/// never following a symlink. Entries that cannot be removed are skipped (and counted); only a
/// root that cannot be examined is an error.
pub fn remove_contents(root: OwnedFd) -> Result<Removed, Errno> {
    let dev = fstat(&root)?.st_dev;
    let mut done = Removed::default();
    let mut stack = vec![scan(root, None, dev, &mut done)];
    while let Some(top) = stack.last_mut() {
        if let Some(name) = top.subdirs.pop() {
            match open_dir_at(&top.fd, &name) {
                Ok(fd) => {
                    let frame = scan(fd, Some(name), dev, &mut done);
                    stack.push(frame);
                }
                Err(e) => {
                    log::warn!("cannot open {name:?} for deletion: {e}; left in place", e = Why(e));
                    done.skipped += 1;
                }
            }
            continue;
        }
        let finished = stack.pop();
        if let (Some(Frame { name: Some(name), .. }), Some(parent)) = (finished, stack.last()) {
            match unlinkat(&parent.fd, &name, AtFlags::REMOVEDIR) {
                Ok(()) => done.removed += 1,
                // Still holds a mount point or a skipped entry: keep the directory.
                Err(Errno::NOTEMPTY | Errno::BUSY) => {}
                Err(e) => {
                    log::warn!("cannot delete directory {name:?}: {e}; left in place", e = Why(e));
                    done.skipped += 1;
                }
            }
        }
    }
    Ok(done)
}

/// Writes `bytes` to a new file (replacing one at `path`) that only its owner can read: mode
/// 0600 from the creation on. Never through a symlink: `remove_file` removes a link itself, and
/// `create_new` (O_EXCL) refuses one that appears in between.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use crate::rt::os::unix::fs::OpenOptionsExt;
    use io::Write;
    match crate::rt::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = crate::rt::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn reads_only_small_regular_files_and_no_symlink() {
        let base = std::env::temp_dir().join(format!("oi-read-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(base.join("keep"), "/etc/x\n").unwrap();
        std::fs::write(base.join("big"), vec![b'x'; 100]).unwrap();
        symlink("/etc/passwd", base.join("link")).unwrap();
        symlink("/dev/zero", base.join("zero")).unwrap();
        rustix::fs::mknodat(CWD, base.join("fifo"), FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        assert_eq!(read_regular(&base.join("keep"), 64).unwrap(), b"/etc/x\n");
        assert_eq!(read_regular(&base.join("big"), 99), Err(Errno::FBIG));
        assert_eq!(read_regular(&base.join("big"), 100).unwrap().len(), 100);
        assert_eq!(read_regular(&base.join("link"), 64), Err(Errno::LOOP));
        assert_eq!(read_regular(&base.join("zero"), 64), Err(Errno::LOOP));
        // A FIFO with no writer: refused at once, never a hang.
        assert_eq!(read_regular(&base.join("fifo"), 64), Err(Errno::INVAL));
        assert_eq!(read_regular(Path::new("/dev/null"), 64), Err(Errno::INVAL));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_directory_replaced_by_a_symlink_is_refused() {
        let base = std::env::temp_dir().join(format!("oi-nofollow-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("victim")).unwrap();
        std::fs::create_dir_all(base.join("overlay/a")).unwrap();
        std::fs::write(base.join("victim/state"), "x").unwrap();
        // overlay/a/work -> ../../victim, overlay/.trash -> ../victim
        symlink("../../victim", base.join("overlay/a/work")).unwrap();
        symlink("../victim", base.join("overlay/.trash")).unwrap();
        for p in ["overlay/a/work", "overlay/.trash"] {
            assert!(open_dir_nofollow(&base.join(p)).is_err(), "{p} was followed");
        }
        assert!(base.join("victim/state").exists());
        assert!(open_dir_nofollow(&base.join("overlay/a")).is_ok());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn an_entry_that_cannot_be_deleted_does_not_stop_the_walk() {
        let base = std::env::temp_dir().join(format!("oi-skip-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("a/locked")).unwrap();
        std::fs::create_dir_all(base.join("b")).unwrap();
        std::fs::write(base.join("a/locked/stuck"), "x").unwrap();
        std::fs::write(base.join("b/file"), "x").unwrap();
        // As root, an immutable file (chattr +i) cannot be unlinked; without root, a directory we
        // cannot write does the same.
        let locked = base.join("a/locked");
        let is_root = rustix::process::geteuid().is_root();
        if is_root {
            let st = std::process::Command::new("chattr").arg("+i").arg(locked.join("stuck")).status();
            assert!(st.is_ok_and(|s| s.success()), "chattr +i failed (e2fsprogs, a filesystem with attributes)");
        } else {
            rustix::fs::chmod(&locked, Mode::from_raw_mode(0o500)).unwrap();
        }
        let fd = open_dir_nofollow(&base).unwrap();
        let done = remove_contents(fd).unwrap();
        if is_root {
            let _ = std::process::Command::new("chattr").arg("-i").arg(locked.join("stuck")).status();
        } else {
            rustix::fs::chmod(&locked, Mode::from_raw_mode(0o700)).unwrap();
        }
        assert!(!base.join("b").exists(), "the walk stopped at the first error");
        assert!(done.skipped >= 1, "{done:?}");
        assert!(base.join("a/locked/stuck").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn removes_tree_but_not_symlink_targets() {
        let base = std::env::temp_dir().join(format!("oi-fsutil-{}", std::process::id()));
        let victim = base.join("victim");
        let outside = base.join("outside");
        std::fs::create_dir_all(victim.join("a/b/c")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        std::fs::write(victim.join("a/b/c/file"), "x").unwrap();
        std::fs::write(victim.join("top"), "x").unwrap();
        symlink(&outside, victim.join("a/link-to-outside")).unwrap();
        let fd =
            rustix::fs::open(&victim, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let n = remove_contents(fd).unwrap();
        assert_eq!(n, Removed { removed: 6, skipped: 0 }); // top, file, link, c, b, a
        assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0);
        assert!(outside.join("keep").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn private_files_are_0600_and_replace_what_was_there() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("oi-private-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("reconcile.json");
        std::fs::write(&path, "old, world-readable").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"{}").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.permissions().mode() & 0o777, std::fs::read(&path).unwrap()), (0o600, b"{}".to_vec()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
