//! The layer cache: each layer unpacked once, by diff_id, for every
//! container and build step that uses it.
//!
//! ```text
//! ROOT/layers/<diff_id hex>/diff/        the unpacked layer (an overlayfs lowerdir)
//! ROOT/layers/<diff_id hex>/layer.json   where it came from and what the unpack did
//! ```
//!
//! Contract: a layer directory exists only when it is complete and its
//! content hashed to its diff_id. It is unpacked into a temporary directory
//! under `ROOT/tmp/` (removed by the next command if we die), synced, and
//! renamed into place in one step. Two processes asking for the same layer
//! serialise on a `flock` of the layer's blob file (the blob exists for as
//! long as the layer can be unpacked; garbage collection, the only thing
//! that deletes blobs and layer directories, is excluded by the `Gc` lock we
//! hold shared), so the loser finds the winner's directory and unpacks
//! nothing. The caller that goes on to use the directory (a container being
//! created) must keep the image referenced, or hold `Gc` shared itself,
//! until the container's record exists.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::unpack::{unpack, UnpackStats};
use super::whiteout::OVERLAY_OPAQUE_XATTR;
use crate::compression::{self, Compression};
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoContext, Result, ResultExt};
use crate::fsutil;
use crate::image::{Image, Layer};
use crate::store::{LockKind, Store};

/// A layer in the cache.
#[derive(Debug, Clone)]
pub struct CachedLayer {
    /// `ROOT/layers/<hex>/diff`: what overlayfs stacks.
    pub diff: PathBuf,
    /// Whether this call unpacked it (false: it was already there).
    pub unpacked: bool,
    /// What the unpack did, when this call did it.
    pub stats: Option<UnpackStats>,
}

/// What `layer.json` records.
#[derive(Debug, serde::Serialize)]
struct LayerRecord<'a> {
    diff_id: &'a Digest,
    blob: &'a Digest,
    media_type: &'a str,
    compression: Compression,
    stats: &'a UnpackStats,
}

/// `ROOT/layers/<hex>` for a diff_id.
pub fn layer_dir(store: &Store, diff_id: &Digest) -> PathBuf {
    store.layers_dir().join(diff_id.encoded())
}

/// The unpacked layer's directory (`ROOT/layers/<hex>/diff`), unpacking it
/// first if this is its first use.
pub fn ensure_unpacked(store: &Store, layer: &Layer) -> Result<PathBuf> {
    Ok(ensure(store, layer)?.diff)
}

/// Every layer of an image unpacked; returns the directories overlayfs
/// needs as lower layers, bottom first (overlayfs's `lowerdir=` lists them
/// top first). A layer whose root directory is opaque hides everything
/// below it, and overlayfs ignores the opaque mark on a layer's root, so
/// the layers under the topmost such layer are left out of the list.
pub fn ensure_image_unpacked(store: &Store, image: &Image) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for layer in image.layers()? {
        match ensure_unpacked(store, &layer) {
            Ok(d) => dirs.push(d),
            // `ci-build rm` or `prune` removed the image (and its blobs) after
            // the caller resolved it: say so, not "blob missing from the store".
            Err(_) if !store.has_blob(&layer.blob) && crate::image::resolve(store, &image.id.to_string()).is_err() => {
                return Err(Error::not_found("image", image.id.to_string())
                    .hint("it was removed (ci-build rm or prune) while its layers were being prepared"));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(visible_layers(dirs))
}

/// The unpacked layers overlayfs must stack, bottom first: a layer whose
/// root directory is opaque (`.wh..wh..opq` at the top of the layer) hides
/// every layer below it, but overlayfs ignores the opaque mark on a layer's
/// root, so those layers are dropped from the list instead.
pub fn visible_layers(mut dirs: Vec<PathBuf>) -> Vec<PathBuf> {
    if let Some(top_opaque) = dirs.iter().rposition(|d| is_opaque(d)) {
        if top_opaque > 0 {
            crate::explain!(
                "layer {}: its root is opaque, so the {top_opaque} layer(s) below it are not stacked",
                d_short(&dirs[top_opaque])
            );
        }
        dirs.drain(..top_opaque);
    }
    dirs
}

fn d_short(diff: &Path) -> String {
    let dir = diff.parent().and_then(Path::file_name).unwrap_or(diff.as_os_str());
    dir.to_string_lossy().chars().take(12).collect()
}

fn is_opaque(dir: &Path) -> bool {
    matches!(xattr::get(dir, OVERLAY_OPAQUE_XATTR), Ok(Some(v)) if v == b"y")
}

/// [`ensure_unpacked`], saying whether it unpacked.
pub fn ensure(store: &Store, layer: &Layer) -> Result<CachedLayer> {
    let _gc = store.lock_shared(LockKind::Gc)?;
    let dir = layer_dir(store, &layer.diff_id);
    let diff = dir.join("diff");
    if diff.is_dir() {
        explain_cached(layer, &diff);
        return Ok(CachedLayer { diff, unpacked: false, stats: None });
    }

    let blob = store
        .open_blob(&layer.blob)
        .context(|| format!("unpack layer {}", layer.diff_id))?;
    let blob = Flock::lock(blob, FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::io("flock", store.blob_path(&layer.blob), e.into()))?;
    if diff.is_dir() {
        // Another process unpacked it while we waited for the lock.
        explain_cached(layer, &diff);
        return Ok(CachedLayer { diff, unpacked: false, stats: None });
    }

    let tmp = store.temp_dir("layer-")?;
    // Setuid files and device nodes live below: only root may traverse
    // (the store's root is 0700 too; this holds if the layer is moved).
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).ctx("chmod", tmp.path())?;
    let tmp_diff = tmp.path().join("diff");
    fsutil::mkdir_all(&tmp_diff, 0o755)?;
    let compression = compression_of(layer);
    crate::explain!(
        format!(
            "layer {}: unpack blob {} ({}) into a temporary directory, check that it hashes to its diff_id, then rename it into place; .wh.* whiteouts become overlayfs whiteouts (which tar alone would not do)",
            layer.diff_id.short(),
            layer.blob.short(),
            compression.map(Compression::name).unwrap_or("compression detected from content")
        );
        format!(
            "mkdir -p {tmp}/diff && {cat} {blob} | tar -xpf - --numeric-owner --xattrs --xattrs-include='*' -C {tmp}/diff && mv {tmp} {dir}",
            tmp = tmp.path().display(),
            cat = match compression {
                Some(Compression::Gzip) => "zcat",
                Some(Compression::Zstd) => "zstdcat",
                Some(Compression::Xz) => "xzcat",
                _ => "cat",
            },
            blob = store.blob_path(&layer.blob).display(),
            dir = dir.display()
        )
    );
    let (found, stats) = unpack_verified(&blob, layer, compression, &tmp_diff)
        .context(|| format!("unpack layer {} (blob {})", layer.diff_id, layer.blob))?;
    let record = LayerRecord {
        diff_id: &layer.diff_id,
        blob: &layer.blob,
        media_type: &layer.media_type,
        compression: found,
        stats: &stats,
    };
    fsutil::write_json_atomic(&tmp.path().join("layer.json"), &record)?;
    // One syncfs instead of an fsync per file: after a crash the renamed
    // directory must not hold files whose data never reached the disk.
    let tmp_fd = File::open(tmp.path()).ctx("open", tmp.path())?;
    nix::unistd::syncfs(&tmp_fd).ctx("syncfs", tmp.path())?;
    crate::crash::point("layer-unpacked");
    if !tmp.keep_as(&dir)? && !diff.is_dir() {
        // Something else holds the name and it is not a layer.
        return Err(Error::Corrupt(format!("{} exists but holds no unpacked layer (diff/)", dir.display()))
            .hint(format!("remove {} and try again", dir.display())));
    }
    Ok(CachedLayer { diff, unpacked: true, stats: Some(stats) })
}

fn explain_cached(layer: &Layer, diff: &Path) {
    crate::explain!(
        format!("layer {}: already unpacked in {}; nothing to do", layer.diff_id.short(), diff.display());
        format!("test -d {}", diff.display())
    );
}

/// The compression the media type names; `None` lets the content decide.
fn compression_of(layer: &Layer) -> Option<Compression> {
    Compression::from_media_type(&layer.media_type)
}

/// Decompress, unpack, and check both digests: the blob's (the bytes on
/// disk) and the diff_id (the uncompressed tar). Either mismatch fails the
/// unpack, and the caller discards the directory.
fn unpack_verified(blob: &File, layer: &Layer, compression: Option<Compression>, dest: &Path) -> Result<(Compression, UnpackStats)> {
    let mut raw = HashingReader::new(BufReader::with_capacity(1 << 20, blob), layer.blob.algorithm());
    let (found, stream): (Compression, Box<dyn Read + '_>) = match compression {
        Some(c) => (c, compression::reader_for(c, &mut raw)?),
        None => compression::decompress(&mut raw)?,
    };
    let mut tar = HashingReader::new(stream, layer.diff_id.algorithm());
    let stats = unpack(&mut tar, dest)?;
    let (stream, diff_id, _) = tar.finish();
    drop(stream);
    // A decompressor may stop at the end of its last frame: hash what follows too.
    io::copy(&mut raw, &mut io::sink()).map_err(|e| Error::io("read blob", "layer blob", e))?;
    let (_, blob_digest, _) = raw.finish();
    if blob_digest != layer.blob {
        return Err(Error::Corrupt(format!(
            "blob {} is corrupt: its content hashes to {blob_digest}",
            layer.blob
        ))
        .hint("remove the image and import or pull it again"));
    }
    if diff_id != layer.diff_id {
        return Err(Error::Corrupt(format!(
            "the uncompressed layer hashes to {diff_id}, but the image config says its diff_id is {}",
            layer.diff_id
        ))
        .hint("the image is damaged or was tampered with; remove it and import or pull it again"));
    }
    Ok((found, stats))
}
