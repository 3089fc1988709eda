//! The verity metadata after an image, as the boot reads it: the filesystem's size from its
//! superblock, the verity superblock after it (or at the start of a hash partition), the tree's
//! layout, the signature block and the error-correction area it announces, each checked against
//! the hash device's size. Pure over a reader, so the fuzzer reaches the whole combination.

use crate::block::probe;
use crate::rt::prelude::*;
use crate::verity::hashtree::{self, Fec, Layout, Superblock};
use crate::verity::signature::{self, Signed};

/// The verity metadata of an image.
pub struct Meta {
    pub sb: Superblock,
    pub layout: Layout,
    /// The signature block after the tree: required with a key, else used for its FEC line.
    pub block: Option<Signed>,
    pub fec: Option<Fec>,
}

/// `head`: the image's first bytes; `hash`: the hash device's name (for messages) and `size`;
/// `read(at, len)`: `len` bytes of the hash device at `at`, or None past its end. `separate`:
/// the tree is on a partition of its own; `signed`: a signature block is required.
pub fn read(
    head: &[u8],
    hash: &str,
    size: u64,
    separate: bool,
    signed: bool,
    read: impl Fn(u64, usize) -> Option<Vec<u8>>,
) -> Result<Meta, String> {
    let fs = probe::probe_fs(head).filter(|f| f.kind.is_image()).ok_or("it holds no squashfs or EROFS image")?;
    let at = hashtree::hash_offset(fs.size, separate);
    let sb_bytes = read(at, hashtree::BLOCK as usize).ok_or_else(|| {
        format!("{hash} ends before byte {}: no verity superblock", at.saturating_add(hashtree::BLOCK))
    })?;
    let sb = hashtree::parse_superblock(&sb_bytes).map_err(|e| format!("{hash} at byte {at}: {e}"))?;
    let layout = hashtree::layout(fs.size, &sb, separate)?;
    if size < layout.end {
        let end = layout.end;
        return Err(format!("the hash tree needs the device to hold {end} bytes, it has {size} (a truncated image)"));
    }
    let block = read(layout.end, signature::BLOCK_LEN)
        .ok_or_else(|| "no signature block after the hash tree".to_string())
        .and_then(|b| signature::parse_block(&b));
    let block = match block {
        Ok(b) => Some(b),
        Err(e) if signed => return Err(e),
        Err(_) => None,
    };
    let fec = block.as_ref().and_then(|b| b.fec_roots).map(|r| hashtree::fec(&layout, r));
    if let Some(f) = fec {
        let need = f.start.saturating_add(f.blocks).saturating_mul(hashtree::BLOCK);
        if size < need {
            return Err(format!("its error correction area needs the device to hold {need} bytes, it has {size}"));
        }
    }
    Ok(Meta { sb, layout, block, fec })
}
