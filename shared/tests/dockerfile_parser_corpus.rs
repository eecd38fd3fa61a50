//! buildkit's Dockerfile parser corpus (../shared/corpora/buildkit-dockerfile-parser),
//! read in place: every positive case's AST dump equals its `result` byte for
//! byte, every negative case fails with `Dockerfile:LINE:`, the line ranges of
//! `testfile-line` and every heredoc case of `heredoc-cases.json` hold.

use std::fs;
use std::path::{Path, PathBuf};

use ci_core::dockerfile::dump::dump;
use ci_core::dockerfile::heredoc::{chomp, openers_in_line, parse_opener};
use ci_core::dockerfile::parser::{parse_ast, MAX_LINE};
use ci_core::testsupport::corpora_dir;
use serde_json::Value;

fn corpus() -> Option<PathBuf> {
    Some(corpora_dir()?.join("buildkit-dockerfile-parser"))
}

fn case_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    dirs
}

#[test]
fn positive_cases_dump_like_buildkit() {
    let Some(dir) = corpus() else { return };
    let cases = case_dirs(&dir.join("testfiles"));
    let mut failures = Vec::new();
    for case in &cases {
        let src = fs::read(case.join("Dockerfile")).unwrap();
        let expected = fs::read_to_string(case.join("result")).unwrap();
        match parse_ast(&src) {
            Ok(ast) if dump(&ast.nodes) == expected => {}
            Ok(ast) => failures.push(format!("{}: dump differs:\n--- got\n{}--- want\n{expected}", case.display(), dump(&ast.nodes))),
            Err(e) => failures.push(format!("{}: line {}: {}", case.display(), e.line, e.message)),
        }
    }
    println!("testfiles: {}/{} dumps equal `result`", cases.len() - failures.len(), cases.len());
    assert_eq!(cases.len(), 33, "the corpus has 33 positive cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn negative_cases_fail_with_a_line_number() {
    let Some(dir) = corpus() else { return };
    let cases = case_dirs(&dir.join("testfiles-negative"));
    let mut passed = 0;
    for case in &cases {
        let src = fs::read(case.join("Dockerfile")).unwrap();
        let err = ci_core::dockerfile::parse(&src, "Dockerfile").expect_err(&case.display().to_string()).to_string();
        let line: Option<usize> = err.strip_prefix("Dockerfile:").and_then(|r| r.split(':').next()).and_then(|n| n.parse().ok());
        assert!(line.is_some_and(|l| l >= 1), "{}: {err}", case.display());
        println!("  {}: {err}", case.file_name().unwrap().to_string_lossy());
        passed += 1;
    }
    println!("testfiles-negative: {passed}/{} fail with FILE:LINE", cases.len());
    assert_eq!(cases.len(), 4);
}

#[test]
fn instruction_line_ranges() {
    let Some(dir) = corpus() else { return };
    let ast = parse_ast(&fs::read(dir.join("testfile-line/Dockerfile")).unwrap()).unwrap();
    let tsv = fs::read_to_string(dir.join("testfile-line/expected-lines.tsv")).unwrap();
    let mut checked = 0;
    for line in tsv.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let n = |i: usize| f[i].parse::<usize>().unwrap();
        match f[0] {
            "StartLine" => assert_eq!(ast.nodes.first().unwrap().start_line, n(1)),
            "EndLine" => assert_eq!(ast.nodes.last().unwrap().end_line, n(1)),
            "Children" => assert_eq!(ast.nodes.len(), n(1)),
            child => {
                let i: usize = child.strip_prefix("Child").unwrap().parse().unwrap();
                assert_eq!((ast.nodes[i].start_line, ast.nodes[i].end_line), (n(1), n(2)), "{child}");
            }
        }
        checked += 1;
    }
    println!("testfile-line: {checked}/{checked} expected-lines.tsv rows hold");
    assert_eq!(checked, 6);
}

#[test]
fn line_length_limit() {
    let ok = format!("FROM a\nRUN {}\n", "x".repeat(MAX_LINE - 4));
    assert!(parse_ast(ok.as_bytes()).is_ok(), "a line of exactly {MAX_LINE} bytes is accepted");
    let long = format!("FROM a\nRUN {}\n", "x".repeat(MAX_LINE - 3));
    let e = parse_ast(long.as_bytes()).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.starts_with("dockerfile line greater than max allowed size of 65535"), "{e:?}");
    println!("line limit: 2/2");
}

#[test]
fn heredoc_cases() {
    let Some(dir) = corpus() else { return };
    let cases: Value = serde_json::from_str(&fs::read_to_string(dir.join("heredoc-cases.json")).unwrap()).unwrap();
    let mut counts = Vec::new();

    // TestParseExtractsHeredoc: the heredocs of each instruction after FROM.
    let c = &cases["parse_extracts_heredoc"];
    let ast = parse_ast(c["dockerfile"].as_str().unwrap().as_bytes()).unwrap();
    let expected = c["expect_heredocs_per_instruction_after_from"].as_array().unwrap();
    assert_eq!(ast.nodes.len(), expected.len() + 1, "instructions after FROM");
    for (i, want) in expected.iter().enumerate() {
        let got: Vec<Value> = ast.nodes[i + 1]
            .heredocs
            .iter()
            .map(|h| serde_json::json!({"name": h.name, "content": h.content, "expand": h.expand, "chomp": h.chomp, "fd": h.fd}))
            .collect();
        let want = want.as_array().cloned().unwrap_or_default();
        assert_eq!(got, want, "instruction {} ({})", i + 1, ast.nodes[i + 1].original);
    }
    counts.push(format!("parse_extracts_heredoc {}/{}", expected.len(), expected.len()));

    // TestParseJSONHeredoc: JSON form never has heredocs.
    let ast = parse_ast(cases["json_form_never_heredoc"]["dockerfile"].as_str().unwrap().as_bytes()).unwrap();
    for n in &ast.nodes[1..=3] {
        assert!(n.heredocs.is_empty(), "{}", n.original);
    }
    counts.push("json_form_never_heredoc 3/3".into());

    let c = &cases["chomp"];
    assert_eq!(chomp(c["input"].as_str().unwrap()), c["expect"].as_str().unwrap());
    counts.push("chomp 1/1".into());

    // TestParseHeredocHelpers.
    let w = &cases["parse_heredoc_word"];
    let strings = |k: &str| w[k].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect::<Vec<_>>();
    let (valid, invalid, not) = (strings("valid_name_EOF"), strings("error"), strings("not_a_heredoc"));
    for s in &valid {
        assert_eq!(parse_opener(s).unwrap().expect(s).name, "EOF", "{s:?}");
    }
    for s in &invalid {
        assert!(parse_opener(s).is_err(), "{s:?} should be an error");
    }
    for s in &not {
        assert_eq!(parse_opener(s).unwrap(), None, "{s:?}");
    }
    counts.push(format!("parse_heredoc_word {}/{}", valid.len() + invalid.len() + not.len(), valid.len() + invalid.len() + not.len()));

    // TestHeredocsFromLine: the heredocs found on each line are exactly the
    // table's, in order (upstream only checks the ones it finds).
    let rows = cases["heredocs_from_line"]["cases"].as_array().unwrap();
    let mut failures = Vec::new();
    for row in rows {
        let line = row[0].as_str().unwrap();
        let want: Vec<&str> = row[1].as_array().map(|a| a.iter().map(|v| v.as_str().unwrap()).collect()).unwrap_or_default();
        let got: Vec<String> = openers_in_line(line).unwrap().into_iter().map(|h| h.name).collect();
        if got != want {
            failures.push(format!("{line:?}: found {got:?}, the table lists {want:?}"));
        }
    }
    assert!(failures.is_empty(), "heredocs_from_line:\n{}", failures.join("\n"));
    counts.push(format!("heredocs_from_line {}/{}", rows.len(), rows.len()));
    println!("heredoc-cases.json: {}", counts.join(", "));
}
