"""A hostile client replays mutated real-client frames at a running broker (issue 9).

The frames are what confluent-kafka (librdkafka) sends, recorded live through a proxy in front of
the broker, plus the committed fuzz seed corpus (`broker/fuzz/corpus/request`, recorded from
confluent-kafka, kafka-python and kcat by `scripts/capture_frames.py`). Each is mutated the way
the issue describes (bit flips, a changed byte, a truncated body, an extreme int32 or int16 at a
random offset, a length or count set to 0x7fffffff, a record batch damaged behind a fixed CRC)
and sent on raw sockets, thousands of frames per seed. Afterwards the broker must still be the
same process, answer ApiVersions on a new connection, have logged no panic and no failed
allocation, and serve every record acknowledged before the replay, unchanged.

Bad input that needs no real-client frames (garbage, a 2 GiB frame header, wrong CRC) is in
test_bad_input.py.
"""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from frames import RecordingProxy, api_versions_answers, load_corpus, mutants, replay
from helpers import consume_confluent, create_topic, produce_confluent

REPO_ROOT = Path(__file__).resolve().parent.parent
SEED_CORPUS = REPO_ROOT / "broker" / "fuzz" / "corpus" / "request"
SEEDS = (9, 909, 90909)
FRAMES_PER_SEED = 4000
PRECIOUS = "hostile-precious"
TRAFFIC = "hostile-traffic"


def live_client_traffic(bootstrap: str) -> None:
    """What an application and an admin do: idempotent compressed produce, a group that consumes
    and commits, offsets and config look-ups. Every frame goes through the recording proxy."""
    acks = produce_confluent(bootstrap, TRAFFIC, [(f"k{i % 5}".encode(), f"traffic {i}".encode()) for i in range(60)],
                             {"enable.idempotence": True, "compression.type": "lz4"})
    assert not acks.errors, acks.errors[:3]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "hostile-group", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 10000})
    try:
        c.subscribe([TRAFFIC])
        got = 0
        end = time.monotonic() + 60
        while got < 60:
            assert time.monotonic() < end, f"group consumer got {got} of 60 records"
            got += sum(1 for m in c.consume(num_messages=100, timeout=0.5) if not m.error())
        c.commit(asynchronous=False)
    finally:
        c.close()
    a = AdminClient({"bootstrap.servers": bootstrap})
    for f in a.list_offsets({TopicPartition(TRAFFIC, 0): OffsetSpec.latest(),
                             TopicPartition(TRAFFIC, 1): OffsetSpec.earliest()}).values():
        f.result(30)
    a.list_consumer_groups().result(30)
    for f in a.describe_consumer_groups(["hostile-group"]).values():
        f.result(30)


def test_mutated_client_frames_leave_the_broker_serving_and_acked_records_intact(broker_factory, tmp_path):
    proxy = RecordingProxy().start()
    try:
        b = broker_factory("--advertised-address", proxy.address)
        proxy.set_upstream(b.host, b.port)
        bootstrap = proxy.address

        create_topic(bootstrap, PRECIOUS, 2)
        create_topic(bootstrap, TRAFFIC, 2)
        records = [(f"key-{i}".encode(), f"precious value {i}".encode() * (1 + i % 4), i % 2) for i in range(300)]
        acked = produce_confluent(bootstrap, PRECIOUS, records, {"enable.idempotence": True})
        assert not acked.errors and len(acked.acks) == len(records), acked.errors[:3]
        live_client_traffic(bootstrap)

        live = [c.frame for c in proxy.snapshot() if c.direction == "request"]
        seeds = load_corpus(SEED_CORPUS) if SEED_CORPUS.is_dir() else []
        frames = sorted(set(live) | set(seeds))
        print(f"{len(live)} live frames, {len(seeds)} corpus seeds, {len(frames)} distinct")
        assert len(live) > 20, "the live clients sent too few frames to mutate"

        started = time.monotonic()
        for seed in SEEDS:
            stats = replay(b.bootstrap, mutants(frames, FRAMES_PER_SEED, seed), alive=b.alive, concurrency=16,
                           deadline_s=2.0)
            print(f"seed {seed}: sent {stats.sent}, answered {stats.answered}, closed {stats.closed}, "
                  f"slow {stats.slow}, refused {stats.refused}")
            if not b.alive():
                saved = tmp_path / f"last-frames-seed-{seed}"
                saved.mkdir()
                for i, (frame, what) in enumerate(stats.last):
                    (saved / f"{i:02d}-{what.replace('/', '_')}").write_bytes(frame)
                raise AssertionError(
                    f"broker died (exit {b.proc.returncode}) during seed {seed} after {stats.sent} frames; "
                    f"the last frames sent are in {saved}\nstderr tail:\n{b.stderr()[-3000:]}")
            assert stats.sent == FRAMES_PER_SEED, f"seed {seed}: only {stats.sent} frames could be sent ({stats})"
        print(f"replayed {len(SEEDS) * FRAMES_PER_SEED} mutated frames in {time.monotonic() - started:.1f}s")

        assert b.alive(), f"broker died; stderr tail:\n{b.stderr()[-3000:]}"
        assert api_versions_answers(b.bootstrap), "no ApiVersions answer on a new connection"
        logs = b.stdout_path.read_text(errors="replace") + b.stderr()
        for bad in ("panicked", "memory allocation of"):
            assert bad not in logs, f"broker log contains {bad!r}:\n" + "\n".join(
                line for line in logs.splitlines() if bad in line)[:3000]

        got = consume_confluent(bootstrap, PRECIOUS, [0, 1])
        stored = {(r.partition, r.offset): (r.key, r.value) for recs in got.values() for r in recs}
        missing = [a for a in acked.acks if stored.get((a.partition, a.offset)) != (a.key, a.value)]
        assert not missing, (f"{len(missing)} of {len(acked.acks)} acknowledged records changed or vanished, "
                             f"e.g. {missing[:3]}")
    finally:
        proxy.stop()
