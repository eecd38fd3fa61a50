//! Who the container's process runs as. `USER`/`--user` is `user[:group]`,
//! each part a name or a number. Names are looked up in the *container's*
//! `/etc/passwd` and `/etc/group` — never the host's, and never through NSS
//! (CVE-2019-14271: loading the image's libnss in host context runs its code).
//!
//! The rules, each a past CVE:
//! - a part that looks like a number *is* a number, even if the image has a
//!   user with that name (CVE-2016-3697: user "1234" with uid 0);
//! - numbers must lie in 0..=2147483647; anything else is an error, never a
//!   wrap to 0 or a fallback to a name lookup (CVE-2024-40635, CVE-2026-46680);
//! - the files are opened inside the root, symlinks resolved within it, and
//!   must be regular files of at most 4 MiB (CVE-2024-9676: `/etc/passwd ->
//!   /dev/zero` hung the tool);
//! - supplementary groups are those listing the user in `/etc/group`, plus
//!   `--group-add`, and none when a group is given explicitly (CVE-2023-25173).

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use super::sys;
use crate::error::{Error, Result};

/// The largest id docker and the kernel's user namespaces accept.
pub const MAX_ID: u64 = i32::MAX as u64;
const MAX_FILE: u64 = 4 << 20;

/// The outcome of resolving a user spec.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// From the passwd entry, for `HOME`; `/` when the user has none.
    pub home: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Id {
    Num(u32),
    Name(String),
}

/// Parse one part: numeric syntax means a number (and must be in range).
fn parse_id(s: &str, what: &str, spec: &str) -> Result<Id> {
    if s.is_empty() {
        return Err(Error::invalid(format!("user {spec:?}: the {what} is empty")));
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<u64>() {
            Ok(n) if n <= MAX_ID => Ok(Id::Num(n as u32)),
            _ => Err(Error::invalid(format!("user {spec:?}: {what} {s} is out of range (ids are 0 to {MAX_ID})"))),
        };
    }
    if s.contains(['\n', '/', '\0']) {
        return Err(Error::invalid(format!("user {spec:?}: {what} {s:?} is not a valid name")));
    }
    Ok(Id::Name(s.to_string()))
}

/// Check a user spec's syntax without an image (for early errors on flags).
pub fn validate(spec: &str) -> Result<()> {
    if spec.is_empty() {
        return Ok(());
    }
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    parse_id(u, "user", spec)?;
    if let Some(g) = g {
        parse_id(g, "group", spec)?;
    }
    Ok(())
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_num(s: &str) -> Option<u32> {
    s.parse::<u64>().ok().filter(|n| *n <= MAX_ID).map(|n| n as u32)
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: parse_num(f[2])?,
                gid: parse_num(f[3])?,
                home: f.get(5).filter(|h| !h.is_empty()).unwrap_or(&"/").to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: parse_num(f[2])?,
                members: f.get(3).map(|m| m.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()).unwrap_or_default(),
            })
        })
        .collect()
}

/// Read a small regular file inside `root` (`None` if it does not exist).
pub fn read_in_root(root: BorrowedFd, path: &str) -> Result<Option<String>> {
    let shown = format!("/{}", path.trim_start_matches('/'));
    let f = match sys::openat2(root, Path::new(path), libc::O_PATH, 0, sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(Error::io("open (inside the container)", &shown, e)),
    };
    let st = nix::sys::stat::fstat(f.as_fd()).map_err(|e| Error::io("stat (inside the container)", &shown, e.into()))?;
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFREG {
        let what = match kind {
            libc::S_IFCHR => "a character device",
            libc::S_IFBLK => "a block device",
            libc::S_IFIFO => "a FIFO",
            libc::S_IFSOCK => "a socket",
            libc::S_IFDIR => "a directory",
            _ => "not a regular file",
        };
        return Err(Error::invalid(format!("{shown} in the container is {what}, not a regular file; refusing to read it")));
    }
    if st.st_size as u64 > MAX_FILE {
        return Err(Error::invalid(format!("{shown} in the container is {} bytes; refusing to read more than {MAX_FILE}", st.st_size)));
    }
    // Reopen the very inode we checked, for reading (an O_PATH fd cannot read).
    let proc_path = format!("/proc/self/fd/{}", sys::raw(f.as_fd()));
    let mut file = std::fs::File::open(&proc_path).map_err(|e| Error::io("open (inside the container)", &shown, e))?;
    let mut buf = Vec::new();
    file.by_ref().take(MAX_FILE + 1).read_to_end(&mut buf).map_err(|e| Error::io("read (inside the container)", &shown, e))?;
    if buf.len() as u64 > MAX_FILE {
        return Err(Error::invalid(format!("{shown} in the container grew past {MAX_FILE} bytes while read")));
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Resolve `spec` (`""` means root) and `--group-add` values against the
/// files of the container whose root directory is `root`.
pub fn resolve(root: BorrowedFd, spec: &str, group_add: &[String]) -> Result<ExecUser> {
    let (upart, gpart) = match spec.split_once(':') {
        Some((u, g)) => (if u.is_empty() { "0" } else { u }, Some(g)),
        None => (if spec.is_empty() { "0" } else { spec }, None),
    };
    let uid_id = parse_id(upart, "user", spec)?;
    let gid_id = gpart.map(|g| parse_id(g, "group", spec)).transpose()?;
    let add_ids = group_add.iter().map(|g| parse_id(g, "group", g)).collect::<Result<Vec<_>>>()?;

    let need_passwd = true; // for HOME and the name used in group membership
    let passwd = if need_passwd { read_in_root(root, "etc/passwd")?.map(|t| parse_passwd(&t)).unwrap_or_default() } else { vec![] };
    let needs_groups = gid_id.is_none() || matches!(gid_id, Some(Id::Name(_))) || add_ids.iter().any(|g| matches!(g, Id::Name(_)));
    let groups = if needs_groups { read_in_root(root, "etc/group")?.map(|t| parse_group(&t)).unwrap_or_default() } else { vec![] };

    let (uid, mut gid, name, home) = match &uid_id {
        Id::Num(n) => match passwd.iter().find(|p| p.uid == *n) {
            Some(p) => (*n, p.gid, Some(p.name.clone()), p.home.clone()),
            None => (*n, 0, None, "/".to_string()),
        },
        Id::Name(n) => match passwd.iter().find(|p| &p.name == n) {
            Some(p) => (p.uid, p.gid, Some(p.name.clone()), p.home.clone()),
            None => {
                return Err(Error::invalid(format!("unable to find user {n}: no matching entries in the container's /etc/passwd"))
                    .hint("use a numeric uid (e.g. --user 1000:1000), or add the user to the image"))
            }
        },
    };
    let mut additional = Vec::new();
    match &gid_id {
        Some(Id::Num(g)) => gid = *g,
        Some(Id::Name(g)) => {
            gid = groups
                .iter()
                .find(|e| &e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| Error::invalid(format!("unable to find group {g}: no matching entries in the container's /etc/group")))?;
        }
        None => {
            if let Some(name) = &name {
                additional.extend(groups.iter().filter(|e| e.members.iter().any(|m| m == name)).map(|e| e.gid));
            }
        }
    }
    for g in add_ids {
        let gid = match g {
            Id::Num(n) => n,
            Id::Name(n) => groups
                .iter()
                .find(|e| e.name == n)
                .map(|e| e.gid)
                .ok_or_else(|| Error::invalid(format!("--group-add {n}: no such group in the container's /etc/group")))?,
        };
        additional.push(gid);
    }
    // The primary group is a supplementary group too (containerd's fix for
    // CVE-2023-25173, docker's output): `id` shows groups=GID,…
    additional.push(gid);
    additional.sort_unstable();
    additional.dedup();
    Ok(ExecUser { uid, gid, additional_gids: additional, home })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;

    fn root_with(passwd: &str, group: &str) -> (tempfile::TempDir, OwnedFd) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/passwd"), passwd).unwrap();
        std::fs::write(d.path().join("etc/group"), group).unwrap();
        let fd = std::fs::File::open(d.path()).unwrap().into();
        (d, fd)
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n1234:x:0:0:evil:/:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\ndaemon:x:1:\nwheel:x:10:root\nstaff:x:50:app\napp:x:1000:\n";

    fn ids(u: &ExecUser) -> (u32, u32, Vec<u32>) {
        (u.uid, u.gid, u.additional_gids.clone())
    }

    #[test]
    fn containerd_supplementary_groups_matrix() {
        let (_d, root) = root_with(PASSWD, GROUP);
        let r = |spec: &str, add: &[&str]| ids(&resolve(root.as_fd(), spec, &add.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap());
        assert_eq!(r("", &[]), (0, 0, vec![0, 10]));
        assert_eq!(r("", &["1", "1234"]), (0, 0, vec![0, 1, 10, 1234]));
        assert_eq!(r("1234", &[]), (1234, 0, vec![0]), "numeric wins over the user named 1234 (CVE-2016-3697)");
        assert_eq!(r("1234:1234", &[]), (1234, 1234, vec![1234]));
        assert_eq!(r("1234", &["1234"]), (1234, 0, vec![0, 1234]));
        assert_eq!(r("daemon", &[]), (1, 1, vec![1]));
        assert_eq!(r("daemon", &["1234"]), (1, 1, vec![1, 1234]));
        assert_eq!(r("app", &[]), (1000, 1000, vec![50, 1000]));
        assert_eq!(r("app:daemon", &[]), (1000, 1, vec![1]));
        assert_eq!(resolve(root.as_fd(), "app", &[]).unwrap().home, "/home/app");
    }

    #[test]
    fn out_of_range_ids_are_errors_never_root() {
        let (_d, root) = root_with(PASSWD, GROUP);
        for bad in ["2147483648", "4294967296:0", "99999999999999999999", "-1", "0:-1", "1:4294967296", "+2147483648"] {
            let e = resolve(root.as_fd(), bad, &[]).unwrap_err().to_string();
            assert!(e.contains("out of range"), "{bad}: {e}");
            assert!(validate(bad).is_err());
        }
        assert!(resolve(root.as_fd(), "nobody", &[]).unwrap_err().to_string().contains("unable to find user nobody"));
    }

    #[test]
    fn hostile_passwd_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", d.path().join("etc/passwd")).unwrap();
        let root: OwnedFd = std::fs::File::open(d.path()).unwrap().into();
        // Resolved inside the root: /dev/zero does not exist there.
        assert_eq!(read_in_root(root.as_fd(), "etc/passwd").unwrap(), None);
        // A link escaping with .. stays inside too.
        std::fs::remove_file(d.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("../../../../../etc/shadow", d.path().join("etc/passwd")).unwrap();
        assert_eq!(read_in_root(root.as_fd(), "etc/passwd").unwrap(), None);
        // A directory, a FIFO: refused quickly.
        std::fs::remove_file(d.path().join("etc/passwd")).unwrap();
        nix::unistd::mkfifo(&d.path().join("etc/passwd"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let t = std::time::Instant::now();
        let e = read_in_root(root.as_fd(), "etc/passwd").unwrap_err().to_string();
        assert!(e.contains("FIFO") && t.elapsed().as_secs() < 1, "{e}");
        // Too big.
        std::fs::remove_file(d.path().join("etc/passwd")).unwrap();
        let f = std::fs::File::create(d.path().join("etc/passwd")).unwrap();
        f.set_len(2 << 30).unwrap();
        assert!(read_in_root(root.as_fd(), "etc/passwd").unwrap_err().to_string().contains("refusing"));
        // With no passwd at all, numeric users still work and names fail clearly.
        std::fs::remove_file(d.path().join("etc/passwd")).unwrap();
        assert_eq!(resolve(root.as_fd(), "42:7", &[]).unwrap().uid, 42);
        assert!(resolve(root.as_fd(), "app", &[]).is_err());
    }
}
