//! The real mount steps on real loop devices, inside a private mount namespace: a squashfs lower
//! and an ext4 data image are assembled by the same decide + execute code the boot uses.
//! Needs root (CI runs as root); elsewhere it says why it skipped, and with OI_REQUIRE_ROOT=1
//! a missing privilege is a failure.

use crate::common::in_private_namespace;
use overlay_init::boot::report::Report;
use overlay_init::boot::{devices, mounts};
use overlay_init::config::paths;
use overlay_init::config::settings::Settings;
use overlay_init::plan::{self, Source, Step};
use overlay_init::sys::mount;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn can_run() -> bool {
    let root = rustix::process::geteuid().is_root();
    let tools = ["mksquashfs", "mkfs.erofs", "mkfs.ext4", "losetup"].iter().all(|t| {
        Command::new("sh").args(["-c", &format!("command -v {t}")]).output().is_ok_and(|o| o.status.success())
    });
    if root && tools {
        return true;
    }
    let why =
        if root { "mksquashfs, mkfs.erofs, mkfs.ext4 or losetup missing (run tests/setup.sh)" } else { "not root" };
    assert!(std::env::var_os("OI_REQUIRE_ROOT").is_none(), "mount tests cannot run: {why}");
    eprintln!("SKIPPED mount_loop: {why}");
    false
}

/// Moves every path the plan uses under `base`, so the test never touches the host's /run.
fn relocate(steps: &[Step], base: &Path) -> Vec<Step> {
    let b = base.display().to_string();
    let fix = |s: &str| {
        s.replace(paths::RUN_DIR, &format!("{b}{}", paths::RUN_DIR)).replace(paths::NEWROOT, &format!("{b}/newroot"))
    };
    steps
        .iter()
        .map(|s| match s {
            Step::Mount(m) => {
                let mut m = m.clone();
                m.target = fix(&m.target);
                m.options = fix(&m.options);
                if let Source::LoopFile(f) = &m.source {
                    m.source = Source::LoopFile(fix(f));
                }
                if m.source == Source::Device(paths::APPENDED_DATA.into()) {
                    m.source = Source::Device(format!("{b}{}", paths::APPENDED_DATA));
                }
                Step::Mount(m)
            }
            Step::PrepareUpper { upper, work } => Step::PrepareUpper { upper: fix(upper), work: fix(work) },
            // The appended data area's link goes under `base` too, not into the host's /dev.
            Step::AttachLoop { device, offset, link } => {
                Step::AttachLoop { device: device.clone(), offset: *offset, link: format!("{b}{link}") }
            }
            Step::Mkfs { device } if device == paths::APPENDED_DATA => Step::Mkfs { device: format!("{b}{device}") },
            other => other.clone(),
        })
        .collect()
}

struct Fixture {
    dir: PathBuf,
    sqfs: PathBuf,
    erofs: PathBuf,
    data_loop: String,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.data_loop]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fixture(tag: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("oi-mount-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("content/etc")).unwrap();
    std::fs::write(dir.join("content/etc/hello"), "from the lower\n").unwrap();
    let sqfs = dir.join("lower.sqfs");
    sh(Command::new("mksquashfs").arg(dir.join("content")).arg(&sqfs).args(["-quiet", "-no-progress", "-all-root"]));
    // The same tree as EROFS (Debian's erofs-utils), LZ4-compressed as a board would ship it.
    let erofs = dir.join("lower.erofs");
    sh(Command::new("mkfs.erofs").args(["-zlz4hc", "--all-root", "--quiet"]).arg(&erofs).arg(dir.join("content")));
    let data = dir.join("data.ext4");
    std::fs::create_dir_all(dir.join("data-content/images")).unwrap();
    std::fs::copy(&sqfs, dir.join("data-content/images/lower.sqfs")).unwrap();
    std::fs::copy(&erofs, dir.join("data-content/images/lower.erofs")).unwrap();
    sh(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "oi-test-data", "-d"])
        .arg(dir.join("data-content"))
        .arg(&data)
        .arg("16M"));
    let data_loop = sh(Command::new("losetup").args(["-f", "--show"]).arg(&data));
    Fixture { dir, sqfs, erofs, data_loop }
}

fn assemble(cmdline: String, base: PathBuf) {
    assemble_in(cmdline, base, "overlay/upper")
}

fn assemble_in(cmdline: String, base: PathBuf, upper_dir: &str) {
    let (s, loaded) = Settings::load("", &cmdline);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let found = devices::find(&s, Path::new("/sys"), Path::new("/dev"), false, &|_| Some(0)).unwrap();
    let plan = plan::decide(&s, &found).unwrap();
    let steps = relocate(&plan.steps, &base);
    std::fs::create_dir_all(base.join("dev")).unwrap();
    let mut report = Report::default();
    if let Err(e) = mounts::run(&steps, &mut report) {
        panic!("{}", e.error);
    }
    let root = base.join("newroot");
    // What a user sees: the lower's file, a write that lands in the upper, the lower untouched.
    assert_eq!(std::fs::read_to_string(root.join("etc/hello")).unwrap(), "from the lower\n");
    std::fs::write(root.join("etc/hello"), "changed\n").unwrap();
    std::fs::write(root.join("new-file"), "new\n").unwrap();
    let upper = base.join("run/overlay-init/data").join(upper_dir);
    assert_eq!(std::fs::read_to_string(upper.join("etc/hello")).unwrap(), "changed\n");
    assert!(upper.join("new-file").exists());
    let lower = base.join("run/overlay-init/lower");
    assert_eq!(std::fs::read_to_string(lower.join("etc/hello")).unwrap(), "from the lower\n");
    assert!(!lower.join("new-file").exists());
    // This thread has its own namespace; /proc/self would show the main thread's.
    let mountinfo = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
    assert!(mountinfo.contains("redirect_dir=nofollow"), "overlay options not applied:\n{mountinfo}");
    for m in ["newroot", "run/overlay-init/lower", "run/overlay-init/data"] {
        mount::unmount_detach(base.join(m).to_str().unwrap()).unwrap();
    }
}

/// Loop devices whose backing file is under `dir` (from sysfs).
fn loops_backed_by(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/sys/block").unwrap().flatten() {
        let backing = std::fs::read_to_string(e.path().join("loop/backing_file")).unwrap_or_default();
        if backing.starts_with(&dir.display().to_string()) && backing.trim_end().ends_with(".sqfs") {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn squashfs_partition_and_ext4_data() {
    if !can_run() {
        return;
    }
    let fx = fixture("part");
    let lower_loop = sh(Command::new("losetup").args(["-r", "-f", "--show"]).arg(&fx.sqfs));
    let cmdline = format!("root={lower_loop} oinit.data={}", fx.data_loop);
    let base = fx.dir.join("mnt");
    in_private_namespace(move || assemble(cmdline, base));
    sh(Command::new("losetup").args(["-d", &lower_loop]));
}

/// EROFS lowers: a partition (its type from the superblock, as the device search probed it) and
/// an image file (its type read when it is mounted).
#[test]
fn erofs_partition_and_image_file() {
    if !can_run() {
        return;
    }
    let fx = fixture("erofs");
    let lower_loop = sh(Command::new("losetup").args(["-r", "-f", "--show"]).arg(&fx.erofs));
    let cmdline = format!("root={lower_loop} oinit.data={}", fx.data_loop);
    let base = fx.dir.join("mnt");
    in_private_namespace(move || assemble(cmdline, base));
    sh(Command::new("losetup").args(["-d", &lower_loop]));
    // Its own upper: the first boot's is on the same data partition.
    let cmdline = format!("root={0} oinit.data={0} oinit.lowerfile=/images/lower.erofs oinit.dir=file", fx.data_loop);
    let base = fx.dir.join("mnt-file");
    in_private_namespace(move || assemble_in(cmdline, base, "file/upper"));
}

#[test]
fn lower_image_file_on_the_data_partition() {
    if !can_run() {
        return;
    }
    let fx = fixture("file");
    let cmdline = format!("root={0} oinit.data={0} oinit.lowerfile=/images/lower.sqfs", fx.data_loop);
    let base = fx.dir.join("mnt");
    in_private_namespace(move || assemble(cmdline, base));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&fx.dir.display().to_string()), "a test mount leaked into the host namespace");
    // Autoclear: the image's loop device detached itself when its mount went away.
    let mut left = loops_backed_by(&fx.dir);
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        left = loops_backed_by(&fx.dir);
    }
    assert!(left.is_empty(), "loop devices still attached: {left:?}");
}

/// OpenWRT's layout: one "partition" (a loop device) holding the squashfs and, from its
/// bytes_used rounded up to 64 KiB, a blank data area the boot formats and mounts.
#[test]
fn appended_data_area_is_formatted_and_holds_the_upper() {
    if !can_run() {
        return;
    }
    let fx = fixture("appended");
    let mut part = std::fs::read(&fx.sqfs).unwrap();
    let offset = (part.len() as u64).div_ceil(65536) * 65536;
    part.resize(offset as usize + (8 << 20), 0);
    let part_file = fx.dir.join("rootfs.part");
    std::fs::write(&part_file, &part).unwrap();
    let root_loop = sh(Command::new("losetup").args(["-f", "--show"]).arg(&part_file));
    let cmdline = format!("root={root_loop} oinit.data=appended");
    let base = fx.dir.join("mnt");
    in_private_namespace(move || assemble_in(cmdline, base, "overlay/upper"));
    // The data area's loop device stays attached by design (the running system uses it); it is
    // backed by the root "partition" itself.
    let data_area = sh(Command::new("losetup").args(["-j", &root_loop, "-O", "NAME", "-n"]));
    assert!(!data_area.is_empty(), "no loop device over {root_loop}");
    sh(Command::new("losetup").args(["-d", &data_area]));
    sh(Command::new("losetup").args(["-d", &root_loop]));
    // The squashfs is intact and an ext4 now starts at the offset.
    let after = std::fs::read(&part_file).unwrap();
    assert_eq!(after[..std::fs::metadata(&fx.sqfs).unwrap().len() as usize], std::fs::read(&fx.sqfs).unwrap()[..]);
    assert_eq!(after[offset as usize + 1024 + 0x38..offset as usize + 1024 + 0x3a], [0x53, 0xef]);
}
