//! The process itself.

pub fn exit(code: i32) -> ! {
    super::c::exit(code)
}

pub fn id() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}
