"""A replicated 3-broker cluster under real faults: kill -9 of partition leaders and of the
quorum leader, restart of every broker at once. The acknowledged-write checker (checker.py)
proves after each scenario that every `acks=all` record acknowledged to the idempotent
confluent-kafka producer is stored exactly once, in order."""

from __future__ import annotations

import re
import time

import pytest
from confluent_kafka.admin import AdminClient

from confluent_kafka import Consumer

from checker import AckedWriter, verify
from cluster import Cluster
from helpers import create_topic, http_get, wait_until

# Short timeouts so failover happens within seconds in tests.
CLUSTER_ARGS = ["--broker-session-timeout-ms", "2000", "--broker-heartbeat-interval-ms", "200",
                "--replica-lag-time-max-ms", "2000", "--group-initial-rebalance-delay-ms", "0",
                "--offsets-topic-num-partitions", "3", "--default-replication-factor", "3",
                "--min-insync-replicas", "2"]
TOPIC = "replicated"
PARTITIONS = 3


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path, 3, CLUSTER_ARGS)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def metric(b, name: str) -> float:
    """The value of one unlabelled-or-fully-labelled sample, e.g. 'x_total{kind="clean"}' (0 when absent)."""
    status, text = http_get(b.admin_url + "/metrics")
    assert status == 200, f"/metrics answered {status}"
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def create_replicated(c: Cluster, name: str = TOPIC, partitions: int = PARTITIONS, rf: int = 3) -> None:
    create_topic(c.bootstrap, name, partitions, replication_factor=rf)
    for p in range(partitions):
        c.wait_isr(name, p, rf)


def test_topic_created_through_one_broker_is_replicated_with_leaders_spread(cluster):
    create_replicated(cluster, partitions=6)
    leaders = []
    for b in cluster.brokers:
        md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(TOPIC, timeout=10)
        parts = md.topics[TOPIC].partitions
        assert len(parts) == 6
        for p in parts.values():
            assert sorted(p.replicas) == [0, 1, 2]
            assert sorted(p.isrs) == [0, 1, 2]
        leaders.append(sorted(p.leader for p in parts.values()))
    assert leaders[0] == leaders[1] == leaders[2], "every broker reports the same leaders"
    assert sorted(leaders[0]) == [0, 0, 1, 1, 2, 2], f"leaders not spread evenly: {leaders[0]}"


def test_kill9_of_partition_leaders_loses_no_acknowledged_record(cluster):
    create_replicated(cluster)
    w = AckedWriter(cluster.bootstrap, TOPIC).start()
    recoveries = []
    try:
        for round_ in range(3):
            w.wait_acks(w.ack_count() + 3_000)
            victim = cluster.leader_of(TOPIC, round_ % PARTITIONS)
            t0 = time.monotonic()
            victim.kill9()
            winner = cluster.wait_leader(TOPIC, round_ % PARTITIONS, not_on=victim.node_id)
            recoveries.append(time.monotonic() - t0)
            wait_until(lambda: metric(winner, 'runnel_leader_elections_total{kind="clean"}') >= 1, 30,
                       what=f"broker {winner.node_id} counting the leadership it won")
            acks_before = w.ack_count()
            w.wait_acks(acks_before + 1_000, timeout=120)
            victim.start_again()
            for p in range(PARTITIONS):
                cluster.wait_isr(TOPIC, p, 3)
    finally:
        w.stop()
    print(f"leadership recovered after kill -9 in {', '.join(f'{r:.2f}s' for r in recoveries)}")
    assert not w.errors, f"{len(w.errors)} delivery errors, first: {w.errors[:1]}"
    report = verify(cluster.bootstrap, w, PARTITIONS)
    assert report.acknowledged >= 12_000


def test_restart_of_every_broker_at_once_keeps_all_data(cluster):
    create_replicated(cluster)
    w = AckedWriter(cluster.bootstrap, TOPIC).start()
    w.wait_acks(5_000)
    w.stop()
    cluster.kill9_and_restart_all()
    for p in range(PARTITIONS):
        cluster.wait_leader(TOPIC, p)
    report = verify(cluster.bootstrap, w, PARTITIONS)
    assert report.acknowledged == report.stored


def test_kill9_of_the_quorum_leader_elects_a_new_controller_and_metadata_changes_work(cluster):
    admin = cluster.admin()
    old = admin.list_topics(timeout=10).controller_id
    assert old >= 0
    cluster.by_id(old).kill9()

    def new_controller():
        live = ",".join(b.bootstrap for b in cluster.live())
        cid = AdminClient({"bootstrap.servers": live}).list_topics(timeout=5).controller_id
        # A 1-tuple: broker id 0 is a valid answer but falsy for wait_until.
        return (cid,) if cid >= 0 and cid != old else None
    (new,) = wait_until(new_controller, 60, what="a new controller")
    wait_until(lambda: metric(cluster.by_id(new), "runnel_metadata_controller_elections_total") >= 1, 30,
               what="the new controller counting its election")
    assert metric(cluster.by_id(new), "runnel_controller_active") == 1
    live = ",".join(b.bootstrap for b in cluster.live())
    create_topic(live, "after-failover", 2, replication_factor=2)
    assert metric(cluster.by_id(new), "runnel_metadata_commit_latency_seconds_count") >= 1
    cluster.by_id(old).start_again()
    cluster.wait_registered(3)


def test_consumer_group_continues_when_the_coordinator_broker_is_killed(cluster):
    create_replicated(cluster)
    w = AckedWriter(cluster.bootstrap, TOPIC).start()
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "g-failover",
                  "auto.offset.reset": "earliest", "enable.auto.commit": True,
                  "auto.commit.interval.ms": 200, "session.timeout.ms": 6000})
    c.subscribe([TOPIC])
    seen: set[bytes] = set()
    try:
        def consumed(n):
            def step():
                for m in c.consume(500, timeout=0.2):
                    if m.error() is None:
                        seen.add(m.value())
                return len(seen) >= n
            return step
        wait_until(consumed(2_000), 90, what="the group consuming")
        def coordinator():
            a = AdminClient({"bootstrap.servers": cluster.bootstrap})
            # A tuple, so coordinator 0 counts as found.
            return (a.describe_consumer_groups(["g-failover"], request_timeout=10)["g-failover"]
                    .result(15).coordinator.id,)
        (coord,) = wait_until(coordinator, 90, what="the group's coordinator")
        cluster.by_id(coord).kill9()
        wait_until(consumed(len(seen) + 2_000), 120, what="the group consuming after the coordinator died")
        cluster.by_id(coord).start_again()
    finally:
        c.close()
        w.stop()
    verify(cluster.bootstrap, w, PARTITIONS)


def test_reassignment_changes_replication_factor_and_moves_off_a_broker_while_producing(cluster, cli):
    # Replication factor 1 cannot satisfy the cluster's min.insync.replicas=2.
    create_topic(cluster.bootstrap, "moving", PARTITIONS, replication_factor=1,
                 config={"min.insync.replicas": "1"})
    w = AckedWriter(cluster.bootstrap, "moving", config={"acks": "all"}).start()
    bootstrap = cluster.brokers[0].bootstrap
    try:
        w.wait_acks(2_000)
        for args in (["--replication-factor", "3"], ["--replication-factor", "2"], ["--move-off", "0"]):
            cp = cli("-b", bootstrap, "topic", "reassign", "moving", *args, "--timeout-secs", "120",
                     timeout=180)
            assert cp.returncode == 0, f"reassign {args}: {cp.stderr}"
            done = re.search(r"(\d+)/(\d+) partitions done\s*$", cp.stderr)
            assert (done and done.group(1) == done.group(2)) or "nothing to move" in cp.stdout, cp.stderr
            acked = w.ack_count()
            w.wait_acks(acked + 500, timeout=120)
        for p in range(PARTITIONS):
            _, replicas, isr = cluster.partition_state("moving", p)
            assert len(replicas) == 2 and 0 not in replicas, f"partition {p}: replicas {replicas}"
            assert sorted(isr) == sorted(replicas)
    finally:
        w.stop()
    assert not w.errors, f"{len(w.errors)} delivery errors, first: {w.errors[:1]}"
    verify(cluster.bootstrap, w, PARTITIONS)
    # Broker 0 no longer holds any replica of the topic: its partition directories are gone.
    wait_until(lambda: not list(cluster.by_id(0).data_dir.glob("moving-*")), 60,
               what="broker 0's replicas of 'moving' to be deleted")


def test_offsets_commit_for_partitions_the_coordinator_does_not_host_and_right_after_create(cluster):
    """The group coordinator stores offsets of any partition of the cluster, not only of the
    partitions its broker holds (replication factor 1 puts each partition on one broker). The
    commits go right after CreateTopics, as in librdkafka test 0140; a coordinator broker that
    has not yet received the new topic would still refuse them (no read barrier yet), which
    these runs did not hit, so this test does not prove that case."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import NewTopic
    a = AdminClient({"bootstrap.servers": cluster.bootstrap})
    for i in range(5):
        name = f"spread-{i}"
        a.create_topics([NewTopic(name, 3, 1)], request_timeout=30)[name].result(30)
        c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": f"g-spread-{i}",
                      "enable.auto.commit": False})
        try:
            wanted = [TopicPartition(name, p, 10 + p) for p in range(3)]
            committed = c.commit(offsets=wanted, asynchronous=False)
            assert [(t.partition, t.offset, t.error) for t in committed] == \
                [(p, 10 + p, None) for p in range(3)], committed
            got = c.committed([TopicPartition(name, p) for p in range(3)], timeout=30)
            assert [(t.partition, t.offset) for t in got] == [(p, 10 + p) for p in range(3)]
        finally:
            c.close()
    md = a.list_topics(timeout=30)
    hosts = {p.leader for p in md.topics["spread-0"].partitions.values()}
    assert len(hosts) == 3, f"replication factor 1 should spread the partitions: {hosts}"
