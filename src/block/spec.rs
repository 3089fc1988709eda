//! How a setting names a block device, in the kernel's `root=` forms.

use crate::rt::prelude::*;
use core::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevSpec {
    /// `/dev/vda1`: matched by kernel name.
    Path(String),
    /// `MAJ:MIN`, as the kernel accepts for `root=`.
    Number(u32, u32),
    /// `LABEL=`: the filesystem label in the superblock.
    Label(String),
    /// `UUID=`: the filesystem UUID in the superblock (compared in lower case).
    Uuid(String),
    /// `PARTUUID=`: the GPT unique partition GUID, or `SSSSSSSS-PP` for MBR disks.
    PartUuid(String),
    /// `PARTLABEL=`: the GPT partition name (the kernel's `PARTNAME`).
    PartLabel(String),
    /// `mtd:NAME`: an MTD partition by name (`/proc/mtd`), read through its mtdblock device.
    Mtd(String),
    /// `ubi:VOLUME` or `ubiN:VOLUME`: a UBI volume by name (on UBI device N): for a lower, its
    /// ubiblock device; for data, the UBIFS volume itself.
    Ubi { dev: Option<u32>, volume: String },
}

impl DevSpec {
    /// Whether matching needs what is on the device (a superblock, a partition table), not
    /// only what sysfs says (`device::list`).
    pub fn reads_device(&self) -> bool {
        matches!(self, DevSpec::Label(_) | DevSpec::Uuid(_) | DevSpec::PartUuid(_))
    }

    /// Parses one of the forms above; the error says which forms exist.
    pub fn parse(text: &str) -> Result<DevSpec, String> {
        let nonempty = |v: &str, what: &str| {
            if v.is_empty() {
                Err(format!("{what}= needs a value"))
            } else {
                Ok(v.to_string())
            }
        };
        if let Some(v) = text.strip_prefix("LABEL=") {
            return nonempty(v, "LABEL").map(DevSpec::Label);
        }
        if let Some(v) = text.strip_prefix("UUID=") {
            return uuid(v, "UUID").map(DevSpec::Uuid);
        }
        if let Some(v) = text.strip_prefix("PARTUUID=") {
            return uuid(v, "PARTUUID").map(DevSpec::PartUuid);
        }
        if let Some(v) = text.strip_prefix("PARTLABEL=") {
            return nonempty(v, "PARTLABEL").map(DevSpec::PartLabel);
        }
        if let Some(v) = text.strip_prefix("mtd:") {
            return nonempty(v, "mtd:NAME").map(DevSpec::Mtd);
        }
        if let Some((head, volume)) = text.split_once(':').filter(|(h, _)| h.starts_with("ubi")) {
            let dev = match &head[3..] {
                "" => None,
                n => Some(n.parse().map_err(|_| format!("'{text}': use ubi:VOLUME or ubiN:VOLUME"))?),
            };
            return nonempty(volume, "ubi:VOLUME").map(|volume| DevSpec::Ubi { dev, volume });
        }
        if let Some(name) = text.strip_prefix("/dev/") {
            if !name.is_empty() && !name.contains("..") {
                return Ok(DevSpec::Path(name.to_string()));
            }
        }
        if let Some((maj, min)) = text.split_once(':') {
            if let (Ok(a), Ok(b)) = (maj.parse(), min.parse()) {
                return Ok(DevSpec::Number(a, b));
            }
        }
        Err(format!(
            "'{text}' is not a device: use /dev/NAME, MAJ:MIN, LABEL=, UUID=, PARTUUID=, PARTLABEL=, mtd:NAME \
             or ubi:VOLUME"
        ))
    }
}

fn uuid(v: &str, what: &str) -> Result<String, String> {
    let ok = !v.is_empty() && v.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    if ok {
        Ok(v.to_ascii_lowercase())
    } else {
        Err(format!("{what}={v} is not a UUID (hex digits and dashes)"))
    }
}

impl fmt::Display for DevSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DevSpec::Path(n) => write!(f, "/dev/{n}"),
            DevSpec::Number(a, b) => write!(f, "{a}:{b}"),
            DevSpec::Label(v) => write!(f, "LABEL={v}"),
            DevSpec::Uuid(v) => write!(f, "UUID={v}"),
            DevSpec::PartUuid(v) => write!(f, "PARTUUID={v}"),
            DevSpec::PartLabel(v) => write!(f, "PARTLABEL={v}"),
            DevSpec::Mtd(v) => write!(f, "mtd:{v}"),
            DevSpec::Ubi { dev: None, volume } => write!(f, "ubi:{volume}"),
            DevSpec::Ubi { dev: Some(n), volume } => write!(f, "ubi{n}:{volume}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form() {
        let cases = [
            ("/dev/vda1", DevSpec::Path("vda1".into())),
            ("/dev/mapper/root", DevSpec::Path("mapper/root".into())),
            ("254:3", DevSpec::Number(254, 3)),
            ("LABEL=data", DevSpec::Label("data".into())),
            ("UUID=0A1B-2C3D", DevSpec::Uuid("0a1b-2c3d".into())),
            ("PARTUUID=1234abcd-02", DevSpec::PartUuid("1234abcd-02".into())),
            ("PARTLABEL=userdata", DevSpec::PartLabel("userdata".into())),
        ];
        for (text, want) in cases {
            let got = DevSpec::parse(text).unwrap();
            assert_eq!(got, want, "{text}");
            // Display gives back a form the parser accepts (lower-cased UUIDs).
            assert_eq!(DevSpec::parse(&got.to_string()).unwrap(), want);
        }
    }

    #[test]
    fn rejects_with_a_reason() {
        for bad in ["vda1", "/dev/", "/dev/../etc", "LABEL=", "UUID=xyz", "PARTUUID=", "1:x"] {
            let err = DevSpec::parse(bad).unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
        assert!(DevSpec::parse("sda").unwrap_err().contains("LABEL="));
    }
}
