//! The device tree the next kernel gets on arm64: the one given (the slot's, or the running
//! kernel's own from /sys/firmware/fdt) with its `/chosen` node saying where the initramfs is
//! and what the command line is. Edited as a token stream (Devicetree Specification, chapter 5):
//! everything is copied as it is but the `/chosen` properties set here, which replace any of the
//! same name, and the ones that only described the running kernel's boot, which are dropped.

use crate::rt::prelude::*;

const MAGIC: u32 = 0xd00d_feed;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;
const HEADER: usize = 40;

/// `/chosen` properties that describe the running kernel's boot, not the next one's: a crash
/// kernel's memory (kdump) and the previous initramfs.
const DROPPED: [&str; 2] = ["linux,elfcorehdr", "linux,usable-memory-range"];

/// `dtb` with `/chosen/bootargs` = `cmdline` and the initramfs at `[initrd_start, initrd_end)`.
pub fn with_chosen(dtb: &[u8], cmdline: &str, initrd_start: u64, initrd_end: u64) -> Result<Vec<u8>, String> {
    let be32 = |at: usize| -> Result<u32, String> {
        dtb.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| format!("truncated at byte {at}"))
    };
    if be32(0)? != MAGIC {
        return Err("not a flattened device tree (no 0xd00dfeed magic)".into());
    }
    let (off_struct, off_strings, off_rsv) = (be32(8)? as usize, be32(12)? as usize, be32(16)? as usize);
    let (size_strings, size_struct) = (be32(32)? as usize, be32(36)? as usize);
    let slice = |at: usize, len: usize| dtb.get(at..at + len).ok_or("a block lies outside the file");
    let strings = slice(off_strings, size_strings)?;
    let structure = slice(off_struct, size_struct)?;
    let rsv_end = reservations_end(dtb, off_rsv)?;
    let mut names = strings.to_vec();
    let mut own = |name: &str| name_offset(&mut names, name);
    let new_props = [
        (own("bootargs"), nul_terminated(cmdline)),
        (own("linux,initrd-start"), initrd_start.to_be_bytes().to_vec()),
        (own("linux,initrd-end"), initrd_end.to_be_bytes().to_vec()),
    ];
    let replaced: Vec<&str> =
        ["bootargs", "linux,initrd-start", "linux,initrd-end"].into_iter().chain(DROPPED).collect();
    let out_struct = edit(structure, strings, &new_props, &replaced)?;

    let mut out = vec![0u8; HEADER];
    let rsv_at = out.len();
    out.extend_from_slice(&dtb[off_rsv..rsv_end]);
    let struct_at = out.len();
    out.extend_from_slice(&out_struct);
    let strings_at = out.len();
    out.extend_from_slice(&names);
    let fields = [
        MAGIC,
        out.len() as u32,
        struct_at as u32,
        strings_at as u32,
        rsv_at as u32,
        17,
        16,
        be32(28)?,
        names.len() as u32,
        out_struct.len() as u32,
    ];
    for (i, v) in fields.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    }
    Ok(out)
}

/// The end of the memory reservation block: pairs of u64 up to the (0, 0) pair, included.
fn reservations_end(dtb: &[u8], mut at: usize) -> Result<usize, String> {
    loop {
        let pair = dtb.get(at..at + 16).ok_or("the memory reservation block is not terminated")?;
        at += 16;
        if pair.iter().all(|b| *b == 0) {
            return Ok(at);
        }
    }
}

/// The offset of `name` in the strings block, appended when absent.
fn name_offset(names: &mut Vec<u8>, name: &str) -> u32 {
    let mut at = 0;
    for s in names.split(|b| *b == 0) {
        if s == name.as_bytes() {
            return at as u32;
        }
        at += s.len() + 1;
    }
    let off = names.len() as u32;
    names.extend_from_slice(name.as_bytes());
    names.push(0);
    off
}

fn nul_terminated(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn push_prop(out: &mut Vec<u8>, nameoff: u32, value: &[u8]) {
    for w in [PROP, value.len() as u32, nameoff] {
        out.extend_from_slice(&w.to_be_bytes());
    }
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// Copies the structure block token by token; in `/chosen` (made at the end of the root node
/// when there is none) the `replaced` properties go and `new_props` come before its end.
fn edit(s: &[u8], strings: &[u8], new_props: &[(u32, Vec<u8>)], replaced: &[&str]) -> Result<Vec<u8>, String> {
    let word = |at: usize| -> Result<u32, String> {
        s.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| "the structure block ends inside a token".to_string())
    };
    let mut out = Vec::with_capacity(s.len() + 4096);
    let (mut at, mut depth, mut in_chosen, mut chosen_seen) = (0usize, 0u32, false, false);
    loop {
        let token = word(at)?;
        match token {
            BEGIN_NODE => {
                let name_end = s[at + 4..].iter().position(|b| *b == 0).ok_or("a node name is not terminated")?;
                let next = (at + 4 + name_end + 1).next_multiple_of(4);
                depth += 1;
                in_chosen = depth == 2 && &s[at + 4..at + 4 + name_end] == b"chosen";
                chosen_seen |= in_chosen;
                out.extend_from_slice(s.get(at..next).ok_or("a node name runs past the block")?);
                at = next;
            }
            END_NODE => {
                if in_chosen && depth == 2 {
                    new_props.iter().for_each(|(off, v)| push_prop(&mut out, *off, v));
                    in_chosen = false;
                }
                if depth == 1 && !chosen_seen {
                    out.extend_from_slice(&BEGIN_NODE.to_be_bytes());
                    out.extend_from_slice(b"chosen\0\0");
                    new_props.iter().for_each(|(off, v)| push_prop(&mut out, *off, v));
                    out.extend_from_slice(&END_NODE.to_be_bytes());
                    chosen_seen = true;
                }
                depth = depth.checked_sub(1).ok_or("more node ends than beginnings")?;
                out.extend_from_slice(&END_NODE.to_be_bytes());
                at += 4;
            }
            PROP => {
                let (len, nameoff) = (word(at + 4)? as usize, word(at + 8)? as usize);
                let next = (at + 12 + len).next_multiple_of(4);
                let prop = s.get(at..next).ok_or("a property runs past the block")?;
                let name = strings.get(nameoff..).and_then(|n| n.split(|b| *b == 0).next()).unwrap_or_default();
                if !(in_chosen && depth == 2 && replaced.iter().any(|r| r.as_bytes() == name)) {
                    out.extend_from_slice(prop);
                }
                at = next;
            }
            NOP => at += 4,
            END => {
                out.extend_from_slice(&END.to_be_bytes());
                return Ok(out);
            }
            other => return Err(format!("unknown structure token {other:#x} at byte {at}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree with the given `/chosen` properties (none: no `/chosen` node), built by hand.
    fn tree(chosen: Option<&[(&str, &[u8])]>) -> Vec<u8> {
        let mut strings = Vec::new();
        let mut s = Vec::new();
        let begin = |s: &mut Vec<u8>, name: &str| {
            s.extend_from_slice(&BEGIN_NODE.to_be_bytes());
            s.extend_from_slice(name.as_bytes());
            s.push(0);
            s.resize(s.len().next_multiple_of(4), 0);
        };
        begin(&mut s, "");
        let off = name_offset(&mut strings, "model");
        push_prop(&mut s, off, b"test\0");
        if let Some(props) = chosen {
            begin(&mut s, "chosen");
            for (name, value) in props {
                let off = name_offset(&mut strings, name);
                push_prop(&mut s, off, value);
            }
            s.extend_from_slice(&END_NODE.to_be_bytes());
        }
        begin(&mut s, "memory@40000000");
        s.extend_from_slice(&END_NODE.to_be_bytes());
        s.extend_from_slice(&END_NODE.to_be_bytes());
        s.extend_from_slice(&END.to_be_bytes());
        let mut out = vec![0u8; HEADER];
        let rsv = out.len();
        out.extend_from_slice(&[0u8; 16]);
        let st = out.len();
        out.extend_from_slice(&s);
        let strs = out.len();
        out.extend_from_slice(&strings);
        let fields = [
            MAGIC,
            out.len() as u32,
            st as u32,
            strs as u32,
            rsv as u32,
            17,
            16,
            0,
            strings.len() as u32,
            s.len() as u32,
        ];
        for (i, v) in fields.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
        }
        out
    }

    /// `/chosen`'s properties of a tree, read back with the same token rules.
    fn chosen(dtb: &[u8]) -> Vec<(String, Vec<u8>)> {
        let be = |at: usize| u32::from_be_bytes([dtb[at], dtb[at + 1], dtb[at + 2], dtb[at + 3]]) as usize;
        let (st, strs) = (be(8), be(12));
        let (mut at, mut depth, mut inside, mut out) = (st, 0, false, Vec::new());
        loop {
            match be(at) as u32 {
                BEGIN_NODE => {
                    let end = dtb[at + 4..].iter().position(|b| *b == 0).unwrap();
                    depth += 1;
                    inside = depth == 2 && &dtb[at + 4..at + 4 + end] == b"chosen";
                    at = (at + 4 + end + 1).next_multiple_of(4);
                }
                END_NODE => {
                    depth -= 1;
                    inside = false;
                    at += 4;
                }
                PROP => {
                    let (len, off) = (be(at + 4), be(at + 8));
                    let name = dtb[strs + off..].split(|b| *b == 0).next().unwrap();
                    if inside {
                        out.push((String::from_utf8_lossy(name).into_owned(), dtb[at + 12..at + 12 + len].to_vec()));
                    }
                    at = (at + 12 + len).next_multiple_of(4);
                }
                _ => return out,
            }
        }
    }

    #[test]
    fn chosen_is_replaced_or_made() {
        let old: &[(&str, &[u8])] =
            &[("bootargs", b"old\0"), ("linux,elfcorehdr", &[0; 16]), ("stdout-path", b"/pl011\0")];
        for input in [tree(Some(old)), tree(None)] {
            let out = with_chosen(&input, "console=ttyAMA0 oinit.stage2=b,6.1,9", 0x4800_0000, 0x4810_0000).unwrap();
            assert_eq!(crate::kexec::image::device_tree(&out), Ok(()));
            let props = chosen(&out);
            let get = |n: &str| props.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            assert_eq!(get("bootargs").as_deref(), Some(&b"console=ttyAMA0 oinit.stage2=b,6.1,9\0"[..]));
            assert_eq!(get("linux,initrd-start"), Some(0x4800_0000u64.to_be_bytes().to_vec()));
            assert_eq!(get("linux,initrd-end"), Some(0x4810_0000u64.to_be_bytes().to_vec()));
            assert_eq!(get("linux,elfcorehdr"), None);
            assert_eq!(props.iter().filter(|(k, _)| k == "bootargs").count(), 1);
            // What described the board stays.
            assert_eq!(get("stdout-path").is_some(), input == tree(Some(old)));
        }
        assert!(with_chosen(b"\xd0\x0d\xfe\xed", "x", 0, 0).is_err());
        assert!(with_chosen(&[0u8; 64], "x", 0, 0).unwrap_err().contains("magic"));
    }
}
