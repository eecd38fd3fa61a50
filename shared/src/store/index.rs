//! `index.json` of the image layout: the list of images the store holds.
//!
//! Each entry is a manifest descriptor. A tagged image's entry carries the
//! full reference (`docker.io/library/busybox:latest`) in the standard
//! annotation `org.opencontainers.image.ref.name`, so skopeo and umoci find
//! it as `oci:ROOT/images:docker.io/library/busybox:latest`. An image with no
//! tag (dangling) keeps one entry without the annotation, so it is not
//! garbage. One reference names at most one entry.

use std::collections::HashMap;
use std::path::Path;

use oci_spec::image::{Descriptor, DescriptorBuilder, ImageIndex, ImageIndexBuilder, MediaType};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;

pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// One image in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub manifest: Digest,
    pub size: u64,
    pub media_type: String,
    pub ref_name: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Index {
    entries: Vec<Entry>,
}

impl Index {
    pub fn load(path: &Path) -> Result<Index> {
        let data = std::fs::read(path).ctx("read", path)?;
        let index: ImageIndex = serde_json::from_slice(&data).map_err(|e| {
            Error::Corrupt(format!("{} is not a valid OCI image index: {e}", path.display()))
        })?;
        let mut entries = Vec::new();
        for m in index.manifests() {
            let manifest = Digest::try_from(m.digest()).map_err(|e| {
                Error::Corrupt(format!("{}: bad manifest digest: {e}", path.display()))
            })?;
            let ref_name = m.annotations().as_ref().and_then(|a| a.get(REF_NAME_ANNOTATION)).cloned();
            entries.push(Entry { manifest, size: m.size(), media_type: m.media_type().to_string(), ref_name });
        }
        Ok(Index { entries })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let manifests: Vec<Descriptor> = self
            .entries
            .iter()
            .map(|e| {
                let mut d = DescriptorBuilder::default()
                    .media_type(MediaType::from(e.media_type.as_str()))
                    .digest(oci_spec::image::Digest::from(&e.manifest))
                    .size(e.size)
                    .build()
                    .expect("descriptor fields are all set");
                if let Some(r) = &e.ref_name {
                    d.set_annotations(Some(HashMap::from([(REF_NAME_ANNOTATION.to_string(), r.clone())])));
                }
                d
            })
            .collect();
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .expect("index fields are all set");
        fsutil::write_json_atomic(path, &index)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The manifest a reference points to.
    pub fn lookup(&self, ref_name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.ref_name.as_deref() == Some(ref_name))
    }

    /// All references to one manifest.
    pub fn refs_of(&self, manifest: &Digest) -> Vec<String> {
        self.entries.iter().filter(|e| &e.manifest == manifest).filter_map(|e| e.ref_name.clone()).collect()
    }

    pub fn contains(&self, manifest: &Digest) -> bool {
        self.entries.iter().any(|e| &e.manifest == manifest)
    }

    /// Add an image, optionally under a reference. A reference that named
    /// another image moves; that image stays in the index, untagged, if
    /// nothing else names it (docker's "dangling" image). Returns the
    /// manifest the reference named before, if any.
    pub fn add(&mut self, manifest: &Digest, size: u64, media_type: &str, ref_name: Option<&str>) -> Option<Digest> {
        let mut previous = None;
        if let Some(r) = ref_name {
            if let Some(pos) = self.entries.iter().position(|e| e.ref_name.as_deref() == Some(r)) {
                let old = self.entries.remove(pos);
                if &old.manifest != manifest {
                    if !self.contains(&old.manifest) {
                        self.entries.push(Entry { ref_name: None, ..old.clone() });
                    }
                    previous = Some(old.manifest);
                }
            }
            // A tagged image needs no untagged placeholder.
            self.entries.retain(|e| !(&e.manifest == manifest && e.ref_name.is_none()));
        } else if self.contains(manifest) {
            return None;
        }
        self.entries.push(Entry {
            manifest: manifest.clone(),
            size,
            media_type: media_type.to_string(),
            ref_name: ref_name.map(str::to_string),
        });
        previous
    }

    /// Remove one reference. The image itself is removed too when this was
    /// its last reference (docker's `rmi TAG`); returns the manifest it named.
    pub fn remove_ref(&mut self, ref_name: &str) -> Option<Digest> {
        let pos = self.entries.iter().position(|e| e.ref_name.as_deref() == Some(ref_name))?;
        Some(self.entries.remove(pos).manifest)
    }

    /// Remove one reference but keep the image (untagged if that was its last
    /// name), with the entry's media type as it was.
    pub fn untag_keep(&mut self, ref_name: &str) {
        if let Some(pos) = self.entries.iter().position(|e| e.ref_name.as_deref() == Some(ref_name)) {
            let old = self.entries.remove(pos);
            if !self.contains(&old.manifest) {
                self.entries.push(Entry { ref_name: None, ..old });
            }
        }
    }

    /// Remove every entry of a manifest.
    pub fn remove_manifest(&mut self, manifest: &Digest) {
        self.entries.retain(|e| &e.manifest != manifest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    #[test]
    fn moving_a_tag_leaves_the_old_image_dangling() {
        let mut i = Index::default();
        let mt = "application/vnd.oci.image.manifest.v1+json";
        i.add(&d(1), 10, mt, Some("a:1"));
        assert_eq!(i.add(&d(2), 10, mt, Some("a:1")), Some(d(1)));
        assert_eq!(i.lookup("a:1").unwrap().manifest, d(2));
        assert!(i.contains(&d(1)));
        assert!(i.refs_of(&d(1)).is_empty());
        // Tagging the dangling image drops its placeholder.
        i.add(&d(1), 10, mt, Some("b:1"));
        assert_eq!(i.entries().len(), 2);
    }

    #[test]
    fn save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.json");
        let mut i = Index::default();
        i.add(&d(1), 10, "application/vnd.oci.image.manifest.v1+json", Some("docker.io/library/x:latest"));
        i.add(&d(2), 11, "application/vnd.oci.image.manifest.v1+json", None);
        i.save(&p).unwrap();
        let j = Index::load(&p).unwrap();
        assert_eq!(j.entries(), i.entries());
    }
}
