#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: scripts/test-pipeline.sh [--help]
#
# Host-side tests of the pipeline's own logic, as KTAP on stdout:
# KSRC= takes a user's tree and never modifies it, PATCHES= applies patch
# files (patch -p1, and git am on a git tree) on a cached copy that a second
# run reuses, a patch that does not apply stops with a clear error, make
# run stops at its first error, make review refuses a wrong request, and
# the decision rules of make review
# (scripts/test_review_compare.py); a guest with fewer CPUs online than
# asked for, or with fewer vCPU threads, fails the run and the results
# table says so. The plan line comes last.
# Runs on a small stand-in tree in a temporary cache: no kernel build needed.
# Also tests the docs scripts on a copy of the repository: make docs-check
# passes on the docs as they are and fails on a broken link or anchor, an
# unknown target or variable, a make help entry the docs do not mention and
# a doc no link reaches; make docs-tables rewrites generated blocks from an
# out/ folder and keeps a block whose input is missing.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"

source_script=$REPO_ROOT/scripts/kernel-source.sh
# The real tree (from the normal cache) only lends the files the stand-in needs.
real_src=$("$source_script")
real_cache=$HMM_CACHE
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HMM_CACHE=$work/cache

tests=0
failures=0
check() {
	local name=$1
	shift
	tests=$((tests + 1))
	if "$@" >"$work/last.log" 2>&1; then
		echo "ok $tests pipeline.$name"
	else
		failures=$((failures + 1))
		sed 's/^/# /' "$work/last.log"
		echo "not ok $tests pipeline.$name"
	fi
}

# A stand-in kernel tree: the files kernel-source.sh looks at.
tree=$work/linux
mkdir -p "$tree/lib"
cp "$real_src/Makefile" "$tree/Makefile"
cp "$real_src/lib/test_hmm.c" "$tree/lib/test_hmm.c"
sed 's/HMM test module loaded/HMM test module loaded (patched by hmm-dmirror-rs)/' \
	"$tree/lib/test_hmm.c" >"$work/new.c"
(cd "$work" && diff -u linux/lib/test_hmm.c new.c |
	sed -e '1s|^--- linux/|--- a/|' -e '2s|^+++ new.c|+++ b/lib/test_hmm.c|') >"$work/printk.patch" || true
sed 's/HMM test module loaded/no such line in the tree/' "$work/printk.patch" >"$work/bad.patch"
orig_sum=$(sha256sum <"$tree/lib/test_hmm.c")

echo "TAP version 13"

ksrc_is_used() { [ "$(KSRC=$tree PATCHES='' "$source_script")" = "$(realpath "$tree")" ]; }
check ksrc_is_used ksrc_is_used

patched=
patch_applies() {
	patched=$(KSRC=$tree PATCHES=$work/printk.patch "$source_script")
	grep -q 'patched by hmm-dmirror-rs' "$patched/lib/test_hmm.c" &&
		# the kernel release of a patched build names the copy
		grep -qx -- "-hmm-$(basename "$(dirname "$patched")" | cut -c9-16)" \
			"$patched/localversion-hmm-patches"
}
check patch_applies_to_copy patch_applies

ksrc_untouched() { [ "$(sha256sum <"$tree/lib/test_hmm.c")" = "$orig_sum" ]; }
check ksrc_untouched ksrc_untouched

copy_reused() {
	touch "$patched/.marker"
	[ "$(KSRC=$tree PATCHES=$work/printk.patch "$source_script")" = "$patched" ] &&
		[ -f "$patched/.marker" ]
}
check patched_copy_reused copy_reused

bad_patch_fails() {
	! KSRC=$tree PATCHES=$work/bad.patch "$source_script" 2>"$work/err" &&
		grep -q 'patch does not apply' "$work/err"
}
check bad_patch_fails_clearly bad_patch_fails

missing_patch_fails() {
	! KSRC=$tree PATCHES=$work/none.patch "$source_script" 2>"$work/err" &&
		grep -q 'patch not found' "$work/err"
}
check missing_patch_fails missing_patch_fails

git_am_used() {
	local gtree=$work/gitlinux out
	cp -a "$tree" "$gtree"
	git -C "$gtree" init -q
	git -C "$gtree" add -A
	git -C "$gtree" -c user.name=t -c user.email=t@localhost commit -qm base
	sed -i 's/HMM test module loaded/HMM test module loaded (git am)/' "$gtree/lib/test_hmm.c"
	git -C "$gtree" -c user.name=t -c user.email=t@localhost commit -qam "test: mark the printk"
	git -C "$gtree" format-patch -q -1 -o "$work/series"
	git -C "$gtree" reset -q --hard HEAD~1
	out=$(KSRC=$gtree PATCHES="$(echo "$work"/series/*.patch)" "$source_script")
	grep -q '(git am)' "$out/lib/test_hmm.c" &&
		[ "$(git -C "$out" log -1 --format=%s)" = "test: mark the printk" ]
}
check git_am_on_git_tree git_am_used

# The CPU check of scripts/run-vm.sh (cpu_status) and its report.
cpus_all_online() { [ "$(cpu_status 2 2 2)" = finished ]; }
check cpus_all_online_is_finished cpus_all_online
cpus_missing() {
	[ "$(cpu_status 2 1 2)" = "cpus-missing(1-of-2-online)" ] &&
		[ "$(cpu_status 2 "" 2)" = "cpus-missing(unknown-of-2-online)" ] &&
		[ "$(cpu_status 2 2 1)" = "vcpu-threads-missing(1-threads-for-2-vCPUs)" ]
}
check cpus_missing_fails cpus_missing
one_cpu_guest_fails_report() {
	local out=$work/out-1cpu
	mkdir -p "$out/normal/results/rust"
	printf '1..1\nok 1 t.a\n' >"$out/normal/results/rust/s.tap"
	echo rc=0 >"$out/normal/results/rust/s.rc"
	echo tcg >"$out/normal/accelerator"
	echo "cpus-missing(1-of-2-online)" >"$out/normal/guest-status"
	echo "requested=2 online=1 topology=2 accel=tcg vcpu_threads=2 CPU_0/TCG=3.0 CPU_1/TCG=0.1" >"$out/normal/cpus"
	! python3 "$REPO_ROOT/scripts/report.py" --out "$out" normal >"$work/report.txt" &&
		grep -q '1 of 2 CPUs online, guest cpus-missing' "$work/report.txt" &&
		grep -q '^1 passed, 1 failed' "$work/report.txt" &&
		python3 -c 'import json, sys; c = json.load(open(sys.argv[1]))["flavors"]["normal"]["cpus"]; sys.exit(c["online"] != 1 or c["requested"] != 2)' "$out/results.json"
}
check one_cpu_guest_fails_report one_cpu_guest_fails_report
# A kernel report names the driver, suite and test that ran when it came
# (the guest's "hmm-run:" marks, qemu/init).
report_names_its_test() {
	local out=$work/out-during
	mkdir -p "$out/normal/results/rust"
	printf '1..2\nok 1 hmm.a.first\nok 2 hmm.a.second\n' >"$out/normal/results/rust/hmm-tests.tap"
	echo rc=0 >"$out/normal/results/rust/hmm-tests.rc"
	echo tcg >"$out/normal/accelerator"
	echo finished >"$out/normal/guest-status"
	cat >"$out/normal/dmesg.txt" <<-'EOF'
		[    1.0] hmm-run: begin driver rust
		[    1.1] hmm-run: begin suite rust hmm-tests
		[    1.2] hmm-run: test rust hmm-tests hmm.a.first
		[    1.3] hmm-run: test rust hmm-tests hmm.a.second
		[    1.4] mm/pgtable-generic.c:56: bad pmd 00000000deadbeef(0000000000012345)
		[    1.5] hmm-run: end suite rust hmm-tests rc=0
		[    1.6] WARNING: CPU: 0 PID: 1 at mm/memremap.c:1 x+0x1/0x2
		[    1.7] hmm-run: end driver rust
	EOF
	! python3 "$REPO_ROOT/scripts/report.py" --out "$out" normal >"$work/report.txt" &&
		grep -q '^kernel report normal (rust, during hmm-tests hmm.a.second): mm/pgtable-generic.c:56: bad pmd' "$work/report.txt" &&
		grep -q '^kernel report normal (rust): WARNING: CPU: 0 PID: 1 at mm/memremap.c' "$work/report.txt" &&
		grep -q '^2 passed, 2 failed' "$work/report.txt"
}
check report_names_its_test report_names_its_test

# The docs scripts, on a fresh copy of the repository per test (no out/, no .git).
docs_copy() {
	rm -rf "$work/repo"
	mkdir -p "$work/repo"
	tar -C "$REPO_ROOT" --exclude=./out --exclude=./.git -cf - . | tar -C "$work/repo" -xf -
}
docs_check() { python3 "$REPO_ROOT/scripts/docs-check.py" --root "$work/repo"; }
# Passes on the copy as it is, fails after $1 is appended to file $2 and says $3.
docs_check_catches() {
	docs_copy
	docs_check || return 1
	printf '\n%s\n' "$1" >>"$work/repo/$2"
	! docs_check >"$work/docs.log" 2>&1 || return 1
	grep -F -- "$3" "$work/docs.log"
}
docs_clean() { docs_copy && docs_check; }
check docs_check_clean docs_clean
check docs_check_broken_link docs_check_catches "[gone](docs/no-such-doc.md)" README.md "broken link"
check docs_check_broken_anchor docs_check_catches "[gone](usage.md#no-such-heading)" docs/testing.md "no heading"
# shellcheck disable=SC2016 # backquotes are Markdown code spans here
check docs_check_unknown_target docs_check_catches '`make no-such-target`' docs/usage.md "no such target"
# shellcheck disable=SC2016 # as above
check docs_check_unknown_variable docs_check_catches '`NO_SUCH_VARIABLE=1 make run`' docs/usage.md "neither the Makefile nor a script"
check docs_check_help_entry_undocumented docs_check_catches \
	"frobnicate: ## A target nobody documented." Makefile "never mention 'make frobnicate'"
orphan_doc() {
	docs_copy
	echo "# Nobody links here" >"$work/repo/docs/orphan.md"
	! docs_check >"$work/docs.log" 2>&1 && grep -q 'orphan.md:1: not reachable' "$work/docs.log"
}
check docs_check_orphan_doc orphan_doc

docs_tables() {
	local doc=$work/tables.md out=$work/out
	mkdir -p "$out"
	cat >"$out/results.json" <<-'EOF'
		{"flavors": {"host": {"guest": "finished", "accelerator": "none", "kernel": [],
		 "drivers": {"host": {"pipeline": {"p": {"result": "pass"}}}}, "kernel_reports": [], "seconds": {}},
		 "normal": {"guest": "finished", "accelerator": "tcg", "kernel": ["kernel 7.3.4"],
		 "cpus": 2, "drivers": {"rust": {"dmirror_abi": {"a": {"result": "pass"}, "b": {"result": "skip"}}}},
		 "kernel_reports": [], "seconds": {}}},
		 "counts": {"pass": 2, "fail": 0, "skip": 1, "xfail": 0}, "problems": []}
	EOF
	printf '%s\n' "# t" "<!-- generated by scripts/docs-tables.py results -->" "old" \
		"<!-- end generated -->" "<!-- generated by scripts/docs-tables.py bench -->" "kept" \
		"<!-- end generated -->" "<!-- generated by scripts/docs-tables.py summary -->" \
		"<!-- end generated -->" >"$doc"
	python3 "$REPO_ROOT/scripts/docs-tables.py" --out "$out" --commit abc123 "$doc" &&
		grep -qF '| dmirror_abi |  | 1 pass, 1 skip |' "$doc" &&
		grep -qF '| project selftests, normal kernel | 1 pass, 1 skip |' "$doc" &&
		grep -qF "Produced by \`make run\` at commit \`abc123\`" "$doc" &&
		grep -qF '2 CPUs online' "$doc" &&
		! grep -qx old "$doc" && grep -qx kept "$doc"
}
check docs_tables_rewrites_blocks docs_tables

# make run / make check with a wrong request end at its first error: a clear
# message, a non-zero exit, no results table and no results.json.
pipeline_stops() {
	local out=$work/pipeline-out rc=0
	# toolchain.sh finds the toolchain pieces of the real cache; the rest
	# (a patched copy) goes to the temporary one.
	ln -sfn "$real_cache/$(basename "$BINDGEN_DIR")" "$HMM_CACHE/"
	ln -sfn "$real_cache/$(basename "$LIBCLANG_DIR")" "$HMM_CACHE/"
	OUT=$out "$@" "$REPO_ROOT/scripts/pipeline.sh" \
		>"$work/pipe.out" 2>"$work/pipe.err" || rc=$?
	cat "$work/pipe.err"
	[ "$rc" -ne 0 ] && grep -q '^error: stopped:' "$work/pipe.err" &&
		! grep -q 'passed,.*failed,.*skipped' "$work/pipe.out" &&
		[ ! -e "$out/results.json" ]
}
check pipeline_stops_on_bad_ksrc pipeline_stops env KSRC="$work/no-such-tree"
check pipeline_stops_on_bad_patch pipeline_stops env KSRC="$tree" PATCHES="$work/bad.patch"

# make review refuses a wrong request before building anything, names the
# file or ref, and writes nothing to OUT/review.
review_refuses() {
	local want=$1 out=$work/review-out rc=0
	shift
	env OUT="$out" "$@" "$REPO_ROOT/scripts/review.sh" >/dev/null 2>"$work/review.err" || rc=$?
	cat "$work/review.err"
	[ "$rc" -ne 0 ] && grep -qF -- "$want" "$work/review.err" && [ ! -e "$out/review" ]
}
gitree=$work/gitlinux-review
cp -a "$tree" "$gitree"
git -C "$gitree" init -q
git -C "$gitree" add -A
git -C "$gitree" -c user.name=t -c user.email=t@localhost commit -qm base
check review_refuses_bad_ksrc review_refuses "is not a kernel tree" \
	KSRC="$work/no-such-tree" PATCHES="$work/printk.patch"
check review_refuses_missing_patch review_refuses "patch not found: $work/none.patch" \
	KSRC="$tree" PATCHES="$work/none.patch"
check review_refuses_patch_not_applying review_refuses "patch does not apply" \
	KSRC="$tree" PATCHES="$work/bad.patch"
check review_refuses_unknown_ref review_refuses "ref not found in $gitree: no-such-ref" \
	KSRC="$gitree" REVIEW_BASE=HEAD REVIEW_HEAD=no-such-ref
check review_refuses_empty_request review_refuses "nothing to review" KSRC="$tree" PATCHES=
check review_refuses_bad_seed review_refuses "REVIEW_SEED=x1: expected a number" \
	KSRC="$tree" PATCHES="$work/printk.patch" REVIEW_SEED=x1

# The stress programs' command lines of make review REVIEW=full: the seed
# and the shortened lengths, after SUITE_ARGS's --long so that they win.
stress_suite_args() {
	local want got suite
	for suite in dmirror_fuzz dmirror_modcycle dmirror_evict_race dmirror_faultinject hmm-tests; do
		case $suite in
		dmirror_fuzz) want="--time 120 --seed 7" ;;
		dmirror_modcycle) want="--cycles 10" ;;
		dmirror_evict_race) want="--rounds 10 --seed 7" ;;
		*) want="" ;;
		esac
		got=$(STRESS=1 STRESS_SECONDS=120 STRESS_ROUNDS=10 FUZZ_SEED=7 KFLAVOR=debug suite_args "$suite")
		echo "$suite: '$got', want '$want'"
		[ "$got" = "$want" ] || return 1
	done
	# The test command's fuzzer: its 20 s and, when given, the seed.
	[ "$(STRESS=0 KFLAVOR=normal FUZZ_SEED=7 suite_args dmirror_fuzz)" = "--time 20 --seed 7" ]
}
check stress_suite_args stress_suite_args

# The decision core of make review (scripts/review_compare.py) on recorded
# result folders: one TAP line per test of scripts/test_review_compare.py.
for name in $(python3 "$REPO_ROOT/scripts/test_review_compare.py" --list); do
	check "review.$name" python3 "$REPO_ROOT/scripts/test_review_compare.py" "$name"
done

echo "1..$tests"
echo "# Totals: pass:$((tests - failures)) fail:$failures xfail:0 xpass:0 skip:0 error:0"
[ "$failures" -eq 0 ]
