//! The container record: one directory per container under the store.
//!
//! ```text
//! ROOT/containers/<id>/container.json   what the container is and its last known state (this module's Record)
//! ROOT/containers/<id>/config.json      its OCI runtime spec
//! ROOT/containers/<id>/json.log[.N]     what it printed, when run detached (runtime::logs)
//! ROOT/containers/<id>/hostname, hosts, resolv.conf   bound onto /etc/… in the container
//! ROOT/containers/<id>/upper/, work/    the overlay's writable layer and its scratch dir
//! ROOT/containers/<id>/rootfs/          the overlay's mount point (mounted only in the
//!                                       container's own mount namespace)
//! /run/ci/<root-hash>/<id>/state.json   while it runs: pid, the pid's start time, the boot id,
//!                                       and its owner (see runtime::state)
//! /run/ci/<root-hash>/<id>/monitor.sock the monitor's socket, for -d containers
//! ```
//!
//! Durability: records are replaced atomically (temp file + rename) but
//! not fsynced: a container is runtime state, and a power cut at worst loses
//! or empties a record, which readers skip and `rm` cleans up. The start
//! path thus costs no disk flush. `state.json` describes a live process and
//! lives under /run (see [`super::state`]): a reboot empties it, and where
//! /run survives a reboot the boot id in it tells. A container is running
//! while state.json exists and its pid still has the recorded start time
//! (see [`Container::run_state`]); container.json is rewritten when it exits.
//!
//! Locks: names are unique (creation checks and writes under the
//! Containers lock), and every change to a record after its creation is a
//! read-modify-write under the same lock ([`Container::update`]), so a
//! rename never loses to the monitor recording an exit. The container's
//! directory itself is flocked by its *owner* — the monitor of a `-d`
//! container, or `ci-run` running it in the foreground — for as long as it
//! owns it ([`Container::try_lock`]); `rm` takes that lock too, so nothing
//! starts a container while it is being removed.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::store::{LockKind, Store};
use crate::{explain, fsutil};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    /// Exited; its monitor will start it again after a back-off delay.
    Restarting,
    Exited,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
        }
    }
}

/// `container.json`: the object the tools print for a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Always "container".
    pub kind: String,
    pub id: String,
    pub name: String,
    /// The image id (config digest): `ci-build rm` refuses images a record names.
    pub image: String,
    /// The image as the user named it.
    pub image_name: String,
    pub created: String,
    pub command: Vec<String>,
    pub state: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub hostname: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// `--rm`: removed when it exits.
    #[serde(default)]
    pub auto_remove: bool,
    /// The unpacked layers it stacks, bottom first.
    #[serde(default)]
    pub layers: Vec<PathBuf>,
    /// `--restart`: what its monitor does when the command exits.
    #[serde(default)]
    pub restart_policy: super::restart::RestartPolicy,
    /// How many times its monitor started it again.
    #[serde(default)]
    pub restart_count: u32,
    /// Stopped or killed by hand: the restart policy does not undo it (docker's HasBeenManuallyStopped).
    #[serde(default)]
    pub manually_stopped: bool,
    /// `-i`: stdin stays open while it runs detached (a pipe its monitor holds).
    #[serde(default)]
    pub open_stdin: bool,
    /// `--log-driver`, `--log-opt`: how a detached run's output is kept.
    #[serde(default)]
    pub log: super::logs::LogConfig,
    /// `--group-add`, resolved again at each start in the container's /etc/group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// Why the last start failed, or what went wrong while it ran (docker's State.Error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `state.json`: the live process, while there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    pub pid: i32,
    /// Field 22 of /proc/PID/stat: pid reuse shows as a different value.
    pub pid_start_time: u64,
    /// /proc/sys/kernel/random/boot_id when it started: a reboot shows as a different value.
    pub boot_id: String,
    pub started_at: String,
    /// The process that waits for it and records its exit: its monitor
    /// (`-d`), or the `ci-run` running it in the foreground.
    #[serde(default)]
    pub owner_pid: i32,
    #[serde(default)]
    pub owner_start_time: u64,
    /// Whether the owner is a monitor (it then listens on monitor.sock).
    #[serde(default)]
    pub monitor: bool,
}

/// A container's place in the store.
#[derive(Debug, Clone)]
pub struct Container {
    pub dir: PathBuf,
    pub record: Record,
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// 64 random hex digits, docker's id shape.
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    // SAFETY: getrandom into a local buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    assert_eq!(n, 32, "getrandom failed");
    hex::encode(b)
}

/// docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = name.len() >= 2
        && name.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("invalid container name {name:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit (at least 2 characters)")))
    }
}

const ADJECTIVES: &[&str] = &[
    "brave", "calm", "clever", "eager", "fervent", "gentle", "happy", "jolly", "keen", "lucid", "merry", "nifty",
    "quirky", "serene", "stoic", "sweet", "tender", "vibrant", "wizardly", "zealous", "bold", "crisp", "dreamy", "epic",
];
const NAMES: &[&str] = &[
    "lovelace", "turing", "hopper", "ritchie", "thompson", "torvalds", "knuth", "dijkstra", "hamilton", "liskov",
    "allen", "backus", "cerf", "curie", "euler", "gauss", "hypatia", "kare", "lamport", "noether", "pike", "shannon",
    "wozniak", "yalow",
];

fn random_name() -> String {
    let id = new_id();
    let a = usize::from_str_radix(&id[..4], 16).unwrap_or(0);
    let b = usize::from_str_radix(&id[4..8], 16).unwrap_or(0);
    format!("{}_{}", ADJECTIVES[a % ADJECTIVES.len()], NAMES[b % NAMES.len()])
}

/// Write a small file atomically (temp + rename), without fsync (see the module doc).
pub fn write_quick(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&tmp)
        .ctx("create", &tmp)?;
    f.write_all(data).ctx("write", &tmp)?;
    std::fs::rename(&tmp, path).ctx("rename into place", path)
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let mut data = serde_json::to_vec_pretty(v).expect("records serialise");
    data.push(b'\n');
    write_quick(path, &data)
}

/// Every container record in the store (unreadable ones are skipped).
pub fn list(store: &Store) -> Result<Vec<Container>> {
    let dir = store.containers_dir();
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("read directory", &dir, e)),
    };
    for e in rd {
        let e = e.ctx("read directory", &dir)?;
        let path = e.path();
        let Ok(data) = std::fs::read(path.join("container.json")) else { continue };
        let Ok(record) = serde_json::from_slice::<Record>(&data) else { continue };
        out.push(Container { dir: path, record });
    }
    Ok(out)
}

/// What [`create`] needs besides the record's fields.
pub struct NewContainer<'a> {
    pub name: Option<&'a str>,
    pub image: String,
    pub image_name: String,
    pub hostname: Option<&'a str>,
    pub host_network: bool,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    pub auto_remove: bool,
    pub layers: Vec<PathBuf>,
    /// Checked under the lock just before the record is written (the image still exists…).
    pub still_valid: &'a dyn Fn() -> Result<()>,
}

impl Container {
    /// Create the record and the container's directory (no process yet).
    /// The spec is written by [`Container::write_spec`] once built.
    pub fn create(store: &Store, new: NewContainer) -> Result<Container> {
        if let Some(n) = new.name {
            validate_name(n)?;
        }
        let _lock = store.lock(LockKind::Containers)?;
        (new.still_valid)()?;
        let existing = list(store)?;
        let name = match new.name {
            Some(n) => {
                if let Some(c) = existing.iter().find(|c| c.record.name == n) {
                    return Err(Error::Conflict(format!("the container name {n:?} is already in use by container {}", &c.record.id[..12]))
                        .hint("remove that container (`ci-run rm`), or choose another --name"));
                }
                n.to_string()
            }
            None => loop {
                let n = random_name();
                if !existing.iter().any(|c| c.record.name == n) {
                    break n;
                }
            },
        };
        let id = new_id();
        let dir = store.containers_dir().join(&id);
        let hostname = match (new.hostname, new.host_network) {
            (Some(h), _) => h.to_string(),
            (None, true) => nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_else(|_| id[..12].to_string()),
            (None, false) => id[..12].to_string(),
        };
        explain!(format!("create the container's directory {}", dir.display()); format!("mkdir -p {0}/upper {0}/work {0}/rootfs", dir.display()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir).ctx("create directory", &dir)?;
        let made = (|| -> Result<()> {
            // The upper dir is the merged root's own inode: give it the mode and
            // owner of the image's root, or "/" would look like a 0700 root-only dir.
            let top = new.layers.last().ok_or_else(|| Error::invalid("the image has no layers"))?;
            let md = std::fs::metadata(top).ctx("stat layer", top)?;
            let upper = dir.join("upper");
            std::fs::DirBuilder::new().mode(0o755).create(&upper).ctx("create directory", &upper)?;
            std::fs::set_permissions(&upper, std::os::unix::fs::PermissionsExt::from_mode(md.mode() & 0o7777)).ctx("chmod", &upper)?;
            std::os::unix::fs::chown(&upper, Some(md.uid()), Some(md.gid())).ctx("chown", &upper)?;
            for d in ["work", "rootfs"] {
                std::fs::DirBuilder::new().mode(0o700).create(dir.join(d)).ctx("create directory", dir.join(d))?;
            }
            write_etc_files(&dir, &hostname, new.host_network)?;
            let record = Record {
                kind: "container".into(),
                id: id.clone(),
                name: name.clone(),
                image: new.image.clone(),
                image_name: new.image_name.clone(),
                created: now_rfc3339(),
                command: vec![],
                state: Status::Created,
                exit_code: None,
                started_at: None,
                finished_at: None,
                hostname: hostname.clone(),
                labels: new.labels.clone(),
                stop_signal: new.stop_signal.clone(),
                auto_remove: new.auto_remove,
                layers: new.layers.clone(),
                restart_policy: Default::default(),
                restart_count: 0,
                manually_stopped: false,
                open_stdin: false,
                log: Default::default(),
                group_add: vec![],
                error: None,
            };
            write_json(&dir.join("container.json"), &record)
        })();
        if let Err(e) = made {
            let _ = fsutil::remove_all(&dir);
            return Err(e);
        }
        let data = std::fs::read(dir.join("container.json")).ctx("read", dir.join("container.json"))?;
        let record = serde_json::from_slice(&data).map_err(|e| Error::Corrupt(format!("container.json just written: {e}")))?;
        Ok(Container { dir, record })
    }

    /// The container whose directory is `ROOT/containers/<id>`.
    pub fn load(store: &Store, id: &str) -> Result<Container> {
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid(format!("{id:?} is not a container id (64 hex digits)")));
        }
        let dir = store.containers_dir().join(id);
        let path = dir.join("container.json");
        let data = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::not_found("container", id),
            _ => Error::io("read", &path, e),
        })?;
        let record = serde_json::from_slice(&data).map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
        Ok(Container { dir, record })
    }

    pub fn id(&self) -> &str {
        &self.record.id
    }

    pub fn write_spec(&self, spec: &oci_spec::runtime::Spec) -> Result<()> {
        write_json(&self.dir.join("config.json"), spec)
    }

    pub fn save(&self) -> Result<()> {
        write_json(&self.dir.join("container.json"), &self.record)
    }

    /// Record the running process: state.json alone (one small write on the
    /// start path). While it exists and its pid has the recorded start time,
    /// the container is running, whatever container.json still says. The
    /// calling process is recorded as the container's owner, or the
    /// monitor it starts the container for.
    pub fn mark_running(&mut self, pid: i32, pid_start_time: u64) -> Result<()> {
        let monitor = super::state::monitor();
        let me = monitor.unwrap_or(std::process::id() as i32);
        let state = RunState {
            pid,
            pid_start_time,
            boot_id: super::state::boot_id().to_string(),
            started_at: now_rfc3339(),
            owner_pid: me,
            owner_start_time: super::process::start_time(me)?,
            monitor: monitor.is_some(),
        };
        let dir = super::state::create_run_dir(&self.dir)?;
        write_json(&dir.join("state.json"), &state)?;
        self.record.state = Status::Running;
        self.record.started_at = Some(state.started_at);
        Ok(())
    }

    /// state.json as written, alive or not.
    pub fn read_run_state(&self) -> Option<RunState> {
        serde_json::from_slice(&std::fs::read(super::state::run_dir(&self.dir).join("state.json")).ok()?).ok()
    }

    /// The live state, if the container's process is (still) running.
    pub fn run_state(&self) -> Option<RunState> {
        self.read_run_state().filter(|s| super::state::alive(s.pid, s.pid_start_time, &s.boot_id))
    }

    /// Record the end of the process (its status; `None` when unknown) and
    /// forget its run-time state.
    pub fn mark_exited(&mut self, code: Option<i32>) -> Result<()> {
        self.update(|r| {
            r.state = Status::Exited;
            r.exit_code = code;
            r.finished_at = Some(now_rfc3339());
        })?;
        super::state::remove_run_dir(&self.dir);
        Ok(())
    }

    /// Change the record under the Containers lock: read it fresh, apply
    /// `f`, write it back (so concurrent changes — a rename, the monitor
    /// recording an exit — are never lost). `self.record` becomes the result.
    pub fn update(&mut self, f: impl FnOnce(&mut Record)) -> Result<()> {
        let root = self.dir.parent().and_then(Path::parent).ok_or_else(|| Error::invalid(format!("{}: not in a store", self.dir.display())))?;
        let _lock = crate::lock::Lock::exclusive(&root.join("locks/containers.lock"))?;
        let path = self.dir.join("container.json");
        let data = std::fs::read(&path).ctx("read", &path)?;
        let mut record: Record = serde_json::from_slice(&data).map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
        f(&mut record);
        write_json(&path, &record)?;
        self.record = record;
        Ok(())
    }

    /// Read the record again from disk.
    pub fn reload(&mut self) -> Result<()> {
        let path = self.dir.join("container.json");
        let data = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::not_found("container", self.record.id.clone()),
            _ => Error::io("read", &path, e),
        })?;
        self.record = serde_json::from_slice(&data).map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
        Ok(())
    }

    /// The owner's lock (a flock on the container's directory), if nobody
    /// holds it. The owner keeps it while the container runs under it.
    pub fn try_lock(&self) -> Result<Option<nix::fcntl::Flock<std::fs::File>>> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&self.dir)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::not_found("container", self.record.id.clone()),
                _ => Error::io("open", &self.dir, e),
            })?;
        match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(l) => Ok(Some(l)),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(Error::io("flock", &self.dir, e.into())),
        }
    }

    /// [`Container::try_lock`], waiting up to `patience` for a holder that is
    /// finishing (a monitor writing its last record, a foreground run ending).
    pub fn lock_within(&self, patience: std::time::Duration) -> Result<Option<nix::fcntl::Flock<std::fs::File>>> {
        let start = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            if let Some(l) = self.try_lock()? {
                return Ok(Some(l));
            }
            if start.elapsed() >= patience {
                return Ok(None);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(25));
        }
    }

    /// Remove the record and the writable layer. Moved into the store's tmp
    /// first, so a crash midway leaves no half-record that `list` would show.
    pub fn remove(self, store: &Store) -> Result<()> {
        explain!(format!("remove the container {} and its writable layer", &self.record.id[..12]); format!("rm -rf {}", self.dir.display()));
        let doomed = store.tmp_dir().join(format!("deleting-container-{}", self.record.id));
        {
            let _lock = store.lock(LockKind::Containers)?;
            std::fs::rename(&self.dir, &doomed).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::not_found("container", self.record.id.clone()),
                _ => Error::io("move aside", &self.dir, e),
            })?;
        }
        super::state::remove_run_dir(&self.dir);
        fsutil::remove_all(&doomed)
    }
}

/// docker's /etc/hosts for a container without a network of its own.
const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

fn write_etc_files(dir: &Path, hostname: &str, host_network: bool) -> Result<()> {
    explain!("write the container's /etc/hostname, /etc/hosts and /etc/resolv.conf"; format!("echo {hostname} > {}/hostname; …", dir.display()));
    let plain = |name: &str, data: &[u8]| -> Result<()> {
        let p = dir.join(name);
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW).open(&p).and_then(|mut f| f.write_all(data)).ctx("write", &p)
    };
    plain("hostname", format!("{hostname}\n").as_bytes())?;
    let hosts = if host_network { std::fs::read("/etc/hosts").unwrap_or_else(|_| HOSTS.as_bytes().to_vec()) } else { HOSTS.as_bytes().to_vec() };
    plain("hosts", &hosts)?;
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv = if host_network {
        host_resolv
    } else {
        // A nameserver on the host's loopback is unreachable from another network namespace.
        host_resolv
            .lines()
            .filter(|l| {
                let mut w = l.split_whitespace();
                !(w.next() == Some("nameserver") && w.next().is_some_and(|a| a.starts_with("127.") || a == "::1"))
            })
            .map(|l| format!("{l}\n"))
            .collect()
    };
    plain("resolv.conf", resolv.as_bytes())
}
