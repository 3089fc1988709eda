//! File-descriptor hygiene before exec'ing the real init.
#![allow(unsafe_code)]

/// `close_range(3, ~0, 0)`: closes every descriptor above stdio, so nothing the init opened
/// leaks into the real init even if a library forgot O_CLOEXEC. ENOSYS (before Linux 5.9) is
/// ignored: everything we open is O_CLOEXEC, so exec closes it anyway.
pub fn close_from_3() {
    // SAFETY: close_range takes plain integers and touches no memory of ours; closing descriptors
    // is sound here because this runs right before execve, when no Rust object still uses them.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if rc != 0 {
        log::debug!("close_range unavailable ({}); relying on O_CLOEXEC", crate::rt::io::Error::last_os_error());
    }
}

/// Points each of stdin, stdout and stderr that is closed at `to`, as std's start-up does with
/// /dev/null, so that no file the boot opens later takes one of their numbers.
pub fn fill_closed_stdio(to: &rustix::fd::OwnedFd) {
    for n in 0..3 {
        // SAFETY: only asks whether descriptor `n` is open; nothing owns it when it is closed,
        // and when it is open the borrow ends before this call returns.
        let fd = unsafe { rustix::fd::BorrowedFd::borrow_raw(n) };
        if rustix::io::fcntl_getfd(fd) == Err(rustix::io::Errno::BADF) {
            let _ = match n {
                0 => rustix::stdio::dup2_stdin(to),
                1 => rustix::stdio::dup2_stdout(to),
                _ => rustix::stdio::dup2_stderr(to),
            };
        }
    }
}
