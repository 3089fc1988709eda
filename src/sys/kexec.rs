//! Loading the next kernel and rebooting into it: `kexec_file_load(2)` (rustix does not wrap
//! it) and `reboot(LINUX_REBOOT_CMD_KEXEC)`.
#![allow(unsafe_code)]

use rustix::fd::{AsRawFd, BorrowedFd};
use rustix::io::Errno;
use std::ffi::CStr;

/// Loads `kernel` with `initrd` and `cmdline` as the kernel to boot on the next
/// `reboot(KEXEC)`. The kernel parses and (with `KEXEC_SIG`) checks the image itself.
#[cfg(target_arch = "x86_64")]
pub fn file_load(kernel: BorrowedFd<'_>, initrd: BorrowedFd<'_>, cmdline: &CStr) -> Result<(), Errno> {
    let len = cmdline.to_bytes_with_nul().len();
    // SAFETY: the descriptors are open for the duration of the call, and the command line pointer
    // is valid for `len` bytes including its NUL, as kexec_file_load reads it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kexec_file_load,
            kernel.as_raw_fd(),
            initrd.as_raw_fd(),
            len as libc::c_ulong,
            cmdline.as_ptr(),
            0 as libc::c_ulong,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(super::last_errno())
    }
}

/// Debian's arm64 and armhf kernels have no `kexec_file_load` (`CONFIG_KEXEC_FILE` is off):
/// there the segments would have to be built by the init for `kexec_load`, which it does not do
/// yet (docs/kernels.md).
#[cfg(not(target_arch = "x86_64"))]
pub fn file_load(_kernel: BorrowedFd<'_>, _initrd: BorrowedFd<'_>, _cmdline: &CStr) -> Result<(), Errno> {
    Err(Errno::NOSYS)
}

/// Reboots into the loaded kernel; returns only on failure.
pub fn reboot_into_loaded() -> Errno {
    match rustix::system::reboot(rustix::system::RebootCommand::Kexec) {
        Ok(()) => Errno::INVAL,
        Err(e) => e,
    }
}
