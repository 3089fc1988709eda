//! The thin layer over the kernel: typed wrappers, one per intent. All `unsafe` of the crate is
//! in `loopdev`, `mtd`, `ubi`, `dm`, `gpio`, `watchdog` and `fds` (raw ioctls and a syscall rustix does not wrap).

pub mod dm;
pub mod fds;
pub mod gpio;
pub mod loopdev;
pub mod mount;
pub mod mtd;
pub mod process;
pub mod ubi;
pub mod uevent;
pub mod watchdog;
