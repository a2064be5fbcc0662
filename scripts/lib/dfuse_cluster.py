# SPDX-License-Identifier: GPL-2.0
"""A DFUSE cluster on one machine: one dfuse-leased and N dfused "nodes",
each its own FUSE mount of one shared backend directory.

Used by selftests/dfuse/dfuse_e2e.py, scripts/bench-dfuse and make demo.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DFUSED = os.path.join(ROOT, "build/fuse-dfuse/dfused/dfused")
LEASED = os.path.join(ROOT, "build/fuse-dfuse/leased/dfuse-leased")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def wait_for(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Cluster:
    """A lease service (unless mode is writeback) and N dfused nodes."""

    def __init__(self, nodes=2, mode="lease", ttl_ms=2000, backend=None,
                 extra_args=()):
        self.tmp = tempfile.mkdtemp(prefix="dfuse-")
        self.backend = backend or os.path.join(self.tmp, "backend")
        os.makedirs(self.backend, exist_ok=True)
        self.extra_args = list(extra_args)
        self.state = os.path.join(self.tmp, "state")
        os.mkdir(self.state)
        self.mode = mode
        self.ttl_ms = ttl_ms
        self.port = free_port()
        self.service = None
        self.procs = []
        self.mnts = []
        self.logs = []
        if mode == "lease":
            self.start_service()
        for i in range(nodes):
            self.start_node(i)

    def start_service(self):
        log = open(os.path.join(self.tmp, "leased.log"), "ab")
        self.service = subprocess.Popen(
            [LEASED, "--listen", f"127.0.0.1:{self.port}",
             "--ttl", str(self.ttl_ms / 1000), "--state-dir", self.state],
            stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: self._port_open(), 60, "dfuse-leased to listen")

    def _port_open(self):
        if self.service.poll() is not None:
            raise AssertionError("dfuse-leased exited: " + self.tail("leased.log"))
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def start_node(self, i):
        mnt = os.path.join(self.tmp, f"node{i}")
        os.makedirs(mnt, exist_ok=True)
        name = f"node{i}.log"
        log = open(os.path.join(self.tmp, name), "ab")
        cmd = [DFUSED, "--backend", self.backend, "--mountpoint", mnt,
               "--mode", self.mode, "--node-id", f"node{i}", "--foreground"]
        if self.mode == "lease":
            cmd += ["--lease-service", f"127.0.0.1:{self.port}"]
        cmd += self.extra_args
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        if i < len(self.procs):
            self.procs[i], self.mnts[i] = p, mnt
        else:
            self.procs.append(p)
            self.mnts.append(mnt)
            self.logs.append(name)

        def up():
            if p.poll() is not None:
                raise AssertionError(f"dfused node{i} exited: " + self.tail(name))
            return mounted(mnt)
        wait_for(up, 60, f"node{i} to mount")

    def tail(self, name):
        try:
            with open(os.path.join(self.tmp, name), "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return "(no log)"

    def path(self, node, name):
        return os.path.join(self.mnts[node], name)

    def stop(self):
        for p, mnt in zip(self.procs, self.mnts):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            if mounted(mnt):
                subprocess.run(["umount", "-l", mnt], check=False)
        if self.service and self.service.poll() is None:
            self.service.send_signal(signal.SIGTERM)
            try:
                self.service.wait(10)
            except subprocess.TimeoutExpired:
                self.service.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)
