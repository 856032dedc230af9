#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The side-by-side profile of make profile (scripts/profile.sh).

Reads the '# PERF <test> <view> <perf report line>' lines that
qemu/profile-run left in RESULTS/<driver>/dmirror_bench.tap and prints, per
benchmark test and one column per driver: the samples per binary (kernel,
driver module, the program: the driver's share of the run), and the
symbols with the largest share of the samples ('self': where they landed;
'children': the drivers' own functions, callees included). Writes the
parsed profiles as JSON with --json.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

# perf report -q -n --sort dso,sym: '  12.34%  1234  [kernel.kallsyms]  [k] sym'
# (--children: two percentages, children then self).
LINE = re.compile(
    r"^\s*(?P<pcts>(?:[\d.]+%\s+)+)(?P<samples>\d+)\s+(?P<dso>\S+)\s+\[(?P<kind>.)\]\s+(?P<sym>.+?)\s*$"
)
# perf report -q -n --sort dso: '  65.43%  5432  [kernel.kallsyms]'
DSO_LINE = re.compile(r"^\s*(?P<pct>[\d.]+)%\s+(?P<samples>\d+)\s+(?P<dso>\S+)\s*$")
# The modules of the two drivers.
MODULES = ("[test_hmm]", "[hmm_dmirror_rs]")


def demangle(names):
    """{name: readable name}: Rust v0 symbols through c++filt (binutils), crate hashes dropped."""
    out = {n: n for n in names}
    rust = sorted(n for n in names if n.startswith("_R"))
    if rust and shutil.which("c++filt"):
        res = subprocess.run(
            ["c++filt"], input="\n".join(rust) + "\n", capture_output=True, text=True, check=False
        )
        lines = res.stdout.splitlines()
        if res.returncode == 0 and len(lines) == len(rust):
            for n, d in zip(rust, lines):
                out[n] = re.sub(r"\[[0-9a-f]{16}\]", "", d)
    return out


def parse(tap):
    """{test: {view: [{sym, dso, pct, self_pct, samples}]}} of one driver."""
    prof = {}
    with open(tap, errors="replace") as f:
        for line in f:
            if not line.startswith("# PERF "):
                continue
            parts = line.rstrip("\n").split(" ", 4)
            if len(parts) < 5:
                continue
            test, view, rest = parts[2], parts[3], parts[4]
            if view == "dso":
                m = DSO_LINE.match(rest)
                if m:
                    prof.setdefault(test, {}).setdefault(view, []).append(
                        {
                            "dso": m.group("dso"),
                            "pct": float(m.group("pct")),
                            "samples": int(m.group("samples")),
                        }
                    )
                continue
            m = LINE.match(rest)
            if not m:
                continue
            pcts = [float(p.rstrip("%")) for p in m.group("pcts").split()]
            prof.setdefault(test, {}).setdefault(view, []).append(
                {
                    "sym": m.group("sym"),
                    "dso": m.group("dso"),
                    "pct": pcts[0],
                    "self_pct": pcts[-1],
                    "samples": int(m.group("samples")),
                }
            )
    return prof


def table(test, view, drivers, profs, top):
    """Rows of one test and view: the top symbols of any driver ('children':
    only the drivers' own functions, whose callees' time it includes)."""
    shares = {}
    for d in drivers:
        for e in profs[d].get(test, {}).get(view, []):
            if view == "children" and e["dso"] not in MODULES:
                continue
            # Both drivers' module code is one row: 'driver module'.
            sym = e["sym"]
            key = (e["dso"] if e["dso"] not in MODULES else "[module]", sym)
            shares.setdefault(key, {})[d] = e["pct"]
    keys = sorted(shares, key=lambda k: -max(shares[k].values()))[:top]
    what = "samples" if view == "self" else "samples under the driver's functions"
    lines = [f"{test}, {view} (% of the {what} of the run)"]
    head = f"  {'symbol':<72} {'dso':<18}" + "".join(f" {d:>8}" for d in drivers)
    lines.append(head)
    for dso, sym in keys:
        cells = "".join(
            f" {shares[(dso, sym)].get(d, 0.0):>7.2f}%" for d in drivers
        )
        name = sym if len(sym) <= 72 else "..." + sym[-69:]
        lines.append(f"  {name:<72} {dso[:18]:<18}{cells}")
    return lines


def dso_table(test, drivers, profs):
    """Samples per binary and in all: the one view whose counts add up."""
    rows = {}
    totals = {}
    for d in drivers:
        entries = profs[d].get(test, {}).get("dso", [])
        totals[d] = sum(e["samples"] for e in entries)
        for e in entries:
            dso = e["dso"] if e["dso"] not in MODULES else "[driver module]"
            rows.setdefault(dso, {})[d] = e["samples"]
    if not rows:
        return []
    lines = [f"{test}, samples per binary (count, % of the driver's run)"]
    lines.append(f"  {'binary':<40}" + "".join(f" {d:>16}" for d in drivers))
    for dso in sorted(rows, key=lambda k: -max(rows[k].values())):
        cells = ""
        for d in drivers:
            n = rows[dso].get(d, 0)
            pct = 100.0 * n / totals[d] if totals[d] else 0.0
            cells += f" {n:>8} ({pct:4.1f}%)"
        lines.append(f"  {dso[:40]:<40}{cells}")
    lines.append(f"  {'in all':<40}" + "".join(f" {totals[d]:>8}        " for d in drivers))
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="OUT/profile/results")
    ap.add_argument("--json", help="write the parsed profiles here")
    ap.add_argument("--top", type=int, default=25, help="rows per table")
    args = ap.parse_args()

    drivers = sorted(
        d
        for d in os.listdir(args.results)
        if os.path.isfile(os.path.join(args.results, d, "dmirror_bench.tap"))
    )
    if not drivers:
        print(f"no dmirror_bench.tap under {args.results}", file=sys.stderr)
        return 1
    profs = {d: parse(os.path.join(args.results, d, "dmirror_bench.tap")) for d in drivers}
    entries = [
        e for p in profs.values() for t in p.values() for v in t.values() for e in v if "sym" in e
    ]
    names = demangle({e["sym"] for e in entries})
    for e in entries:
        e["sym"] = names[e["sym"]]
    tests = sorted({t for p in profs.values() for t in p})
    if not tests:
        print("no '# PERF' lines: did perf run in the guest?", file=sys.stderr)
        return 1
    for test in tests:
        dso = dso_table(test, drivers, profs)
        if dso:
            print("\n".join(dso))
            print()
        for view in ("self", "children"):
            print("\n".join(table(test, view, drivers, profs, args.top)))
            print()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(profs, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
