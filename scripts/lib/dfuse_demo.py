#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""make demo, DFUSE part (runs in the VM): two nodes mount one backend; node A
writes without fsync, node B reads at once. With plain writeback_cache B reads
stale data; with DFUSE leases it reads A's write."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dfuse_cluster import Cluster  # noqa: E402


def scenario(mode):
    c = Cluster(nodes=2, mode=mode)
    try:
        with open(c.path(0, "greeting"), "wb") as f:
            f.write(b"hello from A, version 1")
        fd = os.open(c.path(0, "greeting"), os.O_WRONLY)
        os.pwrite(fd, b"HELLO", 0)  # no fsync, file still open on A
        with open(c.path(1, "greeting"), "rb") as f:
            seen = f.read().decode()
        os.close(fd)
        return seen
    finally:
        c.stop()


for label, mode in (("writeback_cache, no leases", "writeback"),
                    ("DFUSE leases", "lease")):
    seen = scenario(mode)
    verdict = "fresh" if seen.startswith("HELLO") else "STALE"
    print(f"  {label:28s} A wrote 'HELLO...'; B reads '{seen}'  -> {verdict}")
