//! Entry names and link targets, normalised into components *inside* the
//! root before anything touches the filesystem.
//!
//! A tar name is untrusted bytes: `/etc/x`, `./a//b/`, `a/../../x`, names
//! with a NUL. [`Name::entry`] turns it into plain components (no `.`, no
//! `..`, no empty parts) or refuses it; [`Name::link_target`] does the same
//! for a hardlink target, where `..` at the root stays at the root, as it
//! would for a process inside the container. A `Name` is only ever used
//! relative to a directory fd of the root, never joined onto a host path.

use std::fmt;

/// Linux `PATH_MAX` includes the terminating NUL: paths are at most 4095 bytes.
pub const PATH_MAX: usize = 4095;
/// Linux `NAME_MAX`: one path component.
pub const NAME_MAX: usize = 255;

/// A normalised relative name: components joined by single `/`, empty for the root.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Name(Vec<u8>);

/// Why a name was refused (the caller adds which entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadName {
    Nul,
    TooLong(usize),
    ComponentTooLong,
    /// `..` climbs above the root (`../x`, `a/../../x`).
    Escapes,
}

impl fmt::Display for BadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadName::Nul => write!(f, "the name contains a NUL byte"),
            BadName::TooLong(n) => write!(f, "the name is {n} bytes long; Linux paths are at most {PATH_MAX} bytes (PATH_MAX)"),
            BadName::ComponentTooLong => write!(f, "a component of the name is longer than {NAME_MAX} bytes"),
            BadName::Escapes => write!(f, "'..' climbs above the root of the layer (breakout refused)"),
        }
    }
}

impl Name {
    /// The name of an entry: a leading `/` is dropped (the entry lands inside
    /// the root), `.` and empty components vanish, `..` removes the previous
    /// component, and a `..` with nothing left to remove is refused.
    pub fn entry(raw: &[u8]) -> Result<Name, BadName> {
        Name::normalize(raw, false)
    }

    /// The target of a hardlink, resolved as the container would: `..` at
    /// the root stays at the root.
    pub fn link_target(raw: &[u8]) -> Result<Name, BadName> {
        Name::normalize(raw, true)
    }

    fn normalize(raw: &[u8], clamp: bool) -> Result<Name, BadName> {
        if raw.contains(&0) {
            return Err(BadName::Nul);
        }
        if raw.len() > PATH_MAX {
            return Err(BadName::TooLong(raw.len()));
        }
        let mut comps: Vec<&[u8]> = Vec::new();
        for c in raw.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    if comps.pop().is_none() && !clamp {
                        return Err(BadName::Escapes);
                    }
                }
                c if c.len() > NAME_MAX => return Err(BadName::ComponentTooLong),
                c => comps.push(c),
            }
        }
        Ok(Name(comps.join(&b'/')))
    }

    /// The root itself (`/`, `.`, `./`, or an empty name).
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The whole name, `a/b/c`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Everything but the last component (`a/b` for `a/b/c`; empty at the top).
    pub fn parent(&self) -> &[u8] {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.0[..i],
            None => &[],
        }
    }

    /// The last component (`c` for `a/b/c`; empty for the root).
    pub fn base(&self) -> &[u8] {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

/// A raw name for an error message: lossy UTF-8, quoted, cut at 200 characters.
pub fn show(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    if s.chars().count() > 200 {
        let head: String = s.chars().take(200).collect();
        format!("{head:?}… ({} bytes)", raw.len())
    } else {
        format!("{s:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(s: &str) -> Result<String, BadName> {
        Name::entry(s.as_bytes()).map(|n| n.to_string())
    }

    #[test]
    fn entry_names_are_normalised_inside_the_root() {
        assert_eq!(entry("/etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(entry("./a//b/./c/").unwrap(), "a/b/c");
        assert_eq!(entry("dne/../.wh.etc").unwrap(), ".wh.etc");
        assert_eq!(entry("localetc/sub/..").unwrap(), "localetc");
        assert_eq!(entry("..gitme").unwrap(), "..gitme");
        assert_eq!(entry("./").unwrap(), "");
        assert_eq!(entry("/").unwrap(), "");
        assert_eq!(entry("").unwrap(), "");
    }

    #[test]
    fn entry_names_that_climb_out_are_refused() {
        for bad in ["..", "../x", "/../x", "a/../../x", "../../pwned"] {
            assert_eq!(entry(bad), Err(BadName::Escapes), "{bad}");
        }
        assert_eq!(entry("ok\0/../../etc/passwd"), Err(BadName::Nul));
        assert_eq!(entry(&"a/".repeat(2100)), Err(BadName::TooLong(4200)));
        assert_eq!(entry(&"x".repeat(256)), Err(BadName::ComponentTooLong));
    }

    #[test]
    fn link_targets_stay_at_the_root_like_in_a_chroot() {
        let t = |s: &str| Name::link_target(s.as_bytes()).unwrap().to_string();
        assert_eq!(t("../../../../../etc/passwd"), "etc/passwd");
        assert_eq!(t("/../victim/hello"), "victim/hello");
        assert_eq!(t("/usr/bin/perlbug"), "usr/bin/perlbug");
    }

    #[test]
    fn parent_and_base() {
        let n = Name::entry(b"a/b/c").unwrap();
        assert_eq!(n.parent(), b"a/b");
        assert_eq!(n.base(), b"c");
        let n = Name::entry(b"c").unwrap();
        assert_eq!(n.parent(), b"");
        assert_eq!(n.base(), b"c");
    }
}
