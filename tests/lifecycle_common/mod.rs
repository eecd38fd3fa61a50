//! Shared by the `lifecycle_*` suites: a store with a busybox image, the
//! `ci-run` verbs as commands, bounded waits, and a cleanup that leaves
//! nothing behind even when a test (or ci-run) fails: every monitor and
//! container process of the store is killed, its cgroups removed, its
//! run-time directory under /run deleted, then the root is unmounted and
//! removed by `TestRoot`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use ci_tests::{json_lines, privileged, tool_path, TestRoot};
use serde_json::Value;

pub struct Lab {
    /// The store root (CIROOT).
    pub store: PathBuf,
    pub root: TestRoot,
}

impl Lab {
    /// A fresh store with the busybox image `bb:1` (None: skipped).
    pub fn new(what: &str) -> Option<Lab> {
        if !privileged(what) {
            return None;
        }
        let root = TestRoot::new();
        let store = root.path().to_path_buf();
        root.busybox_image("bb:1")?;
        Some(Lab { store, root })
    }

    /// A lab whose store lives at `store` (inside the test root, e.g. on a
    /// small tmpfs), with the busybox image.
    pub fn at(root: TestRoot, store: PathBuf) -> Option<Lab> {
        let lab = Lab { store, root };
        let tar = ci_tests::busybox_rootfs_tar()?;
        let out = lab.tool("ci-build").args(["import", "-t", "bb:1", "-"]).stdin(Stdio::piped()).spawn().and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&tar)?;
            c.wait_with_output()
        });
        assert!(out.expect("run ci-build import").status.success(), "import busybox");
        Some(lab)
    }

    pub fn tool(&self, tool: &str) -> Command {
        let mut c = Command::new(tool_path(tool));
        c.env("CIROOT", &self.store).env_remove("CIEXPLAIN").env_remove("CI_DEBUG_EXEC_HOLD").current_dir(self.root.path());
        c.stdin(Stdio::null());
        c
    }

    /// `ci-run ARGS` (stdout piped: JSON lines).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.tool("ci-run");
        c.args(args);
        c
    }

    pub fn ci(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run ci-run")
    }

    /// `ci-run ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.ci(args);
        assert!(out.status.success(), "ci-run {args:?}: {:?}\nstdout: {}\nstderr: {}", out.status, text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }

    /// `ci-run -d FLAGS bb:1 CMD...`: the container object it prints.
    pub fn run_d(&self, flags: &[&str], cmd: &[&str]) -> Value {
        let mut args = vec!["run", "-d"];
        args.extend_from_slice(flags);
        args.push("bb:1");
        args.extend_from_slice(cmd);
        let v = json_lines(self.ok(&args).as_bytes());
        assert_eq!(v.len(), 1, "-d prints one object");
        v[0].clone()
    }

    pub fn inspect(&self, name: &str) -> Value {
        json_lines(self.ok(&["inspect", name]).as_bytes()).remove(0)
    }

    /// The container objects `ps -a` lists.
    pub fn ps_all(&self) -> Vec<Value> {
        json_lines(self.ok(&["ps", "-a"]).as_bytes())
    }

    pub fn state(&self, name: &str) -> String {
        self.inspect(name)["state"]["status"].as_str().unwrap().to_string()
    }

    /// Its log as text (stdout and stderr lines together, in order).
    pub fn log(&self, name: &str) -> String {
        let out = self.ci(&["--format", "json", "logs", name]);
        json_lines(&out.stdout).iter().map(|r| r["log"].as_str().unwrap_or("").to_string()).collect()
    }

    /// Wait for its log to contain `what`.
    pub fn wait_log(&self, name: &str, what: &str) {
        wait_until(&format!("{what:?} in the log of {name}"), || self.log(name).contains(what));
    }

    pub fn containers_dir(&self) -> PathBuf {
        self.store.join("containers")
    }

    /// The store's run-time directory (/run/ci/<hash>).
    pub fn run_dir(&self) -> PathBuf {
        ci_core::runtime::state::root_run_dir(&self.store)
    }

    /// Ids of every container directory in the store.
    pub fn ids(&self) -> Vec<String> {
        std::fs::read_dir(self.containers_dir()).map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
    }
}

/// Poll `cond` (every 20 ms, for at most 30 s): no timing assertion, only a
/// bound so that a broken build fails instead of hanging.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Live (non-zombie) processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        if String::from_utf8_lossy(&cmd).contains(needle) && !zombie(pid) {
            out.push(pid);
        }
    }
    out
}

/// Live processes in a cgroup whose path mentions `needle` (a container id).
pub fn processes_in_cgroup(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cg) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else { continue };
        if cg.contains(needle) && !zombie(pid) {
            out.push(pid);
        }
    }
    out
}

pub fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().starts_with('Z')).unwrap_or(true)).unwrap_or(true)
}

/// The cgroup directories of container `id` (`ci/<id>`), in every hierarchy.
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    ci_tests::cgroup_dirs(&format!("ci/{id}"))
}

/// Mounts whose mount point or source mentions `needle`.
pub fn mounts_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().lines().filter(|l| l.contains(needle)).map(String::from).collect()
}

/// Everything on the machine that belongs to one store, counted (for "no
/// leak": the totals before and after must match). Scoped to the store and
/// its containers, so that other tests running at the same time (each with
/// its own store) do not count.
#[derive(Debug, PartialEq, Eq)]
pub struct Footprint {
    /// `PID STATE CMDLINE` of every process, zombies included, whose command
    /// line or environment names the store, that is in a cgroup of one of
    /// `ids`, that sees a mount of the store in a mount namespace not ours
    /// (a container's), or whose parent is one of those.
    pub processes: Vec<String>,
    /// Mounts naming the store: ours (/proc/self/mountinfo), and those of
    /// every other mount namespace a process is in (/proc/*/mountinfo).
    pub mounts: Vec<String>,
    /// cgroup directories, at any depth under /sys/fs/cgroup/*/ci*, whose path names one of `ids`.
    pub cgroups: Vec<PathBuf>,
    /// Whatever is under the store's run-time directory (/run/ci/H), recursively.
    pub run_state: Vec<PathBuf>,
}

impl Footprint {
    pub fn of(lab: &Lab, ids: &[String]) -> Footprint {
        let root = lab.store.to_string_lossy().into_owned();
        let names_root = |b: &[u8]| String::from_utf8_lossy(b).contains(&root);
        let my_mnt = std::fs::read_link("/proc/self/ns/mnt").ok();
        struct P {
            pid: i32,
            ppid: i32,
            state: String,
            cmd: String,
            ours: bool,
        }
        let mut procs = Vec::new();
        let mut mounts = Vec::new();
        let mut namespaces_seen = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            let Some((_, rest)) = stat.rsplit_once(')') else { continue };
            let mut f = rest.split_whitespace();
            let state = f.next().unwrap_or("?").to_string();
            let ppid = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            let mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
            let mut in_a_container_ns = false;
            if mnt.is_some() && mnt != my_mnt {
                let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
                let lines: Vec<&str> = info.lines().filter(|l| l.contains(&root)).collect();
                in_a_container_ns = !lines.is_empty();
                if !namespaces_seen.contains(&mnt) {
                    namespaces_seen.push(mnt.clone());
                    mounts.extend(lines.iter().map(|l| format!("{} (pid {pid}): {l}", mnt.as_ref().unwrap().display())));
                }
            }
            let ours = names_root(&cmdline) || names_root(&environ) || ids.iter().any(|id| cgroup.contains(id.as_str())) || in_a_container_ns;
            let cmd = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            procs.push(P { pid, ppid, state, cmd, ours });
        }
        // Children of ours are ours (container processes, zombies).
        loop {
            let ours: Vec<i32> = procs.iter().filter(|p| p.ours).map(|p| p.pid).collect();
            let mut grew = false;
            for p in procs.iter_mut().filter(|p| !p.ours && ours.contains(&p.ppid)) {
                p.ours = true;
                grew = true;
            }
            if !grew {
                break;
            }
        }
        let me = std::process::id() as i32;
        let processes = procs.iter().filter(|p| p.ours && p.pid != me).map(|p| format!("{} {} {}", p.pid, p.state, p.cmd)).collect();
        mounts.extend(mounts_mentioning(&root).into_iter().map(|l| format!("ours: {l}")));
        mounts.sort();
        let mut cgroups = Vec::new();
        for h in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            for top in std::fs::read_dir(h.path()).into_iter().flatten().flatten() {
                if top.file_name().to_string_lossy().starts_with("ci") {
                    walk(&top.path(), true, &mut |d| {
                        if ids.iter().any(|id| d.to_string_lossy().contains(id.as_str())) {
                            cgroups.push(d.to_path_buf());
                        }
                    });
                }
            }
        }
        cgroups.sort();
        let mut run_state = Vec::new();
        walk(&lab.run_dir(), false, &mut |p| run_state.push(p.to_path_buf()));
        run_state.sort();
        Footprint { processes, mounts, cgroups, run_state }
    }

    /// How many of each, for a message.
    pub fn totals(&self) -> [usize; 4] {
        [self.processes.len(), self.mounts.len(), self.cgroups.len(), self.run_state.len()]
    }
}

/// `dir` and everything below it (only directories with `dirs_only`;
/// symbolic links are not followed).
fn walk(dir: &Path, dirs_only: bool, f: &mut dyn FnMut(&Path)) {
    if !std::fs::symlink_metadata(dir).map(|m| m.is_dir()).unwrap_or(false) {
        return;
    }
    f(dir);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&e.path(), dirs_only, f),
            Ok(_) if !dirs_only => f(&e.path()),
            _ => {}
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Whatever happened, nothing of this store may survive the test.
        for id in self.ids() {
            let dir = self.containers_dir().join(&id);
            let run = ci_core::runtime::state::run_dir(&dir);
            if let Ok(data) = std::fs::read(run.join("state.json")) {
                if let Ok(s) = serde_json::from_slice::<ci_core::runtime::container::RunState>(&data) {
                    for (pid, start) in [(s.owner_pid, s.owner_start_time), (s.pid, s.pid_start_time)] {
                        if ci_core::runtime::state::alive(pid, start, &s.boot_id) && pid != std::process::id() as i32 {
                            unsafe { libc::kill(pid, libc::SIGKILL) };
                        }
                    }
                }
            }
            for pid in processes_mentioning(&id) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if let Ok(Some(cg)) = ci_core::cgroups::Cgroup::open(&format!("ci/{id}")) {
                let _ = cg.kill_all(nix::sys::signal::Signal::SIGKILL);
                let _ = cg.remove();
            }
            let _ = std::fs::remove_dir_all(&run);
        }
        let _ = std::fs::remove_dir(self.run_dir());
    }
}

/// The sha256 of a file (for the ci binaries before and after an attack).
pub fn sha256(p: &Path) -> String {
    ci_core::digest::Digest::sha256_of(&std::fs::read(p).unwrap()).to_string()
}
