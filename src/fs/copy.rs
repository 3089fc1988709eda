//! Copies that keep everything a file is: content, owner, mode (setuid included), extended
//! attributes (overlayfs markers, capabilities, labels), times; symlinks as links and overlayfs
//! whiteouts as whiteouts. Used to carry entries from one upper into another; `file` alone also
//! for the boot's single-file copies (the shutdown binary, the verity key, the state record).

use crate::rt::io;
use crate::rt::os::unix::ffi::OsStrExt;
use crate::rt::os::unix::fs::{MetadataExt, PermissionsExt};
use crate::rt::path::Path;
use crate::rt::prelude::*;
use crate::rt::Why;
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

/// Makes an overlayfs whiteout (character device 0:0) at `p`.
pub fn whiteout(p: &Path) -> io::Result<()> {
    rustix::fs::mknodat(rustix::fs::CWD, p, FileType::CharacterDevice, Mode::empty(), 0)?;
    Ok(())
}

/// Copies a regular file's content to `dst` (created, or truncated) and gives `dst` the source's
/// permission bits, as `std::fs::copy` does. The content moves in the kernel by `sendfile` (every
/// filesystem the init copies between has it: tmpfs, ext4, UBIFS, jffs2, overlayfs), with a read
/// and write loop for one that has not. Returns the bytes copied.
pub fn file(src: impl AsRef<Path>, dst: impl AsRef<Path>) -> io::Result<u64> {
    let from = rustix::fs::open(src.as_ref(), OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let st = rustix::fs::fstat(&from)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
    let to = rustix::fs::open(dst.as_ref(), OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC, mode)?;
    // An existing file keeps its mode through O_CREAT, and the umask trims a new one's.
    rustix::fs::fchmod(&to, mode)?;
    let mut done = 0u64;
    loop {
        let n = match rustix::fs::sendfile(&to, &from, None, 1 << 30) {
            Err(Errno::INVAL | Errno::NOSYS) if done == 0 => return read_write(&from, &to),
            Err(Errno::INTR) => continue,
            other => other?,
        };
        if n == 0 {
            return Ok(done);
        }
        done += n as u64;
    }
}

/// The copy of a file whose filesystem cannot `sendfile`.
fn read_write(from: &rustix::fd::OwnedFd, to: &rustix::fd::OwnedFd) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = 0u64;
    loop {
        let n = match rustix::io::read(from, &mut buf[..]) {
            Err(Errno::INTR) => continue,
            other => other?,
        };
        if n == 0 {
            return Ok(done);
        }
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            match rustix::io::write(to, rest) {
                Ok(w) => rest = &rest[w..],
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        done += n as u64;
    }
}

/// Copies files, directories, symlinks (as links) and overlay whiteouts with their metadata;
/// iterative. Directory times are set last, once nothing more is created in them.
pub fn copy_tree(src: &Path, dst: &Path) -> io::Result<usize> {
    let mut n = 0;
    let mut dirs = Vec::new();
    let mut stack = vec![(src.to_path_buf(), dst.to_path_buf())];
    while let Some((s, d)) = stack.pop() {
        let m = s.symlink_metadata()?;
        let ft = m.file_type();
        if ft.is_symlink() {
            crate::rt::os::unix::fs::symlink(crate::rt::fs::read_link(&s)?, &d)?;
        } else if ft.is_dir() {
            crate::fs::mkdir::mkdir_all(&d)?;
            for e in crate::rt::fs::read_dir(&s)? {
                let e = e?;
                stack.push((e.path(), d.join(e.file_name())));
            }
        } else if ft.is_file() {
            file(&s, &d)?;
        } else if m.rdev() == 0 && m.mode() & 0o170000 == 0o020000 {
            // An overlay whiteout (char device 0:0): the kept path was deleted on purpose.
            whiteout(&d)?;
        } else {
            continue;
        }
        copy_metadata(&s, &d, &m)?;
        if ft.is_dir() {
            dirs.push((d, m));
        }
        n += 1;
    }
    for (d, m) in dirs.iter().rev() {
        set_times(d, m)?;
    }
    Ok(n)
}

/// Makes the directories leading to `rel` under `dst_root` that are missing, each with the owner,
/// mode and extended attributes of the same directory under `src_root` (where a kept path's
/// parents are: overlayfs copies a parent up with its lower's metadata). A kept `/root/.ssh`
/// must not leave `/root` world-readable, nor `/home/alice/.ssh` alice's home root's. Their
/// times are the carry's own (what is put into them next changes them anyway). Existing
/// directories are left as they are; without a source directory the default is used.
pub fn make_parents_like(src_root: &Path, dst_root: &Path, rel: &Path) -> io::Result<()> {
    // The fresh upper itself, as before (0755: the merged root's `/` inherits its mode).
    crate::fs::mkdir::mkdir_all(dst_root)?;
    let (mut s, mut d) = (src_root.to_path_buf(), dst_root.to_path_buf());
    for c in rel.parent().into_iter().flat_map(Path::components) {
        s.push(c);
        d.push(c);
        if d.symlink_metadata().is_ok() {
            continue;
        }
        crate::fs::mkdir::mkdir_one(&d)?;
        if let Some(m) = s.symlink_metadata().ok().filter(|m| m.is_dir()) {
            copy_metadata(&s, &d, &m)?;
        }
    }
    Ok(())
}

/// Owner, then mode, then extended attributes, then times, in that order: `chown` clears the
/// setuid/setgid bits and file capabilities, so mode and xattrs must come after it. The xattrs
/// carry overlay's own markers (`trusted.overlay.opaque`), file capabilities
/// (`security.capability`), SELinux/SMACK labels and ACLs. Symlinks get owner, xattrs and times
/// (a link has no mode of its own).
pub fn copy_metadata(s: &Path, d: &Path, m: &crate::rt::fs::Metadata) -> io::Result<()> {
    if let Err(e) = crate::rt::os::unix::fs::lchown(d, Some(m.uid()), Some(m.gid())) {
        log::warn!("carry: cannot give {} its owner {}:{}: {e}", d.display(), m.uid(), m.gid());
    }
    if !m.file_type().is_symlink() {
        crate::rt::fs::set_permissions(d, crate::rt::fs::Permissions::from_mode(m.mode() & 0o7777))?;
    }
    copy_xattrs(s, d)?;
    if !m.file_type().is_dir() {
        set_times(d, m)?;
    }
    Ok(())
}

fn copy_xattrs(s: &Path, d: &Path) -> io::Result<()> {
    // The kernel's limits for a name list and one value (XATTR_LIST_MAX, XATTR_SIZE_MAX).
    let mut names = vec![0u8; 64 * 1024];
    let len = match rustix::fs::llistxattr(s, &mut names[..]) {
        Ok(len) => len,
        Err(Errno::NOTSUP) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut value = vec![0u8; 64 * 1024];
    for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = crate::rt::ffi::OsStr::from_bytes(name);
        let n = rustix::fs::lgetxattr(s, name, &mut value[..])?;
        if let Err(e) = rustix::fs::lsetxattr(d, name, &value[..n], rustix::fs::XattrFlags::empty()) {
            log::warn!("carry: cannot set {name:?} on {}: {e}", d.display(), e = Why(e));
        }
    }
    Ok(())
}

pub fn set_times(d: &Path, m: &crate::rt::fs::Metadata) -> io::Result<()> {
    let ts = |sec: i64, nsec: i64| rustix::fs::Timespec { tv_sec: sec, tv_nsec: nsec as _ };
    let times = rustix::fs::Timestamps {
        last_access: ts(m.atime(), m.atime_nsec()),
        last_modification: ts(m.mtime(), m.mtime_nsec()),
    };
    rustix::fs::utimensat(rustix::fs::CWD, d, &times, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("oi-copy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn file_copies_content_and_mode_over_a_longer_file() {
        let d = dir("file");
        let (src, dst) = (d.join("src"), d.join("dst"));
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &content).unwrap();
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o4750)).unwrap();
        std::fs::write(&dst, vec![7u8; 300_000]).unwrap();
        assert_eq!(file(&src, &dst).unwrap(), content.len() as u64);
        assert_eq!(std::fs::read(&dst).unwrap(), content);
        assert_eq!(std::fs::metadata(&dst).unwrap().mode() & 0o7777, 0o4750);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn file_refuses_a_directory_and_a_missing_source() {
        let d = dir("refuse");
        assert_eq!(file(&d, d.join("x")).unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
        assert_eq!(file(d.join("none"), d.join("y")).unwrap_err().kind(), std::io::ErrorKind::NotFound);
        assert!(!d.join("x").exists() && !d.join("y").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn read_write_copies_what_sendfile_would() {
        let d = dir("rw");
        let content: Vec<u8> = (0..150_000u32).map(|i| (i % 239) as u8).collect();
        std::fs::write(d.join("src"), &content).unwrap();
        let from = rustix::fs::open(d.join("src"), OFlags::RDONLY, Mode::empty()).unwrap();
        let to = rustix::fs::open(d.join("dst"), OFlags::WRONLY | OFlags::CREATE, Mode::from_raw_mode(0o600)).unwrap();
        assert_eq!(read_write(&from, &to).unwrap(), content.len() as u64);
        assert_eq!(std::fs::read(d.join("dst")).unwrap(), content);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
