//! Conformance of reference and digest parsing with the upstream tables
//! (distribution/reference, opencontainers/go-digest), read in place from
//! `../shared/corpora`. Every invalid input must be rejected before any
//! path or URL could be built from it.

use ci_core::digest::{Digest, DigestError};
use ci_core::reference::{parse_any, AnyReference, Reference};
use ci_core::testsupport::corpora_dir;

/// Undo the file's `\n` / `\0` escapes.
fn unescape(s: &str) -> String {
    s.replace("\\n", "\n").replace("\\0", "\0")
}

#[test]
fn digest_vectors() {
    let Some(dir) = corpora_dir() else { return };
    let text = std::fs::read_to_string(dir.join("oci-digest/digest-vectors.tsv")).unwrap();
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let (input, expect) = (unescape(f[1]), f[2]);
        let got = Digest::validate(&input);
        let ok = match expect {
            "ok" => match &got {
                Ok(d) => d.to_string() == input && d.algorithm().as_str() == f[3] && d.encoded() == f[4],
                // The corpus allows "unsupported" for algorithms ci does not compute.
                Err(DigestError::Unsupported) => f[5].contains("ci may answer unsupported"),
                Err(_) => false,
            },
            "invalid-format" => got == Err(DigestError::InvalidFormat),
            "invalid-length" => got == Err(DigestError::InvalidLength),
            "unsupported" => got == Err(DigestError::Unsupported),
            "invalid" => got.is_err(),
            other => panic!("unknown expectation {other:?}"),
        };
        assert!(ok, "digest {input:?}: expected {expect}, got {got:?}");
        checked += 1;
    }
    assert!(checked >= 31, "only {checked} digest vectors");
}

#[test]
fn reference_vectors() {
    let Some(dir) = corpora_dir() else { return };
    let text = std::fs::read_to_string(dir.join("image-reference/reference-vectors.tsv")).unwrap();
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let (api, input, expect) = (f[1], f[2], f[3]);
        let (name, domain, tag, digest) = (f.get(4).copied().unwrap_or(""), f.get(5).copied().unwrap_or(""), f.get(6).copied().unwrap_or(""), f.get(7).copied().unwrap_or(""));
        let ctx = format!("{api}({input:?}) expected {expect}");
        match api {
            "Parse" => {
                let got = Reference::parse_raw(input);
                if let Some(class) = expect.strip_prefix("error:") {
                    assert_eq!(got.as_ref().err().map(|e| e.class()), Some(class), "{ctx}, got {got:?}");
                } else if expect == "error" {
                    assert!(got.is_err(), "{ctx}, got {got:?}");
                } else {
                    let r = got.unwrap_or_else(|e| panic!("{ctx}, got {e:?}"));
                    assert_eq!(r.name(), name, "{ctx}: name");
                    assert_eq!(r.domain(), domain, "{ctx}: domain");
                    assert_eq!(r.tag().unwrap_or(""), tag, "{ctx}: tag");
                    assert_eq!(r.digest().map(|d| d.to_string()).unwrap_or_default(), digest, "{ctx}: digest");
                }
            }
            "ParseNormalizedNamed" => {
                let got = Reference::parse_normalized(input);
                if expect == "ok" {
                    let r = got.unwrap_or_else(|e| panic!("{ctx}, got {e:?}"));
                    if !name.is_empty() {
                        // The table gives the normalised String() form.
                        assert_eq!(r.to_string(), name, "{ctx}: name");
                        if !domain.is_empty() {
                            assert_eq!(r.domain(), domain, "{ctx}: domain");
                        }
                    }
                } else {
                    assert!(got.is_err(), "{ctx}, got {got:?}");
                }
            }
            "ParseAnyReference" => {
                let got = parse_any(input);
                if expect == "ok" {
                    let r = got.unwrap_or_else(|e| panic!("{ctx}, got {e:?}"));
                    let s = match &r {
                        AnyReference::Named(n) => n.to_string(),
                        AnyReference::Digest(d) => d.to_string(),
                    };
                    assert_eq!(s, name, "{ctx}");
                } else {
                    assert!(got.is_err(), "{ctx}, got {got:?}");
                }
            }
            other => panic!("unknown api {other}"),
        }
        checked += 1;
    }
    assert!(checked >= 125, "only {checked} reference vectors");
}
