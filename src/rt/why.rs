//! An errno for people.

/// An errno as the operator reads it, "No such file or directory (os error 2)", with std or
/// without (rustix's own `Display` then shows only the number).
pub struct Why(pub rustix::io::Errno);

impl core::fmt::Display for Why {
    #[cfg(feature = "std")]
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&self.0, f)
    }

    #[cfg(not(feature = "std"))]
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} (os error {})", super::own::c::errno_text(self.0), self.0.raw_os_error())
    }
}
