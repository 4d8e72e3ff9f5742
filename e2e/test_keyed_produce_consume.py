"""100,000 keyed records through a 6-partition topic: murmur2 placement and per-key order,
read back by three independent clients (librdkafka, kafka-python, kcat)."""

from __future__ import annotations

import os
from collections import defaultdict

import pytest

from conftest import Broker
from helpers import (consume_confluent, consume_kafka_python, consume_kcat, create_topic, kcat_available, murmur2,
                     partition_for_key, produce_confluent)

TOPIC = "keyed"
PARTITIONS = 6
KEYS = 1000
PER_KEY = 100
TOTAL = KEYS * PER_KEY


def key_of(i: int) -> bytes:
    return f"key-{i:04d}".encode()


def records():
    # Interleave keys so every batch mixes many keys and each key's sequence spans the whole run.
    for seq in range(PER_KEY):
        for k in range(KEYS):
            key = key_of(k)
            yield key, key + b":" + str(seq).encode()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keyed")
    b = Broker(tmp / "data", tmp / "logs")
    b.data_dir.mkdir(parents=True)
    b.start()
    try:
        create_topic(b.bootstrap, TOPIC, PARTITIONS)
        acks = produce_confluent(b.bootstrap, TOPIC, records(),
                                 {"acks": "all", "partitioner": "murmur2_random", "linger.ms": 10})
        yield b, acks
    finally:
        b.stop()


def assert_per_key_order(by_partition: dict[int, list], total: int = TOTAL) -> None:
    """Every key lives in exactly its murmur2 partition, offsets are dense, and each key's
    sequence numbers appear 0..PER_KEY-1 in offset order."""
    assert sum(len(v) for v in by_partition.values()) == total
    key_partition: dict[bytes, int] = {}
    seqs: dict[bytes, list[int]] = defaultdict(list)
    for p, recs in by_partition.items():
        offsets = [r.offset for r in recs]
        assert offsets == list(range(len(recs))), f"partition {p}: offsets are not 0..{len(recs) - 1} without gaps"
        for r in recs:
            prev = key_partition.setdefault(r.key, p)
            assert prev == p, f"key {r.key!r} found in partitions {prev} and {p}"
            k, s = r.value.split(b":")
            assert k == r.key, f"value {r.value!r} does not belong to key {r.key!r}"
            seqs[r.key].append(int(s))
    assert len(key_partition) == KEYS
    for key, p in key_partition.items():
        assert p == partition_for_key(key, PARTITIONS), f"key {key!r} in partition {p}, murmur2 says otherwise"
        assert seqs[key] == list(range(PER_KEY)), f"key {key!r} out of produce order: {seqs[key][:10]}..."


def test_murmur2_helper_matches_kafka_python_and_java_vectors():
    from kafka.partitioner.default import murmur2 as kp_murmur2
    for n in range(64):
        data = os.urandom(n)
        assert murmur2(data) & 0xFFFFFFFF == kp_murmur2(data) & 0xFFFFFFFF
    # Values from the Java client's UtilsTest.
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536


def test_acks_all_delivery_reports_cover_every_record_at_its_murmur2_partition(keyed):
    _, acks = keyed
    assert not acks.errors, f"{len(acks.errors)} delivery errors, first: {acks.errors[0][2]}"
    assert len(acks.acks) == TOTAL
    by_partition = defaultdict(list)
    for a in acks.acks:
        assert a.partition == partition_for_key(a.key, PARTITIONS)
        by_partition[a.partition].append(a.offset)
    for p, offs in by_partition.items():
        assert sorted(offs) == list(range(len(offs))), f"partition {p}: acknowledged offsets not dense from 0"
    assert len(by_partition) == PARTITIONS, "1000 keys should spread over all 6 partitions"


def test_confluent_consumer_reads_all_records_in_per_key_order(keyed):
    b, _ = keyed
    got = consume_confluent(b.bootstrap, TOPIC, range(PARTITIONS))
    assert_per_key_order(got)


def test_kafka_python_consumer_reads_all_records_in_per_key_order(keyed):
    b, _ = keyed
    got = consume_kafka_python(b.bootstrap, TOPIC, range(PARTITIONS))
    assert_per_key_order(got)


def test_kcat_reads_all_records_in_per_key_order(keyed):
    if not kcat_available():
        pytest.skip("kcat is not installed (scripts/test.sh installs it with apt-get)")
    b, _ = keyed
    from helpers import Rec
    got = {}
    for p in range(PARTITIONS):
        got[p] = [Rec(p, off, k, v) for off, k, v in consume_kcat(b.bootstrap, TOPIC, p)]
    assert_per_key_order(got)


def test_runnel_produce_and_confluent_put_each_key_in_the_same_partition(keyed, cli):
    b, _ = keyed
    topic = "keyed-cli"
    create_topic(b.bootstrap, topic, PARTITIONS)
    keys = [f"user-{i}" for i in range(200)]
    lines = "".join(f"{k}:from-cli\n" for k in keys)
    cli("-b", b.bootstrap, "produce", topic, "--key-separator", ":", "--acks", "all", input=lines, check=True)
    acks = produce_confluent(b.bootstrap, topic, [(k.encode(), b"from-confluent") for k in keys],
                             {"partitioner": "murmur2_random"})
    assert not acks.errors
    got = consume_confluent(b.bootstrap, topic, range(PARTITIONS))
    where: dict[tuple[bytes, bytes], int] = {}
    for p, recs in got.items():
        for r in recs:
            assert (r.key, r.value) not in where, f"duplicate {r.key!r}/{r.value!r}"
            where[(r.key, r.value)] = p
    assert len(where) == 2 * len(keys), f"expected {2 * len(keys)} records, read {len(where)}"
    for k in keys:
        kb = k.encode()
        cli_p, conf_p = where[(kb, b"from-cli")], where[(kb, b"from-confluent")]
        assert cli_p == conf_p == partition_for_key(kb, PARTITIONS), \
            f"key {k}: runnel produce -> {cli_p}, confluent -> {conf_p}, murmur2 -> {partition_for_key(kb, PARTITIONS)}"
