//! The harness every end-to-end scenario file uses: the per-board context (built artefacts, a
//! pristine disk), launching QEMU, and the assertions on what a boot printed or left on disk.
//! Scenario files import this, never each other.

use crate::board::Board;
use crate::e2e::qemu::{self, Boot};
use crate::image;
use crate::sh;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything one board's scenarios share: the built artefacts and a pristine disk to copy.
#[derive(Clone)]
pub struct Ctx<'a> {
    pub root: &'a Path,
    pub board: &'a Board,
    pub initrd: PathBuf,
    pub sqfs: PathBuf,
    pub pristine: PathBuf,
    pub work: PathBuf,
    /// `oinit.showinfo` on every boot's command line: the scenarios read the init's info lines
    /// on the serial console, where `quiet` (every board has it) would leave them out. The bench
    /// and the scenario about that default boot without it.
    pub show_info: bool,
    /// vCPUs for every boot that does not ask for its own count (`cargo xtask bench BOARD@N`);
    /// `None`: `OI_SMP`, else QEMU's one.
    pub vcpus: Option<u32>,
}

/// The setting that puts the init's info lines on the console under `quiet`.
pub const SHOW_INFO: &str = "oinit.showinfo";

impl<'a> Ctx<'a> {
    pub fn build(root: &'a Path, board: &'a Board) -> Result<Ctx<'a>, String> {
        Ctx::build_in(root, board, "e2e")
    }

    /// `build`, with the boots' logs and disks in the board's folder `work` (emptied first).
    pub fn build_in(root: &'a Path, board: &'a Board, work: &str) -> Result<Ctx<'a>, String> {
        if !board.bootable() {
            return Err(format!(
                "board {} is real hardware: QEMU cannot boot it (cargo xtask check-boards)",
                board.name
            ));
        }
        let out = board.out_dir(root);
        let pristine = out.join("disk.img");
        crate::image::disk::build(root, board, &pristine)?;
        if board.sd_card() {
            // QEMU's SD card model takes only power-of-two sizes; the padding follows the last
            // partition, where a real card's spare space is.
            let len = std::fs::metadata(&pristine).map_err(|e| e.to_string())?.len();
            let file = std::fs::OpenOptions::new().write(true).open(&pristine).map_err(|e| e.to_string())?;
            file.set_len(len.next_power_of_two()).map_err(|e| e.to_string())?;
            // A GPT's backup header belongs at the card's end, where writing the image to a
            // larger card leaves it for `sfdisk --relocate` (or the first repartition) to move.
            if image::read_at(&pristine, 512, 8)? == b"EFI PART" {
                sh::quiet(sh::cmd("sfdisk").args(["--quiet", "--relocate", "gpt-bak-std"]).arg(&pristine))?;
            }
        }
        // Built here, not left to an earlier command: a fresh clone runs the demo first.
        let initrd = image::initramfs(root, board)?;
        let sqfs = out.join("rootfs-a.sqfs");
        let work = out.join(work);
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
        Ok(Ctx { root, board, initrd, sqfs, pristine, work, show_info: true, vcpus: None })
    }

    pub fn fresh_disk(&self, name: &str) -> Result<PathBuf, String> {
        let d = self.work.join(format!("{name}.img"));
        std::fs::copy(&self.pristine, &d).map_err(|e| e.to_string())?;
        Ok(d)
    }

    pub fn boot(&self, disk: &Path, append: &str, log: &str) -> Result<Boot, String> {
        self.boot_with(&self.initrd, disk, append, log)
    }

    pub fn boot_with(&self, initrd: &Path, disk: &Path, append: &str, log: &str) -> Result<Boot, String> {
        finished(self.launch(&Launch { initrd, ..Launch::new(disk, append, log) }))
    }

    /// Boots with `cores` vCPUs, as many as the board's SoC has.
    pub fn boot_on_cores(&self, disk: &Path, append: &str, log: &str, cores: u32) -> Result<Boot, String> {
        finished(self.launch(&Launch { smp: Some(cores), ..Launch::new(disk, append, log) }))
    }

    /// Boots and lets the guest reset (a watchdog) until it powers off.
    pub fn boot_allowing_resets(&self, disk: &Path, append: &str, log: &str) -> Result<Boot, String> {
        finished(self.launch(&Launch { allow_reboot: true, ..Launch::new(disk, append, log) }))
    }

    /// `boot_allowing_resets` with another initramfs.
    pub fn boot_with_resets(&self, initrd: &Path, disk: &Path, append: &str, log: &str) -> Result<Boot, String> {
        finished(self.launch(&Launch { initrd, allow_reboot: true, ..Launch::new(disk, append, log) }))
    }

    /// Boots with every write and flush recorded in `write_log` (see `writelog`).
    pub fn boot_logged(&self, disk: &Path, append: &str, log: &str, write_log: &Path) -> Result<Boot, String> {
        std::fs::write(write_log, b"").map_err(|e| e.to_string())?;
        finished(self.launch(&Launch { drive: qemu::Drive::WriteLog(write_log), ..Launch::new(disk, append, log) }))
    }

    /// Boots and cuts the power `delay` after `marker` shows on the console.
    pub fn boot_cut(
        &self,
        disk: &Path,
        append: &str,
        log: &str,
        marker: &str,
        delay: Duration,
    ) -> Result<Boot, String> {
        self.launch(&Launch { cut: Some((marker, delay)), ..Launch::new(disk, append, log) }).map(|(b, _)| b)
    }

    /// Boots on a disk that fails as the blkdebug `rules` say; only a kernel panic is an error.
    pub fn boot_failing(&self, disk: &Path, append: &str, log: &str, rules: &Path) -> Result<Boot, String> {
        let (b, log) = self.launch(&Launch { drive: qemu::Drive::Debug(rules), ..Launch::new(disk, append, log) })?;
        if b.panicked {
            return Err(format!("Kernel panic on a failing disk (see {})", log.display()));
        }
        Ok(b)
    }

    fn launch(&self, l: &Launch<'_>) -> Result<(Boot, PathBuf), String> {
        let log = self.work.join(format!("{}.log", l.log));
        let initrd = if l.initrd.as_os_str().is_empty() { &self.initrd } else { l.initrd };
        let b = qemu::boot(&qemu::Run {
            board: self.board,
            initrd,
            disk: Some(l.disk),
            append: if self.show_info { format!("{SHOW_INFO} {}", l.append) } else { l.append.to_string() },
            timeout: Duration::from_secs(240),
            log: &log,
            allow_reboot: l.allow_reboot,
            cut: l.cut,
            drive: l.drive,
            smp: l.smp.or(self.vcpus),
        })?;
        Ok((b, log))
    }
}

/// One QEMU run of a scenario; `initrd` empty means the board's.
struct Launch<'a> {
    initrd: &'a Path,
    disk: &'a Path,
    append: &'a str,
    log: &'a str,
    allow_reboot: bool,
    cut: Option<(&'a str, Duration)>,
    drive: qemu::Drive<'a>,
    smp: Option<u32>,
}

impl<'a> Launch<'a> {
    fn new(disk: &'a Path, append: &'a str, log: &'a str) -> Launch<'a> {
        Launch {
            initrd: Path::new(""),
            disk,
            append,
            log,
            allow_reboot: false,
            cut: None,
            drive: qemu::Drive::Plain,
            smp: None,
        }
    }
}

/// A run that must end by itself (poweroff or reboot), without a kernel panic.
fn finished(run: Result<(Boot, PathBuf), String>) -> Result<Boot, String> {
    let (b, log) = run?;
    if b.panicked {
        return Err(format!("Kernel panic on the console (see {})", log.display()));
    }
    if b.timed_out {
        return Err(format!("no poweroff within the timeout (see {})", log.display()));
    }
    Ok(b)
}

pub fn want(b: &Boot, key: &str, value: &str) -> Result<(), String> {
    match b.marker(key) {
        Some(v) if v == value => Ok(()),
        other => Err(format!("expected {key}={value}, console said {other:?}")),
    }
}

pub fn contains(b: &Boot, text: &str) -> Result<(), String> {
    if b.console.contains(text) {
        Ok(())
    } else {
        Err(format!("console lacks {text:?}"))
    }
}

/// A boot that reached the real init on an overlay root as PID 1 and finished its script.
pub fn booted(b: &Boot) -> Result<(), String> {
    want(b, "pid", "1")?;
    want(b, "rootfs", "overlay")?;
    initramfs_freed(b)?;
    contains(b, "OI: done")
}

/// The initramfs was deleted at the switch: the RAM held by tmpfs/ramfs that no visible mount
/// accounts for is far below the smallest board's initramfs (over 3 MiB unpacked). Up to 2 MiB
/// may remain while the background deletion of old uppers runs: that child process still maps
/// the init's own executable (at most 1 MiB, armv7's static glibc binary) until it ends.
fn initramfs_freed(b: &Boot) -> Result<(), String> {
    let kb: i64 = b.marker("hidden-ram-kb").and_then(|v| v.parse().ok()).ok_or("no hidden-ram-kb on the console")?;
    if kb >= 2048 {
        return Err(format!("{kb} kB of tmpfs/ramfs memory outside any visible mount: the initramfs was not freed"));
    }
    Ok(())
}

/// A boot that failed cleanly: the FATAL line, no kernel panic, the machine rebooted by itself.
pub fn failed_with(b: &Boot, text: &str) -> Result<(), String> {
    contains(b, "FATAL")?;
    contains(b, text)?;
    if b.console.contains("OI: pid=") {
        return Err("the real init ran although the boot should have failed".into());
    }
    Ok(())
}

/// Reads a file from the upper on the data partition of `disk`, with debugfs (no mount needed).
pub fn upper_file(disk: &Path, path: &str) -> Result<String, String> {
    upper_file_at(disk, &format!("/overlay/upper{path}"))
}

/// Reads a file at `path` on the data partition of `disk`.
pub fn upper_file_at(disk: &Path, path: &str) -> Result<String, String> {
    file_in(disk, "userdata", 0, path)
}

/// Reads a file at `path` on the ext4 that starts `offset` bytes into partition `part`.
pub fn file_in(disk: &Path, part: &str, offset: u64, path: &str) -> Result<String, String> {
    with_fs_copy(disk, part, offset, |img| sh::output(sh::cmd("debugfs").arg("-R").arg(format!("cat {path}")).arg(img)))
        .map(|s| s.trim().to_string())
}

/// Runs `f` on a copy of the filesystem that starts `offset` bytes into partition `part`
/// (the host tools read image files, not partitions of a disk image).
fn with_fs_copy<T>(
    disk: &Path,
    part: &str,
    offset: u64,
    f: impl FnOnce(&Path) -> Result<T, String>,
) -> Result<T, String> {
    let p = image::part(&image::partitions(disk)?, part)?;
    let img = disk.with_extension(format!("{part}-copy"));
    std::fs::write(&img, image::read_at(disk, p.start + offset, p.size - offset)?).map_err(|e| e.to_string())?;
    let out = f(&img);
    let _ = std::fs::remove_file(&img);
    out
}

/// `dumpe2fs -h` of the ext4 that starts `offset` bytes into partition `part`.
pub fn ext4_header(disk: &Path, part: &str, offset: u64) -> Result<String, String> {
    with_fs_copy(disk, part, offset, |img| sh::output(sh::cmd("dumpe2fs").arg("-h").arg(img)))
}

/// Whether the data filesystem was unmounted cleanly: no journal to replay.
pub fn needs_recovery(header: &str) -> bool {
    header.lines().any(|l| l.starts_with("Filesystem features:") && l.contains("needs_recovery"))
}

/// What a scenario needs from the board beyond a disk and a kernel.
#[derive(Clone, Copy)]
pub enum Needs {
    Nothing,
    /// Host tools packed into the initramfs must run on the guest: the host's architecture.
    HostArch,
    /// A watchdog the board's config arms (`oinit.watchdog`).
    Watchdog,
    /// Proven on one architecture, the x86_64 QEMU board: the scenario builds something of its
    /// own per CPU (a Debian tree by debootstrap, a test build of the init).
    X86Only,
    /// dm-verity lowers: proven on the 64-bit boards (qemu-x86_64, qemu-aarch64, imx8).
    Verity,
    /// EROFS lowers: the same two boards (every Debian kernel here has erofs.ko).
    Erofs,
    /// The kernel hand-over: the QEMU boards with a second kernel series to hand over to
    /// (x86_64 by `kexec_file_load`, aarch64 and armv7 by `kexec_load`).
    Kexec,
    /// The hand-over's verified kernel and install power cuts: the 64-bit QEMU boards (armv7's
    /// read path and install are the same code as aarch64's).
    Kexec64,
    /// The boot path alone, built without std: the two 64-bit musl boards, where issue 24
    /// measured its size (imx8 runs aarch64's build); armv7 links glibc's runtime instead.
    BootPathAlone,
    /// Debian's U-Boot for QEMU's virt machine: the arm boards (qemu_arm64, qemu_arm).
    UBoot,
    /// Debian's 64-bit U-Boot running an arm64 board's own script and disk: qemu-aarch64.
    UBootArm64,
}

impl Needs {
    /// Why the board cannot run the scenario, if it cannot.
    pub fn unmet(self, b: &Board) -> Option<String> {
        match self {
            Needs::Nothing => None,
            Needs::HostArch if b.rust_target.starts_with(std::env::consts::ARCH) => None,
            Needs::HostArch => {
                Some(format!("packs {} host tools, the board is {}", std::env::consts::ARCH, b.rust_target))
            }
            Needs::Watchdog if b.config.lines().any(|l| l.trim_start().starts_with("oinit.watchdog=")) => None,
            Needs::Watchdog => Some("the board's kernel has no watchdog driver for this QEMU machine".into()),
            Needs::X86Only if b.name == "qemu-x86_64" => None,
            Needs::X86Only => Some("runs on qemu-x86_64 only: one architecture proves it".into()),
            Needs::BootPathAlone if matches!(b.name.as_str(), "qemu-x86_64" | "qemu-aarch64") => None,
            Needs::BootPathAlone => Some("the boot path alone is proven on the 64-bit musl boards".into()),
            Needs::Kexec if b.name.starts_with("qemu-") => None,
            Needs::Kexec => Some("the kernel hand-over is proven on the qemu-* boards".into()),
            Needs::Kexec64 if matches!(b.name.as_str(), "qemu-x86_64" | "qemu-aarch64") => None,
            Needs::UBoot if matches!(b.name.as_str(), "qemu-aarch64" | "qemu-armv7") => None,
            Needs::UBootArm64 if b.name == "qemu-aarch64" => None,
            Needs::UBootArm64 => Some("runs on qemu-aarch64: Debian's qemu_arm64 U-Boot with the imx8 disk".into()),
            Needs::UBoot => {
                Some("Debian's u-boot-qemu boots QEMU's arm virt machines (qemu-aarch64, qemu-armv7)".into())
            }
            Needs::Kexec64 => Some("proven on the 64-bit QEMU boards, qemu-x86_64 and qemu-aarch64".into()),
            Needs::Verity if matches!(b.name.as_str(), "qemu-x86_64" | "qemu-aarch64" | "imx8") => None,
            Needs::Verity => {
                Some("verified lowers are proven on the 64-bit boards (qemu-x86_64, qemu-aarch64, imx8)".into())
            }
            Needs::Erofs if matches!(b.name.as_str(), "qemu-x86_64" | "qemu-aarch64") => None,
            Needs::Erofs => Some("EROFS lowers are proven on the qemu-x86_64 and qemu-aarch64 boards".into()),
        }
    }
}

/// The GPT names of the two slot partitions: those the board's config gives `oinit.a` and
/// `oinit.b` (imx8's `rootfs_a`, `rootfs_b`), or the qemu-* disks' `rootfs` and `rootfs_b`.
pub fn slot_parts(b: &Board) -> [String; 2] {
    let named = |key: &str| {
        b.config.lines().find_map(|l| l.trim().strip_prefix(key)?.strip_prefix("=PARTLABEL=").map(String::from))
    };
    match (named("oinit.a"), named("oinit.b")) {
        (Some(a), Some(b)) => [a, b],
        _ => ["rootfs".into(), "rootfs_b".into()],
    }
}

/// The A/B settings the scenarios boot with: both slots by partition name, two tries.
pub fn ab_settings(b: &Board) -> String {
    let [a, b] = slot_parts(b);
    format!("oinit.a=PARTLABEL={a} oinit.b=PARTLABEL={b} oinit.tries=2")
}

/// A scenario: its name, the test, and what it needs from the board.
pub type Scenario = (&'static str, fn(&Ctx<'_>) -> Result<(), String>, Needs);

/// Runs `debugfs -w` requests on the ext4 of partition `part`, in place.
pub fn debugfs_write(disk: &Path, part: &str, requests: &[&str]) -> Result<(), String> {
    let p = image::part(&image::partitions(disk)?, part)?;
    let img = disk.with_extension("debugfs");
    let cmds = disk.with_extension("debugfs-cmds");
    std::fs::write(&img, image::read_at(disk, p.start, p.size)?).map_err(|e| e.to_string())?;
    std::fs::write(&cmds, requests.join("\n") + "\n").map_err(|e| e.to_string())?;
    sh::output(sh::cmd("debugfs").arg("-w").arg("-f").arg(&cmds).arg(&img))?;
    let bytes = std::fs::read(&img).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&img);
    image::write_at(disk, p.start, &bytes)
}
