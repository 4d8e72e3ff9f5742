"""Fetch long poll and size limits (hand-encoded Fetch v4 plus real clients), acks=0, large
records, concurrent producers on one partition, LogAppendTime, segment.ms rolls, and
kafka-python's admin client."""

from __future__ import annotations

import threading
import time

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Producer

from helpers import (AckRecorder, batches_in, connect, consume_confluent, consume_kafka_python, create_topic,
                     fetch_v4_body, parse_fetch_v4_response, produce_all, produce_confluent, recv_frame,
                     request_frame, wait_until, watermarks)

API_FETCH = 1


def raw_fetch(b, topic: str, offset: int, max_wait_ms: int = 500, min_bytes: int = 1, max_bytes: int = 50 << 20,
              partition_max_bytes: int = 10 << 20, timeout: float = 60.0):
    with connect(b.bootstrap, timeout=timeout) as s:
        s.sendall(request_frame(API_FETCH, 4, 9, fetch_v4_body(topic, 0, offset, max_wait_ms, min_bytes,
                                                                max_bytes, partition_max_bytes)))
        resp = recv_frame(s)
    return parse_fetch_v4_response(resp[4:])[(topic, 0)]


def test_fetch_on_empty_partition_waits_for_max_wait(broker):
    create_topic(broker.bootstrap, "quiet", 1)
    t0 = time.monotonic()
    part = raw_fetch(broker, "quiet", 0, max_wait_ms=1500)
    waited = time.monotonic() - t0
    assert part.error_code == 0 and part.records == b"" and part.high_watermark == 0
    assert waited >= 1.2, f"fetch with max_wait_ms=1500 on an empty partition returned after {waited:.2f}s"


def test_long_poll_fetch_wakes_when_a_record_arrives(broker):
    create_topic(broker.bootstrap, "wakeup", 1)

    def produce_later():
        time.sleep(0.5)  # the fetch must already be parked when this arrives
        produce_confluent(broker.bootstrap, "wakeup", [(None, b"wake")])
    t = threading.Thread(target=produce_later)
    t0 = time.monotonic()
    t.start()
    part = raw_fetch(broker, "wakeup", 0, max_wait_ms=30000)
    waited = time.monotonic() - t0
    t.join()
    assert part.error_code == 0
    assert [(base, n) for base, n, _ in batches_in(part.records)] == [(0, 1)]
    assert waited < 15, f"a parked fetch took {waited:.1f}s to see a new record (max_wait 30 s)"


def test_fetch_respects_size_limits_but_always_returns_a_whole_first_batch(broker):
    topic = "limits"
    create_topic(broker.bootstrap, topic, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0})
    for batch in range(10):
        for i in range(4):
            p.produce(topic, value=f"{batch}-{i}-".encode() + b"L" * 2000)
        assert p.flush(30) == 0
    # Tiny limits: still exactly the first whole batch, so consumers always make progress.
    part = raw_fetch(broker, topic, 0, max_bytes=100, partition_max_bytes=100)
    got = batches_in(part.records)
    assert len(got) >= 1 and got[0][0] == 0, "a fetch with tiny limits must still return the first batch"
    assert len(part.records) <= got[0][2] + 100, f"returned {len(part.records)} bytes past the first batch"
    # A limit of a few batches is honoured (whole batches, at most one partial one at the end).
    part = raw_fetch(broker, topic, 0, max_bytes=20000, partition_max_bytes=20000)
    assert len(part.records) <= 20000
    assert len(batches_in(part.records)) >= 2
    # A fetch from an offset in the middle of a batch returns the batch holding it.
    part = raw_fetch(broker, topic, 6)
    first = batches_in(part.records)[0]
    assert first[0] <= 6 < first[0] + first[1]
    # Fetch past the end: OFFSET_OUT_OF_RANGE.
    assert raw_fetch(broker, topic, 1000).error_code == 1
    # kafka-python with the smallest fetch sizes still reads everything.
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, fetch_max_bytes=1024,
                      max_partition_fetch_bytes=1024, enable_auto_commit=False)
    try:
        tp = KTP(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        vals = []

        def read_all():
            for recs in c.poll(timeout_ms=500).values():
                vals.extend(r.value for r in recs)
            return len(vals) >= 40
        wait_until(read_all, 60, what="kafka-python with 1 KiB fetch limits to read 40 records of 2 KiB")
        assert [v.split(b"-")[:2] for v in vals] == [[str(b).encode(), str(i).encode()]
                                                      for b in range(10) for i in range(4)]
    finally:
        c.close()


def test_acks_0_records_are_stored(broker):
    create_topic(broker.bootstrap, "fire-and-forget", 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "0", "linger.ms": 5})
    rec = AckRecorder()
    produce_all(p, [(None, f"a0-{i}".encode()) for i in range(2000)], "fire-and-forget", on_delivery=rec)
    assert not rec.errors
    wait_until(lambda: watermarks(broker.bootstrap, "fire-and-forget", 0)[1] == 2000, 30,
               what="2000 acks=0 records to be stored")
    got = consume_confluent(broker.bootstrap, "fire-and-forget", [0])[0]
    assert [r.value for r in got] == [f"a0-{i}".encode() for i in range(2000)]


def test_one_megabyte_records_round_trip_with_default_limits(broker):
    create_topic(broker.bootstrap, "big", 1)
    values = [bytes([65 + i]) * 1_000_000 for i in range(5)]
    acks = produce_confluent(broker.bootstrap, "big", [(None, v) for v in values],
                             {"linger.ms": 0, "message.max.bytes": 1048588})
    assert not acks.errors
    assert [r.value for r in consume_confluent(broker.bootstrap, "big", [0])[0]] == values
    assert [r.value for r in consume_kafka_python(broker.bootstrap, "big", [0])[0]] == values


def test_concurrent_acks_all_producers_on_one_partition_get_dense_unique_offsets(broker):
    topic = "contended"
    create_topic(broker.bootstrap, topic, 1)
    recorders = [AckRecorder() for _ in range(4)]

    def run(n: int):
        p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 1})
        produce_all(p, [(None, f"p{n}-{i}".encode()) for i in range(5000)], topic, on_delivery=recorders[n])
    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    acks = [a for r in recorders for a in r.acks]
    assert not any(r.errors for r in recorders)
    assert sorted(a.offset for a in acks) == list(range(20000)), "acknowledged offsets are not dense and unique"
    stored = {r.offset: r.value for r in consume_confluent(broker.bootstrap, topic, [0])[0]}
    assert all(stored[a.offset] == a.value for a in acks)
    for n in range(4):
        own = [int(stored[a.offset].split(b"-")[1]) for a in sorted(recorders[n].acks, key=lambda a: a.offset)]
        assert own == list(range(5000)), f"producer {n}'s records are out of order in the log"


def test_log_append_time_topic_stamps_records_with_broker_time(broker):
    create_topic(broker.bootstrap, "stamped", 1, config={"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    acks = produce_confluent(broker.bootstrap, "stamped", [(None, b"x", None, 1_000_000_000_000)] * 3)
    after = int(time.time() * 1000)
    assert not acks.errors
    c = consume_confluent(broker.bootstrap, "stamped", [0])[0]
    assert len(c) == 3
    from confluent_kafka import Consumer, TopicPartition
    cons = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "e2e-lat", "enable.auto.commit": False})
    try:
        cons.assign([TopicPartition("stamped", 0, 0)])
        m = wait_until(lambda: cons.poll(0.5), 30, what="a LogAppendTime record")
        ts_type, ts = m.timestamp()
        assert ts_type == TIMESTAMP_LOG_APPEND_TIME, f"timestamp type {ts_type}, expected LogAppendTime"
        assert before - 1000 <= ts <= after + 1000, f"LogAppendTime {ts} is not the broker's clock ({before}..{after})"
    finally:
        cons.close()


def test_segment_ms_rolls_a_new_segment_when_the_active_one_is_old(broker):
    create_topic(broker.bootstrap, "rolling", 1, config={"segment.ms": "1000"})
    assert not produce_confluent(broker.bootstrap, "rolling", [(None, b"first")]).errors
    assert len(broker.segment_files("rolling", 0)) == 1
    time.sleep(1.5)  # the rule under test is about elapsed time
    assert not produce_confluent(broker.bootstrap, "rolling", [(None, b"second")]).errors
    segs = broker.segment_files("rolling", 0)
    assert [int(s.stem) for s in segs] == [0, 1], f"expected a roll at offset 1, segments: {[s.name for s in segs]}"
    assert [r.value for r in consume_confluent(broker.bootstrap, "rolling", [0])[0]] == [b"first", b"second"]


def test_kafka_python_admin_client_creates_describes_alters_and_deletes(broker):
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        a.create_topics([NewTopic("kp-admin", 2, 1, topic_configs={"retention.ms": "7200000"})])
        wait_until(lambda: "kp-admin" in a.list_topics(), 30, what="kafka-python created topic")
        res = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-admin")])
        text = repr(res)
        assert "retention.ms" in text and "7200000" in text, text[:2000]
        a.create_partitions({"kp-admin": NewPartitions(total_count=4)})
        wait_until(lambda: len(a.describe_topics(["kp-admin"])[0]["partitions"]) == 4, 30,
                   what="4 partitions via kafka-python")
        a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-admin", configs={"retention.ms": "60000"})])
        assert "60000" in repr(a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-admin")]))
        a.delete_topics(["kp-admin"])
        wait_until(lambda: "kp-admin" not in a.list_topics(), 30, what="kafka-python deleted topic")
    finally:
        a.close()


def test_fetch_min_bytes_waits_for_more_data_until_max_wait(broker):
    create_topic(broker.bootstrap, "min-bytes", 1)
    assert not produce_confluent(broker.bootstrap, "min-bytes", [(None, b"small")]).errors
    # Data is there, but less than min_bytes: the broker waits out max_wait, then returns what it has.
    t0 = time.monotonic()
    part = raw_fetch(broker, "min-bytes", 0, max_wait_ms=1500, min_bytes=100_000)
    waited = time.monotonic() - t0
    assert [(base, n) for base, n, _ in batches_in(part.records)] == [(0, 1)]
    assert waited >= 1.2, f"min_bytes=100000 with 1 small record returned after {waited:.2f}s"
    # With min_bytes already satisfied it answers at once.
    t0 = time.monotonic()
    part = raw_fetch(broker, "min-bytes", 0, max_wait_ms=10_000, min_bytes=1)
    assert time.monotonic() - t0 < 5 and batches_in(part.records)
