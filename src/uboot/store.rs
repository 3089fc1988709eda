//! Reading and writing the environment's copies where `fw_env.config` puts them. A redundant
//! environment is written to the copy that is not current, with the next flags byte, synced and
//! read back: a cut write leaves the current copy as it was. A single copy that is a whole file
//! (a board whose state lives in a file on its boot partition) is replaced by a synced rename; a
//! single copy inside a device can only be written in place (U-Boot's own layout, not crash-safe:
//! U-Boot falls back to its built-in environment after a cut write, docs/uboot.md).

use crate::rt::fs::{File, OpenOptions};
use crate::rt::io::{Seek, SeekFrom, Write};
use crate::rt::os::unix::fs::FileExt;
use crate::rt::prelude::*;
use crate::uboot::bootchooser::{self, Change, Chooser};
use crate::uboot::config::{EnvConfig, Location};
use crate::uboot::env::{self, Bad, Copy, Vars};

/// What was read: the current copy's variables (empty when none is valid) and each copy's state.
#[derive(Debug)]
pub struct Loaded {
    pub vars: Vars,
    /// Index of the current copy in `EnvConfig::copies`.
    pub current: Option<usize>,
    copies: Vec<Result<Copy, Bad>>,
}

impl Loaded {
    /// Why each copy is not usable, `DEVICE at OFFSET: why`, for errors and `status`.
    pub fn problems(&self, cfg: &EnvConfig) -> Vec<String> {
        cfg.copies
            .iter()
            .zip(&self.copies)
            .filter_map(|(at, c)| c.as_ref().err().map(|why| format!("{}: {why}", place(at))))
            .collect()
    }
}

fn place(at: &Location) -> String {
    format!("{} at offset {}", at.device, at.offset)
}

/// The byte position of `at` in its open device or file.
fn position(file: &mut File, at: &Location) -> Result<u64, String> {
    if at.offset >= 0 {
        return Ok(at.offset as u64);
    }
    let end = file.seek(SeekFrom::End(0)).map_err(|e| format!("{}: seek to its end: {e}", at.device))?;
    end.checked_sub(at.offset.unsigned_abs()).ok_or_else(|| format!("{}: smaller than the offset", place(at)))
}

fn read_copy(at: &Location) -> Result<Vec<u8>, String> {
    let mut file = File::open(&at.device).map_err(|e| format!("open {}: {e}", at.device))?;
    let pos = position(&mut file, at)?;
    let mut block = vec![0u8; at.size];
    file.read_exact_at(&mut block, pos).map_err(|e| format!("read {} bytes of {}: {e}", at.size, place(at)))?;
    Ok(block)
}

/// Reads every copy. Err: a copy could not be read at all (the device or file is missing, or
/// shorter than the configuration says).
pub fn read(cfg: &EnvConfig) -> Result<Loaded, String> {
    let mut copies = Vec::new();
    for at in &cfg.copies {
        copies.push(env::decode(&read_copy(at)?, cfg.redundant()));
    }
    let current = env::current([&copies[0], copies.get(1).unwrap_or(&Err(Bad::Blank))]);
    let vars = current.and_then(|i| copies[i].as_ref().ok()).map(|c| c.vars.clone()).unwrap_or_default();
    Ok(Loaded { vars, current, copies })
}

/// The configuration in the `fw_env.config` at `path`, and the environment it locates.
pub fn open(path: &str) -> Result<(EnvConfig, Loaded), String> {
    let text = crate::rt::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let cfg = crate::uboot::config::parse(&text, path)?;
    let loaded = read(&cfg)?;
    Ok((cfg, loaded))
}

/// RAUC's boot selection in the environment the `fw_env.config` at `path` locates; Err when no
/// copy is valid ("no valid state": U-Boot's script boots slot A with fresh tries) or the
/// variables cannot be read.
pub fn selection(path: &str) -> Result<Chooser, String> {
    let (cfg, loaded) = open(path)?;
    match loaded.current {
        Some(_) => Chooser::read(&loaded.vars),
        None => Err(format!("no valid environment ({})", loaded.problems(&cfg).join("; "))),
    }
}

/// One change to RAUC's boot selection (`BOOT_ORDER`, `BOOT_x_LEFT`) in the environment the
/// `fw_env.config` at `path` locates, as one write; returns the selection written. Refused
/// with nothing written when the selection's variables cannot be read.
pub fn change(path: &str, change: Change) -> Result<Chooser, String> {
    let (cfg, loaded) = open(path)?;
    let mut vars = loaded.vars.clone();
    let chosen = bootchooser::apply(&mut vars, change)?;
    write(&cfg, &loaded, &vars)?;
    Ok(chosen)
}

/// Writes `vars` as the new environment after `loaded` (what `read` returned under the same
/// configuration); returns where it went. Refuses to write over copies that are neither valid
/// nor blank: a wrong offset or size in fw_env.config would otherwise destroy whatever is there.
pub fn write(cfg: &EnvConfig, loaded: &Loaded, vars: &Vars) -> Result<String, String> {
    if loaded.current.is_none() && loaded.copies.iter().any(|c| !matches!(c, Err(Bad::Blank))) {
        return Err(format!(
            "no valid environment ({}): not writing over data overlay-init does not recognise; check fw_env.config \
             against U-Boot's CONFIG_ENV_OFFSET and CONFIG_ENV_SIZE, or let U-Boot save its environment once (saveenv)",
            loaded.problems(cfg).join("; ")
        ));
    }
    let (target, flags) = if cfg.redundant() {
        let flags = loaded.current.and_then(|i| loaded.copies[i].as_ref().ok()).and_then(|c| c.flags);
        (loaded.current.map_or(0, |i| 1 - i), Some(flags.map_or(1, |f| f.wrapping_add(1))))
    } else {
        (0, None)
    };
    let block = env::encode(vars, cfg.size(), flags)?;
    let at = &cfg.copies[target];
    if !cfg.redundant() && at.offset == 0 && whole_file(at) {
        replace_file(at, &block)?;
    } else {
        write_in_place(at, &block)?;
    }
    // Read back: what U-Boot will read is what was meant.
    match env::decode(&read_copy(at)?, cfg.redundant()) {
        Ok(c) if &c.vars == vars => Ok(place(at)),
        Ok(_) => Err(format!("{}: read back different from what was written", place(at))),
        Err(why) => Err(format!("{}: read back: {why}", place(at))),
    }
}

/// A regular file of exactly the environment's size: the whole file is the copy.
fn whole_file(at: &Location) -> bool {
    crate::rt::fs::metadata(&at.device).is_ok_and(|m| m.is_file() && m.len() == at.size as u64)
}

fn write_in_place(at: &Location, block: &[u8]) -> Result<(), String> {
    // Held until the write is synced; read-only again after.
    let _unlocked = BootPartition::unlock(&at.device)?;
    let mut file = OpenOptions::new().write(true).open(&at.device).map_err(|e| format!("open {}: {e}", at.device))?;
    let pos = position(&mut file, at)?;
    file.write_all_at(block, pos).map_err(|e| format!("write {}: {e}", place(at)))?;
    file.sync_all().map_err(|e| format!("fsync {}: {e}", at.device))
}

/// An eMMC boot partition (`/dev/mmcblkNbootM`, where i.MX6 boards keep U-Boot's environment)
/// made writable for one write: the kernel keeps it read-only (`force_ro` 1) so that nothing
/// overwrites the bootloader by mistake. Read-only again when dropped, as libubootenv leaves it.
struct BootPartition(Option<String>);

impl BootPartition {
    fn unlock(device: &str) -> Result<BootPartition, String> {
        let Some(name) = boot_partition_name(device) else { return Ok(BootPartition(None)) };
        let ro = format!("/sys/block/{name}/force_ro");
        if crate::rt::fs::read_to_string(&ro).map(|v| v.trim() == "0").unwrap_or(true) {
            return Ok(BootPartition(None));
        }
        crate::rt::fs::write(&ro, "0").map_err(|e| format!("{ro}: write 0 to make {device} writable: {e}"))?;
        Ok(BootPartition(Some(ro)))
    }
}

/// `mmcblk0boot0` for `/dev/mmcblk0boot0`; None for any other device or a file.
fn boot_partition_name(device: &str) -> Option<&str> {
    let name = device.strip_prefix("/dev/")?;
    let (n, m) = name.strip_prefix("mmcblk")?.split_once("boot")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    (digits(n) && digits(m)).then_some(name)
}

impl Drop for BootPartition {
    fn drop(&mut self) {
        if let Some(ro) = &self.0 {
            if let Err(e) = crate::rt::fs::write(ro, "1") {
                log::warn!("{ro}: could not make the eMMC boot partition read-only again: {e}");
            }
        }
    }
}

/// Beside it, synced, renamed over it, the directory synced.
fn replace_file(at: &Location, block: &[u8]) -> Result<(), String> {
    let path = crate::rt::path::Path::new(&at.device);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(crate::rt::path::Path::new("."));
    let tmp = dir.join(format!(".{}.new", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    let mut file = File::create(&tmp).map_err(|e| format!("create {}: {e}", tmp.display()))?;
    file.write_all(block).and_then(|()| file.sync_all()).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    crate::rt::fs::rename(&tmp, path).map_err(|e| format!("rename {} to {}: {e}", tmp.display(), at.device))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| format!("fsync {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_emmc_boot_partitions_are_unlocked() {
        assert_eq!(boot_partition_name("/dev/mmcblk0boot0"), Some("mmcblk0boot0"));
        assert_eq!(boot_partition_name("/dev/mmcblk12boot1"), Some("mmcblk12boot1"));
        for other in
            ["/dev/mmcblk0", "/dev/mmcblk0p1", "/dev/mmcblkboot0", "/dev/mmcblk0boot", "mmcblk0boot0", "/dev/vda"]
        {
            assert_eq!(boot_partition_name(other), None, "{other}");
        }
    }
}
