//! Blobs on their way into the store.
//!
//! A pull (or an archive load) first writes every blob it fetches into a
//! staging store, `ROOT/distribution/incoming/`, with the same contract as
//! the image store (hashed while written, named only when digest and size
//! match). Only when the whole image is there and checked are the blobs
//! hard-linked into `ROOT/images/blobs/` and the manifest named in the
//! index. So:
//!
//! - a pull that fails — a lying registry, a truncated stream, a malformed
//!   archive — leaves the image store exactly as it was;
//! - a pull that is interrupted (Ctrl-C, a dropped connection, a crash)
//!   keeps the blobs it had verified in staging, and the next pull of an
//!   image sharing them does not fetch them again;
//! - staged blobs nobody claimed for a week are removed.

use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::store::Store;

/// Staged blobs older than this are abandoned pulls.
const STALE: Duration = Duration::from_secs(7 * 24 * 3600);

pub struct Ingest<'s> {
    store: &'s Store,
    staging: Store,
}

/// Where a pull stages its blobs.
pub fn staging_root(store: &Store) -> std::path::PathBuf {
    store.root().join("distribution").join("incoming")
}

impl<'s> Ingest<'s> {
    pub fn open(store: &'s Store) -> Result<Ingest<'s>> {
        fsutil::mkdir_all(&store.root().join("distribution"), 0o700)?;
        let staging = Store::open(&staging_root(store))?;
        let ingest = Ingest { store, staging };
        ingest.expire();
        Ok(ingest)
    }

    fn expire(&self) {
        let Ok(blobs) = self.staging.list_blobs() else { return };
        let now = SystemTime::now();
        for d in blobs {
            let p = self.staging.blob_path(&d);
            let old = std::fs::metadata(&p).and_then(|m| m.modified()).map(|t| now.duration_since(t).unwrap_or_default() > STALE);
            if old.unwrap_or(false) {
                let _ = fsutil::remove_all(&p);
            }
        }
    }

    /// Whether a blob is already here (in the store or staged).
    pub fn has(&self, d: &Digest) -> bool {
        self.store.has_blob(d) || self.staging.has_blob(d)
    }

    /// Stream a blob in. Reads at most `size + 1` bytes: a source that
    /// sends more than it declared, or less, or other bytes, is refused and
    /// nothing is kept.
    pub fn write(&self, d: &Digest, size: u64, r: &mut dyn Read, what: &str) -> Result<()> {
        let mut w = self.staging.blob_writer()?;
        let n = io::copy(&mut r.take(size + 1), &mut w).map_err(|e| match super::from_io(e, "read", what) {
            e @ Error::Io { .. } => e.hint("the transfer was cut short; run the same command again: blobs already verified are not fetched again"),
            e => e,
        })?;
        if n > size {
            return Err(Error::Corrupt(format!("{what}: more bytes arrived than the {size} its descriptor declares")));
        }
        if n < size {
            return Err(Error::Corrupt(format!("{what}: the stream ended after {n} of {size} bytes (truncated)"))
                .hint("run the same command again; if it keeps happening the source is damaged"));
        }
        w.commit(Some(d), Some(size)).map_err(|e| match e {
            Error::Corrupt(m) => Error::Corrupt(format!("{what}: {m}"))
                .hint("nothing was stored; the source served bytes that are not the blob it names"),
            e => e,
        })?;
        Ok(())
    }

    /// Store bytes already in memory under their digest (a manifest).
    pub fn write_bytes(&self, d: &Digest, data: &[u8], what: &str) -> Result<()> {
        self.write(d, data.len() as u64, &mut &data[..], what)
    }

    /// Stream in a blob whose digest is not known in advance (a layer of a
    /// `docker save` archive stored as it is); returns its digest and size.
    pub fn write_unnamed(&self, r: &mut dyn Read, what: &str) -> Result<(Digest, u64)> {
        let mut w = self.staging.blob_writer()?;
        io::copy(r, &mut w).map_err(|e| super::from_io(e, "read", what))?;
        w.flush().map_err(|e| Error::io("write", what, e))?;
        w.commit(None, None)
    }

    /// Open a blob that is here, in the store or staged.
    pub fn open_blob(&self, d: &Digest) -> Result<std::fs::File> {
        if self.store.has_blob(d) {
            self.store.open_blob(d)
        } else {
            self.staging.open_blob(d)
        }
    }

    /// Read a small blob (a config) that is here, verifying it, up to `limit` bytes.
    pub fn read_small(&self, d: &Digest, limit: u64, what: &str) -> Result<Vec<u8>> {
        let store = if self.store.has_blob(d) { self.store } else { &self.staging };
        let size = store.blob_size(d)?;
        if size > limit {
            return Err(Error::Corrupt(format!("{what} is {size} bytes, more than the limit of {limit}")));
        }
        store.read_blob(d)
    }

    /// Give the store every staged blob of an image (the caller holds the
    /// Gc lock shared until the image is in the index).
    pub fn commit(&self, digests: &[Digest]) -> Result<()> {
        let mut linked = false;
        for d in digests {
            if self.store.has_blob(d) {
                continue;
            }
            let staged = self.staging.blob_path(d);
            let dest = self.store.blob_path(d);
            match std::fs::hard_link(&staged, &dest) {
                Ok(()) => linked = true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                    // Staging on another filesystem (a bind mount): copy, verifying again.
                    let mut w = self.store.blob_writer()?;
                    let mut f = self.staging.open_blob(d)?;
                    io::copy(&mut f, &mut w).ctx("copy blob", &staged)?;
                    w.commit(Some(d), None)?;
                }
                Err(e) => return Err(Error::io("link blob into the store", &dest, e)),
            }
        }
        if linked {
            fsutil::fsync_dir(self.store.blob_path(&digests[0]).parent().unwrap_or(Path::new(".")))?;
        }
        Ok(())
    }

    /// Drop the staged copies of blobs now in the store.
    pub fn cleanup(&self, digests: &[Digest]) {
        for d in digests {
            if self.store.has_blob(d) {
                let _ = fsutil::remove_all(&self.staging.blob_path(d));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lies_are_refused_and_truth_is_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ing = Ingest::open(&store).unwrap();
        let data = b"hello blob";
        let d = Digest::sha256_of(data);
        assert!(ing.write(&d, 10, &mut &b"hello blub"[..], "b").unwrap_err().to_string().contains("not the blob"));
        assert!(ing.write(&d, 10, &mut &b"hello"[..], "b").unwrap_err().to_string().contains("truncated"));
        assert!(ing.write(&d, 9, &mut &data[..], "b").unwrap_err().to_string().contains("more bytes"));
        assert!(!ing.has(&d));
        ing.write(&d, 10, &mut &data[..], "b").unwrap();
        assert!(ing.has(&d) && !store.has_blob(&d), "staged, not yet in the store");
        ing.commit(std::slice::from_ref(&d)).unwrap();
        ing.cleanup(std::slice::from_ref(&d));
        assert_eq!(store.read_blob(&d).unwrap(), data);
        assert!(!ing.staging.has_blob(&d));
    }
}
