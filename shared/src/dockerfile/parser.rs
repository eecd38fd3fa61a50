//! From the bytes of a Dockerfile to its instructions ([`Node`]s): lines,
//! parser directives, comments, line continuations and heredoc bodies.
//!
//! The rules, in the order the parser applies them to each line:
//!
//! 1. A UTF-8 byte-order mark at the start of the file is ignored. No line
//!    may be longer than 65 535 bytes.
//! 2. Parser directives — `# escape=\`` (or `\`), `# syntax=...`,
//!    `# check=...` — are recognised only in the comment lines at the very
//!    top, before any instruction, blank line or other comment. Each may
//!    appear once. `syntax` and `check` are accepted and ignored here.
//! 3. A line whose first non-blank character is `#` is a comment.
//! 4. A line ending with the escape character (spaces and tabs may follow
//!    it) continues on the next line: the escape is removed and the next
//!    line appended *as is* (its indentation kept). Comment lines and blank
//!    lines inside a continuation are skipped (blank ones with a warning).
//!    An escaped escape (`\\` at the end) does not continue the line.
//! 5. The joined line is one instruction: see [`Node::from_line`].
//! 6. A RUN, COPY or ADD line that opens heredocs (`<<EOF`) is followed by
//!    their bodies, read line by line until each terminator.

use super::heredoc::openers_in_line;
use super::node::Node;

/// The longest line docker accepts (Go's `bufio.MaxScanTokenSize - 1`).
pub const MAX_LINE: usize = 65_535;

/// A whole parsed file: its instructions and what the directives set.
#[derive(Debug, Clone)]
pub struct Ast {
    pub nodes: Vec<Node>,
    /// The escape character: `\` unless `# escape=`` chose the backtick.
    pub escape: char,
    /// The `# syntax=` directive, if any (recorded, not acted upon).
    pub syntax: Option<String>,
    /// Things docker warns about (empty continuation lines), with their line.
    pub warnings: Vec<(usize, String)>,
}

/// A parse error and the line it is on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl ParseError {
    fn new(line: usize, message: impl Into<String>) -> ParseError {
        ParseError { line, message: message.into() }
    }
}

/// Parse a Dockerfile's text into instructions.
pub fn parse_ast(src: &[u8]) -> Result<Ast, ParseError> {
    let mut lines = Lines::new(src);
    let mut directives = Directives::default();
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();

    while let Some(raw) = lines.next_line()? {
        let start = lines.number;
        let text = trim_newline(&raw).trim_start();
        if let Some(comment) = comment_text(text) {
            if comment.is_empty() {
                comments.clear();
            } else {
                comments.push(comment.to_string());
            }
        }
        if directives.check(text).map_err(|m| ParseError::new(start, m))? {
            comments.pop(); // a directive is not a comment on the next instruction
            continue;
        }
        if is_comment(text) {
            continue;
        }
        let (first, mut complete) = trim_continuation(text, directives.escape);
        if complete && first.is_empty() {
            continue; // a blank line
        }
        let mut line = first.to_string();
        let mut skipped_blank = false;
        while !complete {
            let Some(raw) = lines.next_line()? else { break };
            if is_comment(&raw) {
                continue;
            }
            let text = trim_newline(&raw);
            if text.trim_start().is_empty() {
                skipped_blank = true;
                continue;
            }
            let (part, done) = trim_continuation(text, directives.escape);
            line.push_str(part);
            complete = done;
        }
        if skipped_blank {
            warnings.push((lines.number, format!("empty continuation line found in: {line}")));
        }

        let mut node = Node::from_line(&line, directives.escape).map_err(|m| ParseError::new(start, m))?;
        if node.can_have_heredocs() && line.contains("<<") {
            let openers = openers_in_line(&line).map_err(|m| ParseError::new(start, format!("heredoc: {m}")))?;
            for mut doc in openers {
                read_heredoc_body(&mut lines, &mut doc, start)?;
                node.heredocs.push(doc);
            }
        }
        node.start_line = start;
        node.end_line = lines.number;
        node.comments = std::mem::take(&mut comments);
        nodes.push(node);
    }

    if nodes.is_empty() {
        return Err(ParseError::new(
            lines.number.max(1),
            "file with no instructions (a Dockerfile needs at least a FROM line)",
        ));
    }
    Ok(Ast { nodes, escape: directives.escape, syntax: directives.syntax, warnings })
}

/// Read lines into `doc.content` up to its terminator.
fn read_heredoc_body(lines: &mut Lines, doc: &mut super::heredoc::Heredoc, start: usize) -> Result<(), ParseError> {
    while let Some(raw) = lines.next_line()? {
        let candidate = trim_newline(&raw);
        let candidate = if doc.chomp { candidate.trim_start_matches('\t') } else { candidate };
        if candidate == doc.name {
            return Ok(());
        }
        doc.content.push_str(&raw);
    }
    Err(ParseError::new(
        start,
        format!("unterminated heredoc: no line {:?} closes the <<{} opened here (the file ended at line {})", doc.name, doc.name, lines.number),
    ))
}

/// `#` after optional blanks.
fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

fn comment_text(line: &str) -> Option<&str> {
    line.strip_prefix('#').map(str::trim)
}

/// Line endings are `\n` or `\r\n` (any trailing CR/LF is removed).
fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// If `line` ends with the escape character (blanks allowed after it, and
/// not itself escaped), the line without it and `false` ("not complete").
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    if let Some(before) = body.strip_suffix(escape) {
        if before.is_empty() || !before.ends_with(escape) {
            return (before, false);
        }
    }
    (line, true)
}

/// The parser directives at the top of the file.
struct Directives {
    escape: char,
    syntax: Option<String>,
    seen: Vec<String>,
    /// Set at the first line that is not a directive: none may follow.
    done: bool,
}

impl Default for Directives {
    fn default() -> Self {
        Directives { escape: '\\', syntax: None, seen: Vec::new(), done: false }
    }
}

impl Directives {
    /// Whether `line` (left-trimmed) is a directive; applies it if so.
    fn check(&mut self, line: &str) -> Result<bool, String> {
        if self.done {
            return Ok(false);
        }
        let Some((key, value)) = line.strip_prefix('#').and_then(|rest| split_directive(rest.trim_start())) else {
            self.done = true;
            return Ok(false);
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "escape" | "syntax" | "check") {
            self.done = true;
            return Ok(false);
        }
        if self.seen.contains(&key) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        self.seen.push(key.clone());
        match key.as_str() {
            "escape" => {
                self.escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    other => return Err(format!("invalid escape token '{other}' does not match ` or \\")),
                }
            }
            "syntax" => self.syntax = Some(value.to_string()),
            _ => {}
        }
        Ok(true)
    }
}

/// `name = value` with name `[a-zA-Z][a-zA-Z0-9]*` (docker's directive
/// syntax); the value is trimmed and must not be empty.
fn split_directive(s: &str) -> Option<(&str, &str)> {
    let ws = [' ', '\t', '\n', '\x0c', '\r'];
    let name_len = s.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(s.len());
    let name = &s[..name_len];
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = s[name_len..].trim_start_matches(ws).strip_prefix('=')?.trim_matches(ws);
    (!value.is_empty()).then_some((name, value))
}

/// The file's lines, each with its line ending, counted from 1.
struct Lines<'a> {
    rest: &'a [u8],
    /// The number of the line returned last.
    number: usize,
}

impl<'a> Lines<'a> {
    fn new(src: &'a [u8]) -> Lines<'a> {
        Lines { rest: src.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(src), number: 0 }
    }

    fn next_line(&mut self) -> Result<Option<std::borrow::Cow<'a, str>>, ParseError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let end = self.rest.iter().position(|b| *b == b'\n').map_or(self.rest.len(), |i| i + 1);
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest;
        self.number += 1;
        let content_len = line.strip_suffix(b"\n").unwrap_or(line).len();
        if content_len > MAX_LINE {
            return Err(ParseError::new(
                self.number,
                format!("dockerfile line greater than max allowed size of {MAX_LINE} ({content_len} bytes)"),
            ));
        }
        match std::str::from_utf8(line) {
            Ok(s) => Ok(Some(s.into())),
            // Text in other encodings is tolerated in comments only.
            Err(_) if line.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'#') => Ok(Some(String::from_utf8_lossy(line))),
            Err(e) => Err(ParseError::new(
                self.number,
                format!("not UTF-8 text (invalid byte at column {}); save the Dockerfile as UTF-8", e.valid_up_to() + 1),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::dump::dump;

    fn dumped(src: &str) -> String {
        dump(&parse_ast(src.as_bytes()).unwrap().nodes)
    }

    #[test]
    fn continuation_rules() {
        assert_eq!(dumped("RUN a \\\n  b\n"), "(run \"a   b\")\n");
        // Comments and blank lines inside a continuation are skipped.
        assert_eq!(dumped("RUN a \\\n# c\n\n  b\n"), "(run \"a   b\")\n");
        // An escaped escape does not continue.
        assert_eq!(dumped("ENV A x\\\\\nENV B y\n"), "(env \"A\" \"x\\\\\\\\\" \"\")\n(env \"B\" \"y\" \"\")\n");
        // Blanks after the escape are allowed.
        assert_eq!(dumped("RUN a \\  \t\nb\n"), "(run \"a b\")\n");
    }

    #[test]
    fn backtick_escape_keeps_windows_paths() {
        let src = "# escape=`\nFROM mcr.microsoft.com/windows\nCOPY testfile.txt c:\\\nRUN dir c:\\ `\n    && echo done\nWORKDIR c:\\Users\\app\n";
        let ast = parse_ast(src.as_bytes()).unwrap();
        assert_eq!(ast.escape, '`');
        assert_eq!(
            dump(&ast.nodes),
            "(from \"mcr.microsoft.com/windows\")\n(copy \"testfile.txt\" \"c:\\\\\")\n(run \"dir c:\\\\     && echo done\")\n(workdir \"c:\\\\Users\\\\app\")\n"
        );
    }

    #[test]
    fn directives_only_at_the_top() {
        let ast = parse_ast(b"# syntax=docker/dockerfile:1\n# escape=`\nFROM a\n# escape=\\\n").unwrap();
        assert_eq!((ast.escape, ast.syntax.as_deref()), ('`', Some("docker/dockerfile:1")));
        let e = parse_ast(b"# escape=`\n# escape=\\\nFROM a\n").unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (2, "only one escape parser directive can be used"));
        let e = parse_ast(b"# escape=x\nFROM a\n").unwrap_err();
        assert!(e.message.contains("invalid escape token 'x'"), "{e:?}");
        let ast = parse_ast(b"\n# escape=`\nFROM a `\n").unwrap();
        assert_eq!(ast.escape, '\\', "a blank line ends the directives");
    }

    #[test]
    fn line_ranges_include_heredocs() {
        let ast = parse_ast(b"FROM a\nRUN <<EOF\necho hi\nEOF\nRUN x \\\n y\n").unwrap();
        let ranges: Vec<_> = ast.nodes.iter().map(|n| (n.start_line, n.end_line)).collect();
        assert_eq!(ranges, [(1, 1), (2, 4), (5, 6)]);
        assert_eq!(ast.nodes[1].heredocs[0].content, "echo hi\n");
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_ast(b"FROM a\nRUN <<EOF\necho hi\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.starts_with("unterminated heredoc"), "{e:?}");
        let e = parse_ast(b"FROM a\n\nCMD [\"a\", [\"b\"]]\n").unwrap_err();
        assert_eq!(e.line, 3);
        let long = format!("FROM a\nRUN {}\n", "x".repeat(MAX_LINE));
        let e = parse_ast(long.as_bytes()).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("greater than max allowed size of 65535"), "{e:?}");
        let ok = format!("FROM a\nRUN {}\n", "x".repeat(MAX_LINE - 4));
        assert!(parse_ast(ok.as_bytes()).is_ok());
        let e = parse_ast(b"FROM a\nRUN \xff\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse_ast(b"# caf\xe9\nFROM a\n").is_ok(), "Latin-1 in a comment is tolerated");
    }

    #[test]
    fn comments_are_attached() {
        let ast = parse_ast(b"# base image\nFROM a\n#\n# the version\nARG V=1\n").unwrap();
        assert_eq!(ast.nodes[0].comments, ["base image"]);
        assert_eq!(ast.nodes[1].comments, ["the version"]);
    }
}
