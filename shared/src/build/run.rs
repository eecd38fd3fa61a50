//! RUN: a command in a container made from the build state, through the
//! same container engine as `ci-run` (namespaces, overlay root, seccomp,
//! capabilities, the user): the state's layers are the container's lower
//! layers, a fresh upper directory takes its writes, and that upper
//! directory — deletions as overlay whiteouts — becomes the step's layer.
//!
//! `RUN --mount`:
//! - `type=cache,target=DIR[,id=ID][,sharing=shared|private|locked][,readonly][,uid=,gid=,mode=]`:
//!   a directory under `ROOT/build-cache/mounts/` that persists across
//!   builds, named by a hash of its id (an id like `../../x` names a cache,
//!   never a path: CVE-2024-9675);
//! - `type=tmpfs,target=DIR[,size=BYTES]`;
//! - `type=bind,target=DIR[,source=PATH][,from=STAGE|IMAGE]`: read-only,
//!   from the context or another stage's filesystem, `source` resolved
//!   inside it (a `/link -> /` in the stage is the stage's root, never the
//!   host's: CVE-2024-1753).
//!
//! Bind sources are resolved inside their root (read-only views of
//! immutable layers, or the context) to paths with no symlink left, and
//! cache mounts take no `source=` subpath, so nothing a step does can swap
//! a mount source for a symlink to the host (CVE-2024-23651). Mount points
//! the engine had to create are removed from the layer afterwards, through
//! directory descriptors that never follow a symlink (CVE-2024-23652).

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::{Mount, MountBuilder};

use super::rootfs::{self, Overlay};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::runtime::{self, container::Container, Network, Outcome, RunOptions};
use crate::store::{Store, TempDir};

/// One `--mount=` of a RUN, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSpec {
    Cache { target: String, id: String, sharing: Sharing, readonly: bool, uid: u32, gid: u32, mode: u32 },
    Tmpfs { target: String, size: Option<String> },
    Bind { target: String, source: String, from: Option<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

impl MountSpec {
    pub fn target(&self) -> &str {
        match self {
            MountSpec::Cache { target, .. } | MountSpec::Tmpfs { target, .. } | MountSpec::Bind { target, .. } => target,
        }
    }

    /// Parse `type=cache,target=/x,...` (after variable substitution).
    pub fn parse(s: &str, workdir: &str) -> Result<MountSpec> {
        let bad = |why: String| Error::invalid(format!("RUN --mount={s}: {why}"));
        let mut kv: BTreeMap<String, Option<String>> = BTreeMap::new();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = match part.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.to_string())),
                None => (part.trim().to_ascii_lowercase(), None),
            };
            if kv.insert(k.clone(), v).is_some() {
                return Err(bad(format!("{k} is given twice")));
            }
        }
        let typ = kv.remove("type").flatten().unwrap_or_else(|| "bind".into());
        let mut target = None;
        for key in ["target", "dst", "destination"] {
            if let Some(v) = kv.remove(key) {
                target = v;
            }
        }
        let target = target.filter(|t| !t.is_empty()).ok_or_else(|| bad("target=PATH is required".into()))?;
        let target = if target.starts_with('/') { target } else { crate::dockerfile::golang::join_path(&["/", workdir, &target]) };
        let flag = |kv: &mut BTreeMap<String, Option<String>>, k: &str| -> Result<bool> {
            match kv.remove(k) {
                None => Ok(false),
                Some(None) => Ok(true),
                Some(Some(v)) => match v.as_str() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    _ => Err(Error::invalid(format!("RUN --mount={s}: {k}={v}: expected true or false"))),
                },
            }
        };
        let num = |kv: &mut BTreeMap<String, Option<String>>, k: &str, radix: u32, default: u32| -> Result<u32> {
            match kv.remove(k).flatten() {
                None => Ok(default),
                Some(v) => u32::from_str_radix(&v, radix).map_err(|_| Error::invalid(format!("RUN --mount={s}: {k}={v} is not a number"))),
            }
        };
        let spec = match typ.as_str() {
            "cache" => {
                let readonly = flag(&mut kv, "readonly")? | flag(&mut kv, "ro")?;
                let id = kv.remove("id").flatten().filter(|i| !i.is_empty()).unwrap_or_else(|| target.clone());
                let sharing = match kv.remove("sharing").flatten().as_deref() {
                    None | Some("shared") => Sharing::Shared,
                    Some("private") => Sharing::Private,
                    Some("locked") => Sharing::Locked,
                    Some(o) => return Err(bad(format!("sharing={o}: expected shared, private or locked"))),
                };
                let uid = num(&mut kv, "uid", 10, 0)?;
                let gid = num(&mut kv, "gid", 10, 0)?;
                let mode = num(&mut kv, "mode", 8, 0o755)?;
                MountSpec::Cache { target, id, sharing, readonly, uid, gid, mode }
            }
            "tmpfs" => MountSpec::Tmpfs { target, size: kv.remove("size").flatten() },
            "bind" => {
                let source = kv.remove("source").or_else(|| kv.remove("src")).flatten().unwrap_or_else(|| "/".into());
                let from = kv.remove("from").flatten();
                if flag(&mut kv, "rw")? | flag(&mut kv, "readwrite")? {
                    return Err(bad("rw bind mounts are not supported: bind mounts in a build are read-only".into()));
                }
                let _ = flag(&mut kv, "readonly")? | flag(&mut kv, "ro")?;
                MountSpec::Bind { target, source, from }
            }
            "secret" | "ssh" => {
                return Err(Error::Unsupported(format!("RUN --mount=type={typ} is not supported by ci-build (no secrets or agent forwarding)")))
            }
            other => return Err(bad(format!("unknown mount type {other:?}: expected cache, tmpfs or bind"))),
        };
        if let Some(k) = kv.keys().next() {
            // bind-propagation and friends could expose host mounts (CVE-2024-9407): refuse anything unknown.
            return Err(bad(format!("unknown or unsupported option {k:?} for type={typ}")));
        }
        Ok(spec)
    }

    /// The mount's part of the step's cache key.
    pub fn key(&self) -> String {
        format!("{self:?}")
    }
}

/// Where a `type=bind,from=` source lives, resolved by the builder.
pub enum BindFrom<'a> {
    /// The build context's directory.
    Context(&'a Path),
    /// Another stage's or an image's layers (bottom first).
    Layers(Vec<PathBuf>),
}

/// Everything one RUN needs.
pub struct RunStep<'a> {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: String,
    pub network: Network,
    pub privileged: bool,
    pub mounts: Vec<(MountSpec, BindFrom<'a>)>,
    /// A heredoc script with a `#!` line, run as a file.
    pub script: Option<(String, String)>,
    /// For messages: the instruction.
    pub what: String,
}

/// What a RUN produced: the upper directory (inside a temp dir of the store).
pub struct RunResult {
    pub tmp: TempDir,
    pub upper: PathBuf,
    pub container: String,
}

/// The label that ties a RUN step's container to the build running it: the
/// name of the build's temporary directory (`ROOT/tmp/build-*`, holding its
/// logs), which the build keeps flocked for as long as it lives.
pub const OWNER_LABEL: &str = "ci.build.owner";

/// Remove what RUN steps of dead builds left: a build killed (kill -9,
/// the OOM killer) while a step ran cannot remove its step's container
/// record nor its cgroup, and nothing else would. A step's container
/// belongs to a dead build when the build's temporary directory is gone or
/// no longer locked. A process killed while it created a container leaves
/// a directory without `container.json` (nobody's, and no cgroup yet):
/// those go too. Returns how many were removed.
pub fn remove_dead_step_containers(store: &Store) -> Result<usize> {
    let mut removed = remove_half_made_containers(store)?;
    for c in runtime::container::list(store)? {
        let Some(owner) = c.record.labels.get(OWNER_LABEL) else { continue };
        // Both name paths below: only the shapes we write are trusted.
        let id_ok = c.record.id.len() == 64 && c.record.id.bytes().all(|b| b.is_ascii_hexdigit());
        if !id_ok || owner.is_empty() || owner.contains('/') || owner.starts_with('.') || build_alive(store, owner) {
            continue;
        }
        // The owner's lock, as `ci-run rm` takes it: a process of the dead
        // build still dying may hold it a moment longer (the next sweep then).
        let Some(_owned) = c.try_lock()? else { continue };
        crate::explain!(
            format!("remove container {} of a RUN step whose build died, and its cgroup", &c.record.id[..12]);
            // Cgroup::remove shows its own rmdirs, in whichever hierarchies there are.
            format!("rm -rf {}", c.dir.display())
        );
        if let Some(cg) = crate::cgroups::Cgroup::open(&format!("ci/{}", c.record.id))? {
            let _ = cg.kill_all(nix::sys::signal::Signal::SIGKILL);
            cg.remove()?;
        }
        c.remove(store)?;
        removed += 1;
    }
    Ok(removed)
}

/// Container directories without a record: their creator died before
/// writing it. Creation holds the Containers lock from mkdir to record, so
/// under that lock none is in the making.
fn remove_half_made_containers(store: &Store) -> Result<usize> {
    let dir = store.containers_dir();
    let Ok(rd) = std::fs::read_dir(&dir) else { return Ok(0) };
    let candidates: Vec<_> = rd.flatten().filter(|e| !e.path().join("container.json").exists()).map(|e| e.file_name()).collect();
    if candidates.is_empty() {
        return Ok(0);
    }
    let mut removed = 0;
    let _lock = store.lock(crate::store::LockKind::Containers)?;
    for name in candidates {
        let (path, id) = (dir.join(&name), name.to_string_lossy().into_owned());
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || path.join("container.json").exists() {
            continue;
        }
        let doomed = store.tmp_dir().join(format!("deleting-container-{id}"));
        if std::fs::rename(&path, &doomed).is_ok() {
            crate::fsutil::remove_all(&doomed)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Whether the build owning `ROOT/tmp/<owner>` still runs (holds its lock).
fn build_alive(store: &Store, owner: &str) -> bool {
    let dir = store.tmp_dir().join(owner);
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&dir)
    else {
        return false;
    };
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockSharedNonblock).is_err()
}

/// Run the step in a container over `lowers`; `log` receives its output
/// (and lies in the build's temporary directory, which names the owner).
pub fn run(store: &Store, lowers: Vec<PathBuf>, step: &RunStep, progress: &super::progress::Progress, log: &Path) -> Result<RunResult> {
    let lowers = if lowers.is_empty() { vec![rootfs::empty_lower(store)?] } else { lowers };
    let mut opts = RunOptions::new();
    if let Some(owner) = log.parent().and_then(Path::file_name) {
        opts.labels.insert(OWNER_LABEL.to_string(), owner.to_string_lossy().into_owned());
    }
    // As docker build: no_new_privs off, so setuid programs (`su`) work in
    // RUN; the seccomp filter is installed all the same.
    opts.no_new_privileges = false;
    opts.env = step.env.clone();
    opts.user = step.user.clone().filter(|u| !u.is_empty());
    opts.workdir = Some(step.workdir.clone());
    opts.entrypoint = Some(String::new());
    opts.command = step.args.clone();
    opts.network = step.network;
    opts.privileged = step.privileged;

    // Which mount targets exist before the run (those that do not are removed from the layer after it).
    let existed = if step.mounts.is_empty() && step.script.is_none() {
        Vec::new()
    } else {
        let view = Overlay::mount(store, &lowers, false)?;
        let root = view.root()?;
        let mut v = Vec::new();
        for (m, _) in &step.mounts {
            v.push((m.target().to_string(), rootfs::stat_in_root(root.as_fd(), Path::new(m.target()))?.is_some()));
        }
        v
    };

    // Sources for the mounts, kept open (and mounted) until the container is gone.
    let mut keep_views: Vec<Overlay> = Vec::new();
    let mut keep_locks: Vec<crate::lock::Lock> = Vec::new();
    let mut keep_tmp: Vec<TempDir> = Vec::new();
    let mut mounts: Vec<Mount> = Vec::new();
    for (m, from) in &step.mounts {
        match m {
            MountSpec::Cache { target, id, sharing, readonly, uid, gid, mode } => {
                let dir = cache_mount_dir(store, id, *uid, *gid, *mode)?;
                let dir = match sharing {
                    Sharing::Shared => dir,
                    Sharing::Locked => {
                        keep_locks.push(crate::lock::Lock::exclusive(&dir.with_extension("lock"))?);
                        dir
                    }
                    Sharing::Private => match crate::lock::Lock::try_exclusive(&dir.with_extension("lock"))? {
                        Some(l) => {
                            keep_locks.push(l);
                            dir
                        }
                        None => {
                            let t = store.temp_dir("cache-mount-")?;
                            let p = t.path().to_path_buf();
                            keep_tmp.push(t);
                            p
                        }
                    },
                };
                // A path of ours (a hash names it; `source=` subpaths are refused),
                // resolved by the container's init in its own mount namespace.
                let opts: &[&str] = if *readonly { &["rbind", "ro", "nosuid", "nodev"] } else { &["rbind", "nosuid", "nodev"] };
                mounts.push(bind(target, &dir, opts));
            }
            MountSpec::Tmpfs { target, size } => {
                let mut o = vec!["nosuid".to_string(), "nodev".to_string(), "mode=1777".to_string()];
                if let Some(s) = size {
                    o.push(format!("size={s}"));
                }
                mounts.push(MountBuilder::default().destination(target.as_str()).typ("tmpfs").source("tmpfs").options(o).build().expect("mount fields"));
            }
            MountSpec::Bind { target, source, .. } => {
                // The source is resolved here, inside its root (a read-only
                // view, or the context), to a path without symlinks: the
                // engine's init then binds exactly that.
                let (root, what) = match from {
                    BindFrom::Context(dir) => (dir.to_path_buf(), "the build context"),
                    BindFrom::Layers(layers) => {
                        let view = Overlay::mount(store, layers, false)?;
                        let p = view.merged.clone();
                        keep_views.push(view);
                        (p, "the stage")
                    }
                };
                let rel = super::context::clean_rel(Path::new(source));
                let real = super::context::resolve_in_root(&root, &rel)?
                    .ok_or_else(|| Error::invalid(format!("RUN --mount: the source {source:?} does not exist in {what}")))?;
                mounts.push(bind(target, &root.join(real), &["rbind", "ro", "nosuid", "nodev"]));
            }
        }
    }
    if let Some((name, body)) = &step.script {
        let t = store.temp_dir("script-")?;
        let p = t.path().join("script");
        std::fs::write(&p, body).ctx("write", &p)?;
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).ctx("chmod", &p)?;
        let target = format!("/dev/pipes/{name}");
        mounts.push(bind(&target, &p, &["bind", "ro", "nosuid", "nodev"]));
        opts.command = vec![target];
        keep_tmp.push(t);
    }

    let (c, mut spec) = runtime::create(store, None, &step.what, lowers, &opts)?;
    let id = c.id().to_string();
    let dir = c.dir.clone();
    crate::explain!("run {} in container {} (its writes go to {}/upper)", step.what, &id[..12], dir.display());
    if !mounts.is_empty() {
        let mut all = spec.mounts().clone().unwrap_or_default();
        all.extend(mounts);
        spec.set_mounts(Some(all));
    }
    let outcome = {
        let saved = nix::sys::signal::SigSet::thread_get_mask().ok();
        let relay = progress.relay(log)?;
        let r = runtime::start_and_wait(store, c, spec, &opts);
        relay.finish();
        if let Some(m) = saved {
            let _ = m.thread_set_mask();
        }
        r
    };
    drop(keep_views);
    drop(keep_locks);
    let remove = |store: &Store| -> Result<()> {
        let data = std::fs::read(dir.join("container.json")).ctx("read", dir.join("container.json"))?;
        let record = serde_json::from_slice(&data).map_err(|e| Error::Corrupt(format!("container.json: {e}")))?;
        Container { dir: dir.clone(), record }.remove(store)
    };
    let failure = match outcome {
        Ok(Outcome::Exited { code: 0, .. }) => None,
        Ok(Outcome::Exited { code, .. }) => Some(exit_error(step, code, log)),
        Ok(Outcome::NotStarted(f)) => Some(Error::invalid(format!("the command did not start: {}", f.message))),
        Err(e) => Some(e),
    };
    if let Some(e) = failure {
        let _ = remove(store);
        return Err(e);
    }
    let tmp = store.temp_dir("run-")?;
    let upper = tmp.path().join("upper");
    let moved = std::fs::rename(dir.join("upper"), &upper).ctx("move the step's changes", dir.join("upper"));
    remove(store)?;
    moved?;
    for (target, was) in existed {
        if !was {
            remove_stub(&upper, Path::new(&target));
        }
    }
    Ok(RunResult { tmp, upper, container: id })
}

fn bind(target: &str, source: &Path, opts: &[&str]) -> Mount {
    MountBuilder::default()
        .destination(target)
        .typ("bind")
        .source(source)
        .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .expect("mount fields")
}

fn exit_error(step: &RunStep, code: i32, log: &Path) -> Error {
    let lines = super::progress::last_lines(log, 10);
    let status = if code > 128 { format!("killed by signal {}", code - 128) } else { format!("exit status {code}") };
    let mut msg = format!("the command {} returned {status}", runtime::spec::display_command(&step.args));
    if !lines.is_empty() {
        msg.push_str("\n  last output:");
        for l in lines {
            msg.push_str("\n    ");
            msg.push_str(&l);
        }
    }
    Error::invalid(msg)
}

/// `ROOT/build-cache/mounts/<sha256 of id>/`, created on first use.
pub fn cache_mount_dir(store: &Store, id: &str, uid: u32, gid: u32, mode: u32) -> Result<PathBuf> {
    let dir = super::cache::dir(store).join("mounts");
    crate::fsutil::mkdir_all(&dir, 0o700)?;
    let p = dir.join(Digest::sha256_of(id.as_bytes()).encoded());
    if !p.is_dir() {
        let t = store.temp_dir("cache-mount-")?;
        let d = t.path().join("d");
        std::fs::create_dir(&d).ctx("create", &d)?;
        std::os::unix::fs::chown(&d, Some(uid), Some(gid)).ctx("chown", &d)?;
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(mode)).ctx("chmod", &d)?;
        match std::fs::rename(&d, &p) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) => {}
            Err(e) => return Err(Error::io("create cache mount", &p, e)),
        }
    }
    Ok(p)
}

/// Remove an empty mount-point directory (and the empty parents made for
/// it) from an upper dir, walking with `O_NOFOLLOW`: if the command put a
/// symlink anywhere on the path, nothing is touched.
fn remove_stub(upper: &Path, target: &Path) {
    let parts: Vec<&std::ffi::OsStr> = target.components().filter_map(|c| if let Component::Normal(n) = c { Some(n) } else { None }).collect();
    let Ok(top) = nix::fcntl::open(upper, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty()) else { return };
    let mut fds = vec![top];
    for p in &parts[..parts.len().saturating_sub(1)] {
        let Ok(fd) = nix::fcntl::openat(fds.last().expect("one fd"), *p, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty()) else { return };
        fds.push(fd);
    }
    // Deepest first: each rmdir only succeeds on an empty real directory.
    for (i, name) in parts.iter().enumerate().rev() {
        if nix::unistd::unlinkat(&fds[i], *name, nix::unistd::UnlinkatFlags::RemoveDir).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_options() {
        let m = MountSpec::parse("type=cache,target=/root/.cache,id=../../etc,sharing=locked", "/").unwrap();
        assert!(matches!(m, MountSpec::Cache { ref id, sharing: Sharing::Locked, .. } if id == "../../etc"));
        assert_eq!(MountSpec::parse("type=tmpfs,target=m", "/w").unwrap().target(), "/w/m");
        assert!(MountSpec::parse("type=bind,target=/x,bind-propagation=rshared", "/").unwrap_err().to_string().contains("bind-propagation"));
        assert!(MountSpec::parse("type=cache", "/").unwrap_err().to_string().contains("target"));
        assert!(MountSpec::parse("type=bind,target=/x,rw", "/").is_err());
        assert!(MountSpec::parse("type=nfs,target=/x", "/").is_err());
    }

    #[test]
    fn stubs_are_removed_without_following_links() {
        let d = tempfile::tempdir().unwrap();
        let upper = d.path().join("upper");
        std::fs::create_dir_all(upper.join("m/v")).unwrap();
        remove_stub(&upper, Path::new("/m/v"));
        assert!(!upper.join("m").exists());
        // /m replaced by a symlink to a host directory holding v: nothing is removed there.
        let host = d.path().join("host");
        std::fs::create_dir_all(host.join("v")).unwrap();
        std::os::unix::fs::symlink(&host, upper.join("m")).unwrap();
        remove_stub(&upper, Path::new("/m/v"));
        assert!(host.join("v").exists());
    }
}
