#!/bin/busybox sh
# PID 1 of the VM that tests/cgroup_v2_vm.rs boots with cgroup_no_v1=all:
# the only cgroup hierarchy is cgroup2, mounted as systemd mounts it on a
# modern distribution. It runs the real ci tools and reports what it saw as
# lines `RESULT NAME VALUE` on the second serial port (/dev/ttyS1); the host
# parses them and asserts. Everything else goes to the console (ttyS0),
# which the host shows when an assertion fails.

if [ ! -e /.on-tmpfs ]; then
	# Stage 1: / is the kernel's initramfs rootfs, which pivot_root (and
	# so ci-run) cannot move away from. Copy everything onto a tmpfs and
	# make that / with switch_root, as a real initramfs hands over to the
	# real root.
	/bin/busybox --install -s /bin
	export PATH=/bin
	mkdir /newroot
	mount -t tmpfs -o mode=755 root /newroot
	for f in /*; do [ "$f" = /newroot ] || cp -a "$f" /newroot/; done
	: > /newroot/.on-tmpfs
	exec switch_root /newroot /init
fi

export PATH=/ci/bin:/bin HOME=/root CIROOT=/var/lib/ci
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /tmp /run /root "$CIROOT"
mount -t devpts devpts /dev/pts
mount -t tmpfs shm /dev/shm
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup

exec 3> /dev/ttyS1
# result NAME VALUE...: one line, newlines in the value become spaces.
result() {
	n=$1
	shift
	v=$(printf '%s' "$*" | tr '\n' ' ')
	echo "RESULT $n $v" >&3
	echo "RESULT $n $v"
}
# Each ci command gets a minute: a hang costs that, not the whole VM's time.
t() { timeout 60 "$@"; }
# Whether a path exists, as a word.
there() { if [ -e "$1" ]; then echo present; else echo gone; fi; }

while read -r m; do
	insmod "$m" || result insmod.failed "$m"
done < /lib/modules/load-order
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done

# As systemd does: the shell (and every process it starts) in a leaf
# cgroup of its own, not in the root.
mkdir /sys/fs/cgroup/init.scope
echo $$ > /sys/fs/cgroup/init.scope/cgroup.procs

result env.kernel "$(uname -r)"
result env.controllers "$(cat /sys/fs/cgroup/cgroup.controllers)"
result env.v1_mounts "$(grep -c ' - cgroup ' /proc/self/mountinfo)"

t ci-build import -t bb - < /ci/busybox.tar > /tmp/import.json
result import.exit $?

# The layout ci detects, and the files it writes for it.
t ci-run --rm --explain --memory 64m bb true 2> /tmp/explain
result layout.exit $?
result layout.detected "$(grep -m1 '^+ cgroups: ' /tmp/explain | sed 's/^+ cgroups: //')"
result layout.writes_memory_max "$(grep -c 'memory.max' /tmp/explain)"
result layout.writes_v1_files "$(grep -c 'limit_in_bytes' /tmp/explain)"
result layout.device_program "$(grep -c 'BPF_PROG_TYPE_CGROUP_DEVICE' /tmp/explain)"
result layout.cgroup_after_rm "$(there /sys/fs/cgroup/ci)"

# --memory: the limit in memory.max, and a hog killed by the OOM killer.
t ci-run --rm --memory 32m bb sh -c 'cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory.swap.max; x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done' > /tmp/out 2> /tmp/err
result memory.exit $?
result memory.max "$(sed -n 1p /tmp/out)"
result memory.swap_max "$(sed -n 2p /tmp/out)"
result memory.stderr "$(cat /tmp/err)"
result memory.oom_messages "$(dmesg | grep -c 'Memory cgroup out of memory')"
result memory.cgroup_after_rm "$(there /sys/fs/cgroup/ci)"

# --pids-limit: a fork loop stops at the limit (shell builtins only once it
# is reached: no fork is needed to report).
t ci-run --rm --pids-limit 20 bb sh -c '(i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done) 2>/dev/null; read n < /sys/fs/cgroup/pids.current; read m < /sys/fs/cgroup/pids.max; read e < /sys/fs/cgroup/pids.events; echo $n $m $e' > /tmp/out 2> /tmp/err
result pids.exit $?
result pids.seen "$(cat /tmp/out)"
result pids.stderr "$(cat /tmp/err)"
result pids.cgroup_after_rm "$(there /sys/fs/cgroup/ci)"

# --cpus: the quota in cpu.max, and a busy loop throttled by it.
t ci-run --rm --cpus 0.5 bb sh -c 'cat /sys/fs/cgroup/cpu.max; timeout 1 sh -c "while :; do :; done"; grep nr_throttled /sys/fs/cgroup/cpu.stat' > /tmp/out 2> /tmp/err
result cpus.exit $?
result cpus.max "$(sed -n 1p /tmp/out)"
result cpus.throttled "$(sed -n 's/^nr_throttled //p' /tmp/out)"
result cpus.stderr "$(grep -v '^Terminated$' /tmp/err)"

# Devices (the eBPF device program): the VM's disk, readable here, cannot be
# opened through a node made in the container (CAP_MKNOD is in the default
# set), nor can 1:1 (/dev/mem); /dev/null and /dev/zero work.
dev=$(cat /sys/block/vda/dev)
result devices.disk_number "$dev"
result devices.host_reads "$(head -c 17 /dev/vda)"
t ci-run --rm bb sh -c "mknod /tmp/disk b ${dev%:*} ${dev#*:}; echo mknod=\$?; head -c 17 /tmp/disk > /dev/null; echo disk=\$?; mknod /tmp/mem c 1 1; head -c 1 /tmp/mem > /dev/null; echo mem=\$?; echo x > /dev/null; echo null=\$?; echo zero=\$(head -c 4 /dev/zero | wc -c); mkdir /sys/fs/cgroup/x 2> /dev/null; echo cgroup_mkdir=\$?; echo cgroup_self=\$(cat /proc/self/cgroup); echo cgroup_mount=\$(grep ' /sys/fs/cgroup ' /proc/mounts)" > /tmp/out 2> /tmp/err
result devices.exit $?
while IFS='=' read -r k v; do result "devices.$k" "$v"; done < /tmp/out
result devices.eperm "$(grep -c 'Operation not permitted' /tmp/err)"
result devices.stderr "$(cat /tmp/err)"
# --device allows one.
t ci-run --rm --device /dev/vda:/dev/xvda bb head -c 17 /dev/xvda > /tmp/out 2> /tmp/err
result device_flag.exit $?
result device_flag.reads "$(cat /tmp/out)"
result device_flag.stderr "$(cat /tmp/err)"

# Detached: stats from the cgroup (memory.current, io.stat, pids), top and
# exec through it, stop and rm clean up. The container reads 1 MiB of the
# disk from 2 MiB on (not in the page cache yet: io.stat counts it).
t ci-run -d --name sd --memory 64m --device /dev/vda:/dev/xvda bb sh -c 'head -c 20971520 /dev/zero > /dev/shm/fill; dd if=/dev/xvda of=/dev/null bs=65536 skip=32 count=16 2> /dev/null; echo ready; exec sleep 1000' > /tmp/d.json 2> /tmp/err
result detached.exit $?
result detached.stderr "$(cat /tmp/err)"
id=$(sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p' /tmp/d.json)
i=0
until t ci-run logs sd 2> /dev/null | grep -q ready || [ $i -ge 60 ]; do sleep 0.5; i=$((i + 1)); done
result detached.ready "$(t ci-run logs sd 2>&1)"
result detached.memory_current "$(cat /sys/fs/cgroup/ci/$id/memory.current)"
result detached.pids_current "$(cat /sys/fs/cgroup/ci/$id/pids.current)"
result detached.memory_max "$(cat /sys/fs/cgroup/ci/$id/memory.max)"
result detached.io_stat "$(cat /sys/fs/cgroup/ci/$id/io.stat)"
result stats.json "$(t ci-run stats --no-stream sd 2>&1)"
result top.processes "$(t ci-run top sd 2>&1 | grep -c '"kind":"process"')"
result exec.cgroup "$(t ci-run exec sd cat /proc/self/cgroup 2>&1)"
t ci-run stop -t 1 sd > /dev/null 2> /tmp/err
result stop.exit $?
result stop.stderr "$(cat /tmp/err)"
t ci-run rm sd > /dev/null 2> /tmp/err
result rm.exit $?
result rm.stderr "$(cat /tmp/err)"
result rm.cgroup "$(there /sys/fs/cgroup/ci/$id)"

# A busy container with --cpus 0.5 shows CPU % from cpu.stat; rm -f of it,
# whose processes fork, kills them all (cgroup.kill).
t ci-run -d --name busy --cpus 0.5 bb sh -c 'sleep 1000 & sleep 1000 & while :; do :; done' > /tmp/d.json 2> /tmp/err
id=$(sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p' /tmp/d.json)
i=0
while [ "$(cat /sys/fs/cgroup/ci/$id/pids.current 2> /dev/null)" != 3 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
result busy.pids_before "$(cat /sys/fs/cgroup/ci/$id/pids.current 2>&1)"
result busy.stats "$(t ci-run stats --no-stream busy 2>&1)"
t ci-run rm -f busy > /dev/null 2> /tmp/err
result busy.rm_exit $?
result busy.rm_stderr "$(cat /tmp/err)"
result busy.cgroup "$(there /sys/fs/cgroup/ci)"

# The run-time state wiped (as by a reboot's tmpfs, here by hand) under a
# live container: ps finds its PID 1 through the cgroup; stop and rm work.
t ci-run -d --name unseen bb sleep 1000 > /tmp/d.json 2> /tmp/err
id=$(sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p' /tmp/d.json)
pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' /tmp/d.json)
rm -rf /run/ci
result unseen.pid_matches "$(t ci-run ps | grep -c "\"pid\":$pid[,}]")"
t ci-run stop -t 1 unseen > /dev/null 2> /tmp/err
result unseen.stop_exit $?
t ci-run rm unseen > /dev/null 2>> /tmp/err
result unseen.rm_exit $?
result unseen.stderr "$(cat /tmp/err)"
result unseen.cgroup "$(there /sys/fs/cgroup/ci/$id)"

# --restart on-failure:2: the monitor makes the cgroup again for each start.
t ci-run -d --name again --restart on-failure:2 bb sh -c 'cat /proc/self/cgroup; exit 3' > /dev/null 2> /tmp/err
i=0
until t ci-run inspect again 2> /dev/null | grep -q '"status":"exited"' || [ $i -ge 60 ]; do sleep 0.5; i=$((i + 1)); done
t ci-run inspect again > /tmp/out 2>&1
for k in status restart_count exit_code; do
	result "restart.$k" "$(grep -o "\"$k\":[^,}]*" /tmp/out | head -n 1)"
done
result restart.logs "$(t ci-run logs again 2>&1)"
t ci-run rm again > /dev/null 2>> /tmp/err
result restart.rm_exit $?
result restart.stderr "$(cat /tmp/err)"

# A build's RUN step runs in a container (and a cgroup) too.
mkdir /tmp/ctx
printf 'FROM bb\nRUN cat /proc/self/cgroup > /built\n' > /tmp/ctx/Dockerfile
t ci-build build -q -t built /tmp/ctx > /dev/null 2> /tmp/err
result build.exit $?
result build.stderr "$(cat /tmp/err)"
result build.ran "$(t ci-run --rm built cat /built 2>&1)"

# Suites of the host that derive cgroup paths from the layout, here on v2.
while read -r suite filter; do
	CITEST_STRICT=1 timeout 150 "/ci/bin/deps/$suite" --test-threads 1 $filter > /tmp/suite.out 2>&1
	result "suite.$suite" "$? $(grep '^test result' /tmp/suite.out)"
	cat /tmp/suite.out
done < /ci/suites

# Nothing of ci is left: no container, no cgroup, no process.
result left.containers "$(t ci-run ps -a -q | wc -l)"
result left.cgroups "$(there /sys/fs/cgroup/ci)"
result left.processes "$(ps -o comm | grep -c -e ci- -e sleep)"

result done 1
exec 3>&-
poweroff -f
