//! A mutex and a condition variable on the kernel's futex, for the module loader's threads.
//! Nothing unwinds in the boot path (the profile aborts), so a lock is never poisoned; the
//! `LockResult` shape is std's, so the callers read the same with and without std.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;
use rustix::thread::futex;

pub use alloc::sync::Arc;
pub use core::sync::atomic;

pub type LockResult<G> = Result<G, PoisonError<G>>;

pub struct PoisonError<G>(G);

impl<G> PoisonError<G> {
    pub fn into_inner(self) -> G {
        self.0
    }
}

/// 0 unlocked, 1 locked, 2 locked with a waiter (the classic three-state futex lock).
#[derive(Default)]
pub struct Mutex<T> {
    state: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: the lock gives one thread at a time access to `value`, as std's Mutex.
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for Mutex<T> {}
#[allow(unsafe_code)]
unsafe impl<T: Send> Send for Mutex<T> {}

pub struct MutexGuard<'a, T> {
    lock: &'a Mutex<T>,
}

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Mutex<T> {
        Mutex { state: AtomicU32::new(0), value: UnsafeCell::new(value) }
    }

    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        if self.state.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            while self.state.swap(2, Ordering::Acquire) != 0 {
                let _ = futex::wait(&self.state, futex::Flags::PRIVATE, 2, None);
            }
        }
        Ok(MutexGuard { lock: self })
    }

    fn unlock(&self) {
        if self.state.swap(0, Ordering::Release) == 2 {
            let _ = futex::wake(&self.state, futex::Flags::PRIVATE, 1);
        }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        #[allow(unsafe_code)]
        unsafe {
            &*self.lock.value.get()
        }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock, and `&mut self` makes this the only reference.
        #[allow(unsafe_code)]
        unsafe {
            &mut *self.lock.value.get()
        }
    }
}

/// Counts notifications; a waiter sleeps on the count it saw before it let the lock go, so a
/// notification between the two is not lost.
#[derive(Default)]
pub struct Condvar {
    seq: AtomicU32,
}

#[derive(Debug, Clone, Copy)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    pub const fn new() -> Condvar {
        Condvar { seq: AtomicU32::new(0) }
    }

    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        self.sleep(guard, None).map(|(g, _)| g).map_err(|e| PoisonError(e.0 .0))
    }

    /// Waits while `condition` holds, at most `dur` in all (std's `wait_timeout_while`).
    pub fn wait_timeout_while<'a, T, F: FnMut(&mut T) -> bool>(
        &self,
        mut guard: MutexGuard<'a, T>,
        dur: Duration,
        mut condition: F,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let until = crate::rt::clock::now_us().saturating_add(dur.as_micros().try_into().unwrap_or(u64::MAX));
        while condition(&mut guard) {
            let left = until.saturating_sub(crate::rt::clock::now_us());
            if left == 0 {
                return Ok((guard, WaitTimeoutResult(true)));
            }
            guard = self.sleep(guard, Some(Duration::from_micros(left)))?.0;
        }
        Ok((guard, WaitTimeoutResult(false)))
    }

    fn sleep<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        dur: Option<Duration>,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let seen = self.seq.load(Ordering::Acquire);
        let lock = guard.lock;
        drop(guard);
        let ts = dur.map(|d| rustix::thread::Timespec { tv_sec: d.as_secs() as _, tv_nsec: d.subsec_nanos().into() });
        let timed_out = matches!(
            futex::wait(&self.seq, futex::Flags::PRIVATE, seen, ts.as_ref()),
            Err(rustix::io::Errno::TIMEDOUT)
        );
        let guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        Ok((guard, WaitTimeoutResult(timed_out)))
    }

    pub fn notify_all(&self) {
        self.seq.fetch_add(1, Ordering::Release);
        let _ = futex::wake(&self.seq, futex::Flags::PRIVATE, u32::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::{Arc, Condvar, Mutex};
    use core::time::Duration;

    #[test]
    fn a_waiter_is_woken_by_a_notification_or_its_deadline() {
        let shared = Arc::new((Mutex::new(0u32), Condvar::new()));
        let s2 = Arc::clone(&shared);
        let t = std::thread::spawn(move || {
            for _ in 0..1000 {
                *s2.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            }
            s2.1.notify_all();
        });
        let (m, cv) = &*shared;
        let (n, r) = cv
            .wait_timeout_while(m.lock().unwrap_or_else(|e| e.into_inner()), Duration::from_secs(60), |n| *n < 1000)
            .unwrap_or_else(|e| e.into_inner());
        assert_eq!((*n, r.timed_out()), (1000, false));
        drop(n);
        t.join().unwrap();
        let (n, r) = cv
            .wait_timeout_while(m.lock().unwrap_or_else(|e| e.into_inner()), Duration::from_millis(20), |_| true)
            .unwrap_or_else(|e| e.into_inner());
        assert_eq!((*n, r.timed_out()), (1000, true));
    }
}
