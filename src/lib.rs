//! overlay-init: a PID 1 for embedded initramfs images that assembles an overlay root from a
//! read-only squashfs lower and an ext4 upper, then switches into it.
#![deny(unsafe_code)]
#![deny(clippy::unwrap_used)]

pub mod ab;
pub mod block;
pub mod boot;
pub mod cli;
pub mod config;
pub mod flash;
pub mod fs;
pub mod kexec;
pub mod kmod;
pub mod plan;
pub mod reconcile;
pub mod sys;
pub mod uboot;
pub mod util;
pub mod verity;
