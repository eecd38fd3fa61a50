//! A throwaway Linux VM under qemu, for behaviour the host kernel cannot
//! show: the CI machine mounts cgroup v1 hierarchies, so cgroup v2 alone
//! (what modern distributions run) is tested in a guest booted with
//! `cgroup_no_v1=all`.
//!
//! There is no OS disk image. The host's own kernel package
//! (`/boot/vmlinuz-VERSION` with `/lib/modules/VERSION`) boots an initramfs
//! that the test assembles in a temp dir ([`Initramfs`]): busybox, the
//! programs under test with the shared libraries they load, the kernel
//! modules they need, and a guest script as `/init`. The guest reports on
//! its second serial port (`/dev/ttyS1`), which qemu writes to a file; the
//! console (`ttyS0`) is kept as the log shown when something fails.
//!
//! Software emulation (TCG) by default: nested KVM hangs on the CI machine.
//! `CITEST_VM_ACCEL=kvm` (any qemu `-accel` value) chooses otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::skip;

/// The qemu accelerator, overridable for machines where KVM works.
pub const ACCEL_ENV: &str = "CITEST_VM_ACCEL";

/// `qemu-system-x86_64` on `$PATH` (x86-64 hosts only: the guest runs the
/// host's kernel and binaries). `None` after a printed skip.
pub fn qemu() -> Option<PathBuf> {
    if !cfg!(target_arch = "x86_64") {
        skip("the VM tests boot the host's x86-64 kernel and binaries: this host is not x86-64");
        return None;
    }
    let found = program_on_path("qemu-system-x86_64");
    if found.is_none() {
        skip("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)");
    }
    found
}

/// A program on `$PATH`, if there is one.
pub fn program_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// A kernel to boot and its modules.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub version: String,
    /// `/boot/vmlinuz-VERSION`.
    pub image: PathBuf,
    /// `/lib/modules/VERSION`.
    pub modules: PathBuf,
}

impl Kernel {
    /// The newest `/boot/vmlinuz-*` whose modules are installed. `None`
    /// after a printed skip.
    pub fn find() -> Option<Kernel> {
        let mut found: Vec<Kernel> = std::fs::read_dir("/boot")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_str()?.strip_prefix("vmlinuz-")?.to_string();
                let modules = Path::new("/lib/modules").join(&version);
                modules.join("modules.dep").is_file().then(|| Kernel { image: e.path(), modules, version })
            })
            .collect();
        found.sort_by_key(|k| version_key(&k.version));
        let newest = found.pop();
        if newest.is_none() {
            skip("no kernel to boot: no /boot/vmlinuz-VERSION with /lib/modules/VERSION/modules.dep (apt-get install linux-image-amd64)");
        }
        newest
    }

    /// The module files of `names` and of everything they depend on, in
    /// load order (dependencies first), from `modules.dep`; modules built
    /// into the kernel (`modules.builtin`) are left out.
    pub fn modules_in_load_order(&self, names: &[&str]) -> Result<Vec<PathBuf>, String> {
        let read = |file: &str| {
            let p = self.modules.join(file);
            std::fs::read_to_string(&p).map_err(|e| format!("read {}: {e}", p.display()))
        };
        let builtin: BTreeSet<String> = read("modules.builtin")?.lines().map(module_name).collect();
        let mut deps: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
        for line in read("modules.dep")?.lines() {
            let Some((file, needs)) = line.split_once(':') else { continue };
            deps.insert(module_name(file), (file.to_string(), needs.split_whitespace().map(module_name).collect()));
        }
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        for name in names {
            self.visit(&module_name(name), &deps, &builtin, &mut seen, &mut order)?;
        }
        Ok(order)
    }

    fn visit(
        &self,
        name: &str,
        deps: &BTreeMap<String, (String, Vec<String>)>,
        builtin: &BTreeSet<String>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<PathBuf>,
    ) -> Result<(), String> {
        if builtin.contains(name) || !seen.insert(name.to_string()) {
            return Ok(());
        }
        let Some((file, needs)) = deps.get(name) else {
            return Err(format!("kernel {} has no module {name} (neither in modules.dep nor built in)", self.version));
        };
        for d in needs {
            self.visit(d, deps, builtin, seen, order)?;
        }
        order.push(self.modules.join(file));
        Ok(())
    }
}

/// `kernel/fs/overlayfs/overlay.ko.xz` -> `overlay`; `virtio-blk` -> `virtio_blk`.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split('.').next().unwrap_or(file).replace('-', "_")
}

/// Orders `6.1.0-9-amd64` before `6.1.0-57-amd64`.
fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).map(|p| p.parse().unwrap_or(u64::MAX)).collect()
}

/// A `newc` cpio archive, the format the kernel unpacks as its initramfs.
/// Parent directories are added as needed.
pub struct Initramfs {
    out: Vec<u8>,
    dirs: BTreeSet<String>,
    files: BTreeSet<String>,
    next_ino: u32,
}

impl Default for Initramfs {
    fn default() -> Self {
        Self::new()
    }
}

impl Initramfs {
    pub fn new() -> Initramfs {
        let mut i = Initramfs { out: Vec::new(), dirs: BTreeSet::new(), files: BTreeSet::new(), next_ino: 1 };
        // The kernel opens /dev/console for PID 1's stdio.
        i.node("/dev/console", libc::S_IFCHR | 0o600, &[], (5, 1));
        i
    }

    pub fn dir(&mut self, path: &str, mode: u32) {
        let path = path.trim_matches('/');
        if !self.dirs.contains(path) {
            self.node(path, libc::S_IFDIR | mode, &[], (0, 0));
        }
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.node(path, libc::S_IFREG | mode, data, (0, 0));
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.node(path, libc::S_IFLNK | 0o777, target.as_bytes(), (0, 0));
    }

    /// A dynamically linked program with the shared libraries `ldd` says it
    /// loads (each at the path ldd names, so the loader finds them), its
    /// debug information left out (`objcopy --strip-debug`, through a copy
    /// in `scratch`): the debug builds are 130+ MB each, 14-18 MB without.
    pub fn program(&mut self, binary: &Path, guest: &str, scratch: &Path) -> Result<(), String> {
        let stripped = scratch.join(binary.file_name().ok_or_else(|| format!("{}: not a file name", binary.display()))?);
        run(Command::new("objcopy").arg("--strip-debug").arg(binary).arg(&stripped))?;
        let data = std::fs::read(&stripped).map_err(|e| format!("read {}: {e}", stripped.display()))?;
        let _ = std::fs::remove_file(&stripped);
        self.file(guest, 0o755, &data);
        for lib in shared_libraries(binary)? {
            let guest_path = lib.to_string_lossy().to_string();
            // Programs share libraries: add each once.
            if self.files.contains(guest_path.trim_start_matches('/')) {
                continue;
            }
            let data = std::fs::read(&lib).map_err(|e| format!("read {}: {e}", lib.display()))?;
            self.file(&guest_path, 0o755, &data);
        }
        Ok(())
    }

    /// The kernel modules `names` (and their dependencies), decompressed,
    /// under `/lib/modules/`, and the file `/lib/modules/load-order`: one
    /// path a line, the order in which the guest must `insmod` them.
    pub fn modules(&mut self, kernel: &Kernel, names: &[&str]) -> Result<Vec<String>, String> {
        let mut order = Vec::new();
        for m in kernel.modules_in_load_order(names)? {
            let raw = std::fs::read(&m).map_err(|e| format!("read {}: {e}", m.display()))?;
            let name = m.file_name().unwrap_or_default().to_string_lossy().to_string();
            let (base, data) = decompress_module(&name, raw)?;
            let guest = format!("/lib/modules/{base}");
            self.file(&guest, 0o644, &data);
            order.push(guest);
        }
        let list: String = order.iter().map(|p| format!("{p}\n")).collect();
        self.file("/lib/modules/load-order", 0o644, list.as_bytes());
        Ok(order)
    }

    /// The archive, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        self.out
    }

    fn node(&mut self, path: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        let path = path.trim_start_matches('/');
        let mut parent = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            parent = if parent.is_empty() { part.to_string() } else { format!("{parent}/{part}") };
            if self.dirs.insert(parent.clone()) {
                self.entry(&parent, libc::S_IFDIR | 0o755, &[], (0, 0));
            }
        }
        let set = if mode & libc::S_IFMT == libc::S_IFDIR { &mut self.dirs } else { &mut self.files };
        if !set.insert(path.to_string()) {
            panic!("initramfs: {path} added twice");
        }
        self.entry(path, mode, data, rdev);
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if mode & libc::S_IFMT == libc::S_IFDIR { 2 } else { 1 };
        // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
        // devminor, rdevmajor, rdevminor, namesize (with its NUL), check.
        let fields = [ino, mode, 0, 0, nlink, 0, data.len() as u32, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        let n = self.out.len().next_multiple_of(4);
        self.out.resize(n, 0);
    }
}

/// `overlay.ko.xz` -> (`overlay.ko`, its bytes): busybox insmod takes plain modules.
fn decompress_module(name: &str, raw: Vec<u8>) -> Result<(String, Vec<u8>), String> {
    let fail = |e: std::io::Error| format!("decompress kernel module {name}: {e}");
    let mut out = Vec::new();
    if let Some(base) = name.strip_suffix(".xz") {
        xz2::read::XzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(fail)?;
        Ok((base.to_string(), out))
    } else if let Some(base) = name.strip_suffix(".zst") {
        Ok((base.to_string(), zstd::decode_all(&raw[..]).map_err(fail)?))
    } else if let Some(base) = name.strip_suffix(".gz") {
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(fail)?;
        Ok((base.to_string(), out))
    } else {
        Ok((name.to_string(), raw))
    }
}

/// The shared libraries (and the loader) `ldd` lists for `binary`.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("ldd").arg(binary).output().map_err(|e| format!("run ldd {}: {e}", binary.display()))?;
    if !out.status.success() {
        // "not a dynamic executable": nothing to add.
        return Ok(Vec::new());
    }
    let mut libs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x...)`; the vDSO has no file.
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        match path {
            Some(p) if p.starts_with('/') => libs.push(PathBuf::from(p)),
            Some("not") => return Err(format!("ldd {}: a library is missing: {line}", binary.display())),
            _ => {}
        }
    }
    Ok(libs)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("run {shown}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr)))
    }
}

/// How to boot a guest.
#[derive(Debug, Clone)]
pub struct Boot {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The kernel command line; `console=ttyS0 panic=-1` come first.
    pub cmdline: String,
    pub memory_mib: u32,
    /// Raw disk images attached read-only as virtio disks (`/dev/vda`...).
    pub disks: Vec<PathBuf>,
    /// Where qemu writes what the guest sends to `/dev/ttyS1`.
    pub results: PathBuf,
}

/// A running qemu, killed (and reaped) on drop.
pub struct Vm {
    child: Option<Child>,
    console: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    results: PathBuf,
    started: Instant,
}

/// What a guest left behind when it stopped.
#[derive(Debug)]
pub struct Ended {
    /// Everything on the console (kernel messages and the guest's output).
    pub console: String,
    /// What the guest wrote to its second serial port.
    pub results: String,
    /// False when the time limit ran out and qemu was killed.
    pub powered_off: bool,
    pub elapsed: Duration,
}

impl Ended {
    /// The console's last `n` lines, for failure messages.
    pub fn console_tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.console.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Vm {
    pub fn start(qemu: &Path, boot: &Boot) -> Result<Vm, String> {
        let accel = std::env::var(ACCEL_ENV).unwrap_or_else(|_| "tcg".to_string());
        let mut cmd = Command::new(qemu);
        cmd.args(["-accel", &accel, "-cpu", "max", "-smp", "1", "-m", &boot.memory_mib.to_string()])
            // No default devices (VGA, NIC, drives), no configuration files,
            // and no reboot: the guest's poweroff or panic ends qemu.
            .args(["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"])
            .args(["-serial", "stdio"])
            .arg("-serial")
            .arg(format!("file:{}", boot.results.display()))
            .arg("-kernel")
            .arg(&boot.kernel)
            .arg("-initrd")
            .arg(&boot.initrd)
            .arg("-append")
            .arg(format!("console=ttyS0 panic=-1 {}", boot.cmdline));
        for d in &boot.disks {
            cmd.arg("-drive").arg(format!("file={},format=raw,if=virtio,readonly=on", d.display()));
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // Should the test process die without dropping us (killed by a
        // harness timeout), qemu goes with it rather than run on.
        // SAFETY: prctl only, between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| match libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            });
        }
        let mut child = cmd.spawn().map_err(|e| format!("start {}: {e}", qemu.display()))?;
        let console = Arc::new(Mutex::new(String::new()));
        // The console, and qemu's own complaints (usually nothing), each in
        // a thread of its own so that neither pipe fills up.
        let (stdout, stderr) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
        let c = console.clone();
        let console_reader = std::thread::spawn(move || copy_lines(stdout, &c, "guest: "));
        let c = console.clone();
        let qemu_reader = std::thread::spawn(move || copy_lines(stderr, &c, "qemu: "));
        let readers = vec![console_reader, qemu_reader];
        Ok(Vm { child: Some(child), console, readers, results: boot.results.clone(), started: Instant::now() })
    }

    /// Wait until the guest powers off (or panics, which reboots, which
    /// `-no-reboot` turns into an exit), at most `limit`; qemu is killed
    /// when the limit runs out.
    pub fn wait(mut self, limit: Duration) -> Ended {
        let mut child = self.child.take().expect("waited once");
        let powered_off = loop {
            match child.try_wait() {
                Ok(Some(_)) => break true,
                Ok(None) if self.started.elapsed() >= limit => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break false;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(200)),
                Err(e) => panic!("wait for qemu: {e}"),
            }
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let console = self.console.lock().unwrap().clone();
        let results = std::fs::read_to_string(&self.results).unwrap_or_default();
        Ended { console, results, powered_off, elapsed: self.started.elapsed() }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Copy lines into `log`, and to stderr (shown with `--nocapture` or when
/// the test fails).
fn copy_lines(from: impl Read, log: &Mutex<String>, prefix: &str) {
    for line in BufReader::new(from).split(b'\n').map_while(Result::ok) {
        let line = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
        eprintln!("{prefix}{line}");
        let mut l = log.lock().unwrap();
        l.push_str(&line);
        l.push('\n');
    }
}

/// `RESULT NAME VALUE` lines (the rest of the line is the value) into a
/// map; any other line is ignored. A name reported twice is an error.
pub fn parse_results(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(|l| l.trim_end_matches('\r')) {
        let Some(rest) = line.strip_prefix("RESULT ") else { continue };
        let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
        if out.insert(name.to_string(), value.trim().to_string()).is_some() {
            return Err(format!("the guest reported {name} twice"));
        }
    }
    Ok(out)
}
