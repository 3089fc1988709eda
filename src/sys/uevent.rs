//! The kernel's device announcements (`NETLINK_KOBJECT_UEVENT`, the socket udev listens on), so
//! the device search wakes when a disk or partition appears instead of sleeping between sysfs
//! scans. The messages are not parsed: any uevent means "scan sysfs again", which stays the one
//! source of truth (and the first pass, for devices that appeared before the socket existed).

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fd::OwnedFd;
use rustix::net::{bind, netlink, recv, socket_with, AddressFamily, RecvFlags, SocketFlags, SocketType};
use std::time::Duration;

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

    /// Waits until a uevent arrives or `timeout` passes, then drains what is queued. Returns
    /// whether anything arrived.
    pub fn wait(&self, timeout: Duration) -> bool {
        let ts = Timespec { tv_sec: timeout.as_secs() as _, tv_nsec: timeout.subsec_nanos() as _ };
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => false,
            Ok(_) => {
                let mut buf = [0u8; 4096];
                while recv(&self.fd, &mut buf[..], RecvFlags::DONTWAIT).is_ok() {}
                true
            }
            // EINTR and the like: the caller rescans sysfs anyway.
            Err(_) => true,
        }
    }
}
