//! Mount wrappers over rustix, one per intent, and the split of user-written options into mount
//! flags and filesystem data.

use crate::rt::prelude::*;
use rustix::io::Errno;
use rustix::mount::{self, MountFlags, MountPropagationFlags, UnmountFlags};

/// Splits `nodev,nosuid,noatime,errors=remount-ro` into flags and the data string the
/// filesystem parses, as mount(8) does.
pub fn split_options(options: &str) -> (MountFlags, String) {
    let mut flags = MountFlags::empty();
    let mut data = Vec::new();
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => flags |= MountFlags::RDONLY,
            "rw" => flags &= !MountFlags::RDONLY,
            "nodev" => flags |= MountFlags::NODEV,
            "nosuid" => flags |= MountFlags::NOSUID,
            "noexec" => flags |= MountFlags::NOEXEC,
            "noatime" => flags |= MountFlags::NOATIME,
            "nodiratime" => flags |= MountFlags::NODIRATIME,
            "relatime" => flags |= MountFlags::RELATIME,
            "sync" => flags |= MountFlags::SYNCHRONOUS,
            "dirsync" => flags |= MountFlags::DIRSYNC,
            "lazytime" => flags |= MountFlags::LAZYTIME,
            "bind" => flags |= MountFlags::BIND,
            "defaults" => {}
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

/// `mount(source, target, fstype, flags, data)` with options as a user writes them.
pub fn mount_fs(source: &str, target: &str, fstype: &str, options: &str) -> Result<(), Errno> {
    let (flags, data) = split_options(options);
    let data = crate::rt::ffi::CString::new(data).map_err(|_| Errno::INVAL)?;
    mount::mount(source, target, fstype, flags, Some(data.as_c_str()))
}

/// `mount(src, dst, NULL, MS_MOVE, NULL)`: moves a mount and everything under it.
pub fn move_mount(source: &str, target: &str) -> Result<(), Errno> {
    mount::mount_move(source, target)
}

/// `umount2(target, MNT_DETACH)`: for mounts that could not be moved along.
pub fn unmount_detach(target: &str) -> Result<(), Errno> {
    mount::unmount(target, UnmountFlags::DETACH)
}

/// `umount2(target, 0)`: a real unmount, which writes the filesystem back and marks it clean.
pub fn unmount(target: &str) -> Result<(), Errno> {
    mount::unmount(target, UnmountFlags::empty())
}

/// `mount(NULL, target, NULL, MS_REMOUNT | MS_RDONLY, NULL)`: the filesystem stays mounted but
/// is made read-only, which flushes it and leaves it clean (for mounts still in use at shutdown).
pub fn remount_read_only(target: &str) -> Result<(), Errno> {
    mount::mount_remount(target, MountFlags::RDONLY, "")
}

/// `mount(target, target, NULL, MS_BIND, NULL)`: makes a directory a mount point (pivot_root
/// needs one).
pub fn bind_onto_itself(target: &str) -> Result<(), Errno> {
    mount::mount_bind(target, target)
}

/// `mount(NULL, target, NULL, MS_PRIVATE | MS_REC, NULL)`: keeps test mounts out of the host.
pub fn make_private(target: &str) -> Result<(), Errno> {
    mount::mount_change(target, MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
}

/// Mounts a read-only image (squashfs, else EROFS) from `source`; returns the filesystem.
pub fn mount_image_ro(source: &str, target: &str) -> Result<&'static str, Errno> {
    let mut last = Errno::INVAL;
    for fs in ["squashfs", "erofs"] {
        match mount_fs(source, target, fs, "ro") {
            Ok(()) => return Ok(fs),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Gives the calling process a mount namespace of its own with private propagation: what it
/// mounts afterwards is unmounted by the kernel when it exits, and never seen by the host.
/// Only for a single-threaded command (`unshare` changes the calling thread's namespace).
#[allow(unsafe_code)]
pub fn private_namespace() -> Result<(), Errno> {
    // SAFETY: CLONE_NEWNS only; the caller has no other threads whose view of the filesystem
    // could disagree with this one's.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }?;
    make_private("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split() {
        let (f, d) = split_options("nodev,nosuid,errors=remount-ro,noatime");
        assert_eq!(f, MountFlags::NODEV | MountFlags::NOSUID | MountFlags::NOATIME);
        assert_eq!(d, "errors=remount-ro");
        let (f, d) = split_options("ro,lowerdir=/a,upperdir=/b,rw");
        assert_eq!(f, MountFlags::empty());
        assert_eq!(d, "lowerdir=/a,upperdir=/b");
        assert_eq!(split_options(""), (MountFlags::empty(), String::new()));
    }
}
