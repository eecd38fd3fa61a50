//! Cgroups against the real kernel, as root: limits that bite (a fork that
//! fails, an OOM kill), device rules that refuse an open, in both the v1
//! devices controller and the v2 eBPF program, usage that matches what a
//! process did, and cleanup whatever happens.
//!
//! Each test works under its own top-level cgroup `ci-test-<pid>-<n>` (so
//! tests run in parallel), and a guard kills and removes it on drop, pass or
//! fail. Test processes are forked children that wait on a pipe until the
//! test has put them in the cgroup, and talk back through another pipe.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::*;
use crate::testsupport::privileged;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh cgroup for one test, killed and removed on drop (with its
/// per-test parent directory).
struct TestCgroup {
    cg: Option<Cgroup>,
    top: String,
    layout: Layout,
}

impl TestCgroup {
    fn new(limits: &Limits) -> TestCgroup {
        TestCgroup::new_in(&Layout::detect().expect("detect the cgroup layout"), limits)
    }

    fn new_in(layout: &Layout, limits: &Limits) -> TestCgroup {
        let (name, top) = unique_name();
        // Nested: exercises parent creation (v2 subtree_control, v1 cpuset).
        let cg = Cgroup::create_in(layout, &name, limits).unwrap_or_else(|e| panic!("create cgroup {name}: {e}"));
        TestCgroup { cg: Some(cg), top, layout: layout.clone() }
    }

    fn remove(mut self) -> Result<()> {
        let cg = self.cg.take().expect("not removed yet");
        cg.kill_all(Signal::SIGKILL)?;
        cg.remove()
    }
}

fn unique_name() -> (String, String) {
    let top = format!("ci-test-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    (format!("{top}/c"), top)
}

impl std::ops::Deref for TestCgroup {
    type Target = Cgroup;
    fn deref(&self) -> &Cgroup {
        self.cg.as_ref().expect("not removed yet")
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Some(cg) = self.cg.take() {
            let _ = cg.kill_all(Signal::SIGKILL);
            // Should kill_all be what is broken, still leave no process.
            let _ = poll_until(Duration::from_secs(10), || {
                let left = cg.procs()?;
                for p in &left {
                    let _ = nix::sys::signal::kill(Pid::from_raw(*p), Signal::SIGKILL);
                }
                Ok(left.is_empty())
            });
            if let Err(e) = cg.remove() {
                eprintln!("test cleanup: {e}");
            }
        }
        for h in self.layout.hierarchies() {
            let dir = h.mount_point.join(&self.top);
            if let Err(e) = std::fs::remove_dir(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    eprintln!("test cleanup: rmdir {}: {e}", dir.display());
                }
            }
        }
    }
}

/// A forked test process (the workload). It waits until `start()`, then
/// runs its body and exits with the body's return value.
///
/// Its parent is a small reaper process of ours, outside the cgroup, marked
/// as child subreaper: whatever the workload forks is reparented to it when
/// orphaned and reaped there (this machine's PID 1 does not reap orphans),
/// and it exits with the workload's status once every descendant is gone.
/// Declare a `Child` before the `TestCgroup` it goes into: the cgroup guard,
/// dropped first, kills every descendant, then the reaper can finish.
struct Child {
    reaper: Pid,
    /// The workload's pid, the one to put in a cgroup.
    pid: i32,
    down: OwnedFd,
    up: OwnedFd,
    reaped: bool,
}

/// How the workload ended, as its reaper reports it.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Code(i32),
    Signal(Signal),
}

/// The workload's ends of the pipes.
struct ChildIo {
    down: RawFd,
    up: RawFd,
}

impl ChildIo {
    fn recv(&self) {
        let mut b = [0u8; 1];
        // SAFETY: reading one byte into a local buffer.
        unsafe { libc::read(self.down, b.as_mut_ptr().cast(), 1) };
    }
    fn send(&self, v: i32) {
        let b = v.to_ne_bytes();
        // SAFETY: writing four bytes from a local buffer.
        unsafe { libc::write(self.up, b.as_ptr().cast(), 4) };
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn spawn(body: impl FnOnce(&ChildIo) -> i32) -> Child {
    let (down_r, down_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let (up_r, up_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    // SAFETY: the forked processes only make system calls and allocate
    // (glibc's malloc is fork-safe), never return into the test harness
    // (they _exit, even on panic), and print nothing.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => unsafe {
            drop((down_w, up_r));
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
            let workload = libc::fork();
            if workload == 0 {
                let io = ChildIo { down: down_r.as_raw_fd(), up: up_w.as_raw_fd() };
                io.recv();
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&io))).unwrap_or(99);
                libc::_exit(code);
            }
            let io = ChildIo { down: -1, up: up_w.as_raw_fd() };
            io.send(workload);
            drop((down_r, up_w));
            // Reap the workload and every orphan until none is left.
            let mut end = 97;
            loop {
                let mut status = 0;
                let pid = libc::waitpid(-1, &mut status, 0);
                if pid == -1 && errno() == libc::ECHILD {
                    break;
                }
                if pid == workload {
                    end = status;
                }
            }
            if libc::WIFSIGNALED(end) {
                libc::signal(libc::WTERMSIG(end), libc::SIG_DFL);
                libc::kill(libc::getpid(), libc::WTERMSIG(end));
            }
            libc::_exit(libc::WEXITSTATUS(end));
        },
        ForkResult::Parent { child } => {
            drop((down_r, up_w));
            let mut c = Child { reaper: child, pid: 0, down: down_w, up: up_r, reaped: false };
            c.pid = c.recv();
            c
        }
    }
}

impl Child {
    fn start(&self) {
        nix::unistd::write(&self.down, b"g").expect("wake the child");
    }
    fn recv(&self) -> i32 {
        let mut b = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let n = nix::unistd::read(&self.up, &mut b[got..]).expect("read from the child");
            assert!(n > 0, "the child died before answering");
            got += n;
        }
        i32::from_ne_bytes(b)
    }
    /// Wait for the workload and all it forked. Not a timing check: a
    /// guard against hanging when what should have ended them is broken.
    fn wait(&mut self) -> End {
        let mut status = WaitStatus::StillAlive;
        let ended = poll_until(Duration::from_secs(60), || {
            status = waitpid(self.reaper, Some(nix::sys::wait::WaitPidFlag::WNOHANG)).expect("waitpid");
            Ok(status != WaitStatus::StillAlive)
        });
        assert!(matches!(ended, Ok(true)), "the test process or one of its children did not end within 60 s");
        let s = status;
        self.reaped = true;
        match s {
            WaitStatus::Exited(_, code) => End::Code(code),
            WaitStatus::Signaled(_, sig, _) => End::Signal(sig),
            other => panic!("unexpected wait status {other:?}"),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        let _ = nix::sys::signal::kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        // The reaper ends when the last descendant is gone; if something
        // survives (a failed test), kill the reaper rather than hang.
        let done = poll_until(Duration::from_secs(5), || {
            Ok(!matches!(waitpid(self.reaper, Some(nix::sys::wait::WaitPidFlag::WNOHANG)), Ok(WaitStatus::StillAlive)))
        });
        if !matches!(done, Ok(true)) {
            let _ = nix::sys::signal::kill(self.reaper, Signal::SIGKILL);
            let _ = waitpid(self.reaper, None);
        }
    }
}

/// A cgroup2-only view of this machine: its cgroup2 mount and nothing else.
/// On the hybrid CI machine that mount holds no useful controller, but it
/// runs eBPF device programs, cgroup.freeze and cgroup.kill for real.
fn unified_only() -> Option<Layout> {
    let l = Layout::detect().unwrap();
    match l.unified {
        Some(u) => Some(Layout { v1: Vec::new(), unified: Some(u), disabled: l.disabled }),
        None => {
            crate::testsupport::skip("no cgroup2 hierarchy is mounted on this machine");
            None
        }
    }
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
}

const MIB: u64 = 1 << 20;

/// Map `bytes` of anonymous memory and touch every page (in a child).
fn touch_memory(bytes: usize) -> *mut u8 {
    // SAFETY: a fresh private anonymous mapping, written within its length.
    unsafe {
        let p = libc::mmap(std::ptr::null_mut(), bytes, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        if p == libc::MAP_FAILED {
            libc::_exit(98);
        }
        let p = p.cast::<u8>();
        for i in (0..bytes).step_by(4096) {
            std::ptr::write_volatile(p.add(i), 1);
        }
        p
    }
}

#[test]
fn detects_this_machine() {
    let l = Layout::detect().unwrap();
    eprintln!("layout: {}", l.kind());
    for h in l.hierarchies() {
        assert!(h.mount_point.join("cgroup.procs").exists(), "{} is not a cgroup mount", h.mount_point.display());
    }
    for ctrl in ["memory", "pids", "cpu"] {
        // Every machine ci runs on has these, in v1 or v2.
        assert!(l.hierarchy_of(ctrl).is_some(), "no {ctrl} controller in {l:?}");
    }
}

#[test]
fn limits_land_in_the_kernel_files() {
    if !privileged("cgroup limits") {
        return;
    }
    let limits = Limits { memory: Some(100 * MIB), cpus: Some(0.5), cpu_shares: Some(512), pids: Some(50), ..Limits::default() };
    let cg = TestCgroup::new(&limits);
    for p in cg.paths() {
        assert!(p.is_dir(), "{} was not made", p.display());
    }
    let (mem, memdir) = cg.dir_of("memory").unwrap();
    let (cpu, cpudir) = cg.dir_of("cpu").unwrap();
    let (_, pidsdir) = cg.dir_of("pids").unwrap();
    match mem.version {
        Version::V1 => {
            assert_eq!(read(memdir, "memory.limit_in_bytes").trim(), (100 * MIB).to_string());
            if memdir.join("memory.memsw.limit_in_bytes").exists() {
                // docker's default: as much swap as memory.
                assert_eq!(read(memdir, "memory.memsw.limit_in_bytes").trim(), (200 * MIB).to_string());
            }
        }
        Version::V2 => assert_eq!(read(memdir, "memory.max").trim(), (100 * MIB).to_string()),
    }
    match cpu.version {
        Version::V1 => {
            assert_eq!(read(cpudir, "cpu.cfs_quota_us").trim(), "50000");
            assert_eq!(read(cpudir, "cpu.cfs_period_us").trim(), "100000");
            assert_eq!(read(cpudir, "cpu.shares").trim(), "512");
        }
        Version::V2 => {
            assert_eq!(read(cpudir, "cpu.max").trim(), "50000 100000");
            assert_eq!(read(cpudir, "cpu.weight").trim(), v2::shares_to_weight(512).to_string());
        }
    }
    assert_eq!(read(pidsdir, "pids.max").trim(), "50");
    if let Some((_, devdir)) = cg.dir_of("devices") {
        let mut got: Vec<String> = read(devdir, "devices.list").lines().map(str::to_string).collect();
        let mut want: Vec<String> = default_devices().iter().map(|r| r.v1_line()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
    } else {
        let dir = File::open(cg.unified_dir().unwrap()).unwrap();
        assert_eq!(bpf::attached_device_programs(dir.as_fd()).unwrap().len(), 1);
    }
    let s = cg.stats().unwrap();
    assert_eq!(s.memory.as_ref().unwrap().limit, Some(100 * MIB));
    assert_eq!(s.pids.as_ref().unwrap().limit, Some(50));
    assert_eq!(s.pids.as_ref().unwrap().current, 0);

    // Another process finds it by name; removing it removes every directory.
    let opened = Cgroup::open(cg.name()).unwrap().expect("open by name");
    assert_eq!(opened.paths(), cg.paths());
    let paths = cg.paths();
    cg.remove().unwrap();
    for p in paths {
        assert!(!p.exists(), "{} is left", p.display());
    }
}

#[test]
fn pids_limit_stops_the_sixth_process() {
    if !privileged("pids limit") {
        return;
    }
    let mut child = spawn(|_| {
        // Fork children that sleep until the 5-process limit refuses one.
        let mut kids = Vec::new();
        let mut err = 0;
        for _ in 0..10 {
            // SAFETY: the grandchild only pauses until killed.
            match unsafe { libc::fork() } {
                0 => loop {
                    // SAFETY: pause has no preconditions.
                    unsafe { libc::pause() };
                },
                -1 => {
                    err = errno();
                    break;
                }
                pid => kids.push(pid),
            }
        }
        for &k in &kids {
            // SAFETY: our own children.
            unsafe {
                libc::kill(k, libc::SIGKILL);
                libc::waitpid(k, std::ptr::null_mut(), 0);
            }
        }
        if err == libc::EAGAIN {
            kids.len() as i32
        } else {
            100 + kids.len() as i32
        }
    });
    let cg = TestCgroup::new(&Limits { pids: Some(5), ..Limits::default() });
    cg.add_process(child.pid).unwrap();
    assert_eq!(cg.procs().unwrap(), vec![child.pid]);
    child.start();
    // The child itself plus 4 forks make 5; the 5th fork fails with EAGAIN.
    assert_eq!(child.wait(), End::Code(4));
}

#[test]
fn memory_limit_oom_kills_a_hog() {
    if !privileged("memory limit") {
        return;
    }
    let mut child = spawn(|_| {
        touch_memory(100 * MIB as usize);
        0 // survived: the limit did not work
    });
    let cg = TestCgroup::new(&Limits { memory: Some(20 * MIB), ..Limits::default() });
    cg.add_process(child.pid).unwrap();
    child.start();
    assert_eq!(child.wait(), End::Signal(Signal::SIGKILL));
    let mem = cg.stats().unwrap().memory.unwrap();
    assert!(mem.oom_kills >= 1, "{mem:?}");
    assert_eq!(mem.limit, Some(20 * MIB));
}

#[test]
fn stats_match_what_a_process_did() {
    if !privileged("cgroup stats") {
        return;
    }
    let mut child = spawn(|io| {
        touch_memory(50 * MIB as usize);
        // Some CPU time too.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        io.send(1);
        io.recv();
        std::hint::black_box(x);
        0
    });
    let cg = TestCgroup::new(&Limits::default());
    cg.add_process(child.pid).unwrap();
    child.start();
    assert_eq!(child.recv(), 1);
    let s = cg.stats().unwrap();
    let mem = s.memory.unwrap();
    assert!(mem.usage >= 50 * MIB && mem.usage < 70 * MIB, "50 MiB touched, usage {} MiB", mem.usage / MIB);
    assert_eq!(mem.limit, None);
    assert_eq!(mem.oom_kills, 0);
    let cpu = s.cpu.unwrap();
    assert!(cpu.usage_ns > 0, "{cpu:?}");
    assert_eq!(s.pids.unwrap().current, 1);
    assert!(s.blkio.is_some(), "the block I/O figures are missing");
    child.start();
    assert_eq!(child.wait(), End::Code(0));
}

/// What the device tests do inside the cgroup, one step at a time.
enum Step {
    Mknod(CString, libc::mode_t, libc::dev_t),
    Open(CString, libc::c_int),
}

impl Step {
    /// 0 on success, else the errno.
    fn run(&self) -> i32 {
        // SAFETY: plain system calls on NUL-terminated paths we own.
        unsafe {
            match self {
                Step::Mknod(p, mode, dev) => {
                    if libc::mknod(p.as_ptr(), *mode | 0o600, *dev) == 0 {
                        0
                    } else {
                        errno()
                    }
                }
                Step::Open(p, flags) => match libc::open(p.as_ptr(), *flags | libc::O_CLOEXEC | libc::O_NONBLOCK) {
                    -1 => errno(),
                    fd => {
                        libc::close(fd);
                        0
                    }
                },
            }
        }
    }
}

/// A block device of this machine (major, minor) that root can open.
fn some_block_device() -> (u32, u32) {
    for e in std::fs::read_dir("/sys/dev/block").unwrap().flatten() {
        let name = e.file_name();
        let Some((ma, mi)) = name.to_str().and_then(|n| n.split_once(':')) else { continue };
        let (ma, mi): (u32, u32) = (ma.parse().unwrap(), mi.parse().unwrap());
        let tmp = tempfile::tempdir().unwrap();
        let node = tmp.path().join("b");
        nix::sys::stat::mknod(&node, nix::sys::stat::SFlag::S_IFBLK, nix::sys::stat::Mode::from_bits_truncate(0o600), libc::makedev(ma, mi)).unwrap();
        if std::fs::File::open(&node).is_ok() {
            return (ma, mi);
        }
    }
    panic!("no openable block device in /sys/dev/block");
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// Run `steps` in a child inside `cg` and return each result (0 or errno).
fn run_steps(cg: &Cgroup, steps: Vec<Step>) -> Vec<i32> {
    let n = steps.len();
    let mut child = spawn(move |io| {
        for s in &steps {
            io.send(s.run());
        }
        0
    });
    cg.add_process(child.pid).unwrap();
    child.start();
    let results = (0..n).map(|_| child.recv()).collect();
    assert_eq!(child.wait(), End::Code(0));
    results
}

/// Docker's device list, enforced: /dev/null opens; any node may be made,
/// but a char device off the list (/dev/kmsg, 1:11) and a block device
/// (the host's disk or a loop device) cannot be opened, though the same
/// nodes open outside the cgroup.
fn check_default_devices(cg: &Cgroup) {
    let tmp = tempfile::tempdir().unwrap();
    let (bmaj, bmin) = some_block_device();
    let kmsg = tmp.path().join("kmsg");
    let disk = tmp.path().join("disk");
    let steps = vec![
        Step::Open(c"/dev/null".into(), libc::O_RDWR),
        Step::Open(c"/dev/zero".into(), libc::O_RDONLY),
        Step::Mknod(cpath(&kmsg), libc::S_IFCHR, libc::makedev(1, 11)),
        Step::Open(cpath(&kmsg), libc::O_RDONLY),
        Step::Mknod(cpath(&disk), libc::S_IFBLK, libc::makedev(bmaj, bmin)),
        Step::Open(cpath(&disk), libc::O_RDONLY),
    ];
    let got = run_steps(cg, steps);
    assert_eq!(got, vec![0, 0, 0, libc::EPERM, 0, libc::EPERM], "null, zero, mknod kmsg, open kmsg, mknod {bmaj}:{bmin}, open it");
    // Control: outside the cgroup the very same nodes open.
    File::open(&kmsg).expect("open the kmsg node outside the cgroup");
    File::open(&disk).expect("open the block node outside the cgroup");
}

/// A default-allow list with one deny: /dev/null may be read, not written.
fn check_deny_rule(cg: &Cgroup) {
    let got = run_steps(cg, vec![Step::Open(c"/dev/null".into(), libc::O_RDONLY), Step::Open(c"/dev/null".into(), libc::O_WRONLY)]);
    assert_eq!(got, vec![0, libc::EPERM]);
}

fn allow_all_but_writing_null() -> Limits {
    Limits { devices: vec![DeviceRule::allow_all(), DeviceRule::parse("c 1:3 w", false).unwrap()], ..Limits::default() }
}

#[test]
fn devices_are_enforced_by_this_machines_layout() {
    if !privileged("device cgroup") {
        return;
    }
    // v1 devices controller here; the eBPF program on a v2 machine.
    check_default_devices(&TestCgroup::new(&Limits::default()));
    check_deny_rule(&TestCgroup::new(&allow_all_but_writing_null()));
}

#[test]
fn device_program_on_cgroup2() {
    if !privileged("eBPF device program") {
        return;
    }
    let Some(layout) = unified_only() else { return };
    let cg = TestCgroup::new_in(&layout, &Limits::default());
    let dir = File::open(cg.unified_dir().unwrap()).unwrap();
    assert_eq!(bpf::attached_device_programs(dir.as_fd()).unwrap().len(), 1, "one program attached");
    check_default_devices(&cg);
    check_deny_rule(&TestCgroup::new_in(&layout, &allow_all_but_writing_null()));
    // --privileged: nothing attached at all.
    let open = TestCgroup::new_in(&layout, &Limits { devices: vec![DeviceRule::allow_all()], ..Limits::default() });
    let dir = File::open(open.unified_dir().unwrap()).unwrap();
    assert!(bpf::attached_device_programs(dir.as_fd()).unwrap().is_empty());
}

/// A process that forks `n` children, and all sleep; `kill_all` must get
/// every one. Started by [`start_in`].
fn sleepers(n: i32) -> Child {
    spawn(move |io| {
        for _ in 0..n {
            // SAFETY: the grandchild only sleeps.
            if unsafe { libc::fork() } == 0 {
                loop {
                    // SAFETY: pause has no preconditions.
                    unsafe { libc::pause() };
                }
            }
        }
        io.send(0);
        loop {
            // SAFETY: as above.
            unsafe { libc::pause() };
        }
    })
}

fn start_in(cg: &Cgroup, child: &Child) {
    cg.add_process(child.pid).unwrap();
    child.start();
    assert_eq!(child.recv(), 0);
}

#[test]
fn freeze_and_kill_on_cgroup2() {
    if !privileged("cgroup2 freezer and cgroup.kill") {
        return;
    }
    let Some(layout) = unified_only() else { return };
    let mut child = sleepers(3);
    let cg = TestCgroup::new_in(&layout, &Limits::default());
    start_in(&cg, &child);
    assert_eq!(cg.procs().unwrap().len(), 4);
    // cpu.stat is in every v2 cgroup; a figure whose controller the
    // hierarchy lacks (all of them on the hybrid CI machine) is absent, not 0.
    let s = cg.stats().unwrap();
    assert!(s.cpu.as_ref().is_some_and(|c| c.usage_ns > 0), "{s:?}");
    let u = layout.unified.as_ref().unwrap();
    assert_eq!(s.memory.is_some(), u.has("memory"), "{s:?}");
    assert_eq!(s.pids.is_some(), u.has("pids"), "{s:?}");
    assert_eq!(s.blkio.is_some(), u.has("io"), "{s:?}");
    cg.freeze().unwrap();
    assert_eq!(stats::keyed(&read(cg.unified_dir().unwrap(), "cgroup.events"), "frozen"), 1);
    cg.thaw().unwrap();
    assert_eq!(stats::keyed(&read(cg.unified_dir().unwrap(), "cgroup.events"), "frozen"), 0);
    cg.kill_all(Signal::SIGKILL).unwrap(); // one write to cgroup.kill
    assert_eq!(child.wait(), End::Signal(Signal::SIGKILL));
    // The grandchildren (reparented, reaped by init) go too; remove waits for them.
    cg.remove().unwrap();
}

#[test]
fn kill_all_stops_a_fork_bomb() {
    if !privileged("freezer") {
        return;
    }
    let mut child = spawn(|io| {
        io.send(0);
        loop {
            // SAFETY: every process of the bomb only forks.
            unsafe { libc::fork() };
        }
    });
    let cg = TestCgroup::new(&Limits { pids: Some(32), ..Limits::default() });
    cg.add_process(child.pid).unwrap();
    child.start();
    assert_eq!(child.recv(), 0);
    // Wait (without a time assertion) until the bomb fills its pids budget.
    let full = poll_until(Duration::from_secs(30), || Ok(cg.stats()?.pids.unwrap().current >= 32)).unwrap();
    assert!(full, "the fork bomb never reached its limit");
    cg.kill_all(Signal::SIGKILL).unwrap();
    assert_eq!(child.wait(), End::Signal(Signal::SIGKILL));
    let gone = poll_until(Duration::from_secs(30), || Ok(cg.procs()?.is_empty())).unwrap();
    assert!(gone, "left: {:?}", cg.procs().unwrap());
    cg.remove().unwrap();
}

#[test]
fn kill_all_delivers_other_signals_and_thaws() {
    if !privileged("freezer") {
        return;
    }
    let mut child = sleepers(0);
    let cg = TestCgroup::new(&Limits::default());
    start_in(&cg, &child);
    cg.kill_all(Signal::SIGTERM).unwrap();
    assert_eq!(child.wait(), End::Signal(Signal::SIGTERM));
    if let Some((h, dir)) = cg.dir_of("freezer") {
        assert_eq!(h.version, Version::V1);
        assert_eq!(read(dir, "freezer.state").trim(), "THAWED");
    }
}

#[test]
fn errors_name_the_file_and_the_value() {
    if !privileged("cgroup errors") {
        return;
    }
    let (name, top) = unique_name();
    let layout = Layout::detect().unwrap();
    let err = Cgroup::create_in(&layout, &name, &Limits { pids: Some(99_999_999_999_999), ..Limits::default() }).unwrap_err();
    let msg = err.to_string();
    let pids_dir = layout.hierarchy_of("pids").unwrap().mount_point.join(&name);
    assert!(
        msg.starts_with(&format!("set pids.max to 99999999999999: write {}: Invalid argument", pids_dir.join("pids.max").display())),
        "{msg}"
    );
    assert!(msg.contains("hint: pids.max takes a number of processes"), "{msg}");
    assert_eq!(err.errno(), Some(libc::EINVAL));
    // Nothing of it is left, not even the parent it made.
    assert!(Cgroup::open_in(&layout, &name).unwrap().is_none(), "a failed create left {name}");
    for h in layout.hierarchies() {
        assert!(!h.mount_point.join(&top).exists(), "a failed create left {}", h.mount_point.join(&top).display());
    }
    drop(TestCgroup { cg: None, top, layout });

    // An existing cgroup is not taken over, nor removed by the failed create.
    let cg = TestCgroup::new(&Limits::default());
    let again = Cgroup::create(cg.name(), &Limits::default()).unwrap_err();
    assert!(matches!(again.root(), Error::Conflict(_)), "{again}");
    assert!(cg.paths().iter().all(|p| p.is_dir()));
}

#[test]
fn mounts_of_comounted_v1_controllers() {
    let info = "30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                31 25 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n\
                32 25 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n";
    let layout = Layout::parse(info, "cpu 1 1 1\ncpuacct 1 1 1\n").unwrap();
    let m = Cgroup::at(&layout, "ci/x").mounts();
    assert!(m.tmpfs);
    let got: Vec<(String, &str, &str, String)> = m
        .mounts
        .iter()
        .map(|m| (m.target.display().to_string(), m.fstype, m.options.as_str(), m.host_path.display().to_string()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("cpu,cpuacct".into(), "cgroup", "cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct/ci/x".into()),
            ("systemd".into(), "cgroup", "name=systemd", "/sys/fs/cgroup/systemd/ci/x".into()),
            ("unified".into(), "cgroup2", "nsdelegate", "/sys/fs/cgroup/unified/ci/x".into()),
        ]
    );
    assert_eq!(
        m.links,
        vec![(PathBuf::from("cpu"), PathBuf::from("cpu,cpuacct")), (PathBuf::from("cpuacct"), PathBuf::from("cpu,cpuacct"))]
    );
    // Pure v2: one cgroup2 mount at /sys/fs/cgroup itself, no tmpfs.
    let layout = Layout::parse("25 20 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n", "").unwrap();
    let m = Cgroup::at(&layout, "ci/x").mounts();
    assert!(!m.tmpfs && m.links.is_empty());
    assert_eq!(m.mounts[0].target, PathBuf::new());
}

#[test]
fn missing_controller_refused_before_anything_is_made() {
    // A cgroup2-only layout whose root delegates nothing, in a temp dir:
    // the check happens before any mkdir, so no privilege is needed.
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout {
        v1: Vec::new(),
        unified: Some(Hierarchy {
            version: Version::V2,
            mount_point: tmp.path().to_path_buf(),
            root: PathBuf::from("/"),
            controllers: vec!["hugetlb".into()],
            options: String::new(),
        }),
        disabled: Vec::new(),
    };
    let err = Cgroup::create_in(&layout, "ci/x", &Limits { pids: Some(10), ..Limits::default() }).unwrap_err().to_string();
    assert!(err.contains("--pids-limit needs the pids cgroup controller"), "{err}");
    assert!(err.contains("cgroup.controllers does not list it (it lists: hugetlb)"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert!(!tmp.path().join("ci").exists());
    for bad in ["", "/abs", "a/../b", "a//b", "."] {
        assert!(Cgroup::create_in(&layout, bad, &Limits::default()).is_err(), "{bad:?}");
    }
}

#[test]
fn remove_names_the_processes_still_inside() {
    if !privileged("cgroup removal") {
        return;
    }
    let child = sleepers(0);
    let cg = TestCgroup::new(&Limits::default());
    start_in(&cg, &child);
    let dir = cg.paths()[0].clone();
    let err = remove_dir(&dir, Duration::from_millis(20)).unwrap_err().to_string();
    assert!(err.contains(&format!("processes are still in it ({})", child.pid)), "{err}");
    drop(child);
    cg.remove().unwrap();
}

/// Mount what `mounts()` lists, the way the engine will (new mount and
/// cgroup namespaces, read-only), and look from inside: each hierarchy
/// shows the container's own cgroup as its root, holding just the process,
/// and nothing can be written.
#[test]
fn container_sees_its_own_cgroup_read_only() {
    if !privileged("cgroup namespace mounts") {
        return;
    }
    let cg = TestCgroup::new(&Limits::default());
    let mounts = cg.mounts();
    assert_eq!(mounts.mounts.len(), cg.paths().len());
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let mut child = spawn(move |io| {
        use nix::mount::{mount, MsFlags};
        let ro = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        let step = |ok: bool, code: i32| if ok { 0 } else { code };
        let r = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS | nix::sched::CloneFlags::CLONE_NEWCGROUP);
        io.send(step(r.is_ok(), 1));
        let r = mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>);
        io.send(step(r.is_ok(), 2));
        if mounts.tmpfs {
            let r = mount(Some("tmpfs"), &root, Some("tmpfs"), MsFlags::MS_NOSUID, Some("mode=755"));
            io.send(step(r.is_ok(), 3));
        }
        let me = std::process::id().to_string();
        for m in &mounts.mounts {
            let target = root.join(&m.target);
            let _ = std::fs::create_dir_all(&target);
            let r = mount(Some("cgroup"), &target, Some(m.fstype), ro, Some(m.options.as_str()));
            io.send(step(r.is_ok(), 10));
            // Its root is our cgroup: cgroup.procs lists us alone.
            let procs = std::fs::read_to_string(target.join("cgroup.procs")).unwrap_or_default();
            io.send(step(procs.trim() == me, 11));
            // Read-only.
            let w = std::fs::write(target.join("cgroup.procs"), &me);
            io.send(step(w.err().and_then(|e| e.raw_os_error()) == Some(libc::EROFS), 12));
        }
        // /proc/self/cgroup names "/" everywhere.
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        io.send(step(!own.is_empty() && own.lines().all(|l| l.ends_with(":/")), 13));
        0
    });
    cg.add_process(child.pid).unwrap();
    child.start();
    let n = 2 + usize::from(cg.mounts().tmpfs) + 3 * cg.paths().len() + 1;
    let got: Vec<i32> = (0..n).map(|_| child.recv()).collect();
    assert!(got.iter().all(|&c| c == 0), "failed steps (codes in the test body): {got:?}");
    assert_eq!(child.wait(), End::Code(0));
}


