//! The way back at shutdown. Before the switch the init leaves a copy of itself as
//! `/run/initramfs/shutdown`, the place systemd-shutdown (and dracut) return to: systemd pivots
//! into `/run/initramfs`, puts the old root at `/oldroot` and execs `/shutdown VERB`. Run that way,
//! or directly by a sysvinit/busybox image's last rc script (`exec /run/initramfs/shutdown
//! poweroff`, it pivots itself), it unmounts everything the boot mounted under the old root,
//! deepest first, so the overlay, the lower and the data partition are written back and left clean
//! (no ext4 journal replay at the next boot), then powers off, reboots, halts or kexecs.

use crate::rt::prelude::*;
use crate::rt::time::Duration;
use crate::rt::Why;
use crate::sys::mount;
use rustix::io::Errno;
use rustix::system::RebootCommand;

/// Where systemd-shutdown looks for the program to return to.
pub const SHUTDOWN: &str = "/run/initramfs/shutdown";
const RUNTIME_ROOT: &str = "/run/initramfs";
const OLD_ROOT: &str = "/oldroot";
/// How long a busy mount is retried before it is made read-only instead.
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// Copies the running init (the initramfs's `/init`) to `/run/initramfs/shutdown`. Done before
/// the initramfs is deleted; `/run` moves into the new root with it.
pub fn install(init_path: &str) -> Result<(), String> {
    crate::fs::mkdir::mkdir_all(RUNTIME_ROOT).map_err(|e| format!("mkdir {RUNTIME_ROOT}: {e}"))?;
    crate::fs::copy::file(init_path, SHUTDOWN).map_err(|e| format!("copy {init_path} to {SHUTDOWN}: {e}"))?;
    Ok(())
}

/// What the shutdown verb asks the kernel for (`reboot`, `poweroff`, `halt`, `kexec`).
pub fn command(verb: &str) -> Option<RebootCommand> {
    match verb {
        "reboot" => Some(RebootCommand::Restart),
        "poweroff" => Some(RebootCommand::PowerOff),
        "halt" => Some(RebootCommand::Halt),
        "kexec" => Some(RebootCommand::Kexec),
        _ => None,
    }
}

/// One mount to release at shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub point: String,
    /// Backed by no device (tmpfs, proc, devtmpfs...): nothing to write back, so it is detached at
    /// once even while in use (our own log and binary live there).
    pub virtual_fs: bool,
}

/// Filesystems with nothing to write back.
const VIRTUAL: [&str; 12] = [
    "tmpfs",
    "ramfs",
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "mqueue",
];

/// The mounts under `root` (itself included) in `mountinfo`, in the order to release them:
/// deepest first, and of mounts stacked on one path the last mounted first.
pub fn unmount_order(mountinfo: &str, root: &str) -> Vec<Release> {
    let mut points: Vec<(usize, usize, Release)> = mountinfo
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let point = unescape(l.split(' ').nth(4)?);
            let fstype = l.split(" - ").nth(1)?.split(' ').next()?;
            Some((i, Release { point, virtual_fs: VIRTUAL.contains(&fstype) }))
        })
        .filter(|(_, r)| r.point == root || r.point.strip_prefix(root).is_some_and(|rest| rest.starts_with('/')))
        .map(|(i, r)| (r.point.matches('/').count(), i, r))
        .collect();
    crate::util::sort::sort_by(&mut points, |a, b| (a.0, a.1) > (b.0, b.1));
    points.into_iter().map(|(_, _, r)| r).collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal =
            b.get(i + 1..i + 4).and_then(|d| core::str::from_utf8(d).ok()).and_then(|d| u8::from_str_radix(d, 8).ok());
        match (b[i], octal) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs as the shutdown program: never returns.
pub fn run(verb: &str) -> ! {
    // The board config stayed in the initramfs; the command line still has `oinit.showinfo`.
    let (cmdline, _) =
        crate::config::cmdline::decode(&crate::rt::fs::read("/proc/cmdline").unwrap_or_default(), "/proc/cmdline");
    let show_info = crate::config::settings::Settings::load("", &cmdline).0.show_info;
    crate::boot::logger::init(log::LevelFilter::Info, true, show_info);
    let cmd = command(verb).unwrap_or_else(|| {
        log::error!("shutdown: unknown verb {verb:?} (reboot, poweroff, halt, kexec): rebooting");
        RebootCommand::Restart
    });
    if let Err(e) = enter_runtime_root() {
        log::error!("shutdown: {e}; unmounting in place");
    }
    let info = crate::rt::fs::read_to_string(format!("{OLD_ROOT}/proc/self/mountinfo"))
        .or_else(|_| crate::rt::fs::read_to_string("/proc/self/mountinfo"))
        .unwrap_or_default();
    let order = unmount_order(&info, OLD_ROOT);
    let mut left = 0;
    for r in &order {
        if r.virtual_fs {
            let _ = mount::unmount_detach(&r.point);
        } else if !unmount_one(&r.point) {
            left += 1;
        }
    }
    rustix::fs::sync();
    log::info!("shutdown: {} mounts under {OLD_ROOT} released, {left} left read-only; {verb}", order.len() - left);
    let _ = rustix::system::reboot(cmd);
    crate::boot::fatal::finish(RebootCommand::Restart, 0)
}

/// Moves into `/run/initramfs` with the old root at `/oldroot`, as systemd-shutdown does, unless
/// systemd has done it already.
fn enter_runtime_root() -> Result<(), String> {
    if crate::rt::path::Path::new(OLD_ROOT).join("proc").is_dir() && !crate::rt::path::Path::new(RUNTIME_ROOT).is_dir()
    {
        return Ok(()); // systemd pivoted already: we run from /run/initramfs as /
    }
    let old = format!("{RUNTIME_ROOT}{OLD_ROOT}");
    crate::fs::mkdir::mkdir_all(&old).map_err(|e| format!("mkdir {old}: {e}"))?;
    mount::bind_onto_itself(RUNTIME_ROOT).map_err(|e| format!("bind {RUNTIME_ROOT}: {e}", e = Why(e)))?;
    rustix::process::chdir(RUNTIME_ROOT).map_err(|e| format!("chdir {RUNTIME_ROOT}: {e}", e = Why(e)))?;
    rustix::process::pivot_root(".", "oldroot")
        .map_err(|e| format!("pivot_root into {RUNTIME_ROOT}: {e}", e = Why(e)))?;
    rustix::process::chdir("/").map_err(|e| format!("chdir /: {e}", e = Why(e)))
}

/// Unmounts `point`, retrying while it is busy; a mount that stays busy is made read-only (which
/// writes it back and marks it clean) and detached. Returns whether it was unmounted.
fn unmount_one(point: &str) -> bool {
    let start = crate::rt::time::Instant::now();
    loop {
        match mount::unmount(point) {
            Ok(()) => return true,
            Err(Errno::BUSY) if start.elapsed() < BUSY_WAIT => crate::rt::thread::sleep(Duration::from_millis(100)),
            Err(e) => {
                let ro = mount::remount_read_only(point);
                let _ = mount::unmount_detach(point);
                match ro {
                    Ok(()) => {
                        log::warn!("shutdown: {point}: umount: {e}; remounted read-only and detached", e = Why(e))
                    }
                    Err(r) => log::warn!(
                        "shutdown: {point}: umount: {e}, read-only remount: {r}; detached",
                        e = Why(e),
                        r = Why(r)
                    ),
                }
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 0:21 / /oldroot rw - overlay overlay rw,lowerdir=/run/overlay-init/lower
23 22 0:5 / /oldroot/dev rw - devtmpfs devtmpfs rw
24 22 0:22 / /oldroot/proc rw - proc proc rw
25 22 0:23 / /oldroot/run rw - tmpfs tmpfs rw
26 25 254:2 / /oldroot/run/overlay-init/data rw - ext4 /dev/vda2 rw
27 25 254:1 / /oldroot/run/overlay-init/lower ro - squashfs /dev/vda1 ro
28 23 0:24 / /oldroot/dev/pts rw - devpts devpts rw
29 1 0:23 /initramfs / rw - tmpfs tmpfs rw
30 22 0:30 / /oldroot/mnt/my\\040stick rw - vfat /dev/sda1 rw
31 22 0:31 / /oldrootx rw - tmpfs tmpfs rw
";

    #[test]
    fn deepest_first_and_only_under_the_old_root() {
        let order = unmount_order(INFO, "/oldroot");
        let points: Vec<&str> = order.iter().map(|r| r.point.as_str()).collect();
        assert_eq!(
            points,
            [
                "/oldroot/run/overlay-init/lower",
                "/oldroot/run/overlay-init/data",
                "/oldroot/mnt/my stick",
                "/oldroot/dev/pts",
                "/oldroot/run",
                "/oldroot/proc",
                "/oldroot/dev",
                "/oldroot",
            ]
        );
        let real: Vec<&str> = order.iter().filter(|r| !r.virtual_fs).map(|r| r.point.as_str()).collect();
        assert_eq!(
            real,
            ["/oldroot/run/overlay-init/lower", "/oldroot/run/overlay-init/data", "/oldroot/mnt/my stick", "/oldroot"]
        );
    }

    #[test]
    fn verbs() {
        assert_eq!(command("poweroff"), Some(RebootCommand::PowerOff));
        assert_eq!(command("kexec"), Some(RebootCommand::Kexec));
        assert_eq!(command("shutdown"), None);
    }
}
