//! `log` backend: each record goes to /dev/kmsg (so dmesg shows it with a kernel timestamp and the
//! `overlay-init:` prefix) and to the console, unless the kernel already echoes it there.
//!
//! Under `quiet` the kernel prints only errors on the console; the init then adds its warnings
//! there, but its info lines stay in the kernel log, as the kernel's own, dracut's and
//! initramfs-tools' do (`oinit.showinfo` prints them anyway). Each console line costs about
//! 3 ms of a 1-vCPU TCG boot (a plain boot logs about 14 before the exec), and a serial port's
//! time on a board.

use crate::rt::fs::{File, OpenOptions};
use crate::rt::io::Write;
use crate::rt::os::fd::{AsRawFd, RawFd};
use crate::rt::prelude::*;
use crate::rt::sync::atomic::{AtomicI32, Ordering};
use crate::rt::sync::Mutex;

pub const PREFIX: &str = "overlay-init";

pub struct Logger {
    kmsg: Option<Mutex<File>>,
    /// Records below this syslog level are printed by the kernel itself (console_loglevel).
    kernel_echoes_below: u8,
    /// Info and debug records the kernel does not print go to the console all the same.
    show_info: bool,
}

/// Whether the logger writes a record to the console itself: when the kernel log did not take
/// it, or the kernel does not echo it and it is a warning or worse (or info is to be shown).
fn to_console(level: u8, in_kmsg: bool, kernel_echoes_below: u8, show_info: bool) -> bool {
    let echoed = in_kmsg && level < kernel_echoes_below;
    !echoed && (!in_kmsg || level <= WARNING || show_info)
}

/// The syslog level of a warning (KERN_WARNING).
const WARNING: u8 = 4;

fn syslog_level(l: log::Level) -> u8 {
    match l {
        log::Level::Error => 3,
        log::Level::Warn => WARNING,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let level = syslog_level(r.level());
        let tag = match r.level() {
            log::Level::Error => "ERROR: ",
            log::Level::Warn => "WARNING: ",
            _ => "",
        };
        let mut in_kmsg = false;
        if let Some(k) = &self.kmsg {
            // One write per record: /dev/kmsg takes each write as one message.
            let line = format!("<{level}>{PREFIX}: {tag}{}\n", r.args());
            if let Ok(mut f) = k.lock() {
                in_kmsg = f.write_all(line.as_bytes()).is_ok();
            }
        }
        if to_console(level, in_kmsg, self.kernel_echoes_below, self.show_info) {
            let _ = writeln!(crate::rt::io::stderr(), "{PREFIX}: {tag}{}", r.args());
        }
    }

    fn flush(&self) {}
}

/// The kernel drops /dev/kmsg writes beyond 10 per 5 s by default (`printk_devkmsg=ratelimit`),
/// silently: the FATAL line could vanish. The boot lifts the limit while it runs and puts the
/// kernel's setting back before exec'ing the real init.
const DEVKMSG: &str = "/proc/sys/kernel/printk_devkmsg";

pub fn lift_kmsg_ratelimit() {
    if crate::rt::fs::read_to_string(DEVKMSG).is_ok_and(|v| v.trim() == "ratelimit") {
        let _ = crate::rt::fs::write(DEVKMSG, "on\n");
    }
}

pub fn restore_kmsg_ratelimit() {
    if crate::rt::fs::read_to_string(DEVKMSG).is_ok_and(|v| v.trim() == "on") {
        let _ = crate::rt::fs::write(DEVKMSG, "ratelimit\n");
    }
}

/// The logger's /dev/kmsg descriptor (-1: none), for a forked child that closes all others.
static KMSG_FD: AtomicI32 = AtomicI32::new(-1);

/// The descriptor a forked child must keep to go on logging to the kernel log.
pub fn kmsg_fd() -> Option<RawFd> {
    Some(KMSG_FD.load(Ordering::Relaxed)).filter(|fd| *fd >= 0)
}

/// Installs the logger. `kmsg` is false in userspace, where stderr is enough; `show_info` is
/// `oinit.showinfo`.
pub fn init(level: log::LevelFilter, kmsg: bool, show_info: bool) {
    let kmsg_file = kmsg.then(|| OpenOptions::new().write(true).open("/dev/kmsg").ok()).flatten();
    // console_loglevel is the first field of /proc/sys/kernel/printk.
    let echo = crate::rt::fs::read_to_string("/proc/sys/kernel/printk")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    if let Some(f) = &kmsg_file {
        KMSG_FD.store(f.as_raw_fd(), Ordering::Relaxed);
    }
    let logger = Box::leak(Box::new(Logger { kmsg: kmsg_file.map(Mutex::new), kernel_echoes_below: echo, show_info }));
    // set_logger fails only when called twice; the first logger stays, which is fine.
    let _ = log::set_logger(logger);
    log::set_max_level(level);
}

#[cfg(test)]
mod tests {
    use super::to_console;

    const QUIET: u8 = 4; // console_loglevel under `quiet`
    const LOUD: u8 = 7; // the kernel's default

    #[test]
    fn under_quiet_info_stays_in_the_kernel_log_and_warnings_reach_the_console() {
        assert!(!to_console(6, true, QUIET, false), "info, quiet");
        assert!(to_console(4, true, QUIET, false), "a warning, which quiet's kernel does not print");
        assert!(!to_console(3, true, QUIET, false), "an error: the kernel prints it");
        assert!(to_console(6, true, QUIET, true), "info with oinit.showinfo");
    }

    #[test]
    fn without_quiet_the_kernel_prints_everything_once() {
        for level in [3, 4, 6] {
            assert!(!to_console(level, true, LOUD, false));
            assert!(!to_console(level, true, LOUD, true));
        }
    }

    #[test]
    fn a_record_the_kernel_log_did_not_take_goes_to_the_console() {
        for level in [3, 4, 6, 7] {
            assert!(to_console(level, false, QUIET, false));
            assert!(to_console(level, false, LOUD, false));
        }
    }
}
