//! The kernel's device announcements (`NETLINK_KOBJECT_UEVENT`, the socket udev listens on), so
//! the device search wakes when a disk or partition appears instead of sleeping between sysfs
//! scans. The messages are not parsed: any uevent means "scan sysfs again", which stays the one
//! source of truth (and the first pass, for devices that appeared before the socket existed).
//! Only storage announcements count (block, MTD, UBI): modules loading meanwhile announce
//! themselves too, and rescanning sysfs for each would take the CPU from the loading.

use crate::rt::time::Duration;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fd::OwnedFd;
use rustix::net::{bind, netlink, recv, socket_with, AddressFamily, RecvFlags, SocketFlags, SocketType};

pub struct Uevents {
    fd: OwnedFd,
}

impl Uevents {
    /// Subscribes to the kernel's uevent broadcast (group 1). None where the socket is not
    /// available (a kernel without CONFIG_NET): the caller polls sysfs instead.
    pub fn open() -> Option<Uevents> {
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            Some(netlink::KOBJECT_UEVENT),
        )
        .ok()?;
        bind(&fd, &netlink::SocketAddrNetlink::new(0, 1)).ok()?;
        Some(Uevents { fd })
    }

    /// Waits until a storage uevent arrives or `timeout` passes, draining what is queued.
    /// Returns whether a storage device was announced.
    pub fn wait(&self, timeout: Duration) -> bool {
        let end = crate::sys::clock::now_us() + timeout.as_micros() as u64;
        loop {
            let left = Duration::from_micros(end.saturating_sub(crate::sys::clock::now_us()));
            let ts = Timespec { tv_sec: left.as_secs() as _, tv_nsec: left.subsec_nanos() as _ };
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match poll(&mut fds, Some(&ts)) {
                Ok(0) => return false,
                Ok(_) => {
                    let mut buf = [0u8; 4096];
                    let mut storage = false;
                    while let Ok((n, _)) = recv(&self.fd, &mut buf[..], RecvFlags::DONTWAIT) {
                        storage |= announces_storage(&buf[..n.min(buf.len())]);
                    }
                    if storage || left.is_zero() {
                        return storage;
                    }
                }
                // EINTR and the like: the caller rescans sysfs anyway.
                Err(_) => return true,
            }
        }
    }
}

/// Whether a uevent (`ACTION@DEVPATH`, then `KEY=value` fields, NUL-separated) is about a block
/// device, an MTD device or a UBI device or volume.
pub fn announces_storage(msg: &[u8]) -> bool {
    msg.split(|b| *b == 0).any(|f| matches!(f, b"SUBSYSTEM=block" | b"SUBSYSTEM=mtd" | b"SUBSYSTEM=ubi"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_announcements_only() {
        let disk = b"add@/devices/pci0000:00/virtio1/block/vda\0ACTION=add\0SUBSYSTEM=block\0DEVNAME=vda\0";
        let module = b"add@/module/ext4\0ACTION=add\0DEVPATH=/module/ext4\0SUBSYSTEM=module\0SEQNUM=812\0";
        let volume = b"add@/devices/virtual/ubi/ubi0/ubi0_1\0ACTION=add\0SUBSYSTEM=ubi\0";
        assert!(announces_storage(disk));
        assert!(announces_storage(volume));
        assert!(!announces_storage(module));
        // A field that merely starts like one does not count.
        assert!(!announces_storage(b"add@/x\0SUBSYSTEM=blockish\0"));
        assert!(!announces_storage(b""));
    }
}
