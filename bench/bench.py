#!/usr/bin/env python3
"""Produce/consume benchmark for runnel-broker (or any Kafka-compatible broker) with librdkafka.

Not part of CI. Build the broker first:

    cargo build --release -p runnel-server
    python3 bench/bench.py                       # starts target/release/runnel-broker
    python3 bench/bench.py --bootstrap HOST:PORT --pid PID --data-dir DIR   # another broker

It measures the machine's fsync'd sequential write rate with dd, then a confluent-kafka
producer (1 KiB records, 3 partitions, acks=all, linger.ms=5, ~1 MiB batches): produce MB/s
and p50/p99 acknowledgement latency (librdkafka's per-message latency, which at saturation
includes time queued in the client, so a second producer paced at --latency-rate-mbs measures
it below saturation); then kcat (or confluent-kafka consumers) reading everything back: consume
MB/s; the broker's peak RSS (VmHWM); and, on a fresh broker, RSS with 100 idle partitions.

The group phase (skip with --group-records 0; run alone with --group-only): a backlog of 1 KiB
records on a 6-partition topic read by a consumer group of 3 confluent-kafka consumers, each its
own process (subscribe, range assignor, auto-commit): records/s and MB/s from the first record to
the last; then, while a paced producer keeps the topic busy, one member leaves (close() sends
LeaveGroup) and we time how long until every remaining member consumes again, and likewise after
a new member joins. librdkafka learns of a rebalance from a heartbeat response, so both are
expected within about one heartbeat interval (--group-heartbeat-ms) plus JoinGroup/SyncGroup.
Needs `pip install -r e2e/requirements.txt` and kcat.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
READY_RE = re.compile(r"runnel-broker ready kafka=(\S+) admin=(\S+)")
MIB = 1024 * 1024


def proc_status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def dd_write_rate(directory: Path, count_mib: int) -> float:
    """MB/s (10^6 bytes) of `dd bs=1M conv=fdatasync` into `directory`."""
    target = directory / "ddtest"
    try:
        t0 = time.monotonic()
        cp = subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={count_mib}", "conv=fdatasync"],
                            capture_output=True, text=True)
        elapsed = time.monotonic() - t0
        if cp.returncode != 0:
            raise RuntimeError(f"dd failed: {cp.stderr}")
        m = re.search(r"(\d+) bytes .* copied, ([\d.]+) s", cp.stderr)
        if m:
            return int(m.group(1)) / float(m.group(2)) / 1e6
        return count_mib * MIB / elapsed / 1e6
    finally:
        target.unlink(missing_ok=True)


class OurBroker:
    """A runnel-broker process started for the benchmark."""

    def __init__(self, binary: str, data_dir: Path, extra: list[str]):
        self.log = open(data_dir.parent / f"{data_dir.name}.broker.log", "wb")
        self.out = data_dir.parent / f"{data_dir.name}.broker.stdout"
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen([binary, "--data-dir", str(data_dir), "--listen", "127.0.0.1:0",
                                          "--admin-listen", "127.0.0.1:0", "--controller-listen", "127.0.0.1:0", *extra],
                                         stdout=out, stderr=self.log, env={**os.environ, "RUST_LOG": "warn"})
        end = time.monotonic() + 60
        while True:
            m = READY_RE.search(self.out.read_text(errors="replace"))
            if m:
                self.bootstrap = m.group(1)
                break
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"broker did not become ready (exit {self.proc.poll()}), see {self.log.name}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# Replication factor of the topics the benchmark creates (--replication-factor).
REPLICATION_FACTOR = 1


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(name, partitions, REPLICATION_FACTOR)], request_timeout=60)[name].result(60)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        t = a.list_topics(topic=name, timeout=10).topics.get(name)
        if t is not None and t.error is None and len(t.partitions) == partitions:
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {name} did not appear")


def producer_proc(bootstrap: str, topic: str, records: int, size: int, deadline_s: float, queue_kbytes: int,
                  q, rate_bps: float = 0.0) -> None:
    """Produce `records` (or until `deadline_s`); with `rate_bps` > 0, paced to that many bytes/s."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "batch.size": 1_000_000,
                  "batch.num.messages": 100_000, "queue.buffering.max.kbytes": queue_kbytes,
                  "queue.buffering.max.messages": 1_000_000, "max.in.flight.requests.per.connection": 16,
                  "compression.type": "none", "message.timeout.ms": 300_000})
    payloads = [os.urandom(size) for _ in range(64)]
    lat: list[float] = []
    errors = [0]

    def on_delivery(err, msg):
        if err is not None:
            errors[0] += 1
        else:
            lat.append(msg.latency())

    # Warm-up, not timed: connections to every partition leader, the producer's
    # metadata, and the first replication round of a new topic.
    md = p.list_topics(topic, timeout=30)
    for part in md.topics[topic].partitions:
        p.produce(topic, value=b"warm-up", partition=part)
    p.flush(60)
    t0 = time.monotonic()
    sent = 0
    while sent < records and time.monotonic() - t0 < deadline_s:
        if rate_bps > 0:
            ahead = sent * size / rate_bps - (time.monotonic() - t0)
            if ahead > 0:
                p.poll(ahead)
                continue
        try:
            p.produce(topic, value=payloads[sent & 63], on_delivery=on_delivery)
            sent += 1
        except BufferError:
            p.poll(0.001)
            continue
        if sent & 1023 == 0:
            p.poll(0)
    p.flush(600)
    t1 = time.monotonic()
    # Keep a sample of latencies so the queue message stays small.
    step = max(1, len(lat) // 200_000)
    q.put({"sent": sent, "bytes": sent * size, "t0": t0, "t1": t1, "errors": errors[0], "lat": lat[::step]})


def consumer_proc(bootstrap: str, topic: str, partitions: list[int], want: int, q) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                  "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760,
                  "fetch.wait.max.ms": 100, "queued.max.messages.kbytes": 1_048_576})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    n = 0
    nbytes = 0
    t0 = None
    idle_deadline = time.monotonic() + 120
    while n < want and time.monotonic() < idle_deadline:
        msgs = c.consume(num_messages=100_000, timeout=1.0)
        if msgs and t0 is None:
            t0 = time.monotonic()
        for m in msgs:
            if m.error() is None:
                n += 1
                nbytes += len(m)
        if msgs:
            idle_deadline = time.monotonic() + 30
    t1 = time.monotonic()
    c.close()
    q.put({"n": n, "bytes": nbytes, "t0": t0 or t1, "t1": t1})


def kcat_consume(bootstrap: str, topic: str, want: int, q) -> None:
    """kcat reads the whole topic (C speed, no Python per message); prints only payload sizes."""
    t0 = time.monotonic()
    cp = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
                         "-X", "fetch.max.bytes=52428800", "-X", "queued.max.messages.kbytes=1048576",
                         "-f", "%S\\n"], capture_output=True)
    t1 = time.monotonic()
    sizes = [int(x) for x in cp.stdout.split()]
    q.put({"n": len(sizes), "bytes": sum(sizes), "t0": t0, "t1": t1})


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-hw"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30, cached=False)[1]
                for p in range(partitions)}
    finally:
        c.close()


def percentile(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


# -- group phase -----------------------------------------------------------------------------

def group_member_proc(bootstrap: str, topic: str, group: str, idx: int, heartbeat_ms: int, go, leave, stop,
                      counter, q) -> None:
    """One group member: paused until `go`, then consumes, reporting assignments and the first
    record after each assignment; on `leave` it closes (LeaveGroup) and reports when it began."""
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": f"bench-member-{idx}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": True,
                  "heartbeat.interval.ms": heartbeat_ms, "partition.assignment.strategy": "range",
                  "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760,
                  "fetch.wait.max.ms": 100, "queued.max.messages.kbytes": 262_144})
    state = {"paused": False, "want_first": False}

    def on_assign(consumer, parts):
        consumer.assign(parts)
        if not go.is_set():
            consumer.pause(parts)
            state["paused"] = True
        state["want_first"] = bool(parts)
        q.put(("assign", idx, sorted(p.partition for p in parts), time.monotonic()))

    def on_revoke(consumer, parts):
        q.put(("revoke", idx, sorted(p.partition for p in parts), time.monotonic()))

    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    while not stop.is_set():
        if leave.is_set():
            q.put(("leaving", idx, None, time.monotonic()))
            break
        if state["paused"] and go.is_set():
            c.resume(c.assignment())
            state["paused"] = False
        msgs = c.consume(num_messages=10_000, timeout=0.05)
        got = sum(1 for m in msgs if m.error() is None)
        if got:
            if state["want_first"]:
                state["want_first"] = False
                q.put(("first", idx, None, time.monotonic()))
            with counter.get_lock():
                counter.value += got
    c.close()


def run_group_phase(bootstrap: str, args, rows: list) -> None:
    parts, members = 6, 3
    topic, group = f"bench-group-{int(time.time())}", f"bench-group-{os.getpid()}"
    create_topic(bootstrap, topic, parts)
    q = mp.Queue()
    print(f"group phase: producing {args.group_records:,} x {args.size} B records to {parts} partitions ...",
          flush=True)
    pp = mp.Process(target=producer_proc, args=(bootstrap, topic, args.group_records, args.size, args.seconds,
                                                args.queue_kbytes, q))
    pp.start()
    q.get()
    pp.join()
    total = sum(high_watermarks(bootstrap, topic, parts).values())

    go, stop = mp.Event(), mp.Event()
    counter = mp.Value("q", 0)
    leaves = [mp.Event() for _ in range(members + 1)]
    procs = [mp.Process(target=group_member_proc, args=(bootstrap, topic, group, i, args.group_heartbeat_ms, go,
                                                        leaves[i], stop, counter, q)) for i in range(members)]
    for p in procs:
        p.start()
    assigned: dict[int, list[int]] = {}
    events: list[tuple] = []

    def pump(until, timeout: float, what: str):
        end = time.monotonic() + timeout
        while not until():
            if time.monotonic() > end:
                raise RuntimeError(f"group phase: timed out waiting for {what}; events {events[-10:]}")
            try:
                ev = q.get(timeout=0.01)
            except Exception:  # noqa: BLE001 - queue.Empty: nothing yet
                continue
            events.append(ev)
            if ev[0] == "assign":
                assigned[ev[1]] = ev[2]
            elif ev[0] == "revoke":
                assigned[ev[1]] = []

    def stable(live: list[int]) -> bool:
        got = [assigned.get(i) for i in live]
        return all(got) and sorted(p for g in got for p in g) == list(range(parts))

    try:
        pump(lambda: stable(list(range(members))), 120, "three members to split the partitions")
        print(f"group phase: {members} members assigned {assigned}; reading {total:,} records ...", flush=True)
        go.set()
        pump(lambda: counter.value >= total, 600, "the group to read the backlog")
        t_read = time.monotonic()
        t_first = min(e[3] for e in events if e[0] == "first")

        # Rebalance timing needs records flowing: a paced producer keeps every partition busy.
        rate = 20e6
        feeder = mp.Process(target=producer_proc, args=(bootstrap, topic, 10**9, args.size, 60, args.queue_kbytes,
                                                        q, rate))
        feeder.start()
        live = list(range(1, members))

        def consuming_again(since: float, who: list[int]) -> bool:
            firsts = {e[1]: e[3] for e in events if e[0] == "first" and e[3] >= since and e[1] in who}
            return stable(who) and len(firsts) == len(who)

        base = counter.value
        pump(lambda: counter.value > base + 1000, 60, "paced records to flow")
        leaves[0].set()
        pump(lambda: any(e[0] == "leaving" for e in events), 60, "member 0 to leave")
        t_leave = next(e[3] for e in events if e[0] == "leaving")
        assigned.pop(0, None)
        pump(lambda: consuming_again(t_leave, live), 120, "the two remaining members to consume again")
        leave_s = max(e[3] for e in events if e[0] == "first" and e[3] >= t_leave and e[1] in live) - t_leave
        leave_assign_s = max(e[3] for e in events if e[0] == "assign" and e[3] >= t_leave) - t_leave

        # A new member joins: time from its start to all three consuming again.
        t_join = time.monotonic()
        joiner = mp.Process(target=group_member_proc, args=(bootstrap, topic, group, members,
                                                            args.group_heartbeat_ms, go, leaves[members], stop,
                                                            counter, q))
        joiner.start()
        procs.append(joiner)
        live = [1, 2, members]
        pump(lambda: consuming_again(t_join, live), 120, "three members to consume again after a join")
        join_s = max(e[3] for e in events if e[0] == "first" and e[3] >= t_join and e[1] in live) - t_join
        feeder.terminate()
        feeder.join()
    finally:
        stop.set()
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.kill()
    # Backlog throughput: from the group's first record to the moment the shared count reached
    # the backlog (polled every 10 ms).
    read_s = t_read - t_first
    rows.append(("group of 3 consumers: records/s", f"{total / read_s:10,.0f}",
                 f"{total:,} x {args.size} B on {parts} partitions in {read_s:.1f}s (separate processes)"))
    rows.append(("group of 3 consumers: MB/s", f"{total * args.size / read_s / 1e6:8.1f} MB/s", ""))
    rows.append(("rebalance: member leaves -> group consuming", f"{leave_s * 1000:8.0f} ms",
                 f"new assignment after {leave_assign_s * 1000:.0f} ms; heartbeat.interval.ms "
                 f"{args.group_heartbeat_ms}"))
    rows.append(("rebalance: member joins -> group consuming", f"{join_s * 1000:8.0f} ms",
                 "from the new member's process start"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker-bin", default=os.environ.get("RUNNEL_BROKER_BIN",
                                                           str(REPO / "target/release/runnel-broker")))
    ap.add_argument("--bootstrap", help="benchmark this already running broker instead of starting ours")
    ap.add_argument("--pid", type=int, help="pid of the --bootstrap broker, for RSS figures")
    ap.add_argument("--data-dir", type=Path, help="where the broker's data lives (dd runs here); default a temp dir")
    ap.add_argument("--records", type=int, default=1_000_000, help="records to produce (default 1,000,000)")
    ap.add_argument("--seconds", type=float, default=120.0, help="stop producing after this long")
    ap.add_argument("--size", type=int, default=1024, help="record value size in bytes")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--replication-factor", type=int, default=1,
                    help="replication factor of the benchmark topics (e.g. 3 against `runnel dev --brokers 3`)")
    ap.add_argument("--queue-kbytes", type=int, default=65536,
                    help="producer queue bound; ack latency includes time queued in it (default 64 MiB)")
    ap.add_argument("--producers", type=int, default=1, help="producer processes")
    ap.add_argument("--consumers", type=int, default=1, help="consumer processes (partitions split among them)")
    ap.add_argument("--latency-rate-mbs", type=float, default=50.0,
                    help="paced phase for ack latency below saturation, MB/s (0 skips)")
    ap.add_argument("--latency-seconds", type=float, default=5.0)
    ap.add_argument("--consumer-tool", choices=["python", "kcat"],
                    default="kcat" if shutil.which("kcat") else "python",
                    help="confluent-kafka consumer processes, or one kcat process")
    ap.add_argument("--dd-mib", type=int, default=1024, help="MiB for the dd fsync'd write test (0 skips)")
    ap.add_argument("--idle-partitions", type=int, default=100)
    ap.add_argument("--broker-arg", action="append", default=[], help="extra runnel-broker flag (repeatable)")
    ap.add_argument("--group-records", type=int, default=300_000,
                    help="backlog for the consumer-group phase (0 skips the phase)")
    ap.add_argument("--group-heartbeat-ms", type=int, default=3000,
                    help="heartbeat.interval.ms of the group members (librdkafka's default: 3000)")
    ap.add_argument("--group-only", action="store_true", help="run only the consumer-group phase")
    args = ap.parse_args()
    global REPLICATION_FACTOR
    REPLICATION_FACTOR = args.replication_factor

    tmp = Path(tempfile.mkdtemp(prefix="runnel-bench-")) if args.data_dir is None else None
    data_dir = args.data_dir or (tmp / "data")
    data_dir.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str]] = []
    brokers: list[OurBroker] = []
    try:
        if args.dd_mib > 0:
            print(f"dd: {args.dd_mib} MiB with conv=fdatasync into {data_dir} ...", flush=True)
            dd = dd_write_rate(data_dir, args.dd_mib)
            rows.append(("fsync'd sequential write (dd)", f"{dd:8.1f} MB/s", ""))
        else:
            dd = None

        if args.bootstrap:
            bootstrap, pid = args.bootstrap, args.pid
            target = f"external broker {bootstrap}"
        else:
            if not os.access(args.broker_bin, os.X_OK):
                print(f"{args.broker_bin} not found: run `cargo build --release -p runnel-server` "
                      f"or pass --broker-bin", file=sys.stderr)
                return 2
            b = OurBroker(args.broker_bin, data_dir, args.broker_arg)
            brokers.append(b)
            bootstrap, pid = b.bootstrap, b.pid
            target = f"runnel-broker {args.broker_bin}"
        print(f"benchmarking {target}", flush=True)

        if not args.group_only:
            topic = f"bench-{int(time.time())}"
            create_topic(bootstrap, topic, args.partitions)

            q = mp.Queue()
            per = args.records // args.producers
            procs = [mp.Process(target=producer_proc, args=(bootstrap, topic, per, args.size, args.seconds,
                                                                 args.queue_kbytes, q))
                     for _ in range(args.producers)]
            print(f"producing {per * args.producers:,} x {args.size} B records with {args.producers} producer(s) ...",
                  flush=True)
            for p in procs:
                p.start()
            results = [q.get() for _ in procs]
            for p in procs:
                p.join()
            sent = sum(r["sent"] for r in results)
            pbytes = sum(r["bytes"] for r in results)
            pt = max(r["t1"] for r in results) - min(r["t0"] for r in results)
            lat = sorted(x for r in results for x in r["lat"])
            errs = sum(r["errors"] for r in results)
            produce_mbs = pbytes / pt / 1e6
            rows.append(("produce throughput", f"{produce_mbs:8.1f} MB/s",
                         f"{sent:,} records in {pt:.1f}s, {errs} errors" + (
                             f"; {produce_mbs / dd:.2f}x dd" if dd else "")))
            rows.append(("ack latency p50 (saturated)", f"{percentile(lat, 0.50) * 1000:8.1f} ms",
                         f"{len(lat):,} samples; includes client queueing"))
            rows.append(("ack latency p99 (saturated)", f"{percentile(lat, 0.99) * 1000:8.1f} ms", ""))

            if args.latency_rate_mbs > 0:
                # Ack latency at saturation is mostly time queued in the client; measure it again at a
                # steady rate well below the broker's limit.
                rate = args.latency_rate_mbs * 1e6
                n = int(rate * args.latency_seconds / args.size)
                lt = f"{topic}-latency"
                create_topic(bootstrap, lt, args.partitions)
                print(f"producing {n:,} records paced at {args.latency_rate_mbs} MB/s for ack latency ...", flush=True)
                lp = mp.Process(target=producer_proc, args=(bootstrap, lt, n, args.size, args.seconds,
                                                            args.queue_kbytes, q, rate))
                lp.start()
                r = q.get()
                lp.join()
                llat = sorted(r["lat"])
                rows.append((f"ack latency p50 @ {args.latency_rate_mbs} MB/s", f"{percentile(llat, 0.50) * 1000:8.1f} ms",
                             f"{len(llat):,} samples, {r['errors']} errors"))
                rows.append((f"ack latency p99 @ {args.latency_rate_mbs} MB/s", f"{percentile(llat, 0.99) * 1000:8.1f} ms",
                             ""))

            hw = high_watermarks(bootstrap, topic, args.partitions)
            total = sum(hw.values())
            groups = [list(range(args.partitions))[i::args.consumers] for i in range(args.consumers)]
            if args.consumer_tool == "kcat":
                procs = [mp.Process(target=kcat_consume, args=(bootstrap, topic, total, q))]
            else:
                procs = [mp.Process(target=consumer_proc, args=(bootstrap, topic, g, sum(hw[p] for p in g), q))
                         for g in groups if g]
            print(f"consuming {total:,} records with {len(procs)} {args.consumer_tool} consumer(s) ...", flush=True)
            for p in procs:
                p.start()
            results = [q.get() for _ in procs]
            for p in procs:
                p.join()
            got = sum(r["n"] for r in results)
            cbytes = sum(r["bytes"] for r in results)
            ct = max(r["t1"] for r in results) - min(r["t0"] for r in results)
            rows.append(("consume throughput", f"{cbytes / ct / 1e6:8.1f} MB/s", f"{got:,}/{total:,} records in {ct:.1f}s"))

            if pid:
                hwm = proc_status_kib(pid, "VmHWM")
                rows.append(("broker peak RSS (VmHWM)", f"{(hwm or 0) / 1024:8.1f} MiB", "after produce + consume"))

            # Idle partitions on a fresh broker (or the external one); --idle-partitions 0 skips.
            if args.idle_partitions > 0:
                if args.bootstrap:
                    ib, ipid = bootstrap, pid
                else:
                    idle_dir = data_dir.parent / (data_dir.name + "-idle")
                    idle_dir.mkdir(exist_ok=True)
                    ib2 = OurBroker(args.broker_bin, idle_dir, args.broker_arg)
                    brokers.append(ib2)
                    ib, ipid = ib2.bootstrap, ib2.pid
                if ipid:
                    rows.append(("broker RSS, fresh" if not args.bootstrap else "broker RSS before idle topic",
                                 f"{(proc_status_kib(ipid, 'VmRSS') or 0) / 1024:8.1f} MiB", ""))
                create_topic(ib, f"idle-{int(time.time())}", args.idle_partitions)
                time.sleep(3)  # let any lazily allocated per-partition state settle before sampling
                if ipid:
                    rows.append((f"broker RSS, {args.idle_partitions} idle partitions",
                                 f"{(proc_status_kib(ipid, 'VmRSS') or 0) / 1024:8.1f} MiB", "target < 150 MiB"))
        if args.group_records > 0:
            run_group_phase(bootstrap, args, rows)
    finally:
        for b in brokers:
            b.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'metric'.ljust(width)}  {'value':>14}  notes")
    print(f"{'-' * width}  {'-' * 14}  {'-' * 30}")
    for name, val, note in rows:
        print(f"{name.ljust(width)}  {val:>14}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
