//! Reading back what was written: the sha256 of a file or device's first bytes, from the
//! medium (the page cache dropped first), as `install` checks its writes.

use crate::ab::state::Digest;
use crate::util::sha256::Sha256;
use rustix::fs::{fadvise, Advice};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

const CHUNK: usize = 1 << 20;

/// The sha256 of the first `len` bytes of `path` as stored on the medium: the page cache is
/// dropped first (after the writer's fsync), so the bytes come from the disk again.
pub fn hash_medium(path: &Path, len: u64) -> Result<Digest, String> {
    let f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    fadvise(&f, 0, None, Advice::DontNeed).map_err(|e| format!("{}: fadvise(DONTNEED): {e}", path.display()))?;
    hash_from(&f, len, &path.display().to_string())
}

/// The sha256 of the first `len` bytes of `f`.
pub fn hash_from(f: &File, len: u64, what: &str) -> Result<Digest, String> {
    let mut h = Sha256::default();
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0;
    while at < len {
        let n = usize::try_from(len - at).unwrap_or(CHUNK).min(CHUNK);
        f.read_exact_at(&mut buf[..n], at).map_err(|e| format!("{what}: byte {at}: {e}"))?;
        h.update(&buf[..n]);
        at += n as u64;
    }
    Ok(h.finish())
}
