//! The part of std's API the boot path uses. With std linked (the userspace commands, the
//! tests) it is std itself; the boot path alone is built without std, and then it is `own`:
//! each call over rustix or the C library. The unit tests build `own` beside std and hold it to
//! std's behaviour.

#[cfg(feature = "std")]
pub use std::{env, ffi, fs, io, os, path, process, sync, thread, time};

#[cfg(not(feature = "std"))]
pub use own::c;
#[cfg(not(feature = "std"))]
pub use own::{env, ffi, fs, io, os, path, process, sync, thread, time};

#[cfg(any(test, not(feature = "std")))]
#[cfg_attr(test, allow(dead_code, unused_imports))]
#[macro_use]
mod own;

pub mod clock;
pub mod prelude;
mod why;

pub use why::Why;
