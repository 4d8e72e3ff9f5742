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
                                          "--admin-listen", "127.0.0.1:0", *extra],
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


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(name, partitions, 1)], request_timeout=60)[name].result(60)
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
    args = ap.parse_args()

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

        # Idle partitions on a fresh broker (or the external one).
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
