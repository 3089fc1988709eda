//! CRC-32 (IEEE 802.3, as zlib): the state record's checksum and image superblock identities.

/// CRC-32 (IEEE 802.3, as zlib), bitwise: the record is 508 bytes, speed does not matter.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}
