//! Content digests (`sha256:<64 hex>`), as the OCI image spec defines them.
//!
//! A digest names a blob by its content. Every digest that comes from
//! outside (a flag, a manifest, a registry header) passes [`Digest::parse`]
//! before it is used to build a path or a URL: the encoded part of a
//! registered algorithm must be exactly the right number of lowercase hex
//! digits, so `sha256:../../etc/passwd` can never become a file name.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{Error, Result};

/// The digest algorithms we can compute. `sha256` is what every image uses;
/// `sha512` is allowed by the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
    /// Length of the hex-encoded value.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// Why a string is not a usable digest (the classes of go-digest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestError {
    /// Not `algorithm:encoded` in the spec's grammar.
    InvalidFormat,
    /// A known algorithm with an encoded part of the wrong length.
    InvalidLength,
    /// Grammatical, but an algorithm we do not compute.
    Unsupported,
}

impl DigestError {
    pub fn describe(self) -> &'static str {
        match self {
            DigestError::InvalidFormat => "invalid digest format (expected ALGORITHM:HEX, e.g. sha256:<64 lowercase hex digits>)",
            DigestError::InvalidLength => "invalid digest length",
            DigestError::Unsupported => "unsupported digest algorithm (ci computes sha256 and sha512)",
        }
    }
}

/// A validated content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    encoded: String,
}

/// Other algorithms that are registered somewhere and whose length we know,
/// so that a wrong length is reported as such before "unsupported".
const KNOWN_UNSUPPORTED: &[(&str, usize)] = &[("sha384", 96), ("blake3", 64)];

fn is_algorithm_grammar(s: &str) -> bool {
    // component ( [+._-] component )*, component = [a-z0-9]+
    !s.is_empty()
        && s.split(['+', '.', '_', '-'])
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

fn is_encoded_grammar(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'_' || b == b'-')
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Digest {
    /// Parse and validate, reporting the go-digest error class.
    pub fn validate(s: &str) -> std::result::Result<Digest, DigestError> {
        let Some((alg, encoded)) = s.split_once(':') else {
            return Err(DigestError::InvalidFormat);
        };
        if alg.is_empty() || encoded.is_empty() {
            return Err(DigestError::InvalidFormat);
        }
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => {
                if !is_algorithm_grammar(alg) || !is_encoded_grammar(encoded) {
                    return Err(DigestError::InvalidFormat);
                }
                if let Some((_, len)) = KNOWN_UNSUPPORTED.iter().find(|(a, _)| *a == alg) {
                    if encoded.len() != *len {
                        return Err(DigestError::InvalidLength);
                    }
                }
                return Err(DigestError::Unsupported);
            }
        };
        if encoded.len() != algorithm.hex_len() {
            return Err(DigestError::InvalidLength);
        }
        if !is_lower_hex(encoded) {
            return Err(DigestError::InvalidFormat);
        }
        Ok(Digest { algorithm, encoded: encoded.to_string() })
    }

    /// Parse a digest given by the user or read from a document.
    pub fn parse(s: &str) -> Result<Digest> {
        Digest::validate(s).map_err(|e| Error::invalid(format!("{:?}: {}", s, e.describe())))
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex part, safe to use as a file name.
    pub fn encoded(&self) -> &str {
        &self.encoded
    }

    /// The first 12 hex digits, as docker shows image ids.
    pub fn short(&self) -> &str {
        &self.encoded[..12]
    }

    /// Digest of a byte string.
    pub fn of_bytes(algorithm: Algorithm, data: &[u8]) -> Digest {
        let mut h = Hasher::new(algorithm);
        h.update(data);
        h.finish()
    }

    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest::of_bytes(Algorithm::Sha256, data)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.encoded)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Digest> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::validate(&s).map_err(|e| serde::de::Error::custom(format!("{s:?}: {}", e.describe())))
    }
}

impl From<&Digest> for oci_spec::image::Digest {
    fn from(d: &Digest) -> Self {
        // Our digests are a subset of what oci-spec accepts.
        oci_spec::image::Digest::from_str(&d.to_string()).expect("a validated digest is a valid oci-spec digest")
    }
}

impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = Error;
    fn try_from(d: &oci_spec::image::Digest) -> Result<Digest> {
        Digest::parse(d.as_ref())
    }
}

/// An incremental hasher for one algorithm. sha2 picks the CPU's SHA
/// extensions at run time when they exist.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }
    pub fn finish(self) -> Digest {
        let (algorithm, encoded) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, encoded }
    }
}

/// A writer that hashes and counts everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W, algorithm: Algorithm) -> Self {
        HashingWriter { inner, hasher: Hasher::new(algorithm), written: 0 }
    }
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.finish(), self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    read: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R, algorithm: Algorithm) -> Self {
        HashingReader { inner, hasher: Hasher::new(algorithm), read: 0 }
    }
    pub fn bytes_read(&self) -> u64 {
        self.read
    }
    pub fn finish(self) -> (R, Digest, u64) {
        (self.inner, self.hasher.finish(), self.read)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_sha256() {
        assert_eq!(
            Digest::sha256_of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn traversal_is_rejected() {
        assert!(Digest::parse("sha256:../../../../etc/passwd").is_err());
        assert!(Digest::parse("../sha256:e58fcf7418d4390dec8e8fb69d88c06ec07039d651fedd3aa72af9972e7d046b").is_err());
    }

    #[test]
    fn round_trip() {
        let s = "sha256:e58fcf7418d4390dec8e8fb69d88c06ec07039d651fedd3aa72af9972e7d046b";
        let d = Digest::parse(s).unwrap();
        assert_eq!(d.to_string(), s);
        assert_eq!(d.short(), "e58fcf7418d4");
        let oci: oci_spec::image::Digest = (&d).into();
        assert_eq!(Digest::try_from(&oci).unwrap(), d);
    }
}
