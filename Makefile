# kitrun's Makefile: every target installs what it needs on a fresh Debian
# machine (QEMU from Debian's packages, Debian kernels into the cache).

GO          ?= go
KITRUN_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kitrun
KERNEL_DIR  := $(KITRUN_CACHE)/kernels
SUDO        := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# What `make deps` installs with apt when it is missing, as FILE:PACKAGE
# (FILE a command on PATH or an absolute path): QEMU and its firmware, the
# SSH client the SSH tests log in with, and the independent validators the
# disk-image tests check kitrun's output with (libyal's VHD/VHDX and VMDK
# readers are a second reader of the virtual-disk containers, besides QEMU),
# the headless browser the dashboard's tests drive, and Slurm with munge for
# the one-node cluster the Slurm executor is tested on (make slurm-test).
HOST_DEPS   := qemu-system-x86_64:qemu-system-x86 qemu-system-aarch64:qemu-system-arm \
               qemu-system-riscv64:qemu-system-misc qemu-system-s390x:qemu-system-misc \
               qemu-system-ppc64:qemu-system-ppc \
               /usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin:opensbi \
               qemu-img:qemu-utils ssh:openssh-client \
               /usr/share/OVMF/OVMF_CODE_4M.fd:ovmf /usr/share/AAVMF/AAVMF_CODE.fd:qemu-efi-aarch64 \
               sgdisk:gdisk fsck.vfat:dosfstools mdir:mtools xorriso:xorriso isoinfo:genisoimage \
               /usr/share/doc/python3-libvhdi:python3-libvhdi /usr/share/doc/python3-libvmdk:python3-libvmdk \
               chromium:chromium sbatch:slurm-wlm munged:munge npm:npm
# The kernel `make kernels` fetches for each arch, as
# DEBIAN_ARCH:FLAVOUR[@RELEASE] (boot/arch's table; a test keeps them equal).
KERNEL_ARCHES := amd64:cloud-amd64 arm64:cloud-arm64 ppc64el:powerpc64le riscv64:riscv64@trixie s390x:s390x
# Debian packages kitrun takes boot loaders and EFI stubs from, as
# PACKAGE:DEBIAN_ARCH, downloaded into $(PACKAGE_DIR) (never installed).
BOOT_PKGS   := systemd-boot-efi:amd64 systemd-boot-efi:arm64 isolinux:all syslinux-common:all
PACKAGE_DIR := $(KITRUN_CACHE)/packages
TEST_TIMEOUT ?= 40m
# make nightly: the bench matrix, recorded into the history, checked, and
# published as a static page (README, "Nightly"). Override any of these.
NIGHTLY_SPECS  ?= examples/nightly/nightly.yml examples/minimal.yml
NIGHTLY_FLAGS  ?= --floor
NIGHTLY_RUNS   ?= 10
NIGHTLY_OUT    ?= out/nightly
NIGHTLY_DB     ?= $(NIGHTLY_OUT)/history.db
NIGHTLY_SITE   ?= $(NIGHTLY_OUT)/site
NIGHTLY_MAX_REGRESSION ?= 5%

# Azurite, Azure Blob Storage's emulator, which the azure backend's tests
# start (with OAuth over HTTPS): an npm package, installed under the cache.
AZURITE_VERSION := 3.37.0
AZURITE     := $(KITRUN_CACHE)/npm/node_modules/.bin/azurite-blob
export KITRUN_CACHE

.PHONY: all build deps qemu kernels packages azurite test run bench clean generate check-generated testimages nightly nightly-test \
	slurm-up slurm-down slurm-test cross-check

all: build

build: bin/kitrun

VERSION     := $(shell git describe --always --dirty 2>/dev/null || echo dev)

bin/kitrun: $(shell find . -name '*.go' -not -path './out/*') $(wildcard boot/guestbin/embedded/*) go.mod go.sum
	$(GO) build -ldflags "-X github.com/kitrun/kitrun/internal/version.version=$(VERSION)" -o $@ ./cmd/kitrun

deps: qemu kernels packages azurite

qemu:
	@missing=""; for d in $(HOST_DEPS); do f=$${d%%:*}; p=$${d##*:}; \
		case $$f in /*) [ -e "$$f" ] ;; *) command -v "$$f" >/dev/null ;; esac || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

kernels:
	@scripts/fetch-kernels.sh "$(KERNEL_DIR)" $(KERNEL_ARCHES)

packages:
	@scripts/fetch-packages.sh "$(PACKAGE_DIR)" $(BOOT_PKGS)

azurite: qemu
	@[ -x "$(AZURITE)" ] || npm install --no-audit --no-fund --prefix "$(KITRUN_CACHE)/npm" azurite@$(AZURITE_VERSION)

# kitinit, kitsshd and floorinit for every arch, prebuilt and embedded in
# kitrun (boot/guestbin): regenerate after changing them, and commit.
generate:
	$(GO) generate ./boot/guestbin

# Fails when the embedded guest programs are not what the sources build.
check-generated:
	$(GO) run ./boot/guestbin/gen -check

# The OCI images the image-service test cases run (testcases/cases/090_images):
# multi-arch OCI layouts built from this repository's Go programs.
testimages:
	$(GO) run ./testcases/cmd/mkimages . testcases/images

# The suite starts its runtime-only cases from snapshots (README,
# "Snapshots"); the --no-snapshot line keeps their cold boots tested.
test: deps build check-generated testimages cross-check
	$(GO) vet ./...
	$(GO) test -timeout $(TEST_TIMEOUT) ./...
	bin/kitrun test testcases/ -j 2 --junit out/junit.xml --results out/test-results
	bin/kitrun test testcases/ -j 2 --no-snapshot --run 'ssh/*,services/nonroot' --junit out/junit-cold.xml --results out/test-results-cold
	bin/kitrun test testcases/ -j 2 --arch aarch64 --junit out/junit-aarch64.xml --results out/test-results-aarch64
	bin/kitrun test testcases/ -j 2 --arch riscv64 --junit out/junit-riscv64.xml --results out/test-results-riscv64
	bin/kitrun test testcases/ -j 2 --arch s390x --junit out/junit-s390x.xml --results out/test-results-s390x
	bin/kitrun test testcases/ -j 2 --arch ppc64le --junit out/junit-ppc64le.xml --results out/test-results-ppc64le
	$(MAKE) --no-print-directory nightly-test
	$(MAKE) --no-print-directory slurm-test

# macOS and Windows hosts (README, "Host support"): every package vets (its
# tests compiled too) for both, guest-only ones (kitinit, kitsshd's command,
# floorinit, test guest programs) build-tag themselves out; kitrun builds
# for each OS and arch; a user's module importing vmtest keeps its go
# directive and builds for all three (scripts/consumer-check.sh).
CROSS_TARGETS ?= darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
cross-check:
	GOOS=darwin $(GO) vet ./...
	GOOS=windows $(GO) vet ./...
	@for t in $(CROSS_TARGETS); do echo "GOOS=$${t%/*} GOARCH=$${t#*/} go build ./cmd/kitrun"; \
		GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) build -o /dev/null ./cmd/kitrun || exit 1; done
	scripts/consumer-check.sh

run: deps build
	bin/kitrun run examples/minimal.yml --until-ready

bench: deps build
	bin/kitrun bench examples/minimal.yml --floor --runs $(or $(RUNS),10)

# The bench results are recorded even when the check then fails, and the
# page is published either way (it shows the regression); the exit status
# is the check's. $(NIGHTLY_OUT)/benchmark.json is the night's medians in
# github-action-benchmark's format (customSmallerIsBetter).
nightly: deps build
	@mkdir -p $(NIGHTLY_OUT)
	bin/kitrun bench $(NIGHTLY_SPECS) $(NIGHTLY_FLAGS) --runs $(NIGHTLY_RUNS) --record --db $(NIGHTLY_DB) \
		--results-dir $(NIGHTLY_OUT)/results --format github-action-benchmark -o $(NIGHTLY_OUT)/benchmark.json
	@rc=0; bin/kitrun history check --db $(NIGHTLY_DB) --max-regression $(NIGHTLY_MAX_REGRESSION) \
		> $(NIGHTLY_OUT)/check.txt || rc=$$?; cat $(NIGHTLY_OUT)/check.txt; \
	bin/kitrun dashboard --db $(NIGHTLY_DB) -o $(NIGHTLY_SITE) || exit $$?; exit $$rc

# make test's end-to-end check of make nightly (README, "Nightly"): two
# nights into a fresh history, the second deliberately slower; the check
# must flag it and the page must show it in Chromium.
nightly-test: build
	scripts/nightly-test.sh

# A one-node Slurm cluster (munged, slurmctld, slurmd) with its config and
# state in a temp dir; SLURM_STATE says where (SLURM_CONF=...). slurm-down
# stops the daemons by their PIDs.
SLURM_STATE ?= out/slurm/env
slurm-up: deps
	$(SUDO) scripts/slurm-up.sh $(SLURM_STATE)

slurm-down:
	$(SUDO) scripts/slurm-down.sh $(SLURM_STATE)

# make test's Slurm part (README, "Executors"): brings the cluster up, runs
# the shipped cases sharded through it, a small bench and every fault
# (scripts/slurm-test.sh), and stops the daemons whatever happened.
slurm-test: deps build
	@rc=0; $(SUDO) scripts/slurm-up.sh $(SLURM_STATE) && scripts/slurm-test.sh $(SLURM_STATE) || rc=$$?; \
	$(SUDO) scripts/slurm-down.sh $(SLURM_STATE) || rc=$$?; exit $$rc

clean:
	rm -rf bin out
