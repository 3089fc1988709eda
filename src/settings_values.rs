//! Parsers for settings values, shared by every settings file: each returns the value or the
//! reason it is refused, which the caller names with the key and where it came from.

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

/// A size in bytes: digits with an optional K, M or G suffix (binary, `KiB` spelled out too).
pub(crate) fn size(v: &str) -> Result<u64, String> {
    let digits = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let shift = match &v[digits..] {
        "" => 0,
        "K" | "k" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        _ => return Err("must be a size like 2M, 512K or 1048576".into()),
    };
    let n: u64 = v[..digits].parse().map_err(|_| "must be a size like 2M, 512K or 1048576")?;
    n.checked_mul(1 << shift).filter(|b| *b > 0).ok_or_else(|| "must be a size above 0 and below 16 EiB".into())
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
