//! The thin layer over the kernel: typed wrappers, one per intent. All `unsafe` of the crate is
//! in `loopdev`, `mtd`, `ubi`, `dm`, `gpio`, `watchdog`, `kexec`, `fds`, `process`, `clock` and
//! `thread` (raw ioctls, fork and execve, pthreads, and calls rustix does not wrap); the rest is
//! in `rt`, std's replacement (the heap, the arguments, a mutex, path types over bytes).

pub mod clock;
pub mod dm;
pub mod fds;
pub mod gpio;
pub mod kexec;
pub mod loopdev;
pub mod mount;
pub mod mtd;
pub mod process;
pub mod thread;
pub mod ubi;
pub mod uevent;
pub mod watchdog;

/// The errno of the raw libc call that just failed (for ioctls rustix does not wrap).
pub(crate) fn last_errno() -> rustix::io::Errno {
    rustix::io::Errno::from_raw_os_error(crate::rt::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
}
