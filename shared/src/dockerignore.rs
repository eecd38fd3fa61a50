//! `.dockerignore`: which files of the build context the builder does not
//! send to (or let COPY see), with docker's exact semantics (moby's
//! `patternmatcher` and `ignorefile`).
//!
//! The file, line by line ([`read_patterns`]):
//! - a line whose *first byte* is `#` is a comment (` #x` is a pattern);
//! - blanks around a line are trimmed; empty lines are skipped;
//! - `!pattern` is an exception: it re-includes what earlier lines excluded;
//! - each pattern is cleaned like a path (`./a//b/` is `a/b`) and a leading
//!   `/` dropped: patterns are relative to the context root.
//!
//! The patterns ([`Matcher`]):
//! - `*` matches any run of characters but `/`, `?` one character but `/`,
//!   `[a-z]` a class (`[^a-z]` its complement; `[!a-z]` is *not* negated,
//!   as in Go), `\x` the character x;
//! - `**` matches any number of directories, zero included (`**/*.log`,
//!   `a/**/b`, `dir/**`);
//! - a pattern that matches a directory matches everything under it;
//! - the last pattern that matches a path decides: excluded, or (`!`) not.
//!
//! Surprises worth knowing: `.git` excludes the top-level `.git` only
//! (write `**/.git` for every one), `*.log` only top-level logs, and a
//! lone `!` is an error.
//!
//! Which file applies ([`ignore_file_for`]): `<Dockerfile>.dockerignore`
//! next to the Dockerfile wins over `.dockerignore` at the context root.

use std::path::{Path, PathBuf};

use crate::dockerfile::golang::{clean_path, dir};
use crate::error::{Error, IoContext, Result};
use crate::glob;

/// The longest line read from a `.dockerignore` (Go's scanner limit).
const MAX_LINE: usize = 65_535;

/// The patterns of a `.dockerignore` file's text, in order (docker's
/// `ignorefile.ReadAll`). A bare `!` is kept: [`Matcher::new`] rejects it.
pub fn read_patterns(text: &[u8]) -> std::result::Result<Vec<String>, String> {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let mut patterns = Vec::new();
    for (n, line) in text.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_LINE {
            return Err(format!("line {} is longer than {MAX_LINE} bytes", n + 1));
        }
        let line = String::from_utf8_lossy(line);
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = clean_path(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        patterns.push(if invert { format!("!{cleaned}") } else { cleaned });
    }
    Ok(patterns)
}

/// A list of patterns, ready to match paths.
#[derive(Debug, Clone)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern, without its `!`.
    text: String,
    exclusion: bool,
    /// How many path elements it has (for the deprecated parent check).
    elements: usize,
    kind: Kind,
}

/// Simple patterns are compared as strings; the rest become a regex.
#[derive(Debug, Clone)]
enum Kind {
    /// No wildcard: the path must be the pattern.
    Exact,
    /// `prefix**`: the path starts with the prefix.
    Prefix(String),
    /// `**suffix`: the path ends with the suffix (or is `suffix` without its `/`).
    Suffix(String),
    Regex(regex::Regex),
}

impl Matcher {
    /// Build a matcher (docker's `patternmatcher.New`): patterns are
    /// trimmed and cleaned, empty ones skipped, `!` marks exceptions.
    pub fn new(patterns: &[String]) -> std::result::Result<Matcher, String> {
        let mut out = Vec::new();
        for p in patterns {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let p = clean_path(p);
            let (exclusion, text) = match p.strip_prefix('!') {
                Some("") => return Err("illegal exclusion pattern: \"!\" (a '!' line needs a pattern after it, like !keep.txt)".into()),
                Some(rest) => (true, rest.to_string()),
                None => (false, p),
            };
            if glob::matches(&text, ".").is_err() {
                return Err(format!("syntax error in pattern {text:?} (check its [ ] classes and \\ escapes)"));
            }
            let kind = compile(&text).map_err(|e| format!("syntax error in pattern {text:?}: {e}"))?;
            out.push(Pattern { elements: text.split('/').count(), text, exclusion, kind });
        }
        Ok(Matcher { patterns: out })
    }

    /// Whether any pattern is an exception (`!`): then the builder must look
    /// inside excluded directories, since something in them may be re-included.
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded:
    /// the last pattern matching it or one of its parent directories
    /// decides (docker's `MatchesOrParentMatches`).
    pub fn matches(&self, path: &str) -> bool {
        let parent = dir(path);
        let parent_dirs: Vec<&str> = if parent == "." { Vec::new() } else { parent.split('/').collect() };
        let mut matched = false;
        for p in &self.patterns {
            // An exception only matters once something matched, and a
            // pattern only matters if it could change the answer.
            if p.exclusion != matched {
                continue;
            }
            let hit = p.is_match(path) || (1..=parent_dirs.len()).any(|i| p.is_match(&parent_dirs[..i].join("/")));
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// docker's deprecated `Matches`: like [`Matcher::matches`], but only
    /// the parent with as many elements as the pattern is tried.
    pub fn matches_single_parent(&self, path: &str) -> bool {
        let parent = dir(path);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut hit = p.is_match(path);
            if !hit && parent != "." && p.elements <= parent_dirs.len() {
                hit = p.is_match(&parent_dirs[..p.elements].join("/"));
            }
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }
}

impl Pattern {
    fn is_match(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Kind::Suffix(suffix) => {
                path.ends_with(suffix.as_str()) || suffix.strip_prefix('/').is_some_and(|s| path == s)
            }
            Kind::Regex(re) => re.is_match(path),
        }
    }
}

/// Translate a pattern the way docker does (to a regex unless it is a plain
/// string, a `prefix**` or a `**suffix`).
fn compile(pattern: &str) -> std::result::Result<Kind, regex::Error> {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut detected = Detected::Exact;
    let mut in_class = false;
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' | '?' if in_class => re.push_str(&regex::escape(&c.to_string())),
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1; // `**/` is `**`
                }
                if i == chars.len() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        re.push_str(".*");
                        detected = Detected::Regex;
                    }
                } else {
                    // Any number of directories, zero included.
                    re.push_str("(.*/)?");
                    detected = Detected::Regex;
                }
                if first {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                detected = Detected::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                detected = Detected::Regex;
            }
            '\\' => match chars.get(i) {
                Some(&e) => {
                    i += 1;
                    // A letter keeps its regex meaning (as in docker, `\d` is a
                    // digit); anything else is literal.
                    if e.is_ascii_alphanumeric() {
                        re.push('\\');
                        re.push(e);
                    } else {
                        re.push_str(&regex::escape(&e.to_string()));
                    }
                    detected = Detected::Regex;
                }
                None => re.push_str("\\\\"),
            },
            '[' if !in_class => {
                in_class = true;
                re.push('[');
                detected = Detected::Regex;
            }
            ']' if in_class => {
                in_class = false;
                re.push(']');
            }
            // Inside a class, `[:alpha:]` is a POSIX class as in Go's regexp;
            // a `[` otherwise, and `&`/`~` (set operators in Rust's regex
            // syntax), are plain characters.
            '[' if chars.get(i) == Some(&':') => re.push('['),
            '[' | '&' | '~' if in_class => {
                re.push('\\');
                re.push(c);
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(c);
            }
            ']' => {
                re.push(']');
                detected = Detected::Regex;
            }
            c => re.push(c),
        }
        first = false;
    }
    Ok(match detected {
        Detected::Exact => Kind::Exact,
        Detected::Prefix => Kind::Prefix(pattern[..pattern.len() - 2].to_string()),
        Detected::Suffix => Kind::Suffix(pattern[2..].to_string()),
        Detected::Regex => {
            re.push('$');
            Kind::Regex(regex::Regex::new(&re)?)
        }
    })
}

/// docker's package-level `Matches` (deprecated; kept for its test table):
/// the path is cleaned, `.` never matches, one parent is checked.
pub fn matches_deprecated(path: &str, patterns: &[String]) -> std::result::Result<bool, String> {
    let m = Matcher::new(patterns)?;
    let path = clean_path(path);
    Ok(path != "." && m.matches_single_parent(&path))
}

/// The ignore file that applies to a build: `<Dockerfile>.dockerignore`
/// beside the Dockerfile if it exists, else `.dockerignore` at the context
/// root if it exists, else none.
pub fn ignore_file_for(context: &Path, dockerfile: &Path) -> Option<PathBuf> {
    if let Some(name) = dockerfile.file_name() {
        let mut own = name.to_os_string();
        own.push(".dockerignore");
        let own = dockerfile.with_file_name(own);
        if own.is_file() {
            return Some(own);
        }
    }
    Some(context.join(".dockerignore")).filter(|p| p.is_file())
}

/// The matcher for a build, from the ignore file that applies (an empty
/// matcher when there is none), and that file.
pub fn load(context: &Path, dockerfile: &Path) -> Result<(Matcher, Option<PathBuf>)> {
    let Some(file) = ignore_file_for(context, dockerfile) else {
        return Ok((Matcher { patterns: Vec::new() }, None));
    };
    let text = std::fs::read(&file).ctx("read", &file)?;
    let bad = |m: String| Error::invalid(format!("{}: {m}", file.display()));
    let patterns = read_patterns(&text).map_err(bad)?;
    let matcher = Matcher::new(&patterns).map_err(bad)?;
    Ok((matcher, Some(file)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(lines: &str, path: &str) -> bool {
        Matcher::new(&read_patterns(lines.as_bytes()).unwrap()).unwrap().matches(path)
    }

    #[test]
    fn common_files() {
        let di = "# comment\n**/*.log\nnode_modules\n!node_modules/keep\n/build/\n.git\n";
        assert!(excluded(di, "a/b/x.log"));
        assert!(excluded(di, "x.log"));
        assert!(excluded(di, "node_modules/x/y.js"));
        assert!(!excluded(di, "node_modules/keep/z.js"));
        assert!(excluded(di, "build/out"));
        assert!(!excluded(di, "src/build/out"));
        assert!(excluded(di, ".git/HEAD"));
        assert!(!excluded(di, "sub/.git/HEAD"));
        assert!(!excluded(di, "# comment"));
    }

    #[test]
    fn bad_patterns() {
        assert!(Matcher::new(&["!".into()]).unwrap_err().contains("illegal exclusion pattern: \"!\""));
        assert!(Matcher::new(&["a[".into()]).is_err());
        assert!(Matcher::new(&["[z-a]".into()]).is_err(), "a reversed range is a regex error, as in docker");
    }

    #[test]
    fn per_dockerfile_ignore_file_wins() {
        let ctx = tempfile::tempdir().unwrap();
        let df = ctx.path().join("Dockerfile.dev");
        std::fs::write(&df, "FROM scratch\n").unwrap();
        assert_eq!(ignore_file_for(ctx.path(), &df), None);
        std::fs::write(ctx.path().join(".dockerignore"), "a\n").unwrap();
        assert_eq!(ignore_file_for(ctx.path(), &df), Some(ctx.path().join(".dockerignore")));
        std::fs::write(ctx.path().join("Dockerfile.dev.dockerignore"), "b\n").unwrap();
        assert_eq!(ignore_file_for(ctx.path(), &df), Some(ctx.path().join("Dockerfile.dev.dockerignore")));
        let (m, _) = load(ctx.path(), &df).unwrap();
        assert!(m.matches("b") && !m.matches("a"));
        std::fs::write(ctx.path().join("Dockerfile.dev.dockerignore"), "ok\n!\n").unwrap();
        let e = load(ctx.path(), &df).unwrap_err().to_string();
        assert!(e.contains("Dockerfile.dev.dockerignore: illegal exclusion pattern"), "{e}");
    }
}
