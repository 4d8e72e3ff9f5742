"""Batches compressed with gzip, snappy, lz4 and zstd by two producers round-trip exactly
through three consumers, and the broker stores them compressed as the producer sent them."""

from __future__ import annotations

import random

import pytest

from helpers import (consume_confluent, consume_kafka_python, consume_kcat, create_topic, kcat_available,
                     produce_confluent, read_batches)

CODEC_IDS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
N = 400


def payloads(tag: str) -> list[tuple[bytes, bytes]]:
    rnd = random.Random(tag)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    out = []
    for i in range(N):
        # Text (kcat prints it verbatim) that compresses well but is not constant.
        body = " ".join(rnd.choice(words) for _ in range(rnd.randint(1, 60)))
        out.append((f"{tag}-{i % 17}".encode(), f"{tag}-{i}|{body}".encode()))
    return out


@pytest.mark.parametrize("codec", list(CODEC_IDS))
def test_compressed_batches_round_trip_through_all_clients(broker, codec):
    from kafka import KafkaProducer

    topic = f"compressed-{codec}"
    create_topic(broker.bootstrap, topic, 1)
    from_confluent = payloads(f"confluent-{codec}")
    from_kpy = payloads(f"kafka-python-{codec}")

    acks = produce_confluent(broker.bootstrap, topic, from_confluent,
                             {"compression.type": codec, "linger.ms": 20, "acks": "all"})
    assert not acks.errors, acks.errors[:1]

    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", compression_type=codec, linger_ms=20)
    futures = [kp.send(topic, key=k, value=v) for k, v in from_kpy]
    kp.flush(60)
    for f in futures:
        f.get(timeout=60)
    kp.close()

    expected = from_confluent + from_kpy

    got = consume_confluent(broker.bootstrap, topic, [0])[0]
    assert [(r.key, r.value) for r in got] == expected, "confluent-kafka read different records"

    got = consume_kafka_python(broker.bootstrap, topic, [0])[0]
    assert [(r.key, r.value) for r in got] == expected, "kafka-python read different records"

    if kcat_available():
        rows = consume_kcat(broker.bootstrap, topic, 0)
        assert [(k, v) for _, k, v in rows] == expected, "kcat read different records"
    else:
        print("kcat not installed: skipping the kcat leg of this test")

    # Stored as produced: every batch on disk still carries the producer's codec.
    batches = [bt for seg in broker.segment_files(topic, 0) for bt in read_batches(seg)]
    assert batches, "no record batches found on disk"
    assert sum(bt.record_count for bt in batches) == 2 * N
    codecs = {bt.attributes & 0x7 for bt in batches}
    # librdkafka sends a batch uncompressed when compressing would not make it smaller.
    assert CODEC_IDS[codec] in codecs and codecs <= {0, CODEC_IDS[codec]}, \
        f"batches on disk have codecs {codecs}, expected {codec} (id {CODEC_IDS[codec]}) as the producers sent"
    compressed = [bt for bt in batches if bt.attributes & 0x7]
    assert sum(bt.record_count for bt in compressed) >= N, "fewer than half the records are in compressed batches"
    assert len(batches) < 2 * N, "each record is in its own batch: producer batching did not happen"
