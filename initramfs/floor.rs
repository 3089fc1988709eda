//! The floor of `cargo xtask bench`: the busybox baseline's job (initramfs/baseline/init) done
//! with nothing but the syscalls the kernel needs for it. No shell, no process per module, no
//! checks, fallbacks, state or report: `finit_module` of each module in the baseline's order, a
//! poll for the two devices, the three mounts and the overlay, the switch (the initramfs freed,
//! as `switch_root` does) and the exec. The time it takes from "Run /init" to the real init is
//! the kernel's own work for the job plus the least code an init can run. On one CPU an init
//! goes below it only by leaving part of the job for after the exec (freeing the initramfs), so
//! a ratio to the baseline below the floor's is out of reach for any init doing the whole job.
//!
//! A measuring tool, not a product: it stops at the first error with a panic (the kernel then
//! says "Attempted to kill init" and the bench reports the boot as failed).

#![cfg_attr(not(feature = "std"), no_std, no_main)]

extern crate alloc;

use alloc::format;
use overlay_init::rt::fs;
use overlay_init::sys::mount;
use rustix::fs::{Mode, OFlags};

#[cfg(not(feature = "std"))]
#[global_allocator]
static HEAP: overlay_init::rt::c::Malloc = overlay_init::rt::c::Malloc;

#[cfg(not(feature = "std"))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    overlay_init::eprintln!("floor: {info}");
    overlay_init::rt::process::exit(1)
}

#[cfg(not(feature = "std"))]
#[no_mangle]
extern "C" fn main(argc: core::ffi::c_int, argv: *const *const core::ffi::c_char) -> core::ffi::c_int {
    overlay_init::rt::c::set_args(argc, argv);
    floor()
}

#[cfg(feature = "std")]
fn main() {
    floor()
}

/// `r`'s value, or a panic naming `what` and the error.
fn must<T, E: core::fmt::Display>(what: &str, r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

fn mount_fs(source: &str, target: &str, fstype: &str, options: &str) {
    must(target, mount::mount_fs(source, target, fstype, options));
}

fn is_block(path: &str) -> bool {
    rustix::fs::stat(path).is_ok_and(|s| rustix::fs::FileType::from_raw_mode(s.st_mode).is_block_device())
}

fn floor() -> ! {
    mount_fs("proc", "/proc", "proc", "");
    mount_fs("sysfs", "/sys", "sysfs", "");
    mount_fs("devtmpfs", "/dev", "devtmpfs", "");
    let cmdline = must("/proc/cmdline", fs::read_to_string("/proc/cmdline"));
    let arg = |key: &str| cmdline.split_whitespace().find_map(|w| w.strip_prefix(key)).unwrap_or_default();
    let (root, data) = (arg("root="), arg("oinit.data="));
    // The baseline's insmod goes on after a failure too.
    for ko in must("/etc/modules.order", fs::read_to_string("/etc/modules.order")).lines() {
        let file = must(ko, fs::File::open(format!("/lib/modules/{ko}")));
        let _ = rustix::system::finit_module(&file, c"", 0);
    }
    // devtmpfs makes the nodes when the kernel has probed the disk; 1 ms apart, not the 20 of
    // the baseline's `usleep`.
    for _ in 0..10_000 {
        if is_block(root) && is_block(data) {
            break;
        }
        overlay_init::rt::thread::sleep(core::time::Duration::from_millis(1));
    }
    mount_fs(root, "/lower", "squashfs", "ro");
    mount_fs(data, "/data", "ext4", "nodev,nosuid");
    for dir in ["/data/overlay", "/data/overlay/upper", "/data/overlay/work"] {
        if let Err(e) = rustix::fs::mkdir(dir, Mode::from_raw_mode(0o755)) {
            assert!(e == rustix::io::Errno::EXIST, "mkdir {dir}: {e}");
        }
    }
    let layers = "lowerdir=/lower,upperdir=/data/overlay/upper,workdir=/data/overlay/work";
    mount_fs("overlay", "/newroot", "overlay", layers);
    for dir in ["/dev", "/sys", "/proc"] {
        must(dir, mount::move_mount(dir, &format!("/newroot{dir}")));
    }
    let initramfs = must("/", rustix::fs::open("/", OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()));
    must("chdir /newroot", rustix::process::chdir("/newroot"));
    must("delete the initramfs", overlay_init::fs::careful::remove_contents(initramfs));
    must("mount --move . /", mount::move_mount(".", "/"));
    must("chroot", rustix::process::chroot("."));
    must("chdir /", rustix::process::chdir("/"));
    let init = must("/sbin/init", overlay_init::sys::process::Program::inheriting("/sbin/init", &[]));
    panic!("execve /sbin/init: {}", init.exec())
}
