#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Summarise a `bpfkv bench --json` report: XRP against pread, per file and thread count."""
import json
import sys


def main(path):
    rows = json.load(open(path))["results"]
    groups = {}
    for r in rows:
        groups.setdefault((r["file"], int(r["threads"])), {})[r["backend"]] = r
    for (f, threads), by in sorted(groups.items()):
        if "pread" not in by or "xrp" not in by:
            continue
        p, x = by["pread"], by["xrp"]
        print(f"{f} ({int(x['layers'])} layers, {threads} thread(s)): XRP {x['ops_per_s'] / p['ops_per_s']:.2f}x "
              f"the GETs/s of pread, p99 {x['p99_us']:.0f} us vs {p['p99_us']:.0f} us, "
              f"{x['syscalls_per_op']:.0f} syscall per GET instead of {p['syscalls_per_op']:.0f}")


if __name__ == "__main__":
    main(sys.argv[1])
