"""Incremental fetch sessions (KIP-227) with kafka-python, whose consumer uses them by default:
its first fetch opens a session, later fetches name only the partitions whose position moved
and get only the partitions with news; the consumer still reads every record exactly once
while new records arrive on a few of many partitions. librdkafka does not use sessions and
keeps fetching sessionless from the same broker."""

from __future__ import annotations

import time

from kafka import KafkaConsumer, KafkaProducer

from groups import metric
from helpers import consume_confluent, create_topic

PARTITIONS = 8


def consume_until(consumer: KafkaConsumer, n: int, timeout: float = 60.0) -> list[tuple[int, int, bytes]]:
    got: list[tuple[int, int, bytes]] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend((r.partition, r.offset, r.value) for r in records)
    return got


def test_kafka_python_consumes_through_an_incremental_fetch_session(broker):
    create_topic(broker.bootstrap, "sessions", PARTITIONS)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    first = [(i % PARTITIONS, f"first-{i}".encode()) for i in range(200)]
    for p, v in first:
        producer.send("sessions", value=v, partition=p)
    producer.flush()

    consumer = KafkaConsumer("sessions", bootstrap_servers=broker.bootstrap, group_id="sessions",
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             fetch_max_wait_ms=100)
    try:
        got = consume_until(consumer, len(first))
        assert sorted(v for _, _, v in got) == sorted(v for _, v in first)
        # New records on two of the eight partitions only.
        second = [(i % 2, f"second-{i}".encode()) for i in range(100)]
        for p, v in second:
            producer.send("sessions", value=v, partition=p)
        producer.flush()
        more = consume_until(consumer, len(second))
        assert sorted(v for _, _, v in more) == sorted(v for _, v in second)
        assert {p for p, _, _ in more} == {0, 1}
        # Nothing twice, nothing skipped: offsets per partition run without gaps.
        for p in range(PARTITIONS):
            offsets = sorted(o for q, o, _ in got + more if q == p)
            assert offsets == list(range(len(offsets))), (p, offsets)
        # Idle polls go on in the same session and bring nothing new.
        assert consume_until(consumer, 1, timeout=1.0) == []
    finally:
        consumer.close()
        producer.close()

    def requests(kind: str) -> float:
        return metric(broker.admin_url, "runnel_fetch_session_requests_total", kind=kind) or 0.0

    assert requests("full") >= 1
    assert requests("incremental") >= 3
    assert requests("refused") == 0
    assert (metric(broker.admin_url, "runnel_fetch_sessions") or 0) >= 1

    # librdkafka fetches sessionless, from the same broker, alongside.
    before = requests("sessionless")
    records = consume_confluent(broker.bootstrap, "sessions", range(PARTITIONS))
    assert sum(len(r) for r in records.values()) == 300
    assert requests("sessionless") > before
