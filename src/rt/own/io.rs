//! `io::Error` over the kernel's errno, with the C library's text for it, and the `Read`,
//! `Write` and `Seek` traits the boot path uses.

use crate::rt::prelude::*;
use core::fmt;
use rustix::io::Errno;

pub type Result<T> = core::result::Result<T, Error>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    NotFound,
    PermissionDenied,
    AlreadyExists,
    WouldBlock,
    InvalidInput,
    InvalidData,
    TimedOut,
    WriteZero,
    Interrupted,
    Unsupported,
    UnexpectedEof,
    OutOfMemory,
    DirectoryNotEmpty,
    IsADirectory,
    NotADirectory,
    Other,
}

enum Repr {
    Os(Errno),
    Simple(ErrorKind, &'static str),
    Custom(ErrorKind, String),
}

pub struct Error(Repr);

impl Error {
    pub fn new<M: fmt::Display>(kind: ErrorKind, msg: M) -> Error {
        Error(Repr::Custom(kind, msg.to_string()))
    }

    pub(crate) const fn simple(kind: ErrorKind, msg: &'static str) -> Error {
        Error(Repr::Simple(kind, msg))
    }

    pub fn from_raw_os_error(code: i32) -> Error {
        Error(Repr::Os(Errno::from_raw_os_error(code)))
    }

    pub fn last_os_error() -> Error {
        Error(Repr::Os(Errno::from_raw_os_error(super::c::errno())))
    }

    pub fn raw_os_error(&self) -> Option<i32> {
        match &self.0 {
            Repr::Os(e) => Some(e.raw_os_error()),
            _ => None,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match &self.0 {
            Repr::Os(e) => kind_of(*e),
            Repr::Simple(k, _) | Repr::Custom(k, _) => *k,
        }
    }
}

fn kind_of(e: Errno) -> ErrorKind {
    match e {
        Errno::NOENT => ErrorKind::NotFound,
        Errno::PERM | Errno::ACCESS => ErrorKind::PermissionDenied,
        Errno::EXIST => ErrorKind::AlreadyExists,
        Errno::AGAIN => ErrorKind::WouldBlock,
        Errno::INVAL => ErrorKind::InvalidInput,
        Errno::TIMEDOUT => ErrorKind::TimedOut,
        Errno::INTR => ErrorKind::Interrupted,
        Errno::NOSYS | Errno::OPNOTSUPP => ErrorKind::Unsupported,
        Errno::NOMEM => ErrorKind::OutOfMemory,
        Errno::NOTEMPTY => ErrorKind::DirectoryNotEmpty,
        Errno::ISDIR => ErrorKind::IsADirectory,
        Errno::NOTDIR => ErrorKind::NotADirectory,
        _ => ErrorKind::Other,
    }
}

impl From<Errno> for Error {
    fn from(e: Errno) -> Error {
        Error(Repr::Os(e))
    }
}

impl From<alloc::collections::TryReserveError> for Error {
    fn from(_: alloc::collections::TryReserveError) -> Error {
        Error::from(Errno::NOMEM)
    }
}

/// As std prints it: the C library's text, then the number.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Os(e) => crate::rt::why::Why(*e).fmt(f),
            Repr::Simple(_, m) => f.write_str(m),
            Repr::Custom(_, m) => f.write_str(m),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl core::error::Error for Error {}

pub trait Read {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize>;

    fn read_exact(&mut self, mut buf: &mut [u8]) -> Result<()> {
        while !buf.is_empty() {
            match self.read(buf) {
                Ok(0) => return Err(Error::simple(ErrorKind::UnexpectedEof, "failed to fill whole buffer")),
                Ok(n) => buf = &mut buf[n..],
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn read_to_end(&mut self, out: &mut Vec<u8>) -> Result<usize> {
        let start = out.len();
        loop {
            if out.capacity() - out.len() < 4096 {
                out.try_reserve(8192)?;
            }
            let len = out.len();
            out.resize(out.capacity(), 0);
            let got = self.read(&mut out[len..]);
            match got {
                Ok(0) => {
                    out.truncate(len);
                    return Ok(len - start);
                }
                Ok(n) => out.truncate(len + n),
                Err(e) if e.kind() == ErrorKind::Interrupted => out.truncate(len),
                Err(e) => {
                    out.truncate(len);
                    return Err(e);
                }
            }
        }
    }

    fn read_to_string(&mut self, out: &mut String) -> Result<usize> {
        let mut bytes = Vec::new();
        let n = self.read_to_end(&mut bytes)?;
        let s = String::from_utf8(bytes)
            .map_err(|_| Error::simple(ErrorKind::InvalidData, "stream did not contain valid UTF-8"))?;
        out.push_str(&s);
        Ok(n)
    }

    fn take(self, limit: u64) -> Take<Self>
    where
        Self: Sized,
    {
        Take { inner: self, limit }
    }
}

pub trait Write {
    fn write(&mut self, buf: &[u8]) -> Result<usize>;

    fn write_all(&mut self, mut buf: &[u8]) -> Result<()> {
        while !buf.is_empty() {
            match self.write(buf) {
                Ok(0) => return Err(Error::simple(ErrorKind::WriteZero, "failed to write whole buffer")),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> Result<()> {
        // Formatting goes to one buffer, written at once: a log line stays one write.
        let mut s = String::new();
        fmt::write(&mut s, args).map_err(|_| Error::simple(ErrorKind::Other, "formatter error"))?;
        self.write_all(s.as_bytes())
    }
}

impl<W: Write + ?Sized> Write for &mut W {
    fn write(&mut self, buf: &[u8]) -> Result<usize> {
        (**self).write(buf)
    }
}

impl Write for Vec<u8> {
    fn write(&mut self, buf: &[u8]) -> Result<usize> {
        self.extend_from_slice(buf);
        Ok(buf.len())
    }
}

impl Read for &[u8] {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let n = buf.len().min(self.len());
        buf[..n].copy_from_slice(&self[..n]);
        *self = &self[n..];
        Ok(n)
    }
}

pub struct Take<R> {
    inner: R,
    limit: u64,
}

impl<R: Read> Read for Take<R> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.limit == 0 {
            return Ok(0);
        }
        let max = buf.len().min(usize::try_from(self.limit).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.limit -= n as u64;
        Ok(n)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeekFrom {
    Start(u64),
    End(i64),
}

pub trait Seek {
    fn seek(&mut self, pos: SeekFrom) -> Result<u64>;
}

/// The standard streams, unbuffered: each `write!` is one write(2).
pub struct Stdio(i32);

pub fn stderr() -> Stdio {
    Stdio(2)
}

pub fn stdout() -> Stdio {
    Stdio(1)
}

impl Write for Stdio {
    fn write(&mut self, buf: &[u8]) -> Result<usize> {
        // SAFETY: a descriptor number, only written to: if the stream is closed, the write
        // fails with EBADF.
        #[allow(unsafe_code)]
        let fd = unsafe { rustix::fd::BorrowedFd::borrow_raw(self.0) };
        Ok(rustix::io::write(fd, buf)?)
    }
}
