#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: [ROUNDS=10] [OUT=out] [KSRC=...] scripts/repro-anon-vma.sh [--help]
#
# make repro: the reproducer of the kernel bug of docs/kernel-bugs.md,
# "migrate_device_range() does not pin the anon_vma". Builds the KASAN kernel
# (qemu/kernel-kasan.config; C reference driver only, since with GCC the
# kernel's Rust support excludes KASAN) twice, from the tree as it is and
# with the proposed fix in patches/, boots each and runs ROUNDS rounds of
# selftests/dmirror_evict_race against lib/test_hmm.ko. Prints, per kernel,
# the KASAN reports of the run (the first of each kind in full is in
# OUT/repro-<stock|patched>/kasan/console.log).
# Exits 0 when the stock kernel shows the use-after-free and the patched one
# shows no kernel report at all (a reproduced bug and a working fix), 1
# otherwise. Each kernel is a full build (about 6 min on 2 cores, cached).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"

ROUNDS=${ROUNDS:-10}
fix=$REPO_ROOT/patches/0001-mm-migrate_device-pin-the-anon_vma-when-unmapping-without-mmap_lock.patch
base_patches=${PATCHES:-}

"$REPO_ROOT/scripts/toolchain.sh"

# Boots one KASAN kernel; prints its KASAN/BUG lines and the guest status.
run_one() {
	local name=$1 patches=$2 out=$OUT/repro-$1
	log "$name kernel${patches:+ (PATCHES=$patches)}: $ROUNDS rounds of dmirror_evict_race, C driver"
	OUT=$out PATCHES=$patches KFLAVOR=kasan DRIVERS=c SUITES=dmirror_evict_race \
		STRESS=1 SUITE_ARGS="--rounds $ROUNDS" VM_TIMEOUT=1800 \
		"$REPO_ROOT/scripts/run-vm.sh" >&2 || true
	printf '%s: guest %s, kernel %s\n' "$name" "$(cat "$out/kasan/guest-status" 2>/dev/null || echo missing)" \
		"$(sed -n 's/^kernel //p' "$out/kasan/info.txt" 2>/dev/null || echo unknown)"
	grep -a -E '^(BUG|WARNING|Oops|general protection|Unable to handle)' "$out/kasan/console.log" |
		sort | uniq -c | sed 's/^/  /' || echo "  no kernel report"
}

stock=$(run_one stock "$base_patches")
patched=$(run_one patched "${base_patches:+$base_patches }$fix")
printf '%s\n%s\n' "$stock" "$patched"
rc=0
grep -q 'BUG: KASAN: slab-use-after-free in rmap_walk_anon' <<<"$stock" ||
	{ log "the stock kernel did not show the use-after-free in $ROUNDS rounds"; rc=1; }
if ! grep -q 'guest finished' <<<"$patched" || ! grep -q 'no kernel report' <<<"$patched"; then
	log "the patched kernel did not run clean"
	rc=1
fi
[ "$rc" -ne 0 ] || log "reproduced on the stock kernel, gone with $(basename "$fix")"
exit "$rc"
