//! One instruction as the parser sees it: a keyword, `--flags`, and the
//! arguments cut the way that instruction cuts them. This is buildkit's raw
//! AST node; nothing is expanded or validated yet (an unknown keyword is
//! still a node — the typed layer in `instruction.rs` rejects it).
//!
//! How the arguments are cut depends on the instruction:
//!
//! | form | instructions | `CMD ["a", "b c"]` / `CMD a  b` gives |
//! |---|---|---|
//! | JSON or one string | RUN CMD ENTRYPOINT SHELL | `a`,`b c` / `a  b` |
//! | JSON or words | ADD COPY VOLUME | `a`,`b c` / `a`,`b` |
//! | words | FROM EXPOSE | `a`,`b` |
//! | one string | MAINTAINER USER WORKDIR STOPSIGNAL | `a  b` |
//! | name=value pairs | ENV LABEL | `k`,`v`,`=` per pair (old `ENV k v`: `k`,`v`,``) |
//! | names or name=value | ARG | one argument per word, quotes kept |
//! | type then JSON or string | HEALTHCHECK | `CMD`,`...` |
//! | a nested instruction | ONBUILD | see [`Node::sub`] |

use super::golang::is_space;
use super::heredoc::Heredoc;

/// A parsed instruction (buildkit's `parser.Node`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The instruction keyword as written (`RUN`, `run`, `Run`...).
    pub keyword: String,
    /// Flags before the arguments, as `--name=value` or `--name`.
    pub flags: Vec<String>,
    /// The arguments, cut as the table in the module docs says.
    pub args: Vec<String>,
    /// ONBUILD's instruction (`ONBUILD RUN x` has `sub` = `RUN x`).
    pub sub: Option<Box<Node>>,
    /// Whether the arguments were written in JSON (exec) form.
    pub json: bool,
    /// Heredocs opened on the instruction line, with their content.
    pub heredocs: Vec<Heredoc>,
    /// The instruction's text, continuation lines joined.
    pub original: String,
    /// First and last line (1-based) in the Dockerfile, heredocs included.
    pub start_line: usize,
    pub end_line: usize,
    /// Comment lines just above the instruction (without `#`).
    pub comments: Vec<String>,
}

impl Node {
    /// The keyword in lower case, the way instructions are compared.
    pub fn instruction(&self) -> String {
        self.keyword.to_ascii_lowercase()
    }

    /// Build the node for one logical line (continuations already joined).
    pub fn from_line(line: &str, escape: char) -> Result<Node, String> {
        let (keyword, flags, rest) = split_command(line);
        let mut node = Node {
            keyword: keyword.to_string(),
            flags,
            args: Vec::new(),
            sub: None,
            json: false,
            heredocs: Vec::new(),
            original: line.to_string(),
            start_line: 0,
            end_line: 0,
            comments: Vec::new(),
        };
        match node.instruction().as_str() {
            "run" | "cmd" | "entrypoint" | "shell" => (node.args, node.json) = json_or_string(rest)?,
            "add" | "copy" | "volume" => (node.args, node.json) = json_or_words(rest)?,
            "from" | "expose" => node.args = whitespace_words(rest),
            "maintainer" | "user" | "workdir" | "stopsignal" => node.args = one_string(rest),
            "env" | "label" => node.args = name_value_pairs(rest, &node.keyword.to_ascii_uppercase(), escape)?,
            "arg" => node.args = quoted_words(rest, escape),
            "healthcheck" => (node.args, node.json) = health(rest)?,
            "onbuild" if !rest.is_empty() => node.sub = Some(Box::new(Node::from_line(rest, escape)?)),
            // Unknown instructions keep no arguments; the typed layer reports them.
            _ => {}
        }
        Ok(node)
    }

    /// Whether this instruction may open heredocs: RUN, COPY, ADD (also
    /// under ONBUILD), and never in JSON form.
    pub fn can_have_heredocs(&self) -> bool {
        let target = match (&self.sub, self.instruction().as_str()) {
            (Some(sub), "onbuild") => sub.as_ref(),
            _ => self,
        };
        matches!(target.instruction().as_str(), "run" | "copy" | "add") && !target.json
    }
}

/// Docker's "whitespace" between the keyword and its arguments: `[\t\v\f\r ]+`.
fn is_separator(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// `KEYWORD [--flags] rest`: the keyword, the flags, and the rest trimmed.
fn split_command(line: &str) -> (&str, Vec<String>, &str) {
    let line = line.trim();
    let Some(i) = line.find(is_separator) else { return (line, Vec::new(), "") };
    let (keyword, after) = line.split_at(i);
    let after = after.trim_start_matches(is_separator);
    let (flags, rest) = extract_flags(after);
    (keyword, flags, rest.trim())
}

/// Leading words that start with `--` are flags. Quotes are removed and `\`
/// escapes the next character inside them; a lone `--` ends the flags.
fn extract_flags(line: &str) -> (Vec<String>, &str) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut flags = Vec::new();
    let mut word = String::new();
    let mut quoted = false; // an empty quoted word still counts
    let mut phase = Phase::Spaces;
    let mut i = 0;
    loop {
        let Some(&(at, c)) = chars.get(i) else {
            if phase != Phase::Spaces && word != "--" && (quoted || !word.is_empty()) {
                flags.push(word);
            }
            return (flags, "");
        };
        if phase == Phase::Spaces {
            if is_space(c) {
                i += 1;
                continue;
            }
            let next_is_dash = chars.get(i + 1).is_some_and(|&(_, n)| n == '-');
            if c != '-' || !next_is_dash {
                return (flags, &line[at..]);
            }
            phase = Phase::Word;
        }
        match phase {
            Phase::Word if is_space(c) => {
                if word == "--" {
                    return (flags, &line[at..]);
                }
                if quoted || !word.is_empty() {
                    flags.push(std::mem::take(&mut word));
                }
                word.clear();
                quoted = false;
                phase = Phase::Spaces;
            }
            Phase::Word if c == '\'' || c == '"' => {
                quoted = true;
                phase = Phase::Quote(c);
            }
            Phase::Word | Phase::Quote(_) => {
                if let Phase::Quote(q) = phase {
                    if c == q {
                        phase = Phase::Word;
                        i += 1;
                        continue;
                    }
                }
                if c == '\\' {
                    match chars.get(i + 1) {
                        Some(&(_, escaped)) => {
                            word.push(escaped);
                            i += 1;
                        }
                        // A trailing `\` is dropped.
                        None => phase = Phase::Word,
                    }
                } else {
                    word.push(c);
                }
            }
            Phase::Spaces => unreachable!("handled above"),
        }
        i += 1;
    }
}

/// Why JSON arguments were not used.
enum NotJson {
    /// Not JSON at all: fall back to the other form.
    Other,
    /// Valid JSON, but not an array of strings: an error.
    NotStrings,
}

const NOT_STRINGS: &str = "the JSON (exec) form must be an array of strings, like [\"executable\", \"arg\"]";

/// A JSON array of strings, if `rest` is one.
fn json_array(rest: &str) -> Result<Vec<String>, NotJson> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Err(NotJson::Other);
    }
    let values: Vec<serde_json::Value> = serde_json::from_str(rest).map_err(|_| NotJson::Other)?;
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(NotJson::NotStrings),
        })
        .collect()
}

/// JSON array, else the whole rest as one string (RUN, CMD, ENTRYPOINT, SHELL).
fn json_or_string(rest: &str) -> Result<(Vec<String>, bool), String> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match json_array(rest) {
        Ok(args) => Ok((args, true)),
        Err(NotJson::NotStrings) => Err(NOT_STRINGS.to_string()),
        Err(NotJson::Other) => Ok((vec![rest.to_string()], false)),
    }
}

/// JSON array, else whitespace-separated words (ADD, COPY, VOLUME).
fn json_or_words(rest: &str) -> Result<(Vec<String>, bool), String> {
    match json_array(rest) {
        Ok(args) => Ok((args, true)),
        Err(NotJson::NotStrings) => Err(NOT_STRINGS.to_string()),
        Err(NotJson::Other) => Ok((whitespace_words(rest), false)),
    }
}

/// Words separated by `[\t\v\f\r ]+`, nothing else interpreted (FROM, EXPOSE).
fn whitespace_words(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split(is_separator).filter(|w| !w.is_empty()).map(str::to_string).collect()
}

/// The rest as one argument (MAINTAINER, USER, WORKDIR, STOPSIGNAL).
fn one_string(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        Vec::new()
    } else {
        vec![rest.to_string()]
    }
}

/// Words separated by whitespace, where quotes and the escape character
/// group characters but are kept in the word (they are removed later, by
/// variable expansion). `a="b c" d` gives `a="b c"` and `d`.
fn quoted_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut quoted = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at_end = i + 1 == chars.len();
        match quote {
            None if !in_word && is_space(c) => {}
            None if is_space(c) => {
                if quoted || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                in_word = false;
                quoted = false;
            }
            None => {
                in_word = true;
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    quoted = true;
                    word.push(c);
                } else if c == escape {
                    // The escape and what it escapes both stay; a trailing
                    // escape is dropped.
                    if !at_end {
                        word.push(c);
                        word.push(chars[i + 1]);
                        i += 1;
                    }
                } else {
                    word.push(c);
                }
            }
            Some(q) => {
                if c == q {
                    quote = None;
                    word.push(c);
                } else if c == escape && q != '\'' {
                    if at_end {
                        quote = None;
                    } else {
                        word.push(c);
                        word.push(chars[i + 1]);
                        i += 1;
                    }
                } else {
                    word.push(c);
                }
            }
        }
        i += 1;
    }
    if in_word && (quoted || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// ENV and LABEL: `name=value ...` (each value may be quoted), or the old
/// `NAME value with spaces` form. Each pair becomes name, value and the
/// separator (`=` or empty), as buildkit's dump shows them.
fn name_value_pairs(rest: &str, keyword: &str, escape: char) -> Result<Vec<String>, String> {
    let words = quoted_words(rest, escape);
    let Some(first) = words.first() else { return Ok(Vec::new()) };
    if !first.contains('=') {
        // The old form: the first word is the name, all the rest the value.
        let mut parts = rest.splitn(2, is_separator);
        let name = parts.next().unwrap_or_default();
        let value = parts.next().map(|v| v.trim_start_matches(is_separator)).unwrap_or_default();
        if value.is_empty() && !rest.contains(is_separator) {
            return Err(format!(
                "{keyword} {name} has no value: write {keyword} {name}=value (or {keyword} {name} value)"
            ));
        }
        return Ok(vec![name.to_string(), value.to_string(), String::new()]);
    }
    let mut args = Vec::new();
    for w in words {
        let Some((name, value)) = w.split_once('=') else {
            return Err(format!("{keyword}: {w:?} has no '=': write name=value (quote values that contain spaces)"));
        };
        args.extend([name.to_string(), value.to_string(), "=".to_string()]);
    }
    Ok(args)
}

/// HEALTHCHECK: a type word (`CMD`, `NONE`), then a command in JSON or
/// string form.
fn health(rest: &str) -> Result<(Vec<String>, bool), String> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    let end = rest.find(is_space).unwrap_or(rest.len());
    let (kind, command) = rest.split_at(end);
    let (mut args, json) = json_or_string(command.trim_start_matches(is_space))?;
    args.insert(0, kind.to_string());
    Ok((args, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_stop_at_the_first_non_flag() {
        assert_eq!(extract_flags("--from=a --chown=\"b c\" src dst"), (vec!["--from=a".into(), "--chown=b c".into()], "src dst"));
        assert_eq!(extract_flags("--link -- --notaflag x"), (vec!["--link".into()], " --notaflag x"));
        assert_eq!(extract_flags("-x"), (vec![], "-x"));
    }

    #[test]
    fn quoted_words_keep_quotes() {
        assert_eq!(quoted_words(r#"a="b c" d\ e 'f'"#, '\\'), [r#"a="b c""#, r"d\ e", "'f'"]);
        assert_eq!(quoted_words("x\\", '\\'), ["x"]);
    }

    #[test]
    fn env_forms() {
        assert_eq!(name_value_pairs("A 1 2", "ENV", '\\').unwrap(), ["A", "1 2", ""]);
        assert_eq!(name_value_pairs("A=1 B=\"2 3\"", "ENV", '\\').unwrap(), ["A", "1", "=", "B", "\"2 3\"", "="]);
        assert!(name_value_pairs("PATH", "ENV", '\\').unwrap_err().contains("has no value"));
        assert!(name_value_pairs("A=1 B", "ENV", '\\').unwrap_err().contains("\"B\" has no '='"));
    }
}
