//! CVE-2019-5736 ("runc /proc/self/exe"): between clone and execve the
//! container's init *is* a copy of ci-run, so `/proc/self/exe` in the
//! container points at the ci-run binary on the host. An image whose
//! entrypoint is `/proc/self/exe` (or a script with `#!/proc/self/exe`)
//! makes PID 1 run that binary, and a process in the container could then
//! reopen it for writing and replace ci-run on the host.
//!
//! Our answer: before any container starts, ci-run re-executes itself from
//! a *detached, read-only bind mount* of its own binary (`open_tree` +
//! `mount_setattr(MOUNT_ATTR_RDONLY)` + `execveat`). From then on
//! `/proc/self/exe` resolves through a mount that is read-only and attached
//! nowhere: opening it for writing fails with EROFS, no path leads to it,
//! and a container has no CAP_SYS_ADMIN to change it. It costs one exec
//! (about a millisecond) and copies nothing, unlike runc's earlier memfd
//! copy (several MB per start); where open_tree is unavailable we fall back
//! to that sealed memfd copy.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::sys;
use crate::error::{Error, IoContext, Result};

/// Whether this process already runs from a protected copy of its binary.
pub fn is_protected() -> bool {
    let Ok(f) = std::fs::File::open("/proc/self/exe") else { return false };
    if let Ok(st) = nix::sys::statvfs::fstatvfs(&f) {
        if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
            return true;
        }
    }
    // A sealed memfd (the fallback) cannot be written either.
    // SAFETY: fcntl F_GET_SEALS on our own fd.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & libc::F_SEAL_WRITE != 0
}

/// Re-execute ci-run from a read-only, detached copy of its binary unless
/// it already runs from one. Returns only when already protected.
pub fn ensure_protected() -> Result<()> {
    if is_protected() {
        return Ok(());
    }
    let argv: Vec<CString> = std::env::args_os().map(|a| CString::new(a.as_encoded_bytes()).expect("argv has no NUL")).collect();
    // Remember where we were installed: afterwards /proc/self/exe names a
    // mount that is attached nowhere, and ci-run looks for ci-monitor beside itself.
    let origin = std::env::var_os(ORIGIN).is_none().then(std::env::current_exe).and_then(|p| p.ok()).map(|p| (ORIGIN.into(), p.into_os_string()));
    let envp: Vec<CString> = std::env::vars_os()
        .chain(origin)
        .map(|(k, v)| {
            let mut kv = k.as_encoded_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_encoded_bytes());
            CString::new(kv).expect("env has no NUL")
        })
        .collect();
    let fd = match readonly_clone() {
        Ok(fd) => fd,
        Err(_) => sealed_memfd()?,
    };
    let err = nix::unistd::fexecve(&fd, &argv, &envp).unwrap_err();
    Err(Error::io("re-execute ci-run from a read-only copy", "/proc/self/exe", err.into()))
}

/// The environment variable that carries ci-run's installed path across
/// the re-execution in [`ensure_protected`].
const ORIGIN: &str = "CIRUN_ORIGIN";

/// The program `name` installed beside this one (`ci-monitor` beside
/// `ci-run`), else the first on `$PATH`.
pub fn sibling(name: &str) -> Result<PathBuf> {
    let me = std::env::var_os(ORIGIN).map(PathBuf::from).or_else(|| std::env::current_exe().ok());
    let beside = me.as_deref().and_then(Path::parent).map(|d| d.join(name));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = std::env::split_paths(&path).map(|d| d.join(name)).collect::<Vec<_>>();
    beside
        .into_iter()
        .chain(on_path)
        .find(|p| p.is_file())
        .ok_or_else(|| Error::invalid(format!("{name} was not found beside ci-run ({}) nor on $PATH", me.unwrap_or_default().display())).hint("install every program of ci together (`make install`)"))
}

fn readonly_clone() -> Result<OwnedFd> {
    let cwd = unsafe { std::os::fd::BorrowedFd::borrow_raw(libc::AT_FDCWD) };
    let tree = sys::open_tree(cwd, Path::new("/proc/self/exe"), sys::OPEN_TREE_CLONE).ctx("open_tree", "/proc/self/exe")?;
    sys::mount_setattr(tree.as_fd(), false, sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOSUID, 0, 0)
        .ctx("make read-only", "/proc/self/exe")?;
    Ok(tree)
}

fn sealed_memfd() -> Result<OwnedFd> {
    // SAFETY: memfd_create with a static name.
    let raw = unsafe { libc::memfd_create(c"ci-run".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if raw < 0 {
        return Err(Error::io("memfd_create", "ci-run", std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd we own.
    let mem = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut src = std::fs::File::open("/proc/self/exe").ctx("open", "/proc/self/exe")?;
    let mut dst = std::fs::File::from(mem);
    std::io::copy(&mut src, &mut dst).ctx("copy ci-run into", "memfd")?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on our memfd.
    if unsafe { libc::fcntl(dst.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(Error::io("seal", "memfd", std::io::Error::last_os_error()));
    }
    Ok(dst.into())
}
