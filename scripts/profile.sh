#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: [PROFILE_TESTS=migrate,fault_latency,read_write_snapshot]
#        [PROFILE_ARGS="--iters 3 --max-mib 64"]
#        [DRIVERS="c rust"] [OUT=out] [ACCEL=auto|kvm|tcg] scripts/profile.sh [--help]
#
# make profile: where each driver spends its time in the benchmark. Boots
# the profile kernel (qemu/kernel-profile.config: the normal kernel plus
# perf events) once, runs 'dmirror_bench --full --only <test>' for each
# test of PROFILE_TESTS under perf in the guest (qemu/profile-run: the
# host's perf with its libraries, cpu-clock samples with call chains), for
# each driver, then bench/profile_report.py prints, per test, the symbols
# with the largest share of samples side by side for C and Rust, and
# writes OUT/profile/profile.json and OUT/profile/profile.txt.
# PROFILE_ARGS go to the benchmark after --full; the default fixes the work
# (iterations per repetition, not a duration), so that the two drivers'
# sample counts compare directly: fewer samples, less time for the same work
# (PROFILE_ARGS= profiles the timed repetitions of make bench instead).
# Installs linux-perf when perf is missing. Exits 1 when the guest crashed
# or hung or a profiled run failed.
set -euo pipefail
KFLAVOR=profile
export KFLAVOR
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"

PROFILE_TESTS=${PROFILE_TESTS:-migrate,fault_latency,read_write_snapshot}
DRIVERS=${DRIVERS:-c rust}
PROFILE_ARGS=${PROFILE_ARGS-"--iters 3 --max-mib 64"}
export PROFILE_TESTS DRIVERS SUITES=dmirror_bench SUITE_ARGS="--full $PROFILE_ARGS"
read -r -a rounds <<<"$DRIVERS"
export VM_TIMEOUT=${VM_TIMEOUT:-$((${#rounds[@]} * 900 + 300))}

"$REPO_ROOT/scripts/toolchain.sh"
if ! command -v perf >/dev/null; then
	log "installing linux-perf (perf for the guest)"
	apt-get install -y linux-perf >/dev/null
fi

log "profiling $PROFILE_TESTS for drivers $DRIVERS (VM timeout ${VM_TIMEOUT}s)"
status=0
"$REPO_ROOT/scripts/run-vm.sh" || status=1
results=$OUT/$KFLAVOR/results
bench_rounds_ok "$results" || status=1
mkdir -p "$OUT/profile"
python3 "$REPO_ROOT/bench/profile_report.py" "$results" \
	--json "$OUT/profile/profile.json" | tee "$OUT/profile/profile.txt" || status=1
exit "$status"
