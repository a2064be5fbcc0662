#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""DFUSE benchmark driver (runs inside the VM; see scripts/bench-dfuse).

Same files, same fio jobs, three ways of running a FUSE file system that
several nodes share:

  write-through  dfused --mode writethrough: no data cache (direct_io);
                 consistent across nodes, every 4 KiB write a round trip
  writeback      dfused --mode writeback: plain writeback_cache, no leases;
                 fast but inconsistent across nodes (the ceiling)
  dfuse          dfused --mode lease: writeback_cache under kernel leases

Jobs (fio, psync, 4 KiB blocks): seqwrite and randwrite of --size MiB with
a final fsync; seqread and randread of the file just written (same node),
cold (fio drops the file's cached pages first, its default) and warm (it
does not: what a cache that stays valid across opens gives); and "shared":
node0 writes random blocks while node1 reads random blocks of the same
file, for --shared-seconds. The modes take turns, --repeat times, and the
report gives the median of each figure: the machine is noisy.
"""
import statistics
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dfuse_cluster import Cluster  # noqa: E402

MODES = [("write-through", "writethrough"), ("writeback", "writeback"),
         ("dfuse", "lease")]


def fio(name, filename, rw, size_mb, extra=(), runtime=None):
    cmd = ["fio", "--name=" + name, "--filename=" + filename, "--rw=" + rw,
           "--bs=4k", "--ioengine=psync", "--size=%dm" % size_mb,
           "--output-format=json", "--randrepeat=1", "--norandommap"]
    if runtime:
        cmd += ["--time_based", "--runtime=%d" % runtime]
    cmd += list(extra)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def result(proc, direction):
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"fio failed ({proc.returncode})")
    job = json.loads(out)["jobs"][0][direction]
    clat = job["clat_ns"]
    return {
        "mib_s": job["bw_bytes"] / 2**20,
        "iops": job["iops"],
        "lat_mean_us": clat["mean"] / 1000,
        "lat_p99_us": clat.get("percentile", {}).get("99.000000", 0) / 1000,
    }


def run_mode(mode, size_mb, shared_s, log):
    c = Cluster(nodes=2, mode=mode)
    res = {}
    try:
        f0 = c.path(0, "data")
        for job, rw, d in (("seqwrite", "write", "write"),
                           ("randwrite", "randwrite", "write")):
            log(f"{mode}: {job}")
            res[job] = result(fio(job, f0, rw, size_mb, ["--end_fsync=1"]), d)
        for job, rw, extra in (
                ("seqread", "read", []), ("randread", "randread", []),
                ("seqread-warm", "read", ["--invalidate=0"]),
                ("randread-warm", "randread", ["--invalidate=0"])):
            log(f"{mode}: {job}")
            res[job] = result(fio(job, f0, rw, size_mb, extra), "read")
        log(f"{mode}: shared ({shared_s} s)")
        w = fio("sharedw", f0, "randwrite", size_mb, runtime=shared_s)
        r = fio("sharedr", c.path(1, "data"), "randread", size_mb,
                runtime=shared_s)
        res["shared-write"] = result(w, "write")
        res["shared-read"] = result(r, "read")
    finally:
        c.stop()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=32, help="file size, MiB")
    ap.add_argument("--shared-seconds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds; each figure is the median over them")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()

    t0 = time.monotonic()

    def log(msg):
        print(f"[{time.monotonic() - t0:6.1f} s] {msg}", file=sys.stderr,
              flush=True)

    rounds = {label: [] for label, _ in MODES}
    for i in range(a.repeat):
        for label, mode in MODES:
            log(f"round {i + 1}/{a.repeat}")
            rounds[label].append(run_mode(mode, a.size, a.shared_seconds,
                                          log))
    jobs = list(rounds["dfuse"][0].keys())
    results = {label: {job: {k: statistics.median(r[job][k] for r in rs)
                             for k in rs[0][job]}
                       for job in jobs}
               for label, rs in rounds.items()}
    print(f"# fio psync 4 KiB, {a.size} MiB file, backend on tmpfs, "
          "2 nodes = 2 mounts in one VM (QEMU TCG); "
          f"median of {a.repeat} rounds")
    print("%-13s %-14s %9s %9s %10s %10s" %
          ("job", "mode", "MiB/s", "IOPS", "mean us", "p99 us"))
    for job in jobs:
        for label, _ in MODES:
            r = results[label][job]
            print("%-13s %-14s %9.1f %9.0f %10.1f %10.1f" %
                  (job, label, r["mib_s"], r["iops"], r["lat_mean_us"],
                   r["lat_p99_us"]))
    print()
    print("%-13s %16s %16s %16s" % ("job", "dfuse/wthrough", "lat dfuse/wt",
                                    "dfuse/writeback"))
    ratios = {}
    for job in jobs:
        d, wt, wb = (results[k][job] for k in ("dfuse", "write-through",
                                                "writeback"))
        ratios[job] = {
            "throughput_vs_writethrough": d["mib_s"] / wt["mib_s"],
            "latency_vs_writethrough": d["lat_mean_us"] / wt["lat_mean_us"],
            "throughput_vs_writeback": d["mib_s"] / wb["mib_s"],
        }
        r = ratios[job]
        print("%-13s %15.2fx %15.2fx %15.2fx" %
              (job, r["throughput_vs_writethrough"],
               r["latency_vs_writethrough"], r["throughput_vs_writeback"]))
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump({"size_mib": a.size, "repeat": a.repeat,
                       "results": results, "ratios": ratios,
                       "rounds": rounds}, f, indent=2)
        os.replace(a.json + ".tmp", a.json)


if __name__ == "__main__":
    main()
