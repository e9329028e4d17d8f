#!/usr/bin/env bash
# Downloads Debian packages (PKG:ARCH, ARCH a Debian architecture or "all")
# into DIR, from the Debian archive apt already uses: the boot loaders and
# EFI stubs that kitrun's disk images take from Debian. Idempotent: a
# package with a .deb present for its arch is skipped.
set -euo pipefail

dir=${1:?usage: fetch-packages.sh DIR PKG:ARCH...}
shift
mkdir -p "$dir"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
host_arch=$(dpkg --print-architecture)
updated=""
apt_update() {
	[ -n "$updated" ] || { $sudo apt-get update -q >/dev/null; updated=1; }
}

for spec in "$@"; do
	pkg=${spec%%:*}
	a=${spec##*:}
	if ls "$dir/${pkg}_"*"_$a.deb" >/dev/null 2>&1; then
		continue
	fi
	if [ "$a" != all ] && [ "$a" != "$host_arch" ] && ! dpkg --print-foreign-architectures | grep -qx "$a"; then
		echo "fetch-packages: adding foreign architecture $a"
		$sudo dpkg --add-architecture "$a"
		updated=""
		apt_update
	fi
	want="$pkg"
	[ "$a" = all ] || want="$pkg:$a"
	echo "fetch-packages: downloading $want"
	# apt-get download writes into the current directory; _apt cannot write
	# into root's cache, so apt warns and downloads unsandboxed: harmless.
	( cd "$dir" && apt-get download -q "$want" 2>&1 | grep -v 'unsandboxed' || true )
	ls "$dir/${pkg}_"*"_$a.deb" >/dev/null 2>&1 || { apt_update; ( cd "$dir" && apt-get download -q "$want" ); }
done
