#!/usr/bin/env bash
# Container start benchmark (issue 3): start-to-exit of `/bin/true` in a
# busybox container, in one hyperfine run:
#   ci-run --rm IMAGE /bin/true            (layers already unpacked)
#   crun run / runc run                    (an OCI bundle of the same rootfs)
#   podman run --rm --network none         (the same rootfs imported)
# plus the floors: fork+exec and `unshare` of the same namespaces.
#
#   sudo scripts/bench-run.sh [RUNS]       (ci-run from target/release)
#
# crun refuses this machine's hybrid cgroup layout while hugetlb sits on the
# cgroup2 mount (../shared/PEERS.md): the script mounts hugetlb as a v1
# hierarchy for the run and unmounts it at the end. ci itself needs no such step.
set -euo pipefail
RUNS=${1:-50}
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$REPO/target/release}
W=$(mktemp -d /var/tmp/ci-bench-run.XXXXXX)
P="podman --root $W/podman --runroot $W/podman-run --storage-driver overlay --cgroup-manager cgroupfs --events-backend file"
cleanup() {
    $P rm -af >/dev/null 2>&1 || true
    $P rmi -af >/dev/null 2>&1 || true
    crun delete -f bench-crun >/dev/null 2>&1 || true
    runc delete -f bench-runc >/dev/null 2>&1 || true
    grep -o " $W[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    peers_teardown
    rm -rf "$W"
}
trap cleanup EXIT
. "$REPO/scripts/peers.sh"
peers_setup "$W"

# The rootfs: the host's static busybox and its applets.
R=$W/bundle/rootfs
mkdir -p "$R/bin" "$R/etc" "$R/proc" "$R/sys" "$R/dev" "$R/tmp"
cp "$(command -v busybox)" "$R/bin/busybox"
for a in $("$R/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
tar -C "$R" -cf "$W/rootfs.tar" .

# ci: import, and unpack the layers once (the benchmark measures starts, not unpacking).
export CIROOT=$W/ci
"$BIN/ci-build" import -t bb:1 "$W/rootfs.tar" >/dev/null
"$BIN/ci-run" --rm bb:1 /bin/true

# crun/runc: an OCI bundle with the default spec, no terminal, /bin/true.
(cd "$W/bundle" && crun spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"\/bin\/true"/' config.json)
grep -q '"/bin/true"' "$W/bundle/config.json"
hugetlb_for_crun
crun run -b "$W/bundle" bench-crun

# podman: the same rootfs.
$P import "$W/rootfs.tar" localhost/bb:1 >/dev/null
$P run --rm --network none localhost/bb:1 /bin/true

hyperfine -N -w 5 -r "$RUNS" --export-json "$W/run.json" \
    "$BIN/ci-run --rm bb:1 /bin/true" \
    "$BIN/ci-run --rm --network host bb:1 /bin/true" \
    "crun run -b $W/bundle bench-crun" \
    "runc run -b $W/bundle bench-runc" \
    "$P run --rm --network none localhost/bb:1 /bin/true" \
    "unshare -pmuin -f --mount-proc /bin/true" \
    "/bin/true" >/dev/null
echo "== start to exit, medians (ratio to ci-run)"
python3 "$REPO/scripts/medians.py" "$W/run.json"

echo "== peak memory (max RSS of the tool, one run each)"
peak() { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1; }
printf 'ci-run %d kB   crun %d kB   runc %d kB   podman %d kB\n' \
    "$(peak "$BIN/ci-run" --rm bb:1 /bin/true)" \
    "$(peak crun run -b "$W/bundle" bench-crun)" \
    "$(peak runc run -b "$W/bundle" bench-runc)" \
    "$(peak $P run --rm --network none localhost/bb:1 /bin/true)"
