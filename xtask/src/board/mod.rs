//! A board folder: build settings, boot settings and disk layout, checked against each other
//! before anything is built, so a contradictory board fails with its name, the key and the fix.

pub mod bootscript;
pub mod check;
pub mod genimage;
pub mod kernel;

use crate::board::genimage::{Layout, Table};
use overlay_init::block::spec::DevSpec;
use overlay_init::config::ab::SlotSource;
use overlay_init::config::cmdline::parse_config;
use overlay_init::config::settings::Settings;
use overlay_init::kmod::ModIndex;
use std::path::{Path, PathBuf};

/// The data partition's filesystem UUID (fixed, so tests can name it with UUID=).
pub const DATA_UUID: &str = "5e1f7c3a-9b2d-4c8e-a6f0-1d3b5e7a9c2f";

pub struct Board {
    pub name: String,
    pub dir: PathBuf,
    pub rust_target: String,
    /// Empty for boards QEMU cannot boot (real hardware): their images are built and checked.
    pub qemu: String,
    pub qemu_args: Vec<String>,
    /// The device tree QEMU hands the kernel (from the kernel package's dtbs/), when the machine
    /// model needs the board's own: sabrelite for the i.MX6.
    pub qemu_dtb: Option<PathBuf>,
    /// The board's own device tree (from the kernel package's dtbs/), for the slots' boot
    /// partitions U-Boot loads it from.
    pub dtb: Option<PathBuf>,
    /// How QEMU attaches the disk: a device (virtio-blk-pci, or sd-card on a SoC's first free SD
    /// host) or `if=sd,bus=N`, the machine's Nth SD host (imx8mp-evk's hosts share one bus name,
    /// so `-device` cannot pick one).
    pub qemu_disk: String,
    /// The lower and data devices by kernel name in QEMU, as `cargo xtask bench` names them for
    /// both overlay-init and the busybox baseline (`root=` and `oinit.data=`).
    pub bench_devices: String,
    /// Host programs packed into the initramfs, `(path inside, host path)` (mkfs.ext4 for a data
    /// area formatted on first boot). Only for boards of the host's architecture.
    pub tools: Vec<(String, String)>,
    pub config: String,
    pub cmdline: String,
    pub layout: Layout,
    /// The kernel's module index (modules.dep, softdep, alias, builtin), read once.
    pub modules_index: ModIndex,
    /// Unpacked Debian kernel: vmlinuz, lib/modules/VERSION, dtbs/, busybox.
    pub kernel_dir: PathBuf,
    /// `lib/modules/VERSION` of the kernel tree, or of `--modules`.
    module_dir: PathBuf,
    pub kernel_version: String,
    /// `target/boards/` folder: the board's name, `NAME@VERSION` for another kernel than the
    /// downloaded default.
    out_name: String,
}

impl Board {
    /// Loads and checks the board; every problem found is in the error.
    pub fn load(root: &Path, name: &str) -> Result<Board, String> {
        Board::load_from(root, name, None)
    }

    /// The board with the kernel series `series` of the downloaded kernels (`6.12`) whatever this
    /// run's `--kernel`: for images that carry a kernel of their own (`oinit.kexec`).
    pub fn load_series(root: &Path, name: &str, series: &str) -> Result<Board, String> {
        Board::load_from(root, name, Some(series))
    }

    fn load_from(root: &Path, name: &str, series: Option<&str>) -> Result<Board, String> {
        let b = Board::read(root, name, series)?;
        let problems = check(name, &b.config, &b.cmdline, &b.layout, &b.modules_index, &b.kernel_version);
        if problems.is_empty() {
            Ok(b)
        } else {
            Err(problems.join("\n"))
        }
    }

    fn read(root: &Path, name: &str, series: Option<&str>) -> Result<Board, String> {
        let dir = root.join("board").join(name);
        if !dir.join("board.txt").exists() {
            return Err(format!("board {name}: no board/{name}/board.txt (boards: {})", list(root).join(", ")));
        }
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f)).map_err(|e| format!("board {name}: {}: {e}", dir.join(f).display()))
        };
        let txt = read("board.txt")?;
        let kv = parse_config(&txt);
        let opt = |k: &str| kv.iter().find(|(_, p)| p.key == k).and_then(|(_, p)| p.value.clone());
        let get = |k: &str| opt(k).ok_or(format!("board {name}: board.txt lacks {k}="));
        let deb_arch = get("deb_arch")?;
        let kernel_dir = match series {
            Some(series) => root.join("target/kernels").join(format!("{deb_arch}-{series}")),
            None => kernel::tree(root, &deb_arch),
        };
        let (module_dir, kernel_version) =
            kernel::modules(root, &kernel_dir).map_err(|e| format!("board {name}: {e}"))?;
        let out_name = if series.is_none() && kernel::is_default() {
            name.to_string()
        } else {
            format!("{name}@{kernel_version}")
        };
        let layout = Layout::parse(&read("genimage.cfg")?).map_err(|e| format!("board {name}: genimage.cfg: {e}"))?;
        let tools = opt("tools")
            .unwrap_or_default()
            .split_whitespace()
            .map(|t| t.split_once('=').map(|(d, h)| (d.to_string(), h.to_string())))
            .collect::<Option<Vec<_>>>()
            .ok_or(format!("board {name}: board.txt tools= takes PATH_IN_INITRAMFS=HOST_PATH words"))?;
        let rust_target = get("rust_target")?;
        if !tools.is_empty() && !rust_target.starts_with(std::env::consts::ARCH) {
            return Err(format!(
                "board {name}: board.txt tools= packs host programs, which cannot run on {rust_target}: remove tools="
            ));
        }
        let read_mod = |f: &str| std::fs::read_to_string(module_dir.join(f)).unwrap_or_default();
        let modules_index = ModIndex::parse(
            &read_mod("modules.dep"),
            &read_mod("modules.softdep"),
            &read_mod("modules.alias"),
            &read_mod("modules.builtin"),
        );
        Ok(Board {
            name: name.into(),
            rust_target,
            qemu: opt("qemu").unwrap_or_default(),
            qemu_args: opt("qemu_args").unwrap_or_default().split_whitespace().map(String::from).collect(),
            qemu_dtb: opt("qemu_dtb").map(|d| kernel_dir.join("dtbs").join(d)),
            dtb: opt("dtb").map(|d| kernel_dir.join("dtbs").join(d)),
            qemu_disk: opt("qemu_disk").unwrap_or("virtio-blk-pci".into()),
            bench_devices: opt("bench_devices").unwrap_or("root=/dev/vda1 oinit.data=/dev/vda2".into()),
            tools,
            config: read("overlay-init.conf")?,
            cmdline: read("cmdline")?.trim().to_string(),
            layout,
            modules_index,
            dir,
            kernel_dir,
            module_dir,
            kernel_version,
            out_name,
        })
    }

    /// Whether the disk is an SD card, whose QEMU model takes only power-of-two sizes.
    pub fn sd_card(&self) -> bool {
        self.qemu_disk.starts_with("sd-card") || self.qemu_disk.starts_with("if=sd")
    }

    /// The modules the board's config asks for (the same parser the init uses).
    pub fn modules(&self) -> Vec<String> {
        Settings::load(&self.config, "").0.boot_modules()
    }

    /// The modules the initramfs carries: the board's, and `loop` for the settings a command
    /// line may add (an image file as the lower or a slot), which the boot then loads itself.
    pub fn initramfs_modules(&self) -> Vec<String> {
        let mut m = self.modules();
        if self.modules_index.plan(&["loop".to_string()]).is_ok() && !m.iter().any(|x| x == "loop") {
            m.push("loop".into());
        }
        m
    }

    pub fn module_dir(&self) -> PathBuf {
        self.module_dir.clone()
    }

    /// `target/boards/NAME`, or `NAME@VERSION` for another kernel than the downloaded default.
    pub fn out_dir(&self, root: &Path) -> PathBuf {
        root.join("target/boards").join(&self.out_name)
    }

    pub fn bootable(&self) -> bool {
        !self.qemu.is_empty()
    }
}

/// Every folder under board/ with a board.txt.
pub fn list(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("board"))
        .map(|rd| rd.flatten().filter(|e| e.path().join("board.txt").exists()))
        .into_iter()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The board's settings against its layout and kernel: settings that parse, devices that name
/// partitions of the layout holding what they should, two distinct slots, modules the kernel has.
pub fn check(name: &str, config: &str, cmdline: &str, layout: &Layout, ix: &ModIndex, kernel: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (s, loaded) = Settings::load(config, cmdline);
    for e in &loaded.errors {
        out.push(format!("board {name}: {e}: fix board/{name}/overlay-init.conf or board/{name}/cmdline"));
    }
    let mut lowers = Vec::new();
    if let Some(spec) = &s.root {
        lowers.push(("root", spec));
    }
    for (i, key) in ["oinit.a", "oinit.b"].into_iter().enumerate() {
        if let Some(SlotSource::Partition(spec)) = &s.ab.slots[i] {
            lowers.push((key, spec));
        }
    }
    let mut slot_parts = Vec::new();
    for (key, spec) in lowers {
        match find(layout, spec, false) {
            Ok(Some(p)) if !p.image.as_deref().unwrap_or("").ends_with(".sqfs") => out.push(format!(
                "board {name}: {key}={spec} is partition {}, which genimage.cfg fills with {:?}, not a squashfs image: \
                 point {key} at a rootfs partition",
                p.name,
                p.image.as_deref().unwrap_or("nothing")
            )),
            Ok(Some(p)) => {
                if key != "root" {
                    slot_parts.push(p.name.clone());
                }
            }
            Ok(None) => {}
            Err(why) => out.push(format!("board {name}: {key}={spec}: {why}")),
        }
    }
    if slot_parts.len() == 2 && slot_parts[0] == slot_parts[1] {
        out.push(format!(
            "board {name}: oinit.a and oinit.b both name partition {}: give slot b a partition of its own in genimage.cfg",
            slot_parts[0]
        ));
    }
    for (i, spec) in s.ab.boot_parts.iter().enumerate() {
        let key = ["oinit.aboot", "oinit.bboot"][i];
        match spec.as_ref().map(|spec| (spec, find(layout, spec, false))) {
            Some((spec, Ok(Some(p)))) if !is_boot_image(p.image.as_deref()) => out.push(format!(
                "board {name}: {key}={spec} is partition {}, which genimage.cfg fills with {:?}, not a slot's boot \
                 partition (boot-SLOT.ext4)",
                p.name,
                p.image.as_deref().unwrap_or("nothing")
            )),
            Some((spec, Err(why))) => out.push(format!("board {name}: {key}={spec}: {why}")),
            _ => {}
        }
    }
    if let Some(spec) = &s.data {
        match find(layout, spec, true) {
            Ok(Some(p)) if p.image.as_deref() != Some("userdata.ext4") => out.push(format!(
                "board {name}: oinit.data={spec} is partition {}, which does not hold userdata.ext4: \
                 point oinit.data at the data partition",
                p.name
            )),
            Err(why) => out.push(format!("board {name}: oinit.data={spec}: {why}")),
            _ => {}
        }
    }
    out.extend(check_mtdparts(&s, layout).into_iter().map(|why| format!("board {name}: mtdparts=: {why}")));
    if let Err(why) = ix.plan(&s.modules) {
        out.push(format!(
            "board {name}: oinit.modules: {why} (kernel {kernel}): remove it from board/{name}/overlay-init.conf, \
             or use a kernel that has it"
        ));
    }
    out
}

/// A slot's boot partition image as the build makes it (`boot-a.ext4`).
pub fn is_boot_image(image: Option<&str>) -> bool {
    image.is_some_and(|i| i.starts_with("boot-") && i.ends_with(".ext4"))
}

/// The partition of the layout a device setting names, when the form names one.
pub fn partition_of<'a>(
    l: &'a Layout,
    spec: &DevSpec,
) -> Result<Option<&'a crate::board::genimage::Partition>, String> {
    find(l, spec, false)
}

/// `mtdparts=` (which the init applies with BLKPG) against the flash image genimage makes: the
/// same partitions at the same offsets, so the init finds the squashfs where genimage put it.
fn check_mtdparts(s: &Settings, layout: &Layout) -> Vec<String> {
    let mut out = Vec::new();
    for t in &s.mtdparts {
        let placed =
            match overlay_init::flash::mtdparts::place(t, layout.size.unwrap_or(0), layout.pebsize().unwrap_or(0)) {
                Ok(p) => p,
                Err(why) => {
                    out.push(why);
                    continue;
                }
            };
        let made: Vec<(String, u64, u64)> =
            layout.partitions.iter().map(|p| (p.name.clone(), p.offset.unwrap_or(0), p.size.unwrap_or(0))).collect();
        if placed != made {
            out.push(format!("places {placed:?}, genimage.cfg's flash image has {made:?}: make them agree"));
        }
    }
    out
}

/// The partition a device setting names; None when the form cannot be checked (/dev/NAME,
/// MAJ:MIN, mtd:NAME, ubi:VOLUME: flash partitions and volumes are made by the kernel, ubinize
/// or the init, not by genimage).
fn find<'a>(
    l: &'a Layout,
    spec: &DevSpec,
    data: bool,
) -> Result<Option<&'a crate::board::genimage::Partition>, String> {
    let none = |what: String| format!("{what} in genimage.cfg (partitions: {}): add it or fix the setting", l.names());
    if l.table == Table::Flash {
        return find_on_flash(l, spec, data);
    }
    match spec {
        DevSpec::PartLabel(_) if l.table == Table::Mbr => {
            Err(format!("PARTLABEL= needs a GPT disk and {} is MBR: use PARTUUID=SIGNATURE-NN", l.disk))
        }
        DevSpec::PartLabel(n) => l.partition(n).map(Some).ok_or_else(|| none(format!("no partition named {n}"))),
        DevSpec::PartUuid(u) => l
            .partitions
            .iter()
            .find(|p| l.partuuid(p).as_deref() == Some(u.as_str()))
            .map(Some)
            .ok_or_else(|| none(format!("no partition with PARTUUID {u}"))),
        // The build makes one labelled filesystem: the ext4 data image, named after its partition.
        DevSpec::Label(n) if data => l.holding("userdata.ext4").filter(|p| &p.name == n).map(Some).ok_or_else(|| {
            let has = l.holding("userdata.ext4").map_or("no partition".into(), |p| p.name.clone());
            format!("the data filesystem is labelled after its partition ({has}), not {n}: use LABEL={has}")
        }),
        DevSpec::Uuid(u) if data && u == DATA_UUID => Ok(l.holding("userdata.ext4")),
        DevSpec::Label(_) | DevSpec::Uuid(_) if !data => {
            Err("a squashfs has no label or UUID: name its partition (PARTLABEL= or PARTUUID=)".into())
        }
        DevSpec::Uuid(u) => Err(format!("the data filesystem is made with UUID {DATA_UUID}, not {u}")),
        DevSpec::Path(_) | DevSpec::Number(..) | DevSpec::Mtd(_) | DevSpec::Ubi { .. } => Ok(None),
        DevSpec::Label(_) => Ok(None),
    }
}

/// On raw flash, devices are MTD partitions (`mtd:NAME`) and UBI volumes (`ubi:VOLUME`); a data
/// volume may be missing (the first boot creates it).
fn find_on_flash<'a>(
    l: &'a Layout,
    spec: &DevSpec,
    data: bool,
) -> Result<Option<&'a crate::board::genimage::Partition>, String> {
    match spec {
        DevSpec::Mtd(n) => l
            .partition(n)
            .map(Some)
            .ok_or_else(|| format!("no MTD partition {n} in genimage.cfg's flash image (partitions: {})", l.names())),
        DevSpec::Ubi { volume, .. } if !data => {
            let vols = l.ubi_volumes();
            if vols.iter().any(|(_, v, _)| v == volume) {
                Ok(None)
            } else {
                let names: Vec<&str> = vols.iter().map(|(_, v, _)| v.as_str()).collect();
                Err(format!("no UBI volume {volume} in genimage.cfg (volumes: {})", names.join(", ")))
            }
        }
        DevSpec::Ubi { .. } | DevSpec::Path(_) | DevSpec::Number(..) => Ok(None),
        _ => Err(format!("{} is raw flash without a partition table: use mtd:NAME or ubi:VOLUME", l.disk)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GPT: &str = r#"image disk.img {
        hdimage { partition-table-type = "gpt" }
        partition boot { image = "boot.vfat" size = 16M }
        partition rootfs_a { image = "rootfs-a.sqfs" size = 64M }
        partition userdata { image = "userdata.ext4" size = 64M }
    }"#;
    const GOOD: &str = "oinit.data=PARTLABEL=userdata\noinit.modules=squashfs\n";

    fn run(config: &str, layout: &str) -> Vec<String> {
        let ix = ModIndex::parse("kernel/fs/squashfs/squashfs.ko:\n", "", "", "");
        check("imx8", config, "", &Layout::parse(layout).unwrap(), &ix, "6.1.0")
    }

    #[test]
    fn a_consistent_board_passes() {
        assert_eq!(run(&format!("root=PARTLABEL=rootfs_a\n{GOOD}"), GPT), Vec::<String>::new());
    }

    #[test]
    fn contradictions_name_the_board_the_key_and_the_fix() {
        let cases = [
            // Slots without a second partition.
            (
                "oinit.a=PARTLABEL=rootfs_a\noinit.b=PARTLABEL=rootfs_b",
                "oinit.b=PARTLABEL=rootfs_b: no partition named rootfs_b",
            ),
            ("oinit.a=PARTLABEL=rootfs_a\noinit.b=PARTLABEL=rootfs_a", "give slot b a partition of its own"),
            ("oinit.a=PARTLABEL=rootfs_a", "oinit.b"),
            // A module the kernel does not have.
            ("root=PARTLABEL=rootfs_a\noinit.modules=squashfs,imaginary", "oinit.modules"),
            ("root=PARTLABEL=boot", "not a squashfs image"),
            ("root=PARTLABEL=rootfs_a\noinit.data=LABEL=data", "use LABEL=userdata"),
            ("root=LABEL=rootfs", "a squashfs has no label"),
        ];
        for (config, want) in cases {
            let errors = run(&format!("{GOOD}{config}"), GPT);
            assert!(errors.iter().any(|e| e.starts_with("board imx8: ") && e.contains(want)), "{config}: {errors:?}");
        }
        let mbr = GPT.replace(r#"partition-table-type = "gpt""#, "disk-signature = 0x1234abcd");
        let errors = run(&format!("{GOOD}root=PARTLABEL=rootfs_a"), &mbr);
        assert!(errors[0].contains("use PARTUUID="), "{errors:?}");
        let mbr_board = "root=PARTUUID=1234abcd-02\noinit.data=LABEL=userdata\noinit.modules=squashfs";
        assert_eq!(run(mbr_board, &mbr), Vec::<String>::new());
    }

    #[test]
    fn flash_boards_name_mtd_partitions_and_ubi_volumes() {
        let flash = r#"flash chip { pebsize = 64k }
            image root.ubi { ubi {} flashtype = "chip" partition rootfs_a { image = "rootfs-a.sqfs" size = 4M } }
            image flash.img { flash {} flashtype = "chip" partition ubi { image = "root.ubi" size = 32M } }"#;
        let good = "root=ubi:rootfs_a\noinit.data=ubi:rootfs_data\noinit.modules=squashfs";
        assert_eq!(run(good, flash), Vec::<String>::new());
        let cases = [
            ("root=ubi:rootfs", "no UBI volume rootfs in genimage.cfg (volumes: rootfs_a)"),
            ("root=mtd:firmware", "no MTD partition firmware"),
            ("root=PARTLABEL=rootfs_a", "use mtd:NAME or ubi:VOLUME"),
        ];
        for (config, want) in cases {
            let errors = run(&format!("{config}\noinit.modules=squashfs"), flash);
            assert!(errors.iter().any(|e| e.contains(want)), "{config}: {errors:?}");
        }
    }
}
