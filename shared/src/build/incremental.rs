//! Re-copy only what changed: when a COPY of a directory misses the cache
//! because some of its files changed, its new layer is made from the layer
//! the same COPY made last time. Unchanged files are hard links to that
//! layer's unpacked files (a link is a directory entry; a new file is a new
//! inode and its data, many times slower on most filesystems); changed and
//! new files are copied; removed ones are left out.
//!
//! The previous result is found by the COPY's *family*: the same
//! instruction, flags, owner and destination as the step finds it (the
//! fingerprint of [`super::copy::dest_fingerprint`]), but any file content.
//! Its record lists, per file written, a signature (digest, mode, owner,
//! modification time): a file whose signature is the same is linked.
//!
//! It applies only when nothing the COPY writes exists in the image yet (so
//! the overlay would have made no whiteout nor copied anything up but the
//! directories above DEST, which are recreated with the previous layer's
//! metadata). Layer directories are never written once made, so sharing
//! inodes between two of them is safe; a container's writes go to its own
//! upper directory (overlayfs copies a file up before changing it).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cache::StoredLayer;
use super::copy::{self, Entry, Kind, Options};
use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::fsutil;
use crate::store::Store;

/// What the last COPY of a family made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub layer: StoredLayer,
    /// Target path in the image → signature of the file written there.
    pub files: BTreeMap<String, String>,
}

fn path(store: &Store, family: &Digest) -> PathBuf {
    super::cache::dir(store).join("copies").join(format!("{}.json", family.encoded()))
}

pub fn load(store: &Store, family: &Digest) -> Option<Record> {
    let data = std::fs::read(path(store, family)).ok()?;
    serde_json::from_slice(&data).ok()
}

pub fn save(store: &Store, family: &Digest, record: &Record) -> Result<()> {
    let p = path(store, family);
    fsutil::mkdir_all(p.parent().expect("has a parent"), 0o700)?;
    fsutil::write_json_atomic(&p, record)
}

/// A file's signature: what must be equal for its copy to be the same.
pub fn signature(src: &Path, e: &Entry, opts: &Options) -> Result<String> {
    let m = std::fs::symlink_metadata(src).ctx("stat", src)?;
    let sha = e.sha256.as_ref().map(|d| d.to_string()).unwrap_or_default();
    Ok(format!("{sha} {:o} {:?} {}.{}", opts.mode.unwrap_or(e.mode), opts.owner, m.mtime(), m.mtime_nsec()))
}

/// The signatures of every file a COPY writes.
pub fn signatures(src_root: &Path, targets: &[(&Entry, PathBuf, bool)], opts: &Options) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (e, target, written) in targets {
        if *written && e.kind == Kind::File {
            out.insert(target.display().to_string(), signature(&src_root.join(&e.path), e, opts)?);
        }
    }
    Ok(out)
}

/// Build the new upper directory at `new` (which must not exist) from the
/// previous one at `prev`. Returns how many files were linked and copied.
#[allow(clippy::too_many_arguments)]
pub fn build(prev: &Path, new: &Path, src_root: &Path, dest: &str, targets: &[(&Entry, PathBuf, bool)], before: &BTreeMap<String, String>, now: &BTreeMap<String, String>, opts: &Options) -> Result<(usize, usize)> {
    let at = |p: &Path| new.join(p.strip_prefix("/").unwrap_or(p));
    let was = |p: &Path| prev.join(p.strip_prefix("/").unwrap_or(p));
    // The upper dir's root and the directories down to DEST: as the previous layer had them.
    let mut dirs: Vec<(PathBuf, std::fs::Metadata)> = Vec::new();
    let make_like_before = |p: &Path, dirs: &mut Vec<(PathBuf, std::fs::Metadata)>| -> Result<()> {
        let m = std::fs::symlink_metadata(was(p)).ctx("stat", was(p))?;
        let d = at(p);
        if !d.exists() {
            std::fs::create_dir(&d).ctx("create directory", &d)?;
        }
        std::os::unix::fs::chown(&d, Some(m.uid()), Some(m.gid())).ctx("chown", &d)?;
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(m.mode() & 0o7777)).ctx("chmod", &d)?;
        dirs.push((d, m));
        Ok(())
    };
    for a in copy::ancestors(dest) {
        if was(&a).is_dir() {
            make_like_before(&a, &mut dirs)?;
        } else {
            // DEST itself is a file target: its parent is the last directory.
            break;
        }
    }
    let (mut linked, mut copied) = (0, 0);
    let mut src_dir_times = Vec::new();
    for (e, target, written) in targets {
        if !written {
            continue; // DEST for a source directory: made above
        }
        let dst = at(target);
        let src = src_root.join(&e.path);
        let md = std::fs::symlink_metadata(&src).ctx("stat", &src)?;
        match e.kind {
            Kind::Dir => {
                if !dst.is_dir() {
                    std::fs::create_dir(&dst).ctx("create directory", &dst)?;
                }
                std::os::unix::fs::chown(&dst, Some(opts.owner.0), Some(opts.owner.1)).ctx("chown", &dst)?;
                std::fs::set_permissions(&dst, std::os::unix::fs::PermissionsExt::from_mode(opts.mode.unwrap_or(e.mode))).ctx("chmod", &dst)?;
                src_dir_times.push((dst, md.mtime(), md.mtime_nsec()));
            }
            Kind::File => {
                let key = target.display().to_string();
                let same = before.get(&key).is_some_and(|b| now.get(&key) == Some(b)) && was(target).is_file();
                if same {
                    std::fs::hard_link(was(target), &dst).ctx("link", &dst)?;
                    linked += 1;
                } else {
                    let mut input = crate::fsutil::open_nofollow(&src)?;
                    let mut out = std::fs::OpenOptions::new().write(true).create_new(true).open(&dst).ctx("create", &dst)?;
                    std::io::copy(&mut input, &mut out).ctx("copy", &dst)?;
                    std::os::unix::fs::fchown(&out, Some(opts.owner.0), Some(opts.owner.1)).ctx("chown", &dst)?;
                    out.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(opts.mode.unwrap_or(e.mode))).ctx("chmod", &dst)?;
                    let ts = nix::sys::time::TimeSpec::new(md.mtime(), md.mtime_nsec());
                    nix::sys::stat::futimens(&out, &ts, &ts).ctx("set times of", &dst)?;
                    copied += 1;
                }
            }
            Kind::Symlink => {
                let link = std::fs::read_link(&src).ctx("read link", &src)?;
                std::os::unix::fs::symlink(&link, &dst).ctx("create symlink", &dst)?;
                std::os::unix::fs::lchown(&dst, Some(opts.owner.0), Some(opts.owner.1)).ctx("chown", &dst)?;
                let ts = nix::sys::time::TimeSpec::new(md.mtime(), md.mtime_nsec());
                nix::sys::stat::utimensat(nix::fcntl::AT_FDCWD, &dst, &ts, &ts, nix::sys::stat::UtimensatFlags::NoFollowSymlink).ctx("set times of", &dst)?;
            }
        }
    }
    // Directory times last (their entries changed them): deepest first.
    for (d, secs, nsecs) in src_dir_times.iter().rev() {
        let ts = nix::sys::time::TimeSpec::new(*secs, *nsecs);
        nix::sys::stat::utimensat(nix::fcntl::AT_FDCWD, d, &ts, &ts, nix::sys::stat::UtimensatFlags::NoFollowSymlink).ctx("set times of", d)?;
    }
    for (d, m) in dirs.iter().rev() {
        let ts = nix::sys::time::TimeSpec::new(m.mtime(), m.mtime_nsec());
        nix::sys::stat::utimensat(nix::fcntl::AT_FDCWD, d, &ts, &ts, nix::sys::stat::UtimensatFlags::NoFollowSymlink).ctx("set times of", d)?;
    }
    Ok((linked, copied))
}
