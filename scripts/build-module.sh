#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: [KSRC=...] [PATCHES=...] [KFLAVOR=normal|debug] [CLIPPY=1] scripts/build-module.sh [--help]
#
# Builds the Rust dmirror module (Kbuild and rust/ of this repository) out of
# tree against the pipeline's kernel build, into out/<flavor>/module/, and
# prints the path of the .ko. Extra make arguments can be given in MODULE_MAKE_ARGS.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"
require_toolchain

build=$("$REPO_ROOT/scripts/kernel-build.sh")
mapfile -t make_vars < <(kernel_make_vars)
mod_out=$OUT/$KFLAVOR/module
mkdir -p "$mod_out"
read -r -a extra <<<"${MODULE_MAKE_ARGS:-}"
[ -z "${CLIPPY:-}" ] || extra+=(CLIPPY=1)
log "building the Rust module against $build"
run_logged "$mod_out/build.log" make -C "$build" "${make_vars[@]}" \
	M="$REPO_ROOT" MO="$mod_out" "${extra[@]}" modules
ko=$mod_out/hmm_dmirror_rs.ko
[ -f "$ko" ] || die "the module build did not produce $ko"
printf '%s\n' "$ko"
