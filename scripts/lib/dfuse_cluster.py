# SPDX-License-Identifier: GPL-2.0
"""A DFUSE cluster on one machine: one dfuse-leased and N dfused "nodes",
each its own FUSE mount of one shared backend directory. With etcd=True,
an etcd (Debian's etcd-server) and `services` dfuse-leased sharing it, of
which one leads; the nodes are given every service's address.

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
ETCD = "/usr/bin/etcd"


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
                 extra_args=(), services=1, etcd=False, etcd_ttl=2):
        self.tmp = tempfile.mkdtemp(prefix="dfuse-")
        self.backend = backend or os.path.join(self.tmp, "backend")
        os.makedirs(self.backend, exist_ok=True)
        self.extra_args = list(extra_args)
        self.state = os.path.join(self.tmp, "state")
        os.mkdir(self.state)
        self.mode = mode
        self.ttl_ms = ttl_ms
        self.etcd_ttl = etcd_ttl
        self.port = free_port()
        self.service = None
        self.services = []  # with etcd: every dfuse-leased
        self.ports = [self.port] + [free_port() for _ in range(services - 1)]
        self.etcd = None
        self.procs = []
        self.mnts = []
        self.logs = []
        if mode == "lease" and etcd:
            self.start_etcd()
            for i in range(services):
                self.start_replica(i)
            self.service = self.services[0]
        elif mode == "lease":
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

    def start_etcd(self):
        client, peer = free_port(), free_port()
        self.etcd_endpoint = f"127.0.0.1:{client}"
        curl, purl = f"http://{self.etcd_endpoint}", f"http://127.0.0.1:{peer}"
        log = open(os.path.join(self.tmp, "etcd.log"), "ab")
        self.etcd = subprocess.Popen(
            [ETCD, "--name", "default", "--data-dir", os.path.join(self.tmp, "etcd"),
             "--listen-client-urls", curl, "--advertise-client-urls", curl,
             "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
             "--initial-cluster", "default=" + purl,
             "--heartbeat-interval", "50", "--election-timeout", "500"],
            stdout=log, stderr=subprocess.STDOUT)
        self.logs.append("etcd.log")
        wait_for(lambda: "ready to serve client requests" in self.tail("etcd.log", 1 << 20),
                 120, "etcd to serve")

    def start_replica(self, i):
        """dfuse-leased number i with --etcd."""
        name = f"leased{i}.log"
        log = open(os.path.join(self.tmp, name), "ab")
        p = subprocess.Popen(
            [LEASED, "--listen", f"127.0.0.1:{self.ports[i]}", "--ttl", str(self.ttl_ms / 1000),
             "--etcd", self.etcd_endpoint, "--etcd-ttl", str(self.etcd_ttl)],
            stdout=log, stderr=subprocess.STDOUT)
        if i < len(self.services):
            self.services[i] = p
        else:
            self.services.append(p)
            self.logs.append(name)
        def leads():
            if p.poll() is not None:
                raise AssertionError(f"dfuse-leased {i} exited: " + self.tail(name))
            return self.leader() is not None
        try:
            wait_for(leads, 120, "a dfuse-leased to lead")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{name}: {self.tail(name)}\netcd.log: {self.tail('etcd.log', 1500)}")

    def leader(self):
        """Index of the service that leads now (its log says so last), or None."""
        for i, p in enumerate(self.services):
            if p.poll() is not None:
                continue
            text = self.tail(f"leased{i}.log", 1 << 20)
            lead = text.rfind(f"leading on 127.0.0.1:{self.ports[i]}")
            if lead >= 0 and text.rfind("no longer leading") < lead:
                return i
        return None

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
            cmd += ["--lease-service", ",".join(f"127.0.0.1:{p}" for p in self.ports[:max(1, len(self.services))])]
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

    def tail(self, name, size=2000):
        try:
            with open(os.path.join(self.tmp, name), "rb") as f:
                return f.read()[-size:].decode(errors="replace")
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
        for svc in (self.services or [self.service]) + [self.etcd]:
            if svc and svc.poll() is None:
                svc.send_signal(signal.SIGTERM)
                try:
                    svc.wait(10)
                except subprocess.TimeoutExpired:
                    svc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)
