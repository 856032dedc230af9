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
# (scripts/test_review_compare.py). The plan line comes last.
# Runs on a small stand-in tree in a temporary cache: no kernel build needed.
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

ksrc_is_used() { [ "$(KSRC=$tree "$source_script")" = "$(realpath "$tree")" ]; }
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

# The decision core of make review (scripts/review_compare.py) on recorded
# result folders: one TAP line per test of scripts/test_review_compare.py.
for name in $(python3 "$REPO_ROOT/scripts/test_review_compare.py" --list); do
	check "review.$name" python3 "$REPO_ROOT/scripts/test_review_compare.py" "$name"
done

echo "1..$tests"
echo "# Totals: pass:$((tests - failures)) fail:$failures xfail:0 xpass:0 skip:0 error:0"
[ "$failures" -eq 0 ]
