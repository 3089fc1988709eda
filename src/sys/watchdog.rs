//! Arming a hardware watchdog before the switch, mirroring `<linux/watchdog.h>`.
#![allow(unsafe_code)]

use rustix::fd::AsRawFd;
use rustix::fs::{open, Mode, OFlags};
use rustix::io::Errno;

/// `_IOWR('W', 6, int)`.
const WDIOC_SETTIMEOUT: libc::Ioctl = 0xC004_5706u32 as libc::Ioctl;
/// `_IOR('W', 5, int)`.
const WDIOC_KEEPALIVE: libc::Ioctl = 0x8004_5705u32 as libc::Ioctl;

/// Opens the watchdog (which starts it), sets its timeout, pings it once and closes it WITHOUT
/// the magic 'V': the kernel keeps it running, so a userspace that never takes it over resets
/// the board. Returns the timeout the driver accepted.
pub fn arm(path: &str, timeout: u32) -> Result<u32, (&'static str, Errno)> {
    let fd = open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| ("open", e))?;
    let mut t = timeout as libc::c_int;
    // SAFETY: WDIOC_SETTIMEOUT reads and writes one int through the pointer, which is valid for
    // the duration of the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), WDIOC_SETTIMEOUT, &mut t as *mut libc::c_int) } < 0 {
        return Err(("WDIOC_SETTIMEOUT", super::last_errno()));
    }
    let mut dummy: libc::c_int = 0;
    // SAFETY: WDIOC_KEEPALIVE ignores its argument; the pointer is valid anyway.
    unsafe { libc::ioctl(fd.as_raw_fd(), WDIOC_KEEPALIVE, &mut dummy as *mut libc::c_int) };
    Ok(t as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request numbers as <linux/watchdog.h> computes them: _IOWR('W', 6, int) and
    /// _IOR('W', 5, int) with the generic _IOC layout (x86, arm, arm64).
    #[test]
    // libc::Ioctl is i32 on musl, u64 on 64-bit glibc and u32 on armv7 glibc: the cast is the
    // same-type one clippy flags on that last target only.
    #[allow(clippy::unnecessary_cast)]
    fn request_numbers_match_the_uapi_header() {
        let ioc = |dir: u32, nr: u32| {
            (dir << 30) | ((std::mem::size_of::<libc::c_int>() as u32) << 16) | (u32::from(b'W') << 8) | nr
        };
        assert_eq!(WDIOC_SETTIMEOUT as u32, ioc(3, 6));
        assert_eq!(WDIOC_KEEPALIVE as u32, ioc(2, 5));
    }
}
