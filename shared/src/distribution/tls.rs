//! TLS to registries, with docker's conventions:
//!
//! - certificates are verified against the system's CA bundle
//!   (`$SSL_CERT_FILE`, else `/etc/ssl/certs/ca-certificates.crt`) plus the
//!   registry's own directory `/etc/docker/certs.d/HOST:PORT/` (or the one
//!   given with `--cert-dir`): every `*.crt` there is a CA, and a
//!   `NAME.cert` with its `NAME.key` is a client certificate;
//! - plain HTTP is used only for loopback registries (localhost, 127.0.0.0/8,
//!   ::1) that do not speak TLS, or with `--insecure`, which also turns off
//!   certificate verification.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use crate::error::{Error, IoContext, Result};

/// Where docker keeps per-registry certificates.
pub const CERTS_D: &str = "/etc/docker/certs.d";
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The certificate directory docker uses for a registry host (`HOST:PORT` as written in the reference).
pub fn certs_dir_for(host: &str) -> PathBuf {
    Path::new(CERTS_D).join(host)
}

/// Whether a registry host is on this machine, where docker allows plain HTTP.
pub fn is_loopback(host: &str) -> bool {
    let h = host_without_port(host);
    h == "localhost"
        || h.parse::<std::net::Ipv4Addr>().map(|a| a.is_loopback()).unwrap_or(false)
        || h.parse::<std::net::Ipv6Addr>().map(|a| a.is_loopback()).unwrap_or(false)
}

/// `host:5000` → `host`, `[::1]:5000` → `::1`.
pub fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
}

/// The TLS settings for one registry host.
pub fn config_for(host: &str, cert_dir: Option<&Path>, insecure: bool) -> Result<TlsConfig> {
    let mut roots = system_roots()?;
    let dir = cert_dir.map(Path::to_path_buf).unwrap_or_else(|| certs_dir_for(host));
    let client = load_cert_dir(&dir, &mut roots)?;
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .client_cert(client)
        .disable_verification(insecure)
        .build())
}

fn system_roots() -> Result<Vec<Certificate<'static>>> {
    let path = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(SYSTEM_BUNDLE));
    match std::fs::read(&path) {
        Ok(pem) => Ok(parse_certs(&pem, &path)?),
        // No bundle (a minimal system): only certs.d CAs are trusted; the error on
        // connecting says which CA was missing.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("read CA bundle", &path, e)),
    }
}

fn parse_certs(pem: &[u8], path: &Path) -> Result<Vec<Certificate<'static>>> {
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        if let PemItem::Certificate(c) = item.map_err(|e| Error::invalid(format!("{}: not a PEM certificate file: {e}", path.display())))? {
            out.push(c);
        }
    }
    Ok(out)
}

fn parse_key(pem: &[u8], path: &Path) -> Result<PrivateKey<'static>> {
    for item in ureq::tls::parse_pem(pem) {
        if let PemItem::PrivateKey(k) = item.map_err(|e| Error::invalid(format!("{}: not a PEM key file: {e}", path.display())))? {
            return Ok(k);
        }
    }
    Err(Error::invalid(format!("{}: holds no private key", path.display())))
}

/// Read a certs.d directory: CAs into `roots`, and the client certificate if there is one.
fn load_cert_dir(dir: &Path, roots: &mut Vec<Certificate<'static>>) -> Result<Option<ClientCert>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read certificate directory", dir, e)),
    };
    let mut names: Vec<PathBuf> = Vec::new();
    for e in entries {
        names.push(e.ctx("read certificate directory", dir)?.path());
    }
    names.sort();
    let mut client = None;
    for p in &names {
        match p.extension().and_then(|e| e.to_str()) {
            Some("crt") => roots.extend(parse_certs(&std::fs::read(p).ctx("read", p)?, p)?),
            Some("cert") => {
                let key_path = p.with_extension("key");
                if !key_path.exists() {
                    return Err(Error::invalid(format!(
                        "client certificate {} has no key {}",
                        p.display(),
                        key_path.display()
                    )));
                }
                let chain = parse_certs(&std::fs::read(p).ctx("read", p)?, p)?;
                let key = parse_key(&std::fs::read(&key_path).ctx("read", &key_path)?, &key_path)?;
                client = Some(ClientCert::new_with_certs(&chain, key));
            }
            Some("key") if !p.with_extension("cert").exists() => {
                return Err(Error::invalid(format!(
                    "key {} has no client certificate {}",
                    p.display(),
                    p.with_extension("cert").display()
                )));
            }
            _ => {}
        }
    }
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "localhost:5000", "127.0.0.1:5000", "127.1.2.3", "[::1]:5000"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["docker.io", "10.0.0.1:5000", "registry.local:5000", "localhost.example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
        assert_eq!(certs_dir_for("127.0.0.1:5000"), PathBuf::from("/etc/docker/certs.d/127.0.0.1:5000"));
    }
}
