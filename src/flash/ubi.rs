//! NAND from userspace, as mtd-utils' `ubiattach` and `ubiblock --create` do: which MTD partition
//! to attach as a UBI device and which UBI volumes need a read-only block device (a squashfs or
//! EROFS lower is mounted from a block device, a UBIFS from the volume itself). Pure: the facts
//! come from sysfs, the actions go to `sys::ubi`. Every action is skipped when the kernel did it
//! already (`ubi.mtd=`, `ubi.block=` or a vendor kernel), so the init and the kernel's parameters
//! can be mixed.

use crate::block::spec::DevSpec;
use crate::rt::path::Path;
use crate::rt::prelude::*;

/// What sysfs says about the flash.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// MTD devices: number and name (`/sys/class/mtd/mtdN/name`).
    pub mtds: Vec<(u32, String)>,
    /// Attached UBI devices: number and the MTD number under them (`/sys/class/ubi/ubiN/mtd_num`).
    pub ubis: Vec<(u32, u32)>,
    /// UBI volumes: device, volume id, name (`/sys/class/ubi/ubiN_M/name`).
    pub volumes: Vec<(u32, u32, String)>,
    /// Volumes that already have a block device (`/sys/class/block/ubiblockN_M`).
    pub blocks: Vec<(u32, u32)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// `UBI_IOCATT` of MTD device `mtd` on `/dev/ubi_ctrl`.
    Attach { mtd: u32, name: String },
    /// `UBI_IOCVOLCRBLK` on `/dev/ubiN_M`.
    MakeBlock { ubi: u32, vol: u32, name: String },
}

/// The actions that bring the flash to what the settings need: `attach` names the MTD partition
/// to attach (`oinit.ubi=`), `lowers` the devices read as images (root, slots). An MTD partition
/// or volume that is not there yet is simply not acted on: the device search waits for it and
/// reports it missing with what exists.
pub fn decide(attach: Option<&str>, lowers: &[&DevSpec], f: &Facts) -> Vec<Action> {
    let mut out = Vec::new();
    if let Some(name) = attach {
        if let Some((mtd, _)) = f.mtds.iter().find(|(_, n)| n == name) {
            if !f.ubis.iter().any(|(_, m)| m == mtd) {
                out.push(Action::Attach { mtd: *mtd, name: name.to_string() });
            }
        }
    }
    for spec in lowers {
        let DevSpec::Ubi { dev, volume } = spec else { continue };
        let found = f.volumes.iter().find(|(d, _, n)| n == volume && dev.is_none_or(|want| want == *d));
        if let Some((ubi, vol, _)) = found {
            if !f.blocks.contains(&(*ubi, *vol)) {
                out.push(Action::MakeBlock { ubi: *ubi, vol: *vol, name: volume.clone() });
            }
        }
    }
    out
}

/// Reads the facts from sysfs.
pub fn facts(sysfs: &Path) -> Facts {
    let entries = |dir: &str| -> Vec<(String, crate::rt::path::PathBuf)> {
        crate::rt::fs::read_dir(sysfs.join(dir))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect()
    };
    let read = |p: &Path| crate::rt::fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    let mut f = Facts::default();
    for (name, path) in entries("class/mtd") {
        // mtdNro is the read-only character node of the same device.
        if let Some(n) = name.strip_prefix("mtd").and_then(|n| n.parse().ok()) {
            if let Some(label) = read(&path.join("name")) {
                f.mtds.push((n, label));
            }
        }
    }
    for (name, path) in entries("class/ubi") {
        let Some(rest) = name.strip_prefix("ubi") else { continue };
        match rest.split_once('_') {
            None => {
                if let (Ok(n), Some(Ok(mtd))) = (rest.parse(), read(&path.join("mtd_num")).map(|m| m.parse())) {
                    f.ubis.push((n, mtd));
                }
            }
            Some((d, v)) => {
                if let (Ok(d), Ok(v), Some(label)) = (d.parse(), v.parse(), read(&path.join("name"))) {
                    f.volumes.push((d, v, label));
                }
            }
        }
    }
    for (name, _) in entries("class/block") {
        if let Some((d, v)) = name.strip_prefix("ubiblock").and_then(|r| r.split_once('_')) {
            if let (Ok(d), Ok(v)) = (d.parse(), v.parse()) {
                f.blocks.push((d, v));
            }
        }
    }
    f
}

/// The magic of the erase counter header at the start of every physical eraseblock of a UBI
/// image (`UBI_EC_HDR_MAGIC`, "UBI#").
const EC_MAGIC: &[u8; 4] = b"UBI#";

/// The eraseblock size a UBI image was made for (ubinize -p): the distance between its first two
/// erase counter headers, found at 1 KiB boundaries in `data`, the start of the MTD partition.
/// None when `data` does not start with one (no UBI image) or holds only one. A fresh image
/// always has two (the two copies of its volume table), so the distance is its eraseblock size.
pub fn image_peb(data: &[u8]) -> Option<u64> {
    if !data.starts_with(EC_MAGIC) {
        return None;
    }
    (1024..data.len().saturating_sub(3)).step_by(1024).find(|&o| &data[o..o + 4] == EC_MAGIC).map(|o| o as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ubi(v: &str) -> DevSpec {
        DevSpec::parse(v).unwrap()
    }

    fn flash() -> Facts {
        Facts { mtds: vec![(0, "u-boot".into()), (3, "ubi".into())], ..Default::default() }
    }

    #[test]
    fn attaches_the_named_partition_once() {
        let f = flash();
        assert_eq!(decide(Some("ubi"), &[], &f), vec![Action::Attach { mtd: 3, name: "ubi".into() }]);
        // The kernel (ubi.mtd=) or an earlier pass attached it: nothing to do.
        let attached = Facts { ubis: vec![(0, 3)], ..flash() };
        assert_eq!(decide(Some("ubi"), &[], &attached), vec![]);
        // Not there yet (the flash driver still probing): wait, do not guess.
        assert_eq!(decide(Some("rootfs_ubi"), &[], &f), vec![]);
        assert_eq!(decide(None, &[], &f), vec![]);
    }

    #[test]
    fn block_devices_for_image_volumes_only_missing_ones() {
        let f = Facts {
            ubis: vec![(0, 3)],
            volumes: vec![(0, 0, "rootfs_a".into()), (0, 1, "rootfs_b".into()), (0, 2, "rootfs_data".into())],
            blocks: vec![(0, 1)],
            ..flash()
        };
        let (a, b, other) = (ubi("ubi:rootfs_a"), ubi("ubi0:rootfs_b"), ubi("ubi1:rootfs_a"));
        assert_eq!(
            decide(Some("ubi"), &[&a, &b, &other], &f),
            vec![Action::MakeBlock { ubi: 0, vol: 0, name: "rootfs_a".into() }]
        );
        // A partition lower is no business of UBI's.
        assert_eq!(decide(None, &[&ubi("PARTLABEL=rootfs")], &f), vec![]);
    }

    #[test]
    fn facts_from_a_sysfs_tree() {
        let t = tempfile_dir();
        let w = |p: &str, v: &str| {
            let p = t.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, v).unwrap();
        };
        w("class/mtd/mtd2/name", "ubi\n");
        w("class/mtd/mtd2ro/name", "ubi\n");
        w("class/ubi/ubi0/mtd_num", "2\n");
        w("class/ubi/ubi0_1/name", "rootfs\n");
        w("class/ubi/ubi_ctrl/dev", "10:61\n");
        std::fs::create_dir_all(t.join("class/block/ubiblock0_1")).unwrap();
        let f = facts(&t);
        assert_eq!(f.mtds, vec![(2, "ubi".to_string())]);
        assert_eq!(f.ubis, vec![(0, 2)]);
        assert_eq!(f.volumes, vec![(0, 1, "rootfs".to_string())]);
        assert_eq!(f.blocks, vec![(0, 1)]);
        let _ = std::fs::remove_dir_all(&t);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let t = std::env::temp_dir().join(format!("oi-ubi-facts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        t
    }

    /// 128 KiB eraseblocks laid on a 64 KiB MTD: the headers are 128 KiB apart, which the
    /// attach check compares with the MTD's erase size; erased flash or a squashfs is no image.
    #[test]
    fn a_ubi_images_eraseblock_size_is_read_from_its_headers() {
        let image = |peb: usize| {
            let mut d = vec![0xffu8; 4 * peb];
            for b in 0..4 {
                d[b * peb..b * peb + 4].copy_from_slice(EC_MAGIC);
                // The VID header's magic in each block, and data that only looks like one.
                d[b * peb + 64..b * peb + 68].copy_from_slice(b"UBI!");
            }
            d
        };
        assert_eq!(image_peb(&image(64 << 10)), Some(64 << 10));
        assert_eq!(image_peb(&image(128 << 10)), Some(128 << 10));
        assert_eq!(image_peb(&image(16 << 10)), Some(16 << 10));
        assert_eq!(image_peb(&[0xff; 256 << 10]), None);
        assert_eq!(image_peb(&image(1 << 20)[..512 << 10]), None, "one header seen: not decided");
    }
}
