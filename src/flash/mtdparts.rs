//! The kernel's `mtdparts=` applied from userspace, for kernels built without its command-line
//! partition parser (`CONFIG_MTD_CMDLINE_PARTS`, which Debian's lack): the partitions a master
//! MTD device is to have are added with `BLKPG`, as mtd-utils' `mtdpart add` does, unless the
//! kernel made them. The syntax is the kernel's (drivers/mtd/parsers/cmdlinepart.c):
//! `mtdparts=<mtd-id>:<size>[@<offset>][(<name>)][ro],...[;<mtd-id>:...]`, a size of `-` taking
//! the rest. Pure: the facts come from sysfs, the additions go to `sys::mtd`.

use crate::config::values::memsize;
use crate::rt::path::Path;
use crate::rt::prelude::*;

/// One `<mtd-id>:...` of `mtdparts=`: the master's name and its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub master: String,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    /// None: the rest of the master (`-`).
    pub size: Option<u64>,
    /// None: right after the partition before it.
    pub offset: Option<u64>,
}

/// An MTD device as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtdFact {
    pub index: u32,
    pub name: String,
    pub size: u64,
    pub erasesize: u64,
}

/// A partition to add to master `/dev/mtdN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    pub master: u32,
    pub name: String,
    pub offset: u64,
    pub length: u64,
}

/// Parses the value of `mtdparts=`.
pub fn parse(v: &str) -> Result<Vec<Table>, String> {
    v.split(';').filter(|d| !d.is_empty()).map(parse_table).collect()
}

fn parse_table(def: &str) -> Result<Table, String> {
    // An mtd-id may hold a colon itself; partitions start after the last one before a name.
    let head = &def[..def.find('(').unwrap_or(def.len())];
    let colon = head.rfind(':').ok_or_else(|| format!("{def}: no <mtd-id>: before the partitions"))?;
    let (master, list) = (&def[..colon], &def[colon + 1..]);
    if master.is_empty() {
        return Err(format!("{def}: empty <mtd-id>"));
    }
    let mut parts = Vec::new();
    for (i, p) in list.split(',').enumerate() {
        if parts.last().is_some_and(|l: &Part| l.size.is_none()) {
            return Err(format!("{p}: no partition can follow one of size '-' (the rest)"));
        }
        parts.push(parse_part(p, i)?);
    }
    Ok(Table { master: master.to_string(), parts })
}

/// `<size>[@<offset>][(<name>)][ro][lk][slc]`; unnamed partitions are named as the kernel does.
fn parse_part(p: &str, index: usize) -> Result<Part, String> {
    let (size, mut rest) = match p.strip_prefix('-') {
        Some(rest) => (None, rest),
        None => {
            let (n, rest) = memsize(p).ok_or_else(|| format!("{p}: a partition starts with a size like 64k or -"))?;
            (Some(n), rest)
        }
    };
    let mut offset = None;
    if let Some(r) = rest.strip_prefix('@') {
        let (n, r) = memsize(r).ok_or_else(|| format!("{p}: @ needs an offset like 0x40000"))?;
        offset = Some(n);
        rest = r;
    }
    let mut name = format!("Partition_{index:03}");
    if let Some(r) = rest.strip_prefix('(') {
        let end = r.find(')').ok_or_else(|| format!("{p}: the name has no closing )"))?;
        name = r[..end].to_string();
        rest = &r[end + 1..];
    }
    // Flags the kernel knows; a partition added with BLKPG cannot be made read-only, and the
    // init never writes outside the data area anyway.
    while !rest.is_empty() {
        rest = ["ro", "lk", "slc"]
            .iter()
            .find_map(|f| rest.strip_prefix(f))
            .ok_or_else(|| format!("{p}: '{rest}' is not ro, lk or slc"))?;
    }
    if name.is_empty() || name.len() >= 64 {
        return Err(format!("{p}: a name is 1 to 63 bytes"));
    }
    Ok(Part { name, size, offset })
}

/// Each partition's absolute place in a master of `size` bytes: (name, offset, length). Refused
/// before anything is written: a partition past the end, overlapping the one before it, or not
/// on erase-block boundaries (the kernel would make it read-only, and jffs2 or UBI on it fail).
pub fn place(t: &Table, size: u64, erasesize: u64) -> Result<Vec<(String, u64, u64)>, String> {
    let mut out = Vec::new();
    let mut next = 0;
    for p in &t.parts {
        let offset = p.offset.unwrap_or(next);
        if offset < next {
            return Err(format!("{}: partition {} at byte {offset} overlaps the one before it", t.master, p.name));
        }
        let length = p.size.unwrap_or(size.saturating_sub(offset));
        let end = offset.checked_add(length).filter(|e| *e <= size && length > 0);
        let Some(end) = end else {
            return Err(format!(
                "{}: partition {} ({length} bytes at byte {offset}) does not fit its {size} bytes",
                t.master, p.name
            ));
        };
        if erasesize > 0 && (offset % erasesize != 0 || length % erasesize != 0) {
            return Err(format!(
                "{}: partition {} ({length} bytes at byte {offset}) is not in whole {erasesize}-byte erase blocks",
                t.master, p.name
            ));
        }
        out.push((p.name.clone(), offset, length));
        next = end;
    }
    Ok(out)
}

/// The partitions to add: those of each master present whose names no MTD device has yet (a
/// kernel with the parser made them, and they are left alone). A master not there yet is
/// skipped: the device search waits for it.
pub fn decide(tables: &[Table], mtds: &[MtdFact]) -> Result<Vec<Add>, String> {
    let mut out = Vec::new();
    for t in tables {
        let Some(m) = mtds.iter().find(|m| m.name == t.master) else { continue };
        for (name, offset, length) in place(t, m.size, m.erasesize)? {
            if !mtds.iter().any(|x| x.name == name) {
                out.push(Add { master: m.index, name, offset, length });
            }
        }
    }
    Ok(out)
}

/// The master and offset of partition `name` as `mtdparts=` places it, if a table names it and
/// its master is present.
pub fn locate(tables: &[Table], mtds: &[MtdFact], name: &str) -> Option<(u32, u64)> {
    tables.iter().find_map(|t| {
        let m = mtds.iter().find(|m| m.name == t.master)?;
        let placed = place(t, m.size, m.erasesize).ok()?;
        placed.into_iter().find(|(n, _, _)| n == name).map(|(_, offset, _)| (m.index, offset))
    })
}

/// The MTD devices in `/sys/class/mtd` (`mtdN`, not the `mtdNro` nodes).
pub fn facts(sysfs: &Path) -> Vec<MtdFact> {
    let mut out = Vec::new();
    for e in crate::rt::fs::read_dir(sysfs.join("class/mtd")).into_iter().flatten().flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(index) = file.strip_prefix("mtd").and_then(|n| n.parse().ok()) else { continue };
        let read = |f: &str| crate::rt::fs::read_to_string(e.path().join(f)).map(|s| s.trim().to_string()).ok();
        let num = |f: &str| read(f).and_then(|s| s.parse().ok()).unwrap_or(0);
        let Some(name) = read("name") else { continue };
        out.push(MtdFact { index, name, size: num("size"), erasesize: num("erasesize") });
    }
    crate::util::sort::sort_by_key(&mut out, |m| m.index);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MT7621: &str = "spi-nor:192k(u-boot)ro,64k(u-boot-env)ro,64k(factory)ro,-(firmware)";

    fn mtd(index: u32, name: &str, size: u64) -> MtdFact {
        MtdFact { index, name: name.into(), size, erasesize: 64 << 10 }
    }

    #[test]
    fn parses_the_kernel_syntax() {
        let t = parse(MT7621).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].master, "spi-nor");
        let names: Vec<&str> = t[0].parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["u-boot", "u-boot-env", "factory", "firmware"]);
        assert_eq!(t[0].parts[0].size, Some(192 << 10));
        assert_eq!(t[0].parts[3].size, None);
        let t = parse("spi0.0:0x40000@0x10000(boot),1M;nand:-(ubi)").unwrap();
        assert_eq!(t[0].parts[0], Part { name: "boot".into(), size: Some(0x40000), offset: Some(0x10000) });
        assert_eq!(t[0].parts[1].name, "Partition_001");
        assert_eq!(
            t[1],
            Table { master: "nand".into(), parts: vec![Part { name: "ubi".into(), size: None, offset: None }] }
        );
        // An mtd-id with a colon of its own.
        assert_eq!(parse("block2mtd: /dev/vda:-(all)").unwrap()[0].master, "block2mtd: /dev/vda");
    }

    #[test]
    fn refuses_what_the_kernel_would_not_take() {
        for (bad, why) in [
            ("64k(a)", "no <mtd-id>"),
            ("f:-(a),64k(b)", "no partition can follow"),
            ("f:64q(a)", "'q(a)' is not ro, lk or slc"),
            ("f:x(a)", "starts with a size"),
            ("f:64k(a", "no closing )"),
            ("f:64k@(a)", "@ needs an offset"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn places_partitions_in_whole_erase_blocks_inside_the_master() {
        let t = &parse(MT7621).unwrap()[0];
        let placed = place(t, 32 << 20, 64 << 10).unwrap();
        assert_eq!(placed[3], ("firmware".into(), 320 << 10, (32 << 20) - (320 << 10)));
        let e = place(&parse("f:100k(a)").unwrap()[0], 1 << 20, 64 << 10).unwrap_err();
        assert!(e.contains("not in whole 65536-byte erase blocks"), "{e}");
        let e = place(&parse("f:2M(a)").unwrap()[0], 1 << 20, 64 << 10).unwrap_err();
        assert!(e.contains("does not fit its 1048576 bytes"), "{e}");
        let e = place(&parse("f:128k(a),64k@64k(b)").unwrap()[0], 1 << 20, 64 << 10).unwrap_err();
        assert!(e.contains("overlaps"), "{e}");
    }

    #[test]
    fn adds_only_what_the_kernel_did_not_make() {
        let t = parse(MT7621).unwrap();
        assert_eq!(decide(&t, &[]).unwrap(), []);
        let adds = decide(&t, &[mtd(0, "spi-nor", 32 << 20)]).unwrap();
        assert_eq!(adds.len(), 4);
        assert_eq!(adds[0], Add { master: 0, name: "u-boot".into(), offset: 0, length: 192 << 10 });
        let made = [mtd(0, "u-boot", 192 << 10), mtd(1, "u-boot-env", 64 << 10), mtd(2, "factory", 64 << 10)];
        assert_eq!(decide(&t, &made).unwrap(), []);
        let mtds = [mtd(0, "spi-nor", 32 << 20), mtd(1, "u-boot", 192 << 10), mtd(4, "firmware", 1)];
        assert_eq!(locate(&t, &mtds, "firmware"), Some((0, 320 << 10)));
        assert_eq!(locate(&t, &mtds[1..], "firmware"), None);
    }
}
