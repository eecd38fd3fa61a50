//! Content checksums of build-context files, for the build cache.
//!
//! A COPY or ADD step is a cache hit when the files it copies are the same
//! as last time: same relative paths, types, modes, link targets and bytes.
//! Hashing hundreds of megabytes on every build would make a cached rebuild
//! slow, so a *stat cache* remembers, per file, the (size, mtime, ctime,
//! inode) it had when it was last hashed, and the hash: a file whose stat
//! has not changed is not read again (git's index works the same way).
//! Files are hashed in parallel, streaming, never whole in memory.
//!
//! A file modified within the same instant as it was hashed could keep its
//! stat ("racy git"): entries whose mtime is not safely in the past when
//! they are hashed are not cached, so they are hashed again next time.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;

/// What identifies an unchanged file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct StatKey {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
}

impl StatKey {
    fn of(m: &fs::Metadata) -> StatKey {
        StatKey {
            size: m.size(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
            ino: m.ino(),
            dev: m.dev(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    stat: StatKey,
    sha256: Digest,
}

/// The stat cache of one context directory, kept under the store root.
#[derive(Debug, Default)]
pub struct StatCache {
    file: Option<PathBuf>,
    entries: HashMap<PathBuf, Cached>,
    /// Checksums of this run that must not be trusted next time (racy files).
    racy: HashMap<PathBuf, Digest>,
    dirty: bool,
    /// How many files were actually read (for --explain and tests).
    pub files_hashed: usize,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    entries: Vec<(PathBuf, Cached)>,
}

impl StatCache {
    /// A cache that is not kept between runs.
    pub fn in_memory() -> StatCache {
        StatCache::default()
    }

    /// Load the cache for `context` from `dir` (a missing or unreadable
    /// cache file is an empty cache: it only costs a re-hash).
    pub fn load(dir: &Path, context: &Path) -> StatCache {
        let key = Digest::sha256_of(context.as_os_str().as_encoded_bytes());
        let file = dir.join(format!("{}.json", key.encoded()));
        let entries = fs::read(&file)
            .ok()
            .and_then(|d| serde_json::from_slice::<OnDisk>(&d).ok())
            .filter(|d| d.version == 1)
            .map(|d| d.entries.into_iter().collect())
            .unwrap_or_default();
        StatCache { file: Some(file), entries, ..StatCache::default() }
    }

    /// Write the cache back if it changed.
    pub fn save(&mut self) -> Result<()> {
        let Some(file) = &self.file else { return Ok(()) };
        if !self.dirty {
            return Ok(());
        }
        if let Some(parent) = file.parent() {
            fsutil::mkdir_all(parent, 0o700)?;
        }
        let mut entries: Vec<(PathBuf, Cached)> = self.entries.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let data = serde_json::to_vec(&OnDisk { version: 1, entries }).expect("serialisable");
        fsutil::write_atomic(file, &data)?;
        self.dirty = false;
        Ok(())
    }
}

/// One file-system entry of a checksummed set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrySum {
    /// Path relative to the context root.
    pub path: PathBuf,
    pub kind: EntryKind,
    /// Permission bits (incl. setuid/setgid/sticky).
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File { sha256: Digest, size: u64 },
    Dir,
    Symlink { target: PathBuf },
}

/// What to do with an entry met while walking a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// Part of the set (and, for a directory, look inside).
    Include,
    /// Not part of the set, nor anything below it.
    Skip,
    /// Not part of the set by itself, but something below it may be (a
    /// `.dockerignore` exception under an excluded directory): look
    /// inside, and keep the directory if anything below it is kept.
    Descend,
}

/// Checksum a set of entries under `root`: every path in `paths` (relative
/// to `root`), and for directories everything below them that `visit`
/// keeps. Returns one digest over the set (paths, types, modes, link
/// targets, contents) — what the build cache keys a COPY on — and the
/// entries, sorted, which is what the COPY then copies.
pub fn checksum(
    root: &Path,
    paths: &[PathBuf],
    visit: &(dyn Fn(&Path) -> Visit + Sync),
    cache: &mut StatCache,
) -> Result<(Digest, Vec<EntrySum>)> {
    // 1. Walk, collecting entries in a deterministic (sorted) order.
    let mut found: BTreeMap<PathBuf, fs::Metadata> = BTreeMap::new();
    for p in paths {
        walk(root, p, visit, &mut found)?;
    }
    // 2. Hash the files whose stat the cache does not vouch for, in parallel.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    let todo: Vec<(&PathBuf, &fs::Metadata)> = found
        .iter()
        .filter(|(p, m)| {
            m.file_type().is_file()
                && cache.entries.get(*p).map(|c| c.stat != StatKey::of(m)).unwrap_or(true)
        })
        .collect();
    let hashed = hash_parallel(root, &todo)?;
    cache.files_hashed += hashed.len();
    for ((p, m), d) in todo.iter().zip(hashed) {
        let stat = StatKey::of(m);
        // Racy: modified less than 2 s before now — do not trust the stat next time.
        if now - stat.mtime_ns > 2_000_000_000 {
            cache.entries.insert((*p).clone(), Cached { stat, sha256: d.clone() });
            cache.dirty = true;
        } else {
            cache.dirty |= cache.entries.remove(*p).is_some();
            cache.racy.insert((*p).clone(), d);
        }
    }
    // 3. Fold everything into one digest.
    let mut h = Hasher::new(Algorithm::Sha256);
    let mut sums = Vec::with_capacity(found.len());
    for (p, m) in &found {
        let mode = m.mode() & 0o7777;
        let kind = if m.file_type().is_symlink() {
            let target = fs::read_link(root.join(p)).ctx("read link", root.join(p))?;
            EntryKind::Symlink { target }
        } else if m.is_dir() {
            EntryKind::Dir
        } else if m.file_type().is_file() {
            let sha256 = cache
                .lookup(p)
                .ok_or_else(|| Error::Corrupt(format!("internal: no checksum for {}", p.display())))?;
            EntryKind::File { sha256, size: m.size() }
        } else {
            // Devices, sockets and fifos in a context are not copied by docker either.
            continue;
        };
        h.update(p.as_os_str().as_encoded_bytes());
        h.update(&[0]);
        h.update(&mode.to_le_bytes());
        match &kind {
            EntryKind::File { sha256, .. } => {
                h.update(b"f");
                h.update(sha256.encoded().as_bytes());
            }
            EntryKind::Dir => h.update(b"d"),
            EntryKind::Symlink { target } => {
                h.update(b"l");
                h.update(target.as_os_str().as_encoded_bytes());
            }
        }
        h.update(&[0]);
        sums.push(EntrySum { path: p.clone(), kind, mode });
    }
    Ok((h.finish(), sums))
}

impl StatCache {
    fn lookup(&self, p: &Path) -> Option<Digest> {
        self.entries.get(p).map(|c| c.sha256.clone()).or_else(|| self.racy.get(p).cloned())
    }
}

/// Add `rel` (and what is below it) to `found`; returns whether anything was added.
fn walk(
    root: &Path,
    rel: &Path,
    visit: &(dyn Fn(&Path) -> Visit + Sync),
    found: &mut BTreeMap<PathBuf, fs::Metadata>,
) -> Result<bool> {
    walk_as(root, rel, Visit::Include, visit, found)
}

fn walk_as(
    root: &Path,
    rel: &Path,
    how: Visit,
    visit: &(dyn Fn(&Path) -> Visit + Sync),
    found: &mut BTreeMap<PathBuf, fs::Metadata>,
) -> Result<bool> {
    let full = root.join(rel);
    let m = fs::symlink_metadata(&full).ctx("stat", &full)?;
    let is_dir = m.is_dir();
    if how == Visit::Descend && !is_dir {
        return Ok(false);
    }
    let mut any = how == Visit::Include;
    if any {
        found.insert(rel.to_path_buf(), m.clone());
    }
    if is_dir {
        let mut children: Vec<_> = fs::read_dir(&full)
            .ctx("read directory", &full)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .ctx("read directory", &full)?;
        children.sort();
        for c in children {
            let child = rel.join(c);
            match visit(&child) {
                Visit::Skip => {}
                v => any |= walk_as(root, &child, v, visit, found)?,
            }
        }
        if any && how == Visit::Descend {
            found.insert(rel.to_path_buf(), m);
        }
    }
    Ok(any)
}

/// Hash files with one worker per CPU, each streaming through a 1 MiB buffer.
fn hash_parallel(root: &Path, files: &[(&PathBuf, &fs::Metadata)]) -> Result<Vec<Digest>> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(files.len());
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Digest>>>> = Mutex::new((0..files.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= files.len() {
                        break;
                    }
                    let r = hash_file(&root.join(files[i].0), &mut buf);
                    results.lock().expect("no worker panics holding the lock")[i] = Some(r);
                }
            });
        }
    });
    results.into_inner().expect("workers are done").into_iter().map(|r| r.expect("every file was hashed")).collect()
}

fn hash_file(path: &Path, buf: &mut [u8]) -> Result<Digest> {
    let mut f = File::open(path).ctx("open", path)?;
    let mut h = Hasher::new(Algorithm::Sha256);
    loop {
        let n = f.read(buf).ctx("read", path)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_old_mtime(p: &Path) {
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        File::options().write(true).open(p).unwrap().set_modified(old).unwrap();
    }

    #[test]
    fn unchanged_files_are_not_read_again_and_changes_are_seen() {
        let ctx = tempfile::tempdir().unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        fs::create_dir(ctx.path().join("src")).unwrap();
        for i in 0..50 {
            let p = ctx.path().join(format!("src/f{i}"));
            fs::write(&p, format!("file {i}")).unwrap();
            set_old_mtime(&p);
        }
        std::os::unix::fs::symlink("f1", ctx.path().join("src/link")).unwrap();
        let all = |_: &Path| Visit::Include;
        let mut c = StatCache::load(cache_dir.path(), ctx.path());
        let (d1, sums) = checksum(ctx.path(), &[PathBuf::from("src")], &all, &mut c).unwrap();
        assert_eq!(c.files_hashed, 50);
        assert_eq!(sums.len(), 52); // dir + 50 files + link
        c.save().unwrap();

        let mut c = StatCache::load(cache_dir.path(), ctx.path());
        let (d2, _) = checksum(ctx.path(), &[PathBuf::from("src")], &all, &mut c).unwrap();
        assert_eq!(d1, d2);
        assert_eq!(c.files_hashed, 0, "a cached rebuild reads no file");

        // One changed file is re-read, and changes the checksum.
        fs::write(ctx.path().join("src/f7"), "changed").unwrap();
        let (d3, _) = checksum(ctx.path(), &[PathBuf::from("src")], &all, &mut c).unwrap();
        assert_ne!(d1, d3);
        assert_eq!(c.files_hashed, 1);
        // A mode change alone changes it too.
        fs::set_permissions(ctx.path().join("src/f8"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let (d4, _) = checksum(ctx.path(), &[PathBuf::from("src")], &all, &mut c).unwrap();
        assert_ne!(d3, d4);
        // Excluded files do not count.
        let no_f9 = |p: &Path| if p == Path::new("src/f9") { Visit::Skip } else { Visit::Include };
        let (d5, sums) = checksum(ctx.path(), &[PathBuf::from("src")], &no_f9, &mut c).unwrap();
        assert_ne!(d4, d5);
        assert!(!sums.iter().any(|s| s.path == Path::new("src/f9")));
    }

    #[test]
    fn excluded_directories_are_entered_only_for_exceptions() {
        let ctx = tempfile::tempdir().unwrap();
        for p in ["ex/keep", "ex/drop", "other/x"] {
            let f = ctx.path().join(p);
            fs::create_dir_all(f.parent().unwrap()).unwrap();
            fs::write(&f, p).unwrap();
        }
        // `ex` is excluded but `ex/keep` re-included (a .dockerignore `!ex/keep`).
        let visit = |p: &Path| match p.to_str().unwrap() {
            "ex/keep" => Visit::Include,
            "ex" | "ex/drop" => Visit::Descend,
            "other" => Visit::Skip,
            _ => Visit::Include,
        };
        let mut c = StatCache::in_memory();
        let (_, sums) = checksum(ctx.path(), &[PathBuf::new()], &visit, &mut c).unwrap();
        let paths: Vec<&str> = sums.iter().map(|s| s.path.to_str().unwrap()).collect();
        assert_eq!(paths, ["", "ex", "ex/keep"]);
    }

    #[test]
    fn racy_files_are_hashed_every_time() {
        let ctx = tempfile::tempdir().unwrap();
        fs::write(ctx.path().join("fresh"), "now").unwrap();
        let mut c = StatCache::in_memory();
        checksum(ctx.path(), &[PathBuf::from("fresh")], &|_| Visit::Include, &mut c).unwrap();
        checksum(ctx.path(), &[PathBuf::from("fresh")], &|_| Visit::Include, &mut c).unwrap();
        assert_eq!(c.files_hashed, 2);
    }
}
