//! The kernel hand-over (`oinit.kexec`), deciding: what a slot's kernel, initramfs and device
//! tree are (read from their first bytes), whether the slot's kernel is the running one, and the
//! command line the second kernel gets, where `kexec_load`'s segments go on arm64 and 32-bit ARM.
//! Pure; `boot::kexec` acts on it.

pub mod arm;
pub mod arm64;
pub mod fdt;
pub mod image;
