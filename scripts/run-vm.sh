#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: [KFLAVOR=normal|debug|cov] [DRIVERS="c rust"] [SUITES=...] [ACCEL=auto|kvm|tcg]
#        [VM_CPUS=2] [VM_TOPOLOGY=sockets|cores] [VM_TIMEOUT=seconds]
#        [EXTRA_CMDLINE=...] scripts/run-vm.sh [--help]
#
# Boots the guest kernel with the initramfs of scripts/initramfs.sh, lets
# qemu/init run the plan, and splits what the guest sends on its second serial
# port into out/<flavor>/results/<driver>/<suite>.tap (plus dmesg.txt and
# <driver>/kmemleak.tap). The console is kept in out/<flavor>/console.log.
# KFLAVOR=cov (with COV_OBJECTS): each suite's gcov counters land in
# out/cov/results/<driver>/<suite>.gcov/.
# ACCEL=auto tries KVM first and falls back to TCG when the kernel does not
# print its banner within 20 s; where KVM cannot run this guest (KVM-PVM, no
# writable /dev/kvm) it goes straight to TCG and says why. TCG runs one host
# thread per vCPU (thread=multi).
# The guest gets VM_CPUS CPUs (default 2; topology: vm_smp in
# scripts/lib.sh). A guest that brings up fewer, or a QEMU that does not run
# one thread per vCPU, fails the run: its guest-status says so.
# OUT/<flavor>/cpus records what was asked for, what the guest had online
# and the host CPU seconds of each vCPU thread.
# A guest that has not finished within VM_TIMEOUT seconds (default 2400) is
# killed and the run reported as hung.
# EXTRA_CMDLINE is appended to the guest kernel's command line
# (scripts/repro.sh passes oops=panic, so that an Oops ends the boot at
# once).
# Exits 0 when the guest finished its plan on all its CPUs (results may
# still hold failures), 1 when it crashed or hung or had too few CPUs.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"

ACCEL=${ACCEL:-auto}
VM_TIMEOUT=${VM_TIMEOUT:-2400}
build=$("$REPO_ROOT/scripts/kernel-build.sh")
initrd=$("$REPO_ROOT/scripts/initramfs.sh")
kernel=$build/arch/x86/boot/bzImage
dir=$OUT/$KFLAVOR
console=$dir/console.log
channel=$dir/channel.log

# log_buf_len: the whole run's kernel log must fit (tinyconfig's 128 KiB
# ring lost the driver markers under a flood of C-driver WARNINGs).
cmdline="console=ttyS0 panic=-1 loglevel=6 log_buf_len=16M memmap=$SPM_RESERVE"
[ "$KFLAVOR" != debug ] || cmdline+=" kfence.sample_interval=10"
# Every KASAN report, not only the first one.
[ "$KFLAVOR" != kasan ] || cmdline+=" kasan_multi_shot"
cmdline+=${EXTRA_CMDLINE:+ $EXTRA_CMDLINE}

# Starts QEMU in the background; sets qemu_pid.
start_qemu() {
	local accel=$1
	local cpu=() accel_opts=$accel
	[ "$accel" = kvm ] && cpu=(-cpu host)
	[ "$accel" = tcg ] && accel_opts=tcg,thread=multi
	: >"$console"
	: >"$channel"
	# debug-threads names the vCPU threads ("CPU 0/TCG") for vcpu_seconds.
	qemu-system-x86_64 -name hmm-guest,debug-threads=on \
		-accel "$accel_opts" "${cpu[@]}" -smp "$(vm_smp)" -m "$VM_MEM" \
		-nographic -no-reboot -monitor none \
		-serial "file:$console" -serial "file:$channel" \
		-kernel "$kernel" -initrd "$initrd" -append "$cmdline" \
		</dev/null >"$dir/qemu.log" 2>&1 &
	qemu_pid=$!
}

# Waits up to $2 seconds for QEMU to exit or for $1 to appear on the console.
wait_for() {
	local pattern=$1 seconds=$2 i
	for ((i = 0; i < seconds; i++)); do
		kill -0 "$qemu_pid" 2>/dev/null || return 1
		grep -q "$pattern" "$console" 2>/dev/null && return 0
		sleep 1
	done
	return 1
}

# Host CPU seconds of each vCPU thread of QEMU, "CPU 0/TCG=12.34 ...".
vcpu_seconds() {
	local task comm stat rest fields ticks out=()
	ticks=$(getconf CLK_TCK)
	for task in /proc/"$qemu_pid"/task/*; do
		comm=$(cat "$task/comm" 2>/dev/null) || continue
		case "$comm" in "CPU "*) ;; *) continue ;; esac
		stat=$(cat "$task/stat" 2>/dev/null) || continue
		# After "pid (comm) ": state, ..., utime (14th field), stime (15th).
		rest=${stat##*) }
		read -r -a fields <<<"$rest"
		out+=("${comm// /_}=$(awk -v t="$ticks" -v u="${fields[11]}" -v s="${fields[12]}" \
			'BEGIN { printf "%.1f", (u + s) / t }')")
	done
	echo "${out[*]}"
}

stop_qemu() {
	kill "$qemu_pid" 2>/dev/null || true
	wait "$qemu_pid" 2>/dev/null || true
}
trap stop_qemu EXIT

accel=tcg
no_kvm=$(kvm_unusable_reason)
if [ -n "$no_kvm" ]; then
	[ "$ACCEL" != kvm ] || die "ACCEL=kvm was asked for, but $no_kvm"
	[ "$ACCEL" != auto ] || log "not trying KVM: $no_kvm; using TCG"
fi
if [ "$ACCEL" = kvm ] || { [ "$ACCEL" = auto ] && [ -z "$no_kvm" ]; }; then
	log "trying KVM"
	start_qemu kvm
	if wait_for 'Linux version' 20; then
		accel=kvm
	else
		log "KVM guest printed no banner within 20 s; falling back to TCG"
		stop_qemu
		[ "$ACCEL" != kvm ] || die "ACCEL=kvm was asked for, but KVM does not work here"
	fi
fi
[ "$accel" = kvm ] || start_qemu tcg
echo "$accel" >"$dir/accelerator"
log "guest running under $accel with $VM_CPUS vCPUs, -smp $(vm_smp) (console: $console)"

status=finished
declare -A vcpu_secs=()
# What an earlier run left must not speak for this one.
rm -f "$dir/info.txt" "$dir/cpus"
SECONDS=0
while kill -0 "$qemu_pid" 2>/dev/null; do
	if ((SECONDS > VM_TIMEOUT)); then
		status=hung
		log "guest did not finish within $VM_TIMEOUT s; killing it"
		stop_qemu
		break
	fi
	# Each vCPU thread's latest figure: an exiting QEMU (still alive for
	# kill -0) may have joined some or all of them already, and a thread
	# missing from one sample was not missing from the run.
	for sample in $(vcpu_seconds); do
		vcpu_secs[${sample%%=*}]=${sample#*=}
	done
	sleep 2
done
wait "$qemu_pid" 2>/dev/null || true
vcpus=$(for name in "${!vcpu_secs[@]}"; do echo "$name=${vcpu_secs[$name]}"; done | sort | xargs)
trap - EXIT
grep -q '^@@DONE' "$channel" || { [ "$status" = hung ] || status=crashed; }
echo "$status" >"$dir/guest-status"

# Split the channel into one file per framed section.
results=$dir/results
rm -rf "$results"
mkdir -p "$results"
tr -d '\r' <"$channel" | awk -v dir="$results" '
	/^@@BEGIN / { file = dir "/" $2 "/" $3 ".tap"; system("mkdir -p " dir "/" $2); printf "" > file; next }
	/^@@END /   { print $4 > (dir "/" $2 "/" $3 ".rc"); close(file); file = ""
	              if ($5 ~ /^secs=/) { t = dir "/" $2 "/" $3 ".secs"; print substr($5, 6) > t; close(t) }
	              next }
	/^@@INFO /  { sub(/^@@INFO /, ""); print > (dir "/info.txt"); next }
	/^@@/       { next }
	file != ""  { print > file }
'
# Coverage boots (KFLAVOR=cov): each suite's gcov files, sent as a base64
# tar, into results/<driver>/<suite>.gcov/ (their paths in debugfs: the
# build folder's, under /sys/kernel/debug/gcov).
if grep -q '^@@GCOV ' "$channel"; then
	tr -d '\r' <"$channel" | awk -v dir="$results" '
		/^@@GCOV /    { file = dir "/" $2 "/" $3 ".gcov.b64"; system("mkdir -p " dir "/" $2); printf "" > file; next }
		/^@@GCOVEND / { close(file); file = ""; next }
		file != ""    { print > file }
	'
	for b64 in "$results"/*/*.gcov.b64; do
		[ -f "$b64" ] || continue
		mkdir -p "${b64%.b64}"
		base64 -d "$b64" | tar -xz -C "${b64%.b64}" ||
			log "coverage: could not unpack $b64 (a suite cut short?)"
		rm -f "$b64"
	done
fi
[ -f "$results/kernel/dmesg.tap" ] && mv "$results/kernel/dmesg.tap" "$dir/dmesg.txt"
rm -rf "$results/kernel"
[ -f "$results/info.txt" ] && mv "$results/info.txt" "$dir/info.txt"
cp "$build/.config" "$dir/kernel.config"

# The CPUs the guest had: a run on fewer than asked for (the MP-table
# topology trap of vm_smp) or on one host thread for all vCPUs is no
# concurrency test, so it fails whatever its results.
online=$(sed -n 's/^cpus-online //p' "$dir/info.txt" 2>/dev/null || true)
threads=$(wc -w <<<"$vcpus")
printf 'requested=%s online=%s topology=%s accel=%s vcpu_threads=%s %s\n' \
	"$VM_CPUS" "${online:-unknown}" "$(vm_smp)" "$accel" "$threads" "$vcpus" >"$dir/cpus"
log "guest CPUs: $(cat "$dir/cpus")"
if [ "$status" = finished ]; then
	status=$(cpu_status "$VM_CPUS" "$online" "$threads")
	[ "$status" = finished ] ||
		log "the guest had $online of $VM_CPUS CPUs online on $threads vCPU threads: failing the run ($status)"
	echo "$status" >"$dir/guest-status"
fi
log "guest $status after ${SECONDS}s; results in $results"
[ "$status" = finished ]
