//! Pulling: an image from any [`Source`] (a registry, an OCI layout or
//! archive) into the store.
//!
//! 1. Fetch the document the source names; verify it against the digest
//!    it is pinned to, if any; parse and check it ([`super::manifest`]).
//! 2. An index: choose the platform's manifest, fetch it, verify its digest.
//! 3. Fetch the config and layers the store does not have yet, in
//!    parallel, each verified while it streams into staging ([`Ingest`]).
//! 4. Check the config (its diff_ids match the layers).
//! 5. Move the blobs into the store and name the manifest in the index,
//!    holding the Gc lock so garbage collection cannot take them between.
//!
//! The manifest and blobs are stored byte for byte as the source served
//! them: the image keeps the registry's manifest digest, and a push back
//! sends the very same blobs.

use std::io::Read;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{self, Image};
use crate::reference::Reference;
use crate::store::{LockKind, Store};

use super::ingest::Ingest;
use super::manifest::{self, Descriptor, Document, Platform, MAX_CONFIG, MAX_MANIFEST};
use super::progress::{Counting, Progress};

/// The document a source names, with what its transport says about it.
pub struct Root {
    pub bytes: Vec<u8>,
    /// The media type the transport declared (HTTP Content-Type, index.json descriptor).
    pub content_type: Option<String>,
    /// The digest the bytes must have (a pull by digest, an OCI layout entry).
    pub pinned: Option<Digest>,
    /// The names the image gets in the store.
    pub names: Vec<Reference>,
}

/// Somewhere images can be pulled from.
pub trait Source: Sync {
    /// For messages: `127.0.0.1:5000/app:1`, `oci:dir:tag`.
    fn describe(&self) -> String;
    fn root(&self) -> Result<Root>;
    /// A manifest an index points to (the caller verifies it).
    fn manifest(&self, d: &Descriptor) -> Result<Vec<u8>>;
    /// A blob as a stream (the caller verifies it while storing).
    fn blob(&self, d: &Descriptor) -> Result<Box<dyn Read + Send + '_>>;
    /// Called for every blob of a pulled image (registries remember where blobs live).
    fn seen(&self, _digests: &[Digest]) {}
}

#[derive(Debug, Clone)]
pub struct PullOptions {
    pub platform: Platform,
    pub jobs: usize,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions { platform: Platform::host(), jobs: super::DEFAULT_JOBS }
    }
}

/// Pull one image from a source into the store.
pub fn pull(store: &Store, source: &dyn Source, opts: &PullOptions, progress: &Progress) -> Result<Image> {
    let what = source.describe();
    let root = source.root()?;
    if let Some(d) = &root.pinned {
        manifest::verify(&root.bytes, d, &format!("the manifest of {what}"))?;
    }
    let mut bytes = root.bytes;
    let mut digest = root.pinned.clone().unwrap_or_else(|| Digest::sha256_of(&bytes));
    let mut doc = manifest::parse(&bytes, root.content_type.as_deref(), &format!("the manifest of {what}"))?;
    let mut depth = 0;
    while let Document::Index(index) = &doc {
        depth += 1;
        if depth > 2 {
            return Err(Error::Corrupt(format!("{what}: indexes nested more than twice")));
        }
        let d = manifest::choose(index, &opts.platform, &what)?.clone();
        let mwhat = format!("the {} manifest {} of {what}", opts.platform, d.digest);
        if d.size > MAX_MANIFEST {
            return Err(Error::Corrupt(format!("{mwhat} declares {} bytes, more than the limit of {MAX_MANIFEST}", d.size)));
        }
        let b = source.manifest(&d)?;
        manifest::verify(&b, &d.digest, &mwhat)?;
        if b.len() as u64 != d.size {
            return Err(Error::Corrupt(format!("{mwhat} is {} bytes, but the index says {}", b.len(), d.size)));
        }
        doc = manifest::parse(&b, Some(&d.media_type), &mwhat)?;
        bytes = b;
        digest = d.digest;
    }
    let Document::Manifest(m) = doc else { unreachable!("the loop leaves only manifests") };
    if m.config.size > MAX_CONFIG {
        return Err(Error::Corrupt(format!("{what}: its config declares {} bytes, more than the limit of {MAX_CONFIG}", m.config.size)));
    }

    // Until the image is in the index, garbage collection must not run.
    let _gc = store.lock_shared(LockKind::Gc)?;
    let ingest = Ingest::open(store)?;
    let mut wanted: Vec<&Descriptor> = Vec::new();
    for d in std::iter::once(&m.config).chain(&m.layers) {
        if !wanted.iter().any(|w| w.digest == d.digest) {
            wanted.push(d);
        }
    }
    let (present, missing): (Vec<&Descriptor>, Vec<&Descriptor>) = wanted.iter().partition(|d| ingest.has(&d.digest));
    for d in &present {
        progress.task(d.digest.short(), Some(d.size)).finish("already here", Some(d.size));
    }
    super::for_each(&missing, opts.jobs, |_, d| {
        let task = progress.task(d.digest.short(), Some(d.size));
        task.set_message("downloading");
        let bwhat = format!("blob {} of {what}", d.digest);
        let r = source.blob(d)?;
        ingest.write(&d.digest, d.size, &mut Counting { inner: r, task: &task }, &bwhat)?;
        task.finish("downloaded", Some(d.size));
        Ok(())
    })?;
    let all: Vec<Digest> = wanted.iter().map(|d| d.digest.clone()).collect();
    source.seen(&all);

    let config = ingest.read_small(&m.config.digest, MAX_CONFIG, &format!("the config of {what}"))?;
    check_config(&config, m.layers.len(), &what)?;
    ingest.write_bytes(&digest, &bytes, &format!("the manifest of {what}"))?;
    let mut everything = all;
    everything.push(digest.clone());
    ingest.commit(&everything)?;
    crate::crash::point("pull-committed");
    image::add_to_index_as(store, &digest, bytes.len() as u64, &m.media_type, &root.names)?;
    ingest.cleanup(&everything);
    let mut img = Image::load(store, &digest)?;
    img.refs = root.names;
    Ok(img)
}

/// An image config must parse, and list one diff_id per layer.
pub fn check_config(config: &[u8], layers: usize, what: &str) -> Result<()> {
    let v: serde_json::Value = serde_json::from_slice(config)
        .map_err(|e| Error::Corrupt(format!("{what}: its config is not valid JSON: {e}")))?;
    let diff_ids = v
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(|d| d.as_array())
        .ok_or_else(|| Error::Corrupt(format!("{what}: its config has no rootfs.diff_ids")))?;
    for (i, d) in diff_ids.iter().enumerate() {
        let s = d.as_str().unwrap_or("");
        Digest::validate(s).map_err(|e| Error::Corrupt(format!("{what}: diff_id {} ({s:?}) is invalid: {}", i + 1, e.describe())))?;
    }
    if diff_ids.len() != layers {
        return Err(Error::Corrupt(format!(
            "{what}: the manifest has {layers} layers but the config lists {} diff_ids",
            diff_ids.len()
        )));
    }
    serde_json::from_slice::<oci_spec::image::ImageConfiguration>(config)
        .map_err(|e| Error::Corrupt(format!("{what}: its config is not a valid image config: {e}")))?;
    Ok(())
}
