//! `overlay-init install IMAGE`: writes a squashfs image into the slot that is not booted, checks
//! it, and only then makes it the next boot's trial slot. A power cut at any point before the
//! final state write leaves the booted slot and the state as they were; a half-written slot is
//! never activated (and would be refused by the boot's same-boot fallback anyway).
//!
//! The image is opened once: its superblock check, the copy and the sha256 all read the same open
//! file, so swapping the path during an install (a symlink flip) changes nothing. The read-back
//! drops the written pages from the page cache first, so it reads the medium.

use crate::ab::handoff::Context;
use crate::ab::slots;
use crate::ab::state::{Digest, SlotId, DIGEST_UNKNOWN};
use crate::block::probe;
use crate::util::hex::hex;
use crate::util::sha256::Sha256;
use crate::verity::manifest;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const CHUNK: usize = 1 << 20;

pub struct Request<'a> {
    pub image: &'a Path,
    pub slot: Option<SlotId>,
    pub sha256: Option<&'a str>,
    /// Install over the last good slot although the booted slot is still on trial.
    pub force: bool,
    /// The public key images must be signed with (default: the one the boot used, if any).
    pub key: Option<&'a Path>,
    /// A downgrade token signed with that key: images from its security version up are taken.
    pub downgrade_token: Option<&'a Path>,
}

pub fn install(ctx: &Context, req: &Request<'_>) -> Result<String, String> {
    let target = target_slot(ctx, req)?;
    let dest = ctx.sources[target.index()]
        .clone()
        .ok_or_else(|| format!("slot {} has no image location in /run/overlay-init/slots", target.name()))?;
    if let Some(want) = req.sha256 {
        if want.len() != 64 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("--sha256 '{want}' is not 64 hex digits; nothing written"));
        }
    }
    let mut src = File::open(req.image).map_err(|e| format!("{}: {e}", req.image.display()))?;
    let mut len = check_image(&src, req.image)?;
    if ctx.hash[target.index()].is_some() {
        return Err(format!(
            "slot {} keeps its hash tree on a partition of its own (oinit.hashdev): write the image and its \
             hash partition with the update tool (RAUC), which activates the slot after both are checked; nothing written",
            target.name()
        ));
    }
    // The image's identity in the state record: its root hash where it is verified, else the
    // sha256 of what was written.
    let mut root = None;
    // The floor a downgrade token lowers the record's to, applied with the activation.
    let mut lowered = None;
    if let Some(key) = device_key(req.key.or(ctx.verity_key.as_deref()))? {
        let nothing = |e: String| format!("{}: {e}; nothing written", req.image.display());
        let checked = crate::verity::image::check(&src, len, None, &key).map_err(nothing)?;
        let mut floor = ctx.read()?.security_floor;
        if let Some(path) = req.downgrade_token {
            let text = crate::fs::careful::read_regular(path, 64 * 1024)
                .map_err(|e| format!("{}: {e}; nothing written", path.display()))?;
            let token = manifest::parse_token(&String::from_utf8_lossy(&text))
                .and_then(|t| manifest::verify_token(&key, &t, ctx.compatible.as_deref()))
                .map_err(|e| format!("{}: {e}; nothing written", path.display()))?;
            floor = floor.min(token);
            lowered = Some(floor);
        }
        let version =
            manifest::accept(checked.manifest.as_ref(), &checked.sb, &ctx.acceptance(floor)).map_err(nothing)?;
        eprintln!("install: security version {version} accepted (this device's floor: {floor})");
        eprintln!("install: signature and hash tree verified (root hash {})", hex(&checked.root));
        len = checked.len;
        root = Some(checked.root);
    }
    if let Some(files) = &ctx.kexec {
        // The open file itself, not the path again: a path swapped meanwhile changes nothing.
        let same = Path::new("/proc/self/fd").join(std::os::fd::AsRawFd::as_raw_fd(&src).to_string());
        let what = crate::cli::kernel_check::check(&same, files)
            .map_err(|e| format!("{}: {e}; nothing written", req.image.display()))?;
        eprintln!("install: {what}");
    }
    // Under U-Boot the slot leaves its order before a byte of it changes.
    if ctx.uboot {
        if ctx.boot[target.index()].is_none() {
            return Err(format!(
                "slot {} has no boot partition for its kernel (oinit.aboot/oinit.bboot): U-Boot could not boot it; \
                 nothing written",
                target.name()
            ));
        }
        crate::cli::uboot_install::withdraw(target)?;
    }
    let written = if let Some(volume) = ubi_volume(&dest) {
        write_ubi_volume(&mut src, req.image, &volume, len)?
    } else if dest.starts_with("/dev/") {
        write_partition(&mut src, req.image, Path::new(&dest), len)?
    } else {
        write_file(&mut src, Path::new(&dest), len)?
    };
    let digest = written;
    let written = hex(&digest);
    if let Some(want) = req.sha256.filter(|w| !w.eq_ignore_ascii_case(&written)) {
        // The slot now holds bytes nobody asked for: make sure it never boots, not even as a
        // fallback.
        let _ = ctx.update(|st| {
            slots::mark_bad(st, target);
            Ok(String::new())
        });
        return Err(format!(
            "{}: sha256 is {written}, expected {want}; slot {} marked bad, not activated",
            req.image.display(),
            target.name()
        ));
    }
    let readback = crate::cli::medium::hash_medium(Path::new(&dest), len)?;
    if readback != digest {
        return Err(format!(
            "{dest}: read-back sha256 {} differs from the written {written}; slot {} not activated",
            hex(&readback),
            target.name()
        ));
    }
    let mut next = format!("it boots next on trial ({} tries)", ctx.policy.tries);
    if ctx.uboot {
        eprintln!("install: {}", crate::cli::uboot_install::write_boot(ctx, target, &dest)?);
        next = crate::cli::uboot_install::offer(target)?;
    }
    ctx.update(|st| {
        slots::activate(st, target, ctx.policy, Some(root.unwrap_or(digest)));
        if let Some(floor) = lowered {
            st.security_floor = floor;
        }
        Ok(format!(
            "installed {} ({len} bytes, sha256 {written}) into slot {}; {next}",
            req.image.display(),
            target.name()
        ))
    })
}

/// The key images must be signed with: `--key`, else the copy the boot left when the board
/// verifies its lowers; None when neither exists (a board without verified images).
fn device_key(path: Option<&Path>) -> Result<Option<[u8; 32]>, String> {
    let Some(path) = path else { return Ok(None) };
    let bytes = crate::fs::careful::read_regular(path, 64 * 1024).map_err(|e| format!("{}: {e}", path.display()))?;
    crate::verity::signature::parse_public_key(&bytes).map(Some).map_err(|e| format!("{}: {e}", path.display()))
}

/// The identity of the image a slot holds now (written by someone else, RAUC say), checked
/// before the slot is activated: on a board that verifies its lowers, the image must be signed
/// and whole and its root hash is the identity; elsewhere the sha256 of the image's bytes (as
/// far as its superblock says it reaches).
pub fn slot_digest(ctx: &Context, slot: SlotId) -> Result<Digest, String> {
    let open = |path: &str| {
        let mut f = File::open(path).map_err(|e| format!("{path}: {e}"))?;
        let len = f.seek(SeekFrom::End(0)).map_err(|e| format!("{path}: {e}"))?;
        Ok::<_, String>((f, len))
    };
    let key = device_key(ctx.verity_key.as_deref())?;
    let src = match (ctx.sources[slot.index()].as_ref(), key) {
        (Some(src), _) => src,
        // Nothing to read (a state file handled alone, `--state`): an image nobody can name.
        (None, None) => return Ok(DIGEST_UNKNOWN),
        (None, Some(_)) => return Err(format!("slot {} has no image location; not activated", slot.name())),
    };
    let (f, len) = open(src)?;
    let Some(key) = key else {
        let mut head = vec![0u8; probe::PROBE_LEN];
        let size = match f.read_exact_at(&mut head, 0).ok().and_then(|()| probe::probe_fs(&head)) {
            Some(fs) if fs.kind.is_image() && fs.size <= len => fs.size,
            _ => return Err(format!("slot {} ({src}): no whole squashfs or EROFS image; not activated", slot.name())),
        };
        return crate::cli::medium::hash_from(&f, size, src);
    };
    let hash = ctx.hash[slot.index()].as_deref().map(open).transpose()?;
    let floor = ctx.read()?.security_floor;
    crate::verity::image::check(&f, len, hash.as_ref().map(|(h, l)| (h, *l)), &key)
        .and_then(|c| manifest::accept(c.manifest.as_ref(), &c.sb, &ctx.acceptance(floor)).map(|_| c.root))
        .map_err(|e| format!("slot {} ({src}): {e}; not activated", slot.name()))
}

/// The slot to write: never the booted one, and not the last good one while the booted slot is
/// still on trial (that would leave no known-good image to roll back to) unless forced.
fn target_slot(ctx: &Context, req: &Request<'_>) -> Result<SlotId, String> {
    let target = match (req.slot, ctx.booted) {
        (Some(s), Some(b)) if s == b => {
            return Err(format!("slot {} is the booted slot; refusing to overwrite the running system", s.name()))
        }
        (Some(s), _) => s,
        (None, Some(b)) => b.other(),
        (None, None) => return Err("the booted slot is unknown; name the target with --slot".into()),
    };
    let st = ctx.read()?;
    let booted_on_trial = ctx.booted.is_some_and(|b| !st.slot(b).good);
    if booted_on_trial && st.last_good == Some(target) && !req.force {
        return Err(format!(
            "slot {} is the last good slot and the booted slot is still on trial: mark the booted slot good first, or pass --force",
            target.name()
        ));
    }
    Ok(target)
}

/// A squashfs 4 or EROFS image whose superblock size fits the file; returns its length.
fn check_image(f: &File, image: &Path) -> Result<u64, String> {
    let len = f.metadata().map_err(|e| format!("{}: {e}", image.display()))?.len();
    let mut head = vec![0u8; probe::PROBE_LEN];
    f.read_exact_at(&mut head, 0).map_err(|_| format!("{}: too short to be an image", image.display()))?;
    match probe::probe_fs(&head) {
        Some(fs) if fs.kind.is_image() && fs.size <= len => Ok(len),
        Some(fs) if fs.kind.is_image() => {
            Err(format!("{}: truncated ({len} bytes, the superblock says {})", image.display(), fs.size))
        }
        _ => Err(format!("{}: not a squashfs or EROFS image", image.display())),
    }
}

/// Copies `len` bytes from the start of `src` with progress on stderr; returns the sha256 of
/// what was written.
fn copy(src: &mut File, out: &mut File, len: u64, what: &str) -> Result<Digest, String> {
    src.seek(SeekFrom::Start(0)).map_err(|e| format!("{what}: {e}"))?;
    let mut h = Sha256::default();
    let mut buf = vec![0u8; CHUNK];
    let (mut done, mut shown) = (0u64, 0u64);
    while done < len {
        let n = usize::try_from(len - done).unwrap_or(CHUNK).min(CHUNK);
        src.read_exact(&mut buf[..n]).map_err(|e| format!("reading the image: {e}"))?;
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
    Ok(h.finish())
}

/// A partition slot, opened `O_EXCL`: the kernel refuses (EBUSY) while it is mounted.
fn write_partition(src: &mut File, image: &Path, dev: &Path, len: u64) -> Result<Digest, String> {
    let mut out = OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::EXCL.bits() as i32)
        .open(dev)
        .map_err(|e| format!("{}: {e} (is it mounted or in use?)", dev.display()))?;
    let capacity = out.seek(SeekFrom::End(0)).map_err(|e| format!("{}: {e}", dev.display()))?;
    if len > capacity {
        return Err(format!("{} ({len} bytes) does not fit {} ({capacity} bytes)", image.display(), dev.display()));
    }
    out.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    copy(src, &mut out, len, &dev.display().to_string())
}

/// The UBI volume behind a ubiblock slot (`/dev/ubiblockX_Y` reads `/dev/ubiX_Y`).
fn ubi_volume(dest: &str) -> Option<String> {
    let (dev, vol) = dest.strip_prefix("/dev/ubiblock")?.split_once('_')?;
    (dev.parse::<u32>().is_ok() && vol.parse::<u32>().is_ok()).then(|| format!("/dev/ubi{dev}_{vol}"))
}

/// A UBI volume slot: one atomic volume update (`UBI_IOCVOLUP`). A power cut before the last
/// byte leaves the volume marked corrupted: it never mounts, and the slot is never activated.
fn write_ubi_volume(src: &mut File, image: &Path, volume: &str, len: u64) -> Result<Digest, String> {
    let name = volume.trim_start_matches("/dev/");
    let sys = Path::new("/sys/class/ubi").join(name);
    let read = |f: &str| std::fs::read_to_string(sys.join(f)).ok().and_then(|t| t.trim().parse::<u64>().ok());
    let capacity = read("reserved_ebs").zip(read("usable_eb_size")).map(|(n, size)| n * size);
    if let Some(capacity) = capacity.filter(|c| len > *c) {
        return Err(format!("{} ({len} bytes) does not fit {volume} ({capacity} bytes)", image.display()));
    }
    let mut out = OpenOptions::new().write(true).open(volume).map_err(|e| format!("{volume}: {e}"))?;
    crate::sys::ubi::start_update(&out, len).map_err(|e| format!("{volume}: UBI_IOCVOLUP: {e}"))?;
    copy(src, &mut out, len, volume)
}

/// A file slot: written next to its place, fsynced, renamed over it, directory fsynced, so the
/// slot holds the old image or the new one, never half of one.
fn write_file(src: &mut File, dest: &Path, len: u64) -> Result<Digest, String> {
    let tmp = PathBuf::from(format!("{}.new", dest.display()));
    let _ = std::fs::remove_file(&tmp);
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    let digest = copy(src, &mut out, len, &tmp.display().to_string())?;
    std::fs::rename(&tmp, dest).map_err(|e| format!("rename {} over {}: {e}", tmp.display(), dest.display()))?;
    let dir = dest.parent().unwrap_or(Path::new("/"));
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| format!("{}: fsync: {e}", dir.display()))?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ab::slots::Policy;
    use crate::ab::state::State;
    use crate::ab::store::Store;

    #[test]
    fn ubiblock_slots_are_written_through_their_volume() {
        assert_eq!(ubi_volume("/dev/ubiblock0_1").as_deref(), Some("/dev/ubi0_1"));
        assert_eq!(ubi_volume("/dev/ubiblock0"), None);
        assert_eq!(ubi_volume("/dev/vda3"), None);
    }

    #[test]
    fn the_last_good_slot_is_kept_while_the_booted_one_is_on_trial() {
        let dir = std::env::temp_dir().join(format!("oi-install-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("state");
        let (mut store, _) = Store::open(&path).unwrap();
        let mut st = State::factory(3);
        // Booted b on trial; a is the last good slot.
        slots::mark_good(&mut st, SlotId::A, Policy { tries: 3, late_fallback: false, one_slot: false });
        slots::activate(&mut st, SlotId::B, Policy { tries: 3, late_fallback: false, one_slot: false }, Some([1; 32]));
        store.save(&mut st).unwrap();
        drop(store);
        let ctx = Context {
            booted: Some(SlotId::B),
            state: path.clone(),
            policy: Policy { tries: 3, late_fallback: false, one_slot: false },
            sources: [Some("/dev/null-a".into()), Some("/dev/null-b".into())],
            hash: [None, None],
            verity_key: None,
            compatible: None,
            unversioned: false,
            security_version: None,
            kexec: None,
            uboot: false,
            boot: [None, None],
        };
        let req = |force| Request {
            image: Path::new("/x"),
            slot: None,
            sha256: None,
            force,
            key: None,
            downgrade_token: None,
        };
        let err = target_slot(&ctx, &req(false)).unwrap_err();
        assert!(err.contains("slot a is the last good slot"), "{err}");
        assert_eq!(target_slot(&ctx, &req(true)), Ok(SlotId::A));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
