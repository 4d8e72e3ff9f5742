"""Group administration against librdkafka groups: `runnel group list|describe|reset-offsets|delete`,
`runnel consume --group`, confluent AdminClient's group APIs (ListGroups, DescribeGroups,
DeleteGroups, OffsetCommit/OffsetFetch via alter/list consumer group offsets) and the group
metrics on /metrics."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager

import pytest
from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaError, TopicPartition

from groups import GROUP_BROKER_ARGS, committed_offsets, metric
from helpers import admin, create_topic, produce_confluent, wait_until


@pytest.fixture
def group_broker(broker_factory):
    return broker_factory(*GROUP_BROKER_ARGS)


def produce_even(bootstrap: str, topic: str, partitions: int, per_partition: int) -> None:
    rec = produce_confluent(bootstrap, topic, [(None, f"p{i % partitions}-{i // partitions}".encode(),
                                                i % partitions) for i in range(partitions * per_partition)])
    assert not rec.errors


@contextmanager
def member(bootstrap: str, topic: str, group: str, partitions: int, client_id: str = "e2e-cli-member",
           offset_reset: str = "earliest"):
    """An in-process librdkafka group member (heartbeats run in librdkafka's own thread) that
    has received its assignment of all `partitions`; no automatic commits."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": client_id,
                  "enable.auto.commit": False, "auto.offset.reset": offset_reset,
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    try:
        c.subscribe([topic])
        wait_until(lambda: (c.poll(0.1) or True) and len(c.assignment()) == partitions, 30,
                   what=f"a librdkafka member of {group} to be assigned {partitions} partitions")
        yield c
    finally:
        c.close()


def read_group(bootstrap: str, topic: str, group: str, want: int, offset_reset: str = "latest") -> list:
    """Consume `want` records as a member of `group` (commits nothing); returns (partition, offset, value)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": offset_reset})
    out = []
    try:
        c.subscribe([topic])
        end = time.monotonic() + 60
        while len(out) < want and time.monotonic() < end:
            for m in c.consume(500, 0.2):
                if m.error() is None:
                    out.append((m.partition(), m.offset(), m.value()))
        return out
    finally:
        c.close()


def consume_and_commit_all(bootstrap: str, topic: str, group: str, partitions: int, total: int) -> None:
    with member(bootstrap, topic, group, partitions) as c:
        n = 0
        end = time.monotonic() + 60
        while n < total and time.monotonic() < end:
            n += sum(1 for m in c.consume(500, 0.2) if m.error() is None)
        assert n == total, f"consumed {n} of {total}"
        c.commit(asynchronous=False)


def test_reset_offsets_to_earliest_on_an_empty_group_makes_the_next_consumer_reread_from_the_start(
        group_broker, cli):
    bs = group_broker.bootstrap
    topic, group, parts = "reset-me", "g-reset", 3
    create_topic(bs, topic, parts)
    produce_even(bs, topic, parts, 30)
    consume_and_commit_all(bs, topic, group, parts, 90)
    ends = {p: 30 for p in range(parts)}
    assert committed_offsets(bs, group, topic, parts) == ends

    # Without --execute: a plan, nothing changed.
    cp = cli("-b", bs, "--output", "json", "group", "reset-offsets", group, "--topic", topic, "--to-earliest",
             check=True)
    plan = json.loads(cp.stdout)
    assert plan["executed"] is False
    assert sorted((r["partition"], r["current_offset"], r["new_offset"]) for r in plan["plan"]) == \
        [(p, 30, 0) for p in range(parts)]
    assert committed_offsets(bs, group, topic, parts) == ends

    cp = cli("-b", bs, "group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute", check=True)
    assert committed_offsets(bs, group, topic, parts) == {p: 0 for p in range(parts)}, cp.stdout
    # auto.offset.reset=latest: the consumer starts at the reset commits, not by its own policy.
    got = read_group(bs, topic, group, 90)
    assert len(got) == 90
    firsts = {}
    for p, o, _ in got:
        firsts.setdefault(p, o)
    assert firsts == {p: 0 for p in range(parts)}
    assert sorted((p, o) for p, o, _ in got) == [(p, o) for p in range(parts) for o in range(30)]


def test_reset_offsets_on_an_active_group_is_refused_with_a_message_and_exit_code_1(group_broker, cli):
    bs = group_broker.bootstrap
    topic, group, parts = "busy", "g-busy", 2
    create_topic(bs, topic, parts)
    produce_even(bs, topic, parts, 10)
    with member(bs, topic, group, parts) as c:
        c.commit(offsets=[TopicPartition(topic, p, 10) for p in range(parts)], asynchronous=False)
        cp = cli("-b", bs, "group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute")
        assert cp.returncode == 1, f"exit {cp.returncode}\nstdout:\n{cp.stdout}\nstderr:\n{cp.stderr}"
        assert group in cp.stderr and "member" in cp.stderr, cp.stderr
        assert committed_offsets(bs, group, topic, parts) == {0: 10, 1: 10}


def test_group_describe_shows_members_committed_offsets_and_lag_of_a_librdkafka_group(group_broker, cli):
    bs = group_broker.bootstrap
    topic, group, parts = "described", "g-described", 2
    create_topic(bs, topic, parts)
    produce_even(bs, topic, parts, 10)
    with member(bs, topic, group, parts, client_id="e2e-describer") as c:
        c.commit(offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 7)], asynchronous=False)
        cp = cli("-b", bs, "--output", "json", "group", "describe", group, check=True)
        d = json.loads(cp.stdout)
        assert d["group"] == group and d["state"] == "Stable", d
        assert d["protocol_type"] == "consumer" and d["protocol"] == "range", d
        assert len(d["members"]) == 1, d
        m = d["members"][0]
        assert m["client_id"] == "e2e-describer" and "127.0.0.1" in m["host"], m
        assert m["assignment"] == [{"topic": topic, "partitions": [0, 1]}], m
        offs = {o["partition"]: o for o in d["offsets"]}
        assert {p: (o["committed_offset"], o["log_end_offset"], o["lag"]) for p, o in offs.items()} == \
            {0: (4, 10, 6), 1: (7, 10, 3)}, d["offsets"]
        assert all(o["member_id"] == m["member_id"] for o in offs.values())
        assert d["total_lag"] == 9

        text = cli("-b", bs, "group", "describe", group, check=True).stdout
        assert "Stable" in text and "e2e-describer" in text and f"{topic}:0,1" in text, text
        assert "Total lag: 9" in text, text


def test_group_metrics_show_committed_offset_lag_members_and_rebalances(group_broker):
    bs, url = group_broker.bootstrap, group_broker.admin_url
    topic, group, parts = "measured", "g-measured", 2
    create_topic(bs, topic, parts)
    produce_even(bs, topic, parts, 10)
    with member(bs, topic, group, parts) as c:
        c.commit(offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 7)], asynchronous=False)

        def values():
            return {
                "committed": [metric(url, "runnel_group_committed_offset", group=group, topic=topic,
                                     partition=str(p)) for p in range(parts)],
                "lag": [metric(url, "runnel_group_lag", group=group, topic=topic, partition=str(p))
                        for p in range(parts)],
                "members": metric(url, "runnel_group_members", group=group),
            }

        wait_until(lambda: values() == {"committed": [4, 7], "lag": [6, 3], "members": 1}, 30,
                   what="group metrics for the commits")
        rebalances = metric(url, "runnel_group_rebalances_total", group=group)
        assert rebalances is not None and rebalances >= 1
    # Another member joining is another rebalance.
    with member(bs, topic, group, parts):
        wait_until(lambda: metric(url, "runnel_group_rebalances_total", group=group) > rebalances, 30,
                   what="the rebalance count to grow")


def test_group_list_and_delete_refuse_an_active_group_then_remove_it(group_broker, cli):
    bs = group_broker.bootstrap
    topic, group, parts = "listed", "g-listed", 1
    create_topic(bs, topic, parts)
    produce_even(bs, topic, parts, 5)
    with member(bs, topic, group, parts) as c:
        c.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
        rows = json.loads(cli("-b", bs, "--output", "json", "group", "list", check=True).stdout)
        assert {"group": group, "state": "Stable", "protocol_type": "consumer"} in rows, rows
        assert group in cli("-b", bs, "group", "list", check=True).stdout
        cp = cli("-b", bs, "group", "delete", group)
        assert cp.returncode == 1 and "active members" in cp.stderr, (cp.returncode, cp.stderr)
    rows = json.loads(cli("-b", bs, "--output", "json", "group", "list", check=True).stdout)
    assert {"group": group, "state": "Empty", "protocol_type": "consumer"} in rows, rows
    cli("-b", bs, "group", "delete", group, check=True)
    rows = json.loads(cli("-b", bs, "--output", "json", "group", "list", check=True).stdout)
    assert group not in {r["group"] for r in rows}, rows
    assert committed_offsets(bs, group, topic, parts) == {0: -1001}, "offsets survived the group's deletion"
    cp = cli("-b", bs, "group", "delete", group)
    assert cp.returncode == 1 and "does not exist" in cp.stderr, cp.stderr


def test_runnel_consume_with_group_commits_and_a_second_run_reads_only_new_records(group_broker, cli):
    bs = group_broker.bootstrap
    topic, group, parts = "cli-group", "g-cli", 3
    create_topic(bs, topic, parts)
    produce_even(bs, topic, parts, 10)
    cp = cli("-b", bs, "consume", topic, "--group", group, "--from-beginning", "--max-messages", "30",
             "--timeout-ms", "30000", check=True, timeout=90)
    assert len(cp.stdout.split()) == 30
    wait_until(lambda: committed_offsets(bs, group, topic, parts) == {p: 10 for p in range(parts)}, 30,
               what="runnel consume --group to commit the log end")
    rec = produce_confluent(bs, topic, [(None, f"new-{i}".encode(), i % parts) for i in range(6)])
    assert not rec.errors
    cp = cli("-b", bs, "consume", topic, "--group", group, "--max-messages", "6", "--timeout-ms", "30000",
             check=True, timeout=90)
    assert sorted(cp.stdout.split()) == sorted(f"new-{i}" for i in range(6)), cp.stdout


def test_admin_client_lists_describes_deletes_groups_and_alters_their_offsets(group_broker):
    bs = group_broker.bootstrap
    a = admin(bs)
    topic, group, parts = "administered", "g-admin", 2
    create_topic(bs, topic, parts)
    produce_even(bs, topic, parts, 10)
    with member(bs, topic, group, parts, client_id="e2e-admin-member"):
        res = a.list_consumer_groups(request_timeout=10).result(15)
        listed = {g.group_id: g for g in res.valid}
        assert group in listed, res.valid
        assert listed[group].state == ConsumerGroupState.STABLE
        desc = a.describe_consumer_groups([group], request_timeout=10)[group].result(15)
        assert desc.state == ConsumerGroupState.STABLE and desc.partition_assignor == "range"
        assert [m.client_id for m in desc.members] == ["e2e-admin-member"]
        assert sorted(tp.partition for tp in desc.members[0].assignment.topic_partitions) == [0, 1]
        # DeleteGroups on a group with members: NON_EMPTY_GROUP.
        with pytest.raises(Exception) as e:
            a.delete_consumer_groups([group], request_timeout=10)[group].result(15)
        assert e.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, e.value

    # The group is empty now: offsets can be altered from outside and read back.
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 2), TopicPartition(topic, 1, 3)])
    a.alter_consumer_group_offsets([req], request_timeout=10)[group].result(15)
    assert committed_offsets(bs, group, topic, parts) == {0: 2, 1: 3}
    desc = a.describe_consumer_groups([group], request_timeout=10)[group].result(15)
    assert desc.state == ConsumerGroupState.EMPTY and desc.members == []

    a.delete_consumer_groups([group], request_timeout=10)[group].result(15)
    listed = {g.group_id for g in a.list_consumer_groups(request_timeout=10).result(15).valid}
    assert group not in listed
    with pytest.raises(Exception) as e:
        a.delete_consumer_groups([group], request_timeout=10)[group].result(15)
    assert e.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND, e.value
