//! COPY (and the local-file part of ADD): files from the context, another
//! stage or an image into the build state, with docker's rules:
//!
//! - a source directory's *contents* are copied, not the directory itself;
//! - one file to a DEST without a trailing `/` (and not an existing
//!   directory in the image) is written *as* DEST; otherwise into DEST/;
//! - several sources (or a wildcard) need DEST to be a directory: DEST/;
//! - a relative DEST is relative to WORKDIR; missing directories are made
//!   (0755), owned by `--chown` or root;
//! - everything copied is owned by `--chown` (default 0:0), keeps its mode
//!   unless `--chmod` sets one, and keeps its modification time;
//! - symlinks inside copied directories are copied as symlinks; a source
//!   path that *is* a symlink is followed (inside the context).
//!
//! Files are written through directory fds opened inside the image's root
//! (see [`super::rootfs`]), so a symlink in the image can redirect a copy
//! only where the container itself would see it, never onto the host.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::rootfs::{mkdir_all_in_root, open_in_root, stat_in_root};
use crate::error::{Error, IoContext, Result};

/// The kind of a source entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// One entry to copy, relative to its tree's root.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    pub kind: Kind,
    pub mode: u32,
    /// The content's digest (context files; `None` for other trees).
    pub sha256: Option<crate::digest::Digest>,
}

/// One source argument: the resolved path of what it names, the name it
/// was given by (for "into DEST/"), and the entries at and under it.
#[derive(Debug, Clone)]
pub struct Source {
    pub top: PathBuf,
    pub name: String,
    pub entries: Vec<Entry>,
}

/// A file whose bytes are in the Dockerfile (`COPY <<EOF /x`).
#[derive(Debug, Clone)]
pub struct Inline {
    pub name: String,
    pub data: Vec<u8>,
}

/// Options of one COPY.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Owner of everything copied and of directories made.
    pub owner: (u32, u32),
    /// `--chmod`.
    pub mode: Option<u32>,
    /// Modification time of inline files.
    pub inline_mtime: i64,
}

/// What one COPY did (for --explain).
#[derive(Debug, Default, Clone, Copy)]
pub struct Copied {
    pub files: u64,
    pub dirs: u64,
    pub links: u64,
    pub bytes: u64,
}

/// `--chmod=0755`: octal only (as docker's classic builder).
pub fn parse_chmod(s: &str) -> Result<u32> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| Error::invalid(format!("--chmod={s}: expected an octal mode such as 0755")))
}

/// The destination path in the image for a COPY's DEST: relative to WORKDIR.
pub fn dest_path(dest: &str, workdir: Option<&str>) -> String {
    if dest.starts_with('/') {
        return dest.to_string();
    }
    let wd = workdir.unwrap_or("/");
    let mut p = crate::dockerfile::golang::join_path(&["/", wd, dest]);
    if (dest.ends_with('/') || dest == "." || dest.ends_with("/.")) && !p.ends_with('/') {
        p.push('/');
    }
    p
}

/// Copy `sources` (from `src_root`) and `inline` files to `dest` in the
/// image whose root is `root`.
#[allow(clippy::too_many_arguments)]
pub fn copy(root: &OwnedFd, src_root: &Path, sources: &[Source], inline: &[Inline], dest: &str, many: bool, opts: &Options, what: &str) -> Result<Copied> {
    let root = root.as_fd();
    let mut stats = Copied::default();
    let dest_path = PathBuf::from(dest);
    let into_dir = into_dir(root, sources.len() + inline.len(), dest, many, what)?;
    for s in sources {
        check_names(s, what)?;
        let top = s.entries.iter().find(|e| e.path == s.top);
        match top.map(|e| e.kind) {
            Some(Kind::Dir) => {
                let mut w = Writer::new(root, src_root, opts, &mut stats);
                let target = dest_path.clone();
                let dir = mkdir_all_in_root(root, &target, 0o755, opts.owner)?;
                drop(dir);
                for e in s.entries.iter().filter(|e| e.path != s.top) {
                    let rest = e.path.strip_prefix(&s.top).expect("entries are under their top");
                    w.put(e, &target.join(rest))?;
                }
                w.finish()?;
            }
            Some(_) => {
                let e = top.expect("matched");
                let target = if into_dir { dest_path.join(&s.name) } else { dest_path.clone() };
                let mut w = Writer::new(root, src_root, opts, &mut stats);
                w.put(e, &target)?;
                w.finish()?;
            }
            None => {}
        }
    }
    for f in inline {
        if f.name.starts_with(".wh.") {
            return Err(bad_name(what, &f.name));
        }
        let target = if into_dir { dest_path.join(&f.name) } else { dest_path.clone() };
        let parent = target.parent().unwrap_or(Path::new("/"));
        let dir = mkdir_all_in_root(root, parent, 0o755, opts.owner)?;
        let name = target.file_name().ok_or_else(|| Error::invalid(format!("{what}: {dest} is not a file name")))?;
        let fd = create_file(&dir, name.as_bytes(), &target)?;
        let mut file = File::from(fd);
        io::Write::write_all(&mut file, &f.data).ctx("write", &target)?;
        finish_inode(file.as_fd(), opts.owner, opts.mode.unwrap_or(0o644), opts.inline_mtime, &target)?;
        stats.files += 1;
        stats.bytes += f.data.len() as u64;
    }
    Ok(stats)
}

/// Whether sources go *into* DEST (DEST/NAME) rather than *as* DEST: DEST
/// ends with `/` or is a directory in the image, or there are several
/// sources (then DEST must be a directory).
pub fn into_dir(root: std::os::fd::BorrowedFd, count: usize, dest: &str, many: bool, what: &str) -> Result<bool> {
    let dest_dir_given = dest.ends_with('/');
    let dest_is_dir = stat_in_root(root, Path::new(dest))?.is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
    if (count > 1 || many) && !dest_dir_given && !dest_is_dir {
        return Err(Error::invalid(format!(
            "{what}: with more than one source file, the destination must be a directory and end with a /: {dest}/"
        )));
    }
    Ok(dest_dir_given || dest_is_dir || count > 1 || many)
}

/// Where each entry of `sources` lands (what [`copy`] does, as a list).
/// A source directory's own entry maps to DEST, which COPY makes like the
/// directories above it rather than from the source's metadata.
pub fn targets<'s>(sources: &'s [Source], dest: &str, into_dir: bool) -> Vec<(&'s Entry, PathBuf, bool)> {
    let dest_path = PathBuf::from(dest);
    let mut out = Vec::new();
    for s in sources {
        let Some(top) = s.entries.iter().find(|e| e.path == s.top) else { continue };
        if top.kind == Kind::Dir {
            out.push((top, dest_path.clone(), false));
            for e in s.entries.iter().filter(|e| e.path != s.top) {
                out.push((e, dest_path.join(e.path.strip_prefix(&s.top).expect("entries are under their top")), true));
            }
        } else {
            out.push((top, if into_dir { dest_path.join(&s.name) } else { dest_path.clone() }, true));
        }
    }
    out
}

fn bad_name(what: &str, name: &str) -> Error {
    Error::invalid(format!(
        "{what}: cannot copy {name:?}: names starting with .wh. mark deletions in image layers"
    ))
}

fn check_names(s: &Source, what: &str) -> Result<()> {
    for e in &s.entries {
        if let Some(n) = e.path.file_name() {
            if n.as_bytes().starts_with(b".wh.") {
                return Err(bad_name(what, &e.path.display().to_string()));
            }
        }
    }
    Ok(())
}

/// Writes entries into the image, keeping the last parent directory open.
struct Writer<'a> {
    root: std::os::fd::BorrowedFd<'a>,
    src_root: &'a Path,
    opts: &'a Options,
    stats: &'a mut Copied,
    parent: Option<(PathBuf, OwnedFd)>,
    /// Directories whose times are set at the end (their children change them).
    dirs: Vec<(PathBuf, i64, i64)>,
}

impl<'a> Writer<'a> {
    fn new(root: std::os::fd::BorrowedFd<'a>, src_root: &'a Path, opts: &'a Options, stats: &'a mut Copied) -> Writer<'a> {
        Writer { root, src_root, opts, stats, parent: None, dirs: Vec::new() }
    }

    fn parent_fd(&mut self, dir: &Path) -> Result<&OwnedFd> {
        if self.parent.as_ref().map(|(p, _)| p.as_path()) != Some(dir) {
            let fd = mkdir_all_in_root(self.root, dir, 0o755, self.opts.owner)?;
            self.parent = Some((dir.to_path_buf(), fd));
        }
        Ok(&self.parent.as_ref().expect("just set").1)
    }

    fn put(&mut self, e: &Entry, target: &Path) -> Result<()> {
        let src = self.src_root.join(&e.path);
        let md = std::fs::symlink_metadata(&src).ctx("stat", &src)?;
        let parent = target.parent().unwrap_or(Path::new("/")).to_path_buf();
        let Some(name) = target.file_name().map(|n| n.as_bytes().to_vec()) else {
            // The root itself: only its contents are copied.
            return Ok(());
        };
        let owner = self.opts.owner;
        let mode = self.opts.mode.unwrap_or(e.mode);
        let dir = self.parent_fd(&parent)?;
        let dir = dir.try_clone().ctx("dup", &parent)?;
        match e.kind {
            Kind::Dir => {
                match nix::sys::stat::fstatat(&dir, super::rootfs::os(&name), AtFlags::AT_SYMLINK_NOFOLLOW) {
                    Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {}
                    Ok(_) => {
                        remove_at(&dir, &name, target)?;
                        mkdir_at(&dir, &name, target)?;
                    }
                    Err(_) => mkdir_at(&dir, &name, target)?,
                }
                let fd = nix::fcntl::openat(&dir, super::rootfs::os(&name), OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
                    .ctx("open", target)?;
                nix::unistd::fchown(&fd, Some(owner.0.into()), Some(owner.1.into())).ctx("chown", target)?;
                nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode)).ctx("chmod", target)?;
                self.dirs.push((target.to_path_buf(), md.mtime(), md.mtime_nsec()));
                self.stats.dirs += 1;
            }
            Kind::File => {
                let mut input = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
                    .open(&src)
                    .ctx("open", &src)?;
                if !input.metadata().ctx("stat", &src)?.is_file() {
                    return Err(Error::Conflict(format!("{} changed while being copied", src.display())));
                }
                let fd = create_file(&dir, &name, target)?;
                let mut out = File::from(fd);
                let n = io::copy(&mut input, &mut out).ctx("copy into the image", target)?;
                finish_inode(out.as_fd(), owner, mode, md.mtime(), target)?;
                let ts = TimeSpec::new(md.mtime(), md.mtime_nsec());
                nix::sys::stat::futimens(&out, &ts, &ts).ctx("set times of", target)?;
                self.stats.files += 1;
                self.stats.bytes += n;
            }
            Kind::Symlink => {
                let link = std::fs::read_link(&src).ctx("read link", &src)?;
                if nix::sys::stat::fstatat(&dir, super::rootfs::os(&name), AtFlags::AT_SYMLINK_NOFOLLOW).is_ok() {
                    remove_at(&dir, &name, target)?;
                }
                nix::unistd::symlinkat(link.as_path(), &dir, super::rootfs::os(&name)).ctx("create symlink", target)?;
                nix::unistd::fchownat(&dir, super::rootfs::os(&name), Some(owner.0.into()), Some(owner.1.into()), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .ctx("chown", target)?;
                let ts = TimeSpec::new(md.mtime(), md.mtime_nsec());
                nix::sys::stat::utimensat(&dir, super::rootfs::os(&name), &ts, &ts, UtimensatFlags::NoFollowSymlink).ctx("set times of", target)?;
                self.stats.links += 1;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.parent = None;
        for (path, secs, nsecs) in self.dirs.iter().rev() {
            let fd = open_in_root(self.root, path, libc::O_RDONLY | libc::O_DIRECTORY).map_err(|e| Error::io("open", path, e))?;
            let ts = TimeSpec::new(*secs, *nsecs);
            nix::sys::stat::futimens(&fd, &ts, &ts).ctx("set times of", path)?;
        }
        Ok(())
    }
}

fn mkdir_at(dir: &OwnedFd, name: &[u8], target: &Path) -> Result<()> {
    nix::sys::stat::mkdirat(dir, super::rootfs::os(name), Mode::from_bits_truncate(0o755)).ctx("create directory", target)
}

/// Create a new regular file, replacing whatever non-directory is there
/// (never following a symlink). A directory in the way is an error.
fn create_file(dir: &OwnedFd, name: &[u8], target: &Path) -> Result<OwnedFd> {
    if let Ok(st) = nix::sys::stat::fstatat(dir, super::rootfs::os(name), AtFlags::AT_SYMLINK_NOFOLLOW) {
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            return Err(Error::invalid(format!("cannot copy a file to {}: a directory is there", target.display())));
        }
        remove_at(dir, name, target)?;
    }
    nix::fcntl::openat(
        dir,
        super::rootfs::os(name),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .ctx("create", target)
}

fn remove_at(dir: &OwnedFd, name: &[u8], target: &Path) -> Result<()> {
    match nix::unistd::unlinkat(dir, super::rootfs::os(name), nix::unistd::UnlinkatFlags::NoRemoveDir) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EISDIR) => {
            // A directory where a non-directory goes: remove the tree through the resolved dir.
            let p = super::rootfs::fd_path(dir.as_fd()).join(super::rootfs::os(name));
            std::fs::remove_dir_all(&p).ctx("remove", target)
        }
        Err(e) => Err(Error::io("remove", target, e.into())),
    }
}

/// Owner, then mode (chown clears setuid bits).
fn finish_inode(fd: std::os::fd::BorrowedFd, owner: (u32, u32), mode: u32, mtime: i64, target: &Path) -> Result<()> {
    nix::unistd::fchown(fd, Some(owner.0.into()), Some(owner.1.into())).ctx("chown", target)?;
    nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(mode)).ctx("chmod", target)?;
    let ts = TimeSpec::new(mtime, 0);
    nix::sys::stat::futimens(fd, &ts, &ts).ctx("set times of", target)
}

/// What a COPY's result depends on in the image it copies into: each
/// directory on the way to DEST (type, mode, owner, link target), and
/// what is already at each path it writes. Two images that agree on these
/// get the same layer from the same files. Also says whether any path it
/// writes already exists.
pub fn dest_fingerprint(root: std::os::fd::BorrowedFd, sources: &[Source], dest: &str, into_dir: bool) -> Result<(String, bool)> {
    let describe = |p: &Path| -> Result<Option<String>> {
        match open_in_root(root, p, libc::O_PATH | libc::O_NOFOLLOW) {
            Ok(fd) => {
                let st = nix::sys::stat::fstat(&fd).ctx("stat", p)?;
                let link = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                    let l = nix::fcntl::readlinkat(&fd, "").unwrap_or_default();
                    format!(" -> {}", l.to_string_lossy())
                } else {
                    String::new()
                };
                Ok(Some(format!("{}:{:o}:{}:{}{link}", p.display(), st.st_mode, st.st_uid, st.st_gid)))
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => Ok(None),
            Err(e) => Err(Error::io("stat in the image", p, e)),
        }
    };
    let mut out = Vec::new();
    for a in ancestors(dest) {
        out.push(describe(&a)?.unwrap_or_else(|| format!("{}:absent", a.display())));
    }
    let mut existing = false;
    for (_, target, written) in targets(sources, dest, into_dir) {
        if written {
            if let Some(d) = describe(&target)? {
                existing = true;
                out.push(d);
            }
        }
    }
    Ok((out.join("\n"), existing))
}

/// `/`, then each directory down to and including `dest`.
pub fn ancestors(dest: &str) -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("/")];
    let mut prefix = PathBuf::from("/");
    for c in Path::new(dest).components().skip(1) {
        prefix.push(c);
        out.push(prefix.clone());
    }
    out
}

/// The entries of a tree that is not the context (another stage, an
/// image): everything at and under `top`, sorted.
pub fn list_tree(root: &Path, top: &Path) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    fn walk(root: &Path, rel: &Path, out: &mut Vec<Entry>) -> Result<()> {
        let full = root.join(rel);
        let m = std::fs::symlink_metadata(&full).ctx("stat", &full)?;
        let ft = m.file_type();
        let kind = if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File
        } else {
            return Ok(());
        };
        out.push(Entry { path: rel.to_path_buf(), kind, mode: m.mode() & 0o7777, sha256: None });
        if kind == Kind::Dir {
            let mut names: Vec<_> = std::fs::read_dir(&full).ctx("read directory", &full)?.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
            names.sort();
            for n in names {
                walk(root, &rel.join(n), out)?;
            }
        }
        Ok(())
    }
    walk(root, top, &mut out)?;
    Ok(out)
}

/// Entries of a checksummed context set.
pub fn from_sums(sums: &[crate::build::checksum::EntrySum]) -> Vec<Entry> {
    use crate::build::checksum::EntryKind;
    sums.iter()
        .map(|s| Entry {
            path: s.path.clone(),
            kind: match s.kind {
                EntryKind::File { .. } => Kind::File,
                EntryKind::Dir => Kind::Dir,
                EntryKind::Symlink { .. } => Kind::Symlink,
            },
            mode: s.mode,
            sha256: match &s.kind {
                EntryKind::File { sha256, .. } => Some(sha256.clone()),
                _ => None,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dest_and_chmod() {
        assert_eq!(dest_path("app/", Some("/srv")), "/srv/app/");
        assert_eq!(dest_path(".", Some("/srv")), "/srv/");
        assert_eq!(dest_path("x", None), "/x");
        assert_eq!(dest_path("/abs", Some("/srv")), "/abs");
        assert_eq!(parse_chmod("755").unwrap(), 0o755);
        assert!(parse_chmod("u+x").is_err());
        assert!(parse_chmod("99").is_err());
    }
}
