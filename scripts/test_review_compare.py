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

    def test_fix_demonstrated_by_crash_of_base(self):
        # The base kernel with the head's tests Oopses (oops=panic) in the new
        # test: the streamed output ends after its RUN line, no verdict, no
        # rc. That test failed on base; the one after it did not run there.
        new = TESTS + [("zap_huge", "ok"), ("split_child", "ok")]
        runs = [self.run_("b", "base"), self.run_("h", "head", tests=new)]
        cross = self.run_("x", "base", "head", guest="crashed")
        for driver in ("c", "rust"):
            d = os.path.join(cross["out"], "normal", "results", driver)
            with open(os.path.join(d, "hmm-tests.tap"), "w", encoding="utf-8") as f:
                f.write("TAP version 13\n1..5\n")
                for i, (t, _) in enumerate(TESTS, 1):
                    f.write(f"#  RUN           {t} ...\n#            OK  {t}\nok {i} {t}\n")
                f.write("#  RUN           zap_huge ...\n")
            os.remove(os.path.join(d, "hmm-tests.rc"))
        res, text, code = self.review(runs + [cross])
        self.assertEqual(code, 0)
        classes = {(f["driver"], f["test"]): f["class"] for f in res["functional"]}
        self.assertEqual(classes[("rust", "zap_huge")], "fix demonstrated")
        self.assertEqual(classes[("rust", "split_child")], "new")
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

    def test_stress_compared_apart_and_not_rerun(self):
        # REVIEW=full: the stress boots run on the debug kernel but are a
        # group of their own; a failure there is a regression, and not a
        # suite to rerun (differing() names only the flavors' suites).
        bad = [("smoke", "ok"), ("migrate", "not ok"), ("fork", "ok")]
        runs = [self.run_("b", "base"), self.run_("h", "head", tests=bad)]
        for side, tests in (("base", TESTS), ("head", bad)):
            run = self.run_(f"s-{side}", side, tests=tests, flavor="debug", suite="dmirror_fuzz")
            run.update(flavor="debug", group="stress")
            runs.append(run)
        res, text, code = self.review(runs)
        self.assertEqual(code, 1)
        groups = {(f["flavor"], f["suite"]) for f in res["functional"] if f["class"] == "regression"}
        self.assertEqual(groups, {("normal", "hmm-tests"), ("stress", "dmirror_fuzz")})
        self.assertEqual(res["boots"]["stress"], {"base": 1, "head": 1, "cross": 0})
        self.assertEqual(rc.differing(res), {"normal": {"hmm-tests"}})
        self.assertIn("stress rust dmirror_fuzz migrate: base PASS 1/1, head FAIL 1/1", text)

    def test_one_sided_report_reruns_its_suite(self):
        # A report on base only (a race that the fix closes): the suite it
        # came during is booted again, as for a test that differs.
        marks = ["[ 1.0] hmm-run: begin driver rust", "[ 1.1] hmm-run: begin suite rust dmirror_x",
                 "[ 1.2] hmm-run: test rust dmirror_x x.munmap",
                 "[ 1.3] mm/pgtable-generic.c:56: bad pmd 0000000019e70a67(dfffffe0003ffe00)",
                 "[ 1.4] hmm-run: end suite rust dmirror_x rc=0", "[ 1.5] hmm-run: end driver rust"]
        res, _, code = self.review([self.run_("b", "base", dmesg=marks), self.run_("h", "head")])
        self.assertEqual(code, 0)
        self.assertEqual([r["class"] for r in res["reports"]], ["gone on head"])
        self.assertEqual(rc.differing(res), {"normal": {"dmirror_x"}})
        both = [self.run_("b2", "base", dmesg=marks), self.run_("h2", "head", dmesg=marks)]
        res, _, _ = self.review(both)
        self.assertEqual(rc.differing(res), {})

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
        oops = rc.signature("BUG: unable to handle page fault for address: ffff897ffde00000",
                            ["#PF: supervisor read access in kernel mode", "PGD 0 P4D 0",
                             "Oops: Oops: 0000 [#1] SMP", "RIP: 0010:copy_page+0xb/0x10"])
        self.assertEqual(oops, "BUG: unable to handle page fault for address: ... in copy_page")
        # No trace of its own: the next report's RIP is not taken.
        for nxt in ("WARNING: mm/memremap.c:158 at memremap_pages+0x1/0x2, CPU#0: t/1",
                    "BUG: unable to handle page fault for address: ffff897ffde00000"):
            self.assertEqual(rc.signature("BUG: non-zero pgtables_bytes on freeing mm: 4096",
                                          [nxt, "Oops: Oops: 0000 [#1] SMP",
                                           "RIP: 0010:memremap_pages+0x1/0x2"]),
                             "BUG: non-zero pgtables_bytes on freeing mm: 4096")
        self.assertEqual(rc.signature("BUG: Bad rss-counter state mm:00000000deadbeef type:MM_ANONPAGES val:-512"),
                         "bad rss-counter MM_ANONPAGES")
        self.assertEqual(rc.signature("INFO: task hmm-tests:123 blocked for more than 120 seconds."),
                         "hung task")
        self.assertEqual(rc.signature("WARNING: possible circular locking dependency detected"),
                         "lockdep: possible circular locking dependency")
        self.assertEqual(rc.signature("mm/pgtable-generic.c:56: bad pmd 0000000019e70a67(dfffffe0003ffe00)"),
                         "bad pmd mm/pgtable-generic.c")
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

    def test_report_names_the_test_that_ran(self):
        marks = ["[ 1.0] hmm-run: begin driver rust", "[ 1.1] hmm-run: begin suite rust hmm-tests",
                 "[ 1.2] hmm-run: test rust hmm-tests hmm.x.fork",
                 "[ 1.3] mm/pgtable-generic.c:56: bad pmd 0000000019e70a67(dfffffe0003ffe00)",
                 "[ 1.4] hmm-run: end suite rust hmm-tests rc=0", "[ 1.5] hmm-run: end driver rust"]
        runs = [self.run_("b", "base"), self.run_("h", "head", dmesg=marks)]
        res, text, code = self.review(runs)
        self.assertEqual(code, 1)
        rep = next(r for r in res["reports"] if r["signature"] == "bad pmd mm/pgtable-generic.c")
        self.assertEqual((rep["class"], rep["drivers"], rep["during"]),
                         ("regression", ["rust"], ["hmm-tests hmm.x.fork"]))
        self.assertIn("during: hmm-tests hmm.x.fork", text)

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
        # -20 % in every pair, but the same row moved 12 % between two base boots
        bench = self.bench([(b, bench_rows(migrate=0.8))] * 3, aa=[(b, bench_rows(migrate=1.12))])
        res, _, code = self.review([self.run_("b", "base"), self.run_("h", "head")], bench)
        self.assertEqual(code, 0)
        r = self.row(res, "round_trip")
        self.assertAlmostEqual(r["floor"], 0.24)
        self.assertEqual(r["verdict"], "no difference shown")
        bench = self.bench([(b, bench_rows(migrate=0.8))] * 3, aa=[(b, bench_rows(migrate=1.01))])
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

    def test_one_memcpy_outlier_does_not_set_the_floor(self):
        def rows(migrate, outlier, drift):
            r = bench_rows(migrate=migrate, memcpy=5.0 * drift)
            for n in range(4):
                r[("memcpy", f"copy{n}", "GB/s")] = [5.0 * (outlier if n == 0 else drift)] * 3
            return r
        b = rows(1.0, 1.0, 1.0)
        # Migration -40 % in both pairs; the control rows moved 2 %, one of
        # them 60 % in one pair.
        bench = self.bench([(b, rows(0.6, 1.6, 1.02)), (b, rows(0.62, 1.02, 1.02))])
        res, text, code = self.review([self.run_("b", "base"), self.run_("h", "head")], bench)
        self.assertEqual(code, 1)
        r = self.row(res, "round_trip")
        self.assertEqual(r["verdict"], "REGRESSION")
        self.assertAlmostEqual(res["bench"]["noise"]["memcpy"], 0.02)
        self.assertAlmostEqual(res["bench"]["noise"]["memcpy_max"], 0.6)
        self.assertAlmostEqual(r["floor"], rc.MIN_FLOOR)
        self.assertIn("memcpy control moved 2.0 % (median; at most 60.0 %)", " ".join(text.split()))

    def test_aa_noise_shapes_not_called_changed(self):
        # Shapes of the forced A/A review on a quiet host (identical code,
        # docs/review.md): one pair far off and the other not, both pairs a
        # little off the same way, and contention rows moving several-fold.
        def rows(migrate, fault, contention):
            r = bench_rows(migrate=migrate, fault=fault)
            r[("contention", "throughput", "GB/s")] = [contention] * 3
            return r
        b = rows(1.0, 20.0, 1.0)
        bench = self.bench([(b, rows(1.11, 20 * 1.12, 6.0)), (b, rows(3.47, 20 * 1.13, 12.7))])
        res, _, code = self.review([self.run_("b", "base"), self.run_("h", "head")], bench)
        self.assertEqual(code, 0)
        self.assertEqual(self.row(res, "round_trip")["verdict"], "no difference shown")
        self.assertEqual(self.row(res, "fault_p50")["verdict"], "no difference shown")
        cont = next(r for r in res["bench"]["rows"] if r["test"] == "contention" and r["metric"] == "throughput")
        self.assertNotIn("verdict", cont)

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

    def test_series_hunks_signature_and_blank_lines(self):
        # git format-patch ends with "-- " and the git version; a blank
        # line after the last hunk (or one a mailer stripped of its space)
        # is no change either.
        patch = os.path.join(self.dir, "t.patch")
        with open(patch, "w", encoding="utf-8") as f:
            f.write("Subject: [PATCH] x\n---\n--- a/mm/hmm.c\n+++ b/mm/hmm.c\n"
                    "@@ -10,2 +10,2 @@ static int f(void)\n a\n-b\n+c\n"
                    "-- \n2.47.3\n\n")
        hunks = rc.series_hunks([patch])
        self.assertEqual([(h["added"], h["removed"], h["lines"]) for h in hunks], [(1, 1, 2)])

    def test_long_names_fit_80_columns(self):
        long = [("device_private." + "x" * 120, "not ok")]
        res, text, code = self.review([self.run_("b", "base", tests=[(long[0][0], "ok")]),
                                       self.run_("h", "head", tests=long)])
        self.assertEqual(code, 1)
        self.assertTrue(all(len(line) <= 80 for line in text.splitlines()))

    # -- coverage of the series (gcov) ------------------------------------
    def write(self, rel, text):
        path = os.path.join(self.dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def test_cov_hunks_through_later_patches(self):
        # Patch 1 adds two lines at 11-12 (after line 10); patch 2, later,
        # adds three lines above them and removes one: they move to 13-14.
        # An mbox of two messages is two patches too.
        p1 = self.write("1.patch", "--- a/mm/x.c\n+++ b/mm/x.c\n@@ -9,3 +9,5 @@ int f(void)\n"
                        " a;\n b;\n+\tnew1();\n+\tnew2();\n c;\n")
        p2 = self.write("2.patch", "--- a/mm/x.c\n+++ b/mm/x.c\n@@ -2,3 +2,5 @@ int g(void)\n"
                        " x;\n-\told();\n+\tg1();\n+\tg2();\n+\tg3();\n y;\n"
                        "@@ -11,2 +13,2 @@ int f(void)\n-\tnew1();\n+\tnew1b();\n \tnew2();\n")
        hunks = rc.head_hunks([p1, p2])
        self.assertEqual([(h["patch"], h["line"], h["lines"]) for h in hunks],
                         [("1.patch", 14, [(None, "\tnew1();"), (14, "\tnew2();")]),
                          ("2.patch", 3, [(3, "\tg1();"), (4, "\tg2();"), (5, "\tg3();")]),
                          ("2.patch", 13, [(13, "\tnew1b();")])])
        self.assertEqual([(h["added"], h["removed"], h["function"], h["replaced"]) for h in hunks],
                         [(2, 0, "f", 1), (3, 1, "g", 0), (1, 1, "f", 0)])
        mbox = self.write("s.mbox", "From 0123456789012345678901234567890123456789 Mon Sep 17 00:00:00 2001\n"
                          + open(p1, encoding="utf-8").read()
                          + "From 1123456789012345678901234567890123456789 Mon Sep 17 00:00:00 2001\n"
                          + open(p2, encoding="utf-8").read())
        self.assertEqual([h["lines"] for h in rc.head_hunks([mbox])], [h["lines"] for h in hunks])

    def test_cov_hunk_found_where_the_patch_applied(self):
        # The head file has 3 more lines above: patch applied with an offset.
        p = self.write("o.patch", "--- a/mm/x.c\n+++ b/mm/x.c\n@@ -2,2 +2,3 @@ int f(void)\n"
                       " a;\n+\tadded();\n b;\n")
        self.write("head/mm/x.c", "1\n2\n3\n4\na;\n\tadded();\nb;\n")
        (h,) = rc.head_hunks([p], os.path.join(self.dir, "head"))
        self.assertEqual((h["lines"], h["position"]), ([(6, "\tadded();")],
                                                        "moved (patch applied with an offset)"))
        self.write("head2/mm/x.c", "a;\nb;\n")
        (h,) = rc.head_hunks([p], os.path.join(self.dir, "head2"))
        self.assertEqual((h["lines"], h["position"]), ([(None, "\tadded();")], "not found in the head tree"))

    def test_cov_classes(self):
        hunk = {"file": "mm/x.c", "lines": [(10, "a"), (11, "b"), (12, "}")]}
        counts = {"rust/hmm-tests": {10: 0, 11: 0, 30: 5}, "c/hmm-tests": {10: 4, 11: 0}}
        r = rc.classify_hunk(hunk, True, counts)
        self.assertEqual((r["class"], r["suites"], r["counted"], r["run"], r["not_run_lines"]),
                         ("ran", ["c/hmm-tests"], 2, 1, [11]))
        r = rc.classify_hunk(hunk, True, {"c/hmm-tests": {10: 0, 11: 0, 30: 5}})
        self.assertEqual((r["class"], r["suites"], r["not_run_lines"]), ("not run", [], [10, 11]))
        self.assertEqual(rc.classify_hunk(hunk, False, None)["class"], "not built in this config")
        self.assertEqual(rc.classify_hunk(hunk, True, {"c/x": {30: 1}})["class"], "nothing to count")
        self.assertEqual(rc.classify_hunk(dict(hunk, file="include/linux/x.h"), True, None)["class"],
                         "not measured")
        self.assertEqual(rc.classify_hunk(dict(hunk, file="rust/kernel/mm.rs"), True, {})["class"],
                         "not measured")
        self.assertEqual(rc.classify_hunk(dict(hunk, file="tools/testing/selftests/mm/hmm-tests.c"),
                                          False, None)["class"], "not measured")

    def test_cov_real_gcov(self):
        """A program built with the host gcc's --coverage stands in for the
        kernel object: its .gcda in a results folder as qemu/init sends it,
        read with the host gcov, mapped to a patch's hunks."""
        gcc, gcov = shutil.which("gcc"), shutil.which("gcov")
        if not gcc or not gcov:
            self.skipTest("no host gcc/gcov (make toolchain installs them)")
        import subprocess
        tree = os.path.join(self.dir, "head")
        build = os.path.join(self.dir, "build")
        src = ("int f(int x)\n{\n\tif (x > 3)\n\t\treturn x * 2;\n\treturn x;\n}\n\n"
               "int main(int argc, char **argv)\n{\n\t(void)argv;\n\treturn f(argc) == 123;\n}\n")
        self.write("head/mm/x.c", src)
        os.makedirs(os.path.join(build, "mm"))
        subprocess.run([gcc, "-O0", "-fprofile-arcs", "-ftest-coverage", "-c",
                        os.path.join(tree, "mm/x.c"), "-o", "mm/x.o"], cwd=build, check=True)
        subprocess.run([gcc, "-fprofile-arcs", "mm/x.o", "-o", "x"], cwd=build, check=True)
        subprocess.run([os.path.join(build, "x")], cwd=build, check=False)
        gcda_dir = os.path.join(self.dir, "cov", "results", "rust", "hmm-tests.gcov",
                                build.lstrip("/"), "mm")
        os.makedirs(gcda_dir)
        shutil.move(os.path.join(build, "mm", "x.gcda"), os.path.join(gcda_dir, "x.gcda"))
        # Hunk 1: lines 3-5 (the 'if' ran, 'return x * 2' did not);
        # hunk 2: line 10, no code; hunk 3: an object not built.
        patch = self.write("p.patch", "--- a/mm/x.c\n+++ b/mm/x.c\n"
                           "@@ -2,2 +2,5 @@ int f(int x)\n {\n+\tif (x > 3)\n+\t\treturn x * 2;\n"
                           "+\treturn x;\n }\n"
                           "@@ -6,2 +9,3 @@ int main(int argc, char **argv)\n {\n+\t(void)argv;\n"
                           " \treturn f(argc) == 123;\n"
                           "--- a/mm/y.c\n+++ b/mm/y.c\n@@ -1,1 +1,2 @@\n a\n+b\n")
        cov = rc.coverage_of({"build": build, "out": os.path.join(self.dir, "cov"),
                              "objects": ["mm/x.o", "mm/y.o"], "head_src": tree,
                              "guest": "finished"}, [patch])
        self.assertEqual(cov["suites"], ["rust/hmm-tests"])
        self.assertEqual(cov["objects"], [{"object": "mm/x.o", "result": "counted in 1 of 1 suites"},
                                          {"object": "mm/y.o", "result": "not built in this config"}])
        got = [(h["file"], h["line"], h["class"], h["counted"], h["run"], h["not_run_lines"])
               for h in cov["hunks"]]
        self.assertEqual(got, [("mm/x.c", 3, "ran", 3, 2, [4]),
                               ("mm/x.c", 10, "nothing to count", 0, 0, []),
                               ("mm/y.c", 2, "not built in this config", 0, 0, [])])
        text = "\n".join(rc.render_coverage(cov, []))
        self.assertTrue(all(len(line) <= 80 for line in text.splitlines()), text)
        text = " ".join(text.split())
        self.assertIn("p.patch mm/x.c:3 f (+3 -0): 2/3 lines with code run, by rust/hmm-tests; "
                      "not run: line 4", text)
        self.assertIn("p.patch mm/y.c:2 (+1 -0)", text)
        self.assertIn("Rust code is not covered by gcov", text)

    def test_cov_not_measured(self):
        res, text, code = self.review([self.run_("b", "base"), self.run_("h", "head")])
        self.assertIn("Coverage of the series\n  not measured", text)
        self.assertIn("Rust code is not covered by gcov", text)
        self.assertEqual(code, 0)

    # -- make bench's own verdict (bench/bench_report.py, shared module) -----
    def test_bench_behind_only_beyond_the_spread(self):
        def row(test, metric, unit, c, rust):
            drv = {}
            for name, (med, lo, hi) in (("c", c), ("rust", rust)):
                drv[name] = {"median": med, "round_min": lo, "round_max": hi, "rounds": 3}
            return {"test": test, "variant": "4k", "size": 2 << 20, "metric": metric,
                    "unit": unit, "drivers": drv, "rust_over_c": rust[0] / c[0]}
        slower = row("mirror", "throughput", "GB/s", (10, 9.5, 10.5), (8, 7.5, 8.5))
        inside = row("mirror", "throughput", "GB/s", (10, 9, 11), (9, 8, 10))
        faster = row("mirror", "throughput", "GB/s", (8, 7.5, 8.5), (10, 9.5, 10.5))
        late_us = row("fault", "fault_p50", "us", (10, 9.5, 10.5), (12, 11, 13))
        early_us = row("fault", "fault_p50", "us", (12, 11, 13), (10, 9.5, 10.5))
        got = rc.bench_report.behind([slower, inside, faster, late_us, early_us])
        self.assertEqual([id(r) for r in got], [id(slower), id(late_us)])
        one_round = row("mirror", "throughput", "GB/s", (10, 10, 10), (8, 8, 8))
        one_round["drivers"]["rust"]["rounds"] = 1
        self.assertIsNone(rc.bench_report.behind([slower, one_round]))


if __name__ == "__main__":
    if "--help" in sys.argv or "-h" in sys.argv:
        print(__doc__)
        sys.exit(0)
    if "--list" in sys.argv:
        for name in unittest.defaultTestLoader.getTestCaseNames(ReviewTests):
            print(name)
        sys.exit(0)
    unittest.main(argv=[sys.argv[0]] + [f"ReviewTests.{t}" for t in sys.argv[1:]], verbosity=1)
