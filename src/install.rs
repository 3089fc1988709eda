//! `overlay-init install IMAGE`: writes a squashfs image into the slot that is not booted, checks
//! it, and only then makes it the next boot's trial slot. A power cut at any point before the
//! final state write leaves the booted slot and the state as they were; a half-written slot is
//! never activated (and would be refused by the boot's same-boot fallback anyway).

use crate::cli_slots::Context;
use crate::probe::{self, FsKind};
use crate::sha256::Sha256;
use crate::slots;
use crate::state::SlotId;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const CHUNK: usize = 1 << 20;

pub struct Request<'a> {
    pub image: &'a Path,
    pub slot: Option<SlotId>,
    pub sha256: Option<&'a str>,
}

pub fn install(ctx: &Context, req: &Request<'_>) -> Result<String, String> {
    let target = match (req.slot, ctx.booted) {
        (Some(s), Some(b)) if s == b => {
            return Err(format!("slot {} is the booted slot; refusing to overwrite the running system", s.name()))
        }
        (Some(s), _) => s,
        (None, Some(b)) => b.other(),
        (None, None) => return Err("the booted slot is unknown; name the target with --slot".into()),
    };
    let dest = ctx.sources[target.index()]
        .clone()
        .ok_or(format!("slot {} has no image location in /run/overlay-init/slots", target.name()))?;
    let len = check_image(req.image)?;
    if let Some(want) = req.sha256 {
        let got = hash_file(req.image, len)?;
        if !got.eq_ignore_ascii_case(want) {
            return Err(format!("{}: sha256 is {got}, expected {want}; nothing written", req.image.display()));
        }
    }
    let written = if dest.starts_with("/dev/") {
        write_partition(req.image, Path::new(&dest), len)?
    } else {
        write_file(req.image, Path::new(&dest), len)?
    };
    let readback = hash_file(Path::new(&dest), len)?;
    if readback != written {
        return Err(format!(
            "{dest}: read-back sha256 {readback} differs from the written {written}; slot {} not activated",
            target.name()
        ));
    }
    ctx.update(|st| {
        slots::activate(st, target, ctx.policy, true);
        Ok(format!(
            "installed {} ({len} bytes, sha256 {written}) into slot {}; it boots next on trial ({} tries)",
            req.image.display(),
            target.name(),
            ctx.policy.tries
        ))
    })
}

/// A squashfs 4 image whose superblock size fits the file; returns its length.
fn check_image(image: &Path) -> Result<u64, String> {
    let len = std::fs::metadata(image).map_err(|e| format!("{}: {e}", image.display()))?.len();
    let head = crate::blockdev::read_head(image, 0, probe::PROBE_LEN)
        .ok_or(format!("{}: too short to be an image", image.display()))?;
    match probe::probe_fs(&head) {
        Some(fs) if fs.kind == FsKind::Squashfs && fs.size <= len => Ok(len),
        Some(fs) if fs.kind == FsKind::Squashfs => {
            Err(format!("{}: truncated ({len} bytes, the superblock says {})", image.display(), fs.size))
        }
        _ => Err(format!("{}: not a squashfs image", image.display())),
    }
}

fn hash_file(path: &Path, len: u64) -> Result<String, String> {
    let mut f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = Sha256::default();
    let mut buf = vec![0u8; CHUNK];
    let mut left = len;
    while left > 0 {
        let n = (left as usize).min(CHUNK);
        f.read_exact(&mut buf[..n]).map_err(|e| format!("{}: {e}", path.display()))?;
        h.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(h.hex())
}

/// Copies `len` bytes with progress on stderr; returns the sha256 of what was written.
fn copy(image: &Path, out: &mut File, len: u64, what: &str) -> Result<String, String> {
    let mut src = File::open(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let mut h = Sha256::default();
    let mut buf = vec![0u8; CHUNK];
    let (mut done, mut shown) = (0u64, 0u64);
    while done < len {
        let n = ((len - done) as usize).min(CHUNK);
        src.read_exact(&mut buf[..n]).map_err(|e| format!("{}: {e}", image.display()))?;
        out.write_all(&buf[..n]).map_err(|e| format!("{what}: write: {e}"))?;
        h.update(&buf[..n]);
        done += n as u64;
        let pct = done * 100 / len.max(1);
        if pct >= shown + 10 || done == len {
            shown = pct;
            eprintln!("install: {pct}% ({:.1} of {:.1} MiB)", done as f64 / 1048576.0, len as f64 / 1048576.0);
        }
    }
    out.sync_data().map_err(|e| format!("{what}: fsync: {e}"))?;
    Ok(h.hex())
}

fn write_partition(image: &Path, dev: &Path, len: u64) -> Result<String, String> {
    let mut out = OpenOptions::new().write(true).open(dev).map_err(|e| format!("{}: {e}", dev.display()))?;
    let capacity = out.seek(SeekFrom::End(0)).map_err(|e| format!("{}: {e}", dev.display()))?;
    if len > capacity {
        return Err(format!("{} ({len} bytes) does not fit {} ({capacity} bytes)", image.display(), dev.display()));
    }
    out.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    copy(image, &mut out, len, &dev.display().to_string())
}

/// A file slot: written next to its place, fsynced, renamed over it, directory fsynced, so the
/// slot holds the old image or the new one, never half of one.
fn write_file(image: &Path, dest: &Path, len: u64) -> Result<String, String> {
    let tmp = PathBuf::from(format!("{}.new", dest.display()));
    let mut out = File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let digest = copy(image, &mut out, len, &tmp.display().to_string())?;
    std::fs::rename(&tmp, dest).map_err(|e| format!("rename {} over {}: {e}", tmp.display(), dest.display()))?;
    let dir = dest.parent().unwrap_or(Path::new("/"));
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| format!("{}: fsync: {e}", dir.display()))?;
    Ok(digest)
}
