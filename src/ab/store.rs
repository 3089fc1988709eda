//! The state record on disk: one preallocated file holding two copies (see `state`). Writing
//! never allocates, so a full data partition can still record a boot attempt.

use crate::ab::state::{self, State, BLOCK, COPY_STRIDE, FILE_LEN};
use crate::fs::careful::open_regular;
use crate::rt::path::Path;
use crate::rt::Why;
use rustix::fd::OwnedFd;
use rustix::fs::{fdatasync, flock, fsync, open, FlockOperation, Mode, OFlags};
use rustix::io::{pread, pwrite, Errno};

pub struct Store {
    fd: OwnedFd,
    /// The file was created by this open (the first boot on this data partition).
    pub created: bool,
    /// Which copy holds the newest valid state, and its generation.
    newest: Option<(usize, u64)>,
}

/// What was found on disk, for the boot report and `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    Valid,
    /// No record yet: the first boot on this data partition, the default is what is wanted.
    New,
    /// No valid copy (new file, or both copies corrupt): the documented default is used.
    Default(&'static str),
}

impl Store {
    /// Opens the state file for a read-modify-write, creating and preallocating it (zeroes,
    /// fsynced with its directory) when missing, and holds an exclusive `flock` on it until the
    /// Store is dropped, so that two writers (RAUC and the CLI) cannot lose each other's update.
    /// Returns the newest valid state, or None. A symlink or a non-regular file is refused.
    pub fn open(path: &Path) -> Result<(Store, Option<State>), Errno> {
        let (fd, created) = match open_regular(path, OFlags::RDWR) {
            Ok(fd) => (fd, false),
            Err(Errno::NOENT) => (create(path)?, true),
            Err(e) => return Err(e),
        };
        flock(&fd, FlockOperation::LockExclusive)?;
        let (newest, st) = read_copies(&fd);
        Ok((Store { fd, created, newest }, st))
    }

    /// Writes `st` with the next generation into the older copy and waits for the disk.
    pub fn save(&mut self, st: &mut State) -> Result<(), Errno> {
        // Wrapping: `state::newer` compares generations as serial numbers.
        let (target, generation) = match self.newest {
            Some((i, g)) => (1 - i, g.wrapping_add(1)),
            None => (0, st.generation.wrapping_add(1)),
        };
        st.generation = generation;
        let block = st.encode();
        let n = pwrite(&self.fd, &block, target as u64 * COPY_STRIDE)?;
        if n != BLOCK {
            return Err(Errno::IO);
        }
        fdatasync(&self.fd)?;
        self.newest = Some((target, generation));
        Ok(())
    }
}

/// Reads the state without creating the file or writing anything (`status`, `get-state`); a
/// shared lock waits for a writer in progress. Ok(None) when there is no state file yet.
pub fn read_only(path: &Path) -> Result<Option<State>, Errno> {
    let fd = match open_regular(path, OFlags::RDONLY) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    flock(&fd, FlockOperation::LockShared)?;
    Ok(read_copies(&fd).1)
}

/// Both copies, and the newest valid one with its index and generation.
fn read_copies(fd: &OwnedFd) -> (Option<(usize, u64)>, Option<State>) {
    let mut copies = [[0u8; BLOCK]; 2];
    for (i, c) in copies.iter_mut().enumerate() {
        // A short read leaves zeroes, which decode as invalid.
        let _ = pread(fd, &mut c[..], i as u64 * COPY_STRIDE);
    }
    let picked = state::pick([&copies[0], &copies[1]]);
    let newest = picked.as_ref().map(|(s, i)| (*i, s.generation));
    (newest, picked.map(|(s, _)| s))
}

fn create(path: &Path) -> Result<OwnedFd, Errno> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    crate::fs::mkdir::mkdir_all(dir).map_err(|e| e.raw_os_error().map_or(Errno::IO, Errno::from_raw_os_error))?;
    let tmp = path.with_extension("new");
    // A stale .new (a power cut during an earlier creation) is removed, never opened: it could be
    // a symlink planted to make us truncate another file.
    match rustix::fs::unlink(&tmp) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(e),
    }
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = open(&tmp, flags, Mode::from_raw_mode(0o600))?;
    let zeroes = vec![0u8; FILE_LEN as usize];
    if pwrite(&fd, &zeroes, 0)? != zeroes.len() {
        return Err(Errno::NOSPC);
    }
    fsync(&fd)?;
    // Appear whole or not at all: a power cut mid-creation leaves only the .new file.
    rustix::fs::rename(&tmp, path)?;
    let dirfd = open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    fsync(&dirfd)?;
    Ok(fd)
}

/// Loads the state or the documented default (slot a, good), saying which.
pub fn load_or_default(path: &Path, tries: u8) -> (Option<Store>, State, Loaded) {
    match Store::open(path) {
        Ok((store, Some(st))) => (Some(store), st, Loaded::Valid),
        Ok((store, None)) if store.created => (Some(store), State::factory(tries), Loaded::New),
        Ok((store, None)) => (Some(store), State::factory(tries), Loaded::Default("no valid copy of the state record")),
        Err(e) => {
            log::warn!("cannot open the slot state {}: {e}; booting slot a uncounted", path.display(), e = Why(e));
            (None, State::factory(tries), Loaded::Default("the state file cannot be opened"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ab::state::SlotId;

    #[test]
    fn writes_alternate_and_survive_a_torn_copy() {
        let dir = std::env::temp_dir().join(format!("oi-store-{}", std::process::id()));
        let path = dir.join("state");
        let _ = std::fs::remove_dir_all(&dir);
        let (mut store, st) = Store::open(&path).unwrap();
        assert_eq!(st, None);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), FILE_LEN);
        let mut st = State::factory(3);
        store.save(&mut st).unwrap();
        st.active = SlotId::B;
        store.save(&mut st).unwrap();
        assert_eq!(st.generation, 2);
        drop(store); // release the lock
        let (_, back) = Store::open(&path).unwrap();
        assert_eq!(back.as_ref().map(|s| s.active), Some(SlotId::B));
        // Tear the newest copy (generation 2 went to copy 1): the previous state stands.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[COPY_STRIDE as usize + 40] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (mut store, back) = Store::open(&path).unwrap();
        let mut back = back.unwrap();
        assert_eq!((back.generation, back.active), (1, SlotId::A));
        // The next write goes over the torn copy, not over the last good one.
        store.save(&mut back).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(State::decode(&bytes[..BLOCK]).map(|s| s.generation), Some(1));
        assert_eq!(State::decode(&bytes[COPY_STRIDE as usize..]).map(|s| s.generation), Some(2));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn readers_never_create_and_symlinks_are_refused() {
        let dir = std::env::temp_dir().join(format!("oi-store-ro-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state");
        assert_eq!(read_only(&path), Ok(None));
        assert!(!path.exists(), "a read created the state file");
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert!(Store::open(&path).is_err());
        assert!(read_only(&path).is_err());
        std::fs::remove_file(&path).unwrap();
        // A planted state.new symlink is removed, not truncated through.
        std::os::unix::fs::symlink(&victim, dir.join("state.new")).unwrap();
        let (_, st) = Store::open(&path).unwrap();
        assert_eq!(st, None);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_wrapped_generation_is_still_the_newest() {
        let dir = std::env::temp_dir().join(format!("oi-store-wrap-{}", std::process::id()));
        let path = dir.join("state");
        let _ = std::fs::remove_dir_all(&dir);
        let (mut store, _) = Store::open(&path).unwrap();
        let mut st = State::factory(3);
        st.generation = u64::MAX - 1;
        store.save(&mut st).unwrap(); // MAX
        st.active = SlotId::B;
        store.save(&mut st).unwrap(); // wraps to 0
        assert_eq!(st.generation, 0);
        drop(store);
        let back = read_only(&path).unwrap().unwrap();
        assert_eq!((back.generation, back.active), (0, SlotId::B));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writers_are_serialised() {
        let dir = std::env::temp_dir().join(format!("oi-store-lock-{}", std::process::id()));
        let path = dir.join("state");
        let _ = std::fs::remove_dir_all(&dir);
        let (mut store, _) = Store::open(&path).unwrap();
        let mut st = State::factory(3);
        store.save(&mut st).unwrap();
        let p = path.clone();
        // Each thread does read-modify-write of `boots`; without the lock updates get lost.
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        let (mut s, st) = Store::open(&p).unwrap();
                        let mut st = st.unwrap();
                        st.boots += 1;
                        s.save(&mut st).unwrap();
                    }
                })
            })
            .collect();
        drop(store);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(read_only(&path).unwrap().unwrap().boots, 100);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
