//! What PID 1 does when the boot cannot go on: one clear line, then the configured policy. It
//! never returns and never exits (an exiting PID 1 is a kernel panic that Debian kernels do not
//! recover from).

use crate::boot::error::Error;
use crate::config::settings::{FailurePolicy, Settings};
use rustix::system::{reboot, RebootCommand};
use std::path::Path;
use std::time::Duration;

pub fn fatal(e: &Error, s: &Settings) -> ! {
    log::error!("FATAL: {e}");
    // Under U-Boot this slot's boot failed: U-Boot's next choice must be the other slot.
    if s.ab.uboot {
        crate::boot::bootloader::slot_failed(s);
    }
    if s.failure == FailurePolicy::Shell && s.allow_shell && Path::new(&s.shell).exists() {
        log::error!("starting the rescue shell {}; the device reboots when it exits", s.shell);
        match crate::sys::process::Program::inheriting(&s.shell, &[])
            .and_then(|p| p.spawn(false).map_err(|e| e.to_string()))
        {
            Ok(shell) => {
                let _ = crate::sys::process::wait(shell, true);
            }
            Err(e) => log::error!("{}: cannot start the rescue shell: {e}", s.shell),
        }
        finish(RebootCommand::Restart, 0)
    }
    match s.failure {
        FailurePolicy::Halt => finish(RebootCommand::Halt, 0),
        FailurePolicy::Poweroff => finish(RebootCommand::PowerOff, 0),
        FailurePolicy::Reboot | FailurePolicy::Shell => finish(RebootCommand::Restart, s.reboot_delay),
    }
}

/// Syncs, waits `delay` seconds, and reboots/halts; if even that fails, sleeps forever.
pub fn finish(cmd: RebootCommand, delay: u32) -> ! {
    let verb = match cmd {
        RebootCommand::Halt => "halting",
        RebootCommand::PowerOff => "powering off",
        _ => "rebooting",
    };
    log::error!("{verb} in {delay} s");
    std::thread::sleep(Duration::from_secs(delay.into()));
    rustix::fs::sync();
    let _ = reboot(cmd);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// A panic in PID 1 must not become a kernel panic: log it and reboot.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        log::error!("FATAL: overlay-init panicked: {info}. This is a bug; please report it with the boot log");
        finish(RebootCommand::Restart, 5)
    }));
}
