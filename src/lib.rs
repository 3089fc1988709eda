//! overlay-init: a PID 1 for embedded initramfs images that assembles an overlay root from a
//! read-only squashfs lower and an ext4 upper, then switches into it.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_code)]
#![deny(clippy::unwrap_used)]

#[macro_use]
extern crate alloc;

// First: its macros (`println!` and the like without std) are then in scope everywhere below.
#[macro_use]
pub mod rt;

pub mod ab;
pub mod block;
pub mod boot;
#[cfg(feature = "cli")]
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
