//! Early mounts: the API filesystems every later stage reads, and the console as stdio.

use crate::boot::error::{Error, Result};
use rustix::fs::{mkdir, open, stat, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{mount, MountFlags};

struct ApiFs {
    target: &'static str,
    fstype: &'static str,
    flags: MountFlags,
    data: &'static str,
}

const API_FS: [ApiFs; 4] = [
    ApiFs {
        target: "/proc",
        fstype: "proc",
        flags: MountFlags::NOSUID.union(MountFlags::NODEV).union(MountFlags::NOEXEC),
        data: "",
    },
    ApiFs {
        target: "/sys",
        fstype: "sysfs",
        flags: MountFlags::NOSUID.union(MountFlags::NODEV).union(MountFlags::NOEXEC),
        data: "",
    },
    ApiFs { target: "/dev", fstype: "devtmpfs", flags: MountFlags::NOSUID, data: "mode=0755" },
    ApiFs { target: "/run", fstype: "tmpfs", flags: MountFlags::NOSUID.union(MountFlags::NODEV), data: "mode=0755" },
];

/// Mounts /proc, /sys, /dev and /run, skipping any the kernel already mounted (a different device
/// than the initramfs root means something is mounted there).
pub fn mount_api_filesystems() -> Result<()> {
    let root_dev = stat("/").map_err(|e| Error::sys("stat", "/", e, "rebuild the initramfs"))?.st_dev;
    for fs in &API_FS {
        match mkdir(fs.target, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => {
                return Err(Error::sys(
                    "mkdir",
                    fs.target,
                    e,
                    "rebuild the initramfs; the kernel must unpack it into a writable rootfs",
                ))
            }
        }
        if stat(fs.target).map(|s| s.st_dev != root_dev).unwrap_or(false) {
            continue;
        }
        let data = crate::rt::ffi::CString::new(fs.data).unwrap_or_default();
        match mount(fs.fstype, fs.target, fs.fstype, fs.flags, Some(data.as_c_str())) {
            Ok(()) | Err(Errno::BUSY) => {}
            Err(e) => {
                return Err(Error::sys(
                    "mount",
                    fs.target,
                    e,
                    "the kernel needs CONFIG_PROC_FS, CONFIG_SYSFS, CONFIG_DEVTMPFS and CONFIG_TMPFS",
                ))
            }
        }
    }
    Ok(())
}

/// Points stdin, stdout and stderr at /dev/console (the kernel may have started us without them
/// when the initramfs had no /dev/console node). Without a console, a closed one of the three is
/// pointed at /dev/null, as std's start-up would have done: otherwise the next file the boot
/// opens takes its number, and what is written to stderr would land in that file.
pub fn console_stdio() {
    let flags = OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC;
    if let Ok(fd) = open("/dev/console", flags, Mode::empty()) {
        // dup2 clears O_CLOEXEC on the new descriptors, so the real init inherits the console.
        let _ = rustix::stdio::dup2_stdin(&fd);
        let _ = rustix::stdio::dup2_stdout(&fd);
        let _ = rustix::stdio::dup2_stderr(&fd);
    } else if let Ok(null) = open("/dev/null", flags, Mode::empty()) {
        crate::sys::fds::fill_closed_stdio(&null);
    }
}
