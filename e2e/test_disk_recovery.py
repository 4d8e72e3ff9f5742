"""Damage the last segment while the broker is down (truncated mid-batch, or one flipped byte):
on restart everything before the damaged batch is served, the damage is cut off and logged,
and new writes continue at the right offset."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from helpers import consume_confluent, consume_kafka_python, create_topic, produce_confluent, read_batches, watermarks

TOPIC = "damaged"
BATCHES = 30
PER_BATCH = 10


def fill(b) -> None:
    create_topic(b.bootstrap, TOPIC, 1)
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0})
    for batch in range(BATCHES):
        for i in range(PER_BATCH):
            p.produce(TOPIC, key=f"b{batch}".encode(), value=f"{batch:03d}-{i:02d}-".encode() + b"y" * 200)
        # One flush per batch keeps batch boundaries known: PER_BATCH records each.
        assert p.flush(30) == 0
    assert watermarks(b.bootstrap, TOPIC, 0) == (0, BATCHES * PER_BATCH)


def stop(b, how: str) -> None:
    if how == "kill9":
        b.kill9()
    else:
        assert b.terminate() == 0, "graceful shutdown must exit 0"


def last_batch(b):
    segs = b.segment_files(TOPIC, 0)
    assert segs, f"no segment files under {b.partition_dir(TOPIC, 0)}"
    seg = segs[-1]
    batches = read_batches(seg)
    assert batches, f"no batches parsed from {seg}"
    last = batches[-1]
    assert last.position + last.size == seg.stat().st_size or \
        all(x == 0 for x in seg.read_bytes()[last.position + last.size:]), "unexpected bytes after the last batch"
    return seg, last


def value_prefix(offset: int) -> bytes:
    return f"{offset // PER_BATCH:03d}-{offset % PER_BATCH:02d}-".encode()


def check_recovered(b, last) -> None:
    """Offsets before the damaged batch are served; the log ends where the damaged batch began."""
    good_end = last.base_offset
    assert last.base_offset + last.record_count == BATCHES * PER_BATCH, "damaged batch must be the log's tail"
    assert good_end > 0
    assert watermarks(b.bootstrap, TOPIC, 0) == (0, good_end), "log end must be the damaged batch's base offset"
    for got in (consume_confluent(b.bootstrap, TOPIC, [0])[0], consume_kafka_python(b.bootstrap, TOPIC, [0])[0]):
        assert [r.offset for r in got] == list(range(good_end))
        assert all(r.value.startswith(value_prefix(r.offset)) for r in got), "records changed"
    acks = produce_confluent(b.bootstrap, TOPIC, [(b"after", b"after-recovery")])
    assert not acks.errors and acks.acks[0].offset == good_end, "new writes must continue at the cut"
    got = consume_confluent(b.bootstrap, TOPIC, [0])[0]
    assert got[-1].value == b"after-recovery" and got[-1].offset == good_end
    err = b.stderr()
    assert "truncated" in err, f"recovery must log what it truncated; stderr:\n{err[-3000:]}"
    assert "panick" not in err.lower()


CUTS = {"1-byte": lambda size: 1, "length-only": lambda size: 12, "header-only": lambda size: 61,
        "half": lambda size: size // 2, "all-but-one": lambda size: size - 1}


@pytest.mark.parametrize("how", ["kill9", "graceful"])
@pytest.mark.parametrize("cut", list(CUTS))
def test_segment_truncated_mid_batch_is_cut_back_to_last_whole_batch(broker_factory, how, cut):
    b = broker_factory()
    fill(b)
    stop(b, how)
    seg, last = last_batch(b)
    with open(seg, "r+b") as f:
        f.truncate(last.position + CUTS[cut](last.size))
    b.restart()
    check_recovered(b, last)


@pytest.mark.parametrize("tail", ["zeros", "garbage"])
def test_junk_after_the_last_batch_is_cut_off(broker_factory, tail):
    import random
    b = broker_factory()
    fill(b)
    stop(b, "kill9")
    seg, last = last_batch(b)
    end = last.position + last.size
    junk = bytes(4096) if tail == "zeros" else random.Random(7).randbytes(4096)
    with open(seg, "r+b") as f:
        f.truncate(end)
        f.seek(end)
        f.write(junk)
    b.restart()
    total = BATCHES * PER_BATCH
    assert watermarks(b.bootstrap, TOPIC, 0) == (0, total), "whole batches before the junk must all be kept"
    acks = produce_confluent(b.bootstrap, TOPIC, [(b"after", b"after-junk")])
    assert not acks.errors and acks.acks[0].offset == total
    got = consume_confluent(b.bootstrap, TOPIC, [0])[0]
    assert [r.offset for r in got] == list(range(total + 1)) and got[-1].value == b"after-junk"
    # The new batch sits right after the last good one on disk: the junk is gone, not skipped over.
    on_disk = [bt.base_offset for sg in b.segment_files(TOPIC, 0) for bt in read_batches(sg)]
    assert on_disk[-1] == total, "junk was left in the segment (the new batch is not where the walk reaches)"
    if tail == "garbage":
        assert "truncated" in b.stderr()


@pytest.mark.parametrize("how", ["kill9", "graceful"])
def test_flipped_byte_in_last_batch_is_detected_by_crc_and_cut_off(broker_factory, how):
    b = broker_factory()
    fill(b)
    stop(b, how)
    seg, last = last_batch(b)
    # A byte inside the records section (covered by the CRC, past the 61-byte batch header).
    pos = last.position + 61 + (last.size - 61) // 2
    with open(seg, "r+b") as f:
        f.seek(pos)
        byte = f.read(1)
        f.seek(pos)
        f.write(bytes([byte[0] ^ 0x5A]))
    b.restart()
    check_recovered(b, last)


def test_deleted_index_files_are_rebuilt_and_reads_by_offset_work(broker_factory):
    b = broker_factory()
    fill(b)
    stop(b, "kill9")
    removed = [p for p in b.partition_dir(TOPIC, 0).iterdir() if p.suffix in (".index", ".timeindex")]
    for p in removed:
        p.unlink()
    b.restart()
    assert watermarks(b.bootstrap, TOPIC, 0) == (0, BATCHES * PER_BATCH)
    # Fetch from an offset in the middle of a batch.
    got = consume_confluent(b.bootstrap, TOPIC, [0])[0]
    assert [r.offset for r in got] == list(range(BATCHES * PER_BATCH))
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tp = KTP(TOPIC, 0)
        c.assign([tp])
        c.seek(tp, 155)
        msgs = []
        from helpers import wait_until

        def got_some():
            for batch in c.poll(timeout_ms=500).values():
                msgs.extend(batch)
            return msgs
        wait_until(got_some, 60, what="records from offset 155")
        assert msgs[0].offset == 155 and msgs[0].value.startswith(b"015-05-")
    finally:
        c.close()
