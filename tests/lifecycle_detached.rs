//! Detached containers under their monitor: -d, ps, logs (-f), stop, kill,
//! start, restart, wait, rm, rename, prune, restart policies.

mod lifecycle_common;
use lifecycle_common::*;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

#[test]
fn detached_container_shows_in_ps_logs_then_stops_and_goes() {
    let Some(lab) = Lab::new("containers") else { return };
    let o = lab.run_d(&["--name", "web"], &["sh", "-c", "echo out; echo err >&2; exec sleep 1000"]);
    assert_eq!(o["kind"], "container");
    assert_eq!(o["state"], "running");
    assert_eq!(o["name"], "web");
    assert_eq!(o["image"], "bb:1");
    let id = o["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 64);

    // ps lists it running, as docker would word it; ps -q prints the short id.
    let ps = json_lines(lab.ok(&["ps"]).as_bytes());
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0]["id"], id.as_str());
    assert!(ps[0]["status"].as_str().unwrap().starts_with("Up "), "{}", ps[0]);
    assert_eq!(lab.ok(&["ps", "-q"]).trim(), &id[..12]);
    let table = lab.ok(&["--format", "table", "ps", "--no-trunc"]);
    let header = table.lines().next().unwrap();
    for col in ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(table.contains(&id) && table.contains("\"sh -c echo out; echo err >&2; exec sleep 1000\""), "{table}");

    // Its output, split by stream.
    lab.wait_log("web", "err");
    let out = lab.ci(&["logs", "web"]);
    assert_eq!(text(&out.stdout), "out\n");
    assert_eq!(text(&out.stderr), "err\n");
    let with_time = lab.ok(&["logs", "-t", "web"]);
    assert!(with_time.starts_with("20") && with_time.contains("Z out"), "{with_time}");

    // The main process is the user's command, a child of the monitor.
    let info = lab.inspect("web");
    let pid = info["state"]["pid"].as_i64().unwrap();
    let monitor = info["state"]["monitor_pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.lines().any(|l| l == format!("PPid:\t{monitor}")), "{status}");
    assert_eq!(std::fs::read_to_string(format!("/proc/{monitor}/comm")).unwrap().trim(), "ci-monitor");
    assert!(std::path::Path::new(info["state_dir"].as_str().unwrap()).join("monitor.sock").exists());

    // stop: SIGTERM is ignored by a PID 1 without a handler, so SIGKILL after -t 1.
    let stopped = json_lines(lab.ok(&["stop", "-t", "1", "web"]).as_bytes());
    assert_eq!(stopped[0]["state"], "exited");
    assert_eq!(stopped[0]["exit_code"], 137);
    assert!(lab.ok(&["ps"]).trim().is_empty(), "not listed without -a");
    let all = lab.ps_all();
    assert!(all[0]["status"].as_str().unwrap().starts_with("Exited (137) "), "{}", all[0]);
    assert!(!std::path::Path::new(info["state_dir"].as_str().unwrap()).exists(), "run-time state gone with the monitor");
    assert!(processes_mentioning(&id).is_empty(), "the monitor exited");

    // Verbs on a container that is not running: an error, nothing changed.
    let record = std::fs::read(lab.containers_dir().join(&id).join("container.json")).unwrap();
    for verb in [&["stop", "web"][..], &["kill", "web"], &["kill", "-s", "HUP", "web"], &["top", "web"]] {
        let out = lab.ci(verb);
        assert_eq!(code(&out), 1, "{verb:?}");
        assert!(text(&out.stderr).contains("is not running"), "{verb:?}: {}", text(&out.stderr));
    }
    let out = lab.ci(&["exec", "web", "true"]);
    assert_eq!(code(&out), 125);
    assert!(text(&out.stderr).contains("is not running"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(lab.containers_dir().join(&id).join("container.json")).unwrap(), record, "the record is unchanged");

    lab.ok(&["rm", "web"]);
    assert!(lab.ps_all().is_empty());
    assert!(lab.ids().is_empty());
    assert!(cgroup_dirs(&id).is_empty());
    let out = lab.ci(&["rm", "web"]);
    assert_eq!(code(&out), 1);
    assert!(text(&out.stderr).contains("no such container: web"), "{}", text(&out.stderr));
}

/// The monitor is in a session of its own and has no controlling
/// terminal, even when `ci-run -d` runs in a session with one (here a pty
/// made its controlling terminal): /proc/PID/stat fields session and
/// tty_nr. It is not the session leader either, so it can never acquire one.
#[test]
fn the_monitor_has_its_own_session_and_no_terminal() {
    let Some(lab) = Lab::new("containers") else { return };
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = pty.slave.as_raw_fd();
    let mut cmd = lab.cmd(&["run", "-d", "--name", "alone", "bb:1", "sleep", "1000"]);
    // SAFETY: setsid, ioctl and dup2 between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(slave, libc::TIOCSCTTY, 0) < 0 || libc::dup2(slave, 0) < 0 || libc::dup2(slave, 1) < 0 || libc::dup2(slave, 2) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = cmd.stdin(Stdio::inherit()).stdout(Stdio::inherit()).stderr(Stdio::inherit()).status().unwrap();
    drop(pty.slave);
    let mut printed = vec![0u8; 4096];
    let n = nix::unistd::read(&pty.master, &mut printed).unwrap_or(0);
    assert!(status.success(), "ci-run -d on a terminal: {}", text(&printed[..n]));
    let info = lab.inspect("alone");
    let id = info["id"].as_str().unwrap();
    assert_eq!(text(&printed[..n]).trim(), id, "on a terminal -d prints the id");
    let stat = |pid: i64| -> Vec<i64> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // After "pid (comm) state": ppid pgrp session tty_nr.
        s.rsplit_once(')').unwrap().1.split_whitespace().skip(1).take(4).map(|f| f.parse().unwrap()).collect()
    };
    let monitor = info["state"]["monitor_pid"].as_i64().unwrap();
    let [_, pgrp, session, tty_nr] = stat(monitor)[..] else { panic!() };
    let me = stat(std::process::id() as i64);
    assert_eq!(tty_nr, 0, "the monitor has a controlling terminal");
    assert_ne!(session, me[2], "the monitor is in the test's session");
    assert_ne!(session, monitor, "the monitor leads its session (it could acquire a terminal)");
    assert_eq!(pgrp, session, "its process group is its session's");
    // Nor does its container have the terminal ci-run ran on.
    let pid1 = info["state"]["pid"].as_i64().unwrap();
    assert_eq!(stat(pid1)[3], 0);
    lab.ok(&["rm", "-f", "alone"]);
}

/// `--net` is `--network`, as in docker.
#[test]
fn net_is_an_alias_of_network() {
    let Some(lab) = Lab::new("containers") else { return };
    let pid = lab.run_d(&["--net", "host", "--name", "hostnet"], &["sleep", "1000"])["pid"].as_i64().unwrap();
    assert_eq!(lab.inspect("hostnet")["host_config"]["network_mode"], "host");
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap(), std::fs::read_link("/proc/self/ns/net").unwrap(), "the host's network namespace");
    let pid = lab.run_d(&["--net", "none", "--name", "nonet"], &["sleep", "1000"])["pid"].as_i64().unwrap();
    assert_eq!(lab.inspect("nonet")["host_config"]["network_mode"], "none");
    assert_ne!(std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap(), std::fs::read_link("/proc/self/ns/net").unwrap());
    let out = lab.ci(&["run", "--net", "bridge", "bb:1", "true"]);
    assert_ne!(code(&out), 0);
    assert!(text(&out.stderr).contains("'bridge'"), "{}", text(&out.stderr));
    lab.ok(&["rm", "-f", "hostnet", "nonet"]);
}

/// `logs -f` streams lines while the container runs, and ends when it does.
#[test]
fn logs_follow_streams_while_it_runs() {
    let Some(lab) = Lab::new("containers") else { return };
    lab.run_d(&["--name", "talker"], &["sh", "-c", "for i in 1 2 3; do echo line $i; done; while [ ! -f /tmp/go ]; do sleep 0.05; done; echo after go"]);
    let mut follow = lab.cmd(&["logs", "-f", "talker"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut reader = BufReader::new(follow.stdout.take().unwrap());
    let mut line = String::new();
    for i in 1..=3 {
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, format!("line {i}\n"));
    }
    // Still running: the next line comes only after we let it go on.
    assert_eq!(lab.state("talker"), "running");
    lab.ok(&["exec", "talker", "touch", "/tmp/go"]);
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "after go\n");
    // The container exits: the follower ends by itself.
    line.clear();
    assert_eq!(reader.read_line(&mut line).unwrap(), 0, "EOF, got {line:?}");
    assert!(follow.wait().unwrap().success());
    assert_eq!(lab.inspect("talker")["state"]["exit_code"], 0);
    // --tail and the stream of each record.
    assert_eq!(lab.ok(&["logs", "--tail", "2", "talker"]), "line 3\nafter go\n");
}

/// `--log-opt max-size=…/max-file=…` (docker's json-file options): files
/// are rotated at the size, only max-file of them are kept, and what is
/// left reads as one consecutive tail of the output.
#[test]
fn log_opts_cap_and_rotate_the_log() {
    let Some(lab) = Lab::new("containers") else { return };
    let script = "i=0; while [ $i -lt 500 ]; do i=$((i+1)); echo \"line $i\"; done; echo done; exec sleep 1000";
    let id = lab.run_d(&["--name", "rot", "--log-opt", "max-size=2k", "--log-opt", "max-file=3"], &["sh", "-c", script])["id"].as_str().unwrap().to_string();
    lab.wait_log("rot", "done");
    let info = lab.inspect("rot");
    assert_eq!(info["host_config"]["log_config"]["max_size"], 2048);
    assert_eq!(info["host_config"]["log_config"]["max_file"], 3);
    let dir = lab.containers_dir().join(&id);
    let mut files: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("json.log")).collect();
    files.sort();
    assert_eq!(files, ["json.log", "json.log.1", "json.log.2"], "max-file=3 keeps three files");
    for f in &files {
        let len = std::fs::metadata(dir.join(f)).unwrap().len();
        assert!(len > 0 && len <= 2048, "{f}: {len} bytes, over max-size=2k");
    }
    // 500 lines do not fit in 6 KiB: the oldest are gone, the rest is whole and in order.
    let out = lab.ok(&["logs", "rot"]);
    let mut lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.pop(), Some("done"));
    let nums: Vec<u32> = lines.iter().map(|l| l.strip_prefix("line ").unwrap_or_else(|| panic!("{l:?}")).parse().unwrap()).collect();
    assert_eq!(nums.last(), Some(&500));
    assert!(nums[0] > 1, "the oldest lines were rotated away");
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "a gap or a duplicate: {nums:?}");
    lab.ok(&["rm", "-f", "rot"]);
}

/// `logs -f` goes on across many rotations (a new json.log every ~50
/// lines) without losing or repeating a line, and ends with the container.
#[test]
fn logs_follow_across_rotations_loses_and_repeats_nothing() {
    let Some(lab) = Lab::new("containers") else { return };
    // ~3000 records of ~75 bytes: about 55 files of 4 KiB, all kept.
    let script = "echo ready; while [ ! -f /tmp/go ]; do sleep 0.05; done; i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo \"line $i\"; done";
    let id = lab.run_d(&["--name", "spinner", "--log-opt", "max-size=4k", "--log-opt", "max-file=100"], &["sh", "-c", script])["id"].as_str().unwrap().to_string();
    let mut follow = lab.cmd(&["logs", "-f", "spinner"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut reader = BufReader::new(follow.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    // The follower is following: now let it write.
    lab.ok(&["exec", "spinner", "touch", "/tmp/go"]);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    assert!(follow.wait().unwrap().success());
    let got: Vec<&str> = rest.lines().collect();
    let want: Vec<String> = (1..=3000).map(|i| format!("line {i}")).collect();
    if got != want {
        let first_bad = got.iter().zip(&want).position(|(g, w)| g != w).unwrap_or(got.len().min(want.len()));
        panic!("{} lines followed, 3000 written; first difference at {first_bad}: {:?}", got.len(), &got[first_bad.saturating_sub(2)..(first_bad + 3).min(got.len())]);
    }
    let rotated = std::fs::read_dir(lab.containers_dir().join(&id)).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("json.log.")).count();
    assert!(rotated >= 20, "only {rotated} rotations");
    // And read again, not following: the same lines.
    assert_eq!(lab.ok(&["logs", "spinner"]), format!("ready\n{}\n", want.join("\n")));
    lab.ok(&["rm", "spinner"]);
}

#[test]
fn on_failure_restarts_exactly_twice_and_logs_follow_across_restarts() {
    let Some(lab) = Lab::new("containers") else { return };
    lab.run_d(&["--name", "flaky", "--restart", "on-failure:2"], &["sh", "-c", "echo run; exit 3"]);
    // logs -f follows the runs until the monitor gives up.
    let out = lab.cmd(&["logs", "-f", "flaky"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "run\nrun\nrun\n", "the first run and two restarts");
    let info = lab.inspect("flaky");
    assert_eq!(info["restart_count"], 2);
    assert_eq!(info["state"]["status"], "exited");
    assert_eq!(info["state"]["exit_code"], 3);
    assert_eq!(info["host_config"]["restart_policy"]["name"], "on-failure");
    assert!(info["state"]["monitor_pid"].is_null());
}

#[test]
fn always_restarts_until_stop_and_a_stop_is_never_undone() {
    let Some(lab) = Lab::new("containers") else { return };
    lab.run_d(&["--name", "phoenix", "--restart", "always"], &["sh", "-c", "echo run; exit 0"]);
    wait_until("three runs", || lab.log("phoenix").matches("run").count() >= 3);
    let stopped = json_lines(lab.ok(&["stop", "phoenix"]).as_bytes());
    assert_eq!(stopped[0]["state"], "exited");
    let info = lab.inspect("phoenix");
    assert_eq!(info["state"]["status"], "exited");
    assert_eq!(info["state"]["manually_stopped"], true);
    assert!(info["state"]["monitor_pid"].is_null(), "no monitor left to restart it");
    assert!(info["restart_count"].as_u64().unwrap() >= 2);
    let id = info["id"].as_str().unwrap();
    assert!(processes_mentioning(id).is_empty());
    // start clears the manual stop: the policy applies again, until the next stop.
    lab.ok(&["start", "phoenix"]);
    let before = lab.log("phoenix").matches("run").count();
    wait_until("restarts after start", || lab.log("phoenix").matches("run").count() >= before + 2);
    lab.ok(&["kill", "phoenix"]);
    assert_eq!(lab.state("phoenix"), "exited");
    assert!(processes_mentioning(id).is_empty(), "kill (SIGKILL) is a manual stop too");
}

/// `unless-stopped` restarts like `always` — after a failure, a success,
/// or a kill that did not come through the tools — and a manual stop (or
/// kill) stays: no monitor is left to undo it.
#[test]
fn unless_stopped_restarts_like_always_but_a_manual_stop_stays() {
    let Some(lab) = Lab::new("containers") else { return };
    // Run n (counted in its writable layer): 1 fails, 2 succeeds, 3 and later stay up.
    let script = "n=$(cat /n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /n; echo run $n; [ $n -ge 3 ] && exec sleep 1000; exit $((n % 2))";
    let id = lab.run_d(&["--name", "stay", "--restart", "unless-stopped"], &["sh", "-c", script])["id"].as_str().unwrap().to_string();
    lab.wait_log("stay", "run 3");
    wait_until("run 3 running", || lab.state("stay") == "running");
    let info = lab.inspect("stay");
    assert_eq!(info["host_config"]["restart_policy"]["name"], "unless-stopped");
    assert_eq!(info["restart_count"], 2, "restarted after exit 1 and after exit 0");
    // SIGKILL from outside the tools is not a manual stop: it comes back.
    let pid = info["state"]["pid"].as_i64().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGKILL) };
    lab.wait_log("stay", "run 4");
    wait_until("run 4 running", || lab.state("stay") == "running");
    assert_eq!(lab.inspect("stay")["restart_count"], 3);
    // A manual stop: exited for good, no monitor left.
    let stopped = json_lines(lab.ok(&["stop", "-t", "1", "stay"]).as_bytes());
    assert_eq!(stopped[0]["state"], "exited");
    let info = lab.inspect("stay");
    assert_eq!(info["state"]["manually_stopped"], true);
    assert!(info["state"]["monitor_pid"].is_null());
    assert!(processes_mentioning(&id).is_empty(), "no monitor to restart it");
    assert_eq!(lab.state("stay"), "exited");
    assert!(!lab.log("stay").contains("run 5"));
    // start clears it; a kill through the tools is a manual stop as well.
    lab.ok(&["start", "stay"]);
    lab.wait_log("stay", "run 5");
    lab.ok(&["kill", "stay"]);
    assert_eq!(lab.state("stay"), "exited");
    assert!(processes_mentioning(&id).is_empty());
    assert!(!lab.log("stay").contains("run 6"));
    lab.ok(&["rm", "stay"]);
}

/// The image's STOPSIGNAL is what stop sends; a container that ignores it
/// dies by SIGKILL after the timeout.
#[test]
fn stop_honours_stopsignal_and_the_timeout() {
    let Some(lab) = Lab::new("containers") else { return };
    let tar = ci_tests::busybox_rootfs_tar().unwrap();
    let mut import = lab.tool("ci-build").args(["import", "--change", "STOPSIGNAL SIGUSR1", "-t", "bbsig:1", "-"]).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    std::io::Write::write_all(&mut import.stdin.take().unwrap(), &tar).unwrap();
    assert!(import.wait().unwrap().success());
    let o = json_lines(lab.ok(&["run", "-d", "--name", "polite", "bbsig:1", "sh", "-c", "trap 'echo got usr1; exit 42' USR1; echo ready; while :; do sleep 0.05; done"]).as_bytes());
    assert_eq!(o[0]["state"], "running");
    lab.wait_log("polite", "ready");
    assert_eq!(lab.inspect("polite")["config"]["stop_signal"], "SIGUSR1", "the image's STOPSIGNAL is the container's");
    // SIGTERM would be ignored (PID 1, no handler) and SIGKILL come after the
    // default 10 s: exit 42, the marker, and a quick return prove it was USR1.
    let t = std::time::Instant::now();
    let stopped = json_lines(lab.ok(&["stop", "polite"]).as_bytes());
    assert_eq!(stopped[0]["exit_code"], 42, "the trap of the image's STOPSIGNAL ran");
    assert!(t.elapsed() < std::time::Duration::from_secs(8), "stop took {:?}: it waited for the timeout", t.elapsed());
    assert!(lab.log("polite").contains("got usr1"));

    // -t 1, not the default 10 s: SIGKILL well before 8 s.
    lab.run_d(&["--name", "stubborn"], &["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"]);
    lab.wait_log("stubborn", "ready");
    let t = std::time::Instant::now();
    let stopped = json_lines(lab.ok(&["stop", "-t", "1", "stubborn"]).as_bytes());
    let took = t.elapsed();
    assert_eq!(stopped[0]["exit_code"], 137, "SIGKILL after the timeout");
    assert!(took < std::time::Duration::from_secs(8), "stop -t 1 took {took:?}: the 10 s default was used");
}

#[test]
fn kill_usr1_reaches_a_trap() {
    let Some(lab) = Lab::new("containers") else { return };
    lab.run_d(&["--name", "trapper"], &["sh", "-c", "trap 'echo got usr1' USR1; echo ready; while :; do sleep 0.05; done"]);
    lab.wait_log("trapper", "ready");
    lab.ok(&["kill", "-s", "USR1", "trapper"]);
    lab.wait_log("trapper", "got usr1");
    assert_eq!(lab.state("trapper"), "running", "USR1 only delivered");
    let out = lab.ci(&["kill", "-s", "NOPE", "trapper"]);
    assert_ne!(code(&out), 0);
    assert!(text(&out.stderr).contains("invalid signal"), "{}", text(&out.stderr));
    lab.ok(&["rm", "-f", "trapper"]);
}

/// What a container writes survives stop/start, and is gone with rm.
#[test]
fn data_persists_over_stop_and_start_not_over_rm() {
    let Some(lab) = Lab::new("containers") else { return };
    let script = "if [ -f /data ]; then echo again; else echo first; echo x > /data; fi; exec sleep 1000";
    lab.run_d(&["--name", "keeper"], &["sh", "-c", script]);
    lab.wait_log("keeper", "first");
    lab.ok(&["stop", "-t", "0", "keeper"]);
    lab.ok(&["start", "keeper"]);
    lab.wait_log("keeper", "again");
    assert_eq!(lab.log("keeper"), "first\nagain\n");
    lab.ok(&["restart", "-t", "0", "keeper"]);
    wait_until("a third run", || lab.log("keeper") == "first\nagain\nagain\n");
    lab.ok(&["rm", "-f", "keeper"]);
    lab.run_d(&["--name", "keeper"], &["sh", "-c", script]);
    lab.wait_log("keeper", "first");
    lab.ok(&["rm", "-f", "keeper"]);
    assert!(lab.ids().is_empty());
}

#[test]
fn wait_and_start_attach_give_the_exit_status() {
    let Some(lab) = Lab::new("containers") else { return };
    lab.run_d(&["--name", "job"], &["sh", "-c", "echo working; while [ ! -f /tmp/go ]; do sleep 0.05; done; exit 5"]);
    let waiter = lab.cmd(&["--format", "table", "wait", "job"]).stdout(Stdio::piped()).spawn().unwrap();
    lab.wait_log("job", "working");
    lab.ok(&["exec", "job", "touch", "/tmp/go"]);
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout).trim(), "5");
    // Not running: wait answers at once; the JSON form carries exit_code.
    let v = json_lines(lab.ok(&["wait", "job"]).as_bytes());
    assert_eq!(v[0]["exit_code"], 5);
    // start -a: its output from this run, and its status.
    let out = lab.ci(&["start", "-a", "job"]);
    assert_eq!(code(&out), 5, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "working\n");
}

#[test]
fn rm_of_a_running_container_needs_force() {
    let Some(lab) = Lab::new("containers") else { return };
    let id = lab.run_d(&["--name", "busy"], &["sleep", "1000"])["id"].as_str().unwrap().to_string();
    let out = lab.ci(&["rm", "busy"]);
    assert_eq!(code(&out), 1);
    let err = text(&out.stderr);
    assert!(err.contains("cannot remove container busy") && err.contains("rm -f"), "{err}");
    assert_eq!(lab.state("busy"), "running", "nothing changed");
    lab.ok(&["rm", "-f", "busy"]);
    assert!(lab.ids().is_empty());
    assert!(cgroup_dirs(&id).is_empty());
    assert!(processes_mentioning(&id).is_empty());
    assert!(processes_in_cgroup(&id).is_empty());
    assert!(!lab.run_dir().join(&id).exists());
}

/// `--rm -d`: the monitor removes the container when it exits.
#[test]
fn detached_rm_is_removed_by_its_monitor() {
    let Some(lab) = Lab::new("containers") else { return };
    let id = lab.run_d(&["--rm", "--name", "brief"], &["sh", "-c", "while [ ! -f /tmp/go ]; do sleep 0.05; done"])["id"].as_str().unwrap().to_string();
    lab.ok(&["exec", "brief", "touch", "/tmp/go"]);
    wait_until("the record gone", || lab.ids().is_empty());
    assert!(cgroup_dirs(&id).is_empty());
    wait_until("the monitor gone", || processes_mentioning(&id).is_empty());
    assert!(!lab.run_dir().join(&id).exists());
}

/// Containers are named by id, unique id prefix or name; an ambiguous
/// prefix is an error listing the candidates; `-` reads objects on stdin.
#[test]
fn names_prefixes_and_objects_on_stdin() {
    let Some(lab) = Lab::new("containers") else { return };
    // Until two ids share a first digit (a few tries: 16 possible digits).
    let mut ids: Vec<String> = Vec::new();
    let shared = loop {
        let id = lab.run_d(&[], &["true"])["id"].as_str().unwrap().to_string();
        if let Some(other) = ids.iter().find(|i| i[..1] == id[..1]) {
            break (other.clone(), id);
        }
        ids.push(id);
        assert!(ids.len() < 20);
    };
    let out = lab.ci(&["inspect", &shared.0[..1]]);
    assert_eq!(code(&out), 1);
    let err = text(&out.stderr);
    assert!(err.contains("ambiguous") && err.contains(&shared.0[..12]) && err.contains(&shared.1[..12]), "{err}");
    // A longer prefix, the full id, and the name all work.
    let unique = (2..64).find(|n| shared.0[..*n] != shared.1[..*n]).unwrap();
    assert_eq!(lab.inspect(&shared.0[..unique])["id"], shared.0.as_str());
    assert_eq!(lab.inspect(&shared.1)["id"], shared.1.as_str());
    let name = lab.inspect(&shared.1)["name"].as_str().unwrap().to_string();
    assert_eq!(lab.inspect(&name)["id"], shared.1.as_str());
    // rename, and a name already taken.
    lab.ok(&["rename", &name, "renamed"]);
    assert_eq!(lab.inspect("renamed")["id"], shared.1.as_str());
    let out = lab.ci(&["rename", &shared.0, "renamed"]);
    assert_eq!(code(&out), 1);
    assert!(text(&out.stderr).contains("already in use"), "{}", text(&out.stderr));
    // ps objects piped into rm.
    wait_until("all exited", || lab.ps_all().iter().all(|o| o["state"] == "exited"));
    let listed = lab.ok(&["ps", "-a", "--filter", "status=exited"]);
    assert!(json_lines(listed.as_bytes()).len() >= 2);
    let mut rm = lab.cmd(&["rm", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut rm.stdin.take().unwrap(), listed.as_bytes()).unwrap();
    assert!(rm.wait_with_output().unwrap().status.success());
    assert!(lab.ids().is_empty());
}

#[test]
fn ps_filters_and_prune() {
    let Some(lab) = Lab::new("containers") else { return };
    lab.run_d(&["--name", "alive", "-l", "tier=web"], &["sleep", "1000"]);
    lab.run_d(&["--name", "done", "-l", "tier=batch"], &["true"]);
    wait_until("done exited", || lab.state("done") == "exited");
    let names = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["ps"];
        a.extend_from_slice(args);
        let mut v: Vec<String> = json_lines(lab.ok(&a).as_bytes()).iter().map(|o| o["name"].as_str().unwrap().to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(names(&[]), ["alive"]);
    assert_eq!(names(&["-a"]), ["alive", "done"]);
    assert_eq!(names(&["--filter", "status=exited"]), ["done"]);
    assert_eq!(names(&["-a", "--filter", "label=tier=web"]), ["alive"]);
    assert_eq!(names(&["-a", "--filter", "label=tier"]), ["alive", "done"]);
    assert_eq!(names(&["-a", "--filter", "name=don"]), ["done"]);
    assert_eq!(names(&["-a", "--filter", "ancestor=bb:1"]), ["alive", "done"]);
    assert_eq!(names(&["-a", "--filter", "status=exited", "--filter", "status=running"]), ["alive", "done"]);
    assert!(lab.ci(&["ps", "--filter", "colour=blue"]).status.code() != Some(0));
    let pruned = json_lines(lab.ok(&["prune", "-f"]).as_bytes());
    assert_eq!(pruned.len(), 1);
    assert_eq!(pruned[0]["name"], "done");
    assert_eq!(names(&["-a"]), ["alive"]);
    lab.ok(&["rm", "-f", "alive"]);
}

/// Bad flags are refused before anything is created.
#[test]
fn bad_run_flags_create_nothing() {
    let Some(lab) = Lab::new("containers") else { return };
    for (flags, msg) in [
        (&["-d", "--restart", "sometimes"][..], "unknown policy"),
        (&["--restart", "always"], "needs -d"),
        (&["-d", "--rm", "--restart", "always"], "conflicting options"),
        (&["-d", "--log-opt", "max-size=lots"], "max-size"),
        (&["-d", "--log-driver", "syslog"], "not supported"),
        (&["-d", "--stop-signal", "SIGNOPE"], "invalid signal"),
    ] {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["bb:1", "true"]);
        let out = lab.ci(&args);
        assert_eq!(code(&out), 125, "{flags:?}");
        assert!(text(&out.stderr).contains(msg), "{flags:?}: {}", text(&out.stderr));
    }
    assert!(lab.ids().is_empty());
    // A command that does not exist: docker's 127, the container stays
    // "created" with the error; with --rm it is removed.
    let out = lab.ci(&["run", "-d", "--name", "typo", "bb:1", "nosuchcmd"]);
    assert_eq!(code(&out), 127, "{}", text(&out.stderr));
    let info = lab.inspect("typo");
    assert_eq!(info["state"]["status"], "created");
    assert!(info["state"]["error"].as_str().unwrap().contains("nosuchcmd"));
    let out = lab.ci(&["run", "-d", "--rm", "bb:1", "nosuchcmd"]);
    assert_eq!(code(&out), 127);
    assert_eq!(lab.ids().len(), 1, "the --rm one is gone");
}

/// `-di` and `-dt` keep a shell alive (its stdin is a pipe, or a terminal,
/// that the monitor holds open), as `docker run -dit IMAGE sh` does.
#[test]
fn interactive_detached_shells_stay_up() {
    let Some(lab) = Lab::new("containers") else { return };
    lab.run_d(&["-i", "--name", "di"], &["sh"]);
    lab.run_d(&["-i", "-t", "--name", "dit"], &["sh"]);
    for name in ["di", "dit"] {
        assert_eq!(lab.ok(&["exec", name, "echo", "alive"]), "alive\n");
        assert_eq!(lab.state(name), "running");
    }
    assert_eq!(lab.inspect("dit")["config"]["tty"], true);
    lab.ok(&["stop", "-t", "1", "di", "dit"]);
    lab.ok(&["rm", "di", "dit"]);
}

#[test]
fn logs_since_and_stats_streaming() {
    let Some(lab) = Lab::new("containers") else { return };
    lab.run_d(&["--name", "ticker"], &["sh", "-c", "echo early; while [ ! -f /tmp/go ]; do sleep 0.05; done; echo late; exec sleep 1000"]);
    lab.wait_log("ticker", "early");
    let recs = json_lines(lab.ok(&["--format", "json", "logs", "ticker"]).as_bytes());
    let first = recs[0]["time"].as_str().unwrap().to_string();
    lab.ok(&["exec", "ticker", "touch", "/tmp/go"]);
    lab.wait_log("ticker", "late");
    // --since the first record's time includes it; a later time does not.
    assert_eq!(lab.ok(&["logs", "--since", &first, "ticker"]), "early\nlate\n");
    let late = json_lines(lab.ok(&["--format", "json", "logs", "ticker"]).as_bytes())[1]["time"].as_str().unwrap().to_string();
    assert_eq!(lab.ok(&["logs", "--since", &late, "ticker"]), "late\n");
    assert_eq!(lab.ok(&["logs", "--until", &first, "ticker"]), "early\n");
    assert!(lab.ok(&["logs", "--since", "1h", "ticker"]).contains("late"));
    // stats without --no-stream: a JSON line per container per second, until stopped.
    let mut s = lab.cmd(&["stats", "ticker"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut r = BufReader::new(s.stdout.take().unwrap());
    for _ in 0..2 {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["name"], "ticker");
        assert_eq!(v["pids"], 1);
    }
    s.kill().unwrap();
    s.wait().unwrap();
    lab.ok(&["rm", "-f", "ticker"]);
}
