//! Where the cgroup hierarchies are: read from `/proc/self/mountinfo` (what
//! is mounted where, with which options) and `/proc/cgroups` (the
//! controllers this kernel has).
//!
//! A controller lives in exactly one hierarchy at a time: either a cgroup v1
//! hierarchy (`mount -t cgroup -o memory`) or the single v2 hierarchy
//! (`mount -t cgroup2`), where it is listed in the root's `cgroup.controllers`.
//! So the one question the rest of the module asks is "which hierarchy holds
//! controller X?" ([`Layout::hierarchy_of`]), and the three layouts people
//! name are only summaries of the answer ([`LayoutKind`]):
//!
//! - **v1** (older distributions): one mount per controller group under
//!   `/sys/fs/cgroup/<controller>`, no cgroup2 mount.
//! - **v2** (modern distributions): one cgroup2 mount at `/sys/fs/cgroup`
//!   holding every controller.
//! - **hybrid** (systemd's middle way, and this project's CI machine): v1
//!   hierarchies for the controllers plus a cgroup2 mount at
//!   `/sys/fs/cgroup/unified` with few or no controllers. crun refuses it;
//!   here it is just both lists at once. The cgroup2 part still matters:
//!   processes are placed there too (so `/proc/self/cgroup` names the
//!   container everywhere), and it accepts eBPF device programs.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Which cgroup API a hierarchy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub version: Version,
    /// Where it is mounted (`/sys/fs/cgroup/memory`).
    pub mount_point: PathBuf,
    /// Which cgroup of the hierarchy is mounted there (mountinfo's root
    /// field): `/` on a host, the container's own cgroup inside one.
    pub root: PathBuf,
    /// v1: the controllers bound to it (`cpu`, `cpuacct`, or a named
    /// hierarchy such as `name=systemd`). v2: the root's `cgroup.controllers`.
    pub controllers: Vec<String>,
    /// The mount options that mount this hierarchy again (`cpu,cpuacct`,
    /// `name=systemd`; for cgroup2 its flags such as `nsdelegate`).
    pub options: String,
}

impl Hierarchy {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The summary of a [`Layout`], as people name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutKind {
    V1,
    V2,
    Hybrid,
}

impl std::fmt::Display for LayoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LayoutKind::V1 => "cgroup v1",
            LayoutKind::V2 => "cgroup v2",
            LayoutKind::Hybrid => "hybrid (cgroup v1 controllers plus a cgroup2 mount)",
        })
    }
}

/// All cgroup hierarchies of this machine (as seen from our mount namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The v1 hierarchies, in mountinfo order.
    pub v1: Vec<Hierarchy>,
    /// The cgroup2 hierarchy, if mounted.
    pub unified: Option<Hierarchy>,
    /// Controllers the kernel has but that are disabled (`cgroup_disable=`),
    /// from `/proc/cgroups`: named in hints.
    pub disabled: Vec<String>,
}

impl Layout {
    /// Read the layout of the running system.
    pub fn detect() -> Result<Layout> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").ctx("read", "/proc/self/mountinfo")?;
        let cgroups = fs::read_to_string("/proc/cgroups").ctx("read", "/proc/cgroups")?;
        let mut layout = Layout::parse(&mountinfo, &cgroups)?;
        if let Some(u) = &mut layout.unified {
            let file = u.mount_point.join("cgroup.controllers");
            let list = fs::read_to_string(&file).ctx("read", &file)?;
            u.controllers = list.split_whitespace().map(str::to_string).collect();
        }
        if layout.v1.is_empty() && layout.unified.is_none() {
            return Err(Error::Unsupported("no cgroup hierarchy is mounted (no cgroup or cgroup2 line in /proc/self/mountinfo)".into())
                .hint("mount one: mount -t cgroup2 none /sys/fs/cgroup"));
        }
        Ok(layout)
    }

    /// Build a layout from the text of `/proc/self/mountinfo` and
    /// `/proc/cgroups`. The cgroup2 controllers are left empty: they live in
    /// a file of the mount, which [`Layout::detect`] reads.
    pub fn parse(mountinfo: &str, proc_cgroups: &str) -> Result<Layout> {
        let (known, disabled) = parse_proc_cgroups(proc_cgroups);
        let mut v1: Vec<Hierarchy> = Vec::new();
        let mut unified: Option<Hierarchy> = None;
        for (n, line) in mountinfo.lines().enumerate() {
            let Some(m) = MountInfoLine::parse(line) else {
                return Err(Error::Corrupt(format!("/proc/self/mountinfo line {}: cannot parse {line:?}", n + 1)));
            };
            match m.fstype {
                "cgroup" => {
                    let controllers: Vec<String> = m
                        .super_options
                        .split(',')
                        .filter(|o| known.contains(*o) || o.starts_with("name="))
                        .map(str::to_string)
                        .collect();
                    if controllers.is_empty() {
                        continue;
                    }
                    let h = Hierarchy {
                        version: Version::V1,
                        mount_point: m.mount_point,
                        root: m.root,
                        options: controllers.join(","),
                        controllers,
                    };
                    // The same hierarchy mounted twice (a bind mount): keep the
                    // mount of its top, else the first one.
                    match v1.iter_mut().find(|o| o.controllers == h.controllers) {
                        Some(o) if o.root != Path::new("/") && h.root == Path::new("/") => *o = h,
                        Some(_) => {}
                        None => v1.push(h),
                    }
                }
                "cgroup2" => {
                    let better = match &unified {
                        None => true,
                        Some(u) => u.root != Path::new("/") && m.root == Path::new("/"),
                    };
                    if better {
                        let options =
                            m.super_options.split(',').filter(|o| *o != "rw" && *o != "ro").collect::<Vec<_>>().join(",");
                        unified = Some(Hierarchy {
                            version: Version::V2,
                            mount_point: m.mount_point,
                            root: m.root,
                            controllers: Vec::new(),
                            options,
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(Layout { v1, unified, disabled })
    }

    pub fn kind(&self) -> LayoutKind {
        let v1_controllers = self.v1.iter().any(|h| h.controllers.iter().any(|c| !c.starts_with("name=")));
        match (v1_controllers, &self.unified) {
            (true, Some(_)) => LayoutKind::Hybrid,
            (false, Some(_)) => LayoutKind::V2,
            // Only named v1 hierarchies (or none): still a v1 machine.
            (_, None) => LayoutKind::V1,
        }
    }

    /// One line for `--explain`: the kind and where each hierarchy is.
    pub fn summary(&self) -> String {
        let v1 = || {
            let at: Vec<String> = self.v1.iter().map(|h| h.mount_point.display().to_string()).collect();
            format!("{} v1 hierarchies ({})", at.len(), at.join(" "))
        };
        let v2 = |u: &Hierarchy| {
            let c = if u.controllers.is_empty() { "no controllers".to_string() } else { u.controllers.join(" ") };
            format!("cgroup2 at {} ({c})", u.mount_point.display())
        };
        match (self.kind(), &self.unified) {
            (LayoutKind::V2, Some(u)) => format!("{}: {}", LayoutKind::V2, v2(u)),
            (LayoutKind::Hybrid, Some(u)) => format!("{}: {} and {}", LayoutKind::Hybrid, v1(), v2(u)),
            (kind, _) => format!("{kind}: {}", v1()),
        }
    }

    /// Every hierarchy a container's cgroup is made in: the v1 ones, then
    /// the cgroup2 one.
    pub fn hierarchies(&self) -> impl Iterator<Item = &Hierarchy> {
        self.v1.iter().chain(self.unified.iter())
    }

    /// The hierarchy that holds `controller` (`memory`, `pids`...).
    pub fn hierarchy_of(&self, controller: &str) -> Option<&Hierarchy> {
        self.v1.iter().find(|h| h.has(controller)).or_else(|| self.unified.as_ref().filter(|u| u.has(controller)))
    }

    /// Where a container's `/sys/fs/cgroup` holds hierarchy `h` (relative
    /// to it): on a pure v2 machine the cgroup2 mount is `/sys/fs/cgroup`
    /// itself; otherwise each hierarchy is in the directory it has on the
    /// host (`memory`, `cpu,cpuacct`, `systemd`, `unified`). See
    /// [`super::Cgroup::mounts`].
    pub fn container_subdir(&self, h: &Hierarchy) -> PathBuf {
        if self.kind() == LayoutKind::V2 {
            PathBuf::new()
        } else {
            h.mount_point.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from(h.controllers_label()))
        }
    }

    /// The directory in which a container finds the files of `controller`
    /// (`/sys/fs/cgroup/memory` on v1, `/sys/fs/cgroup` on v2), and which
    /// API they speak; `None` when no hierarchy has it.
    pub fn container_dir_of(&self, controller: &str) -> Option<(Version, PathBuf)> {
        let base = Path::new("/sys/fs/cgroup");
        self.hierarchy_of(controller).map(|h| match self.container_subdir(h) {
            sub if sub.as_os_str().is_empty() => (h.version, base.to_path_buf()),
            sub => (h.version, base.join(sub)),
        })
    }

    /// An error for a controller this layout lacks, saying where we looked.
    pub fn missing(&self, controller: &str, wanted_for: &str) -> Error {
        let mut looked = Vec::new();
        if !self.v1.is_empty() {
            looked.push("it is not mounted as a cgroup v1 hierarchy".to_string());
        }
        if let Some(u) = &self.unified {
            looked.push(format!(
                "{} does not list it (it lists: {})",
                u.mount_point.join("cgroup.controllers").display(),
                if u.controllers.is_empty() { "nothing".to_string() } else { u.controllers.join(" ") }
            ));
        }
        let err = Error::Unsupported(format!(
            "{wanted_for} needs the {controller} cgroup controller, which is not available ({})",
            looked.join("; ")
        ));
        if self.disabled.iter().any(|d| d == controller) {
            err.hint(format!("/proc/cgroups shows {controller} disabled: boot without cgroup_disable={controller}"))
        } else if self.kind() == LayoutKind::V1 || self.kind() == LayoutKind::Hybrid {
            err.hint(format!(
                "mount it: mkdir -p /sys/fs/cgroup/{controller} && mount -t cgroup -o {controller} cgroup /sys/fs/cgroup/{controller}"
            ))
        } else {
            err.hint(format!("the parent cgroups must delegate it: echo +{controller} > <parent>/cgroup.subtree_control"))
        }
    }
}

/// `/proc/cgroups`: `#subsys_name hierarchy num_cgroups enabled`. Returns
/// the enabled controllers and the disabled ones.
fn parse_proc_cgroups(text: &str) -> (BTreeSet<String>, Vec<String>) {
    let mut enabled = BTreeSet::new();
    let mut disabled = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 4 {
            if f[3] == "1" {
                enabled.insert(f[0].to_string());
            } else {
                disabled.push(f[0].to_string());
            }
        }
    }
    (enabled, disabled)
}

/// The fields of one mountinfo line that we use (see proc(5)):
/// `36 35 98:0 /root /mnt opts [optional...] - fstype source superopts`.
struct MountInfoLine<'a> {
    root: PathBuf,
    mount_point: PathBuf,
    fstype: &'a str,
    super_options: &'a str,
}

impl<'a> MountInfoLine<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let (left, right) = line.split_once(" - ")?;
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 6 || r.len() < 3 {
            return None;
        }
        Some(MountInfoLine { root: unescape(l[3]), mount_point: unescape(l[4]), fstype: r[0], super_options: r[2] })
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` (octal).
fn unescape(s: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC_CGROUPS: &str = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n\
        cpuset\t3\t1\t1\ncpu\t1\t1\t1\ncpuacct\t2\t1\t1\nblkio\t7\t1\t1\nmemory\t4\t18\t1\n\
        devices\t5\t1\t1\nfreezer\t6\t1\t1\nnet_cls\t0\t1\t1\nperf_event\t0\t1\t1\n\
        net_prio\t0\t1\t1\nhugetlb\t0\t1\t1\npids\t8\t1\t1\nrdma\t0\t1\t0\n";

    /// This project's CI machine, verbatim.
    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_machine() {
        let l = Layout::parse(HYBRID, PROC_CGROUPS).unwrap();
        assert_eq!(l.kind(), LayoutKind::Hybrid);
        assert_eq!(l.v1.len(), 9);
        assert_eq!(l.hierarchy_of("memory").unwrap().mount_point, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(l.hierarchy_of("name=systemd").unwrap().options, "name=systemd");
        assert_eq!(l.container_dir_of("memory"), Some((Version::V1, PathBuf::from("/sys/fs/cgroup/memory"))));
        assert_eq!(l.unified.as_ref().unwrap().mount_point, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(l.disabled, vec!["rdma"]);
        assert!(l.summary().starts_with("hybrid (cgroup v1 controllers plus a cgroup2 mount): 9 v1 hierarchies (/sys/fs/cgroup/cpu "), "{}", l.summary());
        assert!(l.summary().ends_with(" and cgroup2 at /sys/fs/cgroup/unified (no controllers)"), "{}", l.summary());
        // hugetlb is listed by the cgroup2 root's cgroup.controllers, which
        // parse() does not read.
        assert!(l.hierarchy_of("hugetlb").is_none());
    }

    #[test]
    fn pure_v2_and_pure_v1() {
        let v2 = "25 20 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        let mut l = Layout::parse(v2, PROC_CGROUPS).unwrap();
        assert_eq!(l.kind(), LayoutKind::V2);
        let u = l.unified.as_mut().unwrap();
        assert_eq!(u.options, "nsdelegate,memory_recursiveprot");
        u.controllers = vec!["cpu".into(), "memory".into(), "pids".into()];
        assert_eq!(l.hierarchy_of("memory").unwrap().version, Version::V2);
        assert_eq!(l.summary(), "cgroup v2: cgroup2 at /sys/fs/cgroup (cpu memory pids)");
        assert_eq!(l.container_dir_of("pids"), Some((Version::V2, PathBuf::from("/sys/fs/cgroup"))));
        assert_eq!(l.container_dir_of("devices"), None);
        assert!(l.hierarchy_of("devices").is_none());

        let v1 = "30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:10 - cgroup cgroup rw,cpu,cpuacct\n\
                  31 25 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd\n";
        let l = Layout::parse(v1, PROC_CGROUPS).unwrap();
        assert_eq!(l.kind(), LayoutKind::V1);
        assert_eq!(l.v1[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(l.v1[0].options, "cpu,cpuacct");
        // Flags that are not controllers (xattr, release_agent) are dropped.
        assert_eq!(l.v1[1].options, "name=systemd");
    }

    #[test]
    fn bind_mounts_and_escapes() {
        // The same memory hierarchy twice: the mount of its top wins; a mount
        // point with a space is unescaped.
        let text = "40 1 0:32 /ci/x /mnt/a rw - cgroup cgroup rw,memory\n\
                    41 1 0:32 / /mnt/my\\040cgroups rw - cgroup cgroup rw,memory\n";
        let l = Layout::parse(text, PROC_CGROUPS).unwrap();
        assert_eq!(l.v1.len(), 1);
        assert_eq!(l.v1[0].mount_point, Path::new("/mnt/my cgroups"));
        assert!(Layout::parse("garbage\n", PROC_CGROUPS).is_err());
    }

    #[test]
    fn missing_controller_says_where_it_looked() {
        let mut l = Layout::parse(HYBRID, PROC_CGROUPS).unwrap();
        l.v1.clear();
        l.unified.as_mut().unwrap().controllers = vec!["hugetlb".into()];
        let msg = l.missing("pids", "--pids-limit").to_string();
        assert!(msg.contains("--pids-limit needs the pids cgroup controller"), "{msg}");
        assert!(msg.contains("/sys/fs/cgroup/unified/cgroup.controllers does not list it (it lists: hugetlb)"), "{msg}");
        assert!(msg.contains("hint: the parent cgroups must delegate it"), "{msg}");
    }
}
