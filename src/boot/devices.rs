//! Finds the devices the settings name, waiting for them with `rootwait`/`rootdelay` semantics:
//! sleeping polls of sysfs, bounded by the configured timeouts.

use crate::block::device::{self, BlockDev};
use crate::block::probe;
use crate::block::spec::DevSpec;
use crate::boot::error::{Error, Result};
use crate::config::ab::SlotSource;
use crate::config::settings::Settings;
use crate::flash::mtdparts;
use crate::flash::ubi::{self, Action};
use crate::plan::{DataState, Found};
use crate::rt::path::Path;
use crate::rt::prelude::*;
use crate::rt::time::Duration;
use crate::sys::clock::now_us;

/// How often to look again while waiting without uevents: short enough not to add boot time,
/// long enough not to spin (a scan reads a few KiB per device).
const POLL: Duration = Duration::from_millis(20);
/// With uevents, a scan follows each announcement; this only bounds a wait in which nothing is
/// announced (a device that appears without a uevent would still be found this late).
const UEVENT_WAIT: Duration = Duration::from_millis(250);

/// OpenWRT aligns the data area after the squashfs to 64 KiB (fstools' libfstools/rootdisk.c), so
/// a new image of about the same size finds the data where it was.
pub const APPENDED_ALIGN: u64 = 64 * 1024;
/// Below this, an appended data area cannot hold an ext4 with a journal worth having.
const APPENDED_MIN: u64 = 4 << 20;

/// OpenWRT's sysupgrade writes this word after the image to ask for a fresh data area (fstools'
/// libfstools/volume.h FS_DEADCODE: the big-endian 0xdeadc0de).
const DEADCODE: [u8; 4] = [0xde, 0xad, 0xc0, 0xde];

/// Bytes that must all be zero (or all 0xff) for the data partition to count as factory-blank.
const BLANK_PROBE: usize = 64 * 1024;

pub fn lookup<'a>(devs: &'a [BlockDev], spec: &DevSpec) -> Option<&'a BlockDev> {
    devs.iter().find(|d| d.matches(spec))
}

/// When `spec` matches more than one device (a USB stick carrying the eMMC's label, a cloned
/// disk's PARTUUID), the message naming them all: taking the first in name order would let
/// whoever plugs in a device choose what boots.
pub fn ambiguity(devs: &[BlockDev], spec: &DevSpec) -> Option<String> {
    let all: Vec<String> = devs.iter().filter(|d| d.matches(spec)).map(|d| format!("/dev/{}", d.name)).collect();
    (all.len() > 1).then(|| format!("{spec} matches {} devices ({})", all.len(), all.join(", ")))
}

/// When the device wait's clock starts, given the time now: when the module loader finished
/// (`None` while drivers still load). The device timeouts are about devices: a disk whose
/// driver is still in its init on a slow CPU is not late yet.
pub type DriversIn<'a> = &'a dyn Fn(u64) -> Option<u64>;

/// Finds the root (lower) and data devices. With `wait`, looks again at every uevent (or every
/// 20 ms without them) until both are there or their deadlines pass: the root's is fatal, the
/// data partition's leads to the data-missing policy. The deadlines count from the later of
/// the search's start and `drivers_in`.
pub fn find(s: &Settings, sysfs: &Path, dev: &Path, wait: bool, drivers_in: DriversIn) -> Result<Found> {
    // Subscribed before the first scan: a device that appears between the scan and the wait
    // is queued on the socket and ends the wait at once.
    let events = if wait { crate::sys::uevent::Uevents::open() } else { None };
    if wait && s.rootdelay > 0 {
        log::info!("rootdelay: waiting {} s before looking for devices", s.rootdelay);
        crate::rt::thread::sleep(Duration::from_secs(s.rootdelay.into()));
    }
    let start = now_us();
    let slot_specs: Vec<Option<&DevSpec>> =
        s.ab.slots
            .iter()
            .map(|src| match src {
                Some(SlotSource::Partition(spec)) => Some(spec),
                _ => None,
            })
            .collect();
    // Verity hash partitions are waited for like the slots: the image is useless without its tree.
    let slot_specs: Vec<Option<&DevSpec>> =
        slot_specs.into_iter().chain(s.verity.hash_dev.iter().map(Option::as_ref)).collect();
    // A UBIFS data volume is no block device: it is looked for among the UBI volumes, and its
    // UBI device being attached is enough (a missing volume is created on first boot).
    let ubi_data = match &s.data {
        Some(DevSpec::Ubi { dev, .. }) => Some(dev.unwrap_or(0)),
        _ => None,
    };
    let lowers: Vec<&DevSpec> = s.root.iter().chain(slot_specs.iter().take(2).flatten().copied()).collect();
    // The block devices the settings name. When sysfs alone can match them all (names,
    // numbers, PARTLABEL=), only the devices found are read, once, when the search ends: a
    // scan at each uevent then reads no device.
    let specs: Vec<&DevSpec> =
        lowers.iter().copied().chain(slot_specs.iter().skip(2).flatten().copied()).chain(&s.data).collect();
    let read_all = specs.iter().any(|spec| spec.reads_device());
    loop {
        // Only the boot acts on the flash; a dry run (`overlay-init plan`) looks.
        if wait {
            prepare_flash(s, sysfs, dev, &lowers)?;
        }
        let mut devs = device::list(sysfs);
        if read_all {
            devs.iter_mut().for_each(|d| device::identify(d, dev));
        }
        place_partitions(s, sysfs, &mut devs);
        let vols = if ubi_data.is_some() { device::ubi_volumes(sysfs) } else { Vec::new() };
        let data_in = if ubi_data.is_some() { &vols } else { &devs };
        let (root, data, slots) = look(s, &devs, data_in, &slot_specs);
        let now = now_us();
        // While drivers load, no deadline has started (u64::MAX: the wait goes on).
        let clock = drivers_in(now).map(|t| t.max(start));
        let deadline = |secs: u32| clock.map_or(u64::MAX, |c| c + u64::from(secs) * 1_000_000);
        let (root_deadline, data_deadline) = (deadline(s.root_wait()), deadline(s.timeout));
        let present = |d: &Option<Option<&BlockDev>>| !matches!(d, Some(None));
        // A missing slot partition is not fatal (the other slot boots) but is waited for like root.
        let root_done = (present(&root) && slots.iter().all(present)) || !wait || now >= root_deadline;
        let attached = ubi_data.and_then(|n| device::ubi_free(sysfs, n));
        let data_done = present(&data) || attached.is_some() || !wait || now >= data_deadline;
        if root_done && data_done {
            if !read_all {
                // Something missing is reported with every device and what is on it.
                let missing = !(present(&root) && present(&data) && slots.iter().all(present));
                for d in devs.iter_mut().filter(|d| missing || specs.iter().any(|spec| d.matches(spec))) {
                    device::identify(d, dev);
                }
            }
            let data_in = if ubi_data.is_some() { &vols } else { &devs };
            let (root, data, slots) = look(s, &devs, data_in, &slot_specs);
            let mut found = resolve(s, &devs, root.flatten(), data, dev, now.saturating_sub(start))?;
            // The UBI device is attached but has no such volume yet (the first boot after
            // flashing): the plan creates it with the space left, as OpenWRT's fstools does.
            if let (Some(None), Some(DevSpec::Ubi { volume, .. }), Some(n), Some(free)) =
                (data, &s.data, ubi_data, attached)
            {
                let ids = device::ubi_volumes(sysfs).into_iter().filter_map(|v| v.ubi).filter(|u| u.dev == n);
                found.data = new_volume(n, device::lowest_free_id(ids.map(|u| u.vol)), volume, free);
            }
            for (i, d) in slots.into_iter().enumerate() {
                let d = d.flatten().cloned();
                match i {
                    0 | 1 => found.slots[i] = d,
                    _ => found.hash[i - 2] = d,
                }
            }
            // Neither slot partition after the wait: the disk itself is missing, most often its
            // driver. Said with what the search saw, not as the second slot's absence.
            if let [Some(SlotSource::Partition(a)), Some(SlotSource::Partition(b))] = &s.ab.slots {
                if wait && found.slots.iter().all(Option::is_none) {
                    return Err(Error::DeviceNotFound {
                        what: "A/B slot",
                        spec: format!("{a} (oinit.a) or {b} (oinit.b)"),
                        waited: (now.saturating_sub(start) / 1_000_000) as u32,
                        saw: devs.iter().map(|d| d.to_string()).collect(),
                    }
                    .into());
                }
            }
            return Ok(found);
        }
        match &events {
            Some(ev) => {
                let next = [(root_done, root_deadline), (data_done, data_deadline)]
                    .iter()
                    .filter(|(done, _)| !done)
                    .map(|(_, at)| at.saturating_sub(now))
                    .min()
                    .unwrap_or(0);
                ev.wait(UEVENT_WAIT.min(Duration::from_micros(next)));
            }
            None => crate::rt::thread::sleep(POLL),
        }
    }
}

/// What one look found for each device the settings name: None for a spec not given, Some(None)
/// for one given and not found.
type Looked<'a> = (Option<Option<&'a BlockDev>>, Option<Option<&'a BlockDev>>, Vec<Option<Option<&'a BlockDev>>>);

/// Looks up the root, the data device (among `data_in`: the block devices, or the UBI volumes)
/// and the slots' and hash trees' partitions.
fn look<'a>(
    s: &Settings,
    devs: &'a [BlockDev],
    data_in: &'a [BlockDev],
    slot_specs: &[Option<&DevSpec>],
) -> Looked<'a> {
    let root = s.root.as_ref().map(|spec| lookup(devs, spec));
    let data = s.data.as_ref().map(|spec| lookup(data_in, spec));
    (root, data, slot_specs.iter().map(|o| o.map(|spec| lookup(devs, spec))).collect())
}

/// Attaches the UBI device and gives the lowers' UBI volumes their block devices, where the
/// settings need it and the kernel has not done it (`flash::ubi`). Attaching makes the volumes
/// appear at once, so a second pass can make their block devices in the same look.
fn prepare_flash(s: &Settings, sysfs: &Path, dev: &Path, lowers: &[&DevSpec]) -> Result<()> {
    if !s.mtdparts.is_empty() {
        add_mtd_partitions(s, sysfs, dev)?;
    }
    if s.ubi_mtd.is_none() && !lowers.iter().any(|l| matches!(l, DevSpec::Ubi { .. })) {
        return Ok(());
    }
    for _pass in 0..2 {
        let actions = ubi::decide(s.ubi_mtd.as_deref(), lowers, &ubi::facts(sysfs));
        if actions.is_empty() {
            break;
        }
        for a in actions {
            match a {
                Action::Attach { mtd, name } => {
                    check_ubi_layout(sysfs, dev, mtd, &name)?;
                    let n = crate::sys::ubi::attach(&dev.join("ubi_ctrl"), mtd).map_err(|(call, e)| {
                        Error::sys(
                            call,
                            format!("{}/ubi_ctrl (MTD partition {name}, mtd{mtd})", dev.display()),
                            e,
                            "the partition holds no UBI image, or one made for another page size or VID header \
                             offset: flash an image made by ubinize for this flash, or fix oinit.ubi",
                        )
                    })?;
                    log::info!("attached MTD partition {name} (mtd{mtd}) as UBI device ubi{n}");
                }
                Action::MakeBlock { ubi, vol, name } => {
                    let node = dev.join(format!("ubi{ubi}_{vol}"));
                    crate::sys::ubi::make_block(&node).map_err(|(call, e)| {
                        Error::sys(
                            call,
                            node.display().to_string(),
                            e,
                            "the kernel needs CONFIG_MTD_UBI_BLOCK for a squashfs or EROFS on UBI",
                        )
                    })?;
                    log::info!("UBI volume {name} (ubi{ubi}_{vol}) readable as {}/ubiblock{ubi}_{vol}", dev.display());
                }
            }
        }
    }
    Ok(())
}

/// Refuses to attach a UBI image made for another eraseblock size than the MTD's: UBI attaches
/// it anyway (each volume a fraction of its size; squashfs and UBIFS then refuse it as corrupt)
/// and may erase what it takes for broken blocks. The image's size is read from its headers at
/// the partition's start; a partition that cannot be read is left to the attach to judge.
fn check_ubi_layout(sysfs: &Path, dev: &Path, mtd: u32, name: &str) -> Result<()> {
    let read = |f: &str| crate::rt::fs::read_to_string(sysfs.join(format!("class/mtd/mtd{mtd}/{f}"))).ok();
    let number = |f: &str| read(f).and_then(|v| v.trim().parse::<u64>().ok());
    let (Some(erasesize), Some(size)) = (number("erasesize"), number("size")) else { return Ok(()) };
    // One eraseblock and the next header's magic answer the usual case (a matching image); only
    // when no second header is found there is the first MiB read, to name the image's size.
    let node = dev.join(format!("mtd{mtd}"));
    let read = |len: u64| device::read_head(&node, 0, len.min(size) as usize).and_then(|d| ubi::image_peb(&d));
    let Some(peb) = read(erasesize + 4).or_else(|| read(1 << 20)) else {
        return Ok(());
    };
    if peb == erasesize {
        return Ok(());
    }
    Err(Error::Plan(crate::plan::PlanError {
        what: format!(
            "the UBI image on MTD partition {name} (mtd{mtd}) was made for {} KiB eraseblocks, the flash has {} KiB ones: \
             not attached (UBI would misread it and may erase parts of it)",
            peb >> 10,
            erasesize >> 10
        ),
        hint: format!(
            "give the MTD the image's erase size (with block2mtd: block2mtd.block2mtd=DEVICE,{}KiB on the kernel \
             command line), or flash an image made by ubinize -p {}KiB for this flash",
            peb >> 10,
            erasesize >> 10
        ),
    }).into())
}

/// `mtdparts=` on a kernel without its parser: the partitions of each master present that the
/// kernel did not make are added with BLKPG (`mtdparts`). A table that does not fit its master
/// fails the boot before anything is added.
fn add_mtd_partitions(s: &Settings, sysfs: &Path, dev: &Path) -> Result<()> {
    let adds = mtdparts::decide(&s.mtdparts, &mtdparts::facts(sysfs)).map_err(|what| {
        Error::Plan(crate::plan::PlanError {
            what: format!("mtdparts: {what}"),
            hint: "correct mtdparts= (the kernel's syntax; offsets and sizes in whole erase blocks)".into(),
        })
    })?;
    for a in adds {
        let master = dev.join(format!("mtd{}", a.master)).display().to_string();
        crate::sys::mtd::add_partition(&master, &a.name, a.offset, a.length).map_err(|(call, e)| {
            Error::sys(
                call,
                master.clone(),
                e,
                "mtdparts= must name a master MTD device, and its partitions must not overlap others",
            )
        })?;
        log::info!(
            "mtdparts: added MTD partition {} to {master} from byte {}, {} bytes (BLKPG)",
            a.name,
            a.offset,
            a.length
        );
    }
    Ok(())
}

/// Partitions `mtdparts=` placed get their master and offset from the table: a kernel without
/// `CONFIG_MTD_PARTITIONED_MASTER` does not show them under their master in sysfs.
fn place_partitions(s: &Settings, sysfs: &Path, devs: &mut [BlockDev]) {
    if s.mtdparts.is_empty() {
        return;
    }
    let facts = mtdparts::facts(sysfs);
    for m in devs.iter_mut().filter_map(|d| d.mtd.as_mut()).filter(|m| m.master.is_none()) {
        m.master = mtdparts::locate(&s.mtdparts, &facts, &m.name);
    }
}

fn resolve(
    s: &Settings,
    devs: &[BlockDev],
    root: Option<&BlockDev>,
    data: Option<Option<&BlockDev>>,
    dev: &Path,
    waited_us: u64,
) -> Result<Found> {
    let saw = || devs.iter().map(|d| d.to_string()).collect::<Vec<_>>();
    let slot_specs = s.ab.slots.iter().flatten().filter_map(|src| match src {
        SlotSource::Partition(spec) => Some(spec),
        SlotSource::File(_) => None,
    });
    let hash_specs = s.verity.hash_dev.iter().flatten();
    if let Some(what) = s.root.iter().chain(slot_specs).chain(hash_specs).find_map(|spec| ambiguity(devs, spec)) {
        return Err(Error::Plan(crate::plan::PlanError {
            what: format!("root: {what}"),
            hint: "name the image's partition unambiguously (PARTUUID= of the internal disk, or /dev/NAME), \
                   or remove the other device"
                .into(),
        })
        .into());
    }
    if let Some(what) = s.data.as_ref().and_then(|spec| ambiguity(devs, spec)) {
        let data = DataState::Missing(format!("data partition: {what}; none is used"));
        return Ok(Found { root: root.cloned(), data, slots: [None, None], hash: [None, None] });
    }
    if let (Some(spec), None) = (&s.root, root) {
        return Err(Error::DeviceNotFound {
            what: "root (lower image)",
            spec: spec.to_string(),
            waited: (waited_us / 1_000_000) as u32,
            saw: saw(),
        }
        .into());
    }
    let data = match (data, &s.data) {
        _ if s.data_appended => root.map_or(DataState::NotConfigured, |r| appended(r, dev)),
        (None, _) | (_, None) => DataState::NotConfigured,
        (Some(Some(d)), _) => {
            let blank = d.fs.is_none()
                && device::read_head(&dev.join(&d.name), 0, BLANK_PROBE).is_some_and(|b| probe::is_blank(&b));
            DataState::Found { dev: d.clone(), blank, offset: 0 }
        }
        (Some(None), Some(spec)) => DataState::Missing(format!(
            "data partition {spec} not found after {} s (saw: {})",
            waited_us / 1_000_000,
            saw().join(", ")
        )),
    };
    Ok(Found { root: root.cloned(), data, slots: [None, None], hash: [None, None] })
}

/// A UBI volume to create on device `ubi` as volume `id`, `free` bytes (all that is left).
fn new_volume(ubi: u32, id: u32, volume: &str, free: u64) -> DataState {
    let vol = device::UbiVol { dev: ubi, vol: id, name: volume.to_string(), exists: false };
    let dev = BlockDev { name: format!("ubi{ubi}"), size: free, ubi: Some(Box::new(vol)), ..Default::default() };
    DataState::Found { dev, blank: true, offset: 0 }
}

/// `oinit.data=appended`: the data area is the rest of the root partition, from the squashfs's
/// `bytes_used` rounded up to 64 KiB (or to the erase block, on MTD). Without a filesystem there it counts as blank: what is
/// there is left from an older, longer image (OpenWRT formats it too).
pub fn appended(root: &BlockDev, dev: &Path) -> DataState {
    let Some(sq) = root.fs.as_ref().filter(|f| f.kind == probe::FsKind::Squashfs) else {
        return DataState::Missing(format!(
            "oinit.data=appended: /dev/{} holds no squashfs to find the data area after",
            root.name
        ));
    };
    // On flash the area starts at an erase block (OpenWRT's mtdsplit does the same).
    let align = root.mtd.as_ref().map_or(APPENDED_ALIGN, |m| m.erasesize.max(APPENDED_ALIGN));
    // bytes_used comes from the image: near u64::MAX the rounding would wrap to a small offset.
    let offset = sq.size.div_ceil(align).saturating_mul(align);
    if root.size < offset.saturating_add(APPENDED_MIN) {
        return DataState::Missing(format!(
            "oinit.data=appended: /dev/{} has {} KiB after its squashfs, less than the {} KiB a data area needs: \
             make the partition larger",
            root.name,
            root.size.saturating_sub(offset) >> 10,
            APPENDED_MIN >> 10
        ));
    }
    let node = dev.join(&root.name);
    let fs = device::read_head(&node, offset, probe::PROBE_LEN).and_then(|h| probe::probe_fs(&h));
    // Formatted only when it is factory-blank or carries sysupgrade's 0xdeadc0de marker (what
    // fstools formats too); anything else, a damaged superblock most likely, is somebody's data:
    // its mount fails and the data-missing policy decides.
    let blank = fs.is_none()
        && device::read_head(&node, offset, BLANK_PROBE)
            .is_some_and(|h| probe::is_blank(&h) || h.starts_with(&DEADCODE));
    let area = BlockDev { size: root.size - offset, fs, ..root.clone() };
    DataState::Found { blank, dev: area, offset }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::probe::tests::squashfs_image;
    use crate::block::spec::DevSpec;

    #[test]
    fn a_label_on_two_devices_is_refused_with_both_named() {
        let emmc = BlockDev { name: "mmcblk0p2".into(), partlabel: Some("rootfs".into()), ..Default::default() };
        let usb = BlockDev { name: "sda1".into(), partlabel: Some("rootfs".into()), ..Default::default() };
        let spec = DevSpec::parse("PARTLABEL=rootfs").unwrap();
        assert_eq!(ambiguity(std::slice::from_ref(&emmc), &spec), None);
        let devs = [emmc, usb];
        let what = ambiguity(&devs, &spec).unwrap();
        assert!(what.contains("2 devices (/dev/mmcblk0p2, /dev/sda1)"), "{what}");
        let s = Settings::load("", "root=PARTLABEL=rootfs").0;
        let err = resolve(&s, &devs, devs.first(), None, Path::new("/dev"), 0).unwrap_err().to_string();
        assert!(err.contains("matches 2 devices") && err.contains("PARTUUID="), "{err}");
    }

    /// Names sysfs can match are matched without reading the devices; the devices found are
    /// read (what is on them decides the plan), and when one is missing every device is, so
    /// the error shows what each holds.
    #[test]
    fn the_devices_found_are_read_and_all_of_them_when_one_is_missing() {
        let dir = std::env::temp_dir().join(format!("oi-identify-{}", std::process::id()));
        let (sys, dev) = (dir.join("sys"), dir.join("dev"));
        std::fs::create_dir_all(&dev).unwrap();
        for (n, label) in [(1, "rootfs"), (2, "spare")] {
            let d = sys.join(format!("class/block/vda{n}"));
            std::fs::create_dir_all(&d).unwrap();
            let uevent =
                format!("MAJOR=254\nMINOR={n}\nDEVNAME=vda{n}\nDEVTYPE=partition\nPARTN={n}\nPARTNAME={label}\n");
            std::fs::write(d.join("uevent"), uevent).unwrap();
            std::fs::write(d.join("size"), "2048\n").unwrap();
            std::fs::write(dev.join(format!("vda{n}")), squashfs_image(4096)).unwrap();
        }
        let loaded = |_: u64| Some(0);
        let s = Settings::load("", "root=PARTLABEL=rootfs oinit.data=none").0;
        let found = find(&s, &sys, &dev, false, &loaded).unwrap();
        let root = found.root.unwrap();
        assert_eq!((root.name.as_str(), root.fs_name()), ("vda1", "squashfs"));
        let s = Settings::load("", "root=PARTLABEL=nothere oinit.data=none oinit.timeout=1").0;
        let err = find(&s, &sys, &dev, true, &loaded).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("PARTLABEL=spare, squashfs"), "{err}");
    }

    #[test]
    fn the_device_wait_starts_when_the_drivers_are_in() {
        // The disk's driver takes 3 s in its init, three times oinit.timeout: the disk that
        // appears as it returns is found, where a wait counted from the start gave up at 1 s.
        let dir = std::env::temp_dir().join(format!("oi-drivers-in-{}", std::process::id()));
        let (sys, dev) = (dir.join("sys"), dir.join("dev"));
        std::fs::create_dir_all(sys.join("class/block")).unwrap();
        std::fs::create_dir_all(&dev).unwrap();
        let s = Settings::load("", "root=/dev/vdb oinit.timeout=1").0;
        let loaded_at = now_us() + 3_000_000;
        let drivers_in = |now: u64| {
            if now < loaded_at {
                return None;
            }
            let vdb = sys.join("class/block/vdb");
            std::fs::create_dir_all(&vdb).unwrap();
            std::fs::write(vdb.join("uevent"), "MAJOR=254\nMINOR=16\nDEVNAME=vdb\nDEVTYPE=disk\n").unwrap();
            std::fs::write(vdb.join("size"), "2048\n").unwrap();
            Some(now)
        };
        let found = find(&s, &sys, &dev, true, &drivers_in);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.unwrap().root.map(|d| d.name).as_deref(), Some("vdb"));
    }

    /// The policy for a name two devices carry: the devices are matched when the search ends.
    /// A second `PARTLABEL=rootfs` present then is refused with both named (the test above); one
    /// that appears after (a USB stick enumerated late) is not looked at, and the boot goes on
    /// with the device it found. Boards with external ports name the root by PARTUUID= or
    /// /dev/NAME (SECURITY.md).
    #[test]
    fn a_device_with_the_same_name_that_appears_later_is_not_looked_at() {
        let dir = std::env::temp_dir().join(format!("oi-late-label-{}", std::process::id()));
        let (sys, dev) = (dir.join("sys"), dir.join("dev"));
        std::fs::create_dir_all(&dev).unwrap();
        let part = |name: &str| {
            let d = sys.join("class/block").join(name);
            std::fs::create_dir_all(&d).unwrap();
            let uevent = format!("MAJOR=8\nMINOR=1\nDEVNAME={name}\nDEVTYPE=partition\nPARTN=1\nPARTNAME=rootfs\n");
            std::fs::write(d.join("uevent"), uevent).unwrap();
            std::fs::write(d.join("size"), "2048\n").unwrap();
        };
        part("mmcblk0p1");
        let s = Settings::load("", "root=PARTLABEL=rootfs oinit.data=none oinit.timeout=1").0;
        // The stick's partition shows up right after the search's scan saw the eMMC's.
        let late = |_: u64| {
            part("sdb1");
            Some(0)
        };
        let found = find(&s, &sys, &dev, true, &late);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.unwrap().root.map(|d| d.name).as_deref(), Some("mmcblk0p1"));
    }

    #[test]
    fn appended_area_starts_at_the_next_64k_after_the_squashfs() {
        let dir = std::env::temp_dir().join(format!("oi-appended-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = squashfs_image(100_000);
        let root = BlockDev { name: "vda2".into(), size: 8 << 20, fs: probe::probe_fs(&image), ..Default::default() };
        std::fs::write(dir.join("vda2"), &image).unwrap();
        // The partition's size, the rest zeros as a freshly written device has it.
        std::fs::OpenOptions::new().write(true).open(dir.join("vda2")).unwrap().set_len(8 << 20).unwrap();
        let DataState::Found { dev, blank, offset } = appended(&root, &dir) else { panic!("not found") };
        assert_eq!((offset, blank, dev.size), (131_072, true, (8 << 20) - 131_072));
        // A damaged superblock (neither blank nor sysupgrade's marker) is not formatted; the
        // marker is.
        for (area, formats) in [(vec![0x5au8; 4096], false), (vec![0xde, 0xad, 0xc0, 0xde, 0, 0, 0, 0], true)] {
            let mut bytes = image.clone();
            bytes.resize(131_072, 0);
            bytes.extend_from_slice(&area);
            bytes.resize(8 << 20, 0);
            std::fs::write(dir.join("vda2"), &bytes).unwrap();
            let DataState::Found { blank, .. } = appended(&root, &dir) else { panic!("not found") };
            assert_eq!(blank, formats, "{:02x?}", &area[..4]);
        }
        std::fs::write(dir.join("vda2"), &image).unwrap();
        // Too little room after the image: the data-missing policy decides, with the reason.
        // A bytes_used near u64::MAX must not wrap into a small offset.
        let huge = BlockDev { fs: probe::probe_fs(&squashfs_image(u64::MAX - 5)), ..root.clone() };
        assert!(matches!(appended(&huge, Path::new("/nonexistent")), DataState::Missing(_)));
        let small = BlockDev { size: 2 << 20, ..root.clone() };
        assert!(matches!(appended(&small, &dir), DataState::Missing(m) if m.contains("make the partition larger")));
        let not_squashfs = BlockDev { fs: None, ..root };
        assert!(matches!(appended(&not_squashfs, &dir), DataState::Missing(m) if m.contains("no squashfs")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
