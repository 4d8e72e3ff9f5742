"""Shared helpers for the end-to-end tests: waiting, murmur2, third-party client wrappers,
a reader for on-disk record batches and a tiny raw Kafka request encoder for bad-input tests.

Tests may hand-encode protocol bytes (the no-hand-written-codec rule is for product code);
everything that talks to the broker normally goes through confluent-kafka, kafka-python or kcat.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


# -- waiting ----------------------------------------------------------------------

def wait_until(cond: Callable[[], object], timeout: float = 30.0, interval: float = 0.05,
               what: str = "condition"):
    """Poll `cond` until it returns a truthy value; fail with `what` after `timeout` seconds.

    Exceptions from `cond` count as "not yet" and the last one is reported on timeout.
    """
    end = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - a poll attempt failing is "not yet"
            last_exc = e
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


# -- murmur2 (the Java client's algorithm) ----------------------------------------------

def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2) as a signed 32-bit int."""
    m = 0x5BD1E995
    mask = 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    n4 = length // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    rest = length % 4
    tail = data[4 * n4:]
    if rest >= 3:
        h ^= tail[2] << 16
    if rest >= 2:
        h ^= tail[1] << 8
    if rest >= 1:
        h ^= tail[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, num_partitions: int) -> int:
    """toPositive(murmur2(key)) % numPartitions, as the Java DefaultPartitioner does."""
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


# -- admin via confluent-kafka -------------------------------------------------------

def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, name: str, partitions: int = 1, config: dict | None = None,
                 timeout: float = 30.0, replication_factor: int = 1) -> None:
    a = admin(bootstrap)
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=replication_factor,
                                   config=config or {})], operation_timeout=timeout, request_timeout=timeout)
    fs[name].result(timeout)
    wait_until(lambda: topic_partitions(bootstrap, name) == partitions, timeout,
               what=f"topic {name} with {partitions} partitions in metadata")


def topic_partitions(bootstrap: str, name: str) -> int:
    md = admin(bootstrap).list_topics(topic=name, timeout=10)
    t = md.topics.get(name)
    if t is None or t.error is not None:
        return 0
    return len(t.partitions)


def watermarks(bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "e2e-watermarks",
                  "enable.auto.commit": False})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


# -- producing ----------------------------------------------------------------------

@dataclass
class Ack:
    key: bytes | None
    value: bytes
    partition: int
    offset: int


class AckRecorder:
    """confluent-kafka delivery callback that keeps successes and failures apart."""

    def __init__(self):
        self.acks: list[Ack] = []
        self.errors: list[tuple[bytes | None, bytes, KafkaError]] = []

    def __call__(self, err, msg):
        if err is not None:
            self.errors.append((msg.key(), msg.value(), err))
        else:
            self.acks.append(Ack(msg.key(), msg.value(), msg.partition(), msg.offset()))


def produce_all(producer: Producer, records: Iterable[tuple], topic: str, on_delivery=None,
                flush_timeout: float = 120.0) -> None:
    """Produce (key, value[, partition[, timestamp]]) tuples, backing off when the local queue is full."""
    for rec in records:
        kwargs = {"key": rec[0], "value": rec[1]}
        if len(rec) > 2 and rec[2] is not None:
            kwargs["partition"] = rec[2]
        if len(rec) > 3 and rec[3] is not None:
            kwargs["timestamp"] = rec[3]
        while True:
            try:
                producer.produce(topic, on_delivery=on_delivery, **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(flush_timeout)
    assert left == 0, f"{left} messages still undelivered after {flush_timeout}s flush"


def produce_confluent(bootstrap: str, topic: str, records: Iterable[tuple], config: dict | None = None,
                      ) -> AckRecorder:
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5}
    conf.update(config or {})
    p = Producer(conf)
    rec = AckRecorder()
    produce_all(p, records, topic, on_delivery=rec)
    return rec


# -- consuming --------------------------------------------------------------------

@dataclass
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = -1


def _high_watermark(c: Consumer, topic: str, partition: int, timeout: float) -> int:
    """The partition's high watermark, asked again while leadership is moving (right after a
    failover or a healed partition the client's metadata may still name the old leader, which
    answers NOT_LEADER_FOR_PARTITION until the client refreshes)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)[1]
        except KafkaException as e:
            err = e.args[0] if e.args else None
            moving = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                      KafkaError._TRANSPORT, KafkaError._TIMED_OUT}
            if err is None or err.code() not in moving or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def consume_confluent(bootstrap: str, topic: str, partitions: Iterable[int], until: dict[int, int] | None = None,
                      timeout: float = 120.0, config: dict | None = None) -> dict[int, list[Rec]]:
    """Read partitions from the beginning up to `until[p]` (default: the high watermark) by explicit assignment."""
    conf = {"bootstrap.servers": bootstrap, "group.id": "e2e-assign-only", "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "enable.partition.eof": False}
    conf.update(config or {})
    c = Consumer(conf)
    try:
        parts = list(partitions)
        if until is None:
            until = {p: _high_watermark(c, topic, p, timeout) for p in parts}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out: dict[int, list[Rec]] = {p: [] for p in parts}
        done = {p for p in parts if until[p] == 0}
        end = time.monotonic() + timeout
        while len(done) < len(parts):
            if time.monotonic() > end:
                got = {p: (out[p][-1].offset if out[p] else None) for p in parts}
                raise AssertionError(f"confluent consumer timed out; last offsets {got}, wanted up to {until}")
            msgs = c.consume(num_messages=10000, timeout=0.5)
            for m in msgs:
                if m.error():
                    raise KafkaException(m.error())
                p = m.partition()
                out[p].append(Rec(p, m.offset(), m.key(), m.value(), m.timestamp()[1]))
                if m.offset() + 1 >= until[p]:
                    done.add(p)
        return out
    finally:
        c.close()


def consume_kafka_python(bootstrap: str, topic: str, partitions: Iterable[int], until: dict[int, int] | None = None,
                         timeout: float = 120.0) -> dict[int, list[Rec]]:
    """Read partitions from the beginning with kafka-python (assign + seek_to_beginning, no group)."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", request_timeout_ms=30000)
    try:
        parts = list(partitions)
        tps = [KTP(topic, p) for p in parts]
        c.assign(tps)
        if until is None:
            ends = c.end_offsets(tps)
            until = {tp.partition: off for tp, off in ends.items()}
        c.seek_to_beginning(*tps)
        out: dict[int, list[Rec]] = {p: [] for p in parts}
        end = time.monotonic() + timeout
        while any(c.position(KTP(topic, p)) < until[p] for p in parts):
            if time.monotonic() > end:
                raise AssertionError(f"kafka-python consumer timed out; positions "
                                     f"{ {p: c.position(KTP(topic, p)) for p in parts} }, wanted {until}")
            batch = c.poll(timeout_ms=500, max_records=10000)
            for tp, msgs in batch.items():
                for m in msgs:
                    out[tp.partition].append(Rec(tp.partition, m.offset, m.key, m.value, m.timestamp))
        return out
    finally:
        c.close()


def kcat_available() -> bool:
    return shutil.which("kcat") is not None


def consume_kcat(bootstrap: str, topic: str, partition: int, timeout: float = 120.0,
                 fmt: str = "%o\t%k\t%s\n") -> list[tuple[int, bytes, bytes]]:
    """kcat -C ... -o beginning -e; returns (offset, key, value) tuples (text payloads only)."""
    cp = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-p", str(partition), "-o", "beginning",
                         "-e", "-q", "-f", fmt], capture_output=True, timeout=timeout)
    assert cp.returncode == 0, f"kcat failed ({cp.returncode}): {cp.stderr.decode(errors='replace')}"
    rows = []
    for line in cp.stdout.split(b"\n"):
        if not line:
            continue
        off, key, val = line.split(b"\t", 2)
        rows.append((int(off), key, val))
    return rows


# -- HTTP ------------------------------------------------------------------------------

def http_get(url: str, timeout: float = 10.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


# -- on-disk record batches ----------------------------------------------------------------

@dataclass
class DiskBatch:
    position: int       # byte position of the batch in the segment file
    size: int           # total bytes (12-byte header + batchLength)
    base_offset: int
    last_offset_delta: int
    attributes: int
    record_count: int
    producer_id: int = -1


def read_batches(path: Path) -> list[DiskBatch]:
    """Walk a segment file as a sequence of v2 record batches (stops at a short tail)."""
    data = Path(path).read_bytes()
    pos = 0
    out = []
    while pos + 61 <= len(data):
        base_offset, batch_len = struct.unpack_from(">qi", data, pos)
        size = 12 + batch_len
        if batch_len <= 0 or pos + size > len(data):
            break
        attributes, last_delta = struct.unpack_from(">hi", data, pos + 21)
        count = struct.unpack_from(">i", data, pos + 57)[0]
        producer_id = struct.unpack_from(">q", data, pos + 43)[0]
        out.append(DiskBatch(pos, size, base_offset, last_delta, attributes, count, producer_id))
        pos += size
    return out


# -- raw Kafka requests (test-only encoding) -------------------------------------------------

def kstr(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def request_frame(api_key: int, api_version: int, correlation_id: int, body: bytes,
                  client_id: str = "e2e-raw") -> bytes:
    """Request header v1 (non-flexible) + body, length-prefixed."""
    payload = struct.pack(">hhi", api_key, api_version, correlation_id) + kstr(client_id) + body
    return struct.pack(">i", len(payload)) + payload


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def recv_frame(sock: socket.socket) -> bytes:
    (n,) = struct.unpack(">i", recv_exact(sock, 4))
    return recv_exact(sock, n)


def connect(bootstrap: str, timeout: float = 10.0) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.settimeout(timeout)
    return s


def connection_closed(sock: socket.socket, timeout: float = 15.0) -> bool:
    """True when the peer closes (EOF or reset) within `timeout`; any bytes it sends are drained."""
    sock.settimeout(timeout)
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def produce_v3_body(topic: str, partition: int, batch: bytes, acks: int = -1, timeout_ms: int = 30000) -> bytes:
    """Produce v3 request body: transactional_id, acks, timeout, [topic [partition records]]."""
    return (kstr(None) + struct.pack(">hi", acks, timeout_ms) + struct.pack(">i", 1) + kstr(topic)
            + struct.pack(">i", 1) + struct.pack(">i", partition) + struct.pack(">i", len(batch)) + batch)


def parse_produce_v3_response(body: bytes) -> list[tuple[str, int, int, int]]:
    """Returns (topic, partition, error_code, base_offset) from a Produce v3 response body (after correlation id)."""
    pos = 0
    (ntopics,) = struct.unpack_from(">i", body, pos)
    pos += 4
    out = []
    for _ in range(ntopics):
        (tlen,) = struct.unpack_from(">h", body, pos)
        pos += 2
        name = body[pos:pos + tlen].decode()
        pos += tlen
        (nparts,) = struct.unpack_from(">i", body, pos)
        pos += 4
        for _ in range(nparts):
            idx, err, base, _append_time = struct.unpack_from(">ihqq", body, pos)
            pos += 4 + 2 + 8 + 8
            out.append((name, idx, err, base))
    return out


def build_batch(records: list[tuple[bytes | None, bytes]], timestamp_ms: int | None = None) -> bytearray:
    """An uncompressed magic-v2 batch built by kafka-python's own builder (correct CRC)."""
    from kafka.record.default_records import DefaultRecordBatchBuilder
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    ts = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    for i, (k, v) in enumerate(records):
        assert b.append(i, timestamp=ts, key=k, value=v, headers=[]) is not None
    return b.build()


def fetch_v4_body(topic: str, partition: int, offset: int, max_wait_ms: int, min_bytes: int, max_bytes: int,
                  partition_max_bytes: int) -> bytes:
    """Fetch v4 request body (non-flexible): replica -1, read_uncommitted, one partition."""
    return (struct.pack(">iiiib", -1, max_wait_ms, min_bytes, max_bytes, 0) + struct.pack(">i", 1) + kstr(topic)
            + struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, partition_max_bytes))


@dataclass
class FetchedPartition:
    error_code: int
    high_watermark: int
    records: bytes


def parse_fetch_v4_response(body: bytes) -> dict[tuple[str, int], FetchedPartition]:
    """Parse a Fetch v4 response body (after the correlation id)."""
    pos = 4  # throttle_time_ms
    (ntopics,) = struct.unpack_from(">i", body, pos)
    pos += 4
    out = {}
    for _ in range(ntopics):
        (tlen,) = struct.unpack_from(">h", body, pos)
        pos += 2
        name = body[pos:pos + tlen].decode()
        pos += tlen
        (nparts,) = struct.unpack_from(">i", body, pos)
        pos += 4
        for _ in range(nparts):
            idx, err, hw, _lso = struct.unpack_from(">ihqq", body, pos)
            pos += 4 + 2 + 8 + 8
            (naborted,) = struct.unpack_from(">i", body, pos)
            pos += 4 + max(0, naborted) * 16
            (rlen,) = struct.unpack_from(">i", body, pos)
            pos += 4
            recs = b"" if rlen < 0 else body[pos:pos + rlen]
            pos += max(0, rlen)
            out[(name, idx)] = FetchedPartition(err, hw, recs)
    return out


def batches_in(data: bytes) -> list[tuple[int, int, int]]:
    """(base_offset, record_count, size) of each complete v2 batch in a fetched records blob."""
    pos = 0
    out = []
    while pos + 61 <= len(data):
        base, blen = struct.unpack_from(">qi", data, pos)
        size = 12 + blen
        if pos + size > len(data):
            break  # a partial trailing batch is allowed in fetch responses
        out.append((base, struct.unpack_from(">i", data, pos + 57)[0], size))
        pos += size
    return out


def init_producer_id(bootstrap: str) -> tuple[int, int]:
    """InitProducerId v1 (non-transactional); returns (producer_id, epoch)."""
    with connect(bootstrap) as s:
        s.sendall(request_frame(22, 1, 31, kstr(None) + struct.pack(">i", 60000)))
        resp = recv_frame(s)
    corr, _throttle, err, pid, epoch = struct.unpack_from(">iihqh", resp, 0)
    assert corr == 31 and err == 0, f"InitProducerId failed with error {err}"
    return pid, epoch


def build_idempotent_batch(records: list[bytes], producer_id: int, epoch: int, base_sequence: int) -> bytearray:
    """A magic-v2 batch carrying idempotent-producer fields, built by kafka-python's builder."""
    from kafka.record.default_records import DefaultRecordBatchBuilder
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=producer_id,
                                  producer_epoch=epoch, base_sequence=base_sequence, batch_size=1 << 20)
    ts = int(time.time() * 1000)
    for i, v in enumerate(records):
        assert b.append(i, timestamp=ts, key=None, value=v, headers=[]) is not None
    return b.build()
