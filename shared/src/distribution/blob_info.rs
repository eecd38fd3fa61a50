//! What ci-push learnt about blobs, kept across runs in
//! `ROOT/distribution/blob-info.json` (the role of containers/image's
//! blob-info cache and docker's distribution metadata):
//!
//! - the compressed form of each local (uncompressed) layer: diff_id plus
//!   compressor → digest and size. Compression is deterministic, so this
//!   stays true, and a second push of the same image is HEAD requests only,
//!   with no recompression;
//! - the repositories that hold a blob (pushed there or pulled from there),
//!   so a push to another repository of the same registry can mount the
//!   blob instead of uploading it.
//!
//! It is a cache: a missing or damaged file only costs time. Updates are
//! merged under a lock and written atomically.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::Result;
use crate::fsutil;
use crate::lock::Lock;
use crate::store::Store;

/// Repositories remembered per blob (the most recent ones).
const MAX_LOCATIONS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compressed {
    pub digest: Digest,
    pub size: u64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct BlobInfo {
    /// `"<diff_id> <compressor>"` → the compressed blob.
    #[serde(default)]
    compressed: BTreeMap<String, Compressed>,
    /// blob digest → `host/repository` names holding it, newest last.
    #[serde(default)]
    locations: BTreeMap<Digest, Vec<String>>,
}

fn path(store: &Store) -> std::path::PathBuf {
    store.root().join("distribution").join("blob-info.json")
}

impl BlobInfo {
    /// Load the cache (empty if absent or unreadable).
    pub fn load(store: &Store) -> BlobInfo {
        std::fs::read(path(store)).ok().and_then(|d| serde_json::from_slice(&d).ok()).unwrap_or_default()
    }

    pub fn compressed(&self, diff_id: &Digest, compressor: &str) -> Option<Compressed> {
        self.compressed.get(&format!("{diff_id} {compressor}")).cloned()
    }

    pub fn set_compressed(&mut self, diff_id: &Digest, compressor: &str, c: Compressed) {
        self.compressed.insert(format!("{diff_id} {compressor}"), c);
    }

    /// Repositories of `host` known to hold a blob, newest first.
    pub fn repos_on(&self, d: &Digest, host: &str) -> Vec<String> {
        let prefix = format!("{host}/");
        self.locations
            .get(d)
            .map(|v| v.iter().rev().filter_map(|l| l.strip_prefix(&prefix).map(str::to_string)).collect())
            .unwrap_or_default()
    }

    pub fn add_location(&mut self, d: &Digest, host: &str, repo: &str) {
        let loc = format!("{host}/{repo}");
        let v = self.locations.entry(d.clone()).or_default();
        v.retain(|l| l != &loc);
        v.push(loc);
        if v.len() > MAX_LOCATIONS {
            v.remove(0);
        }
    }

    /// Merge what this run learnt into the file.
    pub fn save(&self, store: &Store) -> Result<()> {
        let dir = store.root().join("distribution");
        fsutil::mkdir_all(&dir, 0o700)?;
        let _lock = Lock::exclusive(&dir.join("blob-info.lock"))?;
        let mut merged = BlobInfo::load(store);
        merged.compressed.extend(self.compressed.clone());
        for (d, locs) in &self.locations {
            for l in locs {
                if let Some((host, repo)) = l.split_once('/') {
                    merged.add_location(d, host, repo);
                }
            }
        }
        fsutil::write_json_atomic(&path(store), &merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_merges() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = Digest::sha256_of(b"x");
        let mut a = BlobInfo::load(&store);
        a.set_compressed(&d, "gzip-6", Compressed { digest: Digest::sha256_of(b"y"), size: 3 });
        a.add_location(&d, "127.0.0.1:5000", "a/b");
        a.save(&store).unwrap();
        let mut b = BlobInfo::default();
        b.add_location(&d, "127.0.0.1:5000", "c");
        b.save(&store).unwrap();
        let c = BlobInfo::load(&store);
        assert_eq!(c.compressed(&d, "gzip-6").unwrap().size, 3);
        assert_eq!(c.compressed(&d, "zstd-3"), None);
        assert_eq!(c.repos_on(&d, "127.0.0.1:5000"), vec!["c", "a/b"]);
        assert!(c.repos_on(&d, "127.0.0.1:5001").is_empty());
    }
}
