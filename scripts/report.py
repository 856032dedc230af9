#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Usage: scripts/report.py [--help] [--out OUT] [--expectations FILE] FLAVOR...

Turns what scripts/run-vm.sh collected in OUT/<flavor>/ into results:
 - per driver and suite, every test of the TAP output: pass, fail or skip;
   a suite that did not run to its end (crash, timeout) is a failure;
 - the kernel log scanned for reports (WARNING, BUG, Oops, lockdep, KFENCE,
   kmemleak, hung tasks, Rust panics), each a failure of the driver that was
   loaded when it appeared;
 - the guest's CPUs (OUT/<flavor>/cpus of scripts/run-vm.sh): asked for,
   online, vCPU threads of QEMU; a guest with fewer CPUs online than asked
   for has a guest status other than 'finished' and fails the run;
 - the expectations file: a listed known failure of the upstream C driver is
   shown as 'xfail' and does not fail the run; a test listed as too slow for
   a flavor (driver '*', 'timeout') is a skip when, and only when, it timed
   out; a test the plan excluded on a flavor ('exclude') is one skip row with
   the reason; anything else fails the run;
 - a table with the drivers side by side, OUT/results.json, and the closing
   line 'N passed, N failed, N skipped' (known failures count as skipped).
Exits 1 when anything failed unexpectedly or a guest crashed or hung.
"""

import argparse
import json
import os
import re
import sys

TAP_LINE = re.compile(r"^(not )?ok (\d+) (\S+)(?:\s+#\s*(SKIP|XFAIL|TODO)\b\s*(.*))?")
PLAN = re.compile(r"^1\.\.(\d+)")
REPORT = re.compile(
    r"(WARNING:|BUG:|Oops:|Kernel panic|general protection fault|UBSAN:|KFENCE:"
    r"|kmemleak: .*suspected memory leak|unreferenced object|INFO: task .* blocked for more than"
    r"|possible circular locking|possible recursive locking|inconsistent lock state"
    r"|suspicious RCU usage|rust_panic|panicked at|stack-protector|list_add corruption"
    r"|list_del corruption|Bad page state|page dumped because"
    r"|\.c:\d+: bad (?:pgd|p4d|pud|pmd|pte) )"
)
MARK = re.compile(r"hmm-run: (begin|end) driver (\S+)")
SUITE_MARK = re.compile(r"hmm-run: (begin|end) suite (\S+) (\S+)")
TEST_MARK = re.compile(r"hmm-run: test (\S+) (\S+) (\S+)")
TIMESTAMP = re.compile(r"^(<\d+>)?\[\s*\d+\.\d+\]\s?")


def load_expectations(path):
    """Lines: driver | flavor | suite | test (or kernel-log regex) | fail/skip/report/timeout/exclude | reason."""
    expectations = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = [x.strip() for x in line.split("|")]
            if len(fields) != 6 or fields[4] not in ("fail", "skip", "report", "timeout", "exclude"):
                sys.exit(
                    f"{path}:{number}: expected 'driver | flavor | suite | test | fail|skip|report|timeout|exclude | reason'"
                )
            if fields[4] == "exclude" and fields[0] != "*":
                sys.exit(f"{path}:{number}: 'exclude' applies to every driver: use driver '*'")
            expectations.append(dict(zip(("driver", "flavor", "suite", "test", "expect", "reason"), fields)))
    return expectations


def find_expectation(expectations, driver, flavor, suite, test, expect):
    for e in expectations:
        if e["expect"] != expect or e["driver"] != driver or e["flavor"] not in ("*", flavor):
            continue
        if e["suite"] != suite:
            continue
        if expect == "report" and re.search(e["test"], test):
            return e
        if expect != "report" and e["test"] == test:
            return e
    return None


def parse_suite(path, rc):
    """The tests of one suite's TAP output, plus a failure if it ended early."""
    tests = {}
    plan = None
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    for line in lines:
        m = PLAN.match(line)
        if m:
            plan = int(m.group(1))
        m = TAP_LINE.match(line)
        if not m:
            continue
        failed, _, name, directive, why = m.groups()
        if directive == "SKIP":
            tests[name] = {"result": "skip", "reason": why or ""}
        elif failed and directive != "XFAIL":
            tests[name] = {"result": "fail", "reason": failure_reason(lines, name)}
        else:
            tests[name] = {"result": "pass"}
    if plan is None or len(tests) < plan or rc not in (0, 1):
        # The guest streams a suite's output as it runs: the test whose RUN
        # line has no verdict after it was running when the suite ended.
        reported = len(tests)
        running = unfinished_test(lines)
        if running and running not in tests:
            tests[running] = {
                "result": "fail",
                "reason": f"did not finish: the suite ended (rc={rc}) while it ran",
            }
        tests["<suite completed>"] = {
            "result": "fail",
            "reason": f"suite ended early: rc={rc}, {reported} of {plan} tests reported",
        }
    return tests


def unfinished_test(lines):
    """The test of the last kselftest_harness RUN line without a verdict
    after it, or None."""
    running = None
    for line in lines:
        m = re.match(r"^#\s+RUN\s+(\S+)", line)
        if m:
            running = m.group(1)
        elif running and re.match(rf"^(not )?ok \d+ {re.escape(running)}\b", line):
            running = None
    return running


def failure_reason(lines, name):
    """The harness's diagnostics between the test's RUN line and its verdict:
    the first failed expectation, else the last diagnostic line."""
    inside = []
    for line in lines:
        if re.match(rf"^#\s+RUN\s+{re.escape(name)}\b", line):
            inside = []
            continue
        if re.match(rf"^(not )?ok \d+ {re.escape(name)}\b", line):
            break
        if line.startswith("#"):
            inside.append(line.lstrip("# ").strip())
    expected = [l for l in inside if "Expected" in l]
    if expected:
        return expected[0].split("/")[-1][-200:]
    useful = [l for l in inside if l and not l.startswith("FAIL")]
    return useful[-1][-200:] if useful else ""


def read_kernel_log(path):
    """The lines of a kernel log without their timestamps ([] if missing)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        return [TIMESTAMP.sub("", raw.rstrip("\r\n")) for raw in f]


def marked_lines(lines):
    """(index, line, driver, during) for every line of a kernel log that is
    not one of the guest's "hmm-run:" marks (qemu/init): the driver loaded at
    the time (or 'kernel') and what ran, "<suite> <test>", "<suite>" between
    tests, or "" outside suites."""
    driver, during = "kernel", ""
    for i, line in enumerate(lines):
        m = MARK.search(line)
        if m:
            driver = m.group(2) if m.group(1) == "begin" else "kernel"
            during = ""
            continue
        m = SUITE_MARK.search(line)
        if m:
            during = m.group(3) if m.group(1) == "begin" else ""
            continue
        m = TEST_MARK.search(line)
        if m:
            during = f"{m.group(2)} {m.group(3)}"
            continue
        yield i, line, driver, during


def scan_kernel_log(path):
    """(driver loaded at the time or 'kernel', report line, what ran) for every
    report (see marked_lines())."""
    return [(driver, line.strip(), during)
            for _, line, driver, during in marked_lines(read_kernel_log(path))
            if REPORT.search(line)]


def collect_flavor(out, flavor, expectations, problems):
    base = os.path.join(out, flavor)
    results = os.path.join(base, "results")
    status = read(os.path.join(base, "guest-status"), "missing")
    flavor_result = {
        "guest": status,
        "accelerator": read(os.path.join(base, "accelerator"), "unknown"),
        "kernel": read(os.path.join(base, "info.txt"), "").splitlines()[:1],
        "cpus": parse_cpus(read(os.path.join(base, "cpus"), "")),
        "config": os.path.join(base, "kernel.config"),
        "drivers": {},
        "kernel_reports": [],
        "seconds": {},
    }
    if status != "finished":
        problems.append(f"{flavor}: guest {status} (see {base}/console.log)")
    if not os.path.isdir(results):
        return flavor_result
    for driver in sorted(os.listdir(results)):
        ddir = os.path.join(results, driver)
        suites = {}
        for entry in sorted(os.listdir(ddir)):
            if not entry.endswith(".tap"):
                continue
            suite = entry[:-4]
            rc = rc_of(os.path.join(ddir, suite + ".rc"))
            if suite == "kmemleak":
                continue
            if suite in ("insmod", "rmmod"):
                if rc != 0:
                    with open(os.path.join(ddir, entry), encoding="utf-8", errors="replace") as f:
                        text = f.read().strip()
                    suites.setdefault("module", {})[suite] = {"result": "fail", "reason": text[-200:]}
                else:
                    suites.setdefault("module", {})[suite] = {"result": "pass"}
                continue
            suites[suite] = parse_suite(os.path.join(ddir, entry), rc)
            secs = read(os.path.join(ddir, suite + ".secs"), "").strip()
            if secs.isdigit():
                flavor_result["seconds"].setdefault(driver, {})[suite] = int(secs)
        flavor_result["drivers"][driver] = suites
    # The guest's full dmesg when it finished, else whatever reached the console.
    log = os.path.join(base, "dmesg.txt")
    if status != "finished" or not os.path.exists(log):
        log = os.path.join(base, "console.log")
    reports = scan_kernel_log(log)
    for driver in flavor_result["drivers"]:
        leaks = os.path.join(results, driver, "kmemleak.tap")
        reports += [(driver, line, "kmemleak") for _, line, _ in scan_kernel_log(leaks)]
    for driver, line, during in reports:
        known = find_expectation(expectations, driver, flavor, "kernel-log", line, "report")
        flavor_result["kernel_reports"].append(
            {
                "driver": driver,
                "line": line,
                "during": during,
                "known": bool(known),
                "reason": known["reason"] if known else "",
            }
        )
    # Tests the plan told a suite not to run (kselftest_harness -T), or whole
    # suites it left out (test '*'): one skip row each.
    for driver, suites in flavor_result["drivers"].items():
        for e in expectations:
            if e["expect"] != "exclude" or e["flavor"] not in ("*", flavor):
                continue
            if e["test"] == "*":
                # Only where the suite did not run (make stress runs it).
                if driver in ("c", "rust") and e["suite"] not in suites:
                    suites.setdefault(e["suite"], {})["(whole suite)"] = {
                        "result": "skip",
                        "reason": "not run here: " + e["reason"],
                    }
                continue
            if e["suite"] not in suites:
                continue
            tests = suites[e["suite"]]
            if not any(t == e["test"] or t.endswith("." + e["test"]) for t in tests):
                tests[e["test"] + " (every variant)"] = {"result": "skip", "reason": "not run here: " + e["reason"]}
    # Known failures and skips.
    for driver, suites in flavor_result["drivers"].items():
        for suite, tests in suites.items():
            for test, r in tests.items():
                if r["result"] == "fail" and "terminated by timeout" in r.get("reason", ""):
                    slow = find_expectation(expectations, "*", flavor, suite, test, "timeout")
                    if slow:
                        r["result"] = "skip"
                        r["reason"] = "timed out: " + slow["reason"]
                        continue
                if r["result"] in ("fail", "skip"):
                    known = find_expectation(expectations, driver, flavor, suite, test, r["result"])
                    if known and r["result"] == "fail":
                        r["result"] = "xfail"
                        r["reason"] = known["reason"]
                elif r["result"] == "pass" and find_expectation(expectations, driver, flavor, suite, test, "fail"):
                    problems.append(f"stale expectation: {driver} {flavor} {suite} {test} passed")
    return flavor_result


def parse_cpus(text):
    """'requested=2 online=2 topology=... accel=tcg vcpu_threads=2 CPU_0/TCG=1.5 ...'
    as a dict; the per-thread seconds under 'vcpu_seconds'."""
    cpus = {}
    for word in text.split():
        key, _, value = word.partition("=")
        if key.startswith("CPU_"):
            cpus.setdefault("vcpu_seconds", {})[key.replace("_", " ", 1)] = float(value)
        elif key in ("requested", "online", "vcpu_threads"):
            cpus[key] = int(value) if value.isdigit() else value
        elif key:
            cpus[key] = value
    return cpus


def cpus_text(cpus):
    if not cpus:
        return ""
    return f", {cpus.get('online', '?')} of {cpus.get('requested', '?')} CPUs online"


def read(path, default):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return default


def rc_of(path):
    text = read(path, "rc=-1")
    try:
        return int(text.split("=", 1)[1])
    except (IndexError, ValueError):
        return -1


SYMBOL = {"pass": "PASS", "fail": "FAIL", "skip": "skip", "xfail": "xfail"}


def print_table(flavor, fr):
    drivers = sorted(fr["drivers"])
    rows = {}
    for driver in drivers:
        for suite, tests in fr["drivers"][driver].items():
            for test in tests:
                rows.setdefault((suite, test), {})[driver] = tests[test]
    width = max([len(f"{s} {t}") for s, t in rows] + [10])
    release = "".join(f" {k.removeprefix('kernel ')}" for k in fr["kernel"])
    print(f"\n== {flavor} kernel{release} ({fr['accelerator']}{cpus_text(fr['cpus'])}, guest {fr['guest']}) ==")
    if fr["cpus"].get("vcpu_seconds"):
        each = ", ".join(f"{t} {s:.0f} s" for t, s in sorted(fr["cpus"]["vcpu_seconds"].items()))
        print(f"host CPU time of the vCPU threads: {each}")
    print(f"{'test':<{width}}  " + "  ".join(f"{d:>6}" for d in drivers))
    for (suite, test), per in sorted(rows.items()):
        cells = "  ".join(f"{SYMBOL[per[d]['result']] if d in per else '-':>6}" for d in drivers)
        print(f"{suite + ' ' + test:<{width}}  {cells}")
    seen = {}
    for rep in fr["kernel_reports"]:
        key = (rep["known"], where(rep), re.sub(r"0x[0-9a-f]+", "0x...", rep["line"]))
        seen[key] = seen.get(key, 0) + 1
    for (known, at, line), count in seen.items():
        tag = "known" if known else "REPORT"
        times = f" (x{count})" if count > 1 else ""
        print(f"kernel log [{tag}] ({at}): {line}{times}")
    for driver, per in sorted(fr["seconds"].items()):
        total = sum(per.values())
        each = ", ".join(f"{suite} {secs}" for suite, secs in per.items())
        print(f"seconds per suite ({driver}, {total} s in all): {each}")


def where(rep):
    """'driver' or 'driver, during suite test' for a kernel report."""
    during = rep.get("during", "")
    return f"{rep['driver']}, during {during}" if during else rep["driver"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT", "out"))
    parser.add_argument("--expectations", default=os.path.join(os.path.dirname(__file__), "..", "selftests", "expectations.txt"))
    parser.add_argument("flavors", nargs="+")
    args = parser.parse_args()

    expectations = load_expectations(args.expectations)
    problems = []
    summary = {"flavors": {}}
    counts = {"pass": 0, "fail": 0, "skip": 0, "xfail": 0}
    for flavor in args.flavors:
        fr = collect_flavor(args.out, flavor, expectations, problems)
        summary["flavors"][flavor] = fr
        print_table(flavor, fr)
        for driver, suites in fr["drivers"].items():
            for suite, tests in suites.items():
                for test, r in tests.items():
                    counts[r["result"]] += 1
                    if r["result"] == "fail":
                        problems.append(f"FAIL {flavor} {driver} {suite} {test}: {r.get('reason', '')}")
        for rep in fr["kernel_reports"]:
            if not rep["known"]:
                counts["fail"] += 1
                problems.append(f"kernel report {flavor} ({where(rep)}): {rep['line']}")
    summary["counts"] = counts
    summary["problems"] = problems
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, sort_keys=True)

    print()
    for p in problems:
        print(p)
    if counts["xfail"]:
        print(f"of the skipped: {counts['xfail']} known failures listed in selftests/expectations.txt")
    guests_ok = all(fr["guest"] == "finished" for fr in summary["flavors"].values())
    failed = counts["fail"] + (0 if guests_ok else 1)
    print(f"{counts['pass']} passed, {failed} failed, {counts['skip'] + counts['xfail']} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
