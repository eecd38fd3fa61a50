//! Linux capabilities: root's powers split into ~40 named pieces. A
//! container gets docker's default set (enough to be root *inside* its own
//! files, not to run the machine), changed by `--cap-add`/`--cap-drop`, or
//! every capability with `--privileged`.
//!
//! Applied in the container's init: the bounding set loses everything
//! else (so no exec can ever get it back), the ambient and inheritable sets
//! are emptied (CVE-2022-29162, CVE-2016-8867), and after the switch to the
//! container's user the effective and permitted sets are what remains:
//! the set for root, nothing for any other user (as docker does).

use std::fmt;

use crate::error::{Error, Result};

/// Capability names by number (include/uapi/linux/capability.h).
pub const NAMES: [&str; 41] = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
];

/// Docker's default set (moby `oci/caps/defaults.go`).
pub const DOCKER_DEFAULT: [&str; 14] = [
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
    "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
];

pub const SYS_ADMIN: u32 = 21;

/// A set of capabilities as a bit mask (bit N = capability N).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct CapSet(pub u64);

impl CapSet {
    pub fn docker_default() -> CapSet {
        CapSet::from_names(DOCKER_DEFAULT.iter().copied()).expect("known names")
    }

    /// Every capability this kernel knows (`/proc/sys/kernel/cap_last_cap`)
    /// that ci-run itself may hand on (its own bounding set: a sandboxed
    /// root may lack some, and asking for more would fail).
    pub fn all() -> CapSet {
        let last = last_cap();
        let known = if last >= 63 { u64::MAX } else { (1u64 << (last + 1)) - 1 };
        CapSet(known & own_bounding().unwrap_or(u64::MAX))
    }

    pub fn has(self, cap: u32) -> bool {
        self.0 & (1 << cap) != 0
    }

    /// Parse names as docker accepts them: `NET_ADMIN`, `cap_net_admin`, `ALL`.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<CapSet> {
        let mut set = CapSet(0);
        for n in names {
            set.0 |= parse(n)?.0;
        }
        Ok(set)
    }

    /// Docker's rule: start from the default set (or nothing if ALL is
    /// dropped), add `add`, then remove `drop`.
    pub fn adjusted(add: &[String], drop: &[String]) -> Result<CapSet> {
        let drop_all = drop.iter().any(|d| d.eq_ignore_ascii_case("all"));
        let mut set = if drop_all { CapSet(0) } else { CapSet::docker_default() };
        set.0 |= CapSet::from_names(add.iter().map(String::as_str))?.0;
        if !drop_all {
            set.0 &= !CapSet::from_names(drop.iter().map(String::as_str))?.0;
        }
        Ok(set)
    }

    pub fn names(self) -> Vec<String> {
        (0..64u32).filter(|&c| self.has(c)).map(|c| format!("CAP_{}", NAMES.get(c as usize).copied().unwrap_or("UNKNOWN"))).collect()
    }

    /// As the OCI runtime spec's set type.
    pub fn to_oci(self) -> oci_spec::runtime::Capabilities {
        self.names().iter().filter_map(|n| serde_json::from_value(serde_json::Value::String(n.clone())).ok()).collect()
    }

    pub fn from_oci(caps: Option<&oci_spec::runtime::Capabilities>) -> Result<CapSet> {
        let Some(caps) = caps else { return Ok(CapSet(0)) };
        let mut set = CapSet(0);
        for c in caps {
            let name = serde_json::to_value(c).expect("capabilities serialise");
            set.0 |= parse(name.as_str().unwrap_or_default())?.0;
        }
        Ok(set)
    }
}

impl fmt::Debug for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x} {:?}", self.0, self.names())
    }
}

fn parse(name: &str) -> Result<CapSet> {
    if name.eq_ignore_ascii_case("all") {
        return Ok(CapSet::all());
    }
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    NAMES
        .iter()
        .position(|n| *n == bare)
        .map(|i| CapSet(1 << i))
        .ok_or_else(|| Error::invalid(format!("unknown capability {name:?}")).hint("names are as in capabilities(7), e.g. NET_ADMIN or CAP_SYS_TIME, or ALL"))
}

fn own_bounding() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapBnd:"))?;
    u64::from_str_radix(line.trim_start_matches("CapBnd:").trim(), 16).ok()
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Remove from the bounding set every capability not in `keep` (needs
/// CAP_SETPCAP, which init still has as real root).
pub fn drop_bounding(keep: CapSet) -> std::io::Result<()> {
    for cap in 0..=last_cap() {
        if !keep.has(cap) {
            // SAFETY: prctl with integer arguments.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINVAL) {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// Empty the ambient set: nothing is handed to non-root programs on exec.
pub fn clear_ambient() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// capset(2): this thread's effective, permitted and inheritable sets.
pub fn set(effective: CapSet, permitted: CapSet, inheritable: CapSet) -> std::io::Result<()> {
    const VERSION_3: u32 = 0x2008_0522;
    let hdr = CapHeader { version: VERSION_3, pid: 0 };
    let lo = |s: CapSet| s.0 as u32;
    let hi = |s: CapSet| (s.0 >> 32) as u32;
    let data = [
        CapData { effective: lo(effective), permitted: lo(permitted), inheritable: lo(inheritable) },
        CapData { effective: hi(effective), permitted: hi(permitted), inheritable: hi(inheritable) },
    ];
    // SAFETY: header and two data structs as capset(2) version 3 expects.
    if unsafe { libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_rules() {
        let d = CapSet::docker_default();
        assert_eq!(d.0, 0x00000000a80425fb, "docker's default CapBnd/CapEff mask");
        let s = CapSet::adjusted(&["net_admin".into()], &["CAP_MKNOD".into()]).unwrap();
        assert!(s.has(12) && !s.has(27));
        let only = CapSet::adjusted(&["CHOWN".into()], &["ALL".into()]).unwrap();
        assert_eq!(only.0, 1);
        assert!(CapSet::from_names(["CAP_NOPE"]).is_err());
        let oci = d.to_oci();
        assert_eq!(oci.len(), 14);
        assert_eq!(CapSet::from_oci(Some(&oci)).unwrap(), d);
    }
}
