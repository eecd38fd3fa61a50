//! `ci-run exec`: a new process inside a running container — the same
//! namespaces, cgroup, capabilities, seccomp filter and no_new_privs as
//! its PID 1, and the container's own users and working directories.
//!
//! ```text
//! ci-run exec (host side: stays outside, relays the terminal, forwards signals)
//!   pidfd_open(PID 1) + start-time check        the container's init, never a recycled pid
//!   setns(pidfd, CLONE_NEWPID)                  only children are born in a PID namespace
//!   clone ─► child (PID N in the container's PID namespace)
//!              prctl(PR_SET_DUMPABLE, 0)        CVE-2016-9962: no ptrace, no /proc/N/fd from inside
//!   echo N > cgroup.procs (each hierarchy)      then "go"
//!              setns(pidfd, mnt|uts|ipc|net|cgroup)   / and cwd are now the container's root
//!              working directory: openat2 RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS (CVE-2024-21626)
//!              user from the container's /etc/passwd (parsed, never NSS: CVE-2019-14271)
//!              close-on-exec every fd above 2; capabilities; user; PDEATHSIG again;
//!              no_new_privs; seccomp
//!              execve CMD                          the first and only program run inside
//! ```
//!
//! While the child is a copy of ci-run inside the container, it is not
//! dumpable (a container process can neither ptrace it nor open its
//! `/proc/N/fd`, `/proc/N/exe` or `/proc/N/mem`), and its `/proc/self/exe`
//! is the read-only copy of ci-run (CVE-2019-5736, see [`super::exe`]).
//! `nsenter --target PID --mount --uts --ipc --net --pid --cgroup CMD` is
//! the shell's version of the same steps, without those protections.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::channel::{Channel, FromChild, ToChild};
use super::container::{Container, Status};
use super::init::{self, Fail, Never};
use super::{process, pty, state, sys, user, StartFailure};
use crate::error::{Error, IoContext, Result};
use crate::explain;
use crate::store::Store;

/// `ci-run exec` flags.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub command: Vec<String>,
    /// `-e KEY=VALUE`, or `-e KEY` for ci-run's own value.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    /// `-d`: leave it running in the background.
    pub detach: bool,
}

#[derive(Debug)]
pub enum ExecOutcome {
    /// Its exit status (128+N if killed by signal N).
    Exited(i32),
    /// `-d`: running, with this host pid.
    Detached(i32),
    /// It never ran: why, and docker's status for it (126/127).
    NotStarted(StartFailure),
}

/// What the child needs (borrowed across the clone).
struct Plan<'a> {
    spec: &'a Spec,
    pidfd: BorrowedFd<'a>,
    /// Namespaces joined by the child (everything but PID).
    flags: i32,
    null: BorrowedFd<'a>,
    opts: &'a ExecOptions,
    env: Vec<String>,
    /// The container's `--group-add`.
    group_add: &'a [String],
    seccomp: Option<&'a [libc::sock_filter]>,
}

const NAMESPACES: [(LinuxNamespaceType, i32, &str, &str); 6] = [
    (LinuxNamespaceType::Mount, libc::CLONE_NEWNS, "mnt", "--mount"),
    (LinuxNamespaceType::Uts, libc::CLONE_NEWUTS, "uts", "--uts"),
    (LinuxNamespaceType::Ipc, libc::CLONE_NEWIPC, "ipc", "--ipc"),
    (LinuxNamespaceType::Network, libc::CLONE_NEWNET, "net", "--net"),
    (LinuxNamespaceType::Cgroup, libc::CLONE_NEWCGROUP, "cgroup", "--cgroup"),
    (LinuxNamespaceType::Pid, libc::CLONE_NEWPID, "pid", "--pid"),
];

fn setns(pidfd: BorrowedFd, flags: i32) -> std::io::Result<()> {
    // SAFETY: setns with a pidfd and a mask of namespace types (Linux 5.8+).
    if unsafe { libc::setns(pidfd.as_raw_fd(), flags) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Run `o.command` in the running container `c`.
pub fn exec(store: &Store, c: &mut Container, o: &ExecOptions) -> Result<ExecOutcome> {
    if o.command.is_empty() {
        return Err(Error::invalid("exec needs a command").hint("ci-run exec CONTAINER COMMAND [ARG...]"));
    }
    let seen = state::refresh(store, c)?;
    let not_running = || {
        Error::Conflict(format!("container {} ({}) is not running: it is {}", c.record.name, &c.record.id[..12], seen.status.as_str()))
            .hint("`ci-run start NAME` starts it; exec needs a running container")
    };
    if seen.status != Status::Running {
        return Err(not_running());
    }
    let pid = seen.pid.ok_or_else(not_running)?;
    let path = c.dir.join("config.json");
    let spec: Spec = serde_json::from_slice(&std::fs::read(&path).ctx("read", &path)?).map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(super::seccomp::compile(s)?),
        None => None,
    };

    // PID 1, by pidfd, checked against its recorded start time.
    explain!("open a pidfd for PID 1 of container {} (host pid {pid}): every step below goes through it, never through a pid that could be reused", &c.record.id[..12]);
    // SAFETY: pidfd_open with integer arguments.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return Err(not_running());
    }
    // SAFETY: a new descriptor from the kernel.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    let expected = seen.run.as_ref().map(|s| s.pid_start_time);
    if expected.is_some() && process::start_time(pid).ok() != expected {
        return Err(not_running());
    }

    let wanted: Vec<LinuxNamespaceType> = spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default().iter().map(|n| n.typ()).collect();
    let mut flags = 0;
    let mut opts = Vec::new();
    for (t, flag, name, opt) in NAMESPACES {
        if !wanted.contains(&t) {
            continue;
        }
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/{name}")).map(|p| p.display().to_string()).unwrap_or_else(|_| name.to_string());
        explain!("join the {name} namespace of PID 1: {ns}");
        opts.push(opt);
        if t != LinuxNamespaceType::Pid {
            flags |= flag;
        }
    }
    explain!(format!("setns into those namespaces (the new process, not ci-run, enters the mount namespace)"); format!("nsenter --target {pid} {} {}", opts.join(" "), super::spec::display_command(&o.command)));
    if wanted.contains(&LinuxNamespaceType::Pid) {
        explain!("setns(pidfd, CLONE_NEWPID) in ci-run: its next child is born inside the container's PID namespace");
        setns(pidfd.as_fd(), libc::CLONE_NEWPID).map_err(|e| Error::io("join the PID namespace of", format!("container {}", &c.record.id[..12]), e))?;
    }

    let process_spec = spec.process().as_ref().ok_or_else(|| Error::Corrupt(format!("{}: no process", path.display())))?;
    let mut env = process_spec.env().clone().unwrap_or_default();
    if o.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let extra = super::spec::user_env(&super::RunOptions { env: o.env.clone(), ..Default::default() })?;
    for e in extra {
        let key = e.split('=').next().unwrap_or("").to_string();
        env.retain(|x| x.split('=').next() != Some(key.as_str()));
        env.push(e);
    }
    let null = std::fs::OpenOptions::new().read(true).write(true).custom_flags_cloexec().open("/dev/null").ctx("open", "/dev/null")?;
    let null: OwnedFd = null.into();
    let cgroup = crate::cgroups::Cgroup::open(&state::cgroup_name(c))?;
    let signals = if o.detach { None } else { Some(process::catch_signals()?) };
    let plan = Plan { spec: &spec, pidfd: pidfd.as_fd(), flags, null: null.as_fd(), opts: o, env, group_add: &c.record.group_add, seccomp: seccomp.as_deref() };
    let started = process::spawn(0, |chan, parent| child(&plan, chan, parent), |child_pid| match &cgroup {
        Some(cg) => cg.add_process(child_pid),
        None => Ok(()),
    })?;
    let mut child = match started {
        Ok(ch) => ch,
        Err(f) => return Ok(ExecOutcome::NotStarted(f)),
    };
    if o.detach {
        return Ok(ExecOutcome::Detached(child.pid));
    }
    let signals = signals.expect("caught unless detached");
    Ok(ExecOutcome::Exited(child.supervise(&signals, o.interactive)?))
}

trait CloexecOpen {
    fn custom_flags_cloexec(&mut self) -> &mut Self;
}

impl CloexecOpen for std::fs::OpenOptions {
    fn custom_flags_cloexec(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(self, libc::O_CLOEXEC)
    }
}

/// In the cloned child: never returns.
fn child(plan: &Plan, chan: Channel, parent: process::Parent) {
    // Without -d it dies with ci-run exec, which relays its output and status.
    let parent = (!plan.opts.detach).then_some(parent);
    let Fail(message, code) = match child_steps(plan, &chan, parent.as_ref()) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    let _ = chan.send(&FromChild::Failed { message, code }, None);
    // SAFETY: leave without running the parent's destructors.
    unsafe { libc::_exit(code) }
}

fn child_steps(plan: &Plan, chan: &Channel, parent: Option<&process::Parent>) -> std::result::Result<Never, Fail> {
    init::reset_signals();
    explain!("the new process is not dumpable until its execve (PR_SET_DUMPABLE 0): no container process can ptrace it or open its /proc/N/fd, exe or mem (CVE-2016-9962)");
    // CVE-2016-9962: until execve, a container process must not be able to
    // ptrace us or open our /proc/N/fd (we still hold host descriptors).
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if let Some(p) = parent {
        p.die_with()?;
    }
    match chan.recv::<ToChild>()? {
        Some((ToChild::Go, _)) => {}
        None => return Err(Fail("ci-run went away before the exec".into(), 125)),
    }
    setns(plan.pidfd, plan.flags).map_err(|e| {
        let why = if e.raw_os_error() == Some(libc::ESRCH) { "the container stopped".to_string() } else { e.to_string() };
        Fail(format!("join the container's namespaces: {why}"), 125)
    })?;
    explain!("joined: / is now the container's root filesystem");

    // stdio: a terminal of the container's own devpts, or ours (stdin from
    // the host's /dev/null without -i, opened before we joined).
    let root = nix::fcntl::open("/", nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty()).ctx("open", "/")?;
    if plan.opts.tty {
        let master = pty::setup_for_exec(root.as_fd())?;
        chan.send(&FromChild::Pty, Some(master.as_raw_fd()))?;
    } else {
        nix::unistd::setsid().map_err(|e| Error::io("setsid", "(exec)", e.into()))?;
        let targets: &[i32] = if plan.opts.detach { &[0, 1, 2] } else if !plan.opts.interactive { &[0] } else { &[] };
        for t in targets {
            // SAFETY: dup2 onto our standard descriptors.
            if unsafe { libc::dup2(plan.null.as_raw_fd(), *t) } < 0 {
                return Err(Error::io("dup2", "/dev/null", std::io::Error::last_os_error()).into());
            }
        }
    }

    // The user, from the container's files.
    let process = plan.spec.process().as_ref().ok_or_else(|| Error::invalid("config.json has no process"))?;
    let user_spec = plan.opts.user.clone().unwrap_or_else(|| process.user().username().clone().unwrap_or_default());
    let who = user::resolve(root.as_fd(), &user_spec, plan.group_add)?;
    explain!(format!("run as uid {} gid {} (user {:?} from the container's /etc/passwd)", who.uid, who.gid, user_spec); format!("setpriv --reuid {} --regid {}", who.uid, who.gid));
    let mut env = plan.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", who.home));
    }

    // The working directory, inside the root; never through a magic link.
    let cwd = plan.opts.workdir.clone().unwrap_or_else(|| process.cwd().display().to_string());
    if !cwd.starts_with('/') {
        return Err(Fail(format!("the working directory {cwd:?} is invalid: it must be an absolute path"), 126));
    }
    explain!(format!("change to the working directory {cwd}, resolved inside the container"); format!("cd {cwd}"));
    let dir = sys::openat2(root.as_fd(), Path::new(&cwd), libc::O_PATH | libc::O_DIRECTORY, 0, sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS).map_err(|e| {
        let why = match e.raw_os_error() {
            Some(libc::ELOOP) => "it goes through a symbolic link that leaves the container (such as /proc/self/fd/N)".to_string(),
            Some(libc::ENOENT) => "no such directory".to_string(),
            Some(libc::ENOTDIR) => "not a directory".to_string(),
            _ => e.to_string(),
        };
        Fail(format!("chdir to the working directory {cwd}: {why}"), 126)
    })?;
    nix::unistd::fchdir(&dir).ctx("chdir", &cwd)?;
    drop(dir);
    drop(root);

    // Nothing of ci-run survives the exec; then privileges, then the program.
    sys::cloexec_from(3).ctx("close_range", "(descriptors above 2)")?;
    init::seccomp_before_capabilities(process, plan.seccomp)?;
    init::become_user(process, &who)?;
    // The user switch cleared the parent-death signal: again.
    if let Some(p) = parent {
        p.die_with()?;
    }
    debug_hold();
    init::lock_and_exec(process, &plan.opts.command, &env, plan.seccomp, chan, "it runs in the container beside its PID 1")
}

/// Tests only (debug builds): with `CI_DEBUG_EXEC_HOLD=PATH`, wait here —
/// inside the container, with the container's user and capabilities (so
/// that its processes are no longer kept out by a larger capability set),
/// but still a copy of ci-run whose descriptors are open until the execve —
/// until PATH (a path in the container) exists, so that a test can try to
/// reach this process from inside (CVE-2016-9962, CVE-2019-5736).
fn debug_hold() {
    #[cfg(debug_assertions)]
    if let Some(p) = std::env::var_os("CI_DEBUG_EXEC_HOLD") {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !Path::new(&p).exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
