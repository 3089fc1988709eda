//! Lower-case hex, as veritysetup prints root hashes and digests.

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
