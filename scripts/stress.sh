#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: [KFLAVOR=debug|normal] [DRIVERS="c rust"] [STRESS_SUITES=...] [FUZZ_SEED=N]
#        [OUT=out] [VM_TIMEOUT=seconds] scripts/stress.sh [--help]
#
# make stress: the reliability programs with their long settings, on the
# debug kernel by default, in one VM boot (scripts/run-vm.sh),
# then the results table (scripts/report.py):
#  - dmirror_fuzz --long: 600 s or 5,000,000 ioctls per driver and variant
#    (without and with THPs);
#  - dmirror_faultinject --long: every fail_page_alloc/failslab round 5 times
#    (the debug kernel has the fault-injection knobs);
#  - dmirror_modcycle --long: 100 unload/load cycles with live users;
#  - dmirror_evict_race --long: 100 rounds of the eviction/munmap race of
#    the migrate_device_range() anon_vma bug (docs/kernel-bugs.md).
# Every suite gets SUITE_ARGS="--long"; FUZZ_SEED=N replays a fuzzer seed
# (printed in OUT/<flavor>/results/<driver>/dmirror_fuzz.tap; dmirror_evict_race
# takes it too); STRESS=1 gives them the longer guest
# timeouts of suite_timeout in scripts/lib.sh. STRESS_SUITES picks a subset.
# Exits non-zero when the guest crashed or hung or a result is unexpected.
set -euo pipefail
# The debug kernel unless asked otherwise (lib.sh defaults to normal).
KFLAVOR=${KFLAVOR:-debug}
export KFLAVOR
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"

STRESS_SUITES=${STRESS_SUITES:-dmirror_fuzz dmirror_faultinject dmirror_modcycle dmirror_evict_race}
if [ -z "${DRIVERS:-}" ]; then
	DRIVERS=c
	[ -f "$REPO_ROOT/Kbuild" ] && DRIVERS="rust c"
fi
read -r -a drivers <<<"$DRIVERS"
read -r -a suites <<<"$STRESS_SUITES"

# FUZZ_SEED reaches the seeded programs through suite_args (scripts/lib.sh).
export DRIVERS SUITES="$STRESS_SUITES" SUITE_ARGS=--long STRESS=1
[ -z "${FUZZ_SEED:-}" ] || export FUZZ_SEED
# The guest runs every suite for every driver, each within its timeout.
export VM_TIMEOUT=${VM_TIMEOUT:-$(stress_vm_timeout "${#drivers[@]}" "${suites[@]}")}

"$REPO_ROOT/scripts/toolchain.sh"
mkdir -p "$OUT"
log "stress on the $KFLAVOR kernel: drivers $DRIVERS, suites $STRESS_SUITES (VM timeout ${VM_TIMEOUT}s)"
SECONDS=0
rc=0
"$REPO_ROOT/scripts/run-vm.sh" || rc=$?
log "stress run took ${SECONDS}s"
python3 "$REPO_ROOT/scripts/report.py" --out "$OUT" "$KFLAVOR" || rc=1
exit "$rc"
