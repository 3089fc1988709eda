//! What PID 1 does when the boot cannot go on: one clear line, then the configured policy. It
//! never returns and never exits (an exiting PID 1 is a kernel panic that Debian kernels do not
//! recover from).

use crate::boot::error::Error;
use crate::config::settings::{FailurePolicy, Settings};
use crate::rt::path::Path;
use crate::rt::prelude::*;
use crate::rt::time::Duration;
use crate::rt::Why;
use rustix::system::{reboot, RebootCommand};

pub fn fatal(e: &Error, s: &Settings) -> ! {
    log::error!("FATAL: {e}");
    // Under U-Boot this slot's boot failed: U-Boot's next choice must be the other slot.
    if s.ab.uboot {
        crate::boot::bootloader::slot_failed(s);
    }
    if s.failure == FailurePolicy::Shell && s.allow_shell && Path::new(&s.shell).exists() {
        log::error!("starting the rescue shell {}; the device reboots when it exits", s.shell);
        match crate::sys::process::Program::inheriting(&s.shell, &[])
            .and_then(|p| p.spawn(false).map_err(|e| Why(e).to_string()))
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
    crate::rt::thread::sleep(Duration::from_secs(delay.into()));
    rustix::fs::sync();
    let _ = reboot(cmd);
    loop {
        crate::rt::thread::sleep(Duration::from_secs(3600));
    }
}

/// A panic in PID 1 must not become a kernel panic: log it and reboot.
fn on_panic(info: &dyn core::fmt::Display) -> ! {
    log::error!("FATAL: overlay-init panicked: {info}. This is a bug; please report it with the boot log");
    finish(RebootCommand::Restart, 5)
}

#[cfg(feature = "std")]
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| on_panic(info)));
}

/// Without std the binary's panic handler calls `panicked`; this makes it reboot.
#[cfg(not(feature = "std"))]
pub fn install_panic_hook() {
    REBOOT_ON_PANIC.store(true, core::sync::atomic::Ordering::Relaxed);
}

#[cfg(not(feature = "std"))]
static REBOOT_ON_PANIC: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The panic handler of the build without std: as std's hook above where it is installed,
/// else the message on stderr and exit status 101, as std's default.
#[cfg(not(feature = "std"))]
pub fn panicked(info: &core::panic::PanicInfo<'_>) -> ! {
    if REBOOT_ON_PANIC.load(core::sync::atomic::Ordering::Relaxed) {
        on_panic(info)
    }
    eprintln!("overlay-init panicked: {info}");
    crate::rt::process::exit(101)
}
