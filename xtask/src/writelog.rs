//! Replays a QEMU `blklogwrites` log (the dm-log-writes format) onto a copy of the disk as it
//! was before the logged boot, up to any flush: each such image is a state the disk could really
//! be in after a power cut, including writes the guest had issued but the disk had not yet made
//! durable beyond that flush.

use std::path::Path;

const MAGIC: u64 = 0x006a_7366_7773_6872;
pub const FLUSH: u64 = 1;
const DISCARD: u64 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Byte offset on the disk.
    pub offset: u64,
    pub flags: u64,
    /// Bytes written.
    pub data: Vec<u8>,
    /// Bytes zeroed (discards), not allocated: a discard can cover the whole disk.
    pub zeroes: u64,
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Parses a log: a superblock in sector 0, then one header sector per entry followed by its data.
/// Every count and size comes from the file, so all arithmetic on them is checked.
pub fn parse(log: &[u8]) -> Result<Vec<Entry>, String> {
    if log.len() < 32 || le64(log, 0) != MAGIC {
        return Err("not a blklogwrites log (bad magic)".into());
    }
    let count = le64(log, 16);
    let ss = u32::from_le_bytes([log[24], log[25], log[26], log[27]]) as usize;
    if !ss.is_power_of_two() || ss < 512 {
        return Err(format!("bad log sector size {ss}"));
    }
    let too_big = |i: u64| format!("entry {i}: sizes overflow");
    // Each entry takes at least one sector: a count beyond that is a lie, not an allocation.
    let mut entries = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(log.len() / ss));
    let mut at = ss;
    for i in 0..count {
        let hdr =
            at.checked_add(32).and_then(|end| log.get(at..end)).ok_or_else(|| format!("log ends inside entry {i}"))?;
        let (sector, nr, flags) = (le64(hdr, 0), le64(hdr, 8), le64(hdr, 16));
        at = at.checked_add(ss).ok_or_else(|| too_big(i))?;
        let len = nr.checked_mul(ss as u64).ok_or_else(|| too_big(i))?;
        let offset = sector.checked_mul(ss as u64).ok_or_else(|| too_big(i))?;
        let (data, zeroes) = if flags & DISCARD != 0 {
            (Vec::new(), len)
        } else {
            let end = usize::try_from(len).ok().and_then(|l| at.checked_add(l)).ok_or_else(|| too_big(i))?;
            let d = log.get(at..end).ok_or_else(|| format!("log ends inside the data of entry {i}"))?.to_vec();
            at = end;
            (d, 0)
        };
        entries.push(Entry { offset, flags, data, zeroes });
    }
    Ok(entries)
}

/// Indices of the flush entries: replaying `entries[..i]` for such an `i` gives a crash state.
pub fn flushes(entries: &[Entry]) -> Vec<usize> {
    entries.iter().enumerate().filter(|(_, e)| e.flags & FLUSH != 0).map(|(i, _)| i).collect()
}

/// Writes `base` with `entries` applied to `out`.
pub fn replay(base: &Path, entries: &[Entry], out: &Path) -> Result<(), String> {
    std::fs::copy(base, out).map_err(|e| format!("{}: {e}", base.display()))?;
    for e in entries {
        if !e.data.is_empty() {
            crate::image::write_at(out, e.offset, &e.data)?;
        }
        // Zeroed in chunks, and only within the disk: a discard past its end changes nothing.
        let disk_len = std::fs::metadata(out).map_err(|e| e.to_string())?.len();
        let end = e.offset.saturating_add(e.zeroes).min(disk_len);
        let mut at = e.offset;
        while at < end {
            let n = (end - at).min(1 << 20);
            crate::image::write_at(out, at, &vec![0u8; n as usize])?;
            at += n;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(entries: &[(u64, u64, u64, &[u8])]) -> Vec<u8> {
        let mut l = vec![0u8; 512];
        l[0..8].copy_from_slice(&MAGIC.to_le_bytes());
        l[8..16].copy_from_slice(&1u64.to_le_bytes());
        l[16..24].copy_from_slice(&(entries.len() as u64).to_le_bytes());
        l[24..28].copy_from_slice(&512u32.to_le_bytes());
        for (sector, nr, flags, data) in entries {
            let mut h = vec![0u8; 512];
            h[0..8].copy_from_slice(&sector.to_le_bytes());
            h[8..16].copy_from_slice(&nr.to_le_bytes());
            h[16..24].copy_from_slice(&flags.to_le_bytes());
            l.extend(h);
            l.extend_from_slice(data);
        }
        l
    }

    #[test]
    fn parses_writes_flushes_and_discards() {
        let one = [7u8; 512];
        let l = log(&[(2, 1, 0, &one), (0, 0, FLUSH, &[]), (4, 2, DISCARD, &[])]);
        let e = parse(&l).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!((e[0].offset, e[0].data.len(), e[0].data[0]), (1024, 512, 7));
        assert_eq!(flushes(&e), [1]);
        assert_eq!((e[2].offset, e[2].zeroes), (2048, 1024));
        assert!(parse(&l[..600]).is_err());
        assert!(parse(&[0u8; 512]).is_err());
    }

    #[test]
    fn lies_in_the_log_are_errors_not_aborts() {
        // A count of 2^64-1 entries, a discard of 16 GiB, sectors past u64: no huge allocation,
        // no wrap, no panic.
        let mut l = log(&[(4, 1 << 25, DISCARD, &[])]);
        assert_eq!(parse(&l).unwrap()[0].zeroes, 16 << 30);
        l[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse(&l).is_err());
        let l = log(&[(u64::MAX, 1, 0, &[0u8; 512])]);
        assert!(parse(&l).is_err());
        let l = log(&[(0, u64::MAX / 2, 0, &[])]);
        assert!(parse(&l).is_err());
    }
}
