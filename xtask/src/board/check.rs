//! `cargo xtask check-boards`: every board's settings are checked against its layout and kernel
//! (when it loads), its disk image is built with genimage, and the image is read back: the
//! partition table, each partition's place and size, and what sits in it (squashfs byte for byte,
//! ext4 with the expected label, the boot partition's files).

use crate::board::genimage::{Partition, Table};
use crate::board::{self, Board};
use crate::image::{self, read_at, Part};
use crate::sh;
use std::path::Path;

pub fn main(root: &Path, names: &[String]) -> Result<(), String> {
    let names = if names.is_empty() { board::list(root) } else { names.to_vec() };
    let mut failed = Vec::new();
    for name in &names {
        match Board::load(root, name).and_then(|b| check(root, &b)) {
            Ok(lines) => {
                println!("PASS board {name}");
                for l in lines {
                    println!("  {l}");
                }
            }
            Err(e) => {
                println!("FAIL board {name}: {e}");
                failed.push(name.clone());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("boards failed: {}", failed.join(", ")))
    }
}

/// Builds the board's disk and compares it with the layout; returns one line per partition.
fn check(root: &Path, b: &Board) -> Result<Vec<String>, String> {
    let disk = b.out_dir(root).join("disk.img");
    crate::image::disk::build(root, b, &disk)?;
    let l = &b.layout;
    if l.table == Table::Flash {
        let mut lines = flash(b, &disk)?;
        lines.push(kernel_list(root, b)?);
        return Ok(lines);
    }
    let dump = sh::output(sh::cmd("sfdisk").arg("-d").arg(&disk))?;
    let want_label = if l.table == Table::Gpt { "label: gpt" } else { "label: dos" };
    if !dump.lines().any(|x| x == want_label) {
        return Err(format!("{} table expected, sfdisk says:\n{dump}", l.table));
    }
    if let Some(id) = &l.disk_id {
        let got = dump.lines().find_map(|x| x.strip_prefix("label-id: ")).unwrap_or("").to_ascii_lowercase();
        if got.trim_start_matches("0x") != id.trim_start_matches("0x") {
            return Err(format!("disk id {got}, genimage.cfg says {id}"));
        }
    }
    if let Some(size) = l.size {
        let got = std::fs::metadata(&disk).map_err(|e| e.to_string())?.len();
        if got != size {
            return Err(format!("disk is {got} bytes, genimage.cfg says {size}"));
        }
    }
    let parts = image::partitions(&disk)?;
    let table: Vec<&Partition> = l.partitions.iter().filter(|p| p.number.is_some()).collect();
    if parts.len() != table.len() {
        return Err(format!("{} partitions on disk, genimage.cfg has {} ({})", parts.len(), table.len(), l.names()));
    }
    let mut lines = vec![format!("{} {} disk, {} MiB", l.table, l.disk, l.size.unwrap_or(0) >> 20)];
    for (want, got) in table.iter().zip(&parts) {
        lines.push(partition(b, &disk, want, got).map_err(|e| format!("partition {}: {e}", want.name))?);
    }
    lines.push(kernel_list(root, b)?);
    if b.dir.join("fw_env.config").exists() {
        lines.push(uboot_env(root, b, &parts, l.table == Table::Gpt)?);
    }
    if b.dir.join("boot.cmd").exists() {
        lines.push(crate::board::bootscript::check(b)?);
    }
    Ok(lines)
}

/// The board's U-Boot environment (`fw_env.config`, read by overlay-init's own parser as the
/// boot reads it): copies of one size that do not overlap each other, and, where they are on the
/// disk itself (a whole-disk node such as /dev/mmcblk2), in the gap genimage leaves before its
/// partitions, overlapping none. The boot script the board's U-Boot sources must compile with
/// U-Boot's `mkimage`.
fn uboot_env(root: &Path, b: &Board, parts: &[Part], gpt: bool) -> Result<String, String> {
    let path = b.dir.join("fw_env.config");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cfg = overlay_init::uboot::config::parse(&text, &path.display().to_string())?;
    let size = cfg.size() as u64;
    let whole_disk = |d: &str| {
        let name = d.trim_start_matches("/dev/");
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        name.strip_prefix("mmcblk").is_some_and(digits) || (name.len() == 3 && ["sd", "vd"].contains(&&name[..2]))
    };
    let mut places = Vec::new();
    for c in &cfg.copies {
        if whole_disk(&c.device) {
            let start = u64::try_from(c.offset).map_err(|_| {
                format!("{}: offset {} from the end of the disk: its place depends on the card", c.device, c.offset)
            })?;
            // The primary GPT: the protective MBR, the header and 128 entries of 128 bytes.
            if gpt && start < 34 * 512 {
                return Err(format!("the U-Boot environment at {} offset {start:#x} is inside the GPT", c.device));
            }
            if let Some(p) = parts.iter().find(|p| start < p.start + p.size && p.start < start + size) {
                return Err(format!(
                    "the U-Boot environment at {} offset {start:#x} ({size:#x} bytes) overlaps partition {}",
                    c.device, p.name
                ));
            }
            places.push(format!("{} at {start:#x}", c.device));
        } else {
            let sign = if c.offset < 0 { "-" } else { "" };
            places.push(format!("{} at {sign}{:#x}", c.device, c.offset.unsigned_abs()));
        }
    }
    if let [a, b2] = cfg.copies.as_slice() {
        let overlap = a.device == b2.device && a.offset < b2.offset + size as i64 && b2.offset < a.offset + size as i64;
        if overlap {
            return Err(format!("the two environment copies on {} overlap", a.device));
        }
    }
    crate::image::uboot::board_script(root, b, &b.out_dir(root).join("boot.scr"))?;
    Ok(format!(
        "U-Boot environment: {} of {size:#x} bytes ({}), clear of the partitions; boot.scr compiled by mkimage",
        if cfg.redundant() { "2 copies" } else { "1 copy" },
        places.join(", ")
    ))
}

/// A raw flash image read back: its size, then per MTD partition what it holds. A squashfs
/// partition (NOR) holds the image byte for byte and erased flash after it, where rootfs_data
/// goes; a UBI partition (NAND) holds the volumes genimage.cfg lists, each volume's data
/// starting with its image, and erased eraseblocks after them.
fn flash(b: &Board, disk: &Path) -> Result<Vec<String>, String> {
    let l = &b.layout;
    let bytes = std::fs::read(disk).map_err(|e| format!("{}: {e}", disk.display()))?;
    let peb = l.pebsize().ok_or("the flash section has no pebsize")? as usize;
    if Some(bytes.len() as u64) != l.size {
        return Err(format!("flash image is {} bytes, its partitions add up to {}", bytes.len(), l.size.unwrap_or(0)));
    }
    // The inputs genimage read (disk::build keeps them beside the image).
    let inputs = disk.parent().map(|d| d.join("inputs")).ok_or("no inputs directory")?;
    let read = |name: &str| std::fs::read(inputs.join(name)).map_err(|e| format!("input {name}: {e}"));
    let mut lines = vec![format!("{} {}, {} MiB, {} KiB eraseblocks", l.table, l.disk, bytes.len() >> 20, peb >> 10)];
    for p in &l.partitions {
        let (start, len) = (p.offset.unwrap_or(0) as usize, p.size.unwrap_or(0) as usize);
        let area = &bytes[start..start + len];
        let image = p.image.as_deref().unwrap_or("");
        let what = if image.ends_with(".sqfs") {
            let sqfs = read(image)?;
            if !area.starts_with(&sqfs) {
                return Err(format!("partition {}: does not start with {image}", p.name));
            }
            let data = sqfs.len().div_ceil(peb) * peb;
            if area[sqfs.len()..].iter().any(|b| *b != 0xff) {
                return Err(format!("partition {}: the space after {image} is not erased (0xFF)", p.name));
            }
            format!(
                "squashfs {image} ({} KiB), then {} KiB erased from eraseblock {} on: rootfs_data",
                sqfs.len() >> 10,
                (len - data) >> 10,
                data / peb
            )
        } else if image.is_empty() {
            // The bootloader's partitions: genimage leaves them erased, the init never writes them.
            let erased = area.iter().all(|b| *b == 0xff);
            if !erased {
                return Err(format!("partition {}: genimage.cfg gives it no image, yet it is not erased", p.name));
            }
            "no image (the bootloader's; erased here)".to_string()
        } else {
            ubi(l, &p.name, area, peb, &read)?
        };
        lines.push(format!("{:<14} {:>5} KiB at {:>5} KiB: {what}", p.name, len >> 10, start >> 10));
    }
    Ok(lines)
}

/// A UBI partition: every volume genimage.cfg puts in it, holding its image.
fn ubi(
    l: &crate::board::genimage::Layout,
    part: &str,
    area: &[u8],
    peb: usize,
    read: &dyn Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<String, String> {
    use crate::image::flash as fi;
    let err = |e: String| format!("partition {part}: {e}");
    let (lebs, erased) = fi::lebs(area, peb).map_err(err)?;
    let on_flash = fi::volumes(area, &lebs).map_err(err)?;
    let mut found = Vec::new();
    for (_, vol, input) in l.ubi_volumes() {
        let id = on_flash.iter().find(|(_, n)| *n == vol).map(|(id, _)| *id).ok_or_else(|| {
            err(format!("no UBI volume {vol} (volumes: {:?})", on_flash.iter().map(|(_, n)| n).collect::<Vec<_>>()))
        })?;
        let data = fi::volume(area, &lebs, id).map_err(err)?;
        let input = input.ok_or_else(|| err(format!("volume {vol} has no image in genimage.cfg")))?;
        if !data.starts_with(&read(&input)?) {
            return Err(err(format!("UBI volume {vol} does not hold {input}")));
        }
        found.push(format!("{vol} ({} KiB) = {input}", data.len() >> 10));
    }
    Ok(format!(
        "UBI, {} eraseblocks in use and {erased} erased; volumes {} (data written)",
        lebs.len(),
        found.join(", ")
    ))
}

/// The board's initramfs list handed unchanged to the kernel's own gen_init_cpio (what
/// CONFIG_INITRAMFS_SOURCE does) must give the same members as our builder.
fn kernel_list(root: &Path, b: &Board) -> Result<String, String> {
    let ours = image::initramfs(root, b)?;
    let list = b.out_dir(root).join("initramfs.list");
    let tool = root.join("target/kernels/gen_init_cpio");
    let theirs = sh::output_bytes(sh::cmd(&tool.to_string_lossy()).args(["-t", "0"]).arg(&list))?;
    let ours = sh::output_bytes(sh::cmd("gzip").arg("-dc").arg(&ours))?;
    let (theirs, ours) = (initramfs::read_newc(&theirs)?, initramfs::read_newc(&ours)?);
    if let Some((t, o)) = theirs.iter().zip(&ours).find(|(t, o)| t != o) {
        return Err(format!(
            "gen_init_cpio and our builder differ at {} (mode {:o}/{:o}, {} and {} bytes)",
            t.name,
            t.mode,
            o.mode,
            t.data.len(),
            o.data.len()
        ));
    }
    if theirs.len() != ours.len() {
        return Err(format!("gen_init_cpio wrote {} members, our builder {}", theirs.len(), ours.len()));
    }
    // initramfs/base.list as CONFIG_INITRAMFS_SOURCE: the kernel's tool expands its variables
    // from the environment; every member it makes is in the board's archive, byte for byte.
    let base = sh::output_bytes(
        sh::cmd(&tool.to_string_lossy())
            .env("OVERLAY_INIT_BIN", root.join("target").join(&b.rust_target).join("release/overlay-init"))
            .env("OVERLAY_INIT_CONF", b.dir.join("overlay-init.conf"))
            .args(["-t", "0"])
            .arg(root.join("initramfs/base.list")),
    )?;
    let base = initramfs::read_newc(&base)?;
    if let Some(m) = base.iter().find(|m| !ours.contains(m)) {
        return Err(format!("initramfs/base.list through gen_init_cpio makes {}, which differs from ours", m.name));
    }
    Ok(format!(
        "initramfs.list through the kernel's gen_init_cpio: the same {} members as ours; base.list: {} members",
        ours.len(),
        base.len()
    ))
}

fn partition(b: &Board, disk: &Path, want: &Partition, got: &Part) -> Result<String, String> {
    let l = &b.layout;
    if l.table == Table::Gpt && got.name != want.name {
        return Err(format!("named {:?} on disk", got.name));
    }
    if want.offset.is_some_and(|o| o != got.start) || want.size.is_some_and(|s| s != got.size) {
        return Err(format!(
            "at {} size {} on disk, genimage.cfg says {:?} {:?}",
            got.start, got.size, want.offset, want.size
        ));
    }
    if l.table == Table::Gpt && want.uuid.is_some() && want.uuid != got.uuid {
        return Err(format!("PARTUUID {:?} on disk, genimage.cfg says {:?}", got.uuid, want.uuid));
    }
    let what = match want.image.as_deref() {
        Some(img) if img.ends_with(".sqfs") => {
            let input =
                std::fs::read(b.out_dir(&crate::repo_root()).join("inputs").join(img)).map_err(|e| e.to_string())?;
            if read_at(disk, got.start, input.len() as u64)? != input || &input[..4] != b"hsqs" {
                return Err(format!("does not hold {img} byte for byte"));
            }
            format!("squashfs {img} ({} KiB)", input.len() >> 10)
        }
        Some("userdata.ext4") => {
            let sb = read_at(disk, got.start + 1024, 1024)?;
            let label = String::from_utf8_lossy(&sb[0x78..0x88]).trim_end_matches('\0').to_string();
            if sb[0x38..0x3a] != [0x53, 0xef] || label != want.name {
                return Err(format!("no ext4 labelled {} (label {label:?})", want.name));
            }
            format!("ext4 LABEL={label}")
        }
        Some(img) if crate::board::is_boot_image(Some(img)) => {
            let part = b.out_dir(&crate::repo_root()).join("boot-partition.ext4");
            std::fs::write(&part, read_at(disk, got.start, got.size)?).map_err(|e| e.to_string())?;
            let files = crate::image::uboot::ext4_files(&part);
            let _ = std::fs::remove_file(&part);
            let files = files?;
            let want = crate::image::uboot::BOOT_FILES;
            if let Some(missing) = want.iter().find(|f| !files.iter().any(|x| x == *f)) {
                return Err(format!("the slot's boot partition lacks {missing} (has {})", files.join(", ")));
            }
            format!("ext4: {}", files.join(", "))
        }
        Some(img) if img.ends_with(".vfat") => {
            let listing = sh::output(
                sh::cmd("mdir")
                    .env("MTOOLS_SKIP_CHECK", "1")
                    .arg("-i")
                    .arg(format!("{}@@{}", disk.display(), got.start))
                    .args(["-/", "-b", "::"]),
            )?;
            let files: Vec<&str> =
                listing.lines().filter(|x| !x.ends_with('/')).map(|x| x.trim_start_matches("::/")).collect();
            if let Some(missing) = l.vfat_files(Some(img)).into_iter().find(|f| !files.contains(&f.path.as_str())) {
                return Err(format!("the vfat lacks {} (has {})", missing.path, files.join(", ")));
            }
            format!("vfat: {}", files.join(", "))
        }
        Some(other) => other.to_string(),
        None => "empty".to_string(),
    };
    let id = l.partuuid(want).map(|u| format!(" PARTUUID={u}")).unwrap_or_default();
    Ok(format!("{:<12} {:>5} MiB at {:>4} MiB{id}: {what}", want.name, got.size >> 20, got.start >> 20))
}
