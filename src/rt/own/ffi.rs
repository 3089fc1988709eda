//! `OsStr` and `OsString`: on Linux a file name is bytes, UTF-8 or not.

use crate::rt::prelude::*;
use alloc::borrow::Cow;
use core::{borrow::Borrow, fmt, ops::Deref};

pub use alloc::ffi::CString;
pub use core::ffi::{c_void, CStr};

#[derive(PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct OsStr {
    inner: [u8],
}

#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OsString {
    inner: Vec<u8>,
}

impl OsStr {
    pub fn new<S: AsRef<OsStr> + ?Sized>(s: &S) -> &OsStr {
        s.as_ref()
    }

    pub(crate) fn from_raw(b: &[u8]) -> &OsStr {
        // SAFETY: OsStr is a transparent wrapper of [u8].
        #[allow(unsafe_code)]
        unsafe {
            &*(core::ptr::from_ref(b) as *const OsStr)
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.inner
    }

    pub fn as_encoded_bytes(&self) -> &[u8] {
        &self.inner
    }

    pub fn to_str(&self) -> Option<&str> {
        core::str::from_utf8(&self.inner).ok()
    }

    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.inner)
    }

    pub fn to_os_string(&self) -> OsString {
        OsString { inner: self.inner.to_vec() }
    }

    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    pub fn display(&self) -> Display<'_> {
        Display(&self.inner)
    }
}

impl OsString {
    pub fn new() -> OsString {
        OsString::default()
    }

    pub fn from_vec(inner: Vec<u8>) -> OsString {
        OsString { inner }
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.inner
    }

    pub fn as_os_str(&self) -> &OsStr {
        self
    }

    pub fn push<T: AsRef<OsStr>>(&mut self, s: T) {
        self.inner.extend_from_slice(s.as_ref().bytes());
    }
}

impl Deref for OsString {
    type Target = OsStr;
    fn deref(&self) -> &OsStr {
        OsStr::from_raw(&self.inner)
    }
}

impl Borrow<OsStr> for OsString {
    fn borrow(&self) -> &OsStr {
        self
    }
}

impl ToOwned for OsStr {
    type Owned = OsString;
    fn to_owned(&self) -> OsString {
        self.to_os_string()
    }
}

impl AsRef<OsStr> for OsStr {
    fn as_ref(&self) -> &OsStr {
        self
    }
}

impl AsRef<OsStr> for OsString {
    fn as_ref(&self) -> &OsStr {
        self
    }
}

impl AsRef<OsStr> for str {
    fn as_ref(&self) -> &OsStr {
        OsStr::from_raw(self.as_bytes())
    }
}

impl AsRef<OsStr> for String {
    fn as_ref(&self) -> &OsStr {
        OsStr::from_raw(self.as_bytes())
    }
}

impl From<String> for OsString {
    fn from(s: String) -> OsString {
        OsString { inner: s.into_bytes() }
    }
}

impl From<&String> for OsString {
    fn from(s: &String) -> OsString {
        OsString { inner: s.as_bytes().to_vec() }
    }
}

impl From<&str> for OsString {
    fn from(s: &str) -> OsString {
        OsString { inner: s.as_bytes().to_vec() }
    }
}

impl PartialEq<str> for OsStr {
    fn eq(&self, other: &str) -> bool {
        &self.inner == other.as_bytes()
    }
}

impl PartialEq<str> for OsString {
    fn eq(&self, other: &str) -> bool {
        self.inner == other.as_bytes()
    }
}

impl PartialEq<&str> for OsString {
    fn eq(&self, other: &&str) -> bool {
        self.inner == other.as_bytes()
    }
}

impl fmt::Debug for OsStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.to_string_lossy(), f)
    }
}

impl fmt::Debug for OsString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Bytes shown as UTF-8, each invalid sequence as U+FFFD, as std's `Path::display` does.
pub struct Display<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Display<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{FFFD}")?;
            }
        }
        Ok(())
    }
}
