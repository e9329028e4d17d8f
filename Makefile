# kitrun's Makefile: every target installs what it needs on a fresh Debian
# machine (QEMU from Debian's packages, Debian kernels into the cache).

GO          ?= go
KITRUN_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kitrun
KERNEL_DIR  := $(KITRUN_CACHE)/kernels
SUDO        := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
QEMU_PKGS   := qemu-system-x86 qemu-system-arm qemu-utils openssh-client
TEST_TIMEOUT ?= 40m

export KITRUN_CACHE

.PHONY: all build deps qemu kernels test run bench clean

all: build

build: bin/kitrun

VERSION     := $(shell git describe --always --dirty 2>/dev/null || echo dev)

bin/kitrun: $(shell find . -name '*.go' -not -path './out/*') go.mod go.sum
	$(GO) build -ldflags "-X github.com/kitrun/kitrun/bench.Version=$(VERSION)" -o $@ ./cmd/kitrun

deps: qemu kernels

qemu:
	@if ! command -v qemu-system-x86_64 >/dev/null || ! command -v qemu-system-aarch64 >/dev/null || ! command -v ssh >/dev/null; then \
		echo "installing QEMU: $(QEMU_PKGS)"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $(QEMU_PKGS); \
	fi

kernels:
	@scripts/fetch-kernels.sh "$(KERNEL_DIR)" amd64 arm64

test: deps build
	$(GO) vet ./...
	$(GO) test -timeout $(TEST_TIMEOUT) ./...
	bin/kitrun test testcases/ -j 2 --junit out/junit.xml --results out/test-results
	bin/kitrun test testcases/ -j 2 --arch aarch64 --junit out/junit-aarch64.xml --results out/test-results-aarch64

run: deps build
	bin/kitrun run examples/minimal.yml --until-ready

bench: deps build
	bin/kitrun bench examples/minimal.yml --floor --runs $(or $(RUNS),10)

clean:
	rm -rf bin out
