//! Durable file updates. A reader must see the old content or the new, never
//! a mixture, and a crash (even `kill -9` or power loss) must not leave a
//! half-written file under a real name. The recipe is always the same:
//! write a temporary file in the same directory, fsync it, rename it over
//! the target, fsync the directory so the rename itself is on disk.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{IoContext, Result};

/// Atomically replace `path` with `data` (temp + fsync + rename + fsync dir).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .ctx("create a temporary file in", dir)?;
    tmp.write_all(data).ctx("write", tmp.path())?;
    tmp.as_file().sync_all().ctx("fsync", tmp.path())?;
    tmp.persist(path).map_err(|e| e.error).ctx("rename into place", path)?;
    fsync_dir(dir)
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
