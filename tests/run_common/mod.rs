//! Shared by the `run_*` suites: a busybox root filesystem directory in
//! the test's own root, and `ci-run` commands on it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use ci_tests::{privileged, tool_path, TestRoot};

/// Extract the host-busybox rootfs into `<root>/<name>` (None = skipped).
pub fn busybox_rootfs(root: &TestRoot, name: &str) -> Option<PathBuf> {
    let tar = ci_tests::busybox_rootfs_tar()?;
    let dir = root.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new("tar").args(["-x", "-p", "-C"]).arg(&dir).stdin(Stdio::piped()).spawn().expect("run tar");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&tar).unwrap();
    assert!(child.wait().unwrap().success(), "tar -x of the busybox rootfs");
    // busybox's own /etc/group, for the supplementary-groups matrix.
    std::fs::write(dir.join("etc/group"), "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\nwheel:x:10:root\nnogroup:x:65534:\n").unwrap();
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    Some(dir)
}

/// Everything a run suite needs: the root, a rootfs, and a skip decision.
pub struct Bench {
    pub root: TestRoot,
    pub rootfs: PathBuf,
}

pub fn setup(what: &str) -> Option<Bench> {
    if !privileged(what) {
        return None;
    }
    let root = TestRoot::new();
    let rootfs = busybox_rootfs(&root, "rootfs")?;
    Some(Bench { root, rootfs })
}

impl Bench {
    /// `ci-run --rm --rootfs ROOTFS ARGS...` (flags may precede the command in `args`).
    pub fn run(&self, flags: &[&str], cmd: &[&str]) -> Output {
        self.run_in(&self.rootfs, flags, cmd)
    }

    pub fn run_in(&self, rootfs: &Path, flags: &[&str], cmd: &[&str]) -> Output {
        self.command(rootfs, flags, cmd).output().expect("run ci-run")
    }

    pub fn command(&self, rootfs: &Path, flags: &[&str], cmd: &[&str]) -> Command {
        let mut c = Command::new(tool_path("ci-run"));
        c.env("CIROOT", self.root.path()).env_remove("CIEXPLAIN").current_dir(self.root.path());
        c.args(flags).arg("--rootfs").arg(rootfs).args(cmd);
        c.stdin(Stdio::null());
        c
    }

    /// Run `sh -c SCRIPT` with --rm and the given flags; assert success; stdout.
    pub fn sh(&self, flags: &[&str], script: &str) -> String {
        let mut f = vec!["--rm"];
        f.extend_from_slice(flags);
        let out = self.run(&f, &["sh", "-c", script]);
        assert!(out.status.success(), "ci-run {f:?} sh -c {script:?}: {:?}\nstdout: {}\nstderr: {}", out.status, text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }

    /// A copy of the rootfs to modify for one test.
    pub fn variant(&self, name: &str) -> PathBuf {
        busybox_rootfs(&self.root, name).expect("busybox was there a moment ago")
    }

    /// Container directories left in the store.
    pub fn containers(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.root.path().join("containers")).map(|rd| rd.map(|e| e.unwrap().path()).collect()).unwrap_or_default()
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A running ci-run that is killed (and reaped) if the test fails first.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Wait (bounded) for a file to appear.
pub fn wait_for_file(p: &Path) -> Vec<u8> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Ok(d) = std::fs::read(p) {
            if !d.is_empty() {
                return d;
            }
        }
        assert!(std::time::Instant::now() < deadline, "{} did not appear", p.display());
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// One line of /proc/PID/mountinfo.
#[derive(Debug, Clone)]
pub struct MountInfo {
    /// `major:minor` of the filesystem.
    pub dev: String,
    pub mount_point: String,
    /// Per-mount options (`ro,nosuid,…`).
    pub options: Vec<String>,
    pub fstype: String,
}

pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|l| {
            let (before, after) = l.split_once(" - ")?;
            let f: Vec<&str> = before.split(' ').collect();
            Some(MountInfo {
                dev: f.get(2)?.to_string(),
                mount_point: f.get(4)?.to_string(),
                options: f.get(5)?.split(',').map(str::to_string).collect(),
                fstype: after.split(' ').next()?.to_string(),
            })
        })
        .collect()
}

/// The mount at `point` that is on top (the last one listed).
pub fn mount_at<'a>(mounts: &'a [MountInfo], point: &str) -> &'a MountInfo {
    mounts.iter().rev().find(|m| m.mount_point == point).unwrap_or_else(|| panic!("nothing mounted at {point}: {mounts:#?}"))
}
