//! The monotonic clock, in microseconds since boot: stage times, deadlines, unique names.

/// Through libc: musl's clock_gettime (vDSO first, the syscall when there is none) is linked
/// anyway for std, while rustix's own vDSO lookup added 1.6 KB of code to every caller.
#[allow(unsafe_code)]
pub fn now_us() -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid timespec for the call to fill; CLOCK_MONOTONIC cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    (t.tv_sec as u64) * 1_000_000 + (t.tv_nsec as u64) / 1000
}

/// The CPU time this process (all its threads) has used so far, in user mode and in the kernel,
/// in microseconds: `getrusage(RUSAGE_SELF)`, which rustix lacks.
#[allow(unsafe_code)]
pub fn cpu_us() -> (u64, u64) {
    // SAFETY: an all-zero rusage is a valid value for the call to fill.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid rusage; RUSAGE_SELF cannot fail.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let us = |t: libc::timeval| (t.tv_sec as u64) * 1_000_000 + (t.tv_usec as u64);
    (us(u.ru_utime), us(u.ru_stime))
}
