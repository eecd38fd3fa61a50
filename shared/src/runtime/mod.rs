//! The container engine: run a process from an image in its own root
//! filesystem, namespaces and cgroup — the work runc does for docker, done
//! here in-process by the tool that asked for it (there is no daemon).
//!
//! One module per kernel or OCI concept:
//!
//! | module | concept |
//! |---|---|
//! | [`spec`] | the OCI runtime spec (`config.json`) built from image config + flags |
//! | [`container`] | the container's record and directory in the store |
//! | [`process`] | clone, the handshake, signals, terminal relay, exit status (parent side) |
//! | [`init`] | the child's steps from clone to execve (the recipe of a container) |
//! | [`channel`] | the typed parent↔child protocol |
//! | [`namespaces`], [`mounts`], [`pivot_root`] | isolation of the view |
//! | [`capabilities`], [`seccomp`], [`user`] | what the process may do, and as whom |
//! | [`pty`] | `-t` |
//! | [`exe`] | the CVE-2019-5736 guard (ci-run runs from a read-only copy of itself) |
//! | [`sys`] | the raw system calls (openat2, the new mount API, clone, seccomp) |
//! | [`state`] | run-time state under /run: is it running, and putting stale records right |
//! | [`names`] | containers named by id, id prefix or name |
//! | [`monitor`] | the per-container process that watches a `-d` container (`ci-monitor`) |
//! | [`starter`] | `ci-run __start`: the engine half of a monitor's (re)start |
//! | [`logs`] | the json-file log the monitor writes |
//! | [`restart`] | restart policies and docker's back-off |
//! | [`control`] | stop, kill, wait, rm: through the monitor, or directly |
//! | [`exec`] | a new process in a running container (setns) |
//! | [`stats`], [`top`] | what a container uses, and its processes |
//!
//! The lifecycle inside the engine is create → start → wait → delete:
//! [`start_and_wait`] does the last three in the foreground; for `-d`, a
//! [`monitor`] has a [`starter`] call [`start`] and does the waiting.

pub mod capabilities;
pub mod channel;
pub mod container;
pub mod control;
pub mod exe;
pub mod exec;
pub mod init;
pub mod logs;
pub mod monitor;
pub mod mounts;
pub mod names;
pub mod namespaces;
pub mod pivot_root;
pub mod profile;
pub mod process;
pub mod pty;
pub mod restart;
pub mod seccomp;
pub mod spec;
pub mod starter;
pub mod state;
pub mod stats;
pub mod sys;
pub mod top;
pub mod user;

use std::path::PathBuf;

pub use container::{Container, Record, Status};
pub use process::StartFailure;
pub use spec::{Network, RunOptions};

use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::image::Image;
use crate::store::Store;

/// How a foreground run ended.
#[derive(Debug)]
pub enum Outcome {
    /// The command ran; its exit status (128+N if killed by signal N).
    Exited { code: i32, record: Box<Record> },
    /// The command never started (not found, not executable, a setup step
    /// failed): the message and docker's exit status for it (125/126/127).
    NotStarted(StartFailure),
}

/// Create a container from `image` whose unpacked layers are `layers`
/// (bottom first), without starting it. Without an image (`--rootfs`)
/// the config is empty: the command must be given.
pub fn create(store: &Store, image: Option<&Image>, image_name: &str, layers: Vec<PathBuf>, opts: &RunOptions) -> Result<(Container, oci_spec::runtime::Spec)> {
    let env_user = spec::user_env(opts)?;
    let still_there = || -> Result<()> {
        // `ci-build rm` takes the Containers lock before deciding an image is
        // unused, so checking under that lock closes the race with it.
        match image {
            Some(i) => crate::image::resolve(store, &i.id.to_string()).map(drop),
            None => Ok(()),
        }
    };
    let empty = oci_spec::image::ImageConfiguration::default();
    let config = image.map(|i| &i.config).unwrap_or(&empty);
    let c = Container::create(
        store,
        container::NewContainer {
            name: opts.name.as_deref(),
            image: image.map(|i| i.id.to_string()).unwrap_or_default(),
            image_name: image_name.to_string(),
            hostname: opts.hostname.as_deref(),
            host_network: opts.network == Network::Host,
            labels: opts.labels.clone(),
            stop_signal: opts.stop_signal.clone().or_else(|| config.config().as_ref().and_then(|c| c.stop_signal().clone())),
            auto_remove: opts.remove,
            layers,
            still_valid: &still_there,
        },
    )?;
    let built = spec::build(config, opts, &env_user, &spec::Identity { id: c.id(), hostname: &c.record.hostname, dir: &c.dir });
    let spec = match built {
        Ok(s) => s,
        Err(e) => {
            let _ = c.remove(store);
            return Err(e);
        }
    };
    let mut c = c;
    c.record.command = spec.process().as_ref().and_then(|p| p.args().clone()).unwrap_or_default();
    c.record.restart_policy = opts.restart;
    c.record.open_stdin = opts.interactive;
    c.record.log = opts.log.clone();
    c.record.group_add = opts.group_add.clone();
    let saved = c.write_spec(&spec).and_then(|()| c.save());
    if let Err(e) = saved {
        let _ = c.remove(store);
        return Err(e);
    }
    Ok((c, spec))
}

/// What differs between starting a container in the foreground and a
/// monitor starting it (or starting it again).
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// overlayfs `volatile`: only for `--rm` containers (see [`mounts::Rootfs`]).
    pub volatile: bool,
    /// stdin from /dev/null (no `-i`); otherwise the caller's fd 0 is the container's.
    pub stdin_null: bool,
    /// `--group-add`.
    pub group_add: Vec<String>,
    /// Started by `ci-run __start` for a monitor: the init is cloned as the
    /// monitor's child (see [`starter`]).
    pub clone_parent: bool,
}

/// A container whose command is running, recorded in its state.json.
pub struct Started {
    pub child: process::Child,
    pub cgroup: Option<Cgroup>,
}

/// Start the command of a created (or stopped) container from its spec:
/// the cgroup, the clone and init, then state.json. The caller becomes the
/// container's owner: it waits for the child and calls [`remove_cgroup`]
/// and [`Container::mark_exited`] when it ends. `spec` gets the resolved
/// user written back (and is saved as config.json).
pub fn start(c: &mut Container, spec: &mut oci_spec::runtime::Spec, how: &StartOptions) -> Result<std::result::Result<Started, StartFailure>> {
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(seccomp::compile(s)?),
        None => None,
    };
    let rootfs = mounts::Rootfs {
        lowers: c.record.layers.clone(),
        upper: c.dir.join("upper"),
        work: c.dir.join("work"),
        target: c.dir.join("rootfs"),
        volatile: how.volatile,
    };
    profile::mark("container created, seccomp compiled");
    // The cgroup: made from the spec's linux.resources, joined by the child
    // before it goes on, removed with the container's process.
    let cgroup = match spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        Some(r) => {
            let limits = crate::cgroups::Limits::from_oci(r)?;
            let path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()).unwrap_or_else(|| PathBuf::from(format!("ci/{}", c.id())));
            Some(Cgroup::create(&path.to_string_lossy(), &limits)?)
        }
        None => None,
    };
    profile::mark("cgroup created");
    let plan = init::Plan {
        spec,
        rootfs: &rootfs,
        group_add: &how.group_add,
        stdin_null: how.stdin_null,
        seccomp: seccomp.as_deref(),
        cgroup_mounts: cgroup.as_ref().map(|cg| cg.mounts()),
        clone_parent: how.clone_parent,
    };
    let started = process::start(&plan, |pid| match &cgroup {
        Some(cg) => cg.add_process(pid),
        None => Ok(()),
    });
    let child = match started {
        Ok(Ok(child)) => child,
        Ok(Err(failure)) => {
            remove_cgroup(cgroup)?;
            return Ok(Err(failure));
        }
        Err(e) => {
            let _ = remove_cgroup(cgroup);
            return Err(e);
        }
    };
    if let Some(u) = &child.user {
        if let Some(p) = spec.process_mut() {
            let mut user = p.user().clone();
            user.set_uid(u.uid);
            user.set_gid(u.gid);
            user.set_additional_gids(Some(u.additional_gids.clone()).filter(|g| !g.is_empty()));
            p.set_user(user);
        }
    }
    profile::mark("child exec'd the command");
    let recorded = process::start_time(child.pid)
        .and_then(|t| c.mark_running(child.pid, t))
        .and_then(|()| c.write_spec(spec));
    if let Err(e) = recorded {
        child.kill(libc::SIGKILL);
        let _ = child.wait_status();
        let _ = remove_cgroup(cgroup);
        state::remove_run_dir(&c.dir);
        return Err(e);
    }
    profile::mark("state recorded (running)");
    Ok(Ok(Started { child, cgroup }))
}

/// Kill what is left in a container's cgroup and remove it.
pub fn remove_cgroup(cg: Option<Cgroup>) -> Result<()> {
    match cg {
        Some(cg) => {
            let _ = cg.kill_all(nix::sys::signal::Signal::SIGKILL);
            cg.remove()
        }
        None => Ok(()),
    }
}

/// Start a created container in the foreground and wait for it; with
/// `--rm` the record is removed afterwards. This process owns the
/// container meanwhile (it holds the container's lock).
pub fn start_and_wait(store: &Store, mut c: Container, mut spec: oci_spec::runtime::Spec, opts: &RunOptions) -> Result<Outcome> {
    let lock = match c.lock_within(std::time::Duration::from_secs(2)) {
        Ok(Some(l)) => l,
        Ok(None) => {
            return Err(Error::Conflict(format!("container {} is in use by another ci-run (it is running, or being removed)", &c.record.id[..12])))
        }
        Err(e) => return Err(e),
    };
    let how = StartOptions { volatile: opts.remove, stdin_null: !opts.interactive, group_add: opts.group_add.clone(), clone_parent: false };
    let signals = process::catch_signals()?;
    let discard = |c: Container| {
        if opts.remove {
            let _ = c.remove(store);
        }
    };
    let Started { mut child, cgroup } = match start(&mut c, &mut spec, &how) {
        Ok(Ok(s)) => s,
        Ok(Err(failure)) => {
            discard(c);
            return Ok(Outcome::NotStarted(failure));
        }
        Err(e) => {
            discard(c);
            return Err(e);
        }
    };
    let code = child.supervise(&signals, opts.interactive);
    profile::mark("container exited");
    let removed = remove_cgroup(cgroup);
    let record = if opts.remove {
        let r = c.record.clone();
        c.remove(store)?;
        r
    } else {
        c.mark_exited(code.as_ref().ok().copied())?;
        c.record
    };
    drop(lock);
    removed?;
    profile::mark("record finished (removed or marked exited)");
    Ok(Outcome::Exited { code: code?, record: Box::new(record) })
}
