#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: [DRIVERS="c rust"] [CONDS=base,refs,numa] [CONT_TIME=2] [OUT=out]
#        [PATCHES=...] scripts/contention.sh [--help]
#
# make contention: why migrate_vma_setup() collects fewer pages than asked
# when K = 1, 2, 4, 8 threads migrate the same range (docs/contention.md).
# Builds the contention kernel (KFLAVOR=contention: qemu/kernel-contention.config,
# the mdev_* vmstat events of patches/experiments/0001, NUMA balancing),
# boots it once on a 2-CPU guest with two emulated NUMA nodes
# (numa=fake=2), runs bench/dmirror_contention --full against each driver
# of DRIVERS for the conditions CONDS (base; refs: a thread taking
# references to the range's pages with vmsplice() and pinning them with
# gup_test; numa: NUMA balancing on) with
# CONT_TIME seconds per case, and writes OUT/contention/results.json, the
# plot OUT/contention/missed-by-cause.svg and the tables
# (scripts/contention_report.py; --doc rewrites the generated part of
# docs/contention.md).
# PATCHES adds patches after the instrumentation (a tried fix, measured
# with the same experiment).
# Exits 1 when the guest crashed or hung or a driver's run failed.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"

instr=("$REPO_ROOT"/patches/experiments/0001-*.patch)
[ -f "${instr[0]}" ] || die "no instrumentation patch in patches/experiments/"
PATCHES="${instr[0]}${PATCHES:+ $PATCHES}"
DRIVERS=${DRIVERS:-c rust}
CONDS=${CONDS:-base,refs,numa}
CONT_TIME=${CONT_TIME:-2}
KFLAVOR=contention
export PATCHES DRIVERS KFLAVOR SUITES=dmirror_contention
export SUITE_ARGS="--full --cond $CONDS --time $CONT_TIME"
export EXTRA_CMDLINE="numa=fake=2${EXTRA_CMDLINE:+ $EXTRA_CMDLINE}"
read -r -a rounds <<<"$DRIVERS"
export VM_TIMEOUT=${VM_TIMEOUT:-$((${#rounds[@]} * 700 + 300))}

log "contention experiment: drivers $DRIVERS, conditions $CONDS, ${CONT_TIME}s per case"
status=0
"$REPO_ROOT/scripts/run-vm.sh" || status=1

results=$OUT/$KFLAVOR/results
for tap in "$results"/*/dmirror_contention.tap; do
	[ -f "$tap" ] || { log "no results in $results"; status=1; continue; }
	rc=$(sed 's/^rc=//' "${tap%.tap}.rc" 2>/dev/null || echo missing)
	if [ "$rc" != 0 ] || grep -q '^not ok' "$tap"; then
		log "$(basename "$(dirname "$tap")"): failed (rc=$rc)"
		grep -E '^(not ok|# )' "$tap" | grep -v '^# CONT ' | head -n 20 >&2 || true
		status=1
	fi
done
mkdir -p "$OUT/contention"
python3 "$REPO_ROOT/scripts/contention_report.py" "$results" \
	--json "$OUT/contention/results.json" \
	--svg "$OUT/contention/missed-by-cause.svg" || status=1
exit "$status"
