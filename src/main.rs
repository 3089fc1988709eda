//! One binary: PID 1 in the initramfs, a command-line tool anywhere else.
//!
//! The boot path alone (`--no-default-features`) is built without std: std's runtime (the panic
//! machinery with its backtrace symbolizer and unwinder) was 42 % of it, for a program whose
//! panics log and reboot. The C library starts it (`main`) and gives it its heap.

#![cfg_attr(not(feature = "std"), no_std, no_main)]

#[cfg(not(feature = "std"))]
#[global_allocator]
static HEAP: overlay_init::rt::c::Malloc = overlay_init::rt::c::Malloc;

#[cfg(not(feature = "std"))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    overlay_init::boot::fatal::panicked(info)
}

#[cfg(not(feature = "std"))]
#[no_mangle]
extern "C" fn main(argc: core::ffi::c_int, argv: *const *const core::ffi::c_char) -> core::ffi::c_int {
    overlay_init::rt::c::set_args(argc, argv);
    run()
}

#[cfg(feature = "std")]
fn main() {
    run()
}

fn run() -> ! {
    let argv0 = overlay_init::rt::env::args().next().unwrap_or_default();
    // Run as /run/initramfs/shutdown (by systemd-shutdown, or an rc script): the way back.
    if argv0.rsplit('/').next() == Some("shutdown") {
        // Run by systemd-shutdown as PID 1 at the end of the system's life: a panic there must
        // still end in the requested reboot, not in a kernel panic for an exiting PID 1.
        overlay_init::boot::fatal::install_panic_hook();
        let verb = overlay_init::rt::env::args().nth(1).unwrap_or_default();
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
    overlay_init::eprintln!(
        "overlay-init {}: built without the userspace commands (feature cli)",
        env!("CARGO_PKG_VERSION")
    );
    overlay_init::rt::process::exit(2)
}
