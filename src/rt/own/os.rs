//! std's `os::unix` and `os::fd` extension traits, for the types of `rt`.

pub mod fd {
    pub use rustix::fd::{AsRawFd, RawFd};
}

pub mod unix {
    pub mod ffi {
        use crate::rt::own::ffi::OsStr;

        pub trait OsStrExt {
            fn from_bytes(b: &[u8]) -> &Self;
            fn as_bytes(&self) -> &[u8];
        }

        impl OsStrExt for OsStr {
            fn from_bytes(b: &[u8]) -> &OsStr {
                OsStr::from_raw(b)
            }
            fn as_bytes(&self) -> &[u8] {
                OsStr::bytes(self)
            }
        }
    }

    pub mod fs {
        use crate::rt::own::fs::{File, FileType, Metadata, OpenOptions, Permissions};
        use crate::rt::own::io;
        use crate::rt::own::path::Path;
        use rustix::fs::{AtFlags, CWD};

        pub fn symlink<P: AsRef<Path>, Q: AsRef<Path>>(original: P, link: Q) -> io::Result<()> {
            let (o, l) = (original.as_ref().as_os_str().bytes(), link.as_ref().as_os_str().bytes());
            Ok(rustix::fs::symlinkat(o, CWD, l)?)
        }

        pub fn lchown<P: AsRef<Path>>(path: P, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
            let uid = uid.map(rustix::process::Uid::from_raw);
            let gid = gid.map(rustix::process::Gid::from_raw);
            let p = path.as_ref().as_os_str().bytes();
            Ok(rustix::fs::chownat(CWD, p, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?)
        }

        pub trait MetadataExt {
            fn mode(&self) -> u32;
            fn uid(&self) -> u32;
            fn gid(&self) -> u32;
            fn rdev(&self) -> u64;
            fn size(&self) -> u64;
            fn atime(&self) -> i64;
            fn atime_nsec(&self) -> i64;
            fn mtime(&self) -> i64;
            fn mtime_nsec(&self) -> i64;
        }

        // The stat fields' widths differ between targets (32-bit ARM's are narrower).
        #[allow(clippy::unnecessary_cast)]
        impl MetadataExt for Metadata {
            fn mode(&self) -> u32 {
                self.0.st_mode
            }
            fn uid(&self) -> u32 {
                self.0.st_uid
            }
            fn gid(&self) -> u32 {
                self.0.st_gid
            }
            fn rdev(&self) -> u64 {
                self.0.st_rdev
            }
            fn size(&self) -> u64 {
                self.0.st_size as u64
            }
            fn atime(&self) -> i64 {
                self.0.st_atime as i64
            }
            fn atime_nsec(&self) -> i64 {
                self.0.st_atime_nsec as i64
            }
            fn mtime(&self) -> i64 {
                self.0.st_mtime as i64
            }
            fn mtime_nsec(&self) -> i64 {
                self.0.st_mtime_nsec as i64
            }
        }

        pub trait PermissionsExt {
            fn from_mode(mode: u32) -> Self;
        }

        impl PermissionsExt for Permissions {
            fn from_mode(mode: u32) -> Permissions {
                Permissions(mode)
            }
        }

        pub trait FileTypeExt {
            fn is_block_device(&self) -> bool;
            fn is_char_device(&self) -> bool;
        }

        impl FileTypeExt for FileType {
            fn is_block_device(&self) -> bool {
                self.0 == rustix::fs::FileType::BlockDevice
            }
            fn is_char_device(&self) -> bool {
                self.0 == rustix::fs::FileType::CharacterDevice
            }
        }

        pub trait OpenOptionsExt {
            fn mode(&mut self, mode: u32) -> &mut Self;
        }

        impl OpenOptionsExt for OpenOptions {
            fn mode(&mut self, mode: u32) -> &mut Self {
                self.set_mode(mode)
            }
        }

        pub trait FileExt {
            fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
            fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;

            fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
                while !buf.is_empty() {
                    match self.read_at(buf, offset)? {
                        0 => {
                            return Err(io::Error::simple(io::ErrorKind::UnexpectedEof, "failed to fill whole buffer"))
                        }
                        n => {
                            buf = &mut buf[n..];
                            offset += n as u64;
                        }
                    }
                }
                Ok(())
            }

            fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
                while !buf.is_empty() {
                    match self.write_at(buf, offset)? {
                        0 => return Err(io::Error::simple(io::ErrorKind::WriteZero, "failed to write whole buffer")),
                        n => {
                            buf = &buf[n..];
                            offset += n as u64;
                        }
                    }
                }
                Ok(())
            }
        }

        impl FileExt for File {
            fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
                Ok(rustix::io::pread(self, buf, offset)?)
            }
            fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
                Ok(rustix::io::pwrite(self, buf, offset)?)
            }
        }
    }
}
