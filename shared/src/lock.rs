//! Advisory locks between ci processes (`flock(2)`), one lock file per kind
//! of resource under `ROOT/locks/`. There is no daemon to serialise
//! changes, so every read-modify-write of shared metadata (the image
//! index, a container's state, the volume list) holds the lock of its kind.
//! The kernel drops a flock when its holder dies, so `kill -9` never
//! leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

/// A held lock; dropping it releases the lock.
pub struct Lock {
    _flock: Flock<File>,
    path: PathBuf,
}

impl Lock {
    fn take(path: &Path, arg: FlockArg) -> Result<Lock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| Error::io("open lock file", path, e))?;
        let flock = Flock::lock(file, arg)
            .map_err(|(_, errno)| Error::io("flock", path, std::io::Error::from(errno)))?;
        Ok(Lock { _flock: flock, path: path.to_path_buf() })
    }

    /// Wait for exclusive use (writers).
    pub fn exclusive(path: &Path) -> Result<Lock> {
        Lock::take(path, FlockArg::LockExclusive)
    }

    /// Wait for shared use (readers that need a consistent view of several files).
    pub fn shared(path: &Path) -> Result<Lock> {
        Lock::take(path, FlockArg::LockShared)
    }

    /// Take the lock only if nobody holds it; `None` if someone does.
    pub fn try_exclusive(path: &Path) -> Result<Option<Lock>> {
        match Lock::take(path, FlockArg::LockExclusiveNonblock) {
            Ok(l) => Ok(Some(l)),
            Err(e) if e.errno() == Some(libc::EWOULDBLOCK) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
