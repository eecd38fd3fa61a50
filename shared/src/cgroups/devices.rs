//! Which device nodes a container may use.
//!
//! CAP_MKNOD is in docker's default capability set, so a container can make
//! a node for the host's disk (`mknod /tmp/sda b 8 0`) and read it, unless
//! the device cgroup says no. The rules are the cgroup v1 `devices.allow` /
//! `devices.deny` lines (`c 1:3 rwm`: char device major 1 minor 3, read,
//! write, mknod), applied in order after an implicit "deny everything":
//!
//! - cgroup v1 writes them as they are: `echo a > devices.deny`, then
//!   `echo 'c 1:3 rwm' > devices.allow` for each rule.
//! - cgroup v2 has no such files: the kernel asks an eBPF program attached
//!   to the cgroup instead ([`super::bpf`]). That program is generated from
//!   [`DeviceAccess`], the state the v1 kernel code would reach from the same
//!   rules, so both versions decide alike.

use std::fmt;

use crate::error::{Error, Result};

/// Block, char, or all devices (`b`, `c`, `a`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    All,
    Char,
    Block,
}

impl DeviceKind {
    pub fn letter(self) -> char {
        match self {
            DeviceKind::All => 'a',
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
        }
    }
}

/// A subset of `rwm`: read, write, mknod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Access(u8);

impl Access {
    // The bit values of the kernel's BPF_DEVCG_ACC_* (also its v1 ACC_*
    // order), so the eBPF program can use them unchanged.
    pub const MKNOD: Access = Access(1);
    pub const READ: Access = Access(2);
    pub const WRITE: Access = Access(4);
    pub const ALL: Access = Access(7);

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn contains(self, other: Access) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn intersects(self, other: Access) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Parse `rwm`, `r`, `mw`... (no repeats, nothing else, not empty).
    pub fn parse(s: &str) -> Result<Access> {
        let mut a = 0u8;
        for ch in s.chars() {
            let bit = match ch {
                'r' => 2,
                'w' => 4,
                'm' => 1,
                _ => return Err(Error::invalid(format!("device access {s:?}: {ch:?} is not one of r, w, m"))),
            };
            if a & bit != 0 {
                return Err(Error::invalid(format!("device access {s:?}: {ch:?} given twice")));
            }
            a |= bit;
        }
        if a == 0 {
            return Err(Error::invalid("device access is empty: give a subset of rwm"));
        }
        Ok(Access(a))
    }
}

impl std::ops::BitOr for Access {
    type Output = Access;
    fn bitor(self, o: Access) -> Access {
        Access(self.0 | o.0)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, ch) in [(2, 'r'), (4, 'w'), (1, 'm')] {
            if self.0 & bit != 0 {
                write!(f, "{ch}")?;
            }
        }
        Ok(())
    }
}

/// The largest major and minor numbers of a Linux `dev_t` (12 and 20 bits).
pub const MAX_MAJOR: u32 = (1 << 12) - 1;
pub const MAX_MINOR: u32 = (1 << 20) - 1;

/// One device cgroup rule. `None` for major or minor means `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceRule {
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: Access,
    /// true: `devices.allow`; false: `devices.deny`.
    pub allow: bool,
}

impl DeviceRule {
    /// Allow `access` to char (`'c'`) or block (`'b'`) devices `major:minor`.
    pub fn allow(kind: DeviceKind, major: Option<u32>, minor: Option<u32>, access: &str) -> Result<DeviceRule> {
        DeviceRule { kind, major, minor, access: Access::parse(access)?, allow: true }.checked()
    }

    /// Every device, every access (what `--privileged` gets).
    pub fn allow_all() -> DeviceRule {
        DeviceRule { kind: DeviceKind::All, major: None, minor: None, access: Access::ALL, allow: true }
    }

    /// Parse a v1 rule line, as `--device-cgroup-rule` takes it:
    /// `c 1:3 rwm`, `b *:* m`, `c 136:* rw`, or `a` (all devices; the rest,
    /// if any, is ignored as the kernel does).
    pub fn parse(line: &str, allow: bool) -> Result<DeviceRule> {
        let bad = |why: &str| Error::invalid(format!("device cgroup rule {line:?}: {why} (expected e.g. 'c 1:3 rwm')"));
        let mut f = line.split_whitespace();
        let kind = match f.next() {
            Some("a") => return Ok(DeviceRule { allow, ..DeviceRule::allow_all() }),
            Some("c") => DeviceKind::Char,
            Some("b") => DeviceKind::Block,
            _ => return Err(bad("the type must be a, b or c")),
        };
        let (major, minor) = f.next().and_then(|n| n.split_once(':')).ok_or_else(|| bad("no MAJOR:MINOR"))?;
        let num = |s: &str| -> Result<Option<u32>> {
            if s == "*" {
                Ok(None)
            } else {
                s.parse().map(Some).map_err(|_| bad(&format!("{s:?} is not a number or *")))
            }
        };
        let access = Access::parse(f.next().unwrap_or("rwm")).map_err(|e| bad(&e.to_string()))?;
        if f.next().is_some() {
            return Err(bad("too many fields"));
        }
        DeviceRule { kind, major: num(major)?, minor: num(minor)?, access, allow }.checked()
    }

    fn checked(self) -> Result<DeviceRule> {
        if self.major.is_some_and(|m| m > MAX_MAJOR) || self.minor.is_some_and(|m| m > MAX_MINOR) {
            return Err(Error::invalid(format!(
                "device cgroup rule '{self}': Linux device numbers go up to major {MAX_MAJOR} and minor {MAX_MINOR}"
            )));
        }
        Ok(self)
    }

    /// The line for `devices.allow` / `devices.deny`.
    pub fn v1_line(&self) -> String {
        self.to_string()
    }

    /// Whether this rule names the request's device (type and numbers).
    fn names(&self, kind: DeviceKind, major: u32, minor: u32) -> bool {
        (self.kind == DeviceKind::All || self.kind == kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
    }
}

impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == DeviceKind::All {
            return f.write_str("a");
        }
        let n = |x: Option<u32>| x.map_or("*".to_string(), |v| v.to_string());
        write!(f, "{} {}:{} {}", self.kind.letter(), n(self.major), n(self.minor), self.access)
    }
}

/// Docker's default: the devices every container gets (`/dev/null`,
/// `zero`, `full`, `random`, `urandom`, `tty`, `console`, `ptmx`, the
/// `/dev/pts/*` terminals), plus mknod of any char or block device, which
/// the image may ship or the container may make; such a node still cannot be
/// opened.
pub fn default_devices() -> Vec<DeviceRule> {
    let c = |major, minor: Option<u32>, access: &str| DeviceRule {
        kind: DeviceKind::Char,
        major,
        minor,
        access: Access::parse(access).expect("valid literal"),
        allow: true,
    };
    vec![
        c(None, None, "m"),
        DeviceRule { kind: DeviceKind::Block, ..c(None, None, "m") },
        c(Some(1), Some(3), "rwm"),   // /dev/null
        c(Some(1), Some(5), "rwm"),   // /dev/zero
        c(Some(1), Some(7), "rwm"),   // /dev/full
        c(Some(1), Some(8), "rwm"),   // /dev/random
        c(Some(1), Some(9), "rwm"),   // /dev/urandom
        c(Some(5), Some(0), "rwm"),   // /dev/tty
        c(Some(5), Some(1), "rwm"),   // /dev/console
        c(Some(5), Some(2), "rwm"),   // /dev/ptmx
        c(Some(136), None, "rwm"),    // /dev/pts/N
    ]
}

/// The decision state the v1 device cgroup reaches from a list of rules
/// (security/device_cgroup.c): a default, and exceptions to it. Exceptions
/// with the same type and numbers merge (`c 1:3 r` + `c 1:3 w` = `c 1:3 rw`);
/// a rule against the default removes access bits from the exception with
/// exactly the same type and numbers (a wildcard does not cut into a more
/// specific exception).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAccess {
    pub default_allow: bool,
    /// Rules that go against the default (allows when the default denies).
    /// Never of kind `All`.
    pub exceptions: Vec<DeviceRule>,
}

impl DeviceAccess {
    /// Start from "deny everything" and apply `rules` in order.
    pub fn from_rules(rules: &[DeviceRule]) -> DeviceAccess {
        let mut s = DeviceAccess { default_allow: false, exceptions: Vec::new() };
        for r in rules {
            if r.kind == DeviceKind::All {
                s = DeviceAccess { default_allow: r.allow, exceptions: Vec::new() };
                continue;
            }
            let same = |e: &DeviceRule| e.kind == r.kind && e.major == r.major && e.minor == r.minor;
            if r.allow != s.default_allow {
                match s.exceptions.iter_mut().find(|e| same(e)) {
                    Some(e) => e.access = e.access | r.access,
                    None => s.exceptions.push(DeviceRule { allow: r.allow, ..*r }),
                }
            } else {
                for e in s.exceptions.iter_mut().filter(|e| same(e)) {
                    e.access = Access(e.access.0 & !r.access.0);
                }
                s.exceptions.retain(|e| !e.access.is_empty());
            }
        }
        s
    }

    /// Whether a process may do `access` on device `kind major:minor`.
    /// Default deny: some exception must grant every requested bit. Default
    /// allow: no exception may deny any of them.
    pub fn allows(&self, kind: DeviceKind, major: u32, minor: u32, access: Access) -> bool {
        let mut named = self.exceptions.iter().filter(|e| e.names(kind, major, minor));
        if self.default_allow {
            !named.any(|e| e.access.intersects(access))
        } else {
            named.any(|e| e.access.contains(access))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeviceKind::*;

    fn rules(lines: &[&str]) -> Vec<DeviceRule> {
        lines
            .iter()
            .map(|l| match l.strip_prefix("deny ") {
                Some(d) => DeviceRule::parse(d, false).unwrap(),
                None => DeviceRule::parse(l, true).unwrap(),
            })
            .collect()
    }

    #[test]
    fn parse_and_print() {
        for line in ["c 1:3 rwm", "b *:* m", "c 136:* rw", "a"] {
            assert_eq!(DeviceRule::parse(line, true).unwrap().to_string(), line);
        }
        assert_eq!(DeviceRule::parse("c 1:3 mwr", true).unwrap().to_string(), "c 1:3 rwm");
        assert_eq!(DeviceRule::parse("a *:* rwm", true).unwrap(), DeviceRule::allow_all());
        assert_eq!(DeviceRule::parse("c 1:3", true).unwrap().access, Access::ALL);
        for bad in ["", "x 1:3 r", "c 1-3 r", "c 1:x r", "c 1:3 rx", "c 1:3 rr", "c 1:3 r extra", "c 4096:0 r", "b 0:1048576 r"] {
            let e = DeviceRule::parse(bad, true).unwrap_err().to_string();
            assert!(e.starts_with("device cgroup rule") || e.starts_with("device access"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn docker_defaults() {
        let a = DeviceAccess::from_rules(&default_devices());
        assert!(!a.default_allow);
        assert!(a.allows(Char, 1, 3, Access::READ | Access::WRITE));
        assert!(a.allows(Char, 136, 42, Access::ALL));
        assert!(a.allows(Block, 8, 0, Access::MKNOD));
        assert!(!a.allows(Block, 8, 0, Access::READ));
        assert!(!a.allows(Char, 1, 1, Access::READ)); // /dev/mem
        assert!(!a.allows(Char, 1, 1, Access::READ | Access::MKNOD));
        assert!(!a.allows(Char, 10, 229, Access::WRITE)); // /dev/fuse
    }

    #[test]
    fn v1_merge_and_remove_semantics() {
        // Separate grants for one device merge.
        let a = DeviceAccess::from_rules(&rules(&["c 1:3 r", "c 1:3 w"]));
        assert!(a.allows(Char, 1, 3, Access::READ | Access::WRITE));
        assert_eq!(a.exceptions.len(), 1);
        // A deny with the same numbers removes bits...
        let a = DeviceAccess::from_rules(&rules(&["c 1:3 rwm", "deny c 1:3 w"]));
        assert!(a.allows(Char, 1, 3, Access::READ));
        assert!(!a.allows(Char, 1, 3, Access::READ | Access::WRITE));
        // ...a wildcard deny does not touch a specific grant (as the kernel).
        let a = DeviceAccess::from_rules(&rules(&["c 1:3 rwm", "deny c 1:* w"]));
        assert!(a.allows(Char, 1, 3, Access::WRITE));
        // `a` resets; with a default allow, exceptions deny on any overlap.
        let a = DeviceAccess::from_rules(&rules(&["c 1:3 rwm", "a", "deny b 8:* r"]));
        assert!(a.default_allow);
        assert!(a.allows(Char, 1, 1, Access::ALL));
        assert!(!a.allows(Block, 8, 1, Access::READ | Access::MKNOD));
        assert!(a.allows(Block, 8, 1, Access::MKNOD));
        // An allow against a default allow removes a deny exception.
        let a = DeviceAccess::from_rules(&rules(&["a", "deny b 8:1 rw", "b 8:1 w"]));
        assert!(a.allows(Block, 8, 1, Access::WRITE));
        assert!(!a.allows(Block, 8, 1, Access::READ));
        // Nothing at all: everything denied.
        assert!(!DeviceAccess::from_rules(&[]).allows(Char, 1, 3, Access::READ));
    }
}
