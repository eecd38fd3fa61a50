//! The container's cgroup: limits, the devices allow-list, read-only
//! cgroup mounts, and nothing left behind.

mod run_common;
use run_common::*;

use std::os::unix::fs::MetadataExt;

use ci_core::cgroups::Version;
use ci_tests::{cgroup_dirs, container_cgroup_dir};

/// The file that holds the memory limit, as a container sees it (v1
/// `memory.limit_in_bytes`, v2 `memory.max`).
fn memory_limit_file() -> String {
    match container_cgroup_dir("memory") {
        (Version::V1, dir) => format!("{dir}/memory.limit_in_bytes"),
        (Version::V2, dir) => format!("{dir}/memory.max"),
    }
}

#[test]
fn memory_limit_kills_a_hog_with_137() {
    let Some(b) = setup("containers") else { return };
    let script = format!("cat {}; x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done", memory_limit_file());
    let out = b.run(&["--name", "hog", "--memory", "32m"], &["sh", "-c", &script]);
    assert_eq!(code(&out), 137, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "33554432");
    let id = b.containers()[0].file_name().unwrap().to_string_lossy().to_string();
    let left = cgroup_dirs(&format!("ci/{id}"));
    assert!(left.is_empty(), "the cgroup is removed with the process: {left:?}");
}

#[test]
fn memory_swap_and_cpu_shares_reach_the_kernel_files() {
    let Some(b) = setup("containers") else { return };
    let (v, mem) = container_cgroup_dir("memory");
    let (_, cpu) = container_cgroup_dir("cpu");
    // v1: memsw is memory + swap, cpu.shares as given; v2: swap alone, shares mapped to cpu.weight.
    let (swap_file, shares_file, want_swap, want_shares) = match v {
        Version::V1 => ("memory.memsw.limit_in_bytes", "cpu.shares", (96u64 << 20).to_string(), "512".to_string()),
        Version::V2 => ("memory.swap.max", "cpu.weight", (64u64 << 20).to_string(), ci_core::cgroups::v2::shares_to_weight(512).to_string()),
    };
    let out = b.sh(&["--memory", "32m", "--memory-swap", "96m", "--cpu-shares", "512"], &format!("cat {mem}/{swap_file} {cpu}/{shares_file}"));
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), [want_swap.as_str(), want_shares.as_str()], "{out}");
    // -1: unlimited swap; --memory-swap smaller than --memory, or without it, is refused before anything runs.
    let out = b.sh(&["--memory", "32m", "--memory-swap", "-1"], &format!("cat {mem}/{swap_file}"));
    assert!(out.trim() == "max" || out.trim().parse::<u64>().unwrap() > 1 << 60, "{out}");
    for (flags, want) in [(&["--memory", "64m", "--memory-swap", "32m"][..], "smaller than --memory"), (&["--memory-swap", "64m"][..], "needs --memory")] {
        let o = b.run(flags, &["true"]);
        assert_eq!(code(&o), 125, "{flags:?}");
        assert!(text(&o.stderr).contains(want), "{flags:?}: {}", text(&o.stderr));
    }
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    let Some(b) = setup("containers") else { return };
    // Shell builtins only once the limit is reached: no fork is needed to report.
    // pids.* are the same files in v1 and v2.
    let (_, pids) = container_cgroup_dir("pids");
    let out = b.sh(&["--pids-limit", "20"], &format!("(i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); done) 2>/dev/null; read n < {pids}/pids.current; read m < {pids}/pids.max; read e < {pids}/pids.events; echo $n $m $e"));
    let f: Vec<&str> = out.split_whitespace().collect();
    let n: u32 = f[0].parse().unwrap();
    assert!((15..=20).contains(&n), "the fork loop stopped at the limit: {out}");
    assert_eq!(f[1], "20");
    assert!(f[2] == "max" && f[3].parse::<u32>().unwrap() > 0, "forks were refused: {out}");
}

#[test]
fn cgroup_mounts_are_read_only_and_show_the_containers_own_cgroup() {
    let Some(b) = setup("containers") else { return };
    let (_, memory) = container_cgroup_dir("memory");
    let out = b.sh(&[], &format!("grep cgroup /proc/mounts; cat /proc/self/cgroup; mkdir {memory}/x 2>&1 && echo MADE; true"));
    for l in out.lines().filter(|l| l.contains(" cgroup") || l.contains("/sys/fs/cgroup ")) {
        assert!(l.split(' ').nth(3).unwrap().split(',').any(|o| o == "ro"), "every cgroup mount is ro: {l}");
    }
    // The memory hierarchy is mounted where the layout says (cgroup or cgroup2).
    assert!(out.lines().any(|l| l.split(' ').nth(1) == Some(memory.as_str()) && l.split(' ').nth(2).is_some_and(|t| t.starts_with("cgroup"))), "{out}");
    for l in out.lines().filter(|l| l.contains(":/") && l.split(':').count() == 3) {
        assert!(l.ends_with(":/"), "the cgroup namespace roots it at the container's cgroup: {l}");
    }
    assert!(!out.contains("MADE"));
}

/// CAP_MKNOD is in the default set, so the devices cgroup is what keeps a
/// container from reading the host's disk.
#[test]
fn devices_outside_the_allow_list_cannot_be_opened() {
    let Some(b) = setup("containers") else { return };
    let rdev = std::fs::metadata("/").unwrap().dev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let r = b.variant("rootfs-dev");
    // A char device shipped in the image (1:1 is /dev/mem).
    nix::sys::stat::mknod(&r.join("mem"), nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::from_bits_truncate(0o666), libc::makedev(1, 1)).unwrap();
    let script = format!("mknod /tmp/disk b {major} {minor}; head -c 1 /tmp/disk > /dev/null; echo disk=$?; head -c 1 /mem > /dev/null; echo mem=$?; head -c 1 /dev/zero > /dev/null; echo zero=$?");
    let out = b.run_in(&r, &["--rm"], &["sh", "-c", &script]);
    let s = text(&out.stdout);
    let e = text(&out.stderr);
    assert!(s.contains("disk=1") && s.contains("mem=1") && s.contains("zero=0"), "{s}\n{e}");
    assert!(e.matches("Operation not permitted").count() >= 2, "{e}");
    // --device adds one.
    let out = b.run_in(&r, &["--rm", "--device", "/dev/null:/dev/extra-null"], &["sh", "-c", "echo x > /dev/extra-null && echo ok"]);
    assert!(text(&out.stdout).contains("ok"), "{} {}", text(&out.stdout), text(&out.stderr));
}
