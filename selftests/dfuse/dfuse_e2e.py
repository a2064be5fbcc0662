#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""DFUSE end to end on the patched kernel.

One dfuse-leased and two or three dfused "nodes" on this machine, each its
own FUSE mount of one shared backend directory. Every check does a write on
one node and then, after the write (or fsync) has returned, a read on
another, and asserts what the read sees. The baseline check runs the same
scenario with plain writeback_cache and no leases and asserts that the read
is stale: the problem DFUSE removes is real on this kernel.

Needs build/fuse-dfuse/{dfused,leased} (make tools); skips without them.
Output is TAP.
"""
import mmap
import os
import subprocess
import sys
import threading
import time

KSFT_SKIP = 4
HERE = os.path.dirname(os.path.abspath(__file__))


def fastpath_root():
    try:
        with open(os.path.join(HERE, "fastpath-root")) as f:
            return f.read().strip()
    except OSError:
        return os.path.abspath(os.path.join(HERE, "..", ".."))


ROOT = fastpath_root()
sys.path.insert(0, os.path.join(ROOT, "scripts/lib"))
from dfuse_cluster import DFUSED, LEASED, Cluster  # noqa: E402


def write_file(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def eq(got, want, what):
    if got != want:
        g, w = repr(got), repr(want)
        raise AssertionError(f"{what}: got {g[:120]}, want {w[:120]}")


# ---- checks ---------------------------------------------------------------

def check_buffered_write_then_read(c):
    """A writes without fsync or close, B reads at once: 100 rounds."""
    fa = os.open(c.path(0, "f"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        for i in range(100):
            block = (b"%06d" % i) * 682 + b"\n" * 4  # 4096 bytes
            off = (i * 7919 % 64) * 4096
            os.pwrite(fa, block, off)
            with open(c.path(1, "f"), "rb") as fb:
                fb.seek(off)
                eq(fb.read(4096), block, f"round {i}: B reads A's block")
        bw = os.open(c.path(1, "f"), os.O_WRONLY)
        os.pwrite(bw, b"from B", 0)
        eq(os.pread(fa, 6, 0), b"from B", "A reads B's write through an fd open before it")
        os.close(bw)
    finally:
        os.close(fa)


def check_mmap_write_then_read(c):
    """A stores through a shared mapping (no msync), B reads."""
    write_file(c.path(0, "m"), b"\0" * 8192)
    fd = os.open(c.path(0, "m"), os.O_RDWR)
    try:
        m = mmap.mmap(fd, 8192, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        for i in range(20):
            stamp = b"mmap-%04d" % i
            m[4096:4096 + len(stamp)] = stamp
            with open(c.path(1, "m"), "rb") as fb:
                fb.seek(4096)
                eq(fb.read(len(stamp)), stamp, f"round {i}: B sees A's store")
            # B writes; A's mapping must fault the new data in
            write_file(c.path(1, "m"), b"B%03d" % i, "r+b")
            eq(m[0:4], b"B%03d" % i, f"round {i}: A's mapping sees B's write")
        m.close()
    finally:
        os.close(fd)


def check_appends_interleave(c):
    """A and B append 300 records each at the same time: none lost."""
    write_file(c.path(0, "log"), b"")
    n = 300
    errors = []

    def appender(node, tag):
        try:
            fd = os.open(c.path(node, "log"), os.O_WRONLY | os.O_APPEND)
            for i in range(n):
                os.write(fd, b"%s%05d\n" % (tag, i))
            os.close(fd)
        except Exception as e:  # reported below
            errors.append(e)
    ts = [threading.Thread(target=appender, args=(0, b"A")),
          threading.Thread(target=appender, args=(1, b"B"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    for node in (0, 1):
        lines = read_file(c.path(node, "log")).split(b"\n")[:-1]
        eq(len(lines), 2 * n, f"node{node}: number of records")
        for tag in (b"A", b"B"):
            mine = [l for l in lines if l.startswith(tag)]
            eq(mine, [b"%s%05d" % (tag, i) for i in range(n)],
               f"node{node}: {tag.decode()} records in order, intact")


def check_truncate_and_size(c):
    write_file(c.path(0, "t"), b"x" * 10000)
    eq(os.stat(c.path(1, "t")).st_size, 10000, "B sees the size")
    with open(c.path(0, "t"), "r+b") as f:
        f.truncate(10)
    eq(os.stat(c.path(1, "t")).st_size, 10, "B sees the truncate")
    eq(read_file(c.path(1, "t")), b"x" * 10, "B reads the truncated file")
    fd = os.open(c.path(0, "t"), os.O_WRONLY)
    os.pwrite(fd, b"end", 100)
    eq(os.stat(c.path(1, "t")).st_size, 103, "B sees A's extending write (A's fd still open)")
    eq(read_file(c.path(1, "t")), b"x" * 10 + b"\0" * 90 + b"end", "B reads the hole and the end")
    os.ftruncate(fd, 0)
    eq(read_file(c.path(1, "t")), b"", "B sees ftruncate to 0")
    os.close(fd)
    eq(os.stat(c.path(0, "t")).st_size, 0, "A still agrees")


def check_rename_unlink(c):
    write_file(c.path(0, "r1"), b"content")
    eq(read_file(c.path(1, "r1")), b"content", "B reads r1")
    os.rename(c.path(0, "r1"), c.path(0, "r2"))
    if os.path.exists(c.path(1, "r1")):
        raise AssertionError("B still sees r1 after A renamed it")
    eq(read_file(c.path(1, "r2")), b"content", "B reads r2")
    os.unlink(c.path(0, "r2"))
    if os.path.exists(c.path(1, "r2")):
        raise AssertionError("B still sees r2 after A unlinked it")
    os.mkdir(c.path(1, "d"))
    write_file(c.path(1, "d/x"), b"1")
    eq(sorted(os.listdir(c.path(0, "d"))), ["x"], "A lists B's new directory")


def check_three_nodes_counter(c):
    """Three nodes take turns incrementing a counter: a read-modify-write
    chain that loses an increment on any stale read."""
    write_file(c.path(0, "ctr"), b"0")
    for i in range(60):
        p = c.path(i % 3, "ctr")
        v = int(read_file(p))
        eq(v, i, f"step {i}: node{i % 3} reads the counter")
        fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
        os.write(fd, b"%d" % (v + 1))
        os.close(fd)
    eq(read_file(c.path(0, "ctr")), b"60", "final counter")


def check_posix_basics(c):
    m = c.mnts[0]
    p = lambda *a: os.path.join(m, *a)
    os.mkdir(p("dir"))
    write_file(p("dir/a"), b"hello")
    eq(read_file(p("dir/a")), b"hello", "create/read")
    with open(p("dir/a"), "ab") as f:
        f.write(b" world")
    eq(read_file(p("dir/a")), b"hello world", "O_APPEND")
    fd = os.open(p("dir/a"), os.O_RDWR)
    os.pwrite(fd, b"J", 0)
    os.fsync(fd)
    os.close(fd)
    eq(read_file(os.path.join(c.backend, "dir/a")), b"Jello world", "fsync reaches the backend")
    os.rename(p("dir/a"), p("dir/b"))
    eq(sorted(os.listdir(p("dir"))), ["b"], "rename/readdir")
    os.chmod(p("dir/b"), 0o600)
    eq(os.stat(p("dir/b")).st_mode & 0o777, 0o600, "chmod")
    os.truncate(p("dir/b"), 4)
    eq(read_file(p("dir/b")), b"Jell", "truncate")
    os.symlink("b", p("dir/s"))
    eq(os.readlink(p("dir/s")), "b", "symlink/readlink")
    eq(read_file(p("dir/s")), b"Jell", "read through symlink")
    os.link(p("dir/b"), p("dir/h"))
    eq(os.stat(p("dir/b")).st_nlink, 2, "hard link count")
    eq(read_file(p("dir/h")), b"Jell", "read through hard link")
    for n in ("b", "s", "h"):
        os.unlink(p("dir", n))
    os.rmdir(p("dir"))
    if os.path.exists(p("dir")):
        raise AssertionError("rmdir: directory still there")
    try:
        os.rmdir(p("nonexistent"))
        raise AssertionError("rmdir of a missing directory succeeded")
    except FileNotFoundError:
        pass


# ---- set-user-ID and set-group-ID bits ------------------------------------

OTHER = 65534  # nobody:nogroup


def _run_as(uid, gid, groups, fn):
    """Runs fn() in a child with these credentials; raises if it failed."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            if uid != 0:
                os.setgroups(groups)
                os.setgid(gid)
                os.setuid(uid)
            fn()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise AssertionError(f"the operation as {uid}:{gid} failed")


def _write(p):
    fd = os.open(p, os.O_WRONLY)
    os.write(fd, b"x")
    os.close(fd)


def _ftruncate(p):
    fd = os.open(p, os.O_WRONLY)
    os.ftruncate(fd, 1)
    os.close(fd)


def _open_trunc(p):
    os.close(os.open(p, os.O_WRONLY | os.O_TRUNC))


# (what, mode, owner, group, caller uid, gid, groups, operation)
SETID_CASES = [c for mode in (0o6777, 0o6767) for c in (
    ("write by another user", mode, 0, 0, OTHER, OTHER, [], _write),
    ("ftruncate by another user", mode, 0, 0, OTHER, OTHER, [], _ftruncate),
    ("truncate by another user", mode, 0, 0, OTHER, OTHER, [], lambda p: os.truncate(p, 2)),
    ("open O_TRUNC by another user", mode, 0, 0, OTHER, OTHER, [], _open_trunc),
    ("write by a member of the group", mode, 0, OTHER, OTHER, OTHER, [], _write),
    ("write by a supplementary member", mode, 0, 65532, OTHER, 65533, [65532], _write),
    ("write by root", mode, 65533, 65533, 0, 0, [], _write),
    ("chgrp by the owner", mode, OTHER, OTHER, OTHER, OTHER, [], lambda p: os.chown(p, -1, OTHER)),
    ("chown by root", mode, 65533, 65533, 0, 0, [], lambda p: os.chown(p, -1, OTHER)),
)]


def check_setid_bits(c):
    """Writes, truncations and chowns by other users clear the set-user-ID
    and set-group-ID bits as on a local directory; the other node sees the
    new mode."""
    local = os.path.join(c.tmp, "local")
    os.mkdir(local)
    for d in (c.tmp, local, c.backend):
        os.chmod(d, 0o777 if d != c.tmp else 0o755)
    for i, (what, mode, owner, group, uid, gid, groups, op) in enumerate(SETID_CASES):
        what = f"{what}, mode {mode:o}, owner {owner}:{group}, caller {uid}:{gid}"
        got = []
        for p in (os.path.join(local, f"s{i}"), c.path(0, f"s{i}")):
            write_file(p, b"data")
            os.chown(p, owner, group)
            os.chmod(p, mode)
            _run_as(uid, gid, groups, lambda: op(p))
            got.append(os.stat(p).st_mode & 0o7777)
        want = got[0]
        eq(oct(got[1]), oct(want), f"{what}: mode on node0 (local {got[0]:o})")
        eq(oct(os.stat(c.path(1, f"s{i}")).st_mode & 0o7777), oct(want), f"{what}: mode on node1")
        eq(oct(os.stat(os.path.join(c.backend, f"s{i}")).st_mode & 0o7777), oct(want),
           f"{what}: mode in the backend")


def check_setid_bits_writeback(_):
    """check_setid_bits with plain writeback_cache (dfused clears the bits
    under FUSE_HANDLE_KILLPRIV_V2)."""
    c = Cluster(nodes=2, mode="writeback")
    try:
        check_setid_bits(c)
    finally:
        c.stop()


def check_baseline_is_stale(_):
    """Plain writeback_cache, no leases: B reads stale data (the bug)."""
    c = Cluster(nodes=2, mode="writeback")
    try:
        write_file(c.path(0, "f"), b"old contents")
        eq(read_file(c.path(1, "f")), b"old contents", "B reads the first version")
        fd = os.open(c.path(0, "f"), os.O_WRONLY)
        os.pwrite(fd, b"NEW", 0)
        got = read_file(c.path(1, "f"))
        os.close(fd)
        if got != b"old contents":
            raise AssertionError(f"expected a stale read without leases, got {got!r}")
    finally:
        c.stop()


def check_fpinfo_reports_leases(_):
    """fpinfo's "dfuse leases" row comes from a probe: on this kernel it says
    the kernel offers lease mode at FUSE_INIT (on the host it says not)."""
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools/fpinfo/tests/check_fpinfo.py"),
                        os.path.join(ROOT, "build/tools/fpinfo/fpinfo"), "--expect", "offered"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError((r.stdout + r.stderr).strip())


def check_killed_writer(_):
    """kill -9 of the node holding the write lease: B proceeds after the
    TTL and finds what A had fsync'ed."""
    c = Cluster(nodes=2, mode="lease", ttl_ms=2000)
    try:
        fd = os.open(c.path(0, "k"), os.O_RDWR | os.O_CREAT, 0o644)
        os.write(fd, b"synced;")
        os.fsync(fd)
        os.write(fd, b"not synced")
        c.procs[0].kill()
        c.procs[0].wait()
        t0 = time.monotonic()
        got = read_file(c.path(1, "k"))
        waited = time.monotonic() - t0
        if not got.startswith(b"synced;"):
            raise AssertionError(f"fsync'ed data lost: {got!r}")
        if waited > 15:
            raise AssertionError(f"B waited {waited:.1f} s for a 2 s TTL")
        print(f"# B proceeded after {waited:.2f} s (TTL 2 s), read {got!r}")
        try:
            os.close(fd)
        except OSError:
            pass
    finally:
        c.stop()


def check_service_restart(_):
    """Restart dfuse-leased in the middle of a two-node ping-pong: no lost
    write, no stale read."""
    c = Cluster(nodes=2, mode="lease", ttl_ms=2000)
    try:
        write_file(c.path(0, "pp"), b"0")
        for i in range(40):
            if i == 15:
                c.service.kill()
                c.service.wait()
                c.start_service()
            w, r = c.path(i % 2, "pp"), c.path((i + 1) % 2, "pp")
            fd = os.open(w, os.O_WRONLY | os.O_TRUNC)
            os.write(fd, b"%d" % (i + 1))
            os.close(fd)
            eq(read_file(r), b"%d" % (i + 1), f"step {i}: other node reads the write")
    finally:
        c.stop()


def check_service_failover(_):
    """Two dfuse-leased sharing etcd; kill -9 of the leading one in the
    middle of a two-node ping-pong: the standby takes over, no lost write,
    no stale read; the step that waited for it gives the time without
    service."""
    from dfuse_cluster import ETCD
    if not os.access(ETCD, os.X_OK):
        print(f"# {ETCD} missing (scripts/install-deps.sh: etcd-server): failover not checked")
        return
    c = Cluster(nodes=2, mode="lease", ttl_ms=5000, services=2, etcd=True, etcd_ttl=2)
    try:
        write_file(c.path(0, "fo"), b"0")
        steps = []
        for i in range(40):
            if i == 15:
                old = c.leader()
                c.services[old].kill()
                c.services[old].wait()
            t0 = time.monotonic()
            w, r = c.path(i % 2, "fo"), c.path((i + 1) % 2, "fo")
            fd = os.open(w, os.O_WRONLY | os.O_TRUNC)
            os.write(fd, b"%d" % (i + 1))
            os.close(fd)
            eq(read_file(r), b"%d" % (i + 1), f"step {i}: other node reads the write")
            steps.append(time.monotonic() - t0)
        new = c.leader()
        if new is None or new == old:
            raise AssertionError("no new leader after the kill")
        before = sorted(steps[:15])[7]
        print(f"# failover: the step after kill -9 of the leader took {steps[15]:.2f} s "
              f"(median step before {before * 1000:.0f} ms; etcd lease TTL 2 s, node TTL 5 s)")
        if steps[15] > 15:
            raise AssertionError(f"the failover step took {steps[15]:.1f} s")
    except AssertionError as e:
        logs = "\n".join(f"{name}: {c.tail(name, 1200)}" for name in c.logs)
        raise AssertionError(f"{e}\n{logs}")
    finally:
        c.stop()


SHARED = [check_buffered_write_then_read, check_mmap_write_then_read,
          check_appends_interleave, check_truncate_and_size,
          check_rename_unlink, check_posix_basics, check_setid_bits]
OWN = [check_baseline_is_stale, check_killed_writer, check_service_restart, check_service_failover,
       check_fpinfo_reports_leases, check_setid_bits_writeback]


def main():
    for b in (DFUSED, LEASED):
        if not os.access(b, os.X_OK):
            print(f"# {b} not built: run make tools")
            return KSFT_SKIP
    print("TAP version 13")
    total = len(SHARED) + 1 + len(OWN)
    print(f"1..{total}")
    n = failed = 0

    def run(fn, c):
        nonlocal n, failed
        n += 1
        name = fn.__name__[len("check_"):]
        t0 = time.monotonic()
        try:
            fn(c)
            print(f"ok {n} {name} # {time.monotonic() - t0:.1f} s")
        except Exception as e:  # a failed check, reported in TAP
            failed += 1
            for line in str(e).splitlines() or [type(e).__name__]:
                print(f"# {line}")
            if c is not None:
                for log in c.logs:
                    print(f"# {log}: " + c.tail(log)[-400:].replace("\n", "\n# "))
            print(f"not ok {n} {name}")
        sys.stdout.flush()

    c = Cluster(nodes=2)
    try:
        for fn in SHARED:
            run(fn, c)
    finally:
        c.stop()
    c3 = Cluster(nodes=3)
    try:
        run(check_three_nodes_counter, c3)
    finally:
        c3.stop()
    for fn in OWN:
        run(fn, None)
    print(f"# {n - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
