//! Helpers of the hardening suites (SECURITY.md §4.4 and §5 items 26, 31,
//! 35, 36, 37): a seeded random generator, the tools run with their peak
//! memory measured, snapshots of a store, and the checks that follow every
//! kill (fsck clean, `ls` works, nothing left in ROOT/tmp, no mount, no
//! cgroup, no container record).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use ci_tests::*;

/// How many iterations a loop runs: `default` times `$CITEST_SOAK` (1
/// unless set; a longer soak: `CITEST_SOAK=4 cargo test --test hardening_kill`
/// makes 200 kills per operation).
pub fn iterations(default: usize) -> usize {
    let factor: f64 = std::env::var("CITEST_SOAK").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0);
    ((default as f64 * factor).round() as usize).max(1)
}

/// The seed of a randomised loop: `$CITEST_SEED`, or a fixed one (printed,
/// so a failure can be replayed).
pub fn seed(name: &str) -> u64 {
    let s: u64 = std::env::var("CITEST_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed_c0de);
    let mixed = name.bytes().fold(s, |h, b| h.rotate_left(5) ^ u64::from(b));
    eprintln!("{name}: seed {s} (CITEST_SEED={s} replays it)");
    mixed | 1
}

/// xorshift64*: small, seeded, good enough to spread kill delays.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Bytes that do not compress (layers that cost real work to hash and store).
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A tool of the workspace as a plain `Command` on this root (JSON output).
pub fn tool(root: &TestRoot, name: &str) -> Command {
    let mut c = Command::new(tool_path(name));
    c.env("CIROOT", root.path())
        .env("DOCKER_CONFIG", root.path().join("docker-config"))
        .env_remove("CIEXPLAIN")
        .env_remove("CITEST_CRASH_AT")
        .current_dir(root.path())
        .stdin(Stdio::null());
    c
}

/// What a finished tool did.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Peak resident memory of the tool (VmHWM of its /proc status,
    /// polled every millisecond), in KiB.
    pub max_rss_kib: u64,
    pub elapsed: Duration,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.status.success()
    }
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    /// Panic with the output unless it succeeded.
    pub fn expect_ok(self, what: &str) -> Run {
        assert!(self.ok(), "{what} failed ({}):\n{}{}", self.status, self.stdout, self.stderr);
        self
    }
}

/// Where a tool's stdin comes from.
pub enum Input {
    Null,
    Bytes(Vec<u8>),
    /// Another process's stdout (a stream too big to hold: it is never in this process).
    Process(Child),
}

/// Run a prepared command to its end, feeding `input`, keeping at most
/// 1 MiB of each output stream, and measure its peak memory.
// The child is reaped by `wait4` (for its status), not `Child::wait`.
#[allow(clippy::zombie_processes)]
pub fn run_measured(mut cmd: Command, input: Input) -> Run {
    let (bytes, producer) = match input {
        Input::Null => {
            cmd.stdin(Stdio::null());
            (None, None)
        }
        Input::Bytes(b) => {
            cmd.stdin(Stdio::piped());
            (Some(b), None)
        }
        Input::Process(mut p) => {
            cmd.stdin(Stdio::from(p.stdout.take().expect("the producer's stdout is piped")));
            (None, Some(p))
        }
    };
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    // The command holds our copy of a producer's pipe: drop it, so the
    // producer sees a broken pipe when the tool stops reading.
    drop(cmd);
    let feeder = bytes.map(|data| {
        let mut stdin = child.stdin.take().expect("piped stdin");
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        })
    });
    let out = drain(child.stdout.take().expect("piped"));
    let err = drain(child.stderr.take().expect("piped"));
    let reaped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (pid, reaped) = (child.id(), reaped.clone());
        std::thread::spawn(move || peak_rss(pid, &reaped))
    };
    let (status, ru_maxrss) = wait4(child.id() as i32);
    reaped.store(true, std::sync::atomic::Ordering::SeqCst);
    // A tool that ended before the first sample: wait4's figure, an upper
    // bound (it includes this process's memory at the spawn).
    let rss = poller.join().unwrap().unwrap_or(ru_maxrss);
    let elapsed = started.elapsed();
    if let Some(f) = feeder {
        let _ = f.join();
    }
    if let Some(mut p) = producer {
        let _ = p.kill();
        let _ = p.wait();
    }
    Run { status, stdout: out.join().unwrap(), stderr: err.join().unwrap(), max_rss_kib: rss, elapsed }
}

/// Run with bytes on stdin.
pub fn run_with_stdin(cmd: Command, data: Vec<u8>) -> Run {
    run_measured(cmd, Input::Bytes(data))
}

/// Run with nothing on stdin.
pub fn run(cmd: Command) -> Run {
    run_measured(cmd, Input::Null)
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if kept.len() < 1 << 20 {
                        kept.extend_from_slice(&buf[..n]);
                    }
                }
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}

/// The highest VmHWM seen in /proc/PID/status until `reaped`. wait4's
/// ru_maxrss cannot be used: a child spawned with vfork (as Rust does)
/// counts its parent's memory as its own at exec, so it would measure the
/// test process. VmHWM belongs to the memory the tool has after its exec,
/// so samples taken before the exec (same executable as ours) are skipped.
fn peak_rss(pid: u32, reaped: &std::sync::atomic::AtomicBool) -> Option<u64> {
    let ours = std::fs::read_link("/proc/self/exe").ok();
    let mut peak = None;
    while !reaped.load(std::sync::atomic::Ordering::SeqCst) {
        if std::fs::read_link(format!("/proc/{pid}/exe")).ok() != ours {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            if let Some(kib) = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()) {
                peak = Some(peak.unwrap_or(0).max(kib));
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    peak
}

/// Reap a child and return its status and ru_maxrss (KiB; see [`peak_rss`] for why it is not used).
pub fn wait4(pid: i32) -> (ExitStatus, u64) {
    let mut status = 0;
    // SAFETY: plain wait4 into locals.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.raw_os_error(), Some(libc::EINTR), "wait4 {pid}: {e}");
    }
    (ExitStatus::from_raw(status), ru.ru_maxrss as u64)
}

/// A process that writes `prefix`, then `n` bytes of `fill` (by `head -c`
/// from an endless source: nothing is held in memory), then `suffix`.
pub fn stream_process(prefix: &str, n: u64, fill: char, suffix: &str) -> Child {
    let script = format!(
        "printf '%s' \"$P\"; yes '{}' | tr -d '\\n' | head -c {n}; printf '%s' \"$S\"",
        fill.to_string().repeat(64)
    );
    Command::new("sh")
        .args(["-c", &script])
        .env("P", prefix)
        .env("S", suffix)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sh")
}

/// Every file of the store: path → (kind, mode, size, content digest).
/// Two equal snapshots mean the store is byte-for-byte the same.
pub type Snapshot = BTreeMap<String, String>;

pub fn snapshot(root: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(base: &Path, dir: &Path, out: &mut Snapshot) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(base).unwrap().to_string_lossy().to_string();
        // The test's own files (docker config, contexts, archives) are not the store.
        if ["docker-config", "ctx", "work"].iter().any(|x| rel == *x || rel.starts_with(&format!("{x}/"))) {
            continue;
        }
        let Ok(m) = std::fs::symlink_metadata(&p) else { continue };
        let desc = if m.is_dir() {
            walk(base, &p, out);
            format!("dir {:o}", m.mode())
        } else if m.file_type().is_symlink() {
            format!("link {:?}", std::fs::read_link(&p).ok())
        } else if m.is_file() {
            let data = std::fs::read(&p).unwrap_or_default();
            format!("file {:o} {} {}", m.mode(), m.len(), ci_core::digest::Digest::sha256_of(&data))
        } else {
            format!("other {:o}", m.mode())
        };
        out.insert(rel, desc);
    }
}

/// The differences between two snapshots, for messages.
pub fn diff(a: &Snapshot, b: &Snapshot) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => d.push(format!("- {k} ({v})")),
            Some(w) if w != v => d.push(format!("~ {k}: {v} -> {w}")),
            _ => {}
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            d.push(format!("+ {k} ({v})"));
        }
    }
    d
}

/// What changed in a store, except lock files created empty on first use
/// (`ROOT/locks/*.lock`: they hold nothing; a failed command may take a lock).
pub fn store_changes(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    diff(before, after)
        .into_iter()
        .filter(|d| !(d.starts_with("+ locks/") && d.contains(".lock (file 100600 0 ")))
        .collect()
}

/// Mount points at or below `dir` in this mount namespace.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(&p.replace("\\040", " ")).starts_with(dir))
        .map(str::to_string)
        .collect()
}

/// Container ids the store knows of: records, and records being deleted.
pub fn container_ids(root: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(root.join("containers")).into_iter().flatten().flatten() {
        ids.push(e.file_name().to_string_lossy().to_string());
    }
    for e in std::fs::read_dir(root.join("tmp")).into_iter().flatten().flatten() {
        if let Some(id) = e.file_name().to_string_lossy().strip_prefix("deleting-container-") {
            ids.push(id.to_string());
        }
    }
    ids
}

/// Cgroup directories `ci/<id>` of these containers, in any hierarchy.
pub fn cgroups_of(ids: &[String]) -> Vec<PathBuf> {
    ids.iter().flat_map(|id| cgroup_dirs(&format!("ci/{id}"))).collect()
}

/// Temporary files of atomic writes (`.ci-tmp-*`, `.tmp-*`) anywhere in the store but ROOT/tmp.
pub fn stray_temp_files(root: &Path) -> Vec<String> {
    snapshot(root)
        .keys()
        .filter(|k| !k.starts_with("tmp/") && k.rsplit('/').next().is_some_and(|n| n.starts_with(".tmp") || n.starts_with(".ci-tmp")))
        .cloned()
        .collect()
}

/// No container record of `ids` left, and no cgroup of theirs.
pub fn assert_no_containers_left(root: &TestRoot, ids: &[String], what: &str) {
    let records: Vec<(&String, Vec<String>)> = ids
        .iter()
        .filter(|id| root.path().join("containers").join(id).exists())
        .map(|id| (id, snapshot(&root.path().join("containers").join(id)).keys().cloned().collect()))
        .collect();
    assert!(records.is_empty(), "{what}: container records left: {records:?}");
    let cg = cgroups_of(ids);
    assert!(cg.is_empty(), "{what}: cgroups left: {cg:?}");
    let run: Vec<PathBuf> = ids.iter().map(|id| ci_core::runtime::state::run_dir(&root.path().join("containers").join(id))).filter(|d| d.exists()).collect();
    assert!(run.is_empty(), "{what}: run-time state left: {run:?}");
}

/// No temporary file of an atomic write anywhere (after a command that
/// wrote into the same directories as the one killed: it removes them).
pub fn assert_no_stray_temps(root: &TestRoot, what: &str) {
    let stray = stray_temp_files(root.path());
    assert!(stray.is_empty(), "{what}: temporary files of atomic writes left in the store: {stray:?}");
}

/// Processes with a file descriptor on something under `dir`: (pid, comm, target).
pub fn holders(dir: &Path) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = p.file_name().to_string_lossy().to_string();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        for fd in std::fs::read_dir(p.path().join("fd")).into_iter().flatten().flatten() {
            if let Ok(t) = std::fs::read_link(fd.path()) {
                if t.starts_with(dir) {
                    let comm = std::fs::read_to_string(p.path().join("status")).unwrap_or_default().lines().take(3).collect::<Vec<_>>().join(" ");
                    out.push((pid.clone(), comm, t.display().to_string()));
                }
            }
        }
    }
    out
}

/// Entries of ROOT/tmp.
pub fn tmp_entries(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("tmp"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect()
}

/// Staged blobs of interrupted pulls that do not hash to their names.
pub fn bad_staged_blobs(root: &Path) -> Vec<String> {
    let dir = root.join("distribution/incoming/images/blobs/sha256");
    let mut bad = Vec::new();
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let data = std::fs::read(e.path()).unwrap_or_default();
        if ci_core::digest::Digest::sha256_of(&data).encoded() != name {
            bad.push(name);
        }
    }
    bad
}

/// Everything that must hold after a process working on the store died
/// (SECURITY.md §4.4). Runs `ci-build fsck` (the next command) first.
/// Containers and cgroups of the dead process are checked by
/// [`assert_no_containers_left`] after the next command of its own kind
/// (a dead build's step container is removed by the next build).
pub fn assert_recovered(root: &TestRoot, what: &str) {
    // A process the tool forked (a RUN step's container init, before it
    // execs) shares the tool's open files until it dies too: it gets
    // SIGKILL when the tool dies (PDEATHSIG), but dying (leaving its
    // namespaces) takes the kernel a moment. Nothing may survive longer.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = holders(root.path());
        if h.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{what}: processes of the killed tool still hold files of the store: {h:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let fsck = run(cmd(root, "ci-build", &["fsck"]));
    assert!(fsck.ok(), "{what}: fsck after the kill: {}", fsck.stderr);
    let left = tmp_entries(root.path());
    assert!(left.is_empty(), "{what}: ROOT/tmp still holds {left:?} after the next command; open by {:?}", holders(&root.path().join("tmp")));
    let ls = run(cmd(root, "ci-build", &["ls"]));
    assert!(ls.ok(), "{what}: ls after the kill: {}", ls.stderr);
    for v in json_lines(ls.stdout.as_bytes()) {
        assert_eq!(v["kind"], "image", "{what}: ls prints images: {v}");
    }
    let m = mounts_under(root.path());
    assert!(m.is_empty(), "{what}: mounts left under the root: {m:?}");
    let stray: Vec<String> = stray_temp_files(root.path()).into_iter().filter(|p| p.starts_with("images/")).collect();
    assert!(stray.is_empty(), "{what}: temporary files of atomic writes left in the image layout: {stray:?}");
    let bad = bad_staged_blobs(root.path());
    assert!(bad.is_empty(), "{what}: staged blobs whose bytes differ from their names: {bad:?}");
}

/// `tool` with arguments.
pub fn cmd(root: &TestRoot, name: &str, args: &[&str]) -> Command {
    let mut c = tool(root, name);
    c.args(args);
    c
}

/// Start `cmd`, SIGKILL it after `delay` (if still running), reap it.
/// Returns whether the kill landed before the command ended.
pub fn kill_after(mut cmd: Command, delay: Duration) -> bool {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    // Its own process group: the kill reaches the tool, not the test.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().expect("spawn the tool");
    let deadline = Instant::now() + delay;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(2)));
    }
    // Only the tool itself: kill -9 of one process, as a user (or the OOM
    // killer) would. Stopped first, so the processes it forked can be
    // listed without it forking more meanwhile.
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP);
    let forked = descendants(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let status = child.wait().expect("reap the tool");
    wait_gone(&forked);
    status.signal() == Some(libc::SIGKILL)
}

/// Field 22 of /proc/PID/stat (start time), and field 4 (ppid).
fn stat_of(pid: i32) -> Option<(i32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    Some((f.get(1)?.parse().ok()?, f.get(19)?.parse().ok()?))
}

/// Dead, not yet reaped (orphans wait for a PID 1 that may never reap them).
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z'))).unwrap_or(false)
}

/// Every process below `pid` (children, their children...), with start times.
pub fn descendants(pid: i32) -> Vec<(i32, u64)> {
    let mut all = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() {
            if let Some((ppid, start)) = stat_of(p) {
                all.push((p, ppid, start));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(p, ppid, start) in &all {
            if ppid == parent {
                out.push((p, start));
                frontier.push(p);
            }
        }
    }
    out
}

/// Wait until these processes are gone: they die with the tool
/// (PDEATHSIG); one that lives on for 10 s is a leak.
pub fn wait_gone(procs: &[(i32, u64)]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for &(pid, start) in procs {
        while stat_of(pid).is_some_and(|(_, s)| s == start) && !is_zombie(pid) {
            assert!(Instant::now() < deadline, "process {pid} forked by the killed tool is still alive 10 s later");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Run `cmd` with a named crash point armed; it must die there (SIGKILL).
pub fn crash_at(mut cmd: Command, point: &str) {
    cmd.env("CITEST_CRASH_AT", point).stdout(Stdio::null()).stderr(Stdio::piped());
    let out = cmd.output().expect("run the tool");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "the crash point {point} was not reached ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tar of a root filesystem: busybox plus `extra_mb` MiB of random bytes in /data.
pub fn rootfs_tar(rng: &mut Rng, extra_mb: usize) -> Option<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    busybox_entries(&mut b)?;
    let mut data = vec![0u8; extra_mb << 20];
    rng.fill(&mut data);
    let mut f = tar::Header::new_gnu();
    f.set_mode(0o644);
    f.set_size(data.len() as u64);
    b.append_data(&mut f, "data/random", &data[..]).unwrap();
    Some(b.into_inner().unwrap())
}

/// The same as a file, written as the random bytes are made: a big layer
/// never held in the test's memory (which a tool spawned meanwhile would be
/// charged for at its vfork, see [`peak_rss`]).
pub fn rootfs_tar_file(path: &Path, rng: &mut Rng, extra_mb: usize) -> Option<()> {
    let mut b = tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(path).unwrap()));
    busybox_entries(&mut b)?;
    struct Random<'a>(&'a mut Rng, usize);
    impl Read for Random<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.1) & !7;
            let n = if n == 0 { buf.len().min(self.1) } else { n };
            self.0.fill(&mut buf[..n]);
            self.1 -= n;
            Ok(n)
        }
    }
    let mut f = tar::Header::new_gnu();
    f.set_mode(0o644);
    f.set_size((extra_mb << 20) as u64);
    b.append_data(&mut f, "data/random", Random(rng, extra_mb << 20)).unwrap();
    b.into_inner().unwrap().flush().unwrap();
    Some(())
}

/// /bin/busybox and its links.
fn busybox_entries<W: Write>(b: &mut tar::Builder<W>) -> Option<()> {
    let bb = busybox()?;
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_data(&mut h, "bin", std::io::empty()).unwrap();
    b.append_path_with_name(&bb, "bin/busybox").unwrap();
    for name in ["sh", "cat", "true", "test", "md5sum", "wc", "sleep", "echo"] {
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Symlink);
        l.set_mode(0o777);
        l.set_size(0);
        b.append_link(&mut l, format!("bin/{name}"), "busybox").unwrap();
    }
    Some(())
}

/// Parse the single JSON object a tool printed.
pub fn one_object(stdout: &str) -> serde_json::Value {
    let v = json_lines(stdout.as_bytes());
    assert_eq!(v.len(), 1, "one object expected: {stdout}");
    v.into_iter().next().unwrap()
}

/// A root with `bb:1`, imported from a busybox rootfs plus `extra_mb` MiB of data.
pub fn root_with_base(name: &str, extra_mb: usize) -> Option<(TestRoot, Rng)> {
    let root = TestRoot::new();
    let mut rng = Rng::new(seed(name));
    let tar = rootfs_tar(&mut rng, extra_mb)?;
    run_with_stdin(cmd(&root, "ci-build", &["import", "-t", "bb:1", "-"]), tar).expect_ok("import bb:1");
    Some((root, rng))
}

pub fn write_random(dir: &Path, name: &str, rng: &mut Rng, mb: usize) {
    let mut data = vec![0u8; mb << 20];
    rng.fill(&mut data);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), data).unwrap();
}

/// A several-layer image in its own root, pushed to `reg` as `multi:1`.
pub fn push_multi_layer(reg: &ci_tests::registry::TestRegistry, name: &str) -> Option<(TestRoot, String)> {
    let (src, mut rng) = root_with_base(name, 1)?;
    let ctx = src.path().join("ctx/multi");
    for f in ["a", "b", "c"] {
        write_random(&ctx, f, &mut rng, 3);
    }
    std::fs::write(ctx.join("Dockerfile"), "FROM bb:1\nCOPY a /a\nCOPY b /b\nCOPY c /c\n").unwrap();
    let reference = format!("{}/multi:1", reg.host());
    run(cmd(&src, "ci-build", &["--progress", "plain", "-t", &reference, ctx.to_str().unwrap()])).expect_ok("build multi");
    run(cmd(&src, "ci-push", &[&reference])).expect_ok("push multi");
    Some((src, reference))
}

