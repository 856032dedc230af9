#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: [FLAVORS="normal debug"] [DRIVERS="c rust"] [SUITES=...] [KSRC=...] [PATCHES=...]
#        scripts/pipeline.sh [--help]
#
# The whole job, from a fresh machine to results: installs the toolchain,
# fetches and builds the kernel of each flavor (cached), builds the modules and
# test programs, boots one VM per flavor that runs every suite against every
# driver, runs the host-side tests of the pipeline itself (test-pipeline.sh),
# then prints the side-by-side table and the closing line
# 'N passed, N failed, N skipped'. Exits non-zero on any unexpected result.
# DRIVERS defaults to the Rust module, then the C reference (when Kbuild
# exists): the C driver's known Oopses and late kmemleak reports then
# cannot spill into the Rust results.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"

FLAVORS=${FLAVORS:-normal}
if [ -z "${DRIVERS:-}" ]; then
	DRIVERS=c
	[ -f "$REPO_ROOT/Kbuild" ] && DRIVERS="rust c"
fi
export DRIVERS

"$REPO_ROOT/scripts/toolchain.sh"
# A wrong request (KSRC not a kernel tree, a patch missing or not applying)
# ends here, at its first error, before any test or results table.
"$REPO_ROOT/scripts/kernel-source.sh" >/dev/null ||
	die "stopped: the kernel source is not usable (see the error above)"
mkdir -p "$OUT"
SECONDS=0

# The pipeline's own host-side tests, reported like a guest's suite.
host=$OUT/host
rm -rf "$host"
mkdir -p "$host/results/host"
rc=0
"$REPO_ROOT/scripts/test-pipeline.sh" >"$host/results/host/pipeline.tap" || rc=$?
echo "rc=$rc" >"$host/results/host/pipeline.rc"
echo finished >"$host/guest-status"
echo none >"$host/accelerator"
for flavor in $FLAVORS; do
	log "flavor $flavor: drivers $DRIVERS"
	# run-vm.sh writes guest-status only once a guest ran: without it, a
	# step before the boot (kernel or module build, initramfs) failed.
	rm -f "$OUT/$flavor/guest-status"
	if ! KFLAVOR=$flavor "$REPO_ROOT/scripts/run-vm.sh"; then
		[ -f "$OUT/$flavor/guest-status" ] ||
			die "stopped: flavor $flavor failed before its guest booted (see the error above)"
		log "flavor $flavor: guest did not finish its plan"
	fi
done
log "pipeline took ${SECONDS}s"
# shellcheck disable=SC2086 # one argument per flavor
python3 "$REPO_ROOT/scripts/report.py" --out "$OUT" host $FLAVORS
