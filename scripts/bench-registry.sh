#!/usr/bin/env bash
# Registry benchmark (issue 6): push and pull of a several-layer image of
# ~150 MB to the CNCF registry (Debian's docker-registry) on 127.0.0.1, and a
# second push of the same image, by ci-push/ci-pull and by `skopeo copy` of
# the same image (read from our OCI layout) in one run. Medians of N runs,
# MB/s of the uncompressed image, peak RSS.
#
#   sudo scripts/bench-registry.sh [N]     (tools from target/release)
#
# Each cold push starts from an empty registry and (for ci-push) a store that
# has forgotten the compressed forms of its layers, so compression is timed.
set -euo pipefail
N=${1:-5}
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$REPO/target/release}
W=$(mktemp -d /var/tmp/ci-bench-registry.XXXXXX)
# The registry runs in the background; its pid is in $W/registry.pid.
stop_registry() { if [ -f "$W/registry.pid" ]; then kill "$(cat "$W/registry.pid")" 2>/dev/null || true; rm -f "$W/registry.pid"; sleep 0.2; fi; }
cleanup() { stop_registry; rm -rf "$W"; }
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$W/registry.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $W/registry}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$PORT}
EOF
# An empty registry, started afresh (its storage and caches gone): a script,
# so that hyperfine's --prepare can run it too.
cat > "$W/fresh-registry" <<EOF
#!/bin/sh
[ -f $W/registry.pid ] && kill \$(cat $W/registry.pid) 2>/dev/null && sleep 0.2
rm -rf $W/registry
docker-registry serve $W/registry.yml >>$W/registry.log 2>&1 &
echo \$! > $W/registry.pid
for i in \$(seq 1 100); do curl -sf http://127.0.0.1:$PORT/v2/ >/dev/null && exit 0; sleep 0.05; done
echo "registry did not start" >&2; cat $W/registry.log >&2; exit 1
EOF
chmod +x "$W/fresh-registry"
fresh_registry() { "$W/fresh-registry"; }

# The image: busybox, then three layers of host libraries (compressible,
# like real images) and one of random bytes (incompressible).
export CIROOT=$W/ci
mkdir -p "$W/base/bin" "$W/ctx"
cp "$(command -v busybox)" "$W/base/bin/busybox"
for a in sh true; do ln -s busybox "$W/base/bin/$a"; done
tar -C "$W/base" -cf "$W/base.tar" .
"$BIN/ci-build" import -t bb:1 "$W/base.tar" >/dev/null
i=0
for f in $(find /usr/lib/x86_64-linux-gnu -maxdepth 1 -type f -name '*.so*' | sort); do
    d=$W/ctx/libs$((i % 3)); mkdir -p "$d"; cp "$f" "$d/"; i=$((i + 1))
    [ "$(du -sm "$W/ctx" | cut -f1)" -ge 110 ] && break
done
head -c 40M /dev/urandom > "$W/ctx/random.bin"
printf 'FROM bb:1\nCOPY libs0/ /usr/lib/a/\nCOPY libs1/ /usr/lib/b/\nCOPY libs2/ /usr/lib/c/\nCOPY random.bin /data/\n' > "$W/ctx/Dockerfile"
"$BIN/ci-build" -q -t bench:1 "$W/ctx" >/dev/null
SIZE=$("$BIN/ci-build" inspect bench:1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])')
echo "image: $((SIZE / 1000000)) MB uncompressed, $("$BIN/ci-build" inspect bench:1 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["manifest"]["layers"]))') layers"

OCI="oci:$CIROOT/images:docker.io/library/bench:1"
fresh_registry
DST=127.0.0.1:$PORT
SK="skopeo copy -q --dest-tls-verify=false --src-tls-verify=false"
export BIN OCI DST SK

"$BIN/ci-push" bench:1 "$DST/ci/warmup:1" >/dev/null || { echo "ci-push failed" >&2; exit 1; }
hyperfine -w 1 -r "$N" --export-json "$W/push.json" \
    --prepare "$W/fresh-registry; rm -f $CIROOT/distribution/blob-info.json" \
    -n "ci-push (cold)" "$BIN/ci-push bench:1 $DST/ci/bench:1" \
    --prepare "$W/fresh-registry" \
    -n "skopeo copy push (cold)" "$SK $OCI docker://$DST/sk/bench:1" >/dev/null

fresh_registry
"$BIN/ci-push" bench:1 "$DST/ci/bench:1" >/dev/null
$SK "$OCI" "docker://$DST/sk/bench:1"
hyperfine -w 1 -r "$N" --export-json "$W/repush.json" \
    -n "ci-push (again)" "$BIN/ci-push bench:1 $DST/ci/bench:1" \
    -n "skopeo copy push (again)" "$SK $OCI docker://$DST/sk/bench:1" \
    -n "ci-push (new repo: cross-mount)" \
        "sh -c 'n=\$(cat $W/n 2>/dev/null || echo 0); echo \$((n+1)) > $W/n; exec $BIN/ci-push bench:1 $DST/ci/m\$n:1'" >/dev/null

hyperfine -w 1 -r "$N" --export-json "$W/pull.json" \
    --prepare "rm -rf $W/pulled" -n "ci-pull" "env CIROOT=$W/pulled $BIN/ci-pull $DST/ci/bench:1" \
    --prepare "rm -rf $W/sk-oci" -n "skopeo copy pull" "$SK docker://$DST/sk/bench:1 oci:$W/sk-oci:bench" >/dev/null

echo "== medians (ratio to the first of each group)"
python3 "$REPO/scripts/medians.py" "$W/push.json" "$W/repush.json" "$W/pull.json"
echo "image size for MB/s: $SIZE bytes"
echo "== peak memory (max RSS, one run each)"
peak() { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1; }
fresh_registry; rm -f "$CIROOT/distribution/blob-info.json"
cp=$(peak "$BIN/ci-push" bench:1 "$DST/ci/bench:1")
sp=$(peak $SK "$OCI" "docker://$DST/sk/bench:1")
rm -rf "$W/pulled" "$W/sk-oci"
cl=$(peak env CIROOT="$W/pulled" "$BIN/ci-pull" "$DST/ci/bench:1")
sl=$(peak $SK "docker://$DST/sk/bench:1" "oci:$W/sk-oci:bench")
printf 'push: ci-push %d kB, skopeo %d kB;  pull: ci-pull %d kB, skopeo %d kB\n' "$cp" "$sp" "$cl" "$sl"
curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' "http://$DST/v2/ci/bench/manifests/1" \
  | python3 -c 'import json,sys; m=json.load(sys.stdin); print("pushed by ci-push: %d layers, %.1f MB compressed" % (len(m["layers"]), sum(l["size"] for l in m["layers"]) / 1e6))'
