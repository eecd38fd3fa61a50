//! `-t`: a pseudo-terminal for the container. The pty is created *inside*
//! the container, from its own devpts instance (so `/dev/pts/0` is the
//! container's, and `/dev/console` is that pty), and its master end is
//! passed to ci-run over the channel. ci-run puts the user's terminal in
//! raw mode and copies bytes both ways: every key, Ctrl-C included, goes
//! to the container's terminal, whose line discipline turns it into
//! SIGINT for the container's foreground process. Window size changes
//! (SIGWINCH) are passed on with TIOCSWINSZ.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::sys::termios::{self, SetArg, Termios};

use super::{mounts, sys};
use crate::error::{Error, IoContext, Result};
use crate::explain;

/// In the container (after pivot_root): open a new pty, bind its slave on
/// /dev/console, make it the controlling terminal and stdio. Returns the master.
pub fn setup_in_container() -> Result<OwnedFd> {
    explain!("open a pseudo-terminal in the container's devpts; it becomes /dev/console, the controlling terminal and stdio"; "");
    let master = nix::fcntl::open("/dev/ptmx", nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
        .ctx("open", "/dev/ptmx")?;
    setup(master, true)
}

/// For `exec -t`, in a running container whose files its processes may
/// have changed: the multiplexer is opened as `/dev/pts/ptmx` inside
/// `root` without following any symlink and must be the real one (char
/// 5:2), and `/dev/console` stays PID 1's. Returns the master.
pub fn setup_for_exec(root: BorrowedFd) -> Result<OwnedFd> {
    use nix::sys::stat::{major, minor, SFlag};
    explain!("open a pseudo-terminal in the container's devpts; it becomes the controlling terminal and stdio of the new process"; "");
    let path = Path::new("dev/pts/ptmx");
    let master = sys::openat2(root, path, libc::O_RDWR | libc::O_NOCTTY, 0, sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_SYMLINKS).ctx("open", "/dev/pts/ptmx")?;
    let st = nix::sys::stat::fstat(&master).ctx("stat", "/dev/pts/ptmx")?;
    let is_char = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFCHR;
    if !is_char || major(st.st_rdev) != 5 || minor(st.st_rdev) != 2 {
        return Err(Error::invalid("/dev/pts/ptmx in the container is not the pty multiplexer (char 5:2): refusing -t"));
    }
    setup(master, false)
}

fn setup(master: OwnedFd, console: bool) -> Result<OwnedFd> {
    // SAFETY: ioctls on our own master fd with an int argument.
    let slave = unsafe {
        let unlock: libc::c_int = 0;
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) < 0 {
            return Err(Error::io("unlock pty", "/dev/ptmx", std::io::Error::last_os_error()));
        }
        // TIOCGPTPEER: the slave without a path lookup (no /dev/pts/N to swap, CVE-2025-52565).
        let s = libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY);
        if s < 0 {
            return Err(Error::io("open pty slave", "/dev/ptmx", std::io::Error::last_os_error()));
        }
        OwnedFd::from_raw_fd(s)
    };
    if console {
        // /dev/console: an empty file in our /dev tmpfs, with the slave bound over it.
        let root = nix::fcntl::open("/", nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
            .ctx("open", "/")?;
        let console = mounts::target(root.as_fd(), Path::new("/dev/console"), false)?;
        let tree = sys::open_tree(slave.as_fd(), Path::new(""), sys::OPEN_TREE_CLONE | sys::AT_EMPTY_PATH).ctx("clone pty slave for", "/dev/console")?;
        sys::move_mount_fd(tree.as_fd(), console.as_fd()).ctx("bind pty slave on", "/dev/console")?;
    }
    // Still ours until the dup2 below: ci-run's stdout, the user's terminal
    // when there is one. Its size is set before the command starts, so a
    // program that asks at once never sees 0x0 (the later copy in
    // `supervise` is then no change, and sends no SIGWINCH).
    // SAFETY: fd 1 is open (a closed fd only makes the ioctl fail).
    copy_window_size(unsafe { BorrowedFd::borrow_raw(1) }, master.as_fd());
    nix::unistd::setsid().map_err(|e| Error::io("setsid", "(container init)", e.into()))?;
    // SAFETY: ioctl with an int argument on our slave fd.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(Error::io("make controlling terminal", "/dev/console", std::io::Error::last_os_error()));
    }
    for target in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(Error::io("dup2 pty slave onto stdio", "/dev/console", std::io::Error::last_os_error()));
        }
    }
    Ok(master)
}

/// The user's terminal in raw mode for as long as this lives.
pub struct RawMode {
    fd: i32,
    saved: Termios,
}

impl RawMode {
    /// Raw mode on `fd` if it is a terminal; `None` otherwise.
    pub fn enter(fd: BorrowedFd) -> Option<RawMode> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd: fd.as_raw_fd(), saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the fd is stdin, open for the life of the process.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(fd, SetArg::TCSAFLUSH, &self.saved);
    }
}

/// Copy the window size of `from` (the user's terminal) to the pty `master`.
pub fn copy_window_size(from: BorrowedFd, master: BorrowedFd) {
    // SAFETY: winsize is plain data; both ioctls read/write it.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) == 0 && (ws.ws_row > 0 || ws.ws_col > 0) {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Whether `fd` is a terminal.
pub fn is_tty(fd: impl AsFd) -> bool {
    nix::unistd::isatty(fd).unwrap_or(false)
}
