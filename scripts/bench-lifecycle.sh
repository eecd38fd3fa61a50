#!/bin/sh
# Container lifecycle beside podman, on the same machine, rootfs and run:
#   -d return time, `exec … true` latency, `ps` with 100 containers,
#   and the memory of the per-container monitor (ci-monitor) vs conmon (podman's).
# Usage (as root, after `cargo build --release`): scripts/bench-lifecycle.sh [ROOTFS.tar]
# Needs hyperfine and podman (made to run here by scripts/peers.sh, see
# ../shared/PEERS.md). Uses private stores under $WORK and removes them at the end.
set -eu
BIN=${BIN:-$(dirname "$0")/../target/release}
WORK=${WORK:-/tmp/ci-bench-lifecycle}
RUNS=${RUNS:-30}
export CIROOT=$WORK/ci
P="podman --root $WORK/podman --runroot $WORK/podman-run --cgroup-manager cgroupfs --events-backend file"
CI="$BIN/ci-run"
mkdir -p "$WORK"
. "$(dirname "$0")/peers.sh"
peers_setup "$WORK"
hugetlb_for_crun
TAR=${1:-}
if [ -z "$TAR" ]; then
  # A busybox rootfs: the host's static busybox and its applets.
  R=$WORK/rootfs; mkdir -p $R/bin $R/etc $R/tmp $R/proc $R/sys $R/dev
  cp /bin/busybox $R/bin/; for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox $R/bin/$a; done
  echo 'root:x:0:0:root:/root:/bin/sh' > $R/etc/passwd
  TAR=$WORK/rootfs.tar; tar -C $R -cf $TAR .
fi
"$BIN/ci-build" import -t bb:1 "$TAR" >/dev/null
$P import "$TAR" localhost/bb:1 >/dev/null

cleanup() {
  "$CI" ps -aq --no-trunc | xargs -r "$CI" rm -f >/dev/null 2>&1 || true
  $P rm -af -t 0 >/dev/null 2>&1 || true
}
trap 'cleanup; $P rmi -af >/dev/null 2>&1 || true; rm -rf "$WORK"; peers_teardown' EXIT

echo "== run -d (until the container runs and the tool returns)"
hyperfine -N -w 3 -r "$RUNS" --export-json $WORK/d.json \
  "$CI -d bb:1 sleep 1000" \
  "$P run -d --network none localhost/bb:1 sleep 1000"
python3 "$(dirname "$0")/medians.py" $WORK/d.json
cleanup

echo "== exec true"
"$CI" -d --name ex bb:1 sleep 1000 >/dev/null
$P run -d --network none --name ex localhost/bb:1 sleep 1000 >/dev/null
hyperfine -N -w 3 -r "$RUNS" --export-json $WORK/exec.json "$CI exec ex true" "$P exec ex true"
python3 "$(dirname "$0")/medians.py" $WORK/exec.json
cleanup

echo "== ps with 100 running containers"
i=0; while [ $i -lt 100 ]; do "$CI" -d bb:1 sleep 1000 >/dev/null; $P run -d --network none localhost/bb:1 sleep 1000 >/dev/null; i=$((i+1)); done
hyperfine -N -w 3 -r "$RUNS" --export-json $WORK/ps.json "$CI ps" "$P ps"
python3 "$(dirname "$0")/medians.py" $WORK/ps.json

echo "== memory of the per-container process (100 of each running)"
mem() { # name pattern -> average RSS / PSS / private (USS) / peak RSS in kB
  for p in $(pgrep -f "$1"); do
    awk -v p=$p '/^Rss:/{r=$2} /^Pss:/{s=$2} /^Private_Clean/{c=$2} /^Private_Dirty/{d=$2} END{print r, s, c+d}' /proc/$p/smaps_rollup | tr '\n' ' '
    grep VmHWM /proc/$p/status | awk '{print $2}'
  done | awk -v n="$2" '{r+=$1; s+=$2; u+=$3; h+=$4; k++} END{printf "%-16s %3d processes: RSS %5.0f kB  PSS %5.0f kB  private %5.0f kB  peak RSS %5.0f kB (averages)\n", n, k, r/k, s/k, u/k, h/k}'
}
mem "ci-monitor $CIROOT" "ci-monitor"
mem "conmon .*$WORK/podman" "conmon"
