//! ADD: COPY, plus two things.
//!
//! - A local tar archive (plain, gzip, bzip2 or xz, recognised by content
//!   as docker does) is extracted into DEST/ instead of copied. The
//!   archive is hostile: it goes through the layer extractor, rooted at
//!   DEST (docker chroots there too), so no entry lands outside it
//!   (CVE-2020-10696). Owners and modes come from the archive.
//! - A URL (`http://` or `https://`) is downloaded into DEST (DEST/NAME when DEST ends
//!   with `/`, NAME being the URL's last path component), mode 0600,
//!   never extracted. `--checksum=sha256:…` is checked, and makes the
//!   step's cache key known without downloading.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use crate::compression::Compression;
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};

/// Whether a source is a URL (ADD only).
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Whether `path` is a tar archive ADD extracts: compressed with gzip,
/// bzip2 or xz, or plain, with a valid first tar header.
pub fn is_archive(path: &Path) -> Result<bool> {
    let mut f = crate::fsutil::open_nofollow(path)?;
    let mut head = vec![0u8; 512];
    let n = crate::tarball::read_full(&mut f, &mut head).ctx("read", path)?;
    head.truncate(n);
    if head.starts_with(b"BZh") {
        let f = crate::fsutil::open_nofollow(path)?;
        let mut r = bzip2::read::BzDecoder::new(f);
        let mut block = vec![0u8; 512];
        let n = crate::tarball::read_full(&mut r, &mut block).unwrap_or(0);
        return Ok(n == 512 && crate::tarball::is_header(&block));
    }
    match Compression::detect(&head) {
        Compression::Gzip | Compression::Xz => {
            let f = crate::fsutil::open_nofollow(path)?;
            let Ok((_, mut r)) = crate::compression::decompress(f) else { return Ok(false) };
            let mut block = vec![0u8; 512];
            let n = crate::tarball::read_full(&mut r, &mut block).unwrap_or(0);
            Ok(n == 512 && crate::tarball::is_header(&block))
        }
        Compression::None => Ok(n == 512 && crate::tarball::is_header(&head)),
        _ => Ok(false),
    }
}


/// Extract the archive at `path` into the directory `dest` (an fd inside the image).
pub fn extract(path: &Path, dest: &OwnedFd) -> Result<crate::layer::UnpackStats> {
    let f = crate::fsutil::open_nofollow(path)?;
    let mut head = [0u8; 3];
    let n = crate::tarball::read_full(&mut &f, &mut head).ctx("read", path)?;
    let f = crate::fsutil::open_nofollow(path)?;
    let stream: Box<dyn Read> = if n == 3 && &head == b"BZh" {
        Box::new(bzip2::read::MultiBzDecoder::new(std::io::BufReader::new(f)))
    } else {
        crate::compression::decompress(f)?.1
    };
    let target = super::rootfs::fd_path(dest.as_fd());
    crate::layer::extract(stream, &target, crate::layer::Target::Tree).map_err(|e| e.context(format!("ADD: extract {}", path.display())))
}

/// The file name a URL gives (its last path component).
pub fn url_file_name(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = rest.split_once('/').map(|(_, p)| p).unwrap_or("");
    let path = path.split(['?', '#']).next().unwrap_or("");
    path.rsplit('/').next().filter(|n| !n.is_empty() && *n != "." && *n != "..").map(str::to_string)
}

/// What a download gave: the file, its digest and its Last-Modified time.
pub struct Downloaded {
    pub digest: Digest,
    pub size: u64,
    pub mtime: Option<i64>,
}

/// Download `url` (http or https) into `out` with the HTTP client ci-push
/// and ci-pull use (ureq over rustls; the system's CA bundle or
/// `$SSL_CERT_FILE`, plus `/etc/docker/certs.d/HOST/`), following up to
/// five redirects, verifying `checksum` if given.
pub fn download(url: &str, out: &Path, checksum: Option<&Digest>) -> Result<Downloaded> {
    let host = url.split_once("://").map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or("")).unwrap_or("");
    if host.is_empty() {
        return Err(Error::invalid(format!("ADD {url}: the URL names no host")));
    }
    let agent = ureq::Agent::config_builder()
        .tls_config(crate::distribution::tls::config_for(host, None, false)?)
        .http_status_as_error(false)
        .max_redirects(5)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .user_agent("ci-build")
        .build()
        .new_agent();
    let resp = agent.get(url).header("Accept-Encoding", "identity").call().map_err(|e| {
        let untrusted = crate::distribution::client::is_certificate_error(&e);
        let err = Error::io("download", url, std::io::Error::other(e.to_string()));
        match untrusted {
            true => err.hint(format!("the server's certificate is not trusted: if a private CA signed it, name the CA bundle in $SSL_CERT_FILE or put it in /etc/docker/certs.d/{host}/ca.crt")),
            false => err,
        }
    })?;
    let status = resp.status();
    if status.is_redirection() {
        return Err(Error::invalid(format!("ADD {url}: too many redirects")));
    }
    if status != ureq::http::StatusCode::OK {
        return Err(Error::invalid(format!("ADD {url}: the server answered {status}")));
    }
    let mtime = resp.headers().get("last-modified").and_then(|v| v.to_str().ok()).and_then(parse_http_date);
    let file = std::fs::OpenOptions::new().write(true).create_new(true).open(out).ctx("create", out)?;
    let mut w = HashingWriter::new(std::io::BufWriter::new(file), crate::digest::Algorithm::Sha256);
    // A body shorter than its Content-Length is an error, not a short file.
    std::io::copy(&mut resp.into_body().into_reader(), &mut w).map_err(|e| Error::io("download", url, e))?;
    let (buf, digest, size) = w.finish();
    buf.into_inner().map_err(|e| Error::io("write", out, e.into_error()))?;
    if let Some(want) = checksum {
        if want != &digest {
            return Err(Error::invalid(format!("ADD {url}: the content's digest is {digest}, but --checksum says {want}")));
        }
    }
    Ok(Downloaded { digest, size, mtime })
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 7231's preferred date format).
fn parse_http_date(s: &str) -> Option<i64> {
    let fmt = time::macros::format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");
    time::PrimitiveDateTime::parse(s, &fmt).ok().map(|t| t.assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn names_and_dates() {
        assert_eq!(url_file_name("http://h/a/b.tar.gz?x=1").as_deref(), Some("b.tar.gz"));
        assert_eq!(url_file_name("http://h/"), None);
        assert_eq!(url_file_name("http://h"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784111777));
    }

    #[test]
    fn archives_are_told_by_content() {
        let d = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "x", &b"hi"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        std::fs::write(d.path().join("a.tar"), &tar).unwrap();
        assert!(is_archive(&d.path().join("a.tar")).unwrap());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        std::fs::write(d.path().join("a.tgz"), gz.finish().unwrap()).unwrap();
        assert!(is_archive(&d.path().join("a.tgz")).unwrap());
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&tar).unwrap();
        std::fs::write(d.path().join("a.tbz"), bz.finish().unwrap()).unwrap();
        assert!(is_archive(&d.path().join("a.tbz")).unwrap());
        std::fs::write(d.path().join("plain.txt"), "not an archive, just text".repeat(40)).unwrap();
        assert!(!is_archive(&d.path().join("plain.txt")).unwrap());
    }
}
