#!/usr/bin/env python3
"""Records real client traffic into the fuzz seed corpora under broker/fuzz/corpus/.

Starts a `runnel-broker` (debug build by default) that advertises a recording proxy as its
address, so every connection of every client goes through the proxy; drives it with
confluent-kafka (librdkafka), kafka-python and kcat doing what applications and admins do
(idempotent acks=all producers with every compression codec, group consumers that commit,
admin calls on topics, configs, partitions, groups and offsets, metadata); then writes:

  corpus/request/<sha1>         each request frame, without its size prefix
  corpus/response/<sha1>        api key (i16) + version (i16) of the request, then the response frame
  corpus/record_batch/<sha1>    each magic-v2 record batch found in Produce requests and Fetch responses
  corpus/offsets_record/<sha1>  __consumer_offsets keys (0x00 + key) and values (0x01/0x02 + value)
  corpus/raft_rpc/<sha1>        metadata quorum RPC frames (JSON) between three brokers (--raft)

Frames are deduplicated and thinned to a few per API key and version so the committed corpus
stays small; libFuzzer grows its own working copy from these seeds.

Usage: scripts/capture_frames.py [--out broker/fuzz/corpus] [--replace] [--raft]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "e2e"))

from conftest import Broker  # noqa: E402
from frames import RecordingProxy, record_batches_in, write_corpus  # noqa: E402
from helpers import wait_until  # noqa: E402

# Seeds kept per (API key, version) and direction; batches kept per attributes value.
PER_API_VERSION = 6
PER_BATCH_KIND = 6
# Larger frames add bytes to the repository without adding shapes libFuzzer cannot reach.
MAX_SEED_BYTES = 16 << 10


def log(msg: str) -> None:
    print(f"[capture] {msg}", flush=True)


def step(name: str, fn) -> None:
    """Runs one client scenario; a failure is reported and the capture goes on (the broker may
    not implement everything a client tries, and the frames sent are what we want)."""
    t = time.monotonic()
    try:
        fn()
        log(f"{name}: ok ({time.monotonic() - t:.1f}s)")
    except Exception as e:  # noqa: BLE001 - keep capturing whatever one client did
        log(f"{name}: {type(e).__name__}: {e}")


# -- client scenarios ---------------------------------------------------------------------------

def confluent_admin_and_produce(bs: str) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    a = AdminClient({"bootstrap.servers": bs})
    fs = a.create_topics([
        NewTopic("cap-plain", num_partitions=3, replication_factor=1, config={"retention.ms": "3600000"}),
        NewTopic("cap-compact", num_partitions=1, replication_factor=1,
                 config={"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}),
        NewTopic("cap-doomed", num_partitions=1, replication_factor=1),
    ], operation_timeout=30)
    for f in fs.values():
        f.result(30)
    wait_until(lambda: all(t in a.list_topics(timeout=10).topics for t in ("cap-plain", "cap-compact")), 30,
               what="captured topics in metadata")
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        p = Producer({"bootstrap.servers": bs, "enable.idempotence": True, "acks": "all",
                      "compression.type": codec, "linger.ms": 5, "client.id": f"cap-{codec}"})
        for i in range(30):
            p.produce("cap-plain", key=f"k{i % 7}".encode(), value=f"{codec} value {i} ".encode() * 3,
                      headers=[("h", f"{i}".encode())] if i % 3 == 0 else None)
            if i % 10 == 0:
                p.produce("cap-compact", key=f"ck{i}".encode(), value=None if i == 20 else b"compact")
        assert p.flush(60) == 0


def confluent_group_consume(bs: str) -> None:
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bs, "group.id": "cap-group-ck", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 10000,
                  "partition.assignment.strategy": "range"})
    c.subscribe(["cap-plain"])
    got = 0
    end = time.monotonic() + 60
    while got < 150 and time.monotonic() < end:
        batch = [m for m in c.consume(num_messages=100, timeout=0.5) if not m.error()]
        got += len(batch)
        if batch:
            c.commit(asynchronous=False)
    c.close()
    assert got >= 150, f"consumed {got} of 150"


def confluent_admin_inspect(bs: str) -> None:
    from confluent_kafka import (ConsumerGroupTopicPartitions, IsolationLevel, TopicCollection,
                                 TopicPartition)
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                       NewPartitions, OffsetSpec, ResourceType)

    a = AdminClient({"bootstrap.servers": bs})
    res = ConfigResource(ResourceType.TOPIC, "cap-plain")
    for f in a.describe_configs([res]).values():
        f.result(30)
    inc = ConfigResource(ResourceType.TOPIC, "cap-plain", incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("segment.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    for f in a.incremental_alter_configs([inc]).values():
        f.result(30)
    with warnings.catch_warnings():
        # Deprecated in the client, but it is what sends AlterConfigs (API 33), which brokers still serve.
        warnings.simplefilter("ignore", DeprecationWarning)
        altered = a.alter_configs([ConfigResource(ResourceType.TOPIC, "cap-compact",
                                                  set_config={"cleanup.policy": "compact"})])
    for f in altered.values():
        f.result(30)
    broker_res = ConfigResource(ResourceType.BROKER, "0")
    for f in a.describe_configs([broker_res]).values():
        f.result(30)
    for f in a.create_partitions([NewPartitions("cap-plain", 4)]).values():
        f.result(30)
    a.list_consumer_groups().result(30)
    for f in a.describe_consumer_groups(["cap-group-ck"]).values():
        f.result(30)
    for f in a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("cap-group-ck")]).values():
        f.result(30)
    specs = {TopicPartition("cap-plain", 0): OffsetSpec.earliest(),
             TopicPartition("cap-plain", 1): OffsetSpec.latest(),
             TopicPartition("cap-plain", 2): OffsetSpec.max_timestamp(),
             TopicPartition("cap-compact", 0): OffsetSpec.for_timestamp(int(time.time() * 1000) - 60000)}
    for f in a.list_offsets(specs, isolation_level=IsolationLevel.READ_COMMITTED).values():
        f.result(30)
    for f in a.describe_topics(TopicCollection(["cap-plain", "cap-compact"])).values():
        f.result(30)
    a.describe_cluster().result(30)
    for f in a.delete_records([TopicPartition("cap-plain", 0, 2)]).values():
        f.result(30)
    for f in a.delete_topics(["cap-doomed"], operation_timeout=30).values():
        f.result(30)


def confluent_delete_group(bs: str) -> None:
    from confluent_kafka import Consumer
    from confluent_kafka.admin import AdminClient

    c = Consumer({"bootstrap.servers": bs, "group.id": "cap-group-doomed", "auto.offset.reset": "earliest",
                  "enable.auto.commit": True, "auto.commit.interval.ms": 200})
    c.subscribe(["cap-compact"])
    end = time.monotonic() + 20
    while time.monotonic() < end and not c.assignment():
        c.poll(0.2)
    c.close()
    a = AdminClient({"bootstrap.servers": bs})  # kept referenced until the futures resolve
    for f in a.delete_consumer_groups(["cap-group-doomed"], request_timeout=10).values():
        f.result(15)


def kafka_python_all(bs: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import (ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic,
                             OffsetSpec)

    adm = KafkaAdminClient(bootstrap_servers=bs, client_id="cap-kp-admin")
    adm.create_topics([NewTopic("cap-kp", num_partitions=2, replication_factor=1,
                                topic_configs={"retention.bytes": "100000000"}),
                       NewTopic("cap-kp-doomed", num_partitions=1, replication_factor=1)])
    for codec in (None, "gzip", "snappy", "lz4", "zstd"):
        p = KafkaProducer(bootstrap_servers=bs, acks="all", compression_type=codec, linger_ms=5,
                          client_id=f"cap-kp-{codec}")
        for i in range(20):
            p.send("cap-kp", key=f"k{i}".encode(), value=f"kp {codec} {i}".encode() * 2,
                   headers=[("hk", b"hv")] if i % 4 == 0 else [])
        p.flush(60)
        p.close()
    c = KafkaConsumer("cap-kp", bootstrap_servers=bs, group_id="cap-group-kp", auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=15000)
    got = 0
    for _ in c:
        got += 1
        if got % 25 == 0:
            c.commit()
        if got >= 100:
            break
    c.commit()
    c.close()
    adm.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "cap-kp")])
    adm.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "cap-kp", configs={"retention.ms": "86400000"})])
    adm.create_partitions({"cap-kp": NewPartitions(3)})
    adm.list_groups()
    adm.describe_groups(["cap-group-kp"])
    adm.list_group_offsets("cap-group-kp")
    adm.list_partition_offsets({TopicPartition("cap-kp", 0): OffsetSpec.LATEST})
    adm.describe_cluster()
    adm.delete_topics(["cap-kp-doomed"])
    adm.delete_group_offsets("cap-group-kp", [TopicPartition("cap-kp", 1)])
    adm.delete_groups(["cap-group-kp"])
    adm.close()
    assert got >= 100, f"kafka-python consumed {got} of 100"


def kcat_all(bs: str) -> None:
    if shutil.which("kcat") is None:
        raise RuntimeError("kcat not installed")
    run = lambda *args, stdin=None: subprocess.run(  # noqa: E731
        ["kcat", "-b", bs, *args], input=stdin, capture_output=True, timeout=60, check=True)
    run("-L")
    run("-L", "-t", "cap-plain")
    run("-P", "-t", "cap-kcat", "-K", ":", "-z", "lz4", stdin=b"".join(b"key%d:value %d\n" % (i, i) for i in range(20)))
    run("-C", "-t", "cap-kcat", "-o", "beginning", "-e", "-q")
    run("-C", "-t", "cap-kcat", "-p", "0", "-o", "-5", "-e", "-q")
    run("-G", "cap-group-kcat", "-o", "beginning", "-e", "-q", "-X", "enable.auto.commit=true", "cap-kcat")


# -- metadata quorum RPC -----------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def capture_raft(work: Path, out: list[bytes]) -> None:
    """Three brokers where broker 1's metadata listener is only reachable through a proxy: the
    proxy sees the join, AppendEntries, votes, heartbeats and forwarded commands it exchanges."""
    from cluster import ClusterBroker
    from confluent_kafka.admin import AdminClient, NewTopic

    # One proxy in front of each follower's metadata listener, advertised in its place: whichever
    # broker leads after broker 0 is killed, its votes and AppendEntries to the other pass a proxy.
    proxies = [RecordingProxy(kafka=False).start() for _ in range(2)]
    brokers: list[ClusterBroker] = []
    try:
        b0 = ClusterBroker(0, work / "r0", work / "rlogs0", [])
        b0.data_dir.mkdir(parents=True)
        brokers.append(b0)
        b0.start_first()
        for node, proxy in enumerate(proxies, start=1):
            port = free_port()
            proxy.set_upstream("127.0.0.1", port)
            b = ClusterBroker(node, work / f"r{node}", work / f"rlogs{node}", [b0.controller],
                              extra_args=["--controller-advertised-address", proxy.address])
            b.controller_port = port
            b.data_dir.mkdir(parents=True)
            brokers.append(b)
            b.start(listen="127.0.0.1:0", admin_listen="127.0.0.1:0")
        a = AdminClient({"bootstrap.servers": brokers[1].bootstrap})
        wait_until(lambda: len(a.list_topics(timeout=10).brokers) == 3, 60, what="three brokers registered")
        for f in a.create_topics([NewTopic("cap-rf3", num_partitions=2, replication_factor=3)]).values():
            f.result(30)
        # Losing the quorum leader makes the followers vote, through the proxies.
        b0.kill9()
        wait_until(lambda: any(b'"Vote"' in c.frame for p in proxies for c in p.snapshot()), 60,
                   what="a vote through a proxy")
        b0.start_again()
        wait_until(lambda: len(a.list_topics(timeout=10).brokers) == 3, 60, what="broker 0 back")
    finally:
        for b in brokers:
            b.stop()
        for p in proxies:
            p.stop()
            out.extend(c.frame for c in p.snapshot())


def thin_raft(frames: list[bytes]) -> list[bytes]:
    """A few frames per RPC kind (the first JSON key of the body names it)."""
    by_kind: dict[bytes, list[bytes]] = defaultdict(list)
    for f in sorted(set(frames), key=len):
        if len(f) > MAX_SEED_BYTES:
            continue
        body = f.find(b'"body":')
        kind = f[body + 7:body + 40].split(b":")[0] if body >= 0 else b"?"
        by_kind[kind].append(f)
    return [f for fs in by_kind.values() for f in spread(fs, PER_API_VERSION)]


# -- corpus selection ---------------------------------------------------------------------------

def spread(items: list[bytes], n: int) -> list[bytes]:
    """Up to n items spread over the list (sorted by size: the smallest, the largest, between)."""
    items = sorted(set(items), key=lambda b: (len(b), b))
    if len(items) <= n:
        return items
    step_ = (len(items) - 1) / (n - 1)
    return [items[round(i * step_)] for i in range(n)]


def offsets_records(data_dir: Path) -> list[bytes]:
    """Keys and values of every record in the __consumer_offsets segments, tagged for the target."""
    from kafka.record.default_records import DefaultRecordBatch

    out = []
    for seg in sorted(data_dir.glob("__consumer_offsets-*/*.log")):
        data = seg.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            (blen,) = struct.unpack_from(">i", data, pos + 8)
            if blen <= 0 or pos + 12 + blen > len(data):
                break
            for rec in DefaultRecordBatch(data[pos:pos + 12 + blen]):
                if rec.key is None:
                    continue
                out.append(b"\x00" + bytes(rec.key))
                (kind,) = struct.unpack_from(">h", rec.key, 0)
                if rec.value is not None and kind in (1, 2):
                    out.append(bytes([kind]) + bytes(rec.value))
            pos += 12 + blen
    by_tag: dict[int, list[bytes]] = defaultdict(list)
    for r in out:
        by_tag[r[0]].append(r)
    return [r for rs in by_tag.values() for r in spread(rs, 12)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "broker" / "fuzz" / "corpus")
    ap.add_argument("--replace", action="store_true", help="empty the captured corpora first")
    ap.add_argument("--raft", action="store_true", help="also capture metadata quorum RPCs (three brokers)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="runnel-capture-"))
    proxy = RecordingProxy().start()
    broker = Broker(work / "data", work / "logs", ["--advertised-address", proxy.address])
    broker.data_dir.mkdir(parents=True)
    try:
        broker.start()
        proxy.set_upstream(broker.host, broker.port)
        bs = proxy.address
        log(f"broker on {broker.bootstrap}, clients through {bs}")
        step("confluent-kafka: admin create + idempotent produce (5 codecs)", lambda: confluent_admin_and_produce(bs))
        step("confluent-kafka: group consume + commit", lambda: confluent_group_consume(bs))
        step("confluent-kafka: admin configs/partitions/groups/offsets/delete", lambda: confluent_admin_inspect(bs))
        step("confluent-kafka: delete group", lambda: confluent_delete_group(bs))
        step("kafka-python: admin, produce (5 codecs), group consume", lambda: kafka_python_all(bs))
        step("kcat: -L -P -C -G", lambda: kcat_all(bs))
        broker.stop()
        captured = proxy.snapshot()
        offsets = offsets_records(broker.data_dir)
        raft = []
        if args.raft:
            raft_frames: list[bytes] = []
            step("metadata quorum RPC (3 brokers)", lambda: capture_raft(work, raft_frames))
            raft = thin_raft(raft_frames)
    finally:
        broker.stop()
        proxy.stop()

    requests: dict[tuple[int, int], list[bytes]] = defaultdict(list)
    responses: dict[tuple[int, int], list[bytes]] = defaultdict(list)
    batches: dict[int, list[bytes]] = defaultdict(list)
    for c in captured:
        if c.direction == "request" and c.api_key == 0 or c.direction == "response" and c.api_key == 1:
            for b in record_batches_in(c.frame):
                (attributes,) = struct.unpack_from(">h", b, 21)
                if len(b) <= MAX_SEED_BYTES:
                    batches[attributes].append(b)
        if len(c.frame) > MAX_SEED_BYTES:
            continue
        if c.direction == "request":
            requests[(c.api_key, c.api_version)].append(c.frame)
        elif c.api_key >= 0:
            responses[(c.api_key, c.api_version)].append(struct.pack(">hh", c.api_key, c.api_version) + c.frame)

    corpora = {
        "request": [f for fs in requests.values() for f in spread(fs, PER_API_VERSION)],
        "response": [f for fs in responses.values() for f in spread(fs, PER_API_VERSION)],
        "record_batch": [b for bs_ in batches.values() for b in spread(bs_, PER_BATCH_KIND)],
        "offsets_record": offsets,
    }
    if args.raft:
        corpora["raft_rpc"] = raft
    for name, inputs in corpora.items():
        d = args.out / name
        if args.replace and d.exists():
            shutil.rmtree(d)
        new = write_corpus(d, inputs)
        log(f"{name}: {len(inputs)} seeds ({new} new), {sum(map(len, inputs))} bytes")
    apis = sorted(requests)
    log(f"request API keys/versions seen: {apis}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
