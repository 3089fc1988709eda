//! The data partition's part of the boot decision: an ext4 partition (fsck, mkfs when blank), a
//! data area appended to the squashfs, jffs2 on an MTD partition split off after the squashfs,
//! or a UBIFS volume created on the first boot; or why the boot goes volatile instead. Pure, like
//! the rest of `plan`.

use super::step::{err, DataState, Found, Mount, Plan, PlanError, Role, Source, Step};
use crate::block::device::BlockDev;
use crate::config::paths;
use crate::config::settings::{DataMissing, Settings};
use crate::rt::prelude::*;

/// Plans the data partition steps; returns its device path when the upper will live on it.
pub(crate) fn data_step(s: &Settings, found: &Found, p: &mut Plan) -> Result<Option<String>, PlanError> {
    let why_not = match &found.data {
        DataState::NotConfigured => "no data partition is configured (oinit.data)".to_string(),
        DataState::Missing(why) | DataState::Unmountable(why) => {
            if s.data_missing == DataMissing::Fail && !s.failsafe && !s.volatile {
                return Err(err(
                    format!("data partition unusable: {why}"),
                    "fix the data partition or set oinit.datamissing=volatile to boot without it",
                ));
            }
            why.clone()
        }
        DataState::Found { dev, offset, .. } if dev.mtd.is_some() => return Ok(mtd_data(s, dev, *offset, p)),
        DataState::Found { dev, .. } if dev.ubi.is_some() => return Ok(ubi_data(s, dev, p)),
        DataState::Found { dev, blank, offset } => {
            let mut device = format!("/dev/{}", dev.name);
            if *offset > 0 {
                p.devices.push(format!("data: after the squashfs at byte {offset} of {dev}"));
                if !s.failsafe && !s.volatile {
                    p.steps.push(Step::AttachLoop { device, offset: *offset, link: paths::APPENDED_DATA.into() });
                }
                device = paths::APPENDED_DATA.into();
            } else {
                p.devices.push(format!("data: {dev}"));
            }
            // The appended area belongs to the image's partition: formatting it is its first boot.
            let format = *blank && (s.mkfs || *offset > 0);
            if s.failsafe || s.volatile {
                // The data partition may still hold the lower image file; mount it, but the upper
                // goes to tmpfs and nothing on the partition is touched.
                p.volatile = Some(volatile_reason(s));
                let image_on_data = found.root.as_ref().is_none_or(|r| r.name == dev.name);
                if s.lower_file.is_some() && image_on_data {
                    p.steps.push(Step::Mount(data_mount(s, &device, "ro")));
                    return Ok(Some(device));
                }
                return Ok(None);
            }
            if format {
                p.steps.push(Step::Mkfs { device: device.clone() });
            } else if dev.fs.is_none() {
                p.warnings.push(format!(
                    "{device} holds no known filesystem; its mount will likely fail (oinit.mkfs=1 formats a blank one)"
                ));
            }
            if s.fsck && !format {
                p.steps.push(Step::Fsck { device: device.clone(), budget: s.fsck_timeout });
            }
            p.steps.push(Step::Mount(data_mount(s, &device, "")));
            return Ok(Some(device));
        }
    };
    if s.lower_file.is_some() && s.root.is_none() {
        return Err(err(
            format!("the lower image file is on the data partition, and {why_not}"),
            "check oinit.data and the partition table",
        ));
    }
    p.volatile = Some(match found.data {
        DataState::NotConfigured => "no data partition configured (oinit.data): changes are lost at reboot".into(),
        _ => format!("{why_not}: booting with a tmpfs upper, changes are lost at reboot"),
    });
    Ok(None)
}

fn volatile_reason(s: &Settings) -> String {
    if s.failsafe {
        "failsafe boot (oinit.failsafe): the upper on the data partition is ignored, not wiped".into()
    } else {
        "volatile mode (oinit.volatile): changes are lost at reboot".into()
    }
}

/// The name of the data area split off after the squashfs on flash, as OpenWRT names it.
const MTD_DATA_NAME: &str = "rootfs_data";

/// Data on flash: jffs2 (or what `oinit.datafstype=` names) on an MTD partition, mounted by name.
/// Never formatted or checked from here: an erased area mounts as an empty jffs2. With
/// `oinit.data=appended` the partition is first split off after the squashfs with BLKPG (a
/// stock kernel lacks OpenWRT's mtdsplit; a kernel that has it names the data `mtd:rootfs_data`).
fn mtd_data(s: &Settings, dev: &BlockDev, offset: u64, p: &mut Plan) -> Option<String> {
    let m = dev.mtd.as_ref()?;
    let name = if offset > 0 {
        p.devices.push(format!("data: {MTD_DATA_NAME} after the squashfs at byte {offset} of {dev}"));
        MTD_DATA_NAME.to_string()
    } else {
        p.devices.push(format!("data: {dev}"));
        m.name.clone()
    };
    if s.failsafe || s.volatile {
        p.volatile = Some(volatile_reason(s));
        return None;
    }
    if offset > 0 {
        // BLKPG adds partitions to a master only: a partition's data area is placed in its master.
        let (master, start) = m.master.unwrap_or((m.index, 0));
        p.steps.push(Step::AddMtdPartition {
            master: format!("/dev/mtd{master}"),
            name: name.clone(),
            offset: start + offset,
            length: dev.size,
        });
    }
    let device = format!("mtd:{name}");
    let fstype = if s.data_fstype == "ext4" { "jffs2" } else { s.data_fstype.as_str() };
    let mut mount = data_mount(s, &device, "noatime");
    mount.fstype = fstype.into();
    p.steps.push(Step::Mount(mount));
    Some(device)
}

/// Data on a UBIFS volume (NAND), mounted as `/dev/ubiN_V`. A volume the UBI device lacks (the
/// first boot after flashing) is created with the space left, and UBIFS formats it at mount.
fn ubi_data(s: &Settings, dev: &BlockDev, p: &mut Plan) -> Option<String> {
    let u = dev.ubi.as_ref()?;
    let device = format!("ubi{}:{}", u.dev, u.name);
    p.devices.push(if u.exists { format!("data: {dev}") } else { format!("data: {device}, to be created") });
    if s.failsafe || s.volatile {
        p.volatile = Some(volatile_reason(s));
        return None;
    }
    if !u.exists {
        let bytes = new_volume_bytes(dev.size, s.ab.recreate);
        p.steps.push(Step::MakeUbiVolume {
            ubi: format!("/dev/ubi{}", u.dev),
            vol_id: u.vol,
            name: u.name.clone(),
            bytes,
        });
    }
    p.steps.push(Step::Mount(ubi_data_mount(s, u.dev, u.vol)));
    Some(device)
}

/// The mount of a UBIFS data volume (the boot's, and the one a recreating factory reset makes),
/// by its device node: OpenWRT's fstools tells a mounted rootfs_data by that name in
/// /proc/self/mountinfo, and a `mount_root` that finds it there leaves it alone instead of
/// mounting it a second time and erasing what it calls an unfinished overlay.
pub fn ubi_data_mount(s: &Settings, ubi: u32, vol: u32) -> Mount {
    let mut mount = data_mount(s, &format!("/dev/ubi{ubi}_{vol}"), "noatime");
    mount.fstype = if s.data_fstype == "ext4" { "ubifs" } else { s.data_fstype.as_str() }.into();
    mount
}

/// The size of a new data volume: the space left, less what `oinit.datarecreate` keeps free for
/// the volume that carries the keep-list through a factory reset, unless that would leave the
/// data less than it keeps free (then everything, and that reset moves the uppers aside).
fn new_volume_bytes(free: u64, keep_free: Option<u64>) -> u64 {
    match keep_free {
        Some(k) if free / 2 >= k => free - k,
        _ => free,
    }
}

fn data_mount(s: &Settings, device: &str, extra: &str) -> Mount {
    // nodev,nosuid always, whatever oinit.dataflags adds (settings refuses options undoing them).
    let options = ["nodev,nosuid", s.data_flags.as_str(), extra]
        .iter()
        .filter(|o| !o.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(",");
    Mount {
        role: Role::Data,
        source: Source::Device(device.into()),
        target: paths::DATA.into(),
        fstype: s.data_fstype.clone(),
        options,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_volume_leaves_room_for_the_carry_only_when_it_stays_the_larger() {
        assert_eq!(new_volume_bytes(10 << 20, None), 10 << 20);
        assert_eq!(new_volume_bytes(10 << 20, Some(2 << 20)), 8 << 20);
        assert_eq!(new_volume_bytes(4 << 20, Some(2 << 20)), 2 << 20);
        assert_eq!(new_volume_bytes(3 << 20, Some(2 << 20)), 3 << 20);
    }
}
