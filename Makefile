# SPDX-License-Identifier: GPL-2.0
# hmm-dmirror-rs: the dmirror HMM test driver in Rust, and the pipeline that
# builds a kernel, boots it in QEMU and runs the selftests against the Rust
# module and the upstream C test_hmm.ko. 'make help' lists the targets.
#
# Inside Kbuild (make -C <kernel build> M=$(PWD)) this file is not used:
# Kbuild takes precedence.

SHELL := /bin/bash
SCRIPTS := $(CURDIR)/scripts

.DEFAULT_GOAL := help

help: ## This list.
	@awk 'BEGIN { FS = ":.*## " } /^[a-z-]+:.*## / { printf "  make %-14s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
	@echo
	@echo "Variables: KSRC=/path/to/linux  PATCHES=\"a.patch b.mbox\"  KFLAVOR=normal|debug|kasan|profile|contention"
	@echo "           DRIVERS=\"c rust\"  SUITES=\"hmm-tests dmirror_abi\"  ACCEL=auto|kvm|tcg"
	@echo "           VM_CPUS=2 (the guest's CPUs; fewer online fails the run)"
	@echo "           HMM_CACHE (default ~/.cache/hmm-dmirror-rs)  OUT (default ./out)"
	@echo "  review:  PATCHES=  BASE_PATCHES=  REVIEW=quick|full  PAIRS=  RERUNS=  REVIEW_BASE= REVIEW_HEAD="
	@echo "           REVIEW_FORCE=1  FAIL_INCONCLUSIVE=1"
	@echo "  contention: CONDS=base,refs,numa  CONT_TIME=2 (seconds per case)"

run: ## The main job: normal kernel, all drivers and suites, results table.
	FLAVORS=normal $(SCRIPTS)/pipeline.sh

check: lint docs-check ## The tests: lint, docs-check, then every suite on the normal and the debug kernel.
	FLAVORS="normal debug" $(SCRIPTS)/pipeline.sh

stress: ## Reliability: fuzzer, fault injection, module cycling, long runs (debug kernel).
	$(SCRIPTS)/stress.sh

bench: ## Benchmark C vs Rust in one boot: table, out/bench/results.json and .png.
	$(SCRIPTS)/bench.sh

review: ## What a patch series changes: base vs base+PATCHES, out/review/review.txt (docs/review.md).
	$(SCRIPTS)/review.sh

profile: ## perf in the guest: where C and Rust spend the benchmark's time, side by side.
	$(SCRIPTS)/profile.sh

contention: ## Why migrate_vma_setup() misses pages under contention: causes, caller policies (docs/contention.md).
	$(SCRIPTS)/contention.sh

repro: ## The four kernel fixes of patches/: their hmm-tests cases fail on stock, pass fixed (BUGS=).
	$(SCRIPTS)/repro.sh

toolchain: ## Install rustc-web, bindgen, libclang, qemu, build deps (idempotent).
	$(SCRIPTS)/toolchain.sh

kernel-source: ## Fetch (or take KSRC), patch (PATCHES) and print the kernel tree.
	$(SCRIPTS)/kernel-source.sh

kernel: ## Configure and build the kernel of KFLAVOR (cached).
	$(SCRIPTS)/kernel-build.sh

module: ## Build the Rust module against the kernel of KFLAVOR (CLIPPY=1 for clippy).
	$(SCRIPTS)/build-module.sh

tests: ## Build upstream hmm-tests and the project selftests for the guest.
	$(SCRIPTS)/build-tests.sh

initramfs: ## Build the guest's initramfs (DRIVERS, SUITES).
	$(SCRIPTS)/initramfs.sh

vm: ## Boot the VM of KFLAVOR and collect results into out/KFLAVOR/.
	$(SCRIPTS)/run-vm.sh

report: ## Print the results table of what is in out/ (FLAVORS).
	python3 $(SCRIPTS)/report.py --out $(or $(OUT),out) $(or $(FLAVORS),normal)

lint: ## shellcheck, checkpatch, Python and rustfmt checks of the repository.
	$(SCRIPTS)/lint.sh

docs-check: ## Check the docs: links, the targets and variables they name, make help coverage.
	python3 $(SCRIPTS)/docs-check.py

docs-tables: ## Rewrite the generated tables of docs/ from out/ (after make check or make bench).
	python3 $(SCRIPTS)/docs-tables.py

clean: ## Remove out/ (the cache outside the repository stays).
	rm -rf out

.PHONY: help run check stress bench review profile contention repro toolchain kernel-source kernel module tests initramfs vm report lint docs-check docs-tables clean
