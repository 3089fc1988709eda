//! The block devices the kernel knows, read from sysfs uevents and the devices' own first bytes.

use crate::block::probe::{self, FsInfo};
use crate::block::spec::DevSpec;
use crate::rt::fs::File;
use crate::rt::io::{Read, Seek, SeekFrom};
use crate::rt::path::Path;
use crate::rt::prelude::*;
use core::fmt;

/// One block device as sysfs and its superblock describe it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockDev {
    pub name: String,
    pub major: u32,
    pub minor: u32,
    /// Size in bytes (sysfs `size` is in 512-byte sectors whatever the logical block size).
    pub size: u64,
    pub partn: Option<u32>,
    pub partlabel: Option<String>,
    pub partuuid: Option<String>,
    pub parent: Option<String>,
    pub fs: Option<FsInfo>,
    /// For an `mtdblockN` device: the MTD partition behind it.
    pub mtd: Option<Box<Mtd>>,
    /// For a `ubiblockX_Y` device (or a UBI volume listed by `ubi_volumes`): the volume.
    pub ubi: Option<Box<UbiVol>>,
}

/// A UBI volume as `/sys/class/ubi/ubiX_Y` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UbiVol {
    pub dev: u32,
    pub vol: u32,
    pub name: String,
    /// False for a volume the boot is to create (the UBI device has no volume of that name).
    pub exists: bool,
}

impl UbiVol {
    fn matches(&self, dev: Option<u32>, volume: &str) -> bool {
        self.name == volume && dev.is_none_or(|d| d == self.dev)
    }
}

/// The volume ID the kernel gives a new volume (UBI_VOL_NUM_AUTO): the lowest one not in use.
pub fn lowest_free_id(used: impl Iterator<Item = u32>) -> u32 {
    let mut used: Vec<u32> = used.collect();
    crate::util::sort::sort(&mut used);
    let mut id = 0;
    for u in used {
        if u == id {
            id += 1;
        } else if u > id {
            break;
        }
    }
    id
}

/// The UBI volumes of every attached UBI device (`/sys/class/ubi/ubiX_Y`), as pseudo devices:
/// a UBIFS is mounted from the volume, not from a block device.
pub fn ubi_volumes(sysfs: &Path) -> Vec<BlockDev> {
    let mut out = Vec::new();
    for e in crate::rt::fs::read_dir(sysfs.join("class/ubi")).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((dev, vol)) = name.strip_prefix("ubi").and_then(|r| r.split_once('_')) else { continue };
        let (Ok(dev), Ok(vol)) = (dev.parse(), vol.parse()) else { continue };
        let Some(vname) = read_trim(&e.path().join("name")) else { continue };
        let size = read_trim(&e.path().join("data_bytes")).and_then(|s| s.parse().ok()).unwrap_or(0);
        out.push(BlockDev {
            name,
            size,
            ubi: Some(Box::new(UbiVol { dev, vol, name: vname, exists: true })),
            ..Default::default()
        });
    }
    crate::util::sort::sort_by(&mut out, |a, b| a.name < b.name);
    out
}

/// The bytes a new volume can have on UBI device `dev`: its available eraseblocks times their
/// usable size. None when the device is not attached.
pub fn ubi_free(sysfs: &Path, dev: u32) -> Option<u64> {
    let dir = sysfs.join("class/ubi").join(format!("ubi{dev}"));
    let blocks: u64 = read_trim(&dir.join("avail_eraseblocks"))?.parse().ok()?;
    let size: u64 = read_trim(&dir.join("eraseblock_size"))?.parse().ok()?;
    Some(blocks * size)
}

/// The usable size of one logical eraseblock of UBI device `dev`.
pub fn ubi_leb_size(sysfs: &Path, dev: u32) -> Option<u64> {
    read_trim(&sysfs.join("class/ubi").join(format!("ubi{dev}")).join("eraseblock_size"))?.parse().ok()
}

/// An MTD device as `/sys/class/mtd/mtdN` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mtd {
    pub index: u32,
    pub name: String,
    pub erasesize: u64,
    /// For a partition: its master MTD device and where in it the partition starts, when known
    /// (a kernel with `CONFIG_MTD_PARTITIONED_MASTER` puts partitions under their master in
    /// sysfs; `mtdparts=` tables applied by the init say it otherwise). BLKPG works on masters.
    pub master: Option<(u32, u64)>,
}

/// The fields we use from a `uevent` file (`KEY=value` lines).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Uevent {
    pub major: u32,
    pub minor: u32,
    pub devname: String,
    pub partition: bool,
    pub partn: Option<u32>,
    pub partname: Option<String>,
}

pub fn parse_uevent(text: &str) -> Uevent {
    let mut u = Uevent::default();
    for (k, v) in text.lines().filter_map(|l| l.split_once('=')) {
        match k {
            "MAJOR" => u.major = v.parse().unwrap_or(0),
            "MINOR" => u.minor = v.parse().unwrap_or(0),
            "DEVNAME" => u.devname = v.to_string(),
            "DEVTYPE" => u.partition = v == "partition",
            "PARTN" => u.partn = v.parse().ok(),
            "PARTNAME" => u.partname = Some(v.to_string()),
            _ => {}
        }
    }
    u
}

impl BlockDev {
    /// Whether this device is the one `spec` names.
    pub fn matches(&self, spec: &DevSpec) -> bool {
        let fs = self.fs.as_ref();
        match spec {
            DevSpec::Path(n) => &self.name == n,
            DevSpec::Number(a, b) => (self.major, self.minor) == (*a, *b),
            DevSpec::Label(l) => fs.and_then(|f| f.label.as_ref()) == Some(l),
            DevSpec::Uuid(u) => fs.and_then(|f| f.uuid.as_ref()) == Some(u),
            DevSpec::PartUuid(u) => self.partuuid.as_ref() == Some(u),
            DevSpec::PartLabel(l) => self.partlabel.as_ref() == Some(l),
            DevSpec::Mtd(n) => self.mtd.as_ref().is_some_and(|m| &m.name == n),
            DevSpec::Ubi { dev, volume } => self.ubi.as_ref().is_some_and(|u| u.matches(*dev, volume)),
        }
    }

    pub fn fs_name(&self) -> &'static str {
        self.fs.as_ref().map_or("unknown", |f| f.kind.name())
    }
}

impl fmt::Display for BlockDev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.major == 0 && self.ubi.is_some() {
            write!(f, "/dev/{} (UBI volume, {} MiB", self.name, self.size >> 20)?;
        } else {
            write!(f, "/dev/{} ({}:{}, {} MiB", self.name, self.major, self.minor, self.size >> 20)?;
        }
        if let Some(l) = &self.partlabel {
            write!(f, ", PARTLABEL={l}")?;
        }
        if let Some(u) = &self.partuuid {
            write!(f, ", PARTUUID={u}")?;
        }
        if let Some(m) = &self.mtd {
            write!(f, ", mtd:{} erase block {} KiB", m.name, m.erasesize >> 10)?;
        }
        if let Some(u) = &self.ubi {
            write!(f, ", ubi{}:{}", u.dev, u.name)?;
        }
        match &self.fs {
            None => f.write_str(", no known filesystem")?,
            Some(fs) => {
                write!(f, ", {}", fs.kind.name())?;
                if let Some(l) = &fs.label {
                    write!(f, " LABEL={l}")?;
                }
                if let Some(u) = &fs.uuid {
                    write!(f, " UUID={u}")?;
                }
            }
        }
        f.write_str(")")
    }
}

/// Lists every block device under `sysfs/class/block`, probing each device node under `dev`.
/// Devices that cannot be read (an unbound loop device) are listed without a filesystem.
pub fn scan(sysfs: &Path, dev: &Path) -> Vec<BlockDev> {
    let mut out = list(sysfs);
    for d in &mut out {
        identify(d, dev);
    }
    out
}

/// Lists every block device under `sysfs/class/block` as sysfs describes it (name, numbers,
/// size, partition number and name, MTD and UBI identity), reading nothing from the devices:
/// enough to match `/dev/NAME`, `MAJ:MIN`, `PARTLABEL=`, `mtd:` and `ubi:`.
pub fn list(sysfs: &Path) -> Vec<BlockDev> {
    let mut out = Vec::new();
    let Ok(entries) = crate::rt::fs::read_dir(sysfs.join("class/block")) else {
        return out;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let Ok(text) = crate::rt::fs::read_to_string(dir.join("uevent")) else {
            continue;
        };
        let u = parse_uevent(&text);
        let name = if u.devname.is_empty() { entry.file_name().to_string_lossy().into_owned() } else { u.devname };
        let sectors: u64 = read_trim(&dir.join("size")).and_then(|s| s.parse().ok()).unwrap_or(0);
        // Empty devices (unbound loop devices, card readers without a card) cannot hold anything.
        if sectors == 0 {
            continue;
        }
        out.push(BlockDev {
            // A partition's sysfs link points into its disk's directory: .../block/vda/vda1.
            parent: u.partition.then(|| parent_name(&dir)).flatten(),
            mtd: mtd_of(sysfs, &name),
            ubi: ubiblock_of(sysfs, &name),
            name,
            major: u.major,
            minor: u.minor,
            size: sectors.saturating_mul(512),
            partn: u.partn,
            partlabel: u.partname,
            ..Default::default()
        });
    }
    crate::util::sort::sort_by(&mut out, |a, b| a.name < b.name);
    out
}

/// Adds what only the device itself says to a listed one: its filesystem (from its first
/// bytes) and, for a partition, its PARTUUID (from its disk's partition table).
pub fn identify(d: &mut BlockDev, dev: &Path) {
    d.fs = read_head(&dev.join(&d.name), 0, probe::PROBE_LEN).and_then(|b| probe::probe_fs(&b));
    d.partuuid = match (&d.parent, d.partn) {
        (Some(p), Some(n)) => partuuid(&dev.join(p), n),
        _ => None,
    };
}

/// `mtdblockN` reads MTD device N: its name and erase block size from `/sys/class/mtd/mtdN`.
fn mtd_of(sysfs: &Path, name: &str) -> Option<Box<Mtd>> {
    let index: u32 = name.strip_prefix("mtdblock")?.parse().ok()?;
    let dir = sysfs.join("class/mtd").join(format!("mtd{index}"));
    let master = parent_name(&dir).and_then(|p| p.strip_prefix("mtd")?.parse().ok());
    let offset = read_trim(&dir.join("offset")).and_then(|s| s.parse().ok()).unwrap_or(0);
    Some(Box::new(Mtd {
        index,
        name: read_trim(&dir.join("name"))?,
        erasesize: read_trim(&dir.join("erasesize")).and_then(|s| s.parse().ok()).unwrap_or(0),
        master: master.map(|m| (m, offset)),
    }))
}

/// `ubiblockX_Y` reads UBI volume Y of device X: its name from `/sys/class/ubi/ubiX_Y`.
fn ubiblock_of(sysfs: &Path, name: &str) -> Option<Box<UbiVol>> {
    let (dev, vol) = name.strip_prefix("ubiblock")?.split_once('_')?;
    let (dev, vol) = (dev.parse().ok()?, vol.parse().ok()?);
    let vname = read_trim(&sysfs.join("class/ubi").join(format!("ubi{dev}_{vol}")).join("name"))?;
    Some(Box::new(UbiVol { dev, vol, name: vname, exists: true }))
}

fn read_trim(path: &Path) -> Option<String> {
    crate::rt::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn parent_name(dir: &Path) -> Option<String> {
    let target = crate::rt::fs::read_link(dir).ok()?;
    let parent = target.parent()?.file_name()?;
    Some(parent.to_string_lossy().into_owned())
}

/// Reads `len` bytes at `offset` from a device or file; None if it is shorter or unreadable.
pub fn read_head(path: &Path, offset: u64, len: usize) -> Option<Vec<u8>> {
    let mut f = File::open(path).ok()?;
    f.seek(SeekFrom::Start(offset)).ok()?;
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// The identity of the squashfs image at `path` (a slot's partition or file), if it holds one.
pub fn image_id_at(path: &Path) -> Option<u32> {
    read_head(path, 0, probe::PROBE_LEN).and_then(|b| probe::image_id(&b))
}

/// PARTUUID of partition `partn` on `disk`: from its GPT (512 or 4096-byte sectors), else MBR.
fn partuuid(disk: &Path, partn: u32) -> Option<String> {
    for sector in [512u64, 4096] {
        let Some(table) = read_head(disk, sector, 512).and_then(|h| probe::gpt_header(&h, sector)) else {
            continue;
        };
        if partn == 0 || partn > table.count {
            return None;
        }
        // Both factors are u32: the product fits u64; the sum is checked (entries_offset comes
        // from the disk).
        let at = table.entries_offset.checked_add(u64::from(partn - 1) * u64::from(table.entry_size))?;
        return read_head(disk, at, 128).and_then(|e| probe::gpt_entry_uuid(&e));
    }
    read_head(disk, 0, 512).and_then(|s| probe::mbr_partuuid(&s, partn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_volume_gets_the_lowest_free_id() {
        assert_eq!(lowest_free_id([].into_iter()), 0);
        assert_eq!(lowest_free_id([0, 1].into_iter()), 2);
        assert_eq!(lowest_free_id([1, 0, 3].into_iter()), 2);
        assert_eq!(lowest_free_id([2, 3].into_iter()), 0);
    }

    #[test]
    fn uevent_fields() {
        let u = parse_uevent(
            "MAJOR=254\nMINOR=2\nDEVNAME=vda2\nDEVTYPE=partition\nDISKSEQ=9\nPARTN=2\nPARTNAME=userdata\n",
        );
        assert_eq!(
            u,
            Uevent {
                major: 254,
                minor: 2,
                devname: "vda2".into(),
                partition: true,
                partn: Some(2),
                partname: Some("userdata".into())
            }
        );
        assert_eq!(parse_uevent("garbage\nMAJOR=x"), Uevent::default());
    }

    #[test]
    fn matching() {
        let d = BlockDev {
            name: "vda2".into(),
            major: 254,
            minor: 2,
            partlabel: Some("userdata".into()),
            partuuid: Some("abcd".into()),
            fs: probe::probe_fs(&probe::tests::ext4_image([1; 16], "data", 8)),
            ..Default::default()
        };
        let yes = [
            "/dev/vda2",
            "254:2",
            "PARTLABEL=userdata",
            "PARTUUID=ABCD",
            "LABEL=data",
            "UUID=01010101-0101-0101-0101-010101010101",
        ];
        for s in yes {
            assert!(d.matches(&DevSpec::parse(s).unwrap()), "{s}");
        }
        let no = ["/dev/vda1", "254:1", "PARTLABEL=rootfs", "PARTUUID=abce", "LABEL=Data", "UUID=01"];
        for s in no {
            assert!(!d.matches(&DevSpec::parse(s).unwrap()), "{s}");
        }
        assert!(d.to_string().contains("PARTLABEL=userdata"));
        assert!(d.to_string().contains("ext4 LABEL=data"));
    }
}
