//! rustix's path argument for `rt`'s path types, as rustix has it for std's: the bytes, made a
//! C string on the stack where they fit.

use super::ffi::{OsStr, OsString};
use super::path::{Path, PathBuf};
use alloc::borrow::Cow;
use core::ffi::CStr;
use rustix::{io, path::Arg};

macro_rules! arg_as_bytes {
    ($($t:ty),*) => {$(
        impl Arg for &$t {
            fn as_str(&self) -> io::Result<&str> {
                core::str::from_utf8(<$t as AsRef<OsStr>>::as_ref(*self).bytes()).map_err(|_| io::Errno::INVAL)
            }
            fn to_string_lossy(&self) -> Cow<'_, str> {
                alloc::string::String::from_utf8_lossy(<$t as AsRef<OsStr>>::as_ref(*self).bytes())
            }
            fn as_cow_c_str(&self) -> io::Result<Cow<'_, CStr>> {
                <&[u8] as Arg>::into_c_str(<$t as AsRef<OsStr>>::as_ref(*self).bytes())
            }
            fn into_c_str<'b>(self) -> io::Result<Cow<'b, CStr>>
            where
                Self: 'b,
            {
                <$t as AsRef<OsStr>>::as_ref(self).bytes().into_c_str()
            }
            fn into_with_c_str<T, F>(self, f: F) -> io::Result<T>
            where
                F: FnOnce(&CStr) -> io::Result<T>,
            {
                <$t as AsRef<OsStr>>::as_ref(self).bytes().into_with_c_str(f)
            }
        }
    )*};
}

arg_as_bytes!(Path, PathBuf, OsStr, OsString);
