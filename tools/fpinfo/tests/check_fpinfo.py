#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Checks that fpinfo's "dfuse leases" row is a probe, not a constant: run
as root, it must say "offered at FUSE_INIT" on the fastpath kernel (the VM)
and "not offered at FUSE_INIT" on any other (the host).  Run on both (ctest
on the host, selftests/dfuse in the VM), a fixed string fails one of them.

    check_fpinfo.py FPINFO [--expect offered|absent]
"""
import argparse
import json
import os
import subprocess
import sys


def rows(fpinfo):
    r = subprocess.run([fpinfo, "--json", "-"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise SystemExit(f"fpinfo failed ({r.returncode}): {r.stderr.strip()}")
    doc = json.loads(r.stdout)
    return doc, {row["item"]: str(row["value"]) for row in doc["items"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fpinfo")
    ap.add_argument("--expect", choices=["offered", "absent"],
                    help="default: offered on a fastpath kernel, absent elsewhere")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("check_fpinfo: SKIP: the lease probe mounts a FUSE file system (needs root)")
        return 0
    doc, r = rows(a.fpinfo)
    want = a.expect or ("offered" if doc["fastpath_kernel"] else "absent")
    got = r.get("dfuse leases", "")
    prefix = "offered at FUSE_INIT" if want == "offered" else "not offered at FUSE_INIT"
    if not got.startswith(prefix):
        print(f"check_fpinfo: FAIL: kernel '{r.get('kernel')}': dfuse leases row is '{got}', "
              f"expected it to start with '{prefix}'")
        return 1
    print(f"check_fpinfo: ok: kernel '{r.get('kernel')}': dfuse leases: {got}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
