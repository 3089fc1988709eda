//! A child process that outlives the exec of the real init, for work off the boot path.
#![allow(unsafe_code)]

use std::os::fd::RawFd;

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
    let mut keep: Vec<u32> = keep.iter().filter_map(|&fd| u32::try_from(fd).ok()).filter(|&fd| fd > 2).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from = 3u32;
    let mut ranged = true;
    for k in keep.iter().copied().map(Some).chain([None]) {
        let to = k.map_or(u32::MAX, |k| k.saturating_sub(1));
        if to >= from {
            // SAFETY: close_range takes plain integers and touches no memory; the child owns its
            // descriptor table and no Rust object in it uses the descriptors being closed.
            ranged &= unsafe { libc::syscall(libc::SYS_close_range, from, to, 0u32) } == 0;
        }
        from = k.map_or(u32::MAX, |k| k.saturating_add(1));
    }
    if ranged {
        return;
    }
    let open: Vec<u32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok())).collect())
        .unwrap_or_default();
    for fd in open.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
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

    /// The old deletion child kept the state record's descriptor, and with it the flock: every
    /// `mark-good` waited for the deletion. The child here lives until the test lets it go, and
    /// the lock is free as soon as the parent lets go of it.
    #[test]
    fn a_child_holds_no_lock_of_the_parent() {
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
