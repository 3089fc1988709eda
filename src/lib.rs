//! overlay-init: a PID 1 for embedded initramfs images that assembles an overlay root from a
//! read-only squashfs lower and an ext4 upper, then switches into it.
#![deny(unsafe_code)]
#![deny(clippy::unwrap_used)]

pub mod blockdev;
pub mod boot;
pub mod button;
pub mod cli;
pub mod cli_reconcile;
pub mod cli_slots;
pub mod cmdline;
pub mod devspec;
pub mod error;
pub mod fatal;
pub mod fscopy;
pub mod fsutil;
pub mod install;
pub mod logger;
pub mod modules;
pub mod mtdparts;
pub mod paths;
pub mod plan;
pub mod plan_ab;
pub mod plan_data;
pub mod probe;
pub mod rauc;
pub mod reconcile;
pub mod reconcile_fs;
pub mod report;
pub mod settings;
pub mod settings_ab;
pub mod settings_values;
pub mod settings_verity;
pub mod sha256;
pub mod shutdown;
pub mod signature;
pub mod slots;
pub mod slots_file;
pub mod stage;
pub mod state;
pub mod store;
pub mod sys;
pub mod ubi_attach;
pub mod verity;
pub mod verity_image;
