//! Checks a whole signed verity image in userspace, before `install` writes a byte of it (or
//! before RAUC's slot is activated): the signature block verifies with the device's key, the
//! data hashes up to that root hash, and the stored hash tree is the one the data makes (the
//! kernel would refuse the slot otherwise, but only after the old image in it is gone).

use crate::block::probe;
use crate::rt::fs::File;
use crate::rt::os::unix::fs::FileExt;
use crate::rt::prelude::*;
use crate::verity::hashtree::{self, BLOCK};
use crate::verity::signature;

/// The part of the file a slot must hold: the image up to the end of its signature block (and
/// its error correction area), or the data alone when the tree is on a partition of its own.
#[derive(Debug)]
pub struct Checked {
    pub root: [u8; 32],
    pub len: u64,
    /// What the signature covers besides the root hash (version 2), and the superblock it names.
    pub manifest: Option<crate::verity::manifest::Manifest>,
    pub sb: hashtree::Superblock,
}

fn read(f: &File, at: u64, n: usize) -> Result<Vec<u8>, String> {
    let mut b = vec![0u8; n];
    f.read_exact_at(&mut b, at).map(|()| b).map_err(|e| format!("reading byte {at}: {e}"))
}

/// `data` of `len` bytes holds the image; `hash` (a file or partition and its size) holds the
/// tree when it is not appended to the image.
pub fn check(data: &File, len: u64, hash: Option<(&File, u64)>, key: &[u8; 32]) -> Result<Checked, String> {
    let (hf, hlen) = hash.unwrap_or((data, len));
    let head = read(data, 0, probe::PROBE_LEN)?;
    let fs = probe::probe_fs(&head).filter(|f| f.kind.is_image()).ok_or("not a squashfs or EROFS image")?;
    let unsigned =
        |e: String| format!("not a signed verity image ({e}); this device boots only images signed with its key");
    let at = hashtree::hash_offset(fs.size, hash.is_some());
    if hlen < at.saturating_add(BLOCK) {
        return Err(unsigned(format!("the hash tree's place ends at byte {hlen}: no hash tree")));
    }
    let sb = read(hf, at, BLOCK as usize).and_then(|b| hashtree::parse_superblock(&b)).map_err(unsigned)?;
    let layout = hashtree::layout(fs.size, &sb, hash.is_some())?;
    let need = layout.end.saturating_add(signature::BLOCK_LEN as u64);
    if hlen < need || len < layout.data_bytes {
        return Err(format!("truncated: {hlen} bytes, its hash tree and signature need {need}"));
    }
    let block = signature::parse_block(&read(hf, layout.end, signature::BLOCK_LEN)?).map_err(unsigned)?;
    // The error correction area after the block is part of the image a slot must hold.
    let need = match block.fec_roots.map(|r| hashtree::fec(&layout, r)) {
        Some(f) => (f.start + f.blocks).saturating_mul(BLOCK),
        None => need,
    };
    if hlen < need {
        return Err(format!("truncated: {hlen} bytes, its error correction area needs {need}"));
    }
    let root = signature::verify(key, &block)?;
    let mut at = 0u64;
    let tree = hashtree::build_tree(&sb.salt, sb.data_blocks, |b| {
        data.read_exact_at(b, at).map_err(|e| format!("reading byte {at}: {e}"))?;
        at += BLOCK;
        Ok(())
    })?;
    if tree.root != root {
        return Err(format!(
            "its data hashes to {}, not to the signed root hash {}: the image was changed after signing",
            crate::util::hex::hex(&tree.root),
            crate::util::hex::hex(&root)
        ));
    }
    let stored = read(hf, layout.tree_block * BLOCK, (layout.end - layout.tree_block * BLOCK) as usize)?;
    if stored != tree.on_disk() {
        return Err("its stored hash tree does not match its data: the kernel would refuse it".into());
    }
    Ok(Checked { root, len: if hash.is_some() { layout.data_bytes } else { need }, manifest: block.manifest, sb })
}
