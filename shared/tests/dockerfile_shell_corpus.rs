//! buildkit's variable-expansion and word-splitting tables
//! (../shared/corpora/buildkit-dockerfile-shell), read in place.

use std::fs;

use ci_core::dockerfile::shell::Lexer;
use ci_core::testsupport::corpora_dir;

#[test]
fn env_var_test() {
    let Some(dir) = corpora_dir() else { return };
    let text = fs::read_to_string(dir.join("buildkit-dockerfile-shell/envVarTest")).unwrap();
    let env: Vec<String> = ["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="].iter().map(|s| s.to_string()).collect();
    let lex = Lexer::new('\\');
    let (mut run, mut windows_only, mut failures) = (0, 0, Vec::new());
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.trim().split('|').collect();
        assert_eq!(f.len(), 3, "line {}: {line:?}", n + 1);
        let (platform, source, expected) = (f[0].trim(), f[1].trim(), f[2].trim());
        if platform == "W" {
            windows_only += 1;
            continue;
        }
        assert!(platform == "A" || platform == "U", "line {}", n + 1);
        run += 1;
        let got = lex.process_word(source, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(w), e) => e != "error" && w == e,
            _ => false,
        };
        if !ok {
            failures.push(format!("line {}: {source:?} gave {got:?}, want {expected:?}", n + 1));
        }
    }
    println!("envVarTest: {}/{run} A and U lines pass ({windows_only} W lines are Windows-only)", run - failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn words_test() {
    let Some(dir) = corpora_dir() else { return };
    let text = fs::read_to_string(dir.join("buildkit-dockerfile-shell/wordsTest")).unwrap();
    let lex = Lexer::new('\\');
    let mut env: Vec<String> = Vec::new();
    let (mut run, mut failures) = (0, Vec::new());
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(def) = line.strip_prefix("ENV ") {
            env.push(def.trim_start_matches(' ').to_string());
            continue;
        }
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f.len(), 2, "line {}: {line:?}", n + 1);
        let input = f[0].trim();
        let expected: Vec<&str> = f[1].trim_start_matches(' ').split(',').collect();
        let got = lex.process_words(input, &env).unwrap_or_else(|_| vec!["error".to_string()]);
        run += 1;
        if got != expected {
            failures.push(format!("line {}: {input:?} gave {got:?}, want {expected:?}", n + 1));
        }
    }
    println!("wordsTest: {}/{run} lines pass", run - failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
