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
//!
//! The lifecycle inside the engine is create → start → wait → delete, so a
//! later monitor (`-d`) can take over the waiting.

pub mod capabilities;
pub mod channel;
pub mod container;
pub mod exe;
pub mod init;
pub mod mounts;
pub mod namespaces;
pub mod pivot_root;
pub mod profile;
pub mod process;
pub mod pty;
pub mod seccomp;
pub mod spec;
pub mod sys;
pub mod user;

use std::path::PathBuf;

pub use container::{Container, Record};
pub use process::StartFailure;
pub use spec::{Network, RunOptions};

use crate::error::Result;
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
    let saved = c.write_spec(&spec).and_then(|()| c.save());
    if let Err(e) = saved {
        let _ = c.remove(store);
        return Err(e);
    }
    Ok((c, spec))
}

/// Start a created container in the foreground and wait for it; with
/// `--rm` the record is removed afterwards.
pub fn start_and_wait(store: &Store, mut c: Container, mut spec: oci_spec::runtime::Spec, opts: &RunOptions) -> Result<Outcome> {
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(seccomp::compile(s)?),
        None => None,
    };
    let rootfs = mounts::Rootfs {
        lowers: c.record.layers.clone(),
        upper: c.dir.join("upper"),
        work: c.dir.join("work"),
        target: c.dir.join("rootfs"),
        volatile: opts.remove,
    };
    profile::mark("container created, seccomp compiled");
    // The cgroup: made from the spec's linux.resources, joined by the child
    // before it goes on, removed with the container's process.
    let cgroup = match spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        Some(r) => {
            let limits = crate::cgroups::Limits::from_oci(r)?;
            let path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()).unwrap_or_else(|| PathBuf::from(format!("ci/{}", c.id())));
            match crate::cgroups::Cgroup::create(&path.to_string_lossy(), &limits) {
                Ok(cg) => Some(cg),
                Err(e) => {
                    if opts.remove {
                        let _ = c.remove(store);
                    }
                    return Err(e);
                }
            }
        }
        None => None,
    };
    let remove_cgroup = |cg: Option<crate::cgroups::Cgroup>| -> Result<()> {
        match cg {
            Some(cg) => {
                let _ = cg.kill_all(nix::sys::signal::Signal::SIGKILL);
                cg.remove()
            }
            None => Ok(()),
        }
    };
    profile::mark("cgroup created");
    let plan = init::Plan {
        spec: &spec,
        rootfs: &rootfs,
        group_add: &opts.group_add,
        stdin_null: !opts.interactive,
        seccomp: seccomp.as_deref(),
        cgroup_mounts: cgroup.as_ref().map(|cg| cg.mounts()),
    };
    let signals = process::catch_signals()?;
    let started = process::start(&plan, |pid| match &cgroup {
        Some(cg) => cg.add_process(pid),
        None => Ok(()),
    });
    let finish = |c: Container, code: Option<i32>| -> Result<Record> {
        let mut c = c;
        if opts.remove {
            let r = c.record.clone();
            c.remove(store)?;
            Ok(r)
        } else {
            c.mark_exited(code)?;
            Ok(c.record)
        }
    };
    let mut child = match started {
        Ok(Ok(child)) => child,
        Ok(Err(failure)) => {
            remove_cgroup(cgroup)?;
            if opts.remove {
                let _ = c.remove(store);
            }
            return Ok(Outcome::NotStarted(failure));
        }
        Err(e) => {
            let _ = remove_cgroup(cgroup);
            if opts.remove {
                let _ = c.remove(store);
            }
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
        .and_then(|()| c.write_spec(&spec));
    if let Err(e) = recorded {
        child.kill(libc::SIGKILL);
        let _ = child.wait_status();
        let _ = remove_cgroup(cgroup);
        let _ = finish(c, None);
        return Err(e);
    }
    profile::mark("state recorded (running)");
    let code = child.supervise(&signals, opts.interactive);
    profile::mark("container exited");
    let removed = remove_cgroup(cgroup);
    let record = finish(c, code.as_ref().ok().copied())?;
    removed?;
    profile::mark("record finished (removed or marked exited)");
    Ok(Outcome::Exited { code: code?, record: Box::new(record) })
}
