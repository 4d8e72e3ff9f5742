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
