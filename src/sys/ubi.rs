//! UBI volumes made from userspace, as mtd-utils' `ubimkvol` does: `UBI_IOCMKVOL` on the UBI
//! device's character device. Structures mirror `<mtd/ubi-user.h>`.
#![allow(unsafe_code)]

use rustix::fd::AsRawFd;
use rustix::fs::{open, Mode, OFlags};
use rustix::io::Errno;

const UBI_MAX_VOLUME_NAME: usize = 127;
const UBI_VOL_NUM_AUTO: i32 = -1;
const UBI_DYNAMIC_VOLUME: i8 = 3;

/// `struct ubi_mkvol_req`.
#[repr(C)]
struct MkvolReq {
    vol_id: i32,
    alignment: i32,
    bytes: i64,
    vol_type: i8,
    flags: u8,
    name_len: i16,
    padding2: [i8; 4],
    name: [u8; UBI_MAX_VOLUME_NAME + 1],
}

/// `_IOW('o', 0, struct ubi_mkvol_req)`.
const UBI_IOCMKVOL: libc::Ioctl = (1 << 30) | ((std::mem::size_of::<MkvolReq>() as libc::Ioctl) << 16) | (0x6f << 8);

/// `_IOW('O', 0, __s64)`: starts an update of the volume opened on `fd`, `bytes` long. The
/// volume is marked as being updated until all `bytes` are written; an update cut short leaves
/// it marked corrupted, so it is never read as a whole image.
const UBI_IOCVOLUP: libc::Ioctl = (1 << 30) | (8 << 16) | (0x4f << 8);

pub fn start_update(fd: &impl AsRawFd, bytes: u64) -> Result<(), Errno> {
    let bytes = i64::try_from(bytes).map_err(|_| Errno::INVAL)?;
    // SAFETY: UBI_IOCVOLUP reads one __s64 from the pointer, which is live for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), UBI_IOCVOLUP, &bytes as *const i64) };
    if rc < 0 {
        return Err(super::last_errno());
    }
    Ok(())
}

/// Creates dynamic volume `name` of `bytes` bytes on UBI device `ubi` (`/dev/ubiN`). UBIFS
/// formats an empty volume itself at its first mount.
pub fn make_volume(ubi: &str, name: &str, bytes: u64) -> Result<(), (&'static str, Errno)> {
    if name.is_empty() || name.len() > UBI_MAX_VOLUME_NAME {
        return Err(("volume name", Errno::NAMETOOLONG));
    }
    let fd = open(ubi, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| ("open", e))?;
    let mut req = MkvolReq {
        vol_id: UBI_VOL_NUM_AUTO,
        alignment: 1,
        bytes: i64::try_from(bytes).map_err(|_| ("bytes", Errno::INVAL))?,
        vol_type: UBI_DYNAMIC_VOLUME,
        flags: 0,
        name_len: name.len() as i16,
        padding2: [0; 4],
        name: [0; UBI_MAX_VOLUME_NAME + 1],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: UBI_IOCMKVOL reads one ubi_mkvol_req (and writes back vol_id): `req` is a live
    // #[repr(C)] mirror of the header's structure for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), UBI_IOCMKVOL, &mut req as *mut MkvolReq) };
    if rc < 0 {
        return Err(("UBI_IOCMKVOL", super::last_errno()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_matches_the_kernel_header() {
        // 4 + 4 + 8 + 1 + 1 + 2 + 4 + 128: the header's size, so the request number is its own.
        assert_eq!(std::mem::size_of::<MkvolReq>(), 152);
        assert_eq!(UBI_IOCMKVOL, 0x4098_6f00);
        assert_eq!(UBI_IOCVOLUP, 0x4008_4f00);
        assert_eq!(make_volume("/nonexistent", "", 1), Err(("volume name", Errno::NAMETOOLONG)));
    }
}
