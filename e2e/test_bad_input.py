"""Bad input gets the right Kafka error or a closed connection; the broker stays up and
stored data is untouched. Raw requests are hand-encoded here (tests only)."""

from __future__ import annotations

import errno
import os
import random
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer

from helpers import (admin, build_batch, connect, connection_closed, consume_confluent, create_topic,
                     parse_produce_v3_response, produce_confluent, produce_v3_body, recv_frame, request_frame,
                     wait_until, watermarks)

API_PRODUCE = 0
API_VERSIONS = 18


def assert_serving(b) -> None:
    assert b.alive(), f"broker died; stderr:\n{b.stderr()[-3000:]}"
    md = admin(b.bootstrap).list_topics(timeout=15)
    assert len(md.brokers) == 1


def raw_produce(b, topic: str, partition: int, batch: bytes) -> tuple[int, int]:
    with connect(b.bootstrap) as s:
        s.sendall(request_frame(API_PRODUCE, 3, 77, produce_v3_body(topic, partition, bytes(batch))))
        resp = recv_frame(s)
    (corr,) = struct.unpack_from(">i", resp, 0)
    assert corr == 77
    [(name, part, err, base)] = parse_produce_v3_response(resp[4:])
    assert (name, part) == (topic, partition)
    return err, base


def seed_data(b, topic: str = "precious", n: int = 50) -> list[bytes]:
    create_topic(b.bootstrap, topic, 1)
    values = [f"precious-{i}".encode() for i in range(n)]
    acks = produce_confluent(b.bootstrap, topic, [(None, v) for v in values])
    assert not acks.errors
    return values


def assert_data_intact(b, values: list[bytes], topic: str = "precious") -> None:
    got = consume_confluent(b.bootstrap, topic, [0])[0]
    assert [r.value for r in got] == values, "previously stored records changed"


def test_random_bytes_close_the_connection_and_broker_keeps_serving(broker):
    values = seed_data(broker)
    rnd = random.Random(1234)
    for i in range(20):
        with connect(broker.bootstrap) as s:
            try:
                if i % 2 == 0:
                    # Unframed garbage, then EOF from our side.
                    s.sendall(rnd.randbytes(rnd.randint(1, 5000)))
                    s.shutdown(socket.SHUT_WR)
                else:
                    # A plausible frame length around a garbage body.
                    body = rnd.randbytes(rnd.randint(8, 2000))
                    s.sendall(struct.pack(">i", len(body)) + body)
            except OSError as e:
                # The broker may drop us before we finish sending: that is the expected outcome.
                assert e.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN), e
                continue
            assert connection_closed(s), f"round {i}: broker kept a garbage connection open"
    assert_serving(broker)
    assert_data_intact(broker, values)


@pytest.mark.parametrize("claimed", [0x7FFFFFFF, 0x80000000, 0xFFFFFFFF])
def test_frame_claiming_2_gib_is_refused_without_allocating_it(broker, claimed):
    values = seed_data(broker)
    rss_before = broker.rss_kib()
    with connect(broker.bootstrap) as s:
        s.sendall(struct.pack(">I", claimed))
        try:
            s.sendall(b"\x00" * (1 << 20))
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed even sooner: fine
        assert connection_closed(s), "broker did not close a connection claiming a 2 GiB frame"
    rss_after = broker.rss_kib()
    hwm = broker.hwm_kib()
    assert rss_after - rss_before < 64 * 1024, f"RSS grew from {rss_before} KiB to {rss_after} KiB"
    assert hwm < 512 * 1024, f"broker peak RSS {hwm} KiB suggests it allocated the claimed frame"
    assert_serving(broker)
    assert_data_intact(broker, values)


def test_unknown_api_key_closes_connection(broker):
    with connect(broker.bootstrap) as s:
        s.sendall(request_frame(32000, 0, 1, b""))
        assert connection_closed(s)
    assert_serving(broker)


def test_api_versions_with_unsupported_version_gets_v0_reply_with_error_35(broker):
    with connect(broker.bootstrap) as s:
        s.sendall(request_frame(API_VERSIONS, 99, 4242, b""))
        resp = recv_frame(s)
    corr, err, n = struct.unpack_from(">ihi", resp, 0)
    assert corr == 4242
    assert err == 35, f"expected UNSUPPORTED_VERSION (35), got {err}"
    entries = {struct.unpack_from(">h", resp, 10 + 6 * i)[0]: struct.unpack_from(">hh", resp, 12 + 6 * i)
               for i in range(n)}
    assert API_VERSIONS in entries, "the reply must list the supported ApiVersions range"
    assert entries[API_VERSIONS][0] == 0 and entries[API_VERSIONS][1] >= 3
    assert_serving(broker)


def test_unsupported_version_of_metadata_is_refused(broker):
    with connect(broker.bootstrap) as s:
        s.sendall(request_frame(3, 99, 5, b"\x00\x00\x00\x00"))
        # Kafka closes the connection; an error reply before closing is also acceptable.
        assert connection_closed(s)
    assert_serving(broker)


def test_produce_to_missing_topic_with_auto_create_off_gets_unknown_topic(broker_factory):
    b = broker_factory("--auto-create-topics", "false")
    err, _ = raw_produce(b, "missing-topic", 0, build_batch([(None, b"x")]))
    assert err == 3, f"expected UNKNOWN_TOPIC_OR_PARTITION (3), got {err}"
    acks = produce_confluent(b.bootstrap, "missing-topic", [(None, b"x")],
                             {"message.timeout.ms": 10000, "topic.metadata.propagation.max.ms": 2000})
    assert acks.errors, "librdkafka delivered to a topic that does not exist"
    code = acks.errors[0][2].code()
    assert code in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC), acks.errors[0][2]
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError, UnknownTopicOrPartitionError
    kp = KafkaProducer(bootstrap_servers=b.bootstrap, max_block_ms=5000)
    try:
        with pytest.raises((KafkaTimeoutError, UnknownTopicOrPartitionError)):
            kp.send("missing-topic", b"x").get(timeout=10)
    finally:
        kp.close()
    assert "missing-topic" not in admin(b.bootstrap).list_topics(timeout=10).topics
    assert not list(b.data_dir.glob("missing-topic-*"))
    assert_serving(b)


def test_illegal_topic_name_gets_invalid_topic_exception(broker):
    md = admin(broker.bootstrap).list_topics(topic="bad name!", timeout=15)
    t = md.topics.get("bad name!")
    assert t is not None and t.error is not None and t.error.code() == KafkaError.TOPIC_EXCEPTION, \
        f"Metadata for an illegal name (auto-create on) must be INVALID_TOPIC_EXCEPTION, got {t and t.error}"
    err, _ = raw_produce(broker, "bad name!", 0, build_batch([(None, b"x")]))
    assert err in (17, 3), f"produce to an illegal topic name: expected INVALID_TOPIC_EXCEPTION, got {err}"
    assert "bad name!" not in admin(broker.bootstrap).list_topics(timeout=10).topics
    assert_serving(broker)


def test_record_over_max_message_bytes_gets_message_too_large(broker):
    values = seed_data(broker)
    create_topic(broker.bootstrap, "small-max", 1, config={"max.message.bytes": "10000"})
    acks = produce_confluent(broker.bootstrap, "small-max", [(None, b"z" * 20000)],
                             {"message.max.bytes": 10_000_000, "retries": 0, "message.timeout.ms": 20000})
    assert acks.errors and acks.errors[0][2].code() == KafkaError.MSG_SIZE_TOO_LARGE, acks.errors
    # Broker-wide default (1048588) applies to topics without an override.
    acks = produce_confluent(broker.bootstrap, "precious", [(None, b"z" * 2_000_000)],
                             {"message.max.bytes": 10_000_000, "retries": 0, "message.timeout.ms": 20000})
    assert acks.errors and acks.errors[0][2].code() == KafkaError.MSG_SIZE_TOO_LARGE, acks.errors
    assert watermarks(broker.bootstrap, "small-max", 0) == (0, 0)
    # A record under the limit still goes through.
    ok = produce_confluent(broker.bootstrap, "small-max", [(None, b"z" * 5000)])
    assert not ok.errors
    assert_data_intact(broker, values)


def test_batch_with_wrong_crc_gets_corrupt_message_and_nothing_is_written(broker):
    values = seed_data(broker)
    good = build_batch([(b"k", b"raw-good")])
    err, base = raw_produce(broker, "precious", 0, good)
    assert err == 0 and base == len(values), f"a correct hand-sent batch must be accepted (err={err}, base={base})"
    values.append(b"raw-good")

    bad = build_batch([(b"k", b"raw-corrupted-value")])
    bad[-5] ^= 0xFF  # inside the record value, covered by the CRC
    err, _ = raw_produce(broker, "precious", 0, bad)
    assert err == 2, f"expected CORRUPT_MESSAGE (2), got {err}"
    assert watermarks(broker.bootstrap, "precious", 0) == (0, len(values))
    assert_data_intact(broker, values)
    assert_serving(broker)


# -- full disk ---------------------------------------------------------------------------

@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("full-disk test needs root to mount a tmpfs (not running as root)")
    if shutil.which("mount") is None:
        pytest.skip("full-disk test needs the mount command (util-linux)")
    cp = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
                        capture_output=True, text=True)
    if cp.returncode != 0:
        pytest.skip(f"full-disk test cannot mount a tmpfs here: {cp.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill_disk(path: Path) -> int:
    """Write `path` until the filesystem is full; returns bytes written."""
    written = 0
    chunk = b"\xAB" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    return written


def test_full_disk_fails_produce_keeps_data_and_resumes_when_space_returns(small_tmpfs, broker_factory):
    # small_tmpfs is requested first so it is torn down (unmounted) after the broker stops.
    b = broker_factory("--log-segment-bytes", "1048576", "--auto-create-topics", "false",
                       data_dir=small_tmpfs / "data")
    topic = "full"
    create_topic(b.bootstrap, topic, 1)
    first = produce_confluent(b.bootstrap, topic, [(None, f"before-{i}-".encode() + b"p" * 1000) for i in range(200)])
    assert not first.errors and len(first.acks) == 200

    filler = small_tmpfs / "filler"
    fill_disk(filler)
    print(f"filler holds {filler.stat().st_size} bytes; tmpfs is full")

    err, _ = raw_produce(b, topic, 0, build_batch([(None, b"r" * 8000) for _ in range(64)]))
    print(f"raw produce of 512 KB into the full tmpfs: error code {err}")
    assert err == 56, f"expected KAFKA_STORAGE_ERROR (56) for a write that hit a full disk, got {err}"

    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5, "message.timeout.ms": 15000})
    from helpers import AckRecorder, produce_all
    during = AckRecorder()
    try:
        produce_all(p, [(None, f"during-{i}-".encode() + b"q" * 4000) for i in range(300)], topic,
                    on_delivery=during, flush_timeout=60)
    except AssertionError:
        pass  # undelivered after flush counts as failure to produce, which is what we expect
    codes = sorted({e[2].name() for e in during.errors})
    print(f"full disk: {len(during.acks)} acked, {len(during.errors)} failed with {codes}")
    assert during.errors, "producing 1.2 MB into a full tmpfs raised no error at all"
    assert b.alive(), f"broker died on a full disk; stderr:\n{b.stderr()[-3000:]}"
    assert_serving(b)

    acked = [a.value for a in first.acks] + [a.value for a in during.acks]
    got = consume_confluent(b.bootstrap, topic, [0])[0]
    assert [r.offset for r in got] == list(range(len(got))), "log has a gap after disk-full errors"
    stored = [r.value for r in got]
    assert stored[:200] == [a.value for a in first.acks], "records stored before the disk filled were lost"
    assert set(acked) <= set(stored), "a record acknowledged while the disk was full is missing"

    filler.unlink()
    after = AckRecorder()
    p2 = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "message.timeout.ms": 10000})

    def produce_one():
        n = len(after.acks)
        p2.produce(topic, value=f"after-{time.monotonic()}".encode(), on_delivery=after)
        p2.flush(15)
        return len(after.acks) > n
    wait_until(produce_one, 90, interval=0.5, what="writes to resume once space returned")
    got = consume_confluent(b.bootstrap, topic, [0])[0]
    assert [r.offset for r in got] == list(range(len(got))), "log has a gap after space returned"
    stored = [r.value for r in got]
    assert set(acked) <= set(stored)
    assert after.acks[-1].value in stored
    assert after.acks[-1].offset == got[-1].offset
    assert "panick" not in b.stderr().lower()
    # And all of it is still there after a crash and recovery on the once-full disk.
    b.kill9()
    b.restart()
    got = consume_confluent(b.bootstrap, topic, [0])[0]
    assert [r.offset for r in got] == list(range(len(got)))
    stored = [r.value for r in got]
    assert set(acked) <= set(stored) and all(a.value in stored for a in after.acks)


def test_pipelined_requests_are_answered_in_order(broker):
    """Kafka answers requests on one connection in the order they were sent, even when the
    first one (a long-poll fetch) takes longer than the second."""
    from helpers import fetch_v4_body
    create_topic(broker.bootstrap, "pipelined", 1)
    with connect(broker.bootstrap, timeout=30) as s:
        s.sendall(request_frame(1, 4, 100, fetch_v4_body("pipelined", 0, 0, 1000, 1, 1 << 20, 1 << 20))
                  + request_frame(API_VERSIONS, 0, 101, b"")
                  + request_frame(3, 1, 102, struct.pack(">i", 0)))
        order = [struct.unpack_from(">i", recv_frame(s), 0)[0] for _ in range(3)]
    assert order == [100, 101, 102], f"responses came back in order {order}"


def test_created_topic_survives_immediate_kill_9(broker):
    create_topic(broker.bootstrap, "durable-meta", 3, config={"retention.ms": "3600000"})
    broker.kill9()
    broker.restart()
    md = admin(broker.bootstrap).list_topics(topic="durable-meta", timeout=15)
    t = md.topics.get("durable-meta")
    assert t is not None and t.error is None and len(t.partitions) == 3, "acknowledged CreateTopics lost by kill -9"


def test_old_message_format_produce_is_refused_and_nothing_is_stored(broker):
    """Produce v2 with a magic-v1 message set (pre-0.11 format) is refused; the log is untouched."""
    from kafka.record.legacy_records import LegacyRecordBatchBuilder
    values = seed_data(broker)
    builder = LegacyRecordBatchBuilder(magic=1, compression_type=0, batch_size=1 << 20)
    builder.append(0, timestamp=None, key=None, value=b"legacy")
    msgset = bytes(builder.build())
    with connect(broker.bootstrap) as s:
        s.sendall(request_frame(API_PRODUCE, 2, 88, produce_v3_body("precious", 0, msgset)[2:]))
        try:
            resp = recv_frame(s)
            [(_, _, err, _)] = parse_produce_v3_response(resp[4:])
            assert err != 0, "a magic-v1 message set was accepted"
        except ConnectionError:
            pass  # closing the connection is also a refusal
    assert watermarks(broker.bootstrap, "precious", 0) == (0, len(values))
    assert_data_intact(broker, values)
    assert_serving(broker)
