#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""scripts/bench-report against the sample JSON in scripts/tests/bench-samples
(real output of scripts/bench's short runs, with the NAME.run.json it wrote):
every figure report.md shows must exist and be a valid PNG (signature, IHDR
with a non-zero size) or well-formed SVG, each system must have its figures
and each figure's caption must name its command and machine; a malformed or
wrong JSON file must fail with an error naming that file.  Registered with
ctest (CMakeLists.txt: bench_report); needs gnuplot (scripts/install-deps.sh).
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = os.path.join(ROOT, "scripts", "tests", "bench-samples")
REPORT = os.path.join(ROOT, "scripts", "bench-report")
SYSTEMS = ["bpfkv", "dfuse", "rubble", "urdma", "volt"]
# The figures each system's section must show.
EXPECTED = {"bpfkv": ["bpfkv.png"], "dfuse": ["dfuse.png"], "rubble": ["rubble.png"],
            "urdma": ["urdma-latency.png", "urdma-bandwidth.png"],
            "volt": ["volt-goodput.png", "volt-p99.png"]}


def image_problem(path):
    """None if path is a valid PNG or SVG, else what is wrong with it."""
    if not os.path.isfile(path):
        return f"{path}: missing"
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".svg"):
        try:
            root = ET.fromstring(data)
        except ET.ParseError as e:
            return f"{path}: not well-formed SVG ({e})"
        return None if root.tag.endswith("svg") else f"{path}: root element is {root.tag}, not svg"
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return f"{path}: no PNG signature"
    if len(data) < 33 or data[12:16] != b"IHDR":
        return f"{path}: no IHDR chunk first"
    w, h = struct.unpack(">II", data[16:24])
    if w == 0 or h == 0:
        return f"{path}: IHDR size {w}x{h}"
    return None


def figures(report_md):
    """{system section title: [image paths]} and every image path in order."""
    with open(report_md) as f:
        text = f.read()
    per, cur = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            cur = line[3:].strip()
            per[cur] = []
        for m in re.finditer(r"!\[[^\]]*\]\(([^)\s]+)\)", line):
            per.setdefault(cur, []).append(m.group(1))
    return text, per


def check_report(outdir):
    """Every problem with OUTDIR/report.md's figures (empty list = good)."""
    text, per = figures(os.path.join(outdir, "report.md"))
    problems = []
    for sec, imgs in per.items():
        for img in imgs:
            p = image_problem(os.path.join(outdir, img))
            if p:
                problems.append(p)
    shown = [os.path.basename(i) for imgs in per.values() for i in imgs]
    for sys_name, names in EXPECTED.items():
        for n in names:
            if n not in shown:
                problems.append(f"report.md shows no {n} ({sys_name})")
    return problems


def run_report(jsondir, outdir):
    return subprocess.run([sys.executable, REPORT, jsondir, "--out", outdir], capture_output=True, text=True,
                          timeout=300)


class BenchReport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("gnuplot"):
            raise SystemExit("gnuplot is not installed: run scripts/install-deps.sh (package gnuplot-nox)")
        for n in SYSTEMS:
            for suffix in (".json", ".run.json"):
                assert os.path.isfile(os.path.join(SAMPLES, n + suffix)), f"sample {n}{suffix} missing"

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bench-report-test-")
        self.json = os.path.join(self.tmp, "json")
        shutil.copytree(SAMPLES, self.json)
        self.out = os.path.join(self.tmp, "out")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def test_every_figure_exists_and_is_an_image(self):
        r = run_report(self.json, self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(check_report(self.out), [])
        text, per = figures(os.path.join(self.out, "report.md"))
        self.assertNotIn("FAILED", text)
        self.assertNotIn("Not run", text)
        # each figure's caption names the command and the machine it came from
        captions = [ln for ln in text.splitlines() if ln.startswith("*Figure ")]
        self.assertEqual(len(captions), sum(len(v) for v in EXPECTED.values()))
        for n in SYSTEMS:
            with open(os.path.join(SAMPLES, n + ".run.json")) as f:
                run = json.load(f)
            mine = [c for c in captions if f"[`{n}.json`]" in c]
            self.assertEqual(len(mine), len(EXPECTED[n]), n)
            for c in mine:
                self.assertIn(run["command"], c)
                self.assertIn(run["host"]["hostname"], c)
                self.assertIn(run["host"]["cpu"], c)
                self.assertIn(run["started_utc"], c)
                if run.get("vm"):
                    self.assertIn(run["vm"]["kernel"], c)

    def test_checker_fails_on_a_missing_or_broken_figure(self):
        self.assertEqual(run_report(self.json, self.out).returncode, 0)
        os.unlink(os.path.join(self.out, "dfuse.png"))
        self.assertIn(f"{os.path.join(self.out, 'dfuse.png')}: missing", check_report(self.out))
        with open(os.path.join(self.out, "volt-p99.png"), "r+b") as f:
            f.truncate(20)
        self.assertTrue(any("volt-p99.png: no IHDR" in p for p in check_report(self.out)))

    def test_malformed_json_names_the_file(self):
        path = os.path.join(self.json, "dfuse.json")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text[: len(text) // 2])
        r = run_report(self.json, self.out)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(path, r.stderr)
        self.assertIn("not valid JSON", r.stderr)
        # the others are still drawn, and the report says what went wrong
        text, per = figures(os.path.join(self.out, "report.md"))
        self.assertIn(path, text)
        self.assertEqual([p for p in check_report(self.out) if "dfuse" not in p], [])

    def test_wrong_json_names_the_file_and_the_key(self):
        path = os.path.join(self.json, "volt.json")
        with open(path, "w") as f:
            json.dump({"tool": "volt-bench"}, f)
        r = run_report(self.json, self.out)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"{path}: not volt-bench JSON: no 'runs'", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
