# Sourced by the benchmark scripts: make the peers run on this machine
# (../shared/PEERS.md), and undo it afterwards.
#
#   peers_setup DIR    podman reads a containers.conf of DIR's (no default
#                      rlimits: the sandbox cannot raise them)
#   hugetlb_for_crun   crun refuses the hybrid cgroup layout while hugetlb
#                      sits on the cgroup2 mount: give hugetlb a v1 hierarchy
#   peers_teardown     unmount that hierarchy again if we made it
# ci itself needs none of this.

PEERS_HUGETLB=
peers_setup() {
    printf '[containers]\ndefault_ulimits = []\n' > "$1/containers.conf"
    export CONTAINERS_CONF=$1/containers.conf
}
hugetlb_for_crun() {
    if [ ! -d /sys/fs/cgroup/hugetlb ] && grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null; then
        mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb && PEERS_HUGETLB=1
    fi
}
peers_teardown() {
    if [ -n "$PEERS_HUGETLB" ]; then
        umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb && PEERS_HUGETLB=
    fi
}
