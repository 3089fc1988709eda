//! std's API for the boot path built without std: the few calls it makes, each over rustix or
//! the C library, so the binary carries no runtime of its own beyond `core` and `alloc`.

mod arg;
pub mod c;
#[cfg(not(feature = "std"))]
pub mod env;
pub mod ffi;
pub mod fs;
pub mod io;
pub mod os;
pub mod path;
#[cfg(not(feature = "std"))]
pub mod process;
pub mod sync;
pub mod thread;
pub mod time;

/// `print!`, `println!` and `eprintln!`: one write per call, errors dropped as std's stdio
/// would panic on them (there is no one to tell).
#[cfg(not(feature = "std"))]
#[macro_export]
macro_rules! print {
    ($($t:tt)*) => {{ let _ = $crate::rt::io::Write::write_fmt(&mut $crate::rt::io::stdout(), format_args!($($t)*)); }};
}

#[cfg(not(feature = "std"))]
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($t:tt)*) => {{ let _ = $crate::rt::io::Write::write_fmt(&mut $crate::rt::io::stdout(), format_args!("{}\n", format_args!($($t)*))); }};
}

#[cfg(not(feature = "std"))]
#[macro_export]
macro_rules! eprintln {
    ($($t:tt)*) => {{ let _ = $crate::rt::io::Write::write_fmt(&mut $crate::rt::io::stderr(), format_args!("{}\n", format_args!($($t)*))); }};
}
