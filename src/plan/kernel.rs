//! The oldest kernel the init boots on, decided from `uname -r` before anything is loaded, so a
//! kernel below it fails with one clear message instead of a mount option refused later.

use crate::plan::step::{err, PlanError};

/// 5.10: the oldest series the suite boots (Debian 11's), with 6.1 and 6.12. The init needs 4.19
/// at least (overlayfs `metacopy=`); `openat2` (5.6) and `close_range` (5.9) have fallbacks,
/// and compressed modules need 5.17 with `CONFIG_MODULE_DECOMPRESS` (the loader says so).
pub const MINIMUM: (u32, u32) = (5, 10);

/// The release's `major.minor`, if it starts with one (`5.10.0-32-amd64`, `6.12.95+deb12-arm64`).
fn series(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Refuses a kernel below `MINIMUM`. A release that does not start with a version (a vendor's own
/// naming) passes: the boot goes on and each step names what it lacks.
pub fn check(release: &str) -> Result<(), PlanError> {
    match series(release) {
        Some(v) if v < MINIMUM => Err(err(
            format!("kernel {release} is older than {}.{}, the oldest overlay-init boots on", MINIMUM.0, MINIMUM.1),
            "boot a kernel 5.10 or newer (tested: 5.10, 6.1, 6.12); docs/kernels.md lists what the init needs",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_at_or_above_the_minimum_pass() {
        for r in ["5.10.0-32-amd64", "6.1.0-57-arm64", "6.12.95+deb12-amd64", "5.15.71-lts", "10.0"] {
            assert!(check(r).is_ok(), "{r}");
        }
    }

    #[test]
    fn older_kernels_are_refused_by_name() {
        let e = check("4.19.0-21-amd64").unwrap_err();
        assert!(e.what.contains("kernel 4.19.0-21-amd64 is older than 5.10"), "{}", e.what);
        assert!(check("5.4.0").is_err() && check("5.9.16").is_err());
    }

    #[test]
    fn unreadable_releases_pass() {
        for r in ["", "vendor-kernel", "5", "5-rc1"] {
            assert!(check(r).is_ok(), "{r}");
        }
    }
}
