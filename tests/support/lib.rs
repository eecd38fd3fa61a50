//! Helpers shared by the end-to-end suites in `tests/`: a fresh store root
//! per test, the tools as `assert_cmd` commands, a busybox image, and a
//! cleanup that leaves nothing behind (mounts under the root included).

use std::path::{Path, PathBuf};

pub mod pty;
pub mod registry;
pub mod vm;

pub use ci_core::testsupport::{busybox, busybox_rootfs_tar, corpora_dir, privileged, skip, strict};

/// A private store root for one test, removed (mounts and all) on drop.
pub struct TestRoot {
    dir: Option<tempfile::TempDir>,
}

impl Default for TestRoot {
    fn default() -> Self {
        Self::new()
    }
}

impl TestRoot {
    pub fn new() -> TestRoot {
        let dir = tempfile::Builder::new().prefix("ci-test-").tempdir().expect("create a temp dir");
        TestRoot { dir: Some(dir) }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("root exists until drop").path()
    }

    /// A tool of the workspace with `CIROOT` pointing at this root and JSON output.
    pub fn cmd(&self, tool: &str) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::new(tool_path(tool));
        c.env("CIROOT", self.path()).env_remove("CIEXPLAIN").current_dir(self.path());
        c
    }

    /// Import the host's busybox as an image named `tag`; returns the image id.
    /// `None` (after a printed skip) when the host has no static busybox.
    pub fn busybox_image(&self, tag: &str) -> Option<String> {
        let tar = busybox_rootfs_tar()?;
        let out = self.cmd("ci-build").args(["import", "-t", tag, "-"]).write_stdin(tar).assert().success();
        let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).expect("import prints JSON");
        Some(v["id"].as_str().expect("image object has an id").to_string())
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            unmount_under(dir.path());
            // Run-time state of its containers, under /run (ci_core::runtime::state).
            let _ = std::fs::remove_dir_all(ci_core::runtime::state::root_run_dir(dir.path()));
            let _ = dir.close();
        }
    }
}

/// Path of a workspace binary (built by `cargo test` before the suites run).
pub fn tool_path(tool: &str) -> PathBuf {
    assert_cmd::cargo::cargo_bin(tool)
}

/// The executable of the end-to-end suite `name` (`tests/NAME.rs`) that
/// cargo built last: `target/debug/deps/NAME-HASH`, beside the tools. Built
/// by `cargo build --all-targets` or a `cargo test` of the whole workspace,
/// not by `cargo test --test OTHER`.
pub fn suite_binary(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let deps = tool_path("ci-run").parent()?.join("deps");
    let prefix = format!("{name}-");
    std::fs::read_dir(deps)
        .ok()?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.strip_prefix(&prefix).is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            let built = m.modified().ok()?;
            (m.is_file() && m.permissions().mode() & 0o111 != 0).then(|| (built, e.path()))
        })
        .max()
        .map(|(_, p)| p)
}

/// Detach every mount at or below `dir`, deepest first, so removing the
/// directory cannot fail on (or descend into) a mounted filesystem.
pub fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return };
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for m in mounts {
        let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The directories of the cgroup `name` (`ci/<id>`) that exist, in every
/// hierarchy of this machine's layout (v1, v2 or both), as ci makes them.
pub fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let layout = ci_core::cgroups::Layout::detect().expect("detect the cgroup layout");
    layout.hierarchies().map(|h| h.mount_point.join(name)).filter(|d| d.exists()).collect()
}

/// Where a container run by ci finds the files of `controller` (its own
/// cgroup, mounted at `/sys/fs/cgroup`: `/sys/fs/cgroup/memory` on v1,
/// `/sys/fs/cgroup` itself on v2), and which API they speak.
pub fn container_cgroup_dir(controller: &str) -> (ci_core::cgroups::Version, String) {
    let layout = ci_core::cgroups::Layout::detect().expect("detect the cgroup layout");
    let (v, dir) = layout.container_dir_of(controller).unwrap_or_else(|| panic!("no cgroup hierarchy here has the {controller} controller"));
    (v, dir.display().to_string())
}

/// Parse every stdout line as a JSON object.
pub fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}
