//! The fuzz harness as a library for the fuzz targets (see harness.rs).

/// xtask's write-log replay writes through this; the parser under test never calls it.
#[allow(dead_code)]
mod image {
    pub fn write_at(_: &std::path::Path, _: u64, _: &[u8]) -> Result<(), String> {
        Ok(())
    }
}
mod harness;
#[allow(dead_code)]
#[path = "../../xtask/src/writelog.rs"]
mod writelog;
pub use harness::*;
