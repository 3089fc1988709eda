//! The monotonic clock, in microseconds since boot: stage times, deadlines, unique names.

/// Through libc: musl's clock_gettime (vDSO first, the syscall when there is none) is linked
/// anyway, while rustix's own vDSO lookup added 1.6 KB of code to every caller.
#[allow(unsafe_code)]
pub fn now_us() -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid timespec for the call to fill; CLOCK_MONOTONIC cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    (t.tv_sec as u64) * 1_000_000 + (t.tv_nsec as u64) / 1000
}
