#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""make demo, DFUSE part (runs in the VM): two nodes mount one backend.  Node
A writes version 1, node B reads it (and now has it in its page cache), A
overwrites the start without fsync, B reads again.  With plain
writeback_cache B's kernel still serves its cached version 1 (and A's write
may still sit in A's cache): a stale read.  With DFUSE leases B's read takes
a read lease, which revokes A's write lease first: A's kernel flushes, B's
cached copy was dropped when A took its write lease, and B reads A's write.
The scenario is the one selftests/dfuse checks (baseline_is_stale)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dfuse_cluster import Cluster  # noqa: E402

V1 = b"hello from A, version 1"


def scenario(mode):
    c = Cluster(nodes=2, mode=mode)
    try:
        with open(c.path(0, "greeting"), "wb") as f:
            f.write(V1)
        with open(c.path(1, "greeting"), "rb") as f:
            first = f.read()
        fd = os.open(c.path(0, "greeting"), os.O_WRONLY)
        os.pwrite(fd, b"HELLO", 0)  # no fsync, the file still open on A
        with open(c.path(1, "greeting"), "rb") as f:
            second = f.read()
        os.close(fd)
        return first.decode(), second.decode()
    finally:
        c.stop()


print("  A writes 'hello ... version 1'; B reads it; A overwrites the start with 'HELLO' (no fsync); B reads again")
for label, mode in (("writeback_cache, no leases", "writeback"),
                    ("DFUSE leases", "lease")):
    first, second = scenario(mode)
    verdict = "fresh" if second.startswith("HELLO") else "STALE"
    print(f"  {label:28s} B's second read: '{second}'  -> {verdict}")
print("  why: without leases B's kernel serves the page it cached at the first read and A's write may still"
      " sit in A's cache; with leases B's read revokes A's write lease (A flushes) and B's stale page was"
      " dropped when A took that lease")
