# ci — the two commands a newcomer needs (as root, on Debian):
#
#   make demo   install what is missing, build the tools, run the main job
#   make test   install what the tests use, run every test
#
# Everything else here is what those two are made of.

CARGO   ?= cargo
PREFIX  ?= /usr/local
# The demo uses its own store so it never touches /var/lib/ci.
DEMO_ROOT ?= /tmp/ci-demo
BIN     := target/release
# rustup installs cargo here; on PATH for every recipe, so a toolchain
# installed by the `rust` target is used by the recipes that follow.
export PATH := $(HOME)/.cargo/bin:$(PATH)

# Debian packages: busybox-static is the base of every image made here
# (no image can be pulled from the internet); the rest are the real
# readers, registry and tools the tests check our output against.
DEMO_PACKAGES := busybox-static gcc binutils make tar curl ca-certificates
# podman (with runc: crun refuses this machine's hybrid cgroups) runs our images
# from the store; strace proves what exec does not run; python3 serves files;
# qemu and a Debian kernel boot a cgroup-v2-only VM (tests/cgroup_v2_vm.rs).
TEST_PACKAGES := $(DEMO_PACKAGES) skopeo umoci oci-image-tool docker-registry apache2-utils openssl iproute2 xz-utils zstd podman runc strace python3 qemu-system-x86 linux-image-amd64

.PHONY: demo test build deps-demo deps-test rust man install clean-demo

demo: deps-demo rust build
	@./scripts/demo.sh "$(BIN)" "$(DEMO_ROOT)"

test: deps-test rust
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace

build:
	$(CARGO) build --release --workspace

# Install only the packages that are missing (fast when all are there).
deps-demo:
	@./scripts/install-packages.sh $(DEMO_PACKAGES)
deps-test:
	@./scripts/install-packages.sh $(TEST_PACKAGES)

rust:
	@command -v $(CARGO) >/dev/null || { \
	  echo "cargo not found: installing the Rust toolchain with rustup"; \
	  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal; }

# Regenerate man/*.1 from the clap definitions (a test fails when they drift).
man:
	CITEST_UPDATE_MAN=1 $(CARGO) test --test man_pages

install: build
	install -d $(PREFIX)/bin $(PREFIX)/share/man/man1 $(PREFIX)/share/man/man7
	install -m 0755 $(BIN)/ci-build $(BIN)/ci-run $(BIN)/ci-monitor $(BIN)/ci-vol $(BIN)/ci-net $(BIN)/ci-push $(BIN)/ci-pull $(PREFIX)/bin/
	install -m 0644 man/*.1 $(PREFIX)/share/man/man1/
	install -m 0644 man/*.7 $(PREFIX)/share/man/man7/

clean-demo:
	rm -rf $(DEMO_ROOT)
