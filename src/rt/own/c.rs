//! What a program without std needs from the C library: the heap, the arguments and the
//! environment, errno and its text, and exit. With `sys/` and `rt/clock.rs`, the only place that
//! calls the C library directly.

#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_char, c_int, CStr};
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use rustix::io::Errno;

// Without std nothing asks the linker for the C library on musl (std's own libc dependency does;
// the libc crate names it for glibc itself).
#[cfg(not(feature = "std"))]
#[cfg_attr(target_env = "musl", link(name = "c", kind = "static", modifiers = "-bundle"))]
extern "C" {}

// 32-bit ARM's unwind tables (`.ARM.exidx`, which glibc's own objects carry too) name the
// personality routines of the unwinder. As std's build does, a static glibc links libgcc_eh
// and libgcc between two passes over libc; on musl, LLVM's libunwind shipped with the target.
#[cfg(not(feature = "std"))]
#[allow(clippy::duplicated_attributes)] // the second libc is the second pass
#[cfg_attr(all(target_arch = "arm", target_env = "gnu"), link(name = "c", kind = "static", modifiers = "-bundle"))]
#[cfg_attr(all(target_arch = "arm", target_env = "gnu"), link(name = "gcc_eh", kind = "static", modifiers = "-bundle"))]
#[cfg_attr(all(target_arch = "arm", target_env = "gnu"), link(name = "gcc", kind = "static", modifiers = "-bundle"))]
#[cfg_attr(all(target_arch = "arm", target_env = "gnu"), link(name = "c", kind = "static", modifiers = "-bundle"))]
#[cfg_attr(
    all(target_arch = "arm", target_env = "musl"),
    link(name = "unwind", kind = "static", modifiers = "-bundle")
)]
extern "C" {}

/// The C library's malloc: musl's, already linked for the C start-up and pthreads.
pub struct Malloc;

// SAFETY: each call forwards to the C allocator with a size and alignment it accepts;
// alignments above what malloc guarantees go through aligned_alloc.
unsafe impl GlobalAlloc for Malloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.align() <= MIN_ALIGN {
            libc::malloc(l.size()).cast()
        } else {
            libc::aligned_alloc(l.align(), l.size().next_multiple_of(l.align())).cast()
        }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if l.align() <= MIN_ALIGN {
            libc::calloc(1, l.size()).cast()
        } else {
            let p = self.alloc(l);
            if !p.is_null() {
                core::ptr::write_bytes(p, 0, l.size());
            }
            p
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, _: Layout) {
        libc::free(p.cast());
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        if l.align() <= MIN_ALIGN {
            libc::realloc(p.cast(), new_size).cast()
        } else {
            let q = self.alloc(Layout::from_size_align_unchecked(new_size, l.align()));
            if !q.is_null() {
                core::ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
                self.dealloc(p, l);
            }
            q
        }
    }
}

/// What malloc's result is aligned to on every target (16 on 64-bit, 8 on 32-bit ARM).
const MIN_ALIGN: usize = 2 * core::mem::size_of::<usize>();

static ARGC: AtomicUsize = AtomicUsize::new(0);
static ARGV: AtomicPtr<*const c_char> = AtomicPtr::new(core::ptr::null_mut());

/// Kept by `main` for `env::args`.
pub fn set_args(argc: c_int, argv: *const *const c_char) {
    ARGC.store(usize::try_from(argc).unwrap_or(0), Ordering::Relaxed);
    ARGV.store(argv.cast_mut(), Ordering::Relaxed);
}

/// The arguments `main` was given, as bytes.
pub fn args() -> impl Iterator<Item = &'static [u8]> {
    let argv = ARGV.load(Ordering::Relaxed);
    (0..ARGC.load(Ordering::Relaxed)).map(move |i| {
        // SAFETY: argv holds argc valid C strings for the life of the process.
        unsafe { CStr::from_ptr(*argv.add(i)) }.to_bytes()
    })
}

extern "C" {
    static environ: *const *const c_char;
}

/// The environment, `KEY=value` each, as the C library keeps it.
pub fn env_vars() -> impl Iterator<Item = &'static [u8]> {
    // SAFETY: the C library's environ is a null-terminated array of C strings (or null), which
    // the boot path never changes: each entry up to the null one is read once, as a C string.
    let env = unsafe { environ };
    let entry = move |i: usize| if env.is_null() { core::ptr::null() } else { unsafe { *env.add(i) } };
    (0..).map(entry).take_while(|p| !p.is_null()).map(|p| unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// The calling thread's errno, after a C library call that failed.
pub fn errno() -> i32 {
    // SAFETY: the C library's per-thread errno, always valid to read.
    unsafe { *libc::__errno_location() }
}

/// The C library's text for an errno ("No such file or directory").
pub fn errno_text(e: Errno) -> &'static str {
    // SAFETY: strerror returns a static string in musl and glibc.
    let s = unsafe { CStr::from_ptr(libc::strerror(e.raw_os_error())) };
    s.to_str().unwrap_or("unknown error")
}

pub fn exit(code: i32) -> ! {
    // SAFETY: nothing of ours needs running at exit.
    unsafe { libc::exit(code) }
}

/// The precompiled `alloc` was built to unwind, and its cleanup paths end in this call. Nothing
/// unwinds here (a panic logs and reboots, or exits), so it is never reached; linking the real
/// unwinder for it would bring back what leaving std out saves (32-bit ARM links it, above).
#[cfg(all(not(feature = "std"), not(target_arch = "arm")))]
#[no_mangle]
extern "C" fn _Unwind_Resume() -> ! {
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// The personality routine the same cleanup paths name, for the same reason never called.
#[cfg(not(feature = "std"))]
#[no_mangle]
extern "C" fn rust_eh_personality() {}
