#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: [KSRC=...] [PATCHES=...] [KFLAVOR=normal|debug] scripts/build-tests.sh [--help]
#
# Builds the guest's test programs, statically linked, into out/<flavor>/bin/:
#  - hmm-tests: upstream tools/testing/selftests/mm/hmm-tests.c, compiled from
#    the same kernel tree (never copied into this repository), or from the
#    tree TESTS_SRC names;
#  - the project's own selftests (selftests/Makefile);
#  - the benchmark bench/dmirror_bench (smoke run without arguments).
# Both use the kernel's UAPI headers, generated in the build folder.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"
require_toolchain

src=$("$REPO_ROOT/scripts/kernel-source.sh")
build=$("$REPO_ROOT/scripts/kernel-build.sh")
hdr=$build/usr
bin=$OUT/$KFLAVOR/bin
mkdir -p "$bin"

# 'make headers' leaves the sanitised UAPI headers in <build>/usr/include
# (headers_install would only copy them, with rsync). The build folder is
# shared: under its lock (scripts/kernel-build.sh), as two runs at once
# broke each other's 'make headers'.
(
	flock 9
	if [ ! -f "$hdr/.done" ] || [ -n "$KSRC" ]; then
		run_logged "$build/logs/headers.log" make -C "$src" O="$build" headers
		touch "$hdr/.done"
	fi
) 9>"$build.lock"

# TESTS_SRC (make review): hmm-tests from another tree (a series' new test
# cases, run on the base kernel), against this kernel's UAPI headers.
tsrc=${TESTS_SRC:-$src}
mm=$tsrc/tools/testing/selftests/mm
log "building upstream hmm-tests from $tsrc"
run_logged "$bin/hmm-tests.build.log" gcc -static -O2 -Wall \
	-I"$mm/.." -I"$mm" -I"$tsrc" -I"$hdr/include" -isystem "$tsrc/tools/include/uapi" \
	-o "$bin/hmm-tests" \
	"$mm/hmm-tests.c" "$mm/vm_util.c" "$mm/hugepage_settings.c" -lpthread

log "building project selftests"
run_logged "$bin/selftests.build.log" make -C "$REPO_ROOT/selftests" \
	KSRC="$src" KHDR="$hdr/include" OUTDIR="$bin"
log "building the dmirror benchmark (its smoke run is a suite too)"
run_logged "$bin/dmirror_bench.build.log" make -C "$REPO_ROOT/bench" \
	KSRC="$src" KHDR="$hdr/include" OUTDIR="$bin"
printf '%s\n' "$bin"
