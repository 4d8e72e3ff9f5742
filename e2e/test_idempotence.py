"""Idempotent-producer checks with hand-sent batches (built by kafka-python's record builder):
a retried batch is not written twice, a sequence gap is refused, and the producer state
survives kill -9."""

from __future__ import annotations

import struct

from helpers import (build_idempotent_batch, connect, create_topic, init_producer_id, parse_produce_v3_response,
                     produce_v3_body, recv_frame, request_frame, watermarks)

OUT_OF_ORDER_SEQUENCE_NUMBER = 45


def send(b, topic: str, batch) -> tuple[int, int]:
    with connect(b.bootstrap) as s:
        s.sendall(request_frame(0, 3, 5, produce_v3_body(topic, 0, bytes(batch))))
        resp = recv_frame(s)
    assert struct.unpack_from(">i", resp, 0)[0] == 5
    [(_, _, err, base)] = parse_produce_v3_response(resp[4:])
    return err, base


def test_retried_batch_is_written_once_and_answered_with_its_first_offset(broker):
    create_topic(broker.bootstrap, "idem", 1)
    pid, epoch = init_producer_id(broker.bootstrap)
    first = build_idempotent_batch([b"a0", b"a1", b"a2"], pid, epoch, 0)
    assert send(broker, "idem", first) == (0, 0)
    # The same batch again (a retry after a lost response): success, same offset, nothing new stored.
    assert send(broker, "idem", first) == (0, 0)
    assert watermarks(broker.bootstrap, "idem", 0) == (0, 3)
    assert send(broker, "idem", build_idempotent_batch([b"b0"], pid, epoch, 3)) == (0, 3)
    assert watermarks(broker.bootstrap, "idem", 0) == (0, 4)


def test_sequence_gap_is_refused_with_out_of_order_sequence(broker):
    create_topic(broker.bootstrap, "idem-gap", 1)
    pid, epoch = init_producer_id(broker.bootstrap)
    assert send(broker, "idem-gap", build_idempotent_batch([b"x"], pid, epoch, 0))[0] == 0
    err, _ = send(broker, "idem-gap", build_idempotent_batch([b"y"], pid, epoch, 5))
    assert err == OUT_OF_ORDER_SEQUENCE_NUMBER, f"expected OUT_OF_ORDER_SEQUENCE_NUMBER (45), got {err}"
    assert watermarks(broker.bootstrap, "idem-gap", 0) == (0, 1)


def test_producer_ids_are_unique_and_survive_restart(broker):
    ids = {init_producer_id(broker.bootstrap)[0] for _ in range(5)}
    assert len(ids) == 5, f"InitProducerId handed out a producer id twice: {ids}"
    broker.kill9()
    broker.restart()
    again = init_producer_id(broker.bootstrap)[0]
    assert again not in ids, "a producer id was reused after a restart"


def test_duplicate_detection_survives_kill_9(broker):
    create_topic(broker.bootstrap, "idem-crash", 1)
    pid, epoch = init_producer_id(broker.bootstrap)
    batches = [build_idempotent_batch([f"r{i}-{j}".encode() for j in range(4)], pid, epoch, 4 * i) for i in range(5)]
    for i, bt in enumerate(batches):
        assert send(broker, "idem-crash", bt) == (0, 4 * i)
    broker.kill9()
    broker.restart()
    # A retry of the last batch arriving after the restart must still be recognised.
    assert send(broker, "idem-crash", batches[-1]) == (0, 16)
    # Kafka remembers the last five batches per producer: an older retry is answered with its offset too.
    assert send(broker, "idem-crash", batches[2]) == (0, 8)
    assert watermarks(broker.bootstrap, "idem-crash", 0) == (0, 20)
    # And the sequence continues.
    assert send(broker, "idem-crash", build_idempotent_batch([b"next"], pid, epoch, 20)) == (0, 20)


def test_describe_producers_lists_each_idempotent_producer_of_a_partition(broker):
    """DescribeProducers (kafka-python's `describe_producers`) shows every idempotent producer
    that wrote to a partition with its id and epoch (as librdkafka's statistics report them),
    the sequence of its last record and the timestamp of its last batch; a producer without
    idempotence is not listed."""
    import json
    import time

    from confluent_kafka import Producer
    from kafka import KafkaAdminClient, TopicPartition

    create_topic(broker.bootstrap, "described", 2)

    def produce(idempotent: bool, counts: dict[int, int], ts0: int) -> int | None:
        ids = []
        p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": idempotent,
                      "acks": "all", "linger.ms": 50, "statistics.interval.ms": 100,
                      "stats_cb": lambda s: ids.append(json.loads(s).get("eos", {}).get("producer_id", -1))})
        for partition, n in counts.items():
            for i in range(n):
                p.produce("described", value=b"v", partition=partition, timestamp=ts0 + i)
        assert p.flush(30) == 0
        deadline = time.monotonic() + 10
        while not any(i >= 0 for i in ids) and idempotent and time.monotonic() < deadline:
            p.poll(0.1)
        return next((i for i in ids if i >= 0), None)

    ts = 1_700_000_000_000
    a = produce(True, {0: 5}, ts)
    b = produce(True, {0: 3, 1: 2}, ts + 1000)
    produce(False, {0: 4, 1: 4}, ts + 2000)
    assert a is not None and b is not None and a != b

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        states = admin.describe_producers([TopicPartition("described", 0),
                                           TopicPartition("described", 1)])
        p0 = {s.producer_id: s for s in states[TopicPartition("described", 0)].active_producers}
        p1 = {s.producer_id: s for s in states[TopicPartition("described", 1)].active_producers}
        assert set(p0) == {a, b} and set(p1) == {b}
        assert (p0[a].producer_epoch, p0[a].last_sequence) == (0, 4)
        assert (p0[b].producer_epoch, p0[b].last_sequence) == (0, 2)
        assert (p1[b].producer_epoch, p1[b].last_sequence) == (0, 1)
        # The last batch's max timestamp: every record of a producer went in one batch here.
        assert p0[a].last_timestamp == ts + 4
        assert p0[b].last_timestamp == ts + 1002
        assert p1[b].last_timestamp == ts + 1001
        assert p0[a].coordinator_epoch == -1 and p0[a].current_transaction_start_offset == -1
    finally:
        admin.close()
