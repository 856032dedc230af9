#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: PATCHES="a.patch series.mbox" [BASE_PATCHES=...] [KSRC=/path/to/linux]
#        [REVIEW_BASE=ref REVIEW_HEAD=ref] [REVIEW=quick|full] [PAIRS=N]
#        [RERUNS=3] [DRIVERS="rust c"] [REVIEW_FORCE=1] [FAIL_INCONCLUSIVE=1]
#        [REVIEW_CHECK_ONLY=1] [REVIEW_SUITES=...] [BENCH_DRIVERS=...]
#        [REVIEW_COVERAGE=0|1] [REVIEW_COVERAGE_ONLY=1] [REVIEW_SEED=N]
#        [REVIEW_STRESS_SUITES=...] [REVIEW_STRESS_SECONDS=120]
#        [REVIEW_STRESS_ROUNDS=10] scripts/review.sh [--help]
#
# make review: what a kernel patch series changes, base against head.
#  - base: the pinned tree (or KSRC) plus BASE_PATCHES (patches on both
#    sides); head: base plus PATCHES. With a git KSRC, REVIEW_BASE and
#    REVIEW_HEAD name two refs instead (exported with git archive; the
#    user's tree is never modified).
#  - The request is checked first: KSRC is a kernel tree, the refs exist,
#    every patch file exists and the series applies (on a scratch copy of
#    the files it touches). A wrong request stops here, naming the file or
#    ref. A head that does not build stops with exit 1, a base that does not
#    build or boot with exit 2; nothing is written to OUT/review/ then.
#  - No built code changed: every object the series touches that this
#    config builds is compiled from both trees with the base build's own
#    command line and compared without debug info; when none differs (and
#    no header, build file or test changed) no guest boots: the report says
#    so. REVIEW_FORCE=1 takes the full path anyway (the A/A check).
#    REVIEW_CHECK_ONLY=1 stops after this step (no head build, no boot).
#  - Functional: one boot per side per flavor with every suite (or
#    REVIEW_SUITES) and driver,
#    plus one boot of the base kernel with the head's hmm-tests when the
#    series touches tools/testing/selftests/mm (a new test failing on base
#    and passing on head = "fix demonstrated"; that boot runs hmm-tests
#    only, with oops=panic: the test running when base crashed fails). Every
#    suite with a test whose result differs, or during which a kernel report
#    came on one side only, is booted RERUNS more times on each side.
#  - Stress (REVIEW=full): one boot per side on the debug kernel with the
#    make stress programs (REVIEW_STRESS_SUITES) and the same seed and
#    lengths on both: dmirror_fuzz --long for REVIEW_STRESS_SECONDS per
#    variant, REVIEW_STRESS_ROUNDS module cycles and eviction race rounds.
#    Compared like the functional results, as the flavor "stress"; not
#    rerun. REVIEW_SEED (random unless given, printed in the report's rerun
#    line) seeds the fuzzer and the eviction race of every boot of both
#    sides.
#  - Performance: PAIRS base/head boot pairs in ABBA order, each one round
#    of each driver of dmirror_bench --full (quick: short settings, BENCH_ARGS).
#  - Coverage of the series (REVIEW_COVERAGE=1, the default of REVIEW=full):
#    the head kernel built again with gcov's counters in the objects of the
#    series' C files (KFLAVOR=cov, COV_OBJECTS) and booted once with every
#    suite (or REVIEW_SUITES) and driver; the counters, reset before each
#    suite, are mapped to the series' hunks (ran, by which suites / not run /
#    not built in this config). Rust code is not covered by gcov.
#    REVIEW_COVERAGE_ONLY=1: only this (no base, no comparison), into
#    OUT/review-coverage/coverage.txt and coverage.json.
#  - REVIEW=quick (default): normal kernel, PAIRS=2, no coverage. REVIEW=full:
#    normal and debug kernels, the stress boots, PAIRS=3 and an A-vs-A pair
#    of base boots, the benchmark's full settings, coverage.
# scripts/review_compare.py decides (rules in its --help and in the report)
# and writes OUT/review/review.txt and review.json; the boots' folders stay in
# OUT/review/runs/. Exit: 0 no regression shown, 1 regression, 2 could not
# complete, 3 inconclusive performance with FAIL_INCONCLUSIVE=1.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"

REVIEW=${REVIEW:-quick}
RERUNS=${RERUNS:-3}
BASE_PATCHES=${BASE_PATCHES:-}
REVIEW_BASE=${REVIEW_BASE:-}
REVIEW_HEAD=${REVIEW_HEAD:-}
REVIEW_FORCE=${REVIEW_FORCE:-0}
REVIEW_COVERAGE_ONLY=${REVIEW_COVERAGE_ONLY:-0}
REVIEW_COVERAGE_SET=${REVIEW_COVERAGE:-}
case "$REVIEW" in
quick)
	REVIEW_COVERAGE=${REVIEW_COVERAGE:-0}
	PAIRS=${PAIRS:-2}
	REVIEW_FLAVORS=${REVIEW_FLAVORS:-normal}
	BENCH_ARGS=${BENCH_ARGS:---full --max-mib 16 --time-scale 0.25}
	AA_PAIRS=0
	REVIEW_STRESS_SUITES=${REVIEW_STRESS_SUITES-}
	;;
full)
	REVIEW_COVERAGE=${REVIEW_COVERAGE:-1}
	PAIRS=${PAIRS:-3}
	REVIEW_FLAVORS=${REVIEW_FLAVORS:-normal debug}
	BENCH_ARGS=${BENCH_ARGS:---full}
	AA_PAIRS=1
	REVIEW_STRESS_SUITES=${REVIEW_STRESS_SUITES-dmirror_fuzz dmirror_faultinject dmirror_modcycle dmirror_evict_race}
	;;
*) die "REVIEW=$REVIEW: expected quick or full" ;;
esac
if [ -z "${DRIVERS:-}" ]; then
	DRIVERS=c
	[ -f "$REPO_ROOT/Kbuild" ] && DRIVERS="rust c"
fi
REVIEW_STRESS_SECONDS=${REVIEW_STRESS_SECONDS:-120}
REVIEW_STRESS_ROUNDS=${REVIEW_STRESS_ROUNDS:-10}
# The stress boots run on the debug kernel when the review builds it.
stress_flavor=${REVIEW_FLAVORS%% *}
case " $REVIEW_FLAVORS " in *" debug "*) stress_flavor=debug ;; esac
stress_desc=''
[ -z "$REVIEW_STRESS_SUITES" ] ||
	stress_desc="$REVIEW_STRESS_SUITES on the $stress_flavor kernel, fuzzer ${REVIEW_STRESS_SECONDS} s per variant, $REVIEW_STRESS_ROUNDS rounds"
# One seed for the seeded programs of every boot of both sides.
REVIEW_SEED=${REVIEW_SEED:-$((RANDOM * 32768 + RANDOM))}
[[ "$REVIEW_SEED" =~ ^[0-9]+$ ]] || die "REVIEW_SEED=$REVIEW_SEED: expected a number"
# The benchmark's rounds: one of each driver per boot.
BENCH_DRIVERS=${BENCH_DRIVERS:-$DRIVERS}
SECONDS=0

# The commit of this repository that ran the review (the report names it).
tool_commit=$(git -C "$REPO_ROOT" describe --always --dirty 2>/dev/null || echo unknown)

# --- 1. The request --------------------------------------------------------

[ -n "$PATCHES" ] || [ -n "$REVIEW_HEAD" ] ||
	die "nothing to review: give PATCHES=\"a.patch series.mbox\" (or KSRC=<git tree> REVIEW_BASE=<ref> REVIEW_HEAD=<ref>)"
if [ -n "$REVIEW_BASE$REVIEW_HEAD" ]; then
	if [ -z "$REVIEW_BASE" ] || [ -z "$REVIEW_HEAD" ]; then
		die "REVIEW_BASE and REVIEW_HEAD go together"
	fi
	git -C "${KSRC:-/nonexistent}" rev-parse --git-dir >/dev/null 2>&1 || die "REVIEW_BASE/REVIEW_HEAD need KSRC=<a git kernel tree> (KSRC=${KSRC:-unset})"
	for ref in "$REVIEW_BASE" "$REVIEW_HEAD"; do
		git -C "$KSRC" rev-parse --verify --quiet "$ref^{commit}" >/dev/null ||
			die "ref not found in $KSRC: $ref"
	done
fi
if [ -n "$KSRC" ] && { [ ! -f "$KSRC/Makefile" ] || [ ! -f "$KSRC/lib/test_hmm.c" ]; }; then
	die "KSRC=$KSRC is not a kernel tree with lib/test_hmm.c"
fi
for p in $BASE_PATCHES $PATCHES; do
	[ -f "$p" ] || die "patch not found: $p"
done
# Absolute paths: the sides' trees are made elsewhere.
abs_list() {
	local p abs=()
	for p in "$@"; do abs+=("$(realpath "$p")"); done
	echo "${abs[*]:-}"
}
# The patches as the report shows them: relative to the repository when
# they are in it, so that a report names no path of this machine.
shown_list() {
	local p shown=()
	for p in "$@"; do shown+=("${p#"$REPO_ROOT"/}"); done
	echo "${shown[*]:-}"
}
# shellcheck disable=SC2086 # lists of files
BASE_PATCHES=$(abs_list $BASE_PATCHES)
# shellcheck disable=SC2086
PATCHES=$(abs_list $PATCHES)

# A ref of a git KSRC as a plain tree in the cache (keyed by its commit).
export_ref() {
	local ref=$1 sha dest
	sha=$(git -C "$KSRC" rev-parse "$ref^{commit}")
	dest=$HMM_CACHE/src/ref-${sha:0:16}/linux
	if [ ! -f "$dest/Makefile" ]; then
		log "exporting $ref ($sha) of $KSRC"
		rm -rf "$dest.tmp"
		mkdir -p "$dest.tmp"
		git -C "$KSRC" archive "$sha" | tar -x -C "$dest.tmp"
		rm -rf "$dest"
		mv "$dest.tmp" "$dest"
	fi
	printf '%s\n' "$dest"
}

"$REPO_ROOT/scripts/toolchain.sh"
if [ -n "$REVIEW_BASE" ]; then
	base_ksrc=$(export_ref "$REVIEW_BASE")
	head_ksrc=$(export_ref "$REVIEW_HEAD")
else
	base_ksrc=$KSRC
	head_ksrc=$KSRC
	[ -n "$KSRC" ] || KSRC='' PATCHES='' "$REPO_ROOT/scripts/kernel-source.sh" >/dev/null
fi
base_tree=${base_ksrc:-$PKG_SRC_DIR}

# Files a patch touches (its +++ side; new files included).
touched_files() {
	sed -n -e 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$@" | sort -u
}
series_files=$(if [ -n "$REVIEW_BASE" ]; then
	git -C "$KSRC" diff --name-only "$REVIEW_BASE" "$REVIEW_HEAD"
else
	# shellcheck disable=SC2086
	touched_files $PATCHES
fi)

# The series applies: on a scratch copy of the files it touches.
if [ -n "$PATCHES" ]; then
	scratch=$(mktemp -d)
	# shellcheck disable=SC2086
	while read -r f; do
		[ -f "$base_tree/${f:-/nonexistent}" ] || continue
		mkdir -p "$scratch/$(dirname "$f")"
		cp "$base_tree/$f" "$scratch/$f"
	done < <(touched_files $BASE_PATCHES $PATCHES)
	for p in $BASE_PATCHES $PATCHES; do
		if ! patch -d "$scratch" -p1 --forward --batch <"$p" >"$scratch/.patch.log" 2>&1; then
			sed 's/^/  /' "$scratch/.patch.log" >&2
			rm -rf "$scratch"
			die "patch does not apply to $base_tree (after the patches before it): $p"
		fi
	done
	rm -rf "$scratch"
fi
log "request checked: base ${base_ksrc:-pinned tree}${BASE_PATCHES:+ + $BASE_PATCHES}; head ${head_ksrc:-pinned tree} + ${BASE_PATCHES:+$BASE_PATCHES }${PATCHES:-($REVIEW_HEAD)}"

# --- 2. Work folder, sides, builds -----------------------------------------

mkdir -p "$OUT"
work=$(mktemp -d "$OUT/.review.XXXXXX")
trap 'rm -rf "$work"' EXIT
runs_list=$work/runs.txt
: >"$runs_list"
logdir=$work/logs
mkdir -p "$logdir"

# side_env SIDE: the environment of one side's kernel.
side_env() {
	case "$1" in
	base) printf '%s\n' "KSRC=$base_ksrc" "PATCHES=$BASE_PATCHES" ;;
	head) printf '%s\n' "KSRC=$head_ksrc" "PATCHES=${BASE_PATCHES:+$BASE_PATCHES }$PATCHES" ;;
	esac
}
on_side() {
	local side=$1
	shift
	local vars
	mapfile -t vars < <(side_env "$side")
	env "${vars[@]}" "$@"
}

base_src=$(on_side base "$REPO_ROOT/scripts/kernel-source.sh") ||
	{ log "the base tree could not be made"; exit 2; }
head_src=$(on_side head "$REPO_ROOT/scripts/kernel-source.sh") ||
	die "the head tree could not be made (see above)"

declare -A build rust_ok
# REVIEW_COVERAGE_ONLY=1 needs no base kernel: nothing is compared.
[ "$REVIEW_COVERAGE_ONLY" = 0 ] || REVIEW_FLAVORS=normal
for flavor in $REVIEW_FLAVORS; do
	[ "$REVIEW_COVERAGE_ONLY" = 0 ] || break
	log "building the base $flavor kernel (cached when built before)"
	build[base.$flavor]=$(on_side base env KFLAVOR="$flavor" "$REPO_ROOT/scripts/kernel-build.sh") ||
		{ log "stopped: the base $flavor kernel does not build (see above); exit 2"; exit 2; }
done

# --- 3. Did built code change? ---------------------------------------------

# Compiles one object of a tree with the base build's own command line
# (from its .cmd file), into $3; prints nothing, fails when it cannot.
compile_like_base() {
	local obj=$1 tree=$2 dest=$3 bdir=${build[base.normal]:-${build[base.$REVIEW_FLAVORS]}} cmd
	local cmdfile
	cmdfile=$bdir/$(dirname "$obj")/.$(basename "$obj").cmd
	[ -f "$cmdfile" ] || return 1
	cmd=$(sed -n "s|^savedcmd_$obj := ||p" "$cmdfile")
	[ -n "$cmd" ] || return 1
	# Outputs into the scratch folder; the tree's own paths for the other side.
	cmd=$(sed -E -e "s|-Wp,-MMD,[^ ]+|-Wp,-MMD,$dest.d|" -e "s| -o $obj | -o $dest |" <<<"$cmd")
	cmd=${cmd//"$base_src"/$tree}
	(cd "$bdir" && eval "$cmd") >"$dest.log" 2>&1
}

# The code of an object (a hash), without what does not run: debug info, the
# compiler's comment, notes, and the BUG/WARN table (its line numbers move
# with any edit above; a new WARN changes the code too).
object_code() {
	local o=$1 sec args=()
	while read -r sec; do
		case "$sec" in
		.debug* | .comment | .note* | __bug_table | .rela* | .BTF*) ;;
		*) args+=(-j "$sec") ;;
		esac
	done < <(objdump -h "$o" | awk '$1 ~ /^[0-9]+$/ { print $2 }')
	[ ${#args[@]} -gt 0 ] || return 1
	{ objdump -dr "$o" && objdump -s "${args[@]}" "$o"; } >"$o.code" || return 1
	grep -v 'file format' "$o.code" | sha256sum | cut -c1-16
}

# Writes $work/skip.json when no built code changed; fills code_notes.
code_notes=()
code_changed=0
scratch=$work/objs
mkdir -p "$scratch"
bdir=${build[base.normal]:-${build[base.${REVIEW_FLAVORS%% *}]:-}}
checked_files=$series_files
[ "$REVIEW_COVERAGE_ONLY" = 0 ] || checked_files=
while read -r f; do
	[ -n "$f" ] || continue
	case "$f" in
	Documentation/* | *.rst | *.txt | MAINTAINERS | CREDITS | .mailmap)
		code_notes+=("$f|not code")
		;;
	tools/testing/selftests/mm/*)
		code_notes+=("$f|test source: the tests change")
		code_changed=1
		;;
	tools/* | samples/*)
		code_notes+=("$f|not built by this pipeline")
		;;
	*.c | *.S)
		obj=${f%.*}.o
		if [ ! -f "$bdir/$obj" ]; then
			code_notes+=("$f|not built in this config")
			continue
		fi
		if [ ! -f "$head_src/$f" ] || [ ! -f "$base_src/$f" ]; then
			code_notes+=("$f|file added or removed")
			code_changed=1
			continue
		fi
		d=$scratch/$(echo "$obj" | tr / _)
		if compile_like_base "$obj" "$base_src" "$d.base.o" &&
			compile_like_base "$obj" "$head_src" "$d.head.o"; then
			if ! hb=$(object_code "$d.base.o") || ! hh=$(object_code "$d.head.o"); then
				die "objdump failed on $d.base.o or $d.head.o"
			fi
			if [ "$hb" = "$hh" ]; then
				code_notes+=("$obj|same code")
			else
				code_notes+=("$obj|code differs")
				code_changed=1
			fi
		else
			code_notes+=("$obj|could not compile alone: assumed changed")
			code_changed=1
		fi
		;;
	*)
		code_notes+=("$f|header, build or other file: assumed to change code")
		code_changed=1
		;;
	esac
done <<<"$checked_files"
for n in "${code_notes[@]}"; do log "code: ${n%%|*}: ${n#*|}"; done
if [ "${REVIEW_CHECK_ONLY:-0}" = 1 ]; then
	log "REVIEW_CHECK_ONLY=1: request checked, built code $([ "$code_changed" = 1 ] && echo changed || echo unchanged); nothing booted, nothing written"
	exit 0
fi
skip=0
if [ "$code_changed" = 0 ] && [ "$REVIEW_COVERAGE_ONLY" = 0 ]; then
	if [ "$REVIEW_FORCE" = 1 ]; then
		log "no built code changed; REVIEW_FORCE=1: the full path anyway"
	else
		log "no built code changed: no guest boots"
		skip=1
	fi
fi

# --- 4. Boots --------------------------------------------------------------

if [ "$skip" = 0 ] && [ "$REVIEW_COVERAGE_ONLY" = 0 ]; then
	for flavor in $REVIEW_FLAVORS; do
		log "building the head $flavor kernel"
		build[head.$flavor]=$(on_side head env KFLAVOR="$flavor" "$REPO_ROOT/scripts/kernel-build.sh") ||
			die "stopped: the head $flavor kernel does not build (the series breaks the build; see above); exit 1"
		for side in base head; do
			rust_ok[$side.$flavor]=n/a
			case " $DRIVERS " in *" rust "*) ;; *) continue ;; esac
			if on_side "$side" env KFLAVOR="$flavor" OUT="$work/tmpl-$side" \
				"$REPO_ROOT/scripts/build-module.sh" >"$logdir/module-$side-$flavor.log" 2>&1; then
				rust_ok[$side.$flavor]=ok
			else
				rust_ok[$side.$flavor]=fail
				log "the Rust module does not build against the $side $flavor kernel ($logdir/module-$side-$flavor.log)"
			fi
		done
		[ "${rust_ok[base.$flavor]}" != fail ] ||
			{ log "stopped: the Rust module does not build against base; exit 2"; exit 2; }
	done
fi
tests_changed=0
grep -q '^tools/testing/selftests/mm/' <<<"$series_files" && tests_changed=1

# boot NAME KERNEL_SIDE TESTS_SIDE FLAVOR [VAR=value...]: one guest boot.
# The builds (test programs, module, initramfs) live in one OUT folder per
# kernel and tests, reused by the next boot of the same kind; the boot's
# results are then moved to $work/runs/NAME/FLAVOR.
boot() {
	local name=$1 kside=$2 tside=$3 flavor=$4
	shift 4
	local out=$work/build-$kside-$tside drivers=$DRIVERS rc=0 tests_src='' f
	local dest=$work/runs/$name/$flavor
	[ "${rust_ok[$kside.$flavor]:-ok}" != fail ] || drivers=${drivers//rust/}
	[ "$tside" = "$kside" ] || tests_src=$head_src
	mkdir -p "$out/$flavor" "$dest"
	# run-vm.sh writes guest-status only once a guest ran.
	rm -f "$out/$flavor/guest-status"
	log "boot $name: $kside kernel, $tside tests, $flavor${*:+, $*}"
	on_side "$kside" env KFLAVOR="$flavor" OUT="$out" DRIVERS="$drivers" TESTS_SRC="$tests_src" \
		FUZZ_SEED="$REVIEW_SEED" "$@" "$REPO_ROOT/scripts/run-vm.sh" >"$logdir/$name.log" 2>&1 || rc=$?
	if [ "$rc" != 0 ] && [ ! -f "$out/$flavor/guest-status" ]; then
		tail -n 20 "$logdir/$name.log" >&2
		if [ "$kside" = base ]; then
			log "stopped: boot $name failed before the guest ran (see above); exit 2"
			exit 2
		fi
		die "stopped: boot $name failed before the guest ran (see above)"
	fi
	for f in results console.log channel.log qemu.log dmesg.txt guest-status accelerator info.txt kernel.config; do
		[ ! -e "$out/$flavor/$f" ] || mv "$out/$flavor/$f" "$dest/"
	done
	log "boot $name: guest $(cat "$dest/guest-status")"
	printf '%s\n' "$name $kside $tside $flavor" >>"$runs_list"
}

# run_coverage: the head kernel with gcov's counters in the objects of the
# series' C files (KFLAVOR=cov), booted once with every suite (or
# REVIEW_SUITES) and driver; sets cov_json, the manifest's "coverage".
cov_json=null
run_coverage() {
	local objs=() f cbuild rc=0 out=$work/build-cov drivers=$DRIVERS dest=$work/runs/coverage/cov
	local suite_env=()
	while read -r f; do
		case "$f" in
		tools/* | samples/* | Documentation/* | scripts/* | usr/*) ;;
		*.c | *.S) objs+=("${f%.*}.o") ;;
		esac
	done <<<"$series_files"
	if [ ${#objs[@]} -eq 0 ]; then
		cov_json='{"not_measured": "the series changes no C file of the kernel"}'
		return
	fi
	log "coverage: building the head kernel with gcov counters in ${objs[*]} (KFLAVOR=cov, cached when built before)"
	if ! cbuild=$(on_side head env KFLAVOR=cov COV_OBJECTS="${objs[*]}" "$REPO_ROOT/scripts/kernel-build.sh"); then
		cov_json='{"not_measured": "the head kernel with gcov counters (KFLAVOR=cov) did not build (see the review log)"}'
		return
	fi
	case " $drivers " in
	*" rust "*)
		on_side head env KFLAVOR=cov COV_OBJECTS="${objs[*]}" OUT="$out" \
			"$REPO_ROOT/scripts/build-module.sh" >"$logdir/module-head-cov.log" 2>&1 || {
			log "coverage: the Rust module does not build against the cov kernel; C driver only"
			drivers=${drivers//rust/}
		}
		;;
	esac
	[ -z "${REVIEW_SUITES:-}" ] || suite_env=(SUITES="$REVIEW_SUITES")
	mkdir -p "$out/cov" "$dest"
	rm -f "$out/cov/guest-status"
	log "boot coverage: head kernel with counters, drivers $drivers${REVIEW_SUITES:+, suites $REVIEW_SUITES}"
	on_side head env KFLAVOR=cov COV_OBJECTS="${objs[*]}" OUT="$out" DRIVERS="$drivers" "${suite_env[@]}" \
		"$REPO_ROOT/scripts/run-vm.sh" >"$logdir/coverage.log" 2>&1 || rc=$?
	if [ ! -f "$out/cov/guest-status" ]; then
		tail -n 20 "$logdir/coverage.log" >&2
		log "coverage: the boot failed before its guest ran (rc=$rc)"
		cov_json='{"not_measured": "the coverage boot failed before its guest ran (logs/coverage.log)"}'
		return
	fi
	for f in results console.log channel.log qemu.log dmesg.txt guest-status accelerator info.txt kernel.config; do
		[ ! -e "$out/cov/$f" ] || mv "$out/cov/$f" "$dest/"
	done
	log "boot coverage: guest $(cat "$dest/guest-status")"
	cov_json=$(python3 -c 'import json, sys
print(json.dumps({"build": sys.argv[1], "out": sys.argv[2], "head_src": sys.argv[3],
                  "guest": open(sys.argv[4]).read().strip(), "objects": sys.argv[5:]}))' \
		"$cbuild" "$dest" "$head_src" "$dest/guest-status" "${objs[@]}")
}

write_manifest() {
	local stage=$1
	python3 - "$runs_list" "$work/manifest.json" "$stage" <<-'EOF'
		import json, os, sys
		runs, dest, stage = sys.argv[1:4]
		env = os.environ
		work = os.path.dirname(dest)
		m = {"flavors": env["REVIEW_FLAVORS"].split(), "functional": [],
		     "bench": {"pairs": [], "aa": []}, "status": json.loads(env["REVIEW_STATUS"]),
		     "skip": json.loads(env["REVIEW_SKIP"]),
		     "coverage": json.loads(env.get("REVIEW_COVERAGE_JSON", "null")),
		     "meta": json.loads(env["REVIEW_META"]),
		     "patches": env.get("REVIEW_PATCH_FILES", "").split(),
		     "objects": [dict(zip(("file", "result"), n.split("|", 1)))
		                 for n in env.get("REVIEW_CODE_NOTES", "").splitlines() if n]}
		bench = {}
		for line in open(runs):
		    name, kside, tside, flavor = line.split()
		    out = os.path.join(work, "runs", name)
		    if name.startswith("bench-"):
		        bench[name] = os.path.join(out, flavor, "results")
		        continue
		    run = {"kernel": kside, "tests": tside, "flavor": flavor, "out": out}
		    if name.startswith("stress-"):
		        run["group"] = "stress"
		    m["functional"].append(run)
		for i in range(1, 100):
		    b, h = bench.get(f"bench-{i}-base"), bench.get(f"bench-{i}-head")
		    if b and h:
		        m["bench"]["pairs"].append({"order": "AB" if i % 2 else "BA", "base": b, "head": h})
		if "bench-aa" in bench and "bench-1-base" in bench:
		    m["bench"]["aa"].append({"a1": bench["bench-1-base"], "a2": bench["bench-aa"]})
		json.dump(m, open(dest, "w"), indent=1)
	EOF
}

rerun_cmd="make review"
[ -z "$KSRC" ] || rerun_cmd+=" KSRC=$KSRC"
[ -z "$REVIEW_BASE" ] || rerun_cmd+=" REVIEW_BASE=$REVIEW_BASE REVIEW_HEAD=$REVIEW_HEAD"
# shellcheck disable=SC2086 # the patch lists split into paths
[ -z "$BASE_PATCHES" ] || rerun_cmd+=" BASE_PATCHES=\"$(shown_list $BASE_PATCHES)\""
# shellcheck disable=SC2086
[ -z "$PATCHES" ] || rerun_cmd+=" PATCHES=\"$(shown_list $PATCHES)\""
rerun_cmd+=" REVIEW=$REVIEW PAIRS=$PAIRS RERUNS=$RERUNS DRIVERS=\"$DRIVERS\" REVIEW_SEED=$REVIEW_SEED"
[ -z "${REVIEW_SUITES:-}" ] || rerun_cmd+=" REVIEW_SUITES=\"$REVIEW_SUITES\""
[ "$BENCH_DRIVERS" = "$DRIVERS" ] || rerun_cmd+=" BENCH_DRIVERS=\"$BENCH_DRIVERS\""
[ "$REVIEW_FORCE" = 0 ] || rerun_cmd+=" REVIEW_FORCE=1"
[ -z "${REVIEW_COVERAGE_SET:-}" ] || rerun_cmd+=" REVIEW_COVERAGE=$REVIEW_COVERAGE"
[ "$REVIEW_COVERAGE_ONLY" = 0 ] || rerun_cmd+=" REVIEW_COVERAGE_ONLY=1"
if [ -n "$REVIEW_STRESS_SUITES" ]; then
	rerun_cmd+=" REVIEW_STRESS_SUITES=\"$REVIEW_STRESS_SUITES\""
	rerun_cmd+=" REVIEW_STRESS_SECONDS=$REVIEW_STRESS_SECONDS REVIEW_STRESS_ROUNDS=$REVIEW_STRESS_ROUNDS"
fi

meta_json() {
	# shellcheck disable=SC2086 # the patch lists split into paths
	META_BASE="${base_ksrc:-Linux $KERNEL_PKG_VERSION ($KERNEL_PKG)}${BASE_PATCHES:+ + $(shown_list $BASE_PATCHES)}${REVIEW_BASE:+ at $REVIEW_BASE}" \
		META_HEAD="${head_ksrc:-Linux $KERNEL_PKG_VERSION ($KERNEL_PKG)}${REVIEW_HEAD:+ at $REVIEW_HEAD} + $(shown_list $BASE_PATCHES $PATCHES)" \
		META_RERUN="$rerun_cmd" META_RUNS="$work/runs" META_SECONDS=$SECONDS META_TOOL=$tool_commit \
		META_MODE=$REVIEW META_DRIVERS=$DRIVERS META_SEED=$REVIEW_SEED \
		META_STRESS="$stress_desc" python3 -c '
import json, os, platform
e = os.environ
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
acc = "tcg"
for root, _, files in os.walk(e["META_RUNS"]):
    if "accelerator" in files:
        acc = open(os.path.join(root, "accelerator")).read().strip()
        break
print(json.dumps({"base": e["META_BASE"], "head": e["META_HEAD"],
                  "machine": f"{cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}",
                  "accelerator": acc, "guest_cpus": 2, "mode": e["META_MODE"],
                  "flavors": e["REVIEW_FLAVORS"].split(), "drivers": e["META_DRIVERS"],
                  "seed": e["META_SEED"] + " (dmirror_fuzz, dmirror_evict_race; the other programs have fixed inputs)",
                  "stress": e["META_STRESS"],
                  "seconds": int(e["META_SECONDS"]), "rerun": e["META_RERUN"],
                  "tool": e["META_TOOL"]}))
'
}

status_json() {
	local flavor=${REVIEW_FLAVORS%% *}
	printf '{"base_build": "ok", "head_build": "ok", "rust_base": "%s", "rust_head": "%s"}\n' \
		"${rust_ok[base.$flavor]:-n/a}" "${rust_ok[head.$flavor]:-n/a}"
}

skip_json() {
	python3 -c '
import json, sys
if sys.argv[1] != "1":
    print("null"); sys.exit()
objs = [dict(zip(("object", "result"), n.split("|", 1))) for n in sys.argv[2:]]
print(json.dumps({"reason": "every object the series touches that this config builds compiles to the same code (debug info, notes and the BUG table aside): no guest booted; REVIEW_FORCE=1 runs everything anyway", "objects": objs}))
' "$skip" "${code_notes[@]}"
}

REVIEW_PATCH_FILES=$PATCHES
REVIEW_CODE_NOTES=$(printf '%s\n' "${code_notes[@]}")
export REVIEW_FLAVORS REVIEW_PATCH_FILES REVIEW_CODE_NOTES

# REVIEW_COVERAGE_ONLY=1: the coverage boot and its report, nothing else.
if [ "$REVIEW_COVERAGE_ONLY" = 1 ]; then
	run_coverage
	REVIEW_COVERAGE_JSON=$cov_json REVIEW_STATUS='{}' REVIEW_SKIP=null REVIEW_META=$(meta_json) \
		write_manifest coverage
	final=$work/review-coverage
	rc=0
	python3 "$REPO_ROOT/scripts/review_compare.py" --coverage-only "$work/manifest.json" "$final" || rc=$?
	case "$rc" in 0 | 2) ;; *) die "review_compare.py failed (rc=$rc)" ;; esac
	[ ! -d "$work/runs" ] || mv "$work/runs" "$final/runs"
	mv "$logdir" "$final/logs"
	sed "s|$work/runs|$OUT/review-coverage/runs|g" "$work/manifest.json" >"$final/manifest.json"
	rm -rf "$OUT/review-coverage"
	mv "$final" "$OUT/review-coverage"
	log "coverage took ${SECONDS}s; report: $OUT/review-coverage/coverage.txt (exit $rc)"
	exit "$rc"
fi

# The head's hmm-tests on the base kernel: only hmm-tests comes from the
# kernel tree, and a new test that finds the base kernel's bug may crash it,
# so an Oops ends that boot at once (oops=panic) instead of leaving a guest
# that deadlocked on a lock the dead task held until VM_TIMEOUT. The guest
# streams each suite's output, so the test that was running is known
# (report.py: "did not finish").
cross_env=(SUITES=hmm-tests EXTRA_CMDLINE=oops=panic)
if [ "$skip" = 0 ]; then
	for flavor in $REVIEW_FLAVORS; do
		first=()
		[ -z "${REVIEW_SUITES:-}" ] || first=(SUITES="$REVIEW_SUITES")
		boot "base-$flavor-1" base base "$flavor" "${first[@]}"
		boot "head-$flavor-1" head head "$flavor" "${first[@]}"
		[ "$tests_changed" = 0 ] || boot "cross-$flavor-1" base head "$flavor" "${cross_env[@]}"
	done
	# Reruns of every suite with a test whose result differs, or with a
	# kernel report on one side only.
	REVIEW_STATUS=$(status_json) REVIEW_SKIP=null REVIEW_META=$(meta_json) write_manifest first
	mapfile -t differing < <(python3 "$REPO_ROOT/scripts/review_compare.py" --differing "$work/manifest.json")
	for entry in "${differing[@]}"; do
		flavor=${entry%% *}
		suites=${entry#* }
		for ((i = 2; i <= RERUNS + 1; i++)); do
			boot "base-$flavor-$i" base base "$flavor" SUITES="$suites"
			boot "head-$flavor-$i" head head "$flavor" SUITES="$suites"
			case " $suites " in
			*" hmm-tests "*) [ "$tests_changed" = 0 ] || boot "cross-$flavor-$i" base head "$flavor" "${cross_env[@]}" ;;
			esac
		done
	done
	# Benchmark pairs, ABBA (pair 1 base first, pair 2 head first, ...),
	# on the first flavor (normal).
	flavor=${REVIEW_FLAVORS%% *}
	bench_env=(SUITES=dmirror_bench "SUITE_ARGS=$BENCH_ARGS" COHERENT=1)
	for ((i = 1; i <= PAIRS; i++)); do
		if ((i % 2)); then order="base head"; else order="head base"; fi
		for side in $order; do
			boot "bench-$i-$side" "$side" "$side" "$flavor" "${bench_env[@]}" DRIVERS="$BENCH_DRIVERS"
		done
	done
	((AA_PAIRS == 0)) || boot "bench-aa" base base "$flavor" "${bench_env[@]}" DRIVERS="$BENCH_DRIVERS"
	# Stress: the make stress programs, same seed and lengths on both sides,
	# on the debug kernel when the review builds it.
	if [ -n "$REVIEW_STRESS_SUITES" ]; then
		flavor=$stress_flavor
		read -r -a stress_suites <<<"$REVIEW_STRESS_SUITES"
		read -r -a stress_drivers <<<"$DRIVERS"
		stress_env=(SUITES="$REVIEW_STRESS_SUITES" SUITE_ARGS=--long STRESS=1
			STRESS_SECONDS="$REVIEW_STRESS_SECONDS" STRESS_ROUNDS="$REVIEW_STRESS_ROUNDS"
			VM_TIMEOUT="$(stress_vm_timeout "${#stress_drivers[@]}" "${stress_suites[@]}")")
		for side in base head; do
			boot "stress-$side" "$side" "$side" "$flavor" "${stress_env[@]}"
		done
	fi
	if [ "$REVIEW_COVERAGE" = 1 ]; then
		run_coverage
	else
		cov_json='{"not_measured": "REVIEW=quick (REVIEW=full or REVIEW_COVERAGE=1 measures it)"}'
	fi
else
	cov_json='{"not_measured": "no built code changed"}'
fi
export REVIEW_COVERAGE_JSON=$cov_json

# --- 5. The report -----------------------------------------------------------

REVIEW_STATUS=$(status_json) REVIEW_SKIP=$(skip_json) REVIEW_META=$(meta_json) write_manifest final
final=$work/review
mkdir -p "$final"
rc=0
fail_opt=()
[ "${FAIL_INCONCLUSIVE:-0}" = 0 ] || fail_opt=(--fail-inconclusive)
python3 "$REPO_ROOT/scripts/review_compare.py" "${fail_opt[@]}" "$work/manifest.json" "$final" || rc=$?
case "$rc" in 0 | 1 | 2 | 3) ;; *) die "review_compare.py failed (rc=$rc)" ;; esac
[ ! -d "$work/runs" ] || mv "$work/runs" "$final/runs"
mv "$logdir" "$final/logs"
sed "s|$work/runs|$OUT/review/runs|g" "$work/manifest.json" >"$final/manifest.json"
rm -rf "$OUT/review"
mv "$final" "$OUT/review"
log "review took ${SECONDS}s; report: $OUT/review/review.txt (exit $rc)"
exit "$rc"
