//! Developer tasks: build the initramfs and disk for a board, boot it in QEMU, run the end-to-end
//! tests and the benchmark. `cargo xtask help` lists them.

mod bench;
mod bench_kexec;
mod board;
mod buildroot;
mod e2e;
mod fuzz;
mod image;
mod sh;
mod writelog;
mod yocto;

use board::Board;
use std::path::{Path, PathBuf};

const USAGE: &str = "cargo xtask <command>
  initramfs BOARD     build target/boards/BOARD/initramfs.cpio.gz (and its gen_init_cpio list)
  disk BOARD          build target/boards/BOARD/disk.img from board/BOARD/genimage.cfg
  slot BOARD          build target/boards/BOARD/slot.sqfs, an update image carrying its own boot
                      (/boot/vmlinuz, /boot/initrd.img, its modules) for boards with oinit.kexec
  check-boards [BOARD...]  check settings against layout and kernel, build each disk with genimage
                      and read it back (default: every board)
  check-buildroot     Buildroot's style rules over buildroot/, and its post-image script run for real
  yocto-crates        write meta-overlay-init's crate list (overlay-init-crates.inc) from Cargo.lock
  demo [BOARD]        build everything and boot twice, showing a counter kept on the overlay
  e2e [BOARD...]      QEMU end-to-end tests (default: every qemu-* board)
  powercut [N] [BOARD...]  N power cuts per kind (factory reset, reconcile, state writes, install)
  fuzz [SECONDS] [TARGET...]  run the libFuzzer targets of fuzz/ for SECONDS each (default 60)
  bench [RUNS] [BOARD[@VCPUS]...] boot each board RUNS times (default 10) with overlay-init and the
                      busybox baseline, and report medians and ratios; imx8@4: on 4 vCPUs
  bench-reset [FILES] [BOARD...] the boot time a factory reset adds with FILES (100000) files in the upper
  bench-kexec [RUNS] [BOARD...] the kernel hand-over's cost (oinit.kexec) beside the same boot without it
  size [BOARD...]     the stripped binaries (full, boot path, a hello world built the same way) and
                      the boot path's own share, without booting (default qemu-x86_64)
Kernel options, for any command (default: the Debian kernel tests/setup.sh downloaded):
  --kernel SERIES|DIR build and boot with target/kernels/ARCH-SERIES (5.10, 6.12) or a tree laid
                      out the same way (vmlinuz, lib/modules/VERSION with modules.dep, dtbs/, busybox)
  --modules DIR [--kernel-version V]  take the modules from a vendor kernel: DIR is lib/modules/V or
                      a root holding it (Buildroot's target/, a Yocto rootfs); initramfs, check-boards";

/// The usage text, with the boards that `board/` holds today.
fn usage(root: &Path) -> String {
    format!("{USAGE}\nBOARD is a folder under board/: {}", board::list(root).join(", "))
}

/// The boards QEMU can boot, the default for e2e, powercut, bench and bench-reset.
pub const QEMU_BOARDS: [&str; 3] = ["qemu-x86_64", "qemu-aarch64", "qemu-armv7"];

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let root = repo_root();
    if let Err(e) = board::kernel::take_options(&mut args) {
        eprintln!("xtask: {e}");
        std::process::exit(2);
    }
    let result = match args.first().map(String::as_str) {
        Some("initramfs") => {
            with_board(&root, args.get(1), |b| image::initramfs(&root, b).map(|p| println!("{}", p.display())))
        }
        Some("disk") => with_board(&root, args.get(1), |b| {
            let out = b.out_dir(&root).join("disk.img");
            image::disk::build(&root, b, &out).map(|()| println!("{}", out.display()))
        }),
        Some("slot") => {
            with_board(&root, args.get(1), |b| image::slot::for_install(&root, b).map(|p| println!("{}", p.display())))
        }
        Some("demo") => with_board(&root, args.get(1).or(Some(&"qemu-aarch64".to_string())), |b| e2e::demo(&root, b)),
        Some("e2e") => e2e::main(&root, &args[1..]),
        Some("powercut") => {
            let (n, boards) = count_and_boards(&args[1..], 10);
            e2e::powercut::main(&root, &boards, n)
        }
        Some("bench-reset") => {
            let (files, boards) = count_and_boards(&args[1..], 100_000);
            bench::reset(&root, files, &boards)
        }
        Some("bench-kexec") => {
            let (runs, boards) = count_and_boards(&args[1..], 5);
            bench_kexec::main(&root, runs, &boards)
        }
        Some("size") => bench::size(&root, &args[1..]),
        Some("check-boards") => board::check::main(&root, &args[1..]),
        Some("fuzz") => {
            let (secs, targets) = count_and_names(&args[1..], 60);
            fuzz::main(&root, secs, targets)
        }
        Some("check-buildroot") => buildroot::main(&root),
        Some("yocto-crates") => yocto::main(&root),
        Some("bench") => {
            let (runs, boards) = count_and_boards(&args[1..], 10);
            bench::main(&root, runs, &boards)
        }
        _ => Err(usage(&root)),
    };
    if let Err(e) = result {
        eprintln!("xtask: {e}");
        std::process::exit(1);
    }
}

/// `[N] [NAME...]`: the count when the first argument is a number, then the names. `bench
/// qemu-x86_64` benches that board alone, with the default count.
fn count_and_names<T: std::str::FromStr>(args: &[String], default: T) -> (T, &[String]) {
    match args.first().map(|a| a.parse::<T>()) {
        Some(Ok(n)) => (n, &args[1..]),
        _ => (default, args),
    }
}

/// As `count_and_names`, with every QEMU board when none is named.
fn count_and_boards<T: std::str::FromStr>(args: &[String], default: T) -> (T, Vec<String>) {
    let (n, names) = count_and_names(args, default);
    (n, if names.is_empty() { QEMU_BOARDS.map(String::from).to_vec() } else { names.to_vec() })
}

fn with_board(root: &Path, name: Option<&String>, f: impl FnOnce(&Board) -> Result<(), String>) -> Result<(), String> {
    let name = name.ok_or_else(|| usage(root))?;
    f(&Board::load(root, name)?)
}
