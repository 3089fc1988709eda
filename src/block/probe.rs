//! Filesystem and partition-table identity read from raw bytes, so no blkid or udev is needed.
//! Pure functions over buffers; the caller reads the bytes.

use crate::rt::prelude::*;

/// Bytes to read from the start of a device to probe every format below.
pub const PROBE_LEN: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    Ext4,
    Squashfs,
    Erofs,
}

impl FsKind {
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Ext4 => "ext4",
            FsKind::Squashfs => "squashfs",
            FsKind::Erofs => "erofs",
        }
    }

    /// A read-only image a lower can be made of.
    pub fn is_image(self) -> bool {
        matches!(self, FsKind::Squashfs | FsKind::Erofs)
    }
}

/// EROFS's superblock: at byte 1024, 128 bytes (`struct erofs_super_block`).
const EROFS_SB: usize = 1024;
const EROFS_SB_LEN: usize = 128;
const EROFS_MAGIC: u32 = 0xE0F5_E1E2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsInfo {
    pub kind: FsKind,
    pub uuid: Option<String>,
    pub label: Option<String>,
    /// Bytes the filesystem says it occupies (squashfs `bytes_used`, ext4 block count).
    pub size: u64,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | u64::from(le32(b, at + 4)) << 32
}

/// Recognises ext2/3/4 (mounted as ext4), squashfs 4 and EROFS from the first PROBE_LEN bytes.
pub fn probe_fs(buf: &[u8]) -> Option<FsInfo> {
    if buf.len() >= 96 && &buf[0..4] == b"hsqs" && le16(buf, 28) == 4 {
        return Some(FsInfo { kind: FsKind::Squashfs, uuid: None, label: None, size: le64(buf, 40) });
    }
    if let Some(sb) = buf.get(EROFS_SB..EROFS_SB + EROFS_SB_LEN).filter(|sb| le32(sb, 0) == EROFS_MAGIC) {
        return erofs(sb);
    }
    let sb = buf.get(1024..2048)?;
    if le16(sb, 0x38) != 0xEF53 {
        return None;
    }
    // s_log_block_size: ext4 blocks are 1 KiB to 64 KiB; anything else is not an ext4 we mount.
    let log_block = le32(sb, 0x18);
    if log_block > 6 {
        return None;
    }
    let block = 1024u64 << log_block;
    let label_bytes = &sb[0x78..0x88];
    let end = label_bytes.iter().position(|&c| c == 0).unwrap_or(16);
    let label = String::from_utf8_lossy(&label_bytes[..end]).into_owned();
    Some(FsInfo {
        kind: FsKind::Ext4,
        uuid: Some(uuid_be(&sb[0x68..0x78])),
        label: (!label.is_empty()).then_some(label),
        // At most 2^32 blocks of 64 KiB: fits u64, never wraps.
        size: u64::from(le32(sb, 0x4)) * block,
    })
}

/// EROFS: blocks of 2^blkszbits bytes (512 B to 64 KiB), the 16-byte UUID and volume name.
fn erofs(sb: &[u8]) -> Option<FsInfo> {
    let bits = sb[12];
    if !(9..=16).contains(&bits) {
        return None;
    }
    let uuid = &sb[48..64];
    let name = &sb[64..80];
    let end = name.iter().position(|&c| c == 0).unwrap_or(16);
    let label = String::from_utf8_lossy(&name[..end]).into_owned();
    Some(FsInfo {
        kind: FsKind::Erofs,
        uuid: uuid.iter().any(|&b| b != 0).then(|| uuid_be(uuid)),
        label: (!label.is_empty()).then_some(label),
        size: u64::from(le32(sb, 36)) << bits,
    })
}

/// The identity of a lower image: CRC32 of its superblock (squashfs: 96 bytes; EROFS: 128),
/// which holds the build time, the size and the table offsets, so any rebuilt image differs.
/// None for anything else.
pub fn image_id(buf: &[u8]) -> Option<u32> {
    match probe_fs(buf)?.kind {
        FsKind::Squashfs => Some(crate::util::crc32::crc32(&buf[..96])),
        FsKind::Erofs => Some(crate::util::crc32::crc32(&buf[EROFS_SB..EROFS_SB + EROFS_SB_LEN])),
        FsKind::Ext4 => None,
    }
}

/// A factory-blank partition: all zeroes or all erased-flash ones. Anything else might be a
/// damaged filesystem, which must never be formatted over.
pub fn is_blank(buf: &[u8]) -> bool {
    !buf.is_empty() && (buf.iter().all(|&b| b == 0) || buf.iter().all(|&b| b == 0xff))
}

/// UUIDs stored as plain bytes (ext4): printed in order.
fn uuid_be(b: &[u8]) -> String {
    let h: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

/// GPT GUIDs: the first three fields are little-endian.
fn guid_mixed(b: &[u8]) -> String {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[..16]);
    o[0..4].reverse();
    o[4..6].reverse();
    o[6..8].reverse();
    uuid_be(&o)
}

/// Where a disk's partition entries are, read from its GPT header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GptTable {
    pub entries_offset: u64,
    pub entry_size: u32,
    pub count: u32,
}

/// Parses the GPT header found at `LBA 1` (the caller tries 512 and 4096-byte sectors).
pub fn gpt_header(buf: &[u8], sector: u64) -> Option<GptTable> {
    if buf.len() < 92 || &buf[0..8] != b"EFI PART" {
        return None;
    }
    let entry_size = le32(buf, 84);
    if entry_size < 128 {
        return None;
    }
    Some(GptTable { entries_offset: le64(buf, 72).checked_mul(sector)?, entry_size, count: le32(buf, 80) })
}

/// The unique partition GUID (PARTUUID) from one GPT entry; None for an unused entry.
pub fn gpt_entry_uuid(entry: &[u8]) -> Option<String> {
    let e = entry.get(0..32)?;
    (e[0..16].iter().any(|&b| b != 0)).then(|| guid_mixed(&e[16..32]))
}

/// The MBR-style PARTUUID `SSSSSSSS-PP` from the disk signature, for DOS-partitioned disks.
pub fn mbr_partuuid(sector0: &[u8], partn: u32) -> Option<String> {
    if sector0.len() < 512 || sector0[510] != 0x55 || sector0[511] != 0xaa {
        return None;
    }
    Some(format!("{:08x}-{:02x}", le32(sector0, 440), partn))
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// The superblock mkfs.erofs 1.5 (Debian 12) wrote for `-U 12345678-1234-5678-9abc-def012345678
    /// -T 1700000000` over a one-file tree: the bytes that are not zero.
    const EROFS_SB_BYTES: [u8; 64] = [
        0xe2, 0xe1, 0xf5, 0xe0, 0x94, 0xc3, 0x3a, 0x83, 0x03, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x24, 0x00, 0x03, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf1, 0x53, 0x65, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x78, 0x12, 0x34,
        0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78,
    ];

    #[test]
    fn erofs_from_a_real_superblock() {
        let mut buf = vec![0u8; PROBE_LEN];
        buf[1024..1088].copy_from_slice(&EROFS_SB_BYTES);
        let fs = probe_fs(&buf).unwrap();
        assert_eq!(fs.kind, FsKind::Erofs);
        assert_eq!(fs.uuid.as_deref(), Some("12345678-1234-5678-9abc-def012345678"));
        assert_eq!((fs.label, fs.size), (None, 4096));
        let id = image_id(&buf).unwrap();
        buf[1024 + 24] ^= 1; // another build time: another image
        assert_ne!(image_id(&buf), Some(id));
        buf[1024 + 12] = 30; // a block size no kernel mounts
        assert_eq!(probe_fs(&buf), None);
    }

    /// An ext4 superblock image with the given UUID bytes, label and size, for tests elsewhere.
    pub fn ext4_image(uuid: [u8; 16], label: &str, blocks: u32) -> Vec<u8> {
        let mut b = vec![0u8; PROBE_LEN];
        let sb = &mut b[1024..];
        sb[0x4..0x8].copy_from_slice(&blocks.to_le_bytes());
        sb[0x18..0x1c].copy_from_slice(&2u32.to_le_bytes()); // 4 KiB blocks
        sb[0x38..0x3a].copy_from_slice(&0xEF53u16.to_le_bytes());
        sb[0x68..0x78].copy_from_slice(&uuid);
        sb[0x78..0x78 + label.len()].copy_from_slice(label.as_bytes());
        b
    }

    pub fn squashfs_image(bytes_used: u64) -> Vec<u8> {
        let mut b = vec![0u8; PROBE_LEN];
        b[0..4].copy_from_slice(b"hsqs");
        b[28..30].copy_from_slice(&4u16.to_le_bytes());
        b[40..48].copy_from_slice(&bytes_used.to_le_bytes());
        b
    }

    #[test]
    fn ext4_uuid_label_size() {
        let uuid = [0x4f, 0x0e, 0x9a, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd];
        let fs = probe_fs(&ext4_image(uuid, "userdata", 1000)).unwrap();
        assert_eq!(fs.kind, FsKind::Ext4);
        assert_eq!(fs.uuid.as_deref(), Some("4f0e9a11-2233-4455-6677-8899aabbccdd"));
        assert_eq!(fs.label.as_deref(), Some("userdata"));
        assert_eq!(fs.size, 4096 * 1000);
        // A full 16-byte label has no terminating NUL.
        let fs = probe_fs(&ext4_image(uuid, "sixteen-chars-ok", 1)).unwrap();
        assert_eq!(fs.label.as_deref(), Some("sixteen-chars-ok"));
        assert_eq!(probe_fs(&ext4_image(uuid, "", 1)).unwrap().label, None);
        // A block size field past 64 KiB (1024 << 53 would wrap the size) is not an ext4.
        let mut big = ext4_image(uuid, "x", u32::MAX);
        big[1024 + 0x18..1024 + 0x1c].copy_from_slice(&53u32.to_le_bytes());
        assert_eq!(probe_fs(&big), None);
    }

    #[test]
    fn gpt_entry_table_past_the_end_of_u64() {
        let mut h = vec![0u8; 512];
        h[0..8].copy_from_slice(b"EFI PART");
        h[72..80].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        assert_eq!(gpt_header(&h, 512), None);
        assert_eq!(gpt_header(&h, 1).map(|t| t.count), Some(128));
    }

    #[test]
    fn squashfs_and_garbage() {
        let fs = probe_fs(&squashfs_image(123456)).unwrap();
        assert_eq!((fs.kind, fs.size), (FsKind::Squashfs, 123456));
        let mut v3 = squashfs_image(1);
        v3[28] = 3;
        assert_eq!(probe_fs(&v3), None);
        assert_eq!(probe_fs(&[0u8; PROBE_LEN]), None);
        assert_eq!(probe_fs(&[0u8; 10]), None);
        assert_eq!(probe_fs(b"hsqs"), None);
    }

    #[test]
    fn blank_detection() {
        assert!(is_blank(&[0; 4096]));
        assert!(is_blank(&[0xff; 4096]));
        let mut b = [0u8; 4096];
        b[4000] = 1;
        assert!(!is_blank(&b));
        assert!(!is_blank(&[]));
    }

    #[test]
    fn gpt_and_mbr() {
        let mut hdr = vec![0u8; 512];
        hdr[0..8].copy_from_slice(b"EFI PART");
        hdr[72..80].copy_from_slice(&2u64.to_le_bytes());
        hdr[80..84].copy_from_slice(&128u32.to_le_bytes());
        hdr[84..88].copy_from_slice(&128u32.to_le_bytes());
        let t = gpt_header(&hdr, 512).unwrap();
        assert_eq!(t, GptTable { entries_offset: 1024, entry_size: 128, count: 128 });
        assert_eq!(gpt_header(&[0u8; 512], 512), None);

        let mut entry = [0u8; 128];
        entry[0] = 1; // any type GUID marks the entry used
        let guid = [0x78, 0x56, 0x34, 0x12, 0xbc, 0x9a, 0xf0, 0xde, 1, 2, 3, 4, 5, 6, 7, 8];
        entry[16..32].copy_from_slice(&guid);
        assert_eq!(gpt_entry_uuid(&entry).as_deref(), Some("12345678-9abc-def0-0102-030405060708"));
        assert_eq!(gpt_entry_uuid(&[0u8; 128]), None);

        let mut mbr = [0u8; 512];
        mbr[440..444].copy_from_slice(&0xdeadbeefu32.to_le_bytes());
        assert_eq!(mbr_partuuid(&mbr, 2), None);
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        assert_eq!(mbr_partuuid(&mbr, 2).as_deref(), Some("deadbeef-02"));
    }
}
