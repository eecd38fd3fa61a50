//! `ci-run __start ROOT ID`: the engine half of starting a detached
//! container, run by its monitor.
//!
//! The monitor ([`super::monitor`], the `ci-monitor` program) stays for
//! the container's whole life, so it is kept small: it never runs the
//! engine itself. To start (or restart) the container it runs ci-run once
//! more, as `ci-run __start ROOT ID`, and that process does what ci-run does
//! in the foreground — the cgroup, the clone, the init's steps, state.json —
//! with one difference: the init is cloned with `CLONE_PARENT`.
//!
//! ```text
//! ci-monitor ─┬─ ci-run __start ROOT ID     stdio: the container's pipes; fd 3: this report socket
//!             │     clone(CLONE_PARENT|CLONE_NEW…) ─┐
//!             │     report "started, pid N" (+ the pty master with -t), exit
//!             └─ the container's init  <────────────┘  born the monitor's child, not the starter's
//! ```
//!
//! So the monitor is the parent of PID 1: the one process that can reap it
//! (it takes a pidfd on it, which cannot name another process before it is
//! reaped), and the process whose death sends it `PR_SET_PDEATHSIG`. The
//! starter records the monitor as the container's owner in state.json.
//! If the start fails, the starter reports why; a dead init it leaves
//! behind is the monitor's to reap.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::channel::Channel;
use super::container::Container;
use super::{state, StartOptions};
use crate::error::{Error, IoContext, Result};
use crate::store::Store;

/// The argument that turns `ci-run` into a starter (an internal process:
/// no verb, no man page).
pub const START_ARG: &str = "__start";

/// What the starter tells the monitor, once.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Report {
    /// The command runs as host pid `pid` (the monitor's child), in the
    /// cgroup `cgroup`; with `-t` the pty master is attached.
    Started { pid: i32, cgroup: Option<String> },
    /// It did not start: the message and docker's exit status for it.
    Failed { message: String, code: i32 },
}

/// If this process was started as a starter (`ci-run __start ROOT ID`),
/// start the container, report, and return the exit status; `None`
/// otherwise. Call it first thing in `main`.
pub fn main_if_asked() -> Option<i32> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != START_ARG {
        return None;
    }
    let (Some(root), Some(id)) = (args.next(), args.next()) else { return Some(2) };
    // First, as it may re-execute us (fd 3 survives that, not being close-on-exec yet).
    let protected = super::exe::ensure_protected();
    // SAFETY: fd 3 is the report socket the monitor gave us; keep it from
    // the container's init (which closes it before its execve anyway).
    let chan = unsafe {
        libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC);
        Channel::from_fd(OwnedFd::from_raw_fd(3))
    };
    let (report, pty) = match protected.and_then(|()| start(Path::new(&root), &id.to_string_lossy(), &chan)) {
        Ok(r) => r,
        Err(e) => (Report::Failed { message: e.to_string(), code: 125 }, None),
    };
    let sent = chan.send(&report, pty.as_ref().map(std::os::fd::AsRawFd::as_raw_fd));
    Some(if sent.is_ok() { 0 } else { 1 })
}

fn start(root: &Path, id: &str, chan: &Channel) -> Result<(Report, Option<OwnedFd>)> {
    // The monitor made the report socket, so its credentials name it. A
    // parent that is not that process means the monitor died and we were
    // reparented: a container started now would have nobody to watch it.
    let monitor = chan.peer_pid()?;
    if nix::unistd::getppid().as_raw() != monitor {
        return Err(Error::invalid(format!("the monitor (pid {monitor}) died before the container started")));
    }
    state::set_monitor(monitor);
    let store = Store::open(root)?;
    let mut c = Container::load(&store, id)?;
    let path = c.dir.join("config.json");
    let data = std::fs::read(&path).ctx("read", &path)?;
    let mut spec: oci_spec::runtime::Spec = serde_json::from_slice(&data).map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
    let how = StartOptions {
        volatile: c.record.auto_remove,
        stdin_null: !c.record.open_stdin,
        group_add: c.record.group_add.clone(),
        clone_parent: true,
    };
    Ok(match super::start(&mut c, &mut spec, &how)? {
        Ok(mut started) => {
            let pty = started.child.pty.take();
            let cgroup = started.cgroup.as_ref().map(|cg| cg.name().to_string());
            (Report::Started { pid: started.child.pid, cgroup }, pty)
        }
        Err(f) => (Report::Failed { message: f.message, code: f.code }, None),
    })
}

/// The monitor's side: run `ci-run __start ROOT ID` from `exe` (ci-run's
/// binary, an open file) with `stdio` as its standard descriptors, and
/// return its report and the pty master it sent, if any.
pub fn run(exe: &OwnedFd, root: &Path, id: &str, stdio: [std::process::Stdio; 3]) -> Result<(Report, Option<OwnedFd>)> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (ours, theirs) = Channel::pair()?;
    let theirs_fd = theirs.raw_fd();
    let [stdin, stdout, stderr] = stdio;
    let mut cmd = std::process::Command::new(format!("/proc/self/fd/{}", exe.as_raw_fd()));
    cmd.arg0("ci-run").arg(START_ARG).arg(root).arg(id).stdin(stdin).stdout(stdout).stderr(stderr);
    // SAFETY: only dup2 (async-signal-safe) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(theirs_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| Error::io("run", "ci-run __start (the container's starter)", e))?;
    drop(theirs);
    let report = ours.recv::<Report>();
    let status = child.wait().map_err(|e| Error::io("wait for", "ci-run __start", e))?;
    match report? {
        Some((r, fd)) => Ok((r, fd)),
        None => Ok((Report::Failed { message: format!("the container's starter (ci-run {START_ARG}) ended without a report ({status})"), code: 125 }, None)),
    }
}
