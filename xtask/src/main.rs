//! Developer tasks: build the initramfs and disk for a board, boot it in QEMU, run the end-to-end
//! tests and the benchmark. `cargo xtask help` lists them.

mod bench;
mod board;
mod buildroot;
mod e2e;
mod fuzz;
mod image;
mod sh;
mod writelog;

use board::Board;
use std::path::{Path, PathBuf};

const USAGE: &str = "cargo xtask <command>
  initramfs BOARD     build target/boards/BOARD/initramfs.cpio.gz (and its gen_init_cpio list)
  disk BOARD          build target/boards/BOARD/disk.img from board/BOARD/genimage.cfg
  check-boards [BOARD...]  check settings against layout and kernel, build each disk with genimage
                      and read it back (default: every board)
  check-buildroot     Buildroot's style rules over buildroot/, and its post-image script run for real
  demo [BOARD]        build everything and boot twice, showing a counter kept on the overlay
  e2e [BOARD...]      QEMU end-to-end tests (default: every qemu-* board)
  powercut [N] [BOARD...]  N power cuts per kind (factory reset, reconcile, state writes, install)
  fuzz [SECONDS] [TARGET...]  run the libFuzzer targets of fuzz/ for SECONDS each (default 60)
  bench [RUNS] [BOARD...] boot each board RUNS times (default 10) with overlay-init and the busybox
                      baseline, and report medians and ratios
  bench-reset [FILES] [BOARD...] the boot time a factory reset adds with FILES (100000) files in the upper";

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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = repo_root();
    let result = match args.first().map(String::as_str) {
        Some("initramfs") => {
            with_board(&root, args.get(1), |b| image::initramfs(&root, b).map(|p| println!("{}", p.display())))
        }
        Some("disk") => with_board(&root, args.get(1), |b| {
            let out = b.out_dir(&root).join("disk.img");
            image::disk::build(&root, b, &out).map(|()| println!("{}", out.display()))
        }),
        Some("demo") => with_board(&root, args.get(1).or(Some(&"qemu-aarch64".to_string())), |b| e2e::demo(&root, b)),
        Some("e2e") => e2e::main(&root, &args[1..]),
        Some("powercut") => {
            let n = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(10);
            let boards: Vec<String> =
                if args.len() > 2 { args[2..].to_vec() } else { QEMU_BOARDS.map(String::from).to_vec() };
            e2e::powercut::main(&root, &boards, n)
        }
        Some("bench-reset") => {
            let files = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(100_000);
            let boards: Vec<String> =
                if args.len() > 2 { args[2..].to_vec() } else { QEMU_BOARDS.map(String::from).to_vec() };
            bench::reset(&root, files, &boards)
        }
        Some("check-boards") => board::check::main(&root, &args[1..]),
        Some("fuzz") => {
            let secs = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(60);
            fuzz::main(&root, secs, args.get(2..).unwrap_or_default())
        }
        Some("check-buildroot") => buildroot::main(&root),
        Some("bench") => {
            let boards = if args.len() > 2 { args[2..].to_vec() } else { QEMU_BOARDS.map(String::from).to_vec() };
            bench::main(&root, args.get(1).and_then(|n| n.parse().ok()).unwrap_or(10), &boards)
        }
        _ => Err(usage(&root)),
    };
    if let Err(e) = result {
        eprintln!("xtask: {e}");
        std::process::exit(1);
    }
}

fn with_board(root: &Path, name: Option<&String>, f: impl FnOnce(&Board) -> Result<(), String>) -> Result<(), String> {
    let name = name.ok_or_else(|| usage(root))?;
    f(&Board::load(root, name)?)
}
