#!/usr/bin/env bash
# Downloads Debian's cloud kernels (one .deb per arch) into kitrun's kernel
# cache, from the Debian archive apt already uses. Idempotent: an arch whose
# current kernel .deb is present is skipped.
set -euo pipefail

dir=${1:?usage: fetch-kernels.sh DIR [DEBIAN_ARCH...]}
shift
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(amd64 arm64)
mkdir -p "$dir"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo

host_arch=$(dpkg --print-architecture)
updated=""
apt_update() {
	[ -n "$updated" ] || { $sudo apt-get update -q >/dev/null; updated=1; }
}

for a in "${arches[@]}"; do
	if [ "$a" != "$host_arch" ] && ! dpkg --print-foreign-architectures | grep -qx "$a"; then
		echo "fetch-kernels: adding foreign architecture $a"
		$sudo dpkg --add-architecture "$a"
		updated=""
	fi
	meta="linux-image-cloud-$a"
	pkg=$(apt-cache depends "$meta:$a" 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}' || true)
	if [ -z "$pkg" ]; then
		apt_update
		pkg=$(apt-cache depends "$meta:$a" | awk '/Depends: linux-image-/{print $2; exit}')
	fi
	pkg=${pkg%%:*}
	[ -n "$pkg" ] || { echo "fetch-kernels: cannot resolve $meta" >&2; exit 1; }
	if ls "$dir/${pkg}_"*"_$a.deb" >/dev/null 2>&1; then
		echo "fetch-kernels: $pkg present"
		continue
	fi
	echo "fetch-kernels: downloading $pkg"
	# apt-get download writes into the current directory; _apt cannot write
	# into root's cache, so apt warns and downloads unsandboxed: harmless.
	( cd "$dir" && apt-get download -q "$pkg:$a" 2>&1 | grep -v 'unsandboxed' || true )
	ls "$dir/${pkg}_"*"_$a.deb" >/dev/null 2>&1 || { apt_update; ( cd "$dir" && apt-get download -q "$pkg:$a" ); }
done
