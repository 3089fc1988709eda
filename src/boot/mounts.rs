//! Performs the planned mounts and directory preparation, step by step.

use crate::block::device::read_head;
use crate::block::probe;
use crate::boot::error::{mount_hint, Error, Result};
use crate::boot::image::check_image_file;
use crate::boot::report::Report;
use crate::fs::careful;
use crate::plan::{self, DataState, Found, Mount, Plan, Role, Source, Step};
use crate::rt::path::Path;
use crate::rt::prelude::*;
use crate::rt::time::{Duration, Instant};
use crate::rt::Why;
use crate::sys::process::{self, Program};
use crate::sys::{loopdev, mount::mount_fs};
use rustix::fs::{chmod, Mode};
use rustix::io::Errno;

/// A failed step and the role of what it worked on, so that a data partition failure can fall
/// back to a volatile upper instead of failing the boot.
pub struct StepError {
    pub role: Role,
    pub error: Box<Error>,
}

/// Runs every step before the switch. Returns at the first failure.
pub fn run(steps: &[Step], report: &mut Report) -> core::result::Result<(), StepError> {
    for step in steps {
        log::debug!("{step}");
        let result = match step {
            Step::Fsck { device, budget } => fsck(device, *budget, report),
            Step::Mkfs { device } => mkfs(device),
            Step::AttachLoop { device, offset, link } => attach_appended(device, *offset, link, report),
            Step::MakeUbiVolume { ubi, vol_id, name, bytes } => report
                .kernel(|| crate::sys::ubi::make_volume(ubi, Some(*vol_id), name, *bytes))
                .map_err(|(call, e)| Error::sys(call, ubi.clone(), e, "check the UBI device's free space (ubinfo)")),
            Step::AddMtdPartition { master, name, offset, length } => {
                report.kernel(|| crate::sys::mtd::add_partition(master, name, *offset, *length)).map_err(|(call, e)| {
                    Error::sys(
                        call,
                        master.clone(),
                        e,
                        "BLKPG adds partitions to a master only and this partition's master is not known: give the \
                         kernel a rootfs_data partition (device tree, mtdparts), or name the master's partitions \
                         in mtdparts= (see README)",
                    )
                })
            }
            Step::Verity(v) => crate::boot::verity::open(v, report),
            Step::Mount(m) => mount(m, report),
            Step::PrepareUpper { upper, work } => prepare_upper(upper, work),
            // The switch is the last act of `boot`; the A/B steps need the state record and are
            // run by `boot::slot`.
            Step::SwitchRoot { .. }
            | Step::SaveState { .. }
            | Step::FactoryReset { .. }
            | Step::NewUpper(_)
            | Step::CarryKeepList { .. }
            | Step::DeleteTrash { .. }
            | Step::Kexec { .. } => continue,
        };
        let role = step.role();
        result.map_err(|error| StepError { role, error })?;
        report.steps.push(step.to_string());
    }
    Ok(())
}

/// Decides and runs the steps; when the data partition fails, decides again without it
/// (volatile, or the data-missing policy's error).
pub fn assemble(
    report: &mut Report,
    found: &mut Found,
    decide: impl Fn(&Found) -> core::result::Result<Plan, plan::PlanError>,
) -> Result<Plan> {
    loop {
        let plan = decide(found).map_err(Error::Plan)?;
        announce(&plan, report);
        match run(&plan.steps, report) {
            Ok(()) => return Ok(plan),
            Err(e)
                if matches!(e.role, Role::Data | Role::Upper) && !matches!(found.data, DataState::Unmountable(_)) =>
            {
                log::error!("{}", e.error);
                report.fallbacks.push(format!("data partition unusable: {}", e.error));
                found.data = DataState::Unmountable(e.error.to_string());
            }
            Err(e) => return Err(e.error),
        }
    }
}

pub fn announce(plan: &Plan, report: &mut Report) {
    for line in plan.to_string().lines() {
        log::info!("{line}");
    }
    if let Some(v) = &plan.volatile {
        log::warn!("*** VOLATILE ROOT: {v} ***");
        report.volatile = Some(v.clone());
    }
    for d in &plan.devices {
        if !report.devices.contains(d) {
            report.devices.push(d.clone());
        }
    }
    report.warnings.extend(plan.warnings.iter().cloned());
}

/// `mkdir -p` (mode 0755: PID 1's umask is the kernel's 022). Something other than a directory
/// already at `path` (an image's `/run` as a dangling symlink) is left for the mount or the move
/// onto it to report, which the switch turns into a warning.
pub fn mkdir_p(path: &str) -> Result<()> {
    match crate::fs::mkdir::mkdir_all(path) {
        Err(e) if e.raw_os_error() != Some(Errno::EXIST.raw_os_error()) => {
            Err(Error::io("mkdir", Path::new(path), &e, "check that the filesystem is writable and not full"))
        }
        _ => Ok(()),
    }
}

fn mount(m: &Mount, report: &mut Report) -> Result<()> {
    mkdir_p(&m.target)?;
    // Held until the mount holds the loop device: autoclear detaches it at our last close.
    let mut _loop_hold = None;
    let source = match &m.source {
        Source::Device(d) => d.clone(),
        Source::Virtual(v) => v.to_string(),
        Source::LoopFile(file) => {
            check_image_file(file, Some(m.fstype.as_str()).filter(|t| *t != plan::AUTO_IMAGE))?;
            let attached = report.kernel(|| loopdev::attach_ro(file)).map_err(|(call, e)| {
                Error::sys(call, file.clone(), e, "add loop to oinit.modules (or build it into the kernel)")
            })?;
            log::info!("attached {file} to {} read-only ({:?})", attached.path, attached.method);
            let path = attached.path.clone();
            _loop_hold = Some(attached);
            path
        }
    };
    // An image file says what it is: squashfs or EROFS, read from its superblock.
    let fstype = if m.fstype == plan::AUTO_IMAGE {
        let kind = read_head(Path::new(&source), 0, probe::PROBE_LEN).and_then(|h| probe::probe_fs(&h)).map(|f| f.kind);
        let kind = kind.filter(|k| k.is_image()).ok_or_else(|| Error::NotImage { path: source.clone() })?;
        log::info!("{source}: {} image", kind.name());
        kind.name().to_string()
    } else {
        m.fstype.clone()
    };
    report.kernel(|| mount_fs(&source, &m.target, &fstype, &m.options)).map_err(|errno| {
        Box::new(Error::Mount {
            source,
            target: m.target.clone(),
            hint: mount_hint(&fstype, errno),
            fstype,
            options: m.options.clone(),
            errno,
        })
    })
}

/// Creates upper (0755: the merged root's `/` inherits its mode) and work (0700: overlay's
/// scratch space, private to root) when missing, and empties a work directory left by an
/// unclean shutdown. Existing directories are reused, so a full partition still boots.
fn prepare_upper(upper: &str, work: &str) -> Result<()> {
    for (dir, mode) in [(upper, 0o755), (work, 0o700)] {
        // A symlink in place of upper or work (planted on the data partition) would send the
        // overlay's writes, or the emptying of work, somewhere else: it is removed, not followed.
        if Path::new(dir).symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
            log::warn!("{dir} is a symlink on the data partition: removed, a directory is made in its place");
            rustix::fs::unlink(dir).map_err(|e| Error::sys("unlink", dir, e, "check the data partition"))?;
        }
        if !Path::new(dir).is_dir() {
            mkdir_p(dir)?;
            chmod(dir, Mode::from_raw_mode(mode))
                .map_err(|e| Error::sys("chmod", dir, e, "check that the data filesystem is writable"))?;
        }
    }
    // Never through a symlink: `work -> ../../victim` planted on the data partition must not
    // lead the emptying anywhere else.
    let fd = careful::open_dir_nofollow(Path::new(work)).map_err(|e| {
        Error::sys(
            "open (no symlinks)",
            work,
            e,
            "the work directory must be a directory on the data partition: remove what is there",
        )
    })?;
    let n = careful::remove_contents(fd)
        .map_err(|e| Error::sys("empty", work, e, "check the data partition with e2fsck (oinit.fsck=1)"))?;
    if n.removed > 0 || n.skipped > 0 {
        log::info!("emptied stale work directory {work} ({} entries, {} left)", n.removed, n.skipped);
    }
    Ok(())
}

/// The loop device over the data area after the squashfs. It stays attached (no autoclear): the
/// data mount and the running system use it, as OpenWRT's `/dev/loop0` on `/overlay`.
fn attach_appended(device: &str, offset: u64, link: &str, report: &mut Report) -> Result<()> {
    let options = loopdev::Options { offset, read_only: false };
    let attached = report
        .kernel(|| loopdev::attach(device, options))
        .map_err(|(call, e)| Error::sys(call, device, e, "add loop to oinit.modules (or build it into the kernel)"))?;
    let _ = crate::rt::fs::remove_file(link);
    // Absolute, so the link resolves wherever /dev is (moved into the new root at the switch).
    crate::rt::os::unix::fs::symlink(&attached.path, link)
        .map_err(|e| Error::io("symlink", Path::new(link), &e, "check /dev"))?;
    log::info!("data area of {device} from byte {offset} is {} ({link})", attached.path);
    Ok(())
}

fn find_tool(names: &[&str]) -> Option<String> {
    let dirs = ["/sbin", "/usr/sbin", "/bin", "/usr/bin"];
    dirs.iter().flat_map(|d| names.iter().map(move |n| format!("{d}/{n}"))).find(|p| Path::new(p).exists())
}

/// Runs a tool with a time budget; kills it when the budget is spent.
fn run_tool(path: &str, args: &[&str], budget: u32) -> core::result::Result<i32, String> {
    // Its own process group, so that a budget overrun kills what the tool started too (a
    // leftover child would keep running from the initramfs after the switch).
    let child = Program::inheriting(path, args)?.spawn(true).map_err(|e| format!("cannot start: {e}", e = Why(e)))?;
    let until = Instant::now() + Duration::from_secs(budget.into());
    loop {
        match process::wait(child, false) {
            Ok(Some(code)) => return Ok(code),
            Ok(None) if Instant::now() >= until => {
                let _ = rustix::process::kill_process_group(child, rustix::process::Signal::KILL);
                let _ = process::wait(child, true);
                return Err(format!("killed after its {budget} s budget"));
            }
            Ok(None) => crate::rt::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("wait: {e}", e = Why(e))),
        }
    }
}

/// `e2fsck -p`: exit 0/1 (clean or fixed) goes on; anything else is reported and the mount is
/// tried anyway, so that the data-missing policy decides.
fn fsck(device: &str, budget: u32, report: &mut Report) -> Result<()> {
    let Some(tool) = find_tool(&["e2fsck", "e2fsck.static", "fsck.ext4"]) else {
        log::warn!("oinit.fsck=1 but no e2fsck in the initramfs; skipping the check");
        return Ok(());
    };
    let code = run_tool(&tool, &["-p", device], budget).map_err(|why| Error::Tool {
        tool: tool.clone(),
        device: device.into(),
        outcome: why,
    })?;
    report.fsck_exit = Some(code);
    match code {
        0 => log::info!("{tool} -p {device}: clean (exit 0)"),
        1 => log::info!("{tool} -p {device}: errors corrected (exit 1)"),
        _ => log::warn!("{tool} -p {device} exited {code}: errors left; trying the mount anyway"),
    }
    Ok(())
}

/// Formats a factory-blank data partition. The UUID comes from the kernel's non-blocking
/// generator, so the boot never waits for the entropy pool.
fn mkfs(device: &str) -> Result<()> {
    let Some(tool) = find_tool(&["mkfs.ext4", "mke2fs"]) else {
        return Err(Error::Tool {
            tool: "mkfs.ext4".into(),
            device: device.into(),
            outcome: "not in the initramfs (add it, or format the partition at the factory)".into(),
        }
        .into());
    };
    // Linux generates these from its non-blocking pool; mke2fs would otherwise ask getrandom().
    let uuid = || crate::rt::fs::read_to_string("/proc/sys/kernel/random/uuid").unwrap_or_default().trim().to_string();
    let (u, seed) = (uuid(), format!("hash_seed={}", uuid()));
    let mut args = vec!["-q", "-F", "-t", "ext4", "-L", "userdata"];
    if !u.is_empty() {
        args.extend(["-U", u.as_str(), "-E", seed.as_str()]);
    }
    args.push(device);
    log::info!("formatting blank data partition {device}");
    match run_tool(&tool, &args, 300) {
        Ok(0) => Ok(()),
        Ok(code) => Err(Error::Tool { tool, device: device.into(), outcome: format!("exited {code}") }.into()),
        Err(why) => Err(Error::Tool { tool, device: device.into(), outcome: why }.into()),
    }
}
