#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: [ROUNDS=N] [DRIVERS="rust c"] [OUT=out] [KSRC=...] scripts/repro-kernel-bug.sh zap|split [--help]
#
# make repro-zap / make repro-split: the reproducers of two kernel bugs of
# docs/kernel-bugs.md, "zap_huge_pmd() puts a device-private folio behind a
# migration entry" (zap: selftests/dmirror_zap_race, 20 rounds by default;
# fix patches/0003) and "migrate_vma_pages() splits a THP that
# a forked child still PMD-maps" (split: selftests/dmirror_fork_split, 5
# rounds; fix patches/0004, applied on top of 0003 as the series is
# ordered). Builds the normal kernel from the tree as it is and with the
# fix, boots each once per driver and runs the bug's test. Prints, per
# kernel and driver, the guest status, the test's result and the kernel
# reports (the full log is in
# OUT/repro-<bug>-<stock|patched>-<driver>/normal/console.log). The guests
# boot with oops=panic: an Oops ends the boot at once instead of leaving
# the test hung until the suite's timeout.
# Exits 0 when the stock kernel shows a kernel report with every driver and
# the patched one runs clean with every driver (no kernel report, the test
# passes), 1 otherwise. A patched kernel is a full build (about 6 min on 2
# cores, cached).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"

DRIVERS=${DRIVERS:-rust c}
base_patches=${PATCHES:-}
zap_fix=$REPO_ROOT/patches/0003-mm-huge_memory-zap_huge_pmd-must-not-put-a-device-private-folio-behind-a-migration-entry.patch
split_fix=$REPO_ROOT/patches/0004-mm-migrate_device-split-every-PMD-migration-entry-before-splitting-an-unmapped-THP.patch
bug=${1:-}
case "$bug" in
zap)
	ROUNDS=${ROUNDS:-20}
	suite=dmirror_zap_race test=zap.unmap_thps_during_eviction fix=$zap_fix ;;
split)
	ROUNDS=${ROUNDS:-5}
	suite=dmirror_fork_split test=fs.device_thp_shared_with_child_back_as_base_pages
	fix="$zap_fix $split_fix" ;;
*) die "which bug? zap or split (see --help)" ;;
esac

"$REPO_ROOT/scripts/toolchain.sh"

# Boots one kernel with one driver; prints the guest status, the test's
# result and the kernel's reports.
run_one() {
	local name=$1 patches=$2 driver=$3 out=$OUT/repro-$bug-$1-$3
	log "$name kernel${patches:+ (PATCHES=$patches)}, $driver driver: $ROUNDS rounds of $suite"
	OUT=$out PATCHES=$patches KFLAVOR=normal DRIVERS=$driver SUITES=$suite \
		STRESS=1 SUITE_ARGS="--rounds $ROUNDS" VM_TIMEOUT=1500 EXTRA_CMDLINE=oops=panic \
		"$REPO_ROOT/scripts/run-vm.sh" >&2 || true
	local result
	result=$(grep -a -F " $test" "$out/normal/channel.log" 2>/dev/null |
		grep -a -o -E '^(ok|not ok)' | head -n 1) || true
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
[ "$rc" -ne 0 ] || log "reproduced on the stock kernel, gone with $(for f in $fix; do basename "$f"; done | tr '\n' ' ')"
exit "$rc"
