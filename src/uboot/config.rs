//! Where the environment lives, from a `fw_env.config` as `fw_printenv` reads it: one line per
//! copy, `DEVICE OFFSET SIZE [SECTOR_SIZE [SECTORS]]`, numbers decimal or 0x hex, a negative
//! offset counted from the device's end; `#` starts a comment. Two lines: a redundant
//! environment (flags byte, the copies written in turn).

use crate::rt::prelude::*;

/// One copy's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub device: String,
    /// Bytes from the device's start, or (negative) from its end.
    pub offset: i64,
    pub size: usize,
}

/// The environment's copies (one, or two for a redundant environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvConfig {
    pub copies: Vec<Location>,
}

impl EnvConfig {
    pub fn redundant(&self) -> bool {
        self.copies.len() == 2
    }

    pub fn size(&self) -> usize {
        self.copies.first().map_or(0, |c| c.size)
    }
}

fn number(word: &str) -> Option<i64> {
    let (neg, digits) = match word.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, word),
    };
    let n = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<i64>().ok()?,
    };
    Some(if neg { -n } else { n })
}

/// Parses `text` (the file `name`, for errors).
pub fn parse(text: &str, name: &str) -> Result<EnvConfig, String> {
    let mut copies = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = format!("{name} line {}", i + 1);
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 3 {
            return Err(format!("{at}: want DEVICE OFFSET SIZE, got {line:?}"));
        }
        let offset = number(words[1]).ok_or_else(|| format!("{at}: offset {:?} is not a number", words[1]))?;
        let size = number(words[2])
            .filter(|s| *s > 5)
            .and_then(|s| usize::try_from(s).ok())
            .ok_or_else(|| format!("{at}: size {:?} is not a positive number", words[2]))?;
        copies.push(Location { device: words[0].to_string(), offset, size });
    }
    match copies.as_slice() {
        [] => Err(format!("{name}: no environment location (DEVICE OFFSET SIZE)")),
        [_] => Ok(EnvConfig { copies }),
        [a, b] if a.size != b.size => {
            Err(format!("{name}: the two copies differ in size ({} and {}): U-Boot uses one size", a.size, b.size))
        }
        [a, b] if a.device == b.device && a.offset == b.offset => {
            Err(format!("{name}: both copies at {} offset {}", a.device, a.offset))
        }
        [_, _] => Ok(EnvConfig { copies }),
        _ => Err(format!("{name}: {} locations, at most two (a redundant environment)", copies.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fw_env_config_lines() {
        let c = parse("# eMMC\n/dev/mmcblk2 0x400000 0x4000\n/dev/mmcblk2 -0x4000 16384 0x200 # end\n", "f").unwrap();
        assert!(c.redundant());
        assert_eq!(c.size(), 0x4000);
        assert_eq!(c.copies[1], Location { device: "/dev/mmcblk2".into(), offset: -0x4000, size: 16384 });
        let single = parse("/boot/uboot.env 0 0x20000\n", "f").unwrap();
        assert!(!single.redundant());
        assert!(parse("", "f").unwrap_err().contains("no environment location"));
        assert!(parse("/dev/x 0x0\n", "f").unwrap_err().contains("f line 1: want DEVICE OFFSET SIZE"));
        assert!(parse("/dev/x zero 0x4000\n", "f").unwrap_err().contains("offset \"zero\""));
        assert!(parse("/dev/x 0 0x4000\n/dev/x 0x4000 0x2000\n", "f").unwrap_err().contains("differ in size"));
        assert!(parse("/dev/x 0 16\n/dev/x 0 16\n", "f").unwrap_err().contains("both copies"));
        assert!(parse("/dev/x 0 16\n/dev/x 16 16\n/dev/x 32 16\n", "f").unwrap_err().contains("at most two"));
    }
}
