//! Sleeping: the boot path's threads are the C library's (`sys::thread`).

use core::time::Duration;

pub fn sleep(d: Duration) {
    let mut left = rustix::thread::Timespec { tv_sec: d.as_secs() as _, tv_nsec: d.subsec_nanos().into() };
    while let rustix::thread::NanosleepRelativeResult::Interrupted(rest) = rustix::thread::nanosleep(&left) {
        left = rest;
    }
}
