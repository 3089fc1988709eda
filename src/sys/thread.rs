//! Threads for the module loader, on the C library's pthreads. std's threads add, to each one, a
//! name, spawn hooks and an alternate signal stack with a registry of guard pages (a map) for
//! their stack-overflow message: 23 KB of the boot path's code and a few more syscalls per
//! thread, for loaders that only call finit_module (and abort on a panic, as the profile says).

#![allow(unsafe_code)]

use crate::rt::ffi::c_void;
use crate::rt::prelude::*;
use rustix::io::Errno;

/// Each thread's stack: the loader's frames are shallow (a path, a message, one syscall); the
/// C library's default (128 KiB on musl) would do, this leaves room for a debug build.
const STACK: usize = 512 * 1024;

/// A thread that nobody joins: it runs `f` and ends. Err when it cannot be created (no memory
/// this early); `f` is then dropped unrun.
pub fn spawn_detached(f: Box<dyn FnOnce() + Send>) -> Result<(), Errno> {
    let arg = Box::into_raw(Box::new(f)).cast::<c_void>();
    create(run_boxed, arg, true).map(drop).inspect_err(|_| {
        // SAFETY: no thread was created, so `arg` is still ours, from `Box::into_raw` above.
        drop(unsafe { Box::from_raw(arg.cast::<Box<dyn FnOnce() + Send>>()) });
    })
}

/// Runs `work` on `threads` threads, this one among them, and returns when every one is done.
/// A thread that cannot be created is left out: `work` takes its items from a shared queue, so
/// fewer threads still do all of it.
pub fn run_on(threads: usize, work: &(dyn Fn() + Sync)) {
    let mut joined = Joined(Vec::new());
    let arg = core::ptr::from_ref(&work).cast_mut().cast::<c_void>();
    for _ in 1..threads {
        if let Ok(t) = create(run_borrowed, arg, false) {
            joined.0.push(t);
        }
    }
    work();
    // `joined` is dropped here, or while unwinding: either way every thread is joined before
    // `work`, which they borrow, goes away.
}

/// Joins its threads when dropped.
struct Joined(Vec<libc::pthread_t>);

impl Drop for Joined {
    fn drop(&mut self) {
        for t in self.0.drain(..) {
            // SAFETY: `t` was created joinable by `run_on` and is joined once.
            unsafe { libc::pthread_join(t, core::ptr::null_mut()) };
        }
    }
}

type Start = extern "C" fn(*mut c_void) -> *mut c_void;

fn create(start: Start, arg: *mut c_void, detached: bool) -> Result<libc::pthread_t, Errno> {
    // SAFETY: the attribute object is initialised before use and destroyed after; `start` and
    // `arg` are valid for the thread's life (see its callers).
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        let rc = libc::pthread_attr_init(&mut attr);
        if rc != 0 {
            return Err(Errno::from_raw_os_error(rc));
        }
        libc::pthread_attr_setstacksize(&mut attr, STACK);
        if detached {
            libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        }
        let mut t: libc::pthread_t = core::mem::zeroed();
        let rc = libc::pthread_create(&mut t, &attr, start, arg);
        libc::pthread_attr_destroy(&mut attr);
        if rc == 0 {
            Ok(t)
        } else {
            Err(Errno::from_raw_os_error(rc))
        }
    }
}

extern "C" fn run_boxed(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the box `spawn_detached` leaked for this thread, taken back once, here.
    let f = unsafe { Box::from_raw(arg.cast::<Box<dyn FnOnce() + Send>>()) };
    f();
    core::ptr::null_mut()
}

extern "C" fn run_borrowed(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` points at `run_on`'s `work`, which outlives the thread: `run_on` joins it
    // before returning.
    let work = unsafe { *arg.cast::<&(dyn Fn() + Sync)>() };
    work();
    core::ptr::null_mut()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    #[test]
    fn run_on_returns_when_every_thread_has_finished_its_share() {
        let (next, done) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let threads = Mutex::new(Vec::new());
        let work = || {
            while next.fetch_add(1, Ordering::Relaxed) < 400 {
                std::thread::sleep(Duration::from_micros(50));
                done.fetch_add(1, Ordering::Relaxed);
            }
            threads.lock().unwrap().push(std::thread::current().id());
        };
        run_on(4, &work);
        assert_eq!(done.load(Ordering::Relaxed), 400);
        assert_eq!(threads.lock().unwrap().len(), 4, "this thread and three more");
    }

    #[test]
    fn a_detached_thread_runs_its_closure() {
        let (tx, rx) = std::sync::mpsc::channel();
        spawn_detached(Box::new(move || tx.send(std::thread::current().id()).unwrap())).unwrap();
        let id = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_ne!(id, std::thread::current().id());
    }
}
