//! Making a layer from a changed filesystem.
//!
//! - [`diff`]: an overlayfs upper directory (what a `RUN` step or a
//!   container changed) becomes a layer. overlayfs records a deletion as a
//!   char device 0:0 and a replaced directory with `trusted.overlay.opaque=y`;
//!   the layer says `.wh.NAME` and `.wh..wh..opq` instead.
//! - [`tar_dir`]: a plain directory tree becomes a layer (`COPY` stages
//!   its files in one).
//!
//! The tar is deterministic: depth first, the names in each directory
//! sorted (bytes, whiteouts under their `.wh.` name), a directory before
//! what it holds, an opaque marker right after its directory (so an
//! extractor applies it before the layer's own entries), no user or
//! group names, no access or change times, xattrs as sorted PAX
//! `SCHILY.xattr.*` records. With a `SOURCE_DATE_EPOCH` clamp, the same
//! change always gives the same digest.
//!
//! The tree is read through directory fds with `O_NOFOLLOW`, so a running
//! container that swaps a file for a symlink while we read cannot make us
//! archive a host file (CVE-2023-0778 class): the archive gets the symlink.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};

use super::root::{self, file_type, lstat_at, os};
use super::whiteout::{self, OVERLAY_OPAQUE_XATTR};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::{Layer, LAYER_TAR};
use crate::store::Store;

/// How to write the tar.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// `SOURCE_DATE_EPOCH`: modification times later than this are set to it.
    pub clamp_mtime: Option<i64>,
}

impl DiffOptions {
    /// Options from the environment: `SOURCE_DATE_EPOCH` if set.
    pub fn from_env() -> Result<DiffOptions> {
        match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) if !v.trim().is_empty() => {
                let epoch = v.trim().parse::<i64>().map_err(|_| {
                    Error::invalid(format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds since 1970"))
                })?;
                Ok(DiffOptions { clamp_mtime: Some(epoch) })
            }
            _ => Ok(DiffOptions::default()),
        }
    }
}

/// Write the layer for an overlayfs upper directory into the store. The
/// caller holds the `Gc` lock shared until an image names the blob.
pub fn diff(store: &Store, upper: &Path, opts: &DiffOptions) -> Result<Layer> {
    to_blob(store, upper, opts, true)
}

/// Write the layer for a plain directory tree into the store (no whiteouts).
pub fn tar_dir(store: &Store, dir: &Path, opts: &DiffOptions) -> Result<Layer> {
    to_blob(store, dir, opts, false)
}

fn to_blob(store: &Store, dir: &Path, opts: &DiffOptions, overlay: bool) -> Result<Layer> {
    let what = if overlay { "diff" } else { "tar" };
    crate::explain!(
        format!("make a layer from {} ({what}), entries sorted, mtimes clamped to {:?}", dir.display(), opts.clamp_mtime);
        format!("tar --sort=name --numeric-owner --xattrs -C {} -cf - . | sha256sum", dir.display())
    );
    let blob = write_tree(dir, store.blob_writer()?, opts, overlay)?;
    let (digest, size): (Digest, u64) = blob.commit(None, None)?;
    Ok(Layer { blob: digest.clone(), size, media_type: LAYER_TAR.to_string(), diff_id: digest })
}

/// [`diff`] into any writer (returned when the tar is complete).
pub fn write_diff<W: Write>(upper: &Path, out: W, opts: &DiffOptions) -> Result<W> {
    write_tree(upper, out, opts, true)
}

/// [`tar_dir`] into any writer.
pub fn write_tar_dir<W: Write>(dir: &Path, out: W, opts: &DiffOptions) -> Result<W> {
    write_tree(dir, out, opts, false)
}

fn write_tree<W: Write>(dir: &Path, out: W, opts: &DiffOptions, overlay: bool) -> Result<W> {
    let fd = nix::fcntl::open(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .ctx("open directory", dir)?;
    let mut w = TreeWriter { top: dir, builder: tar::Builder::new(out), opts, overlay, links: HashMap::new() };
    w.walk(&fd, b"")?;
    w.builder.into_inner().ctx("write layer tar for", dir)
}

struct TreeWriter<'a, W: Write> {
    top: &'a Path,
    builder: tar::Builder<W>,
    opts: &'a DiffOptions,
    overlay: bool,
    /// (dev, ino) → the first name archived for an inode with several links.
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl<W: Write> TreeWriter<'_, W> {
    fn path(&self, rel: &[u8]) -> std::path::PathBuf {
        self.top.join(os(rel))
    }

    fn write_err(&self, rel: &[u8], e: io::Error) -> Error {
        Error::io("write layer entry for", self.path(rel), e)
    }

    fn walk(&mut self, dir: &OwnedFd, prefix: &[u8]) -> Result<()> {
        let here = if prefix.is_empty() { self.top.to_path_buf() } else { self.path(prefix) };
        // Sorted by the name each entry gets in the tar (`.wh.NAME` for a whiteout).
        let mut items = Vec::new();
        for name in root::children(dir).ctx("read directory", &here)? {
            let Some(st) = lstat_at(dir.as_fd(), &name).ctx("stat", self.path(&[prefix, &name].concat()))? else {
                continue;
            };
            let key = if self.overlay && whiteout::is_overlay_whiteout(&st) { whiteout::name_for(&name) } else { name.clone() };
            items.push((key, name, st));
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, name, st) in items {
            let rel = [prefix, &name].concat();
            match file_type(&st) {
                SFlag::S_IFDIR => {
                    let sub = openat(
                        dir,
                        os(&name),
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )
                    .ctx("open directory", self.path(&rel))?;
                    let xattrs = self.xattrs(sub.as_fd(), b".", &rel)?;
                    let mut h = self.header(&st, tar::EntryType::Directory);
                    self.pax(&xattrs.kept, &rel)?;
                    let dirname = [&rel[..], b"/"].concat();
                    self.builder
                        .append_data(&mut h, Path::new(os(&dirname)), io::empty())
                        .map_err(|e| self.write_err(&rel, e))?;
                    if self.overlay && xattrs.opaque {
                        self.marker(&[&dirname[..], whiteout::OPAQUE].concat())?;
                    }
                    self.walk(&sub, &dirname)?;
                }
                SFlag::S_IFCHR if self.overlay && whiteout::is_overlay_whiteout(&st) => {
                    self.marker(&[prefix, &whiteout::name_for(&name)].concat())?;
                }
                SFlag::S_IFSOCK => {} // sockets cannot be archived (nor restored)
                kind => {
                    if st.st_nlink > 1 {
                        if let Some(first) = self.links.get(&(st.st_dev, st.st_ino)).cloned() {
                            let mut h = self.header(&st, tar::EntryType::Link);
                            self.builder
                                .append_link(&mut h, Path::new(os(&rel)), Path::new(os(&first)))
                                .map_err(|e| self.write_err(&rel, e))?;
                            continue;
                        }
                        self.links.insert((st.st_dev, st.st_ino), rel.clone());
                    }
                    let xattrs = self.xattrs(dir.as_fd(), &name, &rel)?;
                    self.pax(&xattrs.kept, &rel)?;
                    match kind {
                        SFlag::S_IFREG => self.file(dir, &name, &rel, &st)?,
                        SFlag::S_IFLNK => self.symlink(dir, &name, &rel, &st)?,
                        _ => self.node(&rel, &st, kind)?,
                    }
                }
            }
        }
        Ok(())
    }

    fn header(&self, st: &FileStat, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(u64::from(st.st_uid));
        h.set_gid(u64::from(st.st_gid));
        h.set_size(0);
        let mtime = match self.opts.clamp_mtime {
            Some(epoch) => st.st_mtime.min(epoch),
            None => st.st_mtime,
        };
        h.set_mtime(mtime.max(0) as u64);
        h
    }

    /// A whiteout or opaque marker: an empty file, root-owned, mode 0, time 0.
    fn marker(&mut self, rel: &[u8]) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h.set_mtime(0);
        self.builder.append_data(&mut h, Path::new(os(rel)), io::empty()).map_err(|e| self.write_err(rel, e))
    }

    fn pax(&mut self, xattrs: &[(String, Vec<u8>)], rel: &[u8]) -> Result<()> {
        if xattrs.is_empty() {
            return Ok(());
        }
        let records: Vec<(String, &[u8])> =
            xattrs.iter().map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice())).collect();
        self.builder
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
            .map_err(|e| self.write_err(rel, e))
    }

    fn file(&mut self, dir: &OwnedFd, name: &[u8], rel: &[u8], st: &FileStat) -> Result<()> {
        // O_NONBLOCK: if a fifo took the file's place since the lstat, the
        // open must not hang; the fstat below then refuses it.
        let fd = openat(
            dir,
            os(name),
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx("open", self.path(rel))?;
        let now = fstat(&fd).ctx("stat", self.path(rel))?;
        if file_type(&now) != SFlag::S_IFREG || now.st_ino != st.st_ino {
            return Err(changed(&self.path(rel)));
        }
        let size = now.st_size as u64;
        let mut h = self.header(&now, tar::EntryType::Regular);
        h.set_size(size);
        let mut content = Exact { inner: BufReader::with_capacity(256 << 10, File::from(fd)).take(size), left: size };
        self.builder.append_data(&mut h, Path::new(os(rel)), &mut content).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                changed(&self.path(rel))
            } else {
                self.write_err(rel, e)
            }
        })
    }

    fn symlink(&mut self, dir: &OwnedFd, name: &[u8], rel: &[u8], st: &FileStat) -> Result<()> {
        let target = nix::fcntl::readlinkat(dir, os(name)).ctx("read symlink", self.path(rel))?;
        let target = target.as_bytes();
        let mut h = self.header(st, tar::EntryType::Symlink);
        if target.len() <= 100 {
            // Byte for byte: `set_link_name` would normalise `a/./b/` away.
            h.set_link_name_literal(target).map_err(|e| self.write_err(rel, e))?;
            self.builder.append_data(&mut h, Path::new(os(rel)), io::empty())
        } else {
            self.builder.append_link(&mut h, Path::new(os(rel)), Path::new(os(target)))
        }
        .map_err(|e| self.write_err(rel, e))
    }

    fn node(&mut self, rel: &[u8], st: &FileStat, kind: SFlag) -> Result<()> {
        let entry = match kind {
            SFlag::S_IFCHR => tar::EntryType::Char,
            SFlag::S_IFBLK => tar::EntryType::Block,
            SFlag::S_IFIFO => tar::EntryType::Fifo,
            _ => return Err(Error::Unsupported(format!("{}: unknown file type", self.path(rel).display()))),
        };
        let mut h = self.header(st, entry);
        if kind != SFlag::S_IFIFO {
            let major = nix::sys::stat::major(st.st_rdev) as u32;
            let minor = nix::sys::stat::minor(st.st_rdev) as u32;
            h.set_device_major(major).map_err(|e| self.write_err(rel, e))?;
            h.set_device_minor(minor).map_err(|e| self.write_err(rel, e))?;
        }
        self.builder.append_data(&mut h, Path::new(os(rel)), io::empty()).map_err(|e| self.write_err(rel, e))
    }

    /// The xattrs to archive for `name` in `dir` (sorted), and whether
    /// overlayfs marked it opaque. overlayfs's own xattrs are not archived;
    /// ones we cannot represent faithfully are refused.
    fn xattrs(&self, dir: BorrowedFd<'_>, name: &[u8], rel: &[u8]) -> Result<Xattrs> {
        let path = root::proc_path(dir, name);
        let mut out = Xattrs::default();
        let names = match xattr::list(&path) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(out),
            Err(e) => return Err(Error::io("list xattrs of", self.path(rel), e)),
        };
        for key in names {
            let Some(value) = xattr::get(&path, &key).ctx("read xattr of", self.path(rel))? else { continue };
            let key_bytes = key.as_bytes();
            if key_bytes.starts_with(b"trusted.overlay.") {
                if key_bytes == OVERLAY_OPAQUE_XATTR.as_bytes() {
                    out.opaque = value == b"y";
                } else if self.overlay
                    && (key_bytes == b"trusted.overlay.redirect" || key_bytes == b"trusted.overlay.metacopy")
                {
                    return Err(Error::Unsupported(format!(
                        "{}: overlayfs recorded it as a {} (redirect_dir or metacopy is on); a layer cannot express that",
                        self.path(rel).display(),
                        String::from_utf8_lossy(&key_bytes["trusted.overlay.".len()..])
                    ))
                    .hint("mount the overlay with redirect_dir=off,metacopy=off"));
                }
                continue;
            }
            let Some(k) = key.to_str() else {
                return Err(Error::Unsupported(format!(
                    "{}: xattr name {key:?} is not UTF-8 and cannot be a PAX record",
                    self.path(rel).display()
                )));
            };
            out.kept.push((k.to_string(), value));
        }
        out.kept.sort();
        Ok(out)
    }
}

#[derive(Default)]
struct Xattrs {
    kept: Vec<(String, Vec<u8>)>,
    opaque: bool,
}

fn changed(path: &Path) -> Error {
    Error::Conflict(format!("{} changed while it was being archived", path.display()))
        .hint("stop the container (or let the step finish) before making a layer from it")
}

/// Exactly `left` bytes or an `UnexpectedEof` error (a file that shrank
/// while being read would otherwise make a tar whose header lies).
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        Ok(n)
    }
}
