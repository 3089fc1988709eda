//! switch_root: move the API mounts into the new root, delete the initramfs, make the new root
//! `/`, and exec the real init with a cleaned environment.

use crate::boot::error::{Error, Result};
use crate::boot::mounts::mkdir_p;
use crate::fs::careful;
use crate::rt::ffi::OsString;
use crate::rt::prelude::*;
use crate::rt::Why;
use crate::sys::process::Program;
use crate::sys::{fds, mount};
use rustix::fs::{openat2, statat, statfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, CWD};
use rustix::io::Errno;

const RAMFS_MAGIC: u32 = 0x8584_58f6;
const TMPFS_MAGIC: u32 = 0x0102_1994;

/// The filesystem magic from `statfs`'s `f_type`, which is a signed 32-bit field on 32-bit ARM:
/// widened as it is, ramfs's 0x858458f6 became 0xffffffff858458f6 there and the initramfs was
/// never freed when `root=` was on the command line (which makes the kernel use ramfs).
fn fs_magic(f_type: impl Into<i64>) -> u32 {
    f_type.into() as u32
}

/// Finds the first candidate that is an executable regular file inside `root`, resolving
/// symlinks as the new root will see them (`/sbin/init -> /lib/systemd/systemd`), not as the
/// initramfs would. Runs BEFORE anything irreversible happens.
pub fn find_init(root: &str, candidates: &[String]) -> Result<String> {
    let root_fd = rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::sys("open", root, e, "report this with the boot log"))?;
    for c in candidates {
        let rel = c.trim_start_matches('/');
        let resolved = openat2(&root_fd, rel, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), ResolveFlags::IN_ROOT);
        let st = match resolved {
            Ok(fd) => statat(&fd, "", AtFlags::EMPTY_PATH),
            // openat2 is Linux 5.6+; older kernels get a plain lookup (absolute symlinks would
            // then resolve against the initramfs, so this is only a best-effort check).
            Err(Errno::NOSYS) => statat(&root_fd, rel, AtFlags::empty()),
            Err(e) => Err(e),
        };
        match st {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && st.st_mode & 0o111 != 0 => {
                return Ok(c.clone())
            }
            Ok(_) => log::warn!("init candidate {c} in {root} is not an executable file"),
            Err(e) => log::debug!("init candidate {c} in {root}: {e}", e = Why(e)),
        }
    }
    Err(Error::NoInit { root: root.into(), tried: candidates.to_vec() }.into())
}

/// Environment variables that change how the dynamic loader or libc behave (glibc's
/// `unsecvars` list, which it drops for setuid programs); a kernel command line must not be able to
/// inject them into the real init.
pub fn is_loader_variable(name: &str) -> bool {
    name.starts_with("LD_")
        || name.starts_with("MALLOC_")
        || name.starts_with("GLIBC_")
        || matches!(
            name,
            "GCONV_PATH"
                | "GETCONF_DIR"
                | "HOSTALIASES"
                | "LOCALDOMAIN"
                | "LOCPATH"
                | "NIS_PATH"
                | "NLSPATH"
                | "RESOLV_HOST_CONF"
                | "RES_OPTIONS"
                | "TMPDIR"
                | "TZDIR"
        )
}

/// The real init's environment: ours (the kernel's unknown `key=value` words) minus loader
/// variables. Read as raw bytes: a value that is not UTF-8 is passed on unchanged, never a panic.
fn init_environment() -> Vec<(OsString, OsString)> {
    crate::rt::env::vars_os().filter(|(k, _)| !is_loader_variable(&k.to_string_lossy())).collect()
}

/// Moves the API filesystems, deletes the initramfs, enters `root` and execs `init`.
/// Returns only on failure.
///
/// Everything that reads input or can fail for a reason other than the kernel refusing a call
/// (the environment, the command, the log line) is done before `prepare`, which deletes the
/// initramfs: after that point there is no file to fall back to, so only syscalls remain.
pub fn switch_root(root: &str, init: &str, args: &[String], env: &[(String, String)]) -> Box<Error> {
    let mut environment = init_environment();
    for (k, v) in env {
        environment.retain(|(name, _)| name != k.as_str());
        environment.push((k.into(), v.into()));
    }
    let program = match Program::new(init, args, &environment) {
        Ok(p) => p,
        Err(_) => return Error::sys("execve", init, Errno::INVAL, "a NUL byte in the init's arguments or environment"),
    };
    let shown: Vec<&str> = core::iter::once(init).chain(args.iter().map(String::as_str)).collect();
    let line = format!("exec {} (peak memory VmHWM {} kB)", shown.join(" "), peak_memory_kb());
    if let Err(e) = prepare(root) {
        return e;
    }
    log::info!("{line}");
    crate::boot::logger::restore_kmsg_ratelimit();
    fds::close_from_3();
    Error::sys("execve", init, program.exec(), "the init exists but cannot run: check its architecture and interpreter")
}

/// The init's own peak resident memory, for the benchmark (from /proc/self/status).
fn peak_memory_kb() -> u64 {
    let status = crate::rt::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

fn prepare(root: &str) -> Result<()> {
    for dir in ["/dev", "/proc", "/sys", "/run"] {
        let target = format!("{root}{dir}");
        mkdir_p(&target)?;
        if let Err(e) = mount::move_mount(dir, &target) {
            log::warn!("cannot move {dir} into the new root ({e}); detaching it", e = Why(e));
            let _ = mount::unmount_detach(dir);
        }
    }
    rustix::process::chdir(root).map_err(|e| Error::sys("chdir", root, e, "report this with the boot log"))?;
    delete_initramfs()?;
    mount::move_mount(".", "/").map_err(|e| {
        Error::sys("mount --move", root, e, "the kernel refused the switch; report this with the boot log")
    })?;
    rustix::process::chroot(".")
        .map_err(|e| Error::sys("chroot", root, e, "the kernel refused the switch; report this with the boot log"))?;
    rustix::process::chdir("/")
        .map_err(|e| Error::sys("chdir", "/", e, "the kernel refused the switch; report this with the boot log"))?;
    Ok(())
}

/// Frees the initramfs memory. Guarded: only when `/` is the initramfs (ramfs or tmpfs) and we are
/// PID 1; the walk never crosses into other filesystems, so the new root and /run are safe.
fn delete_initramfs() -> Result<()> {
    let fs = statfs("/").map_err(|e| Error::sys("statfs", "/", e, ""))?;
    let magic = fs_magic(fs.f_type);
    if (magic != RAMFS_MAGIC && magic != TMPFS_MAGIC) || rustix::process::getpid().as_raw_nonzero().get() != 1 {
        log::warn!("/ is not an initramfs (f_type {magic:#x}) or we are not PID 1: not deleting it");
        return Ok(());
    }
    let fd = rustix::fs::openat(CWD, "/", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::sys("open", "/", e, ""))?;
    match careful::remove_contents(fd) {
        Ok(n) => log::debug!("deleted {} initramfs entries ({} left)", n.removed, n.skipped),
        // Memory stays in use but the boot can go on.
        Err(e) => log::warn!("deleting the initramfs stopped: {e}", e = Why(e)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_variables() {
        for v in
            ["LD_PRELOAD", "LD_LIBRARY_PATH", "GCONV_PATH", "MALLOC_CHECK_", "GETCONF_DIR", "LOCALDOMAIN", "NIS_PATH"]
                .into_iter()
                .chain(["RESOLV_HOST_CONF", "TZDIR", "GLIBC_TUNABLES"])
        {
            assert!(is_loader_variable(v), "{v}");
        }
        for v in ["TERM", "HOME", "PATH", "BOOT_IMAGE", "init"] {
            assert!(!is_loader_variable(v), "{v}");
        }
    }

    #[test]
    fn a_non_utf8_value_reaches_the_init_unchanged() {
        use std::os::unix::ffi::OsStrExt;
        let value = std::ffi::OsStr::from_bytes(b"a\xffb");
        std::env::set_var("OI_TEST_RAW_BYTES", value);
        let env = init_environment();
        assert!(env.iter().any(|(k, v)| k == "OI_TEST_RAW_BYTES" && v == value));
    }

    #[test]
    fn magic_numbers_survive_a_signed_32_bit_f_type() {
        // What 32-bit ARM's statfs gives for ramfs, and what a 64-bit kernel gives.
        assert_eq!(fs_magic(0x8584_58f6_u32 as i32), RAMFS_MAGIC);
        assert_eq!(fs_magic(0x8584_58f6_i64), RAMFS_MAGIC);
        assert_eq!(fs_magic(0x0102_1994_i32), TMPFS_MAGIC);
    }

    #[test]
    fn init_resolves_inside_the_root() {
        let root = std::env::temp_dir().join(format!("oi-root-{}", std::process::id()));
        std::fs::create_dir_all(root.join("sbin")).unwrap();
        std::fs::create_dir_all(root.join("lib")).unwrap();
        std::fs::write(root.join("lib/real-init"), "#!/bin/sh\n").unwrap();
        let exe = Mode::from_raw_mode(0o755);
        rustix::fs::chmod(root.join("lib/real-init").as_path(), exe).unwrap();
        std::fs::write(root.join("sbin/noexec"), "").unwrap();
        // An absolute symlink must resolve inside the root, not on the host.
        std::os::unix::fs::symlink("/lib/real-init", root.join("sbin/init")).unwrap();
        let r = root.to_str().unwrap();
        let c = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(find_init(r, &c(&["/sbin/missing", "/sbin/noexec", "/sbin/init"])).unwrap(), "/sbin/init");
        assert!(
            matches!(find_init(r, &c(&["/sbin/noexec", "/bin/sh-not-here"])), Err(e) if matches!(*e, Error::NoInit { .. }))
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
