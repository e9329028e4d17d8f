#!/bin/sh
# A module of a user's that imports kitrun's Go test API (testcases/vmtest),
# as the README's "Go API" section shows, must: keep its go directive when
# it declares the first release (1.N.0) of the Go kitrun's go.mod names
# (kitrun must not force a patch release or a toolchain on it: `go mod
# tidy` would raise the directive), and compile, tests included, for Linux,
# macOS and Windows hosts.
# Run by `make cross-check` (and so `make test`).
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
want=$(sed -n 's/^go \([0-9]*\.[0-9]*\).*/\1.0/p' "$repo/go.mod")
if grep -q '^toolchain ' "$repo/go.mod"; then
	echo "consumer-check: go.mod has a toolchain line; a module importing kitrun would inherit it" >&2
	exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
cat >"$tmp/go.mod" <<EOM
module example.com/consumer

go $want

require github.com/kitrun/kitrun v0.0.0

replace github.com/kitrun/kitrun => $repo
EOM
cat >"$tmp/consumer_test.go" <<'EOM'
package consumer

import (
	"testing"

	"github.com/kitrun/kitrun/testcases/vmtest"
)

func TestBoots(t *testing.T) {
	v := vmtest.Boot(t, "spec.yml", vmtest.WithSSH(), vmtest.WithMemory(256))
	_ = v
}
EOM
echo 'package consumer' >"$tmp/consumer.go"
cd "$tmp"
# The toolchain running this is the one building; never switch.
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
go mod tidy
got=$(sed -n 's/^go //p' go.mod)
if [ "$got" != "$want" ] || grep -q '^toolchain ' go.mod; then
	echo "consumer-check: go mod tidy changed the consumer's go directive from $want to $got:" >&2
	cat go.mod >&2
	exit 1
fi
for os in linux darwin windows; do
	GOOS=$os go vet ./... || { echo "consumer-check: a module importing vmtest does not compile for $os" >&2; exit 1; }
	GOOS=$os go test -c -o /dev/null . || { echo "consumer-check: its test binary does not build for $os" >&2; exit 1; }
done
echo "consumer-check: go $want kept by go mod tidy; builds for linux, darwin, windows"
