//! The monitor: the small process that stays with a detached (`-d`)
//! container, the role conmon plays for podman. There is no daemon: each
//! container has its own monitor, started by `ci-run -d` or `ci-run start`,
//! and gone when the container is gone for good. It is a program of its
//! own, `ci-monitor`, installed beside ci-run.
//!
//! ```text
//! ci-run -d bb:1 CMD            the record is created, then:
//!   fork ─ setsid ─ fork ─ exec "ci-monitor ROOT ID"   (own session, no terminal;
//!                                                       fd 3: the report pipe, fd 4: ci-run's binary)
//!   the monitor:  flock ROOT/containers/ID        (one owner at a time)
//!                 bind /run/ci/H/ID/monitor.sock  (a path socket in a 0700 directory)
//!                 run "ci-run __start ROOT ID"    (runtime::starter: the engine, in a process
//!                                                  that exits; PID 1 is born the monitor's child)
//!                 report "started, pid N" on the pipe ci-run waits on; ci-run prints and exits
//!                 then, until the container is gone for good:
//!                   stdout/stderr pipes (or the pty) -> json.log  (runtime::logs)
//!                   pidfd readable -> waitid: exit status -> container.json
//!                   restart policy + back-off           (runtime::restart; a restart is another __start)
//!                   requests on monitor.sock: stop, kill, wait
//! ```
//!
//! Why a process per container: the container's PID 1 is the user's
//! command, and only its parent can collect its exit status. The monitor
//! is that parent (through a pidfd, so never a recycled pid). It does not
//! need to be a child subreaper: processes orphaned inside the container
//! are reaped by its PID 1 (the pid namespace's reaper), and when PID 1
//! dies the kernel kills and reaps the rest.
//!
//! Why a program of its own: a monitor lives as long as its container, one
//! per container, so its memory is paid many times over. It links only
//! what watching needs (the record, the log writer, the restart policy)
//! and leaves the engine — spec, seccomp, mounts, the init — to the
//! short-lived starter; it idles on a few hundred kilobytes.
//!
//! Why it carries out `stop` itself: the restart policy and a manual stop
//! must agree. The monitor is the only one that decides to start the
//! container again, and a stop request reaches it over the socket, so a
//! stopped container is never restarted behind the user's back; two stops
//! at once both wait for the same exit.
//!
//! If the monitor is killed, the kernel kills the container with it (its
//! init set `PR_SET_PDEATHSIG`), and the next tool to look records it as
//! exited (see [`super::state`]). SIGTERM, SIGINT or SIGQUIT to the monitor
//! stop the container as `ci-run stop` does (a shutdown sends SIGTERM to
//! every process), then it exits. SIGHUP is ignored: with no terminal and
//! a session of its own, no hangup is ever meant for the monitor (one can
//! only come from a `kill`, such as `kill -HUP -1`), and it must not stop
//! the container. It is blocked, not set to SIG_IGN, which the starters
//! and the container would inherit.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use serde::{Deserialize, Serialize};

use super::container::{now_rfc3339, Container, Status};
use super::logs::{LogWriter, Lines};
use super::restart::Backoff;
use super::starter::{self, Report as StarterReport};
use super::{state, StartFailure};
use crate::error::{Error, IoContext, Result};
use crate::object::ContainerObject;
use crate::store::Store;
use crate::explain;

/// The monitor's program, installed beside ci-run (an internal process:
/// it has no man page).
pub const PROGRAM: &str = "ci-monitor";
/// The monitor's socket, in the container's run directory.
pub const SOCKET: &str = "monitor.sock";
/// Default `stop` timeout, seconds (docker's).
pub const DEFAULT_STOP_TIMEOUT: u64 = 10;

/// What the monitor tells the `ci-run` that spawned it, once, on fd 3.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Report {
    Started(Box<ContainerObject>),
    Failed { message: String, code: i32 },
}

/// A request on monitor.sock: one JSON line per connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// Send `signal` (default: the container's stop signal), SIGKILL after
    /// `timeout_secs`; the reply comes once the exit is recorded. A manual
    /// stop: the restart policy does not apply.
    Stop { signal: Option<i32>, timeout_secs: u64 },
    /// Send `signal` to PID 1. SIGKILL and the stop signal are a manual
    /// stop; the reply to SIGKILL comes once the exit is recorded.
    Kill { signal: i32 },
    /// Reply at the next exit (at once if it is not running).
    Wait,
}

/// The monitor's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Reply {
    Done,
    /// The container exited with this status (`None`: unknown).
    Exited { code: Option<i32> },
    Error { message: String },
}

/// Start `c` under a new monitor and wait until its command runs (or
/// failed to start). Used by `ci-run -d` and `ci-run start`. The caller
/// must be single-threaded (it forks).
pub fn spawn(store: &Store, c: &Container) -> Result<std::result::Result<ContainerObject, StartFailure>> {
    use std::ffi::CString;
    // A monitor killed earlier may have left it stale (its cgroup, its state).
    state::refresh(store, &mut c.clone())?;
    let program = super::exe::sibling(PROGRAM)?;
    // ci-run's own binary (the read-only copy it runs from), for the
    // monitor's starters: it is handed over as fd 4.
    let exe = std::fs::File::open("/proc/self/exe").ctx("open", "/proc/self/exe")?;
    let cstr = |s: &[u8]| CString::new(s).map_err(|_| Error::invalid("a path or variable contains a NUL byte"));
    let path = cstr(program.as_os_str().as_encoded_bytes())?;
    let argv = [cstr(PROGRAM.as_bytes())?, cstr(store.root().as_os_str().as_encoded_bytes())?, cstr(c.record.id.as_bytes())?];
    let envp: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != "CIEXPLAIN")
        .filter_map(|(k, v)| {
            let mut kv = k.as_encoded_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_encoded_bytes());
            CString::new(kv).ok()
        })
        .collect();
    // The NULL-terminated pointer arrays execve wants, made before the fork.
    let argp: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let envpp: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::io("pipe", "(monitor report)", e.into()))?;
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").ctx("open", "/dev/null")?;
    explain!(
        format!("start the monitor of container {}: a process in a session of its own (fork, setsid, fork), parent of the container, writer of its log", &c.record.id[..12]);
        format!("setsid {} {} {} < /dev/null > /dev/null 2>&1 &", program.display(), store.root().display(), c.record.id)
    );
    // SAFETY: single-threaded caller (see above); the children only make
    // async-signal-safe calls on memory prepared before the fork.
    match unsafe { nix::unistd::fork() }.map_err(|e| Error::io("fork", "(monitor)", e.into()))? {
        nix::unistd::ForkResult::Child => unsafe { monitor_child(&path, &argp, &envpp, [w.as_raw_fd(), exe.as_raw_fd(), null.as_raw_fd()]) },
        nix::unistd::ForkResult::Parent { child } => {
            drop((w, exe, null));
            // The middle process exits at once: reap it.
            let _ = nix::sys::wait::waitpid(child, None);
            let mut data = Vec::new();
            std::fs::File::from(r).read_to_end(&mut data).ctx("read the report of", "the monitor")?;
            match serde_json::from_slice::<Report>(&data) {
                Ok(Report::Started(obj)) => Ok(Ok(*obj)),
                Ok(Report::Failed { message, code }) => Ok(Err(StartFailure { message, code })),
                Err(_) if data.is_empty() => Err(Error::Conflict(format!("the monitor of container {} exited without starting it", &c.record.id[..12]))),
                Err(e) => Err(Error::Corrupt(format!("the monitor's report is unreadable ({e}): {:?}", String::from_utf8_lossy(&data)))),
            }
        }
    }
}

/// In the forked child: a new session, a second fork (the monitor is not
/// a session leader, so it can never acquire a controlling terminal), then
/// the exec with fd 3 the report pipe, fd 4 ci-run's binary and 0-2 on
/// /dev/null, nothing else open.
///
/// # Safety
/// Only after fork in a single-threaded process; `argv` and `envp` are
/// NULL-terminated arrays of pointers to C strings.
unsafe fn monitor_child(path: &std::ffi::CStr, argv: &[*const libc::c_char], envp: &[*const libc::c_char], [report, exe, null]: [RawFd; 3]) -> ! {
    // SAFETY: async-signal-safe calls only, on data prepared before fork.
    unsafe {
        libc::setsid();
        match libc::fork() {
            0 => {}
            -1 => libc::_exit(1),
            _ => libc::_exit(0),
        }
        // Move the two descriptors out of the way, then onto their places
        // (dup2 onto a different number clears close-on-exec).
        let rep = libc::fcntl(report, libc::F_DUPFD_CLOEXEC, 100);
        let bin = libc::fcntl(exe, libc::F_DUPFD_CLOEXEC, 100);
        let nul = libc::fcntl(null, libc::F_DUPFD_CLOEXEC, 100);
        if rep < 0 || bin < 0 || nul < 0 {
            libc::_exit(1);
        }
        if libc::dup2(nul, 0) < 0 || libc::dup2(nul, 1) < 0 || libc::dup2(nul, 2) < 0 || libc::dup2(rep, 3) < 0 || libc::dup2(bin, 4) < 0 {
            libc::_exit(1);
        }
        libc::syscall(libc::SYS_close_range, 5u32, u32::MAX, 0u32);
        libc::chdir(c"/".as_ptr());
        libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
        let msg = b"{\"failed\":{\"message\":\"cannot execute the monitor (ci-monitor)\",\"code\":125}}";
        libc::write(3, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

/// `ci-monitor ROOT ID`, as [`spawn`] starts it: run the monitor and
/// return its exit status.
pub fn main() -> i32 {
    let mut args = std::env::args_os().skip(1);
    let (Some(root), Some(id), None) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: {PROGRAM} ROOT ID (it is started by ci-run -d and ci-run start, not by hand)");
        return 2;
    };
    run(Path::new(&root), &id.to_string_lossy())
}

/// The monitor's life: take the container, start it, report, watch.
fn run(root: &Path, id: &str) -> i32 {
    // SAFETY: fds 3 and 4 are the report pipe and ci-run's binary that our
    // spawner set up; neither is for the starters we run.
    let (report, exe) = unsafe {
        libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(4, libc::F_SETFD, libc::FD_CLOEXEC);
        (std::fs::File::from(OwnedFd::from_raw_fd(3)), OwnedFd::from_raw_fd(4))
    };
    let mut report = Some(report);
    let mut send = |r: Report| {
        if let Some(mut f) = report.take() {
            let _ = f.write_all(&serde_json::to_vec(&r).expect("reports serialise"));
        }
    };
    let mut m = match Monitor::open(root, id, exe) {
        Ok(m) => m,
        Err(e) => {
            send(Report::Failed { message: e.to_string(), code: 125 });
            return 1;
        }
    };
    match m.start(true) {
        Ok(Ok(())) => {
            let seen = state::observe(&m.c);
            send(Report::Started(Box::new(state::object(&m.c, &seen))));
        }
        Ok(Err(f)) => {
            m.start_failed(&f);
            send(Report::Failed { message: f.message, code: f.code });
            return 1;
        }
        Err(e) => {
            m.start_failed(&StartFailure { message: e.to_string(), code: 125 });
            send(Report::Failed { message: e.to_string(), code: 125 });
            return 1;
        }
    }
    m.watch();
    // Exit holding the lock: the kernel drops it with the process, so a tool
    // that waits for it knows the monitor is gone, not merely finishing.
    std::process::exit(0)
}

/// One client of monitor.sock.
struct Client {
    /// Stable while others come and go (replies remove clients).
    id: u64,
    stream: UnixStream,
    buf: Vec<u8>,
    /// Waiting for the next exit (a stop, a SIGKILL or a wait).
    waiting: bool,
}

/// The container's process while it runs.
struct Running {
    child: super::process::Child,
    cgroup: Option<crate::cgroups::Cgroup>,
    /// Pipes (or the pty master) carrying its output, with their line cutters.
    outputs: Vec<(OwnedFd, &'static str, Lines)>,
    /// The write end of its stdin pipe (`-i`), held open and never written.
    _stdin: Option<OwnedFd>,
    since: Instant,
}

struct Monitor {
    store: Store,
    /// ci-run's binary, which starts the container (`ci-run __start`).
    exe: OwnedFd,
    c: Container,
    _lock: nix::fcntl::Flock<std::fs::File>,
    listener: UnixListener,
    signals: SignalFd,
    clients: Vec<Client>,
    next_client: u64,
    log: Option<LogWriter>,
    running: Option<Running>,
    backoff: Backoff,
    /// A manual stop or kill: no restart.
    manual: bool,
    /// When to SIGKILL a container asked to stop.
    kill_at: Option<Instant>,
    /// When to start it again (restart policy).
    restart_at: Option<Instant>,
    last_code: Option<i32>,
}

/// A start that failed may leave a dead init behind, unreaped: it was
/// cloned as our child (see [`starter`]). Reap it; while the container is
/// not running we have no other child.
fn reap_strays() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::io("pipe", "(container output)", e.into()))
}

fn nonblocking(fd: &OwnedFd) {
    let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
}

/// Parse a signal: `SIGUSR1`, `USR1`, `usr1` or a number.
pub fn parse_signal(s: &str) -> Result<i32> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        if (1..=libc::SIGRTMAX()).contains(&n) {
            return Ok(n);
        }
        return Err(Error::invalid(format!("invalid signal {s:?}: numbers go from 1 to {}", libc::SIGRTMAX())));
    }
    let upper = t.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    if let Some(rest) = name.strip_prefix("SIGRTMIN+") {
        if let Ok(k) = rest.parse::<i32>() {
            if libc::SIGRTMIN() + k <= libc::SIGRTMAX() {
                return Ok(libc::SIGRTMIN() + k);
            }
        }
    }
    name.parse::<Signal>().map(|s| s as i32).map_err(|_| Error::invalid(format!("invalid signal {s:?}")).hint("use a name such as TERM, SIGUSR1 or KILL, or a number"))
}

/// The container's stop signal (`--stop-signal`, the image's STOPSIGNAL, else SIGTERM).
pub fn stop_signal(c: &Container) -> i32 {
    c.record.stop_signal.as_deref().and_then(|s| parse_signal(s).ok()).unwrap_or(libc::SIGTERM)
}

impl Monitor {
    fn open(root: &Path, id: &str, exe: OwnedFd) -> Result<Monitor> {
        let store = Store::open(root)?;
        let mut c = Container::load(&store, id)?;
        let dir = c.dir.clone();
        let lock = c
            .lock_within(Duration::from_secs(5))?
            .ok_or_else(|| Error::Conflict(format!("container {} is owned by another process (its monitor, or a foreground ci-run)", &id[..12.min(id.len())])))?;
        c.reload()?;
        if state::observe(&c).status == Status::Running {
            return Err(Error::Conflict(format!("container {} is already running", &id[..12.min(id.len())])));
        }
        let mut set = SigSet::empty();
        for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT, Signal::SIGHUP] {
            set.add(s);
        }
        set.thread_block().map_err(|e| Error::io("block signals", "(monitor)", e.into()))?;
        let signals = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(|e| Error::io("signalfd", "(monitor)", e.into()))?;
        let run = state::create_run_dir(&dir)?;
        let listener = bind(&run)?;
        let log = if c.record.log.enabled() { Some(LogWriter::open(&dir, &c.record.log)?) } else { None };
        Ok(Monitor {
            store,
            exe,
            c,
            _lock: lock,
            listener,
            signals,
            clients: Vec::new(),
            next_client: 0,
            log,
            running: None,
            backoff: Backoff::default(),
            manual: false,
            kill_at: None,
            restart_at: None,
            last_code: None,
        })
    }

    /// Start the container's command (`first`: for `-d`/`start`, which
    /// clears an earlier manual stop) through a starter.
    fn start(&mut self, first: bool) -> Result<std::result::Result<(), StartFailure>> {
        use std::process::Stdio;
        // The container's stdio: pipes we read (the starter sends a pty
        // master instead with -t), and with -i a stdin pipe whose write end
        // we hold open.
        let (out, out_w) = pipe()?;
        let (err, err_w) = pipe()?;
        let (stdin, stdin_w) = match self.c.record.open_stdin {
            true => pipe().map(|(r, w)| (Stdio::from(r), Some(w)))?,
            false => (Stdio::null(), None),
        };
        let (report, pty) = starter::run(&self.exe, self.store.root(), &self.c.record.id, [stdin, out_w.into(), err_w.into()])?;
        let (pid, cgroup) = match report {
            StarterReport::Started { pid, cgroup } => (pid, cgroup),
            StarterReport::Failed { message, code } => {
                reap_strays();
                return Ok(Err(StartFailure { message, code }));
            }
        };
        let child = match super::process::Child::adopt(pid, None) {
            Ok(child) => child,
            Err(e) => {
                // SAFETY: kill(2) of our own unreaped child (its pid is still its own).
                unsafe { libc::kill(pid, libc::SIGKILL) };
                reap_strays();
                return Err(e);
            }
        };
        let cgroup = match cgroup {
            Some(name) => crate::cgroups::Cgroup::open(&name)?,
            None => None,
        };
        let (outputs, stdin_w) = match pty {
            Some(master) => (vec![(master, "stdout", Lines::default())], None),
            None => (vec![(out, "stdout", Lines::default()), (err, "stderr", Lines::default())], stdin_w),
        };
        for (fd, _, _) in &outputs {
            nonblocking(fd);
        }
        self.running = Some(Running { child, cgroup, outputs, _stdin: stdin_w, since: Instant::now() });
        // The start's buffers are done with: the monitor idles on a few kilobytes.
        // SAFETY: malloc_trim only releases free heap pages.
        unsafe { libc::malloc_trim(0) };
        let started_at = self.c.read_run_state().map(|s| s.started_at);
        self.c.update(|r| {
            r.state = Status::Running;
            r.started_at = started_at.or(r.started_at.take());
            r.error = None;
            if first {
                r.manually_stopped = false;
            }
        })?;
        Ok(Ok(()))
    }

    /// The first start failed: docker leaves the container "created" (with
    /// the status and message); `--rm` removes it.
    fn start_failed(&mut self, f: &StartFailure) {
        let _ = self.c.update(|r| {
            r.exit_code = Some(f.code);
            r.error = Some(f.message.clone());
        });
        self.finish_up();
    }

    /// The event loop, until the container is gone for good.
    fn watch(&mut self) {
        loop {
            if self.running.is_none() && self.restart_at.is_none() {
                return;
            }
            let now = Instant::now();
            let next = [self.kill_at, self.restart_at].into_iter().flatten().min();
            let timeout = match next {
                Some(t) => PollTimeout::try_from(t.saturating_duration_since(now).as_millis().min(60_000) as u64 + 1).unwrap_or(PollTimeout::MAX),
                None => PollTimeout::NONE,
            };
            // Poll set: signals, listener, clients, then (while running) pidfd and outputs.
            let (exited, ready_outputs, ready_clients, accept, got_signal) = {
                let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN), PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
                for cl in &self.clients {
                    fds.push(PollFd::new(cl.stream.as_fd(), PollFlags::POLLIN));
                }
                let first_run = fds.len();
                if let Some(r) = &self.running {
                    fds.push(PollFd::new(r.child.pidfd(), PollFlags::POLLIN));
                    for (fd, _, _) in &r.outputs {
                        fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                    }
                }
                match nix::poll::poll(&mut fds, timeout) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
                let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                let clients: Vec<u64> = self.clients.iter().enumerate().filter(|(i, _)| ready(&fds[2 + i])).map(|(_, c)| c.id).collect();
                let (exited, outputs) = if self.running.is_some() {
                    (ready(&fds[first_run]), (0..fds.len() - first_run - 1).filter(|i| ready(&fds[first_run + 1 + i])).collect())
                } else {
                    (false, vec![])
                };
                (exited, outputs, clients, ready(&fds[1]), ready(&fds[0]))
            };
            if got_signal {
                // TERM, INT, QUIT: stop as `ci-run stop` would. HUP: ignored.
                let mut stop = false;
                while let Ok(Some(si)) = self.signals.read_signal() {
                    stop |= si.ssi_signo != libc::SIGHUP as u32;
                }
                if stop {
                    self.stop(None, DEFAULT_STOP_TIMEOUT);
                }
            }
            if !ready_outputs.is_empty() {
                self.drain_outputs(false);
            }
            if accept {
                self.accept();
            }
            for id in ready_clients {
                self.serve(id);
            }
            if exited {
                self.exited();
            }
            let now = Instant::now();
            if self.kill_at.is_some_and(|t| t <= now) {
                self.kill_at = None;
                if let Some(r) = &self.running {
                    r.child.kill(libc::SIGKILL);
                }
            }
            if self.restart_at.is_some_and(|t| t <= now) {
                self.restart_at = None;
                self.restart();
            }
        }
    }

    /// Copy what the container printed into the log. With `to_end`, read
    /// until every writer is gone (after PID 1 died: the kernel has killed
    /// the rest of the namespace, so the pipes end soon).
    fn drain_outputs(&mut self, to_end: bool) {
        let Some(r) = &mut self.running else { return };
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut open: Vec<bool> = vec![true; r.outputs.len()];
        loop {
            let mut progress = false;
            for (i, (fd, stream, lines)) in r.outputs.iter_mut().enumerate() {
                if !open[i] {
                    continue;
                }
                loop {
                    match nix::unistd::read(&*fd, &mut buf) {
                        Ok(0) | Err(nix::errno::Errno::EIO) => {
                            open[i] = false;
                            if let Some(log) = &mut self.log {
                                let t = time::OffsetDateTime::now_utc();
                                lines.flush(|l| log.write(stream, l, t));
                            }
                            break;
                        }
                        Ok(n) => {
                            progress = true;
                            if let Some(log) = &mut self.log {
                                let t = time::OffsetDateTime::now_utc();
                                lines.feed(&buf[..n], |l| log.write(stream, l, t));
                            }
                        }
                        Err(nix::errno::Errno::EINTR) => continue,
                        Err(_) => break, // EAGAIN: nothing more for now
                    }
                }
            }
            if !to_end || open.iter().all(|o| !o) || Instant::now() >= deadline {
                return;
            }
            if !progress {
                let mut fds: Vec<PollFd> = r.outputs.iter().zip(&open).filter(|(_, o)| **o).map(|((fd, _, _), _)| PollFd::new(fd.as_fd(), PollFlags::POLLIN)).collect();
                let _ = nix::poll::poll(&mut fds, PollTimeout::from(100u16));
            }
        }
    }

    /// PID 1 exited: collect its status, clean its cgroup, then restart it
    /// or finish.
    fn exited(&mut self) {
        self.drain_outputs(true);
        let Some(Running { child, cgroup, outputs, _stdin, since }) = self.running.take() else { return };
        let code = child.wait_status().ok();
        let ran = since.elapsed();
        let cleanup = super::remove_cgroup(cgroup);
        drop((child, outputs, _stdin));
        self.kill_at = None;
        self.last_code = code;
        let log_error = self.log.as_ref().filter(|l| l.dropped > 0).map(|l| format!("{} log records were dropped ({})", l.dropped, l.last_error.clone().unwrap_or_default()));
        let error = cleanup.err().map(|e| e.to_string()).or(log_error);
        // A manual stop recorded by a tool that could not reach us (see control).
        let manual_on_disk = self.c.reload().map(|()| self.c.record.manually_stopped).unwrap_or(false);
        if self.c.record.restart_policy.should_restart(code, self.c.record.restart_count, self.manual || manual_on_disk) {
            let delay = self.backoff.next(ran);
            explain!("the container exited ({code:?}); restarting it in {delay:?}");
            let _ = self.c.update(|rec| {
                rec.state = Status::Restarting;
                rec.exit_code = code;
                rec.finished_at = Some(now_rfc3339());
                rec.restart_count += 1;
                rec.error = error.clone();
            });
            self.reply_waiters(Reply::Exited { code });
            self.restart_at = Some(Instant::now() + delay);
        } else {
            let manual = self.manual;
            let _ = self.c.update(|rec| {
                rec.state = Status::Exited;
                rec.exit_code = code;
                rec.finished_at = Some(now_rfc3339());
                rec.manually_stopped = rec.manually_stopped || manual;
                rec.error = error.clone();
            });
            self.finish_up();
            self.reply_waiters(Reply::Exited { code });
        }
    }

    /// The back-off is over: start again, unless a stop came meanwhile.
    fn restart(&mut self) {
        let stopped = self.c.reload().map(|()| self.c.record.manually_stopped).unwrap_or(true);
        if self.manual || stopped {
            self.give_up_restarting();
            return;
        }
        match self.start(false) {
            Ok(Ok(())) => {}
            Ok(Err(f)) => self.restart_failed(f.code, f.message),
            Err(e) => self.restart_failed(125, e.to_string()),
        }
    }

    /// A restart that could not start the command counts as a run that
    /// failed at once, for the policy and its back-off.
    fn restart_failed(&mut self, code: i32, message: String) {
        let _ = self.c.update(|r| r.error = Some(message.clone()));
        self.last_code = Some(code);
        if self.c.record.restart_policy.should_restart(Some(code), self.c.record.restart_count, self.manual) {
            let delay = self.backoff.next(Duration::ZERO);
            let _ = self.c.update(|r| {
                r.state = Status::Restarting;
                r.exit_code = Some(code);
                r.finished_at = Some(now_rfc3339());
                r.restart_count += 1;
            });
            self.restart_at = Some(Instant::now() + delay);
        } else {
            self.give_up_restarting();
        }
    }

    /// Stopped while waiting to restart: the container stays exited.
    fn give_up_restarting(&mut self) {
        self.restart_at = None;
        let manual = self.manual;
        let code = self.last_code;
        let _ = self.c.update(|r| {
            r.state = Status::Exited;
            r.exit_code = code;
            r.manually_stopped = r.manually_stopped || manual;
        });
        self.finish_up();
        self.reply_waiters(Reply::Exited { code });
    }

    /// The container is gone for good: forget its run-time state (remove
    /// it altogether with `--rm`). The lock goes when the process exits.
    fn finish_up(&mut self) {
        self.restart_at = None;
        if self.c.record.auto_remove {
            let _ = self.c.clone().remove(&self.store);
        } else {
            state::remove_run_dir(&self.c.dir);
        }
    }

    fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            let _ = stream.set_nonblocking(true);
            self.next_client += 1;
            self.clients.push(Client { id: self.next_client, stream, buf: Vec::new(), waiting: false });
        }
    }

    fn client(&mut self, id: u64) -> Option<&mut Client> {
        self.clients.iter_mut().find(|c| c.id == id)
    }

    /// Read from client `id`; act on a complete request.
    fn serve(&mut self, id: u64) {
        let mut buf = [0u8; 4096];
        let Some(cl) = self.client(id) else { return };
        let closed = match cl.stream.read(&mut buf) {
            Ok(0) => true,
            Ok(n) => {
                cl.buf.extend_from_slice(&buf[..n]);
                cl.buf.len() > 64 * 1024
            }
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        if closed {
            self.clients.retain(|c| c.id != id);
            return;
        }
        let Some(end) = cl.buf.iter().position(|b| *b == b'\n') else { return };
        let req = serde_json::from_slice::<Request>(&cl.buf[..end]);
        cl.buf.clear();
        match req {
            Err(e) => self.reply(id, Reply::Error { message: format!("unreadable request: {e}") }),
            Ok(Request::Wait) => {
                if self.running.is_some() {
                    self.wait_for_exit(id);
                } else {
                    self.reply(id, Reply::Exited { code: self.last_code });
                }
            }
            Ok(Request::Stop { signal, timeout_secs }) => {
                self.wait_for_exit(id);
                self.stop(signal, timeout_secs);
            }
            Ok(Request::Kill { signal }) => {
                let stop_sig = stop_signal(&self.c);
                let ends_it = signal == libc::SIGKILL || signal == stop_sig;
                if ends_it {
                    self.manual = true;
                }
                match &self.running {
                    Some(r) => {
                        r.child.kill(signal);
                        if signal == libc::SIGKILL {
                            self.wait_for_exit(id);
                        } else {
                            self.reply(id, Reply::Done);
                        }
                    }
                    None if ends_it => {
                        self.wait_for_exit(id);
                        self.give_up_restarting();
                    }
                    None => self.reply(id, Reply::Error { message: "the container is not running (it is waiting to be restarted)".into() }),
                }
            }
        }
    }

    /// A manual stop: the stop signal now, SIGKILL after `timeout`; or, if
    /// it is waiting to be restarted, no restart.
    fn stop(&mut self, signal: Option<i32>, timeout: u64) {
        self.manual = true;
        let sig = signal.unwrap_or_else(|| stop_signal(&self.c));
        match &self.running {
            Some(r) => {
                explain!("stop: signal {sig} to PID 1 (host pid {}), SIGKILL after {timeout} s", r.child.pid);
                r.child.kill(sig);
                let at = Instant::now() + Duration::from_secs(timeout);
                self.kill_at = Some(self.kill_at.map_or(at, |t| t.min(at)));
            }
            None => self.give_up_restarting(),
        }
    }

    fn wait_for_exit(&mut self, id: u64) {
        if let Some(c) = self.client(id) {
            c.waiting = true;
        }
    }

    /// Answer client `id` and close its connection.
    fn reply(&mut self, id: u64, r: Reply) {
        let Some(pos) = self.clients.iter().position(|c| c.id == id) else { return };
        let mut cl = self.clients.remove(pos);
        let mut line = serde_json::to_vec(&r).expect("replies serialise");
        line.push(b'\n');
        let _ = cl.stream.set_nonblocking(false);
        let _ = cl.stream.write_all(&line);
    }

    fn reply_waiters(&mut self, r: Reply) {
        let waiting: Vec<u64> = self.clients.iter().filter(|c| c.waiting).map(|c| c.id).collect();
        for id in waiting {
            self.reply(id, r.clone());
        }
    }
}

/// Listen on `dir/monitor.sock`. The path is reached through
/// /proc/self/fd/N of the directory, so a long store root never exceeds
/// the 108 bytes a socket address may hold.
fn bind(dir: &Path) -> Result<UnixListener> {
    let d = std::fs::File::open(dir).ctx("open", dir)?;
    let path = PathBuf::from(format!("/proc/self/fd/{}/{SOCKET}", d.as_raw_fd()));
    let _ = std::fs::remove_file(dir.join(SOCKET));
    let l = UnixListener::bind(&path).ctx("listen on", dir.join(SOCKET))?;
    l.set_nonblocking(true).ctx("set non-blocking", dir.join(SOCKET))?;
    Ok(l)
}

/// Connect to the monitor of the container whose run directory is `dir`.
pub fn connect(dir: &Path) -> Option<UnixStream> {
    let d = std::fs::File::open(dir).ok()?;
    UnixStream::connect(format!("/proc/self/fd/{}/{SOCKET}", d.as_raw_fd())).ok()
}

/// Send one request and wait for the reply. `None`: the monitor went
/// away without answering (it exited, or was killed).
pub fn ask(mut s: UnixStream, req: &Request) -> Option<Reply> {
    let mut line = serde_json::to_vec(req).expect("requests serialise");
    line.push(b'\n');
    s.write_all(&line).ok()?;
    let mut data = Vec::new();
    s.read_to_end(&mut data).ok()?;
    serde_json::from_slice(data.split(|b| *b == b'\n').next()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("SIGUSR1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse_signal("usr1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse_signal("KILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("15").unwrap(), 15);
        assert_eq!(parse_signal("SIGRTMIN+3").unwrap(), libc::SIGRTMIN() + 3);
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("99").is_err());
    }

    #[test]
    fn protocol_is_json_lines() {
        let r = serde_json::to_string(&Request::Stop { signal: None, timeout_secs: 10 }).unwrap();
        assert_eq!(r, r#"{"op":"stop","signal":null,"timeout_secs":10}"#);
        let r = serde_json::to_string(&Reply::Exited { code: Some(137) }).unwrap();
        assert_eq!(r, r#"{"exited":{"code":137}}"#);
    }
}
