//! std's `fs` over rustix: each call is the one syscall std makes for it, relative to the
//! working directory.

use super::io::{self, Read, Seek, SeekFrom, Write};
use super::path::{Path, PathBuf};
use crate::rt::prelude::*;
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, CWD};

/// What std's `Path` asks of the filesystem: here, so that `path` stays free of syscalls.
impl Path {
    pub fn exists(&self) -> bool {
        metadata(self).is_ok()
    }

    pub fn is_dir(&self) -> bool {
        metadata(self).is_ok_and(|m| m.is_dir())
    }

    pub fn is_file(&self) -> bool {
        metadata(self).is_ok_and(|m| m.is_file())
    }

    pub fn is_symlink(&self) -> bool {
        symlink_metadata(self).is_ok_and(|m| m.file_type().is_symlink())
    }

    pub fn metadata(&self) -> io::Result<Metadata> {
        metadata(self)
    }

    pub fn symlink_metadata(&self) -> io::Result<Metadata> {
        symlink_metadata(self)
    }

    pub fn read_dir(&self) -> io::Result<ReadDir> {
        read_dir(self)
    }

    pub fn read_link(&self) -> io::Result<PathBuf> {
        read_link(self)
    }
}

fn at(p: &Path) -> &[u8] {
    p.as_os_str().bytes()
}

pub fn read<P: AsRef<Path>>(path: P) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    File::open(path)?.read_to_end(&mut out)?;
    Ok(out)
}

pub fn read_to_string<P: AsRef<Path>>(path: P) -> io::Result<String> {
    let mut out = String::new();
    File::open(path)?.read_to_string(&mut out)?;
    Ok(out)
}

pub fn write<P: AsRef<Path>, C: AsRef<[u8]>>(path: P, contents: C) -> io::Result<()> {
    File::create(path)?.write_all(contents.as_ref())
}

pub fn remove_file<P: AsRef<Path>>(path: P) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(CWD, at(path.as_ref()), AtFlags::empty())?)
}

pub fn rename<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<()> {
    Ok(rustix::fs::renameat(CWD, at(from.as_ref()), CWD, at(to.as_ref()))?)
}

pub fn read_link<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    let target = rustix::fs::readlinkat(CWD, at(path.as_ref()), Vec::new())?;
    Ok(PathBuf::from(super::ffi::OsString::from_vec(target.into_bytes())))
}

pub fn metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    Ok(Metadata(rustix::fs::statat(CWD, at(path.as_ref()), AtFlags::empty())?))
}

pub fn symlink_metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    Ok(Metadata(rustix::fs::statat(CWD, at(path.as_ref()), AtFlags::SYMLINK_NOFOLLOW)?))
}

pub fn set_permissions<P: AsRef<Path>>(path: P, perm: Permissions) -> io::Result<()> {
    Ok(rustix::fs::chmodat(CWD, at(path.as_ref()), Mode::from_raw_mode(perm.0), AtFlags::empty())?)
}

pub fn read_dir<P: AsRef<Path>>(path: P) -> io::Result<ReadDir> {
    let root = path.as_ref().to_path_buf();
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(CWD, at(&root), flags, Mode::empty())?;
    Ok(ReadDir { dir: rustix::fs::Dir::new(fd)?, root })
}

pub struct ReadDir {
    dir: rustix::fs::Dir,
    root: PathBuf,
}

impl Iterator for ReadDir {
    type Item = io::Result<DirEntry>;
    fn next(&mut self) -> Option<io::Result<DirEntry>> {
        loop {
            let e = match self.dir.read()? {
                Ok(e) => e,
                Err(e) => return Some(Err(e.into())),
            };
            let name = e.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            return Some(Ok(DirEntry { path: self.root.join(super::ffi::OsStr::from_raw(name)), kind: e.file_type() }));
        }
    }
}

pub struct DirEntry {
    path: PathBuf,
    kind: rustix::fs::FileType,
}

impl DirEntry {
    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }

    pub fn file_name(&self) -> super::ffi::OsString {
        self.path.file_name().map(|n| n.to_os_string()).unwrap_or_default()
    }

    pub fn file_type(&self) -> io::Result<FileType> {
        match self.kind {
            rustix::fs::FileType::Unknown => Ok(symlink_metadata(&self.path)?.file_type()),
            k => Ok(FileType(k)),
        }
    }

    pub fn metadata(&self) -> io::Result<Metadata> {
        symlink_metadata(&self.path)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileType(pub(crate) rustix::fs::FileType);

impl FileType {
    pub fn is_dir(&self) -> bool {
        self.0 == rustix::fs::FileType::Directory
    }

    pub fn is_file(&self) -> bool {
        self.0 == rustix::fs::FileType::RegularFile
    }

    pub fn is_symlink(&self) -> bool {
        self.0 == rustix::fs::FileType::Symlink
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permissions(pub(crate) u32);

#[derive(Clone)]
pub struct Metadata(pub(crate) rustix::fs::Stat);

impl Metadata {
    pub fn file_type(&self) -> FileType {
        FileType(rustix::fs::FileType::from_raw_mode(self.0.st_mode))
    }

    pub fn is_dir(&self) -> bool {
        self.file_type().is_dir()
    }

    pub fn is_file(&self) -> bool {
        self.file_type().is_file()
    }

    pub fn is_symlink(&self) -> bool {
        self.file_type().is_symlink()
    }

    #[allow(clippy::len_without_is_empty)] // std's API
    pub fn len(&self) -> u64 {
        self.0.st_size as u64
    }

    pub fn permissions(&self) -> Permissions {
        Permissions(self.0.st_mode & 0o7777)
    }
}

impl core::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Metadata {{ mode: {:o}, size: {} }}", self.0.st_mode, self.0.st_size)
    }
}

#[derive(Debug)]
pub struct File(OwnedFd);

impl File {
    pub fn open<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new().read(true).open(path)
    }

    pub fn create<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new().write(true).create(true).truncate(true).open(path)
    }

    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    pub fn metadata(&self) -> io::Result<Metadata> {
        Ok(Metadata(rustix::fs::fstat(&self.0)?))
    }

    pub fn sync_all(&self) -> io::Result<()> {
        Ok(rustix::fs::fsync(&self.0)?)
    }

    pub fn sync_data(&self) -> io::Result<()> {
        Ok(rustix::fs::fdatasync(&self.0)?)
    }

    pub fn set_len(&self, size: u64) -> io::Result<()> {
        Ok(rustix::fs::ftruncate(&self.0, size)?)
    }

    pub fn set_permissions(&self, perm: Permissions) -> io::Result<()> {
        Ok(rustix::fs::fchmod(&self.0, Mode::from_raw_mode(perm.0))?)
    }
}

impl Read for File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(rustix::io::read(&self.0, buf)?)
    }
}

impl Write for File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(rustix::io::write(&self.0, buf)?)
    }
}

impl Seek for File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let pos = match pos {
            SeekFrom::Start(n) => rustix::fs::SeekFrom::Start(n),
            SeekFrom::End(n) => rustix::fs::SeekFrom::End(n),
        };
        Ok(rustix::fs::seek(&self.0, pos)?)
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> rustix::fd::RawFd {
        self.0.as_raw_fd()
    }
}

impl From<OwnedFd> for File {
    fn from(fd: OwnedFd) -> File {
        File(fd)
    }
}

impl From<File> for OwnedFd {
    fn from(f: File) -> OwnedFd {
        f.0
    }
}

#[derive(Clone, Debug)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    mode: u32,
}

impl OpenOptions {
    pub fn new() -> OpenOptions {
        OpenOptions { read: false, write: false, truncate: false, create: false, create_new: false, mode: 0o666 }
    }

    pub fn read(&mut self, v: bool) -> &mut Self {
        self.read = v;
        self
    }

    pub fn write(&mut self, v: bool) -> &mut Self {
        self.write = v;
        self
    }

    pub fn truncate(&mut self, v: bool) -> &mut Self {
        self.truncate = v;
        self
    }

    pub fn create(&mut self, v: bool) -> &mut Self {
        self.create = v;
        self
    }

    pub fn create_new(&mut self, v: bool) -> &mut Self {
        self.create_new = v;
        self
    }

    pub(crate) fn set_mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    pub fn open<P: AsRef<Path>>(&self, path: P) -> io::Result<File> {
        let mut flags = OFlags::CLOEXEC;
        flags |= match (self.read, self.write) {
            (true, true) => OFlags::RDWR,
            (false, true) => OFlags::WRONLY,
            _ => OFlags::RDONLY,
        };
        if self.truncate {
            flags |= OFlags::TRUNC;
        }
        if self.create_new {
            flags |= OFlags::CREATE | OFlags::EXCL;
        } else if self.create {
            flags |= OFlags::CREATE;
        }
        let fd = rustix::fs::openat(CWD, at(path.as_ref()), flags, Mode::from_raw_mode(self.mode))?;
        Ok(File(fd))
    }
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

#[cfg(test)]
mod tests {
    use super::super::io::{Read, Seek, SeekFrom, Write};
    use super::super::os::unix::fs::{MetadataExt, PermissionsExt};
    use super::{File, OpenOptions, Path, Permissions};

    fn scratch(name: &str) -> String {
        let d = std::env::temp_dir().join(format!("oi-rt-fs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d.to_string_lossy().into_owned()
    }

    #[test]
    fn a_tree_is_listed_and_read_as_std_lists_and_reads_it() {
        let d = scratch("tree");
        std::fs::create_dir_all(format!("{d}/a/b/c")).unwrap();
        super::write(format!("{d}/a/f"), "one").unwrap();
        std::os::unix::fs::symlink("/nowhere", format!("{d}/a/b/link")).unwrap();
        let mut names: Vec<(String, bool, bool)> = super::read_dir(format!("{d}/a/b"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let t = e.file_type().unwrap();
                (e.file_name().to_string_lossy().into_owned(), t.is_dir(), t.is_symlink())
            })
            .collect();
        names.sort();
        assert_eq!(names, [("c".into(), true, false), ("link".into(), false, true)]);
        assert_eq!(super::read_to_string(format!("{d}/a/f")).unwrap(), "one");
        assert_eq!(super::read_link(format!("{d}/a/b/link")).unwrap().to_string_lossy(), "/nowhere");
        assert!(Path::new(&format!("{d}/a/b/link")).is_symlink());
        assert!(!Path::new(&format!("{d}/a/b/link")).exists());
        assert!(Path::new(&format!("{d}/a/b/c")).is_dir());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn files_open_as_std_opens_them() {
        let d = scratch("open");
        std::fs::create_dir_all(&d).unwrap();
        let p = format!("{d}/f");
        let mut f = OpenOptions::new().write(true).create_new(true).open(&p).unwrap();
        f.write_all(b"hello world").unwrap();
        let e = OpenOptions::new().write(true).create_new(true).open(&p).unwrap_err();
        assert_eq!(e.to_string(), std::io::Error::from_raw_os_error(17).to_string());
        assert_eq!(e.kind(), super::super::io::ErrorKind::AlreadyExists);
        let mut f = File::options().read(true).write(true).open(&p).unwrap();
        f.seek(SeekFrom::Start(6)).unwrap();
        let mut rest = String::new();
        f.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "world");
        f.set_len(5).unwrap();
        super::set_permissions(&p, Permissions::from_mode(0o640)).unwrap();
        let m = super::metadata(&p).unwrap();
        assert_eq!((m.len(), m.mode() & 0o7777, m.is_file()), (5, 0o640, true));
        let missing = super::read(format!("{d}/missing")).unwrap_err();
        assert_eq!(missing.to_string(), "No such file or directory (os error 2)");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
