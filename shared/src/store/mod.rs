//! The on-disk store under one root directory (default `/var/lib/ci`).
//!
//! ```text
//! ROOT/images/            an OCI image layout: oci-layout, index.json, blobs/sha256/<hex>
//! ROOT/layers/<hex>/      unpacked layers, by diff_id (the lower dirs of overlayfs)
//! ROOT/containers/<id>/   one directory per container
//! ROOT/tmp/               work in progress; removed when its owner is gone
//! ROOT/locks/<kind>.lock  one flock per kind of resource
//! ```
//!
//! Contract: a blob appears under its name only after its digest and size
//! were verified and its bytes fsynced; metadata files are replaced
//! atomically (see [`crate::fsutil`]); read-modify-write cycles hold the
//! lock of their kind. So a crash at any instant leaves a store that the
//! next command reads without error, and two commands never corrupt each other.

mod blobs;
pub mod index;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

pub use blobs::BlobWriter;

use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::lock::Lock;

/// The default root when neither `--root` nor `$CIROOT` is given.
pub const DEFAULT_ROOT: &str = "/var/lib/ci";
/// The environment variable that overrides the root (not `CI_*`: CI systems own that prefix).
pub const ROOT_ENV: &str = "CIROOT";

/// Kinds of resources, each with its own lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    Images,
    Layers,
    Containers,
    Volumes,
    Networks,
    /// Held shared while a temporary entry is being created, exclusive while cleaning up.
    Tmp,
    /// Held shared by every writer of new blobs (import, pull, build) until
    /// its image is in the index; exclusive by garbage collection, which
    /// would otherwise delete blobs that nothing names yet.
    Gc,
}

impl LockKind {
    fn file_name(self) -> &'static str {
        match self {
            LockKind::Images => "images.lock",
            LockKind::Layers => "layers.lock",
            LockKind::Containers => "containers.lock",
            LockKind::Volumes => "volumes.lock",
            LockKind::Networks => "networks.lock",
            LockKind::Tmp => "tmp.lock",
            LockKind::Gc => "gc.lock",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

const OCI_LAYOUT: &[u8] = b"{\"imageLayoutVersion\":\"1.0.0\"}\n";

impl Store {
    /// Open (and on first use create) the store at `root`, and clean up
    /// temporary entries that a killed process left behind.
    pub fn open(root: &Path) -> Result<Store> {
        let root = if root.is_absolute() {
            root.to_path_buf()
        } else {
            std::env::current_dir().ctx("get current directory", ".")?.join(root)
        };
        let store = Store { root };
        let layout = store.images_dir().join("oci-layout");
        if !layout.exists() {
            store.create_layout()?;
        }
        store.clean_tmp()?;
        // index.json's temporary name, if its writer was killed before the rename.
        fsutil::remove_dead_temps(&store.images_dir());
        Ok(store)
    }

    fn create_layout(&self) -> Result<()> {
        // 0700: nothing under the store is for unprivileged host users (CVE-2021-41091).
        fsutil::mkdir_all(&self.root, 0o700)?;
        for d in ["images/blobs/sha256", "layers", "containers", "tmp", "locks"] {
            fsutil::mkdir_all(&self.root.join(d), 0o700)?;
        }
        let _lock = self.lock(LockKind::Images)?;
        let index = self.images_dir().join("index.json");
        if !index.exists() {
            index::Index::default().save(&index)?;
        }
        let layout = self.images_dir().join("oci-layout");
        if !layout.exists() {
            fsutil::write_atomic(&layout, OCI_LAYOUT)?;
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The OCI image layout (what `skopeo inspect oci:DIR:REF` reads).
    pub fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }
    pub fn index_path(&self) -> PathBuf {
        self.images_dir().join("index.json")
    }
    /// Where unpacked layers live, one directory per diff_id.
    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Take the lock of one kind of resource (exclusive).
    pub fn lock(&self, kind: LockKind) -> Result<Lock> {
        Lock::exclusive(&self.root.join("locks").join(kind.file_name()))
    }

    /// Take the lock of one kind of resource (shared, for consistent reads).
    pub fn lock_shared(&self, kind: LockKind) -> Result<Lock> {
        Lock::shared(&self.root.join("locks").join(kind.file_name()))
    }

    /// A new temporary directory under `ROOT/tmp`, locked by this process
    /// until the returned guard is dropped (and then removed, unless it was
    /// renamed away with [`TempDir::keep_as`]).
    pub fn temp_dir(&self, prefix: &str) -> Result<TempDir> {
        let _creating = self.lock_shared(LockKind::Tmp)?;
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(self.tmp_dir())
            .ctx("create a temporary directory in", self.tmp_dir())?
            .keep();
        let f = File::open(&dir).ctx("open", &dir)?;
        let flock = Flock::lock(f, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| Error::io("flock", &dir, e.into()))?;
        Ok(TempDir { path: dir, _flock: Some(flock) })
    }

    /// Remove what dead processes left in `ROOT/tmp`: an entry whose flock we
    /// can take has no living owner.
    pub fn clean_tmp(&self) -> Result<()> {
        let tmp = self.tmp_dir();
        let mut entries = match fs::read_dir(&tmp) {
            Ok(e) => e.peekable(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("read directory", &tmp, e)),
        };
        if entries.peek().is_none() {
            return Ok(());
        }
        let _cleaning = self.lock(LockKind::Tmp)?;
        for entry in entries {
            let path = entry.ctx("read directory", &tmp)?.path();
            let Ok(f) = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(&path)
            else {
                fsutil::remove_all(&path)?;
                continue;
            };
            if let Ok(_held) = Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                fsutil::remove_all(&path)?;
            }
        }
        Ok(())
    }
}

/// A temporary directory owned (flocked) by this process.
pub struct TempDir {
    path: PathBuf,
    _flock: Option<Flock<File>>,
}

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rename the directory to its final place (atomic on one filesystem).
    /// If `dest` already exists (another process finished first), the
    /// temporary copy is discarded and `Ok(false)` is returned.
    pub fn keep_as(mut self, dest: &Path) -> Result<bool> {
        match fs::rename(&self.path, dest) {
            Ok(()) => {
                self.path = PathBuf::new();
                if let Some(parent) = dest.parent() {
                    fsutil::fsync_dir(parent)?;
                }
                Ok(true)
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => Ok(false),
            Err(e) => Err(Error::io("rename into place", dest, e)),
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fsutil::remove_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use std::io::Write;

    fn blobs_and_tmp(store: &Store) -> (usize, usize) {
        let count = |p: PathBuf| fs::read_dir(p).map(|d| d.count()).unwrap_or(0);
        (count(store.images_dir().join("blobs/sha256")), count(store.tmp_dir()))
    }

    #[test]
    fn a_writer_killed_mid_write_leaves_nothing_visible() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // A child process writes half a blob and is killed with SIGKILL.
        let (r, w) = nix::unistd::pipe().unwrap();
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let mut bw = store.blob_writer().unwrap();
                bw.write_all(&vec![7u8; 4 << 20]).unwrap();
                bw.flush().unwrap();
                nix::unistd::write(&w, b"x").unwrap();
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let mut b = [0u8; 1];
                nix::unistd::read(&r, &mut b).unwrap();
                nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL).unwrap();
                nix::sys::wait::waitpid(child, None).unwrap();
            }
        }
        assert_eq!(blobs_and_tmp(&store), (0, 0), "a partial blob became visible");
        // And the store is usable: the same content, written fully, lands.
        let (d, n) = store.put_blob(&vec![7u8; 4 << 20]).unwrap();
        assert_eq!(n, 4 << 20);
        assert_eq!(d, Digest::sha256_of(&vec![7u8; 4 << 20]));
        assert_eq!(store.read_blob(&d).unwrap().len(), 4 << 20);
    }

    #[test]
    fn a_wrong_digest_or_size_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut w = store.blob_writer().unwrap();
        w.write_all(b"actual bytes").unwrap();
        let e = w.commit(Some(&Digest::sha256_of(b"claimed bytes")), None).unwrap_err();
        assert!(e.to_string().contains("does not match its digest"), "{e}");
        let mut w = store.blob_writer().unwrap();
        w.write_all(b"actual bytes").unwrap();
        let e = w.commit(Some(&Digest::sha256_of(b"actual bytes")), Some(3)).unwrap_err();
        assert!(e.to_string().contains("declared"), "{e}");
        assert_eq!(blobs_and_tmp(&store), (0, 0));
    }

    #[test]
    fn corrupt_blobs_are_detected_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (d, _) = store.put_blob(b"{\"a\":1}").unwrap();
        let p = store.blob_path(&d);
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        fs::write(&p, b"{\"a\":2}").unwrap();
        assert!(store.read_blob(&d).unwrap_err().to_string().contains("corrupt"));
    }

    #[test]
    fn concurrent_index_writers_lose_no_update() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..10 {
                        let _l = store.lock(LockKind::Images).unwrap();
                        let mut idx = index::Index::load(&store.index_path()).unwrap();
                        let d = Digest::sha256_of(format!("{t}-{i}").as_bytes());
                        idx.add(&d, 1, "application/vnd.oci.image.manifest.v1+json", Some(&format!("x/t{t}:{i}")));
                        idx.save(&store.index_path()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(index::Index::load(&store.index_path()).unwrap().entries().len(), 80);
    }

    #[test]
    fn leftovers_of_dead_owners_are_cleaned_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let live = store.temp_dir("live-").unwrap();
        // A directory nobody holds a lock on: its owner died.
        fs::create_dir(store.tmp_dir().join("dead-1")).unwrap();
        Store::open(dir.path()).unwrap();
        assert!(live.path().exists());
        assert!(!store.tmp_dir().join("dead-1").exists());
        let dest = dir.path().join("kept");
        assert!(live.keep_as(&dest).unwrap());
        assert!(dest.exists());
        assert_eq!(blobs_and_tmp(&store).1, 0);
    }
}
