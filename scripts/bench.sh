#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: [DRIVERS="c rust c rust c rust"] [KFLAVOR=normal] [OUT=out] [ACCEL=auto|kvm|tcg]
#        scripts/bench.sh [--help]
#
# Benchmarks the upstream C dmirror driver (test_hmm) against the Rust port
# (hmm_dmirror_rs) in one VM boot: builds bench/dmirror_bench into
# OUT/<flavor>/bin, runs it with --full once per entry of DRIVERS (default
# alternating "c rust c rust c rust" so that drift in the guest cancels out;
# "c c c" when the Rust module does not build yet), then bench/bench_report.py
# prints the table (median, spread and Rust/C ratio per row) and writes
# OUT/bench/results.json and OUT/bench/throughput.png.
# Needs python3-matplotlib for the plot (installed with apt-get when missing).
# Exits 1 when the guest crashed or hung or a benchmark round failed.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"

if [ -z "${DRIVERS:-}" ]; then
	if "$REPO_ROOT/scripts/build-module.sh" >/dev/null 2>&1; then
		DRIVERS="c rust c rust c rust"
	else
		log "the Rust module does not build (yet): C rounds only"
		DRIVERS="c c c"
	fi
fi
read -r -a rounds <<<"$DRIVERS"
export DRIVERS SUITES=dmirror_bench SUITE_ARGS=--full
# Each round has its own suite timeout inside the guest; leave room for boot.
export VM_TIMEOUT=${VM_TIMEOUT:-$((${#rounds[@]} * 700 + 300))}

# build-tests.sh builds the benchmark into the bin folder the initramfs
# takes its suites from.
"$REPO_ROOT/scripts/build-tests.sh" >/dev/null

# The first python3 with matplotlib draws the plot (a pyenv python3 in PATH
# may not see Debian's python3-matplotlib).
plot_python() {
	local py
	for py in python3 /usr/bin/python3; do
		if command -v "$py" >/dev/null && "$py" -c 'import matplotlib' 2>/dev/null; then
			echo "$py"
			return 0
		fi
	done
	return 1
}
if ! plot_python >/dev/null; then
	log "installing python3-matplotlib for the plot"
	if [ "$(id -u)" -eq 0 ]; then
		apt-get install -y python3-matplotlib >/dev/null ||
			log "could not install python3-matplotlib: no plot"
	else
		log "not root: install python3-matplotlib (or pip install matplotlib) for the plot"
	fi
fi
python=$(plot_python || echo python3)

log "benchmark rounds: $DRIVERS (VM timeout ${VM_TIMEOUT}s)"
status=0
"$REPO_ROOT/scripts/run-vm.sh" || status=1

results=$OUT/$KFLAVOR/results
bench_rounds_ok "$results" || status=1

mkdir -p "$OUT/bench"
"$python" "$REPO_ROOT/bench/bench_report.py" "$results" \
	--json "$OUT/bench/results.json" --plot "$OUT/bench/throughput.png" ||
	status=1
exit "$status"
