//! Manifests and indexes as registries and archives serve them: the four
//! media types we accept, the checks each document passes before anything
//! it names is fetched, and the choice of a platform in an index.
//!
//! | media type | what |
//! |---|---|
//! | `application/vnd.oci.image.manifest.v1+json` | OCI image manifest |
//! | `application/vnd.oci.image.index.v1+json` | OCI index (one manifest per platform) |
//! | `application/vnd.docker.distribution.manifest.v2+json` | Docker schema 2 manifest |
//! | `application/vnd.docker.distribution.manifest.list.v2+json` | Docker manifest list |
//!
//! Docker schema 1 (signed, pre-2017) is refused with a clear error. Every
//! digest in a document is validated before it is used for a URL or a path
//! (CVE-2024-3727); a document that is both a manifest and an index is
//! refused (CVE-2021-41190); so is a `mediaType` that contradicts the
//! `Content-Type` it came with.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::compression::Compression;
use crate::digest::Digest;
use crate::error::{Error, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The largest manifest or index accepted (the spec asks registries and
/// clients to accept at least 4 MB).
pub const MAX_MANIFEST: u64 = 4 << 20;
/// The largest image config accepted.
pub const MAX_CONFIG: u64 = 8 << 20;

/// What we send as `Accept` when fetching a manifest (schema 1 deliberately absent).
pub fn accept() -> String {
    [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(", ")
}

/// A content descriptor, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub platform: Option<Platform>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone)]
pub struct Index {
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, Clone)]
pub enum Document {
    Manifest(Manifest),
    Index(Index),
}

impl Document {
    pub fn media_type(&self) -> &str {
        match self {
            Document::Manifest(m) => &m.media_type,
            Document::Index(i) => &i.media_type,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDoc {
    schema_version: Option<serde_json::Value>,
    media_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    #[serde(rename = "fsLayers")]
    fs_layers: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: i64,
    platform: Option<RawPlatform>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RawPlatform {
    architecture: String,
    os: String,
    variant: Option<String>,
}

/// The media type without parameters (`; charset=utf-8`), lowercased.
fn bare(mt: &str) -> String {
    mt.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

fn is_manifest_type(mt: &str) -> bool {
    [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST, DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED].contains(&mt)
}

fn schema1(what: &str) -> Error {
    Error::Unsupported(format!(
        "{what} is a Docker schema 1 manifest (signed, deprecated since 2017); ci reads only schema 2 and OCI images"
    ))
    .hint("push the image again with a current docker, skopeo or ci-push; they write schema 2 or OCI")
}

/// Parse and check a manifest or index. `content_type` is what the
/// transport said (HTTP `Content-Type`, or the descriptor that led here).
pub fn parse(bytes: &[u8], content_type: Option<&str>, what: &str) -> Result<Document> {
    let ct = content_type.map(bare).filter(|c| is_manifest_type(c));
    if matches!(ct.as_deref(), Some(DOCKER_SCHEMA1) | Some(DOCKER_SCHEMA1_SIGNED)) {
        return Err(schema1(what));
    }
    let raw: RawDoc = serde_json::from_slice(bytes)
        .map_err(|e| Error::Corrupt(format!("{what} is not a valid manifest: {e}")))?;
    if raw.fs_layers.is_some() || raw.schema_version.as_ref().and_then(|v| v.as_i64()) == Some(1) {
        return Err(schema1(what));
    }
    if raw.schema_version.as_ref().and_then(|v| v.as_i64()) != Some(2) {
        return Err(Error::Corrupt(format!("{what}: schemaVersion must be 2")));
    }
    let field = raw.media_type.as_deref().map(bare);
    if let (Some(f), Some(c)) = (&field, &ct) {
        if f != c {
            return Err(Error::Corrupt(format!(
                "{what}: its mediaType {f} contradicts the Content-Type {c} it was served with (CVE-2021-41190)"
            )));
        }
    }
    let is_index = raw.manifests.is_some();
    let is_manifest = raw.config.is_some() || raw.layers.is_some();
    if is_index && is_manifest {
        return Err(Error::Corrupt(format!(
            "{what} is ambiguous: it has both \"manifests\" (an index) and \"config\"/\"layers\" (a manifest) (CVE-2021-41190)"
        )));
    }
    let mt = match field.or(ct) {
        Some(m) => m,
        // An OCI document may omit mediaType; its shape says what it is.
        None if is_index => OCI_INDEX.to_string(),
        None if is_manifest => OCI_MANIFEST.to_string(),
        None => return Err(Error::Corrupt(format!("{what} is neither a manifest nor an index"))),
    };
    match mt.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            if is_index {
                return Err(Error::Corrupt(format!("{what}: a {mt} must not have \"manifests\"")));
            }
            let config = descriptor(raw.config.ok_or_else(|| Error::Corrupt(format!("{what}: the manifest has no config")))?, what, "config")?;
            if config.media_type != OCI_CONFIG && config.media_type != DOCKER_CONFIG {
                return Err(Error::Unsupported(format!(
                    "{what} is not a container image: its config is of type {:?} (an OCI artifact?)",
                    config.media_type
                )));
            }
            let layers = raw
                .layers
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, l)| {
                    let d = descriptor(l, what, &format!("layer {}", i + 1))?;
                    if Compression::from_media_type(&d.media_type).is_none() {
                        return Err(Error::Unsupported(format!(
                            "{what}: layer {} has media type {:?}, which ci cannot unpack (tar, tar+gzip and tar+zstd are supported)",
                            i + 1,
                            d.media_type
                        )));
                    }
                    Ok(d)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Document::Manifest(Manifest { media_type: mt, config, layers }))
        }
        OCI_INDEX | DOCKER_LIST => {
            if is_manifest {
                return Err(Error::Corrupt(format!("{what}: a {mt} must not have \"config\" or \"layers\"")));
            }
            let manifests = raw
                .manifests
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, m)| descriptor(m, what, &format!("manifest {}", i + 1)))
                .collect::<Result<Vec<_>>>()?;
            Ok(Document::Index(Index { media_type: mt, manifests }))
        }
        DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => Err(schema1(what)),
        other => Err(Error::Unsupported(format!(
            "{what} has media type {other:?}, which is not an image manifest or index ci knows"
        ))
        .hint("ci pulls OCI and Docker schema 2 images")),
    }
}

fn descriptor(r: RawDescriptor, what: &str, which: &str) -> Result<Descriptor> {
    let digest = Digest::validate(&r.digest).map_err(|e| {
        Error::Corrupt(format!("{what}: the digest of its {which} ({:?}) is invalid: {}", r.digest, e.describe()))
    })?;
    if r.size < 0 {
        return Err(Error::Corrupt(format!("{what}: its {which} has a negative size ({})", r.size)));
    }
    let media_type = r.media_type.map(|m| bare(&m)).filter(|m| !m.is_empty()).ok_or_else(|| {
        Error::Corrupt(format!("{what}: its {which} has no mediaType"))
    })?;
    Ok(Descriptor {
        media_type,
        digest,
        size: r.size as u64,
        platform: r.platform.map(|p| Platform { os: p.os, architecture: p.architecture, variant: p.variant.filter(|v| !v.is_empty()) }),
        annotations: r.annotations.unwrap_or_default(),
    })
}

/// Check that bytes are what a digest names.
pub fn verify(bytes: &[u8], expected: &Digest, what: &str) -> Result<()> {
    let actual = Digest::of_bytes(expected.algorithm(), bytes);
    if &actual != expected {
        return Err(Error::Corrupt(format!(
            "{what}: the content received hashes to {actual}, not to {expected}: it was altered or truncated"
        ))
        .hint("nothing was stored; if it happens again the registry (or something between) is serving bad data"));
    }
    Ok(())
}

/// An OS and CPU architecture an image runs on (`linux/amd64`, `linux/arm64/v8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform { os: os.to_string(), architecture: arch.to_string(), variant: None }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => {
                Ok(Platform { os: os.to_string(), architecture: arch.to_string(), variant: Some(v.to_string()) })
            }
            _ => Err(Error::invalid(format!("--platform {s:?}: expected OS/ARCH or OS/ARCH/VARIANT, e.g. linux/amd64 or linux/arm64/v8"))),
        }
    }

    /// The platform of this machine.
    pub fn host() -> Platform {
        let arch = crate::image::config::host_arch().to_string();
        let variant = match arch.as_str() {
            "arm64" => Some("v8".to_string()),
            "arm" => Some("v7".to_string()),
            _ => None,
        };
        Platform { os: "linux".into(), architecture: arch, variant }
    }

    fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && match (&self.variant, &other.variant) {
                (Some(a), Some(b)) => a == b,
                // arm64 images often leave out the only variant there is.
                (Some(a), None) | (None, Some(a)) => self.architecture != "arm" || a == "v7",
                (None, None) => true,
            }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The entry of an index for a platform.
pub fn choose<'a>(index: &'a Index, want: &Platform, what: &str) -> Result<&'a Descriptor> {
    index
        .manifests
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| p.matches(want)))
        .ok_or_else(|| {
            let have: Vec<String> = index.manifests.iter().filter_map(|d| d.platform.as_ref().map(|p| p.to_string())).collect();
            Error::not_found("platform", format!("{want} in {what}"))
                .hint(format!("it has: {}; choose one with --platform", if have.is_empty() { "no platforms".into() } else { have.join(", ") }))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn manifest(mt: &str, layer_mt: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{mt}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{D1}","size":2}},"layers":[{{"mediaType":"{layer_mt}","digest":"{D1}","size":3}}]}}"#
        )
    }

    #[test]
    fn accepts_docker_and_oci() {
        let d = parse(manifest(DOCKER_MANIFEST, "application/vnd.docker.image.rootfs.diff.tar.gzip").as_bytes(), Some(DOCKER_MANIFEST), "m").unwrap();
        match d {
            Document::Manifest(m) => assert_eq!((m.layers.len(), m.config.size), (1, 2)),
            _ => panic!(),
        }
        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":1,"platform":{{"os":"linux","architecture":"arm64"}}}},{{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":7,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        let Document::Index(i) = parse(idx.as_bytes(), Some("application/vnd.oci.image.index.v1+json; charset=utf-8"), "i").unwrap() else { panic!() };
        assert_eq!(choose(&i, &Platform::parse("linux/amd64").unwrap(), "i").unwrap().size, 7);
        assert_eq!(choose(&i, &Platform::parse("linux/arm64/v8").unwrap(), "i").unwrap().size, 1);
        let e = choose(&i, &Platform::parse("linux/s390x").unwrap(), "i").unwrap_err().to_string();
        assert!(e.contains("linux/arm64, linux/amd64"), "{e}");
    }

    #[test]
    fn refuses_lies_and_unknowns() {
        let m = manifest(OCI_MANIFEST, "application/vnd.oci.image.layer.v1.tar+gzip");
        // mediaType contradicting Content-Type.
        assert!(parse(m.as_bytes(), Some(OCI_INDEX), "m").unwrap_err().to_string().contains("contradicts"));
        // Both a manifest and an index.
        let both = m.replacen("\"layers\"", "\"manifests\":[],\"layers\"", 1);
        assert!(parse(both.as_bytes(), None, "m").unwrap_err().to_string().contains("ambiguous"));
        // Traversal in a digest, negative size.
        let bad = m.replace(&format!("\"{D1}\",\"size\":3"), "\"sha256:../../../etc/passwd\",\"size\":3");
        assert!(parse(bad.as_bytes(), None, "m").unwrap_err().to_string().contains("invalid"));
        let neg = m.replace("\"size\":3", "\"size\":-1");
        assert!(parse(neg.as_bytes(), None, "m").unwrap_err().to_string().contains("negative"));
        // Schema 1, unknown media types, unknown layer types.
        assert!(parse(br#"{"schemaVersion":1,"fsLayers":[]}"#, None, "m").unwrap_err().to_string().contains("schema 1"));
        assert!(parse(b"{}", Some(DOCKER_SCHEMA1_SIGNED), "m").unwrap_err().to_string().contains("schema 1"));
        let odd = m.replace(OCI_MANIFEST, "application/vnd.example+json");
        assert!(parse(odd.as_bytes(), None, "m").unwrap_err().to_string().contains("not an image manifest"));
        let odd_layer = manifest(OCI_MANIFEST, "application/x-squashfs");
        assert!(parse(odd_layer.as_bytes(), None, "m").unwrap_err().to_string().contains("cannot unpack"));
        // Deep nesting is a parse error, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(deep.as_bytes(), None, "m").is_err());
    }
}
