//! Control groups: the kernel feature that limits what a group of processes
//! may use (memory, CPU time, number of processes, devices) and counts what
//! it used. A container is a cgroup directory per hierarchy plus the
//! processes written into its `cgroup.procs`; everything is files:
//!
//! ```text
//! mkdir /sys/fs/cgroup/memory/ci/ID
//! echo 104857600 > /sys/fs/cgroup/memory/ci/ID/memory.limit_in_bytes
//! echo PID > /sys/fs/cgroup/memory/ci/ID/cgroup.procs
//! ```
//!
//! # The API (for the container engine and `ci-run stats`)
//!
//! ```no_run
//! # fn main() -> ci_core::Result<()> {
//! use ci_core::cgroups::{Cgroup, Limits};
//! let limits = Limits { memory: Some(100 << 20), pids: Some(100), ..Limits::default() };
//! let cg = Cgroup::create("ci/4f2a", &limits)?;   // mkdir + limit files + device rules
//! # let pid = 1;
//! cg.add_process(pid)?;                         // before the child execs
//! // later, from another process (exec, stats, stop):
//! let cg = Cgroup::open("ci/4f2a")?.expect("exists");
//! let usage = cg.stats()?.memory.map(|m| m.usage);
//! cg.kill_all(nix::sys::signal::Signal::SIGKILL)?; // freeze, kill, thaw
//! cg.remove()?;                                  // rmdir everywhere, retrying while processes exit
//! # Ok(()) }
//! ```
//!
//! - [`Cgroup::create`] makes the cgroup in every mounted hierarchy and
//!   writes the limits; on error nothing it made is left behind.
//!   `name` is relative to each hierarchy's mount (`ci/<id>` becomes
//!   `/sys/fs/cgroup/memory/ci/<id>` on v1, `/sys/fs/cgroup/ci/<id>` on v2).
//!   The parent (`ci`) is created with the first container and removed with
//!   the last one (rmdir refuses a cgroup that still has children).
//! - [`Cgroup::add_process`] moves a whole process (all its threads). The
//!   engine calls it for the container's init before `execve`, then
//!   unshares the cgroup namespace so the container sees its cgroup as `/`.
//! - [`Cgroup::mounts`] says what to mount at the container's
//!   `/sys/fs/cgroup` (read-only): one mount per v1 hierarchy, or one cgroup2.
//! - [`Cgroup::freeze`] / [`Cgroup::thaw`] are `docker pause` / `unpause`.
//! - [`Cgroup::kill_all`] freezes first so a fork bomb cannot outrun the
//!   kill; on v2 a SIGKILL is one write to `cgroup.kill`.
//! - [`Cgroup::remove`] needs the processes gone; it retries for a few
//!   seconds while killed ones exit, then names those still inside.
//! - [`Limits`] maps to and from the OCI spec's `linux.resources`
//!   ([`Limits::from_oci`], [`Limits::to_oci`]), so the engine can create
//!   the cgroup from the `config.json` it wrote. `Limits::default()` is a
//!   plain `docker run`: no resource limit, docker's device allow list.
//!
//! [`Layout`] is a struct (the v1 hierarchies plus the optional cgroup2
//! one) rather than an enum of three layouts: on every layout the question
//! is "which hierarchy holds controller X", and the hybrid case is simply
//! both lists non-empty. [`Layout::kind`] gives the name.
//!
//! Every file written is shown under `--explain` with the shell command that
//! does the same. Errors name the file and the value and, where it helps, what
//! to do.
//!
//! # Files
//!
//! [`layout`] finds the hierarchies (v1, v2, or the hybrid of both),
//! [`limits`] is what `docker run` flags mean, [`v1`] and [`v2`] write them
//! in each API, [`devices`] is the device allow list and [`bpf`] its eBPF
//! form for v2, [`stats`] reads the usage back.

pub mod bpf;
pub mod devices;
pub mod layout;
pub mod limits;
pub mod stats;
pub mod v1;
pub mod v2;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

pub use devices::{default_devices, Access, DeviceKind, DeviceRule};
pub use layout::{Hierarchy, Layout, LayoutKind, Version};
pub use limits::Limits;
pub use stats::Stats;

use crate::error::{Error, IoContext, Result};
use crate::explain;

/// A container's cgroup: one directory in each hierarchy of the layout.
#[derive(Debug, Clone)]
pub struct Cgroup {
    name: String,
    layout: Layout,
    /// Parallel to `layout.hierarchies()`.
    dirs: Vec<PathBuf>,
}

/// One filesystem to mount in a container so that it sees its own cgroup at
/// `/sys/fs/cgroup` (see [`Cgroup::mounts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// Where, relative to the container's `/sys/fs/cgroup` (empty: there
    /// itself, the v2 case).
    pub target: PathBuf,
    /// `cgroup` (v1) or `cgroup2`.
    pub fstype: &'static str,
    /// Mount data: the v1 controllers (`cpu,cpuacct`, `name=systemd`) or the
    /// cgroup2 flags the host uses (pass them back unchanged: cgroup2 mount
    /// options are global to the hierarchy).
    pub options: String,
    /// The container's cgroup directory on the host, to bind-mount instead
    /// when the container has no cgroup namespace of its own.
    pub host_path: PathBuf,
}

/// What to mount at a container's `/sys/fs/cgroup`, read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMounts {
    /// v1 and hybrid: first a tmpfs at `/sys/fs/cgroup` to hold the
    /// per-hierarchy directories (remount it read-only afterwards).
    pub tmpfs: bool,
    pub mounts: Vec<CgroupMount>,
    /// v1 symlinks (link, target), relative to `/sys/fs/cgroup`, for
    /// controllers mounted together: `cpu -> cpu,cpuacct`, `cpuacct -> cpu,cpuacct`.
    pub links: Vec<(PathBuf, PathBuf)>,
}

/// The v2 controllers a container's cgroup gets when the hierarchy has them
/// (the limits above, and the usage figures of `ci-run stats`).
const V2_CONTROLLERS: [&str; 4] = ["cpu", "io", "memory", "pids"];

impl Cgroup {
    /// Make the cgroup `name` (e.g. `ci/<container-id>`) with `limits`, in
    /// the hierarchies of this machine.
    pub fn create(name: &str, limits: &Limits) -> Result<Cgroup> {
        Cgroup::create_in(&Layout::detect()?, name, limits)
    }

    /// [`Cgroup::create`] in a given layout (tests use a part of the host's).
    pub fn create_in(layout: &Layout, name: &str, limits: &Limits) -> Result<Cgroup> {
        check_name(name)?;
        limits.validate()?;
        explain!("cgroups: {}", layout.summary());
        // Refuse before making anything if a limit has nowhere to go.
        let need = |ctrl: &str, flag: &str, wanted: bool| match wanted && layout.hierarchy_of(ctrl).is_none() {
            true => Err(layout.missing(ctrl, flag)),
            false => Ok(()),
        };
        need("memory", "--memory", limits.memory.is_some())?;
        need("cpu", "--cpus/--cpu-shares", limits.cpus.is_some() || limits.shares().is_some())?;
        need("pids", "--pids-limit", limits.pids.is_some())?;
        if limits.restricts_devices() && layout.hierarchy_of("devices").is_none() && layout.unified.is_none() {
            return Err(layout.missing("devices", "restricting device access"));
        }
        let cg = Cgroup::at(layout, name);
        let mut made = Vec::new();
        let res = cg.make_dirs(&mut made).and_then(|()| cg.apply(limits));
        if let Err(e) = res {
            // Undo: remove only what we made (the name may exist already).
            // A parent we made may meanwhile hold another container's cgroup:
            // it is only rmdir'ed if empty, never emptied.
            let mut undo_errors = Vec::new();
            for d in made.iter().rev() {
                if cg.dirs.contains(d) {
                    if let Err(e) = remove_dir(d, Duration::from_millis(500)) {
                        undo_errors.push(e.to_string());
                    }
                } else if let Err(e) = fs::remove_dir(d) {
                    if !matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EBUSY | libc::ENOENT)) {
                        undo_errors.push(Error::io("remove cgroup", d, e).to_string());
                    }
                }
            }
            return Err(if undo_errors.is_empty() {
                e
            } else {
                e.context(format!("create cgroup {name} (and cleaning up also failed: {})", undo_errors.join("; ")))
            });
        }
        Ok(cg)
    }

    /// The cgroup `name` if it exists in some hierarchy (for `exec`,
    /// `stats`, `stop`, `rm` run by later processes).
    pub fn open(name: &str) -> Result<Option<Cgroup>> {
        Cgroup::open_in(&Layout::detect()?, name)
    }

    pub fn open_in(layout: &Layout, name: &str) -> Result<Option<Cgroup>> {
        check_name(name)?;
        let cg = Cgroup::at(layout, name);
        Ok(cg.dirs.iter().any(|d| d.is_dir()).then_some(cg))
    }

    fn at(layout: &Layout, name: &str) -> Cgroup {
        let dirs = layout.hierarchies().map(|h| h.mount_point.join(name)).collect();
        Cgroup { name: name.to_string(), layout: layout.clone(), dirs }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The cgroup's directory in every hierarchy.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.dirs.clone()
    }

    /// The directory in the hierarchy that holds `controller`.
    pub fn dir_of(&self, controller: &str) -> Option<(&Hierarchy, &Path)> {
        self.layout.hierarchies().zip(&self.dirs).find(|(h, _)| h.has(controller)).map(|(h, d)| (h, d.as_path()))
    }

    /// The directory in the cgroup2 hierarchy, if there is one.
    pub fn unified_dir(&self) -> Option<&Path> {
        self.layout.hierarchies().zip(&self.dirs).find(|(h, _)| h.version == Version::V2).map(|(_, d)| d.as_path())
    }

    fn make_dirs(&self, made: &mut Vec<PathBuf>) -> Result<()> {
        for (h, dir) in self.layout.hierarchies().zip(&self.dirs) {
            // The shared parent (`ci`) is removed by whoever removes its last
            // child; if that happens between our mkdirs, start this hierarchy again.
            let mut attempts = 0;
            while !self.make_dirs_in(h, dir, made)? {
                attempts += 1;
                if attempts == 10 {
                    return Err(Error::Conflict(format!("cgroup {}: its parent kept disappearing while being created", dir.display())));
                }
            }
        }
        Ok(())
    }

    /// mkdir each component of `dir` below the hierarchy's mount point.
    /// `Ok(false)` when a parent vanished under us (retry).
    fn make_dirs_in(&self, h: &Hierarchy, dir: &Path, made: &mut Vec<PathBuf>) -> Result<bool> {
        let wanted: Vec<&str> = V2_CONTROLLERS.iter().copied().filter(|c| h.has(c)).collect();
        let rel = dir.strip_prefix(&h.mount_point).expect("dirs are under their mount point");
        let depth = rel.components().count();
        let mut parent = h.mount_point.clone();
        for (k, part) in rel.components().enumerate() {
            let here = parent.join(part);
            if h.version == Version::V2 {
                v2::enable_controllers(&parent, &wanted)?;
            }
            let what = format!("create cgroup {} in the {} hierarchy", here.display(), h.controllers_label());
            explain!(what; format!("mkdir {}", here.display()));
            match fs::create_dir(&here) {
                Ok(()) => made.push(here.clone()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists && k + 1 < depth => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    return Err(Error::Conflict(format!("cgroup {} already exists", here.display())).hint(format!(
                        "a container with this id ran before and its cgroup was not removed: rmdir {}",
                        here.display()
                    )));
                }
                Err(e) if e.kind() == ErrorKind::NotFound && k > 0 => return Ok(false),
                Err(e) => return Err(dir_error("create cgroup directory", &here, e)),
            }
            if h.version == Version::V1 && h.has("cpuset") {
                v1::inherit_cpuset(&parent, &here)?;
            }
            parent = here;
        }
        Ok(true)
    }

    /// Write every limit (devices last).
    fn apply(&self, limits: &Limits) -> Result<()> {
        if let Some((h, dir)) = self.dir_of("memory") {
            match h.version {
                Version::V1 => v1::set_memory(dir, limits)?,
                Version::V2 => v2::set_memory(dir, limits)?,
            }
        }
        if let Some((h, dir)) = self.dir_of("cpu") {
            match h.version {
                Version::V1 => v1::set_cpu(dir, limits)?,
                Version::V2 => v2::set_cpu(dir, limits)?,
            }
        }
        if let (Some(pids), Some((_, dir))) = (limits.pids, self.dir_of("pids")) {
            // pids.max reads the same in both versions.
            write(dir, "pids.max", &if pids > 0 { pids.to_string() } else { "max".to_string() })?;
        }
        if limits.restricts_devices() {
            match (self.dir_of("devices"), self.unified_dir()) {
                (Some((_, dir)), _) => v1::set_devices(dir, &limits.devices)?,
                (None, Some(dir)) => v2::attach_device_filter(dir, &limits.devices)?,
                (None, None) => unreachable!("create_in checked that devices can be restricted"),
            }
        }
        Ok(())
    }

    /// Move process `pid` (all its threads) into the cgroup, everywhere.
    ///
    /// Cost: the first migration after a quiet spell waits for one RCU grace
    /// period (the kernel's `cgroup_threadgroup_rwsem` switching to its slow
    /// mode: 10-20 ms on the CI machine); the following writes take tens of
    /// microseconds. An engine can hide it by calling this while the child
    /// sets up its namespaces (the child only has to be in the cgroup before
    /// `execve`). On pure v2, `clone3(CLONE_INTO_CGROUP)` with an fd of
    /// [`Cgroup::unified_dir`] places the child at birth with no migration.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        for dir in &self.dirs {
            let file = dir.join("cgroup.procs");
            explain!(format!("put process {pid} in cgroup {}", dir.display()); format!("echo {pid} > {}", file.display()));
            write_quiet(dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// The processes in the cgroup and its descendants, sorted.
    pub fn procs(&self) -> Result<Vec<i32>> {
        let mut all = BTreeSet::new();
        for dir in self.dirs.iter().filter(|d| d.is_dir()) {
            collect_procs(dir, &mut all)?;
        }
        Ok(all.into_iter().collect())
    }

    /// Usage figures (see [`stats`] for where each comes from).
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        if let Some((h, dir)) = self.dir_of("memory") {
            s.memory = Some(match h.version {
                Version::V1 => v1::memory_stats(dir)?,
                Version::V2 => v2::memory_stats(dir)?,
            });
        }
        if let Some((h, dir)) = self.dir_of("cpuacct") {
            if h.version == Version::V1 {
                s.cpu = Some(v1::cpu_stats(dir)?);
            }
        } else if let Some(dir) = self.unified_dir() {
            // cpu.stat is in every v2 cgroup, with or without the cpu controller.
            s.cpu = Some(v2::cpu_stats(dir)?);
        }
        if let Some((_, dir)) = self.dir_of("pids") {
            s.pids = Some(stats::PidsStats {
                current: stats::read_u64(dir, "pids.current")?,
                limit: stats::read_limit(dir, "pids.max")?,
            });
        }
        if let Some((_, dir)) = self.dir_of("blkio") {
            s.blkio = Some(v1::blkio_stats(dir)?);
        } else if let Some((_, dir)) = self.dir_of("io") {
            s.blkio = Some(stats::parse_io_stat(&stats::read(dir, "io.stat")?));
        }
        Ok(s)
    }

    /// Stop every process of the cgroup where it stands (`docker pause`),
    /// and wait until the kernel says they are all frozen.
    pub fn freeze(&self) -> Result<()> {
        match self.freezer() {
            Some((Version::V1, dir)) => v1::freeze(dir),
            Some((Version::V2, dir)) => v2::freeze(dir),
            None => Err(self.layout.missing("freezer", "freezing a container")),
        }
    }

    /// Let the processes run again (`docker unpause`).
    pub fn thaw(&self) -> Result<()> {
        match self.freezer() {
            Some((Version::V1, dir)) => v1::thaw(dir),
            Some((Version::V2, dir)) => v2::thaw(dir),
            None => Err(self.layout.missing("freezer", "thawing a container")),
        }
    }

    /// The v1 freezer, else the v2 core freezer (`cgroup.freeze`).
    fn freezer(&self) -> Option<(Version, &Path)> {
        match self.dir_of("freezer") {
            Some((h, dir)) => Some((h.version, dir)),
            None => self.unified_dir().map(|d| (Version::V2, d)),
        }
    }

    /// Send `signal` to every process of the cgroup. Frozen first, so that
    /// none can fork a child we would miss; thawed after, so that the signal
    /// is acted on. With no freezer, a SIGKILL is repeated until no process
    /// is left (a fork bomb is bounded by the pids limit, not outrun).
    pub fn kill_all(&self, signal: Signal) -> Result<()> {
        if signal == Signal::SIGKILL && self.dir_of("freezer").is_none() {
            if let Some(dir) = self.unified_dir().filter(|d| d.join("cgroup.kill").exists()) {
                // v2 (Linux 5.14+): the kernel kills the whole subtree, forks included.
                return write(dir, "cgroup.kill", "1");
            }
        }
        let has_freezer = self.freezer().is_some();
        let frozen = has_freezer
            && match self.freeze() {
                Ok(()) => true,
                Err(e) => {
                    explain!("could not freeze before killing ({e}); signalling anyway");
                    false
                }
            };
        let rounds = if frozen || signal != Signal::SIGKILL { 1 } else { 100 };
        let res = self.signal_all(signal, rounds);
        // Thaw even after a freeze that did not complete (v1 FREEZING).
        let thawed = if has_freezer { self.thaw() } else { Ok(()) };
        res.and(thawed)
    }

    fn signal_all(&self, signal: Signal, rounds: usize) -> Result<()> {
        let mut res = Ok(());
        for round in 0..rounds {
            let pids = self.procs()?;
            if pids.is_empty() {
                break;
            }
            explain!(format!("send {signal} to {} processes of {}", pids.len(), self.name); format!(
                "kill -{} {}",
                signal.as_str().trim_start_matches("SIG"),
                pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" ")
            ));
            std::thread::sleep(Duration::from_micros(if round == 0 { 0 } else { 500 }));
            for pid in pids {
                match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                    Err(e) => {
                        res = Err(Error::io("kill", format!("process {pid}"), e.into()));
                    }
                }
            }
        }
        res
    }

    /// Remove the cgroup's directories (sub-cgroups first), retrying for a
    /// while when the kernel says busy: processes that were just killed are
    /// still exiting. A process that stays makes it fail, naming it.
    pub fn remove(self) -> Result<()> {
        let mut errors = Vec::new();
        for (h, dir) in self.layout.hierarchies().zip(&self.dirs) {
            if let Err(e) = remove_dir(dir, Duration::from_secs(5)) {
                errors.push(e);
                continue;
            }
            // The parents (`ci`) go with their last child, so nothing of ours
            // stays in the hierarchy; rmdir refuses a parent that still has one.
            for p in dir.ancestors().skip(1).take_while(|p| p.starts_with(&h.mount_point) && *p != h.mount_point) {
                if fs::remove_dir(p).is_err() {
                    break;
                }
                explain!("removed the empty parent cgroup {}", p.display());
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Conflict(errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))),
        }
    }

    /// What to mount at the container's `/sys/fs/cgroup` so it sees its own
    /// cgroup there: mount each entry with `mount -t FSTYPE -o OPTIONS,ro`
    /// after unsharing the cgroup namespace (the kernel then roots the
    /// mount at the container's cgroup), or bind-mount `host_path` read-only
    /// without one.
    pub fn mounts(&self) -> CgroupMounts {
        let v2_only = self.layout.kind() == LayoutKind::V2;
        let mounts = self
            .layout
            .hierarchies()
            .zip(&self.dirs)
            .map(|(h, dir)| CgroupMount {
                target: self.layout.container_subdir(h),
                fstype: if h.version == Version::V1 { "cgroup" } else { "cgroup2" },
                options: h.options.clone(),
                host_path: dir.clone(),
            })
            .collect::<Vec<CgroupMount>>();
        let mut links = Vec::new();
        for (h, m) in self.layout.v1.iter().zip(&mounts) {
            for c in h.controllers.iter().filter(|c| !c.starts_with("name=")) {
                if Path::new(c) != m.target {
                    links.push((PathBuf::from(c), m.target.clone()));
                }
            }
        }
        CgroupMounts { tmpfs: !v2_only, mounts, links }
    }
}

impl Hierarchy {
    /// `memory`, `cpu,cpuacct`, `name=systemd`, `cgroup2`: for messages.
    fn controllers_label(&self) -> String {
        match self.version {
            Version::V1 => self.controllers.join(","),
            Version::V2 => "cgroup2".to_string(),
        }
    }
}

/// A cgroup name is a relative path of plain components.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'))
        && !name.starts_with('/');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("cgroup name {name:?}: give a relative path such as ci/<id>, without . or .. or empty parts")))
    }
}

/// Write `value` to the cgroup file `dir/file`, shown under `--explain`.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    let shown = if value.contains([' ', '*']) { format!("'{value}'") } else { value.to_string() };
    explain!(format!("{file} = {value}"); format!("echo {shown} > {}", path.display()));
    write_quiet(dir, file, value)
}

/// [`write`] without the explanation, for retries of a step already shown.
pub(crate) fn write_quiet(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| write_error(&path, file, value, e))
}

/// Call `done` until it says true or `limit` has passed (short sleeps,
/// growing): for kernel state that settles quickly, such as a freeze.
pub(crate) fn poll_until(limit: Duration, mut done: impl FnMut() -> Result<bool>) -> Result<bool> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(100);
    loop {
        if done()? {
            return Ok(true);
        }
        if start.elapsed() >= limit {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The error for a refused cgroup write: the file, the value, the errno,
/// and what it usually means.
fn write_error(path: &Path, file: &str, value: &str, e: std::io::Error) -> Error {
    let errno = e.raw_os_error().unwrap_or(0);
    let err = Error::io("write", path, e).context(format!("set {file} to {value}"));
    let hint = match (errno, file) {
        (libc::ENOENT, _) => format!(
            "{} has no {file}: the controller it belongs to is not enabled for this cgroup",
            path.parent().unwrap_or(path).display()
        ),
        (libc::EINVAL, "pids.max") => "pids.max takes a number of processes up to 4194304, or max".into(),
        (libc::EINVAL, "cpu.cfs_quota_us" | "cpu.max") => "the CPU quota must be at least 1000 µs per period (--cpus 0.01)".into(),
        (libc::EINVAL, "memory.memsw.limit_in_bytes") => "memory+swap may not be below the memory limit".into(),
        (libc::EBUSY, f) if f.starts_with("memory.") => {
            "the cgroup already uses more memory than this limit and the kernel could not reclaim it".into()
        }
        (libc::EBUSY, "cgroup.subtree_control") => {
            "cgroup v2 enables controllers for children only in a cgroup with no processes of its own".into()
        }
        (libc::EBUSY | libc::EOPNOTSUPP, "cgroup.procs") => {
            "cgroup v2 puts processes only in leaf cgroups (no controllers enabled for children)".into()
        }
        (libc::ENOSPC, "cgroup.procs") => "this cpuset cgroup has no CPUs or memory nodes (cpuset.cpus / cpuset.mems empty)".into(),
        (libc::ESRCH, "cgroup.procs") => format!("there is no process {value} (it has exited)"),
        (libc::EPERM | libc::EACCES, _) => "writing cgroup files needs root, or a cgroup delegated to you".into(),
        (libc::EROFS, _) => "the cgroup filesystem is mounted read-only here (inside a container?)".into(),
        _ => return err,
    };
    err.hint(hint)
}

fn dir_error(op: &'static str, dir: &Path, e: std::io::Error) -> Error {
    let errno = e.raw_os_error().unwrap_or(0);
    let err = Error::io(op, dir, e);
    match errno {
        libc::EPERM | libc::EACCES => err.hint("managing cgroups needs root, or a cgroup delegated to you"),
        libc::EROFS => err.hint("the cgroup filesystem is mounted read-only here (inside a container?)"),
        _ => err,
    }
}

fn collect_procs(dir: &Path, out: &mut BTreeSet<i32>) -> Result<()> {
    let file = dir.join("cgroup.procs");
    match fs::read_to_string(&file) {
        Ok(text) => out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
        // Removed while we looked: no processes.
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read", &file, e)),
    }
    for sub in subdirs(dir)? {
        collect_procs(&sub, out)?;
    }
    Ok(())
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.ctx("list", dir)?;
        if e.file_type().ctx("stat", e.path())?.is_dir() {
            out.push(e.path());
        }
    }
    Ok(out)
}

/// `rmdir` a cgroup and its sub-cgroups, deepest first, retrying on EBUSY
/// until `patience` runs out. A missing directory is fine.
fn remove_dir(dir: &Path, patience: Duration) -> Result<()> {
    for sub in subdirs(dir)? {
        remove_dir(&sub, patience)?;
    }
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    let mut explained = false;
    loop {
        if !explained {
            explain!(format!("remove cgroup {}", dir.display()); format!("rmdir {}", dir.display()));
            explained = true;
        }
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < patience => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                let mut left = BTreeSet::new();
                let _ = collect_procs(dir, &mut left);
                let err = Error::io("remove cgroup", dir, e);
                return Err(if left.is_empty() {
                    err.hint("its processes have exited but are not reaped yet: their parent must wait() for them")
                } else {
                    err.hint(format!(
                        "processes are still in it ({}): kill them first (Cgroup::kill_all)",
                        left.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" ")
                    ))
                });
            }
            Err(e) => return Err(dir_error("remove cgroup", dir, e)),
        }
    }
}
