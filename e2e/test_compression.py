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

    # Stored as produced, and each producer really compressed: librdkafka silently sends a codec
    # uncompressed when it believes the broker cannot take it (it infers LZ4 support from the
    # advertised FindCoordinator API, for example), so check each producer's batches separately.
    batches = [bt for seg in broker.segment_files(topic, 0) for bt in read_batches(seg)]
    assert sum(bt.record_count for bt in batches) == 2 * N
    for who, mine in (("confluent-kafka", [bt for bt in batches if bt.base_offset < N]),
                      ("kafka-python", [bt for bt in batches if bt.base_offset >= N])):
        codecs = {bt.attributes & 0x7 for bt in mine}
        # A producer may send a batch uncompressed when compressing would not make it smaller.
        assert codecs <= {0, CODEC_IDS[codec]}, f"{who}: unexpected codecs {codecs} on disk"
        compressed = sum(bt.record_count for bt in mine if bt.attributes & 0x7)
        assert compressed >= N // 2, (f"{who} sent only {compressed}/{N} records in {codec} batches "
                                      f"(codecs on disk {codecs}): compression was silently off")
        assert len(mine) < N, f"{who}: each record is in its own batch: producer batching did not happen"

@pytest.mark.parametrize("codec", list(CODEC_IDS))
def test_kcat_produced_compressed_batches_round_trip(broker, codec):
    import subprocess
    if not kcat_available():
        pytest.skip("kcat is not installed (scripts/test.sh installs it with apt-get)")
    topic = f"kcat-{codec}"
    create_topic(broker.bootstrap, topic, 1)
    lines = [f"key{i % 5}:{codec} line {i} " + "lorem ipsum " * (i % 20) for i in range(300)]
    cp = subprocess.run(["kcat", "-P", "-b", broker.bootstrap, "-t", topic, "-p", "0", "-K", ":", "-z", codec,
                         "-X", "acks=all", "-X", "linger.ms=20"],
                        input="\n".join(lines).encode() + b"\n", capture_output=True, timeout=60)
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")
    expected = [tuple(x.encode() for x in ln.split(":", 1)) for ln in lines]
    assert [(r.key, r.value) for r in consume_confluent(broker.bootstrap, topic, [0])[0]] == expected
    assert [(r.key, r.value) for r in consume_kafka_python(broker.bootstrap, topic, [0])[0]] == expected
    codecs = {bt.attributes & 0x7 for sg in broker.segment_files(topic, 0) for bt in read_batches(sg)}
    assert CODEC_IDS[codec] in codecs, f"kcat -z {codec} batches are not stored compressed: {codecs}"
