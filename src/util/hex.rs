//! Lower-case hex, as veritysetup prints root hashes and digests.

use crate::rt::prelude::*;

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The bytes of a hex string (either case); None for an odd length or a non-hex digit.
pub fn parse(v: &str) -> Option<Vec<u8>> {
    if v.len() % 2 != 0 || !v.is_ascii() {
        return None;
    }
    v.as_bytes().chunks(2).map(|p| core::str::from_utf8(p).ok().and_then(|t| u8::from_str_radix(t, 16).ok())).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_refusals() {
        assert_eq!(super::parse(&super::hex(&[0, 0xab, 0xff])), Some(vec![0, 0xab, 0xff]));
        assert_eq!(super::parse("AB"), Some(vec![0xab]));
        for bad in ["a", "zz", "é1"] {
            assert_eq!(super::parse(bad), None, "{bad}");
        }
    }
}
