//! Processes of the boot: the exec of the real init, a tool run with a time budget (e2fsck), the
//! rescue shell, and a child that outlives the exec for work off the boot path. fork and execve
//! directly rather than std's `Command`, whose environment map, `posix_spawn` paths and status
//! formatting cost the static binary 33 KB (x86_64) for these three uses.
#![allow(unsafe_code)]

use crate::rt::ffi::{CString, OsStr};
use crate::rt::os::fd::RawFd;
use crate::rt::os::unix::ffi::OsStrExt;
use crate::rt::prelude::*;
use rustix::io::Errno;
use rustix::process::{Pid, WaitOptions};

/// A program and its arguments and environment, made ready for `execve` before anything else
/// happens: the switch deletes the initramfs between building and exec, and a forked child
/// must not allocate.
pub struct Program {
    path: CString,
    /// Kept for the pointers in `argv` and `envp`.
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

impl Program {
    /// `path` run as `path args...` with `env` (`NAME=value` each). Err: a NUL byte in one of them.
    pub fn new<A: AsRef<OsStr>, E: AsRef<OsStr>>(path: &str, args: &[A], env: &[(E, E)]) -> Result<Program, String> {
        let c = |b: &[u8]| CString::new(b).map_err(|_| format!("{path}: a NUL byte in its arguments or environment"));
        let mut strings = vec![c(path.as_bytes())?];
        for a in args {
            strings.push(c(a.as_ref().as_bytes())?);
        }
        for (k, v) in env {
            strings.push(c(&[k.as_ref().as_bytes(), b"=", v.as_ref().as_bytes()].concat())?);
        }
        let ptrs: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        let null = core::ptr::null();
        let argv = ptrs[..=args.len()].iter().copied().chain([null]).collect();
        let envp = ptrs[args.len() + 1..].iter().copied().chain([null]).collect();
        Ok(Program { path: c(path.as_bytes())?, _strings: strings, argv, envp })
    }

    /// `path` with `args` and this process's environment.
    pub fn inheriting(path: &str, args: &[&str]) -> Result<Program, String> {
        Program::new(path, args, &crate::rt::env::vars_os().collect::<Vec<_>>())
    }

    /// Replaces this process with the program; returns only on failure, with execve's errno.
    pub fn exec(&self) -> Errno {
        // SAFETY: path, argv and envp are NUL-terminated strings and NULL-terminated arrays owned
        // by self, alive for the call; default_signals only changes this process's dispositions.
        unsafe {
            default_signals();
            libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr())
        };
        crate::sys::last_errno()
    }

    /// Starts the program in a child; with `own_group` in a process group of its own, so that a
    /// kill of the group reaches what it starts too. Err: fork's errno, or execve's in the child
    /// (passed back through a close-on-exec pipe, which closes without a byte when exec works).
    pub fn spawn(&self, own_group: bool) -> Result<Pid, Errno> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into the array it is given.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(crate::sys::last_errno());
        }
        // SAFETY: the child only calls async-signal-safe functions (setpgid, execve, write,
        // _exit) on memory prepared before the fork; it never returns into Rust code.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe {
                libc::close(fds[0]);
                default_signals();
                if own_group {
                    libc::setpgid(0, 0);
                }
                libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr());
                let errno = *libc::__errno_location();
                libc::write(fds[1], (&errno as *const i32).cast(), 4);
                libc::_exit(127)
            }
        }
        let forked = if pid < 0 { Err(crate::sys::last_errno()) } else { Ok(pid) };
        // SAFETY: the parent's copies of the pipe: the write end closed, the read end read once.
        let failed = unsafe {
            libc::close(fds[1]);
            let mut errno = 0i32;
            let n = if forked.is_ok() { libc::read(fds[0], (&mut errno as *mut i32).cast(), 4) } else { 0 };
            libc::close(fds[0]);
            (n == 4).then_some(errno)
        };
        let pid = Pid::from_raw(forked?).ok_or(Errno::CHILD)?;
        match failed {
            Some(errno) => {
                let _ = wait(pid, true);
                Err(Errno::from_raw_os_error(errno))
            }
            None => Ok(pid),
        }
    }
}

/// What a program expects to start with, as std's `Command` gives it: SIGPIPE at its default
/// (Rust's runtime ignores it in this process, and an ignored signal stays ignored across execve:
/// the real init and everything it starts would never die of a closed pipe) and no signal
/// blocked. Only async-signal-safe calls: it runs in a forked child too.
///
/// # Safety
/// Changes this process's signal disposition and mask; call it just before execve.
unsafe fn default_signals() {
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    let mut none: libc::sigset_t = core::mem::zeroed();
    libc::sigemptyset(&mut none);
    libc::sigprocmask(libc::SIG_SETMASK, &none, core::ptr::null_mut());
}

/// The CPUs this process may run on (at least 1). `sched_getaffinity` alone: std's
/// `available_parallelism` also reads cgroup quotas, which an init has none of, at about 10 KB.
pub fn cpus() -> usize {
    rustix::thread::sched_getaffinity(None).map_or(1, |set| set.count().max(1) as usize)
}

/// Waits for the child `pid`: its exit code (128 + the signal that ended it), or None while it
/// runs when `block` is false.
pub fn wait(pid: Pid, block: bool) -> Result<Option<i32>, Errno> {
    let opts = if block { WaitOptions::empty() } else { WaitOptions::NOHANG };
    Ok(rustix::process::waitpid(Some(pid), opts)?
        .map(|(_, status)| status.exit_status().unwrap_or_else(|| 128 + status.terminating_signal().unwrap_or(0))))
}

/// Runs `work` in a forked child and returns at once in the parent. The child closes every
/// descriptor above stdio but `keep` first: an inherited copy of a locked file (the state
/// record's `flock`) would hold the lock for as long as the child runs. The child becomes a
/// child of the real init after the exec (which reaps it) and exits when `work` is done.
pub fn spawn_detached(keep: &[RawFd], work: impl FnOnce()) -> bool {
    // SAFETY: the boot's only other threads are the module loader's, and the boot has waited for
    // them before any step that forks (they have returned from their work and hold no lock of
    // ours). The allocator stays usable in the child: glibc and musl reset its locks at fork.
    match unsafe { libc::fork() } {
        0 => {
            close_all_but(keep);
            work();
            // SAFETY: _exit ends the child without running the parent's atexit handlers or
            // flushing its stdio buffers twice.
            unsafe { libc::_exit(0) }
        }
        pid => pid > 0,
    }
}

/// Closes every descriptor from 3 up but those in `keep`: `close_range` over the gaps (Linux
/// 5.9), else one `close` per entry of /proc/self/fd.
fn close_all_but(keep: &[RawFd]) {
    // The kept descriptors from `from` up, smallest first, without sorting a copy: the list is
    // two or three long, and on the close_range path a child forked from a threaded parent then
    // allocates nothing.
    let next_kept = |from: u32| keep.iter().filter_map(|&fd| u32::try_from(fd).ok()).filter(|&fd| fd >= from).min();
    let mut from = 3u32;
    let mut ranged = true;
    loop {
        let k = next_kept(from);
        let to = k.map_or(u32::MAX, |k| k.saturating_sub(1));
        if to >= from {
            // SAFETY: close_range takes plain integers and touches no memory; the child owns its
            // descriptor table and no Rust object in it uses the descriptors being closed.
            ranged &= unsafe { libc::syscall(libc::SYS_close_range, from, to, 0u32) } == 0;
        }
        match k {
            Some(k) if k < u32::MAX => from = k + 1,
            _ => break,
        }
    }
    if ranged {
        return;
    }
    let open: Vec<u32> = crate::rt::fs::read_dir("/proc/self/fd")
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok())).collect())
        .unwrap_or_default();
    for fd in open.into_iter().filter(|&fd| fd > 2 && !keep.iter().any(|&k| u32::try_from(k) == Ok(fd))) {
        // SAFETY: as above; a descriptor that is already closed (the directory's own) gives EBADF.
        unsafe { libc::close(fd as i32) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{flock, FlockOperation};
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    /// The tests here fork: a child forked by one test between its fork and its exec holds
    /// copies of every descriptor of the test process, the lock test's too. One at a time.
    static FORKING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
        FORKING.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn a_program_runs_with_its_arguments_and_its_exit_code_comes_back() {
        let _one = one_at_a_time();
        let sh = Program::inheriting("/bin/sh", &["-c", "exit $(( $# + 40 ))", "sh", "a", "b"]).unwrap();
        let child = sh.spawn(true).unwrap();
        assert_eq!(wait(child, true), Ok(Some(42)));
    }

    #[test]
    fn a_program_that_cannot_start_is_an_error_with_execves_errno() {
        let _one = one_at_a_time();
        let missing = Program::inheriting("/nonexistent/e2fsck", &["-p"]).unwrap();
        assert_eq!(missing.spawn(false).unwrap_err(), Errno::NOENT);
        assert!(Program::inheriting("/bin/sh", &["a\0b"]).is_err());
    }

    /// The test harness, like the init, runs with SIGPIPE ignored (Rust's runtime does that); the
    /// program must not inherit it.
    #[test]
    fn a_program_starts_with_sigpipe_at_its_default() {
        let _one = one_at_a_time();
        let out = std::env::temp_dir().join(format!("oi-sig-{}", std::process::id()));
        let script = format!("grep SigIgn /proc/self/status > {}", out.display());
        let p = Program::inheriting("/bin/sh", &["-c", &script]).unwrap();
        assert_eq!(wait(p.spawn(false).unwrap(), true), Ok(Some(0)));
        let line = std::fs::read_to_string(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        assert!(!sigpipe_ignored(&line), "SIGPIPE ignored in the child: {line}");
    }

    /// Whether a `SigIgn:` line of /proc/PID/status has SIGPIPE's bit set.
    fn sigpipe_ignored(line: &str) -> bool {
        let mask = u64::from_str_radix(line.trim().trim_start_matches("SigIgn:").trim(), 16).unwrap();
        mask & (1 << (libc::SIGPIPE - 1)) != 0
    }

    /// The same for the exec that replaces the process (the real init's), run in a forked child.
    #[test]
    fn an_exec_resets_sigpipe_too() {
        let _one = one_at_a_time();
        let out = std::env::temp_dir().join(format!("oi-exec-sig-{}", std::process::id()));
        let _ = std::fs::remove_file(&out);
        let tmp = out.with_extension("tmp");
        let script = format!("grep SigIgn /proc/self/status > {0} && mv {0} {1}", tmp.display(), out.display());
        let p = Program::inheriting("/bin/sh", &["-c", &script]).unwrap();
        assert!(spawn_detached(&[], move || {
            p.exec();
        }));
        // Written by the exec'd shell and renamed when complete; at most 10 s on a busy host.
        let line = (0..1000)
            .find_map(|_| {
                std::fs::read_to_string(&out).ok().or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    None
                })
            })
            .expect("the exec'd program never wrote its status");
        std::fs::remove_file(&out).unwrap();
        assert!(!sigpipe_ignored(&line), "SIGPIPE ignored after the exec: {line}");
    }

    #[test]
    fn the_environment_given_is_the_programs_whole_environment() {
        let _one = one_at_a_time();
        let out = std::env::temp_dir().join(format!("oi-env-{}", std::process::id()));
        let script = format!("env > {}", out.display());
        let p = Program::new("/bin/sh", &["-c", &script], &[("ONLY", "this")]).unwrap();
        assert_eq!(wait(p.spawn(false).unwrap(), true), Ok(Some(0)));
        let env = std::fs::read_to_string(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        assert!(env.lines().any(|l| l == "ONLY=this"), "{env}");
        assert!(!env.lines().any(|l| l.starts_with("HOME=")), "{env}");
    }

    /// The old deletion child kept the state record's descriptor, and with it the flock: every
    /// `mark-good` waited for the deletion. The child here lives until the test lets it go, and
    /// the lock is free as soon as the parent lets go of it.
    #[test]
    fn a_child_holds_no_lock_of_the_parent() {
        let _one = one_at_a_time();
        let path = std::env::temp_dir().join(format!("oi-spawn-lock-{}", std::process::id()));
        let locked = std::fs::File::create(&path).unwrap();
        flock(&locked, FlockOperation::LockExclusive).unwrap();
        let (mut child_end, mut parent_end) = UnixStream::pair().unwrap();
        let keep = [child_end.as_raw_fd()];
        assert!(spawn_detached(&keep, move || {
            // Running (its descriptors closed): tell the parent, then block until it lets go
            // (at most 10 s: a child that kept the parent's end would otherwise never exit).
            let _ = child_end.write_all(b"r");
            let _ = child_end.set_read_timeout(Some(std::time::Duration::from_secs(10)));
            let _ = child_end.read(&mut [0u8]);
        }));
        parent_end.read_exact(&mut [0u8]).unwrap();
        drop(locked);
        let again = std::fs::File::open(&path).unwrap();
        let free = flock(&again, FlockOperation::NonBlockingLockExclusive);
        drop(parent_end);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(free, Ok(()), "the child still holds the parent's lock");
    }
}
