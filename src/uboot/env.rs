//! The binary U-Boot environment (U-Boot's `env/common.c`, `include/env_internal.h`): a
//! little-endian CRC32 over the data, on a redundant environment one flags byte, then
//! `name=value` strings each ended by a NUL, the list ended by an empty string, the rest of the
//! configured size padded. With two copies, the valid one with the newer flags byte is current
//! (255 wraps to 0), and a write goes to the other copy with the flags byte incremented, so a
//! write cut by a power loss leaves a copy with a bad CRC and the old one current.

use crate::rt::prelude::*;
use crate::util::crc32::crc32;

/// The variables, ordered by name as U-Boot's `env export` writes them: a sorted list searched
/// by halving. An environment holds a few dozen variables, and a `BTreeMap` of strings cost the
/// boot path about 4 KB of code for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars(Vec<(String, String)>);

impl Vars {
    pub fn new() -> Vars {
        Vars::default()
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| n.as_str().cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&String> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Sets `name`, replacing its value if it is set.
    pub fn insert(&mut self, name: String, value: String) {
        match self.find(&name) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (name, value)),
        }
    }

    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.find(name) {
            self.0.remove(i);
        }
    }

    /// The variables in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(n, v)| (n, v))
    }
}

/// The tests build environments from name, value pairs.
#[cfg(test)]
impl FromIterator<(String, String)> for Vars {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Vars {
        let mut vars = Vars::new();
        for (name, value) in pairs {
            vars.insert(name, value);
        }
        vars
    }
}

/// Why a copy is not a usable environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bad {
    /// Never written: all 0xff (erased flash) or all zero.
    Blank,
    /// The stored CRC32 does not match the data.
    Crc { stored: u32, computed: u32 },
    /// The CRC matches but the data is not `name=value` strings.
    Format(String),
}

impl core::fmt::Display for Bad {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Bad::Blank => write!(f, "blank (never written)"),
            Bad::Crc { stored, computed } => {
                write!(f, "CRC32 {stored:#010x} stored, {computed:#010x} computed: corrupt, or another size")
            }
            Bad::Format(why) => write!(f, "{why}"),
        }
    }
}

/// One decoded copy: its flags byte (redundant environments) and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub flags: Option<u8>,
    pub vars: Vars,
}

fn header_len(redundant: bool) -> usize {
    if redundant {
        5
    } else {
        4
    }
}

/// Decodes one copy of `block.len()` bytes (the configured environment size).
pub fn decode(block: &[u8], redundant: bool) -> Result<Copy, Bad> {
    let head = header_len(redundant);
    if block.len() <= head || block.iter().all(|b| *b == 0xff) || block.iter().all(|b| *b == 0) {
        return Err(Bad::Blank);
    }
    let stored = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
    let data = &block[head..];
    let computed = crc32(data);
    if stored != computed {
        return Err(Bad::Crc { stored, computed });
    }
    let mut vars = Vars::new();
    for entry in data.split(|b| *b == 0).take_while(|e| !e.is_empty()) {
        let text = core::str::from_utf8(entry).map_err(|_| Bad::Format("a variable that is not UTF-8".into()))?;
        let (name, value) = text.split_once('=').ok_or_else(|| Bad::Format(format!("{text:?} has no '='")))?;
        vars.insert(name.to_string(), value.to_string());
    }
    Ok(Copy { flags: redundant.then_some(block[4]), vars })
}

/// Encodes `vars` into a copy of `size` bytes with `flags` (redundant) and the CRC32.
pub fn encode(vars: &Vars, size: usize, flags: Option<u8>) -> Result<Vec<u8>, String> {
    let head = header_len(flags.is_some());
    let mut data = Vec::with_capacity(size);
    for (name, value) in vars.iter() {
        check_name(name)?;
        if value.contains('\0') {
            return Err(format!("the value of {name} holds a NUL byte"));
        }
        data.extend_from_slice(name.as_bytes());
        data.push(b'=');
        data.extend_from_slice(value.as_bytes());
        data.push(0);
    }
    // The empty string that ends the list.
    data.push(0);
    if head + data.len() > size {
        return Err(format!(
            "the environment needs {} bytes, more than its configured size of {size}: remove variables or \
             enlarge the environment in U-Boot and fw_env.config together",
            head + data.len()
        ));
    }
    data.resize(size - head, 0);
    let mut out = crc32(&data).to_le_bytes().to_vec();
    out.extend(flags);
    out.extend_from_slice(&data);
    Ok(out)
}

/// A name U-Boot's `setenv` accepts: not empty, no '=' and no NUL or control characters.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains('=') || name.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(format!("{name:?} is not a variable name (no '=', spaces are allowed, no control characters)"));
    }
    Ok(())
}

/// Which of two decoded copies is current, by U-Boot's rule (`env_import_redund`): the only
/// valid one, or of two the one with the newer flags byte (0 is newer than 255); equal: the
/// first. None: neither is valid.
pub fn current(copies: [&Result<Copy, Bad>; 2]) -> Option<usize> {
    match copies {
        [Ok(a), Ok(b)] => {
            let (fa, fb) = (a.flags.unwrap_or(0), b.flags.unwrap_or(0));
            Some(match (fa, fb) {
                (255, 0) => 1,
                (0, 255) => 0,
                _ if fb > fa => 1,
                _ => 0,
            })
        }
        [Ok(_), Err(_)] => Some(0),
        [Err(_), Ok(_)] => Some(1),
        [Err(_), Err(_)] => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn vars_stay_in_name_order_and_a_name_holds_one_value() {
        let mut v = vars(&[("bootcmd", "run a"), ("BOOT_ORDER", "A B"), ("bootcmd", "run b")]);
        v.insert("BOOT_A_LEFT".into(), "3".into());
        v.insert("BOOT_ORDER".into(), "B A".into());
        let names: Vec<&str> = v.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["BOOT_A_LEFT", "BOOT_ORDER", "bootcmd"]);
        assert_eq!(v.get("bootcmd").map(String::as_str), Some("run b"));
        assert_eq!(v.get("BOOT_ORDER").map(String::as_str), Some("B A"));
        v.remove("BOOT_ORDER");
        v.remove("absent");
        assert!(!v.contains_key("BOOT_ORDER") && v.contains_key("BOOT_A_LEFT"));
        assert_eq!(v.iter().count(), 2);
    }

    #[test]
    fn encodes_as_mkenvimage_and_decodes_back() {
        let v = vars(&[("BOOT_ORDER", "A B"), ("BOOT_A_LEFT", "3"), ("bootcmd", "run x; echo ${a}")]);
        let single = encode(&v, 64, None).unwrap();
        assert_eq!(single.len(), 64);
        // Sorted by name, each ended by NUL, the list by an empty string, padded with zeros.
        assert_eq!(&single[4..22], b"BOOT_A_LEFT=3\0BOOT");
        assert_eq!(decode(&single, false), Ok(Copy { flags: None, vars: v.clone() }));
        let redundant = encode(&v, 64, Some(7)).unwrap();
        assert_eq!(redundant[4], 7);
        assert_eq!(decode(&redundant, true).unwrap().flags, Some(7));
        // A single copy read as a redundant one (or another size) fails its CRC.
        assert!(matches!(decode(&single, true), Err(Bad::Crc { .. })));
        assert!(matches!(decode(&single[..60], false), Err(Bad::Crc { .. })));
    }

    #[test]
    fn refuses_what_it_cannot_write_or_read() {
        assert!(encode(&vars(&[("a", &"x".repeat(60))]), 64, None)
            .unwrap_err()
            .contains("more than its configured size of 64"));
        assert!(encode(&vars(&[("a=b", "c")]), 64, None).is_err());
        assert!(encode(&vars(&[("a", "b\0c")]), 64, None).unwrap_err().contains("NUL"));
        assert_eq!(decode(&[0xff; 64], false), Err(Bad::Blank));
        assert_eq!(decode(&[0; 64], true), Err(Bad::Blank));
        let mut bad = encode(&vars(&[("a", "b")]), 64, None).unwrap();
        bad[5] ^= 1;
        assert!(matches!(decode(&bad, false), Err(Bad::Crc { .. })));
        // A valid CRC over data that is not name=value.
        let mut data = b"novalue\0\0".to_vec();
        data.resize(60, 0);
        let mut block = crc32(&data).to_le_bytes().to_vec();
        block.extend(data);
        assert!(matches!(decode(&block, false), Err(Bad::Format(_))));
    }

    #[test]
    fn current_copy_by_flags_as_uboot_chooses() {
        let copy = |f: u8| -> Result<Copy, Bad> { Ok(Copy { flags: Some(f), vars: Vars::new() }) };
        let bad: Result<Copy, Bad> = Err(Bad::Crc { stored: 0, computed: 1 });
        assert_eq!(current([&copy(1), &copy(2)]), Some(1));
        assert_eq!(current([&copy(9), &copy(8)]), Some(0));
        assert_eq!(current([&copy(255), &copy(0)]), Some(1));
        assert_eq!(current([&copy(0), &copy(255)]), Some(0));
        assert_eq!(current([&copy(4), &copy(4)]), Some(0));
        assert_eq!(current([&bad, &copy(0)]), Some(1));
        assert_eq!(current([&copy(3), &bad]), Some(0));
        assert_eq!(current([&bad, &bad.clone()]), None);
    }
}
