#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""The figures of `make bench` and the report that shows them.

Reads the benchmarks' own JSON from one directory (bpfkv.json, dfuse.json,
rubble.json, urdma.json, volt.json) and, next to each, NAME.run.json, which
scripts/bench writes: the command, the machine, the date, the wall time and
the error if the run failed.  Draws one PNG per figure with gnuplot and
writes report.md.  Every system's plotting lives here: scripts/plot-volt and
scripts/lib/urdma_bench.py call plot_volt() and plot_urdma().

    bench_report.py [--out DIR] [JSON_DIR]        (scripts/bench-report)
"""
import argparse
import datetime
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import textwrap

PROG = "bench-report"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def shown(path):
    """path relative to the repository when it is inside it."""
    path = os.path.abspath(path)
    return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


class BenchError(Exception):
    """An input or a plot that cannot be used; the message names the file."""


# ---------------------------------------------------------------- helpers

def load_json(path, name=None):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise BenchError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
                         f"rerun its benchmark ({'scripts/bench --only ' + name if name else 'what wrote it'}) "
                         "or remove the file") from None
    except OSError as e:
        raise BenchError(f"{path}: cannot read it ({e.strerror})") from None


def need(doc, path, what, *keys):
    """doc[keys[0]][keys[1]]..., or a BenchError naming the file and the key."""
    cur = doc
    for k in keys:
        try:
            cur = cur[k]
        except (KeyError, IndexError, TypeError):
            raise BenchError(f"{path}: not {what} JSON: no '{'.'.join(str(x) for x in keys)}'") from None
    return cur


def num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def gp_str(s):
    """A gnuplot double-quoted string."""
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def png_size(path):
    """(width, height) of a PNG file, or None if it is not one."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def gnuplot(script, out):
    """Runs one gnuplot script that writes the PNG `out`; checks the result."""
    gp = shutil.which("gnuplot")
    if not gp:
        raise BenchError("gnuplot is not installed: run scripts/install-deps.sh (package gnuplot-nox)")
    if os.path.exists(out):
        os.unlink(out)
    r = subprocess.run([gp], input=script, text=True, capture_output=True)
    size = png_size(out)
    if r.returncode != 0 or not size or 0 in size:
        raise BenchError(f"gnuplot did not draw {out}: {r.stderr.strip() or 'no image written'}")
    return out


def datablock(name, rows):
    """A gnuplot inline data block; strings are quoted, missing values are '?'."""
    lines = [f"${name} << EOD"]
    for row in rows:
        cells = []
        for v in row:
            if v is None:
                cells.append("?")
            elif isinstance(v, str):
                cells.append(gp_str(v))
            else:
                cells.append(repr(float(v)))
        lines.append(" ".join(cells))
    lines.append("EOD")
    return "\n".join(lines)


def wrap(title, width):
    """title broken into lines that fit an image `width` pixels wide."""
    cols = max(40, width // 7)
    return "\n".join("\n".join(textwrap.wrap(line, cols, break_on_hyphens=False) or [""])
                     for line in title.split("\n"))


def head(out, width, height, title, panels):
    """Terminal, output and a multiplot of `panels` side by side under `title`."""
    return "\n".join([
        f"set terminal pngcairo noenhanced size {width},{height} font ',10'",
        f"set output {gp_str(out)}",
        "set grid",
        "set key top left",
        f"set multiplot layout 1,{panels} title {gp_str(wrap(title, width))} font ',10'",
    ])


def histogram_series(block, first_col, titles):
    """Clustered-histogram series: columns first_col, first_col+1, ... of
    datablock `block`, one per title, the x labels from column 1."""
    return ", ".join(f"${block} using {first_col + i}" + (":xtic(1)" if i == 0 else "") + f" title {gp_str(t)}"
                     for i, t in enumerate(titles))


def histogram_style():
    return "\n".join([
        "set style data histograms",
        "set style histogram clustered gap 1",
        "set style fill solid 0.85 border -1",
        "set boxwidth 0.9",
        "set xtics rotate by -30 scale 0",
        "set yrange [0:*]",
        "set key horizontal outside top center",
    ])


# ---------------------------------------------------------------- machine

def duration(s):
    if not num(s):
        return "?"
    s = int(round(s))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def machine_text(run):
    """'VM (...) on host H (CPU, N CPUs, Linux K)' from a NAME.run.json."""
    h = run.get("host") or {}
    host = (f"host `{h.get('hostname', '?')}` ({h.get('cpu', '?')}, {h.get('nproc', '?')} CPUs, "
            f"Linux {h.get('kernel', '?')})")
    vm = run.get("vm")
    if vm:
        return (f"the VM (scripts/vng: QEMU {vm.get('accel', '?')}, {vm.get('cpus', '?')} vCPUs, "
                f"{vm.get('memory', '?')}, kernel {vm.get('kernel', '?')}) on {host}")
    return host


def provenance(run, name):
    """One line for a figure's caption and title: command, machine, date."""
    if not run:
        return (f"command and machine not recorded (no {name}.run.json: this JSON was not made by "
                "scripts/bench)")
    return (f"`{run.get('command', '?')}` on {machine_text(run)}, {run.get('started_utc', '?')}, "
            f"took {duration(run.get('seconds'))}")


def plain(text):
    """Markdown -> the plain text of a figure title."""
    return text.replace("`", "")


# ---------------------------------------------------------------- BPF-KV

def render_bpfkv(doc, path, outdir, prov):
    rows = need(doc, path, "bpfkv bench", "results")
    if not rows:
        raise BenchError(f"{path}: bpfkv bench JSON with no results")
    series = {}
    threads = sorted({need(r, path, "bpfkv bench", "threads") for r in rows})
    for r in rows:
        for k in ("layers", "backend", "ops_per_s", "p99_us"):
            need(r, path, "bpfkv bench", k)
        label = r["backend"] + (f", {int(r['threads'])} threads" if len(threads) > 1 else "")
        series.setdefault(label, []).append((r["layers"], r["ops_per_s"], r["p99_us"] / 1000.0))
    blocks, plot_t, plot_p = [], [], []
    for i, (label, pts) in enumerate(series.items()):
        blocks.append(datablock(f"s{i}", sorted(pts)))
        plot_t.append(f"$s{i} using 1:2 with linespoints lw 2 pt 7 title {gp_str(label)}")
        plot_p.append(f"$s{i} using 1:3 with linespoints lw 2 pt 7 title {gp_str(label)}")
    out = os.path.join(outdir, "bpfkv.png")
    title = ("BPF-KV GET: pread vs io_uring vs XRP against tree depth "
             f"({int(doc.get('ops', 0))} GETs per point)\n" + plain(prov))
    gnuplot("\n".join(blocks + [
        head(out, 1300, 560, title, 2),
        "set xlabel 'tree depth (layers)'", "set xtics 1",
        "set title 'throughput'", "set ylabel 'GET/s'", "set yrange [0:*]",
        "plot " + ", ".join(plot_t),
        "set title 'p99 latency'", "set ylabel 'p99 (ms)'",
        "plot " + ", ".join(plot_p),
        "unset multiplot"]) + "\n", out)
    table = ["| layers | " + " | ".join(f"{s} GET/s" for s in series) + " | " +
             " | ".join(f"{s} p99 ms" for s in series) + " |",
             "|---" * (1 + 2 * len(series)) + "|"]
    for layers in sorted({p[0] for pts in series.values() for p in pts}):
        get = [next((p for p in series[s] if p[0] == layers), None) for s in series]
        table.append(f"| {int(layers)} | " + " | ".join(f"{p[1]:.0f}" if p else "-" for p in get) + " | " +
                     " | ".join(f"{p[2]:.2f}" if p else "-" for p in get) + " |")
    if doc.get("skipped"):
        table.append("\nSkipped: " + "; ".join(json.dumps(s) for s in doc["skipped"]))
    return [(out, "BPF-KV GET throughput and p99 latency against tree depth, per back-end")], "\n".join(table)


# ---------------------------------------------------------------- DFUSE

DFUSE_MODES = ["write-through", "writeback", "dfuse"]
DFUSE_LABEL = {"write-through": "FUSE write-through", "writeback": "FUSE writeback",
               "dfuse": "DFUSE (writeback + leases)"}


def render_dfuse(doc, path, outdir, prov):
    results = need(doc, path, "bench-dfuse", "results")
    for m in DFUSE_MODES:
        need(results, path, "bench-dfuse", m)
    jobs = list(need(results, path, "bench-dfuse", "dfuse").keys())
    rows = []
    for job in jobs:
        row = [job]
        for key in ("mib_s", "lat_p99_us"):
            for m in DFUSE_MODES:
                v = need(results, path, "bench-dfuse", m, job, key)
                row.append(v if num(v) and v > 0 else None)
        rows.append(row)
    out = os.path.join(outdir, "dfuse.png")
    title = (f"DFUSE: FUSE write-through vs writeback vs DFUSE leases per fio job "
             f"({doc.get('size_mib', '?')} MiB file, median of {doc.get('repeat', '?')})\n" + plain(prov))
    labels = [DFUSE_LABEL[m] for m in DFUSE_MODES]
    gnuplot("\n".join([
        datablock("d", rows),
        head(out, 1400, 600, title, 2),
        histogram_style(),
        "set title 'throughput'", "set ylabel 'MiB/s'",
        "plot " + histogram_series("d", 2, labels),
        "set title 'p99 latency (log scale)'", "set ylabel 'p99 latency (us)'",
        "set logscale y", "set yrange [*:*]",
        "plot " + histogram_series("d", 5, labels),
        "unset multiplot"]) + "\n", out)
    table = ["| job | " + " | ".join(f"{m} MiB/s" for m in DFUSE_MODES) + " | DFUSE / write-through |",
             "|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r[3] / r[1]:.2f}x" if r[1] and r[3] else "-"
        table.append(f"| {r[0]} | " + " | ".join(f"{v:.1f}" if v else "-" for v in r[1:4]) + f" | {ratio} |")
    return [(out, "DFUSE throughput and p99 latency per fio job, three caching modes")], "\n".join(table)


# ---------------------------------------------------------------- RubbleDB

RUBBLE_MODES = ["baseline", "rubble"]


def render_rubble(doc, path, outdir, prov):
    nodes = need(doc, path, "rubble-bench", "nodes")
    phases = need(doc, path, "rubble-bench", "phases")
    names, cpu = [], {}
    for n in nodes:
        mode, node = need(n, path, "rubble-bench", "mode"), need(n, path, "rubble-bench", "node")
        if node not in names:
            names.append(node)
        cpu[(mode, node)] = (need(n, path, "rubble-bench", "cpu load s"), need(n, path, "rubble-bench", "cpu s"))
    pnames, tput = [], {}
    for p in phases:
        mode, ph = need(p, path, "rubble-bench", "mode"), need(p, path, "rubble-bench", "phase")
        if ph not in pnames:
            pnames.append(ph)
        tput[(mode, ph)] = need(p, path, "rubble-bench", "kops/s")
    modes = [m for m in RUBBLE_MODES if any(k[0] == m for k in cpu)]
    if not modes:
        raise BenchError(f"{path}: rubble-bench JSON with no nodes")
    cpu_rows = [[n] + [cpu.get((m, n), (None, None))[1] for m in modes] for n in names]
    tput_rows = [[p] + [tput.get((m, p)) for m in modes] for p in pnames]
    c = doc.get("config", {})
    out = os.path.join(outdir, "rubble.png")
    title = (f"RubbleDB: baseline vs rubble mode, {c.get('records', '?')} records loaded "
             f"(batch {c.get('batch', '?')}), {c.get('ops', '?')} ops per workload phase\n" + plain(prov))
    gnuplot("\n".join([
        datablock("c", cpu_rows), datablock("t", tput_rows),
        head(out, 1300, 560, title, 2),
        histogram_style(),
        "set title 'CPU per node, whole run (load + workloads)'", "set ylabel 'CPU seconds'",
        "plot " + histogram_series("c", 2, modes),
        "set title 'throughput per phase'", "set ylabel 'kops/s'",
        "plot " + histogram_series("t", 2, modes),
        "unset multiplot"]) + "\n", out)
    s = doc.get("summary", {})
    lines = ["| mode | " + " | ".join(f"{n} CPU s" for n in names) + " | " +
             " | ".join(f"{p} kops/s" for p in pnames) + " |",
             "|---" * (1 + len(names) + len(pnames)) + "|"]
    for m in modes:
        lines.append(f"| {m} | " + " | ".join(f"{cpu.get((m, n), (0, 0))[1]:.2f}" for n in names) + " | " +
                     " | ".join(f"{tput.get((m, p)) or 0:.2f}" for p in pnames) + " |")
    if num(s.get("total_cpu_reduction_pct")):
        lines.append(f"\nTotal CPU rubble vs baseline {-s['total_cpu_reduction_pct']:+.1f}%, replica CPU "
                     f"{s.get('replica_cpu_ratio', 0):.2f}x lower; load phase alone "
                     f"{-s.get('load_cpu_reduction_pct', 0):+.1f}%, replicas "
                     f"{s.get('load_replica_cpu_ratio', 0):.2f}x lower.")
    return [(out, "RubbleDB CPU per node and throughput per phase, baseline vs rubble mode")], "\n".join(lines)


# ---------------------------------------------------------------- urdma

URDMA_PAIRS = ["rxe-rxe", "urdma-rxe", "rxe-urdma", "urdma-urdma", "urdma-memif", "io-floor"]


def urdma_value(run, test):
    """The figure of one urdma/rxe measurement: t_typical (us) or BW average."""
    if not run or not run.get("ok"):
        return None
    v = run.get("t_typical_usec") if test.endswith("_lat") else run.get("bw_average_MBps")
    return v if num(v) and v > 0 else None


def plot_urdma(runs, prefix, title, subtitle=""):
    """urdma vs rxe against message size: PREFIX-latency.png and
    PREFIX-bandwidth.png, one panel per test, one line per pair.  Returns
    [(file, kind)] of the figures it drew (none if no test of a kind ran)."""
    made = []
    for kind, tests, ylabel in (("latency", ["write_lat", "read_lat", "send_lat"], "t_typical (us)"),
                                ("bandwidth", ["write_bw", "read_bw", "send_bw"], "average bandwidth (MiB/s)")):
        blocks, panels = [], []
        for test in tests:
            lines = []
            for pair in URDMA_PAIRS:
                pts = sorted((r["size"], urdma_value(r, test)) for r in runs
                             if r.get("pair") == pair and r.get("test") == test and urdma_value(r, test))
                if not pts:
                    continue
                name = f"{pair}_{test}".replace("-", "_")
                blocks.append(datablock(name, pts))
                lines.append(f"${name} using 1:2 with linespoints lw 2 pt 7 title {gp_str(pair)}")
            if lines:
                panels.append((test, lines))
        if not panels:
            continue
        extra = ""
        if kind == "latency":
            at = [(r["pair"], urdma_value(r, "atomic_lat")) for r in runs
                  if r.get("test") == "atomic_lat" and urdma_value(r, "atomic_lat")]
            if at:
                extra = "\natomic_lat (8 B): " + ", ".join(f"{p} {v:.1f} us" for p, v in at)
        out = f"{prefix}-{kind}.png"
        script = blocks + [
            head(out, max(560 * len(panels), 900), 500,
                 f"{title}: {kind} against message size{extra}" + (f"\n{subtitle}" if subtitle else ""),
                 len(panels)),
            "set logscale x 2", "set logscale y", "set xlabel 'message size (bytes)'",
            "set xtics ('2' 2, '16' 16, '128' 128, '1K' 1024, '8K' 8192, '64K' 65536, '1M' 1048576)",
            f"set ylabel {gp_str(ylabel)}"]
        for test, lines in panels:
            script += [f"set title {gp_str(test)}", "plot " + ", ".join(lines)]
        script.append("unset multiplot")
        gnuplot("\n".join(script) + "\n", out)
        made.append((out, kind))
    return made


def render_urdma(doc, path, outdir, prov):
    runs = need(doc, path, "bench-urdma", "results")
    for r in runs:
        for k in ("pair", "test", "size"):
            need(r, path, "bench-urdma", k)
    made = plot_urdma(runs, os.path.join(outdir, "urdma"), "urdma vs rxe", plain(prov))
    if not made:
        raise BenchError(f"{path}: no successful urdma or rxe measurement to draw")
    def pairs(suffix):
        return ", ".join(p for p in URDMA_PAIRS
                         if any(r.get("pair") == p and str(r.get("test")).endswith(suffix) for r in runs))
    captions = {"latency": f"urdma latency against message size: {pairs('_lat')}",
                "bandwidth": f"urdma bandwidth against message size: {pairs('_bw')}"}
    text = []
    for t in doc.get("targets", []):
        text.append(f"- target {t.get('what')}: {t.get('ratio', 0):.2f}x (want {t.get('target')}): "
                    f"{'met' if t.get('met') else 'not met'}")
    failed = [r for r in runs if not r.get("ok")]
    if failed:
        text.append(f"- {len(failed)} measurement(s) failed: " +
                    ", ".join(f"{r['pair']} {r['test']} {r['size']}" for r in failed))
    return [(f, captions[k]) for f, k in made], "\n".join(text)


# ---------------------------------------------------------------- VOLT

def plot_volt(doc, path, prefix, subtitle=""):
    """Goodput and p99 acquire latency against clients, one line per lock
    kind: PREFIX-goodput.png and PREFIX-p99.png."""
    runs = need(doc, path, "volt-bench", "runs")
    kinds = []
    for r in runs:
        for k in ("kind", "clients", "goodput"):
            need(r, path, "volt-bench", k)
        need(r, path, "volt-bench", "latency", "p99_ns")
        if r["kind"] not in kinds:
            kinds.append(r["kind"])
    blocks = []
    for i, k in enumerate(kinds):
        pts = sorted((r["clients"], r["goodput"], r["latency"]["p99_ns"] / 1000.0)
                     for r in runs if r["kind"] == k and not r.get("error"))
        blocks.append(datablock(f"k{i}", pts))
    if not any("EOD" != b.splitlines()[1] for b in blocks):
        raise BenchError(f"{path}: every volt-bench run failed: nothing to draw")
    c = doc.get("config", {})
    desc = (f"{c.get('locks')} lock(s), {c.get('distribution')}, {round(100 * c.get('shared_fraction', 0))}% shared, "
            f"{c.get('data_size')} B guarded, target {c.get('target_backend')}")
    made = []
    for what, col, ylabel, logy in (("goodput", 2, "acquisitions / s", False),
                                    ("p99", 3, "p99 acquire latency (us)", True)):
        out = f"{prefix}-{what}.png"
        title = f"volt-bench: {'goodput' if what == 'goodput' else 'p99 acquire latency'} against clients, {desc}"
        gnuplot("\n".join(blocks + [
            f"set terminal pngcairo noenhanced size 900,600 font ',10'",
            f"set output {gp_str(out)}",
            "set grid", "set key top left",
            f"set title {gp_str(wrap(title + (chr(10) + subtitle if subtitle else ''), 900))}",
            "set xlabel 'clients'", "set logscale x 2",
            f"set ylabel {gp_str(ylabel)}",
            "set logscale y" if logy else "set yrange [0:*]",
            "plot " + ", ".join(f"$k{i} using 1:{col} with linespoints lw 2 pt 7 title {gp_str(k)}"
                                for i, k in enumerate(kinds))]) + "\n", out)
        made.append(out)
    return made, kinds


def render_volt(doc, path, outdir, prov):
    (goodput, p99), kinds = plot_volt(doc, path, os.path.join(outdir, "volt"), plain(prov))
    runs = doc["runs"]
    clients = sorted({r["clients"] for r in runs})
    table = ["| kind | " + " | ".join(f"{c} clients acq/s (p99 ms)" for c in clients) + " |",
             "|---" * (1 + len(clients)) + "|"]
    for k in kinds:
        cells = []
        for c in clients:
            r = next((r for r in runs if r["kind"] == k and r["clients"] == c), None)
            if not r:
                cells.append("-")
            elif r.get("error"):
                cells.append("error")
            else:
                cells.append(f"{r['goodput']:.0f} ({r['latency']['p99_ns'] / 1e6:.2f})")
        table.append(f"| {k} | " + " | ".join(cells) + " |")
    return [(goodput, "VOLT goodput against clients, per lock kind"),
            (p99, "VOLT p99 acquire latency against clients, per lock kind")], "\n".join(table)


# ---------------------------------------------------------------- report

SYSTEMS = [
    ("bpfkv", "BPF-KV (XRP)", render_bpfkv),
    ("dfuse", "DFUSE", render_dfuse),
    ("rubble", "RubbleDB", render_rubble),
    ("urdma", "urdma", render_urdma),
    ("volt", "VOLT", render_volt),
]


def report(jsondir, outdir, only=None):
    """Draws every figure and writes OUTDIR/report.md.  Returns the list of
    errors (each names its file); the report records them too."""
    os.makedirs(outdir, exist_ok=True)
    errors, sections, summary, nfig, runs = [], [], [], 0, []
    for name, title, render in SYSTEMS:
        if only and name not in only:
            continue
        jpath = os.path.join(jsondir, name + ".json")
        rpath = os.path.join(jsondir, name + ".run.json")
        run = None
        if os.path.exists(rpath):
            try:
                run = load_json(rpath, name)
            except BenchError as e:
                errors.append(str(e))
                run = None
        if run:
            runs.append(run)
        sec = [f"## {title}", ""]
        status = "ok"
        if run and run.get("rc"):
            status = "FAILED"
            sec += [f"**The run failed** (exit {run.get('rc')}): `{run.get('command', '?')}` on "
                    f"{machine_text(run)}, {run.get('started_utc', '?')}.", "",
                    "```", (run.get("error") or "").rstrip(), "```", ""]
            if run.get("log"):
                sec += [f"Full log: `{run['log']}`.", ""]
        elif not os.path.exists(jpath):
            status = "not run"
            sec += [f"Not run: no `{name}.json` in `{shown(jsondir)}` (`scripts/bench --only {name}` makes it).", ""]
        if os.path.exists(jpath) and status != "FAILED":
            try:
                doc = load_json(jpath, name)
                prov = provenance(run, name)
                figs, text = render(doc, jpath, outdir, prov)
                for f, cap in figs:
                    nfig += 1
                    rel = os.path.relpath(f, outdir)
                    sec += [f"![{cap}]({rel})", "",
                            f"*Figure {nfig}: {cap}.* From {prov}. Data: "
                            f"[`{name}.json`]({os.path.relpath(jpath, outdir)}).", ""]
                if text:
                    sec += [text, ""]
            except BenchError as e:
                status = "FAILED"
                errors.append(str(e))
                sec += ["**Cannot draw this system's figures:**", "", "```", str(e), "```", ""]
        when = duration(run.get("seconds")) if run and "seconds" in run else "-"
        cmd = "`" + run["command"].replace("|", "\\|") + "`" if run and run.get("command") else "-"
        summary.append(f"| {title} | {status} | {when} | {cmd} |")
        sections.append("\n".join(sec))
    mode = ""
    if runs:
        modes = sorted({"FULL=1 (long runs)" if r.get("full") else "short" for r in runs})
        mode = f"Mode: {', '.join(modes)}. "
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    md = ["# fastpath benchmarks", "",
          f"{mode}Report drawn {now} by `scripts/bench-report` from the JSON in `{shown(jsondir)}`; "
          "each figure names the command and machine its data came from.", "",
          "| system | status | wall time | command |", "|---|---|---|---|"] + summary + [""]
    if errors:
        md += ["Errors:", ""] + [f"- {e}" for e in errors] + [""]
    md += sections
    with open(os.path.join(outdir, "report.md.tmp"), "w") as f:
        f.write("\n".join(md).rstrip() + "\n")
    os.replace(os.path.join(outdir, "report.md.tmp"), os.path.join(outdir, "report.md"))
    return errors


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog=PROG, description="Draw the figures of `make bench` and write report.md from the benchmarks' JSON.")
    ap.add_argument("jsondir", nargs="?", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "bench"),
        help="directory with bpfkv.json, dfuse.json, rubble.json, urdma.json, volt.json and their .run.json "
        "(default: build/bench)")
    ap.add_argument("--out", help="where report.md and the figures go (default: the JSON directory)")
    ap.add_argument("--only", help="comma-separated subset of: " + ",".join(n for n, _, _ in SYSTEMS))
    a = ap.parse_args(argv)
    jsondir = os.path.normpath(a.jsondir)
    if not os.path.isdir(jsondir):
        print(f"{PROG}: error: {jsondir} is not a directory (run scripts/bench first)", file=sys.stderr)
        return 2
    only = None
    if a.only:
        only = [x.strip() for x in a.only.split(",") if x.strip()]
        bad = [x for x in only if x not in [n for n, _, _ in SYSTEMS]]
        if bad:
            print(f"{PROG}: error: unknown system(s) {', '.join(bad)}; known: "
                  + ", ".join(n for n, _, _ in SYSTEMS), file=sys.stderr)
            return 2
    outdir = os.path.normpath(a.out or jsondir)
    errors = report(jsondir, outdir, only)
    for e in errors:
        print(f"{PROG}: error: {e}", file=sys.stderr)
    print(f"{PROG}: wrote {os.path.join(outdir, 'report.md')}" + (f" ({len(errors)} error(s))" if errors else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
