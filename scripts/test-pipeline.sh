#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: scripts/test-pipeline.sh [--help]
#
# Host-side tests of the pipeline's own logic, as KTAP on stdout:
# KSRC= takes a user's tree and never modifies it, PATCHES= applies patch
# files (patch -p1, and git am on a git tree) on a cached copy that a second
# run reuses, and a patch that does not apply stops with a clear error; a
# guest with fewer CPUs online than asked for, or with fewer vCPU threads,
# fails the run and the results table says so.
# Runs on a small stand-in tree in a temporary cache: no kernel build needed.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"

source_script=$REPO_ROOT/scripts/kernel-source.sh
# The real tree (from the normal cache) only lends the files the stand-in needs.
real_src=$("$source_script")
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
echo "1..10"

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

echo "# Totals: pass:$((tests - failures)) fail:$failures xfail:0 xpass:0 skip:0 error:0"
[ "$failures" -eq 0 ]
