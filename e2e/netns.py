"""Real network partitions for the cluster tests: each broker runs in its own network namespace,
joined to a bridge in the test's namespace by a veth pair. Cutting a broker's veth isolates it
from the other brokers and from clients outside its namespace; a process started inside the
namespace (`exec_prefix`) still reaches it.

Needs root and iproute2 (`ip`); `unavailable()` says why when they are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid


def unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "network partition tests need root (network namespaces and veth pairs)"
    if shutil.which("ip") is None:
        return "network partition tests need iproute2's `ip` command (apt-get install iproute2)"
    probe = f"rnprobe{uuid.uuid4().hex[:6]}"
    cp = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if cp.returncode != 0:
        return f"cannot create a network namespace here: {cp.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    cp = subprocess.run(["ip", *args], capture_output=True, text=True)
    if cp.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {cp.stderr.strip()}")


class Network:
    """A bridge with `n` namespaces on 10.<net>.0.0/24; namespace i has address 10.<net>.0.<i+1>."""

    def __init__(self, n: int):
        tag = uuid.uuid4().hex[:5]
        self.net = 100 + int(tag, 16) % 100
        self.bridge = f"rnbr{tag}"
        self.names = [f"rn{tag}{i}" for i in range(n)]
        self.host_ends = [f"rv{tag}{i}h" for i in range(n)]
        self.created = False

    def address(self, i: int) -> str:
        return f"10.{self.net}.0.{i + 1}"

    def exec_prefix(self, i: int) -> list[str]:
        return ["ip", "netns", "exec", self.names[i]]

    def create(self) -> "Network":
        self.created = True
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"10.{self.net}.0.254/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, ns in enumerate(self.names):
            inner = f"rvi{self.bridge[4:]}{i}"
            _ip("netns", "add", ns)
            _ip("link", "add", self.host_ends[i], "type", "veth", "peer", "name", inner)
            _ip("link", "set", inner, "netns", ns)
            _ip("link", "set", self.host_ends[i], "master", self.bridge)
            _ip("link", "set", self.host_ends[i], "up")
            _ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", inner)
            _ip("-n", ns, "link", "set", inner, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        return self

    def cut(self, i: int) -> None:
        """Isolate namespace i: its link to the bridge goes down."""
        _ip("link", "set", self.host_ends[i], "down")

    def heal(self, i: int) -> None:
        _ip("link", "set", self.host_ends[i], "up")

    def destroy(self) -> None:
        if not self.created:
            return
        for i, ns in enumerate(self.names):
            subprocess.run(["ip", "link", "del", self.host_ends[i]], capture_output=True)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
