//! What a container sees, checked from inside (as root, on the real kernel):
//! its own PID 1, /proc, hostname, root filesystem, masked and read-only
//! paths, capabilities, seccomp, file descriptors, network.

mod run_common;
use run_common::*;

#[test]
fn pid1_is_the_command_and_proc_shows_only_its_processes() {
    let Some(b) = setup("containers") else { return };
    let out = b.sh(&[], "echo $$; ls /proc | grep -E '^[0-9]+$' | wc -l; cat /proc/1/cmdline | tr '\\0' ' '");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "the shell is PID 1: {out}");
    let n: usize = lines[1].trim().parse().unwrap();
    assert!(n <= 4, "only the container's processes are in /proc, saw {n}: {out}");
    assert!(lines[2].starts_with("sh -c"), "{out}");
}

#[test]
fn hostname_is_set() {
    let Some(b) = setup("containers") else { return };
    assert_eq!(b.sh(&["--hostname", "box1"], "hostname; cat /etc/hostname").trim(), "box1\nbox1");
    let out = b.sh(&[], "hostname; env");
    let h = out.lines().next().unwrap();
    assert!(h.len() == 12 && h.bytes().all(|c| c.is_ascii_hexdigit()), "default hostname is the short id: {h}");
    assert!(out.contains(&format!("HOSTNAME={h}")), "{out}");
}

#[test]
fn host_files_and_mounts_are_not_visible() {
    let Some(b) = setup("containers") else { return };
    let marker = format!("/tmp/ci-host-marker-{}", std::process::id());
    std::fs::write(&marker, "host").unwrap();
    let out = b.sh(&[], &format!("test -e {marker} && echo VISIBLE; test -e /work && echo WORK; cat /proc/mounts"));
    std::fs::remove_file(&marker).unwrap();
    assert!(!out.contains("VISIBLE") && !out.contains("WORK"), "{out}");
    for line in out.lines() {
        let mp = line.split(' ').nth(1).unwrap_or("");
        assert!(!mp.starts_with("/work") && !mp.starts_with("/tmp/ci-test") && !mp.contains("/containers/"), "host mount visible: {line}");
    }
    assert!(out.lines().next().unwrap().contains(" / overlay "), "the root is the overlay: {out}");
}

#[test]
fn masked_paths_read_empty() {
    let Some(b) = setup("containers") else { return };
    let out = b.sh(&[], "for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/interrupts; do \
        if [ -e $p ]; then echo \"$p $(wc -c < $p)\"; fi; done; \
        for d in /proc/acpi /proc/scsi /sys/firmware /sys/devices/virtual/powercap; do if [ -d $d ]; then echo \"$d $(ls -A $d | wc -l)\"; fi; done");
    assert!(out.contains("/proc/keys ") && out.contains("/sys/firmware "), "the probes ran: {out}");
    for line in out.lines() {
        let (p, n) = line.rsplit_once(' ').unwrap();
        assert_eq!(n, "0", "{p} must read empty: {out}");
    }
}

/// The read-only paths (/proc/sys, /proc/irq, /proc/bus, /proc/sysrq-trigger)
/// and /sys: each probe would succeed on a writable mount (an open for
/// writing that writes nothing; for /sys, writing lo's own tx_queue_len
/// back, with CAP_NET_ADMIN so that only the mount can refuse it), and
/// does under --privileged, where docker mounts them writable.
#[test]
fn readonly_paths_and_sys_refuse_writes() {
    let Some(b) = setup("containers") else { return };
    // A file of /proc/bus that root may open for writing on a writable /proc.
    let bus = std::fs::read_dir("/proc/bus/pci")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .next()
        .unwrap_or_else(|| "/proc/bus/input/devices".into());
    assert!(bus.exists(), "no /proc/bus file to probe on this host");
    let sysrq = std::path::Path::new("/proc/sysrq-trigger").exists();
    let files = ["/proc/sys/kernel/core_pattern", "/proc/irq/default_smp_affinity", bus.to_str().unwrap(), "/proc/sysrq-trigger"];
    let probe = format!(
        "for f in {}; do (: >> $f) 2>&1 && echo \"OPENED $f\"; done; \
         v=$(cat /sys/class/net/lo/tx_queue_len); (echo $v > /sys/class/net/lo/tx_queue_len) 2>&1 && echo WROTE-sys; \
         cat /proc/self/mountinfo",
        files.join(" ")
    );
    let out = b.sh(&["--cap-add", "NET_ADMIN"], &probe);
    for f in &files[..3] {
        assert!(out.contains(&format!("{f}: Read-only file system")), "{f}: {out}");
    }
    if sysrq {
        assert!(out.contains("/proc/sysrq-trigger: Read-only file system"), "{out}");
    } else {
        // This kernel has no magic SysRq (CONFIG_MAGIC_SYSRQ off): nothing to write to, inside either.
        assert!(out.contains("can't create /proc/sysrq-trigger"), "{out}");
    }
    assert!(out.contains("tx_queue_len: Read-only file system") && !out.contains("WROTE") && !out.contains("OPENED"), "{out}");
    let m = parse_mountinfo(&out);
    assert_eq!(mount_at(&m, "/sys").fstype, "sysfs");
    for p in ["/sys", "/proc/sys", "/proc/irq", "/proc/bus"] {
        assert!(mount_at(&m, p).options.iter().any(|o| o == "ro"), "{p} is mounted read-only: {out}");
    }
    // The same probes get through where the mounts are writable.
    let out = b.sh(&["--privileged"], &probe);
    for f in &files[..if sysrq { 4 } else { 3 }] {
        assert!(out.contains(&format!("OPENED {f}")), "--privileged: {f}: {out}");
    }
    assert!(out.contains("WROTE-sys"), "--privileged: /sys is writable, as docker's: {out}");
}

/// /dev is our own tmpfs with exactly docker's device nodes, a devpts
/// instance of its own, /dev/shm and /dev/mqueue; /dev/console only with -t.
#[test]
fn dev_holds_the_standard_devices_and_mounts() {
    let Some(b) = setup("containers") else { return };
    // While the host has a pty open, the container's devpts shows none of them.
    let host_pty = nix::pty::openpty(None, None).unwrap();
    let host_pts = nix::unistd::ttyname(&host_pty.slave).unwrap();
    let out = b.sh(&[], "for d in null zero full random urandom tty; do stat -c \"%n %F %t:%T %a\" /dev/$d; done; \
        (echo x > /dev/full) 2>&1; echo \"null:$(wc -c < /dev/null) zero:$(head -c 3 /dev/zero | od -An -tx1)\"; \
        echo \"pts:$(ls /dev/pts | tr '\\n' ' ')\"; echo \"ptmx:$(readlink /dev/ptmx)\"; \
        test -e /dev/console && echo CONSOLE; echo data > /dev/shm/f && echo shm-ok; cat /proc/self/mountinfo");
    for want in [
        "/dev/null character special file 1:3 666",
        "/dev/zero character special file 1:5 666",
        "/dev/full character special file 1:7 666",
        "/dev/random character special file 1:8 666",
        "/dev/urandom character special file 1:9 666",
        "/dev/tty character special file 5:0 666",
        "write error: No space left on device",
        "null:0 zero: 00 00 00",
        "pts:ptmx \n",
        "ptmx:pts/ptmx",
        "shm-ok",
    ] {
        assert!(out.contains(want), "{want:?} in {out}");
    }
    assert!(!out.contains("CONSOLE"), "/dev/console exists only with -t: {out}");
    let m = parse_mountinfo(&out);
    for (p, fstype) in [("/dev", "tmpfs"), ("/dev/shm", "tmpfs"), ("/dev/mqueue", "mqueue"), ("/dev/pts", "devpts")] {
        assert_eq!(mount_at(&m, p).fstype, fstype, "{p}: {out}");
    }
    // newinstance: a devpts superblock of its own, none of the host's.
    let host = parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    let pts = &mount_at(&m, "/dev/pts").dev;
    assert!(host.iter().filter(|h| h.fstype == "devpts").all(|h| &h.dev != pts), "the container's devpts {pts} is not the host's");
    assert!(host_pts.exists());
}

#[test]
fn default_capabilities_no_new_privs_and_seccomp() {
    let Some(b) = setup("containers") else { return };
    let out = b.sh(&[], "grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status");
    for want in ["CapInh:\t0000000000000000", "CapPrm:\t00000000a80425fb", "CapEff:\t00000000a80425fb", "CapBnd:\t00000000a80425fb", "CapAmb:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"] {
        assert!(out.contains(want), "{want} in {out}");
    }
    // A non-root user has no capabilities at all (CVE-2016-8867, CVE-2022-29162).
    let out = b.sh(&["--user", "1000"], "grep -E '^Cap(Inh|Prm|Eff|Amb)' /proc/self/status");
    assert_eq!(out.matches("0000000000000000").count(), 4, "{out}");
    // --cap-drop / --cap-add.
    let out = b.sh(&["--cap-drop", "ALL", "--cap-add", "CHOWN"], "grep CapEff /proc/self/status");
    assert!(out.contains("0000000000000001"), "{out}");
}

#[test]
fn seccomp_blocks_what_dockers_profile_blocks() {
    let Some(b) = setup("containers") else { return };
    // swapoff is refused by the profile even with every capability…
    let blocked = b.run(&["--rm", "--cap-add", "ALL"], &["swapoff", "/nonexistent"]);
    assert!(text(&blocked.stderr).contains("Operation not permitted"), "{}", text(&blocked.stderr));
    // …and reaches the kernel without the filter.
    let open = b.run(&["--rm", "--cap-add", "ALL", "--security-opt", "seccomp=unconfined"], &["swapoff", "/nonexistent"]);
    assert!(text(&open.stderr).contains("No such file"), "{}", text(&open.stderr));
    // unshare (a new user namespace needs no capability, only the filter stops it).
    let u = b.run(&["--rm"], &["unshare", "-U", "true"]);
    assert_ne!(code(&u), 0);
    assert!(text(&u.stderr).contains("Operation not permitted"), "{}", text(&u.stderr));
    // Without no_new_privs (as docker runs by default) the filter is still installed and still refuses.
    let nnp_off = b.run(&["--rm", "--security-opt", "no-new-privileges=false"], &["sh", "-c", "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; unshare -U true"]);
    let out = text(&nnp_off.stdout);
    assert!(out.contains("NoNewPrivs:\t0") && out.contains("Seccomp:\t2"), "{out} {}", text(&nnp_off.stderr));
    assert!(text(&nnp_off.stderr).contains("Operation not permitted"), "{}", text(&nnp_off.stderr));
    // CVE-2022-0492: mounting a cgroup hierarchy (release_agent) is impossible.
    let m = b.run(&["--rm"], &["sh", "-c", "mkdir -p /mnt && mount -t cgroup -o rdma cgroup /mnt"]);
    assert_ne!(code(&m), 0);
}

#[test]
fn network_none_has_only_loopback_up_and_host_shares_the_hosts() {
    let Some(b) = setup("containers") else { return };
    let out = b.sh(&[], "ls /sys/class/net; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags");
    assert!(out.starts_with("lo\n"), "{out}");
    assert!(out.lines().nth(2).unwrap().trim().trim_start_matches("0x").parse::<u32>().map(|f| f & 1 == 1).unwrap_or(false) || out.contains("0x9"), "lo is up: {out}");
    let host = std::fs::read_dir("/sys/class/net").unwrap().count();
    let out = b.sh(&["--network", "host"], "ls /sys/class/net | wc -l");
    assert_eq!(out.trim().parse::<usize>().unwrap(), host);
    // CVE-2020-15257: ci-run opens no abstract unix socket a host-network container could reach.
    let out = b.sh(&["--network", "host"], "cat /proc/net/unix");
    assert!(!out.lines().any(|l| l.contains("@ci")), "{out}");
}

/// runc's create.bats "detect fd leak": inside, PID 1 holds only 0, 1, 2 —
/// even when ci-run itself was started with more descriptors open.
#[test]
fn no_descriptor_of_the_tool_leaks_in() {
    let Some(b) = setup("containers") else { return };
    use std::os::unix::process::CommandExt;
    let host_dir = std::fs::File::open("/etc").unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&host_dir);
    let mut c = b.command(&b.rootfs, &["--rm"], &["sh", "-c", "ls /proc/1/fd; readlink /proc/1/cwd"]);
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
}

/// CVE-2024-21626: -w /proc/self/fd/N never gives a host working directory.
#[test]
fn workdir_through_proc_self_fd_is_refused() {
    let Some(b) = setup("containers") else { return };
    for n in 3..64 {
        let w = format!("/proc/self/fd/{n}");
        let out = b.run(&["--rm", "-w", &w], &["pwd"]);
        if out.status.success() {
            let pwd = text(&out.stdout);
            assert!(!pwd.contains("(unreachable)") && pwd.starts_with('/'), "-w {w}: {pwd}");
            panic!("-w {w} was accepted: {pwd}");
        }
        assert_eq!(code(&out), 125, "-w {w}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("symbolic link"), "-w {w}: {}", text(&out.stderr));
    }
}

/// CVE-2019-19921, CVE-2026-41579: /proc, /sys or /dev as symlinks in the
/// image are refused; a symlinked /dev/null is replaced by our own /dev.
#[test]
fn symlinked_special_directories_are_refused() {
    let Some(b) = setup("containers") else { return };
    for (dir, target) in [("proc", "/tmp/fake"), ("sys", "/x"), ("dev", "../../../.."), ("dev", "/tmp/x")] {
        let r = b.variant(&format!("rootfs-{dir}-{}", target.replace('/', "_")));
        std::fs::remove_dir(r.join(dir)).unwrap();
        std::os::unix::fs::symlink(target, r.join(dir)).unwrap();
        let out = b.run_in(&r, &["--rm"], &["true"]);
        assert_eq!(code(&out), 125, "/{dir} -> {target}");
        let err = text(&out.stderr);
        assert!(err.contains(&format!("/{dir}")) && err.contains("symbolic link"), "{err}");
    }
    let r = b.variant("rootfs-devnull");
    std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", r.join("dev/null")).unwrap();
    let out = b.run_in(&r, &["--rm"], &["sh", "-c", "stat -c '%F %t:%T' /dev/null; echo x > /proc/sys/kernel/core_pattern || echo refused"]);
    let s = text(&out.stdout);
    assert!(s.contains("character special file 1:3") && s.contains("refused"), "{s} {}", text(&out.stderr));
    assert!(b.containers().is_empty(), "--rm leaves nothing, even after a refused start");
}

/// CVE-2025-52565, CVE-2025-31133, CVE-2026-41579: an image's own /dev
/// entries, symlinks to host paths, never aim what ci-run mounts or
/// creates there. Under -t, /dev/console is the container's pty (major 136)
/// even when the image has /dev/console and /dev/pts as links to host
/// paths or a /dev/pts of its own; a /dev/null link to a host file does
/// not redirect the masks; /dev/shm -> / does not put /dev/shm on a root.
#[test]
fn image_dev_entries_redirect_nothing() {
    let Some(b) = setup("containers") else { return };
    let sentinel = b.root.path().join("host-sentinel");
    std::fs::create_dir(&sentinel).unwrap();
    std::fs::write(sentinel.join("file"), "host\n").unwrap();
    let host_file = sentinel.join("file");
    let unchanged = || {
        assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "host\n", "the host file is untouched");
        let names: Vec<_> = std::fs::read_dir(&sentinel).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["file"], "nothing created in the host directory");
    };
    let console_check = "stat -L -c 'console %F %t' /dev/console; tty; echo via-console > /dev/console; \
        grep ' /dev/console \\| /dev/pts ' /proc/self/mountinfo";
    // 1. /dev/console and /dev/pts are links to host paths.
    let r = b.variant("rootfs-dev-links");
    std::os::unix::fs::symlink(&host_file, r.join("dev/console")).unwrap();
    std::os::unix::fs::symlink(&sentinel, r.join("dev/pts")).unwrap();
    // 2. A /dev/pts of the image's own, whose "0" and "ptmx" lead to the host file.
    let r2 = b.variant("rootfs-dev-pts-dir");
    std::fs::create_dir(r2.join("dev/pts")).unwrap();
    std::os::unix::fs::symlink(&host_file, r2.join("dev/pts/0")).unwrap();
    std::os::unix::fs::symlink(&host_file, r2.join("dev/pts/ptmx")).unwrap();
    std::fs::write(r2.join("dev/console"), "").unwrap();
    for rootfs in [&r, &r2] {
        let out = b.run_in(rootfs, &["--rm", "-t"], &["sh", "-c", console_check]);
        let s = text(&out.stdout);
        assert!(out.status.success(), "{s} {}", text(&out.stderr));
        assert!(s.contains("console character special file 88") && s.contains("/dev/pts/0") && s.contains("via-console"), "{s}");
        let m = parse_mountinfo(&s);
        assert_eq!(mount_at(&m, "/dev/console").dev, mount_at(&m, "/dev/pts").dev, "/dev/console is a pty of the container's devpts: {s}");
        unchanged();
    }
    // 3. /dev/null -> a host file: the masks still hide, and hide with the real null device.
    let r3 = b.variant("rootfs-devnull-host");
    std::os::unix::fs::symlink(&host_file, r3.join("dev/null")).unwrap();
    let out = b.run_in(&r3, &["--rm"], &["sh", "-c", "stat -c '%F %t:%T' /dev/null; wc -c < /proc/keys; cat /proc/keys; (echo x > /proc/keys) 2>&1; grep ' /proc/keys ' /proc/self/mountinfo"]);
    let s = text(&out.stdout);
    assert!(s.starts_with("character special file 1:3\n0\n") && !s.contains("host"), "{s} {}", text(&out.stderr));
    unchanged();
    // 4. /dev/shm -> /: the container's /dev/shm is its own tmpfs, not the host's root or its own.
    let r4 = b.variant("rootfs-shm-root");
    std::fs::create_dir(r4.join("dev/x")).unwrap();
    std::os::unix::fs::symlink("/", r4.join("dev/shm")).unwrap();
    let marker = format!("ci-shm-marker-{}", std::process::id());
    let out = b.run_in(&r4, &["--rm"], &["sh", "-c", &format!("echo x > /dev/shm/{marker} && ls /dev/shm; test -e /{marker} && echo IN-ROOT; cat /proc/self/mountinfo")]);
    let s = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(s.starts_with(&format!("{marker}\n")) && !s.contains("IN-ROOT"), "{s}");
    assert_eq!(mount_at(&parse_mountinfo(&s), "/dev/shm").fstype, "tmpfs");
    assert!(!std::path::Path::new(&format!("/{marker}")).exists() && !r4.join(&marker).exists(), "nothing written to a root");
    assert!(b.containers().is_empty());
}

/// The root filesystem: writes go to the container's own layer; --read-only.
#[test]
fn writes_stay_in_the_container_and_read_only_root() {
    let Some(b) = setup("containers") else { return };
    b.sh(&[], "echo data > /bin/new-file && rm /bin/ls");
    assert!(!b.rootfs.join("bin/new-file").exists() && b.rootfs.join("bin/ls").exists(), "the rootfs below is never changed");
    let out = b.run(&["--rm", "--read-only"], &["sh", "-c", "touch /x && echo WROTE; touch /tmp/y && echo WROTE-TMP; echo ok"]);
    assert!(text(&out.stdout).contains("ok") && !text(&out.stdout).contains("WROTE"), "{}", text(&out.stdout));
}

#[test]
fn twenty_containers_at_once() {
    let Some(b) = setup("containers") else { return };
    let children: Vec<_> = (0..20)
        .map(|i| b.command(&b.rootfs, &["--rm"], &["sh", "-c", &format!("echo c{i} > /tmp/f; cat /tmp/f")]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap())
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "container {i}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), format!("c{i}"));
    }
    assert!(b.containers().is_empty());
}

/// --explain prints the recipe: each kernel step with its shell equivalent.
#[test]
fn explain_prints_the_recipe() {
    let Some(b) = setup("containers") else { return };
    let out = b.run(&["--rm", "--explain", "--memory", "64m"], &["true"]);
    assert!(out.status.success());
    let e = text(&out.stderr);
    // The memory limit's file is the layout's: v1 memory.limit_in_bytes, v2 memory.max.
    let memory_file = match ci_tests::container_cgroup_dir("memory").0 {
        ci_core::cgroups::Version::V1 => "memory.limit_in_bytes",
        ci_core::cgroups::Version::V2 => "memory.max",
    };
    for step in ["unshare --mount --pid --fork", "mount -t overlay overlay -o lowerdir=", "mount -t proc", "mount -t devpts", "pivot_root . .", "hostname ", "capsh --drop", "seccomp filter", "exec true", memory_file, "mount -t cgroup", "cgroups: "] {
        assert!(e.contains(step), "--explain shows {step:?}:\n{e}");
    }
    assert!(text(&out.stdout).is_empty(), "explanations go to stderr only");
}
