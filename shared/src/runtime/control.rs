//! Acting on a container from outside: `stop`, `kill`, `wait`, `rm`,
//! `start`, `restart`, `prune`.
//!
//! A `-d` container is asked through its monitor's socket: the monitor is
//! the container's parent, so it knows the exit status, and it decides
//! about restarts, so a stop it carries out is never undone. When there is
//! no monitor to ask — the container runs in the foreground of another
//! `ci-run`, or its monitor is gone — the tool acts itself: it signals
//! PID 1 through a pidfd (opened, then checked against the recorded start
//! time, so never a recycled pid), waits for it through the same pidfd,
//! then waits for the container's lock, which its owner holds until it has
//! recorded the exit. A manual stop is written into the record first
//! (`manually_stopped`), where a monitor that could not be reached looks
//! before it restarts anything.
//!
//! Not running: `stop`, `kill` (and `exec`) on a container that is not
//! running fail with an error naming it, and change nothing; `rm` of a
//! running container needs `-f`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use super::container::{Container, Status};
use super::monitor::{self, Reply, Request};
use super::state::{self, Observed};
use super::StartFailure;
use crate::error::{Error, Result};
use crate::object::ContainerObject;
use crate::store::Store;
use crate::explain;

/// How long a tool waits for a container's owner to record an exit and
/// let go of the container.
const OWNER_PATIENCE: Duration = Duration::from_secs(30);

fn short(c: &Container) -> &str {
    &c.record.id[..12]
}

fn not_running(c: &Container, seen: &Observed) -> Error {
    Error::Conflict(format!("container {} ({}) is not running: it is {}", c.record.name, short(c), seen.status.as_str()))
        .hint("`ci-run start NAME` starts it again")
}

/// The monitor's socket, if the container has a live monitor.
fn monitor_of(c: &Container, seen: &Observed) -> Option<std::os::unix::net::UnixStream> {
    let run = seen.run.as_ref()?;
    if !(run.monitor && seen.owner_alive) {
        return None;
    }
    monitor::connect(&state::run_dir(&c.dir))
}

/// A pidfd for the container's PID 1, if it still is the recorded process
/// (its start time is checked after the open: never a recycled pid).
fn pidfd_of(seen: &Observed) -> Option<OwnedFd> {
    let pid = seen.pid?;
    match &seen.run {
        Some(s) => state::pidfd(pid, s.pid_start_time, &s.boot_id),
        // Found through its cgroup (its state under /run is gone): as it is now.
        None => state::pidfd(pid, super::process::start_time(pid).ok()?, state::boot_id()),
    }
}

fn send(pidfd: BorrowedFd, sig: i32) -> Result<()> {
    // SAFETY: pidfd_send_signal with a valid pidfd and no siginfo.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, std::ptr::null::<libc::siginfo_t>(), 0) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(Error::io("send a signal to", "the container's PID 1", e));
        }
    }
    Ok(())
}

/// Wait (up to `limit`, None: for ever) for the process behind `pidfd` to exit.
fn wait_exit(pidfd: BorrowedFd, limit: Option<Duration>) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = limit.map(|l| std::time::Instant::now() + l);
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        let t = match left {
            Some(l) => PollTimeout::try_from(l.as_millis().min(60_000) as u64).unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };
        let mut fds = [PollFd::new(pidfd, PollFlags::POLLIN)];
        match poll(&mut fds, t) {
            Ok(n) if n > 0 => return true,
            Ok(_) if left.is_some_and(|l| l.is_zero()) => return false,
            _ => {}
        }
        if left.is_some_and(|l| l.is_zero()) {
            return false;
        }
    }
}

/// After the monitor answered a stop: it exits next (nothing to restart);
/// return once it has let go of the container, so that what follows (a
/// start, an rm, a check for leftovers) never meets a monitor on its way out.
fn monitor_gone(c: &Container) -> Result<()> {
    match c.lock_within(OWNER_PATIENCE) {
        Ok(_) => Ok(()),
        // Removed by its own --rm.
        Err(e) if matches!(e.root(), Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// After PID 1 died: wait until its owner has recorded the exit and let
/// go of the container (or record it ourselves if the owner is dead too).
fn after_exit(store: &Store, c: &mut Container) -> Result<Option<i32>> {
    match c.lock_within(OWNER_PATIENCE)? {
        Some(lock) => drop(lock),
        None => return Err(Error::Conflict(format!("container {}: its owner did not record the exit within {} s", short(c), OWNER_PATIENCE.as_secs()))),
    }
    match state::refresh(store, c) {
        Ok(_) => Ok(c.record.exit_code),
        // Removed by its own --rm.
        Err(e) if matches!(e.root(), Error::NotFound { .. }) => Ok(c.record.exit_code),
        Err(e) => Err(e),
    }
}

/// `ci-run stop`: the stop signal, SIGKILL after `timeout` seconds.
/// Returns the exit status (None: unknown).
pub fn stop(store: &Store, c: &mut Container, timeout: u64, signal: Option<i32>) -> Result<Option<i32>> {
    let seen = state::refresh(store, c)?;
    // A live monitor knows best: PID 1 may have just exited, with the
    // monitor about to restart it (or to record the end).
    let monitor = monitor_of(c, &seen);
    if monitor.is_none() && !matches!(seen.status, Status::Running | Status::Restarting) {
        return Err(not_running(c, &seen));
    }
    if let Some(s) = monitor {
        explain!("ask the monitor of {} to stop it (monitor.sock)", short(c));
        match monitor::ask(s, &Request::Stop { signal, timeout_secs: timeout }) {
            Some(Reply::Exited { code }) => {
                monitor_gone(c)?;
                return Ok(code);
            }
            Some(Reply::Error { message }) => return Err(Error::Conflict(message)),
            _ => {}
        }
        // The monitor went away without answering: see what is left.
        let seen = state::refresh(store, c)?;
        if seen.status != Status::Running {
            return Ok(c.record.exit_code);
        }
    }
    direct_stop(store, c, timeout, signal)
}

fn direct_stop(store: &Store, c: &mut Container, timeout: u64, signal: Option<i32>) -> Result<Option<i32>> {
    c.update(|r| r.manually_stopped = true)?;
    let seen = state::refresh(store, c)?;
    let Some(pidfd) = pidfd_of(&seen) else {
        // Not running now (it ended meanwhile, or waits to be restarted by a
        // monitor we cannot reach: that monitor reads manually_stopped first).
        return after_exit(store, c);
    };
    let sig = signal.unwrap_or_else(|| monitor::stop_signal(c));
    explain!(format!("send signal {sig} to PID 1 of {} (host pid {}), SIGKILL after {timeout} s", short(c), seen.pid.unwrap_or(0)); format!("kill -{sig} {}", seen.pid.unwrap_or(0)));
    send(pidfd.as_fd(), sig)?;
    if !wait_exit(pidfd.as_fd(), Some(Duration::from_secs(timeout))) {
        send(pidfd.as_fd(), libc::SIGKILL)?;
        let _ = state::remove_cgroup(c);
        wait_exit(pidfd.as_fd(), Some(OWNER_PATIENCE));
    }
    after_exit(store, c)
}

/// `ci-run kill -s SIGNAL`. SIGKILL waits until the exit is recorded;
/// SIGKILL and the stop signal are a manual stop (no restart).
pub fn kill(store: &Store, c: &mut Container, signal: i32) -> Result<()> {
    let seen = state::refresh(store, c)?;
    let ends_it = signal == libc::SIGKILL || signal == monitor::stop_signal(c);
    let restarting = seen.status == Status::Restarting && ends_it;
    let monitor = monitor_of(c, &seen);
    if monitor.is_none() && seen.status != Status::Running && !restarting {
        return Err(not_running(c, &seen));
    }
    if let Some(s) = monitor {
        explain!("ask the monitor of {} to send signal {signal} (monitor.sock)", short(c));
        match monitor::ask(s, &Request::Kill { signal }) {
            Some(Reply::Exited { .. }) => return monitor_gone(c),
            Some(Reply::Done) if ends_it && seen.status != Status::Running => return monitor_gone(c),
            Some(Reply::Done) => return Ok(()),
            Some(Reply::Error { .. }) => return Err(not_running(c, &seen)),
            None => {
                // The monitor went away without answering: see what is left.
                let seen = state::refresh(store, c)?;
                if seen.status != Status::Running {
                    return if ends_it { Ok(()) } else { Err(not_running(c, &seen)) };
                }
            }
        }
    }
    if ends_it {
        c.update(|r| r.manually_stopped = true)?;
    }
    let seen = state::refresh(store, c)?;
    let Some(pidfd) = pidfd_of(&seen) else {
        return if restarting || ends_it { after_exit(store, c).map(drop) } else { Err(not_running(c, &seen)) };
    };
    explain!(format!("send signal {signal} to PID 1 of {} (host pid {})", short(c), seen.pid.unwrap_or(0)); format!("kill -{signal} {}", seen.pid.unwrap_or(0)));
    send(pidfd.as_fd(), signal)?;
    if signal == libc::SIGKILL {
        wait_exit(pidfd.as_fd(), Some(OWNER_PATIENCE));
        after_exit(store, c)?;
    }
    Ok(())
}

/// `ci-run wait`: block until the container stops; its exit status. A
/// container that is not running answers at once with its last status.
pub fn wait(store: &Store, c: &mut Container) -> Result<Option<i32>> {
    let seen = state::refresh(store, c)?;
    if seen.status != Status::Running {
        return Ok(c.record.exit_code);
    }
    if let Some(s) = monitor_of(c, &seen) {
        if let Some(Reply::Exited { code }) = monitor::ask(s, &Request::Wait) {
            return Ok(code);
        }
    }
    match pidfd_of(&seen) {
        Some(fd) => {
            wait_exit(fd.as_fd(), None);
            after_exit(store, c)
        }
        None => after_exit(store, c),
    }
}

/// `ci-run rm [-f]`: the record, the writable layer, the log, the
/// run-time state and any cgroup left. A running container needs `force`
/// (it is killed first).
pub fn remove(store: &Store, c: &mut Container, force: bool) -> Result<()> {
    let seen = state::refresh(store, c)?;
    if matches!(seen.status, Status::Running | Status::Restarting) {
        if !force {
            return Err(Error::Conflict(format!("cannot remove container {} ({}): it is {}", c.record.name, short(c), seen.status.as_str()))
                .hint(format!("stop it first (`ci-run stop {}`), or remove it anyway with `ci-run rm -f`", c.record.name)));
        }
        match kill(store, c, libc::SIGKILL) {
            Ok(()) => {}
            // It stopped (or was removed) on its own meanwhile.
            Err(e) if matches!(e.root(), Error::NotFound { .. }) => return Ok(()),
            Err(e) if matches!(e.root(), Error::Conflict(_)) && state::observe(c).status != Status::Running => {}
            Err(e) => return Err(e),
        }
    }
    let lock = c.lock_within(OWNER_PATIENCE)?.ok_or_else(|| {
        Error::Conflict(format!("container {} is in use (its monitor or a foreground ci-run holds it)", short(c))).hint("try again, or stop it first")
    })?;
    c.reload()?;
    if state::observe(c).status == Status::Running {
        return Err(Error::Conflict(format!("container {} started again while it was being removed", short(c))));
    }
    let cg = state::remove_cgroup(c);
    c.clone().remove(store)?;
    drop(lock);
    cg
}

/// `ci-run start`: start a created or exited container under a new
/// monitor, its writable layer as it was. A running container is left as
/// it is (`Ok(None)`).
pub fn start(store: &Store, c: &mut Container) -> Result<Option<std::result::Result<ContainerObject, StartFailure>>> {
    let seen = state::refresh(store, c)?;
    if matches!(seen.status, Status::Running | Status::Restarting) {
        return Ok(None);
    }
    // A cgroup left by an earlier run that could not remove it.
    state::remove_cgroup(c)?;
    monitor::spawn(store, c).map(Some)
}

/// `ci-run prune`: remove every container that is not running (and not
/// owned by anyone at the moment). The removed ones.
pub fn prune(store: &Store, keep: impl Fn(&Container) -> bool) -> Result<Vec<Container>> {
    let mut removed = Vec::new();
    for mut c in super::container::list(store)? {
        let Ok(seen) = state::refresh(store, &mut c) else { continue };
        if !matches!(seen.status, Status::Created | Status::Exited) || keep(&c) {
            continue;
        }
        // Owned right now (a foreground run between create and start, a
        // monitor starting it): not ours to take.
        let Some(lock) = c.try_lock()? else { continue };
        let cg = state::remove_cgroup(&c);
        c.clone().remove(store)?;
        drop(lock);
        cg?;
        removed.push(c);
    }
    Ok(removed)
}
