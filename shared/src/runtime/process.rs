//! The parent's side of a container's process: clone the child into its
//! namespaces, do what must be done from outside (the cgroup), release it,
//! follow its report up to the execve, then stay with it: forward signals,
//! relay the terminal, and collect its exit status.
//!
//! Signals: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2 and SIGALRM sent to
//! ci-run go to the container's PID 1 (through its pidfd, so never to a
//! recycled pid). Like `docker run` without `--init`, a PID 1 that installs
//! no handler for a signal ignores it: that is the kernel's rule for init.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::channel::{Channel, FromChild, ToChild};
use super::init::{self, Plan};
use super::user::ExecUser;
use super::{namespaces, pty, sys};
use crate::error::{Error, IoContext, Result};

/// The signals ci-run passes on to the container (plus SIGWINCH for -t).
const FORWARDED: [Signal; 8] = [
    Signal::SIGHUP, Signal::SIGINT, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2, Signal::SIGTERM, Signal::SIGALRM, Signal::SIGWINCH,
];

/// Block the forwarded signals (before the clone, so none is lost) and
/// return a signalfd that receives them.
pub fn catch_signals() -> Result<SignalFd> {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.thread_block().map_err(|e| Error::io("block signals", "ci-run", e.into()))?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(|e| Error::io("signalfd", "ci-run", e.into()))
}

/// A container process that reached its execve.
pub struct Child {
    pub pid: i32,
    pidfd: OwnedFd,
    pub pty: Option<OwnedFd>,
    pub user: Option<ExecUser>,
    /// The program that was exec'd (resolved through $PATH).
    pub exe: String,
}

/// Why the container's command did not start: the message and the exit status.
#[derive(Debug)]
pub struct StartFailure {
    pub message: String,
    pub code: i32,
}

/// Clone the child and run the init plan in it. `outside` runs in the
/// parent once the child's pid is known and before the child may go on
/// (it joins the cgroup, records the pid).
pub fn start(plan: &Plan, outside: impl FnOnce(i32) -> Result<()>) -> Result<std::result::Result<Child, StartFailure>> {
    let linux = plan.spec.linux().clone().unwrap_or_default();
    let flags = namespaces::clone_flags(linux.namespaces().as_deref().unwrap_or_default())?;
    namespaces::explain_clone(flags);
    let adopt = if plan.clone_parent { libc::CLONE_PARENT } else { 0 };
    spawn(flags | adopt, |chan, parent| init::run(plan, chan, parent), outside)
}

/// The process a cloned child dies with: its parent, that is the cloner,
/// or with `CLONE_PARENT` the cloner's parent (a container's monitor). The
/// child asks the kernel for SIGKILL at that process's death
/// (`PR_SET_PDEATHSIG`), but the kernel clears that request whenever the
/// child's uid, gid or capabilities change (the user switch), and a parent
/// that died before the request was made sends nothing. So the request is
/// made again after the switch, then checked against a pidfd of the parent
/// opened before the clone, as runc and crun do (their `getppid()` check
/// cannot work in a new PID namespace, where the parent has no pid: this can).
pub struct Parent {
    pidfd: OwnedFd,
}

impl Parent {
    fn of_clone(flags: i32) -> Result<Parent> {
        let pid = if flags & libc::CLONE_PARENT != 0 { nix::unistd::getppid() } else { nix::unistd::getpid() };
        // SAFETY: pidfd_open with integer arguments (the descriptor is close-on-exec).
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
        if raw < 0 {
            return Err(Error::io("pidfd_open", format!("process {pid} (the parent of the new container process)"), std::io::Error::last_os_error()));
        }
        // SAFETY: a fresh pidfd that we own.
        let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
        // Still our parent now that the pidfd is open: then the pidfd names
        // it (a living parent's pid cannot have been reused in between).
        if flags & libc::CLONE_PARENT != 0 && nix::unistd::getppid() != pid {
            return Err(Error::invalid(format!("the parent process (pid {pid}) died before the container's init was cloned")));
        }
        Ok(Parent { pidfd })
    }

    /// In the child: be killed when the parent dies (set again after every
    /// change of credentials), and leave now if it already has.
    pub(crate) fn die_with(&self) -> std::result::Result<(), init::Fail> {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } < 0 {
            return Err(Error::io("prctl", "PR_SET_PDEATHSIG", std::io::Error::last_os_error()).into());
        }
        let mut fds = [PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::ZERO) {
            Ok(0) => Ok(()),
            Ok(_) => Err(init::Fail("the process that started the container's command (ci-run or the monitor) died before it ran".into(), 125)),
            Err(e) => Err(Error::io("poll", "a pidfd of the parent process", e.into()).into()),
        }
    }
}

/// Clone a child into the new namespaces of `flags` (0: none), run
/// `child_main` in it with its end of the channel and its [`Parent`], and follow the child's
/// report up to its execve (or its failure). Shared by a container's init
/// and by `exec`.
pub fn spawn(flags: i32, child_main: impl FnOnce(Channel, Parent), outside: impl FnOnce(i32) -> Result<()>) -> Result<std::result::Result<Child, StartFailure>> {
    let (ours, theirs) = Channel::pair()?;
    let parent = Parent::of_clone(flags)?;
    // SAFETY: ci-run is single-threaded up to here (no thread is ever spawned
    // before a container starts), so the child is a complete copy.
    let cloned = unsafe { sys::clone_with_pidfd(flags) }.map_err(|e| {
        Error::io("clone", "container init", e).hint("creating namespaces needs root (CAP_SYS_ADMIN)")
    })?;
    let Some((pid, pidfd)) = cloned else {
        drop(ours);
        child_main(theirs, parent);
        // SAFETY: the child's steps never return normally; leave without destructors.
        unsafe { libc::_exit(125) }
    };
    drop((theirs, parent));
    super::profile::mark("cloned");
    let mut child = Child { pid, pidfd, pty: None, user: None, exe: String::new() };
    if let Err(e) = outside(pid) {
        child.kill(libc::SIGKILL);
        let _ = child.wait_status();
        return Err(e);
    }
    // If the child already failed it has closed its end: its report is
    // waiting in the socket, so a failed send is not the story to tell.
    let _ = ours.send(&ToChild::Go, None);
    let mut exec_sent = false;
    loop {
        match ours.recv::<FromChild>() {
            Ok(Some((FromChild::Pty, fd))) => child.pty = fd,
            Ok(Some((FromChild::User(u), _))) => child.user = Some(u),
            Ok(Some((FromChild::Exec { path }, _))) => {
                exec_sent = true;
                child.exe = path;
            }
            Ok(Some((FromChild::Failed { message, code }, _))) => {
                let _ = child.wait_status();
                return Ok(Err(StartFailure { message, code }));
            }
            Ok(None) if exec_sent => return Ok(Ok(child)),
            Ok(None) => {
                // (Cloned with CLONE_PARENT, it is not ours to reap: no status.)
                let status = child.wait_status().map(|s| format!(" ({})", describe_status(s))).unwrap_or_default();
                return Ok(Err(StartFailure { message: format!("the container's init died before starting the command{status}"), code: 125 }));
            }
            Err(e) => {
                child.kill(libc::SIGKILL);
                let _ = child.wait_status();
                return Err(e);
            }
        }
    }
}

fn describe_status(code: i32) -> String {
    if code > 128 {
        format!("killed by signal {}", code - 128)
    } else {
        format!("exit status {code}")
    }
}

impl Child {
    /// Take over a process that was born our child although another
    /// process cloned it (`CLONE_PARENT`, see [`super::starter`]). Until we
    /// reap it its pid cannot be reused, so the pidfd is its own.
    pub fn adopt(pid: i32, pty: Option<OwnedFd>) -> Result<Child> {
        // SAFETY: pidfd_open with integer arguments.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if raw < 0 {
            return Err(Error::io("pidfd_open", format!("container process {pid}"), std::io::Error::last_os_error()));
        }
        // SAFETY: a fresh pidfd that we own.
        let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
        Ok(Child { pid, pidfd, pty, user: None, exe: String::new() })
    }

    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Send a signal to the container's PID 1 through its pidfd.
    pub fn kill(&self, sig: i32) {
        // SAFETY: pidfd_send_signal with our own pidfd and no siginfo.
        unsafe { libc::syscall(libc::SYS_pidfd_send_signal, self.pidfd.as_raw_fd(), sig, std::ptr::null::<libc::siginfo_t>(), 0) };
    }

    /// Reap the child: its exit status, or 128+N if killed by signal N.
    pub fn wait_status(&self) -> Result<i32> {
        loop {
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            const P_PIDFD: libc::idtype_t = 3;
            // SAFETY: waitid with a valid siginfo buffer.
            let r = unsafe { libc::waitid(P_PIDFD, self.pidfd.as_raw_fd() as libc::id_t, &mut info, libc::WEXITED) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(Error::io("wait for", format!("container process {}", self.pid), e));
            }
            // SAFETY: waitid filled a CLD_* siginfo.
            let (code, status) = unsafe { (info.si_code, info.si_status()) };
            return Ok(if code == libc::CLD_EXITED { status } else { 128 + status });
        }
    }

    /// Stay with the container until it exits: forward signals, relay the
    /// terminal (`-t`, with stdin when `interactive`), then reap it.
    pub fn supervise(&mut self, signals: &SignalFd, interactive: bool) -> Result<i32> {
        let stdin = std::io::stdin();
        let stdout = std::io::stdout();
        let _raw = match (&self.pty, interactive) {
            (Some(m), _) => {
                pty::copy_window_size(stdout.as_fd(), m.as_fd());
                if interactive { pty::RawMode::enter(stdin.as_fd()) } else { None }
            }
            _ => None,
        };
        let mut stdin_open = self.pty.is_some() && interactive;
        let mut master_open = self.pty.is_some();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let mut fds = vec![PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN), PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            let master = self.pty.as_ref().map(|m| m.as_fd());
            if let (Some(m), true) = (master, master_open) {
                fds.push(PollFd::new(m, PollFlags::POLLIN));
            }
            let stdin_idx = fds.len();
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::io("poll", "container", e.into())),
            }
            let ready = |i: usize| fds.get(i).and_then(|f| f.revents()).map(|r| !r.is_empty()).unwrap_or(false);
            let (exited, got_signal, master_ready, stdin_ready) = (ready(0), ready(1), master_open && ready(2), stdin_open && ready(stdin_idx));
            drop(fds);
            if got_signal {
                while let Ok(Some(si)) = signals.read_signal() {
                    let sig = si.ssi_signo as i32;
                    if sig == libc::SIGWINCH {
                        if let Some(m) = &self.pty {
                            pty::copy_window_size(stdout.as_fd(), m.as_fd());
                        }
                    } else {
                        self.kill(sig);
                    }
                }
            }
            if master_ready {
                master_open = self.relay_output(&mut buf)?;
            }
            if stdin_ready {
                let n = stdin.lock().read(&mut buf).unwrap_or(0);
                if n == 0 {
                    stdin_open = false;
                } else if let Some(m) = &self.pty {
                    write_all_fd(m.as_fd(), &buf[..n]);
                }
            }
            if exited {
                break;
            }
        }
        if let Some(m) = &self.pty {
            // What the container wrote just before it exited is still in the pty.
            let _ = nix::fcntl::fcntl(m, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
            while master_open {
                master_open = self.relay_output(&mut buf)?;
            }
        }
        self.wait_status()
    }

    /// Copy what the pty master has to stdout; false once it is closed (EIO).
    fn relay_output(&self, buf: &mut [u8]) -> Result<bool> {
        let Some(m) = &self.pty else { return Ok(false) };
        match nix::unistd::read(m, buf) {
            Ok(0) | Err(nix::errno::Errno::EIO) | Err(nix::errno::Errno::EAGAIN) => Ok(false),
            Ok(n) => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
                Ok(true)
            }
            Err(nix::errno::Errno::EINTR) => Ok(true),
            Err(e) => Err(Error::io("read", "the container's terminal", e.into())),
        }
    }
}

fn write_all_fd(fd: BorrowedFd, mut data: &[u8]) {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}

/// The start time of a process (field 22 of /proc/PID/stat, in clock
/// ticks since boot): with the pid it names the process uniquely, even
/// after the pid is reused.
pub fn start_time(pid: i32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).ctx("read", &path)?;
    // The command name (field 2) may hold spaces and parentheses: skip past the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    rest.split_whitespace()
        .nth(19)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Corrupt(format!("{path}: no start time field")))
}
