#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: [BUGS="anon_vma hmm_pfn zap split"] [DRIVERS="rust c"] [OUT=out] [KSRC=...] scripts/repro.sh [--help]
#
# make repro: shows each of the kernel fixes of patches/ the same way,
# with the hmm-tests case that the series adds for it (patches/README):
#
#   anon_vma  0001 + test 0005: migrate_release_munmap (KASAN report)
#   hmm_pfn   0002 + tests 0006, 0007: migrate_anon_huge_read_second_mirror
#   zap       0003 (and 0010) + test 0008: migrate_anon_huge_release_munmap,
#             migrate_anon_huge_dontneed_during_migrate
#   split     0004 + test 0009: migrate_anon_huge_err_shared_with_child
#
# Two kernels are built from the tree (the pinned package, or KSRC): "stock",
# with the reproducer patches only (0005-0009), and "fixed", with the whole
# series (0001-0010; 0010, the fifth fix, has 0008's release_munmap case for
# reproducer, which on stock Oopses from 0003's bug first; make review with
# BASE_PATCHES=0001-0009 shows 0010 alone, patches/README). hmm-tests is
# built from each tree, so the new cases come
# with it. The guest boots with oops=panic, once per kernel, bug and driver
# (the fixed kernel once per driver for all its cases). anon_vma needs the
# KASAN kernel (qemu/kernel-kasan.config), which has no Rust: its boots are C
# only; the other bugs use the normal kernel and every driver of DRIVERS.
#
# Prints one line per boot: kernel, bug, driver, guest status, each case's
# result, and the kernel's reports but those selftests/expectations.txt lists
# as known for the driver (logs in OUT/repro/<kernel>-<bug>-<driver>).
# Exits 0 when, for every bug, the stock kernel fails a case or reports with
# the C driver, and the fixed kernel passes every case without a kernel report
# with every driver; 1 otherwise. Each kernel is a full build (about 6 min on
# 2 cores, cached by content).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"

BUGS=${BUGS:-anon_vma hmm_pfn zap split}
DRIVERS=${DRIVERS:-rust c}
[ -z "$PATCHES" ] || die "make repro takes the series from patches/, not PATCHES"

cases_of() {
	case "$1" in
	anon_vma) echo migrate_release_munmap ;;
	hmm_pfn) echo migrate_anon_huge_read_second_mirror ;;
	zap) echo migrate_anon_huge_release_munmap migrate_anon_huge_dontneed_during_migrate ;;
	split) echo migrate_anon_huge_err_shared_with_child ;;
	*) die "unknown bug '$1' (known: anon_vma hmm_pfn zap split)" ;;
	esac
}
flavor_of() { if [ "$1" = anon_vma ]; then echo kasan; else echo normal; fi; }

series() {
	local f
	for f in "$REPO_ROOT"/patches/00[0-9][0-9]-*.patch; do
		[ -f "$f" ] || die "patches/ holds no series"
		case "$(basename "$f")" in
		0000-*) ;;
		000[1-4]-* | 0010-*) [ "$1" = fixed ] && printf '%s ' "$f" ;;
		*) printf '%s ' "$f" ;;
		esac
	done
}

"$REPO_ROOT/scripts/toolchain.sh"

# Boots one kernel with one driver and runs the given hmm-tests cases; prints
# a result line. $1 kernel (stock|fixed), $2 flavor, $3 label, $4 driver,
# then the cases.
run_boot() {
	local kernel=$1 flavor=$2 label=$3 driver=$4
	shift 4
	local out=$OUT/repro/$kernel-$label-$driver args="" c line
	for c in "$@"; do args+=" -t $c"; done
	log "$kernel kernel ($flavor), $driver driver: hmm-tests$args"
	OUT=$out PATCHES="$(series "$kernel")" KFLAVOR=$flavor DRIVERS=$driver SUITES=hmm-tests \
		SUITE_ARGS="${args# }" VM_TIMEOUT=1800 EXTRA_CMDLINE=oops=panic \
		"$REPO_ROOT/scripts/run-vm.sh" >&2 || true
	line="$kernel $label $driver: guest $(cat "$out/$flavor/guest-status" 2>/dev/null || echo missing)"
	for c in "$@"; do
		local r
		r=$(tr -d '\r' <"$out/$flavor/channel.log" 2>/dev/null |
			grep -a -E "^(ok|not ok) [0-9]+ hmm\.[a-z0-9_]+\.$c( |$)" |
			sed -E 's/ # SKIP.*/ (skip)/; s/^(ok|not ok) [0-9]+ hmm\.([a-z0-9_]+)\.[a-z0-9_]+/\2:\1/' |
			tr '\n' ' ') || true
		line+="; $c: ${r:-not reported}"
	done
	printf '%s\n' "$line"
	# Reports that selftests/expectations.txt lists as known for this
	# driver and flavor (the C driver's own bugs) do not count.
	local known
	known=$(awk -F'|' -v d="$driver" -v f="$flavor" '
		/^[[:space:]]*#/ || NF != 6 { next }
		{ for (i = 1; i <= NF; i++) gsub(/^[[:space:]]+|[[:space:]]+$/, "", $i) }
		$3 == "kernel-log" && $5 == "report" && ($1 == "*" || $1 == d) &&
		($2 == "*" || $2 == f) { print $4 }' "$REPO_ROOT/selftests/expectations.txt")
	grep -a -E '^(BUG|WARNING|Oops|general protection|Unable to handle|kernel BUG)' \
		"$out/$flavor/console.log" 2>/dev/null |
		{ if [ -n "$known" ]; then
			grep -a -v -P "$(printf '%s\n' "$known" | sed 's/^/(?:/; s/$/)/' | paste -sd'|')"
		else cat; fi; } |
		sort | uniq -c | sed 's/^/  /' | grep . || echo "  no kernel report"
}

results=$OUT/repro/summary.txt
mkdir -p "$OUT/repro"
: >"$results"
for bug in $BUGS; do
	flavor=$(flavor_of "$bug")
	drivers=$DRIVERS
	[ "$flavor" = normal ] || drivers=c
	for driver in $drivers; do
		# shellcheck disable=SC2046
		run_boot stock "$flavor" "$bug" "$driver" $(cases_of "$bug") | tee -a "$results"
	done
done
normal_cases=""
for bug in $BUGS; do [ "$(flavor_of "$bug")" = kasan ] || normal_cases+=" $(cases_of "$bug")"; done
for driver in $DRIVERS; do
	# shellcheck disable=SC2086
	[ -z "$normal_cases" ] || run_boot fixed normal all "$driver" $normal_cases | tee -a "$results"
done
case " $BUGS " in
*" anon_vma "*)
	# shellcheck disable=SC2046
	run_boot fixed kasan anon_vma c $(cases_of anon_vma) | tee -a "$results" ;;
esac

# The verdict, per bug.
rc=0
for bug in $BUGS; do
	stock=$(awk -v b="$bug" '$1 == "stock" && $2 == b && $3 == "c:" { p = 1; print; next }
		/^stock|^fixed/ { p = 0 } p' "$results")
	if ! grep -q -E 'not ok|not reported|guest crashed|^  +[0-9]+ (BUG|WARNING|Oops|general|Unable|kernel BUG)' <<<"$stock"; then
		log "$bug: the stock kernel passed with the C driver (no failure, no kernel report)"
		rc=1
	fi
	for c in $(cases_of "$bug"); do
		if grep -E "^fixed " "$results" | grep -E "; $c: " | grep -q -E "$c: [^;]*(not ok|not reported)"; then
			log "$bug: $c did not pass on the fixed kernel"
			rc=1
		fi
	done
done
if awk '/^fixed/ { p = 1; if ($0 !~ /guest finished/) bad = 1; next } /^stock/ { p = 0 }
	p && /^  +[0-9]+ / { bad = 1 } END { exit !bad }' "$results"; then
	log "the fixed kernel did not run clean (see above)"
	rc=1
fi
[ "$rc" -ne 0 ] || log "every bug reproduced on the stock kernel and gone on the fixed one"
exit "$rc"
