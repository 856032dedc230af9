#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: [KSRC=/path/to/linux] [PATCHES="a.patch b.mbox"] scripts/kernel-source.sh [--help]
#
# Makes the kernel source tree ready and prints its path.
#  - Default: Linux 7.3.4 from Debian's linux-source-7.3 (trixie-backports),
#    downloaded with a private apt configuration (the system's apt sources are
#    never touched), checked against the pinned sha256 and unpacked into the cache.
#  - KSRC=/path: the user's own tree is used instead (never modified).
#  - PATCHES="...": the patches are applied, in order, to a copy of the tree
#    (git am on a git tree, patch -p1 otherwise). The copy is cached, keyed by
#    the base tree and the patches' contents.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"

fetch_package_tree() {
	[ -f "$PKG_SRC_DIR/Makefile" ] && return
	local apt_dir=$HMM_CACHE/apt
	local deb_dir=$HMM_CACHE/deb
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$deb_dir"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $KERNEL_PKG_SUITE main" \
		>"$apt_dir/sources.list"
	local apt_opts=(
		-o "Dir::Etc::SourceList=$apt_dir/sources.list"
		-o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$apt_dir/lists"
		-o "Dir::Cache=$apt_dir/cache"
	)
	local deb
	deb=$deb_dir/${KERNEL_PKG}_${KERNEL_PKG_VERSION//:/%3a}_all.deb
	if ! echo "$KERNEL_PKG_SHA256  $deb" | sha256sum -c --quiet >/dev/null 2>&1; then
		log "downloading $KERNEL_PKG=$KERNEL_PKG_VERSION from $KERNEL_PKG_SUITE (167 MB)"
		run_logged "$HMM_CACHE/logs/apt-private-update.log" apt-get "${apt_opts[@]}" update
		if ! (cd "$deb_dir" && apt-get "${apt_opts[@]}" download "$KERNEL_PKG=$KERNEL_PKG_VERSION") \
			>"$HMM_CACHE/logs/apt-download.log" 2>&1; then
			cat "$HMM_CACHE/logs/apt-download.log" >&2
			die "$KERNEL_PKG $KERNEL_PKG_VERSION is not available from $KERNEL_PKG_SUITE
(backports keeps only recent versions). Either point KSRC=/path/to/linux at a
Linux 7.3.x tree, or update KERNEL_PKG_VERSION and KERNEL_PKG_SHA256 in scripts/lib.sh."
		fi
		echo "$KERNEL_PKG_SHA256  $deb" | sha256sum -c --quiet ||
			die "checksum mismatch for $deb (expected $KERNEL_PKG_SHA256)"
	fi
	log "unpacking $deb"
	local tmp=$PKG_SRC_DIR.tmp
	rm -rf "$tmp"
	mkdir -p "$tmp"
	dpkg-deb --fsys-tarfile "$deb" |
		tar -xO --wildcards '*/linux-source-*.tar.xz' |
		tar -xJ -C "$tmp" --strip-components=1
	rm -rf "$PKG_SRC_DIR"
	mv "$tmp" "$PKG_SRC_DIR"
}

apply_patches() {
	local base=$1 dest=$2
	[ -f "$dest/.hmm-patched" ] && return
	local copy=$dest.tmp
	log "copying $base to apply patches"
	rm -rf "$copy"
	mkdir -p "$(dirname "$copy")"
	cp -a --reflink=auto "$base" "$copy"
	rm -rf "$copy/.git/rebase-apply"
	local p
	for p in $PATCHES; do
		p=$(realpath "$p")
		log "applying $p"
		if [ -d "$copy/.git" ]; then
			git -C "$copy" -c user.name=hmm-dmirror-rs -c user.email=hmm-dmirror-rs@localhost \
				am --quiet "$p" ||
				die "patch does not apply (git am): $p; see the conflict in $copy"
		else
			patch -d "$copy" -p1 --forward --batch --quiet <"$p" ||
				die "patch does not apply (patch -p1): $p; see the rejects in $copy"
		fi
	done
	# The booted kernel's release (uname -r, in the report and results.json)
	# then names the patched copy: 7.3.4-hmm-<key of the copy>.
	printf -- '-hmm-%s\n' "$(basename "$(dirname "$dest")" | sed 's/^patched-//' | cut -c1-8)" \
		>"$copy/localversion-hmm-patches"
	touch "$copy/.hmm-patched"
	rm -rf "$dest"
	mv "$copy" "$dest"
}

# A missing patch file stops here, before any download or copy.
for p in $PATCHES; do
	[ -f "$p" ] || die "patch not found: $p"
done
if [ -n "$KSRC" ]; then
	if [ ! -f "$KSRC/Makefile" ] || [ ! -f "$KSRC/lib/test_hmm.c" ]; then
		die "KSRC=$KSRC is not a kernel tree with lib/test_hmm.c"
	fi
	base=$(realpath "$KSRC")
else
	fetch_package_tree
	base=$PKG_SRC_DIR
fi
src=$(kernel_source_dir)
[ -z "$PATCHES" ] || apply_patches "$base" "$src"
printf '%s\n' "$src"
