//! Image references as docker users write them, following the grammar of
//! `distribution/reference`:
//!
//! ```text
//! reference := name [ ":" tag ] [ "@" digest ]
//! name      := [ domain "/" ] path          (at most 255 characters)
//! domain    := host [ ":" port ]            host: a DNS name, IPv4, or [IPv6]
//! path      := component ( "/" component )*
//! component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag       := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! ```
//!
//! Normalisation is docker's: `busybox` is `docker.io/library/busybox`,
//! `index.docker.io` is `docker.io`, and a reference without tag or digest
//! means `:latest`.

use std::fmt;

use crate::digest::{Digest, DigestError};
use crate::error::{Error, Result};

pub const DEFAULT_DOMAIN: &str = "docker.io";
pub const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
pub const DEFAULT_TAG: &str = "latest";
/// The registry host that serves `docker.io` names.
pub const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Why a reference does not parse (the error classes of distribution/reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceError {
    NameEmpty,
    InvalidFormat(String),
    NameContainsUppercase,
    NameTooLong,
    NotNormalized(String),
    IdentifierAsName,
    Digest(DigestError),
}

impl ReferenceError {
    /// A short class name, as the conformance corpus spells it.
    pub fn class(&self) -> &'static str {
        match self {
            ReferenceError::NameEmpty => "name-empty",
            ReferenceError::InvalidFormat(_) => "invalid-format",
            ReferenceError::NameContainsUppercase => "name-contains-uppercase",
            ReferenceError::NameTooLong => "name-too-long",
            ReferenceError::NotNormalized(_) => "not-normalized",
            ReferenceError::IdentifierAsName => "identifier-as-name",
            ReferenceError::Digest(DigestError::InvalidLength) => "digest-invalid-length",
            ReferenceError::Digest(DigestError::Unsupported) => "digest-unsupported",
            ReferenceError::Digest(DigestError::InvalidFormat) => "digest-invalid-format",
        }
    }

    /// A sentence for an error message.
    pub fn describe(&self) -> String {
        match self {
            ReferenceError::NameEmpty => "the repository name is empty".into(),
            ReferenceError::InvalidFormat(why) => why.clone(),
            ReferenceError::NameContainsUppercase => "repository names must be lowercase".into(),
            ReferenceError::NameTooLong => format!("the repository name is longer than {NAME_TOTAL_LENGTH_MAX} characters"),
            ReferenceError::NotNormalized(why) => why.clone(),
            ReferenceError::IdentifierAsName => {
                "a 64-digit hexadecimal string is an image id, not a repository name".into()
            }
            ReferenceError::Digest(e) => format!("the digest part is wrong: {}", e.describe()),
        }
    }
}

/// A parsed reference. `domain` is empty only for references parsed with
/// [`Reference::parse`] (not normalised) that had none.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

fn is_alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*`
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < b.len() && !is_alnum_lower(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_path(p: &str) -> bool {
    p.split('/').all(is_path_component)
}

/// One label of a DNS name: `[a-zA-Z0-9]` or `[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
}

/// `host [":" port]` where host is a DNS name, an IPv4 address or `[IPv6]`.
fn is_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some(end) = rest.find(']') else { return false };
        let v6 = &rest[..end];
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        let after = &rest[end + 1..];
        match after.strip_prefix(':') {
            Some(p) => ("[v6]", Some(p)),
            None if after.is_empty() => ("[v6]", None),
            None => return false,
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    host == "[v6]" || host.split('.').all(is_domain_component)
}

fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'_' || *x == b'.' || *x == b'-')
}

/// The digest grammar of the reference regexp: `alg(sep alg)* ":" hex{32,}`.
fn looks_like_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else { return false };
    let alg_ok = !alg.is_empty()
        && alg.split(['-', '_', '+', '.']).all(|c| {
            let b = c.as_bytes();
            !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(|x| x.is_ascii_alphanumeric())
        });
    alg_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_identifier(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Split a name into domain and path as the reference regexp does: the first
/// component is a domain when it matches the domain grammar and more follows.
fn split_name(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest)) if is_domain(first) => (first, rest),
        _ => ("", name),
    }
}

impl Reference {
    /// Parse without normalising (distribution's `Parse`).
    pub fn parse_raw(s: &str) -> std::result::Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::NameEmpty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                if !looks_like_digest(d) {
                    return Err(ReferenceError::InvalidFormat(format!("{d:?} is not a digest (ALGORITHM:HEX)")));
                }
                (rest, Some(Digest::validate(d).map_err(ReferenceError::Digest)?))
            }
            None => (s, None),
        };
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::InvalidFormat("the repository name is missing".into()));
        }
        if let Some(t) = tag {
            if !is_tag(t) {
                return Err(ReferenceError::InvalidFormat(format!(
                    "invalid tag {t:?}: a tag is up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"
                )));
            }
        }
        let (domain, path) = split_name(name);
        if !is_path(path) {
            if is_path(&path.to_ascii_lowercase()) && (domain.is_empty() || is_domain(domain)) {
                return Err(ReferenceError::NameContainsUppercase);
            }
            return Err(ReferenceError::InvalidFormat(format!(
                "invalid repository name {name:?}: path components are lowercase letters and digits, separated by '/' and joined by '.', '_', '__' or '-'"
            )));
        }
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        Ok(Reference {
            domain: domain.to_string(),
            path: path.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// Parse and normalise as docker does (distribution's `ParseNormalizedNamed`):
    /// `busybox` → `docker.io/library/busybox`. No default tag is added.
    pub fn parse_normalized(s: &str) -> std::result::Result<Reference, ReferenceError> {
        if is_identifier(s) {
            return Err(ReferenceError::IdentifierAsName);
        }
        // splitDockerDomain: the first component is a registry host only if it
        // looks like one (has '.' or ':', or is "localhost", or has uppercase).
        let (domain, remainder) = match s.split_once('/') {
            Some((first, rest))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.to_ascii_lowercase() != first =>
            {
                (first, rest)
            }
            _ => (DEFAULT_DOMAIN, s),
        };
        let domain = if domain == LEGACY_DEFAULT_DOMAIN { DEFAULT_DOMAIN } else { domain };
        let remainder = if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
            format!("{OFFICIAL_REPO_PREFIX}{remainder}")
        } else {
            remainder.to_string()
        };
        // Only the repository part must be lowercase (a tag may have capitals).
        let repo_end = remainder.find([':', '@']).unwrap_or(remainder.len());
        if remainder[..repo_end].to_ascii_lowercase() != remainder[..repo_end] {
            return Err(ReferenceError::NameContainsUppercase);
        }
        let r = Reference::parse_raw(&format!("{domain}/{remainder}"))?;
        if r.domain != domain {
            return Err(ReferenceError::NotNormalized(format!("{s:?} does not normalise to a name")));
        }
        Ok(r)
    }

    /// What the tools accept from users: a normalised reference, with
    /// `latest` when neither tag nor digest is given. Errors name the part
    /// that is wrong.
    pub fn parse(s: &str) -> Result<Reference> {
        let r = Reference::parse_normalized(s)
            .map_err(|e| Error::invalid(format!("invalid reference {s:?}: {}", e.describe())))?;
        Ok(r.with_default_tag())
    }

    /// Add `:latest` when the reference has neither tag nor digest.
    pub fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_string());
        }
        self
    }

    /// The registry host (docker.io, localhost:5000, ...).
    pub fn domain(&self) -> &str {
        &self.domain
    }
    /// The repository path inside the registry (library/busybox).
    pub fn path(&self) -> &str {
        &self.path
    }
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `domain/path`, without tag or digest.
    pub fn name(&self) -> String {
        if self.domain.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The host to contact for this reference (docker.io is served by registry-1.docker.io).
    pub fn registry_host(&self) -> &str {
        if self.domain == DEFAULT_DOMAIN {
            DOCKER_HUB_REGISTRY
        } else {
            &self.domain
        }
    }

    pub fn with_tag(&self, tag: &str) -> Result<Reference> {
        if !is_tag(tag) {
            return Err(Error::invalid(format!("invalid tag {tag:?}")));
        }
        Ok(Reference { tag: Some(tag.to_string()), digest: None, ..self.clone() })
    }

    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference { digest: Some(digest), ..self.clone() }
    }

    /// The short form docker prints: `busybox:latest`, `me/app:1`,
    /// `localhost:5000/app:1`.
    pub fn familiar(&self) -> String {
        let mut name = self.name();
        if self.domain == DEFAULT_DOMAIN {
            let p = self.path.strip_prefix(OFFICIAL_REPO_PREFIX).filter(|p| !p.contains('/')).unwrap_or(&self.path);
            name = p.to_string();
        }
        self.suffix(name)
    }

    fn suffix(&self, mut s: String) -> String {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

impl fmt::Display for Reference {
    /// The full form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.suffix(self.name()))
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What a user may name an image with: a reference or a bare digest/id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyReference {
    Named(Reference),
    Digest(Digest),
}

/// distribution's `ParseAnyReference`: a 64-hex id or a digest, else a normalised name.
pub fn parse_any(s: &str) -> std::result::Result<AnyReference, ReferenceError> {
    if is_identifier(s) {
        return Ok(AnyReference::Digest(Digest::validate(&format!("sha256:{s}")).map_err(ReferenceError::Digest)?));
    }
    if let Ok(d) = Digest::validate(s) {
        return Ok(AnyReference::Digest(d));
    }
    Reference::parse_normalized(s).map(AnyReference::Named)
}

impl fmt::Display for AnyReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyReference::Named(r) => r.fmt(f),
            AnyReference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(r.registry_host(), "registry-1.docker.io");
        let r = Reference::parse("localhost:5000/ns/app:1").unwrap();
        assert_eq!(r.domain(), "localhost:5000");
        assert_eq!(r.path(), "ns/app");
        assert_eq!(r.familiar(), "localhost:5000/ns/app:1");
        assert_eq!(Reference::parse("me/app").unwrap().familiar(), "me/app:latest");
    }

    #[test]
    fn errors_name_the_part() {
        let e = Reference::parse("Busybox").unwrap_err().to_string();
        assert!(e.contains("lowercase"), "{e}");
        let e = Reference::parse("app:-bad").unwrap_err().to_string();
        assert!(e.contains("invalid tag"), "{e}");
    }
}
