#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Usage: bench/bench_report.py [--help] [--json FILE] [--plot FILE] RESULTS_DIR

Turns the '# BENCH {json}' lines that dmirror_bench --full printed in
RESULTS_DIR/<driver>/dmirror_bench.tap (driver c, c.2, rust, rust.2, ...:
alternating rounds of the same VM boot) into:
 - a table: per row (test, variant, size, metric) and driver the median of
   every sample of every round, the spread (interquartile range over the
   median, and the min..max of the per-round medians) and the Rust/C ratio
   of the medians (for latencies and failure fractions lower is better);
 - a verdict: the rows where Rust is behind C with the two drivers' ranges
   of round medians apart (contention rows counted apart), and the memcpy
   control's Rust/C range (the same code: the run's noise);
 - a JSON file with the same figures (default out/bench/results.json);
 - a PNG plot (default out/bench/throughput.png): migration round-trip
   throughput vs size for each driver, 4k and THP, with the memcpy ceiling.
"""

import argparse
import json
import os
import re
import statistics
import sys

LOWER_IS_BETTER_UNITS = {"us", "frac", "retries", "count"}
ROUND = re.compile(r"^(?P<driver>[^.]+)(?:\.(?P<round>\d+))?$")


def median(values):
    return statistics.median(values) if values else float("nan")


def quartiles(values):
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def collect(results_dir):
    """{(test, variant, size, metric): {driver: [[samples of a round], ...]}}, units."""
    rows, units, rounds = {}, {}, {}
    for entry in sorted(os.listdir(results_dir)):
        tap = os.path.join(results_dir, entry, "dmirror_bench.tap")
        m = ROUND.match(entry)
        if not m or not os.path.isfile(tap):
            continue
        driver = m.group("driver")
        rounds.setdefault(driver, []).append(entry)
        with open(tap, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.startswith("# BENCH "):
                    continue
                try:
                    rec = json.loads(line[len("# BENCH "):])
                except json.JSONDecodeError:
                    print(f"warning: {tap}: bad line: {line.strip()}", file=sys.stderr)
                    continue
                key = (rec["test"], rec["variant"], rec["size"], rec["metric"])
                units[key] = rec["unit"]
                rows.setdefault(key, {}).setdefault(driver, []).append(rec["samples"])
    return rows, units, rounds


def summarize(rows, units):
    out = []
    for key in sorted(rows, key=lambda k: (k[0], k[1], k[3], k[2])):
        test, variant, size, metric = key
        row = {"test": test, "variant": variant, "size": size, "metric": metric,
               "unit": units[key], "drivers": {}}
        for driver, per_round in rows[key].items():
            pooled = [x for r in per_round for x in r]
            round_medians = [median(r) for r in per_round]
            q1, q3 = quartiles(pooled)
            med = median(pooled)
            row["drivers"][driver] = {
                "median": med,
                "iqr_pct": 100 * (q3 - q1) / med if med else 0.0,
                "round_min": min(round_medians),
                "round_max": max(round_medians),
                "rounds": len(per_round),
                "samples": len(pooled),
            }
        c, r = row["drivers"].get("c"), row["drivers"].get("rust")
        if c and r and c["median"]:
            row["rust_over_c"] = r["median"] / c["median"]
        out.append(row)
    return out


def human_size(size):
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift}{unit}"
    return str(size)


def fmt(value):
    if value != value:  # NaN
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:.4g}"
    if abs(value) >= 1:
        return f"{value:.3g}"
    return f"{value:.3g}"


def print_table(rows, drivers):
    head = ["test", "variant", "size", "metric", "unit"]
    for d in drivers:
        head += [f"{d} median", f"{d} iqr%", f"{d} rounds"]
    head += ["rust/c"]
    table = [head]
    for row in rows:
        line = [row["test"], row["variant"], human_size(row["size"]), row["metric"], row["unit"]]
        for d in drivers:
            s = row["drivers"].get(d)
            if s:
                line += [fmt(s["median"]), f"{s['iqr_pct']:.0f}",
                         f"{fmt(s['round_min'])}..{fmt(s['round_max'])}"]
            else:
                line += ["-", "-", "-"]
        ratio = row.get("rust_over_c")
        if ratio is None:
            line.append("-")
        else:
            better = "lower=better" if row["unit"] in LOWER_IS_BETTER_UNITS else ""
            line.append(f"{ratio:.2f} {better}".strip())
        table.append(line)
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for i, r in enumerate(table):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def behind(rows):
    """The rows where the Rust module is behind C beyond the run's spread: its
    median is worse (direction-aware) and the min..max ranges of the two
    drivers' round medians do not overlap. None when a driver has fewer than
    two rounds (no spread to judge by)."""
    found = []
    for row in rows:
        c, rust = row["drivers"].get("c"), row["drivers"].get("rust")
        ratio = row.get("rust_over_c")
        if not c or not rust or ratio is None:
            continue
        if min(c["rounds"], rust["rounds"]) < 2:
            return None
        worse = ratio > 1 if row["unit"] in LOWER_IS_BETTER_UNITS else ratio < 1
        apart = rust["round_max"] < c["round_min"] or c["round_max"] < rust["round_min"]
        if worse and apart:
            found.append(row)
    return found


def print_verdict(rows):
    """What the table says about the Rust module against C, in two lines: rows
    behind C beyond the spread (contention rows counted apart: they measure
    races between threads), and the memcpy control's ratio range."""
    late = behind(rows)
    if late is None:
        print("\nRust vs C: one round per driver, no spread to judge by")
        return
    judged = [r for r in rows if r.get("rust_over_c") is not None]
    cont = [r for r in judged if r["test"] == "contention"]
    late_cont = [r for r in late if r["test"] == "contention"]
    print(f"\nRust behind C with round ranges apart: {len(late) - len(late_cont)} of "
          f"{len(judged) - len(cont)} rows; contention rows: {len(late_cont)} of {len(cont)}")
    for r in late:
        if r["test"] != "contention":
            print(f"  {r['test']} {r['variant']} {human_size(r['size'])} {r['metric']}: "
                  f"rust/c {r['rust_over_c']:.2f}")
    control = [r["rust_over_c"] for r in judged if r["test"] == "memcpy"]
    if control:
        print(f"memcpy control rust/c (same code): {min(control):.2f}..{max(control):.2f}")


def plot(rows, drivers, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("warning: matplotlib missing, no plot", file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=(9, 6))
    styles = {"c": "tab:blue", "rust": "tab:orange"}

    def series(test, variant, metric, driver):
        pts = sorted((r["size"], r["drivers"][driver]) for r in rows
                     if r["test"] == test and r["variant"] == variant
                     and r["metric"] == metric and driver in r["drivers"])
        return pts

    for driver in drivers:
        for variant, ls in (("4k", "-"), ("thp", "--")):
            pts = series("migrate", variant, "round_trip", driver)
            if not pts:
                continue
            xs = [p[0] for p in pts]
            ys = [p[1]["median"] for p in pts]
            lo = [p[1]["median"] - p[1]["round_min"] for p in pts]
            hi = [p[1]["round_max"] - p[1]["median"] for p in pts]
            ax.errorbar(xs, ys, yerr=[lo, hi], linestyle=ls, marker="o", capsize=3,
                        color=styles.get(driver), label=f"{driver} migrate round trip ({variant})")
    for driver in drivers[:1]:
        pts = series("memcpy", "memcpy", "copy", driver)
        if pts:
            ax.plot([p[0] for p in pts], [p[1]["median"] for p in pts], color="gray",
                    linestyle=":", marker="s", label="memcpy ceiling")
    ax.set_xscale("log", base=2)
    ticks = sorted({r["size"] for r in rows if r["test"] in ("migrate", "memcpy")})
    ax.set_xticks(ticks)
    ax.set_xticklabels([human_size(t) for t in ticks])
    ax.set_yscale("log")
    ax.set_xlabel("buffer size (bytes)")
    ax.set_ylabel("GB/s (1e9 B/s)")
    ax.set_title("dmirror MIGRATE_TO_DEV + MIGRATE_TO_SYS throughput (TCG guest)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    return True


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[2],
                                     usage=__doc__.split("\n")[0][7:])
    parser.add_argument("results", help="OUT/<flavor>/results")
    parser.add_argument("--json", default=os.path.join(repo, "out", "bench", "results.json"))
    parser.add_argument("--plot", default=os.path.join(repo, "out", "bench", "throughput.png"))
    args = parser.parse_args()

    rows, units, rounds = collect(args.results)
    if not rows:
        sys.exit(f"no '# BENCH' lines in {args.results}/*/dmirror_bench.tap")
    drivers = [d for d in ("c", "rust") if d in rounds] + \
        sorted(d for d in rounds if d not in ("c", "rust"))
    summary = summarize(rows, units)
    # The guest's CPUs as scripts/run-vm.sh recorded them (OUT/<flavor>/cpus):
    # contention figures mean nothing without them.
    cpus = ""
    try:
        with open(os.path.join(args.results, "..", "cpus"), encoding="utf-8") as f:
            cpus = f.read().strip()
    except OSError:
        pass
    print(f"guest CPUs: {cpus or 'not recorded'}")
    print_table(summary, drivers)
    print_verdict(summary)
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump({"rounds": rounds, "rows": summary, "cpus": cpus}, f, indent=1)
    print("\nrounds: " + ", ".join(f"{d}: {' '.join(r)}" for d, r in rounds.items()))
    print(f"json: {args.json}")
    if plot(summary, drivers, args.plot):
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
