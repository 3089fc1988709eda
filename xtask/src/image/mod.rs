//! Builds what a board boots: the static init, the initramfs, the test root image and the disk.

pub mod disk;
pub mod flash;
pub mod slot;
pub mod uboot;

use crate::board::Board;
use crate::sh;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Builds the static release binary for the board's target; returns its path.
pub fn build_init(root: &Path, b: &Board) -> Result<PathBuf, String> {
    sh::run(
        sh::cmd("cargo")
            .args(["build", "--release", "--quiet", "-p", "overlay-init", "--target", &b.rust_target])
            .current_dir(root),
    )?;
    Ok(root.join("target").join(&b.rust_target).join("release/overlay-init"))
}

/// The boot path alone (no userspace commands), in a target directory of its own so the full
/// build the tests pack is never replaced; for the size comparison.
pub fn build_init_only(root: &Path, b: &Board) -> Result<PathBuf, String> {
    let dir = root.join("target/init-only");
    sh::run(
        sh::cmd("cargo")
            .args([
                "build",
                "--release",
                "--quiet",
                "-p",
                "overlay-init",
                "--no-default-features",
                "--target",
                &b.rust_target,
            ])
            .arg("--target-dir")
            .arg(&dir)
            .current_dir(root),
    )?;
    Ok(dir.join(&b.rust_target).join("release/overlay-init"))
}

/// The floor of the bench (`initramfs/floor.rs`, an example of the crate), built as the boot path
/// is, beside it.
pub fn build_floor(root: &Path, b: &Board) -> Result<PathBuf, String> {
    let dir = root.join("target/init-only");
    sh::run(
        sh::cmd("cargo")
            .args(["build", "--release", "--quiet", "-p", "overlay-init", "--example", "floor"])
            .args(["--no-default-features", "--target", &b.rust_target])
            .arg("--target-dir")
            .arg(&dir)
            .current_dir(root),
    )?;
    Ok(dir.join(&b.rust_target).join("release/examples/floor"))
}

/// "hello world" built as the init is (the workspace's `[profile.release]`, our build.rs, the target's
/// rustflags from .cargo/config.toml, stripped): what any Rust binary of that build weighs. `Std`:
/// the std program every Rust user starts from, std's runtime included (issue 24's yardstick);
/// `OwnRuntime`: the same program on the boot path's runtime without std (`rt`: `println!` over
/// write(2), the C library's malloc, a panic handler that prints), so that the boot path's size
/// minus it is the share of our own code and crates.
pub fn build_hello(root: &Path, b: &Board, kind: Hello) -> Result<PathBuf, String> {
    let name = match kind {
        Hello::Std => "hello-world",
        Hello::OwnRuntime => "hello-world-nostd",
    };
    let dir = root.join("target").join(name);
    std::fs::create_dir_all(dir.join("src")).map_err(|e| e.to_string())?;
    let ours = std::fs::read_to_string(root.join("Cargo.toml")).map_err(|e| e.to_string())?;
    let profile = ours.split("[profile.release]").nth(1).ok_or("Cargo.toml has no [profile.release]")?;
    let profile = profile.split("\n[").next().unwrap_or_default();
    let (deps, main) = match kind {
        Hello::Std => (String::new(), "fn main() {\n    println!(\"hello world\");\n}\n"),
        Hello::OwnRuntime => (
            format!(
                "[dependencies]\noverlay-init = {{ path = {:?}, default-features = false }}\n\n",
                root.display().to_string()
            ),
            HELLO_NO_STD,
        ),
    };
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n{deps}[workspace]\n\n\
         [profile.dev]\npanic = \"abort\"\n\n[profile.release]{profile}\n"
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("src/main.rs"), main).map_err(|e| e.to_string())?;
    // Linked as ours is: the same build script and linker script (no unwind tables).
    std::fs::create_dir_all(dir.join(".cargo")).map_err(|e| e.to_string())?;
    for f in ["build.rs", ".cargo/no-unwind-tables.ld"] {
        std::fs::copy(root.join(f), dir.join(f)).map_err(|e| format!("{f}: {e}"))?;
    }
    sh::run(
        sh::cmd("cargo")
            .args(["build", "--release", "--quiet", "--target", &b.rust_target, "--manifest-path"])
            .arg(dir.join("Cargo.toml"))
            .current_dir(root),
    )?;
    Ok(dir.join("target").join(&b.rust_target).join("release").join(name))
}

/// Which hello world `build_hello` builds.
#[derive(Clone, Copy)]
pub enum Hello {
    Std,
    OwnRuntime,
}

/// The hello world on the boot path's runtime: what `src/main.rs` sets up without std, and one
/// line printed.
const HELLO_NO_STD: &str = r#"#![no_std]
#![no_main]

#[global_allocator]
static HEAP: overlay_init::rt::c::Malloc = overlay_init::rt::c::Malloc;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    overlay_init::eprintln!("{info}");
    overlay_init::rt::process::exit(101)
}

#[no_mangle]
extern "C" fn main(argc: core::ffi::c_int, argv: *const *const core::ffi::c_char) -> core::ffi::c_int {
    overlay_init::rt::c::set_args(argc, argv);
    overlay_init::println!("hello world");
    0
}
"#;

/// Writes the gen_init_cpio list for the board (and the trimmed depmod files it names), with
/// `extra_modules` packed besides those the board's config names.
pub fn initramfs_list(root: &Path, b: &Board, init: &Path, extra_modules: &[&str]) -> Result<String, String> {
    let out = b.out_dir(root);
    let gen = out.join("modules");
    std::fs::create_dir_all(&gen).map_err(|e| e.to_string())?;
    let mdir = b.module_dir();
    let read = |f: &str| std::fs::read_to_string(mdir.join(f)).unwrap_or_default();
    let ix = &b.modules_index;
    let mut wanted = b.initramfs_modules();
    wanted.extend(extra_modules.iter().map(|m| m.to_string()));
    let packed = ix.pack(&wanted)?;
    let conf = b.dir.join("overlay-init.conf");
    let base =
        std::fs::read_to_string(root.join("initramfs/base.list")).map_err(|e| format!("initramfs/base.list: {e}"))?;
    let mut l = format!("# overlay-init initramfs for board {} (kernel {})\n", b.name, b.kernel_version);
    // The fixed part with its variables resolved, so the list names absolute paths only.
    for line in base.lines().filter(|x| !x.starts_with('#')) {
        let _ = writeln!(
            l,
            "{}",
            initramfs::expand_env(line, |v| match v {
                "OVERLAY_INIT_BIN" => Some(init.display().to_string()),
                "OVERLAY_INIT_CONF" => Some(conf.display().to_string()),
                _ => None,
            })
        );
    }
    // Where the board's U-Boot keeps its environment (`oinit.ubootenv`'s default path).
    let env = b.dir.join("fw_env.config");
    if env.exists() {
        let _ = writeln!(l, "file /etc/fw_env.config {} 0644 0 0", env.display());
    }
    l.push_str(&packed.cpio_lines(&b.kernel_version, &mdir.display().to_string(), &gen.display().to_string()));
    let builtin = read("modules.builtin");
    let texts = [&packed.dep, &packed.soft, &packed.alias, &builtin];
    for (name, text) in overlay_init::kmod::INDEX_FILES.iter().zip(texts) {
        std::fs::write(gen.join(name), text).map_err(|e| e.to_string())?;
    }
    Ok(l)
}

/// Builds `initramfs.cpio.gz` for the board; returns its path.
pub fn initramfs(root: &Path, b: &Board) -> Result<PathBuf, String> {
    let tools: Vec<(&str, &str)> = b.tools.iter().map(|(d, h)| (d.as_str(), h.as_str())).collect();
    initramfs_with_tools(root, b, "initramfs", &tools)
}

/// The board's initramfs plus host tools (`(path in the initramfs, host binary)`) and the shared
/// libraries they need, as found by ldd; static tools need none.
pub fn initramfs_with_tools(root: &Path, b: &Board, name: &str, tools: &[(&str, &str)]) -> Result<PathBuf, String> {
    initramfs_variant(root, b, name, &[], tools)
}

/// The board's initramfs with more modules and more files (host programs with their libraries,
/// or data files such as a key), as `name`.cpio.gz.
pub fn initramfs_variant(
    root: &Path,
    b: &Board,
    name: &str,
    extra_modules: &[&str],
    tools: &[(&str, &str)],
) -> Result<PathBuf, String> {
    initramfs_of(root, b, name, &build_init(root, b)?, extra_modules, tools)
}

/// `initramfs_variant` with `init` as its `/init` in place of the full build.
pub fn initramfs_of(
    root: &Path,
    b: &Board,
    name: &str,
    init: &Path,
    extra_modules: &[&str],
    tools: &[(&str, &str)],
) -> Result<PathBuf, String> {
    let mut list = initramfs_list(root, b, init, extra_modules)?;
    let mut dirs = HashSet::new();
    let files = with_libraries(tools)?;
    for (dest, _) in &files {
        for d in overlay_init::kmod::parent_dirs(dest.trim_start_matches('/')) {
            if dirs.insert(d.clone()) && !list.contains(&format!("dir /{d} ")) {
                let _ = writeln!(list, "dir /{d} 0755 0 0");
            }
        }
    }
    for (dest, host) in &files {
        let _ = writeln!(list, "file {dest} {host} 0755 0 0");
    }
    let out = b.out_dir(root);
    let list_path = out.join(format!("{name}.list"));
    std::fs::write(&list_path, &list).map_err(|e| e.to_string())?;
    let cpio = out.join(format!("{name}.cpio.gz"));
    initramfs::build(&list_path, &cpio)?;
    Ok(cpio)
}

/// `(path inside, host path)` of each file plus the shared libraries ldd says it needs (at the
/// same paths); static programs and data files need none.
fn with_libraries(files: &[(&str, &str)]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (dest, host) in files {
        out.push((dest.to_string(), host.to_string()));
        let ldd = sh::cmd("ldd").arg(host).output().map_err(|e| format!("ldd: {e}"))?;
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            let lib = line.split("=>").last().unwrap_or("").split_whitespace().next().unwrap_or("");
            if lib.starts_with('/') {
                out.push((lib.to_string(), lib.to_string()));
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The test system inside the lower: static busybox, the scripted init in tests/guest/, and
/// overlay-init itself for the userspace commands. `variant` names the image (a, b) so that two
/// builds differ in content, as two releases would.
pub fn rootfs(root: &Path, b: &Board, variant: &str) -> Result<PathBuf, String> {
    rootfs_with(root, b, variant, &[])
}

/// The test system with more files (`(path inside, host path)`, programs with their libraries).
pub fn rootfs_with(root: &Path, b: &Board, variant: &str, extra: &[(&str, &str)]) -> Result<PathBuf, String> {
    let name = format!("rootfs-{variant}");
    let dir = rootfs_tree(root, b, variant, &name, extra)?;
    squash(&dir, variant, &b.out_dir(root).join(format!("{name}.sqfs")))
}

/// The test system's tree as `target/boards/BOARD/NAME/`, for a test to add to before squashing.
pub fn rootfs_tree(
    root: &Path,
    b: &Board,
    variant: &str,
    name: &str,
    extra: &[(&str, &str)],
) -> Result<PathBuf, String> {
    let out = b.out_dir(root);
    let dir = out.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["bin", "sbin", "usr/bin", "etc", "proc", "sys", "dev", "run", "tmp", "var/lib", "mnt"] {
        std::fs::create_dir_all(dir.join(d)).map_err(|e| e.to_string())?;
    }
    std::fs::copy(b.kernel_dir.join("busybox"), dir.join("bin/busybox")).map_err(|e| format!("busybox: {e}"))?;
    for app in [
        "sh",
        "cat",
        "echo",
        "mount",
        "umount",
        "poweroff",
        "reboot",
        "sync",
        "dmesg",
        "awk",
        "grep",
        "dd",
        "sleep",
        "ls",
        "df",
        "rm",
        "mkdir",
        "sha256sum",
        "head",
        "tr",
        "wc",
        "touch",
        "stat",
        "cut",
    ] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(app)).map_err(|e| e.to_string())?;
    }
    std::fs::copy(root.join("tests/guest/init"), dir.join("sbin/init"))
        .map_err(|e| format!("tests/guest/init: {e}"))?;
    std::fs::copy(build_init(root, b)?, dir.join("usr/bin/overlay-init")).map_err(|e| format!("overlay-init: {e}"))?;
    // The board integration scripts, so the tests drive mark-good and reset the way products do.
    std::fs::create_dir_all(dir.join("etc/init.d")).map_err(|e| e.to_string())?;
    let integration = root.join("board/integration");
    for (src, dst) in [
        ("sysvinit/S99overlay-init-mark-good", "etc/init.d/S99overlay-init-mark-good"),
        ("sysvinit/overlay-init-shutdown", "etc/init.d/overlay-init-shutdown"),
        ("openwrt/firstboot", "sbin/firstboot"),
    ] {
        std::fs::copy(integration.join(src), dir.join(dst)).map_err(|e| format!("{src}: {e}"))?;
    }
    std::fs::write(dir.join("etc/image-version"), format!("{variant}\n")).map_err(|e| e.to_string())?;
    // What an update changes, for the reconciliation tests: a file both images ship the same,
    // files that differ, and a directory where image b adds a file and drops one.
    let rc = dir.join("etc/oi-reconcile");
    let only = if variant == "b" { "added" } else { "old-only" };
    for (name, text) in [
        ("same.conf", "same"),
        ("changed.conf", variant),
        ("edited.conf", variant),
        ("app/both", "both"),
        (&format!("app/{only}"), only),
    ] {
        std::fs::create_dir_all(rc.join("app")).map_err(|e| e.to_string())?;
        std::fs::write(rc.join(name), format!("{text}\n")).map_err(|e| e.to_string())?;
    }
    for (dest, host) in with_libraries(extra)? {
        let to = dir.join(dest.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap_or(&dir)).map_err(|e| e.to_string())?;
        std::fs::copy(&host, &to).map_err(|e| format!("{host}: {e}"))?;
    }
    Ok(dir)
}

/// Squashes a test tree into `img`.
pub fn squash(dir: &Path, variant: &str, img: &Path) -> Result<PathBuf, String> {
    // A fixed build time per image, as a reproducible build from a release's commit would have:
    // the same image every time, and two releases that differ even when they are the same size
    // (the init tells images apart by their superblock).
    let mkfs_time = match variant {
        "a" => "1700000000",
        _ => "1700086400",
    };
    sh::run(sh::cmd("mksquashfs").arg(dir).arg(img).args([
        "-noappend",
        "-all-root",
        "-quiet",
        "-no-progress",
        "-mkfs-time",
        mkfs_time,
    ]))?;
    Ok(img.to_path_buf())
}

/// A partition of the board's disk as sfdisk placed it.
#[derive(Debug, Clone)]
pub struct Part {
    /// The number the kernel gives it (`vda2`, `mmcblk2p4`).
    pub number: u32,
    pub name: String,
    pub start: u64,
    pub size: u64,
    /// GPT partition GUID (lower case); None on MBR disks.
    pub uuid: Option<String>,
}

/// Partitions of a disk image, read back with `sfdisk -d` (offsets in bytes).
pub fn partitions(disk: &Path) -> Result<Vec<Part>, String> {
    let dump = sh::output(sh::cmd("sfdisk").arg("-d").arg(disk))?;
    let mut parts = Vec::new();
    // An MBR's extended partition (type 5, f or 85) only holds the logical ones.
    let extended = |l: &&str| ["type=5", "type=f", "type=85"].iter().any(|t| l.split(", ").any(|f| f.trim() == *t));
    for line in dump.lines().filter(|l| l.contains("start=")).filter(|l| !extended(l)) {
        let field = |k: &str| {
            line.split(',')
                .find_map(|f| f.split_once(&format!("{k}=")).map(|(_, v)| v.trim().trim_matches('"').to_string()))
        };
        let num = |k: &str| field(k).and_then(|v| v.parse::<u64>().ok()).ok_or(format!("sfdisk -d: no {k} in {line}"));
        // `sfdisk -d DISK` names each partition DISK followed by its number.
        let dev = line.split(" : ").next().unwrap_or_default().trim();
        let number = dev.strip_prefix(&*disk.to_string_lossy()).and_then(|n| n.parse().ok());
        parts.push(Part {
            number: number.ok_or(format!("sfdisk -d: no partition number in {line}"))?,
            name: field("name").unwrap_or_default(),
            start: num("start")? * 512,
            size: num("size")? * 512,
            uuid: field("uuid").map(|u| u.to_ascii_lowercase()),
        });
    }
    Ok(parts)
}

pub fn part(parts: &[Part], name: &str) -> Result<Part, String> {
    parts.iter().find(|p| p.name == name).cloned().ok_or(format!("no partition named {name}"))
}

pub fn write_at(file: &Path, offset: u64, bytes: &[u8]) -> Result<(), String> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(file).map_err(|e| e.to_string())?;
    f.seek(SeekFrom::Start(offset)).and_then(|_| f.write_all(bytes)).map_err(|e| e.to_string())
}

pub fn read_at(file: &Path, offset: u64, len: u64) -> Result<Vec<u8>, String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; len as usize];
    f.seek(SeekFrom::Start(offset)).and_then(|_| f.read_exact(&mut buf)).map_err(|e| e.to_string())?;
    Ok(buf)
}
