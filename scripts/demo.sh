#!/usr/bin/env bash
# The main job: build an image from a Dockerfile on the host's busybox, run
# a container from it, and look at what the store holds. Each step prints
# the command it runs, so the output reads as a tutorial.
set -euo pipefail
bin=$(cd "$1" && pwd); root=$2
export PATH="$bin:$PATH" CIROOT="$root"
step() { printf '\n$ %s\n' "$*"; "$@"; }

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# A fresh demo store each time (never the real /var/lib/ci).
rm -rf "$CIROOT"
echo "store: $CIROOT"

# 1. A build context: the host's static busybox, a script, a Dockerfile.
mkdir -p "$work/app"
cp "$(command -v busybox)" "$work/app/busybox"
cat > "$work/app/hello.sh" <<'SH'
echo "$GREETING from $(hostname), PID $$ in a container of $(ps | wc -l) processes"
echo "my root filesystem:"; ls /
SH
cat > "$work/app/Dockerfile" <<'DF'
# No base image can be pulled here: start from nothing and add busybox.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
WORKDIR /app
COPY hello.sh .
ENV GREETING=hello
CMD ["sh", "/app/hello.sh"]
DF
echo; echo '$ cat Dockerfile'; cat "$work/app/Dockerfile"

# 2. Build it; the image object on stdout says what was made.
step ci-build --progress plain -t demo/hello:1 "$work/app"
echo; echo "A second build of the unchanged context is all cache hits:"
step ci-build --progress plain -t demo/hello:1 "$work/app"

# 3. Run a container from it.
step ci-run --rm --hostname demo demo/hello:1

# 4. What the store holds.
step ci-build ls --format table
step ci-build history --format table demo/hello:1
echo; echo "inspect prints the image's manifest and config as JSON (one object a line):"
step ci-build inspect demo/hello:1
echo; echo "The store is an OCI image layout that other tools read as it is:"
echo "  skopeo inspect oci:$CIROOT/images:docker.io/demo/hello:1"
echo "Pipelines compose the tools:  ci-build -q -t x . | ci-run --rm -"
