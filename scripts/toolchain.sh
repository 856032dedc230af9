#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: scripts/toolchain.sh [--help]
#
# Installs, where missing, everything the pipeline needs on a Debian 12 machine:
#  - Debian rustc-web, rust-web-src, cargo-web, rust-web-clippy (a rustc with matching
#    std source, and its clippy for make module CLIPPY=1),
#  - bindgen-cli pinned to the kernel's minimum, built from crates.io into the cache,
#  - libclang >= 17 from the PyPI wheel 'libclang', unpacked into the cache,
#  - kernel build dependencies, qemu-system-x86, busybox-static, shellcheck.
# Idempotent: a second run only checks. Needs root (or sudo) for apt-get.
# The final check, the kernel's own 'make rustavailable', is done by
# scripts/kernel-build.sh once a kernel tree is there.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"

DEB_PACKAGES=(
	rustc-web rust-web-src cargo-web rust-web-clippy
	build-essential flex bison bc libelf-dev libssl-dev cpio kmod xz-utils
	python3 python3-pip
	qemu-system-x86 busybox-static shellcheck
)

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "apt-get install ${missing[*]}"
	mkdir -p "$HMM_CACHE/logs"
	run_logged "$HMM_CACHE/logs/apt-update.log" $SUDO apt-get update
	run_logged "$HMM_CACHE/logs/apt-install.log" \
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
[ -d /usr/lib/rustlib/src/rust/library ] ||
	die "rust-web-src did not install /usr/lib/rustlib/src/rust/library"

if ! "$BINDGEN_DIR/bin/bindgen" --version 2>/dev/null | grep -q "$BINDGEN_VERSION"; then
	log "cargo install bindgen-cli@$BINDGEN_VERSION (takes about 80 s)"
	run_logged "$HMM_CACHE/logs/bindgen.log" \
		cargo install --locked --root "$BINDGEN_DIR" "bindgen-cli@$BINDGEN_VERSION"
fi

if [ ! -f "$LIBCLANG_DIR/clang/native/libclang.so" ]; then
	log "pip install libclang==$LIBCLANG_VERSION into the cache"
	run_logged "$HMM_CACHE/logs/libclang.log" \
		python3 -m pip install --disable-pip-version-check --no-deps \
		--target "$LIBCLANG_DIR" "libclang==$LIBCLANG_VERSION"
fi

log "toolchain: $(/usr/bin/rustc --version), bindgen $("$BINDGEN_DIR/bin/bindgen" --version | awk '{print $2}'), libclang $LIBCLANG_VERSION"
