//! Loop devices: read-only for a lower image file, read-write at an offset for an appended data
//! area. Structures mirror `<linux/loop.h>`.
#![allow(unsafe_code)]

use crate::rt::prelude::*;
use rustix::fd::{AsRawFd, OwnedFd};
use rustix::fs::{open, Mode, OFlags};
use rustix::io::Errno;

const LOOP_SET_FD: libc::Ioctl = 0x4C00;
const LOOP_SET_STATUS64: libc::Ioctl = 0x4C04;
const LOOP_CONFIGURE: libc::Ioctl = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::Ioctl = 0x4C82;
const LO_FLAGS_READ_ONLY: u32 = 1;
/// Detach when the last user (our mount) goes away: nothing to clean up by hand.
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64` from `<linux/loop.h>`.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` from `<linux/loop.h>` (Linux 5.8+).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// How to attach: where the device starts in the backing file, and whether it is the read-only,
/// self-detaching kind (a lower image) or a lasting read-write one (an appended data area).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub offset: u64,
    pub read_only: bool,
}

fn info(file: &str, o: Options) -> LoopInfo64 {
    let mut name = [0u8; 64];
    let n = file.len().min(63);
    name[..n].copy_from_slice(&file.as_bytes()[..n]);
    LoopInfo64 {
        lo_device: 0,
        lo_inode: 0,
        lo_rdevice: 0,
        lo_offset: o.offset,
        lo_sizelimit: 0,
        lo_number: 0,
        lo_encrypt_type: 0,
        lo_encrypt_key_size: 0,
        lo_flags: if o.read_only { LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR } else { 0 },
        lo_file_name: name,
        lo_crypt_name: [0; 64],
        lo_encrypt_key: [0; 32],
        lo_init: [0; 2],
    }
}

fn ioctl(fd: &OwnedFd, req: libc::Ioctl, arg: usize) -> Result<libc::c_int, Errno> {
    // SAFETY: every caller passes a request number from <linux/loop.h> together with the
    // argument that request expects (an fd number, or a pointer to a live #[repr(C)] struct
    // mirroring the header), so the kernel reads only memory we own for the call's duration.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), req, arg) };
    if rc < 0 {
        Err(super::last_errno())
    } else {
        Ok(rc)
    }
}

/// Which kernel interface attached the device, for the boot log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Configure,
    SetFdStatus,
}

/// A configured loop device. With autoclear the kernel detaches it at the last close, so keep
/// this open until the mount holds the device.
pub struct Attached {
    pub path: String,
    pub method: Method,
    pub fd: OwnedFd,
}

/// Attaches `file` to a free loop device read-only with autoclear.
pub fn attach_ro(file: &str) -> Result<Attached, (&'static str, Errno)> {
    attach(file, Options { offset: 0, read_only: true })
}

/// Attaches `file` to a free loop device. Uses LOOP_CONFIGURE (one atomic call, Linux 5.8+),
/// else LOOP_SET_FD + LOOP_SET_STATUS64.
pub fn attach(file: &str, o: Options) -> Result<Attached, (&'static str, Errno)> {
    let mode = if o.read_only { OFlags::RDONLY } else { OFlags::RDWR };
    let backing = open(file, mode | OFlags::CLOEXEC, Mode::empty()).map_err(|e| ("open", e))?;
    let ctl = open("/dev/loop-control", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| ("open /dev/loop-control", e))?;
    // Another process may take the free device between GET_FREE and attach: retry on EBUSY.
    for _ in 0..8 {
        let n = ioctl(&ctl, LOOP_CTL_GET_FREE, 0).map_err(|e| ("LOOP_CTL_GET_FREE", e))?;
        let path = format!("/dev/loop{n}");
        let dev = open(path.as_str(), mode | OFlags::CLOEXEC, Mode::empty()).map_err(|e| ("open loop device", e))?;
        let cfg = LoopConfig { fd: backing.as_raw_fd() as u32, block_size: 0, info: info(file, o), reserved: [0; 8] };
        match ioctl(&dev, LOOP_CONFIGURE, &cfg as *const LoopConfig as usize) {
            Ok(_) => return Ok(Attached { path, method: Method::Configure, fd: dev }),
            Err(Errno::BUSY) => continue,
            Err(Errno::INVAL | Errno::NOTTY) => {}
            Err(e) => return Err(("LOOP_CONFIGURE", e)),
        }
        match ioctl(&dev, LOOP_SET_FD, backing.as_raw_fd() as usize) {
            Err(Errno::BUSY) => continue,
            Err(e) => return Err(("LOOP_SET_FD", e)),
            Ok(_) => {}
        }
        let status = info(file, o);
        ioctl(&dev, LOOP_SET_STATUS64, &status as *const LoopInfo64 as usize).map_err(|e| ("LOOP_SET_STATUS64", e))?;
        return Ok(Attached { path, method: Method::SetFdStatus, fd: dev });
    }
    Err(("LOOP_CTL_GET_FREE", Errno::BUSY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_match_the_uapi_header() {
        // sizeof(struct loop_info64) == 232, sizeof(struct loop_config) == 304 on every arch.
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }
}
