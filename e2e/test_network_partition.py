"""A partition leader cut off from the other brokers by a real network partition (each broker in
its own network namespace; the leader's veth link goes down) cannot acknowledge `acks=all`
writes; the others elect a new leader and producing continues; after the link heals the old
leader truncates what it wrote alone and rejoins the ISR. Nothing acknowledged is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import netns
from checker import AckedWriter, verify
from cluster import Cluster
from helpers import create_topic, wait_until
from test_cluster import CLUSTER_ARGS

TOPIC = "partitioned"
PARTITIONS = 3
PROBE = Path(__file__).resolve().parent / "probe_producer.py"


@pytest.fixture
def net_cluster(tmp_path):
    why = netns.unavailable()
    if why:
        pytest.skip(why)
    net = netns.Network(3).create()
    c = Cluster(tmp_path, 3, CLUSTER_ARGS, network=net)
    try:
        c.start()
        yield c, net
    finally:
        c.stop()
        net.destroy()


def test_isolated_leader_cannot_acknowledge_and_rejoins_after_healing(net_cluster):
    cluster, net = net_cluster
    create_topic(cluster.bootstrap, TOPIC, PARTITIONS, replication_factor=3)
    for p in range(PARTITIONS):
        cluster.wait_isr(TOPIC, p, 3)
    w = AckedWriter(cluster.bootstrap, TOPIC).start()
    try:
        w.wait_acks(3_000)
        old = cluster.leader_of(TOPIC, 0)
        net.cut(old.node_id)
        # From inside its namespace the isolated leader is still reachable, but it must not
        # acknowledge: its followers cannot fetch, so the high watermark cannot move.
        probe = subprocess.run(
            net.exec_prefix(old.node_id) + [sys.executable, str(PROBE), "--bootstrap", old.bootstrap,
                                            "--topic", TOPIC, "--partition", "0"],
            capture_output=True, text=True, timeout=120)
        assert probe.returncode == 0, probe.stderr
        outcome = json.loads(probe.stdout.strip().splitlines()[-1])
        assert outcome["acked"] == [], f"the isolated leader acknowledged {outcome}"

        def moved():
            others = [b for b in cluster.brokers if b.node_id != old.node_id]
            from confluent_kafka.admin import AdminClient
            md = AdminClient({"bootstrap.servers": ",".join(b.bootstrap for b in others)}) \
                .list_topics(TOPIC, timeout=5)
            leader = md.topics[TOPIC].partitions[0].leader
            return leader >= 0 and leader != old.node_id
        wait_until(moved, 60, what="a new leader on the majority side")
        acked = w.ack_count()
        w.wait_acks(acked + 2_000, timeout=120)
        net.heal(old.node_id)
        for p in range(PARTITIONS):
            cluster.wait_isr(TOPIC, p, 3, timeout=120)
    finally:
        w.stop()
    assert not w.errors, f"{len(w.errors)} delivery errors, first: {w.errors[:1]}"
    report = verify(cluster.bootstrap, w, PARTITIONS)
    assert report.acknowledged >= 5_000
    assert "truncat" in old.all_stderr().lower(), "the old leader never logged truncating its divergent tail"
