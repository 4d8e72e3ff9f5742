"""Consumer groups with third-party clients in separate processes: partitions split without
overlap, handed over on a clean leave and after `kill -9` (session timeout), committed offsets
that never go backwards, static membership without rebalances, and a broker `kill -9` that
keeps committed offsets and lets consumers resume where they committed."""

from __future__ import annotations

import time

import pytest

from groups import (GROUP_BROKER_ARGS, CommittedOffsetSampler, KcatMember, Member, committed_offsets,
                    consumed_keys, metric, wait_all_consumed, wait_disjoint_cover)
from helpers import admin, create_topic, kcat_available, produce_confluent, wait_until

PARTITIONS = 6
SESSION_MS = 6000


@pytest.fixture
def group_broker(broker_factory):
    return broker_factory(*GROUP_BROKER_ARGS)


@pytest.fixture
def members(tmp_path):
    """Start group members (processes); every one still running is killed in teardown."""
    started: list[Member] = []

    def make(kind: str, name: str, bootstrap: str, topic: str, group: str, **kw) -> Member:
        if kind == "kcat":
            m = KcatMember(tmp_path, name, bootstrap, topic, group, **kw)
        else:
            m = Member(tmp_path, name, bootstrap, topic, group, client=kind, **kw)
        started.append(m)
        return m

    yield make
    for m in started:
        m.stop()


def produce_batch(bootstrap: str, topic: str, tag: str, n: int) -> set[tuple[int, int]]:
    """n records spread evenly over the partitions; returns their (partition, offset)."""
    rec = produce_confluent(bootstrap, topic, [(None, f"{tag}-{i}".encode(), i % PARTITIONS) for i in range(n)])
    assert not rec.errors, rec.errors[:3]
    return {(a.partition, a.offset) for a in rec.acks}


def run_handover(broker, members, kind: str, strategy: str = "range") -> None:
    bs = broker.bootstrap
    topic, group = f"handover-{kind}-{strategy}", f"g-{kind}-{strategy}"
    create_topic(bs, topic, PARTITIONS)
    produced = produce_batch(bs, topic, "a", 600)
    sampler = CommittedOffsetSampler(bs, group, topic, PARTITIONS).start()
    admin_client = admin(bs)
    try:
        kw = {} if kind == "kcat" else {"strategy": strategy}
        ms = [members(kind, f"{kind}-{i}", bs, topic, group, session_ms=SESSION_MS, **kw) for i in range(3)]
        wait_disjoint_cover(ms, PARTITIONS, what="(three members)")
        assert all(len(m.assignment) == 2 for m in ms), f"uneven split: {ms}"
        # The broker's view (DescribeGroups) is the assignment the clients received.
        desc = admin_client.describe_consumer_groups([group], request_timeout=10)[group].result(15)
        described = {m.client_id: {tp.partition for tp in m.assignment.topic_partitions} for m in desc.members}
        assert described == {f"e2e-{m.name}": m.assignment for m in ms}, described
        produced |= produce_batch(bs, topic, "b", 600)

        # A clean close hands the member's partitions to the other two without waiting for its session.
        if kind == "kcat":
            # kcat drops a record it polls after SIGTERM, yet librdkafka has already stored its
            # offset, which close() commits (kcat's consume_cb returns early once !conf.run). Close
            # kcat only when it has nothing in flight so that quirk cannot lose a record.
            wait_all_consumed(ms, produced)
        gone = set(ms[0].assignment)
        t0 = time.monotonic()
        rc = ms[0].close()
        assert kind == "kcat" or rc == 0, f"member exited {rc}: {ms[0].stderr()[-2000:]}"
        wait_disjoint_cover(ms, PARTITIONS, timeout=SESSION_MS / 1000 + 30, what="after a clean close")
        leave_s = time.monotonic() - t0
        assert gone <= ms[1].assignment | ms[2].assignment
        produced |= produce_batch(bs, topic, "c", 600)

        # kill -9: the broker notices only when the session times out, then the last member takes all.
        t0 = time.monotonic()
        ms[1].kill9()
        wait_disjoint_cover(ms, PARTITIONS, timeout=SESSION_MS / 1000 + 45, what="after kill -9 of a member")
        kill_s = time.monotonic() - t0
        assert ms[2].assignment == set(range(PARTITIONS))
        produced |= produce_batch(bs, topic, "d", 600)

        wait_all_consumed(ms, produced)
        values = {(p, o): v for m in ms for p, o, v in m.consumed}
        assert all(values[k] is not None for k in produced)
        # The last member's auto-commit reaches the log end everywhere.
        ends = {p: 1 + max(o for q, o in produced if q == p) for p in range(PARTITIONS)}
        try:
            wait_until(lambda: sampler.latest == ends, 30)
        except AssertionError:
            raise AssertionError(f"committed offsets {sampler.latest} never reached the log end {ends}") from None
    finally:
        sampler.stop()
    assert sampler.samples >= 10, f"only {sampler.samples} committed-offset samples"
    assert not sampler.regressions, f"committed offsets went backwards (partition, before, after): " \
                                    f"{sampler.regressions[:10]}"
    print(f"{kind}/{strategy}: handover after close {leave_s:.2f}s, after kill -9 {kill_s:.2f}s")


def test_confluent_consumers_split_partitions_and_hand_over_on_close_and_kill9(group_broker, members):
    run_handover(group_broker, members, "confluent", "range")


def test_cooperative_sticky_consumers_split_partitions_and_hand_over(group_broker, members):
    run_handover(group_broker, members, "confluent", "cooperative-sticky")


def test_kafka_python_consumers_split_partitions_and_hand_over(group_broker, members):
    run_handover(group_broker, members, "kafka-python", "range")


@pytest.mark.skipif(not kcat_available(), reason="kcat not installed")
def test_kcat_balanced_consumers_split_partitions_and_hand_over(group_broker, members):
    run_handover(group_broker, members, "kcat")


def test_static_member_restarted_within_session_keeps_partitions_without_rebalance(group_broker, members):
    bs, admin_url = group_broker.bootstrap, group_broker.admin_url
    topic, group = "static", "g-static"
    session_ms = 10000
    create_topic(bs, topic, PARTITIONS)
    produced = produce_batch(bs, topic, "a", 300)
    ms = [members("confluent", f"static-{i}", bs, topic, group, instance_id=f"inst-{i}", session_ms=session_ms)
          for i in range(3)]
    wait_disjoint_cover(ms, PARTITIONS, what="(three static members)")
    wait_all_consumed(ms, produced)
    rebalances = metric(admin_url, "runnel_group_rebalances_total", group=group)
    assert rebalances is not None and rebalances >= 1, "no runnel_group_rebalances_total for the group"
    before = {m.name: (set(m.assignment), m.n_assign) for m in ms}

    t_kill = time.monotonic()
    ms[1].kill9()
    again = members("confluent", "static-1-again", bs, topic, group, instance_id="inst-1", session_ms=session_ms)
    wait_until(lambda: again.refresh().assignment is not None, 30, what="the restarted static member's assignment")
    assert again.assignment == before["static-1"][0], "restarted static member got different partitions"
    produced |= produce_batch(bs, topic, "b", 300)
    wait_all_consumed(ms + [again], produced)  # what the killed member read counts too

    # Watch past the old member's session timeout: a broker that kept the killed member would
    # expire it now and rebalance everyone.
    while True:
        for m in (ms[0], ms[2]):
            m.refresh()
            assert (m.assignment, m.n_assign) == before[m.name], f"{m.name} was rebalanced: {m.assignments}"
        assert again.refresh().n_assign == 1, f"restarted member rebalanced again: {again.assignments}"
        assert metric(admin_url, "runnel_group_rebalances_total", group=group) == rebalances, \
            "the group rebalanced"
        if time.monotonic() - t_kill > session_ms / 1000 + 2:
            break
        time.sleep(0.2)  # observation window, not synchronisation
    last = produce_batch(bs, topic, "c", 300)
    wait_all_consumed(ms + [again], produced | last)
    mine = {(p, o) for p, o in last if p in again.assignment}
    assert mine <= {(p, o) for p, o, _ in again.consumed}, "the restarted member did not read its partitions"


def test_broker_kill9_keeps_committed_offsets_and_consumers_resume_where_committed(group_broker, members):
    b = group_broker
    topic, group = "resume", "g-resume"
    parts = 4
    create_topic(b.bootstrap, topic, parts)
    ms = [members("confluent", f"resume-{i}", b.bootstrap, topic, group, commit="sync", rate=1000, batch=50)
          for i in range(2)]
    wait_disjoint_cover(ms, parts, what="(two members)")
    produced = {(a.partition, a.offset) for a in produce_confluent(
        b.bootstrap, topic, [(None, f"r-{i}".encode(), i % parts) for i in range(6000)]).acks}
    assert len(produced) == 6000

    wait_until(lambda: len(consumed_keys(ms)) >= 1500 and all(m.commits for m in ms), 60,
               what="consumers to be mid-way with commits acknowledged")
    b.kill9()
    for m in ms:
        m.refresh()
    acked = {}
    for m in ms:
        for p, o in m.commits.items():
            acked[p] = max(acked.get(p, 0), o)
    consumed_before = len(consumed_keys(ms))
    assert consumed_before < len(produced), "consumers finished before the broker was killed; slow them down"
    b.restart()

    after = committed_offsets(b.bootstrap, group, topic, parts)
    for p, o in acked.items():
        assert after.get(p, -1) >= o, f"partition {p}: committed offset {after.get(p)} < acknowledged {o}"
    wait_all_consumed(ms, produced, timeout=120)
    # Re-reads are confined to the uncommitted tail: an offset read twice lies at or past the last
    # commit acknowledged before the crash.
    seen: dict[tuple[int, int], int] = {}
    for m in ms:
        for p, o, _ in m.consumed:
            seen[(p, o)] = seen.get((p, o), 0) + 1
    reread = [(p, o) for (p, o), n in seen.items() if n > 1]
    bad = [(p, o) for p, o in reread if o < acked.get(p, 0)]
    assert not bad, f"re-read below the acknowledged commit: {sorted(bad)[:10]} (acked {acked})"

    # Everyone leaves cleanly; their final commits are the log end.
    for m in ms:
        assert m.close() == 0
    ends = {p: 1 + max(o for q, o in produced if q == p) for p in range(parts)}
    wait_until(lambda: committed_offsets(b.bootstrap, group, topic, parts) == ends, 30,
               what=f"final commits {ends}")
    # New records nobody has read, then a second crash: a fresh member starts exactly at the commits.
    fresh = {(a.partition, a.offset) for a in produce_confluent(
        b.bootstrap, topic, [(None, f"n-{i}".encode(), i % parts) for i in range(200)]).acks}
    b.kill9()
    b.restart()
    assert committed_offsets(b.bootstrap, group, topic, parts) == ends, "commits changed across kill -9"
    late = members("confluent", "resume-late", b.bootstrap, topic, group)
    wait_all_consumed([late], fresh)
    firsts = {}
    for p, o, _ in late.consumed:
        firsts.setdefault(p, o)
    assert firsts == ends, f"fresh member started at {firsts}, committed offsets were {ends}"
    assert {(p, o) for p, o, _ in late.consumed} == fresh, "fresh member read records before the commits"
