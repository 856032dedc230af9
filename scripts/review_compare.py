#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Usage: scripts/review_compare.py [--help] [--fail-inconclusive] MANIFEST OUTDIR
       scripts/review_compare.py --differing MANIFEST
       scripts/review_compare.py --coverage-only MANIFEST OUTDIR

The decision core of 'make review' (scripts/review.sh): reads MANIFEST (JSON,
written by review.sh), which names the pipeline output folders of every boot
(base kernel, head kernel, base kernel with the head's tests, reruns, benchmark
pairs), compares base and head, writes OUTDIR/review.txt (plain text, at most
80 columns, verdict first) and OUTDIR/review.json, and exits:
  0 no regression shown, 1 regression, 2 could not complete (base did not
  build or boot), 3 only with --fail-inconclusive: no regression, but a
  performance row could not be decided.

Every rule below is printed next to the decision it made.

Functional, per flavor x driver x suite x test, over every run of each side
(the first run and the reruns; a skip is not a result):
  regression          base passed every run, head failed >= 2/3 of its runs
  fixed               base failed >= 2/3 of its runs, head passed every run
  persistent failure  failed in every run on both sides
  unstable            any other mix of pass and fail
  new                 not in base's tests; passes on head
  fix demonstrated    new, passes on head and fails on the base kernel
                      (the head's tests run on the base kernel)
  new, fails on head  a test the series adds fails on head: a regression
  missing             in base's results, not in head's (or only skipped)
Kernel reports: normalised signatures (kind, file, function; no addresses,
line numbers, pids), counted per boot; a signature seen on head and in no base
boot is a regression whatever its count.
Performance (timed rows: GB/s, pages/s, 1/s higher is better; us lower is
better; the contention rows are shown, not judged), head/base ratio per ABBA
pair: a row changed only when every pair (>= 2) moves the same way by more
than the noise floor = max(15 %, 2 x the median |ratio - 1| of the memcpy
control rows, 2 x the largest |ratio - 1| of the same row in the A-vs-A
pairs); otherwise 'no difference shown', or
'inconclusive' when the floor is above 25 % or one pair alone moved more than
the floor.
Coverage of the series (gcov, the head kernel of KFLAVOR=cov, one boot; the
counters reset before each suite), per hunk, from the lines it adds at their
place in the head tree:
  ran                 an added line with code ran in a suite (the suites named)
  not run             the added lines with code have count 0 in every suite
  not built           the file's object is not built in the head's config
  nothing to count    no added line has code of its own
  not measured        not C code of a counted object; Rust is never counted
"""

import argparse
import json
import math
import os
import re
import shutil
import statistics
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "bench"))
import report  # noqa: E402  (scripts/report.py: TAP parsing, expectations)
import bench_report  # noqa: E402  (bench/bench_report.py: BENCH lines)

WIDTH = 80
LIST_MAX = 15
REASONS_MAX = 5
# The smallest change a row can be called changed by: a forced A/A review
# (identical code on both sides, quick settings, 2 pairs, quiet host) moved
# rows by up to 13 % in the same direction in both pairs (docs/review.md).
MIN_FLOOR = 0.15
NOISE_CAP = 0.25
# Timed rows shown but not judged: K threads racing for the same pages
# (contention) moved by up to +597 % between boots of identical code.
NOT_JUDGED = {"memcpy", "contention"}
HIGHER_BETTER = {"GB/s", "pages/s", "1/s"}
LOWER_BETTER = {"us"}

RULES = {
    "regression": "base passed every run, head failed >= 2/3 of its runs",
    "fixed": "base failed >= 2/3 of its runs, head passed every run",
    "persistent failure": "failed in every run on both sides",
    "unstable": "results differ between runs, no side consistent",
    "new": "not among base's tests; passes on head",
    "fix demonstrated": "new; fails on the base kernel, passes on head",
    "new, fails on head": "a test the series adds fails on head",
    "missing": "in base's results, not run (or only skipped) on head",
    "report": "signature on head, in no base boot: regression at any count",
    "api change": "the Rust module does not build against head",
}
FAILING_CLASSES = {"regression", "new, fails on head"}


# --- Functional ---------------------------------------------------------------

def outcome(result):
    """pass / fail / skip of one report.py result (a known failure is a fail)."""
    return {"pass": "pass", "fail": "fail", "xfail": "fail"}.get(result, "skip")


def need(n):
    """Runs out of n that make a side's failure consistent: >= 2/3."""
    return math.ceil(2 * n / 3)


def classify(base, head, cross=()):
    """The class of one test from its outcomes per run on each side, or None
    when nothing changed. base, head: outcomes with the side's own tests on
    its own kernel; cross: the head's tests on the base kernel."""
    b = [x for x in base if x != "skip"]
    h = [x for x in head if x != "skip"]
    c = [x for x in cross if x != "skip"]
    if not b and not h:
        return None
    if not b:
        # Not among base's tests (or only skipped there): added by the series.
        if h.count("fail") >= need(len(h)):
            return "new, fails on head"
        if all(x == "pass" for x in h):
            if c and c.count("fail") >= need(len(c)):
                return "fix demonstrated"
            return "new"
        return "unstable"
    if not h:
        return "missing"
    bp = all(x == "pass" for x in b)
    hp = all(x == "pass" for x in h)
    if bp and hp:
        return None
    if b.count("fail") == len(b) and h.count("fail") == len(h):
        return "persistent failure"
    if bp and h.count("fail") >= need(len(h)):
        return "regression"
    if hp and b.count("fail") >= need(len(b)):
        return "fixed"
    return "unstable"


def run_results(out, flavor, expectations):
    """{(driver, suite, test): outcome}, guest status and kernel report
    signatures of one boot (a pipeline OUT folder)."""
    problems = []
    fr = report.collect_flavor(out, flavor, expectations, problems)
    tests = {}
    for driver, suites in fr["drivers"].items():
        for suite, per in suites.items():
            for test, r in per.items():
                tests[(driver, suite, test)] = outcome(r["result"])
            # report.py adds this row only when a suite ended early.
            if suite != "module" and "(whole suite)" not in per:
                tests.setdefault((driver, suite, "<suite completed>"), "pass")
    base = os.path.join(out, flavor)
    log = os.path.join(base, "dmesg.txt")
    if fr["guest"] != "finished" or not os.path.exists(log):
        log = os.path.join(base, "console.log")
    during = {}
    sigs = signatures_of_log(log, during)
    for driver in fr["drivers"]:
        for sig in signatures_of_log(os.path.join(base, "results", driver, "kmemleak.tap")):
            sigs.setdefault(sig, set()).add(driver)
    return {"guest": fr["guest"], "tests": tests, "signatures": sigs, "during": during,
            "kernel": (fr["kernel"] or [""])[0], "accelerator": fr["accelerator"]}


# --- Kernel reports -----------------------------------------------------------

RIP = re.compile(r"RIP: [0-9a-f]{4}:(?:\[<[0-9a-f]+>\] )?([A-Za-z0-9_.]+)\+")
SIGNATURES = [
    (re.compile(r"WARNING: (possible circular locking dependency|possible recursive locking"
                r"|inconsistent lock state|suspicious RCU usage)"), "lockdep: {0}", False),
    (re.compile(r"WARNING: (?:CPU: \d+ PID: \d+ at )?(\S+?\.[ch]):\d+ (?:at )?([A-Za-z0-9_.]+)\+"),
     "WARNING {0} {1}", False),
    (re.compile(r"kernel BUG at (\S+?\.[ch]):\d+"), "BUG {0}", True),
    (re.compile(r"BUG: KASAN: (\S+) in ([A-Za-z0-9_.]+)"), "KASAN {0} in {1}", False),
    (re.compile(r"BUG: KFENCE: (.+?) in ([A-Za-z0-9_.]+)"), "KFENCE {0} in {1}", False),
    (re.compile(r"BUG: Bad rss-counter state.*?type:(\S+)"), "bad rss-counter {0}", False),
    (re.compile(r"(\S+?\.c):\d+: bad (pgd|p4d|pud|pmd|pte) "), "bad {1} {0}", False),
    (re.compile(r"BUG: Bad page state"), "bad page state", True),
    (re.compile(r"BUG: (.+?)(?:, address: .*)?$"), "BUG: {0}", True),
    (re.compile(r"general protection fault"), "general protection fault", True),
    (re.compile(r"Oops: (?:\d+ \[#\d+\]|.*)"), "Oops", True),
    (re.compile(r"INFO: task \S+ blocked for more than"), "hung task", False),
    (re.compile(r"kmemleak: .*suspected memory leak|unreferenced object"), "kmemleak leak", False),
    (re.compile(r"UBSAN: (\S+) in (\S+?\.[ch])"), "UBSAN {0} {1}", False),
    (re.compile(r"panicked at (\S+?\.rs)"), "Rust panic {0}", False),
    (re.compile(r"rust_panic"), "Rust panic", False),
    (re.compile(r"list_(add|del) corruption"), "list_{0} corruption", True),
    (re.compile(r"Kernel panic"), "Kernel panic", False),
]


def signature(line, following=()):
    """The normalised signature of one kernel-log report line (None if the
    line is no report); following: the next lines, for the RIP function."""
    line = report.TIMESTAMP.sub("", line.strip())
    if not report.REPORT.search(line) and "kernel BUG at" not in line:
        return None
    for regex, fmt, wants_rip in SIGNATURES:
        m = regex.search(line)
        if not m:
            continue
        sig = fmt.format(*m.groups())
        if wants_rip:
            for nxt in list(following)[:40]:
                r = RIP.search(nxt)
                if r:
                    sig += " in " + r.group(1)
                    break
                # The RIP of the next report is not this one's (a "BUG:
                # non-zero pgtables_bytes" has no trace of its own); its
                # Oops line is still part of it.
                if "---[ end trace" in nxt or (report.REPORT.search(nxt) and "Oops:" not in nxt):
                    break
        return re.sub(r"0x[0-9a-f]+|\b[0-9a-f]{8,}\b", "...", sig)
    return re.sub(r"0x[0-9a-f]+|\d+", "N", line)[:60]


def signatures_of_log(path, during=None):
    """{signature: {driver loaded at the time}} of one boot's kernel log; with
    a dict as `during`, also {signature: {"suite test" that ran}} there, from
    the guest's marks (report.marked_lines)."""
    sigs = {}
    lines = report.read_kernel_log(path)
    for i, line, driver, ran in report.marked_lines(lines):
        sig = signature(line, lines[i + 1:i + 41])
        if sig:
            sigs.setdefault(sig, set()).add(driver)
            if during is not None and ran:
                during.setdefault(sig, set()).add(ran)
    return sigs


# --- Performance --------------------------------------------------------------

def bench_medians(results_dir):
    """{(test, variant, size, metric, unit, driver): median over every round
    and sample} of the dmirror_bench rounds in one results folder."""
    rows, units, _ = bench_report.collect(results_dir)
    out = {}
    for key, per_driver in rows.items():
        for driver, rounds in per_driver.items():
            pooled = [x for r in rounds for x in r]
            if pooled:
                out[key + (units[key], driver)] = statistics.median(pooled)
    return out


def ratio(head, base):
    if base == 0:
        return 1.0 if head == 0 else float("inf")
    return head / base


def row_verdict(ratios, floor, unit):
    """(verdict, rule) of one timed row from its per-pair head/base ratios."""
    changes = [r - 1 for r in ratios]
    med = statistics.median(changes)
    same = len(changes) >= 2 and (all(c > 0 for c in changes) or all(c < 0 for c in changes))
    beyond = same and min(abs(c) for c in changes) > floor
    pct = f"median {med * 100:+.1f} %, floor {floor * 100:.1f} %"
    if beyond:
        worse = med < 0 if unit in HIGHER_BETTER else med > 0
        return ("REGRESSION" if worse else "improvement",
                f"all {len(changes)} pairs {'up' if med > 0 else 'down'} beyond the floor, {pct}")
    if floor > NOISE_CAP:
        return "inconclusive", f"host noise: floor {floor * 100:.0f} % > {NOISE_CAP * 100:.0f} %"
    if len(changes) < 2 and abs(med) > floor:
        return "inconclusive", f"one pair only, {pct}"
    if not same and len(changes) >= 2:
        return "no difference shown", f"pairs disagree, {pct}"
    return "no difference shown", pct


def compare_bench(pairs, aa):
    """pairs: [(base medians, head medians, order)]; aa: [(a1, a2)].
    Returns the rows (timed and contention) and the noise figures."""
    if not pairs:
        return {"rows": [], "noise": None}
    keys = set(pairs[0][1]) & set(pairs[0][0])
    for b, h, _ in pairs[1:]:
        keys &= set(b) & set(h)
    memcpy = [abs(ratio(h[k], b[k]) - 1) for b, h, _ in pairs for k in keys if k[0] == "memcpy"]
    memcpy += [abs(ratio(a2[k], a1[k]) - 1) for a1, a2 in aa for k in a1 if k[0] == "memcpy" and k in a2]
    # The median, not the largest: the control rows are identical code, but
    # not independent of the kernel (a head that changes fault or THP
    # behaviour moves them too), and one outlier row must not set the floor
    # of every row. The A-vs-A pairs, where measured, bound each row itself.
    memcpy_noise = statistics.median(memcpy) if memcpy else None
    memcpy_max = max(memcpy) if memcpy else None
    rows = []
    for k in sorted(keys):
        test, variant, size, metric, unit, driver = k
        ratios = [ratio(h[k], b[k]) for b, h, _ in pairs]
        row = {"test": test, "variant": variant, "size": size, "metric": metric,
               "unit": unit, "driver": driver,
               "base": statistics.median([b[k] for b, _, _ in pairs]),
               "head": statistics.median([h[k] for _, h, _ in pairs]),
               "ratios": ratios}
        if unit in HIGHER_BETTER | LOWER_BETTER and test not in NOT_JUDGED:
            aa_noise = [abs(ratio(a2[k], a1[k]) - 1) for a1, a2 in aa if k in a1 and k in a2]
            floor = max([MIN_FLOOR] + [2 * x for x in aa_noise]
                        + ([2 * memcpy_noise] if memcpy_noise is not None else []))
            if any(math.isinf(r) for r in ratios):
                row["verdict"], row["rule"] = "inconclusive", "base value 0"
            else:
                row["verdict"], row["rule"] = row_verdict(ratios, floor, unit)
            row["floor"] = floor
            row["aa_noise"] = max(aa_noise) if aa_noise else None
        rows.append(row)
    return {"rows": rows, "noise": {"memcpy": memcpy_noise, "memcpy_max": memcpy_max,
                                    "aa_pairs": len(aa)}}


# --- The series -------------------------------------------------------------

HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)")


def series_hunks(paths):
    """[{patch, file, line, lines, function, added, removed}] of the unified
    diffs in the patch files (mbox or plain), head-side line numbers (a
    summary of diff_hunks())."""
    return [{"patch": h["patch"], "file": h["file"], "line": h["new_start"],
             "lines": h["new_len"], "function": h["function"],
             "added": sum(tag == "+" for tag, _ in h["body"]),
             "removed": sum(tag == "-" for tag, _ in h["body"])}
            for h in diff_hunks(paths)]


def func_of(context):
    """The function a hunk header names (diff -p may name a label instead)."""
    m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", context)
    if m:
        return m.group(1)
    context = context.strip()
    return f"(after label {context[:-1]})" if context.endswith(":") else context[:30]


# --- Coverage of the series (gcov) -------------------------------------------
#
# The head kernel of KFLAVOR=cov counts every line of the objects the series
# touches (GCOV_PROFILE_<name>.o=y); qemu/init resets the counters before each
# suite and sends the .gcda files after it (results/<driver>/<suite>.gcov/).
# Here each suite's counts are read with the host's gcov (the compiler that
# built the kernel) against the build's .gcno files and mapped to the series'
# hunks: the lines each hunk adds, at their place in the head tree.

COVERAGE_RULES = {
    "ran": "an added line with code ran in a suite (counters reset before each suite)",
    "not run": "the added lines with code have count 0 in every suite",
    "not built in this config": "the file's object is not built in the head's config",
    "nothing to count": "no added line has code of its own (comments, declarations, "
                        "braces, removed lines only)",
    "not measured": "not C code of a counted object (headers only count where a counted "
                    "object inlines them; Rust and the test programs are never counted)",
}
# Files outside the kernel image and its modules: test programs, tools.
NOT_KERNEL = ("tools/", "samples/", "Documentation/", "scripts/", "usr/")
COVERAGE_ORDER = ("not run", "ran", "nothing to count", "not measured", "not built in this config")
RUST_NOTE = ("Rust code is not covered by gcov: the Rust driver and any .rs file "
             "are not measured; the suites run against it count only the kernel's "
             "C code they reach.")
MBOX_FROM = re.compile(r"^From [0-9a-f]{40} |^From \S+@\S+ .*\d{4}$")


def diff_hunks(paths):
    """The hunks of the patch files (plain or mbox), in series order:
    [{patch, unit, file, old_start, old_len, new_start, new_len, function,
    body: [(tag, text)]}]. unit numbers the patches (one per file, one per
    message of an mbox): a later unit's line numbers are after the earlier
    ones."""
    hunks, unit = [], -1
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        unit += 1
        seen_diff, current, h, left = False, None, None, (0, 0)
        for line in lines:
            if MBOX_FROM.match(line) and seen_diff:
                unit += 1
                seen_diff, current, h = False, None, None
                continue
            if h is not None and (left[0] > 0 or left[1] > 0):
                tag, text = line[:1] or " ", line[1:]
                if tag == "\\":
                    continue
                if tag not in " +-":
                    h = None
                else:
                    h["body"].append((tag, text))
                    left = (left[0] - (tag in " -"), left[1] - (tag in " +"))
                    continue
            if line.startswith("+++ "):
                name = line[4:].split("\t")[0].strip()
                current = None if name == "/dev/null" else (name[2:] if name.startswith("b/") else name)
                seen_diff = True
                continue
            m = HUNK.match(line)
            if m and current:
                h = {"patch": os.path.basename(path), "unit": unit, "file": current,
                     "old_start": int(m.group(1)),
                     "old_len": int(m.group(2)) if m.group(2) is not None else 1,
                     "new_start": int(m.group(3)),
                     "new_len": int(m.group(4)) if m.group(4) is not None else 1,
                     "function": func_of(m.group(5)), "body": []}
                left = (h["old_len"], h["new_len"])
                hunks.append(h)
    return hunks


def added_lines(h):
    """[(line in the hunk's new file, text)] of the lines the hunk adds."""
    out, n = [], h["new_start"]
    for tag, text in h["body"]:
        if tag == "+":
            out.append((n, text))
        if tag in " +":
            n += 1
    return out


def map_line(line, later):
    """Where line (of a file after one patch) is after a later patch's
    hunks on that file (sorted), or None when that patch removes it."""
    shift = 0
    for h in sorted(later, key=lambda x: x["old_start"]):
        if h["old_len"] == 0:
            if line <= h["old_start"]:
                break
            shift += h["new_len"]
            continue
        if line < h["old_start"]:
            break
        if line >= h["old_start"] + h["old_len"]:
            shift += h["new_len"] - h["old_len"]
            continue
        o, n = h["old_start"], h["new_start"]
        for tag, _ in h["body"]:
            if tag == " ":
                if o == line:
                    return n
                o, n = o + 1, n + 1
            elif tag == "-":
                if o == line:
                    return None
                o += 1
            else:
                n += 1
        return None
    return line + shift


def locate(run, text_lines, expected):
    """The head line of a run of added lines: expected when the head file
    (text_lines, 0-based list) has them there, else the nearest place that
    has the same run (the patch applied with an offset), else None."""
    texts = [t for _, t in run]
    k = len(texts)

    def at(start):
        return text_lines[start - 1:start - 1 + k] == texts

    if expected is not None and at(expected):
        return expected
    found = [s for s in range(1, len(text_lines) - k + 2) if at(s)]
    if not found:
        return None
    return min(found, key=lambda s: abs(s - (expected or 0)))


def head_hunks(paths, head_src=None):
    """The series' hunks with their added lines at their place in the head
    tree: [{patch, file, function, added, removed, line, lines: [(head line or
    None, text)], position}]. position: 'as in the patch', 'moved (patch
    applied with an offset)' or 'not found in the head tree'."""
    hunks = diff_hunks(paths)
    out = []
    cache = {}
    for i, h in enumerate(hunks):
        later_units = sorted({x["unit"] for x in hunks[i + 1:] if x["unit"] > h["unit"] and x["file"] == h["file"]})
        text = None
        if head_src:
            if h["file"] not in cache:
                try:
                    with open(os.path.join(head_src, h["file"]), encoding="utf-8", errors="replace") as f:
                        cache[h["file"]] = f.read().splitlines()
                except OSError:
                    cache[h["file"]] = None
            text = cache[h["file"]]
        lines, position = [], "as in the patch"
        # Runs of consecutive added lines, mapped through the later patches.
        runs, prev = [], None
        for n, t in added_lines(h):
            if prev is not None and n == prev + 1:
                runs[-1].append((n, t))
            else:
                runs.append([(n, t)])
            prev = n
        for run in runs:
            mapped = []
            for n, t in run:
                m = n
                for u in later_units:
                    if m is None:
                        break
                    m = map_line(m, [x for x in hunks if x["unit"] == u and x["file"] == h["file"]])
                mapped.append((m, t))
            if text is not None:
                start = locate(run, text, mapped[0][0])
                if start is None:
                    position = "not found in the head tree"
                    mapped = [(None, t) for _, t in run]
                else:
                    if start != mapped[0][0]:
                        position = "moved (patch applied with an offset)"
                    mapped = [(start + j, t) for j, (_, t) in enumerate(run)]
            lines += mapped
        removed = sum(1 for tag, _ in h["body"] if tag == "-")
        first = next((n for n, _ in lines if n), None)
        out.append({"patch": h["patch"], "file": h["file"], "function": h["function"],
                    "added": len(lines), "removed": removed,
                    "replaced": sum(1 for n, _ in lines if n is None) if position != "not found in the head tree" else 0,
                    "line": first or h["new_start"], "lines": lines, "position": position})
    return out


def gcov_counts(gcno, gcda, gcov="gcov"):
    """{source file as compiled: {line: count}} of one object's counters,
    read by the host's gcov (JSON format) from copies of its .gcno and
    .gcda."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        stem = os.path.splitext(os.path.basename(gcno))[0]
        shutil.copyfile(gcno, os.path.join(tmp, stem + ".gcno"))
        shutil.copyfile(gcda, os.path.join(tmp, stem + ".gcda"))
        p = subprocess.run([gcov, "--json-format", "--stdout", "-o", tmp, stem + ".gcda"],
                           cwd=tmp, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"gcov failed on {gcda}: {p.stderr.strip()[:300]}")
    counts = {}
    for doc in p.stdout.splitlines():
        doc = doc.strip()
        if not doc:
            continue
        for f in json.loads(doc).get("files", []):
            per = counts.setdefault(os.path.normpath(f["file"]), {})
            for ln in f.get("lines", []):
                per[ln["line_number"]] = per.get(ln["line_number"], 0) + ln["count"]
    return counts


def same_source(compiled, tree_file):
    """Whether a file name as the compiler saw it is the tree's file."""
    c = compiled.replace(os.sep, "/")
    return c == tree_file or c.endswith("/" + tree_file)


def classify_hunk(hunk, built, per_suite):
    """The coverage class of one hunk (from head_hunks), with the suites
    that ran it and the lines counted/run.
    built: False when the file is C whose object the head does not build;
    per_suite: {suite: {line: count}} of the hunk's file, or None when no
    counted object has the file's lines."""
    res = {"class": None, "suites": [], "counted": 0, "run": 0, "not_run_lines": []}
    if hunk["file"].endswith(".rs") or hunk["file"].startswith(NOT_KERNEL):
        res["class"] = "not measured"
        return res
    if hunk["file"].endswith((".c", ".S")) and not built:
        res["class"] = "not built in this config"
        return res
    if per_suite is None:
        res["class"] = "not measured"
        return res
    lines = [n for n, _ in hunk["lines"] if n is not None]
    counted = [n for n in lines if any(n in c for c in per_suite.values())]
    res["counted"] = len(counted)
    if not counted:
        res["class"] = "nothing to count"
        return res
    ran = [n for n in counted if any(c.get(n, 0) > 0 for c in per_suite.values())]
    res["run"] = len(ran)
    res["not_run_lines"] = [n for n in counted if n not in ran]
    res["suites"] = sorted(s for s, c in per_suite.items() if any(c.get(n, 0) > 0 for n in counted))
    res["class"] = "ran" if ran else "not run"
    return res


def suite_gcda(results):
    """{'driver/suite': {gcda name relative to its build folder: path}} of
    one coverage boot's results folder."""
    out = {}
    if not os.path.isdir(results):
        return out
    for driver in sorted(os.listdir(results)):
        ddir = os.path.join(results, driver)
        if not os.path.isdir(ddir):
            continue
        for entry in sorted(os.listdir(ddir)):
            if not entry.endswith(".gcov"):
                continue
            files = {}
            for root, _, names in os.walk(os.path.join(ddir, entry)):
                for n in names:
                    if n.endswith(".gcda"):
                        p = os.path.join(root, n)
                        files[os.path.relpath(p, os.path.join(ddir, entry))] = p
            out[f"{driver}/{entry[:-len('.gcov')]}"] = files
    return out


def coverage_of(cov, patches, gcov="gcov"):
    """The coverage section (review.json 'coverage') from the manifest's
    coverage entry: {build, out (the boot's flavor folder), objects,
    head_src, guest}, or {not_measured: why}."""
    if not cov:
        return None
    res = {"note": RUST_NOTE, "rules": COVERAGE_RULES}
    if cov.get("not_measured"):
        res["not_measured"] = cov["not_measured"]
        return res
    build = cov["build"]
    res.update({"objects": [], "suites": [], "hunks": [], "guest": cov.get("guest", "?"),
                "kernel": cov.get("kernel", "")})
    log = os.path.join(cov["out"], "dmesg.txt")
    if not os.path.exists(log):
        log = os.path.join(cov["out"], "console.log")
    res["reports"] = sorted(signatures_of_log(log)) if os.path.exists(log) else []
    gcdas = suite_gcda(os.path.join(cov["out"], "results"))
    res["suites"] = sorted(gcdas)
    data = {}  # tree file -> {suite: {line: count}}
    built_files = set()
    hunks = head_hunks(patches, cov.get("head_src"))
    series_files = {h["file"] for h in hunks}
    for obj in cov.get("objects", []):
        stem = obj[:-2]
        src = stem + ".c"
        if not os.path.exists(os.path.join(build, obj)):
            res["objects"].append({"object": obj, "result": "not built in this config"})
            continue
        built_files.add(src)
        gcno = os.path.join(build, stem + ".gcno")
        if not os.path.exists(gcno):
            res["objects"].append({"object": obj, "result": "built without counters (no .gcno)"})
            continue
        got = 0
        for suite, files in gcdas.items():
            gcda = next((p for rel, p in files.items() if rel == stem + ".gcda"
                         or rel.endswith("/" + stem + ".gcda")), None)
            if gcda is None:
                continue
            got += 1
            for compiled, lines in gcov_counts(gcno, gcda, gcov).items():
                for tree_file in series_files | {src}:
                    if same_source(compiled, tree_file):
                        per = data.setdefault(tree_file, {}).setdefault(suite, {})
                        for n, c in lines.items():
                            per[n] = per.get(n, 0) + c
        res["objects"].append({"object": obj, "result": f"counted in {got} of {len(gcdas)} suites"})
    for h in hunks:
        c = classify_hunk(h, h["file"] in built_files, data.get(h["file"]))
        res["hunks"].append({**{k: h[k] for k in ("patch", "file", "function", "added",
                                                  "removed", "replaced", "line", "position")}, **c})
    return res


def render_coverage(cov, hunks_fallback):
    lines = ["Coverage of the series"]
    if not cov or cov.get("not_measured"):
        why = (cov or {}).get("not_measured") or "not measured in this run"
        lines += wrap(f"not measured: {why}. The hunks:", "  ")
        for h in hunks_fallback[:LIST_MAX]:
            lines += wrap(f"{h['file']}:{h['line']} {h['function']} (+{h['added']} "
                          f"-{h['removed']}): not measured", "    ")
        lines += wrap(RUST_NOTE, "  ")
        return lines
    suites = cov.get("suites", [])
    lines += wrap(f"head kernel with gcov counters (KFLAVOR=cov), one boot, guest "
                  f"{cov.get('guest', '?')}; counters reset before each suite; "
                  f"suites: {', '.join(suites) or 'none sent counters'}", "  ")
    for o in cov.get("objects", []):
        lines += wrap(f"{o['object']}: {o['result']}", "  ")
    lines += wrap("kernel reports in this boot: " + ("; ".join(cov.get("reports", [])) or "none"), "  ")
    for cls in COVERAGE_ORDER:
        items = [h for h in cov.get("hunks", []) if h["class"] == cls]
        if not items:
            continue
        lines += wrap(f"{cls} ({len(items)}): {COVERAGE_RULES[cls]}", "  ")
        for h in items:
            func = f" {h['function']}" if h["function"] else ""
            where = f"{h['patch'][:24]} {h['file']}:{h['line']}{func} (+{h['added']} -{h['removed']})"
            if cls == "ran":
                detail = f"{h['run']}/{h['counted']} lines with code run, by {', '.join(h['suites'])}"
                if h["not_run_lines"]:
                    detail += "; not run: line " + ", ".join(str(n) for n in h["not_run_lines"])
            elif cls == "not run":
                detail = f"0/{h['counted']} lines with code run (lines " + \
                    ", ".join(str(n) for n in h["not_run_lines"]) + ")"
            else:
                detail = ""
            if h.get("position", "as in the patch") != "as in the patch":
                detail += ("; " if detail else "") + h["position"]
            if h.get("replaced"):
                detail += ("; " if detail else "") + f"{h['replaced']} added line(s) changed again by a later patch"
            lines += wrap(where + (f": {detail}" if detail else ""), "    ")
    lines += wrap(RUST_NOTE, "  ")
    return lines


# --- The whole comparison -----------------------------------------------------

def load_expectations(path):
    return report.load_expectations(path) if path and os.path.exists(path) else []


def compare(manifest, expectations):
    """The review's findings (a dict, review.json) from the manifest."""
    flavors = manifest.get("flavors", ["normal"])
    status = manifest.get("status", {})
    res = {"meta": manifest.get("meta", {}), "status": status, "skip": manifest.get("skip"),
           "functional": [], "reports": [], "bench": {"rows": [], "noise": None},
           "coverage": coverage_of(manifest.get("coverage"), manifest.get("patches", [])),
           "boots": {}, "incomplete": [], "flavors": list(flavors),
           "verdict": None, "series": series_hunks(manifest.get("patches", [])),
           "objects": manifest.get("objects", [])}
    if status.get("base_build", "ok") != "ok":
        res["incomplete"].append("the base kernel did not build: " + status.get("message", ""))
    if status.get("head_build", "ok") != "ok":
        res["functional"].append({"class": "regression", "flavor": "*", "driver": "*",
                                  "suite": "build", "test": "head kernel",
                                  "base": "builds", "head": "does not build",
                                  "rule": "head does not build: " + status.get("message", "")})
    api_change = status.get("rust_base") == "ok" and status.get("rust_head") == "fail"
    if api_change:
        res["functional"].append({"class": "api change", "flavor": "*", "driver": "rust",
                                  "suite": "module", "test": "hmm_dmirror_rs.ko",
                                  "base": "builds", "head": "does not build",
                                  "rule": RULES["api change"]})
    # A group is a flavor, or "stress": the stress boots (REVIEW=full), which
    # run on a flavor's kernel but are compared on their own.
    groups = list(flavors)
    groups += sorted({r["group"] for r in manifest.get("functional", []) if r.get("group")} - set(groups))
    for flavor in groups:
        runs = {"base": [], "head": [], "cross": []}
        for run in manifest.get("functional", []):
            if (run.get("group") or run.get("flavor", flavors[0])) != flavor:
                continue
            side = run["kernel"] if run["kernel"] == run["tests"] else "cross"
            runs[side].append(run_results(run["out"], run.get("flavor", flavors[0]), expectations))
        res["boots"][flavor] = {k: len(v) for k, v in runs.items()}
        if not res["skip"] and (not runs["base"] or any(r["guest"] != "finished" for r in runs["base"])):
            res["incomplete"].append(f"{flavor}: a base guest did not finish (or none ran)")
        for i, r in enumerate(runs["head"]):
            if r["guest"] != "finished" and all(b["guest"] == "finished" for b in runs["base"]):
                res["functional"].append({"class": "regression", "flavor": flavor, "driver": "*",
                                          "suite": "guest", "test": f"boot {i + 1}",
                                          "base": "finished", "head": r["guest"],
                                          "rule": "the head guest crashed or hung, base's did not"})
        keys = set()
        for side in runs.values():
            for r in side:
                keys |= set(r["tests"])
        for key in sorted(keys):
            driver = key[0]
            if api_change and driver == "rust":
                continue
            per = {s: [r["tests"][key] for r in runs[s] if key in r["tests"]] for s in runs}
            cls = classify(per["base"], per["head"], per["cross"])
            if cls is None:
                continue
            item = {"class": cls, "flavor": flavor, "driver": driver, "suite": key[1],
                    "test": key[2], "base": summary(per["base"]), "head": summary(per["head"]),
                    "rule": RULES[cls]}
            if per["cross"]:
                item["head_tests_on_base"] = summary(per["cross"])
            res["functional"].append(item)
        # Kernel reports per boot: the base kernel's boots (own and head's
        # tests) against the head kernel's.
        base_boots = runs["base"] + runs["cross"]
        sigs = set()
        for r in base_boots + runs["head"]:
            sigs |= set(r["signatures"])
        for sig in sorted(sigs):
            nb = sum(sig in r["signatures"] for r in base_boots)
            nh = sum(sig in r["signatures"] for r in runs["head"])
            drivers = sorted(set().union(*[r["signatures"].get(sig, set())
                                           for r in base_boots + runs["head"]]))
            ran = sorted(set().union(*[r.get("during", {}).get(sig, set())
                                       for r in base_boots + runs["head"]]))
            cls = "regression" if nh and not nb else ("gone on head" if nb and not nh else "both")
            res["reports"].append({"flavor": flavor, "signature": sig, "drivers": drivers,
                                   "during": ran,
                                   "base": f"{nb}/{len(base_boots)}",
                                   "head": f"{nh}/{len(runs['head'])}",
                                   "class": cls,
                                   "rule": RULES["report"] if cls == "regression" else ""})
    bench = manifest.get("bench") or {}
    pairs = [(bench_medians(p["base"]), bench_medians(p["head"]), p.get("order", ""))
             for p in bench.get("pairs", [])]
    aa = [(bench_medians(p["a1"]), bench_medians(p["a2"])) for p in bench.get("aa", [])]
    res["bench"] = compare_bench(pairs, aa)
    res["bench"]["orders"] = [p[2] for p in pairs]
    res["verdict"] = verdict(res)
    return res


def summary(outcomes):
    """'PASS 3/3', 'FAIL 2/3', 'skip', or '-' (not run)."""
    real = [x for x in outcomes if x != "skip"]
    if not outcomes:
        return "-"
    if not real:
        return "skip"
    p = real.count("pass")
    return f"PASS {p}/{len(real)}" if p * 2 >= len(real) else f"FAIL {len(real) - p}/{len(real)}"


def verdict(res):
    reasons = []
    for f in res["functional"]:
        if f["class"] in FAILING_CLASSES:
            reasons.append(f"functional: {f['class']} {f['flavor']} {f['driver']} {f['suite']} {f['test']}")
    for r in res["reports"]:
        if r["class"] == "regression":
            reasons.append(f"kernel report only on head: {r['signature']}")
    perf = [r for r in res["bench"]["rows"] if r.get("verdict") == "REGRESSION"]
    for r in perf:
        reasons.append(f"performance: {row_name(r)}")
    inconclusive = [r for r in res["bench"]["rows"] if r.get("verdict") == "inconclusive"]
    if res["incomplete"]:
        return {"word": "COULD NOT COMPLETE", "exit": 2, "reasons": res["incomplete"] + reasons,
                "inconclusive": len(inconclusive)}
    if reasons:
        return {"word": "REGRESSION", "exit": 1, "reasons": reasons, "inconclusive": len(inconclusive)}
    word = "NO CODE CHANGE" if res.get("skip") else "NO REGRESSION SHOWN"
    return {"word": word, "exit": 0, "reasons": [], "inconclusive": len(inconclusive)}


def row_name(r):
    return f"{r['driver']} {r['test']} {r['variant']} {bench_report.human_size(r['size'])} {r['metric']} {r['unit']}"


# --- The text report ----------------------------------------------------------

def wrap(text, indent="", sub="    "):
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent + sub,
                         break_long_words=True, break_on_hyphens=False) or [""]


def render(res, fail_inconclusive=False):
    meta, v = res["meta"], res["verdict"]
    lines = []
    code = exit_code(res, fail_inconclusive)
    lines += wrap(f"make review: {v['word']} (exit {code})")
    for r in v["reasons"][:REASONS_MAX]:
        lines += wrap(f"- {r}", "  ")
    if len(v["reasons"]) > REASONS_MAX:
        lines += wrap(f"- and {len(v['reasons']) - REASONS_MAX} more (below)", "  ")
    if v["inconclusive"]:
        lines += wrap(f"{v['inconclusive']} performance row(s) inconclusive"
                      + (" (fails: --fail-inconclusive)" if fail_inconclusive else ""), "  ")
    lines.append("")
    lines += wrap(f"base: {meta.get('base', '?')}")
    lines += wrap(f"head: {meta.get('head', '?')}")
    lines += wrap(f"host: {meta.get('machine', '?')}")
    lines += wrap(f"guest: x86_64, {meta.get('guest_cpus', '?')} vCPUs, {meta.get('accelerator', '?')}; "
                  f"mode {meta.get('mode', '?')}, flavors {' '.join(meta.get('flavors', []))}, "
                  f"drivers {meta.get('drivers', '?')}, seed {meta.get('seed', '?')}")
    if meta.get("stress"):
        lines += wrap(f"stress: one boot per side, same seed: {meta['stress']}; "
                      "compared as the flavor \"stress\", not rerun")
    if meta.get("accelerator", "tcg") == "tcg":
        lines += wrap("This is an emulated device on TCG: dmirror fakes the device "
                      "(ZONE_DEVICE memory in guest RAM) and QEMU emulates the CPU; "
                      "timings are not those of real hardware.")
    if meta.get("seconds") is not None:
        lines += wrap(f"took: {int(meta['seconds']) // 60} min {int(meta['seconds']) % 60} s")
    if meta.get("tool"):
        lines += wrap(f"tool: hmm-dmirror-rs at {meta['tool']}")
    lines.append("")
    if res["series"] or res["objects"]:
        files = sorted({h["file"] for h in res["series"]})
        lines += wrap(f"Series: {len(res['series'])} hunks in {len(files)} files")
        for o in res["objects"]:
            lines += wrap(f"{o['file']}: {o['result']}", "  ")
        lines.append("")
    if res.get("skip"):
        lines.append("No built code changed")
        lines += wrap(res["skip"].get("reason", ""), "  ")
        lines.append("")
    lines.append("Functional (rule next to each class)")
    if res.get("skip"):
        lines.append("  no guest booted: no built code changed (REVIEW_FORCE=1 boots)")
    elif not res["functional"]:
        boots = ", ".join(f"{f}: base {b['base']}, head {b['head']}, head tests on base {b['cross']}"
                          for f, b in res["boots"].items())
        lines += wrap(f"no test changed its result ({boots} boots)", "  ")
    for cls in ("regression", "new, fails on head", "api change", "fix demonstrated", "fixed",
                "unstable", "new", "missing", "persistent failure"):
        items = [f for f in res["functional"] if f["class"] == cls]
        if not items:
            continue
        lines += wrap(f"{cls} ({len(items)}): {RULES[cls]}", "  ")
        if len(items) > LIST_MAX:
            lines += wrap(f"(the first {LIST_MAX}; all in review.json)", "    ")
        for f in items[:LIST_MAX]:
            extra = f", head's test on base kernel {f['head_tests_on_base']}" if "head_tests_on_base" in f else ""
            lines += wrap(f"{f['flavor']} {f['driver']} {f['suite']} {f['test']}: "
                          f"base {f['base']}, head {f['head']}{extra}", "    ")
    lines.append("")
    lines.append("Kernel reports (boots with it: base / head)")
    if not res["reports"]:
        lines.append("  none on either side")
    for r in res["reports"]:
        mark = {"regression": "REGRESSION", "gone on head": "gone on head", "both": "on both"}[r["class"]]
        lines += wrap(f"{r['flavor']} {r['signature']} [{','.join(r['drivers'])}]: "
                      f"{r['base']} / {r['head']}  {mark}", "  ")
        if r.get("during"):
            more = f" (+{len(r['during']) - 3} more)" if len(r["during"]) > 3 else ""
            lines += wrap(f"during: {', '.join(r['during'][:3])}{more}", "      ")
        if r["rule"]:
            lines += wrap(f"rule: {r['rule']}", "      ")
    lines.append("")
    lines += render_bench(res["bench"])
    lines.append("")
    lines += render_coverage(res.get("coverage"), res["series"])
    lines.append("")
    lines += wrap(f"How to rerun: {meta.get('rerun', 'make review')}")
    return "\n".join(lines) + "\n"


def render_coverage_only(res):
    """The report of REVIEW_COVERAGE_ONLY=1: the kernels, then the coverage."""
    meta = res["meta"]
    lines = wrap("make review, coverage only (REVIEW_COVERAGE_ONLY=1): no base, no "
                 "comparison")
    lines.append("")
    lines += wrap(f"head: {meta.get('head', '?')}")
    lines += wrap(f"host: {meta.get('machine', '?')}")
    lines += wrap(f"guest: x86_64, {meta.get('guest_cpus', '?')} vCPUs, "
                  f"{meta.get('accelerator', '?')}; drivers {meta.get('drivers', '?')}")
    if meta.get("seconds") is not None:
        lines += wrap(f"took: {int(meta['seconds']) // 60} min {int(meta['seconds']) % 60} s")
    if meta.get("tool"):
        lines += wrap(f"tool: hmm-dmirror-rs at {meta['tool']}")
    lines.append("")
    lines += render_coverage(res.get("coverage"), res["series"])
    lines.append("")
    lines += wrap(f"How to rerun: {meta.get('rerun', 'make review')}")
    return "\n".join(lines) + "\n"


def render_bench(bench):
    lines = []
    rows = [r for r in bench["rows"] if "verdict" in r]
    if not rows:
        return ["Performance", "  not measured in this run"]
    orders = " ".join(bench.get("orders", []))
    noise = bench["noise"]
    if noise["memcpy"] is not None:
        mem = (f"{noise['memcpy'] * 100:.1f} % (median; at most "
               f"{noise.get('memcpy_max', noise['memcpy']) * 100:.1f} %)")
    else:
        mem = "none"
    lines += wrap(f"Performance: {len(bench.get('orders', []))} pairs ({orders}), "
                  f"memcpy control moved {mem}, {noise['aa_pairs']} A-vs-A pair(s)")
    lines += wrap("rule: changed when every pair moves the same way by more than the "
                  "floor = max(15 %, 2 x the memcpy control's median move, 2 x the row's "
                  "A-vs-A move); inconclusive when the floor exceeds 25 %; contention "
                  "rows are shown, not judged", "  ")
    shown = [r for r in rows if r["verdict"] != "no difference shown"]
    quiet = len(rows) - len(shown)
    for r in shown:
        pairs = " ".join(f"{(x - 1) * 100:+.0f}%" for x in r["ratios"])
        lines += wrap(f"{r['verdict']}: {row_name(r)} {bench_report.fmt(r['base'])} -> "
                      f"{bench_report.fmt(r['head'])} (pairs {pairs}; {r['rule']})", "  ")
    lines += wrap(f"{quiet} of {len(rows)} timed rows: no difference shown", "  ")
    cont = [r for r in bench["rows"] if r["test"] == "contention" and r["metric"] == "miss_frac"]
    if cont:
        lines.append("  contention: pages requested per attempt, % moved base -> head")
        for r in cont:
            pages = r["size"] // 4096
            lines += wrap(f"{r['driver']} {r['variant']}: {pages} requested, "
                          f"{(1 - r['base']) * 100:.1f} % -> {(1 - r['head']) * 100:.1f} % moved", "    ")
    return lines


RERUN_CLASSES = {"regression", "fixed", "unstable", "fix demonstrated", "new, fails on head"}


def differing(res):
    """{flavor: {suite}} of the tests whose result differs between the
    sides, and of the suites during which a kernel report came on one side
    only (a race may need more boots than one to show on both): what the
    reruns boot again (not the stress boots: each takes many minutes and
    they are not rerun)."""
    out = {}
    flavors = set(res["flavors"])
    for f in res["functional"]:
        if f["flavor"] not in flavors:
            continue
        if f["class"] in RERUN_CLASSES and f["suite"] not in ("build", "guest", "module"):
            out.setdefault(f["flavor"], set()).add(f["suite"])
    for r in res["reports"]:
        if r["flavor"] not in flavors or r["class"] == "both":
            continue
        for ran in r.get("during", []):
            suite = ran.split()[0]
            if suite != "kmemleak":
                out.setdefault(r["flavor"], set()).add(suite)
    return out


def exit_code(res, fail_inconclusive):
    code = res["verdict"]["exit"]
    if code == 0 and fail_inconclusive and res["verdict"]["inconclusive"]:
        return 3
    return code


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest")
    parser.add_argument("outdir", nargs="?")
    parser.add_argument("--fail-inconclusive", action="store_true")
    parser.add_argument("--differing", action="store_true",
                        help="print 'flavor suite...' for the suites to rerun, nothing else")
    parser.add_argument("--coverage-only", action="store_true",
                        help="write OUTDIR/coverage.txt and coverage.json only "
                             "(REVIEW_COVERAGE_ONLY=1); exit 2 when no counters came back")
    parser.add_argument("--expectations", default=os.path.join(HERE, "..", "selftests", "expectations.txt"))
    args = parser.parse_args()
    with open(args.manifest, encoding="utf-8") as f:
        manifest = json.load(f)
    res = compare(manifest, load_expectations(args.expectations))
    if args.differing:
        for flavor, suites in differing(res).items():
            print(flavor, " ".join(sorted(suites)))
        return 0
    if not args.outdir:
        parser.error("OUTDIR is required")
    if args.coverage_only:
        cov = res.get("coverage") or {}
        res["exit"] = 0 if cov.get("suites") and cov.get("guest") == "finished" else 2
        text = render_coverage_only(res)
        os.makedirs(args.outdir, exist_ok=True)
        with open(os.path.join(args.outdir, "coverage.txt"), "w", encoding="utf-8") as f:
            f.write(text)
        with open(os.path.join(args.outdir, "coverage.json"), "w", encoding="utf-8") as f:
            json.dump({k: res[k] for k in ("meta", "coverage", "series", "exit")}, f,
                      indent=1, sort_keys=True)
        sys.stdout.write(text)
        return res["exit"]
    text = render(res, args.fail_inconclusive)
    res["exit"] = exit_code(res, args.fail_inconclusive)
    os.makedirs(args.outdir, exist_ok=True)
    with open(os.path.join(args.outdir, "review.txt"), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(args.outdir, "review.json"), "w", encoding="utf-8") as f:
        json.dump(res, f, indent=1, sort_keys=True, default=sorted)
    sys.stdout.write(text)
    return res["exit"]


if __name__ == "__main__":
    sys.exit(main())
