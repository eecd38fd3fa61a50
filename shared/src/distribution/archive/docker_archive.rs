//! `docker save` tarballs (`docker-archive:FILE[:REF]`), which `docker load` reads:
//!
//! ```text
//! manifest.json            [{"Config":"blobs/sha256/<c>","RepoTags":["app:1"],"Layers":["blobs/sha256/<l1>",…]}]
//! repositories             {"app":{"1":"<top layer>"}}  (for old docker versions)
//! blobs/sha256/<c>         the image config
//! blobs/sha256/<l1>        each layer, an uncompressed tar (its digest is its diff_id)
//! ```
//!
//! Older docker versions name files `<id>.json` and `<id>/layer.tar`; the
//! reader follows whatever names manifest.json gives. A layer file that is
//! compressed (some tools write them so) is stored as it is, and its
//! content is checked against the config's diff_id after decompression.

use std::io::{self, BufWriter, Seek, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::compression::{self, Compression};
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoContext, Result};
use crate::image::{self, Image};
use crate::reference::Reference;
use crate::store::{LockKind, Store};

use super::super::ingest::Ingest;
use super::super::manifest::{MAX_CONFIG, MAX_MANIFEST, OCI_CONFIG, OCI_MANIFEST};
use super::super::progress::{Counting, Progress};
use super::super::pull::check_config;
use super::super::Verifying;
use super::TarIndex;

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// The hex a file name promises for its content: `blobs/sha256/<hex>` or `<hex>.json`.
fn promised_hex(name: &str) -> Option<&str> {
    let base = name.rsplit('/').next()?;
    let hex = base.strip_suffix(".json").unwrap_or(base);
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// Load every image of a `docker save` tarball into the store.
/// With `only`, load just the image tagged so.
pub fn load(store: &Store, path: &Path, only: Option<&Reference>, progress: &Progress, jobs: usize) -> Result<Vec<Image>> {
    let idx = TarIndex::open(path)?;
    load_indexed(store, &idx, only, progress, jobs)
}

/// An image's config from the archive, checked: its name (`<hex>.json`)
/// and its digest agree, it parses, it lists one diff_id per layer.
fn read_config(idx: &TarIndex, e: &Entry, what: &str) -> Result<(Vec<u8>, Digest)> {
    let config = idx.read_small(&e.config, MAX_CONFIG)?;
    let config_digest = Digest::sha256_of(&config);
    if let Some(hex) = promised_hex(&e.config) {
        if hex != config_digest.encoded() {
            return Err(Error::Corrupt(format!("{what}: {} does not hash to its name (it is {config_digest})", e.config)));
        }
    }
    check_config(&config, e.layers.len(), &format!("{what} ({})", e.config))?;
    Ok((config, config_digest))
}

pub fn load_indexed(store: &Store, idx: &TarIndex, only: Option<&Reference>, progress: &Progress, jobs: usize) -> Result<Vec<Image>> {
    let what = idx.name().to_string();
    let bad = |why: String| Error::invalid(format!("{what}: malformed docker archive: {why}"));
    let mj = idx.read_small("manifest.json", MAX_MANIFEST)?;
    let mut entries: Vec<Entry> = serde_json::from_slice(&mj).map_err(|e| bad(format!("manifest.json: {e}")))?;
    if entries.is_empty() {
        return Err(bad("manifest.json lists no image".into()));
    }
    if let Some(r) = only {
        entries.retain(|e| e.repo_tags.iter().flatten().any(|t| Reference::parse(t).ok().as_ref() == Some(r)));
        if entries.is_empty() {
            return Err(Error::not_found("image", format!("{} in {what}", r.familiar())));
        }
    }
    // Check every name before any blob is read (CVE-2014-9358, CVE-2026-50195).
    let mut plans = Vec::new();
    for (n, e) in entries.iter().enumerate() {
        for name in std::iter::once(&e.config).chain(&e.layers) {
            if super::clean_name(name).is_none() {
                return Err(bad(format!("image {}: the file name {name:?} leaves the archive", n + 1)));
            }
            if !idx.contains(name) {
                return Err(bad(format!("image {}: manifest.json names {name:?}, which is not in the archive", n + 1)));
            }
        }
        let tags = e
            .repo_tags
            .iter()
            .flatten()
            .map(|t| {
                let r = Reference::parse(t).map_err(|err| bad(format!("RepoTag {t:?}: {err}")))?;
                if r.digest().is_some() {
                    return Err(bad(format!("RepoTag {t:?} has a digest")));
                }
                Ok(r)
            })
            .collect::<Result<Vec<_>>>()?;
        plans.push(tags);
    }
    // Every config checked before anything is staged: a malformed archive leaves no trace.
    for e in &entries {
        read_config(idx, e, &what)?;
    }
    let _gc = store.lock_shared(LockKind::Gc)?;
    let ingest = Ingest::open(store)?;
    let mut images = Vec::new();
    for (e, tags) in entries.iter().zip(plans) {
        let (config, config_digest) = read_config(idx, e, &what)?;
        let cfg: serde_json::Value = serde_json::from_slice(&config).expect("checked above");
        let diff_ids: Vec<Digest> = cfg["rootfs"]["diff_ids"]
            .as_array()
            .expect("checked above")
            .iter()
            .map(|d| Digest::parse(d.as_str().unwrap_or("")))
            .collect::<Result<_>>()?;
        let layers: Vec<(String, Digest)> = e.layers.iter().cloned().zip(diff_ids).collect();
        let out: Vec<std::sync::Mutex<Option<(String, Digest, u64)>>> = layers.iter().map(|_| Default::default()).collect();
        super::super::for_each(&layers, jobs, |i, (name, diff_id)| {
            let task = progress.task(diff_id.short(), idx.size(name));
            let lwhat = format!("layer {name} of {what}");
            let (mut r, size) = idx.open_entry(name)?;
            let mut head = [0u8; 6];
            let n = crate::tarball::read_full(&mut r, &mut head).map_err(|e| Error::io("read", &lwhat, e))?;
            let c = Compression::detect(&head[..n]);
            let (r, size) = (idx.open_entry(name)?.0, size);
            let stored = match c {
                Compression::None => {
                    if !ingest.has(diff_id) {
                        ingest.write(diff_id, size, &mut Counting { inner: r, task: &task }, &lwhat).map_err(|e| {
                            e.context(format!("{lwhat} is not the layer its config names ({diff_id})"))
                        })?;
                    }
                    (c.layer_media_type().to_string(), diff_id.clone(), size)
                }
                Compression::Gzip | Compression::Zstd => {
                    let (d, s) = ingest.write_unnamed(&mut Counting { inner: r, task: &task }, &lwhat)?;
                    let (_, mut un) = compression::decompress(ingest.open_blob(&d)?)?;
                    let mut h = HashingReader::new(&mut un, diff_id.algorithm());
                    io::copy(&mut h, &mut io::sink()).map_err(|e| Error::Corrupt(format!("{lwhat}: cannot decompress: {e}")))?;
                    let (_, actual, _) = h.finish();
                    if &actual != diff_id {
                        return Err(Error::Corrupt(format!("{lwhat}: decompressed it hashes to {actual}, but the config says {diff_id}")));
                    }
                    (c.layer_media_type().to_string(), d, s)
                }
                Compression::Xz => {
                    return Err(Error::Unsupported(format!("{lwhat} is xz-compressed; ci stores layers plain, gzip or zstd")))
                }
            };
            task.finish("loaded", Some(stored.2));
            *out[i].lock().expect("slot") = Some(stored);
            Ok(())
        })?;
        let stored: Vec<(String, Digest, u64)> = out.into_iter().map(|m| m.into_inner().expect("slot").expect("done")).collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": stored.iter().map(|(mt, d, s)| serde_json::json!({"mediaType": mt, "digest": d, "size": s})).collect::<Vec<_>>(),
        });
        let mbytes = serde_json::to_vec(&manifest).expect("JSON serialises");
        let mdigest = Digest::sha256_of(&mbytes);
        ingest.write_bytes(&config_digest, &config, &format!("config of {what}"))?;
        ingest.write_bytes(&mdigest, &mbytes, &format!("manifest of {what}"))?;
        let mut all: Vec<Digest> = stored.iter().map(|s| s.1.clone()).collect();
        all.push(config_digest);
        all.push(mdigest.clone());
        ingest.commit(&all)?;
        image::add_to_index_as(store, &mdigest, mbytes.len() as u64, OCI_MANIFEST, &tags)?;
        ingest.cleanup(&all);
        let mut img = Image::load(store, &mdigest)?;
        img.refs = tags;
        images.push(img);
    }
    Ok(images)
}


/// Write an image as a `docker save` tarball (atomically: a temporary file renamed into place).
pub fn save(store: &Store, img: &Image, path: &Path, tag: Option<&Reference>, progress: &Progress) -> Result<()> {
    let layers = img.layers()?;
    let config = store.read_blob(&img.id)?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new().prefix(".ci-push-").tempfile_in(parent).ctx("create a temporary file in", parent)?;
    let mut b = tar::Builder::new(BufWriter::with_capacity(1 << 20, tmp));
    let header = |size: u64, dir: bool| {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_entry_type(if dir { tar::EntryType::Directory } else { tar::EntryType::Regular });
        h.set_size(size);
        h
    };
    let werr = |e: io::Error| Error::io("write archive", path, e);
    b.append_data(&mut header(0, true), "blobs/", io::empty()).map_err(werr)?;
    b.append_data(&mut header(0, true), "blobs/sha256/", io::empty()).map_err(werr)?;
    let config_name = format!("blobs/sha256/{}", img.id.encoded());
    b.append_data(&mut header(config.len() as u64, false), &config_name, &config[..]).map_err(werr)?;
    let mut names = Vec::new();
    for l in &layers {
        let name = format!("blobs/sha256/{}", l.diff_id.encoded());
        if names.contains(&name) {
            names.push(name);
            continue;
        }
        let task = progress.task(l.diff_id.short(), None);
        let c = Compression::from_media_type(&l.media_type).unwrap_or(Compression::None);
        if c == Compression::None {
            let f = store.open_blob(&l.blob)?;
            let r = Counting { inner: Verifying::new(f, &l.blob), task: &task };
            b.append_data(&mut header(l.size, false), &name, r).map_err(|e| super::super::from_io(e, "write archive", &path.display().to_string()))?;
        } else {
            // docker load wants plain tars: decompress into an anonymous file to learn the size.
            let mut un = tempfile::tempfile_in(store.tmp_dir()).ctx("create a temporary file in", store.tmp_dir())?;
            let (_, mut r) = compression::decompress(Verifying::new(store.open_blob(&l.blob)?, &l.blob))?;
            let mut h = HashingReader::new(&mut r, l.diff_id.algorithm());
            let size = io::copy(&mut h, &mut un).map_err(|e| super::super::from_io(e, "decompress layer", &l.blob.to_string()))?;
            let (_, actual, _) = h.finish();
            if actual != l.diff_id {
                return Err(Error::Corrupt(format!("layer {} decompresses to {actual}, not its diff_id {}", l.blob, l.diff_id)));
            }
            un.rewind().ctx("rewind", store.tmp_dir())?;
            b.append_data(&mut header(size, false), &name, Counting { inner: un, task: &task }).map_err(werr)?;
        }
        task.finish("saved", None);
        names.push(name);
    }
    let repo_tags: Vec<String> = tag.map(|t| vec![t.familiar()]).unwrap_or_default();
    let manifest = vec![Entry { config: config_name, repo_tags: Some(repo_tags.clone()), layers: names.clone() }];
    let mj = serde_json::to_vec(&manifest).expect("JSON serialises");
    b.append_data(&mut header(mj.len() as u64, false), "manifest.json", &mj[..]).map_err(werr)?;
    if let (Some(t), Some(top)) = (tag, layers.last()) {
        // `repositories` keys the familiar name without tag.
        let familiar = t.familiar();
        let name = familiar.rsplit_once(':').map(|(n, _)| n).unwrap_or(&familiar);
        let repos = serde_json::json!({ name: { t.tag().unwrap_or("latest"): top.diff_id.encoded() } });
        let rj = serde_json::to_vec(&repos).expect("JSON serialises");
        b.append_data(&mut header(rj.len() as u64, false), "repositories", &rj[..]).map_err(werr)?;
    }
    let w = b.into_inner().map_err(werr)?;
    let mut tmp = w.into_inner().map_err(|e| werr(e.into_error()))?;
    tmp.flush().map_err(werr)?;
    tmp.as_file().sync_all().map_err(werr)?;
    tmp.persist(path).map_err(|e| e.error).ctx("rename into place", path)?;
    Ok(())
}
