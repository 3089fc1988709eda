//! The image-file check both the plain and the verified lower make before the kernel sees a file.

use crate::block::device::read_head;
use crate::block::probe;
use crate::boot::error::{Error, Result};
use crate::rt::path::Path;
use crate::rt::prelude::*;

/// Refuses an image file that is not of the planned type (squashfs unless `rootfstype=erofs`)
/// or shorter than its superblock says, before it reaches the kernel (which would log a cryptic
/// error or read past the end at run time).
pub fn check_image_file(file: &str, fstype: Option<&str>) -> Result<()> {
    let bad = || Error::NotImage { path: file.to_string() };
    let len = crate::rt::fs::metadata(file)
        .map_err(|e| {
            let hint = "check oinit.lowerfile= and that the image is installed on that partition";
            Error::io("stat", Path::new(file), &e, hint)
        })?
        .len();
    let head = read_head(Path::new(file), 0, probe::PROBE_LEN).ok_or_else(bad)?;
    match probe::probe_fs(&head) {
        Some(fs) if fs.kind.is_image() && fs.size <= len => match fstype {
            Some(t) if t != fs.kind.name() => Err(Error::Plan(crate::plan::PlanError {
                what: format!("{file} holds a {} image, not {t}", fs.kind.name()),
                hint: format!("set rootfstype={}", fs.kind.name()),
            })
            .into()),
            _ => Ok(()),
        },
        _ => Err(bad().into()),
    }
}
