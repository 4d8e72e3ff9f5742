"""kill -9 while an idempotent librdkafka producer is sending: nothing acknowledged is lost,
nothing is duplicated, and the log has no gap."""

from __future__ import annotations

from collections import defaultdict

from confluent_kafka import Producer

from helpers import AckRecorder, consume_confluent, create_topic, wait_until

TOPIC = "crash"
PARTITIONS = 3
TOTAL = 120_000
KILL_AFTER_ACKS = (15_000, 45_000, 80_000)


def test_idempotent_acks_survive_kill_9_exactly_once_in_order_without_gaps(broker_factory):
    b = broker_factory()
    create_topic(b.bootstrap, TOPIC, PARTITIONS)
    rec = AckRecorder()
    p = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 2, "message.timeout.ms": 120000, "reconnect.backoff.max.ms": 500,
                  "partitioner": "murmur2_random"})
    kills = list(KILL_AFTER_ACKS)
    padding = b"." * 100

    def kill_and_restart(produced: int) -> None:
        in_flight = produced - len(rec.acks) - len(rec.errors)
        print(f"kill -9 after {len(rec.acks)} acks with {in_flight} records produced but not yet acknowledged")
        assert in_flight > 0, "nothing was in flight at the kill: the test would prove nothing"
        b.kill9()
        b.restart()

    for i in range(TOTAL):
        key = f"k{i % 97}".encode()
        value = f"v{i:06d}".encode() + padding
        while True:
            try:
                p.produce(TOPIC, key=key, value=value, on_delivery=rec)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
        if kills and len(rec.acks) >= kills[0]:
            # Sends are in flight right now: that is the point of killing here.
            kills.pop(0)
            kill_and_restart(i + 1)
    while kills:
        target = kills.pop(0)

        def enough_acks():
            p.poll(0.1)
            return len(rec.acks) >= target
        wait_until(enough_acks, 120, what="enough acknowledgements before the kill")
        if len(rec.acks) < TOTAL:
            kill_and_restart(TOTAL)
    left = p.flush(180)
    assert left == 0, f"{left} messages undelivered after restart"
    assert not rec.errors, f"{len(rec.errors)} delivery errors after restart, first: {rec.errors[0][2]}"
    assert len(rec.acks) == TOTAL

    got = consume_confluent(b.bootstrap, TOPIC, range(PARTITIONS))
    acked_by_partition: dict[int, list] = defaultdict(list)
    for a in rec.acks:
        acked_by_partition[a.partition].append(a)
    seen_values = set()
    for part, recs in got.items():
        offsets = [r.offset for r in recs]
        assert offsets == list(range(len(recs))), f"partition {part}: log has a gap or does not start at 0"
        for r in recs:
            assert r.value not in seen_values, f"duplicate record {r.value!r} (partition {part} offset {r.offset})"
            seen_values.add(r.value)
        stored = {r.offset: (r.key, r.value) for r in recs}
        acked = acked_by_partition[part]
        for a in acked:
            assert stored.get(a.offset) == (a.key, a.value), \
                f"acknowledged {a.value!r} at {part}/{a.offset} but the log holds {stored.get(a.offset)!r}"
        # Acknowledged order per partition is offset order.
        assert [a.offset for a in acked] == sorted(a.offset for a in acked)
        # Within a partition the producer's send order (value sequence) is the log order.
        seqs = [int(r.value[1:7]) for r in recs]
        assert seqs == sorted(seqs), f"partition {part}: records are out of send order"
    assert len(seen_values) == TOTAL, f"log holds {len(seen_values)} distinct records, {TOTAL} were acknowledged"
    # The producer really ran idempotently (otherwise this test would not exercise deduplication).
    from helpers import read_batches
    pids = {bt.producer_id for part in range(PARTITIONS) for seg in b.segment_files(TOPIC, part)
            for bt in read_batches(seg)}
    assert pids and all(pid >= 0 for pid in pids), f"batches on disk carry producer ids {pids}"
    assert "panick" not in b.all_stderr().lower()


def verify_exactly_once(b, rec: AckRecorder, partitions: int) -> int:
    """Every acknowledged record is stored once at its acknowledged offset; logs are dense and
    hold no duplicates; returns the number of stored records."""
    got = consume_confluent(b.bootstrap, TOPIC, range(partitions))
    stored_total = 0
    seen = set()
    by_part: dict[int, dict[int, tuple]] = {}
    for part, recs in got.items():
        assert [r.offset for r in recs] == list(range(len(recs))), f"partition {part}: log has a gap"
        for r in recs:
            assert r.value not in seen, f"duplicate record {r.value!r} at {part}/{r.offset}"
            seen.add(r.value)
        by_part[part] = {r.offset: (r.key, r.value) for r in recs}
        stored_total += len(recs)
    for a in rec.acks:
        assert by_part[a.partition].get(a.offset) == (a.key, a.value), \
            f"acknowledged {a.value!r} at {a.partition}/{a.offset} is not there"
    return stored_total


def test_random_kill_9s_under_load_lose_and_duplicate_nothing(broker_factory):
    import random
    import threading
    import time

    seed = random.randrange(1 << 30)
    print(f"random kill schedule seed {seed}")
    rnd = random.Random(seed)
    b = broker_factory()
    create_topic(b.bootstrap, TOPIC, PARTITIONS)
    rec = AckRecorder()
    p = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 1, "message.timeout.ms": 120000, "reconnect.backoff.max.ms": 200})
    killer_done = threading.Event()
    kills: list[int] = []

    def killer():
        try:
            for _ in range(6):
                # Let the producer get going again (acks flowing) before the next kill.
                before = len(rec.acks)
                wait_until(lambda: len(rec.acks) > before + 1000, 90, interval=0.01,
                           what="acknowledgements to resume after a restart")
                time.sleep(rnd.uniform(0.0, 0.3))
                kills.append(len(rec.acks))
                b.kill9()
                b.restart()
        finally:
            killer_done.set()
    t = threading.Thread(target=killer)
    t.start()
    i = 0
    try:
        while not killer_done.is_set() or i < 50_000:
            try:
                p.produce(TOPIC, key=f"k{i % 31}".encode(), value=f"v{i:07d}".encode(), on_delivery=rec)
                i += 1
            except BufferError:
                p.poll(0.05)
            p.poll(0)
    finally:
        t.join()
    print(f"produced {i} records; kills after {kills} acks")
    assert len(kills) == 6, f"the kill schedule stopped early after {len(kills)} kills (see the killer's error above)"
    assert p.flush(180) == 0
    assert not rec.errors, f"{len(rec.errors)} delivery errors, first: {rec.errors[0][2]}"
    assert len(rec.acks) == i
    assert verify_exactly_once(b, rec, PARTITIONS) == i
