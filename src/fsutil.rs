//! Careful deletion through directory fds: never follows a symlink, never enters another
//! filesystem, iterative (no recursion depth limit on a deep tree).

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{fstat, openat, statat, unlinkat, AtFlags, Dir, FileType, Mode, OFlags, CWD};
use rustix::io::Errno;
use std::ffi::CString;
use std::path::Path;

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

/// Opens a directory below `parent` without following a symlink in the last component.
pub fn open_dir_at(parent: impl AsFd, name: &std::ffi::CStr) -> Result<OwnedFd, Errno> {
    openat(parent, name, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
}

/// Unlinks the non-directories of `fd` and lists its subdirectories on device `dev`.
fn scan(fd: OwnedFd, name: Option<CString>, dev: u64, removed: &mut u64) -> Result<Frame, Errno> {
    let mut subdirs = Vec::new();
    for entry in Dir::read_from(&fd)? {
        let entry = entry?;
        let n = entry.file_name();
        if n.to_bytes() == b"." || n.to_bytes() == b".." {
            continue;
        }
        let st = statat(&fd, n, AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            // A directory on another device is a mount point: leave it and what is under it.
            if st.st_dev == dev {
                subdirs.push(n.to_owned());
            }
        } else {
            unlinkat(&fd, n, AtFlags::empty())?;
            *removed += 1;
        }
    }
    Ok(Frame { fd, name, subdirs })
}

/// Removes everything inside the directory `root` that is on the same filesystem as `root`.
/// Returns how many entries were removed.
pub fn remove_contents(root: OwnedFd) -> Result<u64, Errno> {
    let dev = fstat(&root)?.st_dev;
    let mut removed = 0;
    let mut stack = vec![scan(root, None, dev, &mut removed)?];
    while let Some(top) = stack.last_mut() {
        if let Some(name) = top.subdirs.pop() {
            let fd = open_dir_at(&top.fd, &name)?;
            let frame = scan(fd, Some(name), dev, &mut removed)?;
            stack.push(frame);
            continue;
        }
        let done = stack.pop();
        if let (Some(Frame { name: Some(name), .. }), Some(parent)) = (done, stack.last()) {
            match unlinkat(&parent.fd, &name, AtFlags::REMOVEDIR) {
                // Still holds a mount point of another filesystem: keep the directory.
                Ok(()) => removed += 1,
                Err(Errno::NOTEMPTY | Errno::BUSY) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
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
        assert_eq!(n, 6); // top, file, link, c, b, a
        assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0);
        assert!(outside.join("keep").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
