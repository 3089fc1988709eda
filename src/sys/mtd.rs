//! MTD partitions added from userspace, as mtd-utils' `mtdpart add` does: the `BLKPG` ioctl on
//! the master's character device. A stock kernel lacks OpenWRT's mtdsplit parsers, so the
//! `rootfs_data` area after the squashfs on NOR flash is split off here. Structures mirror
//! `<linux/blkpg.h>`.
#![allow(unsafe_code)]

use rustix::fd::AsRawFd;
use rustix::fs::{open, Mode, OFlags};
use rustix::io::Errno;

/// `_IO(0x12, 105)`.
const BLKPG: libc::Ioctl = 0x1269;
const BLKPG_ADD_PARTITION: libc::c_int = 1;
const BLKPG_DEVNAMELTH: usize = 64;

/// `struct blkpg_partition`.
#[repr(C)]
struct BlkpgPartition {
    start: libc::c_longlong,
    length: libc::c_longlong,
    pno: libc::c_int,
    devname: [u8; BLKPG_DEVNAMELTH],
    volname: [u8; BLKPG_DEVNAMELTH],
}

/// `struct blkpg_ioctl_arg`.
#[repr(C)]
struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

/// Adds partition `name` of `master` (`/dev/mtdN`, a master device, not a partition) from byte
/// `start`, `length` bytes. The partition lives until the next boot.
pub fn add_partition(master: &str, name: &str, start: u64, length: u64) -> Result<(), (&'static str, Errno)> {
    if name.len() >= BLKPG_DEVNAMELTH {
        return Err(("partition name", Errno::NAMETOOLONG));
    }
    let fd = open(master, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).map_err(|e| ("open", e))?;
    let mut part = BlkpgPartition {
        start: i64::try_from(start).map_err(|_| ("start", Errno::INVAL))?,
        length: i64::try_from(length).map_err(|_| ("length", Errno::INVAL))?,
        pno: 0,
        devname: [0; BLKPG_DEVNAMELTH],
        volname: [0; BLKPG_DEVNAMELTH],
    };
    part.devname[..name.len()].copy_from_slice(name.as_bytes());
    let mut arg = BlkpgIoctlArg {
        op: BLKPG_ADD_PARTITION,
        flags: 0,
        datalen: core::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: (&mut part as *mut BlkpgPartition).cast(),
    };
    // SAFETY: BLKPG reads a blkpg_ioctl_arg whose `data` points at a blkpg_partition of
    // `datalen` bytes; both are live #[repr(C)] mirrors of <linux/blkpg.h> for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), BLKPG, &mut arg as *mut BlkpgIoctlArg) };
    if rc < 0 {
        return Err(("BLKPG_ADD_PARTITION", super::last_errno()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structures_match_the_kernel_header() {
        // struct blkpg_partition: 2 x long long, int, 2 x char[64], padded to 8.
        assert_eq!(std::mem::size_of::<BlkpgPartition>(), 152);
        let arg = 3 * std::mem::size_of::<libc::c_int>();
        let ptr = std::mem::size_of::<usize>();
        assert_eq!(std::mem::size_of::<BlkpgIoctlArg>(), arg.div_ceil(ptr) * ptr + ptr);
        assert_eq!(add_partition("/nonexistent", &"x".repeat(64), 0, 1), Err(("partition name", Errno::NAMETOOLONG)));
    }
}
