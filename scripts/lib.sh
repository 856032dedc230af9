# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash disable=SC2034 # the variables are for the scripts that source this
#
# Common settings for every pipeline script: where the cache and the outputs
# live, the pinned versions, logging and the Debian toolchain variables that
# every kernel and module make needs. Sourced, never run.

# The repository root, whatever directory the caller is in.
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export REPO_ROOT

# Everything expensive (toolchain pieces, kernel sources, kernel builds) lives
# here, outside the repository, keyed by what determines it.
HMM_CACHE=${HMM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hmm-dmirror-rs}
export HMM_CACHE
OUT=${OUT:-$REPO_ROOT/out}
export OUT

# Pinned versions (see ../shared/TOOLCHAIN.md for why these).
BINDGEN_VERSION=0.71.1
LIBCLANG_VERSION=18.1.1
KERNEL_PKG=linux-source-7.3
KERNEL_PKG_VERSION=7.3.4-1~bpo13+1
KERNEL_PKG_SHA256=703e369ddd4cce971452f5a593ee55df3a5c10c83caf0fa0df039633ed181ee3
KERNEL_PKG_SUITE=trixie-backports

BINDGEN_DIR=$HMM_CACHE/bindgen-$BINDGEN_VERSION
LIBCLANG_DIR=$HMM_CACHE/libclang-$LIBCLANG_VERSION

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Run a command quietly, keeping its output in a log; show the tail on failure.
run_logged() {
	local logfile=$1
	shift
	mkdir -p "$(dirname "$logfile")"
	if ! "$@" >"$logfile" 2>&1; then
		tail -n 40 "$logfile" >&2
		die "'$*' failed; full log: $logfile"
	fi
}

# The make variables that select the Debian rustc (with std sources) over
# rustup's, bindgen from the cache and the PyPI libclang. KFLAVOR=cov adds
# GCOV_PROFILE_<name>.o=y for each object of COV_OBJECTS (cov_objects).
kernel_make_vars() {
	printf '%s\n' \
		RUSTC=/usr/bin/rustc \
		RUSTDOC=/usr/bin/rustdoc \
		HOSTRUSTC=/usr/bin/rustc \
		CLIPPY_DRIVER=/usr/bin/clippy-driver \
		"BINDGEN=$BINDGEN_DIR/bin/bindgen"
	[ "$KFLAVOR" != cov ] || cov_profile_vars
}

# --- Coverage (KFLAVOR=cov) ---------------------------------------------------
#
# COV_OBJECTS: the kernel objects (paths in the tree, e.g.
# "mm/migrate_device.o mm/huge_memory.o") that the cov kernel compiles with
# gcov's counters; qemu/kernel-cov.config turns on CONFIG_GCOV_KERNEL. kbuild
# reads GCOV_PROFILE_<stem>.o per object (scripts/Makefile.lib, stem = the
# file name without directory and suffix); given on make's command line it
# reaches every directory's sub-make, so no Makefile of the tree is edited.
# An object of the same file name in another directory is profiled too
# (harmless: only the series' files are read).
COV_OBJECTS=${COV_OBJECTS:-}
cov_objects() {
	local o
	for o in $COV_OBJECTS; do
		case "$o" in
		*.o) printf '%s\n' "$o" ;;
		*) die "COV_OBJECTS: '$o' is not an object (expected e.g. mm/migrate_device.o)" ;;
		esac
	done | sort -u
}
cov_profile_vars() {
	local o
	while read -r o; do
		[ -z "$o" ] || printf 'GCOV_PROFILE_%s=y\n' "$(basename "$o")"
	done < <(cov_objects)
}
export LIBCLANG_PATH=$LIBCLANG_DIR/clang/native

# The steps that build (kernel, module, tests) need what scripts/toolchain.sh
# installs; run alone on a fresh machine they stop here with the fix, not
# halfway through a kernel config with "flex: not found".
require_toolchain() {
	local missing=() tool
	for tool in flex bison /usr/bin/rustc "$BINDGEN_DIR/bin/bindgen"; do
		command -v "$tool" >/dev/null || missing+=("$tool")
	done
	[ -d "$LIBCLANG_PATH" ] || missing+=("libclang $LIBCLANG_VERSION")
	[ ${#missing[@]} -eq 0 ] ||
		die "toolchain incomplete (missing: ${missing[*]}); run 'make toolchain' first ('make run' and 'make check' install it themselves)"
}

# Print the script's own header comment as its --help.
# Convention: line 1 is the shebang, line 2 the SPDX tag, then the comment.
usage_from_header() {
	awk 'NR > 2 && /^#/ { sub(/^# ?/, ""); print; next } NR > 2 { exit }' "$1"
}

# Handle -h/--help for a script whose header documents it.
maybe_help() {
	local script=$1
	shift
	case "${1:-}" in
	-h | --help)
		usage_from_header "$script"
		exit 0
		;;
	esac
}

# --- The kernel tree -------------------------------------------------------
#
# KSRC: a user's own kernel tree (default: Debian's linux-source package,
# unpacked into the cache). PATCHES: space-separated patch files applied, in
# order, to a copy of that tree. KFLAVOR: normal, debug, kasan (C only),
# profile (perf events, make profile) or cov (gcov counters in COV_OBJECTS,
# make review) (config fragment
# qemu/kernel-$KFLAVOR.config on top of qemu/kernel.config).
KSRC=${KSRC:-}
PATCHES=${PATCHES:-}
KFLAVOR=${KFLAVOR:-normal}

# The pristine tree of the pinned package.
PKG_SRC_DIR=$HMM_CACHE/src/$KERNEL_PKG-$KERNEL_PKG_VERSION/linux

sha256_of_stdin() { sha256sum | cut -c1-16; }

# The tree the kernel is built from: KSRC or the package tree, or, with
# PATCHES, a patched copy keyed by the base tree and the patches' contents.
kernel_source_dir() {
	local base=${KSRC:-$PKG_SRC_DIR}
	if [ -z "$PATCHES" ]; then
		printf '%s\n' "$base"
		return
	fi
	local key p
	key=$({
		realpath -m "$base"
		# A git tree's state is part of the key, so edits give a new copy.
		if [ -d "$base/.git" ]; then
			git -C "$base" rev-parse HEAD
			git -C "$base" diff HEAD | sha256sum
		fi
		for p in $PATCHES; do
			[ -f "$p" ] || die "patch not found: $p"
			sha256sum <"$p"
		done
	} | sha256_of_stdin)
	printf '%s\n' "$HMM_CACHE/src/patched-$key/linux"
}

# The config fragments of a flavor, in merge order.
kernel_fragments() {
	printf '%s\n' "$REPO_ROOT/qemu/kernel.config"
	[ "$KFLAVOR" = normal ] || printf '%s\n' "$REPO_ROOT/qemu/kernel-$KFLAVOR.config"
}

# The build folder: keyed by the source tree, the fragments and the toolchain.
kernel_build_dir() {
	local src key
	src=$(kernel_source_dir)
	key=$({
		realpath -m "$src"
		kernel_fragments | xargs cat
		[ "$KFLAVOR" != cov ] || cov_objects
		/usr/bin/rustc --version 2>/dev/null || true
		echo "$BINDGEN_VERSION $LIBCLANG_VERSION"
	} | sha256_of_stdin)
	printf '%s\n' "$HMM_CACHE/build/$KFLAVOR-$key"
}

# --- The VM ----------------------------------------------------------------
#
# Device-coherent memory is emulated by RAM the guest kernel reserves with
# memmap=SIZE$BASE (a guest with more than 4 GiB has RAM from 0x100000000
# up); the drivers get the two 256 MiB halves as spm_addr_dev0/1.
VM_MEM=${VM_MEM:-6G}

# The guest's CPUs. QEMU's default topology for -smp N is one socket of N
# cores, and a guest kernel without ACPI (ours) learns its CPUs from the
# BIOS's MP table, which lists one CPU per socket: it would bring up one CPU
# whatever N is. One core per socket makes every vCPU a socket the MP table
# lists (the other way, CONFIG_ACPI, adds the ACPI interpreter to every
# flavor and its boot time under TCG, and would not help a user's config).
# VM_TOPOLOGY=cores gives QEMU's default layout, only to check that a run
# whose guest has fewer CPUs online than asked fails (scripts/run-vm.sh).
VM_CPUS=${VM_CPUS:-2}
VM_TOPOLOGY=${VM_TOPOLOGY:-sockets}
vm_smp() {
	case "$VM_TOPOLOGY" in
	sockets) echo "$VM_CPUS,sockets=$VM_CPUS,cores=1,threads=1" ;;
	cores) echo "$VM_CPUS" ;;
	*) die "VM_TOPOLOGY must be sockets or cores, not '$VM_TOPOLOGY'" ;;
	esac
}

# The guest status of a guest that finished its plan, given the CPUs asked
# for ($1), the CPUs it had online ($2, empty when it did not say) and the
# vCPU threads QEMU ran ($3): 'finished', or why the run is no test of
# concurrency (fewer CPUs online than asked, all vCPUs on fewer threads).
cpu_status() {
	local requested=$1 online=${2:-unknown} threads=$3
	if ! [[ "$online" =~ ^[0-9]+$ ]] || [ "$online" -lt "$requested" ]; then
		echo "cpus-missing($online-of-$requested-online)"
	elif [ "$threads" -ne "$requested" ]; then
		echo "vcpu-threads-missing($threads-threads-for-$requested-vCPUs)"
	else
		echo finished
	fi
}

# Why KVM cannot run our guest on this host, or nothing when it may.
# /dev/kvm of a KVM-PVM host (module kvm_pvm, no kvm_intel/kvm_amd) runs
# only guest kernels built for PVM: QEMU aborts with -cpu host and prints
# nothing with its default CPU model, so trying it only costs time.
kvm_unusable_reason() {
	if [ ! -w /dev/kvm ]; then
		echo "/dev/kvm is missing or not writable"
	elif [ -d /sys/module/kvm_pvm ] && [ ! -d /sys/module/kvm_intel ] && [ ! -d /sys/module/kvm_amd ]; then
		echo "/dev/kvm is KVM-PVM (module kvm_pvm), which runs only guest kernels built for PVM"
	fi
}
SPM_RESERVE="512M\$0x100000000"
SPM_ADDR_DEV0=0x100000000
SPM_ADDR_DEV1=0x110000000

# Seconds a suite may run inside the guest before it is killed (TCG, debug
# kernel included); its own harness times out single tests earlier.
# STRESS=1 (scripts/stress.sh): the reliability suites' --long runs
# (dmirror_fuzz 2 x 600 s of ioctls, dmirror_modcycle 100 cycles).
suite_timeout() {
	case "${STRESS:-0}:$1" in
	*:hmm-tests) echo 1200 ;;
	*:dmirror_bench) echo 900 ;;
	1:dmirror_fuzz) echo 1800 ;;
	1:dmirror_modcycle) echo 2400 ;;
	1:dmirror_evict_race) echo 3600 ;;
	*:dmirror_modcycle) echo 1200 ;;
	*) echo 600 ;;
	esac
}

# Arguments of a suite in the test command by flavor, after SUITE_ARGS (so
# that they win over its --long): the module cycling runs 5 cycles on the
# debug kernel under TCG; the fuzzer runs 20 s (its base variant, forked
# children included). make stress, STRESS=1, runs their --long settings
# instead, shortened by STRESS_SECONDS (the fuzzer's seconds per variant)
# and STRESS_ROUNDS (the module cycles and eviction race rounds) where set
# (make review REVIEW=full). FUZZ_SEED seeds the seeded programs.
suite_args() {
	local argv=()
	case "${STRESS:-0}:$KFLAVOR:$1" in
	0:debug:dmirror_modcycle) argv+=(--cycles 5) ;;
	0:*:dmirror_fuzz) argv+=(--time 20) ;;
	1:*:dmirror_fuzz) [ -z "${STRESS_SECONDS:-}" ] || argv+=(--time "$STRESS_SECONDS") ;;
	1:*:dmirror_modcycle) [ -z "${STRESS_ROUNDS:-}" ] || argv+=(--cycles "$STRESS_ROUNDS") ;;
	1:*:dmirror_evict_race) [ -z "${STRESS_ROUNDS:-}" ] || argv+=(--rounds "$STRESS_ROUNDS") ;;
	esac
	case "$1" in
	dmirror_fuzz | dmirror_evict_race) [ -z "${FUZZ_SEED:-}" ] || argv+=(--seed "$FUZZ_SEED") ;;
	esac
	echo "${argv[*]}"
}

# stress_vm_timeout N_DRIVERS SUITE...: seconds a stress boot may take: every
# suite of every driver within its STRESS=1 timeout, plus the boot.
stress_vm_timeout() {
	local n_drivers=$1 budget=300 suite
	shift
	for suite in "$@"; do
		budget=$((budget + n_drivers * $(STRESS=1 suite_timeout "$suite")))
	done
	echo "$budget"
}

# --- Benchmark rounds --------------------------------------------------------
#
# Whether every dmirror_bench round in the results folder $1 (scripts/bench.sh,
# scripts/profile.sh) ran: the driver loaded, exit status 0, no 'not ok'.
# Says which round failed and how; returns 1 then.
bench_rounds_ok() {
	local results=$1 tap rc f ok=0
	for tap in "$results"/*/dmirror_bench.tap; do
		[ -f "$tap" ] || continue
		rc=$(sed 's/^rc=//' "${tap%.tap}.rc" 2>/dev/null || echo missing)
		if [ "$rc" != 0 ] || grep -q '^not ok' "$tap"; then
			log "round $(basename "$(dirname "$tap")") failed (rc=$rc):"
			grep -E '^(not ok|# )' "$tap" | grep -v -e '^# BENCH ' -e '^# PERF ' | head -n 20 >&2 || true
			ok=1
		fi
	done
	for f in "$results"/*/insmod.tap; do
		[ -f "$f" ] || continue
		log "round $(basename "$(dirname "$f")"): insmod failed: $(head -n 3 "$f")"
		ok=1
	done
	return "$ok"
}
