//! `Path` and `PathBuf` with std's meaning on Unix: `/` separates, repeated separators and `.`
//! after the start are not components, and two paths are equal when their components are.

use super::ffi::{Display, OsStr, OsString};
use crate::rt::prelude::*;
use alloc::borrow::Cow;
use core::{borrow::Borrow, fmt, ops::Deref};

#[repr(transparent)]
pub struct Path {
    inner: OsStr,
}

#[derive(Clone, Default)]
pub struct PathBuf {
    inner: OsString,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component<'a> {
    RootDir,
    CurDir,
    ParentDir,
    Normal(&'a OsStr),
}

impl<'a> Component<'a> {
    pub fn as_os_str(self) -> &'a OsStr {
        match self {
            Component::RootDir => OsStr::new("/"),
            Component::CurDir => OsStr::new("."),
            Component::ParentDir => OsStr::new(".."),
            Component::Normal(s) => s,
        }
    }
}

/// The components of a path, front to back or back to front.
#[derive(Clone)]
pub struct Components<'a> {
    /// What is left, its root or leading `.` included while not yet taken.
    bytes: &'a [u8],
    /// `bytes` starts with the root (`/`, however many) as a component not yet taken.
    root: bool,
    /// `bytes` starts with a leading `.` as a component not yet taken.
    cur: bool,
}

impl<'a> Components<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        let root = bytes.first() == Some(&b'/');
        let cur = !root && (bytes == b"." || bytes.starts_with(b"./"));
        Components { bytes, root, cur }
    }

    fn word(w: &'a [u8]) -> Option<Component<'a>> {
        match w {
            b"" | b"." => None,
            b".." => Some(Component::ParentDir),
            _ => Some(Component::Normal(OsStr::from_raw(w))),
        }
    }

    /// Where the words start: after the root or leading `.` not yet taken.
    fn body_start(&self) -> usize {
        usize::from(self.root || self.cur)
    }

    /// What is left, as a path: without separators or `.` words at either end, as std's
    /// `Components::as_path`.
    pub fn as_path(&self) -> &'a Path {
        let min = self.body_start();
        let mut b = self.bytes;
        if !self.root && !self.cur {
            while b.first() == Some(&b'/') || b == b"." || b.starts_with(b"./") {
                b = &b[1..];
            }
        }
        // A trailing separator, or the `.` of a trailing `/.`, or a lone `.` that is not the
        // leading one.
        while (b.len() > min && b.last() == Some(&b'/'))
            || (b.ends_with(b"/.") && b.len() > min)
            || (min == 0 && b == b".")
        {
            b = &b[..b.len() - 1];
        }
        Path::from_bytes(b)
    }
}

impl<'a> Iterator for Components<'a> {
    type Item = Component<'a>;
    fn next(&mut self) -> Option<Component<'a>> {
        if self.root {
            self.root = false;
            self.bytes = &self.bytes[1..];
            return Some(Component::RootDir);
        }
        if self.cur {
            self.cur = false;
            self.bytes = &self.bytes[1..];
            return Some(Component::CurDir);
        }
        loop {
            while self.bytes.first() == Some(&b'/') {
                self.bytes = &self.bytes[1..];
            }
            if self.bytes.is_empty() {
                return None;
            }
            let end = self.bytes.iter().position(|&b| b == b'/').unwrap_or(self.bytes.len());
            let w = &self.bytes[..end];
            self.bytes = &self.bytes[end..];
            if let Some(c) = Self::word(w) {
                return Some(c);
            }
        }
    }
}

impl<'a> DoubleEndedIterator for Components<'a> {
    fn next_back(&mut self) -> Option<Component<'a>> {
        let min = self.body_start();
        loop {
            while self.bytes.len() > min && self.bytes.last() == Some(&b'/') {
                self.bytes = &self.bytes[..self.bytes.len() - 1];
            }
            if self.bytes.len() == min {
                let head = if self.root {
                    Some(Component::RootDir)
                } else if self.cur {
                    Some(Component::CurDir)
                } else {
                    None
                };
                (self.root, self.cur, self.bytes) = (false, false, &[]);
                return head;
            }
            let start = self.bytes[min..].iter().rposition(|&b| b == b'/').map_or(min, |i| min + i + 1);
            let w = &self.bytes[start..];
            self.bytes = &self.bytes[..start];
            if let Some(c) = Self::word(w) {
                return Some(c);
            }
        }
    }
}

impl Path {
    pub fn new<S: AsRef<OsStr> + ?Sized>(s: &S) -> &Path {
        Path::from_bytes(s.as_ref().bytes())
    }

    fn from_bytes(b: &[u8]) -> &Path {
        let s = OsStr::from_raw(b);
        // SAFETY: Path is a transparent wrapper of OsStr.
        #[allow(unsafe_code)]
        unsafe {
            &*(core::ptr::from_ref(s) as *const Path)
        }
    }

    pub fn as_os_str(&self) -> &OsStr {
        &self.inner
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.inner.bytes()
    }

    pub fn to_str(&self) -> Option<&str> {
        self.inner.to_str()
    }

    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        self.inner.to_string_lossy()
    }

    pub fn to_path_buf(&self) -> PathBuf {
        PathBuf { inner: self.inner.to_os_string() }
    }

    pub fn display(&self) -> Display<'_> {
        Display(self.as_bytes())
    }

    pub fn is_absolute(&self) -> bool {
        self.as_bytes().first() == Some(&b'/')
    }

    pub fn components(&self) -> Components<'_> {
        Components::new(self.as_bytes())
    }

    pub fn join<P: AsRef<Path>>(&self, p: P) -> PathBuf {
        let mut b = self.to_path_buf();
        b.push(p);
        b
    }

    pub fn parent(&self) -> Option<&Path> {
        let mut c = self.components();
        match c.next_back() {
            Some(Component::Normal(_) | Component::CurDir | Component::ParentDir) => Some(c.as_path()),
            _ => None,
        }
    }

    pub fn file_name(&self) -> Option<&OsStr> {
        match self.components().next_back() {
            Some(Component::Normal(n)) => Some(n),
            _ => None,
        }
    }

    pub fn file_stem(&self) -> Option<&OsStr> {
        let n = self.file_name()?.bytes();
        match n.iter().rposition(|&b| b == b'.') {
            Some(0) | None => Some(OsStr::from_raw(n)),
            Some(i) => Some(OsStr::from_raw(&n[..i])),
        }
    }

    pub fn with_extension<S: AsRef<OsStr>>(&self, ext: S) -> PathBuf {
        let mut b = self.to_path_buf();
        b.set_extension(ext);
        b
    }

    pub fn starts_with<P: AsRef<Path>>(&self, base: P) -> bool {
        self.strip_prefix(base).is_ok()
    }

    pub fn ends_with<P: AsRef<Path>>(&self, child: P) -> bool {
        let mut mine = self.components().rev();
        child.as_ref().components().rev().all(|c| mine.next() == Some(c))
    }

    pub fn strip_prefix<P: AsRef<Path>>(&self, base: P) -> Result<&Path, StripPrefixError> {
        let mut mine = self.components();
        for c in base.as_ref().components() {
            if mine.next() != Some(c) {
                return Err(StripPrefixError(()));
            }
        }
        Ok(mine.as_path())
    }
}

impl PathBuf {
    pub fn new() -> PathBuf {
        PathBuf::default()
    }

    pub fn as_path(&self) -> &Path {
        self
    }

    /// std's push: an absolute `p` replaces the path, anything else is appended after a `/`.
    pub fn push<P: AsRef<Path>>(&mut self, p: P) {
        let p = p.as_ref().as_bytes();
        let mut v = core::mem::take(&mut self.inner).into_vec();
        if p.first() == Some(&b'/') {
            v.clear();
        } else if !v.is_empty() && v.last() != Some(&b'/') {
            v.push(b'/');
        }
        v.extend_from_slice(p);
        self.inner = OsString::from_vec(v);
    }

    pub fn pop(&mut self) -> bool {
        match self.parent().map(|p| p.as_bytes().len()) {
            Some(n) => {
                let mut v = core::mem::take(&mut self.inner).into_vec();
                v.truncate(n);
                self.inner = OsString::from_vec(v);
                true
            }
            None => false,
        }
    }

    /// As std: the path is cut right after the file stem (a trailing separator goes with it),
    /// then `.ext` is added unless `ext` is empty.
    pub fn set_extension<S: AsRef<OsStr>>(&mut self, ext: S) -> bool {
        let Some(stem) = self.file_stem() else {
            return false;
        };
        let end = stem.bytes().as_ptr() as usize + stem.len() - self.as_bytes().as_ptr() as usize;
        let mut v = core::mem::take(&mut self.inner).into_vec();
        v.truncate(end);
        let ext = ext.as_ref().bytes();
        if !ext.is_empty() {
            v.push(b'.');
            v.extend_from_slice(ext);
        }
        self.inner = OsString::from_vec(v);
        true
    }
}

impl Deref for PathBuf {
    type Target = Path;
    fn deref(&self) -> &Path {
        Path::new(&self.inner)
    }
}

impl Borrow<Path> for PathBuf {
    fn borrow(&self) -> &Path {
        self
    }
}

impl ToOwned for Path {
    type Owned = PathBuf;
    fn to_owned(&self) -> PathBuf {
        self.to_path_buf()
    }
}

impl AsRef<Path> for Path {
    fn as_ref(&self) -> &Path {
        self
    }
}

impl AsRef<Path> for PathBuf {
    fn as_ref(&self) -> &Path {
        self
    }
}

impl AsRef<Path> for str {
    fn as_ref(&self) -> &Path {
        Path::new(self)
    }
}

impl AsRef<Path> for String {
    fn as_ref(&self) -> &Path {
        Path::new(self)
    }
}

impl AsRef<Path> for OsStr {
    fn as_ref(&self) -> &Path {
        Path::new(self)
    }
}

impl AsRef<Path> for OsString {
    fn as_ref(&self) -> &Path {
        Path::new(self)
    }
}

impl AsRef<Path> for Cow<'_, OsStr> {
    fn as_ref(&self) -> &Path {
        Path::new(&**self)
    }
}

impl AsRef<Path> for Component<'_> {
    fn as_ref(&self) -> &Path {
        Path::new(self.as_os_str())
    }
}

impl AsRef<OsStr> for Path {
    fn as_ref(&self) -> &OsStr {
        &self.inner
    }
}

impl AsRef<OsStr> for PathBuf {
    fn as_ref(&self) -> &OsStr {
        &self.inner
    }
}

impl From<String> for PathBuf {
    fn from(s: String) -> PathBuf {
        PathBuf { inner: s.into() }
    }
}

impl From<&str> for PathBuf {
    fn from(s: &str) -> PathBuf {
        PathBuf { inner: s.into() }
    }
}

impl From<OsString> for PathBuf {
    fn from(inner: OsString) -> PathBuf {
        PathBuf { inner }
    }
}

impl From<&Path> for PathBuf {
    fn from(p: &Path) -> PathBuf {
        p.to_path_buf()
    }
}

impl PartialEq for Path {
    fn eq(&self, other: &Path) -> bool {
        self.components().eq(other.components())
    }
}

impl Eq for Path {}

impl PartialEq for PathBuf {
    fn eq(&self, other: &PathBuf) -> bool {
        **self == **other
    }
}

impl Eq for PathBuf {}

impl PartialEq<Path> for PathBuf {
    fn eq(&self, other: &Path) -> bool {
        **self == *other
    }
}

impl PartialEq<&Path> for PathBuf {
    fn eq(&self, other: &&Path) -> bool {
        **self == **other
    }
}

impl PartialEq<PathBuf> for &Path {
    fn eq(&self, other: &PathBuf) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl fmt::Debug for PathBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripPrefixError(());

impl fmt::Display for StripPrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("prefix not found")
    }
}

#[cfg(test)]
mod tests {
    use super::{Component, Path, PathBuf};
    use std::path::{Component as StdComponent, Path as StdPath, PathBuf as StdPathBuf};

    const PATHS: &[&str] = &[
        "",
        "/",
        "//",
        "///a",
        "a",
        "/a",
        "a/",
        "/a/",
        "a/b",
        "/a/b",
        "/a/b/",
        "a//b",
        "/a//b//",
        ".",
        "./",
        "./a",
        "././a",
        "a/.",
        "a/./b",
        "a/./",
        "/.",
        "/./a",
        "..",
        "../a",
        "a/..",
        "/a/../b",
        ".a",
        "a.b",
        "/x/a.b.c",
        "/x/.hidden",
        "a.",
        "a.b/",
        "/lib/modules/6.1.0-57-amd64",
        "upper/dir with space/file",
    ];

    fn comps(p: &str) -> Vec<String> {
        Path::new(p)
            .components()
            .map(|c| match c {
                Component::RootDir => "/".into(),
                Component::CurDir => ".".into(),
                Component::ParentDir => "..".into(),
                Component::Normal(n) => format!("n:{}", n.to_string_lossy()),
            })
            .collect()
    }

    fn std_comps(p: &str) -> Vec<String> {
        StdPath::new(p)
            .components()
            .map(|c| match c {
                StdComponent::RootDir => "/".into(),
                StdComponent::CurDir => ".".into(),
                StdComponent::ParentDir => "..".into(),
                StdComponent::Normal(n) => format!("n:{}", n.to_string_lossy()),
                StdComponent::Prefix(_) => "prefix".into(),
            })
            .collect()
    }

    fn s(p: Option<&Path>) -> Option<String> {
        p.map(|p| p.to_string_lossy().into_owned())
    }

    fn std_s(p: Option<&StdPath>) -> Option<String> {
        p.map(|p| p.to_string_lossy().into_owned())
    }

    #[test]
    fn components_parent_and_names_are_stds() {
        for p in PATHS {
            assert_eq!(comps(p), std_comps(p), "components of {p:?}");
            let mut back: Vec<String> = Path::new(p).components().rev().map(|c| format!("{c:?}")).collect();
            back.reverse();
            let front: Vec<String> = Path::new(p).components().map(|c| format!("{c:?}")).collect();
            assert_eq!(back, front, "components of {p:?} from the back");
            assert_eq!(s(Path::new(p).parent()), std_s(StdPath::new(p).parent()), "parent of {p:?}");
            let name = |o: Option<&super::OsStr>| o.map(|n| n.to_string_lossy().into_owned());
            let std_name = |o: Option<&std::ffi::OsStr>| o.map(|n| n.to_string_lossy().into_owned());
            assert_eq!(name(Path::new(p).file_name()), std_name(StdPath::new(p).file_name()), "file_name of {p:?}");
            assert_eq!(name(Path::new(p).file_stem()), std_name(StdPath::new(p).file_stem()), "file_stem of {p:?}");
            assert_eq!(Path::new(p).is_absolute(), StdPath::new(p).is_absolute(), "is_absolute of {p:?}");
        }
    }

    #[test]
    fn join_prefix_and_extension_are_stds() {
        for a in PATHS {
            for b in PATHS {
                let ours = Path::new(a).join(b);
                let std = StdPath::new(a).join(b);
                assert_eq!(ours.to_string_lossy(), std.to_string_lossy(), "{a:?} join {b:?}");
                assert_eq!(Path::new(a) == Path::new(b), StdPath::new(a) == StdPath::new(b), "{a:?} == {b:?}");
                assert_eq!(
                    s(Path::new(a).strip_prefix(b).ok()),
                    std_s(StdPath::new(a).strip_prefix(b).ok()),
                    "{a:?} strip_prefix {b:?}"
                );
                assert_eq!(Path::new(a).starts_with(b), StdPath::new(a).starts_with(b), "{a:?} starts_with {b:?}");
                assert_eq!(Path::new(a).ends_with(b), StdPath::new(a).ends_with(b), "{a:?} ends_with {b:?}");
            }
            for ext in ["", "new", "tar.gz"] {
                let ours = Path::new(a).with_extension(ext);
                let std = StdPath::new(a).with_extension(ext);
                assert_eq!(ours.to_string_lossy(), std.to_string_lossy(), "{a:?} with_extension {ext:?}");
            }
            let (mut ours, mut std) = (PathBuf::from(*a), StdPathBuf::from(*a));
            assert_eq!(ours.pop(), std.pop(), "pop {a:?}");
            assert_eq!(ours.to_string_lossy(), std.to_string_lossy(), "pop {a:?}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_kept_and_shown_replaced() {
        let name = super::OsStr::from_raw(b"caf\xe9");
        let p = Path::new("/upper").join(name);
        assert_eq!(p.as_os_str().bytes(), b"/upper/caf\xe9");
        assert_eq!(p.display().to_string(), "/upper/caf\u{FFFD}");
        assert_eq!(p.file_name().map(|n| n.bytes()), Some(&b"caf\xe9"[..]));
    }
}
