#!/usr/bin/env bash
# The main job: make an image from the host's busybox, look at it with
# the tools, and run a container from it. Each step prints the command.
set -euo pipefail
bin=$(cd "$1" && pwd); root=$2
export PATH="$bin:$PATH" CIROOT="$root"
step() { printf '\n$ %s\n' "$*"; "$@"; }

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# A root filesystem: static busybox and its applets, like a minimal distribution.
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp"
cp "$(command -v busybox)" "$work/rootfs/bin/busybox"
for a in $("$work/rootfs/bin/busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$work/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
echo 'root:x:0:' > "$work/rootfs/etc/group"
tar -C "$work/rootfs" -czf "$work/busybox.tar.gz" .

# A fresh demo store each time (never the real /var/lib/ci).
rm -rf "$CIROOT"
echo "store: $CIROOT"
step ci-build import --tag busybox:demo "$work/busybox.tar.gz"
step ci-build ls --format table
step ci-build tag busybox:demo demo/app:1
step ci-build history --format table demo/app:1
echo; echo '$ ci-build inspect demo/app:1 | head -c 400'
ci-build inspect --format json demo/app:1 | head -c 400; echo ...
echo
echo "Run it: a process in its own namespaces, on an overlay of the image's layer."
step ci-run --rm --hostname demo demo/app:1 sh -c 'echo "hello from $(hostname)"; echo "I am PID $$; the processes I can see:"; ps'
echo; echo "The store is an OCI image layout: skopeo inspect oci:$CIROOT/images:docker.io/library/busybox:demo"
