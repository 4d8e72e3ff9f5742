"""Fetch from the closest replica (KIP-392) with librdkafka, as its test 0101 checks it: three
brokers in racks RACK0..RACK2, a replication-factor-3 topic, and a consumer whose `client.rack`
is the rack of a follower. With `replica_selector = "rack_aware"` the leader answers the
consumer's first fetch with `preferred_read_replica` and the follower serves every record
(below its own high watermark); with the default selector everything comes from the leader.
Which broker served the bytes is read from the brokers' own `runnel_bytes_out_total` and from
librdkafka's statistics (`rxbytes` per broker), as 0101 does."""

from __future__ import annotations

import json
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from cluster import Cluster
from groups import metric
from helpers import create_topic

ARGS = ["--broker-session-timeout-ms", "2000", "--broker-heartbeat-interval-ms", "200",
        "--group-initial-rebalance-delay-ms", "0", "--offsets-topic-num-partitions", "1",
        "--min-insync-replicas", "2",
        # The last broker to stop has no quorum left to move its leaderships through.
        "--controlled-shutdown-timeout-ms", "2000"]
RECORDS = 500
SIZE = 200


def start(tmp_path, selector: str) -> Cluster:
    c = Cluster(tmp_path, 3, ARGS + ["--replica-selector", selector],
                per_broker=lambda i: ["--broker-rack", f"RACK{i}"])
    c.start()
    return c


def produce(bootstrap: str, topic: str) -> list[bytes]:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    values = [f"{i:06d}".encode().ljust(SIZE, b".") for i in range(RECORDS)]
    errors = []
    for v in values:
        p.produce(topic, value=v, partition=0,
                  on_delivery=lambda err, msg: err and errors.append(err))
    assert p.flush(60) == 0 and not errors, errors
    return values


def consume(bootstrap: str, topic: str, rack: str) -> tuple[list[bytes], dict[int, int]]:
    """Every record of partition 0 for a consumer in `rack`, and librdkafka's rxbytes per
    broker id once its statistics have seen them all."""
    rx: dict[int, int] = {}

    def on_stats(text: str) -> None:
        for b in json.loads(text)["brokers"].values():
            if b.get("nodeid", -1) >= 0:
                rx[b["nodeid"]] = b["rxbytes"]

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}-{rack}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "client.rack": rack, "statistics.interval.ms": 200, "stats_cb": on_stats})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got: list[bytes] = []
        deadline = time.monotonic() + 90
        while len(got) < RECORDS and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            assert m.error() is None, m.error()
            got.append(m.value())
        # Statistics arrive every 200 ms; wait for a report that counts what was received.
        want = RECORDS * SIZE
        deadline = time.monotonic() + 10
        while sum(rx.values()) < want and time.monotonic() < deadline:
            c.poll(0.2)
        return got, dict(rx)
    finally:
        c.close()


def served(c: Cluster, topic: str) -> dict[int, float]:
    return {b.node_id: metric(b.admin_url, "runnel_bytes_out_total", topic=topic) or 0.0
            for b in c.brokers}


def test_a_consumer_reads_from_the_in_sync_follower_in_its_rack(tmp_path):
    c = start(tmp_path, "rack_aware")
    try:
        topic = "ffr"
        create_topic(c.bootstrap, topic, 1, replication_factor=3)
        c.wait_isr(topic, 0, 3)
        leader, replicas, _ = c.partition_state(topic, 0)
        follower, other = [r for r in replicas if r != leader]
        values = produce(c.bootstrap, topic)
        c.wait_isr(topic, 0, 3)

        got, rx = consume(c.bootstrap, topic, f"RACK{follower}")
        assert got == values

        # The follower sent every record; the other follower sent none (followers replicate
        # from the leader, so only consumers read from them).
        out = served(c, topic)
        assert out[follower] >= RECORDS * SIZE, out
        assert out[other] == 0, out
        # librdkafka agrees: most bytes came from the follower in its rack.
        assert rx.get(follower, 0) >= RECORDS * SIZE, rx
        assert rx[follower] == max(rx.values()), rx

        # A consumer in the leader's rack, or in a rack no broker has, reads from the leader.
        before = served(c, topic)
        for rack in (f"RACK{leader}", "RACK-NONE"):
            got, _ = consume(c.bootstrap, topic, rack)
            assert got == values
        after = served(c, topic)
        assert after[follower] == before[follower] and after[other] == before[other], (before, after)
    finally:
        c.stop()


def test_with_the_default_selector_every_record_comes_from_the_leader(tmp_path):
    c = start(tmp_path, "leader")
    try:
        topic = "ffr-default"
        create_topic(c.bootstrap, topic, 1, replication_factor=3)
        c.wait_isr(topic, 0, 3)
        leader, replicas, _ = c.partition_state(topic, 0)
        follower = next(r for r in replicas if r != leader)
        values = produce(c.bootstrap, topic)
        got, rx = consume(c.bootstrap, topic, f"RACK{follower}")
        assert got == values
        out = served(c, topic)
        assert all(out[r] == 0 for r in replicas if r != leader), out
        assert rx.get(leader, 0) >= RECORDS * SIZE, rx
    finally:
        c.stop()
