#!/bin/bash
# Build benchmark (issue 5): ~2,000 small files + one 100 MB file, a COPY of
# each and a RUN, built by ci-build, `buildah bud --layers` and `docker build`
# (legacy builder) in one run: cold build, fully cached rebuild, rebuild
# after changing one small file. Medians of N runs.
#
#   sudo scripts/bench-build.sh [N]        (needs root; ci-build from target/release)
#
# dockerd is started with private paths and stopped at the end (PEERS.md).
#
# 2026-12-04, this machine (2 shared cores, load ~3-4), N=5, medians:
#   ci-build  cold 0.583 s   cached 0.015 s   one file 0.095 s
#   buildah   cold 2.534 s   cached 1.065 s   one file 2.651 s
#   docker    cold 3.819 s   cached 1.143 s   one file 3.260 s
# (Creating a file costs ~0.6 ms on this disk: the 2,000 small files are most of a cold build.)
set -euo pipefail
N=${1:-5}
REPO=$(cd "$(dirname "$0")/.." && pwd)
CIB=${CIBUILD:-$REPO/target/release/ci-build}
W=$(mktemp -d /var/tmp/ci-bench-build.XXXXXX)
DOCKERD_PID=
cleanup() {
    if [ -n "$DOCKERD_PID" ]; then kill "$DOCKERD_PID" 2>/dev/null || true; wait "$DOCKERD_PID" 2>/dev/null || true; fi
    buildah --root "$W/buildah" --runroot "$W/buildah-run" rm --all >/dev/null 2>&1 || true
    buildah --root "$W/buildah" --runroot "$W/buildah-run" rmi --all --force >/dev/null 2>&1 || true
    grep -o " $W[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT

# The context.
mkdir -p "$W/ctx/small"
for i in $(seq 1 2000); do printf 'file %d\n%0200d\n' "$i" 0 > "$W/ctx/small/f$i.txt"; done
head -c 100M /dev/urandom > "$W/ctx/big.bin"
cat > "$W/ctx/Dockerfile" <<'EOF'
FROM bb:1
COPY small/ /data/small/
COPY big.bin /data/big.bin
RUN find /data -type f | wc -l > /data/count
EOF
# The base image: the host's busybox as a rootfs tarball.
mkdir -p "$W/rootfs/bin"
cp "$(command -v busybox)" "$W/rootfs/bin/busybox"
for a in sh find wc ls cat; do ln -s busybox "$W/rootfs/bin/$a"; done
tar -C "$W/rootfs" -cf "$W/rootfs.tar" .
touch -d '1 hour ago' "$W/ctx/small/"* "$W/ctx/big.bin" "$W/ctx/Dockerfile"

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) printf "%.3f\n", a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; "$@" >&2; exit 1; }; e=$(date +%s.%N); printf '%.3f\n' "$(echo "$e - $s" | bc)"; }
change_one() { printf 'changed %s\n' "$RANDOM$RANDOM" > "$W/ctx/small/f1000.txt"; }

declare -A T  # tool.phase -> space-separated times
one_round() {  # name, clean-cmd, build-cmd...
    local name=$1 clean=$2; shift 2
    eval "$clean"
    T[$name.cold]+="$(t "$@") "
    T[$name.cached]+="$(t "$@") "
    change_one
    T[$name.one]+="$(t "$@") "
}

# ci-build
export CIROOT="$W/ci"
CI_CLEAN='"$CIB" prune -a >/dev/null; "$CIB" import -t bb:1 "$W/rootfs.tar" >/dev/null'

# buildah
B="buildah --root $W/buildah --runroot $W/buildah-run --storage-driver overlay"
buildah_clean() { $B rmi --all --force >/dev/null 2>&1 || true; $B from --name base scratch >/dev/null; $B add base "$W/rootfs.tar" / >/dev/null; $B commit --rm base localhost/bb:1 >/dev/null 2>&1; }

# docker (legacy builder)
HAVE_DOCKER=
if command -v dockerd >/dev/null; then
    mkdir -p "$W/docker"
    dockerd --data-root "$W/docker/data" --exec-root "$W/docker/exec" -H "unix://$W/docker/d.sock" --pidfile "$W/docker/d.pid" --bridge none --iptables=false >"$W/docker/log" 2>&1 &
    DOCKERD_PID=$!
    export DOCKER_HOST="unix://$W/docker/d.sock"
    for _ in $(seq 1 100); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
    docker_clean() { docker rmi -f $(docker images -aq) >/dev/null 2>&1 || true; docker builder prune -af >/dev/null 2>&1 || true; docker import "$W/rootfs.tar" bb:1 >/dev/null; }
    HAVE_DOCKER=1
fi

# The tools take turns within each round, so the machine's load weighs on all alike.
for i in $(seq 1 "$N"); do
    one_round ci-build "$CI_CLEAN" "$CIB" -q -t bench "$W/ctx"
    one_round buildah buildah_clean $B bud --layers --isolation chroot -t bench "$W/ctx"
    [ -n "$HAVE_DOCKER" ] && one_round docker docker_clean env DOCKER_BUILDKIT=0 docker build --network none -t bench "$W/ctx"
    echo "round $i done" >&2
done

declare -A R
for n in ci-build buildah docker; do
    [ -n "${T[$n.cold]:-}" ] || continue
    for ph in cold cached one; do R[$n.$ph]=$(printf '%s\n' ${T[$n.$ph]} | median); done
    echo "$n: cold ${R[$n.cold]} s, cached ${R[$n.cached]} s, one file ${R[$n.one]} s (runs: ${T[$n.cold]}| ${T[$n.cached]}| ${T[$n.one]})"
done
echo
printf '%-10s %10s %10s %12s\n' tool cold cached one-file
for n in ci-build buildah docker; do
    [ -n "${R[$n.cold]:-}" ] && printf '%-10s %9ss %9ss %11ss\n' "$n" "${R[$n.cold]}" "${R[$n.cached]}" "${R[$n.one]}"
done
for n in buildah docker; do
    [ -n "${R[$n.cold]:-}" ] && printf 'ratio %s/ci-build: cold %.1fx, cached %.1fx, one file %.1fx\n' "$n" \
        "$(echo "${R[$n.cold]} / ${R[ci-build.cold]}" | bc -l)" "$(echo "${R[$n.cached]} / ${R[ci-build.cached]}" | bc -l)" "$(echo "${R[$n.one]} / ${R[ci-build.one]}" | bc -l)"
done
