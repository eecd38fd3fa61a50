//! Helpers shared by the end-to-end suites in `tests/`: a fresh store root
//! per test, the tools as `assert_cmd` commands, a busybox image, and a
//! cleanup that leaves nothing behind (mounts under the root included).

use std::path::{Path, PathBuf};

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

/// Parse every stdout line as a JSON object.
pub fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}
