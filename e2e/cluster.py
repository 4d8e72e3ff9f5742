"""A multi-broker cluster of real `runnel-broker` processes for the replication scenarios.

Broker 0 starts a new cluster (no seeds); brokers 1.. join through broker 0's metadata
(controller) listener. Every broker binds port 0 the first time; restarts reuse the Kafka and
controller ports they bound first, because the quorum remembers its members' addresses.
"""

from __future__ import annotations

import re
from pathlib import Path

from confluent_kafka.admin import AdminClient

from conftest import Broker
from helpers import wait_until

CONTROLLER_RE = re.compile(r"controller=(\S+):(\d+)")


class ClusterBroker(Broker):
    """A broker that knows its node id, its controller listener and the seeds it joins through."""

    def __init__(self, node_id: int, data_dir: Path, log_dir: Path, seeds: list[str],
                 extra_args: list[str] | None = None, env: dict[str, str] | None = None,
                 bind_host: str = "127.0.0.1", prefix: list[str] | None = None):
        super().__init__(data_dir, log_dir, extra_args, env)
        self.node_id = node_id
        self.seeds = list(seeds)
        self.controller_port: int | None = None
        self.bind_host = bind_host
        # e.g. `ip netns exec NS`: the broker runs inside a network namespace.
        self.prefix = list(prefix or [])

    @property
    def controller(self) -> str:
        assert self.controller_port is not None, "broker not started"
        return f"{self.bind_host}:{self.controller_port}"

    def controller_listen(self) -> str:
        # Restarts reuse the first port: the quorum remembers its members' addresses.
        return f"{self.bind_host}:{self.controller_port or 0}"

    def command(self, listen: str, admin_listen: str) -> list[str]:
        cmd = super().command(listen, admin_listen) + ["--node-id", str(self.node_id)]
        if self.seeds:
            cmd += ["--seeds", ",".join(self.seeds)]
        return self.prefix + cmd

    def start_first(self) -> "ClusterBroker":
        return self.start(listen=f"{self.bind_host}:0", admin_listen=f"{self.bind_host}:0")

    def _wait_ready(self, deadline_s: float) -> None:
        super()._wait_ready(deadline_s)
        m = CONTROLLER_RE.search(self.stdout_path.read_text(errors="replace"))
        assert m, "the ready line names no controller address"
        self.controller_port = int(m.group(2))


class Cluster:
    """N brokers forming one cluster."""

    def __init__(self, root: Path, size: int, extra_args: list[str] | None = None, network=None,
                 per_broker=None):
        self.root = Path(root)
        self.size = size
        self.extra_args = list(extra_args or [])
        # node id -> more args for that broker only (e.g. its --broker-rack).
        self.per_broker = per_broker or (lambda node_id: [])
        self.brokers: list[ClusterBroker] = []
        # A netns.Network: broker i runs in namespace i at the network's address i.
        self.network = network

    def start(self) -> "Cluster":
        for i in range(self.size):
            seeds = [self.brokers[0].controller] if i > 0 else []
            host = self.network.address(i) if self.network else "127.0.0.1"
            prefix = self.network.exec_prefix(i) if self.network else []
            b = ClusterBroker(i, self.root / f"data{i}", self.root / f"logs{i}", seeds,
                              self.extra_args + list(self.per_broker(i)), bind_host=host, prefix=prefix)
            b.data_dir.mkdir(parents=True, exist_ok=True)
            self.brokers.append(b)
            b.start_first()
        self.wait_registered(self.size)
        return self

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers if b.port is not None)

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def by_id(self, node_id: int) -> ClusterBroker:
        return next(b for b in self.brokers if b.node_id == node_id)

    def live(self) -> list[ClusterBroker]:
        return [b for b in self.brokers if b.alive()]

    def wait_registered(self, n: int, timeout: float = 60.0) -> None:
        """Wait until Metadata (asked of a live broker) lists `n` brokers."""
        def registered():
            md = AdminClient({"bootstrap.servers": self.live()[0].bootstrap}).list_topics(timeout=5)
            return len(md.brokers) == n
        wait_until(registered, timeout, what=f"{n} brokers in Metadata")

    def partition_state(self, topic: str, partition: int):
        """(leader, replicas, isrs) as Metadata from a live broker reports them."""
        md = AdminClient({"bootstrap.servers": ",".join(b.bootstrap for b in self.live())}) \
            .list_topics(topic, timeout=10)
        p = md.topics[topic].partitions[partition]
        return p.leader, list(p.replicas), list(p.isrs)

    def leader_of(self, topic: str, partition: int) -> ClusterBroker:
        leader, _, _ = self.partition_state(topic, partition)
        assert leader >= 0, f"{topic}/{partition} has no leader"
        return self.by_id(leader)

    def wait_leader(self, topic: str, partition: int, not_on: int | None = None,
                    timeout: float = 60.0) -> ClusterBroker:
        """Wait for a leader (other than `not_on`) that is alive, and return it."""
        def elected():
            leader, _, _ = self.partition_state(topic, partition)
            if leader < 0 or leader == not_on:
                return None
            b = self.by_id(leader)
            return b if b.alive() else None
        return wait_until(elected, timeout, what=f"a new leader for {topic}/{partition}")

    def partition_state_at(self, broker: ClusterBroker, topic: str, partition: int):
        """(leader, replicas, isrs) as `broker`'s own metadata reports them; None when the answer
        came from another broker."""
        md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(topic, timeout=10)
        if not md.orig_broker_name.startswith(broker.bootstrap + "/"):
            return None
        p = md.topics[topic].partitions[partition]
        return p.leader, list(p.replicas), list(p.isrs)

    def wait_isr(self, topic: str, partition: int, size: int, timeout: float = 90.0) -> None:
        """Wait until every live broker's own metadata shows the same leader and an ISR of `size`.
        Asking one broker is not enough: one that has just rejoined (after a network partition
        heals, or a restart) may still answer from the metadata it had before, naming itself
        leader with the old ISR, until it catches up with the quorum."""
        def agreed():
            states = [self.partition_state_at(b, topic, partition) for b in self.live()]
            if any(s is None or s[0] < 0 for s in states) or len({s[0] for s in states}) != 1:
                return False
            return all(len(s[2]) == size for s in states)
        wait_until(agreed, timeout, what=f"ISR of {topic}/{partition} to have {size} members on every broker")

    def kill9_and_restart_all(self) -> None:
        """SIGKILL every broker, start them all again on their ports and wait until all are
        ready and registered (they are started together: none is ready without a quorum)."""
        for b in self.brokers:
            b.kill9()
        for b in self.brokers:
            b.spawn(listen=f"{b.bind_host}:{b.port}", admin_listen=f"{b.bind_host}:0")
        for b in self.brokers:
            b._wait_ready(90)
        self.wait_registered(len(self.brokers))

    def stop(self) -> None:
        for b in self.brokers:
            try:
                b.stop()
            except Exception as e:  # teardown must reach every broker
                print(f"stopping broker {b.node_id} failed: {e}")
