//! The monotonic clock, in microseconds since boot: stage times, deadlines, unique names.

use rustix::time::{clock_gettime, ClockId};

pub fn now_us() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    (t.tv_sec as u64) * 1_000_000 + (t.tv_nsec as u64) / 1000
}
