//! Variable substitution and word splitting, as the Dockerfile frontend
//! does them (buildkit's `shell.Lex`). This is not a shell: nothing is
//! executed, there is no globbing, no `$(...)`. It is the small part of sh
//! that docker applies to the arguments of ENV, ARG, LABEL, COPY, ADD,
//! WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL and FROM before using them:
//!
//! - `$VAR` and `${VAR}`: the value, or nothing when unset;
//! - `${VAR:-word}` / `${VAR-word}`: `word` when VAR is unset or empty / unset;
//! - `${VAR:+word}` / `${VAR+word}`: `word` when VAR is set and not empty / set;
//! - `${VAR:?msg}` / `${VAR?msg}`: an error when VAR is unset or empty / unset;
//! - `${VAR#pat}`, `${VAR##pat}`, `${VAR%pat}`, `${VAR%%pat}`: remove the
//!   shortest/longest prefix/suffix matching a pattern of `*` and `?`;
//! - `${VAR/pat/repl}`, `${VAR//pat/repl}`: replace the first/every match;
//! - `'single quotes'` keep everything literally; `"double quotes"` keep
//!   everything but `$` substitutions, and the escape character escapes
//!   only `"`, `$` and itself there; outside quotes the escape character
//!   (`\` or the backtick from `# escape=`) makes the next character literal.
//!
//! [`Lexer::process_word`] returns one string (spaces kept, quotes
//! removed); [`Lexer::process_words`] also splits the result into words at
//! unquoted whitespace — whitespace that came from a variable's value
//! splits too, quoted whitespace does not.

use std::collections::{BTreeMap, HashMap};

use super::golang;

/// Where variable values come from.
pub trait Vars {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Vars for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

impl Vars for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

/// A list of `NAME=value` strings, as in an image config's `Env`; the last
/// definition of a name wins. A bare `NAME` is set to the empty string.
impl Vars for [String] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter().rev().find_map(|e| match e.split_once('=') {
            Some((k, v)) if k == name => Some(v),
            None if e == name => Some(""),
            _ => None,
        })
    }
}

impl Vars for Vec<String> {
    fn get(&self, name: &str) -> Option<&str> {
        Vars::get(self.as_slice(), name)
    }
}

/// No variables at all.
pub struct NoVars;

impl Vars for NoVars {
    fn get(&self, _: &str) -> Option<&str> {
        None
    }
}

/// How to process words. [`Lexer::new`] gives docker's behaviour for
/// instruction arguments; the flags exist for the heredoc detector, which
/// must see quotes and escapes as they were written.
#[derive(Debug, Clone, Copy)]
pub struct Lexer {
    /// The escape character: `\` or, after `# escape=``, a backtick.
    pub escape: char,
    /// Keep quote characters in the result instead of removing them.
    pub raw_quotes: bool,
    /// Keep escape characters in the result instead of removing them.
    pub raw_escapes: bool,
    /// Leave `$VAR` as written when VAR is unset (instead of substituting "").
    pub skip_unset: bool,
    /// Treat quotes as ordinary characters (for heredoc bodies, where quotes
    /// belong to the script, not to the Dockerfile).
    pub skip_quotes: bool,
}

impl Lexer {
    pub fn new(escape: char) -> Lexer {
        Lexer { escape, raw_quotes: false, raw_escapes: false, skip_unset: false, skip_quotes: false }
    }

    /// Substitute variables and remove quoting; whitespace is kept.
    pub fn process_word(&self, word: &str, vars: &dyn Vars) -> Result<String, String> {
        self.process(word, vars).map(|(result, _)| result)
    }

    /// Substitute variables and remove quoting, then split into words at
    /// unquoted whitespace.
    pub fn process_words(&self, word: &str, vars: &dyn Vars) -> Result<Vec<String>, String> {
        self.process(word, vars).map(|(_, words)| words)
    }

    fn process(&self, word: &str, vars: &dyn Vars) -> Result<(String, Vec<String>), String> {
        let mut w = WordProcessor { lex: *self, vars, chars: word.chars().collect(), pos: 0 };
        w.until(None, self.raw_escapes).map_err(|e| format!("{e} (in {word:?})"))
    }
}

/// Accumulates words while scanning: whitespace ends a word unless it was
/// quoted or escaped ("raw").
#[derive(Default)]
struct Words {
    words: Vec<String>,
    word: String,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if golang::is_space(c) {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

struct WordProcessor<'a> {
    lex: Lexer,
    vars: &'a dyn Vars,
    chars: Vec<char>,
    pos: usize,
}

impl WordProcessor<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Process until `stop` (consumed) or the end of the input. Inside
    /// `${...}` the stop character is `}` (or `/` for a pattern).
    fn until(&mut self, stop: Option<char>, raw_escapes: bool) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match c {
                '$' => {
                    let value = self.dollar()?;
                    result.push_str(&value);
                    // A variable's value is split at its whitespace.
                    words.add_string(&value);
                }
                '<' => {
                    let text = self.possible_heredoc();
                    result.push_str(&text);
                    words.add_raw_string(&text);
                }
                '\'' if !self.lex.skip_quotes => {
                    let text = self.single_quoted()?;
                    result.push_str(&text);
                    words.add_raw_string(&text);
                }
                '"' if !self.lex.skip_quotes => {
                    let text = self.double_quoted(raw_escapes)?;
                    result.push_str(&text);
                    words.add_raw_string(&text);
                }
                _ => {
                    self.next();
                    if c == self.lex.escape {
                        if raw_escapes {
                            words.add_raw_char(c);
                            result.push(c);
                        }
                        // The escape makes the next character literal; at the
                        // very end it is dropped.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(c);
                        result.push(c);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!("unexpected end of statement while looking for matching {stop}"));
        }
        Ok((result, words.finish()))
    }

    /// `<<` and the whitespace after it stay in one word, so that the
    /// heredoc detector sees `<< EOF` as one word.
    fn possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.next();
        let mut text = "<<".to_string();
        while let Some(c @ (' ' | '\t' | '\r' | '\n')) = self.peek() {
            text.push(c);
            self.next();
        }
        text
    }

    /// `'...'`: everything literal, no escapes.
    fn single_quoted(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let open = self.next().expect("called on a quote");
        if self.lex.raw_quotes {
            out.push(open);
        }
        loop {
            match self.next() {
                None => return Err("unexpected end of statement while looking for matching single-quote".into()),
                Some('\'') => {
                    if self.lex.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// `"..."`: literal except `$` substitutions; the escape character
    /// escapes only `"`, `$` and itself.
    fn double_quoted(&mut self, raw_escapes: bool) -> Result<String, String> {
        let mut out = String::new();
        let open = self.next().expect("called on a quote");
        if self.lex.raw_quotes {
            out.push(open);
        }
        loop {
            match self.peek() {
                None => return Err("unexpected end of statement while looking for matching double-quote".into()),
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let value = self.dollar()?;
                    out.push_str(&value);
                }
                Some(_) => {
                    let mut c = self.next().expect("peeked");
                    if c == self.lex.escape {
                        if raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.lex.escape => {
                                c = self.next().expect("peeked");
                            }
                            // Any other escape stays as written.
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    /// `$NAME`, `${NAME}` and `${NAME<modifier>word}`.
    fn dollar(&mut self) -> Result<String, String> {
        self.next(); // the `$`
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.vars.get(&name) {
                Some(v) => v.to_string(),
                None if self.lex.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.next(); // the `{`
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.name();
        let Some(mut op) = self.next() else { return Err("syntax error: missing '}'".into()) };
        let mut op_text = op.to_string();
        let value = self.vars.get(&name).map(str::to_string);
        match op {
            '}' => Ok(match value {
                Some(v) => v,
                None if self.lex.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                // With `:`, an empty value counts as unset.
                let null_is_unset = op == ':';
                if null_is_unset {
                    op = self.next().unwrap_or('}');
                    op_text.push(op);
                }
                // Patterns keep their escapes (they mean something there).
                let raw = op == '#' || op == '%';
                let (word, _) = self.until(Some('}'), raw).map_err(|e| self.missing_brace(e))?;
                if value.is_none() && self.lex.skip_unset {
                    return Ok(format!("${{{name}{op_text}{word}}}"));
                }
                self.modifier(&name, &op_text, op, value, null_is_unset, &word)
            }
            '/' => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.next();
                }
                let (pattern, _) = self.until(Some('/'), true).map_err(|e| {
                    if self.peek().is_none() {
                        "syntax error: missing '/' in ${}".to_string()
                    } else {
                        e
                    }
                })?;
                let (replacement, _) = self.until(Some('}'), true).map_err(|e| self.missing_brace(e))?;
                let Some(value) = value else {
                    if self.lex.skip_unset {
                        return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                    }
                    return Ok(String::new());
                };
                let re = pattern_regex(&pattern, true, false)?;
                Ok(if replace_all {
                    re.replace_all(&value, regex::NoExpand(&replacement)).into_owned()
                } else {
                    re.replace(&value, regex::NoExpand(&replacement)).into_owned()
                })
            }
            _ => Err(format!("unsupported modifier ({op_text}) in substitution")),
        }
    }

    fn missing_brace(&self, e: String) -> String {
        if self.peek().is_none() {
            "syntax error: missing '}'".to_string()
        } else {
            e
        }
    }

    /// Apply `${NAME<op>word}` given NAME's value (None when unset). With
    /// `:` before the operator (`null_is_unset`), an empty value counts as unset.
    fn modifier(&self, name: &str, op_text: &str, op: char, value: Option<String>, null_is_unset: bool, word: &str) -> Result<String, String> {
        let empty = null_is_unset && value.as_deref() == Some("");
        match op {
            '-' if value.is_none() || empty => Ok(word.to_string()),
            '-' => Ok(value.unwrap_or_default()),
            '+' if value.is_none() || empty => Ok(String::new()),
            '+' => Ok(word.to_string()),
            '?' if value.is_none() => Err(format!("{name}: {}", if word.is_empty() { "is not allowed to be unset" } else { word })),
            '?' if empty => Err(format!("{name}: {}", if word.is_empty() { "is not allowed to be empty" } else { word })),
            '?' => Ok(value.unwrap_or_default()),
            '#' | '%' => {
                let value = value.unwrap_or_default();
                let (greedy, pattern) = match word.strip_prefix(op) {
                    Some(p) => (true, p),
                    None => (false, word),
                };
                if op == '#' {
                    trim_prefix(pattern, &value, greedy)
                } else {
                    trim_suffix(pattern, &value, greedy)
                }
            }
            _ => Err(format!("unsupported modifier ({op_text}) in substitution")),
        }
    }

    /// A variable name: letters, digits and `_`; or a run of digits (a
    /// positional parameter, never set here); or one special parameter
    /// (`@ * # ? - $ ! 0`).
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && golang::is_digit(c) {
                while let Some(d) = self.peek().filter(|d| golang::is_digit(*d)) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return c.to_string();
            }
            if !(golang::is_letter(c) || golang::is_digit(c) || c == '_') {
                break;
            }
            name.push(c);
            self.next();
        }
        name
    }
}

/// A `${VAR#pattern}`-style pattern as a regex: `*` any run (shortest
/// unless greedy), `?` any one character, `\` escapes `*`, `?` and `\`.
fn pattern_regex(pattern: &str, greedy: bool, anchored: bool) -> Result<regex::Regex, String> {
    let mut re = String::from(if anchored { "^" } else { "" });
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => re.push_str(if greedy { ".*" } else { ".*?" }),
            '?' => re.push('.'),
            '\\' => {
                // `\}` and `\/` were escapes for the ${} syntax, not the pattern.
                if matches!(chars.get(i), Some('}' | '/')) {
                    continue;
                }
                match chars.get(i) {
                    Some(&e @ ('*' | '?' | '\\')) => {
                        re.push('\\');
                        re.push(e);
                        i += 1;
                    }
                    Some(e) => return Err(format!("invalid pattern ({pattern}) in substitution: invalid escape '\\{e}'")),
                    None => return Err(format!("invalid pattern ({pattern}) in substitution: trailing backslash")),
                }
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    regex::Regex::new(&re).map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let re = pattern_regex(pattern, greedy, true)?;
    Ok(match re.find(value) {
        Some(m) => value[m.end()..].to_string(),
        None => value.to_string(),
    })
}

/// Shortest/longest suffix: reverse value and pattern (keeping `\x`
/// escapes in order) and trim a prefix.
fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let p: Vec<char> = pattern.chars().collect();
    let mut tokens: Vec<String> = Vec::new();
    let mut i = 0;
    while i < p.len() {
        if p[i] == '\\' && i + 1 < p.len() {
            tokens.push(format!("\\{}", p[i + 1]));
            i += 2;
        } else {
            tokens.push(p[i].to_string());
            i += 1;
        }
    }
    let reversed_pattern: String = tokens.into_iter().rev().collect();
    let reversed_value: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reversed_pattern, &reversed_value, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("A", "a b"), ("EMPTY", ""), ("PATH", "/usr/local/bin:/usr/bin:/bin"), ("F", "archive.tar.gz")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn word(s: &str) -> Result<String, String> {
        Lexer::new('\\').process_word(s, &env())
    }

    #[test]
    fn defaults_alternatives_and_errors() {
        assert_eq!(word("${EMPTY:-x}").unwrap(), "x");
        assert_eq!(word("${EMPTY-x}").unwrap(), "");
        assert_eq!(word("${UNSET-x}").unwrap(), "x");
        assert_eq!(word("${EMPTY:+x}").unwrap(), "");
        assert_eq!(word("${EMPTY+x}").unwrap(), "x");
        assert_eq!(word("${A:+[$A]}").unwrap(), "[a b]");
        assert!(word("${EMPTY:?}").unwrap_err().contains("EMPTY: is not allowed to be empty"));
        assert_eq!(word("${EMPTY?}").unwrap(), "");
        assert!(word("${UNSET?need it}").unwrap_err().contains("UNSET: need it"));
        assert!(word("${UNSET:?}").unwrap_err().contains("is not allowed to be unset"));
    }

    #[test]
    fn patterns() {
        assert_eq!(word("${F%.*}").unwrap(), "archive.tar");
        assert_eq!(word("${F%%.*}").unwrap(), "archive");
        assert_eq!(word("${F#*.}").unwrap(), "tar.gz");
        assert_eq!(word("${F##*.}").unwrap(), "gz");
        assert_eq!(word("${PATH/bin/sbin}").unwrap(), "/usr/local/sbin:/usr/bin:/bin");
        assert_eq!(word("${PATH//bin/X}").unwrap(), "/usr/local/X:/usr/X:/X");
    }

    #[test]
    fn escapes_and_quotes() {
        assert_eq!(word(r"\$A").unwrap(), "$A");
        assert_eq!(word(r#""$A""#).unwrap(), "a b");
        assert_eq!(word("'$A'").unwrap(), "$A");
        let bt = Lexer::new('`');
        assert_eq!(bt.process_word(r"C:\path\`$A", &env()).unwrap(), r"C:\path\$A");
        let words = Lexer::new('\\').process_words(r#"x $A "$A" \ y"#, &env()).unwrap();
        assert_eq!(words, ["x", "a", "b", "a b", " y"]);
    }

    #[test]
    fn skip_unset_keeps_references() {
        let lex = Lexer { skip_unset: true, ..Lexer::new('\\') };
        assert_eq!(lex.process_word("$X ${Y} ${Z:-d} $A", &env()).unwrap(), "$X ${Y} ${Z:-d} a b");
    }

    #[test]
    fn env_list_lookup_last_wins() {
        let list = vec!["A=1".to_string(), "B".to_string(), "A=2".to_string()];
        assert_eq!(Vars::get(&list, "A"), Some("2"));
        assert_eq!(Vars::get(&list, "B"), Some(""));
        assert_eq!(Vars::get(&list, "C"), None);
    }
}
