//! Heredocs: inline files in RUN, COPY and ADD.
//!
//! ```dockerfile
//! RUN <<EOF
//! echo hello
//! EOF
//! COPY <<-"CONF" /etc/app.conf
//! 	port=80
//! 	CONF
//! ```
//!
//! A word `[n]<<[-]WORD` on the instruction line opens a heredoc: the
//! following lines, up to a line that is exactly `WORD`, are its content.
//! `<<-` also accepts the terminator after leading tabs and strips leading
//! tabs from the content when it is used ([`chomp`]). If any part of WORD
//! is quoted (`<<'EOF'`, `<<"EOF"`, `<<E"O"F`), the content is taken
//! literally; otherwise `$VAR`s in it are expanded. Several heredocs on one
//! line are read one after the other. JSON (exec) form never has heredocs.

// The `<<-` example above needs real tabs.
#![allow(clippy::tabs_in_doc_comments)]

use super::shell::{Lexer, NoVars};

/// One heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminating word, quotes removed (`EOF` for `<<'EOF'`).
    pub name: String,
    /// The raw content, every line with its newline, tabs not yet chomped.
    pub content: String,
    /// Whether `$VAR`s in the content are expanded (WORD was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the content and terminator.
    pub chomp: bool,
    /// The `n` of `n<<WORD` (0 when absent), the fd the content is fed to.
    pub fd: u32,
}

impl Heredoc {
    /// The content to use: chomped when the heredoc was opened with `<<-`.
    pub fn text(&self) -> String {
        if self.chomp {
            chomp(&self.content)
        } else {
            self.content.clone()
        }
    }
}

/// Remove the tabs that start each line (what `<<-` asks for).
pub fn chomp(content: &str) -> String {
    content.split_inclusive('\n').map(|line| line.trim_start_matches('\t')).collect()
}

/// If `word` is a heredoc opener (`^(\d*)<<(-?)\s*(WORD)$` with WORD one
/// shell word containing no `<`), the heredoc it opens (content empty).
/// A WORD with an unterminated quote is an error.
pub fn parse_opener(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let Some(after) = word[digits..].strip_prefix("<<") else { return Ok(None) };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, after),
    };
    let rest = after.trim_start_matches([' ', '\t', '\n', '\x0c', '\r']); // Go regexp's \s
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    // Lex WORD twice, with and without its quotes: if the quote counts
    // differ, some part of it was quoted, and the content is literal.
    let mut lex = Lexer { skip_unset: true, ..Lexer::new('\\') };
    let words = lex.process_words(rest, &NoVars)?;
    if words.len() != 1 {
        return Ok(None);
    }
    lex.raw_quotes = true;
    let raw = lex.process_words(rest, &NoVars)?;
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    let fd = word[..digits].parse().unwrap_or(0);
    Ok(Some(Heredoc {
        name: words[0].clone(),
        content: String::new(),
        expand: raw.len() == 1 && quotes(&words[0]) == quotes(&raw[0]),
        chomp,
        fd,
    }))
}

/// The heredocs an instruction line opens, in order. Words are found the
/// way buildkit finds them: the whole line is lexed keeping quotes and
/// escapes, so `"<<EOF"` (quoted) opens nothing.
///
/// One difference, on purpose: `<<- EOF` opens a heredoc, as in a shell and
/// as buildkit's own tests expect (`TestHeredocsFromLine`, and `<<- EOF` is a
/// valid opener for `ParseHeredoc`). buildkit's lexer keeps the space after
/// `<<` in the word but not the space after `<<-`, so its `heredocsFromLine`
/// finds nothing there; we join the two words instead.
pub fn openers_in_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let lex = Lexer { raw_quotes: true, raw_escapes: true, skip_unset: true, ..Lexer::new('\\') };
    let Ok(words) = lex.process_words(line, &NoVars) else { return Ok(Vec::new()) };
    let mut docs = Vec::new();
    let mut words = words.into_iter();
    while let Some(mut w) = words.next() {
        let bare_chomp = w.trim_start_matches(|c: char| c.is_ascii_digit()) == "<<-";
        if bare_chomp {
            if let Some(next) = words.next() {
                w = format!("{w} {next}");
            }
        }
        if let Some(h) = parse_opener(&w)? {
            docs.push(h);
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openers() {
        let h = parse_opener("3<<-'EOF'").unwrap().unwrap();
        assert_eq!((h.name.as_str(), h.expand, h.chomp, h.fd), ("EOF", false, true, 3));
        assert!(parse_opener("<<EOF sh").unwrap().is_none());
        assert!(parse_opener("<<'EOF").is_err());
        assert_eq!(chomp("\t\ta\n\tb\nc\t\n"), "a\nb\nc\t\n");
    }

    #[test]
    fn a_space_after_the_chomp_dash() {
        let names = |l: &str| openers_in_line(l).unwrap().into_iter().map(|h| (h.name, h.chomp, h.fd)).collect::<Vec<_>>();
        assert_eq!(names("RUN <<- EOF"), vec![("EOF".to_string(), true, 0)]);
        assert_eq!(names("RUN 3<<-  'EOF' && x <<A"), vec![("EOF".to_string(), true, 3), ("A".to_string(), false, 0)]);
        assert_eq!(names("RUN << -EOF"), vec![("-EOF".to_string(), false, 0)]);
        assert!(names("RUN echo <<-").is_empty());
        assert!(names("RUN echo '<<-' EOF").is_empty(), "a quoted <<- opens nothing");
    }
}
