//! The truth about containers when things go wrong: a killed monitor, /run
//! wiped as by a reboot, state from another boot, 50 containers in a loop,
//! concurrent stops, a full disk under the log; and stats, top, inspect.

mod lifecycle_common;
use lifecycle_common::*;

use std::process::Stdio;

fn monitor_pid(lab: &Lab, name: &str) -> i32 {
    lab.inspect(name)["state"]["monitor_pid"].as_i64().expect("a monitor") as i32
}

/// SIGKILL to the monitor: the kernel kills the container with it, ps
/// never shows it running, and rm removes everything.
#[test]
fn killing_the_monitor_leaves_ps_truthful() {
    let Some(lab) = Lab::new("containers") else { return };
    let o = lab.run_d(&["--name", "orphan", "--restart", "always"], &["sleep", "1000"]);
    let id = o["id"].as_str().unwrap().to_string();
    let pid = o["pid"].as_i64().unwrap() as i32;
    let monitor = monitor_pid(&lab, "orphan");
    unsafe { libc::kill(monitor, libc::SIGKILL) };
    wait_until("the container to die with its monitor", || zombie(pid));
    // Not listed as running; listed as exited, with the reason.
    assert!(json_lines(lab.ok(&["ps"]).as_bytes()).is_empty());
    let all = lab.ps_all();
    assert_eq!(all[0]["state"], "exited");
    assert_eq!(all[0]["status"].as_str().unwrap().split(')').next().unwrap(), "Exited (unknown", "{}", all[0]);
    let info = lab.inspect("orphan");
    assert!(info["state"]["exit_code"].is_null());
    assert!(info["state"]["error"].as_str().unwrap().contains("monitor"), "{}", info["state"]);
    assert!(info["state"]["monitor_pid"].is_null());
    // What the monitor would have removed is gone already (cgroup, run-time state).
    assert!(cgroup_dirs(&id).is_empty(), "{:?}", cgroup_dirs(&id));
    assert!(!lab.run_dir().join(&id).exists());
    // It can start again, and rm cleans everything.
    lab.ok(&["start", "orphan"]);
    assert_eq!(lab.state("orphan"), "running");
    lab.ok(&["rm", "-f", "orphan"]);
    assert!(lab.ids().is_empty() && cgroup_dirs(&id).is_empty() && processes_mentioning(&id).is_empty());
}

/// The same with a container that runs as another user: the kernel clears
/// the parent-death signal when the credentials change, so the init sets
/// it again after its user switch, or PID 1 would outlive its monitor,
/// unsupervised.
#[test]
fn killing_the_monitor_of_a_non_root_container_kills_it_too() {
    let Some(lab) = Lab::new("containers") else { return };
    let o = lab.run_d(&["--name", "orphan", "-u", "1000:1000"], &["sleep", "1000"]);
    let id = o["id"].as_str().unwrap().to_string();
    let pid = o["pid"].as_i64().unwrap() as i32;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.lines().any(|l| l.starts_with("Uid:\t1000\t1000\t1000")), "PID 1 runs as uid 1000:\n{status}");
    unsafe { libc::kill(monitor_pid(&lab, "orphan"), libc::SIGKILL) };
    wait_until("PID 1 (uid 1000) to die with its monitor", || zombie(pid));
    assert!(json_lines(lab.ok(&["ps"]).as_bytes()).is_empty());
    assert_eq!(lab.state("orphan"), "exited");
    assert!(processes_in_cgroup(&id).is_empty(), "{:?}", processes_in_cgroup(&id));
    lab.ok(&["rm", "-f", "orphan"]);
    assert!(lab.ids().is_empty() && cgroup_dirs(&id).is_empty());
}

/// SIGHUP to the monitor is ignored (it has no terminal: no hangup is meant
/// for it); SIGTERM stops the container as `ci-run stop` would.
#[test]
fn the_monitor_ignores_sighup_and_stops_on_sigterm() {
    let Some(lab) = Lab::new("containers") else { return };
    let script = "trap 'echo got term; exit 3' TERM; trap 'echo got usr1' USR1; echo ready; while :; do sleep 0.05; done";
    let id = lab.run_d(&["--name", "hup"], &["sh", "-c", script])["id"].as_str().unwrap().to_string();
    lab.wait_log("hup", "ready");
    let monitor = monitor_pid(&lab, "hup");
    unsafe { libc::kill(monitor, libc::SIGHUP) };
    // The monitor reads its signals before it serves a request: once this
    // kill has been carried out, the hangup has been handled.
    lab.ok(&["kill", "-s", "USR1", "hup"]);
    wait_until("the USR1 trap (or the TERM one)", || lab.log("hup").contains("got "));
    assert_eq!(lab.log("hup"), "ready\ngot usr1\n", "SIGHUP stopped the container");
    assert_eq!(lab.state("hup"), "running");
    assert_eq!(monitor_pid(&lab, "hup"), monitor, "the same monitor");
    // SIGTERM: the container's stop signal, then the monitor exits.
    unsafe { libc::kill(monitor, libc::SIGTERM) };
    wait_until("the monitor to exit", || processes_mentioning(&id).is_empty());
    assert!(lab.log("hup").ends_with("got term\n"), "{}", lab.log("hup"));
    let info = lab.inspect("hup");
    assert_eq!(info["state"]["status"], "exited");
    assert_eq!(info["state"]["exit_code"], 3);
    lab.ok(&["rm", "hup"]);
}

/// After a reboot nothing runs and /run is empty (or, where /run survives,
/// the boot id differs): every container is exited, and start/rm work.
#[test]
fn run_dir_wiped_as_by_a_reboot() {
    let Some(lab) = Lab::new("containers") else { return };
    let a = lab.run_d(&["--name", "aa"], &["sleep", "1000"])["id"].as_str().unwrap().to_string();
    let b = lab.run_d(&["--name", "bb", "--restart", "always"], &["sleep", "1000"])["id"].as_str().unwrap().to_string();
    // The "reboot": every process of the containers dies, /run is emptied.
    for name in ["aa", "bb"] {
        let pid = lab.inspect(name)["state"]["pid"].as_i64().unwrap() as i32;
        unsafe { libc::kill(monitor_pid(&lab, name), libc::SIGKILL) };
        wait_until("the container gone", || zombie(pid));
    }
    std::fs::remove_dir_all(lab.run_dir()).unwrap();
    let all = lab.ps_all();
    assert_eq!(all.len(), 2);
    for o in &all {
        assert_eq!(o["state"], "exited", "{o}");
    }
    assert!(lab.inspect("aa")["state"]["error"].as_str().unwrap().contains("/run"));
    // The cgroups the dead monitors left were removed when the records were put right.
    assert!(cgroup_dirs(&a).is_empty() && cgroup_dirs(&b).is_empty());
    lab.ok(&["start", "aa"]);
    assert_eq!(lab.state("aa"), "running");
    lab.ok(&["rm", "-f", "aa", "bb"]);
    assert!(lab.ids().is_empty());
    assert!(!lab.run_dir().exists(), "the store's run directory goes with its last container");
}

/// state.json naming a live process is not enough: the boot id and the
/// pid's start time must match (a reused pid, or a file from another boot
/// where /run is not a tmpfs).
#[test]
fn state_from_another_boot_or_a_reused_pid_is_not_running() {
    let Some(lab) = Lab::new("containers") else { return };
    let id = lab.run_d(&["--name", "ghost"], &["sleep", "1000"])["id"].as_str().unwrap().to_string();
    let state_file = lab.run_dir().join(&id).join("state.json");
    let real: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    let pid = real["pid"].as_i64().unwrap() as i32;
    unsafe { libc::kill(monitor_pid(&lab, "ghost"), libc::SIGKILL) };
    wait_until("the container gone", || zombie(pid));
    // Our own process: alive, with its real start time.
    let me = std::process::id() as i32;
    let my_start = ci_core::runtime::process::start_time(me).unwrap();
    for (boot, start) in [("00000000-0000-0000-0000-000000000000".to_string(), my_start), (real["boot_id"].as_str().unwrap().to_string(), my_start + 1)] {
        let mut fake = real.clone();
        fake["pid"] = me.into();
        fake["pid_start_time"] = start.into();
        fake["owner_pid"] = me.into();
        fake["owner_start_time"] = start.into();
        fake["boot_id"] = boot.into();
        std::fs::create_dir_all(state_file.parent().unwrap()).unwrap();
        std::fs::write(&state_file, serde_json::to_vec(&fake).unwrap()).unwrap();
        assert!(json_lines(lab.ok(&["ps"]).as_bytes()).is_empty(), "{fake}");
        assert_eq!(lab.state("ghost"), "exited");
    }
    lab.ok(&["rm", "ghost"]);
    assert!(lab.ids().is_empty() && cgroup_dirs(&id).is_empty());
}

/// 50 detached containers started and removed in a loop leave no process,
/// mount, cgroup or state directory behind: everything of the store on the
/// machine is counted before and after ([`Footprint`]), and each container
/// is looked for by its id.
#[test]
fn fifty_detached_containers_leave_nothing_behind() {
    let Some(lab) = Lab::new("containers") else { return };
    let before = Footprint::of(&lab, &[]);
    let mut ids = Vec::new();
    for i in 0..50 {
        let name = format!("c{i}");
        let o = lab.run_d(&["--name", &name], &["sleep", "1000"]);
        assert_eq!(o["state"], "running");
        ids.push(o["id"].as_str().unwrap().to_string());
        lab.ok(&["rm", "-f", &name]);
    }
    // The census can see them at all: one running container's share.
    let o = lab.run_d(&["--name", "probe"], &["sleep", "1000"]);
    let probe_id = o["id"].as_str().unwrap().to_string();
    let running = Footprint::of(&lab, std::slice::from_ref(&probe_id));
    let [procs, mounts, cgroups, state] = running.totals();
    assert!(procs >= 2 && mounts >= 1 && cgroups >= 1 && state >= 2, "a running container is counted: {running:#?}");
    assert!(running.processes.iter().any(|p| p.contains("ci-monitor")) && running.processes.iter().any(|p| p.ends_with(" sleep 1000 ")), "{running:#?}");
    lab.ok(&["rm", "-f", "probe"]);
    ids.push(probe_id);

    let after = Footprint::of(&lab, &ids);
    assert_eq!(after, before, "left behind (totals before {:?}, after {:?})", before.totals(), after.totals());
    let root = lab.store.to_string_lossy().into_owned();
    for id in &ids {
        assert!(processes_mentioning(id).is_empty(), "a monitor of {id} is left");
        assert!(processes_in_cgroup(id).is_empty(), "a process of {id} is left");
        assert!(cgroup_dirs(id).is_empty(), "a cgroup of {id} is left");
    }
    assert!(mounts_mentioning(&root).is_empty(), "{:?}", mounts_mentioning(&root));
    assert!(lab.ids().is_empty(), "container directories left: {:?}", lab.ids());
    assert!(!lab.run_dir().exists(), "run-time state left under {}", lab.run_dir().display());
    assert!(std::fs::read_dir(lab.store.join("tmp")).unwrap().next().is_none(), "tmp left");
}

/// Two stops at once both end, with the same exit; a stop racing an rm -f
/// ends with the container gone and nothing left.
#[test]
fn concurrent_stops_and_stop_with_rm_end_cleanly() {
    let Some(lab) = Lab::new("containers") else { return };
    lab.run_d(&["--name", "twice"], &["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"]);
    lab.wait_log("twice", "ready");
    let s1 = lab.cmd(&["stop", "-t", "1", "twice"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let s2 = lab.cmd(&["stop", "-t", "1", "twice"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (o1, o2) = (s1.wait_with_output().unwrap(), s2.wait_with_output().unwrap());
    for o in [&o1, &o2] {
        // Both succeed, or (if one came after the stop) the second says it is not running.
        assert!(o.status.success() || text(&o.stderr).contains("is not running"), "{}", text(&o.stderr));
    }
    assert!(o1.status.success() || o2.status.success());
    let info = lab.inspect("twice");
    assert_eq!(info["state"]["status"], "exited");
    assert_eq!(info["state"]["exit_code"], 137);

    let id = lab.run_d(&["--name", "race"], &["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"])["id"].as_str().unwrap().to_string();
    lab.wait_log("race", "ready");
    let stop = lab.cmd(&["stop", "-t", "5", "race"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let rm = lab.cmd(&["rm", "-f", "race"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (os, or) = (stop.wait_with_output().unwrap(), rm.wait_with_output().unwrap());
    assert!(or.status.success(), "rm -f: {}", text(&or.stderr));
    assert!(os.status.success() || text(&os.stderr).contains("no such container") || text(&os.stderr).contains("is not running"), "stop: {}", text(&os.stderr));
    assert!(lab.ids().iter().all(|i| *i != id));
    assert!(cgroup_dirs(&id).is_empty() && processes_mentioning(&id).is_empty() && !lab.run_dir().join(&id).exists());
}

/// stats reads the container's cgroup: ~50 MiB written to its /dev/shm
/// (tmpfs, charged to it) shows as its memory use.
#[test]
fn stats_reports_the_memory_a_container_uses() {
    let Some(lab) = Lab::new("containers") else { return };
    lab.run_d(&["--name", "hog", "--memory", "200m"], &["sh", "-c", "head -c 52428800 /dev/zero > /dev/shm/fill; echo ready; exec sleep 1000"]);
    lab.wait_log("hog", "ready");
    let s = json_lines(lab.ok(&["stats", "--no-stream", "hog"]).as_bytes());
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["kind"], "container");
    let mib = s[0]["memory_usage"].as_u64().unwrap() as f64 / 1048576.0;
    assert!((48.0..80.0).contains(&mib), "memory usage {mib:.1} MiB for 50 MiB written to /dev/shm");
    assert_eq!(s[0]["memory_limit"].as_u64().unwrap(), 200 << 20);
    assert_eq!(s[0]["pids"], 1);
    // The table, as docker's columns.
    let t = lab.ok(&["--format", "table", "stats", "--no-stream", "hog"]);
    assert!(t.starts_with("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT"), "docker's layout (columns at least 10 wide): {t}");
    assert!(t.contains("/ 200MiB"), "{t}");
    // top: its processes, ps -ef's columns, from the host's /proc.
    lab.ok(&["exec", "-d", "hog", "sleep", "999"]);
    wait_until("two processes", || json_lines(lab.ok(&["top", "hog"]).as_bytes()).len() == 2);
    let procs = json_lines(lab.ok(&["top", "hog"]).as_bytes());
    let cmds: Vec<&str> = procs.iter().map(|p| p["cmd"].as_str().unwrap()).collect();
    assert!(cmds.contains(&"sleep 1000") && cmds.contains(&"sleep 999"), "{cmds:?}");
    assert!(procs.iter().all(|p| p["kind"] == "process" && p["user"] == "root"));
    lab.ok(&["rm", "-f", "hog"]);
}

/// stats reports the block I/O of the container's cgroup: 20 MiB written
/// and fsynced to its writable layer show as bytes written, and 8 MiB
/// written with O_DIRECT as at least 8 MiB more.
///
/// On cgroup v1 the kernel (6.x) counts `blkio.throttle.io_service_bytes*`
/// only on a disk where blk-throttle is active, that is once some cgroup
/// has had a `blkio.throttle.*_device` rule for it; before, every figure
/// is 0 (seen on the CI machine after boot: "Total 0" and no device lines).
/// The test sets a limit that limits nothing (1 TiB/s) on the store's disk
/// in the container's own cgroup, gone with it; the kernel keeps counting
/// on that disk until the next boot. cgroup v2's io.stat always counts.
/// Buffered writes are counted only in part on v1: what the kernel's
/// flusher writes back before the fsync is charged to the root cgroup (v1
/// has no cgroup writeback); direct I/O is always the writer's.
#[test]
fn stats_reports_the_block_io_a_container_does() {
    let Some(lab) = Lab::new("containers") else { return };
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(&lab.store).unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    if major == 0 {
        ci_tests::skip(&format!("the store {} is not on a block device ({major}:{minor})", lab.store.display()));
        return;
    }
    let script = "for step in fsync direct; do while [ ! -f /tmp/$step ]; do sleep 0.05; done; \
        if [ $step = fsync ]; then dd if=/dev/zero of=/fill bs=1M count=20 conv=fsync; else dd if=/dev/zero of=/direct bs=1M count=8 oflag=direct; fi; echo done $step; done; exec sleep 1000";
    let id = lab.run_d(&["--name", "writer"], &["sh", "-c", script])["id"].as_str().unwrap().to_string();
    let cg = ci_core::cgroups::Cgroup::open(&format!("ci/{id}")).unwrap().expect("the container's cgroup");
    if let Some((h, dir)) = cg.dir_of("blkio") {
        assert_eq!(h.version, ci_core::cgroups::Version::V1);
        std::fs::write(dir.join("blkio.throttle.write_bps_device"), format!("{major}:{minor} {}", 1u64 << 40)).unwrap();
    }
    let written = || json_lines(lab.ok(&["stats", "--no-stream", "writer"]).as_bytes())[0]["block_write"].as_u64().unwrap();
    let at_start = written();
    lab.ok(&["exec", "writer", "touch", "/tmp/fsync"]);
    lab.wait_log("writer", "done fsync");
    let after_fsync = written();
    assert!(after_fsync > at_start, "no block write counted for 20 MiB written and fsynced ({at_start} then {after_fsync})");
    lab.ok(&["exec", "writer", "touch", "/tmp/direct"]);
    lab.wait_log("writer", "done direct");
    assert_eq!(lab.log("writer").matches("records out").count(), 2, "{}", lab.log("writer"));
    let after_direct = written();
    assert!(after_direct - after_fsync >= 8 << 20, "8 MiB of direct writes counted as {} bytes", after_direct - after_fsync);
    assert!(after_direct - at_start < 200 << 20, "{} bytes counted for 28 MiB written", after_direct - at_start);
    let t = lab.ok(&["--format", "table", "stats", "--no-stream", "writer"]);
    let (head, row) = t.split_once('\n').unwrap();
    assert!(head.contains("BLOCK I/O"), "{t}");
    assert!(row.contains("MB") || row.contains("MiB"), "the table shows the megabytes: {t}");
    lab.ok(&["rm", "-f", "writer"]);
}

#[test]
fn inspect_shows_state_config_and_where_it_lives() {
    let Some(lab) = Lab::new("containers") else { return };
    lab.run_d(&["--name", "shown", "-e", "K=V", "-l", "a=b", "--restart", "on-failure:4", "--memory", "64m", "--pids-limit", "20", "--log-opt", "max-size=1m"], &["sleep", "1000"]);
    let i = lab.inspect("shown");
    assert_eq!(i["state"]["status"], "running");
    assert!(i["state"]["pid"].as_i64().unwrap() > 0);
    assert_eq!(i["state"]["monitor_pid"], i["state"]["owner_pid"]);
    assert_eq!(i["host_config"]["restart_policy"]["name"], "on-failure");
    assert_eq!(i["host_config"]["restart_policy"]["maximum_retry_count"], 4);
    assert!(i["config"]["env"].as_array().unwrap().iter().any(|e| e == "K=V"));
    assert_eq!(i["config"]["labels"]["a"], "b");
    assert_eq!(i["config"]["cmd"][0], "sleep");
    assert_eq!(i["host_config"]["memory"], 64 << 20);
    assert_eq!(i["host_config"]["pids_limit"], 20);
    assert_eq!(i["host_config"]["log_config"]["max_size"], 1 << 20);
    assert_eq!(i["network_settings"]["network_mode"], "none");
    let state_dir = std::path::PathBuf::from(i["state_dir"].as_str().unwrap());
    assert!(state_dir.starts_with("/run/ci") && state_dir.join("state.json").exists());
    assert!(std::path::Path::new(i["dir"].as_str().unwrap()).join("container.json").exists());
    assert!(std::path::Path::new(i["log_path"].as_str().unwrap()).exists());
    lab.ok(&["rm", "-f", "shown"]);
}

/// A full disk while logging: the container keeps running, the log keeps
/// only whole lines (earlier ones intact), and rm still cleans up.
#[test]
fn a_full_disk_does_not_kill_the_container_or_break_the_log() {
    if !privileged("containers") {
        return;
    }
    let root = TestRoot::new();
    let small = root.path().join("small");
    std::fs::create_dir(&small).unwrap();
    nix::mount::mount(Some("tmpfs"), &small, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=24m")).unwrap();
    let Some(lab) = Lab::at(root, small.join("store")) else { return };
    // Ballast, removed later to give the log room again.
    let ballast = small.join("ballast");
    std::fs::write(&ballast, vec![0u8; 2 << 20]).unwrap();
    let line = "x".repeat(1000);
    let script = format!("i=0; while :; do i=$((i+1)); echo \"$i {line}\"; done");
    lab.run_d(&["--name", "chatty", "--log-opt", "max-size=100m"], &["sh", "-c", &script]);
    let full = || nix::sys::statvfs::statvfs(&small).map(|s| s.blocks_available() == 0).unwrap_or(false);
    wait_until("the filesystem to fill up", full);
    // Keep writing a while longer into a full disk.
    let log = lab.store.join("containers").join(&lab.ids()[0]).join("json.log");
    let count_lines = || std::fs::read(&log).map(|d| d.iter().filter(|b| **b == b'\n').count()).unwrap_or(0);
    let at_full = count_lines();
    let ran = lab.inspect("chatty");
    assert_eq!(ran["state"]["status"], "running", "still running on a full disk");
    // Free some space: logging goes on, still in whole lines.
    std::fs::remove_file(&ballast).unwrap();
    wait_until("logging to go on", || count_lines() > at_full + 100);
    wait_until("the filesystem to fill up again", full);
    // Stop the writer, then read: only whole, ordered records.
    lab.ci(&["kill", "chatty"]);
    let data = std::fs::read(&log).unwrap();
    assert!(data.ends_with(b"\n"), "the last line is whole");
    let mut last = 0u64;
    for l in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let rec: serde_json::Value = serde_json::from_slice(l).unwrap_or_else(|e| panic!("a broken log line ({e}): {}", text(l)));
        let n: u64 = rec["log"].as_str().unwrap().split(' ').next().unwrap().parse().unwrap();
        assert!(n > last, "lines in order");
        last = n;
    }
    assert!(count_lines() >= at_full);
    lab.ok(&["rm", "-f", "chatty"]);
    assert!(lab.ids().is_empty());
}

/// /run/ci removed by hand while a container runs under its monitor: the
/// container is found through its cgroup, shown running, and can be stopped.
#[test]
fn run_dir_removed_under_a_live_monitor() {
    let Some(lab) = Lab::new("containers") else { return };
    let o = lab.run_d(&["--name", "unseen"], &["sleep", "1000"]);
    let pid = o["pid"].as_i64().unwrap();
    std::fs::remove_dir_all(lab.run_dir()).unwrap();
    let ps = json_lines(lab.ok(&["ps"]).as_bytes());
    assert_eq!(ps.len(), 1, "still listed as running");
    assert_eq!(ps[0]["pid"], pid, "PID 1 found through the cgroup");
    let stopped = json_lines(lab.ok(&["stop", "-t", "1", "unseen"]).as_bytes());
    assert_eq!(stopped[0]["state"], "exited");
    wait_until("the monitor gone", || processes_mentioning(o["id"].as_str().unwrap()).is_empty());
    assert_eq!(lab.state("unseen"), "exited");
    lab.ok(&["rm", "unseen"]);
    assert!(lab.ids().is_empty());
}

/// A starter (`ci-run __start`) whose parent is not the process that made
/// its report socket is one whose monitor died and which was reparented:
/// it must refuse to start the container (nobody would watch it), saying
/// why on the socket, and start nothing.
#[test]
fn a_starter_whose_monitor_is_gone_starts_nothing() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let Some(lab) = Lab::new("containers") else { return };
    lab.run_d(&["--name", "orphan"], &["sleep", "1000"]);
    lab.ok(&["stop", "-t", "0", "orphan"]);
    let id = lab.inspect("orphan")["id"].as_str().unwrap().to_string();
    // The socket is made here (the test is its creator), and the starter
    // runs as a child of sh, not of this process: as if our "monitor" died.
    use nix::sys::socket::{recv, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::empty()).unwrap();
    let fd = theirs.as_raw_fd();
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", "\"$0\" __start \"$1\" \"$2\"; echo exit=$?"])
        .arg(ci_tests::tool_path("ci-run"))
        .arg(&lab.store)
        .arg(&id)
        .stdin(Stdio::null());
    // SAFETY: dup2 in the child before exec, to put the socket at fd 3.
    unsafe {
        sh.pre_exec(move || if libc::dup2(fd, 3) < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) });
    }
    let out = sh.output().unwrap();
    drop(theirs);
    assert!(text(&out.stdout).contains("exit=0"), "the starter reported: {}", text(&out.stderr));
    let mut buf = vec![0u8; 64 * 1024];
    let n = recv(ours.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap();
    let report = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(report.contains("\"failed\"") && report.contains("died before the container started"), "{report}");
    assert_ne!(lab.state("orphan"), "running");
}
