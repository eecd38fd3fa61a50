//! The container's process: exit statuses, signals, environment, working
//! directory, users and groups, the container record, the terminal.

mod run_common;
use run_common::*;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn exit_statuses_pass_through() {
    let Some(b) = setup("containers") else { return };
    assert_eq!(code(&b.run(&["--rm"], &["true"])), 0);
    assert_eq!(code(&b.run(&["--rm"], &["sh", "-c", "exit 3"])), 3);
    let nf = b.run(&["--rm"], &["pytohn"]);
    assert_eq!(code(&nf), 127);
    assert!(text(&nf.stderr).contains("ci-run: error: \"pytohn\": executable file not found in $PATH"), "{}", text(&nf.stderr));
    let nf = b.run(&["--rm"], &["/no/such"]);
    assert_eq!(code(&nf), 127, "{}", text(&nf.stderr));
    assert!(text(&nf.stderr).contains("no such file or directory"));
    let ne = b.run(&["--rm"], &["/etc/passwd"]);
    assert_eq!(code(&ne), 126);
    assert!(text(&ne.stderr).contains("permission denied"), "{}", text(&ne.stderr));
    let dir = b.run(&["--rm"], &["/etc"]);
    assert_eq!(code(&dir), 126);
    // Killed by SIGKILL (from outside: PID 1 cannot be killed from inside its own namespace).
    let mut child = Running(b.command(&b.rootfs, &["--rm"], &["sh", "-c", "echo up; exec sleep 100"]).stdout(Stdio::piped()).spawn().unwrap());
    let mut line = String::new();
    BufReader::new(child.0.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let state: serde_json::Value = serde_json::from_slice(&wait_for_file(&ci_core::runtime::state::run_dir(&b.containers()[0]).join("state.json"))).unwrap();
    unsafe { libc::kill(state["pid"].as_i64().unwrap() as i32, libc::SIGKILL) };
    assert_eq!(child.0.wait().unwrap().code(), Some(137));
    let bad = b.run(&["--rm", "--user", "nosuchuser"], &["true"]);
    assert_eq!(code(&bad), 125);
    assert!(text(&bad.stderr).contains("unable to find user nosuchuser"), "{}", text(&bad.stderr));
    assert!(b.containers().is_empty());
}

/// SIGTERM, SIGINT and SIGHUP sent to ci-run reach the container's PID 1.
#[test]
fn signals_are_forwarded_to_pid_1() {
    let Some(b) = setup("containers") else { return };
    for (sig, exit) in [(libc::SIGTERM, 42), (libc::SIGINT, 43), (libc::SIGHUP, 44), (libc::SIGUSR1, 45)] {
        let name = match sig {
            libc::SIGTERM => "TERM",
            libc::SIGINT => "INT",
            libc::SIGHUP => "HUP",
            _ => "USR1",
        };
        let script = format!("trap 'exit {exit}' {name}; echo ready; while :; do sleep 0.05; done");
        let mut child = Running(b.command(&b.rootfs, &["--rm"], &["sh", "-c", &script]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
        let mut line = String::new();
        BufReader::new(child.0.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        unsafe { libc::kill(child.0.id() as i32, sig) };
        let status = child.0.wait().unwrap();
        assert_eq!(status.code(), Some(exit), "SIG{name}");
    }
    assert!(b.containers().is_empty());
}

#[test]
fn environment_as_docker_builds_it() {
    let Some(b) = setup("containers") else { return };
    let envfile = b.root.path().join("env.list");
    std::fs::write(&envfile, "# comment\nFROM_FILE=yes\n\nOVERRIDE=file\n").unwrap();
    let mut c = b.command(&b.rootfs, &["--rm", "--hostname", "hh", "-e", "A=1", "-e", "PASSED", "-e", "UNSET_HERE", "--env-file", envfile.to_str().unwrap(), "-e", "OVERRIDE=flag"], &["env"]);
    c.env("PASSED", "from-host").env_remove("UNSET_HERE");
    let out = c.output().unwrap();
    let env = text(&out.stdout);
    for want in ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=hh", "A=1", "PASSED=from-host", "FROM_FILE=yes", "OVERRIDE=flag", "HOME=/root"] {
        assert!(env.lines().any(|l| l == want), "{want} in:\n{env}");
    }
    assert!(!env.contains("UNSET_HERE") && !env.contains("TERM="), "{env}");
    // Another user's HOME comes from its passwd entry.
    assert!(b.sh(&["-u", "daemon"], "echo $HOME").trim() == "/usr/sbin");
}

#[test]
fn working_directory_is_created_inside_the_root() {
    let Some(b) = setup("containers") else { return };
    assert_eq!(b.sh(&["-w", "/new/dir"], "pwd").trim(), "/new/dir");
    let bad = b.run(&["--rm", "-w", "relative"], &["pwd"]);
    assert_eq!(code(&bad), 125);
    // CVE-2026-55686: /app -> a host directory; -w /app/sub is made inside the rootfs.
    let sentinel = b.root.path().join("host-sentinel");
    std::fs::create_dir(&sentinel).unwrap();
    let r = b.variant("rootfs-app");
    std::os::unix::fs::symlink(&sentinel, r.join("app")).unwrap();
    let out = b.run_in(&r, &["--rm", "-w", "/app/sub"], &["pwd"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_dir(&sentinel).unwrap().count(), 0, "nothing created in the host directory");
}

#[test]
fn users_by_name_and_number_and_the_groups_matrix() {
    let Some(b) = setup("containers") else { return };
    let id = |flags: &[&str]| b.sh(flags, "id").trim().to_string();
    // containerd's matrix for CVE-2023-25173 (busybox /etc/group), as docker prints it.
    assert_eq!(id(&[]), "uid=0(root) gid=0(root) groups=0(root),10(wheel)");
    assert_eq!(id(&["--group-add", "1", "--group-add", "1234"]), "uid=0(root) gid=0(root) groups=0(root),1(daemon),10(wheel),1234");
    assert_eq!(id(&["--user", "1234"]), "uid=1234 gid=0(root) groups=0(root)");
    assert_eq!(id(&["--user", "1234:1234"]), "uid=1234 gid=1234 groups=1234");
    assert_eq!(id(&["--user", "1234", "--group-add", "1234"]), "uid=1234 gid=0(root) groups=0(root),1234");
    assert_eq!(id(&["--user", "daemon"]), "uid=1(daemon) gid=1(daemon) groups=1(daemon)");
    assert_eq!(id(&["--user", "daemon", "--group-add", "1234"]), "uid=1(daemon) gid=1(daemon) groups=1(daemon),1234");
    assert_eq!(id(&["--user", "nobody:tty"]), "uid=65534(nobody) gid=5(tty) groups=5(tty)");
}

/// CVE-2016-3697, CVE-2024-40635, CVE-2026-46680, CVE-2024-9676.
#[test]
fn hostile_users_never_become_root() {
    let Some(b) = setup("containers") else { return };
    let r = b.variant("rootfs-1234");
    let mut pw = std::fs::read_to_string(r.join("etc/passwd")).unwrap();
    pw.push_str("1234:x:0:0:evil:/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n");
    std::fs::write(r.join("etc/passwd"), pw).unwrap();
    assert_eq!(text(&b.run_in(&r, &["--rm", "--user", "1234"], &["id", "-u"]).stdout).trim(), "1234");
    for bad in ["2147483648", "4294967296:0", "99999999999999999999", "-1"] {
        let out = b.run_in(&r, &["--rm", "--user", bad], &["id", "-u"]);
        assert_eq!(code(&out), 125, "--user {bad}: {}", text(&out.stdout));
        assert!(text(&out.stderr).contains("out of range"), "{}", text(&out.stderr));
    }
    // /etc/passwd -> /dev/zero: a clear error, fast.
    let z = b.variant("rootfs-zero");
    std::fs::remove_file(z.join("etc/passwd")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", z.join("etc/passwd")).unwrap();
    let t = Instant::now();
    let out = b.run_in(&z, &["--rm", "--user", "app"], &["true"]);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(code(&out), 125);
    assert!(text(&out.stderr).contains("/etc/passwd") && text(&out.stderr).contains("character device"), "{}", text(&out.stderr));
    // Entries whose ids overflow 32 or 31 bits are not users (never wrapped to 0).
    let o = b.variant("rootfs-overflow");
    let mut pw = std::fs::read_to_string(o.join("etc/passwd")).unwrap();
    pw.push_str("big:x:4294967296:0::/:/bin/sh
biggid:x:1000:4294967296::/:/bin/sh
half:x:2147483648:0::/:/bin/sh
");
    std::fs::write(o.join("etc/passwd"), pw).unwrap();
    for user in ["big", "biggid", "half"] {
        let out = b.run_in(&o, &["--rm", "--user", user], &["id", "-u"]);
        assert_eq!(code(&out), 125, "--user {user}: {}", text(&out.stdout));
        assert!(text(&out.stderr).contains(&format!("unable to find user {user}")), "{}", text(&out.stderr));
    }
    // /etc/passwd leading to a host file, absolutely or by climbing with ..: resolved
    // inside the root, where it does not exist. Were the host file read, app would be root.
    let host = b.root.path().join("host-passwd");
    std::fs::write(&host, "app:x:0:0:host:/:/bin/sh\n").unwrap();
    let climb = format!("{}{}", "../".repeat(16), host.to_str().unwrap().trim_start_matches('/'));
    for (name, to) in [("abs", host.to_str().unwrap().to_string()), ("climb", climb), ("shadow", "../../../../../etc/shadow".to_string())] {
        let l = b.variant(&format!("rootfs-passwd-{name}"));
        std::fs::remove_file(l.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink(&to, l.join("etc/passwd")).unwrap();
        let out = b.run_in(&l, &["--rm", "--user", "app"], &["id", "-u"]);
        assert_eq!(code(&out), 125, "/etc/passwd -> {to}: {}", text(&out.stdout));
        assert!(text(&out.stderr).contains("unable to find user app"), "/etc/passwd -> {to}: {}", text(&out.stderr));
    }
    // A 2 GiB /etc/passwd: refused at once, without reading it. ci-run runs
    // under a 256 MiB address-space limit (it needs about 14 MiB): reading
    // the file would fail its allocation and abort instead.
    let big = b.variant("rootfs-passwd-big");
    std::fs::File::options().write(true).open(big.join("etc/passwd")).unwrap().set_len(2 << 30).unwrap();
    let mut c = b.command(&big, &["--rm", "--user", "app"], &["true"]);
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit in the child before exec.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: 256 << 20, rlim_max: 256 << 20 };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let t = Instant::now();
    let out = c.output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "refused at once, took {:?}", t.elapsed());
    assert_eq!(code(&out), 125, "{:?} {}", out.status, text(&out.stderr));
    assert!(text(&out.stderr).contains("/etc/passwd") && text(&out.stderr).contains("refusing to read more than"), "{}", text(&out.stderr));
}

#[test]
fn the_container_record() {
    let Some(b) = setup("containers") else { return };
    let out = b.run(&["--name", "keeper", "-l", "team=a"], &["sh", "-c", "exit 4"]);
    assert_eq!(code(&out), 4);
    let dirs = b.containers();
    assert_eq!(dirs.len(), 1);
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(dirs[0].join("container.json")).unwrap()).unwrap();
    assert_eq!(rec["kind"], "container");
    assert_eq!(rec["name"], "keeper");
    assert_eq!(rec["state"], "exited");
    assert_eq!(rec["exit_code"], 4);
    assert_eq!(rec["labels"]["team"], "a");
    assert_eq!(rec["id"].as_str().unwrap().len(), 64);
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(dirs[0].join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["args"], serde_json::json!(["sh", "-c", "exit 4"]));
    assert_eq!(spec["process"]["user"]["additionalGids"], serde_json::json!([0, 10]));
    assert!(spec["linux"]["seccomp"]["syscalls"].as_array().unwrap().len() > 5);
    assert!(!ci_core::runtime::state::run_dir(&dirs[0]).join("state.json").exists(), "no live process state after exit");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&dirs[0]).unwrap().permissions().mode() & 0o777, 0o700);
    // Names are unique.
    let clash = b.run(&["--name", "keeper"], &["true"]);
    assert_eq!(code(&clash), 125);
    assert!(text(&clash.stderr).contains("\"keeper\" is already in use"), "{}", text(&clash.stderr));
    let bad = b.run(&["--name", "no/slash"], &["true"]);
    assert_eq!(code(&bad), 125);
    assert_eq!(b.containers().len(), 1);
}

/// CVE-2019-5736: the container can run /proc/self/exe, but what it runs is
/// a read-only copy of ci-run, and the binary on the host is unchanged.
#[test]
fn proc_self_exe_cannot_reach_the_host_binary() {
    let Some(b) = setup("containers") else { return };
    let bin = tool_path("ci-run");
    let before = std::fs::read(&bin).unwrap();
    // Give the rootfs ci-run's shared libraries, so the container really can run it.
    let r = b.variant("rootfs-exe");
    let ldd = std::process::Command::new("ldd").arg(&bin).output().unwrap();
    for lib in text(&ldd.stdout).split_whitespace().filter(|w| w.starts_with('/')) {
        let dest = r.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(lib, &dest).unwrap();
    }
    let out = b.run_in(&r, &["--rm"], &["/proc/self/exe", "--version"]);
    assert!(text(&out.stdout).contains("ci-run"), "the container ran ci-run: {} {}", text(&out.stdout), text(&out.stderr));
    // A script whose interpreter is /proc/self/exe, and a write attempt from inside.
    std::fs::write(r.join("bin/evil"), "#!/proc/self/exe\n").unwrap();
    std::fs::set_permissions(r.join("bin/evil"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let _ = b.run_in(&r, &["--rm"], &["/bin/evil"]);
    let out = b.run_in(&r, &["--rm"], &["sh", "-c", "for p in /proc/[0-9]*; do readlink $p/exe; echo x >> $p/exe 2>/dev/null && echo WROTE $p; done"]);
    assert!(!text(&out.stdout).contains("WROTE"), "{}", text(&out.stdout));
    // While a container runs, ci-run's own binary is not writable through /proc/PID/exe.
    let mut child = Running(b.command(&b.rootfs, &["--rm", "-i"], &["sh", "-c", "echo up; read x"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap());
    let mut line = String::new();
    BufReader::new(child.0.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    // The attack: hold the running binary open, wait until it exits (no more
    // ETXTBSY), then reopen it for writing through the held descriptor.
    let exe = format!("/proc/{}/exe", child.0.id());
    let held = std::fs::File::open(&exe).unwrap();
    let st = nix::sys::statvfs::fstatvfs(&held).unwrap();
    assert!(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY), "ci-run runs from a read-only mount");
    drop(child.0.stdin.take());
    child.0.wait().unwrap();
    let again = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&held));
    // Other tests may be running ci-run at this moment (the same inode: ETXTBSY
    // comes first); the lasting refusal is EROFS. Never may it open.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let err = std::fs::OpenOptions::new().write(true).open(&again).expect_err("ci-run's binary opened for writing from a container's view");
        match err.raw_os_error() {
            Some(libc::EROFS) => break,
            Some(libc::ETXTBSY) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => panic!("reopening ci-run for writing: {err}"),
        }
    }
    assert_eq!(std::fs::read(&bin).unwrap(), before, "ci-run on the host is unchanged");
}

/// `ci-run -it` driven from a real pty of the test's own (its slave is
/// ci-run's stdio and controlling terminal). It proves:
/// - ci-run puts the outer terminal in raw mode while the container runs,
///   and restores it after;
/// - the container has a pty of its own (from its devpts, also its
///   /dev/console) in cooked mode, with the outer window size;
/// - a later window-size change reaches it, and the container sees SIGWINCH;
/// - a typed line is echoed once: by the container's pty, not also by ours;
/// - Ctrl-C becomes SIGINT from the container's line discipline: it reaches
///   a child in the container's foreground process group, which a signal
///   forwarded by ci-run (to PID 1 only) never does.
#[test]
fn terminal_raw_mode_window_size_echo_and_ctrl_c() {
    use nix::sys::termios::{tcgetattr, LocalFlags};
    let Some(b) = setup("containers") else { return };
    let script = r#"trap 'echo "winch:$(stty size)"' WINCH
echo "size:$(stty size)"
echo "tty:$(tty) console:$(stat -L -c '%F %t:%T' /dev/console) fd0:$(stat -L -c '%t:%T' /proc/self/fd/0)"
for f in $(stty -a); do case "$f" in icanon|-icanon|isig|-isig|echo|-echo) echo "mode:$f";; esac; done
echo ready
while [ "$(stty size)" != "50 132" ]; do sleep 0.05; done
read line
echo "got:${#line}"
exit 5"#;
    let mut t = PtySession::start(&b, script, (37, 101));
    t.wait_for("ready");
    let lflags = tcgetattr(&t.master).unwrap().local_flags;
    assert!(!lflags.intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG), "ci-run put its terminal in raw mode: {lflags:?}");
    assert!(t.seen().contains("size:37 101"), "the container's pty has the outer window size: {:?}", t.seen());
    for want in ["tty:/dev/pts/0 ", "console:character special file 88:0 fd0:88:0", "mode:icanon", "mode:isig", "mode:echo"] {
        assert!(t.seen().contains(want), "{want:?} in {:?}", t.seen());
    }
    // A window-size change on our pty: ci-run gets SIGWINCH, passes the size on, and the container gets SIGWINCH.
    t.resize(50, 132);
    t.wait_for("winch:50 132");
    t.type_keys(b"typed-xyz\r");
    t.wait_for("got:9");
    let (seen, code) = t.finish();
    assert!(!seen.contains("winch:37 101"), "the size was set before the command started, not changed under it: {seen:?}");
    assert_eq!(seen.matches("typed-xyz").count(), 1, "the typed line is echoed exactly once: {seen:?}");
    assert_eq!(code, 5, "{seen:?}");
    // Ctrl-C: the container's child (not PID 1) traps SIGINT; PID 1 reports how it ended.
    // (PID 1 traps it too, as shells otherwise exit on SIGINT once their child is done.)
    let script = r#"trap 'echo pid1-int' INT; sh -c 'trap "echo child-int; exit 7" INT; echo ready; while :; do sleep 0.05; done'; echo "after:$?"; exit 9"#;
    let mut t = PtySession::start(&b, script, (24, 80));
    t.wait_for("ready");
    t.type_keys(b"\x03");
    t.wait_for("after:7");
    let (seen, code) = t.finish();
    assert!(seen.contains("child-int") && seen.contains("pid1-int"), "the whole foreground process group got SIGINT: {seen:?}");
    assert_eq!(code, 9, "{seen:?}");
    assert!(b.containers().is_empty());
}

/// `ci-run --rm -it SCRIPT` on a new pty of the test (window size `rows` x `cols`).
struct PtySession(ci_tests::pty::Session);

impl PtySession {
    fn start(b: &Bench, script: &str, size: (u16, u16)) -> PtySession {
        PtySession(ci_tests::pty::Session::spawn(b.command(&b.rootfs, &["--rm", "-it"], &["sh", "-c", script]), size, ci_tests::pty::ALL))
    }

    /// Wait for ci-run to exit; everything the terminal showed, and the exit status.
    fn finish(mut self) -> (String, i32) {
        let status = self.0.finish().status;
        let lflags = nix::sys::termios::tcgetattr(&self.0.master).unwrap().local_flags;
        use nix::sys::termios::LocalFlags;
        assert!(lflags.contains(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG), "ci-run restored its terminal: {lflags:?}");
        (self.0.seen(), status.code().unwrap_or(-1))
    }
}

impl std::ops::Deref for PtySession {
    type Target = ci_tests::pty::Session;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for PtySession {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}
