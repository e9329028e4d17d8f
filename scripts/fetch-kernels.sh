#!/usr/bin/env bash
# Downloads Debian's kernels (one .deb per arch) into kitrun's kernel cache,
# from the Debian archive apt already uses. Each argument is
# DEBIAN_ARCH:FLAVOUR[@RELEASE] (the Makefile's KERNEL_ARCHES, which a test
# keeps equal to boot/arch's table): the package is the newest
# linux-image-<abi>-FLAVOUR that linux-image-FLAVOUR depends on. RELEASE
# names another Debian release whose archive has the arch (riscv64 is in
# Debian 13, not 12): its index is fetched into a private apt state under
# DIR/.apt-RELEASE, leaving the system's sources alone. Idempotent: an arch
# whose current kernel .deb is present is skipped.
set -euo pipefail

dir=${1:?usage: fetch-kernels.sh DIR DEBIAN_ARCH:FLAVOUR[@RELEASE]...}
shift
[ $# -gt 0 ] || set -- amd64:cloud-amd64 arm64:cloud-arm64
mkdir -p "$dir"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo

host_arch=$(dpkg --print-architecture)
updated=""
apt_update() {
	[ -n "$updated" ] || { $sudo apt-get update -q >/dev/null; updated=1; }
}

# private_apt RELEASE ARCH: apt options for a private state that sees only
# RELEASE's main for ARCH, from the mirror the system's sources use.
private_apt() {
	local release=$1 a=$2 state="$dir/.apt-$1"
	local mirror
	mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' | grep -v -- '-security' | head -n1)
	[ -n "$mirror" ] || mirror=http://deb.debian.org/debian/
	mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
	echo "deb [arch=$a] $mirror $release main" > "$state/sources.list"
	apt_opts=(-o "Dir::Etc::sourcelist=$state/sources.list" -o "Dir::Etc::sourceparts=-"
		-o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache" -o "Dir::State::status=/dev/null"
		-o "APT::Architectures=$a" -o "APT::Architecture=$a")
}

for spec in "$@"; do
	a=${spec%%:*}
	rest=${spec#*:}
	flavour=${rest%%@*}
	release=""
	[ "$rest" = "$flavour" ] || release=${rest#*@}
	apt_opts=()
	if [ -n "$release" ]; then
		private_apt "$release" "$a"
		# The private index is refreshed once a day at most.
		if [ -z "$(find "$dir/.apt-$release/lists" -name '*_Packages*' -mtime -1 2>/dev/null)" ]; then
			echo "fetch-kernels: fetching Debian $release's index for $a"
			apt-get "${apt_opts[@]}" update -q >/dev/null
		fi
	elif [ "$a" != "$host_arch" ] && ! dpkg --print-foreign-architectures | grep -qx "$a"; then
		echo "fetch-kernels: adding foreign architecture $a"
		$sudo dpkg --add-architecture "$a"
		updated=""
	fi
	meta="linux-image-$flavour"
	resolve() { apt-cache "${apt_opts[@]}" depends "$meta:$a" 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}' || true; }
	pkg=$(resolve)
	if [ -z "$pkg" ] && [ -z "$release" ]; then
		apt_update
		pkg=$(resolve)
	fi
	pkg=${pkg%%:*}
	[ -n "$pkg" ] || { echo "fetch-kernels: cannot resolve $meta for $a" >&2; exit 1; }
	if ls "$dir/${pkg}_"*"_$a.deb" >/dev/null 2>&1; then
		echo "fetch-kernels: $pkg present"
		continue
	fi
	echo "fetch-kernels: downloading $pkg"
	# apt-get download writes into the current directory; _apt cannot write
	# into root's cache, so apt warns and downloads unsandboxed: harmless.
	( cd "$dir" && apt-get "${apt_opts[@]}" download -q "$pkg:$a" 2>&1 | grep -v 'unsandboxed' || true )
	if ! ls "$dir/${pkg}_"*"_$a.deb" >/dev/null 2>&1; then
		[ -n "$release" ] || apt_update
		( cd "$dir" && apt-get "${apt_opts[@]}" download -q "$pkg:$a" )
	fi
done
