#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""The host half of scripts/bench-urdma: reads the raw logs the VM left,
writes the JSON report and draws latency and bandwidth against message size
(one line per pair) with gnuplot.

  urdma_bench.py RAW_DIR --json FILE --plots PREFIX

For perftest (rxe) the client's text table is parsed; for urdma-perf its
--json record (role client, source local), else its perftest-style table.
"""
import argparse
import datetime
import json
import math
import os
import shutil
import statistics
import sys

import bench_report

LAT_COLS = ["t_min_usec", "t_max_usec", "t_typical_usec", "t_avg_usec", "t_stdev_usec", "p99_usec", "p99_9_usec"]
BW_COLS = ["bw_peak_MBps", "bw_average_MBps", "msg_rate_mpps"]
PAIR_ORDER = ["rxe-rxe", "urdma-rxe", "rxe-urdma", "urdma-urdma", "urdma-memif", "io-floor"]


def perftest_row(path):
    """The last result row of a perftest-style table, as a list of numbers."""
    rows, inside = [], False
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if "#bytes" in line:
                    inside = True
                    continue
                if inside and set(line.strip()) == {"-"}:
                    inside = False
                    continue
                parts = line.split()
                if inside and len(parts) >= 5 and parts[0].isdigit() and parts[1].isdigit():
                    try:
                        rows.append([float(x) for x in parts])
                    except ValueError:
                        pass
    except OSError:
        return None
    return rows[-1] if rows else None


def from_text(test, row):
    if row is None:
        return None
    if test.endswith("_lat"):
        if len(row) < 9:
            return None
        return dict(zip(LAT_COLS, row[2:9]))
    return dict(zip(BW_COLS, row[2:5]))


def from_urdma_json(test, path):
    try:
        with open(path) as f:
            recs = json.load(f)
    except (OSError, ValueError):
        return None
    if isinstance(recs, dict):
        recs = [recs]
    mine = [r for r in recs if r.get("role") == "client" and r.get("source", "local") == "local"]
    if not mine:
        return None
    r = mine[-1]
    if test.endswith("_lat"):
        return {k: r.get(k) for k in LAT_COLS}
    unit = r.get("bw_unit", "MB/sec")
    scale = 1e9 / 8 / 2**20 if unit.startswith("Gb") else 1.0
    return {"bw_peak_MBps": r.get("bw_peak", 0) * scale, "bw_average_MBps": r.get("bw_average", 0) * scale,
            "msg_rate_mpps": r.get("msg_rate_mpps")}


def finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def load(raw):
    """Every attempt, as the VM recorded it, with its figures."""
    attempts = []
    with open(os.path.join(raw, "runs.tsv")) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            rec = dict(zip(header, line.rstrip("\n").split("\t")))
            test, size = rec["test"], int(rec["size"])
            run = {"pair": rec["pair"], "test": test, "size": size, "iterations": int(rec["iters"]),
                   "rep": int(rec.get("rep", 1)), "attempt": int(rec.get("attempt", 1)),
                   "exit": int(rec["rc"]), "seconds": int(rec["seconds"]), "log": rec["client_log"]}
            cnt = rec.get("counters", "-")
            run["rxe_error_counters"] = {} if cnt in ("-", "") else \
                {k: int(v) for k, v in (c.split("=") for c in cnt.split(","))}
            figs = None
            if rec.get("client_json", "-") not in ("-", ""):
                figs = from_urdma_json(test, os.path.join(raw, rec["client_json"]))
                run["source"] = "urdma-iolat --json" if rec["pair"] == "io-floor" else "urdma-perf --json"
            if figs is None:
                figs = from_text(test, perftest_row(os.path.join(raw, rec["client_log"])))
                run["source"] = "perftest table"
            if figs:
                run.update(figs)
            key = "t_typical_usec" if test.endswith("_lat") else "bw_average_MBps"
            run["ok"] = run["exit"] == 0 and figs is not None and finite(run.get(key))
            attempts.append(run)
    return attempts


def results_of(attempts):
    """Per pair, test and size: the median over the repeats that worked."""
    groups = {}
    for a in attempts:
        groups.setdefault((a["pair"], a["test"], a["size"]), []).append(a)
    out = []
    for (pair, test, size), runs in groups.items():
        ok = [r for r in runs if r["ok"]]
        reps = sorted({r["rep"] for r in runs})
        res = {"pair": pair, "test": test, "size": size, "repeats": len(reps), "repeats_ok": len(ok),
               "iterations": runs[0]["iterations"], "ok": bool(ok)}
        cols = LAT_COLS if test.endswith("_lat") else BW_COLS
        for c in cols:
            vals = [r[c] for r in ok if finite(r.get(c))]
            if vals:
                res[c] = statistics.median(vals)
        key = "t_typical_usec" if test.endswith("_lat") else "bw_average_MBps"
        res["samples"] = [r.get(key) for r in ok]
        if res["samples"]:
            # under TCG on a shared host the figures are bimodal (a 1 ms timer
            # tick when a vCPU was busy elsewhere): the best repeat shows the
            # uncontended value, the median what a run is likely to get
            res["best"] = min(res["samples"]) if test.endswith("_lat") else max(res["samples"])
        out.append(res)
    order = {p: i for i, p in enumerate(PAIR_ORDER)}
    out.sort(key=lambda r: (r["test"], r["size"], order.get(r["pair"], 9)))
    return out


def meta_of(raw):
    meta = {}
    try:
        with open(os.path.join(raw, "meta.txt")) as f:
            for line in f:
                k, _, v = line.strip().partition(" ")
                meta[k] = v
    except OSError:
        pass
    meta["date_utc"] = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    return meta


def value(run, test):
    if not run or not run.get("ok"):
        return None
    v = run.get("t_typical_usec") if test.endswith("_lat") else run.get("bw_average_MBps")
    return v if finite(v) else None


def summary(runs):
    """Ratios against rxe-rxe, per test and size, and the two targets."""
    idx = {(r["pair"], r["test"], r["size"]): r for r in runs}
    ratios = []
    for (pair, test, size), r in sorted(idx.items()):
        if pair == "rxe-rxe":
            continue
        base = idx.get(("rxe-rxe", test, size))
        v, b = value(r, test), value(base, test)
        if v is not None and b:
            ratios.append({"pair": pair, "test": test, "size": size, "value": v, "rxe_rxe": b, "ratio": v / b})
    targets = []
    # urdma-urdma over the veth (af_packet), and over a shared-memory link
    # (memif, no kernel on the path), each judged on its own
    for pair in ("urdma-urdma", "urdma-memif"):
        for test in ("write_lat", "read_lat", "send_lat", "atomic_lat"):
            small = [x for x in ratios if x["pair"] == pair and x["test"] == test and x["size"] <= 64]
            if small:
                worst = max(x["ratio"] for x in small)
                targets.append({"what": f"{pair} {test} <= 64 B, latency vs rxe-rxe", "ratio": worst,
                                "target": "<= 0.5", "met": worst <= 0.5})
        for test in ("write_bw", "read_bw", "send_bw"):
            x = [x for x in ratios if x["pair"] == pair and x["test"] == test and x["size"] == 65536]
            if x:
                targets.append({"what": f"{pair} {test} 64 KiB, bandwidth vs rxe-rxe", "ratio": x[0]["ratio"],
                                "target": ">= 1.0", "met": x[0]["ratio"] >= 1.0})
    return ratios, targets


def plot(runs, prefix):
    """PREFIX-latency.png and PREFIX-bandwidth.png: scripts/lib/bench_report.py
    draws them (make bench's report draws the same figures from the JSON)."""
    if not shutil.which("gnuplot"):
        print("urdma_bench: no gnuplot: no plots (install gnuplot-nox; scripts/install-deps.sh)", file=sys.stderr)
        return []
    try:
        return [f for f, _ in bench_report.plot_urdma(runs, prefix, "urdma vs rxe in the VM")]
    except bench_report.BenchError as e:
        print(f"urdma_bench: {e}", file=sys.stderr)
        return []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--json", required=True)
    ap.add_argument("--plots", required=True, help="path prefix of the PNG files")
    a = ap.parse_args()
    attempts = load(a.raw)
    runs = results_of(attempts)
    ratios, targets = summary(runs)
    plots = plot(runs, a.plots)
    report = {"meta": meta_of(a.raw), "results": runs, "ratios_vs_rxe_rxe": ratios, "targets": targets,
              "plots": plots, "attempts": attempts, "raw_logs": os.path.abspath(a.raw)}
    with open(a.json, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")

    # the terminal table: one line per test and size, one column per pair
    pairs = [p for p in PAIR_ORDER if any(r["pair"] == p for r in runs)]
    idx = {(r["pair"], r["test"], r["size"]): r for r in runs}
    tests = []
    for r in runs:
        if r["test"] not in tests:
            tests.append(r["test"])
    for test in tests:
        unit = "t_typical us" if test.endswith("_lat") else "BW avg MiB/s"
        print(f"\n{test} ({unit}; median of the repeats, the best in brackets)")
        print(f"{'bytes':>8} " + " ".join(f"{p:>21}" for p in pairs))
        for size in sorted({r["size"] for r in runs if r["test"] == test}):
            cells = []
            for p in pairs:
                r = idx.get((p, test, size))
                v = value(r, test) if r else None
                best = f"({r['best']:.2f})" if v is not None and r.get("repeats", 1) > 1 else ""
                cells.append(f"{v:10.2f} {best:>10}" if v is not None else f"{'FAILED' if r else '-':>21}")
            print(f"{size:>8} " + " ".join(cells))
    failed = [r for r in runs if not r["ok"]]
    if failed:
        print(f"\n{len(failed)} measurement(s) failed: " +
              ", ".join(f"{r['pair']} {r['test']} {r['size']}" for r in failed))
    retried = [a for a in attempts if not a["ok"]]
    if retried:
        print(f"{len(retried)} attempt(s) failed (and were retried): " +
              ", ".join(f"{a['pair']} {a['test']} {a['size']} rep {a['rep']}" for a in retried))
    for t in targets:
        print(f"target: {t['what']}: {t['ratio']:.2f}x (want {t['target']}): {'met' if t['met'] else 'NOT met'}")
    print(f"\nJSON: {a.json}" + (f"; plots: {', '.join(plots)}" if plots else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
