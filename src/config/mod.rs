//! Settings: the board config and the kernel command line, parsed into one `Settings` value.

pub mod ab;
pub mod cmdline;
pub mod kexec;
pub mod paths;
pub mod settings;
pub mod values;
pub mod verity;
