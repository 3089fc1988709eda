//! The initramfs builder: reads a file list in the kernel's `gen_init_cpio` format (the same list
//! works as CONFIG_INITRAMFS_SOURCE) and writes a newc cpio archive. Needs no root: owners and
//! device nodes come from the list, not from the host's files.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir { name: String, mode: u32 },
    File { name: String, src: String, mode: u32 },
    Nod { name: String, mode: u32, char_dev: bool, major: u32, minor: u32 },
    Slink { name: String, target: String, mode: u32 },
}

fn octal(s: &str, line: usize) -> Result<u32, String> {
    u32::from_str_radix(s, 8).map_err(|_| format!("line {line}: bad mode {s}"))
}

/// Parses `dir`, `file`, `nod` and `slink` lines (uid and gid are taken as given: 0 here).
pub fn parse_list(text: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let w: Vec<&str> = line.split_whitespace().collect();
        let e = match w.as_slice() {
            [] => continue,
            [c, ..] if c.starts_with('#') => continue,
            ["dir", name, mode, _uid, _gid] => Entry::Dir { name: name.to_string(), mode: octal(mode, n)? },
            ["file", name, src, mode, _uid, _gid, ..] => Entry::File {
                name: name.to_string(),
                src: expand_env(src, |v| std::env::var(v).ok()),
                mode: octal(mode, n)?,
            },
            ["nod", name, mode, _uid, _gid, kind @ ("c" | "b"), maj, min] => Entry::Nod {
                name: name.to_string(),
                mode: octal(mode, n)?,
                char_dev: *kind == "c",
                major: maj.parse().map_err(|_| format!("line {n}: bad major"))?,
                minor: min.parse().map_err(|_| format!("line {n}: bad minor"))?,
            },
            ["slink", name, target, mode, _uid, _gid] => {
                Entry::Slink { name: name.to_string(), target: target.to_string(), mode: octal(mode, n)? }
            }
            _ => return Err(format!("line {n}: not a gen_init_cpio entry: {line}")),
        };
        let name = match &e {
            Entry::Dir { name, .. }
            | Entry::File { name, .. }
            | Entry::Nod { name, .. }
            | Entry::Slink { name, .. } => name,
        };
        if name.trim_start_matches('/') == TRAILER {
            return Err(format!("line {n}: {name} is the archive's end marker and cannot be a member"));
        }
        out.push(e);
    }
    Ok(out)
}

/// Replaces `${VAR}` in a source path with the variable's value (empty when unset), as the
/// kernel's gen_init_cpio does, so a list can name files relative to a build directory. One pass
/// over the input: a value is never expanded again (`A='${A}'` would otherwise loop forever).
pub fn expand_env(src: &str, var: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else { break };
        out.push_str(&rest[..start]);
        out.push_str(&var(&rest[start + 2..start + 2 + len]).unwrap_or_default());
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    out
}

/// The name the newc format reserves for its end marker: a member so named would end the
/// archive early when the kernel unpacks it, silently dropping everything after it.
const TRAILER: &str = "TRAILER!!!";

/// One member of a newc archive, as the kernel unpacks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub mode: u32,
    pub rdev: (u32, u32),
    pub data: Vec<u8>,
}

/// Reads an uncompressed newc archive (up to its trailer).
pub fn read_newc(mut b: &[u8]) -> Result<Vec<Member>, String> {
    let mut out = Vec::new();
    let field = |h: &[u8], i: usize| {
        std::str::from_utf8(&h[6 + i * 8..14 + i * 8])
            .ok()
            .and_then(|s| u32::from_str_radix(s, 16).ok())
            .ok_or(format!("bad header field {i}"))
    };
    loop {
        if b.len() < 110 || &b[..6] != b"070701" {
            return Err("not a newc header".into());
        }
        let (mode, size, rmaj, rmin, namesize) =
            (field(b, 1)?, field(b, 6)?, field(b, 9)?, field(b, 10)?, field(b, 11)?);
        let name_end = 110 + namesize as usize;
        let name = String::from_utf8_lossy(b.get(110..name_end - 1).ok_or("archive truncated")?).into_owned();
        let data_start = name_end.next_multiple_of(4);
        let data_end = data_start + size as usize;
        if name == TRAILER {
            return Ok(out);
        }
        let data = b.get(data_start..data_end).ok_or("archive truncated")?.to_vec();
        out.push(Member { name, mode, rdev: (rmaj, rmin), data });
        b = b.get(data_end.next_multiple_of(4)..).ok_or("archive truncated")?;
    }
}

fn pad4(w: &mut Vec<u8>) {
    while !w.len().is_multiple_of(4) {
        w.push(0);
    }
}

fn header(w: &mut Vec<u8>, ino: u32, mode: u32, size: usize, rdev: (u32, u32), name: &str) {
    let name = name.trim_start_matches('/');
    let fields = [ino, mode, 0, 0, 1, 0, size as u32, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0];
    w.extend_from_slice(b"070701");
    for f in fields {
        w.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    w.extend_from_slice(name.as_bytes());
    w.push(0);
    pad4(w);
}

/// Writes the archive (uncompressed newc) for `entries`; file data is read from `src` paths.
pub fn write_newc(entries: &[Entry], mut out: impl Write) -> Result<(), String> {
    let mut w = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let ino = i as u32 + 1;
        match e {
            Entry::Dir { name, mode } => header(&mut w, ino, 0o040000 | mode, 0, (0, 0), name),
            Entry::Nod { name, mode, char_dev, major, minor } => {
                let kind = if *char_dev { 0o020000 } else { 0o060000 };
                header(&mut w, ino, kind | mode, 0, (*major, *minor), name)
            }
            Entry::Slink { name, target, mode } => {
                header(&mut w, ino, 0o120000 | mode, target.len(), (0, 0), name);
                w.extend_from_slice(target.as_bytes());
                pad4(&mut w);
            }
            Entry::File { name, src, mode } => {
                let data = std::fs::read(src).map_err(|e| format!("{src}: {e}"))?;
                header(&mut w, ino, 0o100000 | mode, data.len(), (0, 0), name);
                w.extend_from_slice(&data);
                pad4(&mut w);
            }
        }
    }
    header(&mut w, 0, 0, 0, (0, 0), TRAILER);
    out.write_all(&w).map_err(|e| e.to_string())
}

/// Reads `list`, writes the archive compressed with `gzip -9n` (reproducible: no name or time)
/// to `out`. Every kernel that can unpack an initramfs can unpack gzip.
pub fn build(list: &Path, out: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(list).map_err(|e| format!("{}: {e}", list.display()))?;
    let entries = parse_list(&text)?;
    let mut raw = Vec::new();
    write_newc(&entries, &mut raw)?;
    let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut gzip =
        Command::new("gzip").arg("-9n").stdin(Stdio::piped()).stdout(file).spawn().map_err(|e| format!("gzip: {e}"))?;
    gzip.stdin.take().ok_or("gzip: no stdin")?.write_all(&raw).map_err(|e| format!("gzip: {e}"))?;
    let status = gzip.wait().map_err(|e| format!("gzip: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("gzip failed: {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes() {
        let list = "# c\ndir /dev 0755 0 0\nnod /dev/console 0600 0 0 c 5 1\nslink /bin/sh busybox 0777 0 0\n";
        let e = parse_list(list).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[1], Entry::Nod { name: "/dev/console".into(), mode: 0o600, char_dev: true, major: 5, minor: 1 });
        let mut out = Vec::new();
        write_newc(&e, &mut out).unwrap();
        assert!(out.len().is_multiple_of(4));
        assert!(out.starts_with(b"070701"));
        let s = String::from_utf8_lossy(&out);
        assert!(s.contains("dev/console\0"));
        assert!(s.contains("TRAILER!!!"));
        assert!(parse_list("file /init").is_err());
        let back = read_newc(&out).unwrap();
        assert_eq!(back.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["dev", "dev/console", "bin/sh"]);
        assert_eq!((back[1].mode, back[1].rdev), (0o020600, (5, 1)));
        assert_eq!(back[2].data, b"busybox");
    }

    #[test]
    fn expands_variables_like_gen_init_cpio() {
        let var = |v: &str| (v == "OUT").then(|| "/build".to_string());
        assert_eq!(expand_env("${OUT}/init", var), "/build/init");
        assert_eq!(expand_env("${UNSET}/x${OUT}", var), "/x/build");
        assert_eq!(expand_env("/no/vars", var), "/no/vars");
        assert_eq!(expand_env("${open", var), "${open");
        // A value holding a reference is not expanded again (it looped forever).
        let selfref = |v: &str| (v == "A").then(|| "${A}".to_string());
        assert_eq!(expand_env("x${A}y", selfref), "x${A}y");
    }

    #[test]
    fn the_end_marker_is_no_member() {
        let err = parse_list("dir /etc 0755 0 0\ndir /TRAILER!!! 0755 0 0\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("end marker"), "{err}");
    }
}
