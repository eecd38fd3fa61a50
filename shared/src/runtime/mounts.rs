//! The container's filesystem view, built in its own mount namespace:
//!
//! 1. the root: an overlayfs of the image's unpacked layers (read-only,
//!    shared by every container of the image) under a per-container upper
//!    dir that takes its writes;
//! 2. the spec's mounts onto it: `/proc`, a tmpfs `/dev` with its own
//!    `devpts`, `/dev/shm`, `/dev/mqueue`, a read-only `/sys`, and the
//!    per-container `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`;
//! 3. the device nodes in `/dev`, and its standard symlinks;
//! 4. masked paths (a directory hidden under an empty read-only tmpfs, a
//!    file under `/dev/null`) and read-only paths (`/proc/sys`…).
//!
//! Every mount goes onto a file descriptor opened with `openat2` *inside*
//! the root (RESOLVE_IN_ROOT), through the new mount API (`fsopen`/
//! `fsmount`/`open_tree`/`move_mount`), so a symlink planted in an image
//! can never aim a mount at the host (CVE-2021-30465, CVE-2019-19921,
//! CVE-2026-41579). `/proc`, `/sys` and `/dev` must be plain directories in
//! the image: a symlink there is refused with an error naming it.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount};

use super::sys;
use crate::error::{Error, IoContext, Result};
use crate::explain;

/// The overlay that becomes the container's root.
#[derive(Debug, Clone)]
pub struct Rootfs {
    /// Unpacked layers, bottom first.
    pub lowers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Where it is mounted (inside the container's mount namespace only).
    pub target: PathBuf,
    /// overlayfs `volatile`: no sync of the upper dir ever, in particular
    /// none at unmount (which would flush the whole host filesystem). Only
    /// for containers whose writable layer is thrown away (`--rm`): after a
    /// crash the kernel refuses to mount a volatile upper dir again.
    pub volatile: bool,
}

impl Rootfs {
    /// `mount -t overlay` with the layers top first, as overlayfs wants them.
    pub fn mount(&self) -> Result<()> {
        if self.lowers.is_empty() {
            return Err(Error::invalid("the image has no layers: there is no root filesystem to run"));
        }
        let top_first: Vec<&PathBuf> = self.lowers.iter().rev().collect();
        explain!(
            format!("mount the root filesystem: an overlay of {} read-only layer(s) under a writable upper dir", self.lowers.len());
            format!(
                "mount -t overlay overlay -o lowerdir={},upperdir={},workdir={}{} {}",
                top_first.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"),
                self.upper.display(),
                self.work.display(),
                if self.volatile { ",volatile" } else { "" },
                self.target.display()
            )
        );
        // "lowerdir+" (Linux 6.8) takes one layer per call: no 256-byte or
        // page-size limit on how many layers an image may have. Older
        // kernels refuse it: 6.5-6.7 as an unknown option, earlier ones
        // (whose overlayfs parses one legacy option string, Debian 12's 6.1
        // among them) only when mounting, with nothing in the context's log.
        // There every layer goes into one `lowerdir=top:...:bottom`, as
        // mount(8) passes it.
        let mnt = match self.create(&top_first, true) {
            Err(r) if r.lacks_lowerdir_plus() => {
                explain!("this kernel's overlayfs has no lowerdir+ (Linux 6.8): all layers in one lowerdir= option");
                self.create(&top_first, false)
            }
            other => other,
        }
        .map_err(|r| r.into_error(self))?;
        let target = std::fs::File::open(&self.target).ctx("open", &self.target)?;
        sys::move_mount_fd(mnt.as_fd(), target.as_fd()).ctx("attach overlay at", &self.target)?;
        Ok(())
    }
}

impl Rootfs {
    /// The overlay, configured and created as a detached mount: the layers
    /// one `lowerdir+` each, or all in one `lowerdir`.
    fn create(&self, top_first: &[&PathBuf], one_by_one: bool) -> std::result::Result<OwnedFd, OverlayRefusal> {
        let fs = sys::fsopen("overlay").map_err(|error| OverlayRefusal { step: OverlayStep::Open, error, log: None })?;
        let set = |k: &'static str, v: String, flag: bool| {
            sys::fsconfig_set(fs.as_fd(), k, (!flag).then_some(v.as_str())).map_err(|error| OverlayRefusal {
                step: OverlayStep::Option(k, v.clone()),
                error,
                log: sys::fs_error_log(fs.as_fd()),
            })
        };
        if one_by_one {
            for l in top_first {
                set("lowerdir+", l.to_string_lossy().into_owned(), false)?;
            }
        } else {
            set("lowerdir", top_first.iter().map(|l| escape_lowerdir(l)).collect::<Vec<_>>().join(":"), false)?;
        }
        set("upperdir", self.upper.to_string_lossy().into_owned(), false)?;
        set("workdir", self.work.to_string_lossy().into_owned(), false)?;
        if self.volatile {
            set("volatile", String::new(), true)?;
        }
        sys::fs_create_mount(fs.as_fd(), 0).map_err(|error| OverlayRefusal { step: OverlayStep::Mount, error, log: sys::fs_error_log(fs.as_fd()) })
    }
}

/// Why the kernel refused an overlay: at which step, the errno, and the
/// filesystem context's log.
struct OverlayRefusal {
    step: OverlayStep,
    error: std::io::Error,
    log: Option<String>,
}

enum OverlayStep {
    Open,
    /// The option and its value.
    Option(&'static str, String),
    Mount,
}

impl OverlayRefusal {
    /// A kernel before 6.8: `lowerdir+` refused as an option, or (legacy
    /// overlayfs) the mount refused with an empty log.
    fn lacks_lowerdir_plus(&self) -> bool {
        self.error.raw_os_error() == Some(libc::EINVAL)
            && match &self.step {
                OverlayStep::Option(k, _) => *k == "lowerdir+",
                OverlayStep::Mount => self.log.is_none(),
                OverlayStep::Open => false,
            }
    }

    fn into_error(self, root: &Rootfs) -> Error {
        let why = self.log.map(|m| format!(" ({m})")).unwrap_or_default();
        match self.step {
            OverlayStep::Open if self.error.raw_os_error() == Some(libc::ENODEV) => {
                Error::io("open an overlay filesystem context", &root.target, self.error).hint("this kernel has no overlayfs: modprobe overlay")
            }
            OverlayStep::Open => Error::io("open an overlay filesystem context", &root.target, self.error),
            OverlayStep::Option(k, v) => Error::io("configure overlay", v, self.error).context(format!("overlay option {k}{why}")),
            OverlayStep::Mount => {
                let err = Error::io("mount overlay", &root.target, self.error).context(format!("root filesystem{why}"));
                if why.is_empty() && root.lowers.len() > 1 {
                    err.hint("before Linux 6.8 overlayfs takes every layer in one option of at most one page (4096 bytes): an image with very many layers needs a newer kernel; the kernel log (dmesg) says more")
                } else {
                    err
                }
            }
        }
    }
}

/// A layer path inside `lowerdir=`, where `:` separates layers and `\`
/// escapes (a `,` cannot be passed at all: it separates legacy options).
fn escape_lowerdir(p: &Path) -> String {
    let mut out = String::new();
    for c in p.to_string_lossy().chars() {
        if matches!(c, ':' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Make every mount in our new namespace private, so nothing we mount or
/// unmount propagates back to the host.
pub fn make_private() -> Result<()> {
    explain!("make every mount private to the container's mount namespace"; "mount --make-rprivate /");
    nix::mount::mount(None::<&str>, "/", None::<&str>, nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE, None::<&str>)
        .ctx("make mounts private (mount --make-rprivate)", "/")
}

/// `dest` relative to the root ("." for the root itself).
fn rel(dest: &Path) -> PathBuf {
    let r: PathBuf = dest.components().filter(|c| matches!(c, Component::Normal(_))).collect();
    if r.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        r
    }
}

fn is_special(dest: &Path) -> bool {
    ["/proc", "/sys", "/dev"].iter().any(|p| dest.starts_with(p))
}

/// Open (creating if missing) the mount target `dest` inside `root`.
/// Under /proc, /sys and /dev no symlink may appear at all; elsewhere
/// symlinks are followed but stay inside the root.
pub fn target(root: BorrowedFd, dest: &Path, dir: bool) -> Result<OwnedFd> {
    let r = rel(dest);
    let resolve = if is_special(dest) {
        sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_BENEATH
    } else {
        sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS
    };
    let open = || sys::openat2(root, &r, libc::O_PATH, 0, resolve);
    let fd = match open() {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            create_in_root(root, &r, dir, resolve).map_err(|e| e.context(format!("create mount point {}", dest.display())))?;
            open().ctx("open mount point", dest)?
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) || e.raw_os_error() == Some(libc::EXDEV) => {
            return Err(Error::invalid(format!(
                "{} in the image goes through a symbolic link; it must be a plain {} (refusing to mount through it)",
                dest.display(),
                if dir { "directory" } else { "file" }
            )))
        }
        Err(e) => return Err(Error::io("open mount point", dest, e)),
    };
    let st = nix::sys::stat::fstat(fd.as_fd()).ctx("stat mount point", dest)?;
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(Error::invalid(format!(
            "{} in the image is a symbolic link; it must be a plain {} (refusing to mount through it)",
            dest.display(),
            if dir { "directory" } else { "file" }
        )));
    }
    if dir && !is_dir {
        return Err(Error::invalid(format!("{} in the image is not a directory; it must be a plain directory", dest.display())));
    }
    if !dir && is_dir {
        return Err(Error::invalid(format!("{} in the image is a directory; a file is mounted there", dest.display())));
    }
    Ok(fd)
}

/// `mkdir -p` (and a final empty file when `!dir`) inside `root`, each
/// component resolved within it. A dangling symlink on the way is followed
/// the way the container would see it (its target made inside the root),
/// as docker's securejoin does; never outside.
fn create_in_root(root: BorrowedFd, rel: &Path, dir: bool, resolve: u64) -> Result<()> {
    let mut todo = rel.to_path_buf();
    let mut hops = 0;
    'restart: loop {
        let comps: Vec<_> = todo.components().collect();
        let mut cur = PathBuf::new();
        for (i, c) in comps.iter().enumerate() {
            let parent = if cur.as_os_str().is_empty() { PathBuf::from(".") } else { cur.clone() };
            cur.push(c);
            let last = i + 1 == comps.len();
            match sys::openat2(root, &cur, libc::O_PATH, 0, resolve) {
                Ok(_) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(Error::io("open", Path::new("/").join(&cur), e)),
            }
            let pfd = sys::openat2(root, &parent, libc::O_PATH | libc::O_DIRECTORY, 0, resolve).ctx("open", Path::new("/").join(&parent))?;
            let name = CString::new(c.as_os_str().as_encoded_bytes()).map_err(|_| Error::invalid("path with NUL"))?;
            if let Ok(target) = nix::fcntl::readlinkat(pfd.as_fd(), name.as_c_str()) {
                // A dangling symlink: go on from its target, inside the root.
                hops += 1;
                if hops > 40 {
                    return Err(Error::io("resolve", Path::new("/").join(rel), std::io::Error::from_raw_os_error(libc::ELOOP)));
                }
                let target = PathBuf::from(target);
                let mut next = if target.is_absolute() { target.strip_prefix("/").unwrap_or(&target).to_path_buf() } else { parent.join(target) };
                for rest in &comps[i + 1..] {
                    next.push(rest);
                }
                todo = next;
                continue 'restart;
            }
            if last && !dir {
                sys::openat2(root, &cur, libc::O_CREAT | libc::O_WRONLY, 0o644, resolve).ctx("create", Path::new("/").join(&cur))?;
                continue;
            }
            // SAFETY: valid dirfd and C string.
            if unsafe { libc::mkdirat(pfd.as_raw_fd(), name.as_ptr(), 0o755) } < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(Error::io("create", Path::new("/").join(&cur), e));
                }
            }
        }
        return Ok(());
    }
}

/// Mount options split the way the kernel wants them: per-mount flags,
/// filesystem parameters, and whether this is a bind mount.
#[derive(Debug, Default, PartialEq)]
pub struct Options {
    pub attrs: u64,
    pub data: Vec<(String, Option<String>)>,
    pub bind: bool,
    pub recursive: bool,
}

pub fn parse_options(opts: &[String]) -> Options {
    let mut o = Options::default();
    for opt in opts {
        match opt.as_str() {
            "ro" => o.attrs |= sys::MOUNT_ATTR_RDONLY,
            "rw" | "relatime" | "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared" | "suid" | "dev" | "exec" => {}
            "nosuid" => o.attrs |= sys::MOUNT_ATTR_NOSUID,
            "nodev" => o.attrs |= sys::MOUNT_ATTR_NODEV,
            "noexec" => o.attrs |= sys::MOUNT_ATTR_NOEXEC,
            "noatime" => o.attrs |= sys::MOUNT_ATTR_NOATIME,
            "strictatime" => o.attrs |= sys::MOUNT_ATTR_STRICTATIME,
            "nodiratime" => o.attrs |= sys::MOUNT_ATTR_NODIRATIME,
            "bind" => o.bind = true,
            "rbind" => {
                o.bind = true;
                o.recursive = true;
            }
            other => match other.split_once('=') {
                Some((k, v)) => o.data.push((k.to_string(), Some(v.to_string()))),
                None => o.data.push((other.to_string(), None)),
            },
        }
    }
    o
}

/// The shell spelling of a mount, for --explain.
fn shell_of(m: &Mount, target: &str) -> String {
    let opts = m.options().clone().unwrap_or_default().join(",");
    let typ = m.typ().clone().unwrap_or_default();
    let src = m.source().as_ref().map(|s| s.display().to_string()).unwrap_or_else(|| typ.clone());
    if typ == "bind" {
        format!("mount --bind -o {opts} {src} {target}")
    } else {
        format!("mount -t {typ} -o {opts} {src} {target}")
    }
}

/// Mount one spec entry under `root` (the rootfs, still seen from outside).
pub fn mount_entry(root: BorrowedFd, rootfs_path: &Path, m: &Mount) -> Result<()> {
    let dest = m.destination();
    if !dest.is_absolute() {
        return Err(Error::invalid(format!("mount destination {} must be absolute", dest.display())));
    }
    let typ = m.typ().clone().unwrap_or_default();
    let o = parse_options(m.options().as_deref().unwrap_or_default());
    let host_target = rootfs_path.join(rel(dest));
    explain!(format!("mount {typ} on {}", dest.display()); shell_of(m, &host_target.display().to_string()));
    let what = || format!("mount {typ} on {}", dest.display());
    if o.bind || typ == "bind" {
        let src = m.source().clone().ok_or_else(|| Error::invalid(format!("bind mount on {} has no source", dest.display())))?;
        let src_dir = std::fs::metadata(&src).ctx("stat bind mount source", &src)?.is_dir();
        let tgt = target(root, dest, src_dir).map_err(|e| e.context(what()))?;
        let flags = sys::OPEN_TREE_CLONE | if o.recursive { sys::AT_RECURSIVE } else { 0 };
        let cwd = unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) };
        let tree = sys::open_tree(cwd, &src, flags).ctx("bind mount (open_tree)", &src)?;
        if o.attrs != 0 {
            sys::mount_setattr(tree.as_fd(), o.recursive, o.attrs, 0, 0).ctx("set mount flags on", &src)?;
        }
        sys::move_mount_fd(tree.as_fd(), tgt.as_fd()).ctx("bind mount onto", dest)?;
        return Ok(());
    }
    let tgt = target(root, dest, true).map_err(|e| e.context(what()))?;
    let fs = sys::fsopen(&typ).map_err(|e| Error::io("open filesystem type", &typ, e).context(what()))?;
    for (k, v) in &o.data {
        sys::fsconfig_set(fs.as_fd(), k, v.as_deref()).map_err(|e| {
            let why = sys::fs_error_log(fs.as_fd()).map(|m| format!(" ({m})")).unwrap_or_default();
            Error::io("set option", format!("{k}{}", v.as_ref().map(|v| format!("={v}")).unwrap_or_default()), e).context(format!("{}{why}", what()))
        })?;
    }
    let mnt = sys::fs_create_mount(fs.as_fd(), o.attrs).map_err(|e| {
        let why = sys::fs_error_log(fs.as_fd()).map(|m| format!(" ({m})")).unwrap_or_default();
        Error::io("mount", dest, e).context(format!("{}{why}", what()))
    })?;
    sys::move_mount_fd(mnt.as_fd(), tgt.as_fd()).ctx("attach mount at", dest)?;
    Ok(())
}

/// The device nodes every container gets (runc's defaults), each 0666.
pub const DEFAULT_DEVICES: [(&str, u32, u32); 6] = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

/// Create the device nodes and the standard links in the container's /dev
/// (our own tmpfs: nothing of the image's /dev is used).
pub fn populate_dev(root: BorrowedFd, extra: &[LinuxDevice]) -> Result<()> {
    // An O_PATH descriptor of our tmpfs /dev is enough for mknodat/symlinkat.
    let dev = target(root, Path::new("/dev"), true)?;
    explain!(
        "create the device nodes null, zero, full, random, urandom, tty in /dev";
        "mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5; …"
    );
    for (name, major, minor) in DEFAULT_DEVICES {
        mknod_at(dev.as_fd(), name, libc::S_IFCHR | 0o666, major, minor, 0, 0)?;
    }
    for d in extra {
        let p = d.path();
        let r = rel(p);
        if !p.starts_with("/dev") || r.components().count() < 2 {
            return Err(Error::invalid(format!("device {}: must be under /dev", p.display())));
        }
        let name = r.strip_prefix("dev").expect("checked").to_path_buf();
        if let Some(parent) = name.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_in_root(dev.as_fd(), parent, true, sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_BENEATH)?;
        }
        let kind = match d.typ() {
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => return Err(Error::invalid(format!("device {}: type 'a' is only for cgroup rules", p.display()))),
        };
        explain!(format!("create device {}", p.display()); format!("mknod {} {} {} {}", p.display(), if kind == libc::S_IFBLK { "b" } else { "c" }, d.major(), d.minor()));
        mknod_at(dev.as_fd(), &name.to_string_lossy(), kind | d.file_mode().unwrap_or(0o666), d.major() as u32, d.minor() as u32, d.uid().unwrap_or(0), d.gid().unwrap_or(0))?;
    }
    explain!("link /dev/fd, /dev/stdin, /dev/stdout, /dev/stderr, /dev/ptmx, /dev/core"; "ln -s /proc/self/fd /dev/fd; ln -s pts/ptmx /dev/ptmx; …");
    let mut links = vec![("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")];
    if Path::new("/proc/kcore").exists() {
        links.push(("core", "/proc/kcore"));
    }
    for (name, to) in links {
        let n = CString::new(name).expect("no NUL");
        let t = CString::new(to).expect("no NUL");
        // SAFETY: valid dirfd and C strings.
        if unsafe { libc::symlinkat(t.as_ptr(), dev.as_raw_fd(), n.as_ptr()) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(Error::io("symlink", format!("/dev/{name}"), e));
            }
        }
    }
    Ok(())
}

fn mknod_at(dir: BorrowedFd, name: &str, mode: u32, major: u32, minor: u32, uid: u32, gid: u32) -> Result<()> {
    let n = CString::new(name).map_err(|_| Error::invalid("device name with NUL"))?;
    let dev = libc::makedev(major, minor);
    // SAFETY: valid dirfd and C string.
    if unsafe { libc::mknodat(dir.as_raw_fd(), n.as_ptr(), mode, dev) } < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(Error::io("mknod", format!("/dev/{name}"), e));
        }
    }
    if uid != 0 || gid != 0 {
        // SAFETY: valid dirfd and C string.
        unsafe { libc::fchownat(dir.as_raw_fd(), n.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) };
    }
    Ok(())
}

/// The host's /dev/null, checked to really be the null device (1:3) before
/// anything is mounted from it (CVE-2025-31133: a /dev/null that is a
/// symlink to a procfs file turned masking into exposure).
pub fn open_null() -> Result<OwnedFd> {
    let f = std::fs::OpenOptions::new().read(true).custom_flags_nofollow().open("/dev/null").ctx("open", "/dev/null")?;
    let st = nix::sys::stat::fstat(f.as_fd()).ctx("stat", "/dev/null")?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || libc::major(st.st_rdev) != 1 || libc::minor(st.st_rdev) != 3 {
        return Err(Error::Corrupt("/dev/null on the host is not the null device (char 1:3); refusing to use it to mask paths".into()));
    }
    Ok(f.into())
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}
impl NoFollow for std::fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
    }
}

/// Hide each existing path: a directory under an empty read-only tmpfs, anything else under /dev/null.
pub fn mask_paths(root: BorrowedFd, null: BorrowedFd, paths: &[String]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    explain!(format!("mask {}", paths.join(" ")); "mount --bind /dev/null /proc/kcore; mount -t tmpfs -o ro tmpfs /sys/firmware; …");
    for p in paths {
        let r = rel(Path::new(p));
        let tgt = match sys::openat2(root, &r, libc::O_PATH | libc::O_NOFOLLOW, 0, sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_BENEATH) {
            Ok(t) => t,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(Error::io("open masked path", p, e)),
        };
        let st = nix::sys::stat::fstat(tgt.as_fd()).ctx("stat masked path", p)?;
        let mnt = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            let fs = sys::fsopen("tmpfs").ctx("open filesystem type", "tmpfs")?;
            sys::fsconfig_set(fs.as_fd(), "size", Some("0")).ctx("tmpfs option size=0 for", p)?;
            sys::fs_create_mount(fs.as_fd(), sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC)
                .ctx("mount an empty tmpfs over", p)?
        } else {
            sys::open_tree(null, Path::new(""), sys::OPEN_TREE_CLONE | sys::AT_EMPTY_PATH).ctx("clone /dev/null to mask", p)?
        };
        sys::move_mount_fd(mnt.as_fd(), tgt.as_fd()).ctx("mask", p)?;
    }
    Ok(())
}

/// Make each existing path read-only (a read-only bind mount of itself).
pub fn readonly_paths(root: BorrowedFd, paths: &[String]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    explain!(format!("make read-only: {}", paths.join(" ")); "mount --bind /proc/sys /proc/sys; mount -o remount,bind,ro /proc/sys; …");
    for p in paths {
        let r = rel(Path::new(p));
        let tgt = match sys::openat2(root, &r, libc::O_PATH | libc::O_NOFOLLOW, 0, sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_BENEATH) {
            Ok(t) => t,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(Error::io("open read-only path", p, e)),
        };
        let tree = sys::open_tree(tgt.as_fd(), Path::new(""), sys::OPEN_TREE_CLONE | sys::AT_RECURSIVE | sys::AT_EMPTY_PATH)
            .ctx("bind (open_tree)", p)?;
        sys::mount_setattr(tree.as_fd(), true, sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC, 0, 0)
            .ctx("make read-only", p)?;
        sys::move_mount_fd(tree.as_fd(), tgt.as_fd()).ctx("mount read-only over", p)?;
    }
    Ok(())
}

/// The container's own cgroup at /sys/fs/cgroup, read-only (mounted after
/// the cgroup namespace is entered, so each hierarchy is rooted at the
/// container's cgroup). On v1 (and hybrid) a tmpfs holds one directory per
/// hierarchy; it is made read-only too (CVE-2022-0492, GHSA-m8cg-xc2p-r3fc).
pub fn mount_cgroups(root: BorrowedFd, cm: &crate::cgroups::CgroupMounts) -> Result<()> {
    let base = Path::new("/sys/fs/cgroup");
    let base_fd = target(root, base, true)?;
    let ro = sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC;
    let tmpfs = if cm.tmpfs {
        explain!("mount a tmpfs at /sys/fs/cgroup for the cgroup hierarchies"; "mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup");
        let fs = sys::fsopen("tmpfs").ctx("open filesystem type", "tmpfs")?;
        sys::fsconfig_set(fs.as_fd(), "mode", Some("755")).ctx("tmpfs option mode=755 for", base)?;
        let mnt = sys::fs_create_mount(fs.as_fd(), sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC).ctx("mount tmpfs on", base)?;
        sys::move_mount_fd(mnt.as_fd(), base_fd.as_fd()).ctx("attach tmpfs at", base)?;
        Some(mnt)
    } else {
        None
    };
    for m in &cm.mounts {
        let dest = base.join(&m.target);
        explain!(format!("mount the container's {} hierarchy {} read-only at {}", m.fstype, m.options, dest.display()); format!("mount -t {} -o ro,nosuid,nodev,noexec,{} {} {}", m.fstype, m.options, m.fstype, dest.display()));
        let tgt = target(root, &dest, true)?;
        let fs = sys::fsopen(m.fstype).ctx("open filesystem type", m.fstype)?;
        for opt in m.options.split(',').filter(|o| !o.is_empty()) {
            let (k, v) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt, None),
            };
            sys::fsconfig_set(fs.as_fd(), k, v).map_err(|e| {
                let why = sys::fs_error_log(fs.as_fd()).map(|m| format!(" ({m})")).unwrap_or_default();
                Error::io("set cgroup option", opt, e).context(format!("mount {} on {}{why}", m.fstype, dest.display()))
            })?;
        }
        let mnt = sys::fs_create_mount(fs.as_fd(), ro).map_err(|e| {
            let why = sys::fs_error_log(fs.as_fd()).map(|m| format!(" ({m})")).unwrap_or_default();
            Error::io("mount", &dest, e).context(format!("cgroup hierarchy {}{why}", m.options))
        })?;
        sys::move_mount_fd(mnt.as_fd(), tgt.as_fd()).ctx("attach cgroup at", &dest)?;
    }
    for (link, to) in &cm.links {
        let l = base.join(link);
        let parent = target(root, base, true)?;
        let name = CString::new(l.file_name().unwrap_or_default().as_encoded_bytes()).map_err(|_| Error::invalid("NUL in link"))?;
        let t = CString::new(to.as_os_str().as_encoded_bytes()).map_err(|_| Error::invalid("NUL in link"))?;
        // SAFETY: valid dirfd and C strings.
        if unsafe { libc::symlinkat(t.as_ptr(), parent.as_raw_fd(), name.as_ptr()) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(Error::io("symlink", &l, e));
            }
        }
    }
    if let Some(mnt) = tmpfs {
        sys::mount_setattr(mnt.as_fd(), false, sys::MOUNT_ATTR_RDONLY, 0, 0).ctx("make read-only", base)?;
    }
    Ok(())
}

/// `--read-only`: the root becomes read-only (after everything is mounted on it).
pub fn root_readonly() -> Result<()> {
    explain!("make the root filesystem read-only (--read-only)"; "mount -o remount,bind,ro /");
    use nix::mount::MsFlags;
    nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>)
        .ctx("remount read-only", "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split() {
        let o = parse_options(&["nosuid".into(), "noexec".into(), "mode=755".into(), "newinstance".into(), "ro".into()]);
        assert_eq!(o.attrs, sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC | sys::MOUNT_ATTR_RDONLY);
        assert_eq!(o.data, vec![("mode".to_string(), Some("755".to_string())), ("newinstance".to_string(), None)]);
        assert!(parse_options(&["rbind".into()]).recursive);
    }

    #[test]
    fn targets_refuse_symlinks_under_proc_and_stay_in_root() {
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/tmp", d.path().join("proc")).unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/outside-host-file", d.path().join("etc/hosts")).unwrap();
        let root: OwnedFd = std::fs::File::open(d.path()).unwrap().into();
        let e = target(root.as_fd(), Path::new("/proc"), true).unwrap_err().to_string();
        assert!(e.contains("/proc") && e.contains("symbolic link"), "{e}");
        // /etc/hosts -> /outside-host-file: created *inside* the root.
        target(root.as_fd(), Path::new("/etc/hosts"), false).unwrap();
        assert!(d.path().join("outside-host-file").exists());
        assert!(!Path::new("/outside-host-file").exists());
        // Missing directories are made.
        target(root.as_fd(), Path::new("/a/b/c"), true).unwrap();
        assert!(d.path().join("a/b/c").is_dir());
    }

    /// What sends a mount to the one-option form: only a refusal that
    /// means "no lowerdir+" (tests/cgroup_v2_vm.rs runs it on Linux 6.1).
    #[test]
    fn lowerdir_plus_refusals() {
        let r = |step, errno, log: Option<&str>| OverlayRefusal { step, error: std::io::Error::from_raw_os_error(errno), log: log.map(String::from) };
        // 6.5-6.7: the option is unknown.
        assert!(r(OverlayStep::Option("lowerdir+", "/l".into()), libc::EINVAL, Some("overlay: Unknown parameter 'lowerdir+'")).lacks_lowerdir_plus());
        // Before 6.5: the legacy mount fails, and says nothing in the log.
        assert!(r(OverlayStep::Mount, libc::EINVAL, None).lacks_lowerdir_plus());
        // A real complaint of a new kernel, or another errno: reported as is.
        assert!(!r(OverlayStep::Mount, libc::EINVAL, Some("overlay: upper fs does not support tmpfile")).lacks_lowerdir_plus());
        assert!(!r(OverlayStep::Option("upperdir", "/u".into()), libc::EINVAL, None).lacks_lowerdir_plus());
        assert!(!r(OverlayStep::Mount, libc::ENOENT, None).lacks_lowerdir_plus());
        assert_eq!(escape_lowerdir(Path::new("/a:b\\c")), "/a\\:b\\\\c");
    }

    /// The one-option form mounts on this kernel too, layers in order.
    #[test]
    fn one_lowerdir_option_mounts_the_layers_top_first() {
        if !crate::testsupport::privileged("mounting an overlay") {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let dir = |n: &str| {
            let p = d.path().join(n);
            std::fs::create_dir(&p).unwrap();
            p
        };
        let (bottom, top) = (dir("bottom"), dir("top:x"));
        std::fs::write(bottom.join("f"), "bottom").unwrap();
        std::fs::write(top.join("f"), "top").unwrap();
        std::fs::write(bottom.join("only-bottom"), "b").unwrap();
        let root = Rootfs { lowers: vec![bottom, top], upper: dir("upper"), work: dir("work"), target: dir("rootfs"), volatile: true };
        let top_first: Vec<&PathBuf> = root.lowers.iter().rev().collect();
        let mnt = root.create(&top_first, false).map_err(|r| r.into_error(&root)).unwrap();
        // A detached mount, read through its fd: unmounted when it closes.
        let f = |name: &str| std::fs::read_to_string(format!("/proc/self/fd/{}/{name}", mnt.as_raw_fd())).unwrap();
        assert_eq!(f("f"), "top");
        assert_eq!(f("only-bottom"), "b");
    }
}
