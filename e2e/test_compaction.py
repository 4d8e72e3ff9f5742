"""Log compaction seen through third-party clients: after the background cleaner runs, reading
a compacted topic from the beginning returns exactly the latest value of each live key at its
original offset, tombstones stay for delete.retention.ms and then disappear, and keyless
records are refused with INVALID_RECORD by librdkafka and kafka-python."""

from __future__ import annotations

from confluent_kafka import KafkaError, Producer

from groups import GROUP_BROKER_ARGS
from helpers import consume_confluent, create_topic, produce_all, wait_until, watermarks

KEYS = 100
UPDATES = 1000
DELETED = 10  # key-000 .. key-009 end with a tombstone
MARKER = b"roll-marker"


def key(i: int) -> bytes:
    return f"key-{i:03d}".encode()


def value(i: int, r: int) -> bytes:
    return f"key-{i:03d}=v{r}".encode()


def write_history(bootstrap: str, topics: list[str]) -> dict[str, dict[bytes, tuple[int, bytes | None]]]:
    """Writes the same history to every topic; returns topic -> key -> (offset, value) of its last write.

    Every key is updated UPDATES times; DELETED keys then get a tombstone. Phases are flushed
    separately so that, with a tiny segment.bytes, each lands in segments of its own: the
    updates (the last update of the live keys comes after the tombstones), then the
    tombstones, then those last updates, and finally one marker record that closes the segment
    holding them (the cleaner never touches the active segment).
    """
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    latest: dict[str, dict[bytes, tuple[int, bytes | None]]] = {t: {} for t in topics}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            # Delivery reports arrive in offset order per partition, so the last one wins.
            latest[msg.topic()][msg.key()] = (msg.offset(), msg.value())

    def phase(records: list[tuple[bytes, bytes | None]]) -> None:
        for t in topics:
            produce_all(p, records, t, on_delivery=on_delivery)

    phase([(key(k), value(k, r)) for r in range(UPDATES - 1) for k in range(KEYS)]
          + [(key(k), value(k, UPDATES - 1)) for k in range(DELETED)])
    phase([(key(k), None) for k in range(DELETED)])
    phase([(key(k), value(k, UPDATES - 1)) for k in range(DELETED, KEYS)])
    phase([(MARKER, b"closes the segment of the last updates")])
    assert not errors, errors[:3]
    return latest


def log_bytes(broker, topic: str) -> int:
    return broker.log_size(topic, 0)


def read_all(bootstrap: str, topic: str):
    return consume_confluent(bootstrap, topic, [0], timeout=60)[0]


def test_compacted_topic_keeps_latest_value_per_key_and_drops_tombstones_after_delete_retention(broker_factory):
    b = broker_factory(*GROUP_BROKER_ARGS)
    bs = b.bootstrap
    base = {"cleanup.policy": "compact", "segment.bytes": "1024", "min.cleanable.dirty.ratio": "0.01"}
    keep, drop = "compacted-keep-tombstones", "compacted-drop-tombstones"
    create_topic(bs, keep, 1, config={**base, "delete.retention.ms": "86400000"})
    create_topic(bs, drop, 1, config={**base, "delete.retention.ms": "1000"})
    latest = write_history(bs, [keep, drop])
    total = KEYS * UPDATES + DELETED + 1
    for t in (keep, drop):
        assert watermarks(bs, t, 0) == (0, total)

    # The background cleaner (every 300 ms here; it may already be at work) shrinks both logs
    # from about 1 MB to about one record per key.
    for t in (keep, drop):
        wait_until(lambda: log_bytes(b, t) < 64 * 1024, 120, interval=0.2,
                   what=f"the cleaner to compact {t} (now {log_bytes(b, t)} bytes)")

    def exactly_latest(topic: str, tombstones: bool) -> bool:
        recs = read_all(bs, topic)
        want = {k: ov for k, ov in latest[topic].items() if tombstones or ov[1] is not None}
        got = {r.key: (r.offset, r.value) for r in recs}
        return len(recs) == len(got) and got == want

    # Long delete.retention.ms: the tombstones are still there, one record per key.
    wait_until(lambda: exactly_latest(keep, tombstones=True), 60, interval=0.3,
               what=f"{keep} to hold exactly the latest record of each key, tombstones included")
    # delete.retention.ms=1000: the tombstones go as well.
    wait_until(lambda: exactly_latest(drop, tombstones=False), 60, interval=0.3,
               what=f"{drop} to hold exactly the latest value of each live key and no tombstones")

    for t, n_keys in ((keep, KEYS + 1), (drop, KEYS - DELETED + 1)):
        recs = read_all(bs, t)
        offsets = [r.offset for r in recs]
        assert len(recs) == n_keys
        assert offsets == sorted(set(offsets)), f"{t}: offsets do not increase: {offsets[:20]}"
        live = {r.key: r.value for r in recs if r.value is not None}
        assert live == {**{key(k): value(k, UPDATES - 1) for k in range(DELETED, KEYS)},
                        MARKER: latest[t][MARKER][1]}
        # Offsets are unchanged: the log end is where it was and the last record kept its offset.
        assert watermarks(bs, t, 0)[1] == total
        assert offsets[-1] == total - 1
    tomb = [r for r in read_all(bs, keep) if r.value is None]
    assert sorted(r.key for r in tomb) == [key(k) for k in range(DELETED)]


def test_keyless_produce_to_compacted_topic_is_refused_with_invalid_record(broker_factory):
    b = broker_factory(*GROUP_BROKER_ARGS)
    bs = b.bootstrap
    topic = "compacted-keyed-only"
    create_topic(bs, topic, 1, config={"cleanup.policy": "compact"})

    # librdkafka
    p = Producer({"bootstrap.servers": bs, "acks": "all", "retries": 0})
    results = []
    p.produce(topic, value=b"no key", on_delivery=lambda err, msg: results.append(err))
    assert p.flush(30) == 0
    # A separate batch: Kafka refuses a whole batch that holds a keyless record.
    p.produce(topic, key=b"k", value=b"with key", on_delivery=lambda err, msg: results.append(err))
    assert p.flush(30) == 0
    assert len(results) == 2
    assert results[0] is not None and results[0].code() == KafkaError.INVALID_RECORD, results[0]
    assert results[1] is None, results[1]

    # kafka-python
    from kafka import KafkaProducer
    from kafka.errors import InvalidRecordError
    kp = KafkaProducer(bootstrap_servers=bs, acks="all", retries=0)
    try:
        fut = kp.send(topic, value=b"no key either")
        try:
            fut.get(timeout=30)
            raise AssertionError("kafka-python's keyless record to a compacted topic was accepted")
        except InvalidRecordError:
            pass
        assert kp.send(topic, key=b"k2", value=b"keyed").get(timeout=30).offset == 1
    finally:
        kp.close(timeout=10)

    recs = read_all(bs, topic)
    assert [(r.key, r.value) for r in recs] == [(b"k", b"with key"), (b"k2", b"keyed")]


def test_a_batch_with_keyless_records_names_them_so_librdkafka_fails_only_those(broker_factory):
    """KIP-467, as librdkafka's test 0011 checks it: one batch of 100 records of which every
    tenth has no key, to a compacted topic. The broker refuses the batch with INVALID_RECORD and
    lists the keyless records' batch indexes, so librdkafka fails exactly those 10 with
    INVALID_RECORD and the other 90 with _INVALID_DIFFERENT_RECORD (not stored, may be retried);
    nothing is written. With one record per batch the 90 keyed records are stored."""
    b = broker_factory(*GROUP_BROKER_ARGS)
    bs = b.bootstrap
    topic = "compacted-record-errors"
    create_topic(bs, topic, 1, config={"cleanup.policy": "compact"})

    def produce_hundred(extra: dict) -> dict[str, list[int]]:
        outcome: dict[str, list[int]] = {}

        def on_delivery(err, msg):
            name = "ok" if err is None else err.name()
            outcome.setdefault(name, []).append(int(msg.value().split(b"#")[1]))

        p = Producer({"bootstrap.servers": bs, "acks": "all", "retries": 0,
                      "linger.ms": 1000, **extra})
        for i in range(100):
            key = None if i % 10 == 0 else f"k{i}".encode()
            p.produce(topic, key=key, value=f"record #{i}".encode(), partition=0,
                      on_delivery=on_delivery)
        assert p.flush(60) == 0
        return {k: sorted(v) for k, v in outcome.items()}

    keyless = list(range(0, 100, 10))
    keyed = [i for i in range(100) if i % 10 != 0]
    assert produce_hundred({}) == {"INVALID_RECORD": keyless, "_INVALID_DIFFERENT_RECORD": keyed}
    assert watermarks(bs, topic, 0) == (0, 0), "a refused batch writes nothing"

    assert produce_hundred({"batch.size": 1}) == {"INVALID_RECORD": keyless, "ok": keyed}
    recs = read_all(bs, topic)
    assert [int(r.value.split(b"#")[1]) for r in recs] == keyed
