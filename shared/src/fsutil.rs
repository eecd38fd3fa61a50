//! Durable file updates. A reader must see the old content or the new, never
//! a mixture, and a crash (even `kill -9` or power loss) must not leave a
//! half-written file under a real name. The recipe is always the same:
//! write a temporary file in the same directory, fsync it, rename it over
//! the target, fsync the directory so the rename itself is on disk.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// Atomically replace `path` with `data` (temp + fsync + rename + fsync dir).
///
/// The new content is written into an anonymous file (`O_TMPFILE`) that
/// this process flocks before it has any name; it gets a temporary name
/// (`.ci-tmp-*`) only to be renamed over `path`. A process killed between
/// the two leaves that name behind, unlocked: the next atomic write into
/// the same directory removes it (a live writer's is locked, and kept).
/// The file is 0600 (credentials are written this way too).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    remove_dead_temps(dir);
    let mut file = match OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(dir)
    {
        Ok(f) => f,
        // A filesystem without O_TMPFILE (NFS): a named temporary file, as before.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)) => {
            return write_atomic_named(dir, path, data)
        }
        Err(e) => return Err(Error::io("create an anonymous file (O_TMPFILE) in", dir, e)),
    };
    // SAFETY: flock on an fd we own; LOCK_NB on a file nobody else can see never blocks.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(Error::io("flock", dir, std::io::Error::last_os_error()));
    }
    file.write_all(data).ctx("write", path)?;
    file.sync_all().ctx("fsync", path)?;
    let tmp = link_temp_name(&file, dir)?;
    crate::crash::point("write-atomic-renaming");
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("rename into place", path, e));
    }
    drop(file);
    fsync_dir(dir)
}

/// Give an anonymous file a fresh `.ci-tmp-*` name in `dir`.
fn link_temp_name(file: &File, dir: &Path) -> Result<std::path::PathBuf> {
    let src = format!("/proc/self/fd/{}", file.as_raw_fd());
    loop {
        let mut r = [0u8; 8];
        // SAFETY: getrandom into a local buffer.
        let n = unsafe { libc::getrandom(r.as_mut_ptr().cast(), r.len(), 0) };
        if n != r.len() as isize {
            return Err(Error::io("getrandom", dir, std::io::Error::last_os_error()));
        }
        let tmp = dir.join(format!("{TEMP_PREFIX}{}", hex::encode(r)));
        match nix::unistd::linkat(nix::fcntl::AT_FDCWD, src.as_str(), nix::fcntl::AT_FDCWD, &tmp, nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW) {
            Ok(()) => return Ok(tmp),
            Err(nix::errno::Errno::EEXIST) => continue,
            Err(e) => return Err(Error::io("link a temporary file into", dir, e.into())),
        }
    }
}

/// [`write_atomic`] where `O_TMPFILE` is not available.
fn write_atomic_named(dir: &Path, path: &Path, data: &[u8]) -> Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .ctx("create a temporary file in", dir)?;
    // SAFETY: flock on an fd we own.
    unsafe { libc::flock(tmp.as_file().as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    tmp.write_all(data).ctx("write", tmp.path())?;
    tmp.as_file().sync_all().ctx("fsync", tmp.path())?;
    tmp.persist(path).map_err(|e| e.error).ctx("rename into place", path)?;
    fsync_dir(dir)
}

/// The name prefix of [`write_atomic`]'s temporary files.
const TEMP_PREFIX: &str = ".ci-tmp-";

/// Remove the temporary files of atomic writes whose writer died: those
/// whose flock can be taken. Best effort: a failure leaves them for later.
pub fn remove_dead_temps(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if !e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let p = e.path();
        let Ok(f) = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK).open(&p) else {
            continue;
        };
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            continue; // a live writer holds it
        }
        // Still the same file under that name (not renamed away meanwhile)?
        let same = match (f.metadata(), fs::symlink_metadata(&p)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if same {
            let _ = fs::remove_file(&p);
        }
    }
}

/// Serialise `value` as JSON and write it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut data = serde_json::to_vec_pretty(value).expect("our own types always serialise");
    data.push(b'\n');
    write_atomic(path, &data)
}

/// Make a directory's entries (a rename, a new file) durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).ctx("fsync directory", dir)
}

/// `mkdir -p` with a mode for the directories it creates.
pub fn mkdir_all(path: &Path, mode: u32) -> Result<()> {
    fs::DirBuilder::new().recursive(true).mode(mode).create(path).ctx("create directory", path)
}

/// Open a file for reading without following a symlink at its last component.
pub fn open_nofollow(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ctx("open", path)
}

/// Remove a file or a whole tree; a missing path is not an error.
pub fn remove_all(path: &Path) -> Result<()> {
    let res = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    match res {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r.ctx("remove", path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_temporaries_go_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("index.json");
        write_atomic(&target, b"one").unwrap();
        // What a writer killed between naming and renaming leaves: an unlocked temp name.
        let dead = dir.path().join(".ci-tmp-dead");
        fs::write(&dead, b"half").unwrap();
        // A live writer's temp: locked.
        let live = dir.path().join(".ci-tmp-live");
        let f = File::create(&live).unwrap();
        assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
        write_atomic(&target, b"two").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        assert!(!dead.exists(), "a dead writer's temp file is removed");
        assert!(live.exists(), "a live writer's temp file is kept");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
