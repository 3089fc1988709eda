//! Sets up a verified lower: reads the verity metadata after the image, establishes the trusted
//! root hash (a setting, or the signature block checked with the board's key), creates the
//! dm-verity device, reads through it (the first block, or every block on an image's first boot)
//! while corruption still means EIO, and only then switches the table to the run-time policy, so
//! a bad image found by the init itself falls back instead of restarting the machine.

use crate::block::device::read_head;
use crate::block::probe;
use crate::boot::error::{Error, Result};
use crate::boot::image::check_image_file;
use crate::boot::report::{Report, Verified};
use crate::plan::{Source, Trust, Verity};
use crate::rt::io::{Read, Seek, SeekFrom};
use crate::rt::path::Path;
use crate::rt::prelude::*;
use crate::rt::Why;
use crate::sys::{dm, loopdev};
use crate::verity::hashtree::{self, OnCorruption};
use crate::verity::meta::{self, Meta};
use crate::verity::{manifest, signature};

pub fn open(v: &Verity, report: &mut Report) -> Result<()> {
    let verified = open_device(v, report)?;
    report.verity = Some(verified);
    Ok(())
}

/// Sets up the verified device `v` describes and says what it is (`open` books it as the
/// lower's; reconciliation reads the previous slot's image through one of its own).
pub fn open_device(v: &Verity, report: &mut Report) -> Result<Verified> {
    // Held until the dm table holds the loop device: autoclear detaches it at our last close.
    let (image, _loop_hold) = image_device(&v.data, report)?;
    let refuse = |what: String| Error::Verity { image: v.data.to_string(), what };
    let hash = v.hash.clone().unwrap_or_else(|| image.clone());
    let meta = read_meta(&image, &hash, v.hash.is_some(), matches!(v.trust, Trust::Signed { .. })).map_err(refuse)?;
    let (root, trust, security_version) = trusted_root(v, &meta).map_err(refuse)?;
    let devs = (numbers(&image)?, numbers(&hash)?);
    let table = |on| hashtree::table(devs.0, devs.1, &meta.layout, &meta.sb, &root, on, meta.fec);
    let node = create_checked(v, &meta, &image, table, report)?;
    let link = format!("/dev/mapper/{}", v.name);
    let _ = crate::rt::fs::remove_file(&link);
    crate::rt::os::unix::fs::symlink(&node, &link).map_err(|e| Error::io("symlink", Path::new(&link), &e, ""))?;
    let fec = meta.fec.map_or(String::new(), |f| format!(", error correction with {} parity bytes", f.roots));
    log::info!("dm-verity: {} verified as {link} ({node}), {trust}{fec}, on corruption: {}", v.data, v.on_corruption);
    Ok(Verified {
        device: link,
        image,
        root_hash: crate::util::hex::hex(&root),
        hash,
        hash_offset: meta.layout.hash_offset,
        trust,
        checked_all: v.check_all,
        fec_roots: meta.fec.map_or(0, |f| f.roots),
        fec_offset: meta.fec.map_or(0, |f| f.start * hashtree::BLOCK),
        security_version,
    })
}

/// The block device holding the image: its partition, or a read-only loop device over its file
/// (returned too: it must stay open until the dm table holds the loop device).
fn image_device(data: &Source, report: &mut Report) -> Result<(String, Option<loopdev::Attached>)> {
    match data {
        Source::Device(d) => Ok((d.clone(), None)),
        Source::LoopFile(file) => {
            check_image_file(file, None)?;
            let attached = report.kernel(|| loopdev::attach_ro(file)).map_err(|(call, e)| {
                Error::sys(call, file.clone(), e, "add loop to oinit.modules (or build it into the kernel)")
            })?;
            Ok((attached.path.clone(), Some(attached)))
        }
        Source::Virtual(what) => Err(Error::Verity { image: what.to_string(), what: "not an image".into() }.into()),
    }
}

fn numbers(path: &str) -> Result<(u32, u32)> {
    let st = rustix::fs::stat(path).map_err(|e| Error::sys("stat", path, e, ""))?;
    Ok((rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev)))
}

/// Creates the device with corruption as EIO, reads through it (the first block, or all of
/// them on an image's first boot), then switches to the run-time policy; returns its node. A
/// device that fails the read is removed again.
fn create_checked(
    v: &Verity,
    meta: &Meta,
    image: &str,
    table: impl Fn(OnCorruption) -> String,
    report: &mut Report,
) -> Result<String> {
    let sectors = meta.sb.data_blocks * (hashtree::BLOCK / 512);
    let (_, minor) = report
        .kernel(|| dm::create(&v.name, sectors, "verity", &table(OnCorruption::Eio)))
        .map_err(|(call, e)| Error::sys(call, image, e, "add dm_verity to oinit.modules (the kernel's dm-verity)"))?;
    let node = format!("/dev/dm-{minor}");
    let blocks = if v.check_all { meta.sb.data_blocks } else { 1 };
    if v.check_all {
        let mib = meta.layout.data_bytes >> 20;
        log::info!("dm-verity: reading all {mib} MiB of {} once (first boot of this image)", v.data);
    }
    let checked = report.kernel(|| read_through(&node, blocks));
    let live = checked.and_then(|()| match v.on_corruption {
        OnCorruption::Eio => Ok(()),
        on => {
            dm::reload(&v.name, sectors, "verity", &table(on)).map_err(|(call, e)| format!("{call}: {e}", e = Why(e)))
        }
    });
    if let Err(what) = live {
        let _ = dm::remove(&v.name);
        return Err(Error::Verity { image: v.data.to_string(), what }.into());
    }
    Ok(node)
}

/// The verity metadata of `image` (whose tree is on `hash`): read from the devices, decided by
/// `verity::meta` (pure, fuzzed).
fn read_meta(image: &str, hash: &str, separate: bool, signed: bool) -> core::result::Result<Meta, String> {
    let head = read_head(Path::new(image), 0, probe::PROBE_LEN).ok_or("cannot read its first bytes")?;
    let path = Path::new(hash);
    let size = crate::rt::fs::File::open(path).and_then(|mut f| f.seek(SeekFrom::End(0))).map_err(|e| e.to_string())?;
    meta::read(&head, hash, size, separate, signed, |at, len| read_head(path, at, len))
}

/// The root hash to trust, how it was established, and the signed security version (None when
/// a setting gave the root hash).
fn trusted_root(v: &Verity, meta: &Meta) -> core::result::Result<([u8; 32], String, Option<u32>), String> {
    let (key_file, pinned, accept) = match &v.trust {
        Trust::RootHash { key, hash } => return Ok((*hash, format!("root hash from {key}"), None)),
        Trust::Signed { key_file, pinned, accept } => (key_file, pinned, accept),
    };
    let key = crate::fs::careful::read_regular(Path::new(key_file), 64 * 1024)
        .map_err(|e| format!("cannot read the board's key {key_file}: {e}", e = Why(e)))?;
    let key = signature::parse_public_key(&key).map_err(|e| format!("{key_file}: {e}"))?;
    let block = meta.block.as_ref().ok_or("no signature block after the hash tree")?;
    let root = signature::verify(&key, block)?;
    if let Some(p) = pinned.filter(|p| *p != root) {
        return Err(format!(
            "the signed root hash {} is not {}, which the root hash setting pins",
            crate::util::hex::hex(&root),
            crate::util::hex::hex(&p)
        ));
    }
    let version = manifest::accept(block.manifest.as_ref(), &meta.sb, accept)?;
    let what = match &block.manifest {
        Some(m) => format!("root hash signed by {key_file} for {}, security version {version}", m.compatible),
        None => format!("root hash signed by {key_file}"),
    };
    Ok((root, what, Some(version)))
}

/// Reads `blocks` data blocks through the dm device: dm-verity checks each against the tree and
/// fails the read (EIO) at the first that does not match.
fn read_through(node: &str, blocks: u64) -> core::result::Result<(), String> {
    let mut f = crate::rt::fs::File::open(node).map_err(|e| format!("open {node}: {e}"))?;
    let mut buf = vec![0u8; 1 << 20];
    let (total, mut done) = (blocks * hashtree::BLOCK, 0u64);
    while done < total {
        let n = (total - done).min(buf.len() as u64) as usize;
        if let Err(e) = f.read_exact(&mut buf[..n]) {
            return Err(format!(
                "data block {} or its hashes do not match the root hash ({e})",
                done / hashtree::BLOCK
            ));
        }
        done += n as u64;
    }
    Ok(())
}
