//! Images in the store: what an image is (a manifest naming a config and
//! layers), how a name resolves to one, and the verbs that manage them
//! (list, inspect, tag, remove, prune, history). Importing a rootfs
//! tarball is in [`import`]; making a config from scratch in [`config`].

pub mod config;
pub mod import;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use oci_spec::image::{
    DescriptorBuilder, ImageConfiguration, ImageManifest, ImageManifestBuilder, MediaType,
};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::object::ImageObject;
use crate::reference::{parse_any, AnyReference, Reference};
use crate::store::index::Index;
use crate::store::{LockKind, Store};

/// The media type of an uncompressed layer: the local store keeps layers
/// uncompressed (fast to import, hash and unpack); push compresses.
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// One image: its manifest, its config and the names it has.
#[derive(Debug, Clone)]
pub struct Image {
    /// The image id: the digest of the config (docker's definition).
    pub id: Digest,
    pub manifest_digest: Digest,
    pub manifest_size: u64,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    /// The config exactly as stored. oci-spec's type drops docker's fields
    /// (Healthcheck, OnBuild, Shell...); inspect shows this one.
    pub config_json: serde_json::Value,
    pub refs: Vec<Reference>,
}

/// A layer of an image: the stored blob and the digest of its uncompressed tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub blob: Digest,
    pub size: u64,
    pub media_type: String,
    pub diff_id: Digest,
}

impl Image {
    /// Load an image from its manifest digest, verifying manifest and config.
    pub fn load(store: &Store, manifest_digest: &Digest) -> Result<Image> {
        let data = store.read_blob(manifest_digest)?;
        let manifest: ImageManifest = serde_json::from_slice(&data).map_err(|e| {
            Error::Corrupt(format!("manifest {manifest_digest} is not a valid OCI image manifest: {e}"))
        })?;
        let id = Digest::try_from(manifest.config().digest())?;
        let config_data = store.read_blob(&id)?;
        let config: ImageConfiguration = serde_json::from_slice(&config_data)
            .map_err(|e| Error::Corrupt(format!("config {id} is not a valid OCI image config: {e}")))?;
        let config_json = serde_json::from_slice(&config_data).expect("parsed as a config just above");
        Ok(Image {
            id,
            manifest_digest: manifest_digest.clone(),
            manifest_size: data.len() as u64,
            manifest,
            config,
            config_json,
            refs: Vec::new(),
        })
    }

    /// The layers, bottom first, with their diff_ids from the config.
    pub fn layers(&self) -> Result<Vec<Layer>> {
        let diff_ids = self.config.rootfs().diff_ids();
        if diff_ids.len() != self.manifest.layers().len() {
            return Err(Error::Corrupt(format!(
                "image {}: the manifest lists {} layers but the config {} diff_ids",
                self.id.short(),
                self.manifest.layers().len(),
                diff_ids.len()
            )));
        }
        self.manifest
            .layers()
            .iter()
            .zip(diff_ids)
            .map(|(l, d)| {
                Ok(Layer {
                    blob: Digest::try_from(l.digest())?,
                    size: l.size(),
                    media_type: l.media_type().to_string(),
                    diff_id: Digest::parse(d)?,
                })
            })
            .collect()
    }

    /// Size on disk: config plus layers, as docker reports it.
    pub fn size(&self) -> u64 {
        self.manifest.config().size() + self.manifest.layers().iter().map(|l| l.size()).sum::<u64>()
    }

    pub fn created(&self) -> Option<String> {
        self.config.created().clone()
    }

    /// The short names (`busybox:latest`), sorted.
    pub fn tags(&self) -> Vec<String> {
        let mut t: Vec<String> = self.refs.iter().map(Reference::familiar).collect();
        t.sort();
        t
    }

    /// The object the tools print. With `documents`, include manifest and config.
    pub fn to_object(&self, documents: bool) -> ImageObject {
        ImageObject {
            kind: "image".into(),
            id: self.id.clone(),
            digest: self.manifest_digest.clone(),
            tags: self.tags(),
            size: self.size(),
            created: self.created(),
            manifest: documents.then(|| serde_json::to_value(&self.manifest).expect("serialisable")),
            config: documents.then(|| self.config_json.clone()),
        }
    }
}

/// Every image in the store, once per manifest, with all its names.
pub fn list(store: &Store) -> Result<Vec<Image>> {
    // A consistent view: `rm` and `prune` remove an image from the index and
    // delete the blobs only it used under the Images lock. Without it, an
    // image read from the index may have lost its blobs by the time it is
    // loaded ("blob … is missing": a `tag` racing an `rm` of another image).
    let _view = store.lock_shared(LockKind::Images)?;
    let index = Index::load(&store.index_path())?;
    let mut by_manifest: BTreeMap<Digest, Vec<Reference>> = BTreeMap::new();
    let mut order = Vec::new();
    for e in index.entries() {
        if !by_manifest.contains_key(&e.manifest) {
            order.push(e.manifest.clone());
        }
        let refs = by_manifest.entry(e.manifest.clone()).or_default();
        if let Some(r) = &e.ref_name {
            if let Ok(r) = Reference::parse_normalized(r) {
                refs.push(r);
            }
        }
    }
    let mut images = Vec::new();
    for m in order {
        let mut img = Image::load(store, &m)?;
        img.refs = by_manifest.remove(&m).unwrap_or_default();
        images.push(img);
    }
    Ok(images)
}

/// Find the image a user means: a reference (`busybox`, `app:1`,
/// `name@sha256:…`), a full id or manifest digest, or a unique id prefix.
pub fn resolve(store: &Store, name: &str) -> Result<Image> {
    let images = list(store)?;
    resolve_in(&images, name).cloned()
}

fn resolve_in<'a>(images: &'a [Image], name: &str) -> Result<&'a Image> {
    let by_digest = |d: &Digest| images.iter().find(|i| &i.id == d || &i.manifest_digest == d);
    match parse_any(name) {
        Ok(AnyReference::Digest(d)) => {
            return by_digest(&d).ok_or_else(|| Error::not_found("image", name));
        }
        Ok(AnyReference::Named(r)) => {
            // `name@sha256:…` names the manifest of that repository (a tag
            // beside the digest is ignored, as docker does): another
            // repository's image with that digest is not it.
            if let Some(d) = r.digest() {
                return images
                    .iter()
                    .find(|i| &i.manifest_digest == d && i.refs.iter().any(|x| x.name() == r.name()))
                    .ok_or_else(|| Error::not_found("image", name));
            }
            let r = r.with_default_tag();
            if let Some(img) = images.iter().find(|i| i.refs.contains(&r)) {
                return Ok(img);
            }
        }
        Err(_) => {}
    }
    // An id prefix, as docker accepts (`ci-build rm 3f2a`).
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let hex = hex.to_ascii_lowercase();
        let matches: Vec<&Image> = images.iter().filter(|i| i.id.encoded().starts_with(&hex)).collect();
        match matches.len() {
            1 => return Ok(matches[0]),
            0 => {}
            _ => {
                return Err(Error::Ambiguous {
                    kind: "image",
                    prefix: name.to_string(),
                    candidates: matches.iter().map(|i| describe(i)).collect(),
                }
                .hint("give more digits of the id, or a tag"))
            }
        }
    }
    if let Err(e) = parse_any(name) {
        if !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid(format!("{name:?} is neither an image reference nor an image id: {}", describe_ref_error(&e))));
        }
    }
    Err(Error::not_found("image", name).hint("`ci-build ls` lists the images in this store; `ci-build import` or `ci-pull` brings one in"))
}

fn describe_ref_error(e: &crate::reference::ReferenceError) -> String {
    e.describe()
}

/// `3f2a9c1b7d0e (busybox:latest, bb:1)` for messages.
pub fn describe(img: &Image) -> String {
    let tags = img.tags();
    if tags.is_empty() {
        img.id.short().to_string()
    } else {
        format!("{} ({})", img.id.short(), tags.join(", "))
    }
}

/// Write config and manifest for a new image, and add it to the index
/// under `tags` (or untagged). Layer blobs must already be in the store.
pub fn commit(store: &Store, config: &ImageConfiguration, layers: &[Layer], tags: &[Reference]) -> Result<Image> {
    commit_json(store, &serde_json::to_vec(config).expect("config serialises"), layers, tags)
}

/// [`commit`] with the config already serialised: for configs that carry
/// docker's fields, which oci-spec's type cannot hold (see
/// `dockerfile::config`). The JSON must be a valid OCI image config.
pub fn commit_json(store: &Store, config_json: &[u8], layers: &[Layer], tags: &[Reference]) -> Result<Image> {
    serde_json::from_slice::<ImageConfiguration>(config_json)
        .map_err(|e| Error::invalid(format!("refusing to store an invalid image config: {e}")))?;
    let (config_digest, config_size) = store.put_blob(config_json)?;
    let layer_descs = layers
        .iter()
        .map(|l| {
            DescriptorBuilder::default()
                .media_type(MediaType::from(l.media_type.as_str()))
                .digest(oci_spec::image::Digest::from(&l.blob))
                .size(l.size)
                .build()
                .expect("descriptor fields set")
        })
        .collect::<Vec<_>>();
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(
            DescriptorBuilder::default()
                .media_type(MediaType::ImageConfig)
                .digest(oci_spec::image::Digest::from(&config_digest))
                .size(config_size)
                .build()
                .expect("descriptor fields set"),
        )
        .layers(layer_descs)
        .build()
        .expect("manifest fields set");
    let manifest_json = serde_json::to_vec(&manifest).expect("manifest serialises");
    let (manifest_digest, manifest_size) = store.put_blob(&manifest_json)?;
    add_to_index(store, &manifest_digest, manifest_size, tags)?;
    let mut img = Image::load(store, &manifest_digest)?;
    img.refs = tags.to_vec();
    Ok(img)
}

/// Name a manifest in the index (under the images lock).
pub fn add_to_index(store: &Store, manifest: &Digest, size: u64, tags: &[Reference]) -> Result<()> {
    add_to_index_as(store, manifest, size, MediaType::ImageManifest.as_ref(), tags)
}

/// Name a manifest of a given media type in the index: a pulled image keeps
/// the registry's manifest as it was, Docker schema 2 included.
pub fn add_to_index_as(store: &Store, manifest: &Digest, size: u64, media_type: &str, tags: &[Reference]) -> Result<()> {
    let _lock = store.lock(LockKind::Images)?;
    let path = store.index_path();
    let mut index = Index::load(&path)?;
    let mt = media_type.to_string();
    if tags.is_empty() {
        index.add(manifest, size, &mt, None);
    }
    for t in tags {
        index.add(manifest, size, &mt, Some(&t.to_string()));
    }
    index.save(&path)?;
    crate::crash::point("index-saved");
    Ok(())
}

/// `ci-build tag SRC DST...`: give an image more names.
pub fn tag(store: &Store, src: &str, dests: &[Reference]) -> Result<Image> {
    let img = resolve(store, src)?;
    add_to_index(store, &img.manifest_digest, img.manifest_size, dests)?;
    resolve(store, &img.id.to_string())
}

/// Ids of the containers whose record names this image (they keep it alive).
pub fn containers_using(store: &Store, image_id: &Digest) -> Result<Vec<String>> {
    let dir = store.containers_dir();
    let mut users = Vec::new();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(users),
        Err(e) => return Err(Error::io("read directory", &dir, e)),
    };
    for e in rd {
        let e = e.ctx("read directory", &dir)?;
        let Ok(data) = std::fs::read(e.path().join("container.json")) else { continue };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&data) else { continue };
        if v.get("image").and_then(|i| i.as_str()) == Some(&image_id.to_string()) {
            let name = v.get("name").and_then(|n| n.as_str()).unwrap_or("");
            users.push(format!("{} ({name})", &e.file_name().to_string_lossy()[..12.min(e.file_name().len())]));
        }
    }
    Ok(users)
}

/// What `rm` did to one argument.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Removed {
    pub kind: &'static str,
    pub id: Digest,
    /// References removed.
    pub untagged: Vec<String>,
    /// Whether the image itself is gone (not only a name).
    pub deleted: bool,
}

/// `ci-build rm [-f] NAME`: untag a reference, or remove an image given by id.
/// An image named by a reference loses that name, and is deleted when it
/// was the last one; an image given by id loses all its names (several
/// names need `-f`, as in docker). An image that a container uses is
/// refused without `-f`, and with `-f` only untagged (the container still
/// needs it).
pub fn remove(store: &Store, name: &str, force: bool) -> Result<Removed> {
    let _gc = store.lock(LockKind::Gc)?;
    let _containers = store.lock(LockKind::Containers)?;
    let images = list(store)?;
    let img = resolve_in(&images, name)?;
    let by_ref = match parse_any(name) {
        Ok(AnyReference::Named(r)) if r.digest().is_none() => {
            let r = r.with_default_tag();
            img.refs.contains(&r).then_some(r)
        }
        _ => None,
    };
    let users = containers_using(store, &img.id)?;
    let _lock = store.lock(LockKind::Images)?;
    let path = store.index_path();
    let mut index = Index::load(&path)?;
    let mut untagged = Vec::new();
    let mut deleted = false;
    match by_ref {
        Some(r) if img.refs.len() > 1 || (!users.is_empty() && force) => {
            // Only the name goes; the image keeps its other names (or stays for its containers).
            index.untag_keep(&r.to_string());
            untagged.push(r.familiar());
        }
        _ => {
            if !users.is_empty() {
                if !force {
                    return Err(Error::Conflict(format!(
                        "image {} is used by container(s) {}",
                        describe(img),
                        users.join(", ")
                    ))
                    .hint("remove the containers first (`ci-run rm`), or use -f to untag the image anyway"));
                }
                for r in &img.refs {
                    index.untag_keep(&r.to_string());
                    untagged.push(r.familiar());
                }
            } else {
                if by_ref.is_none() && img.refs.len() > 1 && !force {
                    return Err(Error::Conflict(format!(
                        "image {} has several names; remove them one by one, or use -f to remove the image with all of them",
                        describe(img)
                    )));
                }
                untagged = img.refs.iter().map(Reference::familiar).collect();
                index.remove_manifest(&img.manifest_digest);
                deleted = true;
            }
        }
    }
    index.save(&path)?;
    crate::crash::point("index-saved");
    if deleted {
        collect_garbage(store, &index)?;
    }
    Ok(Removed { kind: "image", id: img.id.clone(), untagged, deleted })
}

/// What garbage collection freed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct GcStats {
    pub blobs_removed: usize,
    pub layers_removed: usize,
    pub bytes_freed: u64,
}

/// Delete every blob that no index entry reaches, and every unpacked layer
/// whose diff_id no remaining image has. The caller holds the Gc and Images
/// locks, so no writer is between "blob written" and "named in the index".
fn collect_garbage(store: &Store, index: &Index) -> Result<GcStats> {
    let mut live: HashSet<Digest> = HashSet::new();
    let mut live_diff_ids: HashSet<String> = HashSet::new();
    for e in index.entries() {
        live.insert(e.manifest.clone());
        let Ok(img) = Image::load(store, &e.manifest) else { continue };
        live.insert(img.id.clone());
        for l in img.layers().unwrap_or_default() {
            live.insert(l.blob);
            live_diff_ids.insert(l.diff_id.encoded().to_string());
        }
    }
    // Layers the build cache holds stay until `ci-build prune` clears it.
    for l in crate::build::cache::live_layers(store) {
        live.insert(l.blob);
        live_diff_ids.insert(l.diff_id.encoded().to_string());
    }
    let mut stats = GcStats::default();
    for b in store.list_blobs()? {
        if !live.contains(&b) {
            stats.bytes_freed += store.blob_size(&b).unwrap_or(0);
            store.remove_blob(&b)?;
            stats.blobs_removed += 1;
        }
    }
    let _layers = store.lock(LockKind::Layers)?;
    let dir = store.layers_dir();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd {
            let e = e.ctx("read directory", &dir)?;
            let name = e.file_name().to_string_lossy().to_string();
            if !live_diff_ids.contains(&name) {
                remove_layer_dir(&e.path())?;
                stats.layers_removed += 1;
            }
        }
    }
    Ok(stats)
}

/// Remove an unpacked layer: rename it into tmp first, so a crash midway
/// never leaves a half-deleted layer under its real name.
fn remove_layer_dir(path: &Path) -> Result<()> {
    let parent = path.parent().and_then(Path::parent).expect("layers live under ROOT/layers");
    let doomed = parent.join("tmp").join(format!(
        "deleting-{}",
        path.file_name().expect("layer dirs have names").to_string_lossy()
    ));
    std::fs::rename(path, &doomed).ctx("move aside", path)?;
    fsutil::remove_all(&doomed)
}

/// `ci-build prune [-a]`: remove dangling images (all unused ones with `-a`)
/// and everything they alone held.
pub fn prune(store: &Store, all: bool) -> Result<(Vec<Removed>, GcStats)> {
    let _gc = store.lock(LockKind::Gc)?;
    let _containers = store.lock(LockKind::Containers)?;
    let images = list(store)?;
    let _lock = store.lock(LockKind::Images)?;
    let path = store.index_path();
    let mut index = Index::load(&path)?;
    let mut removed = Vec::new();
    for img in &images {
        if (!img.refs.is_empty() && !all) || !containers_using(store, &img.id)?.is_empty() {
            continue;
        }
        index.remove_manifest(&img.manifest_digest);
        removed.push(Removed {
            kind: "image",
            id: img.id.clone(),
            untagged: img.refs.iter().map(Reference::familiar).collect(),
            deleted: true,
        });
    }
    index.save(&path)?;
    let stats = collect_garbage(store, &index)?;
    Ok((removed, stats))
}

/// One row of `history`: a step that made the image, newest first.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryEntry {
    pub kind: &'static str,
    pub image: Digest,
    pub created: Option<String>,
    pub created_by: String,
    pub comment: Option<String>,
    /// Size of the layer the step made (0 for metadata-only steps).
    pub size: u64,
    pub empty_layer: bool,
}

pub fn history(img: &Image) -> Result<Vec<HistoryEntry>> {
    let layers = img.layers()?;
    let mut sizes = layers.iter().map(|l| l.size);
    let mut out = Vec::new();
    let hist = img.config.history().clone().unwrap_or_default();
    for h in &hist {
        let empty = h.empty_layer().unwrap_or(false);
        out.push(HistoryEntry {
            kind: "history",
            image: img.id.clone(),
            created: h.created().clone(),
            created_by: h.created_by().clone().unwrap_or_default(),
            comment: h.comment().clone(),
            size: if empty { 0 } else { sizes.next().unwrap_or(0) },
            empty_layer: empty,
        });
    }
    out.reverse();
    Ok(out)
}

/// Check the store: every named image loads, every blob hashes to its
/// name. Returns the problems found (empty when healthy).
pub fn fsck(store: &Store) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    // The named images, read as one view (see `list`).
    let view = store.lock_shared(LockKind::Images)?;
    let index = Index::load(&store.index_path())?;
    for e in index.entries() {
        match Image::load(store, &e.manifest).and_then(|i| i.layers()) {
            Ok(layers) => {
                for l in layers {
                    if !store.has_blob(&l.blob) {
                        problems.push(format!("image {}: layer blob {} is missing", e.manifest, l.blob));
                    }
                }
            }
            Err(err) => problems.push(format!("image {}: {err}", e.manifest)),
        }
    }
    drop(view);
    // Every blob, without holding up writers: one that garbage collection
    // removed meanwhile is not a problem (the images checked above have theirs).
    for b in store.list_blobs()? {
        let f = match store.open_blob(&b) {
            Ok(f) => f,
            Err(_) if !store.has_blob(&b) => continue,
            Err(e) => return Err(e),
        };
        let mut r = crate::digest::HashingReader::new(f, b.algorithm());
        std::io::copy(&mut r, &mut std::io::sink()).ctx("read blob", store.blob_path(&b))?;
        let (_, actual, _) = r.finish();
        if actual != b {
            problems.push(format!("blob {b} hashes to {actual}"));
        }
    }
    let names: BTreeSet<_> = index.entries().iter().filter_map(|e| e.ref_name.clone()).collect();
    if names.len() != index.entries().iter().filter(|e| e.ref_name.is_some()).count() {
        problems.push("index.json names one reference twice".into());
    }
    // An unpacked layer is renamed into ROOT/layers only when complete: one
    // without its diff/ or layer.json would be stacked half-made.
    let dir = store.layers_dir();
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if Digest::validate(&format!("sha256:{name}")).is_err() {
            problems.push(format!("{}: not a layer (its name is not a diff_id)", p.display()));
        } else if !p.join("diff").is_dir() || !p.join("layer.json").is_file() {
            problems.push(format!("unpacked layer {}: incomplete (no diff/ or layer.json)", p.display()));
        }
    }
    Ok(problems)
}
