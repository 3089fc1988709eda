//! The process itself.

pub fn exit(code: i32) -> ! {
    super::c::exit(code)
}
