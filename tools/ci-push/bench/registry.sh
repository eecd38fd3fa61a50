#!/usr/bin/env bash
# Benchmark ci-push / ci-pull against skopeo on the same image, same registry, one run.
#   tools/ci-push/bench/registry.sh LAYOUT_DIR REF [BIN_DIR]
# LAYOUT_DIR:REF is an OCI layout whose layers are uncompressed tars (like
# images built here). Prints wall time, MB/s (of the uncompressed image) and
# peak RSS for: first push, second push, pull; and the same with skopeo.
set -euo pipefail
LAYOUT=$1; REF=$2; BIN=${3:-target/release}
BIN=$(cd "$BIN" && pwd)
W=$(mktemp -d /tmp/ci-bench-XXXX)
trap 'kill $REGPID 2>/dev/null || true; rm -rf "$W"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$W/reg.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $W/regdata}}
http: {addr: 127.0.0.1:$PORT}
YML
docker-registry serve "$W/reg.yml" > "$W/reg.log" 2>&1 & REGPID=$!
for _ in $(seq 100); do curl -s "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
SIZE=$(du -sb "$LAYOUT/blobs" | cut -f1)
export CIROOT=$W/root DOCKER_CONFIG=$W/docker
"$BIN/ci-pull" "oci:$LAYOUT:$REF" > /dev/null 2>&1
ID=$("$BIN/ci-build" ls --format json | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["id"])')
"$BIN/ci-build" tag "$ID" "127.0.0.1:$PORT/ci:1" > /dev/null
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
run() { # label command...
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$W/t" "$@" > /dev/null 2> "$W/err" || { cat "$W/err"; exit 1; }
  read -r secs kb < "$W/t"
  python3 -c "s=$secs; print(f'{\"$label\":34} {s:6.2f} s  {($SIZE/1e6)/max(s,0.001):7.1f} MB/s  peak {$kb/1024:6.1f} MiB')"
}
echo "image: $(python3 -c "print(f'{$SIZE/1e6:.0f}')") MB uncompressed, $(ls "$LAYOUT/blobs/sha256" | wc -l) blobs"
run "ci-push (first, gzip)"          "$BIN/ci-push" "127.0.0.1:$PORT/ci:1"
run "ci-push (second)"               "$BIN/ci-push" "127.0.0.1:$PORT/ci:1"
run "skopeo copy oci -> registry"    skopeo copy --dest-tls-verify=false "oci:$LAYOUT:$REF" "docker://127.0.0.1:$PORT/sk:1"
run "skopeo copy (second)"           skopeo copy --dest-tls-verify=false "oci:$LAYOUT:$REF" "docker://127.0.0.1:$PORT/sk:1"
export CIROOT=$W/root2
run "ci-pull (registry -> store)"    "$BIN/ci-pull" "127.0.0.1:$PORT/ci:1"
run "skopeo copy registry -> oci"    skopeo copy --src-tls-verify=false "docker://127.0.0.1:$PORT/ci:1" "oci:$W/skout:x"
run "ci-pull (again, all present)"   "$BIN/ci-pull" "127.0.0.1:$PORT/ci:1"
run "ci-build fsck (sha256 of store)" "$BIN/ci-build" fsck
echo "compressed size in the registry: $(du -sh "$W/regdata" | cut -f1) (both images)"
