//! Stage one of a kernel hand-over, acting (`oinit.kexec`): after the slot is chosen, counted and
//! its lower mounted and verified, the slot's own kernel, initramfs and device tree are checked,
//! loaded, and booted with kexec; stage two (that kernel's own overlay-init) boots the slot
//! without choosing or counting again. The slot's files are read from its mounted lower, so
//! dm-verity has checked every block that is loaded.

use crate::ab::state::SlotId;
use crate::boot::error::Error;
use crate::boot::mounts::StepError;
use crate::boot::report::Report;
use crate::config::kexec::Stage2;
use crate::config::paths;
use crate::kexec::image::{self, Arch};
use crate::plan::Role;
use crate::rt::io::Read;
use crate::rt::prelude::*;
use crate::rt::Why;
use rustix::fd::AsFd;
use rustix::fs::{open, Mode, OFlags};

/// The files of the slot's boot, as the plan names them.
pub struct Files<'a> {
    pub slot: SlotId,
    pub lower: &'a str,
    pub kernel: &'a str,
    pub initrd: &'a str,
    pub dtb: Option<&'a str>,
    pub verity: Option<&'a str>,
}

/// Hands over to the slot's kernel, or returns Ok when there is nothing to hand over to (the slot
/// carries no kernel, or it is the running one). A slot whose files are refused, or whose kernel
/// the running one will not load, fails like a lower that does not mount (the plan's alternative
/// boots the other slot in this boot). Returns only on those.
pub fn hand_over(f: &Files<'_>, report: &mut Report) -> Result<(), StepError> {
    match load(f, report) {
        Ok(None) => Ok(()),
        Ok(Some((ms, load_ms))) => {
            log::warn!(
                "slot {}: handing over to its own kernel after {ms} ms of stage one (the load took {load_ms} ms); its \
                 overlay-init boots the slot (stage two)",
                f.slot.name()
            );
            leave_data_clean();
            let e = crate::sys::kexec::reboot_into_loaded();
            // The data is unmounted: nothing of this boot can go on. The next boot counts the try.
            let error = Error::sys("reboot(KEXEC)", f.kernel.to_string(), e, "report this with the boot log");
            Err(StepError { role: Role::Switch, error })
        }
        Err(error) => {
            // The other slot's plan mounts its lower in the same place; the refused slot's verity
            // device goes with its lower.
            if let Err(e) = crate::sys::mount::unmount(f.lower) {
                log::warn!("unmount {}: {e}", f.lower, e = Why(e));
            }
            if let Some(name) = f.verity {
                if let Err((call, e)) = crate::sys::dm::remove(name) {
                    log::warn!("remove /dev/mapper/{name}: {call}: {e}", e = Why(e));
                }
            }
            Err(StepError { role: Role::Lower, error })
        }
    }
}

/// Checks and loads the slot's kernel; Some(stage one's milliseconds, the load's) when it is
/// loaded, None when there is nothing to hand over to.
fn load(f: &Files<'_>, report: &mut Report) -> Result<Option<(u64, u64)>, Box<Error>> {
    let kernel = format!("{}{}", f.lower, f.kernel);
    if !crate::rt::path::Path::new(&kernel).exists() {
        log::info!("slot {} carries no kernel ({kernel}): booting it on the running kernel", f.slot.name());
        return Ok(None);
    }
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy().into_owned();
    let version = uname.version().to_string_lossy().into_owned();
    let arch = Arch::current();
    let mut img = image::kernel(&head(&kernel)?, arch).map_err(|why| bad_file(&kernel, why))?;
    // An arm64 Image does not say which kernel it is: its banner, written beside it at build
    // time, does (inside the same verified image).
    if img.version.is_none() {
        img.version =
            image::from_banner(&crate::rt::fs::read_to_string(format!("{kernel}.version")).unwrap_or_default());
    }
    if image::is_running(&img, &release, &version) {
        log::info!("slot {}'s kernel is the running one ({release}): no hand-over", f.slot.name());
        return Ok(None);
    }
    let initrd = format!("{}{}", f.lower, f.initrd);
    let kind = image::initramfs(&head(&initrd)?).map_err(|why| bad_file(&initrd, why))?;
    let dtb = match f.dtb {
        Some(dtb) => {
            let path = format!("{}{dtb}", f.lower);
            let bytes = crate::rt::fs::read(&path).map_err(|e| io_error("read", &path, e))?;
            image::device_tree(&bytes).map_err(|why| bad_file(&path, why))?;
            Some((path, bytes))
        }
        None => None,
    };
    let marker = Stage2 { slot: f.slot, from_release: release.clone(), stage1_ms: crate::sys::clock::now_us() / 1000 };
    let running = crate::rt::fs::read_to_string("/proc/cmdline").map_err(|e| io_error("read", "/proc/cmdline", e))?;
    let cmdline = image::stage_two_cmdline(&running, &marker, arch.cmdline_max())
        .map_err(|why| bad_file("/proc/cmdline", why))?;
    log::info!(
        "slot {}: loading its kernel {} ({}) with its {kind} {initrd}",
        f.slot.name(),
        kernel,
        img.version.as_deref().unwrap_or("version not known")
    );
    let start = crate::sys::clock::now_us();
    match arch {
        Arch::X86 => load_file(&kernel, &initrd, cmdline, report)?,
        Arch::Arm64 | Arch::Arm => load_segments(&kernel, &initrd, dtb, &cmdline, arch, report)?,
    }
    Ok(Some((marker.stage1_ms, (crate::sys::clock::now_us() - start) / 1000)))
}

/// x86_64: the kernel parses the bzImage itself (`kexec_file_load`).
fn load_file(kernel: &str, initrd: &str, cmdline: String, report: &mut Report) -> Result<(), Box<Error>> {
    let c_cmdline =
        crate::rt::ffi::CString::new(cmdline).map_err(|_| bad_file("/proc/cmdline", "holds a NUL byte".into()))?;
    let open_ro = |p: &str| {
        open(p, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::sys("open", p.to_string(), e, "check the slot image's /boot"))
    };
    let (kfd, ifd) = (open_ro(kernel)?, open_ro(initrd)?);
    report
        .kernel(|| crate::sys::kexec::file_load(kfd.as_fd(), ifd.as_fd(), &c_cmdline))
        .map_err(|e| Error::sys("kexec_file_load", kernel.to_string(), e, load_hint(e)))
}

/// arm64 and 32-bit ARM (no `kexec_file_load` in Debian's kernels): the init places the kernel,
/// the initramfs, the device tree (the slot's, or the running kernel's own) with `/chosen` saying
/// where the initramfs is and what the command line is, and on arm64 a purgatory that enters the
/// kernel (32-bit ARM's relocation code enters the zImage itself).
fn load_segments(
    kernel: &str,
    initrd: &str,
    dtb: Option<(String, Vec<u8>)>,
    cmdline: &str,
    arch: Arch,
    report: &mut Report,
) -> Result<(), Box<Error>> {
    use crate::kexec::{arm, arm64};
    use crate::sys::kexec::Segment;
    const FDT: &str = "/sys/firmware/fdt";
    let (dtb_path, dtb) = match dtb {
        Some(d) => d,
        None => (FDT.to_string(), crate::rt::fs::read(FDT).map_err(|e| io_error("read", FDT, e))?),
    };
    let image = crate::rt::fs::read(kernel).map_err(|e| io_error("read", kernel, e))?;
    let ramdisk = crate::rt::fs::read(initrd).map_err(|e| io_error("read", initrd, e))?;
    let iomem = crate::rt::fs::read_to_string("/proc/iomem").map_err(|e| io_error("read", "/proc/iomem", e))?;
    let ram = arm64::system_ram(&iomem);
    let page = |n: u64| n.div_ceil(4096) * 4096;
    // The edited tree grows by the command line and two properties at most.
    let room = dtb.len() as u64 + cmdline.len() as u64 + 256;
    let (image_len, initrd_len) = (image.len() as u64, ramdisk.len() as u64);
    // (kernel, its memory, initramfs, device tree, entry, purgatory)
    let (at, kernel_mem, initrd_at, dtb_at, entry, purgatory) = if arch == Arch::Arm64 {
        let h = arm64::header(&image).map_err(|why| bad_file(kernel, why))?;
        let l = arm64::layout(&ram, h, initrd_len, room).map_err(|why| bad_file(kernel, why))?;
        let code = arm64::purgatory(l.kernel, l.dtb);
        (l.kernel, l.kernel_mem.max(page(image_len)), l.initrd, l.dtb, l.purgatory, Some(code))
    } else {
        let l = arm::layout(&ram, image_len, initrd_len, room).map_err(|why| bad_file(kernel, why))?;
        (l.kernel, page(image_len), l.initrd, l.dtb, l.kernel, None)
    };
    let tree = crate::kexec::fdt::with_chosen(&dtb, cmdline, initrd_at, initrd_at + initrd_len)
        .map_err(|why| bad_file(&dtb_path, why))?;
    let mut segments = vec![
        Segment { bytes: &image, mem: at, mem_len: kernel_mem },
        Segment { bytes: &ramdisk, mem: initrd_at, mem_len: page(initrd_len) },
        Segment { bytes: &tree, mem: dtb_at, mem_len: page(tree.len() as u64) },
    ];
    if let Some(code) = &purgatory {
        segments.push(Segment { bytes: code, mem: entry, mem_len: page(code.len() as u64) });
    }
    log::debug!("kexec_load: kernel at {at:#x}, initramfs {initrd_at:#x}, device tree {dtb_at:#x}, entry {entry:#x}");
    report
        .kernel(|| crate::sys::kexec::load(entry, &segments))
        .map_err(|e| Error::sys("kexec_load", kernel.to_string(), e, load_hint(e)))
}

/// What each refusal of `kexec_file_load` or `kexec_load` usually means.
fn load_hint(e: rustix::io::Errno) -> &'static str {
    use rustix::io::Errno;
    match e {
        Errno::NOEXEC => "the running kernel cannot load this image (another architecture, or not a kernel)",
        Errno::IO => "the slot's files could not be read: dm-verity found a changed block, or the medium failed (see dmesg)",
        Errno::INVAL | Errno::ADDRNOTAVAIL => "a segment lies outside RAM or overlaps another (see dmesg)",
        Errno::KEYREJECTED | Errno::BADMSG | Errno::NOKEY => {
            "the image's signature is not trusted by the running kernel (KEXEC_SIG): sign it with a key the kernel trusts"
        }
        Errno::PERM => "refused by the running kernel's lockdown (Secure Boot) or by a missing CAP_SYS_BOOT",
        Errno::NOMEM => "not enough memory for the new kernel and its initramfs",
        Errno::NOSYS => {
            "the running kernel has no kexec_file_load (CONFIG_KEXEC_FILE) or kexec_load (CONFIG_KEXEC)"
        }
        _ => "see dmesg for the kernel's reason",
    }
}

/// The first bytes of a slot file, which say what it is.
fn head(path: &str) -> Result<Vec<u8>, Box<Error>> {
    let mut buf = Vec::with_capacity(image::HEAD);
    crate::rt::fs::File::open(path)
        .and_then(|f| f.take(image::HEAD as u64).read_to_end(&mut buf))
        .map_err(|e| io_error("read", path, e))?;
    Ok(buf)
}

fn bad_file(path: &str, why: String) -> Box<Error> {
    Box::new(Error::Plan(crate::plan::PlanError {
        what: format!("kexec: {path} is refused: {why}"),
        hint: "install a slot image whose /boot holds this board's kernel, initramfs and device tree".into(),
    }))
}

fn io_error(call: &'static str, path: &str, e: crate::rt::io::Error) -> Box<Error> {
    let errno = rustix::io::Errno::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EIO));
    // The lower is read through dm-verity: EIO is most often a changed block.
    let hint = if errno == rustix::io::Errno::IO { load_hint(errno) } else { "check the slot image's /boot" };
    Error::sys(call, path.to_string(), errno, hint)
}

/// Nothing on the data partition may be lost across the hand-over: kexec starts the next kernel
/// without unmounting anything. Written data reaches the disk, then the data partition is
/// unmounted (or, if something holds it, left read-only), so stage two mounts it clean.
fn leave_data_clean() {
    rustix::fs::sync();
    if let Err(e) = crate::sys::mount::unmount(paths::DATA) {
        log::warn!("unmount {}: {e}; remounting it read-only", paths::DATA, e = Why(e));
        if let Err(e) = crate::sys::mount::remount_read_only(paths::DATA) {
            log::warn!("remount {} read-only: {e}; it was synced", paths::DATA, e = Why(e));
        }
    }
}
