"""Admin and offset APIs driven by confluent-kafka's AdminClient and kafka-python:
ListOffsets by timestamp, Describe/Alter/IncrementalAlter configs, CreatePartitions,
DeleteRecords, delete + recreate, DescribeCluster, topic name validation, validate_only,
and segment retention."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, NewPartitions,
                                   NewTopic, OffsetSpec, ResourceType)

from helpers import (admin, consume_confluent, create_topic, produce_confluent, topic_partitions, wait_until,
                     watermarks)

BASE_TS = 1_700_000_000_000


def describe_topic_configs(bootstrap: str, topic: str) -> dict:
    res = ConfigResource(ResourceType.TOPIC, topic)
    a = admin(bootstrap)  # keep the client alive until the future resolves
    return a.describe_configs([res], request_timeout=30)[res].result(30)


def list_offset(bootstrap: str, topic: str, partition: int, spec: OffsetSpec) -> int:
    tp = TopicPartition(topic, partition)
    a = admin(bootstrap)  # keep the client alive until the future resolves
    return a.list_offsets({tp: spec}, request_timeout=30)[tp].result(30).offset


def test_list_offsets_by_timestamp_finds_first_record_at_or_after_it(broker):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP

    topic = "by-time"
    create_topic(broker.bootstrap, topic, 1)
    # 20 records one second apart, in batches of several records, so lookups land mid-batch.
    recs = [(b"k", f"v{i}".encode(), 0, BASE_TS + i * 1000) for i in range(20)]
    acks = produce_confluent(broker.bootstrap, topic, recs, {"linger.ms": 50})
    assert not acks.errors

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "e2e-times", "enable.auto.commit": False})
    try:
        cases = {BASE_TS: 0, BASE_TS + 3500: 4, BASE_TS + 7000: 7, BASE_TS - 10: 0, BASE_TS + 19_000: 19}
        for ts, want in cases.items():
            [r] = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=30)
            assert r.error is None and r.offset == want, f"confluent offsets_for_times({ts}) -> {r.offset}, want {want}"
        [r] = c.offsets_for_times([TopicPartition(topic, 0, BASE_TS + 60_000)], timeout=30)
        assert r.offset == -1, f"timestamp after the last record must give -1 (no offset), got {r.offset}"
    finally:
        c.close()

    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    try:
        tp = KTP(topic, 0)
        got = kc.offsets_for_times({tp: BASE_TS + 3500})[tp]
        assert got is not None and got.offset == 4 and got.timestamp == BASE_TS + 4000, got
        assert kc.offsets_for_times({tp: BASE_TS + 60_000})[tp] is None
        assert kc.beginning_offsets([tp])[tp] == 0
        assert kc.end_offsets([tp])[tp] == 20
    finally:
        kc.close()

    assert list_offset(broker.bootstrap, topic, 0, OffsetSpec.earliest()) == 0
    assert list_offset(broker.bootstrap, topic, 0, OffsetSpec.latest()) == 20
    assert list_offset(broker.bootstrap, topic, 0, OffsetSpec.for_timestamp(BASE_TS + 7000)) == 7

    # The same answers after a crash that also lost the index files (they are rebuilt).
    broker.kill9()
    for f in broker.partition_dir(topic, 0).iterdir():
        if f.suffix in (".index", ".timeindex"):
            f.unlink()
    broker.restart()
    assert list_offset(broker.bootstrap, topic, 0, OffsetSpec.for_timestamp(BASE_TS + 3500)) == 4
    assert list_offset(broker.bootstrap, topic, 0, OffsetSpec.for_timestamp(BASE_TS + 19_000)) == 19
    assert list_offset(broker.bootstrap, topic, 0, OffsetSpec.latest()) == 20


def test_describe_configs_reports_values_and_sources(broker):
    topic = "described"
    create_topic(broker.bootstrap, topic, 1, config={"retention.ms": "123456", "cleanup.policy": "delete"})
    cfg = describe_topic_configs(broker.bootstrap, topic)
    for name in ("retention.ms", "retention.bytes", "segment.bytes", "segment.ms", "cleanup.policy",
                 "max.message.bytes", "message.timestamp.type", "min.insync.replicas"):
        assert name in cfg, f"DescribeConfigs lacks {name}; has {sorted(cfg)}"
    assert cfg["retention.ms"].value == "123456"
    assert cfg["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["cleanup.policy"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["segment.bytes"].value == "1073741824"
    assert cfg["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value, \
        f"segment.bytes was never set: source should be DEFAULT_CONFIG, got {cfg['segment.bytes'].source}"
    assert cfg["retention.bytes"].value == "-1"
    assert cfg["retention.bytes"].source == ConfigSource.DEFAULT_CONFIG.value


def test_alter_and_incremental_alter_configs_take_effect_and_survive_restart(broker):
    topic = "altered"
    create_topic(broker.bootstrap, topic, 1, config={"retention.ms": "1000000"})
    a = admin(broker.bootstrap)

    # AlterConfigs replaces the whole dynamic set: retention.ms goes back to default.
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"max.message.bytes": "200000"})
    a.alter_configs([res], request_timeout=30)[res].result(30)
    cfg = describe_topic_configs(broker.bootstrap, topic)
    assert cfg["max.message.bytes"].value == "200000"
    assert cfg["max.message.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["retention.ms"].value == "604800000", "AlterConfigs must drop configs not in the new set"
    assert cfg["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value

    # IncrementalAlterConfigs: SET one key, DELETE another, leave the rest.
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.bytes", "5000000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("segment.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
    ])
    a.incremental_alter_configs([res], request_timeout=30)[res].result(30)
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("segment.ms", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    a.incremental_alter_configs([res], request_timeout=30)[res].result(30)
    cfg = describe_topic_configs(broker.bootstrap, topic)
    assert cfg["retention.bytes"].value == "5000000"
    assert cfg["max.message.bytes"].value == "200000", "incremental alter must keep other dynamic configs"
    assert cfg["segment.ms"].value == "604800000" and cfg["segment.ms"].source == ConfigSource.DEFAULT_CONFIG.value

    # Takes effect: a record above the new max.message.bytes is refused.
    big = produce_confluent(broker.bootstrap, topic, [(b"k", b"x" * 300_000)],
                            {"message.max.bytes": 2_000_000, "message.timeout.ms": 20000, "retries": 0})
    assert big.errors and big.errors[0][2].code() == KafkaError.MSG_SIZE_TOO_LARGE, big.errors

    broker.restart()
    cfg = describe_topic_configs(broker.bootstrap, topic)
    assert cfg["retention.bytes"].value == "5000000"
    assert cfg["retention.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["max.message.bytes"].value == "200000"
    assert cfg["retention.ms"].value == "604800000"


def test_deprecated_message_format_version_is_accepted_as_a_no_op(broker):
    """Kafka 3.x accepts `message.format.version` (deprecated, ignored): librdkafka's test 0092
    alters it to 0.10.0.0 mid-stream and expects produce and consume to go on."""
    topic = "msgver"
    create_topic(broker.bootstrap, topic, 1, config={"message.format.version": "2.8"})
    assert describe_topic_configs(broker.bootstrap, topic)["message.format.version"].value == "2.8"
    first = produce_confluent(broker.bootstrap, topic, [(b"k", b"before")])
    assert not first.errors, first.errors
    a = admin(broker.bootstrap)
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"message.format.version": "0.10.0.0"})
    a.alter_configs([res], request_timeout=30)[res].result(30)
    cfg = describe_topic_configs(broker.bootstrap, topic)["message.format.version"]
    assert (cfg.value, cfg.source) == ("0.10.0.0", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    second = produce_confluent(broker.bootstrap, topic, [(b"k", b"after")])
    assert not second.errors, second.errors
    got = consume_confluent(broker.bootstrap, topic, [0])[0]
    assert [r.value for r in got] == [b"before", b"after"]
    # Not a version: INVALID_CONFIG naming the key.
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"message.format.version": "4.0"})
    with pytest.raises(KafkaException) as e:
        a.alter_configs([res], request_timeout=30)[res].result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG
    assert "message.format.version" in e.value.args[0].str()


def test_invalid_config_value_is_rejected(broker):
    topic = "bad-config"
    a = admin(broker.bootstrap)
    fs = a.create_topics([NewTopic(topic, 1, 1, config={"retention.ms": "not-a-number"})], request_timeout=30)
    with pytest.raises(KafkaException) as e:
        fs[topic].result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG, e.value
    fs = a.create_topics([NewTopic(topic, 1, 1, config={"no.such.config": "1"})], request_timeout=30)
    with pytest.raises(KafkaException) as e:
        fs[topic].result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG, e.value


def test_create_partitions_grows_topic_and_new_partitions_take_writes(broker):
    topic = "growing"
    create_topic(broker.bootstrap, topic, 6)
    a = admin(broker.bootstrap)
    a.create_partitions([NewPartitions(topic, 8)], request_timeout=30)[topic].result(30)
    wait_until(lambda: topic_partitions(broker.bootstrap, topic) == 8, 30, what="8 partitions in metadata")
    acks = produce_confluent(broker.bootstrap, topic, [(None, f"p{p}-{i}".encode(), p) for p in (6, 7)
                                                       for i in range(5)])
    assert not acks.errors and {x.partition for x in acks.acks} == {6, 7}
    got = consume_confluent(broker.bootstrap, topic, [6, 7])
    assert [r.value for r in got[6]] == [f"p6-{i}".encode() for i in range(5)]
    assert [r.value for r in got[7]] == [f"p7-{i}".encode() for i in range(5)]
    broker.restart()
    assert topic_partitions(broker.bootstrap, topic) == 8, "added partitions lost on restart"
    assert watermarks(broker.bootstrap, topic, 7) == (0, 5)
    # Shrinking is refused.
    with pytest.raises(KafkaException) as e:
        a.create_partitions([NewPartitions(topic, 4)], request_timeout=30)[topic].result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_PARTITIONS, e.value


def test_delete_records_moves_low_watermark_and_earliest_offset(broker):
    topic = "trimmed"
    create_topic(broker.bootstrap, topic, 1)
    assert not produce_confluent(broker.bootstrap, topic, [(None, f"r{i}".encode()) for i in range(30)]).errors
    a = admin(broker.bootstrap)
    tp = TopicPartition(topic, 0, 12)
    res = a.delete_records([tp], request_timeout=30)
    [fut] = res.values()
    assert fut.result(30).low_watermark == 12
    assert watermarks(broker.bootstrap, topic, 0) == (12, 30)
    assert list_offset(broker.bootstrap, topic, 0, OffsetSpec.earliest()) == 12
    got = consume_confluent(broker.bootstrap, topic, [0])[0]
    assert [r.offset for r in got] == list(range(12, 30))
    assert got[0].value == b"r12"
    # Persisted: still 12 after a restart.
    broker.restart()
    assert watermarks(broker.bootstrap, topic, 0) == (12, 30)


def test_deleted_topic_recreated_with_same_name_is_empty_from_offset_zero(broker):
    topic = "phoenix"
    create_topic(broker.bootstrap, topic, 2)
    assert not produce_confluent(broker.bootstrap, topic, [(None, b"old", p) for p in (0, 1) for _ in range(10)]).errors
    a = admin(broker.bootstrap)
    a.delete_topics([topic], request_timeout=30)[topic].result(30)
    wait_until(lambda: topic not in admin(broker.bootstrap).list_topics(timeout=10).topics, 30,
               what="deleted topic to leave metadata")
    wait_until(lambda: not list(broker.data_dir.glob(f"{topic}-*")), 30, what="deleted topic's directories to go")
    broker.restart()
    assert topic not in admin(broker.bootstrap).list_topics(timeout=10).topics, "deleted topic came back after restart"
    create_topic(broker.bootstrap, topic, 2)
    assert watermarks(broker.bootstrap, topic, 0) == (0, 0)
    assert watermarks(broker.bootstrap, topic, 1) == (0, 0)
    acks = produce_confluent(broker.bootstrap, topic, [(None, b"new", 0)])
    assert acks.acks[0].offset == 0
    got = consume_confluent(broker.bootstrap, topic, [0, 1])
    assert [r.value for r in got[0]] == [b"new"] and got[1] == []
    broker.restart()
    assert watermarks(broker.bootstrap, topic, 0) == (0, 1)


def test_describe_cluster_id_is_non_null_and_stable_across_restart(broker):
    a = admin(broker.bootstrap)
    first = a.describe_cluster(request_timeout=30).result(30)
    assert first.cluster_id, "DescribeCluster returned a null/empty cluster id"
    assert len(first.nodes) == 1
    assert first.controller is not None
    broker.restart()
    a = admin(broker.bootstrap)
    again = a.describe_cluster(request_timeout=30).result(30)
    assert again.cluster_id == first.cluster_id
    md = admin(broker.bootstrap).list_topics(timeout=10)
    assert md.cluster_id == first.cluster_id, "Metadata and DescribeCluster disagree on the cluster id"


def test_the_rack_comes_from_broker_rack_file_and_a_missing_file_stops_the_start(broker_factory, tmp_path):
    """`broker_rack_file` (what the operator's rackLabel init container writes) gives the rack
    clients see in DescribeCluster (librdkafka) and Metadata (kafka-python)."""
    from kafka import KafkaAdminClient
    rack_file = tmp_path / "rack"
    rack_file.write_text("zone-b\n")
    b = broker_factory("--broker-rack-file", str(rack_file))
    a = admin(b.bootstrap)
    nodes = a.describe_cluster(request_timeout=30).result(30).nodes
    assert [n.rack for n in nodes] == ["zone-b"]
    kp = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=30000)
    try:
        assert [m["rack"] for m in kp.describe_cluster()["brokers"]] == ["zone-b"]
    finally:
        kp.close()
    # A missing file: the broker refuses to start, naming the file.
    missing = tmp_path / "no-such-rack"
    bad = broker_factory("--broker-rack-file", str(missing), start=False)
    proc = bad.spawn()
    assert proc.wait(timeout=60) != 0
    assert str(missing) in bad.stderr_path.read_text()


@pytest.mark.parametrize("name", ["has space", "a" * 250, ".", "..", "slash/name", "ünïcode", "star*"])
def test_illegal_topic_names_are_rejected_with_invalid_topic(broker, name):
    a = admin(broker.bootstrap)
    fs = a.create_topics([NewTopic(name, 1, 1)], request_timeout=30)
    with pytest.raises(KafkaException) as e:
        fs[name].result(30)
    assert e.value.args[0].code() == KafkaError.TOPIC_EXCEPTION, f"{name!r}: {e.value}"
    assert name not in a.list_topics(timeout=10).topics


def test_longest_legal_topic_name_is_accepted(broker):
    name = "a-B_c.9" * 35 + "abcd"  # 249 characters: the maximum Kafka allows
    assert len(name) == 249
    create_topic(broker.bootstrap, name, 1)


def test_validate_only_create_creates_nothing(broker):
    a = admin(broker.bootstrap)
    fs = a.create_topics([NewTopic("dry-run", 3, 1)], validate_only=True, request_timeout=30)
    fs["dry-run"].result(30)
    assert "dry-run" not in a.list_topics(timeout=10).topics
    assert not list(broker.data_dir.glob("dry-run-*")), "validate_only created partition directories"
    # validate_only still validates.
    fs = a.create_topics([NewTopic("bad name", 1, 1)], validate_only=True, request_timeout=30)
    with pytest.raises(KafkaException):
        fs["bad name"].result(30)


def test_segments_roll_and_retention_bytes_then_ms_delete_old_segments(broker_factory):
    b = broker_factory("--log-segment-bytes", "16384", "--log-retention-check-interval-ms", "200")
    topic = "retained"
    create_topic(b.bootstrap, topic, 1)
    # 40 separate batches of 5 x 1 KiB: about 3 batches per 16 KiB segment.
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0})
    for batch in range(40):
        for i in range(5):
            p.produce(topic, value=f"{batch:03d}-{i}-".encode() + b"x" * 1024)
        assert p.flush(30) == 0
    segments = b.segment_files(topic, 0)
    assert len(segments) >= 8, f"expected segment rolls at 16 KiB, found {len(segments)} segment(s)"
    assert [int(s.stem) for s in segments] == sorted(int(s.stem) for s in segments)
    assert all(len(s.stem) == 20 for s in segments), "segment files must be named by 20-digit base offset"
    assert watermarks(b.bootstrap, topic, 0) == (0, 200)

    a = admin(b.bootstrap)
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.bytes", "40000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res], request_timeout=30)[res].result(30)
    wait_until(lambda: watermarks(b.bootstrap, topic, 0)[0] > 0, 60, what="retention.bytes to delete segments")
    wait_until(lambda: b.log_size(topic, 0) <= 40000 + 16384 + 6000, 60,
               what="retained bytes to drop to about retention.bytes")
    low_after_bytes = watermarks(b.bootstrap, topic, 0)[0]
    remaining = b.segment_files(topic, 0)
    assert int(remaining[0].stem) == low_after_bytes, "earliest offset must be the first remaining segment's base"
    assert list_offset(b.bootstrap, topic, 0, OffsetSpec.earliest()) == low_after_bytes
    got = consume_confluent(b.bootstrap, topic, [0])[0]
    assert got[0].offset == low_after_bytes and got[-1].offset == 199

    last_base = int(remaining[-1].stem)
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res], request_timeout=30)[res].result(30)
    wait_until(lambda: watermarks(b.bootstrap, topic, 0)[0] >= last_base, 60,
               what="retention.ms to delete every closed segment")
    assert watermarks(b.bootstrap, topic, 0)[1] == 200, "retention must not move the log end"
    # New writes continue at the log end.
    acks = produce_confluent(b.bootstrap, topic, [(None, b"after-retention")])
    assert acks.acks[0].offset == 200
    # Offsets survive a restart even when retention removed most segments.
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "604800000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res], request_timeout=30)[res].result(30)  # nothing else expires meanwhile
    low = watermarks(b.bootstrap, topic, 0)[0]
    b.kill9()
    b.restart()
    assert watermarks(b.bootstrap, topic, 0) == (low, 201)
    acks = produce_confluent(b.bootstrap, topic, [(None, b"after-restart")])
    assert acks.acks[0].offset == 201


def expect_kafka_error(fut, code, what: str):
    with pytest.raises(KafkaException) as e:
        fut.result(30)
    got = e.value.args[0].code()
    assert got == code, f"{what}: expected {KafkaError(code).name()}, got {e.value.args[0]}"


def test_admin_errors_map_to_the_right_kafka_codes(broker):
    a = admin(broker.bootstrap)
    create_topic(broker.bootstrap, "exists", 2)
    assert not produce_confluent(broker.bootstrap, "exists", [(None, b"x", 0)] * 5).errors

    fs = a.create_topics([NewTopic("exists", 1, 1)], request_timeout=30)
    expect_kafka_error(fs["exists"], KafkaError.TOPIC_ALREADY_EXISTS, "creating an existing topic")

    fs = a.create_partitions([NewPartitions("absent", 4)], request_timeout=30)
    expect_kafka_error(fs["absent"], KafkaError.UNKNOWN_TOPIC_OR_PART, "CreatePartitions on a missing topic")

    fs = a.delete_topics(["absent"], request_timeout=30)
    expect_kafka_error(fs["absent"], KafkaError.UNKNOWN_TOPIC_OR_PART, "deleting a missing topic")

    res = ConfigResource(ResourceType.TOPIC, "absent")
    expect_kafka_error(a.describe_configs([res], request_timeout=30)[res], KafkaError.UNKNOWN_TOPIC_OR_PART,
                       "DescribeConfigs on a missing topic")

    res = ConfigResource(ResourceType.TOPIC, "exists", incremental_configs=[
        ConfigEntry("segment.bytes", "-5", incremental_operation=AlterConfigOpType.SET)])
    expect_kafka_error(a.incremental_alter_configs([res], request_timeout=30)[res], KafkaError.INVALID_CONFIG,
                       "a negative segment.bytes")
    assert describe_topic_configs(broker.bootstrap, "exists")["segment.bytes"].value == "1073741824"

    tp = TopicPartition("exists", 0, 99)
    [fut] = a.delete_records([tp], request_timeout=30).values()
    expect_kafka_error(fut, KafkaError.OFFSET_OUT_OF_RANGE, "DeleteRecords beyond the high watermark")
    assert watermarks(broker.bootstrap, "exists", 0) == (0, 5)

    # ListOffsets by timestamp on an empty partition: no offset.
    assert list_offset(broker.bootstrap, "exists", 1, OffsetSpec.for_timestamp(BASE_TS)) == -1


def test_broker_configs_are_described(broker):
    a = admin(broker.bootstrap)
    res = ConfigResource(ResourceType.BROKER, "0")
    cfg = a.describe_configs([res], request_timeout=30)[res].result(30)
    assert cfg, "DescribeConfigs for the broker returned nothing"
    # Kafka's names (log.segment.bytes) or Runnel's own keys (log_segment_bytes) are both fine here.
    seg = cfg.get("log.segment.bytes") or cfg.get("log_segment_bytes")
    assert seg is not None and seg.value == "1073741824", f"segment size missing; has {sorted(cfg)[:30]}"
    unset = cfg.get("advertised_address") or cfg.get("advertised.listeners")
    assert unset is None or unset.value is None, f"an unset option must be null, not {unset.value!r}"


def test_hundred_topics_in_one_request_survive_restart(broker):
    a = admin(broker.bootstrap)
    names = [f"bulk-{i:03d}" for i in range(100)]
    fs = a.create_topics([NewTopic(n, 3, 1) for n in names], request_timeout=60)
    for n in names:
        fs[n].result(60)
    broker.kill9()
    broker.restart()
    md = admin(broker.bootstrap).list_topics(timeout=30)
    missing = [n for n in names if n not in md.topics or len(md.topics[n].partitions) != 3]
    assert not missing, f"{len(missing)} topics missing or wrong after restart, e.g. {missing[:5]}"


def test_describe_log_dirs_reports_each_partition_size_and_the_disk(broker):
    """DescribeLogDirs (kafka-python's `describe_log_dirs`): the broker's data directory with
    every partition it holds, each with the bytes its segment files hold on disk, no offset
    lag, and the file system's total and usable bytes; asking for one partition lists only
    it."""
    import os
    import shutil

    from kafka import KafkaAdminClient

    create_topic(broker.bootstrap, "sized", 2)
    produce_confluent(broker.bootstrap, "sized", [(None, b"x" * 1000, 0)] * 50)
    produce_confluent(broker.bootstrap, "sized", [(None, b"y" * 100, 1)] * 10)

    def on_disk(partition: int) -> int:
        d = broker.data_dir / f"sized-{partition}"
        return sum(f.stat().st_size for f in d.iterdir() if f.suffix == ".log")

    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        [answer] = kp.describe_log_dirs()
        [log_dir] = answer["log_dirs"]
        assert log_dir["error_code"] == 0
        assert os.path.samefile(log_dir["log_dir"], broker.data_dir)
        sizes = {(t["name"], p["partition_index"]): (p["partition_size"], p["offset_lag"], p["is_future_key"])
                 for t in log_dir["topics"] for p in t["partitions"]}
        assert sizes[("sized", 0)] == (on_disk(0), 0, False)
        assert sizes[("sized", 1)] == (on_disk(1), 0, False)
        assert on_disk(0) > 50 * 1000 > on_disk(1) > 10 * 100
        disk = shutil.disk_usage(broker.data_dir)
        assert log_dir["total_bytes"] == disk.total
        assert 0 < log_dir["usable_bytes"] <= disk.total

        [answer] = kp.describe_log_dirs({"sized": [1]})
        [log_dir] = answer["log_dirs"]
        assert [(t["name"], [p["partition_index"] for p in t["partitions"]]) for t in log_dir["topics"]] \
            == [("sized", [1])]
    finally:
        kp.close()


def test_describe_topic_partitions_pages_through_the_partitions(broker):
    """DescribeTopicPartitions (KIP-966, kafka-python's `describe_topic_partitions`): topics in
    name order with each partition's leader, replicas and ISR, at most the asked number of
    partitions per response and a cursor to the next page; an unknown topic is listed with
    UNKNOWN_TOPIC_OR_PARTITION and a cursor on a topic not asked for is INVALID_REQUEST."""
    from kafka import KafkaAdminClient

    create_topic(broker.bootstrap, "dtp-b", 4)
    create_topic(broker.bootstrap, "dtp-a", 3)
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        first = kp.describe_topic_partitions(["dtp-b", "dtp-a", "dtp-none"], response_partition_limit=5)
        listed = [(t["name"], t["error_code"], [p["partition_index"] for p in t["partitions"]])
                  for t in first["topics"]]
        assert listed == [("dtp-a", 0, [0, 1, 2]), ("dtp-b", 0, [0, 1])]
        assert first["next_cursor"] == {"topic_name": "dtp-b", "partition_index": 2}
        p0 = first["topics"][0]["partitions"][0]
        assert (p0["leader_id"], p0["replica_nodes"], p0["isr_nodes"], p0["offline_replicas"]) \
            == (0, [0], [0], [])
        assert first["topics"][0]["is_internal"] is False

        rest = kp.describe_topic_partitions(["dtp-b", "dtp-a", "dtp-none"], response_partition_limit=5,
                                            cursor=first["next_cursor"])
        listed = [(t["name"], t["error_code"], [p["partition_index"] for p in t["partitions"]])
                  for t in rest["topics"]]
        assert listed == [("dtp-b", 0, [2, 3]), ("dtp-none", 3, [])]
        assert rest["next_cursor"] is None

        bad = kp.describe_topic_partitions(["dtp-a"], cursor={"topic_name": "dtp-b", "partition_index": 0})
        assert [t["error_code"] for t in bad["topics"]] == [42]
    finally:
        kp.close()
