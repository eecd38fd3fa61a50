//! cgroup v2 for real. The CI machine mounts cgroup v1 hierarchies, so the
//! v2 code (shared/src/cgroups: v2.rs, the eBPF device program, stats) is
//! run here in a VM: qemu boots the host's kernel package with
//! `cgroup_no_v1=all` and an initramfs holding busybox, ci-build, ci-run
//! and ci-monitor from target/debug, the overlay and virtio modules, a
//! busybox image to import, and tests/cgroup_v2_vm/guest.sh as /init. The
//! guest runs real containers and reports `RESULT NAME VALUE` lines; this
//! side asserts them (see support::vm for the machinery).
//!
//! TCG (software emulation) by default, so it runs without KVM; the guest's
//! work is kept small. Build the tools first (`cargo build --workspace`):
//! `cargo test --test cgroup_v2_vm` does not rebuild them.

use std::collections::BTreeMap;
use std::time::Duration;

use ci_tests::vm::{self, Boot, Initramfs, Kernel, Vm};
use ci_tests::{busybox, busybox_rootfs_tar, suite_binary, tool_path};

const GUEST: &str = include_str!("cgroup_v2_vm/guest.sh");
/// What the guest's disk (`/dev/vda`) starts with.
const DISK_MARKER: &str = "ci-vm-disk-marker";
/// The whole VM, boot to poweroff (well under a minute under TCG here).
const VM_TIME_LIMIT: Duration = Duration::from_secs(300);
/// Host suites that read cgroup files through the layout code, run again in
/// the guest to show they hold on a v2 machine too: (suite, test filter).
const SUITES_IN_GUEST: [(&str, &str); 3] =
    [("run_resources", ""), ("run_isolation", "explain_prints_the_recipe"), ("lifecycle_state", "stats_reports_the_memory_a_container_uses")];

#[test]
fn cgroup_v2_limits_devices_and_cleanup_in_a_vm() {
    let Some(qemu) = vm::qemu() else { return };
    let Some(kernel) = Kernel::find() else { return };
    let Some(bb) = busybox() else { return };
    if vm::program_on_path("objcopy").is_none() {
        ci_tests::skip("objcopy is not installed (apt-get install binutils): the debug builds are too big for the VM with their debug info");
        return;
    }
    let dir = tempfile::Builder::new().prefix("ci-vm-").tempdir().unwrap();

    let mut initrd = Initramfs::new();
    initrd.file("/bin/busybox", 0o755, &std::fs::read(&bb).unwrap());
    for d in ["/proc", "/sys", "/dev", "/tmp", "/root"] {
        initrd.dir(d, 0o755);
    }
    // As on any system: `ci-run top` names users from the host's files.
    initrd.file("/etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n");
    initrd.file("/etc/group", 0o644, b"root:x:0:\n");
    for tool in ["ci-build", "ci-run", "ci-monitor"] {
        initrd.program(&tool_path(tool), &format!("/ci/bin/{tool}"), dir.path()).unwrap_or_else(|e| panic!("{e}"));
    }
    // In deps/ below the tools, as in target/debug: there they find ci-run.
    let mut suites = String::new();
    for (suite, filter) in SUITES_IN_GUEST {
        match suite_binary(suite) {
            Some(exe) => {
                initrd.program(&exe, &format!("/ci/bin/deps/{suite}"), dir.path()).unwrap_or_else(|e| panic!("{e}"));
                suites.push_str(&format!("{suite} {filter}\n"));
            }
            None => {
                ci_tests::skip(&format!("tests/{suite}.rs is not built, so the VM cannot run it on cgroup v2 (cargo build --workspace --all-targets)"));
            }
        }
    }
    initrd.file("/ci/suites", 0o644, suites.as_bytes());
    let modules = initrd.modules(&kernel, &["overlay", "virtio_pci", "virtio_blk"]).unwrap_or_else(|e| panic!("{e}"));
    initrd.file("/ci/busybox.tar", 0o644, &busybox_rootfs_tar().unwrap());
    initrd.file("/init", 0o755, GUEST.as_bytes());
    let initrd_path = dir.path().join("initrd.cpio");
    let archive = initrd.finish();
    eprintln!("initramfs: {} MiB", archive.len() >> 20);
    std::fs::write(&initrd_path, archive).unwrap();
    // 4 MiB: the guest reads its first bytes, a container the MiB from 2 MiB on.
    let mut disk = DISK_MARKER.as_bytes().to_vec();
    disk.resize(4 << 20, 0);
    let disk_path = dir.path().join("disk.img");
    std::fs::write(&disk_path, disk).unwrap();

    let boot = Boot {
        kernel: kernel.image.clone(),
        initrd: initrd_path,
        // No v1 hierarchy at all; kernel messages below errors stay off the
        // console; RDRAND (-cpu max) seeds the RNG at once.
        cmdline: "cgroup_no_v1=all loglevel=3 random.trust_cpu=on".to_string(),
        memory_mib: 512,
        disks: vec![disk_path],
        results: dir.path().join("results.txt"),
    };
    eprintln!("booting {} with {} modules: {modules:?}", kernel.image.display(), modules.len());
    let ended = Vm::start(&qemu, &boot).unwrap_or_else(|e| panic!("{e}")).wait(VM_TIME_LIMIT);
    eprintln!("the VM ran for {:.1} s", ended.elapsed.as_secs_f64());
    let context = format!("\n--- guest console (last lines) ---\n{}", ended.console_tail(60));
    assert!(ended.powered_off, "the VM did not power off within {VM_TIME_LIMIT:?}{context}");
    let r = vm::parse_results(&ended.results).unwrap_or_else(|e| panic!("{e}{context}"));
    let get = |name: &str| r.get(name).unwrap_or_else(|| panic!("the guest did not report {name}{context}")).as_str();
    assert_eq!(get("done"), "1", "the guest script ran to its end{context}");
    check(&r, &get, &context);
}

fn check<'a>(r: &BTreeMap<String, String>, get: &dyn Fn(&str) -> &'a str, context: &str) {
    // The guest is what the test means it to be: cgroup2 only, with the controllers.
    assert!(!r.contains_key("insmod.failed"), "insmod failed: {:?}{context}", r.get("insmod.failed"));
    assert_eq!(get("env.v1_mounts"), "0", "no cgroup v1 hierarchy in the guest");
    for c in ["cpu", "memory", "pids", "io"] {
        assert!(get("env.controllers").split(' ').any(|x| x == c), "the guest's cgroup2 root has {c}: {}", get("env.controllers"));
    }
    assert_eq!(get("import.exit"), "0", "ci-build import{context}");

    // ci detects v2 and writes v2 files, with the device program.
    assert_eq!(get("layout.exit"), "0", "ci-run --rm true{context}");
    assert!(get("layout.detected").starts_with("cgroup v2"), "layout: {}", get("layout.detected"));
    assert!(get("layout.writes_memory_max") != "0", "--explain shows memory.max written");
    assert_eq!(get("layout.writes_v1_files"), "0", "no v1 file is written");
    assert_ne!(get("layout.device_program"), "0", "the device rules become an eBPF program");
    assert_eq!(get("layout.cgroup_after_rm"), "gone", "the cgroup (and its parent ci) go with the container");

    // --memory 32m: memory.max holds it, swap as much again, the hog dies by OOM.
    assert_eq!(get("memory.exit"), "137", "the memory hog is killed: {}{context}", get("memory.stderr"));
    assert_eq!(get("memory.max"), (32u64 << 20).to_string());
    assert_eq!(get("memory.swap_max"), (32u64 << 20).to_string(), "docker's default: swap as much as memory");
    assert_ne!(get("memory.oom_messages"), "0", "the memory cgroup's OOM killer did it");
    assert_eq!(get("memory.cgroup_after_rm"), "gone");

    // --pids-limit 20: the fork loop stops at 20 and forks were refused.
    assert_eq!(get("pids.exit"), "0", "{}{context}", get("pids.stderr"));
    let f: Vec<&str> = get("pids.seen").split(' ').collect();
    assert_eq!(f.len(), 4, "pids.current pids.max and pids.events: {f:?}");
    let n: u32 = f[0].parse().unwrap();
    assert!((15..=20).contains(&n), "the fork loop stopped at the limit: {f:?}");
    assert_eq!(f[1], "20", "pids.max");
    assert!(f[2] == "max" && f[3].parse::<u32>().unwrap() > 0, "pids.events counts refused forks: {f:?}");
    assert_eq!(get("pids.cgroup_after_rm"), "gone");

    // --cpus 0.5: 50 ms every 100 ms, and a busy loop is throttled.
    assert_eq!(get("cpus.exit"), "0", "{}{context}", get("cpus.stderr"));
    assert_eq!(get("cpus.stderr"), "");
    assert_eq!(get("cpus.max"), "50000 100000");
    assert!(get("cpus.throttled").parse::<u64>().unwrap_or(0) > 0, "nr_throttled: {:?}", get("cpus.throttled"));

    // The device program: the disk the guest itself reads cannot be opened
    // from the container, nor /dev/mem; the standard devices work.
    assert_eq!(get("devices.host_reads"), DISK_MARKER, "the disk is readable outside the container");
    assert_eq!(get("devices.exit"), "0", "{}{context}", get("devices.stderr"));
    assert_eq!(get("devices.mknod"), "0", "mknod is allowed (docker's c *:* m, b *:* m): {}", get("devices.stderr"));
    assert_eq!(get("devices.disk"), "1", "the disk {} cannot be opened: {}", get("devices.disk_number"), get("devices.stderr"));
    assert_eq!(get("devices.mem"), "1", "1:1 cannot be opened: {}", get("devices.stderr"));
    assert_eq!(get("devices.null"), "0", "/dev/null works");
    assert_eq!(get("devices.zero"), "4", "/dev/zero works");
    assert_eq!(get("devices.eperm"), "2", "both opens fail with EPERM: {}", get("devices.stderr"));
    // The container's own cgroup, read-only, at /sys/fs/cgroup: one cgroup2
    // mount with the host's options, rooted there by the cgroup namespace.
    assert_eq!(get("devices.cgroup_mkdir"), "1", "the cgroup mount is read-only");
    assert_eq!(get("devices.cgroup_self"), "0::/");
    let m: Vec<&str> = get("devices.cgroup_mount").split(' ').collect();
    assert_eq!(m[1..3], ["/sys/fs/cgroup", "cgroup2"], "{m:?}");
    let opts: Vec<&str> = m[3].split(',').collect();
    assert!(opts.contains(&"ro") && opts.contains(&"nsdelegate"), "{m:?}");
    // --device allows one.
    assert_eq!(get("device_flag.exit"), "0", "{}", get("device_flag.stderr"));
    assert_eq!(get("device_flag.reads"), DISK_MARKER);

    // Detached: stats read memory.current, io.stat and pids from the cgroup.
    assert_eq!(get("detached.exit"), "0", "{}", get("detached.stderr"));
    assert!(get("detached.ready").contains("ready"), "the container filled /dev/shm: {}", get("detached.ready"));
    assert_eq!(get("detached.memory_max"), (64u64 << 20).to_string());
    let current: u64 = get("detached.memory_current").parse().unwrap();
    assert!((20u64 << 20..48 << 20).contains(&current), "memory.current {current} for 20 MiB in /dev/shm");
    let stats = json(get("stats.json"));
    let usage = stats["memory_usage"].as_u64().unwrap();
    assert!((19u64 << 20..=current).contains(&usage), "stats memory_usage {usage} (memory.current {current})");
    assert_eq!(stats["memory_limit"].as_u64(), Some(64 << 20), "{stats}");
    assert_eq!(stats["pids"].as_u64(), Some(1), "{stats}");
    assert_eq!(get("detached.pids_current"), "1");
    let rbytes: u64 = get("detached.io_stat").split_whitespace().find_map(|f| f.strip_prefix("rbytes=")).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!(rbytes >= 1 << 20, "io.stat counts the 1 MiB read: {}", get("detached.io_stat"));
    assert_eq!(stats["block_read"].as_u64(), Some(rbytes), "stats reads io.stat: {stats}");
    assert_eq!(get("top.processes"), "1", "top lists the cgroup's one process");
    // exec joins the container's cgroup: its root, seen from the cgroup namespace.
    assert_eq!(get("exec.cgroup"), "0::/");
    assert_eq!(get("stop.exit"), "0", "{}", get("stop.stderr"));
    assert_eq!(get("rm.exit"), "0", "{}", get("rm.stderr"));
    assert_eq!(get("rm.cgroup"), "gone");

    // CPU % from cpu.stat, below the quota; rm -f kills every process of the cgroup.
    assert_eq!(get("busy.pids_before"), "3");
    let busy = json(get("busy.stats"));
    let cpu = busy["cpu_percent"].as_f64().unwrap();
    assert!(cpu > 5.0 && cpu < 75.0, "a busy loop under --cpus 0.5: {cpu}% ({busy})");
    assert_eq!(busy["pids"].as_u64(), Some(3), "{busy}");
    assert_eq!(get("busy.rm_exit"), "0", "{}", get("busy.rm_stderr"));
    assert_eq!(get("busy.cgroup"), "gone");

    // The run-time state wiped: PID 1 found through the cgroup.
    assert_eq!(get("unseen.pid_matches"), "1", "ps shows the container running with its pid");
    assert_eq!(get("unseen.stop_exit"), "0", "{}", get("unseen.stderr"));
    assert_eq!(get("unseen.rm_exit"), "0", "{}", get("unseen.stderr"));
    assert_eq!(get("unseen.cgroup"), "gone");

    // Restarted twice, each time in a fresh cgroup of the same name.
    assert_eq!(get("restart.status"), "\"status\":\"exited\"");
    assert_eq!(get("restart.restart_count"), "\"restart_count\":2");
    assert_eq!(get("restart.exit_code"), "\"exit_code\":3");
    assert_eq!(get("restart.logs"), "0::/ 0::/ 0::/", "three runs, each in its cgroup");
    assert_eq!(get("restart.rm_exit"), "0", "{}", get("restart.stderr"));

    // A RUN step of a build, in its own cgroup.
    assert_eq!(get("build.exit"), "0", "{}", get("build.stderr"));
    assert_eq!(get("build.ran"), "0::/");

    for (suite, _) in SUITES_IN_GUEST.iter().filter(|(s, _)| r.contains_key(&format!("suite.{s}"))) {
        let v = get(&format!("suite.{suite}"));
        assert!(v.starts_with("0 test result: ok."), "tests/{suite}.rs in the v2 guest: {v}{context}");
    }

    assert_eq!(get("left.containers"), "0");
    assert_eq!(get("left.cgroups"), "gone");
    assert_eq!(get("left.processes"), "0");
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
