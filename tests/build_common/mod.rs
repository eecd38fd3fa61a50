//! Helpers of the build suites: contexts, builds, and the built image's
//! filesystem (its layers applied, with the core's hostile-safe extractor).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub use ci_tests::*;

/// A context directory under the test root, with `files` (path, content).
pub fn context(root: &TestRoot, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = root.path().join("ctx").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (p, content) in files {
        write(&dir, p, content);
    }
    dir
}

pub fn write(dir: &Path, p: &str, content: &str) {
    let f = dir.join(p);
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    std::fs::write(&f, content).unwrap();
    // An hour old, so the stat cache trusts it (a fresh file is re-hashed every time).
    set_old(&f);
}

pub fn set_old(f: &Path) {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options().write(true).open(f).unwrap().set_modified(old).unwrap();
}

/// The output of one build.
pub struct Out {
    pub ok: bool,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn id(&self) -> String {
        let v = json_lines(self.stdout.as_bytes());
        assert_eq!(v.len(), 1, "one image object on stdout: {}", self.stdout);
        assert_eq!(v[0]["kind"], "image");
        v[0]["id"].as_str().unwrap().to_string()
    }

    /// How many steps were CACHED and how many ran (the build's summary line).
    pub fn counts(&self) -> (usize, usize) {
        let l = self.stderr.lines().find(|l| l.starts_with("built ")).unwrap_or_else(|| panic!("no summary in:\n{}", self.stderr));
        let inner = l.split_once(" (").unwrap().1;
        let nums: Vec<usize> = inner.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
        (nums[1], nums[0])
    }

    /// Every step that started ended with DONE or CACHED (plain progress).
    pub fn assert_steps_end(&self) {
        for l in self.stderr.lines().filter(|l| l.starts_with('#') && l.contains(" [")) {
            let n = l.split(' ').next().unwrap();
            assert!(
                self.stderr.lines().any(|m| m == format!("{n} CACHED") || m.starts_with(&format!("{n} DONE "))),
                "step {l:?} has no DONE or CACHED line:\n{}",
                self.stderr
            );
        }
    }

    /// Whether the step whose line contains `text` was CACHED.
    pub fn was_cached(&self, text: &str) -> bool {
        let lines: Vec<&str> = self.stderr.lines().collect();
        let i = lines.iter().position(|l| l.contains(text)).unwrap_or_else(|| panic!("no step {text:?} in:\n{}", self.stderr));
        let n = lines[i].split(' ').next().unwrap();
        lines[i + 1..].iter().find(|l| l.starts_with(&format!("{n} ")) && (l.ends_with(" CACHED") || l.contains(" DONE ") || l.contains(" ERROR")))
            .is_some_and(|l| l.ends_with(" CACHED"))
    }
}

/// Run `ci-build ARGS... CTX` with plain progress.
pub fn build(root: &TestRoot, ctx: &Path, args: &[&str]) -> Out {
    build_env(root, ctx, args, &[])
}

pub fn build_env(root: &TestRoot, ctx: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut c = root.cmd("ci-build");
    c.args(["--progress", "plain"]).args(args).arg(ctx);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    Out {
        ok: o.status.success(),
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Build and require success.
pub fn build_ok(root: &TestRoot, ctx: &Path, args: &[&str]) -> Out {
    let o = build(root, ctx, args);
    assert!(o.ok, "build failed:\n{}", o.stderr);
    o
}

/// A busybox base image `bb:1` built the DESIGN card's way, with a Dockerfile.
pub fn busybox_base(root: &TestRoot) -> Option<()> {
    busybox_base_env(root, &[])
}

pub fn busybox_base_env(root: &TestRoot, env: &[(&str, &str)]) -> Option<()> {
    let bb = busybox()?;
    let dir = root.path().join("ctx").join("busybox-base");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&bb, dir.join("busybox")).unwrap();
    set_old(&dir.join("busybox"));
    write(&dir, "passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
    write(&dir, "group", "root:x:0:\nnogroup:x:65534:\n");
    write(&dir, "Dockerfile", "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\",\"--install\",\"-s\",\"/bin\"]\nCOPY passwd group /etc/\n");
    let o = build_env(root, &dir, &["-t", "bb:1"], env);
    assert!(o.ok, "{}", o.stderr);
    Some(())
}

/// The image's config (the JSON of its config blob).
pub fn config(root: &TestRoot, image: &str) -> serde_json::Value {
    let out = root.cmd("ci-build").args(["inspect", image]).output().unwrap();
    assert!(out.status.success(), "inspect {image}: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["config"].clone()
}

/// The image's filesystem: every layer applied in order into a new directory.
pub fn rootfs(root: &TestRoot, image: &str) -> tempfile::TempDir {
    let store = ci_core::store::Store::open(root.path()).unwrap();
    let img = ci_core::image::resolve(&store, image).unwrap();
    let dir = tempfile::Builder::new().prefix("rootfs-").tempdir_in(root.path()).unwrap();
    for l in img.layers().unwrap() {
        let f = store.open_blob(&l.blob).unwrap();
        ci_core::layer::apply(f, dir.path()).unwrap();
    }
    dir
}

pub fn read(dir: &Path, p: &str) -> String {
    std::fs::read_to_string(dir.join(p)).unwrap_or_else(|e| panic!("read {p}: {e}"))
}

/// Nothing left behind by a build: no container, no temp entry, no mount.
pub fn assert_clean(root: &TestRoot) {
    let containers: Vec<_> = std::fs::read_dir(root.path().join("containers")).map(|d| d.filter_map(|e| e.ok()).collect()).unwrap_or_default();
    assert!(containers.is_empty(), "containers left: {containers:?}");
    let tmp: Vec<_> = std::fs::read_dir(root.path().join("tmp")).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    assert!(tmp.is_empty(), "temp entries left: {tmp:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root_s = root.path().to_string_lossy().to_string();
    assert!(!mounts.contains(&root_s), "mounts left under {root_s}");
}

/// A one-file HTTP server on 127.0.0.1 (for ADD URL); returns its base URL.
pub fn serve(path: &'static str, body: Vec<u8>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            let _ = r.read_line(&mut first);
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let want = first.split_whitespace().nth(1).unwrap_or("");
            if want == path {
                let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n", body.len());
                let _ = s.write_all(&body);
            } else {
                let _ = write!(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        }
    });
    format!("http://127.0.0.1:{port}")
}
