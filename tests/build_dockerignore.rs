//! The `.dockerignore` build-context corpus
//! (`../shared/corpora/dockerignore/build-context-cases.json`, written from
//! buildkit's `dockerfile_dockerignore_test.go`), read in place: each case's
//! files become a context directory, each of its builds runs through a real
//! `ci-build`, and what the case expects is checked on the built image.

mod build_common;
use build_common::*;

use serde_json::Value;

/// What a case expects, from the fields the corpus uses. A case of another
/// shape fails the test rather than passing unchecked.
enum Expect {
    /// The build succeeds; these files have this content, these are absent.
    Image { present: Vec<(String, String)>, absent: Vec<String> },
    /// The build fails and its error contains this text.
    Fails(String),
    /// Every build succeeds (the Dockerfiles' RUN steps are the checks).
    Succeed,
}

fn expect_of(case: &Value) -> Expect {
    let name = &case["name"];
    if let Some(present) = case.get("expect_in_image") {
        let present = present.as_object().unwrap_or_else(|| panic!("{name}: expect_in_image is not an object"));
        return Expect::Image {
            present: present.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect(),
            absent: case["expect_absent"].as_array().into_iter().flatten().map(|v| v.as_str().unwrap().to_string()).collect(),
        };
    }
    let text = case["expect"].as_str().unwrap_or_else(|| panic!("{name}: no expect_in_image and no expect"));
    if text.starts_with("build fails") {
        // "build fails with an error naming ... (FRAGMENT)": the fragment is the error's text.
        let fragment = text.rsplit_once('(').and_then(|(_, r)| r.strip_suffix(')')).unwrap_or_else(|| panic!("{name}: no (error text) in {text:?}"));
        return Expect::Fails(fragment.to_string());
    }
    if text.starts_with("both builds succeed") || text.starts_with("build succeeds") {
        return Expect::Succeed;
    }
    panic!("{name}: an expectation this harness does not know: {text:?}")
}

/// The Dockerfile names of a case's `build` (one object or a list).
fn builds_of(case: &Value) -> Vec<String> {
    let b = &case["build"];
    let list: Vec<&Value> = match b.as_array() {
        Some(a) => a.iter().collect(),
        None => vec![b],
    };
    list.iter().map(|v| v["dockerfile"].as_str().unwrap_or_else(|| panic!("{}: a build without a dockerfile", case["name"])).to_string()).collect()
}

#[test]
fn every_build_context_case() {
    if !privileged("building images") {
        return;
    }
    let Some(dir) = corpora_dir() else { return };
    let path = dir.join("dockerignore/build-context-cases.json");
    let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))).unwrap();
    let cases = doc["cases"].as_array().expect("cases is a list");
    assert!(!cases.is_empty(), "{} has no cases", path.display());
    let root = TestRoot::new();
    busybox_base(&root).expect("a busybox base");
    // The cases' Dockerfiles say `FROM busybox`.
    root.cmd("ci-build").args(["tag", "bb:1", "busybox"]).assert().success();
    let mut checked = 0;
    for case in cases {
        let name = case["name"].as_str().expect("a case has a name");
        let files: Vec<(String, String)> =
            case["context"].as_object().unwrap_or_else(|| panic!("{name}: no context")).iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect();
        let files: Vec<(&str, &str)> = files.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let ctx = context(&root, name, &files);
        let expect = expect_of(case);
        for (i, dockerfile) in builds_of(case).iter().enumerate() {
            let tag = format!("ignore-{}:{i}", name.to_lowercase());
            // `-f` for any name but the default, so both ways of finding the Dockerfile are used.
            let df = ctx.join(dockerfile);
            let mut args = vec!["-t", tag.as_str()];
            if dockerfile != "Dockerfile" {
                args.extend(["-f", df.to_str().unwrap()]);
            }
            let out = build(&root, &ctx, &args);
            match &expect {
                Expect::Fails(fragment) => {
                    assert!(!out.ok, "{name}: the build should fail:\n{}", out.stderr);
                    assert!(out.stderr.contains(fragment.as_str()), "{name}: the error should contain {fragment:?}:\n{}", out.stderr);
                }
                Expect::Succeed => assert!(out.ok, "{name} ({dockerfile}): the build should succeed:\n{}", out.stderr),
                Expect::Image { present, absent } => {
                    assert!(out.ok, "{name}: the build should succeed:\n{}", out.stderr);
                    let fs = rootfs(&root, &tag);
                    for (f, content) in present {
                        assert_eq!(&read(fs.path(), f), content, "{name}: {f} in the image");
                    }
                    for f in absent {
                        assert!(std::fs::symlink_metadata(fs.path().join(f)).is_err(), "{name}: {f} must not be in the image");
                    }
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= cases.len());
    assert_clean(&root);
}
