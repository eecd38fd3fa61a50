//! Helpers for the layer suites: a tar writer that writes whatever bytes a
//! test asks for (the `tar` crate's builder refuses `..` and absolute names,
//! which is right for it and useless for attacks), an overlayfs mount that
//! is always unmounted, and tree snapshots to compare directories.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Entry content.
pub enum Data {
    Bytes(Vec<u8>),
    /// `n` zero bytes, streamed.
    Zeros(u64),
    /// The header claims `size`, but only these bytes follow and then the stream ends.
    Truncated(Vec<u8>),
}

/// One tar entry, exactly as it will be written.
pub struct Raw {
    pub name: Vec<u8>,
    pub kind: u8,
    pub linkname: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub size: Option<u64>,
    pub data: Data,
    pub devmajor: i64,
    pub devminor: i64,
    /// Put the name (and link name) in a PAX header even if short.
    pub pax_path: bool,
    /// Put a long name in a GNU `L` entry instead of PAX.
    pub gnu_long: bool,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Raw {
    pub fn new(kind: u8, name: impl AsRef<[u8]>) -> Raw {
        let mode = match kind {
            b'5' => 0o755,
            b'2' => 0o777,
            _ => 0o644,
        };
        Raw {
            name: name.as_ref().to_vec(),
            kind,
            linkname: Vec::new(),
            mode,
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
            size: None,
            data: Data::Bytes(Vec::new()),
            devmajor: 0,
            devminor: 0,
            pax_path: false,
            gnu_long: false,
            xattrs: Vec::new(),
        }
    }
    pub fn file(name: impl AsRef<[u8]>, content: impl AsRef<[u8]>) -> Raw {
        let mut r = Raw::new(b'0', name);
        r.data = Data::Bytes(content.as_ref().to_vec());
        r
    }
    pub fn dir(name: impl AsRef<[u8]>) -> Raw {
        Raw::new(b'5', name)
    }
    pub fn symlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Raw {
        let mut r = Raw::new(b'2', name);
        r.linkname = target.as_ref().to_vec();
        r
    }
    pub fn hardlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Raw {
        let mut r = Raw::new(b'1', name);
        r.linkname = target.as_ref().to_vec();
        r
    }
    pub fn mode(mut self, m: u32) -> Raw {
        self.mode = m;
        self
    }
    pub fn owner(mut self, uid: u64, gid: u64) -> Raw {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn mtime(mut self, t: u64) -> Raw {
        self.mtime = t;
        self
    }
    pub fn xattr(mut self, k: &str, v: &[u8]) -> Raw {
        self.xattrs.push((k.to_string(), v.to_vec()));
        self
    }
}

/// A PAX record: `"<len> key=value\n"`, where len counts itself.
fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let rest = 3 + key.len() + value.len();
    let mut len = rest + 1;
    while len.to_string().len() + rest > len {
        len += 1;
    }
    let mut out = format!("{len} ").into_bytes();
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

fn put(field: &mut [u8], bytes: &[u8]) {
    field.iter_mut().for_each(|b| *b = 0);
    field[..bytes.len()].copy_from_slice(bytes);
}

/// An 8-byte numeric field: octal when it fits, else base-256 (GNU),
/// two's complement for negative numbers.
fn put_num8(field: &mut [u8; 8], v: i64) {
    if (0..0o7777777).contains(&v) {
        put(field, format!("{v:07o}").as_bytes());
    } else {
        let bytes = v.to_be_bytes();
        field.copy_from_slice(&bytes);
        if v >= 0 {
            field[0] |= 0x80;
        }
    }
}

fn header_block(kind: u8, name: &[u8], linkname: &[u8], r: &Raw, size: u64) -> [u8; 512] {
    let mut h = tar::Header::new_ustar();
    h.set_mode(r.mode);
    h.set_uid(r.uid);
    h.set_gid(r.gid);
    h.set_mtime(r.mtime);
    h.set_size(size);
    h.set_entry_type(tar::EntryType::new(kind));
    {
        let u = h.as_ustar_mut().expect("ustar header");
        put(&mut u.name, &name[..name.len().min(100)]);
        put(&mut u.linkname, &linkname[..linkname.len().min(100)]);
        put_num8(&mut u.dev_major, r.devmajor);
        put_num8(&mut u.dev_minor, r.devminor);
    }
    h.set_cksum();
    *h.as_bytes()
}

fn pad(w: &mut impl Write, size: u64) -> io::Result<()> {
    let rem = (512 - size % 512) % 512;
    w.write_all(&vec![0u8; rem as usize])
}

/// Write one entry; returns false when the stream must end here (truncated data).
pub fn write_raw(w: &mut impl Write, r: &Raw) -> io::Result<bool> {
    let long_name = r.name.len() > 100 || r.name.contains(&0);
    let long_link = r.linkname.len() > 100 || r.linkname.contains(&0);
    let mut pax = Vec::new();
    if r.gnu_long && long_name {
        let data = [&r.name[..], b"\0"].concat();
        let block = header_block(b'L', b"././@LongLink", b"", &Raw::new(b'L', ""), data.len() as u64);
        w.write_all(&block)?;
        w.write_all(&data)?;
        pad(w, data.len() as u64)?;
    } else if r.pax_path || long_name {
        pax.extend(pax_record(b"path", &r.name));
    }
    if (r.pax_path || long_link) && !r.linkname.is_empty() {
        pax.extend(pax_record(b"linkpath", &r.linkname));
    }
    for (k, v) in &r.xattrs {
        pax.extend(pax_record(format!("SCHILY.xattr.{k}").as_bytes(), v));
    }
    if !pax.is_empty() {
        let block = header_block(b'x', b"PaxHeaders/entry", b"", &Raw::new(b'x', ""), pax.len() as u64);
        w.write_all(&block)?;
        w.write_all(&pax)?;
        pad(w, pax.len() as u64)?;
    }
    let (size, more) = match &r.data {
        Data::Bytes(b) => (r.size.unwrap_or(b.len() as u64), true),
        Data::Zeros(n) => (*n, true),
        Data::Truncated(_) => (r.size.expect("a truncated entry states its size"), false),
    };
    w.write_all(&header_block(r.kind, &r.name, &r.linkname, r, size))?;
    match &r.data {
        Data::Bytes(b) => {
            w.write_all(b)?;
            pad(w, b.len() as u64)?;
        }
        Data::Zeros(n) => {
            io::copy(&mut io::repeat(0).take(*n), w)?;
            pad(w, *n)?;
        }
        Data::Truncated(b) => w.write_all(b)?,
    }
    Ok(more)
}

/// A whole archive in memory (with the two zero blocks at the end, unless
/// an entry is truncated).
pub fn tar(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        if !write_raw(&mut out, e).unwrap() {
            return out;
        }
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// A name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// 16 random bytes as hex (a victim file's content).
pub fn random_hex() -> String {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A read-only overlayfs mount, detached on drop (also when a test panics).
pub struct Overlay {
    pub target: PathBuf,
    _empty: Option<tempfile::TempDir>,
}

impl Overlay {
    /// Mount `lowers` (top first, as overlayfs lists them) at `target`.
    pub fn mount(lowers: &[&Path], target: &Path) -> Overlay {
        let mut lowers: Vec<PathBuf> = lowers.iter().map(|p| p.to_path_buf()).collect();
        // Without an upper dir overlayfs wants at least two lower layers.
        let empty = (lowers.len() < 2).then(|| tempfile::tempdir().unwrap());
        if let Some(e) = &empty {
            lowers.push(e.path().to_path_buf());
        }
        let opts = format!(
            "lowerdir={}",
            lowers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":")
        );
        nix::mount::mount(Some("overlay"), target, Some("overlay"), nix::mount::MsFlags::MS_RDONLY, Some(opts.as_str()))
            .unwrap_or_else(|e| panic!("mount -t overlay -o {opts} overlay {}: {e}", target.display()));
        Overlay { target: target.to_path_buf(), _empty: empty }
    }

    /// A writable overlay: `lowers` top first, plus an upper and a work dir.
    pub fn mount_rw(lowers: &[&Path], upper: &Path, work: &Path, target: &Path) -> Overlay {
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"),
            upper.display(),
            work.display()
        );
        nix::mount::mount(Some("overlay"), target, Some("overlay"), nix::mount::MsFlags::empty(), Some(opts.as_str()))
            .unwrap_or_else(|e| panic!("mount -t overlay -o {opts} overlay {}: {e}", target.display()));
        Overlay { target: target.to_path_buf(), _empty: None }
    }

    pub fn unmount(self) {}
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.target, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The tree under `dir` as sorted relative paths, directories with a
/// trailing `/` (symlinks not followed).
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(dir, dir, &mut |rel, m| {
        let mut s = rel.to_string();
        if m.is_dir() {
            s.push('/');
        }
        out.push(s);
    });
    out.sort();
    out
}

fn walk(top: &Path, dir: &Path, f: &mut dyn FnMut(&str, &std::fs::Metadata)) {
    let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    for n in names {
        let p = dir.join(&n);
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(top).unwrap().to_string_lossy().to_string();
        f(&rel, &m);
        if m.is_dir() {
            walk(top, &p, f);
        }
    }
}

/// Everything about one inode that a layer must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub content: Option<Vec<u8>>,
    pub target: Option<Vec<u8>>,
    pub rdev: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Index of the first path sharing this inode (hardlinks), if any.
    pub link_group: Option<String>,
}

/// A full snapshot of a tree (mtimes of directories included when `dir_times`).
pub fn snapshot(dir: &Path, dir_times: bool) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut first: BTreeMap<(u64, u64), String> = BTreeMap::new();
    walk(dir, dir, &mut |rel, m| {
        let p = dir.join(rel);
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "other"
        };
        let mut xattrs: Vec<(String, Vec<u8>)> = xattr::list(&p)
            .map(|l| {
                l.filter(|k| !k.as_bytes().starts_with(b"trusted.overlay."))
                    .map(|k| (k.to_string_lossy().to_string(), xattr::get(&p, &k).unwrap().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        xattrs.sort();
        let link_group = if !ft.is_dir() && m.nlink() > 1 {
            Some(first.entry((m.dev(), m.ino())).or_insert_with(|| rel.to_string()).clone())
        } else {
            None
        };
        out.insert(
            rel.to_string(),
            Node {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                mtime: if ft.is_dir() && !dir_times { 0 } else { m.mtime() },
                content: ft.is_file().then(|| std::fs::read(&p).unwrap()),
                target: ft.is_symlink().then(|| std::fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec()),
                rdev: if ft.is_char_device() || ft.is_block_device() { m.rdev() } else { 0 },
                xattrs,
                link_group,
            },
        );
    });
    out
}

/// Compare two snapshots and describe every difference.
pub fn diff_snapshots(a: &BTreeMap<String, Node>, b: &BTreeMap<String, Node>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, va) in a {
        match b.get(k) {
            None => out.push(format!("only in the first: {k}")),
            Some(vb) if va != vb => out.push(format!("{k}: {va:?}\n   != {vb:?}")),
            _ => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            out.push(format!("only in the second: {k}"));
        }
    }
    out
}
