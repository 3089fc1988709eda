//! One binary: PID 1 in the initramfs, a command-line tool anywhere else.

fn main() {
    let argv0 = std::env::args().next().unwrap_or_default();
    // Run as /run/initramfs/shutdown (by systemd-shutdown, or an rc script): the way back.
    if argv0.rsplit('/').next() == Some("shutdown") {
        // Run by systemd-shutdown as PID 1 at the end of the system's life: a panic there must
        // still end in the requested reboot, not in a kernel panic for an exiting PID 1.
        overlay_init::boot::fatal::install_panic_hook();
        let verb = std::env::args().nth(1).unwrap_or_default();
        overlay_init::boot::shutdown::run(&verb)
    }
    if rustix::process::getpid().is_init() {
        overlay_init::boot::fatal::install_panic_hook();
        overlay_init::boot::run()
    }
    commands()
}

#[cfg(feature = "cli")]
fn commands() -> ! {
    let mut args: Vec<String> = std::env::args().collect();
    // Multi-call: RAUC runs its backend with the request as the first argument.
    let name = args.first().map(|a| a.rsplit('/').next().unwrap_or(a).to_string()).unwrap_or_default();
    if name == "overlay-init-rauc" {
        args[0] = "rauc".into();
    } else {
        args.remove(0);
    }
    std::process::exit(overlay_init::cli::main(&args))
}

/// The boot path alone: every command lives in the full build.
#[cfg(not(feature = "cli"))]
fn commands() -> ! {
    eprintln!("overlay-init {}: built without the userspace commands (feature cli)", env!("CARGO_PKG_VERSION"));
    std::process::exit(2)
}
