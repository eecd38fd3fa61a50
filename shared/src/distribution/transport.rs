//! Where an image goes to or comes from, as the user writes it:
//!
//! ```text
//! busybox, host:5000/ns/app:1, app@sha256:…   a registry (docker:// in front is allowed)
//! docker-archive:FILE[:REF]                     a `docker save` tarball (`docker load` reads it)
//! oci-archive:FILE[:REF]                        a tar of an OCI image layout
//! oci:DIR[:REF]                                 an OCI image layout directory
//! -                                             (ci-pull) an archive on stdin
//! ```
//!
//! The path ends at the first `:` after the prefix, as skopeo reads these
//! names; whatever follows is the reference inside the archive.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::reference::Reference;

/// A parsed source or destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// An image in a registry.
    Registry(Reference),
    /// A `docker save` tarball; the reference is recorded as its RepoTag.
    DockerArchive { path: PathBuf, reference: Option<Reference> },
    /// A tar of an OCI layout; the reference is the `org.opencontainers.image.ref.name` of its entry.
    OciArchive { path: PathBuf, reference: Option<String> },
    /// An OCI layout directory.
    OciDir { path: PathBuf, reference: Option<String> },
    /// A `docker save` or OCI archive tarball on stdin (ci-pull only).
    Stdin,
}

impl Transport {
    pub fn parse(s: &str) -> Result<Transport> {
        if s == "-" {
            return Ok(Transport::Stdin);
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (path, r) = split_path(s, rest)?;
            let reference = match r {
                None => None,
                Some(r) => {
                    let r = Reference::parse(r)?;
                    if r.digest().is_some() {
                        return Err(Error::invalid(format!(
                            "{s:?}: a docker archive names its image by tag (name:tag), not by digest"
                        )));
                    }
                    Some(r)
                }
            };
            return Ok(Transport::DockerArchive { path, reference });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (path, r) = split_path(s, rest)?;
            return Ok(Transport::OciArchive { path, reference: r.map(oci_ref_name).transpose()? });
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            let (path, r) = split_path(s, rest)?;
            return Ok(Transport::OciDir { path, reference: r.map(oci_ref_name).transpose()? });
        }
        let name = s.strip_prefix("docker://").unwrap_or(s);
        if let Some((prefix, _)) = name.split_once(':') {
            if ["dir", "docker-daemon", "containers-storage", "oci-layout", "tarball"].contains(&prefix) {
                return Err(Error::invalid(format!(
                    "{s:?}: the {prefix}: transport is not supported; use a registry reference, docker-archive:FILE, oci-archive:FILE or oci:DIR"
                )));
            }
        }
        Ok(Transport::Registry(Reference::parse(name)?))
    }

    /// The reference inside a registry, if this is one.
    pub fn registry(&self) -> Option<&Reference> {
        match self {
            Transport::Registry(r) => Some(r),
            _ => None,
        }
    }
}

fn split_path<'a>(whole: &str, rest: &'a str) -> Result<(PathBuf, Option<&'a str>)> {
    let (path, r) = match rest.split_once(':') {
        Some((p, r)) => (p, Some(r)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(Error::invalid(format!("{whole:?}: the file or directory is missing after the transport name")));
    }
    if r == Some("") {
        return Err(Error::invalid(format!("{whole:?}: the reference after the path is empty")));
    }
    Ok((PathBuf::from(path), r))
}

/// The grammar of `org.opencontainers.image.ref.name` (image-layout spec):
/// components of `[A-Za-z0-9]+` joined by `-._:@+` or `--`, separated by `/`.
pub fn oci_ref_name(s: &str) -> Result<String> {
    let ok = !s.is_empty()
        && s.split('/').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || b"-._:@+".contains(x))
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err(Error::invalid(format!(
            "{s:?} is not a valid OCI reference name (letters and digits joined by - . _ : @ +, parts separated by /)"
        )))
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with = |f: &mut fmt::Formatter<'_>, prefix: &str, p: &PathBuf, r: Option<String>| match r {
            Some(r) => write!(f, "{prefix}:{}:{r}", p.display()),
            None => write!(f, "{prefix}:{}", p.display()),
        };
        match self {
            Transport::Registry(r) => write!(f, "{r}"),
            Transport::DockerArchive { path, reference } => {
                with(f, "docker-archive", path, reference.as_ref().map(Reference::familiar))
            }
            Transport::OciArchive { path, reference } => with(f, "oci-archive", path, reference.clone()),
            Transport::OciDir { path, reference } => with(f, "oci", path, reference.clone()),
            Transport::Stdin => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_transport() {
        assert_eq!(
            Transport::parse("busybox").unwrap(),
            Transport::Registry(Reference::parse("docker.io/library/busybox:latest").unwrap())
        );
        assert_eq!(
            Transport::parse("docker://127.0.0.1:5000/ns/app:1").unwrap().registry().unwrap().domain(),
            "127.0.0.1:5000"
        );
        match Transport::parse("docker-archive:/tmp/x.tar:app:1").unwrap() {
            Transport::DockerArchive { path, reference } => {
                assert_eq!(path, PathBuf::from("/tmp/x.tar"));
                assert_eq!(reference.unwrap().to_string(), "docker.io/library/app:1");
            }
            t => panic!("{t:?}"),
        }
        assert_eq!(
            Transport::parse("oci:dir:v1").unwrap(),
            Transport::OciDir { path: "dir".into(), reference: Some("v1".into()) }
        );
        assert_eq!(
            Transport::parse("oci-archive:a.tar").unwrap(),
            Transport::OciArchive { path: "a.tar".into(), reference: None }
        );
        assert_eq!(Transport::parse("-").unwrap(), Transport::Stdin);
        assert_eq!(Transport::parse("oci:dir:v1").unwrap().to_string(), "oci:dir:v1");
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["oci:", "oci:dir:", "oci:dir:../x", "docker-archive:x.tar:app@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "dir:/x", "Busybox"] {
            assert!(Transport::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
