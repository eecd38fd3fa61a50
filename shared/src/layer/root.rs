//! A directory used as the root of every path resolution: the equivalent of
//! a `chroot` for one unpack, without changing the process's root.
//!
//! Every directory is reached from a file descriptor of the root, never
//! from a host path: `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` when
//! the directory exists (one system call), and otherwise a walk one
//! component at a time with `O_NOFOLLOW` opens, in which symlinks are read
//! and followed by us (absolute targets restart at the root, `..` at the root
//! stays there) and missing directories are created. Either way a symlink
//! planted by an earlier entry cannot lead outside: the kernel, or our own
//! stack of directory fds, will not let `..` climb above the root.
//!
//! The last component of an entry is never resolved here: callers pass the
//! parent's fd and the base name to `*at` calls that do not follow it.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::error::{IoContext, Result};

/// How many symlinks one resolution may follow (the kernel's limit too).
const MAX_SYMLINKS: u32 = 40;

pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// `OsStr` view of raw name bytes (for the `*at` calls).
pub fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

impl Root {
    pub fn open(path: &Path) -> Result<Root> {
        let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .ctx("open directory", path)?;
        Ok(Root { fd, path: path.to_path_buf() })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open the directory `rel` (normalised components joined by `/`, empty
    /// for the root) inside the root, following symlinks as a chrooted
    /// process would. Missing directories are created (mode 0755) when
    /// `create`; otherwise a missing one gives `Ok(None)`. The fd is `O_PATH`:
    /// good for `*at` calls, reopen it to read or change the directory.
    pub fn dir(&self, rel: &[u8], create: bool) -> io::Result<Option<OwnedFd>> {
        if rel.is_empty() {
            return Ok(Some(nix::unistd::dup(&self.fd)?));
        }
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        // EAGAIN: a rename somewhere on the system raced a `..` lookup; the
        // kernel asks us to retry. After a few tries the walk below decides.
        for _ in 0..4 {
            match openat2(&self.fd, os(rel), how) {
                Ok(fd) => return Ok(Some(fd)),
                Err(Errno::EAGAIN) => continue,
                Err(Errno::ENOENT) => break,
                Err(e) => return Err(e.into()),
            }
        }
        self.walk(rel, create)
    }

    /// The slow path of [`Root::dir`]: one component at a time, creating
    /// what is missing and following dangling symlinks to create their
    /// targets (a lower layer's `var/run -> /run` makes `run/...` here).
    /// A missing directory followed by `..` (in a symlink's target, say
    /// `up/../../etc`) is skipped, as containerd's lexical resolution does,
    /// rather than created or reported missing: it still ends inside the root.
    fn walk(&self, rel: &[u8], create: bool) -> io::Result<Option<OwnedFd>> {
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut todo: VecDeque<Vec<u8>> = rel.split(|&b| b == b'/').map(<[u8]>::to_vec).collect();
        let mut links = 0;
        let mut made: Option<Vec<u8>> = None;
        while let Some(c) = todo.pop_front() {
            match &c[..] {
                b"" | b"." => continue,
                b".." => {
                    stack.pop();
                    continue;
                }
                _ => {}
            }
            let cur = stack.last().map(|f| f.as_fd()).unwrap_or(self.fd.as_fd());
            match openat(cur, os(&c), OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty()) {
                Ok(fd) => {
                    made = None;
                    let st = fstat(&fd)?;
                    match file_type(&st) {
                        SFlag::S_IFDIR => stack.push(fd),
                        SFlag::S_IFLNK => {
                            links += 1;
                            if links > MAX_SYMLINKS {
                                return Err(Errno::ELOOP.into());
                            }
                            // An empty path reads the link an O_PATH fd refers to.
                            let target = nix::fcntl::readlinkat(&fd, "")?;
                            let target = target.as_bytes();
                            if target.starts_with(b"/") {
                                stack.clear();
                            }
                            for part in target.split(|&b| b == b'/').rev() {
                                todo.push_front(part.to_vec());
                            }
                        }
                        _ => return Err(Errno::ENOTDIR.into()),
                    }
                }
                Err(Errno::ENOENT) if next_is_parent(&todo) => {
                    // `missing/..`: nothing to enter and nothing to leave.
                    while todo.front().is_some_and(|c| c.is_empty() || c == b".") {
                        todo.pop_front();
                    }
                    todo.pop_front();
                }
                Err(Errno::ENOENT) if create => {
                    if made.as_deref() == Some(&c[..]) {
                        // We just made it and it is gone again: someone else is
                        // changing this tree. Stop rather than loop.
                        return Err(Errno::ENOENT.into());
                    }
                    match mkdirat(cur, os(&c), Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    made = Some(c.clone());
                    todo.push_front(c);
                }
                Err(Errno::ENOENT) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        match stack.pop() {
            Some(fd) => Ok(Some(fd)),
            None => Ok(Some(nix::unistd::dup(&self.fd)?)),
        }
    }
}

/// Whether the next real component (skipping `.` and empty ones) is `..`.
fn next_is_parent(todo: &VecDeque<Vec<u8>>) -> bool {
    todo.iter().find(|c| !c.is_empty() && c.as_slice() != b".").is_some_and(|c| c == b"..")
}

pub fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// `lstat` of `name` in `dir`; `None` when it does not exist.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<FileStat>> {
    match fstatat(dir, os(name), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Remove `name` in `dir` whatever it is (a directory with everything in
/// it), never following a symlink. Returns whether something was there.
pub fn remove_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<bool> {
    let Some(st) = lstat_at(dir, name)? else { return Ok(false) };
    if file_type(&st) == SFlag::S_IFDIR {
        empty_dir_at(dir, name)?;
        unlinkat(dir, os(name), UnlinkatFlags::RemoveDir)?;
    } else {
        unlinkat(dir, os(name), UnlinkatFlags::NoRemoveDir)?;
    }
    Ok(true)
}

/// Remove everything inside the directory `name` of `dir` (not following symlinks).
pub fn empty_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let fd = openat(
        dir,
        os(name),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    for child in children(&fd)? {
        remove_at(fd.as_fd(), &child)?;
    }
    Ok(())
}

/// The names in an open directory, without `.` and `..`.
pub fn children(dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    // Dir takes ownership and closes its fd; give it a duplicate.
    let d = nix::dir::Dir::from_fd(nix::unistd::dup(dir)?)?;
    let mut names = Vec::new();
    for e in d {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    Ok(names)
}

/// Reopen an `O_PATH` directory fd so that it can be read or changed (fchmod, xattrs).
pub fn reopen_dir(dir: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    Ok(openat(dir, ".", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())?)
}

/// `/proc/self/fd/N/name`: a path to `name` in an open directory, for the
/// few calls that have no `*at` form (`lsetxattr`). The directory part is
/// our own fd, so nothing in it can be redirected; the last component is
/// not followed by the `l*` calls.
pub fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    p.push(os(name));
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt};

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root_path = tmp.path().join("root");
        std::fs::create_dir_all(root_path.join("etc")).unwrap();
        symlink("/etc", root_path.join("abs")).unwrap();
        symlink("../../../../etc", root_path.join("rel")).unwrap();
        symlink("/dne/sub", root_path.join("dangling")).unwrap();
        let root = Root::open(&root_path).unwrap();
        let etc = std::fs::metadata(root_path.join("etc")).unwrap();
        for via in ["abs", "rel"] {
            let fd = root.dir(via.as_bytes(), false).unwrap().unwrap();
            let st = fstat(&fd).unwrap();
            assert_eq!(st.st_ino, std::os::unix::fs::MetadataExt::ino(&etc), "{via}");
        }
        // Dangling: absent without create; created inside the root with it.
        assert!(root.dir(b"dangling/x", false).unwrap().is_none());
        root.dir(b"dangling/x", true).unwrap().unwrap();
        assert!(root_path.join("dne/sub/x").is_dir());
        assert!(!Path::new("/dne").exists());
    }

    #[test]
    fn walk_agrees_with_openat2() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        symlink("..", r.join("a/up")).unwrap();
        symlink("/a/b", r.join("ab")).unwrap();
        symlink("../../..", r.join("top")).unwrap();
        let root = Root::open(r).unwrap();
        for p in ["a/up/a/up/a/b", "top/top/a/up/a/b", "ab", "a/up/ab", "a/b/../../../a"] {
            let fast = root.dir(p.as_bytes(), false).unwrap().unwrap();
            let slow = root.walk(p.as_bytes(), false).unwrap().unwrap();
            assert_eq!(fstat(&fast).unwrap().st_ino, fstat(&slow).unwrap().st_ino, "{p}");
        }
        // A missing component cancelled by `..` (containerd's HardlinkRelativeUpAndOut).
        symlink("gone/../../a/b", r.join("via-missing")).unwrap();
        let fast = root.dir(b"via-missing", false).unwrap().unwrap();
        assert_eq!(fstat(&fast).unwrap().st_ino, std::fs::metadata(r.join("a/b")).unwrap().ino());
        assert!(!r.join("gone").exists());
        for missing in ["a/up/up/x", "top/nothing"] {
            assert!(root.dir(missing.as_bytes(), false).unwrap().is_none(), "{missing}");
            assert!(root.walk(missing.as_bytes(), false).unwrap().is_none(), "{missing}");
        }
    }

    #[test]
    fn a_file_in_the_way_is_not_a_directory() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("f"), "x").unwrap();
        let root = Root::open(tmp.path()).unwrap();
        let err = root.dir(b"f/sub", true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR));
    }

    #[test]
    fn remove_never_follows_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        let r = tmp.path().join("root");
        std::fs::create_dir_all(r.join("d/e")).unwrap();
        symlink(&outside, r.join("d/e/link")).unwrap();
        let root = Root::open(&r).unwrap();
        assert!(remove_at(root.fd(), b"d").unwrap());
        assert!(!r.join("d").exists());
        assert!(outside.join("keep").exists());
    }
}
