//! The arguments and environment the kernel (or the caller) gave the process.

use super::ffi::OsString;
use crate::rt::prelude::*;

/// The arguments as strings; one that is not UTF-8 is shown with U+FFFD, where std would panic.
pub fn args() -> impl Iterator<Item = String> {
    super::c::args().map(|a| String::from_utf8_lossy(a).into_owned())
}

pub fn vars_os() -> impl Iterator<Item = (OsString, OsString)> {
    super::c::env_vars().filter_map(|kv| {
        let eq = kv.iter().position(|&b| b == b'=')?;
        Some((OsString::from_vec(kv[..eq].to_vec()), OsString::from_vec(kv[eq + 1..].to_vec())))
    })
}
