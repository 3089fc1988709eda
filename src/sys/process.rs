//! A child process that outlives the exec of the real init, for work off the boot path.
#![allow(unsafe_code)]

/// Runs `work` in a forked child and returns at once in the parent. The child becomes a child of
/// the real init after the exec (which reaps it) and exits when `work` is done.
pub fn spawn_detached(work: impl FnOnce()) -> bool {
    // SAFETY: PID 1 is single-threaded when this runs (the boot starts no threads), so the child
    // may run arbitrary Rust code: no other thread can hold a lock the child would wait on.
    match unsafe { libc::fork() } {
        0 => {
            work();
            // SAFETY: _exit ends the child without running the parent's atexit handlers or
            // flushing its stdio buffers twice.
            unsafe { libc::_exit(0) }
        }
        pid => pid > 0,
    }
}
