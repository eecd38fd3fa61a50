//! Images in files: `docker save` tarballs ([`docker_archive`]), OCI image
//! layouts ([`oci_dir`]) and tars of them ([`oci_archive`]).
//!
//! A tarball is read without extracting it: one pass indexes its entries
//! ([`TarIndex`]: name → offset and size), then each blob is streamed from
//! its offset straight into the store, verified. Entry names are matched
//! exactly, after removing a leading `./`; a name with `..` or a leading
//! `/` is never looked up (CVE-2014-9358).

pub mod docker_archive;
pub mod oci_archive;
pub mod oci_dir;

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// The most entries an archive may have (an image has a few per layer).
const MAX_ENTRIES: usize = 100_000;

/// Where each regular file of a tarball is.
pub struct TarIndex {
    path: PathBuf,
    /// How messages name the archive (its path, or `stdin` for a spooled copy).
    name: String,
    entries: HashMap<String, (u64, u64)>,
}

/// `./a/b` → `a/b`; names with `..`, empty parts or a leading `/` are refused.
pub fn clean_name(name: &str) -> Option<String> {
    let n = name.trim_start_matches("./");
    if n.is_empty() || n.starts_with('/') || n.split('/').any(|c| c == ".." || c == ".") {
        return None;
    }
    Some(n.trim_end_matches('/').to_string())
}

impl TarIndex {
    pub fn open(path: &Path) -> Result<TarIndex> {
        TarIndex::open_as(path, &path.display().to_string())
    }

    /// Index the tarball at `path`, naming it `what` in messages.
    pub fn open_as(path: &Path, what: &str) -> Result<TarIndex> {
        let f = File::open(path).ctx("open archive", path)?;
        let len = f.metadata().ctx("stat archive", path)?.len();
        let mut archive = tar::Archive::new(f);
        let bad = |e: std::io::Error| {
            Error::invalid(format!("{}: not a tar archive, or a damaged one: {}", what, e.to_string().lines().next().unwrap_or("")))
        };
        let mut entries = HashMap::new();
        // Seek over the data of each entry instead of reading it.
        for entry in archive.entries_with_seek().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            if entries.len() >= MAX_ENTRIES {
                return Err(Error::invalid(format!("{}: more than {MAX_ENTRIES} entries; not an image archive", what)));
            }
            // Seeking past the end raises nothing: check that the data is there.
            if entry.raw_file_position().saturating_add(entry.size()) > len {
                let raw = entry.path().map(|p| p.to_string_lossy().to_string()).unwrap_or_default();
                return Err(Error::invalid(format!(
                    "{what}: a truncated archive: {raw:?} needs {} bytes, but the archive ends {} bytes into it",
                    entry.size(),
                    len.saturating_sub(entry.raw_file_position())
                )));
            }
            let kind = entry.header().entry_type();
            if !kind.is_file() {
                continue;
            }
            let raw = entry.path().map_err(bad)?.to_string_lossy().to_string();
            let Some(name) = clean_name(&raw) else { continue };
            if entries.insert(name.clone(), (entry.raw_file_position(), entry.size())).is_some() {
                return Err(Error::invalid(format!("{}: malformed archive: {name} appears twice", what)));
            }
        }
        if entries.is_empty() {
            return Err(Error::invalid(format!("{}: an empty archive (no files)", what)));
        }
        Ok(TarIndex { path: path.to_path_buf(), name: what.to_string(), entries })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The archive as messages name it.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn contains(&self, name: &str) -> bool {
        clean_name(name).is_some_and(|n| self.entries.contains_key(&n))
    }

    /// Size of an entry.
    pub fn size(&self, name: &str) -> Option<u64> {
        clean_name(name).and_then(|n| self.entries.get(&n).map(|e| e.1))
    }

    /// Open an entry's data for reading.
    pub fn open_entry(&self, name: &str) -> Result<(Box<dyn Read + Send>, u64)> {
        let (off, size) = clean_name(name).and_then(|n| self.entries.get(&n).copied()).ok_or_else(|| {
            Error::invalid(format!("{}: malformed archive: it has no file {name:?}", self.name))
        })?;
        let mut f = File::open(&self.path).ctx("open archive", &self.path)?;
        f.seek(SeekFrom::Start(off)).ctx("seek in archive", &self.path)?;
        Ok((Box::new(f.take(size)), size))
    }

    /// Read a small entry whole, refusing more than `limit` bytes.
    pub fn read_small(&self, name: &str, limit: u64) -> Result<Vec<u8>> {
        let (mut r, size) = self.open_entry(name)?;
        if size > limit {
            return Err(Error::invalid(format!("{}: {name} is {size} bytes, more than the limit of {limit}", self.name)));
        }
        let mut data = Vec::with_capacity(size as usize);
        r.read_to_end(&mut data).ctx("read archive", &self.path)?;
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_or_refused() {
        assert_eq!(clean_name("./manifest.json").as_deref(), Some("manifest.json"));
        assert_eq!(clean_name("blobs/sha256/ab").as_deref(), Some("blobs/sha256/ab"));
        for bad in ["../../x", "/etc/passwd", "a/../b", "", "./"] {
            assert_eq!(clean_name(bad), None, "{bad}");
        }
    }
}
