#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Usage: scripts/lint.sh [--help]
#
# Static checks of the repository: shellcheck on every script and the guest's
# init, checkpatch (from the kernel tree, --no-tree) on the C files and
# (--strict) on the kernel patches in patches/, a syntax check of the Python
# report, and rustfmt --check on the Rust module.
# Installs what it needs through scripts/toolchain.sh.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
maybe_help "$0" "$@"

"$REPO_ROOT/scripts/toolchain.sh"
src=$("$REPO_ROOT/scripts/kernel-source.sh")
cd "$REPO_ROOT"
failed=0

log "shellcheck"
shellcheck -x scripts/*.sh qemu/init qemu/profile-run .ci/run || failed=1

log "checkpatch"
mapfile -t c_files < <(git ls-files '*.c' '*.h')
for f in "${c_files[@]}"; do
	"$src/scripts/checkpatch.pl" --no-tree --quiet --show-types --ignore SPDX_LICENSE_TAG -f "$f" ||
		failed=1
done

# The kernel patches in patches/ (git format-patch output, the cover letter
# aside): checkpatch --strict, as linux-mm expects. Two complaints are
# allowed: the missing Signed-off-by (the sender adds their own, see
# patches/README) and the Fixes: ids, which checkpatch can only look up in a
# tree with the kernel's git history (verified in patches/README). GIT_DIR
# points nowhere: in this repository checkpatch would take a tracked .patch
# for a source file, and look the ids up in the project's history.
log "checkpatch (patches/)"
# patches/experiments/ holds instrumentation for experiments (make
# contention), not part of the series; same standard.
for f in patches/00[0-9][0-9]-*.patch patches/experiments/*.patch; do
	[ -f "$f" ] || continue
	case "$f" in patches/0000-*) continue ;; esac
	GIT_DIR=/nonexistent "$src/scripts/checkpatch.pl" --strict --quiet --no-tree \
		--show-types --ignore MISSING_SIGN_OFF,UNKNOWN_COMMIT_ID "$f" || failed=1
done

log "python"
python3 -m py_compile scripts/report.py scripts/contention_report.py scripts/docs-check.py scripts/docs-tables.py scripts/review_compare.py \
	scripts/test_review_compare.py bench/bench_report.py bench/profile_report.py || failed=1

mapfile -t rs_files < <(git ls-files '*.rs')
if [ ${#rs_files[@]} -gt 0 ]; then
	log "rustfmt"
	rustfmt --check --edition 2021 --config-path "$src/.rustfmt.toml" "${rs_files[@]}" || failed=1
fi
[ "$failed" -eq 0 ] || die "lint found problems (see above)"
log "lint clean"
