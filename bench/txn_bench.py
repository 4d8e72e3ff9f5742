#!/usr/bin/env python3
"""Transactional versus idempotent produce with librdkafka (confluent-kafka).

Not part of CI. Build the broker first:

    cargo build --release -p runnel-server
    python3 bench/txn_bench.py                   # starts target/release/runnel-broker
    python3 bench/txn_bench.py --bootstrap HOST:PORT   # any Kafka-compatible broker

The same records (1 KiB, 3 partitions, acks=all, linger.ms=5) are produced three times:
by an idempotent producer, and by a transactional producer committing every 100 and every
10,000 records. It prints MB/s for each, the ratio of each transactional run to the idempotent
one, and the p50/p99/max latency of commit_transaction() (the EndTxn round trip plus the wait
for the markers' coordinator state: librdkafka returns once the coordinator has durably decided).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent


def start_broker() -> tuple[subprocess.Popen, str, Path]:
    data = Path(tempfile.mkdtemp(prefix="runnel-txn-bench-"))
    binary = ROOT / "target" / "release" / "runnel-broker"
    proc = subprocess.Popen([str(binary), "--data-dir", str(data), "--listen", "127.0.0.1:0",
                             "--admin-listen", "127.0.0.1:0", "--transaction-state-log-num-partitions", "4",
                             "--offsets-topic-num-partitions", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        m = re.search(r"runnel-broker ready kafka=(\S+:\d+)", line)
        if m:
            return proc, m.group(1), data
    proc.kill()
    raise SystemExit("the broker printed no listening address")


def produce(bootstrap: str, topic: str, records: int, size: int, per_txn: int | None,
            txn_id: str) -> tuple[float, list[float]]:
    """Seconds to produce `records` records; commit latencies (s) when transactional."""
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "batch.size": 1 << 20,
            "queue.buffering.max.kbytes": 1 << 20, "enable.idempotence": True}
    if per_txn:
        conf["transactional.id"] = txn_id
    p = Producer(conf)
    value = os.urandom(size)
    commits: list[float] = []
    if per_txn:
        p.init_transactions(30)
    started = time.monotonic()
    i = 0
    while i < records:
        if per_txn:
            p.begin_transaction()
        n = min(per_txn or records, records - i)
        for j in range(n):
            while True:
                try:
                    p.produce(topic, value=value, partition=(i + j) % 3)
                    break
                except BufferError:
                    p.poll(0.01)
        i += n
        if per_txn:
            t = time.monotonic()
            p.commit_transaction(60)
            commits.append(time.monotonic() - t)
    assert p.flush(120) == 0
    return time.monotonic() - started, commits


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", help="an existing broker (else target/release/runnel-broker is started)")
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=1024)
    args = ap.parse_args()
    proc = data = None
    bootstrap = args.bootstrap
    if not bootstrap:
        proc, bootstrap, data = start_broker()
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        # Warm-up (discarded): connections, the coordinator's topics, page cache.
        for f in admin.create_topics([NewTopic("txn-bench-warmup", 3, 1)]).values():
            f.result()
        produce(bootstrap, "txn-bench-warmup", min(args.records, 10_000), args.size, 1_000, "bench-warmup")
        runs = [("idempotent", None), ("transactional, 100 per commit", 100),
                ("transactional, 10,000 per commit", 10_000)]
        results = []
        for k, (name, per_txn) in enumerate(runs):
            topic = f"txn-bench-{k}"
            for f in admin.create_topics([NewTopic(topic, 3, 1)]).values():
                f.result()
            secs, commits = produce(bootstrap, topic, args.records, args.size, per_txn, f"bench-{k}")
            mbs = args.records * args.size / secs / 1e6
            results.append((name, mbs, commits))
        base = results[0][1]
        for name, mbs, commits in results:
            line = f"{name:34s} {mbs:8.1f} MB/s  ratio {mbs / base:5.2f}"
            if commits:
                line += (f"  commit p50 {pct(commits, 0.5) * 1000:6.1f} ms  p99 {pct(commits, 0.99) * 1000:6.1f} ms"
                         f"  max {max(commits) * 1000:6.1f} ms  ({len(commits)} commits)")
            print(line)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(60)
        if data is not None:
            shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
