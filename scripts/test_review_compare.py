#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Usage: scripts/test_review_compare.py [--help] [--list] [TEST...]

Host-side tests of scripts/review_compare.py (the decision core of make
review) on result folders written here in the shape scripts/run-vm.sh and
dmirror_bench leave them. scripts/test-pipeline.sh runs each test (--list
names them) as one TAP line of make check.
"""

import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import review_compare as rc  # noqa: E402

TESTS = [("smoke", "ok"), ("migrate", "ok"), ("fork", "ok")]


def write_run(root, name, tests=None, dmesg=(), guest="finished", flavor="normal",
              drivers=("c", "rust"), suite="hmm-tests", bench=None, plan=None):
    """One boot's OUT folder. tests: [(name, 'ok'|'not ok'|'skip')]."""
    tests = TESTS if tests is None else tests
    out = os.path.join(root, name)
    fdir = os.path.join(out, flavor)
    for driver in drivers:
        d = os.path.join(fdir, "results", driver)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, suite + ".tap"), "w", encoding="utf-8") as f:
            f.write(f"TAP version 13\n1..{plan or len(tests)}\n")
            for i, (t, r) in enumerate(tests, 1):
                if r == "skip":
                    f.write(f"ok {i} {t} # SKIP no device\n")
                else:
                    f.write(f"{r} {i} {t}\n")
        with open(os.path.join(d, suite + ".rc"), "w", encoding="utf-8") as f:
            f.write("rc=%d\n" % (1 if any(r == "not ok" for _, r in tests) else 0))
    for driver, rounds in (bench or {}).items():
        for n, rows in enumerate(rounds):
            d = os.path.join(fdir, "results", driver + (f".{n + 1}" if n else ""))
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "dmirror_bench.tap"), "w", encoding="utf-8") as f:
                for (test, metric, unit), samples in rows.items():
                    rec = {"driver": driver, "test": test, "variant": "4k", "size": 2097152,
                           "metric": metric, "unit": unit, "samples": samples}
                    f.write("# BENCH " + json.dumps(rec) + "\n")
                f.write("1..1\nok 1 bench\n")
            with open(os.path.join(d, "dmirror_bench.rc"), "w", encoding="utf-8") as f:
                f.write("rc=0\n")
    with open(os.path.join(fdir, "guest-status"), "w", encoding="utf-8") as f:
        f.write(guest + "\n")
    with open(os.path.join(fdir, "accelerator"), "w", encoding="utf-8") as f:
        f.write("tcg\n")
    with open(os.path.join(fdir, "dmesg.txt"), "w", encoding="utf-8") as f:
        f.write("[    0.000000] Linux version 7.3.4\n")
        for line in dmesg:
            f.write(line + "\n")
    return out


def bench_rows(migrate=1.0, fault=20.0, memcpy=5.0):
    return {("migrate", "round_trip", "GB/s"): [migrate] * 3,
            ("fault", "fault_p50", "us"): [fault] * 3,
            ("memcpy", "copy", "GB/s"): [memcpy] * 3,
            ("contention", "miss_frac", "frac"): [0.25]}


class ReviewTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def review(self, functional, bench=None, status=None, fail_inconclusive=False):
        manifest = {"flavors": ["normal"], "functional": functional, "bench": bench,
                    "status": status or {}, "meta": {"mode": "quick", "flavors": ["normal"],
                                                     "accelerator": "tcg", "rerun": "make review"}}
        res = rc.compare(manifest, [])
        text = rc.render(res, fail_inconclusive)
        for line in text.splitlines():
            self.assertLessEqual(len(line), 80, line)
        return res, text, rc.exit_code(res, fail_inconclusive)

    def run_(self, name, kernel, tests_side=None, **kw):
        return {"kernel": kernel, "tests": tests_side or kernel, "out": write_run(self.dir, name, **kw)}

    # -- the classification rule ------------------------------------------
    def test_classify_rule(self):
        P, F, S = "pass", "fail", "skip"
        self.assertIsNone(rc.classify([P, P], [P, P]))
        self.assertEqual(rc.classify([P, P, P, P], [F, F, P, F]), "regression")
        self.assertEqual(rc.classify([P, P, P, P], [F, P, P, P]), "unstable")
        self.assertEqual(rc.classify([F, F, F, F], [P, P, P, P]), "fixed")
        self.assertEqual(rc.classify([F, P, F, F], [P, P, P, P]), "fixed")
        self.assertEqual(rc.classify([F, F], [F, F]), "persistent failure")
        self.assertEqual(rc.classify([F, P], [F, F]), "unstable")
        self.assertEqual(rc.classify([], [P]), "new")
        self.assertEqual(rc.classify([], [P], [F, F, F]), "fix demonstrated")
        self.assertEqual(rc.classify([], [P], [P]), "new")
        self.assertEqual(rc.classify([], [F]), "new, fails on head")
        self.assertEqual(rc.classify([P], []), "missing")
        self.assertEqual(rc.classify([P], [S]), "missing")
        self.assertIsNone(rc.classify([S], [S]))

    # -- whole reviews on result folders ----------------------------------
    def test_identical_sides_exit_0(self):
        res, text, code = self.review([self.run_("b", "base"), self.run_("h", "head")])
        self.assertEqual(code, 0)
        self.assertTrue(text.startswith("make review: NO REGRESSION SHOWN (exit 0)"))
        self.assertEqual(res["functional"], [])

    def test_regression_after_reruns_exit_1(self):
        bad = [("smoke", "ok"), ("migrate", "not ok"), ("fork", "ok")]
        runs = [self.run_(f"b{i}", "base") for i in range(4)]
        runs += [self.run_(f"h{i}", "head", tests=bad if i != 2 else TESTS) for i in range(4)]
        res, text, code = self.review(runs)
        self.assertEqual(code, 1)
        reg = [f for f in res["functional"] if f["class"] == "regression"]
        self.assertEqual(sorted(f["driver"] for f in reg), ["c", "rust"])
        self.assertEqual(reg[0]["head"], "FAIL 3/4")
        self.assertIn("hmm-tests migrate", text.split("\n\n")[0])
        self.assertIn(rc.RULES["regression"], text)

    def test_one_of_four_is_unstable_not_regression(self):
        bad = [("smoke", "ok"), ("migrate", "not ok"), ("fork", "ok")]
        runs = [self.run_(f"b{i}", "base") for i in range(4)]
        runs += [self.run_(f"h{i}", "head", tests=bad if i == 0 else TESTS) for i in range(4)]
        res, _, code = self.review(runs)
        self.assertEqual(code, 0)
        self.assertEqual({f["class"] for f in res["functional"]}, {"unstable"})

    def test_fix_demonstrated_by_head_test_on_base(self):
        new = TESTS + [("thp_split", "ok")]
        runs = [self.run_("b", "base"), self.run_("h", "head", tests=new),
                self.run_("x", "base", "head", tests=TESTS + [("thp_split", "not ok")])]
        res, text, code = self.review(runs)
        self.assertEqual(code, 0)
        self.assertEqual({f["class"] for f in res["functional"]}, {"fix demonstrated"})
        self.assertIn("fix demonstrated", text)

    def test_suite_crash_on_head_is_regression(self):
        runs = [self.run_("b", "base"),
                self.run_("h", "head", tests=[("smoke", "ok")], plan=3, guest="crashed")]
        # the plan says 3 tests, one reported: the suite ended early
        res, _, code = self.review(runs)
        self.assertEqual(code, 1)
        tests = {f["test"] for f in res["functional"] if f["class"] in rc.FAILING_CLASSES}
        self.assertIn("<suite completed>", tests)
        self.assertIn("boot 1", tests)

    def test_base_guest_crash_cannot_complete(self):
        res, text, code = self.review([self.run_("b", "base", guest="hung"), self.run_("h", "head")])
        self.assertEqual(code, 2)
        self.assertTrue(text.startswith("make review: COULD NOT COMPLETE (exit 2)"))

    def test_rust_api_change_reported_not_missing(self):
        runs = [self.run_("b", "base"), self.run_("h", "head", drivers=("c",))]
        res, text, code = self.review(runs, status={"rust_base": "ok", "rust_head": "fail"})
        self.assertEqual(code, 0)
        self.assertEqual([f["class"] for f in res["functional"]], ["api change"])
        self.assertIn("does not build against head", text)

    def test_head_build_failure_is_regression(self):
        res, _, code = self.review([self.run_("b", "base")], status={"head_build": "fail"})
        self.assertEqual(code, 1)

    # -- kernel reports --------------------------------------------------
    def test_signature_normalised(self):
        a = rc.signature("[   12.5] WARNING: mm/migrate_device.c:812 at migrate_vma_pages+0x1a/0x200, CPU#1: t/9")
        b = rc.signature("WARNING: mm/migrate_device.c:815 at migrate_vma_pages+0x2b/0x200, CPU#0: x/77")
        self.assertEqual(a, b)
        self.assertEqual(a, "WARNING mm/migrate_device.c migrate_vma_pages")
        old = rc.signature("WARNING: CPU: 1 PID: 5 at mm/memremap.c:158 memremap_pages+0x3/0x9")
        self.assertEqual(old, "WARNING mm/memremap.c memremap_pages")
        null = rc.signature("BUG: kernel NULL pointer dereference, address: 0000000000000008",
                            ["#PF: supervisor read access", "RIP: 0010:is_device_private_page+0x0/0x20"])
        self.assertEqual(null, "BUG: kernel NULL pointer dereference in is_device_private_page")
        self.assertEqual(rc.signature("BUG: Bad rss-counter state mm:00000000deadbeef type:MM_ANONPAGES val:-512"),
                         "bad rss-counter MM_ANONPAGES")
        self.assertEqual(rc.signature("INFO: task hmm-tests:123 blocked for more than 120 seconds."),
                         "hung task")
        self.assertEqual(rc.signature("WARNING: possible circular locking dependency detected"),
                         "lockdep: possible circular locking dependency")
        self.assertIsNone(rc.signature("hmm_dmirror: loaded"))

    def test_report_only_on_head_is_regression(self):
        warn = "[ 3.1] WARNING: mm/migrate_device.c:99 at migrate_vma_pages+0x1/0x2, CPU#0: t/1"
        known = "[ 2.0] WARNING: mm/memremap.c:158 at memremap_pages+0x1/0x2, CPU#0: t/1"
        runs = [self.run_("b", "base", dmesg=[known]),
                self.run_("h", "head", dmesg=[known, warn, warn.replace(":99", ":98")])]
        res, text, code = self.review(runs)
        self.assertEqual(code, 1)
        classes = {r["signature"]: (r["class"], r["base"], r["head"]) for r in res["reports"]}
        self.assertEqual(classes["WARNING mm/migrate_device.c migrate_vma_pages"], ("regression", "0/1", "1/1"))
        self.assertEqual(classes["WARNING mm/memremap.c memremap_pages"][0], "both")
        self.assertIn(rc.RULES["report"], text)

    # -- performance -----------------------------------------------------
    def bench(self, base_head, aa=None):
        pairs = []
        for i, (b, h) in enumerate(base_head):
            pairs.append({"order": "AB" if i % 2 == 0 else "BA",
                          "base": write_run(self.dir, f"pb{i}", bench={"rust": [b]}) + "/normal/results",
                          "head": write_run(self.dir, f"ph{i}", bench={"rust": [h]}) + "/normal/results"})
        aa_runs = []
        for i, (a1, a2) in enumerate(aa or []):
            aa_runs.append({"a1": write_run(self.dir, f"a{i}", bench={"rust": [a1]}) + "/normal/results",
                            "a2": write_run(self.dir, f"a{i}b", bench={"rust": [a2]}) + "/normal/results"})
        return {"pairs": pairs, "aa": aa_runs}

    def row(self, res, metric):
        return next(r for r in res["bench"]["rows"] if r["metric"] == metric)

    def test_slow_head_is_perf_regression(self):
        b = bench_rows()
        bench = self.bench([(b, bench_rows(migrate=0.7, fault=26)), (b, bench_rows(migrate=0.72, fault=27)),
                            (b, bench_rows(migrate=0.69, fault=25))])
        res, text, code = self.review([self.run_("b", "base"), self.run_("h", "head")], bench)
        self.assertEqual(code, 1)
        self.assertEqual(self.row(res, "round_trip")["verdict"], "REGRESSION")
        self.assertEqual(self.row(res, "fault_p50")["verdict"], "REGRESSION")  # us up = worse
        self.assertIn("pairs -30% -28% -31%", text)

    def test_faster_is_improvement_not_failure(self):
        b = bench_rows()
        bench = self.bench([(b, bench_rows(migrate=1.5, fault=15))] * 3)
        res, _, code = self.review([self.run_("b", "base"), self.run_("h", "head")], bench)
        self.assertEqual(code, 0)
        self.assertEqual(self.row(res, "round_trip")["verdict"], "improvement")
        self.assertEqual(self.row(res, "fault_p50")["verdict"], "improvement")

    def test_pairs_disagree_no_difference(self):
        b = bench_rows()
        bench = self.bench([(b, bench_rows(migrate=0.7)), (b, bench_rows(migrate=1.3)),
                            (b, bench_rows(migrate=0.75))])
        res, _, code = self.review([self.run_("b", "base"), self.run_("h", "head")], bench)
        self.assertEqual(code, 0)
        self.assertEqual(self.row(res, "round_trip")["verdict"], "no difference shown")

    def test_aa_noise_raises_floor(self):
        b = bench_rows()
        # -10 % in every pair, but the same row moved 8 % between two base boots
        bench = self.bench([(b, bench_rows(migrate=0.9))] * 3, aa=[(b, bench_rows(migrate=1.08))])
        res, _, code = self.review([self.run_("b", "base"), self.run_("h", "head")], bench)
        self.assertEqual(code, 0)
        r = self.row(res, "round_trip")
        self.assertAlmostEqual(r["floor"], 0.16)
        self.assertEqual(r["verdict"], "no difference shown")
        bench = self.bench([(b, bench_rows(migrate=0.9))] * 3, aa=[(b, bench_rows(migrate=1.01))])
        res, _, code = self.review([self.run_("b", "base"), self.run_("h", "head")], bench)
        self.assertEqual(code, 1)

    def test_noisy_memcpy_is_inconclusive(self):
        b = bench_rows()
        bench = self.bench([(b, bench_rows(migrate=0.85, memcpy=6.5)), (b, bench_rows(migrate=1.1, memcpy=5))])
        res, text, code = self.review([self.run_("b", "base"), self.run_("h", "head")], bench)
        self.assertEqual(code, 0)
        self.assertEqual(self.row(res, "round_trip")["verdict"], "inconclusive")
        _, _, code = self.review([self.run_("b2", "base"), self.run_("h2", "head")], bench,
                                 fail_inconclusive=True)
        self.assertEqual(code, 3)

    def test_one_pair_cannot_decide(self):
        bench = self.bench([(bench_rows(), bench_rows(migrate=0.7))])
        res, _, code = self.review([self.run_("b", "base"), self.run_("h", "head")], bench)
        self.assertEqual(code, 0)
        self.assertEqual(self.row(res, "round_trip")["verdict"], "inconclusive")

    def test_contention_pages_moved_shown(self):
        b = bench_rows()
        bench = self.bench([(b, b), (b, b)])
        _, text, _ = self.review([self.run_("b", "base"), self.run_("h", "head")], bench)
        self.assertIn("512 requested, 75.0 % -> 75.0 % moved", text)

    def test_series_hunks(self):
        patch = os.path.join(self.dir, "s.patch")
        with open(patch, "w", encoding="utf-8") as f:
            f.write("Subject: [PATCH] x\n---\n--- a/mm/migrate_device.c\n+++ b/mm/migrate_device.c\n"
                    "@@ -282,6 +282,10 @@ static int migrate_vma_collect_pmd(pmd_t *pmdp,\n"
                    " \n+\t/* x */\n+\tif (a)\n+\t\tgoto next;\n+\n-\told();\n \n")
        hunks = rc.series_hunks([patch])
        self.assertEqual(hunks, [{"patch": "s.patch", "file": "mm/migrate_device.c", "line": 282,
                                  "lines": 10, "function": "migrate_vma_collect_pmd",
                                  "added": 4, "removed": 1}])

    def test_long_names_fit_80_columns(self):
        long = [("device_private." + "x" * 120, "not ok")]
        res, text, code = self.review([self.run_("b", "base", tests=[(long[0][0], "ok")]),
                                       self.run_("h", "head", tests=long)])
        self.assertEqual(code, 1)
        self.assertTrue(all(len(line) <= 80 for line in text.splitlines()))


if __name__ == "__main__":
    if "--help" in sys.argv or "-h" in sys.argv:
        print(__doc__)
        sys.exit(0)
    if "--list" in sys.argv:
        for name in unittest.defaultTestLoader.getTestCaseNames(ReviewTests):
            print(name)
        sys.exit(0)
    unittest.main(argv=[sys.argv[0]] + [f"ReviewTests.{t}" for t in sys.argv[1:]], verbosity=1)
