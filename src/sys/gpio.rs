//! Reading a reset button through the GPIO character device (uAPI v2, `<linux/gpio.h>`).
#![allow(unsafe_code)]

use rustix::fd::{AsRawFd, FromRawFd, OwnedFd};
use rustix::fs::{open, Mode, OFlags};
use rustix::io::Errno;

const LINES_MAX: usize = 64;
const GPIO_V2_LINE_FLAG_ACTIVE_LOW: u64 = 1 << 1;
const GPIO_V2_LINE_FLAG_INPUT: u64 = 1 << 2;

/// `struct gpio_v2_line_attribute` + `mask`: `struct gpio_v2_line_config_attribute`.
#[repr(C)]
#[derive(Clone, Copy)]
struct ConfigAttribute {
    id: u32,
    padding: u32,
    value: u64,
    mask: u64,
}

/// `struct gpio_v2_line_config`.
#[repr(C)]
struct LineConfig {
    flags: u64,
    num_attrs: u32,
    padding: [u32; 5],
    attrs: [ConfigAttribute; 10],
}

/// `struct gpio_v2_line_request`.
#[repr(C)]
struct LineRequest {
    offsets: [u32; LINES_MAX],
    consumer: [u8; 32],
    config: LineConfig,
    num_lines: u32,
    event_buffer_size: u32,
    padding: [u32; 5],
    fd: i32,
}

/// `struct gpio_v2_line_values`.
#[repr(C)]
struct LineValues {
    bits: u64,
    mask: u64,
}

/// `_IOWR(type, nr, size)` from `<asm-generic/ioctl.h>`.
const fn iowr(ty: u32, nr: u32, size: usize) -> u32 {
    (3 << 30) | ((size as u32) << 16) | (ty << 8) | nr
}
const GPIO_V2_GET_LINE_IOCTL: u32 = iowr(0xB4, 0x07, core::mem::size_of::<LineRequest>());
const GPIO_V2_LINE_GET_VALUES_IOCTL: u32 = iowr(0xB4, 0x0E, core::mem::size_of::<LineValues>());

/// One input line, requested with the kernel applying the active level.
pub struct Line {
    fd: OwnedFd,
}

impl Line {
    pub fn request(chip: &str, offset: u32, active_low: bool) -> Result<Line, (&'static str, Errno)> {
        let chip_fd = open(chip, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).map_err(|e| ("open", e))?;
        let zero = ConfigAttribute { id: 0, padding: 0, value: 0, mask: 0 };
        let mut req = LineRequest {
            offsets: [0; LINES_MAX],
            consumer: [0; 32],
            config: LineConfig { flags: GPIO_V2_LINE_FLAG_INPUT, num_attrs: 0, padding: [0; 5], attrs: [zero; 10] },
            num_lines: 1,
            event_buffer_size: 0,
            padding: [0; 5],
            fd: -1,
        };
        if active_low {
            req.config.flags |= GPIO_V2_LINE_FLAG_ACTIVE_LOW;
        }
        req.offsets[0] = offset;
        req.consumer[..12].copy_from_slice(b"overlay-init");
        // SAFETY: the request struct mirrors the uAPI layout (sizes checked in tests) and lives
        // for the whole call; the kernel writes only its `fd` field.
        let rc = unsafe {
            libc::ioctl(chip_fd.as_raw_fd(), GPIO_V2_GET_LINE_IOCTL as libc::Ioctl, &mut req as *mut LineRequest)
        };
        if rc < 0 || req.fd < 0 {
            return Err(("GPIO_V2_GET_LINE_IOCTL", super::last_errno()));
        }
        // SAFETY: the kernel just created this descriptor for us and nothing else owns it.
        Ok(Line { fd: unsafe { OwnedFd::from_raw_fd(req.fd) } })
    }

    /// The line's logical value (active = true).
    pub fn active(&self) -> Result<bool, Errno> {
        let mut v = LineValues { bits: 0, mask: 1 };
        // SAFETY: LineValues mirrors struct gpio_v2_line_values and outlives the call.
        let rc = unsafe {
            libc::ioctl(self.fd.as_raw_fd(), GPIO_V2_LINE_GET_VALUES_IOCTL as libc::Ioctl, &mut v as *mut LineValues)
        };
        if rc < 0 {
            return Err(super::last_errno());
        }
        Ok(v.bits & 1 != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_and_ioctl_numbers_match_the_uapi() {
        assert_eq!(std::mem::size_of::<ConfigAttribute>(), 24);
        assert_eq!(std::mem::size_of::<LineConfig>(), 272);
        assert_eq!(std::mem::size_of::<LineRequest>(), 592);
        assert_eq!(GPIO_V2_GET_LINE_IOCTL, 0xC250_B407);
        assert_eq!(GPIO_V2_LINE_GET_VALUES_IOCTL, 0xC010_B40E);
    }
}
