//! OCI image layouts (`oci:DIR[:REF]`), as skopeo and umoci read and write them:
//!
//! ```text
//! DIR/oci-layout            {"imageLayoutVersion":"1.0.0"}
//! DIR/index.json            the images, each named by org.opencontainers.image.ref.name
//! DIR/blobs/sha256/<hex>    manifests, configs, layers
//! ```
//!
//! The same reader serves a layout in a directory and one inside a tarball
//! ([`super::oci_archive`]): only the way files are opened differs.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::reference::Reference;
use crate::store::index::REF_NAME_ANNOTATION;

use super::super::manifest::{self, Descriptor, Document, MAX_MANIFEST};
use super::super::pull::{Root, Source};
use super::super::push::Dest;
use super::TarIndex;

/// containerd and docker (25+) record the full image name here.
pub const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";
const OCI_LAYOUT: &[u8] = b"{\"imageLayoutVersion\":\"1.0.0\"}";

/// The files of a layout, in a directory or a tarball.
pub trait LayoutFiles: Sync {
    fn describe(&self) -> String;
    fn open(&self, name: &str) -> Result<(Box<dyn Read + Send>, u64)>;
    fn read_small(&self, name: &str, limit: u64) -> Result<Vec<u8>> {
        let (mut r, size) = self.open(name)?;
        if size > limit {
            return Err(Error::invalid(format!("{}: {name} is {size} bytes, more than the limit of {limit}", self.describe())));
        }
        let mut data = Vec::new();
        r.read_to_end(&mut data).map_err(|e| Error::io("read", format!("{}/{name}", self.describe()), e))?;
        Ok(data)
    }
}

/// A layout directory.
pub struct DirFiles(pub PathBuf);

impl LayoutFiles for DirFiles {
    fn describe(&self) -> String {
        self.0.display().to_string()
    }
    fn open(&self, name: &str) -> Result<(Box<dyn Read + Send>, u64)> {
        let p = self.0.join(name);
        // A layout is input: never follow a symlink it plants (its blobs are plain files).
        let f = fsutil::open_nofollow(&p).map_err(|e| match e.errno() {
            Some(libc::ENOENT) => Error::invalid(format!("{}: not an OCI image layout, or a damaged one: {name} is missing", self.0.display())),
            _ => e,
        })?;
        let size = f.metadata().ctx("stat", &p)?.len();
        Ok((Box::new(f), size))
    }
}

impl LayoutFiles for TarIndex {
    fn describe(&self) -> String {
        self.name().to_string()
    }
    fn open(&self, name: &str) -> Result<(Box<dyn Read + Send>, u64)> {
        self.open_entry(name)
    }
}

/// `blobs/sha256/<hex>`: only a validated digest makes a blob path.
pub fn blob_name(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().as_str(), d.encoded())
}

/// Pulling from an OCI layout.
pub struct LayoutSource<F: LayoutFiles> {
    pub files: F,
    pub reference: Option<String>,
    /// How the user named it (`oci:dir:tag`), for messages.
    pub what: String,
}

/// The names an index.json entry gives its image: the full name containerd
/// records, else a ref.name that is itself an image reference (`app:1`,
/// not a bare tag like `v1`).
fn names_of(d: &Descriptor) -> Vec<Reference> {
    if let Some(r) = d.annotations.get(CONTAINERD_NAME_ANNOTATION).and_then(|n| Reference::parse(n).ok()) {
        return vec![r];
    }
    match d.annotations.get(REF_NAME_ANNOTATION) {
        Some(n) if n.contains(':') || n.contains('/') => Reference::parse(n).ok().into_iter().collect(),
        _ => Vec::new(),
    }
}

impl<F: LayoutFiles> LayoutSource<F> {
    /// The entries of index.json.
    pub fn entries(&self) -> Result<Vec<Descriptor>> {
        let bytes = self.files.read_small("index.json", MAX_MANIFEST)?;
        match manifest::parse(&bytes, None, &format!("{}/index.json", self.files.describe()))? {
            Document::Index(i) => Ok(i.manifests),
            Document::Manifest(_) => Err(Error::invalid(format!("{}/index.json is a manifest, not an index", self.files.describe()))),
        }
    }
}

impl<F: LayoutFiles> Source for LayoutSource<F> {
    fn describe(&self) -> String {
        self.what.clone()
    }

    fn root(&self) -> Result<Root> {
        let entries = self.entries()?;
        let refs: Vec<String> = entries.iter().filter_map(|d| d.annotations.get(REF_NAME_ANNOTATION).cloned()).collect();
        let chosen: Vec<&Descriptor> = match &self.reference {
            Some(r) => entries.iter().filter(|d| d.annotations.get(REF_NAME_ANNOTATION) == Some(r)).collect(),
            None => entries.iter().collect(),
        };
        let d = match chosen.as_slice() {
            [d] => *d,
            [] => {
                return Err(Error::not_found("image", self.what.clone())
                    .hint(if refs.is_empty() { "the layout holds no named image".to_string() } else { format!("it holds: {}", refs.join(", ")) }))
            }
            _ => {
                return Err(Error::invalid(format!("{} holds several images; name one as {}:REF", self.what, self.what))
                    .hint(format!("it holds: {}", if refs.is_empty() { "unnamed images".into() } else { refs.join(", ") })))
            }
        };
        if d.size > MAX_MANIFEST {
            return Err(Error::Corrupt(format!("{}: the manifest declares {} bytes, more than the limit of {MAX_MANIFEST}", self.what, d.size)));
        }
        let bytes = self.files.read_small(&blob_name(&d.digest), MAX_MANIFEST)?;
        Ok(Root { bytes, content_type: Some(d.media_type.clone()), pinned: Some(d.digest.clone()), names: names_of(d) })
    }

    fn manifest(&self, d: &Descriptor) -> Result<Vec<u8>> {
        self.files.read_small(&blob_name(&d.digest), d.size.min(MAX_MANIFEST))
    }

    fn blob(&self, d: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        Ok(self.files.open(&blob_name(&d.digest))?.0)
    }
}

/// Pushing into an OCI layout directory (created if needed; other images in it stay).
pub struct OciDirDest {
    dir: PathBuf,
    reference: Option<String>,
    manifest: Mutex<Option<(Digest, u64, String)>>,
}

impl OciDirDest {
    pub fn create(dir: &Path, reference: Option<String>) -> Result<OciDirDest> {
        fsutil::mkdir_all(&dir.join("blobs").join("sha256"), 0o755)?;
        let layout = dir.join("oci-layout");
        if !layout.exists() {
            fsutil::write_atomic(&layout, OCI_LAYOUT)?;
        }
        Ok(OciDirDest { dir: dir.to_path_buf(), reference, manifest: Mutex::new(None) })
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir.join(blob_name(d))
    }

    /// Write a blob: into a temporary file, hashed, checked, fsynced, renamed.
    fn write(&self, expected: Option<(&Digest, u64)>, data: &mut dyn Read) -> Result<(Digest, u64)> {
        let dir = self.dir.join("blobs").join("sha256");
        let tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(&dir).ctx("create a temporary file in", &dir)?;
        let mut w = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, tmp), crate::digest::Algorithm::Sha256);
        io::copy(data, &mut w).map_err(|e| super::super::from_io(e, "write blob into", &dir.display().to_string()))?;
        let (buf, digest, size) = w.finish();
        let tmp = buf.into_inner().map_err(|e| Error::io("write", &dir, e.into_error()))?;
        if let Some((d, s)) = expected {
            if d != &digest || s != size {
                return Err(Error::Corrupt(format!("blob {d} ({s} bytes) arrived as {digest} ({size} bytes)")));
            }
        }
        tmp.as_file().sync_all().ctx("fsync", tmp.path())?;
        let dest = self.blob_path(&digest);
        tmp.persist(&dest).map_err(|e| e.error).ctx("rename into place", &dest)?;
        Ok((digest, size))
    }

    /// Name the pushed manifest in index.json (replacing an image of the same name).
    pub fn finish(&self) -> Result<()> {
        let Some((digest, size, mt)) = self.manifest.lock().expect("manifest slot").clone() else {
            return Err(Error::invalid("no manifest was pushed"));
        };
        fsutil::fsync_dir(&self.dir.join("blobs").join("sha256"))?;
        let path = self.dir.join("index.json");
        let mut index: Value = match fs::read(&path) {
            Ok(d) => serde_json::from_slice(&d).map_err(|e| Error::invalid(format!("{}: not valid JSON: {e}", path.display())))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": []}),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let manifests = index
            .get_mut("manifests")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| Error::invalid(format!("{}: no \"manifests\" list; not an OCI index", path.display())))?;
        let name_of = |m: &Value| m.pointer(&format!("/annotations/{}", REF_NAME_ANNOTATION.replace('/', "~1"))).and_then(Value::as_str).map(str::to_string);
        match &self.reference {
            Some(r) => manifests.retain(|m| name_of(m).as_deref() != Some(r)),
            None => manifests.retain(|m| !(name_of(m).is_none() && m.get("digest").and_then(Value::as_str) == Some(&digest.to_string()))),
        }
        let mut entry = json!({"mediaType": mt, "digest": digest.to_string(), "size": size});
        if let Some(r) = &self.reference {
            entry["annotations"] = json!({ REF_NAME_ANNOTATION: r });
        }
        manifests.push(entry);
        fsutil::write_atomic(&path, &serde_json::to_vec(&index).expect("JSON values serialise"))?;
        Ok(())
    }
}

impl Dest for OciDirDest {
    fn describe(&self) -> String {
        match &self.reference {
            Some(r) => format!("oci:{}:{r}", self.dir.display()),
            None => format!("oci:{}", self.dir.display()),
        }
    }

    fn has_blob(&self, d: &Digest, size: u64) -> Result<bool> {
        Ok(fs::symlink_metadata(self.blob_path(d)).map(|m| m.is_file() && m.len() == size).unwrap_or(false))
    }

    fn put_blob(&self, d: &Digest, size: u64, data: &mut dyn Read) -> Result<()> {
        self.write(Some((d, size)), data).map(|_| ())
    }

    fn put_stream(&self, data: &mut dyn Read) -> Result<(Digest, u64)> {
        self.write(None, data)
    }

    fn put_manifest(&self, bytes: &[u8], media_type: &str, digest: &Digest) -> Result<bool> {
        let fresh = !self.has_blob(digest, bytes.len() as u64)?;
        if fresh {
            self.write(Some((digest, bytes.len() as u64)), &mut &bytes[..])?;
        }
        *self.manifest.lock().expect("manifest slot") = Some((digest.clone(), bytes.len() as u64, media_type.to_string()));
        Ok(fresh)
    }
}

/// Write an OCI layout directory as a tarball (for oci-archive:), atomically.
pub fn tar_dir(dir: &Path, dest: &Path) -> Result<()> {
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new().prefix(".ci-push-").tempfile_in(parent).ctx("create a temporary file in", parent)?;
    let mut b = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, tmp));
    let mut names = Vec::new();
    walk(dir, dir, &mut names)?;
    names.sort();
    for rel in names {
        let p = dir.join(&rel);
        let meta = fs::symlink_metadata(&p).ctx("stat", &p)?;
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        if meta.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, format!("{}/", rel.display()), io::empty()).ctx("write archive", dest)?;
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(meta.len());
            let f = File::open(&p).ctx("open", &p)?;
            b.append_data(&mut h, &rel, f).ctx("write archive", dest)?;
        }
    }
    let w = b.into_inner().ctx("write archive", dest)?;
    let mut tmp = w.into_inner().map_err(|e| Error::io("write archive", dest, e.into_error()))?;
    tmp.flush().ctx("write archive", dest)?;
    tmp.as_file().sync_all().ctx("fsync", dest)?;
    tmp.persist(dest).map_err(|e| e.error).ctx("rename into place", dest)?;
    Ok(())
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in fs::read_dir(dir).ctx("read directory", dir)? {
        let e = e.ctx("read directory", dir)?;
        let p = e.path();
        let rel = p.strip_prefix(root).expect("under root").to_path_buf();
        if e.file_name().to_string_lossy().starts_with(".tmp-") {
            continue;
        }
        out.push(rel);
        if e.file_type().ctx("stat", &p)?.is_dir() {
            walk(root, &p, out)?;
        }
    }
    Ok(())
}
