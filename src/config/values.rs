//! Parsers for settings values, shared by every settings file: each returns the value or the
//! reason it is refused, which the caller names with the key and where it came from.

use crate::rt::prelude::*;

pub(crate) fn need(v: Option<&str>) -> Result<&str, String> {
    match v {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err("needs a value".into()),
    }
}

pub(crate) fn optional<T>(v: Option<&str>, f: impl Fn(&str) -> Result<T, String>) -> Result<Option<T>, String> {
    match need(v)? {
        "none" => Ok(None),
        s => f(s).map(Some),
    }
}

pub(crate) fn word(v: Option<&str>) -> Result<String, String> {
    let v = need(v)?;
    if v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
        Ok(v.into())
    } else {
        Err("must be a single word like ext4".into())
    }
}

pub(crate) fn seconds(v: &str) -> Result<u32, String> {
    v.parse::<u32>().ok().filter(|s| *s <= 3600).ok_or_else(|| "must be whole seconds between 0 and 3600".into())
}

/// A size in bytes, as the kernel's memparse reads one: decimal or 0x hex, then an optional K,
/// M or G (either case).
pub(crate) fn size(v: &str) -> Result<u64, String> {
    match memsize(v) {
        Some((n, "")) if n > 0 => Ok(n),
        _ => Err("must be a size like 2M, 512k or 0x200000".into()),
    }
}

/// The kernel's memparse: a size at the start of `s`, and what follows it.
pub(crate) fn memsize(s: &str) -> Option<(u64, &str)> {
    let (radix, body) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(b) => (16, b),
        None => (10, s),
    };
    let end = body.find(|c: char| !c.is_digit(radix)).unwrap_or(body.len());
    let n = u64::from_str_radix(&body[..end], radix).ok()?;
    let rest = &body[end..];
    let shift = match rest.chars().next() {
        Some('k' | 'K') => 10,
        Some('m' | 'M') => 20,
        Some('g' | 'G') => 30,
        _ => return Some((n, rest)),
    };
    Some((n.checked_mul(1 << shift)?, &rest[1..]))
}

pub(crate) fn flag(v: Option<&str>) -> Result<bool, String> {
    match v {
        None | Some("1" | "yes" | "on" | "true") => Ok(true),
        Some("0" | "no" | "off" | "false") => Ok(false),
        Some(_) => Err("must be 1 or 0 (or the bare key for 1)".into()),
    }
}

pub(crate) fn abs_path(v: &str) -> Result<String, String> {
    if v.starts_with('/') && !v.split('/').any(|c| c == "..") {
        Ok(v.into())
    } else {
        Err("must be an absolute path without '..'".into())
    }
}

pub(crate) fn rel_path(v: &str) -> Result<String, String> {
    let ok = !v.starts_with('/') && !v.split('/').any(|c| c == ".." || c == "." || c.is_empty());
    if ok {
        Ok(v.into())
    } else {
        Err("must be a relative path inside the data partition, like overlay".into())
    }
}

pub(crate) fn list(v: &str) -> Vec<String> {
    v.split(',').filter(|m| !m.is_empty()).map(String::from).collect()
}

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Config(usize),
    Cmdline,
}

impl core::fmt::Display for Source {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Source::Config(line) => write!(f, "config line {line}"),
            Source::Cmdline => f.write_str("kernel command line"),
        }
    }
}
