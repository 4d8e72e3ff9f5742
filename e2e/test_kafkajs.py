"""KafkaJS (pure JavaScript, sharing no protocol code with librdkafka or kafka-python) against a
single broker and a replicated 3-broker cluster: admin CreateTopics, an idempotent acks=all
producer (plain and gzip batches), a consumer group that commits, then the admin's view of the
group's offsets and the topic's offsets. Every record KafkaJS produced is then read back with
librdkafka too. The scenario is `e2e/kafkajs/scenario.js`; the test command installs KafkaJS
with `npm ci --prefix e2e/kafkajs`."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from cluster import Cluster
from helpers import consume_confluent

SCENARIO_DIR = Path(__file__).parent / "kafkajs"
COUNT = 600


def run_scenario(bootstrap: str, topic: str, group: str, rf: int) -> dict:
    node = shutil.which("node")
    if node is None or not (SCENARIO_DIR / "node_modules" / "kafkajs").is_dir():
        pytest.fail("KafkaJS is not installed: needs node and `npm ci --prefix e2e/kafkajs` "
                    "(scripts/test.sh runs it)")
    done = subprocess.run([node, str(SCENARIO_DIR / "scenario.js"), bootstrap, topic, group, str(COUNT),
                           str(rf)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"KafkaJS scenario failed ({done.returncode}):\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(result: dict, bootstrap: str, topic: str) -> None:
    assert result["created"] is True
    assert len(result["acks"]) > 0 and all(a["errorCode"] == 0 for a in result["acks"]), result["acks"][:5]
    consumed = result["consumed"]
    assert sorted(int(r["value"][1:]) for r in consumed) == list(range(COUNT)), "each record exactly once"
    by_partition: dict[int, list[dict]] = defaultdict(list)
    partition_of_key: dict[str, int] = {}
    for r in consumed:
        by_partition[r["partition"]].append(r)
        assert partition_of_key.setdefault(r["key"], r["partition"]) == r["partition"], \
            f"key {r['key']} in two partitions"
        assert r["seq"] == r["value"][1:], "headers travel with their record"
    assert len(by_partition) == 3, "KafkaJS's partitioner spreads 16 keys over the 3 partitions"
    ends = {e["partition"]: e for e in result["ends"]}
    for p, recs in by_partition.items():
        offsets = [r["offset"] for r in recs]
        assert offsets == list(range(len(recs))), f"partition {p}: offsets dense from 0 in order"
        seqs = [int(r["value"][1:]) for r in recs]
        assert seqs == sorted(seqs), f"partition {p}: records in send order"
        assert (ends[p]["low"], ends[p]["high"]) == (0, len(recs))
    committed = {c["partition"]: c["offset"] for c in result["committed"]}
    assert committed == {p: len(recs) for p, recs in by_partition.items()}, "the group committed to the end"
    assert result["groupState"] == "Empty", "the group is empty once its member left"
    # Another client reads the same log: what KafkaJS wrote, where KafkaJS read it.
    got = consume_confluent(bootstrap, topic, range(3))
    assert {(p, r.offset, r.key.decode(), r.value.decode()) for p, recs in got.items() for r in recs} == \
        {(r["partition"], r["offset"], r["key"], r["value"]) for r in consumed}


def test_kafkajs_admin_idempotent_produce_group_consume_and_offsets_on_one_broker(broker):
    result = run_scenario(broker.bootstrap, "kjs", "kjs-group", 1)
    check(result, broker.bootstrap, "kjs")


def test_kafkajs_against_a_replicated_three_broker_cluster(tmp_path):
    c = Cluster(tmp_path, 3, ["--offsets-topic-num-partitions", "3", "--group-initial-rebalance-delay-ms", "0",
                              "--min-insync-replicas", "2"])
    try:
        c.start()
        result = run_scenario(c.bootstrap, "kjs-replicated", "kjs-cluster-group", 3)
        for p in range(3):
            c.wait_isr("kjs-replicated", p, 3)
        check(result, c.bootstrap, "kjs-replicated")
    finally:
        c.stop()
