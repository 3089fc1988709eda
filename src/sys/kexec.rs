//! Loading the next kernel and rebooting into it: `kexec_file_load(2)` and `kexec_load(2)`
//! (rustix wraps neither) and `reboot(LINUX_REBOOT_CMD_KEXEC)`.
#![allow(unsafe_code)]

use crate::rt::ffi::CStr;
use crate::rt::prelude::*;
#[cfg(target_arch = "x86_64")]
use rustix::fd::AsRawFd;
use rustix::fd::BorrowedFd;
use rustix::io::Errno;

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
/// there the init builds the segments for `kexec_load` itself.
#[cfg(not(target_arch = "x86_64"))]
pub fn file_load(_kernel: BorrowedFd<'_>, _initrd: BorrowedFd<'_>, _cmdline: &CStr) -> Result<(), Errno> {
    Err(Errno::NOSYS)
}

/// One piece of the next system for `kexec_load`: `bytes` copied to physical address `mem`,
/// `mem_len` bytes reserved there (page-aligned, the rest zeroed).
pub struct Segment<'a> {
    pub bytes: &'a [u8],
    pub mem: u64,
    pub mem_len: u64,
}

/// `struct kexec_segment` of <linux/kexec.h>.
#[repr(C)]
struct RawSegment {
    buf: *const libc::c_void,
    bufsz: libc::size_t,
    mem: libc::c_ulong,
    memsz: libc::size_t,
}

/// `kexec_load(entry, segments, KEXEC_ARCH_DEFAULT)`: the kernel copies the segments and, on
/// `reboot(KEXEC)`, places them and jumps to `entry` with the MMU off.
pub fn load(entry: u64, segments: &[Segment<'_>]) -> Result<(), Errno> {
    let raw: Vec<RawSegment> = segments
        .iter()
        .map(|s| RawSegment {
            buf: s.bytes.as_ptr().cast(),
            bufsz: s.bytes.len(),
            mem: s.mem as libc::c_ulong,
            memsz: s.mem_len as libc::size_t,
        })
        .collect();
    // SAFETY: every `buf` points to `bufsz` readable bytes borrowed for the call, and `raw` holds
    // `raw.len()` segments; the kernel only reads them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kexec_load,
            entry as libc::c_ulong,
            raw.len() as libc::c_ulong,
            raw.as_ptr(),
            0 as libc::c_ulong,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(super::last_errno())
    }
}

/// Reboots into the loaded kernel; returns only on failure.
pub fn reboot_into_loaded() -> Errno {
    match rustix::system::reboot(rustix::system::RebootCommand::Kexec) {
        Ok(()) => Errno::INVAL,
        Err(e) => e,
    }
}
