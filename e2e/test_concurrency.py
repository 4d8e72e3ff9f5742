"""Races between clients and the broker's own housekeeping: reading while retention deletes
segments, and deleting a topic while it is being written and read. The broker must stay up,
never panic, and keep serving consistent data."""

from __future__ import annotations

import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from helpers import admin, create_topic, produce_confluent, wait_until, watermarks


def test_reading_while_retention_deletes_segments_stays_consistent(broker_factory):
    b = broker_factory("--log-segment-bytes", "8192", "--log-retention-check-interval-ms", "50")
    topic = "churn"
    create_topic(b.bootstrap, topic, 1, config={"retention.bytes": "32768"})
    stop = threading.Event()
    errors: list[str] = []
    produced = [0]

    def produce():
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 1})
        while not stop.is_set():
            for _ in range(20):
                p.produce(topic, value=f"{produced[0]:08d}".encode() + b"c" * 500)
                produced[0] += 1
            p.flush(30)

    def consume(n: int):
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"churn-{n}", "enable.auto.commit": False,
                      "auto.offset.reset": "earliest"})
        try:
            c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            last = -1
            while not stop.is_set():
                m = c.poll(0.2)
                if m is None:
                    continue
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        errors.append(f"consumer {n}: {m.error()}")
                    continue
                if m.offset() <= last:
                    errors.append(f"consumer {n}: offset went back from {last} to {m.offset()}")
                if int(m.value()[:8]) != m.offset():
                    errors.append(f"consumer {n}: offset {m.offset()} holds record {m.value()[:8]!r}")
                last = m.offset()
                if last % 97 == 0:
                    # Jump back to the start now and then, so reads race with segment deletion.
                    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
                    last = -1
        finally:
            c.close()

    threads = [threading.Thread(target=produce)] + [threading.Thread(target=consume, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: watermarks(b.bootstrap, topic, 0)[0] > 2000, 120, interval=0.2,
                   what="retention to have deleted a few thousand records under load")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert b.alive(), f"broker died; stderr:\n{b.stderr()[-3000:]}"
    assert not errors, errors[:5]
    assert "panick" not in b.stderr().lower()
    low, high = watermarks(b.bootstrap, topic, 0)
    assert high == produced[0]
    assert len(b.segment_files(topic, 0)) <= 10, "retention did not keep up"


def test_deleting_a_topic_under_load_keeps_the_broker_serving(broker_factory):
    # Auto-create off: librdkafka asks for auto-creation in Metadata, which would legitimately
    # bring the topic straight back while the producer is still running.
    broker = broker_factory("--auto-create-topics", "false")
    topic = "doomed"
    create_topic(broker.bootstrap, topic, 3)
    stop = threading.Event()

    def produce():
        p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 1,
                      "message.timeout.ms": 5000, "allow.auto.create.topics": False})
        while not stop.is_set():
            try:
                p.produce(topic, value=b"d" * 100)
            except Exception:  # noqa: BLE001 - producing to a vanishing topic may fail locally
                time.sleep(0.01)
            p.poll(0.001)
        p.flush(10)

    def consume():
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "doomed", "enable.auto.commit": False})
        c.assign([TopicPartition(topic, p, 0) for p in range(3)])
        while not stop.is_set():
            c.poll(0.1)
        c.close()
    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: sum(watermarks(broker.bootstrap, topic, p)[1] for p in range(3)) > 500, 60,
                   what="traffic on the topic")
        a = admin(broker.bootstrap)
        a.delete_topics([topic], request_timeout=30)[topic].result(30)
        time.sleep(1.0)  # keep the clients hammering the deleted topic for a moment
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert broker.alive(), f"broker died; stderr:\n{broker.stderr()[-3000:]}"
    assert "panick" not in broker.stderr().lower()
    wait_until(lambda: not list(broker.data_dir.glob(f"{topic}-*")), 30, what="the deleted topic's files to go")
    # The name is free again and the broker serves normally.
    create_topic(broker.bootstrap, topic, 1)
    acks = produce_confluent(broker.bootstrap, topic, [(None, b"reborn")])
    assert not acks.errors and acks.acks[0].offset == 0
