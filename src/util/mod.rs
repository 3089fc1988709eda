//! Small encoders (JSON strings, CRC-32, hex, SHA-256) and the binary's one sort.

pub mod crc32;
pub mod hex;
pub mod json;
pub mod sha256;
pub mod sort;
