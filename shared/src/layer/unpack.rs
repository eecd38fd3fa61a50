//! Extracting a layer tar stream into a directory, treating it as hostile.
//!
//! Two targets share one extractor:
//! - [`unpack`]: a fresh directory that becomes one overlayfs lower layer.
//!   Whiteouts are stored the overlayfs way (char device 0:0, opaque xattr).
//! - [`apply`]: an existing tree that the layer changes in place (flattening
//!   an image, the builder's scratch trees): whiteouts delete, opaque
//!   markers delete what the layers below had in the directory.
//!
//! Each entry is handled as: normalise the name ([`Name`]), open its parent
//! directory through [`Root`] (chroot semantics, never a host path), remove
//! whatever is in the way without following it, create the new inode with an
//! `*at` call, then set owner, mode, xattrs and times on that inode by fd (or
//! by `*at` with `AT_SYMLINK_NOFOLLOW`). The per-case policy is in the module
//! documentation of [`crate::layer`].
//!
//! Memory stays flat: file data is streamed in 256 KiB pieces, and the tar
//! metadata read before an entry (PAX records, GNU long names) is capped at
//! [`METADATA_LIMIT`] — the `tar` crate would otherwise read a multi-gigabyte
//! PAX header into memory.

use std::cell::Cell;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fchmodat, futimens, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, Gid, Uid};

use super::name::{show, Name};
use super::root::{self, file_type, lstat_at, os, remove_at, Root};
use super::whiteout::{self, Kind};
use crate::error::{Error, Result};

/// Upper bound on the metadata the tar reader may buffer for one entry
/// (PAX extended header + GNU long name + GNU long link). Go's archive/tar
/// allows 1 MiB per PAX header; real ones are a few hundred bytes.
pub const METADATA_LIMIT: u64 = 4 << 20;

/// The size of the copy buffer, and a block of zeros to compare it with.
const COPY_BUF: usize = 256 << 10;
static ZEROS: [u8; COPY_BUF] = [0; COPY_BUF];

/// Where the layer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A fresh directory for one overlayfs lower layer.
    LayerDir,
    /// An existing tree that the layer changes in place.
    Tree,
}

/// What an unpack did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UnpackStats {
    /// Tar entries read (extension headers not counted).
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    pub whiteouts: u64,
    pub opaque_dirs: u64,
    /// The layer marks its root directory opaque: every layer below is
    /// hidden. overlayfs ignores the opaque xattr on a layer's root, so
    /// whoever stacks layers must leave the lower ones out (see
    /// [`super::cache::ensure_image_unpacked`]).
    pub opaque_root: bool,
    /// Entries ignored on purpose: aufs bookkeeping, non-directories named
    /// like the root, PAX global headers.
    pub skipped: u64,
    /// xattrs not set: overlayfs's own (`trusted.overlay.*`, which would
    /// steer overlayfs), or ones the filesystem refused (ENOTSUP/EPERM).
    pub dropped_xattrs: u64,
}

/// Unpack a layer into `dest`, a new empty directory, for use as an
/// overlayfs lower layer. Reads `input` to its end.
pub fn unpack(input: impl Read, dest: &Path) -> Result<UnpackStats> {
    extract(input, dest, Target::LayerDir)
}

/// Apply a layer onto the existing tree at `dest` (whiteouts delete).
/// Reads `input` to its end.
pub fn apply(input: impl Read, dest: &Path) -> Result<UnpackStats> {
    extract(input, dest, Target::Tree)
}

/// Extract a tar stream. The whole input is read, trailing padding after
/// the end-of-archive marker included, so that a hashing reader under
/// `input` has seen every byte when this returns.
pub fn extract(input: impl Read, dest: &Path, target: Target) -> Result<UnpackStats> {
    let budget = Rc::new(Cell::new(None));
    let reader = Metered { inner: io::BufReader::with_capacity(1 << 20, input), budget: budget.clone() };
    let mut archive = tar::Archive::new(reader);
    let mut x = Extractor::new(dest, target)?;
    {
        let mut entries = archive.entries().map_err(|e| x.tar_error(e))?;
        loop {
            budget.set(Some(METADATA_LIMIT));
            let next = entries.next();
            budget.set(None);
            let Some(entry) = next else { break };
            let mut entry = entry.map_err(|e| x.tar_error(e))?;
            x.entry(&mut entry)?;
            // Data nobody wanted (a symlink with a size, say) is skipped by
            // reading it here rather than inside the metered `next()`.
            io::copy(&mut entry, &mut io::sink()).map_err(|e| x.tar_error(e))?;
            crate::crash::point("extract-entry");
        }
    }
    x.finish()?;
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(|e| x.tar_error(e))?;
    Ok(x.stats)
}

/// A reader that can be told to fail after `budget` bytes: the tar reader
/// reads extension headers into memory inside `Entries::next`, so that call
/// is metered; entry data read by us is not.
struct Metered<R> {
    inner: R,
    budget: Rc<Cell<Option<u64>>>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.budget.get() {
            None => self.inner.read(buf),
            Some(0) => Err(io::Error::other(format!(
                "the metadata of one entry (PAX or GNU long-name headers) is larger than {} MiB",
                METADATA_LIMIT >> 20
            ))),
            Some(left) => {
                let want = buf.len().min(left as usize);
                let n = self.inner.read(&mut buf[..want])?;
                self.budget.set(Some(left - n as u64));
                Ok(n)
            }
        }
    }
}

/// Owner, mode, times and xattrs of an entry.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    atime: TimeSpec,
    mtime: TimeSpec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A directory whose times are set at the end (its children change them).
struct DeferredTimes {
    name: Name,
    dev: u64,
    ino: u64,
    atime: TimeSpec,
    mtime: TimeSpec,
}

struct Extractor {
    root: Root,
    target: Target,
    stats: UnpackStats,
    dirs: Vec<DeferredTimes>,
    /// Tree target: inodes this layer made, and existing directories it
    /// declared again; an opaque marker keeps these and removes the rest.
    created: HashSet<(u64, u64)>,
    declared: HashSet<(u64, u64)>,
    /// The entry being handled, for messages.
    current: String,
    /// The parent directory of the last entry: (its name, its fd).
    last_parent: Option<(Vec<u8>, Rc<OwnedFd>)>,
    buf: Vec<u8>,
}

impl Extractor {
    fn new(dest: &Path, target: Target) -> Result<Extractor> {
        Ok(Extractor {
            root: Root::open(dest)?,
            target,
            stats: UnpackStats::default(),
            dirs: Vec::new(),
            created: HashSet::new(),
            declared: HashSet::new(),
            current: String::new(),
            last_parent: None,
            buf: vec![0; COPY_BUF],
        })
    }

    /// An archive that is not valid: names the entry.
    fn invalid(&self, why: impl std::fmt::Display) -> Error {
        Error::invalid(format!("layer entry {}: {why}", self.current))
    }

    /// A tar-level read error (bad header, truncated stream).
    fn tar_error(&self, e: io::Error) -> Error {
        let why = crate::tarball::describe_error(&e);
        let at = if self.current.is_empty() {
            "at the first entry".to_string()
        } else {
            format!("after entry {}", self.current)
        };
        Error::invalid(format!("layer tar {at}: {why}"))
    }

    /// A failed system call on an entry: names the operation and the path.
    fn io(&self, op: &'static str, name: &[u8], e: impl Into<io::Error>) -> Error {
        Error::io(op, self.host_path(name), e.into())
    }

    /// Where `name` is, for messages only (never opened).
    fn host_path(&self, name: &[u8]) -> PathBuf {
        let mut p = self.root.path().to_path_buf();
        if !name.is_empty() {
            p.push(os(name));
        }
        p
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = e.path_bytes().into_owned();
        self.current = show(&raw);
        let kind = e.header().entry_type();
        if kind.is_pax_global_extensions() {
            self.stats.skipped += 1;
            return Ok(());
        }
        self.stats.entries += 1;
        let name = Name::entry(&raw).map_err(|why| self.invalid(why))?;
        let meta = self.meta(e)?;

        if name.is_root() {
            if kind.is_dir() {
                return self.root_dir(&meta);
            }
            // A symlink or file named `/`, `.` or `..`-that-cancels would
            // replace the root itself: ignored, as containerd does.
            crate::explain!("layer entry {}: names the root directory; ignored", self.current);
            self.stats.skipped += 1;
            return Ok(());
        }

        match whiteout::classify(name.base()).map_err(|why| self.invalid(why))? {
            Kind::Plain => {}
            Kind::Whiteout(victim) => return self.whiteout(&name, victim, &meta),
            Kind::Opaque => return self.opaque(&name),
            Kind::AufsMeta => {
                self.stats.skipped += 1;
                return Ok(());
            }
        }

        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous => self.file(&name, e, &meta),
            T::Directory => self.dir(&name, &meta),
            T::Symlink => self.symlink(&name, e, &meta),
            T::Link => self.hardlink(&name, e),
            T::Char | T::Block | T::Fifo => self.node(&name, e, kind, &meta),
            T::GNUSparse => Err(self.invalid("GNU sparse files are not supported in layers")),
            other => Err(self.invalid(format!(
                "unsupported tar entry type {:?} ({:?})",
                char::from(other.as_byte()),
                other
            ))),
        }
    }

    fn meta<R: Read>(&self, e: &mut tar::Entry<'_, R>) -> Result<Meta> {
        let h = e.header();
        let old = h.as_old();
        // An entirely empty numeric field means 0 to GNU tar and Go; the tar
        // crate calls it an error. Anything else malformed is an error.
        let field = |r: io::Result<u64>, raw: &[u8], what: &str| match r {
            Ok(v) => Ok(v),
            Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
            Err(err) => Err(self.invalid(format!("bad {what} field: {err}"))),
        };
        let mode = field(h.mode().map(u64::from), &old.mode, "mode")? as u32 & 0o7777;
        let id = |v: u64, what: &str| {
            // (uid_t)-1 means "leave unchanged" to chown: never a real owner.
            u32::try_from(v)
                .ok()
                .filter(|&v| v != u32::MAX)
                .ok_or_else(|| self.invalid(format!("{what} {v} is out of range")))
        };
        let uid = id(field(h.uid(), &old.uid, "uid")?, "uid")?;
        let gid = id(field(h.gid(), &old.gid, "gid")?, "gid")?;
        let secs = field(h.mtime(), &old.mtime, "mtime")?;
        let mut mtime = TimeSpec::new(i64::try_from(secs).map_err(|_| self.invalid("mtime out of range"))?, 0);
        let mut atime = None;
        let mut xattrs = Vec::new();
        if let Some(pax) = e.pax_extensions().map_err(|err| self.tar_error(err))? {
            for rec in pax {
                let rec = rec.map_err(|err| self.invalid(format!("malformed PAX record: {err}")))?;
                let key = rec.key_bytes();
                if key == b"mtime" {
                    mtime = pax_time(rec.value_bytes()).ok_or_else(|| self.invalid("malformed PAX mtime"))?;
                } else if key == b"atime" {
                    atime = Some(pax_time(rec.value_bytes()).ok_or_else(|| self.invalid("malformed PAX atime"))?);
                } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    if name.is_empty() || name.contains(&0) {
                        return Err(self.invalid("malformed xattr name in PAX record"));
                    }
                    xattrs.push((name.to_vec(), rec.value_bytes().to_vec()));
                }
            }
        }
        Ok(Meta { mode, uid, gid, atime: atime.unwrap_or(mtime), mtime, xattrs })
    }

    /// Open the parent directory of `name` inside the root, creating missing
    /// directories (as tar does). Entries come grouped by directory, so the
    /// last one is kept; anything that removes or replaces an inode, or makes
    /// a symlink, forgets it ([`Extractor::forget_parent`]), since a path may
    /// then lead elsewhere. (A stale fd could only point at a directory that
    /// is still inside the root, or at nothing.)
    fn parent(&mut self, name: &Name) -> Result<Rc<OwnedFd>> {
        if let Some((path, fd)) = &self.last_parent {
            if path.as_slice() == name.parent() {
                return Ok(fd.clone());
            }
        }
        match self.root.dir(name.parent(), true) {
            Ok(Some(fd)) => {
                let fd = Rc::new(fd);
                self.last_parent = Some((name.parent().to_vec(), fd.clone()));
                Ok(fd)
            }
            Ok(None) => unreachable!("Root::dir creates missing directories"),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Err(self.invalid(format!(
                "a parent of {name:?} is not a directory (an earlier entry made it a file)"
            ))),
            Err(e) => Err(self.io("open parent directory of", name.as_bytes(), e)),
        }
    }

    fn forget_parent(&mut self) {
        self.last_parent = None;
    }

    /// Make room for a new non-directory at `name`: whatever is there goes,
    /// without following it.
    fn clear(&mut self, dir: BorrowedFd<'_>, name: &Name) -> Result<()> {
        if remove_at(dir, name.base()).map_err(|e| self.io("remove (to replace)", name.as_bytes(), e))? {
            self.forget_parent();
        }
        Ok(())
    }

    fn mark_created(&mut self, dir: BorrowedFd<'_>, name: &Name) -> Result<()> {
        if self.target == Target::Tree {
            if let Some(st) = lstat_at(dir, name.base()).map_err(|e| self.io("stat", name.as_bytes(), e))? {
                self.created.insert((st.st_dev, st.st_ino));
            }
        }
        Ok(())
    }

    fn file<R: Read>(&mut self, name: &Name, e: &mut tar::Entry<'_, R>, meta: &Meta) -> Result<()> {
        let dir = self.parent(name)?;
        let create = || {
            openat(
                &*dir,
                os(name.base()),
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
        };
        // Usually nothing is there; when something is (O_EXCL never follows
        // a symlink), it goes first.
        let fd = match create() {
            Err(Errno::EEXIST) => {
                self.clear(dir.as_fd(), name)?;
                create()
            }
            r => r,
        }
        .map_err(|err| self.io("create", name.as_bytes(), err))?;
        let mut file = File::from(fd);
        let size = e.size();
        self.copy(e, &mut file, size, name)?;
        self.stats.bytes += size;
        // Owner before mode (chown clears setuid), xattrs after both (chown
        // and writes clear security.capability), times last.
        fchown(&file, Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)))
            .map_err(|err| self.io("chown", name.as_bytes(), err))?;
        fchmod(&file, Mode::from_bits_truncate(meta.mode)).map_err(|err| self.io("chmod", name.as_bytes(), err))?;
        self.set_xattrs_fd(&file, name, meta)?;
        futimens(&file, &meta.atime, &meta.mtime).map_err(|err| self.io("set times of", name.as_bytes(), err))?;
        if self.target == Target::Tree {
            let st = nix::sys::stat::fstat(&file).map_err(|err| self.io("stat", name.as_bytes(), err))?;
            self.created.insert((st.st_dev, st.st_ino));
        }
        Ok(())
    }

    /// Stream `size` bytes of content. Runs of zeros become holes (a 10 GiB
    /// file of zeros costs no disk), and a stream that ends early is an error.
    fn copy(&mut self, from: &mut impl Read, to: &mut File, size: u64, name: &Name) -> Result<()> {
        let mut pos = 0u64; // logical offset
        let mut at = 0u64; // the file's offset
        while pos < size {
            let want = (size - pos).min(self.buf.len() as u64) as usize;
            let n = match from.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(self.invalid(format!(
                        "the header says {size} bytes but the stream ends after {pos} (truncated or lying header)"
                    )))
                }
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(self.tar_error(err)),
            };
            let chunk = &self.buf[..n];
            // (A slice comparison is a memcmp: fast even in a debug build.)
            if n >= 4096 && chunk == &ZEROS[..n] {
                pos += n as u64;
                continue;
            }
            if at != pos {
                to.seek(SeekFrom::Start(pos)).map_err(|err| self.io("seek in", name.as_bytes(), err))?;
            }
            to.write_all(chunk).map_err(|err| self.io("write", name.as_bytes(), err))?;
            pos += n as u64;
            at = pos;
        }
        if at != size {
            to.set_len(size).map_err(|err| self.io("extend", name.as_bytes(), err))?;
        }
        Ok(())
    }

    fn dir(&mut self, name: &Name, meta: &Meta) -> Result<()> {
        let parent = self.parent(name)?;
        let parent = &*parent;
        let base = name.base();
        match lstat_at(parent.as_fd(), base).map_err(|e| self.io("stat", name.as_bytes(), e))? {
            Some(st) if file_type(&st) == SFlag::S_IFDIR => {
                // An existing directory: merge into it; the new entry's metadata wins.
                if self.target == Target::Tree && !self.created.contains(&(st.st_dev, st.st_ino)) {
                    self.declared.insert((st.st_dev, st.st_ino));
                }
            }
            Some(_) => {
                self.clear(parent.as_fd(), name)?;
                self.mkdir(parent, name)?;
            }
            None => self.mkdir(parent, name)?,
        }
        let fd = openat(
            parent,
            os(base),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.io("open directory", name.as_bytes(), e))?;
        self.dir_meta(fd, name, meta)
    }

    fn mkdir(&mut self, parent: &OwnedFd, name: &Name) -> Result<()> {
        mkdirat(parent, os(name.base()), Mode::from_bits_truncate(0o700))
            .map_err(|e| self.io("create directory", name.as_bytes(), e))?;
        self.mark_created(parent.as_fd(), name)
    }

    /// Owner, mode and xattrs now; times at the end, after the children.
    fn dir_meta(&mut self, fd: OwnedFd, name: &Name, meta: &Meta) -> Result<()> {
        let file = File::from(fd);
        fchown(&file, Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)))
            .map_err(|e| self.io("chown", name.as_bytes(), e))?;
        fchmod(&file, Mode::from_bits_truncate(meta.mode)).map_err(|e| self.io("chmod", name.as_bytes(), e))?;
        self.set_xattrs_fd(&file, name, meta)?;
        let st = nix::sys::stat::fstat(&file).map_err(|e| self.io("stat", name.as_bytes(), e))?;
        self.dirs.push(DeferredTimes { name: name.clone(), dev: st.st_dev, ino: st.st_ino, atime: meta.atime, mtime: meta.mtime });
        Ok(())
    }

    /// `./` in the archive: the root directory's own metadata.
    fn root_dir(&mut self, meta: &Meta) -> Result<()> {
        let fd = root::reopen_dir(self.root.fd()).map_err(|e| self.io("open", b"", e))?;
        self.dir_meta(fd, &Name::entry(b"").expect("the root is a valid name"), meta)
    }

    fn symlink<R: Read>(&mut self, name: &Name, e: &tar::Entry<'_, R>, meta: &Meta) -> Result<()> {
        let target = e.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
        if target.is_empty() || target.contains(&0) || target.len() > super::name::PATH_MAX {
            return Err(self.invalid("invalid symlink target (empty, too long or containing NUL)"));
        }
        let dir = self.parent(name)?;
        self.clear(dir.as_fd(), name)?;
        // A new symlink can change where later paths lead.
        self.forget_parent();
        // The target is stored as written; it is only ever resolved inside a root.
        symlinkat(os(&target), &*dir, os(name.base())).map_err(|err| self.io("create symlink", name.as_bytes(), err))?;
        self.node_meta(&dir, name, meta, false)?;
        self.mark_created(dir.as_fd(), name)
    }

    fn hardlink<R: Read>(&mut self, name: &Name, e: &tar::Entry<'_, R>) -> Result<()> {
        let raw = e.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
        let target = Name::link_target(&raw).map_err(|why| self.invalid(format!("hardlink target: {why}")))?;
        if target.is_root() {
            return Err(self.invalid("hardlink to the root directory"));
        }
        if &target == name {
            return Ok(()); // a link to itself: nothing to do (GNU tar agrees)
        }
        let missing_msg = format!(
            "hardlink target {} does not exist (a hardlink must name an earlier entry of the layer)",
            show(&raw)
        );
        let missing = |x: &Self| x.invalid(&missing_msg);
        // The target's directory is resolved inside the root; its last
        // component is not followed: a link to a symlink links the symlink.
        let tdir = match self.root.dir(target.parent(), false) {
            Ok(Some(d)) => d,
            Ok(None) => return Err(missing(self)),
            // A file or a symlink loop where a directory should be: no target there either.
            Err(err) if matches!(err.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) => return Err(missing(self)),
            Err(err) => return Err(self.io("open directory of hardlink target", target.as_bytes(), err)),
        };
        match lstat_at(tdir.as_fd(), target.base()).map_err(|err| self.io("stat", target.as_bytes(), err))? {
            None => return Err(missing(self)),
            Some(st) if file_type(&st) == SFlag::S_IFDIR => {
                return Err(self.invalid(format!("hardlink target {} is a directory", show(&raw))))
            }
            Some(_) => {}
        }
        let dir = self.parent(name)?;
        self.clear(dir.as_fd(), name)?;
        linkat(&tdir, os(target.base()), &*dir, os(name.base()), AtFlags::empty()).map_err(|err| {
            if err == Errno::ENOENT {
                missing(self)
            } else {
                self.io("create hardlink", name.as_bytes(), err)
            }
        })?;
        // No metadata: the link shares its target's inode, whose metadata
        // came with the target's own entry. (Applying it here is how
        // CVE-2021-32760 chmod-ed host files through a linked symlink.)
        self.mark_created(dir.as_fd(), name)
    }

    fn node<R: Read>(&mut self, name: &Name, e: &tar::Entry<'_, R>, kind: tar::EntryType, meta: &Meta) -> Result<()> {
        let h = e.header();
        let (sflag, dev) = if kind == tar::EntryType::Fifo {
            (SFlag::S_IFIFO, 0)
        } else {
            let fields = h
                .as_ustar()
                .map(|u| (u.dev_major, u.dev_minor))
                .or_else(|| h.as_gnu().map(|g| (g.dev_major, g.dev_minor)))
                .ok_or_else(|| self.invalid("a device entry in an old (v7) header, which has no device numbers"))?;
            let num = |field: &[u8; 8], what: &str, max: u64| {
                let v = device_number(field).map_err(|why| self.invalid(format!("device {what} number {why}")))?;
                // The kernel keeps 12 bits of major and 20 of minor; larger
                // numbers would be silently folded into another device.
                if v >= max {
                    return Err(self.invalid(format!("device {what} number {v} is out of range (at most {})", max - 1)));
                }
                Ok(v as u32)
            };
            let major = num(&fields.0, "major", 1 << 12)?;
            let minor = num(&fields.1, "minor", 1 << 20)?;
            let sflag = if kind == tar::EntryType::Char { SFlag::S_IFCHR } else { SFlag::S_IFBLK };
            (sflag, nix::sys::stat::makedev(major.into(), minor.into()))
        };
        let dir = self.parent(name)?;
        self.clear(dir.as_fd(), name)?;
        mknodat(&*dir, os(name.base()), sflag, Mode::from_bits_truncate(0o600), dev)
            .map_err(|err| self.io("create device node", name.as_bytes(), err))?;
        self.node_meta(&dir, name, meta, true)?;
        self.mark_created(dir.as_fd(), name)
    }

    /// Metadata of a symlink or device node, which must never be opened:
    /// `*at` calls with `AT_SYMLINK_NOFOLLOW` on the name in its directory.
    fn node_meta(&mut self, dir: &OwnedFd, name: &Name, meta: &Meta, chmod: bool) -> Result<()> {
        let base = os(name.base());
        fchownat(dir, base, Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| self.io("chown", name.as_bytes(), e))?;
        if chmod {
            // Not a symlink (we just made this node in a directory only we
            // write to), so following is moot; fchmodat has no NOFOLLOW on
            // older kernels.
            fchmodat(dir, base, Mode::from_bits_truncate(meta.mode), FchmodatFlags::FollowSymlink)
                .map_err(|e| self.io("chmod", name.as_bytes(), e))?;
        }
        for (k, v) in &meta.xattrs {
            if self.keep_xattr(k) {
                let res = xattr::set(root::proc_path(dir.as_fd(), name.base()), os(k), v);
                self.xattr_result(res, name, k)?;
            }
        }
        utimensat(dir, base, &meta.atime, &meta.mtime, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| self.io("set times of", name.as_bytes(), e))?;
        Ok(())
    }

    fn set_xattrs_fd(&mut self, file: &File, name: &Name, meta: &Meta) -> Result<()> {
        use xattr::FileExt;
        for (k, v) in &meta.xattrs {
            if self.keep_xattr(k) {
                let res = file.set_xattr(os(k), v);
                self.xattr_result(res, name, k)?;
            }
        }
        Ok(())
    }

    /// overlayfs reads `trusted.overlay.*` (and `user.overlay.*` when mounted
    /// with userxattr) from the layers: a layer must not set them itself.
    fn keep_xattr(&mut self, key: &[u8]) -> bool {
        if key.starts_with(b"trusted.overlay.") || key.starts_with(b"user.overlay.") {
            crate::explain!("layer entry {}: dropped xattr {} (reserved for overlayfs)", self.current, String::from_utf8_lossy(key));
            self.stats.dropped_xattrs += 1;
            return false;
        }
        true
    }

    fn xattr_result(&mut self, res: io::Result<()>, name: &Name, key: &[u8]) -> Result<()> {
        match res {
            Ok(()) => Ok(()),
            // Not every filesystem takes every namespace (user.* on a symlink,
            // security.* without the LSM): docker warns and goes on; so do we.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::EPERM)) => {
                crate::explain!(
                    "layer entry {}: xattr {} not set: {e}",
                    self.current,
                    String::from_utf8_lossy(key)
                );
                self.stats.dropped_xattrs += 1;
                Ok(())
            }
            Err(e) => Err(self.io("set xattr on", name.as_bytes(), e)),
        }
    }

    fn whiteout(&mut self, name: &Name, victim: &[u8], meta: &Meta) -> Result<()> {
        self.stats.whiteouts += 1;
        self.forget_parent();
        let victim_name = Name::entry(&[name.parent(), b"/", victim].concat()).map_err(|why| self.invalid(why))?;
        match self.target {
            Target::LayerDir => {
                // Record the deletion for overlayfs: a char device 0:0 in
                // place of the name (replacing what this layer had there).
                let dir = self.parent(name)?;
                self.clear(dir.as_fd(), &victim_name)?;
                whiteout::make_overlay_whiteout(dir.as_fd(), victim)
                    .map_err(|e| self.io("create whiteout", victim_name.as_bytes(), e))?;
                fchownat(&*dir, os(victim), Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(|e| self.io("chown", victim_name.as_bytes(), e))?;
            }
            Target::Tree => {
                // Delete from the tree. The parent is resolved inside the root;
                // the victim itself is never followed, so `.wh.<symlink>`
                // removes the link and not what it points to.
                let dir = match self.root.dir(name.parent(), false) {
                    Ok(Some(d)) => d,
                    Ok(None) => return Ok(()),
                    Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(()),
                    Err(e) => return Err(self.io("open directory", name.parent(), e)),
                };
                self.clear(dir.as_fd(), &victim_name)?;
            }
        }
        Ok(())
    }

    fn opaque(&mut self, name: &Name) -> Result<()> {
        self.stats.opaque_dirs += 1;
        self.forget_parent();
        let parent = name.parent();
        match self.target {
            Target::LayerDir => {
                let dir = self.root.dir(parent, true).map_err(|e| self.io("open directory", parent, e))?;
                let dir = dir.expect("created when missing");
                let dir = File::from(root::reopen_dir(dir.as_fd()).map_err(|e| self.io("open directory", parent, e))?);
                use xattr::FileExt;
                dir.set_xattr(whiteout::OVERLAY_OPAQUE_XATTR, b"y")
                    .map_err(|e| self.io("set opaque xattr on", parent, e))?;
                if parent.is_empty() {
                    self.stats.opaque_root = true;
                }
            }
            Target::Tree => {
                let dir = match self.root.dir(parent, false) {
                    Ok(Some(d)) => d,
                    Ok(None) => return Ok(()),
                    Err(e) => return Err(self.io("open directory", parent, e)),
                };
                self.clean_opaque(dir.as_fd(), parent)?;
            }
        }
        Ok(())
    }

    /// Tree target: remove what the layers below had in an opaque directory,
    /// keeping what this layer wrote (its entries may come before the marker).
    fn clean_opaque(&self, dir: BorrowedFd<'_>, path: &[u8]) -> Result<()> {
        let readable = root::reopen_dir(dir).map_err(|e| self.io("open directory", path, e))?;
        for child in root::children(&readable).map_err(|e| self.io("read directory", path, e))? {
            let child_path = if path.is_empty() { child.clone() } else { [path, b"/", &child].concat() };
            let Some(st) = lstat_at(readable.as_fd(), &child).map_err(|e| self.io("stat", &child_path, e))? else {
                continue;
            };
            let id = (st.st_dev, st.st_ino);
            if self.created.contains(&id) {
                continue;
            }
            if self.declared.contains(&id) && file_type(&st) == SFlag::S_IFDIR {
                let sub = openat(
                    &readable,
                    os(&child),
                    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.io("open directory", &child_path, e))?;
                self.clean_opaque(sub.as_fd(), &child_path)?;
                continue;
            }
            remove_at(readable.as_fd(), &child).map_err(|e| self.io("remove", &child_path, e))?;
        }
        Ok(())
    }

    /// Directory times, now that nothing more will be created in them. A
    /// directory replaced by a later entry (checked by inode) is left alone.
    fn finish(&mut self) -> Result<()> {
        self.current.clear();
        for d in self.dirs.iter().rev() {
            let dir = match self.root.dir(d.name.parent(), false) {
                Ok(Some(fd)) => fd,
                _ => continue,
            };
            let base: &[u8] = if d.name.is_root() { b"." } else { d.name.base() };
            match lstat_at(dir.as_fd(), base) {
                Ok(Some(st)) if st.st_dev == d.dev && st.st_ino == d.ino && file_type(&st) == SFlag::S_IFDIR => {}
                _ => continue,
            }
            utimensat(&dir, os(base), &d.atime, &d.mtime, UtimensatFlags::NoFollowSymlink)
                .map_err(|e| self.io("set times of", d.name.as_bytes(), e))?;
        }
        Ok(())
    }
}

/// A tar device number field: octal text, or GNU base-256 (first byte
/// 0x80, or 0xff for a negative number).
fn device_number(field: &[u8; 8]) -> Result<u64, String> {
    if field[0] & 0x80 != 0 {
        if field[0] & 0x40 != 0 {
            return Err("is negative".into());
        }
        let mut v: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            v = v.checked_shl(8).ok_or("does not fit in 64 bits")? | u64::from(b);
        }
        return Ok(v);
    }
    let text: Vec<u8> = field.iter().copied().take_while(|&b| b != 0).filter(|&b| b != b' ').collect();
    if text.is_empty() {
        return Ok(0);
    }
    std::str::from_utf8(&text)
        .ok()
        .and_then(|t| u64::from_str_radix(t, 8).ok())
        .ok_or_else(|| format!("{:?} is not an octal number", String::from_utf8_lossy(&text)))
}

/// A PAX time: `seconds[.fraction]`, possibly negative.
fn pax_time(v: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
    }
    if neg {
        // -1.25 is 1.25 s before the epoch: -2 s + 0.75 s.
        if nanos == 0 {
            Some(TimeSpec::new(-secs, 0))
        } else {
            Some(TimeSpec::new(-secs - 1, 1_000_000_000 - nanos))
        }
    } else {
        Some(TimeSpec::new(secs, nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        assert_eq!(pax_time(b"1234"), Some(TimeSpec::new(1234, 0)));
        assert_eq!(pax_time(b"1234.5"), Some(TimeSpec::new(1234, 500_000_000)));
        assert_eq!(pax_time(b"-1.25"), Some(TimeSpec::new(-2, 750_000_000)));
        assert_eq!(pax_time(b"1.1234567891"), Some(TimeSpec::new(1, 123_456_789)));
        assert_eq!(pax_time(b"x"), None);
        assert_eq!(pax_time(b""), None);
    }

    #[test]
    fn device_numbers() {
        assert_eq!(device_number(b"0000010\0"), Ok(8));
        assert_eq!(device_number(b"\0\0\0\0\0\0\0\0"), Ok(0));
        assert_eq!(device_number(&[0x80, 0, 0, 1, 0, 0, 0, 0]), Ok(1 << 32));
        assert_eq!(device_number(&[0xff; 8]), Err("is negative".into()));
        assert!(device_number(b"12x4567\0").unwrap_err().contains("not an octal number"));
    }

    #[test]
    fn metered_reader_stops_at_its_budget() {
        let budget = Rc::new(Cell::new(Some(10)));
        let mut r = Metered { inner: &[7u8; 100][..], budget: budget.clone() };
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(out.len(), 10);
        assert!(err.to_string().contains("larger than"));
        budget.set(None);
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 100);
    }
}
