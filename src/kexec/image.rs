//! A slot's boot files judged from their first bytes, before anything is loaded: a kernel image
//! of the running architecture (and which release it is, where the format says), an initramfs
//! that is a cpio archive or a compressed one, a flattened device tree; and the command line of
//! stage two, within the kernel's size limit.

use crate::config::kexec::{Stage2, STAGE2_KEY};
use crate::rt::prelude::*;

/// How many bytes of each file the checks read: the x86 setup header's version string is within
/// the setup sectors (at most 64 sectors of 512 bytes, and Debian's need far fewer).
pub const HEAD: usize = 32 * 1024;

/// The kernel image formats the hand-over knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86,
    Arm64,
    Arm,
}

impl Arch {
    /// The architecture this binary runs on, which is the running kernel's.
    pub fn current() -> Arch {
        if cfg!(target_arch = "x86_64") {
            Arch::X86
        } else if cfg!(target_arch = "aarch64") {
            Arch::Arm64
        } else {
            Arch::Arm
        }
    }

    /// The kernel's `COMMAND_LINE_SIZE` (with its terminating NUL) on this architecture.
    pub fn cmdline_max(self) -> usize {
        match self {
            Arch::X86 | Arch::Arm64 => 2048,
            Arch::Arm => 1024,
        }
    }

    fn image_name(self) -> &'static str {
        match self {
            Arch::X86 => "an x86 bzImage",
            Arch::Arm64 => "an arm64 Image",
            Arch::Arm => "an arm zImage",
        }
    }
}

/// What the kernel file says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelImage {
    /// The bzImage's version string (`6.12.9-amd64 (debian-kernel@...) #1 SMP ... Debian ...`),
    /// when the format carries one.
    pub version: Option<String>,
}

fn le16(head: &[u8], at: usize) -> Option<u16> {
    head.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
}

/// Whether `head` carries the kernel magic of `arch`.
fn has_magic(head: &[u8], arch: Arch) -> bool {
    match arch {
        // The boot sector's 0xAA55 and the setup header's "HdrS" (Documentation/arch/x86/boot.rst).
        Arch::X86 => le16(head, 0x1fe) == Some(0xaa55) && head.get(0x202..0x206) == Some(b"HdrS"),
        // "ARM\x64" at offset 56 (Documentation/arch/arm64/booting.rst).
        Arch::Arm64 => head.get(0x38..0x3c) == Some(b"ARM\x64"),
        // The zImage magic at offset 0x24.
        Arch::Arm => head.get(0x24..0x28) == Some(&0x016f_2818u32.to_le_bytes()),
    }
}

/// The architecture whose kernel image `head` is, for tools on a build host checking a target's
/// image (the boot itself only accepts its own architecture's).
pub fn arch_of(head: &[u8]) -> Option<Arch> {
    [Arch::X86, Arch::Arm64, Arch::Arm].into_iter().find(|a| has_magic(head, *a))
}

/// Checks `head` (the file's first bytes) is a kernel image for `arch`.
pub fn kernel(head: &[u8], arch: Arch) -> Result<KernelImage, String> {
    if !has_magic(head, arch) {
        return Err(format!("not {} (its header has no kernel magic)", arch.image_name()));
    }
    let version = match (arch, le16(head, 0x20e)) {
        (Arch::X86, Some(off)) if off != 0 => {
            let at = usize::from(off) + 0x200;
            head.get(at..).map(|s| {
                let end = s.iter().position(|b| *b == 0).unwrap_or(s.len());
                String::from_utf8_lossy(&s[..end]).into_owned()
            })
        }
        _ => None,
    };
    Ok(KernelImage { version })
}

/// Whether the image is the running kernel, same release and same build: its version string
/// starts with `uname -r` and holds `uname -v`. The build counter after `#` is left out of the
/// comparison: an arm64 Image's banner is written before the counter is known (`# SMP Debian
/// ...`) while `uname -v` says `#1 SMP Debian ...`. An image that does not say is not the
/// running one (a hand-over to the same kernel costs a second start, never a wrong kernel).
pub fn is_running(image: &KernelImage, release: &str, version: &str) -> bool {
    let without_counter = |s: &str| {
        let mut out = String::with_capacity(s.len());
        let mut after_hash = false;
        for c in s.chars() {
            if !(after_hash && c.is_ascii_digit()) {
                out.push(c);
            }
            after_hash = c == '#' || (after_hash && c.is_ascii_digit());
        }
        out
    };
    image.version.as_deref().is_some_and(|v| {
        v.strip_prefix(release).is_some_and(|rest| rest.starts_with(' '))
            && without_counter(v).contains(&without_counter(version))
    })
}

/// The version text of a kernel's banner (`Linux version 6.1.0-57-arm64 (...) # SMP ...`, as
/// /proc/version says it), written beside an arm64 Image that does not name its kernel.
pub fn from_banner(banner: &str) -> Option<String> {
    banner.trim().strip_prefix("Linux version ").map(String::from)
}

/// The release the kernel names: the first word of its version text (`6.12.9+bpo-amd64`).
pub fn release(image: &KernelImage) -> Option<&str> {
    image.version.as_deref()?.split_whitespace().next()
}

/// Checks `head` is an initramfs the kernel unpacks: a newc cpio (`070701`, `070702` with
/// checksums), or one compressed by a method the kernel may decompress. Whether this kernel was
/// built with that method is for the kernel to say; the content of a compressed one is not read.
pub fn initramfs(head: &[u8]) -> Result<&'static str, String> {
    const KINDS: [(&[u8], &str); 8] = [
        (b"070701", "cpio"),
        (b"070702", "cpio"),
        (b"\x1f\x8b", "gzip-compressed cpio"),
        (b"\x28\xb5\x2f\xfd", "zstd-compressed cpio"),
        (b"\xfd7zXZ\x00", "xz-compressed cpio"),
        (b"BZh", "bzip2-compressed cpio"),
        (b"\x02\x21\x4c\x18", "lz4-compressed cpio"),
        (b"\x89LZO", "lzo-compressed cpio"),
    ];
    KINDS.iter().find(|(magic, _)| head.starts_with(magic)).map(|(_, kind)| *kind).ok_or_else(|| {
        let shown: Vec<String> = head.iter().take(6).map(|b| format!("{b:02x}")).collect();
        format!("not a cpio archive nor a compressed one (it starts with {})", shown.join(" "))
    })
}

/// Checks `file` (the whole device tree) is a flattened device tree whose header agrees with its
/// size: magic 0xd00dfeed, a total size within the file, version 16 or later.
pub fn device_tree(file: &[u8]) -> Result<(), String> {
    let be32 = |at: usize| file.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    if be32(0) != Some(0xd00d_feed) {
        return Err("not a flattened device tree (no 0xd00dfeed magic)".into());
    }
    let total = be32(4).unwrap_or(0) as usize;
    if total < 40 || total > file.len() {
        return Err(format!("its header says {total} bytes, the file has {}: truncated or corrupt", file.len()));
    }
    match be32(20) {
        Some(v) if v >= 16 => Ok(()),
        v => Err(format!("device tree version {} is too old (16 or later)", v.unwrap_or(0))),
    }
}

/// The second kernel's command line: the running one without an earlier marker, plus this
/// hand-over's marker; refused when it would not fit the kernel's `COMMAND_LINE_SIZE`.
pub fn stage_two_cmdline(running: &str, marker: &Stage2, max: usize) -> Result<String, String> {
    let mut words: Vec<&str> =
        words(running.trim_end_matches(['\n', '\0'])).filter(|w| !w.starts_with(&format!("{STAGE2_KEY}="))).collect();
    let m = marker.render();
    // Kernel parameters go before the `--` that starts the init's arguments.
    let at = words.iter().position(|w| *w == "--").unwrap_or(words.len());
    words.insert(at, &m);
    let line = words.join(" ");
    if line.len() + 1 > max {
        return Err(format!(
            "the command line for the slot's kernel would be {} bytes, more than the kernel's {max}: shorten it",
            line.len() + 1
        ));
    }
    Ok(line)
}

/// The command line's words as the kernel splits them: on spaces outside double quotes.
fn words(line: &str) -> impl Iterator<Item = &str> {
    let mut rest = line;
    core::iter::from_fn(move || {
        rest = rest.trim_start_matches([' ', '\t', '\n']);
        if rest.is_empty() {
            return None;
        }
        let mut quoted = false;
        let end = rest
            .char_indices()
            .find(|(_, c)| {
                if *c == '"' {
                    quoted = !quoted;
                }
                !quoted && matches!(c, ' ' | '\t' | '\n')
            })
            .map_or(rest.len(), |(i, _)| i);
        let (w, r) = rest.split_at(end);
        rest = r;
        Some(w)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ab::state::SlotId;

    fn bzimage(version: &str) -> Vec<u8> {
        let mut b = vec![0u8; 0x1000];
        b[0x1fe..0x200].copy_from_slice(&[0x55, 0xaa]);
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x20e..0x210].copy_from_slice(&0x300u16.to_le_bytes());
        b[0x500..0x500 + version.len()].copy_from_slice(version.as_bytes());
        b
    }

    #[test]
    fn kernels_by_arch_and_release() {
        let v = "6.12.9+bpo-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.12.9-1~bpo12+1 (2025-01-19)";
        let img = kernel(&bzimage(v), Arch::X86).unwrap();
        assert_eq!(img.version.as_deref(), Some(v));
        assert_eq!(release(&img), Some("6.12.9+bpo-amd64"));
        let uname_v = "#1 SMP PREEMPT_DYNAMIC Debian 6.12.9-1~bpo12+1 (2025-01-19)";
        assert!(is_running(&img, "6.12.9+bpo-amd64", uname_v));
        assert!(!is_running(&img, "6.1.0-28-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)"));
        // Same release, another build: not the running kernel.
        assert!(!is_running(&img, "6.12.9+bpo-amd64", "#2 SMP PREEMPT_DYNAMIC Debian 6.12.9-2 (2025-02-01)"));
        // A release that is a prefix of the image's is another kernel.
        assert!(!is_running(&img, "6.12.9", uname_v));
        assert!(kernel(&bzimage(v), Arch::Arm64).unwrap_err().contains("not an arm64 Image"));
        assert!(kernel(b"#!/bin/sh\necho not a kernel\n", Arch::X86).unwrap_err().contains("not an x86 bzImage"));
        assert!(kernel(&[0u8; 10], Arch::Arm).is_err());
        let mut arm64 = vec![0u8; 64];
        arm64[0x38..0x3c].copy_from_slice(b"ARM\x64");
        let mut zimage = vec![0u8; 64];
        zimage[0x24..0x28].copy_from_slice(&[0x18, 0x28, 0x6f, 0x01]);
        assert_eq!(
            [arch_of(&bzimage(v)), arch_of(&arm64), arch_of(&zimage), arch_of(b"#!/bin/sh")],
            [Some(Arch::X86), Some(Arch::Arm64), Some(Arch::Arm), None]
        );
        assert_eq!(kernel(&arm64, Arch::Arm64), Ok(KernelImage { version: None }));
        assert!(!is_running(&KernelImage { version: None }, "6.1.0-28-arm64", "#1"));
        // An arm64 banner: the build counter is not in the image.
        let banner = "6.1.0-57-arm64 (debian-kernel@lists.debian.org) (gcc-12) # SMP Debian 6.1.192-3 (2026-11-26)";
        let arm = KernelImage { version: Some(banner.into()) };
        assert!(is_running(&arm, "6.1.0-57-arm64", "#1 SMP Debian 6.1.192-3 (2026-11-26)"));
        assert!(!is_running(&arm, "6.1.0-57-arm64", "#1 SMP Debian 6.1.193-1 (2026-12-01)"));
    }

    #[test]
    fn initramfs_and_device_tree_formats() {
        assert_eq!(initramfs(b"070701000000"), Ok("cpio"));
        assert_eq!(initramfs(&[0x1f, 0x8b, 8, 0]), Ok("gzip-compressed cpio"));
        assert_eq!(initramfs(&[0x28, 0xb5, 0x2f, 0xfd]), Ok("zstd-compressed cpio"));
        assert!(initramfs(b"\x7fELF\x02\x01").unwrap_err().contains("7f 45 4c 46 02 01"));
        let mut dtb = vec![0u8; 64];
        dtb[0..4].copy_from_slice(&0xd00d_feedu32.to_be_bytes());
        dtb[4..8].copy_from_slice(&64u32.to_be_bytes());
        dtb[20..24].copy_from_slice(&17u32.to_be_bytes());
        assert_eq!(device_tree(&dtb), Ok(()));
        assert!(device_tree(&dtb[..48]).unwrap_err().contains("truncated"));
        assert!(device_tree(b"not a dtb").is_err());
    }

    #[test]
    fn stage_two_command_line() {
        let m = Stage2 { slot: SlotId::B, from_release: "6.1.0-28-amd64".into(), stage1_ms: 812 };
        let got = stage_two_cmdline("console=ttyS0 oinit.stage2=a,5.10,1 x=\"a b\" -- single\n", &m, 2048).unwrap();
        assert_eq!(got, "console=ttyS0 x=\"a b\" oinit.stage2=b,6.1.0-28-amd64,812 -- single");
        let long = "x".repeat(2020);
        assert!(stage_two_cmdline(&long, &m, 2048).unwrap_err().contains("more than the kernel's 2048"));
        assert!(stage_two_cmdline(&long, &m, 4096).is_ok());
    }
}
