//! Thin, safe wrappers over the system calls the engine needs that neither
//! std nor nix wraps: `openat2` (resolve a path *inside* a root), the new
//! mount API (`fsopen`/`fsmount`/`open_tree`/`move_mount`/`mount_setattr`:
//! mount onto a file descriptor, never onto a path an image could swap),
//! `close_range`, `clone` with namespace flags, and `seccomp`.
//!
//! Each returns `std::io::Result`; callers add the operation and path.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    // SAFETY: the kernel just returned this descriptor to us; we own it.
    check(ret).map(|r| unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// `RESOLVE_*` flags of openat2(2).
pub const RESOLVE_NO_MAGICLINKS: u64 = libc::RESOLVE_NO_MAGICLINKS;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_IN_ROOT: u64 = libc::RESOLVE_IN_ROOT;
pub const RESOLVE_BENEATH: u64 = 0x08;

/// openat2(2): open `path` relative to `dir`, resolving it under the rules
/// of `resolve` (with RESOLVE_IN_ROOT, `..` and absolute symlinks stop at `dir`).
pub fn openat2(dir: BorrowedFd, path: &Path, flags: i32, mode: u32, resolve: u64) -> io::Result<OwnedFd> {
    let p = cstr(path)?;
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 { mode as u64 } else { 0 };
    how.resolve = resolve;
    // SAFETY: valid pointers for the duration of the call.
    fd(unsafe {
        libc::syscall(libc::SYS_openat2, dir.as_raw_fd(), p.as_ptr(), &how as *const libc::open_how, std::mem::size_of::<libc::open_how>())
    })
}

pub const OPEN_TREE_CLONE: u32 = libc::OPEN_TREE_CLONE;
pub const OPEN_TREE_CLOEXEC: u32 = libc::O_CLOEXEC as u32;
pub const AT_RECURSIVE: u32 = 0x8000;
pub const AT_EMPTY_PATH: u32 = libc::AT_EMPTY_PATH as u32;

/// open_tree(2): with OPEN_TREE_CLONE, a detached copy of the mount at
/// `path` (a bind mount not yet attached anywhere).
pub fn open_tree(dir: BorrowedFd, path: &Path, flags: u32) -> io::Result<OwnedFd> {
    let p = cstr(path)?;
    // SAFETY: valid C string.
    fd(unsafe { libc::syscall(libc::SYS_open_tree, dir.as_raw_fd(), p.as_ptr(), flags | OPEN_TREE_CLOEXEC) })
}

/// move_mount(2) of the detached mount `from` onto the file or directory `to`.
pub fn move_mount_fd(from: BorrowedFd, to: BorrowedFd) -> io::Result<()> {
    const F_EMPTY: u32 = 0x4;
    const T_EMPTY: u32 = 0x40;
    let empty = c"";
    // SAFETY: empty C strings with the EMPTY_PATH flags: the fds are the objects.
    check(unsafe {
        libc::syscall(libc::SYS_move_mount, from.as_raw_fd(), empty.as_ptr(), to.as_raw_fd(), empty.as_ptr(), F_EMPTY | T_EMPTY)
    })
    .map(drop)
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) on the mount `mnt` (and below it when `recursive`).
pub fn mount_setattr(mnt: BorrowedFd, recursive: bool, set: u64, clear: u64, propagation: u64) -> io::Result<()> {
    let attr = MountAttr { attr_set: set, attr_clr: clear, propagation, userns_fd: 0 };
    let flags = AT_EMPTY_PATH | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: valid struct pointer and size.
    check(unsafe {
        libc::syscall(libc::SYS_mount_setattr, mnt.as_raw_fd(), c"".as_ptr(), flags, &attr as *const MountAttr, std::mem::size_of::<MountAttr>())
    })
    .map(drop)
}

/// fsopen(2): a filesystem context for `fstype`, to configure and create.
pub fn fsopen(fstype: &str) -> io::Result<OwnedFd> {
    let t = CString::new(fstype).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    const FSOPEN_CLOEXEC: u32 = 1;
    // SAFETY: valid C string.
    fd(unsafe { libc::syscall(libc::SYS_fsopen, t.as_ptr(), FSOPEN_CLOEXEC) })
}

const FSCONFIG_SET_FLAG: u32 = 0;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;

/// fsconfig(2): set one option (`value` None for a flag such as `newinstance`).
pub fn fsconfig_set(fs: BorrowedFd, key: &str, value: Option<&str>) -> io::Result<()> {
    let k = CString::new(key).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let v = value.map(CString::new).transpose().map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let (cmd, vp) = match &v {
        Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
        None => (FSCONFIG_SET_FLAG, std::ptr::null()),
    };
    // SAFETY: valid C strings (or null for flags).
    check(unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), cmd, k.as_ptr(), vp, 0) }).map(drop)
}

/// fsconfig(FSCONFIG_CMD_CREATE) then fsmount(2): the new filesystem as a
/// detached mount with the given MOUNT_ATTR_* flags.
pub fn fs_create_mount(fs: BorrowedFd, attrs: u64) -> io::Result<OwnedFd> {
    // SAFETY: no pointers.
    check(unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), FSCONFIG_CMD_CREATE, 0usize, 0usize, 0) })?;
    const FSMOUNT_CLOEXEC: u32 = 1;
    // SAFETY: no pointers.
    fd(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) })
}

/// The kernel's own explanation of a failed fsconfig/fsmount (read from the
/// context fd: lines such as "e overlay: failed to resolve 'x'").
pub fn fs_error_log(fs: BorrowedFd) -> Option<String> {
    let mut msgs = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(fs.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf[..n as usize]).trim().to_string();
        msgs.push(line.strip_prefix("e ").unwrap_or(&line).to_string());
    }
    (!msgs.is_empty()).then(|| msgs.join("; "))
}

/// close_range(2) with CLOSE_RANGE_CLOEXEC: mark every fd >= `first` close-on-exec.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: no pointers.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) }).map(drop)
}

/// clone(2) without a new stack: like fork(2), but the child starts in the
/// new namespaces of `flags`, and the kernel hands us a pidfd for it.
/// Returns `Some((pid, pidfd))` in the parent and `None` in the child.
///
/// # Safety
/// The caller must be single-threaded (the child gets a copy of the
/// address space with only the calling thread, as after fork).
pub unsafe fn clone_with_pidfd(flags: i32) -> io::Result<Option<(libc::pid_t, OwnedFd)>> {
    let mut pidfd: libc::c_int = -1;
    let all = (flags | libc::CLONE_PIDFD | libc::SIGCHLD) as libc::c_ulong;
    // x86_64 and most others: clone(flags, newsp, parent_tid, child_tid, tls);
    // with CLONE_PIDFD the pidfd is written through `parent_tid`.
    // SAFETY: newsp = 0 keeps the (copied) stack, as fork does.
    let ret = unsafe { libc::syscall(libc::SYS_clone, all, 0usize, &mut pidfd as *mut libc::c_int, 0usize, 0usize) };
    match ret {
        r if r < 0 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        // SAFETY: the kernel wrote a fresh pidfd that we own.
        pid => Ok(Some((pid as libc::pid_t, unsafe { OwnedFd::from_raw_fd(pidfd) }))),
    }
}

/// seccomp(SECCOMP_SET_MODE_FILTER): install a BPF program for this thread.
pub fn seccomp_set_filter(prog: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut libc::sock_filter };
    // SAFETY: the program outlives the call; the kernel copies it.
    check(unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0u32, &fprog as *const libc::sock_fprog) })
        .map(drop)
}

/// pivot_root(2).
pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> io::Result<()> {
    // SAFETY: valid C strings.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) }).map(drop)
}

/// The raw fd of a borrowed one (for the few libc calls that want it).
pub fn raw(fd: BorrowedFd) -> RawFd {
    fd.as_raw_fd()
}
