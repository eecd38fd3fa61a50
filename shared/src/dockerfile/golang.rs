//! The few behaviours of Go's standard library that docker's Dockerfile and
//! `.dockerignore` semantics are defined in terms of. Docker is written in
//! Go, so "what docker does" often means "what `strconv.Quote` or
//! `path.Clean` does"; each function here names the Go function it follows.

/// Go's `unicode.IsSpace`: the same set as Rust's `char::is_whitespace`
/// (ASCII `\t \n \v \f \r` and space, U+0085, U+00A0 and the Unicode
/// White_Space characters).
pub fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Go's `unicode.IsLetter` (category L). Rust's `is_alphabetic` also
/// accepts a few letter-like marks and numerals; the difference only shows
/// in variable names made of such characters.
pub fn is_letter(c: char) -> bool {
    c.is_alphabetic()
}

/// Go's `unicode.IsDigit` (category Nd), approximated by Rust's
/// `is_numeric` (which also accepts No/Nl numerals such as `½`).
pub fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

/// Go's `strconv.Quote`: a double-quoted string with Go escapes. The parser
/// dump (buildkit's `Node.Dump`) prints every argument this way.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if is_print(c) => out.push(c),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols
/// and the ASCII space. Without Unicode category tables in std, this
/// rejects what is certainly not printable (controls, spaces other than
/// U+0020, format characters, private use, noncharacters) and accepts the
/// rest, so an unassigned code point prints as itself where Go escapes it.
fn is_print(c: char) -> bool {
    let u = c as u32;
    if c.is_ascii() {
        return (0x20..0x7f).contains(&u);
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let format_chars: &[(u32, u32)] = &[
        (0x00ad, 0x00ad),
        (0x0600, 0x0605),
        (0x061c, 0x061c),
        (0x06dd, 0x06dd),
        (0x070f, 0x070f),
        (0x0890, 0x0891),
        (0x08e2, 0x08e2),
        (0x180e, 0x180e),
        (0x200b, 0x200f),
        (0x202a, 0x202e),
        (0x2060, 0x2064),
        (0x2066, 0x206f),
        (0xfeff, 0xfeff),
        (0xfff9, 0xfffb),
        (0x110bd, 0x110bd),
        (0x110cd, 0x110cd),
        (0x13430, 0x1343f),
        (0x1bca0, 0x1bca3),
        (0x1d173, 0x1d17a),
        (0xe0001, 0xe0001),
        (0xe0020, 0xe007f),
    ];
    if format_chars.iter().any(|&(lo, hi)| (lo..=hi).contains(&u)) {
        return false;
    }
    let private_use = (0xe000..=0xf8ff).contains(&u) || u >= 0xf0000;
    let noncharacter = (0xfdd0..=0xfdef).contains(&u) || (u & 0xfffe) == 0xfffe;
    !private_use && !noncharacter
}

/// Go's `path.Clean` (and `filepath.Clean` on Unix): the shortest path
/// naming the same file by purely lexical processing — one slash between
/// elements, no `.` elements, `..` cancelling the element before it, no
/// `..` at the start of a rooted path. The empty path becomes `.`.
pub fn clean_path(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Dir` on Unix: everything before the last `/`, cleaned;
/// `.` when there is no `/`.
pub fn dir(p: &str) -> String {
    match p.rfind('/') {
        Some(i) => clean_path(&p[..=i]),
        None => ".".to_string(),
    }
}

/// Go's `path.Join`: the non-empty elements joined with `/` and cleaned.
pub fn join_path(elems: &[&str]) -> String {
    let parts: Vec<&str> = elems.iter().copied().filter(|e| !e.is_empty()).collect();
    if parts.is_empty() {
        return String::new();
    }
    clean_path(&parts.join("/"))
}

/// Go's `time.ParseDuration`: a signed sequence of decimal numbers, each
/// with an optional fraction and a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`,
/// `h`), such as `300ms`, `1.5h` or `2h45m`. Returns nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let invalid = || format!("{s:?} is not a duration (write a number and a unit: 30s, 1m30s, 500ms, 1h)");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = after.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("{s:?} has a number without a unit (ns, us, ms, s, m, h)")),
            u => return Err(format!("{s:?} has an unknown unit {u:?} (use ns, us, ms, s, m or h)")),
        };
        let whole: u128 = if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| invalid())? };
        let mut value = whole.checked_mul(scale).ok_or_else(invalid)?;
        if !frac_part.is_empty() {
            // Like Go: the fraction contributes float64(fraction) * unit / 10^digits.
            let digits = frac_part.len().min(18);
            let f: f64 = frac_part[..digits].parse::<u64>().map_err(|_| invalid())? as f64;
            value += (f * (scale as f64 / 10f64.powi(digits as i32))) as u128;
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > i64::MAX as u128 + u128::from(neg) {
            return Err(format!("{s:?} is too long a duration"));
        }
        rest = after;
    }
    Ok(if neg { (total as i128).wrapping_neg() as i64 } else { total as i64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_follows_go() {
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("\t\n\x00\x7f"), r#""\t\n\x00\x7f""#);
        assert_eq!(quote("♥ ☃ 한국어"), "\"♥ ☃ 한국어\"");
        assert_eq!(quote("\u{a0}\u{200b}\u{e000}"), r#""\u00a0\u200b\ue000""#);
        assert_eq!(quote("\u{f0000}"), r#""\U000f0000""#);
    }

    #[test]
    fn clean_follows_go() {
        for (i, o) in [
            ("", "."),
            ("/", "/"),
            ("a//b/./c/", "a/b/c"),
            ("../etc", "../etc"),
            ("/../etc", "/etc"),
            ("a/../../b", "../b"),
            ("foo/../bar", "bar"),
            ("./foo", "foo"),
            ("//a", "/a"),
        ] {
            assert_eq!(clean_path(i), o, "clean({i:?})");
        }
        assert_eq!(dir("file"), ".");
        assert_eq!(dir("a/b/c"), "a/b");
        assert_eq!(dir("/a"), "/");
        assert_eq!(join_path(&["/", "a", "../b"]), "/b");
    }

    #[test]
    fn durations_follow_go() {
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("5s"), Ok(5_000_000_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_duration("-2us"), Ok(-2_000));
        assert_eq!(parse_duration(".5s"), Ok(500_000_000));
        for bad in ["", "5", "s", "5x", ".s", "--5s", "1e3s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
