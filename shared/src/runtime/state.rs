//! A container's run-time state: where it lives, how a tool tells whether
//! a container runs, and how a record is put right when the process that
//! should have recorded an exit is gone.
//!
//! # Where
//!
//! State that dies with the machine lives under `/run`, as runc's does:
//! `/run/ci/<H>/<id>/` (mode 0700) holds `state.json` and, for a `-d`
//! container, the monitor's socket `monitor.sock`. `<H>` is the first 16
//! hex digits of the SHA-256 of the store root's canonical path, so every
//! store (tests use one each) has its own run directory and two stores
//! never see each other's containers; `ci-run inspect` prints the
//! directory as `state_dir`. Everything durable (the record, the spec, the
//! writable layer, the log) stays under the store root.
//!
//! # Is it running?
//!
//! A container runs while `state.json` exists, was written during this
//! boot (`/proc/sys/kernel/random/boot_id`), and its pid is alive with the
//! start time recorded beside it (field 22 of `/proc/PID/stat`, so a reused
//! pid is never mistaken for it). The same test on the *owner* recorded in
//! `state.json` — the monitor, or a foreground `ci-run` — tells whether
//! anyone is still going to record the exit.
//!
//! # When the owner is gone
//!
//! - **The monitor is killed** (SIGKILL, OOM killer): the kernel kills the
//!   container too (its init asked for `PR_SET_PDEATHSIG`), so nothing runs
//!   unsupervised. Its `state.json` remains with a dead pid and a dead owner.
//! - **/run is wiped** (a reboot; on machines where /run is not a tmpfs the
//!   boot id tells instead): the record still says `running` but there is no
//!   `state.json`.
//!
//! In both cases the first tool that looks ([`refresh`]: `ps`, `inspect`,
//! `rm`, `start`, …) takes the container's lock — free, since its owner is
//! dead — and finishes what the owner would have done: it kills anything
//! left in the container's cgroup, removes the cgroup and the run
//! directory, and records the container as exited with an unknown status
//! (`exit_code` null) and the reason in `error`. A container started with
//! `--rm` is removed. So `ps` never shows a dead container as running, and
//! `rm` leaves nothing behind.
//!
//! If /run is wiped while a monitor still runs (by hand, not a reboot), the
//! container is found through its cgroup: while it has processes it is
//! shown as running, and the monitor still records its exit.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use super::container::{now_rfc3339, Container, RunState, Status};
use crate::error::Result;
use crate::explain;
use crate::object::ContainerObject;

/// The directory holding every store's run-time state.
pub const RUN_ROOT: &str = "/run/ci";

/// The pid of the monitor this process starts a container for (0: none).
static MONITOR: AtomicI32 = AtomicI32::new(0);

/// This process starts a container on behalf of the monitor `pid` (its
/// parent, see [`super::starter`]): the monitor is recorded as the owner in
/// state.json, since it is the one that will record the exit.
pub fn set_monitor(pid: i32) {
    MONITOR.store(pid, Ordering::Relaxed);
}

/// The monitor this process starts a container for, if any.
pub fn monitor() -> Option<i32> {
    Some(MONITOR.load(Ordering::Relaxed)).filter(|p| *p > 0)
}

/// This boot's id.
pub fn boot_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default())
}

/// Whether `pid` is the process that had `start_time` during boot `boot`,
/// and has not exited. A zombie (exited, not yet reaped by its parent —
/// for an orphaned monitor that is the host's init, which may take its
/// time) is dead.
pub fn alive(pid: i32, start_time: u64, boot: &str) -> bool {
    if pid <= 0 || boot != boot_id() {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // Fields after the command name (which may hold spaces and parentheses):
    // state is the first, the start time the 20th.
    let mut rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("").split_whitespace();
    let state = rest.next();
    let started = rest.nth(18).and_then(|s| s.parse::<u64>().ok());
    !matches!(state, Some("Z" | "X" | "x")) && started == Some(start_time)
}

/// A pidfd for `pid`, if it still is the process that had `start_time`
/// during boot `boot` (checked after the open, so it cannot be a reused pid).
pub fn pidfd(pid: i32, start_time: u64, boot: &str) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open with integer arguments.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return None;
    }
    // SAFETY: a new descriptor from the kernel.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw as i32) };
    alive(pid, start_time, boot).then_some(fd)
}

/// `/run/ci/<H>` for the store at `root`.
pub fn root_run_dir(root: &Path) -> PathBuf {
    static CACHE: OnceLock<std::sync::Mutex<Vec<(PathBuf, PathBuf)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some((_, d)) = cache.lock().expect("cache lock").iter().find(|(r, _)| r == root) {
        return d.clone();
    }
    let canonical = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let hash = crate::digest::Digest::sha256_of(canonical.as_os_str().as_encoded_bytes());
    let dir = Path::new(RUN_ROOT).join(&hash.encoded()[..16]);
    cache.lock().expect("cache lock").push((root.to_path_buf(), dir.clone()));
    dir
}

/// `/run/ci/<H>/<id>` for the container whose directory is `container_dir`
/// (`ROOT/containers/<id>`).
pub fn run_dir(container_dir: &Path) -> PathBuf {
    let root = container_dir.parent().and_then(Path::parent).unwrap_or(Path::new("/"));
    let id = container_dir.file_name().unwrap_or_default();
    root_run_dir(root).join(id)
}

/// Make the container's run directory (and its parents, 0700).
pub fn create_run_dir(container_dir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = run_dir(container_dir);
    // A parent may vanish under us: the last container of a store removes
    // the store's run directory (see remove_run_dir). Try again then.
    for _ in 0..10 {
        let mut b = std::fs::DirBuilder::new();
        b.mode(0o700).recursive(true);
        match b.create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(crate::Error::io("create run-time state directory", &dir, e).hint("the state of running containers lives under /run/ci, which needs root"))
            }
        }
    }
    Err(crate::Error::Conflict(format!("{}: its parent kept disappearing while being created", dir.display())))
}

/// Remove the container's run directory, and the store's when it was the
/// last one (so nothing of a removed store stays under /run).
pub fn remove_run_dir(container_dir: &Path) {
    let dir = run_dir(container_dir);
    let _ = crate::fsutil::remove_all(&dir);
    if let Some(parent) = dir.parent() {
        let _ = std::fs::remove_dir(parent);
    }
}

/// What a container is doing, as observed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub status: Status,
    /// The host pid of its PID 1, while it runs.
    pub pid: Option<i32>,
    /// The state file, when there is one.
    pub run: Option<RunState>,
    /// Its owner (monitor or foreground ci-run) is alive.
    pub owner_alive: bool,
    /// The record disagrees with the kernel and nobody alive will fix it.
    pub stale: bool,
}

/// Observe without changing anything.
pub fn observe(c: &Container) -> Observed {
    let run = c.read_run_state();
    if let Some(s) = &run {
        let owner_alive = alive(s.owner_pid, s.owner_start_time, &s.boot_id);
        if alive(s.pid, s.pid_start_time, &s.boot_id) {
            return Observed { status: Status::Running, pid: Some(s.pid), run: run.clone(), owner_alive, stale: false };
        }
        if owner_alive {
            // Its owner is recording the exit, or waiting to restart it.
            let status = match c.record.state {
                Status::Restarting => Status::Restarting,
                Status::Created => Status::Created,
                _ => Status::Exited,
            };
            return Observed { status, pid: None, run: run.clone(), owner_alive, stale: false };
        }
        return Observed { status: Status::Exited, pid: None, run: run.clone(), owner_alive: false, stale: true };
    }
    match c.record.state {
        Status::Running | Status::Restarting => Observed { status: Status::Exited, pid: None, run: None, owner_alive: false, stale: true },
        s => Observed { status: s, pid: None, run: None, owner_alive: false, stale: false },
    }
}

/// Observe, and put a stale record right (see the module doc). Returns
/// what is true afterwards; `c` is reloaded. A container removed meanwhile
/// (by its own `--rm`) is `Err(NotFound)`.
pub fn refresh(store: &crate::store::Store, c: &mut Container) -> Result<Observed> {
    let seen = observe(c);
    if !seen.stale {
        return Ok(seen);
    }
    // The caller's copy of the record may be older than the exit its owner
    // has just recorded: read it again before calling it stale.
    c.reload()?;
    let seen = observe(c);
    if !seen.stale {
        return Ok(seen);
    }
    let Some(lock) = c.try_lock()? else {
        // Someone owns it although its state is gone (/run wiped under a live
        // monitor, or an owner just starting): the cgroup tells.
        return Ok(match cgroup_pid1(c) {
            Some(pid) => Observed { status: Status::Running, pid: Some(pid), run: None, owner_alive: true, stale: false },
            None => Observed { stale: false, owner_alive: true, ..seen },
        });
    };
    c.reload()?;
    let again = observe(c);
    if !again.stale {
        return Ok(again);
    }
    let owner = again.run.as_ref().map(|s| s.owner_pid).filter(|p| *p > 0);
    let why = match (&again.run, owner) {
        (Some(s), Some(p)) if s.boot_id != boot_id() => format!("the machine restarted while it ran (its owner was pid {p})"),
        (Some(_), Some(p)) => format!("its {} (pid {p}) died without recording how it ended", if again.run.as_ref().is_some_and(|s| s.monitor) { "monitor" } else { "ci-run" }),
        _ => "its run-time state under /run was lost (a reboot?)".to_string(),
    };
    explain!("container {}: {why}; recording it as exited", &c.record.id[..12]);
    let cleaned = remove_cgroup(c);
    let settle = |r: &mut super::container::Record| {
        r.state = Status::Exited;
        r.exit_code = None;
        r.finished_at = Some(now_rfc3339());
        r.error = Some(match &cleaned {
            Ok(()) => why.clone(),
            Err(e) => format!("{why}; removing its cgroup failed: {e}"),
        });
    };
    // Best effort: on a full disk the record cannot be rewritten, and that
    // must not keep `ps` from telling the truth or `rm` from removing it.
    if c.update(settle).is_err() {
        settle(&mut c.record);
    }
    remove_run_dir(&c.dir);
    if c.record.auto_remove {
        let doomed = c.clone();
        doomed.remove(store)?;
        drop(lock);
        return Err(crate::Error::not_found("container", c.record.id.clone()));
    }
    drop(lock);
    Ok(observe(c))
}

/// The cgroup name of a container (from its spec, else `ci/<id>`).
pub fn cgroup_name(c: &Container) -> String {
    let from_spec = std::fs::read(c.dir.join("config.json"))
        .ok()
        .and_then(|d| serde_json::from_slice::<oci_spec::runtime::Spec>(&d).ok())
        .and_then(|s| s.linux().as_ref().and_then(|l| l.cgroups_path().clone()));
    from_spec.map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|| format!("ci/{}", c.record.id))
}

/// Kill whatever is left in the container's cgroup and remove it.
pub fn remove_cgroup(c: &Container) -> Result<()> {
    match crate::cgroups::Cgroup::open(&cgroup_name(c))? {
        Some(cg) => {
            let _ = cg.kill_all(nix::sys::signal::Signal::SIGKILL);
            cg.remove()
        }
        None => Ok(()),
    }
}

/// The host pid of the container's PID 1, found through its cgroup (the
/// process whose pid in its own namespace is 1).
pub fn cgroup_pid1(c: &Container) -> Option<i32> {
    let cg = crate::cgroups::Cgroup::open(&cgroup_name(c)).ok()??;
    cg.procs().ok()?.into_iter().find(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("NSpid:")).map(|l| l.split_whitespace().last() == Some("1")))
            .unwrap_or(false)
    })
}

/// docker's STATUS words for a container: "Up 3 minutes", "Exited (0) 2
/// seconds ago", "Restarting (1) 1 second ago", "Created".
pub fn status_text(c: &Container, o: &Observed) -> String {
    use crate::object::{ago, human_duration};
    let since = |t: &Option<String>| -> Option<u64> {
        let t = time::OffsetDateTime::parse(t.as_deref()?, &time::format_description::well_known::Rfc3339).ok()?;
        Some((time::OffsetDateTime::now_utc() - t).whole_seconds().max(0) as u64)
    };
    let code = |c: Option<i32>| c.map(|c| c.to_string()).unwrap_or_else(|| "unknown".into());
    match o.status {
        Status::Running => {
            let started = o.run.as_ref().map(|s| Some(s.started_at.clone())).unwrap_or_else(|| c.record.started_at.clone());
            match since(&started) {
                Some(s) => format!("Up {}", human_duration(s)),
                None => "Up".into(),
            }
        }
        Status::Created => "Created".into(),
        Status::Restarting => match &c.record.finished_at {
            Some(f) => format!("Restarting ({}) {}", code(c.record.exit_code), ago(f)),
            None => "Restarting".into(),
        },
        Status::Exited => {
            // An exit being recorded right now: the record still holds the previous one.
            let fresh = o.run.is_none() && !o.stale;
            match (&c.record.finished_at, fresh) {
                (Some(f), true) => format!("Exited ({}) {}", code(c.record.exit_code), ago(f)),
                _ => "Exited (unknown)".into(),
            }
        }
    }
}

/// The object the tools print for a container.
pub fn object(c: &Container, o: &Observed) -> ContainerObject {
    let fresh = o.run.is_none() && !o.stale;
    let exited = o.status == Status::Exited || o.status == Status::Restarting;
    ContainerObject {
        kind: "container".into(),
        id: c.record.id.clone(),
        name: c.record.name.clone(),
        image: c.record.image_name.clone(),
        image_id: c.record.image.clone(),
        command: c.record.command.clone(),
        created: c.record.created.clone(),
        state: o.status.as_str().into(),
        status: status_text(c, o),
        exit_code: if exited && (fresh || o.status == Status::Restarting) { c.record.exit_code } else { None },
        pid: o.pid,
        started_at: o.run.as_ref().map(|s| s.started_at.clone()).or_else(|| c.record.started_at.clone()),
        finished_at: if exited { c.record.finished_at.clone() } else { None },
        restart_count: c.record.restart_count,
        labels: c.record.labels.clone(),
        ports: vec![],
    }
}

/// `ci-run inspect`: everything about a container.
pub fn inspect(c: &Container, o: &Observed) -> crate::object::ContainerInspect {
    use crate::object::*;
    let spec: Option<oci_spec::runtime::Spec> = std::fs::read(c.dir.join("config.json")).ok().and_then(|d| serde_json::from_slice(&d).ok());
    let process = spec.as_ref().and_then(|s| s.process().clone());
    let linux = spec.as_ref().and_then(|s| s.linux().clone());
    let host_network = !linux
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .iter()
        .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network);
    let network_mode = if host_network { "host" } else { "none" }.to_string();
    let resources = linux.as_ref().and_then(|l| l.resources().clone());
    let cpu = resources.as_ref().and_then(|r| r.cpu().clone());
    // The mounts a user asked for: binds other than the three /etc files.
    let own = ["/etc/resolv.conf", "/etc/hostname", "/etc/hosts"];
    let mounts = spec
        .as_ref()
        .and_then(|s| s.mounts().clone())
        .unwrap_or_default()
        .iter()
        .filter(|m| m.typ().as_deref() == Some("bind") && !own.iter().any(|o| m.destination().as_path() == Path::new(o)))
        .map(|m| InspectMount { typ: "bind".into(), source: m.source().clone(), destination: m.destination().clone(), options: m.options().clone().unwrap_or_default() })
        .collect();
    let run = o.run.as_ref().filter(|_| o.owner_alive);
    let obj = object(c, o);
    ContainerInspect {
        kind: "container".into(),
        id: c.record.id.clone(),
        name: c.record.name.clone(),
        created: c.record.created.clone(),
        image: c.record.image_name.clone(),
        image_id: c.record.image.clone(),
        path: c.record.command.first().cloned(),
        args: c.record.command.iter().skip(1).cloned().collect(),
        state: InspectState {
            status: obj.state.clone(),
            running: o.status == Status::Running,
            restarting: o.status == Status::Restarting,
            pid: o.pid,
            exit_code: obj.exit_code,
            error: c.record.error.clone(),
            started_at: obj.started_at.clone(),
            finished_at: obj.finished_at.clone(),
            monitor_pid: run.filter(|r| r.monitor).map(|r| r.owner_pid),
            owner_pid: run.map(|r| r.owner_pid),
            manually_stopped: c.record.manually_stopped,
        },
        restart_count: c.record.restart_count,
        config: InspectConfig {
            hostname: c.record.hostname.clone(),
            user: process.as_ref().and_then(|p| p.user().username().clone()).unwrap_or_default(),
            env: process.as_ref().and_then(|p| p.env().clone()).unwrap_or_default(),
            cmd: c.record.command.clone(),
            working_dir: process.as_ref().map(|p| p.cwd().display().to_string()),
            tty: process.as_ref().and_then(|p| p.terminal()).unwrap_or(false),
            open_stdin: c.record.open_stdin,
            labels: c.record.labels.clone(),
            stop_signal: c.record.stop_signal.clone(),
        },
        host_config: InspectHostConfig {
            network_mode: network_mode.clone(),
            read_only: spec.as_ref().and_then(|s| s.root().as_ref().and_then(|r| r.readonly())).unwrap_or(false),
            memory: resources.as_ref().and_then(|r| r.memory().as_ref().and_then(|m| m.limit())),
            nano_cpus: cpu.as_ref().and_then(|c| Some((c.quota()? as f64 / c.period()? as f64 * 1e9) as i64)),
            pids_limit: resources.as_ref().and_then(|r| r.pids().as_ref().map(|p| p.limit())),
            group_add: c.record.group_add.clone(),
            restart_policy: c.record.restart_policy,
            auto_remove: c.record.auto_remove,
            log_config: c.record.log.clone(),
            cgroup: cgroup_name(c),
        },
        mounts,
        network_settings: InspectNetwork { network_mode, ip_address: String::new(), ports: Default::default() },
        graph_driver: InspectGraphDriver { name: "overlay".into(), upper_dir: c.dir.join("upper"), lower_dirs: c.record.layers.clone() },
        log_path: c.record.log.enabled().then(|| c.dir.join(super::logs::LOG_FILE)),
        dir: c.dir.clone(),
        state_dir: run_dir(&c.dir),
    }
}
