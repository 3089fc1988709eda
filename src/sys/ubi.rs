//! UBI from userspace, as mtd-utils does: attach an MTD device (`ubiattach`: `UBI_IOCATT` on
//! `/dev/ubi_ctrl`), make a volume (`ubimkvol`: `UBI_IOCMKVOL` on `/dev/ubiN`), give a volume a
//! read-only block device (`ubiblock --create`: `UBI_IOCVOLCRBLK` on `/dev/ubiN_M`), update a
//! volume (`ubiupdatevol`: `UBI_IOCVOLUP`) and remove one (`ubirmvol`: `UBI_IOCRMVOL`). Structures mirror `<mtd/ubi-user.h>`.
#![allow(unsafe_code)]

use crate::rt::path::Path;
use rustix::fd::AsRawFd;
use rustix::fs::{open, Mode, OFlags};
use rustix::io::Errno;

const UBI_MAX_VOLUME_NAME: usize = 127;
const UBI_VOL_NUM_AUTO: i32 = -1;
const UBI_DEV_NUM_AUTO: i32 = -1;
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
const UBI_IOCMKVOL: libc::Ioctl = (1 << 30) | ((core::mem::size_of::<MkvolReq>() as libc::Ioctl) << 16) | (0x6f << 8);

/// `_IOW('o', 1, __s32)`: the volume ID to remove.
const UBI_IOCRMVOL: libc::Ioctl = (1 << 30) | (4 << 16) | (0x6f << 8) | 1;

/// `_IOW('O', 0, __s64)`: starts an update of the volume opened on `fd`, `bytes` long. The
/// volume is marked as being updated until all `bytes` are written; an update cut short leaves
/// it marked corrupted, so it is never read as a whole image.
const UBI_IOCVOLUP: libc::Ioctl = (1 << 30) | (8 << 16) | (0x4f << 8);

/// `struct ubi_attach_req`.
#[repr(C)]
struct AttachReq {
    ubi_num: i32,
    mtd_num: i32,
    vid_hdr_offset: i32,
    max_beb_per1024: i16,
    disable_fm: i8,
    need_resv_pool: i8,
    padding: [i8; 8],
}

/// `_IOW('o', 64, struct ubi_attach_req)`.
const UBI_IOCATT: libc::Ioctl =
    (1 << 30) | ((core::mem::size_of::<AttachReq>() as libc::Ioctl) << 16) | (0x6f << 8) | 64;
/// `_IOW('O', 7, struct ubi_blkcreate_req)`: the request is 128 bytes of padding.
const UBI_IOCVOLCRBLK: libc::Ioctl = (1 << 30) | (128 << 16) | (0x4f << 8) | 7;

/// Attaches MTD device `mtd` as the next free UBI device, with the kernel's defaults for the VID
/// header offset and the bad-block reserve; returns the UBI device number.
pub fn attach(ctrl: &Path, mtd: u32) -> Result<u32, (&'static str, Errno)> {
    let fd = open(ctrl, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| ("open", e))?;
    let mut req = AttachReq {
        ubi_num: UBI_DEV_NUM_AUTO,
        mtd_num: i32::try_from(mtd).map_err(|_| ("mtd number", Errno::INVAL))?,
        vid_hdr_offset: 0,
        max_beb_per1024: 0,
        disable_fm: 0,
        need_resv_pool: 0,
        padding: [0; 8],
    };
    // SAFETY: UBI_IOCATT reads one ubi_attach_req and writes the device number back into it:
    // `req` is a live #[repr(C)] mirror of the header's structure for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), UBI_IOCATT, &mut req as *mut AttachReq) };
    if rc < 0 {
        return Err(("UBI_IOCATT", super::last_errno()));
    }
    u32::try_from(req.ubi_num).map_err(|_| ("UBI_IOCATT", Errno::INVAL))
}

/// Creates the read-only block device `/dev/ubiblockN_M` of volume `/dev/ubiN_M`.
pub fn make_block(volume: &Path) -> Result<(), (&'static str, Errno)> {
    let fd = open(volume, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| ("open", e))?;
    let req = [0u8; 128];
    // SAFETY: UBI_IOCVOLCRBLK reads 128 bytes (struct ubi_blkcreate_req, all padding) from a
    // live buffer of that size.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), UBI_IOCVOLCRBLK, req.as_ptr()) };
    if rc < 0 {
        return Err(("UBI_IOCVOLCRBLK", super::last_errno()));
    }
    Ok(())
}

pub fn start_update(fd: &impl AsRawFd, bytes: u64) -> Result<(), Errno> {
    let bytes = i64::try_from(bytes).map_err(|_| Errno::INVAL)?;
    // SAFETY: UBI_IOCVOLUP reads one __s64 from the pointer, which is live for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), UBI_IOCVOLUP, &bytes as *const i64) };
    if rc < 0 {
        return Err(super::last_errno());
    }
    Ok(())
}

/// Creates dynamic volume `name` of `bytes` bytes on UBI device `ubi` (`/dev/ubiN`), as volume
/// `vol_id` (None: the lowest free ID, the kernel's choice). UBIFS formats an empty volume
/// itself at its first mount.
pub fn make_volume(ubi: &str, vol_id: Option<u32>, name: &str, bytes: u64) -> Result<(), (&'static str, Errno)> {
    if name.is_empty() || name.len() > UBI_MAX_VOLUME_NAME {
        return Err(("volume name", Errno::NAMETOOLONG));
    }
    let fd = open(ubi, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| ("open", e))?;
    let mut req = MkvolReq {
        vol_id: match vol_id {
            Some(id) => i32::try_from(id).map_err(|_| ("volume ID", Errno::INVAL))?,
            None => UBI_VOL_NUM_AUTO,
        },
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

/// Removes volume `vol_id` of UBI device `ubi` (`/dev/ubiN`). The kernel refuses (EBUSY) while
/// the volume is open or mounted. One volume-table update: a power cut leaves it whole or gone.
pub fn remove_volume(ubi: &str, vol_id: u32) -> Result<(), (&'static str, Errno)> {
    let fd = open(ubi, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| ("open", e))?;
    let id = i32::try_from(vol_id).map_err(|_| ("volume ID", Errno::INVAL))?;
    // SAFETY: UBI_IOCRMVOL reads one __s32 from the pointer, which is live for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), UBI_IOCRMVOL, &id as *const i32) };
    if rc < 0 {
        return Err(("UBI_IOCRMVOL", super::last_errno()));
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
        assert_eq!(UBI_IOCRMVOL, 0x4004_6f01);
        // 4 + 4 + 4 + 2 + 1 + 1 + 8.
        assert_eq!(std::mem::size_of::<AttachReq>(), 24);
        assert_eq!(UBI_IOCATT, 0x4018_6f40);
        assert_eq!(UBI_IOCVOLCRBLK, 0x4080_4f07);
        assert_eq!(make_volume("/nonexistent", None, "", 1), Err(("volume name", Errno::NAMETOOLONG)));
    }
}
