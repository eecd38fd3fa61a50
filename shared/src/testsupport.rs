//! Helpers for the tests of every crate (unit and end-to-end), kept in one
//! place so the skip policy is the same everywhere:
//!
//! - A test that needs root or a kernel feature calls [`privileged`]. On a
//!   laptop without root it prints why it skips and returns false; when
//!   `CITEST_STRICT=1` (set by `.ci/run`) a skip is a failure instead,
//!   because cargo would report an early return as "ok".
//! - Conformance suites read the peers' test data in place from
//!   `../shared/corpora` beside the repository ([`corpora_dir`]).

use std::path::PathBuf;

/// Set to 1 in CI: every skip becomes a failure.
pub const STRICT_ENV: &str = "CITEST_STRICT";

pub fn strict() -> bool {
    std::env::var(STRICT_ENV).map(|v| v == "1").unwrap_or(false)
}

/// Skip (or, in strict mode, fail) with a reason.
pub fn skip(reason: &str) -> bool {
    if strict() {
        panic!("{STRICT_ENV}=1 but this test would skip: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    false
}

/// Whether privileged tests can run here (we are root).
pub fn privileged(what: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        skip(&format!("{what} needs root"))
    }
}

/// The repository's top directory.
pub fn repo_dir() -> PathBuf {
    // shared/ is one level below the top.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("shared/ has a parent").to_path_buf()
}

/// `../shared/corpora` beside the repository (always there in CI); from a
/// git worktree elsewhere, the nearest ancestor's `shared/corpora`, or
/// `$CITEST_CORPORA`.
pub fn corpora_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CITEST_CORPORA") {
        return Some(PathBuf::from(dir));
    }
    let repo = repo_dir();
    for a in repo.ancestors().skip(1) {
        let dir = a.join("shared").join("corpora");
        if dir.is_dir() {
            return Some(dir);
        }
    }
    skip(&format!("the conformance corpora are not in ../shared/corpora beside {}", repo.display()));
    None
}

/// A static busybox from the host (Debian's busybox-static), the base of
/// every test image.
pub fn busybox() -> Option<PathBuf> {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        let p = PathBuf::from(p);
        if p.exists() && is_static(&p) {
            return Some(p);
        }
    }
    skip("no static busybox on this host (apt-get install busybox-static)");
    None
}

/// A static ELF has no PT_INTERP program header (no dynamic loader to find
/// inside a container that has no /lib).
fn is_static(p: &std::path::Path) -> bool {
    let Ok(b) = std::fs::read(p) else { return false };
    let u16_at = |o: usize| b.get(o..o + 2).map(|x| u16::from_le_bytes([x[0], x[1]]) as usize);
    let u64_at = |o: usize| b.get(o..o + 8).map(|x| u64::from_le_bytes(x.try_into().unwrap()) as usize);
    // 64-bit little-endian ELF only (what this machine runs).
    if b.get(0..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        b.get(o..o + 4).map(|t| u32::from_le_bytes(t.try_into().unwrap()) != 3).unwrap_or(false)
    })
}

/// A minimal root filesystem tarball made from the host's busybox:
/// `/bin/busybox` plus the applet links, `/etc/passwd`, `/etc/group`, `/tmp`.
pub fn busybox_rootfs_tar() -> Option<Vec<u8>> {
    let bb = busybox()?;
    let data = std::fs::read(&bb).ok()?;
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(0);
        b.append_data(&mut h, path, std::io::empty()).unwrap();
    };
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        b.append_data(&mut h, path, data).unwrap();
    };
    for (d, m) in [("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777), ("root", 0o700), ("proc", 0o755), ("sys", 0o755), ("dev", 0o755)] {
        dir(&mut b, d, m);
    }
    file(&mut b, "bin/busybox", 0o755, &data);
    let applets = std::process::Command::new(&bb).arg("--list").output().ok()?;
    for applet in String::from_utf8_lossy(&applets.stdout).lines() {
        if applet.is_empty() || applet == "busybox" {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_mtime(0);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox").unwrap();
    }
    file(&mut b, "etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
    file(&mut b, "etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n");
    b.into_inner().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tells_static_from_dynamic() {
        assert!(!super::is_static(std::path::Path::new("/bin/ls")), "/bin/ls is dynamically linked");
        if std::path::Path::new("/bin/busybox").exists() {
            assert!(super::is_static(std::path::Path::new("/bin/busybox")));
        }
    }
}
