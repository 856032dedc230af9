#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: [ROUNDS=20] [DRIVERS="rust c"] [OUT=out] [KSRC=...] scripts/repro-zap-pmd.sh [--help]
#
# make repro-zap: the reproducer of the kernel bug in README, "Kernel bug:
# zap_huge_pmd() puts a device-private folio behind a migration entry".
# Builds the normal kernel twice, from the tree as it is and with the
# proposed fix patches/0003, boots each once per driver and runs ROUNDS
# rounds of selftests/dmirror_zap_race (munmap of device-private THPs while
# a close evicts their device). Prints, per kernel and driver, the guest
# status and the kernel reports of the run (the full log is in
# OUT/repro-zap-<stock|patched>-<driver>/normal/console.log).
# The guests boot with oops=panic: an Oops ends the boot at once instead of
# leaving the test hung in its close() until the suite's timeout.
# Exits 0 when the stock kernel shows a kernel report with every driver and
# the patched one runs clean with every driver (no kernel report, the test
# passes), 1 otherwise. The patched kernel is a full build (about 6 min on
# 2 cores, cached).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"

ROUNDS=${ROUNDS:-20}
DRIVERS=${DRIVERS:-rust c}
fix=$REPO_ROOT/patches/0003-mm-huge_memory-zap_huge_pmd-must-not-put-a-device-private-folio-behind-a-migration-entry.patch
base_patches=${PATCHES:-}

"$REPO_ROOT/scripts/toolchain.sh"

# Boots one kernel with one driver; prints the guest status, the test's
# result and the kernel's reports.
run_one() {
	local name=$1 patches=$2 driver=$3 out=$OUT/repro-zap-$1-$3
	log "$name kernel${patches:+ (PATCHES=$patches)}, $driver driver: $ROUNDS rounds of dmirror_zap_race"
	OUT=$out PATCHES=$patches KFLAVOR=normal DRIVERS=$driver SUITES=dmirror_zap_race \
		STRESS=1 SUITE_ARGS="--rounds $ROUNDS" VM_TIMEOUT=1500 EXTRA_CMDLINE=oops=panic \
		"$REPO_ROOT/scripts/run-vm.sh" >&2 || true
	local result
	result=$(grep -a -o -E '^(ok|not ok) [0-9]+ zap\.unmap_thps_during_eviction' \
		"$out/normal/channel.log" 2>/dev/null | sed 's/ [0-9]* zap.*//') || true
	printf '%s %s: guest %s, test %s\n' "$name" "$driver" \
		"$(cat "$out/normal/guest-status" 2>/dev/null || echo missing)" "${result:-not reported}"
	grep -a -E '^(BUG|WARNING|Oops|general protection|Unable to handle|RIP)' "$out/normal/console.log" |
		sort | uniq -c | sed 's/^/  /' || echo "  no kernel report"
}

rc=0
for driver in $DRIVERS; do
	stock=$(run_one stock "$base_patches" "$driver")
	patched=$(run_one patched "${base_patches:+$base_patches }$fix" "$driver")
	printf '%s\n%s\n' "$stock" "$patched"
	grep -q 'BUG\|Oops\|WARNING' <<<"$stock" ||
		{ log "$driver: the stock kernel showed no kernel report in $ROUNDS rounds"; rc=1; }
	if ! grep -q 'guest finished' <<<"$patched" || ! grep -q 'no kernel report' <<<"$patched" ||
		! grep -q 'test ok$' <<<"$patched"; then
		log "$driver: the patched kernel did not run clean"
		rc=1
	fi
done
[ "$rc" -ne 0 ] || log "reproduced on the stock kernel, gone with $(basename "$fix")"
exit "$rc"
