"""Replication throttling on a 3-broker cluster: `runnel topic reassign --throttle` raises a
topic's replication factor no faster than the throttle allows, loses no acknowledged record
(checker.py), and removes its throttle configs at the end; the broker rate configs round-trip
through confluent-kafka's admin API on BROKER resources and a bad rate is INVALID_CONFIG."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, ResourceType)

from checker import AckedWriter, verify
from cluster import Cluster
from helpers import create_topic, http_get

CLUSTER_ARGS = ["--broker-session-timeout-ms", "2000", "--broker-heartbeat-interval-ms", "200",
                "--replica-lag-time-max-ms", "2000", "--group-initial-rebalance-delay-ms", "0",
                "--offsets-topic-num-partitions", "3"]
LEADER_RATE = "leader.replication.throttled.rate"
FOLLOWER_RATE = "follower.replication.throttled.rate"
LEADER_REPLICAS = "leader.replication.throttled.replicas"
FOLLOWER_REPLICAS = "follower.replication.throttled.replicas"
UNTHROTTLED = str(2**63 - 1)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path, 3, CLUSTER_ARGS)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def broker_configs(admin: AdminClient, node_id: int) -> dict:
    res = ConfigResource(ResourceType.BROKER, str(node_id))
    return admin.describe_configs([res])[res].result(30)


def topic_configs(admin: AdminClient, topic: str) -> dict:
    res = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([res])[res].result(30)


def metric(b, series: str) -> float:
    status, text = http_get(b.admin_url + "/metrics")
    assert status == 200
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_reassign_with_a_throttle_copies_no_faster_than_the_rate_and_removes_the_throttle(cluster, cli):
    topic = "throttled"
    rate = 1024 * 1024
    create_topic(cluster.bootstrap, topic, 1, replication_factor=1, config={"min.insync.replicas": "1"})
    # Paced, so what is queued when it stops is small: ~4 MB in all.
    w = AckedWriter(cluster.bootstrap, topic, value_size=8192, rate_per_s=1000, config={"acks": "all"}).start()
    try:
        w.wait_acks(500)
    finally:
        w.stop()
    payload = w.ack_count() * 8192  # value bytes only: an underestimate of what is copied
    leader = cluster.leader_of(topic, 0)

    started = time.monotonic()
    cp = cli("-b", cluster.brokers[0].bootstrap, "topic", "reassign", topic, "--replication-factor", "3",
             "--throttle", str(rate), "--timeout-secs", "180", timeout=240)
    elapsed = time.monotonic() - started
    assert cp.returncode == 0, cp.stderr
    assert "throttle: " in cp.stderr and "throttle removed" in cp.stderr, cp.stderr
    expected = payload / rate
    print(f"throttled reassignment: {payload} bytes to 2 new replicas at {rate} B/s took {elapsed:.1f}s "
          f"(one copy alone needs {expected:.1f}s)")
    # A lower bound only: the throttle must have slowed the copy (an upper bound would flake).
    assert elapsed >= expected * 0.5, f"copied {payload} bytes in {elapsed:.1f}s, faster than {rate} B/s"
    # The leader's quota saw the bytes (the throttle really was in the path).
    sent = metric(leader, 'runnel_replication_throttled_bytes_total{side="leader"}')
    assert sent >= payload, f"leader counted only {sent} throttled bytes of {payload}"

    _, replicas, isr = cluster.partition_state(topic, 0)
    assert sorted(replicas) == [0, 1, 2] and sorted(isr) == [0, 1, 2], (replicas, isr)
    verify(cluster.bootstrap, w, 1)

    # The throttle configs are gone (seen through a third-party client).
    admin = cluster.admin()
    for b in cluster.brokers:
        configs = broker_configs(admin, b.node_id)
        for key in (LEADER_RATE, FOLLOWER_RATE):
            assert configs[key].source == ConfigSource.DEFAULT_CONFIG.value, (b.node_id, configs[key])
            assert configs[key].value == UNTHROTTLED
    tc = topic_configs(admin, topic)
    for key in (LEADER_REPLICAS, FOLLOWER_REPLICAS):
        assert tc[key].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value, tc[key]


@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated")
def test_broker_rates_round_trip_through_confluent_kafka_and_bad_rates_are_invalid_config(cluster, cli):
    admin = cluster.admin()
    res = ConfigResource(ResourceType.BROKER, "1", incremental_configs=[
        ConfigEntry(FOLLOWER_RATE, "2048", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry(LEADER_RATE, "4096", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result(30)
    configs = broker_configs(admin, 1)
    assert configs[FOLLOWER_RATE].value == "2048"
    assert configs[FOLLOWER_RATE].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert not configs[FOLLOWER_RATE].is_read_only
    assert configs[LEADER_RATE].value == "4096"
    # Other brokers are untouched.
    assert broker_configs(admin, 2)[FOLLOWER_RATE].value == UNTHROTTLED

    # The cluster-wide default (resource ""; librdkafka needs an id, so through the CLI).
    cli("-b", cluster.bootstrap, "broker", "alter", "--default", "--config", f"{FOLLOWER_RATE}=777", check=True)
    c2 = broker_configs(admin, 2)[FOLLOWER_RATE]
    assert (c2.value, c2.source) == ("777", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
    assert broker_configs(admin, 1)[FOLLOWER_RATE].value == "2048", "the broker's own value wins"

    # Bad rates: INVALID_CONFIG through both alter APIs, and nothing stored.
    for bad in ("-5", "fast"):
        res = ConfigResource(ResourceType.BROKER, "1", incremental_configs=[
            ConfigEntry(FOLLOWER_RATE, bad, incremental_operation=AlterConfigOpType.SET)])
        with pytest.raises(KafkaException) as e:
            admin.incremental_alter_configs([res])[res].result(30)
        assert e.value.args[0].code() == KafkaError.INVALID_CONFIG, e.value
    res = ConfigResource(ResourceType.BROKER, "1", set_config={LEADER_RATE: "-1"})
    with pytest.raises(KafkaException) as e:
        admin.alter_configs([res])[res].result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG, e.value
    res = ConfigResource(ResourceType.BROKER, "1", incremental_configs=[
        ConfigEntry("log.retention.ms", "1", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        admin.incremental_alter_configs([res])[res].result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG
    assert "log.retention.ms" in e.value.args[0].str()
    configs = broker_configs(admin, 1)
    assert (configs[FOLLOWER_RATE].value, configs[LEADER_RATE].value) == ("2048", "4096")

    # A malformed throttled-replicas list on a topic is INVALID_CONFIG naming the entry.
    create_topic(cluster.bootstrap, "lists", 1)
    res = ConfigResource(ResourceType.TOPIC, "lists", incremental_configs=[
        ConfigEntry(LEADER_REPLICAS, "0:1,zero", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        admin.incremental_alter_configs([res])[res].result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG
    assert "zero" in e.value.args[0].str()

    # Deleting returns to the default.
    res = ConfigResource(ResourceType.BROKER, "1", incremental_configs=[
        ConfigEntry(FOLLOWER_RATE, None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry(LEADER_RATE, None, incremental_operation=AlterConfigOpType.DELETE)])
    admin.incremental_alter_configs([res])[res].result(30)
    configs = broker_configs(admin, 1)
    assert configs[FOLLOWER_RATE].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    assert configs[LEADER_RATE].value == UNTHROTTLED
