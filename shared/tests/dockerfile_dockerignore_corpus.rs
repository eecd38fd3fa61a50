//! moby/patternmatcher and ignorefile vectors (../shared/corpora/dockerignore),
//! read in place.

use std::fs;

use ci_core::dockerignore::{matches_deprecated, read_patterns, Matcher};
use ci_core::testsupport::corpora_dir;
use serde_json::Value;

/// "match", "nomatch" or "error", computed with the API a case names.
fn outcome(api: &str, patterns: &[String], path: &str) -> String {
    let result = match api {
        "MatchesOrParentMatches" => Matcher::new(patterns).map(|m| m.matches(path)),
        "Matches" => matches_deprecated(path, patterns),
        "dockerignore" => read_patterns(patterns.join("\n").as_bytes())
            .and_then(|p| Matcher::new(&p))
            .map(|m| m.matches(path)),
        other => panic!("unknown api {other:?}"),
    };
    match result {
        Ok(true) => "match",
        Ok(false) => "nomatch",
        Err(_) => "error",
    }
    .to_string()
}

#[test]
fn patternmatcher_vectors() {
    let Some(dir) = corpora_dir() else { return };
    let text = fs::read_to_string(dir.join("dockerignore/patternmatcher-vectors.jsonl")).unwrap();
    let (mut total, mut failures) = (0, Vec::new());
    let mut per_api: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        let api = case["api"].as_str().unwrap();
        let patterns: Vec<String> = case["patterns"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
        let path = case["path"].as_str().unwrap();
        let want = case["expect"].as_str().unwrap();
        let got = outcome(api, &patterns, path);
        total += 1;
        let entry = per_api.entry(api.to_string()).or_default();
        entry.1 += 1;
        if got == want {
            entry.0 += 1;
        } else {
            failures.push(format!("{}: {api} {patterns:?} {path:?}: got {got}, want {want}", case["id"]));
        }
    }
    let by_api: Vec<String> = per_api.iter().map(|(k, (p, t))| format!("{k} {p}/{t}")).collect();
    println!("patternmatcher-vectors.jsonl: {}/{total} ({})", total - failures.len(), by_api.join(", "));
    assert_eq!(total, 189);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn patternmatcher_single() {
    let Some(dir) = corpora_dir() else { return };
    let text = fs::read_to_string(dir.join("dockerignore/patternmatcher-single.tsv")).unwrap();
    let (mut total, mut failures) = (0, Vec::new());
    for line in text.lines().filter(|l| !l.starts_with("# pattern")) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 5, "{line:?}");
        let (pattern, path, want, api, id) = (f[0], f[1], f[2], f[3], f[4]);
        let got = outcome(api, &[pattern.to_string()], path);
        total += 1;
        if got != want {
            failures.push(format!("{id}: {api} {pattern:?} {path:?}: got {got}, want {want}"));
        }
    }
    println!("patternmatcher-single.tsv: {}/{total}", total - failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn ignorefile_read_all() {
    let Some(dir) = corpora_dir() else { return };
    let doc: Value = serde_json::from_str(&fs::read_to_string(dir.join("dockerignore/ignorefile-readall.json")).unwrap()).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    for case in cases {
        let input = case["input"].as_str().unwrap_or("");
        let want: Vec<&str> = case["expect"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(read_patterns(input.as_bytes()).unwrap(), want, "{}", case["note"]);
    }
    println!("ignorefile-readall.json: {0}/{0}", cases.len());
}
