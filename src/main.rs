//! One binary: PID 1 in the initramfs, a command-line tool anywhere else.

fn main() {
    if rustix::process::getpid().is_init() {
        overlay_init::fatal::install_panic_hook();
        overlay_init::boot::run()
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(overlay_init::cli::main(&args))
}
