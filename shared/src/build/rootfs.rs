//! The build state's filesystem, mounted so a step can change it.
//!
//! A COPY, ADD or WORKDIR step mounts an overlay of the state's unpacked
//! layers under a fresh upper directory (as a RUN's container does),
//! changes the merged view, unmounts, and the upper directory is the
//! step's change: [`crate::layer::diff`] turns it into a layer, and the
//! directory itself becomes that layer's unpacked copy in the layer cache
//! (overlayfs reads an upper dir as a lower dir as it is, so nothing is
//! unpacked again).
//!
//! Mounts are made in the builder's own mount namespace ([`private_mounts`]),
//! so none is visible on the host and none outlives the process, even if
//! it is killed.
//!
//! Every path in the merged view is opened with `openat2(RESOLVE_IN_ROOT)`
//! from the view's root: symlinks in the image are followed the way the
//! container would follow them, and never lead out of it.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Error, IoContext, Result};
use crate::runtime::sys;
use crate::store::{Store, TempDir};

/// Give this process its own mount namespace, with every mount private,
/// so the overlays a build mounts are seen by nothing else and vanish with
/// it. Call while the process is single-threaded.
pub fn private_mounts() -> Result<()> {
    crate::explain!("enter a private mount namespace for the build's overlays"; "unshare --mount --propagation private");
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .ctx("create a mount namespace for the build (unshare)", "/")
        .map_err(|e| e.hint("building images needs root (CAP_SYS_ADMIN)"))?;
    nix::mount::mount(None::<&str>, "/", None::<&str>, nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE, None::<&str>)
        .ctx("make mounts private (mount --make-rprivate)", "/")
}

/// An empty directory to stand for "no layers" (overlayfs needs a lower).
pub fn empty_lower(store: &Store) -> Result<PathBuf> {
    let p = crate::build::cache::dir(store).join("empty");
    if !p.is_dir() {
        crate::fsutil::mkdir_all(&p, 0o755)?;
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).ctx("chmod", &p)?;
    }
    Ok(p)
}

/// A mounted overlay: the state's layers under a new upper directory.
pub struct Overlay {
    tmp: Option<TempDir>,
    pub merged: PathBuf,
    pub upper: PathBuf,
    mounted: bool,
}

impl Overlay {
    /// Mount `lowers` (bottom first; none means an empty root) under a new
    /// upper directory. With `writable` false there is no upper: a
    /// read-only view (for `RUN --mount=type=bind,from=stage`).
    pub fn mount(store: &Store, lowers: &[PathBuf], writable: bool) -> Result<Overlay> {
        let tmp = store.temp_dir("step-")?;
        let base = tmp.path().to_path_buf();
        let (upper, work, merged) = (base.join("upper"), base.join("work"), base.join("merged"));
        for d in [&upper, &work, &merged] {
            crate::fsutil::mkdir_all(d, 0o755)?;
        }
        let lowers = if lowers.is_empty() { vec![empty_lower(store)?] } else { lowers.to_vec() };
        // The upper dir is the merged root's inode: it takes the image root's mode and owner.
        let top = std::fs::metadata(lowers.last().expect("one lower at least")).ctx("stat layer", &lowers[0])?;
        std::fs::set_permissions(&upper, std::os::unix::fs::PermissionsExt::from_mode(top.mode() & 0o7777)).ctx("chmod", &upper)?;
        std::os::unix::fs::chown(&upper, Some(top.uid()), Some(top.gid())).ctx("chown", &upper)?;
        let top_first: Vec<String> = lowers.iter().rev().map(|p| p.display().to_string()).collect();
        let data = if writable {
            format!("lowerdir={},upperdir={},workdir={}", top_first.join(":"), upper.display(), work.display())
        } else if top_first.len() == 1 {
            // One lower and no upper is not an overlay: bind the layer read-only.
            String::new()
        } else {
            format!("lowerdir={}", top_first.join(":"))
        };
        crate::explain!(
            format!("mount the build state ({} layer(s)) as an overlay", lowers.len());
            format!("mount -t overlay overlay -o {data} {}", merged.display())
        );
        if data.is_empty() {
            nix::mount::mount(Some(lowers[0].as_path()), &merged, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>)
                .ctx("bind mount", &merged)?;
            nix::mount::mount(None::<&str>, &merged, None::<&str>, nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REMOUNT | nix::mount::MsFlags::MS_RDONLY, None::<&str>)
                .ctx("make read-only", &merged)?;
        } else if data.len() < 4000 {
            let flags = if writable { nix::mount::MsFlags::empty() } else { nix::mount::MsFlags::MS_RDONLY };
            nix::mount::mount(Some("overlay"), &merged, Some("overlay"), flags, Some(data.as_str()))
                .ctx("mount overlay", &merged)
                .map_err(|e| e.context("mount the build state"))?;
        } else {
            // Too many layers for one mount(2) option page: the new mount API takes them one by one.
            let r = crate::runtime::mounts::Rootfs { lowers: lowers.clone(), upper: upper.clone(), work: work.clone(), target: merged.clone(), volatile: false };
            r.mount()?;
        }
        Ok(Overlay { tmp: Some(tmp), merged, upper, mounted: true })
    }

    /// The merged view's root, for `*at` calls.
    pub fn root(&self) -> Result<OwnedFd> {
        nix::fcntl::open(&self.merged, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()).ctx("open", &self.merged)
    }

    /// Unmount; the upper directory (and its temp dir) stay for the caller.
    pub fn unmount(&mut self) -> Result<()> {
        if self.mounted {
            self.mounted = false;
            nix::mount::umount2(&self.merged, nix::mount::MntFlags::MNT_DETACH).ctx("unmount", &self.merged)?;
        }
        Ok(())
    }

    /// Unmount and hand over the temporary directory holding the upper dir.
    pub fn into_upper(mut self) -> Result<(TempDir, PathBuf)> {
        self.unmount()?;
        let tmp = self.tmp.take().expect("taken once");
        Ok((tmp, self.upper.clone()))
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = self.unmount();
    }
}

/// Whether an upper directory holds no change at all.
pub fn is_empty_dir(p: &Path) -> Result<bool> {
    Ok(std::fs::read_dir(p).ctx("read directory", p)?.next().is_none())
}

/// `p` relative to the root, without `.`, `..` kept for the kernel to clamp.
fn rel(p: &Path) -> PathBuf {
    let r: PathBuf = p.components().filter(|c| !matches!(c, Component::RootDir | Component::CurDir)).collect();
    if r.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        r
    }
}

/// Open a path inside the root (symlinks followed inside it).
pub fn open_in_root(root: BorrowedFd, path: &Path, flags: i32) -> std::io::Result<OwnedFd> {
    sys::openat2(root, &rel(path), flags | libc::O_CLOEXEC, 0, sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS)
}

/// What a path is inside the root, following symlinks: `None` if absent.
pub fn stat_in_root(root: BorrowedFd, path: &Path) -> Result<Option<nix::sys::stat::FileStat>> {
    match open_in_root(root, path, libc::O_PATH) {
        Ok(fd) => Ok(Some(nix::sys::stat::fstat(&fd).ctx("stat", path)?)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => Ok(None),
        Err(e) => Err(Error::io("open in the image", path, e)),
    }
}

/// `mkdir -p` inside the root: each missing directory is made with `mode`
/// and `owner`, through the real (resolved) parent. Returns the directory.
pub fn mkdir_all_in_root(root: BorrowedFd, path: &Path, mode: u32, owner: (u32, u32)) -> Result<OwnedFd> {
    let mut done = PathBuf::from("/");
    for c in path.components() {
        let Component::Normal(name) = c else {
            if c == Component::ParentDir {
                done.pop();
            }
            continue;
        };
        let next = done.join(name);
        match open_in_root(root, &next, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let parent = open_in_root(root, &done, libc::O_PATH | libc::O_DIRECTORY).map_err(|e| Error::io("open in the image", &done, e))?;
                match nix::sys::stat::mkdirat(&parent, name, Mode::from_bits_truncate(mode)) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => return Err(Error::io("create directory in the image", &next, e.into())),
                }
                nix::unistd::fchownat(&parent, name, Some(owner.0.into()), Some(owner.1.into()), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
                    .ctx("chown in the image", &next)?;
                nix::sys::stat::fchmodat(&parent, name, Mode::from_bits_truncate(mode), nix::sys::stat::FchmodatFlags::NoFollowSymlink)
                    .or_else(|e| if e == nix::errno::Errno::EOPNOTSUPP { Ok(()) } else { Err(e) })
                    .ctx("chmod in the image", &next)?;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(Error::invalid(format!("{} exists in the image and is not a directory", next.display())))
            }
            Err(e) => return Err(Error::io("open in the image", &next, e)),
        }
        done = next;
    }
    open_in_root(root, path, libc::O_RDONLY | libc::O_DIRECTORY).map_err(|e| Error::io("open in the image", path, e))
}

/// A uid/gid from the image's /etc/passwd and /etc/group (read inside the
/// root, never through NSS): `user[:group]` by name or number. A user
/// alone gets its primary group (a number alone: gid = uid, as docker).
pub fn resolve_owner(root: BorrowedFd, spec: &str) -> Result<(u32, u32)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let read = |p: &str| -> String {
        open_in_root(root, Path::new(p), libc::O_RDONLY)
            .ok()
            .and_then(|fd| {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::Read::take(std::fs::File::from(fd), 4 << 20), &mut s).ok().map(|_| s)
            })
            .unwrap_or_default()
    };
    let id = |s: &str| s.parse::<u32>().ok();
    let (uid, primary) = match id(user) {
        Some(u) => (u, u),
        None => {
            let passwd = read("/etc/passwd");
            let line = passwd.lines().find(|l| l.split(':').next() == Some(user)).ok_or_else(|| {
                Error::invalid(format!("--chown {spec}: no user {user:?} in the image's /etc/passwd"))
            })?;
            let f: Vec<&str> = line.split(':').collect();
            match (f.get(2).and_then(|v| id(v)), f.get(3).and_then(|v| id(v))) {
                (Some(u), Some(g)) => (u, g),
                _ => return Err(Error::invalid(format!("the image's /etc/passwd has a malformed line for {user:?}"))),
            }
        }
    };
    let gid = match group {
        None => primary,
        Some(g) => match id(g) {
            Some(g) => g,
            None => {
                let groups = read("/etc/group");
                groups
                    .lines()
                    .find(|l| l.split(':').next() == Some(g))
                    .and_then(|l| l.split(':').nth(2))
                    .and_then(id)
                    .ok_or_else(|| Error::invalid(format!("--chown {spec}: no group {g:?} in the image's /etc/group")))?
            }
        },
    };
    Ok((uid, gid))
}

/// An `OsStr` from bytes.
pub fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// The fd as a `/proc/self/fd/N` path (for calls that take only paths).
pub fn fd_path(fd: BorrowedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd)))
}

/// Keep the fd type in scope for callers.
pub fn borrow(fd: &OwnedFd) -> BorrowedFd<'_> {
    fd.as_fd()
}
