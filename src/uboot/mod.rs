//! The U-Boot environment, read and written by overlay-init itself (no fw_setenv at boot): the
//! binary format with its CRC32 and redundant copies (`env`), where it lives from a
//! `fw_env.config` (`config`), and the crash-safe reads and writes of its copies (`store`).

pub mod bootchooser;
pub mod config;
pub mod env;
pub mod store;
