//! Shell-style patterns with the rules of Go's `filepath.Match`, which
//! docker uses for `.dockerignore`, `COPY` sources and `--filter reference=`:
//!
//! - `*` matches any run of characters except `/`
//! - `?` matches one character except `/`
//! - `[abc]`, `[a-z]`, `[^a-z]` match one character of a class (`^` negates;
//!   Go does not treat `!` as negation)
//! - `\x` matches `x` literally

/// Why a pattern is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPattern;

/// Does `name` match `pattern` in its entirety?
pub fn matches(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_at(&p, &n)
}

fn match_at(p: &[char], n: &[char]) -> Result<bool, BadPattern> {
    let (mut pi, mut ni) = (0, 0);
    // Backtracking point for the last `*`: (pattern index after it, name index).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi + 1, ni));
                    pi += 1;
                    continue;
                }
                c => {
                    if ni < n.len() {
                        let (ok, next) = match_one(p, pi, n[ni])?;
                        if ok && !(c == '?' && n[ni] == '/') {
                            pi = next;
                            ni += 1;
                            continue;
                        }
                    } else {
                        // Still check the rest of the pattern is well-formed.
                        check_rest(&p[pi..])?;
                    }
                }
            }
        } else if ni == n.len() {
            return Ok(true);
        }
        // Mismatch: let the last `*` swallow one more character (never a `/`).
        match star {
            Some((sp, sn)) if sn < n.len() && n[sn] != '/' => {
                star = Some((sp, sn + 1));
                pi = sp;
                ni = sn + 1;
            }
            _ => {
                check_rest(&p[pi.min(p.len())..])?;
                return Ok(false);
            }
        }
    }
}

/// Match one pattern item at `p[pi]` against `c`; returns (matched, next pattern index).
fn match_one(p: &[char], pi: usize, c: char) -> Result<(bool, usize), BadPattern> {
    match p[pi] {
        '?' => Ok((true, pi + 1)),
        '\\' => {
            let lit = *p.get(pi + 1).ok_or(BadPattern)?;
            Ok((lit == c, pi + 2))
        }
        '[' => {
            let mut i = pi + 1;
            let negate = p.get(i) == Some(&'^');
            if negate {
                i += 1;
            }
            let mut matched = false;
            let mut first = true;
            loop {
                let lo = *p.get(i).ok_or(BadPattern)?;
                if lo == ']' && !first {
                    i += 1;
                    break;
                }
                first = false;
                let lo = if lo == '\\' {
                    i += 1;
                    *p.get(i).ok_or(BadPattern)?
                } else if lo == '-' || lo == ']' {
                    return Err(BadPattern);
                } else {
                    lo
                };
                i += 1;
                let mut hi = lo;
                if p.get(i) == Some(&'-') {
                    i += 1;
                    let h = *p.get(i).ok_or(BadPattern)?;
                    hi = if h == '\\' {
                        i += 1;
                        *p.get(i).ok_or(BadPattern)?
                    } else if h == ']' || h == '-' {
                        return Err(BadPattern);
                    } else {
                        h
                    };
                    i += 1;
                }
                if lo <= c && c <= hi {
                    matched = true;
                }
            }
            Ok((matched != negate && c != '/', i))
        }
        lit => Ok((lit == c, pi + 1)),
    }
}

/// Validate the syntax of what is left of a pattern (Go reports
/// ErrBadPattern even when the name has already run out).
fn check_rest(p: &[char]) -> Result<(), BadPattern> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '*' | '?' => i += 1,
            _ => {
                let (_, next) = match_one(p, i, '\u{0}')?;
                i = next;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_filepath_match_basics() {
        let cases = [
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[", "a", Err(BadPattern)),
            ("[^", "a", Err(BadPattern)),
            ("a[", "x", Err(BadPattern)),
            ("*x", "xxx", Ok(true)),
            ("[]a]", "]", Err(BadPattern)),
            ("[-]", "-", Err(BadPattern)),
            ("[x-]", "x", Err(BadPattern)),
            ("\\", "a", Err(BadPattern)),
            ("[a-b-c]", "a", Err(BadPattern)),
        ];
        for (p, n, want) in cases {
            assert_eq!(matches(p, n), want, "pattern {p:?} name {n:?}");
        }
    }
}
