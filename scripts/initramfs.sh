#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: [DRIVERS="c rust"] [SUITES="hmm-tests dmirror_abi"] [COHERENT=1] scripts/initramfs.sh [--help]
#
# Builds the guest's initramfs into out/<flavor>/initramfs.cpio.gz and prints its path:
# busybox-static, qemu/init as /init, the test programs of out/<flavor>/bin,
# the driver modules and /etc/hmm-plan, the plan qemu/init runs:
#  - DRIVERS: which drivers, in order: 'c' is the upstream lib/test_hmm.ko of
#    the kernel build, 'rust' this repository's hmm_dmirror_rs.ko.
#  - SUITES: test programs to run against each driver (default: all built).
#  - SUITE_ARGS: arguments given to every suite (e.g. a benchmark's --full).
#  - COHERENT=1 (default): load the drivers with spm_addr_dev0/1 inside the
#    RAM that scripts/run-vm.sh reserves with memmap=, so that the
#    device-coherent /dev/hmm_dmirror2 and 3 exist. COHERENT=0: private only.
#  - KFLAVOR=cov: a "coverage" line, so that qemu/init resets the gcov
#    counters before each suite and sends the .gcda files after it.
#  - PROFILE_TESTS="a,b" (scripts/profile.sh): every suite runs under
#    qemu/profile-run, once per test with --only <test>, and the host's perf
#    (with its shared libraries) goes into the image.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"

DRIVERS=${DRIVERS:-rust c}
COHERENT=${COHERENT:-1}

build=$("$REPO_ROOT/scripts/kernel-build.sh")
bin=$("$REPO_ROOT/scripts/build-tests.sh")
SUITES=${SUITES:-$(cd "$bin" && find . -maxdepth 1 -type f -executable -printf '%f\n' | sort | tr '\n' ' ')}

root=$OUT/$KFLAVOR/initramfs
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,lib/modules}
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
	[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
install -m 0755 "$REPO_ROOT/qemu/init" "$root/init"

# perf and the libraries it links, at the paths the dynamic loader expects.
wrapper=
if [ -n "${PROFILE_TESTS:-}" ]; then
	perf=$(command -v perf) || die "PROFILE_TESTS needs perf on the host (Debian: linux-perf)"
	perf=$(realpath "$perf")
	install -D -m 0755 "$perf" "$root/bin/perf"
	ldd "$perf" | awk '/=> \// { print $3 } /^[[:space:]]*\/[^ ]*ld-linux/ { print $1 }' |
		while read -r lib; do
			install -D -m 0755 "$lib" "$root$lib"
		done
	install -m 0755 "$REPO_ROOT/qemu/profile-run" "$root/bin/profile-run"
	wrapper="/bin/profile-run $PROFILE_TESTS "
fi

params=
[ "$COHERENT" = 0 ] || params="spm_addr_dev0=$SPM_ADDR_DEV0 spm_addr_dev1=$SPM_ADDR_DEV1"
plan=$root/etc/hmm-plan
: >"$plan"
for driver in $DRIVERS; do
	case "$driver" in
	c) ko=$build/lib/test_hmm.ko ;;
	rust)
		grep -qx 'CONFIG_RUST=y' "$build/.config" ||
			die "the $KFLAVOR kernel has no Rust (qemu/kernel-$KFLAVOR.config); run it with DRIVERS=c"
		ko=$("$REPO_ROOT/scripts/build-module.sh")
		;;
	*) die "unknown driver '$driver' (known: c rust)" ;;
	esac
	[ -f "$ko" ] || die "module not found: $ko"
	cp -f "$ko" "$root/lib/modules/"
	# The Rust module's PROJECT-ONLY test hooks (page-lock ioctls, see
	# selftests/dmirror_test_hooks.h) are off unless asked for; the tests ask.
	extra=
	[ "$driver" = rust ] && extra=" test_hooks=1"
	echo "driver $driver /lib/modules/$(basename "$ko") $params$extra" >>"$plan"
done
for suite in $SUITES; do
	[ -x "$bin/$suite" ] || die "no test program '$suite' in $bin"
	cp "$bin/$suite" "$root/bin/"
	# Tests selftests/expectations.txt excludes on this flavor ('exclude'
	# lines): kselftest_harness's -T, or the whole suite for test '*'; the
	# report shows each as a skip with the reason. make stress (STRESS=1)
	# runs exactly what the test command leaves out: no exclusions.
	if [ "${STRESS:-0}" = 1 ]; then
		args=$(suite_args "$suite")
		echo "suite $suite $(suite_timeout "$suite") $wrapper/bin/$suite ${SUITE_ARGS:-}${args:+ $args}" >>"$plan"
		continue
	fi
	if awk -F'|' -v flavor="$KFLAVOR" -v suite="$suite" '
		/^[[:space:]]*#/ || NF != 6 { next }
		{ for (i = 1; i <= NF; i++) gsub(/^[[:space:]]+|[[:space:]]+$/, "", $i) }
		$5 == "exclude" && ($2 == "*" || $2 == flavor) && $3 == suite && $4 == "*" { found = 1 }
		END { exit !found }' "$REPO_ROOT/selftests/expectations.txt"; then
		continue
	fi
	excluded=$(awk -F'|' -v flavor="$KFLAVOR" -v suite="$suite" '
		/^[[:space:]]*#/ || NF != 6 { next }
		{ for (i = 1; i <= NF; i++) gsub(/^[[:space:]]+|[[:space:]]+$/, "", $i) }
		$5 == "exclude" && ($2 == "*" || $2 == flavor) && $3 == suite && $4 != "*" { printf " -T %s", $4 }
		' "$REPO_ROOT/selftests/expectations.txt")
	args=$(suite_args "$suite")
	echo "suite $suite $(suite_timeout "$suite") $wrapper/bin/$suite${excluded} ${SUITE_ARGS:-}${args:+ $args}" >>"$plan"
done

[ "$KFLAVOR" != cov ] || echo coverage >>"$plan"

image=$OUT/$KFLAVOR/initramfs.cpio.gz
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$image"
printf '%s\n' "$image"
