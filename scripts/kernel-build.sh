#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: [KSRC=...] [PATCHES=...] [KFLAVOR=normal|debug|kasan|profile|cov]
#        [COV_OBJECTS="mm/migrate_device.o ..."] scripts/kernel-build.sh [--help]
#
# Configures and builds the guest kernel (bzImage and modules, among them the
# upstream C reference lib/test_hmm.ko) and prints the build folder.
# Config: 'make tinyconfig', then qemu/kernel.config (and, for another
# KFLAVOR, qemu/kernel-$KFLAVOR.config) merged on top, then 'make
# olddefconfig'; every option of the fragments is then checked to have really
# ended up so. KFLAVOR=cov compiles the objects of COV_OBJECTS with gcov's
# counters (scripts/lib.sh); the build folder is keyed by them too.
# The build folder lives in the cache, keyed by source tree, fragments and
# toolchain. For the pinned package tree (immutable) a finished build is never
# rebuilt; a user's KSRC tree gets an incremental make each time.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"
require_toolchain
[ "$KFLAVOR" != cov ] || [ -n "$(cov_objects)" ] ||
	die "KFLAVOR=cov needs COV_OBJECTS (the objects to count, e.g. COV_OBJECTS=mm/migrate_device.o)"

src=$("$REPO_ROOT/scripts/kernel-source.sh")
build=$(kernel_build_dir)
stamp=$build/.hmm-build-done
mapfile -t make_vars < <(kernel_make_vars)
kmake() { make -C "$src" O="$build" "${make_vars[@]}" "$@"; }

# One build per folder at a time: a second caller waits for the first.
mkdir -p "$(dirname "$build")"
exec 9>"$build.lock"
flock 9

if [ -f "$stamp" ] && [ -z "$KSRC" ]; then
	log "kernel ($KFLAVOR) already built in $build"
	printf '%s\n' "$build"
	exit 0
fi

logs=$build/logs
mkdir -p "$logs"
mapfile -t fragments < <(kernel_fragments)

if [ ! -f "$build/.config" ] || [ -n "$KSRC" ] || [ ! -f "$build/.hmm-config-done" ]; then
	log "configuring $KFLAVOR kernel in $build"
	run_logged "$logs/config.log" kmake tinyconfig
	run_logged "$logs/merge.log" env KCONFIG_CONFIG="$build/.config" \
		"$src/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "${fragments[@]}"
	run_logged "$logs/olddefconfig.log" kmake olddefconfig
	touch "$build/.hmm-config-done"
fi

# Every option the fragments ask for must really be set (or unset) now:
# a dependency Kconfig could not satisfy would otherwise vanish silently.
# A later fragment overrides an earlier one, as in merge_config.sh.
declare -A wanted=()
order=()
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*) opt=${line%%=*} ;;
	"# CONFIG_"*" is not set") opt=${line#\# } opt=${opt%% *} ;;
	*) continue ;;
	esac
	[ -n "${wanted[$opt]+set}" ] || order+=("$opt")
	wanted[$opt]=$line
done < <(cat "${fragments[@]}")
bad=0
for opt in "${order[@]}"; do
	line=${wanted[$opt]}
	case "$line" in
	CONFIG_*=*)
		grep -qxF "$line" "$build/.config" || {
			printf 'config: wanted %s, got: %s\n' "$line" \
				"$(grep -E "^(# )?${line%%=*}[= ]" "$build/.config" || echo 'absent')" >&2
			bad=1
		}
		;;
	"# CONFIG_"*" is not set")
		opt=${line#\# }
		opt=${opt%% *}
		if grep -qE "^$opt=" "$build/.config"; then
			printf 'config: wanted %s unset, but it is set\n' "$opt" >&2
			bad=1
		fi
		;;
	esac
done
[ "$bad" -eq 0 ] || die "the kernel config lacks options the fragments require (see above)"

run_logged "$logs/rustavailable.log" kmake rustavailable
grep -q 'Rust is available' "$logs/rustavailable.log" ||
	die "make rustavailable did not say 'Rust is available!' (see $logs/rustavailable.log)"

log "building $KFLAVOR kernel (about 3 min on 2 cores; log: $logs/build.log)"
run_logged "$logs/build.log" kmake -j"$(nproc)" bzImage modules
touch "$stamp"
printf '%s\n' "$build"
