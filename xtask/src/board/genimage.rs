//! Reads a board's `genimage.cfg` (libconfuse syntax, as genimage itself reads it) far enough to
//! know the disk layout: which partitions exist, their sizes, names, UUIDs and images. The build
//! uses it to make the right inputs and the checks use it to compare settings and results.

use std::fmt;

/// One `kind [name] { ... }` block.
#[derive(Debug, Default, Clone)]
pub struct Section {
    pub kind: String,
    pub name: String,
    pub values: Vec<(String, Value)>,
    pub children: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    One(String),
    List(Vec<String>),
}

impl Section {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.iter().find(|(k, _)| k == key).and_then(|(_, v)| match v {
            Value::One(s) => Some(s.as_str()),
            Value::List(_) => None,
        })
    }

    pub fn list(&self, key: &str) -> Vec<String> {
        match self.values.iter().find(|(k, _)| k == key).map(|(_, v)| v) {
            Some(Value::List(l)) => l.clone(),
            Some(Value::One(s)) => vec![s.clone()],
            None => Vec::new(),
        }
    }

    pub fn child(&self, kind: &str) -> Option<&Section> {
        self.children.iter().find(|c| c.kind == kind)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Gpt,
    Mbr,
    /// Raw flash (genimage's `flash` image): partitions concatenated, padded to their sizes, no
    /// table; the kernel names them from the device tree, `mtdparts=` or block2mtd.
    Flash,
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Table::Gpt => "GPT",
            Table::Mbr => "MBR",
            Table::Flash => "MTD flash",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Partition {
    pub name: String,
    pub image: Option<String>,
    pub offset: Option<u64>,
    pub size: Option<u64>,
    /// GPT partition GUID, lower case.
    pub uuid: Option<String>,
    /// Its number in the partition table (1-based), None for raw areas outside it.
    pub number: Option<u32>,
}

/// The disk image of a board: the `hdimage` section and its partitions, plus the other images
/// (vfat boot partitions) the config defines.
#[derive(Debug, Clone)]
pub struct Layout {
    pub disk: String,
    pub table: Table,
    /// GPT disk GUID or MBR disk signature (`0x12345678`), as written in the config.
    pub disk_id: Option<String>,
    pub size: Option<u64>,
    pub partitions: Vec<Partition>,
    pub images: Vec<Section>,
    /// The `flash` section a flash image names with `flashtype` (eraseblock size and so on).
    pub flash: Option<Section>,
}

/// One file of a vfat image: its path inside the filesystem and the input it is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfatFile {
    pub path: String,
    pub input: String,
}

impl Layout {
    /// The files of every vfat image: `files = { ... }` (same name inside and out) and
    /// `file PATH { image = INPUT }`.
    pub fn vfat_files(&self, image: Option<&str>) -> Vec<VfatFile> {
        let mut out = Vec::new();
        for vfat in self.images.iter().filter(|s| image.is_none_or(|i| s.name == i)).filter_map(|s| s.child("vfat")) {
            out.extend(vfat.list("files").into_iter().map(|f| VfatFile { path: f.clone(), input: f }));
            for c in vfat.children.iter().filter(|c| c.kind == "file") {
                if let Some(input) = c.get("image") {
                    out.push(VfatFile { path: c.name.clone(), input: input.to_string() });
                }
            }
        }
        out
    }

    pub fn parse(text: &str) -> Result<Layout, String> {
        let top = parse(text)?;
        let images: Vec<Section> = top.iter().filter(|s| s.kind == "image").cloned().collect();
        if !images.iter().any(|s| s.child("hdimage").is_some()) {
            if let Some(img) = images.iter().find(|s| s.child("flash").is_some()) {
                return Layout::flash(img, &images, &top);
            }
        }
        let disk = images
            .iter()
            .find(|s| s.child("hdimage").is_some())
            .ok_or("no image with an hdimage or a flash section")?;
        let hd = disk.child("hdimage").cloned().unwrap_or_default();
        let table = match (hd.get("partition-table-type"), hd.get("gpt")) {
            (Some("gpt"), _) | (None, Some("true")) => Table::Gpt,
            _ => Table::Mbr,
        };
        let mut number = 0;
        let mut partitions = Vec::new();
        let in_table = |p: &&Section| p.get("in-partition-table") != Some("false");
        // An MBR holds four partitions: genimage puts the fourth and later ones as logical
        // partitions in an extended one, which is number 4; the logical ones are 5, 6, ...
        let logical =
            table == Table::Mbr && disk.children.iter().filter(|c| c.kind == "partition").filter(in_table).count() > 4;
        for p in disk.children.iter().filter(|c| c.kind == "partition") {
            let in_table = in_table(&p);
            if in_table {
                number += if logical && number == 3 { 2 } else { 1 };
            }
            partitions.push(Partition {
                name: p.name.clone(),
                image: p.get("image").map(String::from),
                offset: p.get("offset").map(size).transpose()?,
                size: p.get("size").map(size).transpose()?,
                uuid: p.get("partition-uuid").map(str::to_ascii_lowercase),
                number: in_table.then_some(number),
            });
        }
        Ok(Layout {
            disk: disk.name.clone(),
            table,
            disk_id: hd.get("disk-uuid").or(hd.get("disk-signature")).map(str::to_ascii_lowercase),
            size: disk.get("size").map(size).transpose()?,
            partitions,
            images: images.iter().filter(|s| s.child("hdimage").is_none()).cloned().collect(),
            flash: None,
        })
    }

    /// A flash image: each partition starts where the previous one ends (or at its `offset`)
    /// and needs a size, since nothing on the flash records it.
    fn flash(img: &Section, images: &[Section], top: &[Section]) -> Result<Layout, String> {
        let kind = img.get("flashtype").ok_or(format!("flash image {} names no flashtype", img.name))?;
        let flash = top
            .iter()
            .find(|s| s.kind == "flash" && s.name == kind)
            .ok_or(format!("flash image {}: no flash section {kind}", img.name))?;
        let mut at = 0;
        let mut partitions = Vec::new();
        for p in img.children.iter().filter(|c| c.kind == "partition") {
            let offset = p.get("offset").map(size).transpose()?.unwrap_or(at);
            let len = p.get("size").map(size).transpose()?.ok_or(format!("flash partition {} has no size", p.name))?;
            at = offset + len;
            partitions.push(Partition {
                name: p.name.clone(),
                image: p.get("image").map(String::from),
                offset: Some(offset),
                size: Some(len),
                uuid: None,
                number: None,
            });
        }
        Ok(Layout {
            disk: img.name.clone(),
            table: Table::Flash,
            disk_id: None,
            size: Some(at),
            partitions,
            images: images.iter().filter(|s| s.child("flash").is_none()).cloned().collect(),
            flash: Some(flash.clone()),
        })
    }

    /// The eraseblock size of a flash layout.
    pub fn pebsize(&self) -> Option<u64> {
        self.flash.as_ref()?.get("pebsize").and_then(|v| size(v).ok())
    }

    /// The volumes of the UBI images the layout makes: `(UBI image, volume, input image)`.
    pub fn ubi_volumes(&self) -> Vec<(String, String, Option<String>)> {
        let ubi = self.images.iter().filter(|s| s.child("ubi").is_some());
        ubi.flat_map(|s| {
            s.children
                .iter()
                .filter(|c| c.kind == "partition")
                .map(|c| (s.name.clone(), c.name.clone(), c.get("image").map(String::from)))
        })
        .collect()
    }

    pub fn partition(&self, name: &str) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.name == name)
    }

    /// The partition whose content is `image`.
    pub fn holding(&self, image: &str) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.image.as_deref() == Some(image))
    }

    /// The kernel's PARTUUID of a partition: the GPT GUID, or `SSSSSSSS-NN` on MBR disks.
    pub fn partuuid(&self, p: &Partition) -> Option<String> {
        match self.table {
            Table::Gpt => p.uuid.clone(),
            Table::Mbr => {
                let sig = self.disk_id.as_deref()?.trim_start_matches("0x");
                Some(format!("{sig:0>8}-{:02x}", p.number?))
            }
            Table::Flash => None,
        }
    }

    pub fn names(&self) -> String {
        self.partitions.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// `24M`, `64k`, `1G`, `4096`.
pub fn size(v: &str) -> Result<u64, String> {
    let v = v.trim();
    let (num, mult) = match v.char_indices().last() {
        Some((i, 'k' | 'K')) => (&v[..i], 1 << 10),
        Some((i, 'M')) => (&v[..i], 1 << 20),
        Some((i, 'G')) => (&v[..i], 1 << 30),
        _ => (v, 1),
    };
    num.trim().parse::<u64>().map(|n| n * mult).map_err(|_| format!("'{v}' is not a size (like 24M)"))
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Open,
    Close,
    Eq,
    Comma,
}

fn tokens(text: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => while chars.next_if(|c| *c != '\n').is_some() {},
            c if c.is_whitespace() => {}
            '{' => out.push(Tok::Open),
            '}' => out.push(Tok::Close),
            '=' => out.push(Tok::Eq),
            ',' => out.push(Tok::Comma),
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => s.extend(chars.next()),
                        Some(c) => s.push(c),
                        None => return Err("a quoted string is not closed".into()),
                    }
                }
                out.push(Tok::Word(s));
            }
            c => {
                let mut s = String::from(c);
                while let Some(c) = chars.next_if(|c| !c.is_whitespace() && !"{}=,\"#".contains(*c)) {
                    s.push(c);
                }
                out.push(Tok::Word(s));
            }
        }
    }
    Ok(out)
}

fn parse(text: &str) -> Result<Vec<Section>, String> {
    let toks = tokens(text)?;
    let mut pos = 0;
    let root = section_body(&toks, &mut pos, true)?;
    Ok(root.children)
}

fn section_body(t: &[Tok], pos: &mut usize, top: bool) -> Result<Section, String> {
    let mut sec = Section::default();
    loop {
        match t.get(*pos) {
            None if top => return Ok(sec),
            None => return Err("a section is not closed with }".into()),
            Some(Tok::Close) if !top => {
                *pos += 1;
                return Ok(sec);
            }
            Some(Tok::Word(w)) => {
                *pos += 1;
                match t.get(*pos) {
                    Some(Tok::Eq) => {
                        *pos += 1;
                        sec.values.push((w.clone(), value(t, pos)?));
                    }
                    Some(Tok::Open) => {
                        *pos += 1;
                        let child = section_body(t, pos, false)?;
                        sec.children.push(Section { kind: w.clone(), ..child });
                    }
                    Some(Tok::Word(name)) if t.get(*pos + 1) == Some(&Tok::Open) => {
                        *pos += 2;
                        let child = section_body(t, pos, false)?;
                        sec.children.push(Section { kind: w.clone(), name: name.clone(), ..child });
                    }
                    _ => return Err(format!("after '{w}': expected = or {{")),
                }
            }
            Some(other) => return Err(format!("unexpected {other:?}")),
        }
    }
}

fn value(t: &[Tok], pos: &mut usize) -> Result<Value, String> {
    match t.get(*pos) {
        Some(Tok::Word(v)) => {
            *pos += 1;
            Ok(Value::One(v.clone()))
        }
        Some(Tok::Open) => {
            *pos += 1;
            let mut list = Vec::new();
            loop {
                match t.get(*pos) {
                    Some(Tok::Word(v)) => list.push(v.clone()),
                    Some(Tok::Comma) => {}
                    Some(Tok::Close) => {
                        *pos += 1;
                        return Ok(Value::List(list));
                    }
                    _ => return Err("a list { ... } is not closed".into()),
                }
                *pos += 1;
            }
        }
        _ => Err("expected a value after =".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
# a boot partition and an MBR disk
image boot.vfat {
	vfat { files = { "zImage", "board.dtb" } }
	size = 16M
}
image emmc.img {
	hdimage { disk-signature = 0x4f1c2a3b }
	partition u-boot { in-partition-table = "false" image = "u-boot.imx" offset = 1k }
	partition boot { partition-type = 0xC image = "boot.vfat" offset = 4M }
	partition RootFS { partition-type = 0x83 image = "rootfs-a.sqfs" size = 64M }
}
"#;

    #[test]
    fn reads_partitions_numbers_and_mbr_partuuids() {
        let l = Layout::parse(CFG).unwrap();
        assert_eq!((l.disk.as_str(), l.table), ("emmc.img", Table::Mbr));
        assert_eq!(l.names(), "u-boot, boot, RootFS");
        let root = l.partition("RootFS").unwrap();
        assert_eq!((root.size, root.number), (Some(64 << 20), Some(2)));
        assert_eq!(l.partuuid(root).as_deref(), Some("4f1c2a3b-02"));
        assert_eq!(l.partition("u-boot").unwrap().number, None);
        let files: Vec<String> = l.vfat_files(Some("boot.vfat")).into_iter().map(|f| f.path).collect();
        assert_eq!(files, ["zImage", "board.dtb"]);
        assert_eq!(l.holding("boot.vfat").map(|p| p.offset), Some(Some(4 << 20)));
    }

    #[test]
    fn mbr_partitions_after_the_third_are_logical_from_five() {
        let cfg = r#"
image d.img {
	hdimage { partition-table-type = "mbr" disk-signature = 0x0a6c1e5f }
	partition boot { image = "boot.vfat" offset = 4M }
	partition RootFS { image = "rootfs-a.sqfs" size = 64M }
	partition UserData { image = "userdata.ext4" size = 64M }
	partition RootFS_b { image = "rootfs-b.sqfs" size = 64M align = 1M }
	partition boot_a { image = "boot-a.ext4" size = 64M align = 1M }
}
"#;
        let l = Layout::parse(cfg).unwrap();
        let numbers: Vec<Option<u32>> = l.partitions.iter().map(|p| p.number).collect();
        assert_eq!(numbers, [Some(1), Some(2), Some(3), Some(5), Some(6)]);
        assert_eq!(l.partuuid(l.partition("RootFS_b").unwrap()).as_deref(), Some("0a6c1e5f-05"));
    }

    #[test]
    fn reads_a_flash_layout_and_its_ubi_volumes() {
        let cfg = r#"
flash chip { pebsize = 64k numpebs = 16 }
image root.ubi { ubi {} flashtype = "chip" partition rootfs_a { image = "rootfs-a.sqfs" size = 256k } }
image flash.img { flash {} flashtype = "chip" partition spl { size = 128k } partition ubi { image = "root.ubi" size = 768k } }
"#;
        let l = Layout::parse(cfg).unwrap();
        assert_eq!((l.disk.as_str(), l.table, l.size), ("flash.img", Table::Flash, Some(896 << 10)));
        let ubi = l.partition("ubi").unwrap();
        assert_eq!((ubi.offset, ubi.size, ubi.number), (Some(128 << 10), Some(768 << 10), None));
        assert_eq!(l.pebsize(), Some(64 << 10));
        let vols = vec![("root.ubi".to_string(), "rootfs_a".to_string(), Some("rootfs-a.sqfs".to_string()))];
        assert_eq!(l.ubi_volumes(), vols);
        let missing = cfg.replace("flash chip", "flash other");
        assert!(Layout::parse(&missing).unwrap_err().contains("no flash section chip"));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(Layout::parse("image x {").unwrap_err().contains("not closed"));
        assert!(Layout::parse("image x { size = 1M }").unwrap_err().contains("hdimage"));
        assert!(size("lots").unwrap_err().contains("not a size"));
    }
}
