//! dm-verity images in the format `veritysetup format` writes: the filesystem (data), then at the
//! next 4 KiB boundary (or at the start of a hash partition of its own) a verity superblock
//! (version 1, sha256, 4096-byte blocks, salt) followed by the hash tree, top level first. Pure code over bytes: the superblock parser, the tree's
//! size and position, the dm table line, and the tree itself (for `install`, which checks an
//! image before writing it). The root hash never comes from here: it is trusted input.

use crate::rt::prelude::*;
use crate::util::hex::hex;
use crate::util::sha256::Sha256;
use core::fmt;

/// Data and hash block size: the only one accepted (the format's default, and the page size the
/// kernel reads squashfs and EROFS with).
pub const BLOCK: u64 = 4096;
const DIGEST: usize = 32;
/// Hashes per hash block: 4096 / 32.
const FANOUT: u64 = BLOCK / DIGEST as u64;
const MAGIC: &[u8; 8] = b"verity\0\0";

/// The parameters the superblock carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    pub data_blocks: u64,
    pub salt: Vec<u8>,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses `struct verity_sb` (cryptsetup's lib/verity/verity.c): 512 bytes, little-endian.
/// Anything but version 1, hash type 1 (salt first), sha256 and 4 KiB blocks is refused by name.
pub fn parse_superblock(b: &[u8]) -> Result<Superblock, String> {
    if b.len() < 512 || &b[..8] != MAGIC {
        return Err("no verity superblock (run veritysetup format with --hash-offset at the image's end)".into());
    }
    let field = |name: &str, got: u64, want: u64| {
        if got == want {
            Ok(())
        } else {
            Err(format!("verity superblock {name} is {got}, only {want} is supported"))
        }
    };
    field("version", le32(b, 8).into(), 1)?;
    field("hash type", le32(b, 12).into(), 1)?;
    let algo = &b[32..64];
    let end = algo.iter().position(|&c| c == 0).unwrap_or(algo.len());
    if &algo[..end] != b"sha256" {
        return Err(format!(
            "verity superblock hash {:?} is not supported (sha256 only)",
            String::from_utf8_lossy(&algo[..end])
        ));
    }
    field("data block size", le32(b, 64).into(), BLOCK)?;
    field("hash block size", le32(b, 68).into(), BLOCK)?;
    let data_blocks = u64::from_le_bytes(b[72..80].try_into().map_err(|_| "short superblock")?);
    let salt_size = usize::from(u16::from_le_bytes([b[80], b[81]]));
    if salt_size > 256 {
        return Err(format!("verity superblock salt size {salt_size} is over 256 bytes"));
    }
    if data_blocks == 0 {
        return Err("verity superblock covers 0 data blocks".into());
    }
    Ok(Superblock { data_blocks, salt: b[88..88 + salt_size].to_vec() })
}

/// Hash blocks the tree needs below the superblock (the kernel's level computation in
/// dm-verity-target.c: each level holds 128 hashes per block until one block remains).
pub fn tree_blocks(data_blocks: u64) -> u64 {
    let (mut n, mut total) = (data_blocks, 0u64);
    while n > 1 {
        n = n.div_ceil(FANOUT);
        total += n;
    }
    total
}

/// Where the parts of a verity image are, in bytes from the start of the data device and of the
/// hash device (the same device when the tree is appended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Data bytes, whole blocks.
    pub data_bytes: u64,
    /// Where the superblock is on the hash device (`--hash-offset`): `data_bytes` when appended,
    /// 0 on a hash partition of its own.
    pub hash_offset: u64,
    /// First block of the tree on the hash device, in 4 KiB blocks (the table's
    /// `hash_start_block`).
    pub tree_block: u64,
    /// The end of the hash area: where a signature block follows.
    pub end: u64,
}

/// Where the superblock is found: after the data, or at the start of a device of its own.
pub fn hash_offset(fs_size: u64, separate: bool) -> u64 {
    if separate {
        0
    } else {
        fs_size.div_ceil(BLOCK).saturating_mul(BLOCK)
    }
}

/// The layout of an image whose filesystem says it is `fs_size` bytes, checked against its
/// superblock: a tree built for another image is refused.
pub fn layout(fs_size: u64, sb: &Superblock, separate: bool) -> Result<Layout, String> {
    let data_bytes = fs_size.div_ceil(BLOCK).checked_mul(BLOCK).ok_or("filesystem size overflows")?;
    if sb.data_blocks.checked_mul(BLOCK) != Some(data_bytes) {
        return Err(format!(
            "the hash tree covers {} data blocks, the filesystem {} (a tree built for another image)",
            sb.data_blocks,
            data_bytes / BLOCK
        ));
    }
    let hash_offset = if separate { 0 } else { data_bytes };
    let tree_block = hash_offset / BLOCK + 1;
    let end = tree_block
        .checked_add(tree_blocks(sb.data_blocks))
        .and_then(|b| b.checked_mul(BLOCK))
        .ok_or("the hash tree would end past 16 EiB")?;
    Ok(Layout { data_bytes, hash_offset, tree_block, end })
}

/// Forward error correction stored after the signature block, as `veritysetup format
/// --fec-device=IMAGE --fec-offset=...` writes it on the same device: Reed-Solomon parity over
/// everything before it (data, hash area, signature block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fec {
    pub roots: u8,
    /// First block of the parity area.
    pub start: u64,
    /// Blocks the parity covers: the data blocks, then the hash device's blocks from the tree's
    /// start up to the parity (the kernel reads them from `hash_start_block` on, so the
    /// superblock is not among them).
    pub covered: u64,
    /// Blocks of parity.
    pub blocks: u64,
}

/// The error correction area of an image with `roots` parity bytes per codeword, placed on the
/// hash device after the signature block that follows the hash tree.
pub fn fec(l: &Layout, roots: u8) -> Fec {
    let start = l.end / BLOCK + 1;
    let covered = l.data_bytes / BLOCK + (start - l.tree_block);
    // cryptsetup's VERITY_FEC_RS_blocks: 255-byte codewords, `roots` of them parity.
    let blocks = covered.div_ceil(255 - u64::from(roots)) * u64::from(roots);
    Fec { roots, start, covered, blocks }
}

/// What dm-verity does when a block read at run time does not match the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCorruption {
    /// The read fails with EIO; the system goes on.
    Eio,
    /// The kernel restarts the machine: on a trial slot, boot counting then rolls back.
    Restart,
    Panic,
}

impl OnCorruption {
    pub fn parse(v: &str) -> Option<OnCorruption> {
        match v {
            "eio" => Some(OnCorruption::Eio),
            "restart" => Some(OnCorruption::Restart),
            "panic" => Some(OnCorruption::Panic),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OnCorruption::Eio => "eio",
            OnCorruption::Restart => "restart",
            OnCorruption::Panic => "panic",
        }
    }
}

/// The `verity` target's parameters (Documentation/admin-guide/device-mapper/verity.rst), with
/// the data on `dev` and the hash tree (and error correction) on `hash` (the same device when
/// appended), as `veritysetup open [--hash-offset]` loads them.
pub fn table(
    dev: (u32, u32),
    hash: (u32, u32),
    l: &Layout,
    sb: &Superblock,
    root: &[u8; 32],
    on: OnCorruption,
    fec: Option<Fec>,
) -> String {
    let d = format!("{}:{}", dev.0, dev.1);
    let h = format!("{}:{}", hash.0, hash.1);
    let salt = if sb.salt.is_empty() { "-".to_string() } else { hex(&sb.salt) };
    let mut opts: Vec<String> = match on {
        OnCorruption::Eio => vec![],
        OnCorruption::Restart => vec!["restart_on_corruption".into()],
        OnCorruption::Panic => vec!["panic_on_corruption".into()],
    };
    if let Some(f) = fec {
        opts.push(format!(
            "use_fec_from_device {h} fec_start {} fec_blocks {} fec_roots {}",
            f.start, f.covered, f.roots
        ));
    }
    let words = opts.iter().map(|o| o.split(' ').count()).sum::<usize>();
    let opts = if words == 0 { String::new() } else { format!(" {words} {}", opts.join(" ")) };
    format!("1 {d} {h} {BLOCK} {BLOCK} {} {} sha256 {} {salt}{opts}", sb.data_blocks, l.tree_block, hex(root))
}

/// A root hash as 64 hex digits.
pub fn parse_root_hash(s: &str) -> Result<[u8; 32], String> {
    let bad = || format!("{s:?} is not a sha256 root hash (64 hex digits)");
    if s.len() != 64 || !s.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks(2)) {
        let txt = core::str::from_utf8(pair).map_err(|_| bad())?;
        *o = u8::from_str_radix(txt, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The hash tree of some data, built level by level as dm-verity checks it.
pub struct Tree {
    /// Level 0 (hashes of the data blocks) first; each level padded to whole blocks.
    levels: Vec<Vec<u8>>,
    pub root: [u8; 32],
}

fn salted(salt: &[u8], block: &[u8]) -> [u8; 32] {
    let mut h = Sha256::default();
    h.update(salt);
    h.update(block);
    h.finish()
}

/// Builds the tree from the data blocks `read` yields one after another (each BLOCK bytes).
pub fn build_tree(
    salt: &[u8],
    data_blocks: u64,
    mut read: impl FnMut(&mut [u8]) -> Result<(), String>,
) -> Result<Tree, String> {
    let mut block = vec![0u8; BLOCK as usize];
    let mut level = Vec::new();
    for _ in 0..data_blocks {
        read(&mut block)?;
        level.extend_from_slice(&salted(salt, &block));
    }
    let mut levels = Vec::new();
    while level.len() > DIGEST {
        level.resize(level.len().div_ceil(BLOCK as usize) * BLOCK as usize, 0);
        let next = level.chunks(BLOCK as usize).flat_map(|b| salted(salt, b)).collect();
        levels.push(core::mem::replace(&mut level, next));
    }
    let root = level.get(..DIGEST).and_then(|r| r.try_into().ok()).ok_or("no data blocks")?;
    Ok(Tree { levels, root })
}

impl Tree {
    /// The tree as it is stored after the superblock: top level first.
    pub fn on_disk(&self) -> Vec<u8> {
        self.levels.iter().rev().flatten().copied().collect()
    }
}

impl fmt::Display for OnCorruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn superblock(data_blocks: u64, salt: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        b[12..16].copy_from_slice(&1u32.to_le_bytes());
        b[32..38].copy_from_slice(b"sha256");
        b[64..68].copy_from_slice(&4096u32.to_le_bytes());
        b[68..72].copy_from_slice(&4096u32.to_le_bytes());
        b[72..80].copy_from_slice(&data_blocks.to_le_bytes());
        b[80..82].copy_from_slice(&(salt.len() as u16).to_le_bytes());
        b[88..88 + salt.len()].copy_from_slice(salt);
        b
    }

    #[test]
    fn superblock_fields_and_refusals() {
        let sb = parse_superblock(&superblock(300, &[0xab; 32])).unwrap();
        assert_eq!((sb.data_blocks, sb.salt.len()), (300, 32));
        for (at, bytes, what) in [
            (8, &2u32.to_le_bytes()[..], "version is 2"),
            (12, &0u32.to_le_bytes()[..], "hash type is 0"),
            (32, &b"sha1\0\0"[..], "\"sha1\" is not supported"),
            (64, &512u32.to_le_bytes()[..], "data block size is 512"),
            (80, &300u16.to_le_bytes()[..], "salt size 300"),
            (72, &0u64.to_le_bytes()[..], "0 data blocks"),
            (0, &b"VERITY"[..], "no verity superblock"),
        ] {
            let mut b = superblock(300, &[1; 32]);
            b[at..at + bytes.len()].copy_from_slice(bytes);
            let e = parse_superblock(&b).unwrap_err();
            assert!(e.contains(what), "{what}: {e}");
        }
        assert!(parse_superblock(&[0u8; 100]).is_err());
    }

    #[test]
    fn tree_size_follows_the_kernel_levels() {
        // 1 block: the data hash is the root; 128 blocks: one level; 129: two levels (2 + 1).
        assert_eq!(tree_blocks(1), 0);
        assert_eq!(tree_blocks(128), 1);
        assert_eq!(tree_blocks(129), 3);
        assert_eq!(tree_blocks(128 * 128 + 1), 129 + 2 + 1);
    }

    #[test]
    fn layout_and_table_line() {
        let sb = Superblock { data_blocks: 300, salt: vec![0xab, 0xcd] };
        // A squashfs of 300 blocks minus a little: the superblock is at the next 4 KiB boundary.
        let l = layout(300 * 4096 - 100, &sb, false).unwrap();
        let data_bytes = 300 * 4096;
        assert_eq!(l, Layout { data_bytes, hash_offset: data_bytes, tree_block: 301, end: (301 + 3 + 1) * 4096 });
        let t = table((254, 1), (254, 1), &l, &sb, &[0x11; 32], OnCorruption::Restart, None);
        assert_eq!(
            t,
            format!("1 254:1 254:1 4096 4096 300 301 sha256 {} abcd 1 restart_on_corruption", "11".repeat(32))
        );
        // Parity after the signature block (block 305) for the 305 blocks before it but the
        // superblock: two rounds of 253-byte codewords, 2 parity blocks each.
        let f = fec(&l, 2);
        assert_eq!(f, Fec { roots: 2, start: 306, covered: 305, blocks: 4 });
        let t = table((254, 1), (254, 1), &l, &sb, &[0x11; 32], OnCorruption::Eio, Some(f));
        assert!(t.ends_with(" 8 use_fec_from_device 254:1 fec_start 306 fec_blocks 305 fec_roots 2"), "{t}");
        // The tree on a partition of its own: superblock at 0, tree from block 1, signature
        // block at 5, parity from 6 covering the 300 data blocks and hash blocks 1 to 5.
        let own = layout(300 * 4096, &sb, true).unwrap();
        assert_eq!(own, Layout { data_bytes, hash_offset: 0, tree_block: 1, end: 5 * 4096 });
        let f = fec(&own, 2);
        assert_eq!((f.start, f.covered), (6, 305));
        let t = table((254, 1), (254, 3), &own, &sb, &[0x11; 32], OnCorruption::Eio, Some(f));
        assert!(t.starts_with("1 254:1 254:3 4096 4096 300 1 sha256 "), "{t}");
        assert!(t.ends_with(" use_fec_from_device 254:3 fec_start 6 fec_blocks 305 fec_roots 2"), "{t}");
        let e = layout(200 * 4096, &sb, false).unwrap_err();
        assert!(e.contains("another image"), "{e}");
        let nosalt = Superblock { data_blocks: 300, salt: vec![] };
        assert!(table((7, 0), (7, 0), &l, &nosalt, &[0; 32], OnCorruption::Eio, None).ends_with(" -"));
    }

    #[test]
    fn root_hash_hex() {
        assert_eq!(parse_root_hash(&"0f".repeat(32)).unwrap(), [0x0f; 32]);
        for bad in ["", "0f", &"zz".repeat(32), &"é".repeat(32), &"0f".repeat(33)] {
            assert!(parse_root_hash(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tree_of_one_and_many_blocks() {
        let one = build_tree(b"s", 1, |b| {
            b.fill(7);
            Ok(())
        })
        .unwrap();
        assert_eq!(one.root, salted(b"s", &[7; 4096]));
        assert!(one.on_disk().is_empty());
        let many = build_tree(b"", 129, |b| {
            b.fill(1);
            Ok(())
        })
        .unwrap();
        assert_eq!(many.on_disk().len() as u64, tree_blocks(129) * BLOCK);
        // Top level first: the root is the hash of the first stored block.
        assert_eq!(many.root, salted(b"", &many.on_disk()[..4096]));
    }
}
