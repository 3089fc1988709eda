//! The CPU time the process has used, and (from `rt`) the monotonic clock.

pub use crate::rt::clock::now_us;

/// The CPU time this process (all its threads) has used so far, in user mode and in the kernel,
/// in microseconds: `getrusage(RUSAGE_SELF)`, which rustix lacks.
#[allow(unsafe_code)]
pub fn cpu_us() -> (u64, u64) {
    // SAFETY: an all-zero rusage is a valid value for the call to fill.
    let mut u: libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: `u` is a valid rusage; RUSAGE_SELF cannot fail.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let us = |t: libc::timeval| (t.tv_sec as u64) * 1_000_000 + (t.tv_usec as u64);
    (us(u.ru_utime), us(u.ru_stime))
}
