//! Helpers shared by the integration tests that mount things.

use overlay_init::sys::mount;

/// Runs `f` on a thread of its own that has unshared its mount namespace: every mount made there
/// vanishes with the thread, and none is seen by the host.
pub fn in_private_namespace(f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        // SAFETY: only CLONE_FILES can invalidate descriptors other threads hold; NEWNS gives this
        // thread its own mount table and touches no memory.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }.unwrap();
        mount::make_private("/").unwrap();
        f();
    })
    .join()
    .unwrap();
}
