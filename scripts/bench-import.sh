#!/usr/bin/env bash
# Import benchmark (issue 2): a ~200 MB rootfs tarball (plain and gzip)
# imported by `ci-build import` and `podman import` in one run, beside the
# floor: hashing the same file with OpenSSL's SHA-256 (SHA-NI) and coreutils.
# Reports the median wall time of N runs and each tool's peak RSS.
#
#   sudo scripts/bench-import.sh [N]     (ci-build from target/release)
#
# Needs podman and hyperfine (../shared/PEERS.md). Private stores under a
# temp dir, removed at the end.
set -euo pipefail
N=${1:-5}
REPO=$(cd "$(dirname "$0")/.." && pwd)
CIB=${CIBUILD:-$REPO/target/release/ci-build}
# The store's own hasher alone (sha2, SHA-NI chosen at run time), beside OpenSSL's.
DIG=$REPO/target/release/examples/digest_file
[ -x "$DIG" ] || (cd "$REPO" && cargo build -q --release -p ci-core --example digest_file)
W=$(mktemp -d /var/tmp/ci-bench-import.XXXXXX)
P="podman --root $W/podman --runroot $W/podman-run --storage-driver overlay --cgroup-manager cgroupfs --events-backend file"
cleanup() {
    $P rmi -af >/dev/null 2>&1 || true
    grep -o " $W[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
. "$REPO/scripts/peers.sh"
peers_setup "$W"

# The rootfs: the host's static busybox with its applets, and shared
# libraries from the host until the tree holds ~200 MB (a realistic mix of
# file sizes, not one big file).
R=$W/rootfs
mkdir -p "$R/bin" "$R/etc" "$R/usr/lib"
cp "$(command -v busybox)" "$R/bin/busybox"
for a in $("$R/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
total=0
while IFS= read -r f; do
    s=$(stat -c %s "$f")
    cp -a "$f" "$R/usr/lib/"
    total=$((total + s))
    [ $total -ge $((200 * 1000 * 1000)) ] && break
done < <(find /usr/lib/x86_64-linux-gnu -maxdepth 1 -type f -name '*.so*' | sort)
tar -C "$R" -cf "$W/rootfs.tar" .
gzip -1 -c "$W/rootfs.tar" > "$W/rootfs.tar.gz"
rm -rf "$R"
sync
printf 'rootfs.tar %d MB, %d entries; rootfs.tar.gz %d MB\n' \
    $(( $(stat -c %s "$W/rootfs.tar") / 1000000 )) "$(tar -tf "$W/rootfs.tar" | wc -l)" \
    $(( $(stat -c %s "$W/rootfs.tar.gz") / 1000000 ))

export CIROOT=$W/ci
# Each timed run starts from an empty store, so nothing is deduplicated.
ci_clean="rm -rf $W/ci"
podman_clean="$P rmi -af >/dev/null 2>&1 || true"

for f in rootfs.tar rootfs.tar.gz; do
    echo "== import $f"
    hyperfine -w 1 -r "$N" --export-json "$W/$f.json" \
        --prepare "$ci_clean" "$CIB import $W/$f" \
        --prepare "$podman_clean" "$P import $W/$f localhost/bench:1" \
        --prepare : "$DIG $W/$f" \
        --prepare : "openssl dgst -sha256 $W/$f" \
        --prepare : "sha256sum $W/$f" >/dev/null
    python3 "$REPO/scripts/medians.py" "$W/$f.json"
done

echo "== peak memory (max RSS, one run each)"
peak() { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1; }
for f in rootfs.tar rootfs.tar.gz; do
    rm -rf "$W/ci"; ci=$(peak "$CIB" import "$W/$f")
    $P rmi -af >/dev/null 2>&1 || true; pm=$(peak $P import "$W/$f" localhost/bench:1)
    printf '%-14s ci-build %6d kB   podman %6d kB\n' "$f" "$ci" "$pm"
done
