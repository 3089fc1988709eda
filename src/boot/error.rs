//! Every way the boot can fail, one variant per site, each saying what failed, the errno where a
//! syscall failed, and what the operator can do about it.

use crate::config::settings::SettingError;
use crate::plan::PlanError;
use crate::rt::path::Path;
use crate::rt::prelude::*;
use crate::rt::Why;
use core::fmt;
use rustix::io::Errno;

#[derive(Debug)]
pub enum Error {
    Settings(Vec<SettingError>),
    Plan(PlanError),
    DeviceNotFound {
        what: &'static str,
        spec: String,
        waited: u32,
        saw: Vec<String>,
    },
    Syscall {
        call: &'static str,
        path: String,
        errno: Errno,
        hint: &'static str,
    },
    Mount {
        source: String,
        target: String,
        fstype: String,
        options: String,
        errno: Errno,
        hint: String,
    },
    NotImage {
        path: String,
    },
    /// The image is not the one the trusted root hash describes, or its verity metadata is bad.
    Verity {
        image: String,
        what: String,
    },
    Tool {
        tool: String,
        device: String,
        outcome: String,
    },
    NoInit {
        root: String,
        tried: Vec<String>,
    },
}

/// Boxed: the enum is 128 bytes (five strings in `Mount`), and unboxed every `Result` of the boot
/// carried it and every `?` copied it; a failure, which happens once, pays one allocation instead.
pub type Result<T> = core::result::Result<T, Box<Error>>;

impl Error {
    /// A syscall error with a path, for the steps without a more specific variant.
    pub fn sys(call: &'static str, path: impl Into<String>, errno: Errno, hint: &'static str) -> Box<Error> {
        Box::new(Error::Syscall { call, path: path.into(), errno, hint })
    }

    /// A failed std file operation on `path`, its errno recovered from the `io::Error`.
    pub fn io(call: &'static str, path: &Path, e: &crate::rt::io::Error, hint: &'static str) -> Box<Error> {
        let errno = e.raw_os_error().map_or(Errno::IO, Errno::from_raw_os_error);
        Error::sys(call, path.display().to_string(), errno, hint)
    }
}

/// What usually causes a mount error, by errno and filesystem type.
pub fn mount_hint(fstype: &str, errno: Errno) -> String {
    let h = match (fstype, errno) {
        (_, Errno::NODEV) => "the kernel lacks this filesystem: add its module to oinit.modules",
        (_, Errno::NXIO | Errno::NOENT) => "the device or path does not exist",
        ("overlay", Errno::INVAL) => {
            "check that upper and work are on the same filesystem and the options are known to this kernel (see dmesg)"
        }
        ("squashfs", Errno::INVAL) => "the image is not a valid squashfs (corrupt or truncated)",
        ("erofs", Errno::INVAL) => {
            "the image is not a valid EROFS image (corrupt, truncated, or a feature this kernel lacks)"
        }
        (_, Errno::INVAL) => "the device does not hold this filesystem type, or an option is unknown (see dmesg)",
        (_, Errno::UCLEAN) => "the filesystem needs a check: enable oinit.fsck=1",
        (_, Errno::ROFS | Errno::ACCESS) => "the device is read-only",
        _ => "see dmesg for the kernel's reason",
    };
    h.to_string()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Settings(errs) => {
                let list: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
                write!(f, "bad settings: {}. Fix the kernel command line or the board config", list.join("; "))
            }
            Error::Plan(p) => write!(f, "{}. Fix: {}", p.what, p.hint),
            Error::DeviceNotFound { what, spec, waited, saw } => write!(
                f,
                "{what} device {spec} not found after {waited} s; saw: {}. Fix: check the partition table or the setting, or raise oinit.timeout / rootwait=",
                if saw.is_empty() { "no block devices (is the disk driver in oinit.modules?)".to_string() } else { saw.join(", ") }
            ),
            Error::Syscall { call, path, errno, hint: "" } => write!(f, "{call} {path}: {errno}", errno = Why(*errno)),
            Error::Syscall { call, path, errno, hint } => write!(f, "{call} {path}: {errno}. Fix: {hint}", errno = Why(*errno)),
            Error::Mount { source, target, fstype, options, errno, hint } => {
                write!(f, "mount {source} on {target} type {fstype} ({options}): {errno}. Likely: {hint}", errno = Why(*errno))
            }
            Error::NotImage { path } => {
                write!(f, "{path} is not a squashfs or EROFS image (bad magic or truncated). Fix: reinstall the image")
            }
            Error::Verity { image, what } => write!(
                f,
                "dm-verity refuses {image}: {what}. Nothing from this image is used. Fix: reinstall a signed image \
                 (overlay-init install), or check the root hash setting and the board's key"
            ),
            Error::Tool { tool, device, outcome } => write!(f, "{tool} on {device}: {outcome}"),
            Error::NoInit { root, tried } => write!(
                f,
                "no executable init in the new root {root} (tried {}). Fix: set init= to a program that exists in the image",
                tried.join(", ")
            ),
        }
    }
}
