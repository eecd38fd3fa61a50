//! The build cache: what each build step produced, by the step's key.
//!
//! ```text
//! ROOT/build-cache/steps/<key hex>.json    one finished step: its layer (or none)
//! ROOT/build-cache/mounts/<id hash>/       RUN --mount=type=cache directories
//! ROOT/build-cache/stat/<ctx hash>.json    the context's stat cache (see checksum.rs)
//! ```
//!
//! A step's key is a chain: the key of the state before it (which starts
//! from the base image's id, `scratch` or an earlier stage's key) hashed
//! with the step's own part — the instruction after substitution with all
//! its flags, the build arguments a RUN sees, and for COPY/ADD a digest of
//! the copied files' contents and metadata. So a change to one copied file
//! misses that step and every one after it, not those before; a change to
//! only a HEALTHCHECK, an ONBUILD, a flag or a used ARG misses too
//! (CVE-2024-24557). Keys are ours: nothing read from an image (history,
//! ids claimed by its config) can make a hit.
//!
//! An entry is written only after its step succeeded, atomically. Its
//! layer blob is kept by garbage collection as long as the entry exists
//! ([`live_layers`]); `ci-build prune` clears the cache ([`clear`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{IoContext, Result};
use crate::fsutil;
use crate::image::Layer;
use crate::store::{LockKind, Store};

/// Bumped when the meaning of keys changes: older entries then never match.
const KEY_VERSION: &str = "ci-build cache v1";

/// What a step produced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// The layer it added; `None` for steps that only change the config.
    pub layer: Option<StoredLayer>,
    /// When the step was first built: a rebuild from the cache records the
    /// same time, so a fully cached build gives the same image id.
    #[serde(default)]
    pub created: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredLayer {
    pub blob: Digest,
    pub size: u64,
    pub media_type: String,
    pub diff_id: Digest,
}

impl From<&Layer> for StoredLayer {
    fn from(l: &Layer) -> Self {
        StoredLayer { blob: l.blob.clone(), size: l.size, media_type: l.media_type.clone(), diff_id: l.diff_id.clone() }
    }
}

impl From<&StoredLayer> for Layer {
    fn from(l: &StoredLayer) -> Self {
        Layer { blob: l.blob.clone(), size: l.size, media_type: l.media_type.clone(), diff_id: l.diff_id.clone() }
    }
}

/// The key of a state after one more step.
pub fn chain(parent: &Digest, step: &str) -> Digest {
    let mut h = Hasher::new(Algorithm::Sha256);
    h.update(KEY_VERSION.as_bytes());
    h.update(&[0]);
    h.update(parent.to_string().as_bytes());
    h.update(&[0]);
    h.update(step.as_bytes());
    h.finish()
}

/// The key a build starts from for a base (`scratch`, an image id).
pub fn base(what: &str) -> Digest {
    chain(&Digest::sha256_of(KEY_VERSION.as_bytes()), what)
}

pub fn dir(store: &Store) -> PathBuf {
    store.root().join("build-cache")
}

fn steps_dir(store: &Store) -> PathBuf {
    dir(store).join("steps")
}

fn entry_path(store: &Store, key: &Digest) -> PathBuf {
    steps_dir(store).join(format!("{}.json", key.encoded()))
}

/// The entry for `key`, if there is a usable one: an entry whose layer
/// blob has gone (removed by hand) is a miss.
pub fn get(store: &Store, key: &Digest) -> Option<Entry> {
    let data = std::fs::read(entry_path(store, key)).ok()?;
    let entry: Entry = serde_json::from_slice(&data).ok()?;
    if let Some(l) = &entry.layer {
        if !store.has_blob(&l.blob) {
            return None;
        }
    }
    Some(entry)
}

/// Record a finished step.
pub fn put(store: &Store, key: &Digest, entry: &Entry) -> Result<()> {
    let dir = steps_dir(store);
    fsutil::mkdir_all(&dir, 0o700)?;
    fsutil::write_json_atomic(&entry_path(store, key), entry)
}

/// Every layer the cache holds (garbage collection keeps them).
pub fn live_layers(store: &Store) -> Vec<StoredLayer> {
    let Ok(rd) = std::fs::read_dir(steps_dir(store)) else { return Vec::new() };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|d| serde_json::from_slice::<Entry>(&d).ok())
        .filter_map(|e| e.layer)
        .collect()
}

/// What [`clear`] removed.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Cleared {
    pub kind: &'static str,
    pub steps: usize,
    pub cache_mounts: usize,
    pub bytes: u64,
}

/// Forget every cached step, cache mount and stat cache. The layers they
/// held go with the next garbage collection. Waits for running builds
/// (they hold the Gc lock shared).
pub fn clear(store: &Store) -> Result<Cleared> {
    let _gc = store.lock(LockKind::Gc)?;
    let mut c = Cleared { kind: "build-cache", ..Cleared::default() };
    let root = dir(store);
    if let Ok(rd) = std::fs::read_dir(root.join("steps")) {
        c.steps = rd.count();
    }
    if let Ok(rd) = std::fs::read_dir(root.join("mounts")) {
        c.cache_mounts = rd.count();
    }
    if root.exists() {
        c.bytes = du(&root);
        let doomed = store.tmp_dir().join(format!("deleting-build-cache-{}", std::process::id()));
        std::fs::rename(&root, &doomed).ctx("move aside", &root)?;
        fsutil::remove_all(&doomed)?;
    }
    Ok(c)
}

fn du(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::symlink_metadata(p) else { return 0 };
    if !m.is_dir() {
        return m.blocks() * 512;
    }
    std::fs::read_dir(p).map(|rd| rd.filter_map(|e| e.ok()).map(|e| du(&e.path())).sum()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_chain_and_entries_round_trip() {
        let a = base("scratch");
        assert_ne!(chain(&a, "COPY x /"), chain(&a, "COPY y /"));
        assert_ne!(chain(&chain(&a, "ENV A=1"), "RUN x"), chain(&chain(&a, "ENV A=2"), "RUN x"));
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (blob, size) = store.put_blob(b"layer").unwrap();
        let layer = StoredLayer { blob: blob.clone(), size, media_type: "t".into(), diff_id: blob };
        let k = chain(&a, "RUN x");
        assert_eq!(get(&store, &k), None);
        put(&store, &k, &Entry { layer: Some(layer.clone()), created: None }).unwrap();
        assert_eq!(get(&store, &k).unwrap().layer.unwrap(), layer);
        assert_eq!(live_layers(&store), vec![layer]);
        let c = clear(&store).unwrap();
        assert_eq!(c.steps, 1);
        assert_eq!(get(&store, &k), None);
    }
}
