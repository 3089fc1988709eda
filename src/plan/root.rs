//! The one-image boot decided: from settings and the devices found, the data partition's
//! steps, the lower (verified where the settings say), the upper, the overlay and the switch.

use super::data::data_step;
use super::step::*;
use crate::block::device::BlockDev;
use crate::config::paths;
use crate::config::settings::Settings;
use crate::rt::prelude::*;

/// The data partition's steps alone: the A/B boot mounts it first to read the slot state.
pub fn decide_data(s: &Settings, found: &Found) -> Result<Plan, PlanError> {
    let mut p = Plan::new();
    data_step(s, found, &mut p)?;
    Ok(p)
}

pub fn decide(s: &Settings, found: &Found) -> Result<Plan, PlanError> {
    let mut p = Plan::new();
    let data_dev = data_step(s, found, &mut p)?;
    lower_steps(s, found, data_dev.is_some(), &mut p)?;
    let (upper, work) = match (&data_dev, &p.volatile) {
        (Some(_), None) => (format!("{}/{}/upper", paths::DATA, s.dir), format!("{}/{}/work", paths::DATA, s.dir)),
        _ => {
            p.steps.push(Step::Mount(Mount {
                role: Role::Volatile,
                source: Source::Virtual("tmpfs"),
                target: paths::VOLATILE.into(),
                fstype: "tmpfs".into(),
                // Like the data partition: no device nodes or setuid programs from the upper.
                options: "mode=0755,nodev,nosuid".into(),
            }));
            (format!("{}/upper", paths::VOLATILE), format!("{}/work", paths::VOLATILE))
        }
    };
    p.steps.push(Step::PrepareUpper { upper: upper.clone(), work: work.clone() });
    let mut options = format!("lowerdir={},upperdir={upper},workdir={work},{OVERLAY_SAFE_OPTS}", paths::LOWER);
    if !s.overlay_flags.is_empty() {
        options = format!("{options},{}", s.overlay_flags);
    }
    if s.read_only {
        options.push_str(",ro");
    }
    p.steps.push(Step::Mount(Mount {
        role: Role::Overlay,
        source: Source::Virtual("overlay"),
        target: paths::NEWROOT.into(),
        fstype: "overlay".into(),
        options,
    }));
    if s.openwrt {
        // OpenWRT's layout as its userspace expects it: /rom the image, /overlay the directory
        // holding upper and work.
        let holding = upper.trim_end_matches("/upper").to_string();
        for (source, at) in [(paths::LOWER.to_string(), "rom"), (holding, "overlay")] {
            p.steps.push(Step::Mount(Mount {
                role: Role::Overlay,
                source: Source::Device(source),
                target: format!("{}/{at}", paths::NEWROOT),
                fstype: "none".into(),
                options: "bind".into(),
            }));
        }
    }
    p.steps.push(Step::SwitchRoot {
        root: paths::NEWROOT.into(),
        inits: s.init_candidates(),
        args: s.init_args.clone(),
        // OpenWRT's preinit skips its own mount_root when an initramfs says it built the root
        // (base-files' 80_mount_root: `[ "$INITRAMFS" = "1" ] || ... do_mount_root`).
        env: if s.openwrt { vec![("INITRAMFS".into(), "1".into())] } else { Vec::new() },
    });
    Ok(p)
}

/// An image longer than its device, named before the kernel reads past the end and calls it
/// corrupt. On a UBI volume the likely cause is a UBI image made for another eraseblock size
/// than the flash's: UBI attaches it anyway and each volume shows a fraction of its size.
fn image_overruns(dev: &BlockDev) -> Option<PlanError> {
    let fs = dev.fs.as_ref().filter(|f| f.kind.is_image())?;
    if dev.size == 0 || fs.size <= dev.size {
        return None;
    }
    let what = format!(
        "/dev/{} holds {} bytes, but the {} image on it says it is {} bytes long",
        dev.name,
        dev.size,
        fs.kind.name(),
        fs.size
    );
    let hint = if dev.ubi.is_some() {
        "the UBI image was made for another eraseblock size than this flash's (ubinize -p, or block2mtd's \
         erase size on the command line): rebuild it for the MTD's eraseblock size"
    } else {
        "the image was cut short when it was written: write it again"
    };
    Some(err(what, hint))
}

fn lower_steps(s: &Settings, found: &Found, data_mounted: bool, p: &mut Plan) -> Result<(), PlanError> {
    let root = match (&s.root, &found.root) {
        (Some(spec), None) => {
            return Err(err(
                format!("{}={spec} was not found", s.root_key),
                "check the setting and the partition table",
            ))
        }
        (_, root) => root,
    };
    let ro = |extra: &str| {
        if extra.is_empty() {
            "ro".to_string()
        } else {
            format!("ro,{extra}")
        }
    };
    let Some(file) = &s.lower_file else {
        let Some(dev) = root else {
            return Err(err("no lower image configured".into(), "set root="));
        };
        p.devices.insert(0, format!("lower: {dev}"));
        let fstype = match (&s.rootfstype, &dev.fs) {
            (Some(t), _) => t.clone(),
            (None, Some(fs)) if fs.kind.is_image() => fs.kind.name().into(),
            (None, other) => {
                let saw = other.as_ref().map_or("no known filesystem", |f| f.kind.name());
                return Err(err(
                    format!("{}=/dev/{} holds {saw}, not a squashfs or EROFS image", s.root_key, dev.name),
                    "point root= at the image's partition (or set rootfstype= if it is another filesystem)",
                ));
            }
        };
        if let Some(why) = image_overruns(dev) {
            return Err(why);
        }
        if fstype == "erofs" && !s.boot_modules().iter().any(|m| m == "erofs") {
            p.warnings.push(
                "the lower is EROFS: add erofs to oinit.modules (or set rootfstype=erofs) unless the kernel has it built in"
                    .into(),
            );
        }
        let source = verified(s, found, Source::Device(format!("/dev/{}", dev.name)), p)?;
        p.steps.push(Step::Mount(Mount {
            role: Role::Lower,
            source,
            target: paths::LOWER.into(),
            fstype,
            options: ro(&s.rootflags),
        }));
        return Ok(());
    };
    let on_data = matches!((&found.data, root), (DataState::Found { dev: d, .. }, Some(r)) if d.name == r.name);
    let base = match root {
        // The image lives on the data partition: use its mount; a second mount of the same block
        // device with other flags would be refused by the kernel (EBUSY).
        Some(_) if on_data && data_mounted => paths::DATA,
        Some(dev) => {
            p.devices.insert(0, format!("lower image {file} on: {dev}"));
            let fstype = s.rootfstype.clone().unwrap_or_else(|| dev.fs_name().to_string());
            p.steps.push(Step::Mount(Mount {
                role: Role::LowerDev,
                source: Source::Device(format!("/dev/{}", dev.name)),
                target: paths::LOWER_DEV.into(),
                fstype,
                options: ro(&s.rootflags),
            }));
            paths::LOWER_DEV
        }
        None if data_mounted => paths::DATA,
        None => {
            return Err(err(
                format!("the lower image file {file} is on the data partition, which is not mounted"),
                "set oinit.data= (or root= for the partition holding the image)",
            ))
        }
    };
    if base == paths::DATA {
        p.devices.insert(0, format!("lower image {file} on the data partition"));
    }
    let source = verified(s, found, Source::LoopFile(format!("{base}{file}")), p)?;
    p.steps.push(Step::Mount(Mount {
        role: Role::Lower,
        source,
        target: paths::LOWER.into(),
        fstype: AUTO_IMAGE.into(),
        options: "ro".into(),
    }));
    Ok(())
}

/// With verity on, puts a dm-verity device over `image` and returns it as the lower's source.
pub(crate) fn verified(s: &Settings, found: &Found, image: Source, p: &mut Plan) -> Result<Source, PlanError> {
    let v = &s.verity;
    let pinned = v.root_hash[v.slot];
    let trust = match (&v.key, pinned) {
        (Some(key_file), _) => Trust::Signed {
            key_file: key_file.clone(),
            pinned,
            accept: crate::verity::manifest::Acceptance {
                compatible: v.compatible.clone(),
                unversioned: v.unversioned,
                // The A/B plan raises it to the state record's.
                floor: 0,
            },
        },
        (None, Some(hash)) => Trust::RootHash { key: v.root_hash_key(), hash },
        (None, None) => return Ok(image),
    };
    let hash = match (&v.hash_dev[v.slot], &found.hash[v.slot]) {
        (None, _) => None,
        (Some(_), Some(dev)) => {
            p.devices.push(format!("hash tree: {dev}"));
            Some(format!("/dev/{}", dev.name))
        }
        (Some(spec), None) => {
            return Err(err(
                format!("{}={spec} (the hash partition) was not found", v.hash_dev_key()),
                "check the setting and the partition table",
            ))
        }
    };
    p.steps.push(Step::Verity(Verity {
        data: image,
        hash,
        name: v.name.clone(),
        trust,
        on_corruption: v.on_corruption,
        check_all: v.check_all(),
    }));
    Ok(Source::Device(format!("/dev/mapper/{}", v.name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::device::BlockDev;
    use crate::block::probe::{probe_fs, tests::squashfs_image};

    fn found(data: DataState) -> Found {
        let lower =
            BlockDev { name: "vda1".into(), size: 1 << 24, fs: probe_fs(&squashfs_image(4096)), ..Default::default() };
        Found { root: Some(lower), data, slots: [None, None], hash: [None, None] }
    }

    fn settings(cmdline: &str) -> Settings {
        Settings::load("root=/dev/vda1 oinit.data=/dev/vda2", cmdline).0
    }

    #[test]
    fn unmountable_data_falls_back_to_volatile_or_fails() {
        let f = found(DataState::Unmountable("mount: EUCLEAN".into()));
        let p = decide(&settings(""), &f).unwrap();
        assert!(p.volatile.as_deref().unwrap_or("").contains("EUCLEAN"));
        assert!(p.steps.iter().all(|s| !matches!(s, Step::Mount(m) if m.role == Role::Data)));
        let e = decide(&settings("oinit.datamissing=fail"), &f).unwrap_err();
        assert!(e.what.contains("EUCLEAN") && e.hint.contains("oinit.datamissing"));
    }

    #[test]
    fn overlay_always_states_the_safe_options_and_switches_last() {
        let p = decide(
            &settings("oinit.overlayflags=redirect_dir=on oinit.overlayunsafe=1"),
            &found(DataState::Missing("gone".into())),
        )
        .unwrap();
        let overlay = p.steps.iter().find_map(|s| match s {
            Step::Mount(m) if m.role == Role::Overlay => Some(m.options.clone()),
            _ => None,
        });
        // User options come after ours, so the kernel sees them last; the README says so.
        assert!(overlay.unwrap().contains(&format!("{OVERLAY_SAFE_OPTS},redirect_dir=on")));
        assert!(matches!(p.steps.last(), Some(Step::SwitchRoot { .. })));
    }

    #[test]
    fn nothing_touches_data_before_the_lower_is_mounted() {
        let dev = BlockDev { name: "vda2".into(), ..Default::default() };
        let p = decide(&settings(""), &found(DataState::Found { dev, blank: false, offset: 0 })).unwrap();
        let lower = p.steps.iter().position(|s| matches!(s, Step::Mount(m) if m.role == Role::Lower));
        let prepare = p.steps.iter().position(|s| matches!(s, Step::PrepareUpper { .. }));
        assert!(lower < prepare);
    }

    /// The squashfs says it is longer than its device: refused before the mount with the likely
    /// cause, a UBI image made for another eraseblock size on a ubiblock device.
    #[test]
    fn an_image_longer_than_its_device_is_named() {
        let s = Settings::load("", "root=/dev/ubiblock0_0 oinit.data=none").0;
        let image = probe_fs(&squashfs_image(3 << 20));
        let vol = crate::block::device::UbiVol { dev: 0, vol: 0, name: "rootfs_a".into(), exists: true };
        let half = BlockDev {
            name: "ubiblock0_0".into(),
            size: 2 << 20,
            fs: image.clone(),
            ubi: Some(Box::new(vol)),
            ..Default::default()
        };
        let mut f = found(DataState::NotConfigured);
        f.root = Some(half.clone());
        let e = decide(&s, &f).unwrap_err();
        assert!(e.what.contains("holds 2097152 bytes, but the squashfs image on it says it is 3145728"), "{}", e.what);
        assert!(e.hint.contains("another eraseblock size"), "{}", e.hint);
        f.root = Some(BlockDev { ubi: None, name: "vda1".into(), ..half.clone() });
        let s = Settings::load("", "root=/dev/vda1 oinit.data=none").0;
        assert!(decide(&s, &f).unwrap_err().hint.contains("cut short"));
        f.root = Some(BlockDev { size: 4 << 20, ..half });
        let s = Settings::load("", "root=/dev/ubiblock0_0 oinit.data=none").0;
        assert!(decide(&s, &f).is_ok());
    }
}
