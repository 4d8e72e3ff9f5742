#!/usr/bin/env python3
"""One consumer-group member as its own process, so tests can SIGTERM or `kill -9` it for real.

Run by e2e/groups.py (not collected by pytest). It joins GROUP on TOPIC with confluent-kafka
(`--client confluent`: the classic protocol; `--client confluent-848`: KIP-848's consumer protocol,
`group.protocol=consumer`, where the broker assigns and --strategy names its assignor) or
kafka-python and writes one JSON object per line to stdout (tests point stdout at a file):

  {"ev": "started", "pid": N}
  {"ev": "assignment", "parts": [..], "n_assign": N, "t": unix_time}   after every rebalance callback
  {"ev": "recs", "recs": [[partition, offset, value], ...]}              every non-empty poll
  {"ev": "commit", "offs": {"partition": next_offset}}                   after each acknowledged commit (--commit sync)
  {"ev": "closed"}                                                       after a graceful close (SIGTERM)

With --commit auto the client commits in the background every 200 ms; with --commit sync the member
commits what it consumed after every poll and reports only commits the broker acknowledged.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

stop = False


def on_sigterm(_sig, _frame):
    global stop
    stop = True


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def run_confluent(a) -> None:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    conf = {
        "bootstrap.servers": a.bootstrap,
        "group.id": a.group,
        "client.id": a.client_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": a.commit == "auto",
        "auto.commit.interval.ms": 200,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
        "enable.partition.eof": False,
    }
    if a.client == "confluent-848":
        # The broker sets session timeout and heartbeat interval and runs the assignor.
        conf["group.protocol"] = "consumer"
        conf["group.remote.assignor"] = a.strategy
    else:
        conf.update({"session.timeout.ms": a.session_ms, "heartbeat.interval.ms": a.heartbeat_ms,
                     "partition.assignment.strategy": a.strategy})
    if a.instance_id:
        conf["group.instance.id"] = a.instance_id
    c = Consumer(conf)
    current: set[int] = set()
    n_assign = 0

    # The Python binding does not expose the negotiated protocol; the strategy decides it (the
    # consumer protocol always hands partitions over incrementally).
    incremental = a.strategy == "cooperative-sticky" or a.client == "confluent-848"

    def on_assign(consumer, parts):
        nonlocal n_assign
        n_assign += 1
        if incremental:
            current.update(tp.partition for tp in parts)
        else:
            current.clear()
            current.update(tp.partition for tp in parts)
        emit({"ev": "assignment", "parts": sorted(current), "n_assign": n_assign, "t": time.time()})

    def on_revoke(consumer, parts):
        if incremental:
            current.difference_update(tp.partition for tp in parts)
        else:
            current.clear()
        emit({"ev": "assignment", "parts": sorted(current), "n_assign": n_assign, "t": time.time()})

    c.subscribe([a.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
    try:
        while not stop:
            msgs = c.consume(num_messages=a.batch, timeout=0.1)
            recs = []
            for m in msgs:
                if m.error() is not None:
                    continue
                v = m.value()
                recs.append([m.partition(), m.offset(), v.decode() if v is not None else None])
            if not recs:
                continue
            emit({"ev": "recs", "recs": recs})
            if a.commit == "sync":
                nxt: dict[int, int] = {}
                for p, o, _ in recs:
                    nxt[p] = max(nxt.get(p, -1), o + 1)
                try:
                    c.commit(offsets=[TopicPartition(a.topic, p, o) for p, o in nxt.items()], asynchronous=False)
                    emit({"ev": "commit", "offs": {str(p): o for p, o in nxt.items()}})
                except KafkaException as e:
                    emit({"ev": "commit_failed", "error": str(e)})
            if a.rate > 0:
                time.sleep(len(recs) / a.rate)
    finally:
        c.close()
    emit({"ev": "closed"})


def run_kafka_python(a) -> None:
    from kafka import ConsumerRebalanceListener, KafkaConsumer
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    assignor = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}[a.strategy]
    c = KafkaConsumer(bootstrap_servers=a.bootstrap, group_id=a.group, client_id=a.client_id,
                      session_timeout_ms=a.session_ms, heartbeat_interval_ms=a.heartbeat_ms,
                      enable_auto_commit=a.commit == "auto", auto_commit_interval_ms=200,
                      auto_offset_reset="earliest", partition_assignment_strategy=[assignor],
                      reconnect_backoff_ms=50, reconnect_backoff_max_ms=500)
    state = {"n_assign": 0}

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            emit({"ev": "assignment", "parts": [], "n_assign": state["n_assign"], "t": time.time()})

        def on_partitions_assigned(self, assigned):
            state["n_assign"] += 1
            emit({"ev": "assignment", "parts": sorted(tp.partition for tp in assigned),
                  "n_assign": state["n_assign"], "t": time.time()})

    c.subscribe(topics=[a.topic], listener=Listener())
    try:
        while not stop:
            batch = c.poll(timeout_ms=100, max_records=a.batch)
            recs = [[tp.partition, m.offset, m.value.decode() if m.value is not None else None]
                    for tp, msgs in batch.items() for m in msgs]
            if recs:
                emit({"ev": "recs", "recs": recs})
                if a.commit == "sync":
                    c.commit()
                    nxt: dict[int, int] = {}
                    for p, o, _ in recs:
                        nxt[p] = max(nxt.get(p, -1), o + 1)
                    emit({"ev": "commit", "offs": {str(p): o for p, o in nxt.items()}})
                if a.rate > 0:
                    time.sleep(len(recs) / a.rate)
    finally:
        c.close()
    emit({"ev": "closed"})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", choices=["confluent", "confluent-848", "kafka-python"], default="confluent")
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--client-id", default=f"e2e-member-{os.getpid()}")
    ap.add_argument("--strategy", default="range")
    ap.add_argument("--instance-id", default=None)
    ap.add_argument("--session-ms", type=int, default=6000)
    ap.add_argument("--heartbeat-ms", type=int, default=500)
    ap.add_argument("--commit", choices=["auto", "sync"], default="auto")
    ap.add_argument("--batch", type=int, default=500, help="records per poll at most")
    ap.add_argument("--rate", type=float, default=0.0, help="pace consumption to this many records/s (0: no pacing)")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    emit({"ev": "started", "pid": os.getpid()})
    if a.client in ("confluent", "confluent-848"):
        run_confluent(a)
    else:
        run_kafka_python(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
