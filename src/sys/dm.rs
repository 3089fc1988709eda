//! Device-mapper devices through `/dev/mapper/control`, mirroring `<linux/dm-ioctl.h>`: create,
//! load a table, resume, remove. Only what a verity lower needs; no libdevmapper, no udev.
#![allow(unsafe_code)]

use rustix::fd::{AsRawFd, OwnedFd};
use rustix::fs::{open, Mode, OFlags};
use rustix::io::Errno;

/// `struct dm_ioctl`: 312 bytes on every 64-bit and 32-bit ARM target (u64 aligned to 8).
#[repr(C)]
struct DmIoctl {
    version: [u32; 3],
    data_size: u32,
    data_start: u32,
    target_count: u32,
    open_count: i32,
    flags: u32,
    event_nr: u32,
    padding: u32,
    dev: u64,
    name: [u8; 128],
    uuid: [u8; 129],
    data: [u8; 7],
}

/// `struct dm_target_spec`, followed by the target's parameters as a NUL-terminated string.
#[repr(C)]
struct TargetSpec {
    sector_start: u64,
    length: u64,
    status: i32,
    next: u32,
    target_type: [u8; 16],
}

const HEADER: usize = core::mem::size_of::<DmIoctl>();
const DM_READONLY_FLAG: u32 = 1;

/// `_IOWR(0xfd, nr, struct dm_ioctl)`.
const fn iowr(nr: u32) -> libc::Ioctl {
    ((3u32 << 30) | ((HEADER as u32) << 16) | (0xfd << 8) | nr) as libc::Ioctl
}
const DM_DEV_CREATE: libc::Ioctl = iowr(3);
const DM_DEV_REMOVE: libc::Ioctl = iowr(4);
/// Without DM_SUSPEND_FLAG: resume, which makes a loaded (inactive) table live.
const DM_DEV_SUSPEND: libc::Ioctl = iowr(6);
const DM_TABLE_LOAD: libc::Ioctl = iowr(9);

type Failure = (&'static str, Errno);

fn control() -> Result<OwnedFd, Failure> {
    open("/dev/mapper/control", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| ("open /dev/mapper/control", e))
}

/// One ioctl with the header for device `name` and `payload` after it; returns the header the
/// kernel wrote back.
fn call(
    ctl: &OwnedFd,
    req: libc::Ioctl,
    what: &'static str,
    name: &str,
    flags: u32,
    targets: u32,
    payload: &[u8],
) -> Result<DmIoctl, Failure> {
    let total = HEADER + payload.len();
    // u64 words: the kernel's struct needs 8-byte alignment.
    let mut buf = vec![0u64; total.div_ceil(8)];
    let mut hdr = DmIoctl {
        version: [4, 0, 0],
        data_size: total as u32,
        data_start: HEADER as u32,
        target_count: targets,
        open_count: 0,
        flags,
        event_nr: 0,
        padding: 0,
        dev: 0,
        name: [0; 128],
        uuid: [0; 129],
        data: [0; 7],
    };
    let n = name.len().min(127);
    hdr.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    let base = buf.as_mut_ptr();
    // SAFETY: `buf` holds at least HEADER + payload.len() bytes and is 8-byte aligned, so the
    // header write and the payload copy stay inside it; DmIoctl is plain old data.
    unsafe {
        core::ptr::write(base as *mut DmIoctl, hdr);
        core::ptr::copy_nonoverlapping(payload.as_ptr(), (base as *mut u8).add(HEADER), payload.len());
    }
    // SAFETY: the request numbers are the dm ioctls of <linux/dm-ioctl.h>; the kernel reads and
    // writes at most data_size bytes of `buf`, which we own for the whole call.
    let rc = unsafe { libc::ioctl(ctl.as_raw_fd(), req, base) };
    if rc < 0 {
        return Err((what, super::last_errno()));
    }
    // SAFETY: the buffer still starts with a valid DmIoctl (the kernel wrote one back).
    Ok(unsafe { core::ptr::read(base as *const DmIoctl) })
}

/// One target covering `sectors` from sector 0, read-only, then resumed.
fn load_and_resume(ctl: &OwnedFd, name: &str, sectors: u64, target: &str, params: &str) -> Result<(), Failure> {
    let mut kind = [0u8; 16];
    let n = target.len().min(15);
    kind[..n].copy_from_slice(&target.as_bytes()[..n]);
    let spec = TargetSpec { sector_start: 0, length: sectors, status: 0, next: 0, target_type: kind };
    let mut payload = vec![0u8; core::mem::size_of::<TargetSpec>()];
    // SAFETY: `payload` is exactly one TargetSpec long; write_unaligned needs no alignment.
    unsafe { core::ptr::write_unaligned(payload.as_mut_ptr() as *mut TargetSpec, spec) };
    payload.extend_from_slice(params.as_bytes());
    payload.push(0);
    payload.resize(payload.len().div_ceil(8) * 8, 0);
    call(ctl, DM_TABLE_LOAD, "DM_TABLE_LOAD", name, DM_READONLY_FLAG, 1, &payload)?;
    call(ctl, DM_DEV_SUSPEND, "DM_DEV_SUSPEND (resume)", name, 0, 0, &[])?;
    Ok(())
}

/// Creates read-only device `name` with one `target` of `sectors` and `params`; returns its
/// major:minor (the node is /dev/dm-MINOR on devtmpfs). A device whose table the kernel refuses
/// is removed again.
pub fn create(name: &str, sectors: u64, target: &str, params: &str) -> Result<(u32, u32), Failure> {
    let ctl = control()?;
    let created = call(&ctl, DM_DEV_CREATE, "DM_DEV_CREATE", name, DM_READONLY_FLAG, 0, &[])?;
    if let Err(e) = load_and_resume(&ctl, name, sectors, target, params) {
        let _ = call(&ctl, DM_DEV_REMOVE, "DM_DEV_REMOVE", name, 0, 0, &[]);
        return Err(e);
    }
    let dev = created.dev as libc::dev_t;
    Ok((libc::major(dev), libc::minor(dev)))
}

/// Replaces the live table of `name` (load, then resume swaps it in).
pub fn reload(name: &str, sectors: u64, target: &str, params: &str) -> Result<(), Failure> {
    load_and_resume(&control()?, name, sectors, target, params)
}

pub fn remove(name: &str) -> Result<(), Failure> {
    call(&control()?, DM_DEV_REMOVE, "DM_DEV_REMOVE", name, 0, 0, &[]).map(|_| ())
}

/// `DM_DEFERRED_REMOVE` of <linux/dm-ioctl.h> (Linux 3.13): remove when the last user closes it.
const DM_DEFERRED_REMOVE: u32 = 1 << 17;

/// Removes `name` now if nothing holds it, else as soon as its last user (a lazily unmounted
/// filesystem) lets go: a device left behind would keep its partition busy for `install`.
pub fn remove_deferred(name: &str) -> Result<(), Failure> {
    call(&control()?, DM_DEV_REMOVE, "DM_DEV_REMOVE (deferred)", name, DM_DEFERRED_REMOVE, 0, &[]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // libc::Ioctl is i32 on musl, u64 on 64-bit glibc and u32 on armv7 glibc: the cast is the
    // same-type one clippy flags on that last target only.
    #[allow(clippy::unnecessary_cast)]
    fn struct_sizes_and_request_numbers_match_the_uapi_header() {
        assert_eq!(HEADER, 312);
        assert_eq!(std::mem::size_of::<TargetSpec>(), 40);
        // DM_DEV_CREATE and DM_TABLE_LOAD as <linux/dm-ioctl.h> computes them.
        assert_eq!(DM_DEV_CREATE as u32, 0xc138fd03);
        assert_eq!(DM_TABLE_LOAD as u32, 0xc138fd09);
    }
}
