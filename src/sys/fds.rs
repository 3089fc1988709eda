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
        log::debug!("close_range unavailable ({}); relying on O_CLOEXEC", std::io::Error::last_os_error());
    }
}
