//! Content-addressed blobs: `ROOT/images/blobs/sha256/<hex>`.
//!
//! A blob is written into an anonymous file (`O_TMPFILE`) in the store's
//! `tmp/` directory while it is hashed. Only when the whole stream is in,
//! fsynced and its digest (and size, when known) match what was expected
//! does the file get a name: `linkat` gives the anonymous inode its final
//! path in one step. If the process dies before that, the kernel frees the
//! inode: there is nothing to clean up and nothing half-written is ever visible.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use crate::digest::{Algorithm, Digest, HashingReader, Hasher};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;

use super::Store;

/// A blob being written. Call [`BlobWriter::commit`] to make it visible.
pub struct BlobWriter<'s> {
    store: &'s Store,
    file: io::BufWriter<File>,
    hasher: Hasher,
    size: u64,
}

impl Store {
    /// Path of a blob. Only a validated [`Digest`] can name one.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.images_dir().join("blobs").join(digest.algorithm().as_str()).join(digest.encoded())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).exists()
    }

    /// Size of a stored blob.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64> {
        let p = self.blob_path(digest);
        fs::metadata(&p).map(|m| m.len()).map_err(|e| self.blob_error(digest, &p, e))
    }

    fn blob_error(&self, digest: &Digest, path: &std::path::Path, e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::NotFound {
            Error::Corrupt(format!("blob {digest} is missing from the store ({})", path.display()))
        } else {
            Error::io("open blob", path, e)
        }
    }

    /// Open a blob for streaming. Callers that need integrity use [`Store::read_blob`]
    /// or wrap this in a [`HashingReader`] and check at the end.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let p = self.blob_path(digest);
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&p)
            .map_err(|e| self.blob_error(digest, &p, e))
    }

    /// Read a whole (small) blob — a manifest, a config — and verify its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut r = HashingReader::new(self.open_blob(digest)?, digest.algorithm());
        let mut data = Vec::new();
        r.read_to_end(&mut data).ctx("read blob", self.blob_path(digest))?;
        let (_, actual, _) = r.finish();
        if &actual != digest {
            return Err(Error::Corrupt(format!(
                "blob {} is corrupt: its content hashes to {actual}",
                self.blob_path(digest).display()
            ))
            .hint("remove the damaged image and import or pull it again"));
        }
        Ok(data)
    }

    /// Start writing a new blob.
    pub fn blob_writer(&self) -> Result<BlobWriter<'_>> {
        let tmp = self.tmp_dir();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .open(&tmp)
            .ctx("create an anonymous file (O_TMPFILE) in", &tmp)?;
        Ok(BlobWriter {
            store: self,
            file: io::BufWriter::with_capacity(1 << 20, file),
            hasher: Hasher::new(Algorithm::Sha256),
            size: 0,
        })
    }

    /// Store a small blob from memory; returns its digest and size.
    pub fn put_blob(&self, data: &[u8]) -> Result<(Digest, u64)> {
        let mut w = self.blob_writer()?;
        w.write_all(data).ctx("write blob", self.tmp_dir())?;
        w.commit(None, None)
    }

    /// Remove a blob (garbage collection; the caller holds the images lock).
    pub fn remove_blob(&self, digest: &Digest) -> Result<()> {
        fsutil::remove_all(&self.blob_path(digest))
    }

    /// All blobs in the store.
    pub fn list_blobs(&self) -> Result<Vec<Digest>> {
        let dir = self.images_dir().join("blobs/sha256");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).ctx("read directory", &dir)? {
            let e = e.ctx("read directory", &dir)?;
            if let Some(name) = e.file_name().to_str() {
                if let Ok(d) = Digest::validate(&format!("sha256:{name}")) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl BlobWriter<'_> {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Verify, fsync and give the blob its name. If `expected` is given and
    /// the content hashes differently (or `expected_size` differs), nothing
    /// is stored and the error says so.
    pub fn commit(self, expected: Option<&Digest>, expected_size: Option<u64>) -> Result<(Digest, u64)> {
        let BlobWriter { store, file, hasher, size } = self;
        let tmp = store.tmp_dir();
        let file = file.into_inner().map_err(|e| Error::io("write blob", &tmp, e.into_error()))?;
        let digest = hasher.finish();
        if let Some(want) = expected {
            if want != &digest {
                return Err(Error::Corrupt(format!(
                    "content does not match its digest: expected {want}, got {digest}"
                )));
            }
        }
        if let Some(want) = expected_size {
            if want != size {
                return Err(Error::Corrupt(format!(
                    "content of {digest} is {size} bytes, but {want} were declared"
                )));
            }
        }
        let dest = store.blob_path(&digest);
        if dest.exists() {
            return Ok((digest, size));
        }
        file.sync_all().ctx("fsync blob", &tmp)?;
        // Blobs are immutable: read-only from the moment they have a name.
        file.set_permissions(fs::Permissions::from_mode(0o444)).ctx("chmod blob", &tmp)?;
        let src = format!("/proc/self/fd/{}", file.as_raw_fd());
        match nix::unistd::linkat(
            nix::fcntl::AT_FDCWD,
            src.as_str(),
            nix::fcntl::AT_FDCWD,
            &dest,
            nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
        ) {
            Ok(()) => {}
            Err(nix::errno::Errno::EEXIST) => return Ok((digest, size)), // another writer won: same bytes
            Err(e) => return Err(Error::io("link blob into place", &dest, e.into())),
        }
        crate::crash::point("blob-linked");
        fsutil::fsync_dir(dest.parent().expect("blob paths have a parent"))?;
        Ok((digest, size))
    }
}
