//! `ci-build import`: a root filesystem tarball becomes a one-layer image,
//! as `docker import` does.
//!
//! The input is streamed once: decompressed, checked to be a tar (every
//! header is parsed), and written to the store as an uncompressed layer
//! blob while being hashed. Memory stays flat whatever the tarball's size.

use std::io::{self, Read, Write};

use crate::compression;
use crate::dockerfile::{self, Metadata, StageState};
use crate::error::{Error, IoContext, Result};
use crate::image::{commit, commit_json, config, Image, Layer, LAYER_TAR};
use crate::reference::Reference;
use crate::store::{BlobWriter, LockKind, Store};

/// What to import and how to name it.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Where the tarball came from (a file name, or `-`), for the history.
    pub source: String,
    /// Names for the new image.
    pub tags: Vec<Reference>,
    /// A commit message for the history entry.
    pub message: Option<String>,
    /// Dockerfile instructions applied to the config (`--change`), in order.
    pub changes: Vec<String>,
}

/// The instructions `--change` accepts: those that only change the config
/// (docker's list for `docker import --change`).
pub const CHANGE_INSTRUCTIONS: &[&str] =
    &["CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"];

/// Apply `--change` instructions to an empty config, as an import does;
/// every error names the flag and the instruction.
pub fn apply_changes(changes: &[String]) -> Result<Metadata> {
    let mut meta = Metadata::default();
    let mut state = StageState::for_config(&meta.config);
    for change in changes {
        let bad = |why: String| Error::invalid(format!("--change {change:?}: {why}"));
        let ins = dockerfile::parse_line(change).map_err(bad)?;
        let keyword = ins.command.keyword();
        if !CHANGE_INSTRUCTIONS.contains(&keyword) {
            return Err(bad(format!(
                "{keyword} cannot be used with --change; it accepts {}",
                CHANGE_INSTRUCTIONS.join(", ")
            )));
        }
        dockerfile::apply(&mut meta, &ins.command, &mut state).map_err(bad)?;
    }
    Ok(meta)
}

/// Copies everything read through it into a blob.
struct Tee<'a, 'b, R> {
    inner: R,
    blob: &'a mut BlobWriter<'b>,
}

impl<R: Read> Read for Tee<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.blob.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Store a tar stream (any supported compression) as an uncompressed layer
/// blob, checking that it is a tar on the way. Returns the layer.
pub fn store_layer(store: &Store, input: impl Read, source: &str) -> Result<Layer> {
    let (comp, reader) = compression::decompress(input)?;
    let mut blob = store.blob_writer()?;
    let mut tee = Tee { inner: reader, blob: &mut blob };
    let bad = |e: io::Error| {
        let what = match comp {
            compression::Compression::None => "a tar archive".to_string(),
            c => format!("a {}-compressed tar archive", c.name()),
        };
        let why = crate::tarball::describe_error(&e);
        Error::invalid(format!("{source}: not {what}, or truncated: {why}"))
    };
    let entries = {
        let mut archive = tar::Archive::new(&mut tee);
        let mut count = 0u64;
        for entry in archive.entries().map_err(bad)? {
            entry.map_err(bad)?;
            count += 1;
        }
        count
    };
    // Whatever follows the end-of-archive marker (padding) is part of the blob too.
    io::copy(&mut tee, &mut io::sink()).map_err(bad)?;
    if entries == 0 && blob.size() == 0 {
        return Err(Error::invalid(format!("{source}: empty input, not a tar archive")));
    }
    let (digest, size) = blob.commit(None, None)?;
    Ok(Layer { blob: digest.clone(), size, media_type: LAYER_TAR.to_string(), diff_id: digest })
}

/// Import a rootfs tarball as a new image.
pub fn import(store: &Store, input: impl Read, opts: &ImportOptions) -> Result<Image> {
    // Check the changes before reading anything: a bad one stores nothing.
    let meta = apply_changes(&opts.changes)?;
    // Keep garbage collection away until the new blobs are named in the index.
    let _gc = store.lock_shared(LockKind::Gc)?;
    let layer = store_layer(store, input, &opts.source)?;
    let created = config::created_now()?;
    let comment = opts.message.clone().unwrap_or_else(|| format!("Imported from {}", opts.source));
    let cfg = config::new_config(vec![layer.diff_id.to_string()], vec![(String::new(), comment)], &created);
    if opts.changes.is_empty() {
        return commit(store, &cfg, &[layer], &opts.tags);
    }
    let mut doc = serde_json::to_value(&cfg).expect("config serialises");
    meta.store_in(&mut doc);
    commit_json(store, &serde_json::to_vec(&doc).expect("config serialises"), &[layer], &opts.tags)
}

/// Open the import source: a file path, or `-` for stdin.
pub fn open_source(path: &str) -> Result<Box<dyn Read>> {
    if path == "-" {
        Ok(Box::new(io::stdin().lock()))
    } else {
        let f = std::fs::File::open(path).ctx("open", path)?;
        Ok(Box::new(f))
    }
}
