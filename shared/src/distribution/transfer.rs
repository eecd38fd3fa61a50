//! The verbs of ci-push and ci-pull, once the flags are read: resolve
//! what the user named, pick the source or destination for the transport,
//! run the transfer, and describe each image moved as a [`TransferObject`].

use std::io::Write;
use std::sync::Mutex;

use crate::compression::Compression;
use crate::error::{Error, IoContext, Result};
use crate::image::{self, Image};
use crate::object::{expand_stdin, TransferObject};
use crate::reference::{parse_any, AnyReference, Reference};
use crate::store::Store;

use super::archive::oci_archive::OciArchiveDest;
use super::archive::oci_dir::{DirFiles, LayoutSource, OciDirDest};
use super::archive::{docker_archive, oci_archive, TarIndex};
use super::blob_info::BlobInfo;
use super::client::{ClientOptions, Registry};
use super::credentials::{Credentials, DockerConfig, Store as CredStore};
use super::manifest::Platform;
use super::progress::Progress;
use super::pull::{pull, PullOptions, Source};
use super::push::{push, PushOptions};
use super::registry::{list_tags, RegistryDest, RegistrySource};
use super::transport::Transport;

/// Everything a transfer can be told.
#[derive(Debug, Clone)]
pub struct TransferOptions {
    pub client: ClientOptions,
    pub jobs: usize,
    pub compression: Compression,
    pub platform: Platform,
    pub all_tags: bool,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            client: ClientOptions::default(),
            jobs: super::DEFAULT_JOBS,
            compression: Compression::Gzip,
            platform: Platform::host(),
            all_tags: false,
        }
    }
}

fn object(img: &Image, reference: String, digest: crate::digest::Digest, uploaded: Option<usize>) -> TransferObject {
    TransferObject { kind: "image".into(), id: img.id.clone(), reference, digest, tags: img.tags(), uploaded }
}

/// The images `ci-push SRC` means, each with the reference it was named by (if any).
fn push_sources(store: &Store, src: &str, all_tags: bool) -> Result<Vec<(Image, Option<Reference>)>> {
    if src == "-" {
        let ids = expand_stdin(&["-".to_string()], "image")?;
        return ids.iter().map(|id| Ok((image::resolve(store, id)?, None))).collect();
    }
    if all_tags {
        let repo = match parse_any(src) {
            Ok(AnyReference::Named(r)) if r.tag().is_none() && r.digest().is_none() => r,
            _ => return Err(Error::invalid(format!("--all-tags takes a repository name without tag or digest, not {src:?}"))),
        };
        let mut out = Vec::new();
        for img in image::list(store)? {
            for r in img.refs.iter().filter(|r| r.name() == repo.name() && r.tag().is_some()) {
                out.push((img.clone(), Some(r.clone())));
            }
        }
        if out.is_empty() {
            return Err(Error::not_found("image", format!("tagged {}", repo.familiar())));
        }
        return Ok(out);
    }
    let img = image::resolve(store, src)?;
    let named = match parse_any(src) {
        Ok(AnyReference::Named(r)) if r.digest().is_none() => Some(r.with_default_tag()),
        _ => None,
    };
    Ok(vec![(img, named)])
}

/// `ci-push [--all-tags] SRC [DEST]`.
pub fn push_images(store: &Store, src: &str, dest: Option<&str>, opts: &TransferOptions, progress: &Progress) -> Result<Vec<TransferObject>> {
    let sources = push_sources(store, src, opts.all_tags)?;
    let dest = match dest {
        Some(d) => Transport::parse(d)?,
        None => {
            let r = sources[0].1.clone().or_else(|| (sources[0].0.refs.len() == 1).then(|| sources[0].0.refs[0].clone()));
            match r {
                Some(r) if opts.all_tags => Transport::Registry(Reference::parse_normalized(&r.name()).map_err(|e| Error::invalid(e.describe()))?),
                Some(r) => Transport::Registry(r),
                None => return Err(Error::invalid(format!("image {src} has no single name to push to; give DEST (a registry reference or a transport)"))),
            }
        }
    };
    let popts = PushOptions { compression: opts.compression, jobs: opts.jobs };
    let info = Mutex::new(BlobInfo::load(store));
    let mut out = Vec::new();
    match &dest {
        Transport::Registry(r) => {
            let reg = Registry::connect(r.domain(), &opts.client)?;
            for (img, named) in &sources {
                let target = if opts.all_tags {
                    let tag = named.as_ref().and_then(|n| n.tag()).expect("all-tags sources have tags");
                    Reference::parse_normalized(&r.name()).map_err(|e| Error::invalid(e.describe()))?.with_tag(tag)?
                } else if r.tag().is_none() && r.digest().is_none() {
                    r.clone().with_default_tag()
                } else {
                    r.clone()
                };
                let d = RegistryDest::new(&reg, target.clone(), &info);
                let pushed = push(store, img, &d, &popts, progress, &info)?;
                out.push(object(img, target.to_string(), pushed.digest, Some(pushed.uploaded)));
            }
            // The cache is worth keeping even if a later image failed; write it once here.
            info.lock().expect("blob info").save(store)?;
        }
        Transport::OciDir { path, reference } => {
            for (img, named) in &sources {
                let reference = reference.clone().or_else(|| opts.all_tags.then(|| named.as_ref().and_then(|n| n.tag()).map(str::to_string)).flatten());
                let d = OciDirDest::create(path, reference.clone())?;
                let pushed = push(store, img, &d, &popts, progress, &info)?;
                d.finish()?;
                let t = Transport::OciDir { path: path.clone(), reference };
                out.push(object(img, t.to_string(), pushed.digest, Some(pushed.uploaded)));
            }
            info.lock().expect("blob info").save(store)?;
        }
        Transport::OciArchive { path, reference } => {
            let [(img, _)] = sources.as_slice() else {
                return Err(Error::invalid("an oci-archive holds one image here; push tags one by one"));
            };
            let d = OciArchiveDest::create(store, path, reference.clone())?;
            let pushed = push(store, img, &d.dir, &popts, progress, &info)?;
            d.finish()?;
            info.lock().expect("blob info").save(store)?;
            out.push(object(img, dest.to_string(), pushed.digest, Some(pushed.uploaded)));
        }
        Transport::DockerArchive { path, reference } => {
            let [(img, named)] = sources.as_slice() else {
                return Err(Error::invalid("a docker-archive holds one image here; push tags one by one"));
            };
            let tag = reference.clone().or_else(|| named.clone()).or_else(|| img.refs.first().cloned());
            docker_archive::save(store, img, path, tag.as_ref(), progress)?;
            let t = Transport::DockerArchive { path: path.clone(), reference: tag };
            out.push(object(img, t.to_string(), img.manifest_digest.clone(), None));
        }
        Transport::Stdin => return Err(Error::invalid("`-` is not a destination: give a registry reference, docker-archive:FILE, oci-archive:FILE or oci:DIR")),
    }
    Ok(out)
}

/// `ci-pull [--all-tags] SRC`.
pub fn pull_images(store: &Store, src: &str, opts: &TransferOptions, progress: &Progress) -> Result<Vec<TransferObject>> {
    let t = Transport::parse(src)?;
    let popts = PullOptions { platform: opts.platform.clone(), jobs: opts.jobs };
    let pulled = |img: Image, s: &dyn Source| object(&img, s.describe(), img.manifest_digest.clone(), None);
    match &t {
        Transport::Registry(r) => {
            let reg = Registry::connect(r.domain(), &opts.client)?;
            let info = Mutex::new(BlobInfo::load(store));
            let refs = if opts.all_tags {
                if r.digest().is_some() {
                    return Err(Error::invalid("--all-tags pulls a repository, not a digest"));
                }
                let base = Reference::parse_normalized(&r.name()).map_err(|e| Error::invalid(e.describe()))?;
                let tags = list_tags(&reg, r.path())?;
                tags.iter().map(|tag| base.with_tag(tag)).collect::<Result<Vec<_>>>()?
            } else {
                vec![r.clone()]
            };
            let mut out = Vec::new();
            for reference in refs {
                let s = RegistrySource { reg: &reg, reference, info: Some(&info) };
                let img = pull(store, &s, &popts, progress)?;
                out.push(pulled(img, &s));
            }
            info.lock().expect("blob info").save(store)?;
            Ok(out)
        }
        Transport::OciDir { path, reference } => {
            let s = LayoutSource { files: DirFiles(path.clone()), reference: reference.clone(), what: t.to_string() };
            Ok(vec![pulled(pull(store, &s, &popts, progress)?, &s)])
        }
        Transport::OciArchive { path, reference } => {
            let s = oci_archive::source(path, reference.clone(), t.to_string())?;
            Ok(vec![pulled(pull(store, &s, &popts, progress)?, &s)])
        }
        Transport::DockerArchive { path, reference } => {
            let images = docker_archive::load(store, path, reference.as_ref(), progress, opts.jobs)?;
            Ok(images.into_iter().map(|img| { let d = img.manifest_digest.clone(); object(&img, t.to_string(), d, None) }).collect())
        }
        Transport::Stdin => pull_stdin(store, &popts, progress, opts.jobs),
    }
}

/// `docker save x | ci-pull -`: spool the tarball into the store's tmp (a
/// pipe cannot be read twice), then read it as a docker or OCI archive.
/// Its first block must be a tar header: garbage is refused at once, not
/// after copying all of it to disk.
fn pull_stdin(store: &Store, popts: &PullOptions, progress: &Progress, jobs: usize) -> Result<Vec<TransferObject>> {
    let mut stdin = std::io::stdin().lock();
    let mut first = [0u8; 512];
    let mut got = 0;
    while got < first.len() {
        match std::io::Read::read(&mut stdin, &mut first[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read", "stdin", e)),
        }
    }
    check_tar_header(&first[..got])?;
    let tmp = store.temp_dir("stdin-archive-")?;
    let path = tmp.path().join("archive.tar");
    {
        let mut f = std::fs::File::create(&path).ctx("create", &path)?;
        f.write_all(&first).ctx("write", &path)?;
        std::io::copy(&mut stdin, &mut f).ctx("read stdin into", &path)?;
        f.flush().ctx("write", &path)?;
    }
    let idx = TarIndex::open_as(&path, "stdin")?;
    if idx.contains("manifest.json") {
        let images = docker_archive::load_indexed(store, &idx, None, progress, jobs)?;
        return Ok(images.into_iter().map(|img| { let d = img.manifest_digest.clone(); object(&img, "docker-archive:-".into(), d, None) }).collect());
    }
    if idx.contains("index.json") {
        let s = LayoutSource { files: idx, reference: None, what: "oci-archive:-".into() };
        let img = pull(store, &s, popts, progress)?;
        let d = img.manifest_digest.clone();
        return Ok(vec![object(&img, "oci-archive:-".into(), d, None)]);
    }
    Err(Error::invalid("stdin is a tar archive, but neither a `docker save` archive (manifest.json) nor an OCI archive (index.json)"))
}

/// Refuse what cannot be the start of a tar archive: fewer than 512 bytes,
/// an end-of-archive block, or a block whose header checksum is wrong.
fn check_tar_header(block: &[u8]) -> Result<()> {
    let not_tar = |why: &str| {
        Error::invalid(format!("stdin: not a tar archive ({why})"))
            .hint("`ci-pull -` reads a `docker save` archive or an OCI archive (a tar) on stdin")
    };
    if block.is_empty() {
        return Err(not_tar("stdin is empty"));
    }
    if block.len() < 512 {
        return Err(not_tar(&format!("it ends after {} bytes, before the first 512-byte header", block.len())));
    }
    if block.iter().all(|&b| b == 0) {
        return Err(not_tar("it starts with an end-of-archive block: an empty archive"));
    }
    if !crate::tarball::is_header(block) {
        return Err(not_tar("the first 512-byte block is not a tar header: its checksum does not match"));
    }
    Ok(())
}

/// What `ci-push login` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoginObject {
    /// Always "credentials".
    pub kind: &'static str,
    /// The registry host.
    pub id: String,
    pub username: String,
    /// Where the credentials are kept (a file or a credential helper).
    pub stored_in: String,
}

/// The registry host a user means (`https://host:5000/` → `host:5000`, `index.docker.io` → `docker.io`).
pub fn registry_host(arg: &str) -> Result<String> {
    let h = arg.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
    let h = h.split('/').next().unwrap_or(h);
    if h == crate::reference::LEGACY_DEFAULT_DOMAIN || h == crate::reference::DOCKER_HUB_REGISTRY {
        return Ok(crate::reference::DEFAULT_DOMAIN.to_string());
    }
    let r = Reference::parse_normalized(&format!("{h}/x")).map_err(|e| Error::invalid(format!("{arg:?} is not a registry host: {}", e.describe())))?;
    if r.domain() != h {
        return Err(Error::invalid(format!("{arg:?} is not a registry host (write it as HOST or HOST:PORT)")));
    }
    Ok(h.to_string())
}

/// `ci-push login`: check the credentials with the registry, then keep them where docker does.
pub fn login(host: &str, creds: Credentials, client: &ClientOptions) -> Result<LoginObject> {
    let reg = Registry::connect_with(host, client, Some(creds.clone()))?;
    reg.check_login()?;
    let mut cfg = DockerConfig::load()?;
    let kept = cfg.store(host, &creds)?;
    Ok(LoginObject { kind: "credentials", id: host.to_string(), username: creds.username, stored_in: kept.to_string() })
}

/// What `ci-push logout` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogoutObject {
    pub kind: &'static str,
    pub id: String,
    /// False when there were no credentials for this registry.
    pub removed: bool,
}

pub fn logout(host: &str) -> Result<LogoutObject> {
    let mut cfg = DockerConfig::load()?;
    let removed = cfg.erase(host)?;
    Ok(LogoutObject { kind: "credentials", id: host.to_string(), removed })
}

/// Where credentials for a host would come from (for messages).
pub fn credentials_source(host: &str) -> Result<Option<CredStore>> {
    Ok(DockerConfig::load()?.get(host)?.map(|(_, s)| s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_block_must_be_a_tar_header() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "manifest.json", &b"[]"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        check_tar_header(&tar[..512]).unwrap();
        for (garbage, why) in [
            (vec![], "empty"),
            (b"{\"kind\":\"image\"}".to_vec(), "ends after"),
            (vec![0u8; 512], "end-of-archive"),
            (vec![b'x'; 512], "checksum"),
        ] {
            let e = check_tar_header(&garbage).unwrap_err().to_string();
            assert!(e.contains("not a tar archive") && e.contains(why), "{e}");
        }
        let mut flipped = tar[..512].to_vec();
        flipped[0] ^= 1;
        assert!(check_tar_header(&flipped).is_err());
    }
}
