//! The integration tests, in one binary: one link instead of one per file on the 2-core CI.
//! Golden transcripts of `overlay-init plan`, the CLI against real state files, loop-device mounts
//! in a private mount namespace (root), reconciliation trees, verity images made by veritysetup,
//! the fuzz corpus, and the source tree's layering rule.

mod cli_slots;
mod common;
mod docs;
mod fuzz_regressions;
mod golden;
mod layering;
mod mount_loop;
mod reconcile;
mod uboot_env;
mod verity_image;

// The fuzz harness and the write-log parser, compiled here as in their own crates: the harness
// names them `crate::writelog` and `crate::image`.
#[allow(dead_code)]
mod image {
    pub fn write_at(_: &std::path::Path, _: u64, _: &[u8]) -> Result<(), String> {
        Ok(())
    }
}
#[allow(dead_code)]
#[path = "../../fuzz/src/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../../xtask/src/writelog.rs"]
mod writelog;
