//! A registry as a [`Source`] (pull) and as a [`Dest`] (push): the
//! requests of the OCI distribution spec, one function per step.
//!
//! ```text
//! GET  /v2/NAME/manifests/REF        a manifest or index (Accept: the four types)
//! GET  /v2/NAME/blobs/DIGEST         a blob (may redirect to storage)
//! HEAD /v2/NAME/blobs/DIGEST         does the registry have it?
//! POST /v2/NAME/blobs/uploads/?mount=DIGEST&from=OTHER   cross-repository mount
//!                                    → 201 mounted, or 202 + Location: upload there
//! POST /v2/NAME/blobs/uploads/       start an upload → 202, Location
//! PUT  LOCATION?digest=DIGEST        monolithic upload (the whole blob)
//! PATCH LOCATION  Content-Range: a-b chunked upload → 202, new Location, Range
//! PUT  LOCATION?digest=DIGEST        close a chunked upload
//! PUT  /v2/NAME/manifests/TAG        the manifest, last
//! ```

use std::io::Read;
use std::sync::Mutex;

use ureq::http::{Method, StatusCode};

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::reference::Reference;

use super::auth::{pull_scope, push_scope};
use super::blob_info::BlobInfo;
use super::client::{self, header, Body, Call, Registry};
use super::manifest::{self, Descriptor, MAX_MANIFEST};
use super::pull::{Root, Source};
use super::push::Dest;

/// The size of one PATCH of a chunked upload. Bigger means fewer round
/// trips; each transfer thread holds one such buffer.
pub const CHUNK: usize = 8 << 20;

/// The tag or digest part of a manifest URL.
fn manifest_ref(r: &Reference) -> String {
    match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => crate::reference::DEFAULT_TAG.to_string(),
    }
}

/// The tags of a repository (`GET /v2/NAME/tags/list`, following `Link: <…>; rel="next"` pages).
pub fn list_tags(reg: &Registry, repo: &str) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Page {
        #[serde(default)]
        tags: Option<Vec<String>>,
    }
    let mut url = reg.url(&format!("/v2/{repo}/tags/list"));
    let mut tags = Vec::new();
    for _ in 0..1000 {
        let resp = reg.get(url.clone(), vec![pull_scope(repo)], &[])?;
        if resp.status() == StatusCode::NOT_FOUND {
            client::drain(resp);
            return Err(Error::not_found("repository", format!("{}/{repo}", reg.host())));
        }
        let mut resp = client::expect(resp, &[StatusCode::OK], "GET", &url)?;
        let next = header(&resp, "link").and_then(|l| {
            let (target, rel) = l.split_once(';')?;
            rel.contains("next").then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
        });
        let body = client::read_limited(&mut resp, 16 << 20, &url)?;
        let page: Page = serde_json::from_slice(&body).map_err(|e| Error::Corrupt(format!("{url}: not a tag list: {e}")))?;
        tags.extend(page.tags.unwrap_or_default());
        match next {
            Some(n) => url = client::resolve(&url, &n),
            None => return Ok(tags),
        }
    }
    Err(Error::Corrupt(format!("{url}: the tag list does not end")))
}

/// Pulling from a repository of a registry.
pub struct RegistrySource<'r> {
    pub reg: &'r Registry,
    pub reference: Reference,
    pub info: Option<&'r Mutex<BlobInfo>>,
}

impl RegistrySource<'_> {
    fn repo(&self) -> &str {
        self.reference.path()
    }

    fn get_manifest(&self, reference: &str, limit: u64) -> Result<(Vec<u8>, Option<String>, Option<String>)> {
        let url = self.reg.url(&format!("/v2/{}/manifests/{reference}", self.repo()));
        let resp = self.reg.get(url.clone(), vec![pull_scope(self.repo())], &[("accept", manifest::accept())])?;
        if resp.status() == StatusCode::NOT_FOUND {
            client::drain(resp);
            return Err(Error::not_found("image", self.describe())
                .hint(format!("the registry {} has no manifest {reference} in {}; check the name and tag", self.reg.host(), self.repo())));
        }
        let mut resp = client::expect(resp, &[StatusCode::OK], "GET", &url)?;
        let ct = header(&resp, "content-type");
        let dcd = header(&resp, "docker-content-digest");
        if let Some(n) = resp.body().content_length() {
            if n > limit {
                return Err(Error::Corrupt(format!("{url}: the manifest is {n} bytes, more than the limit of {limit}")));
            }
        }
        let bytes = client::read_limited(&mut resp, limit, &url)?;
        Ok((bytes, ct, dcd))
    }
}

/// `Docker-Content-Digest` is optional, but when present it must be the digest of the body.
fn check_header_digest(header: Option<&str>, bytes: &[u8], what: &str) -> Result<()> {
    let Some(h) = header else { return Ok(()) };
    let d = Digest::validate(h.trim()).map_err(|e| {
        Error::Corrupt(format!("{what}: the registry's Docker-Content-Digest header {h:?} is invalid: {}", e.describe()))
    })?;
    let actual = Digest::of_bytes(d.algorithm(), bytes);
    if actual != d {
        return Err(Error::Corrupt(format!(
            "{what}: the registry says (Docker-Content-Digest) it sent {d}, but the bytes hash to {actual}"
        ))
        .hint("nothing was stored; the registry or a proxy in between is serving altered data"));
    }
    Ok(())
}

impl Source for RegistrySource<'_> {
    fn describe(&self) -> String {
        self.reference.to_string()
    }

    fn root(&self) -> Result<Root> {
        let (bytes, ct, dcd) = self.get_manifest(&manifest_ref(&self.reference), MAX_MANIFEST)?;
        check_header_digest(dcd.as_deref(), &bytes, &format!("the manifest of {}", self.describe()))?;
        Ok(Root { bytes, content_type: ct, pinned: self.reference.digest().cloned(), names: vec![self.reference.clone()] })
    }

    fn manifest(&self, d: &Descriptor) -> Result<Vec<u8>> {
        let (bytes, _, dcd) = self.get_manifest(&d.digest.to_string(), d.size.min(MAX_MANIFEST))?;
        check_header_digest(dcd.as_deref(), &bytes, &format!("manifest {}", d.digest))?;
        Ok(bytes)
    }

    fn blob(&self, d: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        let url = self.reg.url(&format!("/v2/{}/blobs/{}", self.repo(), d.digest));
        let resp = self.reg.get(url.clone(), vec![pull_scope(self.repo())], &[])?;
        if resp.status() == StatusCode::NOT_FOUND {
            client::drain(resp);
            return Err(Error::not_found("blob", format!("{} in {}", d.digest, self.describe()))
                .hint("the registry lost a blob its manifest names; push the image again"));
        }
        let resp = client::expect(resp, &[StatusCode::OK], "GET", &url)?;
        if let Some(n) = resp.body().content_length() {
            if n != d.size {
                return Err(Error::Corrupt(format!(
                    "{url}: the registry sends {n} bytes, but the manifest says the blob has {}",
                    d.size
                )));
            }
        }
        Ok(Box::new(resp.into_body().into_reader()))
    }

    fn seen(&self, digests: &[Digest]) {
        if let Some(info) = self.info {
            let mut info = info.lock().expect("blob info");
            for d in digests {
                info.add_location(d, self.reg.host(), self.repo());
            }
        }
    }
}

/// An upload session the registry opened: where to send the data, and the
/// smallest chunk it takes (`OCI-Chunk-Min-Length`).
struct Session {
    loc: String,
    min: u64,
}

impl Session {
    /// The session a `202 Accepted` to `POST url` opened.
    fn of(resp: &client::Response, url: &str) -> Option<Session> {
        let loc = header(resp, "location")?;
        let min = header(resp, "oci-chunk-min-length").and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0);
        // Relative to the POST it answers, not to /v2/ (`uploads/<id>` and `<id>` are both seen).
        Some(Session { loc: client::resolve(url, &loc), min })
    }
}

/// Pushing to a repository of a registry.
pub struct RegistryDest<'r> {
    pub reg: &'r Registry,
    pub reference: Reference,
    pub info: &'r Mutex<BlobInfo>,
    pub chunk: usize,
    /// Sessions the registry opened when a mount fell back to an upload
    /// (202): the spec's "upload here instead", used before opening new ones.
    opened: Mutex<Vec<Session>>,
}

impl<'r> RegistryDest<'r> {
    pub fn new(reg: &'r Registry, reference: Reference, info: &'r Mutex<BlobInfo>) -> RegistryDest<'r> {
        RegistryDest { reg, reference, info, chunk: CHUNK, opened: Mutex::new(Vec::new()) }
    }

    fn repo(&self) -> &str {
        self.reference.path()
    }

    fn scopes(&self) -> Vec<String> {
        vec![push_scope(self.repo())]
    }

    /// An upload session: one a failed mount left open, else a new one (POST).
    fn start_upload(&self) -> Result<(String, u64)> {
        if let Some(s) = self.opened.lock().expect("sessions").pop() {
            return Ok((s.loc, s.min));
        }
        let url = self.reg.url(&format!("/v2/{}/blobs/uploads/", self.repo()));
        let resp = self.reg.send(Call::new(Method::POST, url.clone(), self.scopes()))?;
        let resp = client::expect(resp, &[StatusCode::ACCEPTED], "POST", &url)?;
        let s = Session::of(&resp, &url)
            .ok_or_else(|| Error::Corrupt(format!("POST {url}: the registry answered 202 without a Location")))?;
        client::drain(resp);
        Ok((s.loc, s.min))
    }

    /// PUT LOCATION?digest=D: close an upload, with `body` as its (last) data.
    fn finish_upload(&self, loc: &str, d: &Digest, body: Body<'_>) -> Result<()> {
        let url = client::with_query(loc, &format!("digest={}", super::auth::query_escape(&d.to_string())));
        let resp = self.reg.send(Call::new(Method::PUT, url.clone(), self.scopes()).header("content-type", "application/octet-stream").body(body))?;
        let resp = client::expect(resp, &[StatusCode::CREATED, StatusCode::NO_CONTENT], "PUT", &url)?;
        if let Some(h) = header(&resp, "docker-content-digest") {
            if Digest::validate(h.trim()).ok().as_ref() != Some(d) {
                return Err(Error::Corrupt(format!("PUT {url}: the registry stored the blob as {h}, not {d}")));
            }
        }
        client::drain(resp);
        Ok(())
    }

    /// PATCH one chunk at `offset`; returns the next Location. A registry
    /// that kept fewer bytes than sent (its `Range`) gets the rest again.
    fn patch(&self, mut loc: String, offset: u64, chunk: &[u8]) -> Result<String> {
        let end = offset + chunk.len() as u64; // exclusive
        let mut from = offset;
        for _ in 0..4 {
            let part = &chunk[(from - offset) as usize..];
            let call = Call::new(Method::PATCH, loc.clone(), self.scopes())
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{from}-{}", end - 1))
                .body(Body::Bytes(part));
            let resp = self.reg.send(call)?;
            let status = resp.status();
            let (next, held) = if status == StatusCode::RANGE_NOT_SATISFIABLE {
                // Out of step: ask the upload where it is.
                client::drain(resp);
                let st = self.reg.send(Call::new(Method::GET, loc.clone(), self.scopes()))?;
                let st = client::expect(st, &[StatusCode::NO_CONTENT, StatusCode::OK], "GET", &loc)?;
                let next = header(&st, "location").map(|l| client::resolve(&loc, &l)).unwrap_or(loc.clone());
                let held = header(&st, "range").and_then(|r| range_end(&r)).unwrap_or(0);
                client::drain(st);
                (next, held)
            } else {
                let resp = client::expect(resp, &[StatusCode::ACCEPTED, StatusCode::NO_CONTENT], "PATCH", &loc)?;
                let next = header(&resp, "location").map(|l| client::resolve(&loc, &l)).unwrap_or(loc.clone());
                let held = header(&resp, "range").and_then(|r| range_end(&r)).unwrap_or(end);
                client::drain(resp);
                (next, held)
            };
            loc = next;
            if held >= end {
                return Ok(loc);
            }
            if held < offset {
                return Err(Error::Corrupt(format!(
                    "PATCH {loc}: the registry holds {held} bytes of the upload, fewer than the {offset} already acknowledged"
                )));
            }
            from = held;
        }
        Err(Error::Corrupt(format!("PATCH {loc}: the registry keeps refusing bytes {from}-{}", end - 1)))
    }

    /// Give up an upload session (best effort).
    fn cancel(&self, loc: &str) {
        if let Ok(resp) = self.reg.send(Call::new(Method::DELETE, loc.to_string(), self.scopes())) {
            client::drain(resp);
        }
    }
}

/// `0-1023` or `bytes=0-1023` → 1024 (the number of bytes held).
fn range_end(r: &str) -> Option<u64> {
    let r = r.trim().trim_start_matches("bytes=");
    let (_, end) = r.split_once('-')?;
    end.trim().parse::<u64>().ok().map(|e| e + 1)
}

/// Fill `buf` from `r` as far as it goes; returns how much was read.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Dest for RegistryDest<'_> {
    fn describe(&self) -> String {
        self.reference.to_string()
    }

    fn has_blob(&self, d: &Digest, size: u64) -> Result<bool> {
        let url = self.reg.url(&format!("/v2/{}/blobs/{d}", self.repo()));
        let resp = self.reg.send(Call::new(Method::HEAD, url.clone(), self.scopes()))?;
        match resp.status() {
            StatusCode::OK => {
                let n = header(&resp, "content-length").and_then(|v| v.parse::<u64>().ok());
                client::drain(resp);
                // A registry that claims the blob with another size does not really have it.
                Ok(n.is_none_or(|n| n == size))
            }
            StatusCode::NOT_FOUND => {
                client::drain(resp);
                Ok(false)
            }
            _ => client::expect(resp, &[], "HEAD", &url).map(|_| false),
        }
    }

    fn mount(&self, d: &Digest) -> Result<Option<String>> {
        let sources: Vec<String> = self.info.lock().expect("blob info").repos_on(d, self.reg.host());
        // The first session a refused mount opens is kept for the upload; later ones are closed.
        let mut kept: Option<Session> = None;
        for from in sources.into_iter().filter(|r| r != self.repo()).take(3) {
            let url = self.reg.url(&format!(
                "/v2/{}/blobs/uploads/?mount={}&from={}",
                self.repo(),
                super::auth::query_escape(&d.to_string()),
                super::auth::query_escape(&from)
            ));
            let scopes = vec![push_scope(self.repo()), pull_scope(&from)];
            let resp = match self.reg.send(Call::new(Method::POST, url.clone(), scopes)) {
                Ok(r) => r,
                Err(e) => {
                    if let Some(s) = kept {
                        self.cancel(&s.loc);
                    }
                    return Err(e);
                }
            };
            match resp.status() {
                StatusCode::CREATED => {
                    client::drain(resp);
                    if let Some(s) = kept {
                        self.cancel(&s.loc);
                    }
                    return Ok(Some(from));
                }
                StatusCode::ACCEPTED => {
                    // Not mounted (the spec's fallback): the registry opened an upload instead.
                    let s = Session::of(&resp, &url);
                    client::drain(resp);
                    match (s, &kept) {
                        (Some(s), None) => kept = Some(s),
                        (Some(s), Some(_)) => self.cancel(&s.loc),
                        (None, _) => {}
                    }
                }
                _ => client::drain(resp),
            }
        }
        if let Some(s) = kept {
            self.opened.lock().expect("sessions").push(s);
        }
        Ok(None)
    }

    fn put_blob(&self, d: &Digest, size: u64, data: &mut dyn Read) -> Result<()> {
        let (loc, _) = self.start_upload()?;
        self.finish_upload(&loc, d, Body::Stream(data, Some(size))).inspect_err(|_| self.cancel(&loc))
    }

    fn put_stream(&self, data: &mut dyn Read) -> Result<(Digest, u64)> {
        let (mut loc, min) = self.start_upload()?;
        let mut buf = vec![0u8; self.chunk.max(min as usize)];
        let mut hasher = Hasher::new(crate::digest::Algorithm::Sha256);
        let mut offset = 0u64;
        let result = (|| -> Result<()> {
            loop {
                let n = fill(data, &mut buf).map_err(|e| super::from_io(e, "read", "layer"))?;
                if n == 0 {
                    return Ok(());
                }
                hasher.update(&buf[..n]);
                loc = self.patch(std::mem::take(&mut loc), offset, &buf[..n])?;
                offset += n as u64;
            }
        })();
        if let Err(e) = result {
            self.cancel(&loc);
            return Err(e);
        }
        let digest = hasher.finish();
        self.finish_upload(&loc, &digest, Body::Empty)?;
        Ok((digest, offset))
    }

    fn put_manifest(&self, bytes: &[u8], media_type: &str, digest: &Digest) -> Result<bool> {
        let r = manifest_ref(&self.reference);
        if let Some(d) = self.reference.digest() {
            if d != digest {
                return Err(Error::invalid(format!("{} names manifest {d}, but this image's manifest is {digest}", self.reference)));
            }
        }
        let url = self.reg.url(&format!("/v2/{}/manifests/{r}", self.repo()));
        let head = self.reg.send(Call::new(Method::HEAD, url.clone(), self.scopes()).header("accept", media_type))?;
        let there = head.status() == StatusCode::OK && header(&head, "docker-content-digest").as_deref() == Some(&digest.to_string());
        client::drain(head);
        if there {
            return Ok(false);
        }
        let call = Call::new(Method::PUT, url.clone(), self.scopes()).header("content-type", media_type).body(Body::Bytes(bytes));
        let resp = client::expect(self.reg.send(call)?, &[StatusCode::CREATED, StatusCode::OK], "PUT", &url)?;
        if let Some(h) = header(&resp, "docker-content-digest") {
            if h.trim() != digest.to_string() {
                return Err(Error::Corrupt(format!("PUT {url}: the registry stored the manifest as {h}, not {digest}")));
            }
        }
        client::drain(resp);
        Ok(true)
    }

    fn seen(&self, d: &Digest) {
        self.info.lock().expect("blob info").add_location(d, self.reg.host(), self.repo());
    }
}

impl Drop for RegistryDest<'_> {
    /// Sessions left open (a push that failed before using them) are closed.
    fn drop(&mut self) {
        for s in std::mem::take(self.opened.get_mut().expect("sessions")) {
            self.cancel(&s.loc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(range_end("0-1023"), Some(1024));
        assert_eq!(range_end("bytes=0-9"), Some(10));
        assert_eq!(range_end("junk"), None);
    }
}
