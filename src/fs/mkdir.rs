//! `mkdir -p`, one for the whole binary, over rustix's mkdir: std's `create_dir_all` brought its
//! own directory builder (2.8 KB of the boot path) beside the rustix calls everything else uses.

use crate::rt::path::Path;
use rustix::fs::{mkdir, stat, FileType, Mode};
use rustix::io::Errno;

/// Creates `path` and its missing parents as `create_dir_all` does: mode 0777 less the umask,
/// an existing directory is fine, anything else in the way is an error.
pub fn mkdir_all(path: impl AsRef<Path>) -> crate::rt::io::Result<()> {
    create(path.as_ref()).map_err(Into::into)
}

/// Creates the one directory `path`, as `create_dir` does (mode 0777 less the umask).
pub fn mkdir_one(path: impl AsRef<Path>) -> crate::rt::io::Result<()> {
    mkdir(path.as_ref(), Mode::from_raw_mode(0o777)).map_err(Into::into)
}

fn create(path: &Path) -> Result<(), Errno> {
    match mkdir(path, Mode::from_raw_mode(0o777)) {
        Err(Errno::NOENT) => match path.parent() {
            // The parent first, then this one again (another process may make it meanwhile).
            Some(parent) if !parent.as_os_str().is_empty() => {
                create(parent)?;
                exists_or(mkdir(path, Mode::from_raw_mode(0o777)), path)
            }
            _ => Err(Errno::NOENT),
        },
        done => exists_or(done, path),
    }
}

/// A mkdir's outcome where an existing directory counts as made.
fn exists_or(done: Result<(), Errno>, path: &Path) -> Result<(), Errno> {
    match done {
        Err(Errno::EXIST) if stat(path).is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory) => {
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_what_is_missing_and_accepts_what_is_there() {
        let base = std::env::temp_dir().join(format!("oi-mkdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        mkdir_all(base.join("a/b/c")).unwrap();
        assert!(base.join("a/b/c").is_dir());
        mkdir_all(base.join("a/b")).unwrap();
        mkdir_all(base.join("a/b/c/")).unwrap();
        std::fs::write(base.join("a/file"), "x").unwrap();
        let in_the_way = mkdir_all(base.join("a/file")).unwrap_err();
        assert_eq!(in_the_way.raw_os_error(), Some(Errno::EXIST.raw_os_error()));
        let below_a_file = mkdir_all(base.join("a/file/d")).unwrap_err();
        assert_eq!(below_a_file.raw_os_error(), Some(Errno::NOTDIR.raw_os_error()));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
