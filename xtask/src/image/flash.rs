//! Reads a raw flash image the way the kernel's UBI does, far enough to check it and to damage it
//! on purpose: each physical eraseblock's erase counter header (`UBI#`) and volume identifier
//! header (`UBI!`), the layout volume's table of volume names, and a volume's data from its
//! logical eraseblocks in order. Headers as `<mtd/ubi-media.h>` defines them (big endian).

use std::ops::Range;

/// The layout volume, which holds the volume table (two copies).
const LAYOUT_VOLUME: u32 = 0x7fff_efff;
/// `struct ubi_vtbl_record`.
const VTBL_RECORD: usize = 172;

/// One logical eraseblock in use: where it is and what it holds.
pub struct Leb {
    pub vol_id: u32,
    pub lnum: u32,
    /// Its data, as a range of the image.
    pub data: Range<usize>,
}

fn be32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// The eraseblocks of a UBI image: those in use, and how many are erased (all 0xFF: UBI formats
/// them when it needs them). Anything else is an error naming the eraseblock.
pub fn lebs(flash: &[u8], peb: usize) -> Result<(Vec<Leb>, usize), String> {
    let (mut used, mut erased) = (Vec::new(), 0);
    for (i, block) in flash.chunks(peb).enumerate() {
        if block.iter().all(|b| *b == 0xff) {
            erased += 1;
            continue;
        }
        if block.len() < peb || &block[..4] != b"UBI#" {
            return Err(format!("eraseblock {i} is neither UBI nor erased"));
        }
        let (vid, data) = (be32(block, 16), be32(block, 20));
        if vid + 64 > peb || data > peb {
            return Err(format!("eraseblock {i}: header offsets {vid}/{data} beyond the {peb}-byte eraseblock"));
        }
        if &block[vid..vid + 4] != b"UBI!" {
            continue; // formatted but free
        }
        let start = i * peb;
        used.push(Leb {
            vol_id: be32(block, vid + 8) as u32,
            lnum: be32(block, vid + 12) as u32,
            data: start + data..start + peb,
        });
    }
    Ok((used, erased))
}

/// The volume table: `(volume id, name)` of every volume.
pub fn volumes(flash: &[u8], lebs: &[Leb]) -> Result<Vec<(u32, String)>, String> {
    let table = lebs.iter().find(|l| l.vol_id == LAYOUT_VOLUME).ok_or("no layout volume: not a UBI image")?;
    let bytes = &flash[table.data.clone()];
    let mut out = Vec::new();
    for (id, rec) in bytes.chunks_exact(VTBL_RECORD).take(128).enumerate() {
        let name_len = u16::from_be_bytes([rec[14], rec[15]]) as usize;
        if be32(rec, 0) == 0 || name_len == 0 || name_len > 127 {
            continue;
        }
        out.push((id as u32, String::from_utf8_lossy(&rec[16..16 + name_len]).into_owned()));
    }
    Ok(out)
}

/// A volume's data: its logical eraseblocks in order (a gap is an error).
pub fn volume(flash: &[u8], lebs: &[Leb], vol_id: u32) -> Result<Vec<u8>, String> {
    let mut own: Vec<&Leb> = lebs.iter().filter(|l| l.vol_id == vol_id).collect();
    own.sort_by_key(|l| l.lnum);
    let mut out = Vec::new();
    for (want, l) in own.iter().enumerate() {
        if l.lnum as usize != want {
            return Err(format!("volume {vol_id} lacks logical eraseblock {want}"));
        }
        out.extend_from_slice(&flash[l.data.clone()]);
    }
    Ok(out)
}
