//! `ci-run exec`: the same namespaces, cgroup and confinement as the
//! container's PID 1; exit statuses; working directories resolved inside;
//! and the runc CVEs of exec (5736, 9962, 21626) and of shims (15257).

mod lifecycle_common;
use lifecycle_common::*;

use std::process::Stdio;

fn running(lab: &Lab, name: &str) -> String {
    let o = lab.run_d(&["--name", name], &["sh", "-c", "echo marker > /tmp/marker; exec sleep 1000"]);
    wait_until("the marker", || lab.ci(&["exec", name, "test", "-f", "/tmp/marker"]).status.success());
    o["id"].as_str().unwrap().to_string()
}

#[test]
fn exec_joins_every_namespace_the_cgroup_and_the_confinement() {
    let Some(lab) = Lab::new("containers") else { return };
    running(&lab, "box");
    // The same files, PID namespace and hostname.
    assert_eq!(lab.ok(&["exec", "box", "cat", "/tmp/marker"]), "marker\n");
    assert_eq!(lab.ok(&["exec", "box", "cat", "/proc/1/cmdline"]), "sleep\u{0}1000\u{0}");
    let id = lab.inspect("box")["id"].as_str().unwrap().to_string();
    assert_eq!(lab.ok(&["exec", "box", "hostname"]).trim(), &id[..12]);
    // Every namespace of PID 1 (compared from inside: same inode numbers).
    let ns = lab.ok(&["exec", "box", "sh", "-c", "for n in mnt pid uts ipc net cgroup; do a=$(readlink /proc/1/ns/$n); b=$(readlink /proc/self/ns/$n); [ \"$a\" = \"$b\" ] && echo same $n || echo DIFFERENT $n $a $b; done"]);
    assert_eq!(ns.matches("same").count(), 6, "{ns}");
    // The same cgroup, capabilities, seccomp and no_new_privs.
    let both = |file: &str, field: &str| -> (String, String) {
        let script = format!("grep '^{field}' /proc/1/{file}; grep '^{field}' /proc/self/{file}");
        let out = lab.ok(&["exec", "box", "sh", "-c", &script]);
        let mut l = out.lines();
        (l.next().unwrap_or("").to_string(), l.next().unwrap_or("").to_string())
    };
    for field in ["CapEff", "CapBnd", "CapInh", "NoNewPrivs", "Seccomp:"] {
        let (pid1, me) = both("status", field);
        assert_eq!(pid1, me, "{field}");
        assert!(!me.is_empty());
    }
    assert_eq!(both("status", "Seccomp:").1, "Seccomp:\t2");
    assert_eq!(both("status", "CapInh").1, "CapInh:\t0000000000000000");
    let cg = lab.ok(&["exec", "box", "sh", "-c", "cat /proc/1/cgroup; echo ---; cat /proc/self/cgroup"]);
    let (a, b) = cg.split_once("---\n").unwrap();
    assert_eq!(a, b, "the same cgroup (seen from its cgroup namespace)");
    // From the host: the exec'd process is in the container's cgroup.
    let mut child = lab.cmd(&["exec", "box", "sleep", "1000"]).spawn().unwrap();
    wait_until("the exec'd sleep in the cgroup", || processes_in_cgroup(&id).len() == 2);
    child.kill().unwrap();
    child.wait().unwrap();
    // Exit statuses pass through; 127 and 126 as docker's.
    assert_eq!(code(&lab.ci(&["exec", "box", "sh", "-c", "exit 7"])), 7);
    let nf = lab.ci(&["exec", "box", "nosuchcmd"]);
    assert_eq!(code(&nf), 127);
    assert!(text(&nf.stderr).contains("executable file not found"), "{}", text(&nf.stderr));
    assert_eq!(code(&lab.ci(&["exec", "box", "/etc/passwd"])), 126);
    lab.ok(&["rm", "-f", "box"]);
}

#[test]
fn exec_user_env_workdir_stdin_tty_and_detach() {
    let Some(lab) = Lab::new("containers") else { return };
    running(&lab, "box");
    assert_eq!(lab.ok(&["exec", "-u", "nobody", "box", "id", "-u"]).trim(), "65534");
    assert_eq!(lab.ok(&["exec", "-u", "nobody", "box", "grep", "CapEff", "/proc/self/status"]).trim(), "CapEff:\t0000000000000000");
    assert_eq!(lab.ok(&["exec", "-e", "GREETING=hi", "box", "sh", "-c", "echo $GREETING $HOME $PATH"]).trim(), "hi /root /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    assert_eq!(lab.ok(&["exec", "-w", "/tmp", "box", "pwd"]).trim(), "/tmp");
    let out = lab.ci(&["exec", "-w", "/nonexistent", "box", "pwd"]);
    assert_eq!(code(&out), 126);
    assert!(text(&out.stderr).contains("no such directory"), "{}", text(&out.stderr));
    // -i: our stdin reaches it; without -i it reads /dev/null.
    let mut c = lab.cmd(&["exec", "-i", "box", "cat"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut c.stdin.take().unwrap(), b"through stdin\n").unwrap();
    assert_eq!(text(&c.wait_with_output().unwrap().stdout), "through stdin\n");
    assert_eq!(lab.ok(&["exec", "box", "cat"]), "");
    // -t: a terminal of the container's own devpts.
    let out = lab.ok(&["exec", "-t", "box", "tty"]);
    assert!(out.starts_with("/dev/pts/"), "{out:?}");
    // -d: in the background.
    lab.ok(&["exec", "-d", "box", "sh", "-c", "echo bg > /tmp/bg"]);
    wait_until("the background exec", || lab.ci(&["exec", "box", "cat", "/tmp/bg"]).stdout == b"bg\n");
    lab.ok(&["rm", "-f", "box"]);
    // Without no_new_privs the filter still applies (installed before the capabilities go).
    lab.run_d(&["--name", "nnp", "--security-opt", "no-new-privileges=false"], &["sleep", "1000"]);
    let st = lab.ok(&["exec", "nnp", "grep", "-E", "^(NoNewPrivs|Seccomp):", "/proc/self/status"]);
    assert_eq!(st, "NoNewPrivs:\t0\nSeccomp:\t2\n");
    lab.ok(&["rm", "-f", "nnp"]);
}

/// A foreground exec dies with its `ci-run exec`, also as another user
/// (the user switch clears the parent-death signal: it is set again after).
#[test]
fn exec_as_another_user_dies_with_ci_run() {
    let Some(lab) = Lab::new("containers") else { return };
    let id = running(&lab, "box");
    let pid1 = lab.inspect("box")["state"]["pid"].as_i64().unwrap() as i32;
    let mut child = lab.cmd(&["exec", "-u", "1000", "box", "sleep", "1001"]).spawn().unwrap();
    let mut sleeper = 0;
    wait_until("the exec'd sleep in the cgroup", || {
        sleeper = processes_in_cgroup(&id).into_iter().find(|p| *p != pid1).unwrap_or(0);
        sleeper != 0 && std::fs::read(format!("/proc/{sleeper}/cmdline")).unwrap_or_default() == b"sleep\x001001\x00"
    });
    let status = std::fs::read_to_string(format!("/proc/{sleeper}/status")).unwrap();
    assert!(status.lines().any(|l| l.starts_with("Uid:\t1000\t1000\t1000")), "{status}");
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    wait_until("the exec'd process (uid 1000) to die with ci-run exec", || zombie(sleeper));
    lab.ok(&["rm", "-f", "box"]);
}

/// CVE-2024-21626: a working directory through /proc/self/fd/N is refused,
/// and no descriptor of ci-run reaches the exec'd process.
#[test]
fn exec_workdir_through_proc_self_fd_and_descriptors() {
    let Some(lab) = Lab::new("containers") else { return };
    running(&lab, "box");
    let mut through_a_link = 0;
    for n in 3..40 {
        let w = format!("/proc/self/fd/{n}");
        let out = lab.ci(&["exec", "-w", &w, "box", "pwd"]);
        assert_eq!(code(&out), 126, "-w {w}: {} {}", text(&out.stdout), text(&out.stderr));
        // An open descriptor is a magic link: refused. A closed one does not exist.
        let err = text(&out.stderr);
        assert!(err.contains("symbolic link that leaves the container") || err.contains("no such directory"), "-w {w}: {err}");
        through_a_link += err.contains("symbolic link") as usize;
    }
    assert!(through_a_link > 0, "the open descriptors were tried and refused");
    // ci-run started with more descriptors open: the exec'd shell has 0, 1, 2 only.
    use std::os::unix::process::CommandExt;
    let host_dir = std::fs::File::open("/etc").unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&host_dir);
    let mut c = lab.cmd(&["exec", "box", "sh", "-c", "ls /proc/$$/fd; readlink /proc/$$/cwd"]);
    // SAFETY: dup2 in the child before exec.
    unsafe {
        c.pre_exec(move || {
            if libc::dup2(fd, 7) < 0 || libc::dup2(fd, 42) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    let fds: Vec<&str> = s.lines().take_while(|l| !l.starts_with('/')).collect();
    assert_eq!(fds, ["0", "1", "2"], "{s}");
    assert_eq!(s.lines().last(), Some("/"));
    lab.ok(&["rm", "-f", "box"]);
}

/// CVE-2016-9962 and the exec part of CVE-2019-5736: while `ci-run exec`
/// is inside the container but has not exec'd yet (held there by a
/// debug-build hook), a container process can neither read its
/// descriptors, environment, memory or root, nor open its executable for
/// writing; the ci binaries on the host stay as they were.
#[test]
fn a_joining_exec_cannot_be_reached_from_inside() {
    let Some(lab) = Lab::new("containers") else { return };
    running(&lab, "box");
    let bins: Vec<std::path::PathBuf> = ["ci-run", "ci-build"].iter().map(|t| tool_path(t)).collect();
    let before: Vec<String> = bins.iter().map(|b| sha256(b)).collect();
    let mut held = lab.cmd(&["exec", "box", "true"]).env("CI_DEBUG_EXEC_HOLD", "/tmp/go").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Find the held process from inside: the only one besides PID 1 and the prober.
    let probe = r#"for p in /proc/[0-9]*; do n=${p#/proc/}; [ "$n" = 1 ] && continue; [ "$n" = $$ ] && continue; [ "$(cat $p/comm 2>/dev/null)" = ci-run ] || continue; echo "held $n";
      for f in $p/fd/*; do [ -e "$f" ] || continue; readlink "$f" >/dev/null 2>&1 && echo "LINK $f"; cat "$f" </dev/null >/dev/null 2>&1 && echo "OPEN $f"; done;
      cat $p/environ >/dev/null 2>&1 && echo "ENVIRON"; readlink $p/exe >/dev/null 2>&1 && echo "EXE"; readlink $p/root >/dev/null 2>&1 && echo "ROOT"; readlink $p/cwd >/dev/null 2>&1 && echo "CWD";
      head -c 1 $p/mem >/dev/null 2>&1 && echo "MEM"; (echo x >> $p/exe) 2>/dev/null && echo "WROTE EXE"; (echo x > $p/exe) 2>/dev/null && echo "TRUNCATED EXE"; done; true"#;
    let mut report = String::new();
    wait_until("the held exec to be visible inside", || {
        report = lab.ok(&["exec", "box", "sh", "-c", probe]);
        report.contains("held ")
    });
    for bad in ["LINK", "OPEN", "ENVIRON", "EXE", "ROOT", "CWD", "MEM", "WROTE", "TRUNCATED"] {
        assert!(!report.contains(bad), "{bad} reachable:\n{report}");
    }
    lab.ok(&["exec", "box", "touch", "/tmp/go"]);
    let out = held.wait().unwrap();
    assert!(out.success(), "the held exec finishes normally");
    let after: Vec<String> = bins.iter().map(|b| sha256(b)).collect();
    assert_eq!(before, after, "the ci binaries are unchanged");
    // No /proc/*/exe visible inside resolves to a host path of ci.
    let exes = lab.ok(&["exec", "box", "sh", "-c", "for p in /proc/[0-9]*; do readlink $p/exe; done"]);
    assert!(!exes.contains("target/") && !exes.contains("ci-run"), "{exes}");
    lab.ok(&["rm", "-f", "box"]);
}

/// --explain shows the setns steps; CVE-2020-15257: the monitor's socket is
/// a path socket (never abstract), even seen from a host-network container.
#[test]
fn explain_shows_setns_and_no_abstract_socket() {
    let Some(lab) = Lab::new("containers") else { return };
    running(&lab, "box");
    let out = lab.ci(&["--explain", "exec", "box", "true"]);
    assert!(out.status.success());
    let err = text(&out.stderr);
    for step in ["pidfd", "setns(pidfd, CLONE_NEWPID)", "join the mnt namespace of PID 1: mnt:[", "nsenter --target", "--mount", "cgroup.procs", "PR_SET_DUMPABLE", "working directory", "seccomp", "execve true"] {
        assert!(err.contains(step), "{step:?} missing in:\n{err}");
    }
    let hostnet = lab.run_d(&["--network", "host", "--name", "hostnet"], &["sleep", "1000"]);
    let unix = lab.ok(&["exec", "hostnet", "cat", "/proc/net/unix"]);
    assert!(unix.contains("monitor.sock"), "the monitors' sockets are listed (host network namespace):\n{unix}");
    for l in unix.lines().filter(|l| l.contains("monitor") || l.contains("ci")) {
        assert!(!l.contains(" @"), "abstract socket: {l}");
    }
    let _ = hostnet;
    lab.ok(&["rm", "-f", "box", "hostnet"]);
}

/// CVE-2019-14271 / CVE-2022-1227: exec, top, stats and logs run nothing
/// from the container in host context (strace: the only execve of a path
/// is ci-run's own, plus the user's command once inside).
#[test]
fn helpers_execute_nothing_of_the_container() {
    let Some(lab) = Lab::new("containers") else { return };
    if std::process::Command::new("strace").arg("-V").output().is_err() {
        assert!(!ci_tests::strict(), "strace is needed for this test in CI");
        return;
    }
    running(&lab, "box");
    let trace = lab.root.path().join("trace");
    for verb in [&["top", "box"][..], &["stats", "--no-stream", "box"], &["logs", "box"], &["exec", "box", "true"], &["inspect", "box"], &["ps", "-a"]] {
        let out = std::process::Command::new("strace")
            .env("CIROOT", &lab.store)
            .stdin(Stdio::null())
            .args(["-f", "-qq", "-e", "trace=execve,execveat", "-o"])
            .arg(&trace)
            .arg(tool_path("ci-run"))
            .args(verb)
            .output()
            .unwrap();
        assert!(out.status.success(), "{verb:?}: {}", text(&out.stderr));
        let t = std::fs::read_to_string(&trace).unwrap();
        let execs: Vec<&str> = t.lines().filter(|l| l.contains("execve") && !l.contains("resumed") && !l.contains("= -1")).collect();
        for e in &execs {
            let own = e.contains(tool_path("ci-run").to_str().unwrap()) || e.contains("execveat(");
            let users = verb[0] == "exec" && e.contains("execve(\"/bin/true\"");
            assert!(own || users, "{verb:?} executed something else: {e}\n{t}");
        }
    }
    lab.ok(&["rm", "-f", "box"]);
}
