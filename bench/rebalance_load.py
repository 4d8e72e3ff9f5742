#!/usr/bin/env python3
"""Load for the operator's rebalance benchmark (operator/tests/it/bench_rebalance.rs).

Two modes, both librdkafka producers (confluent-kafka) with acks=all and 1 KiB records:

    rebalance_load.py fill  --bootstrap HOST:PORT --topic bulk  --bytes 1073741824
    rebalance_load.py probe --bootstrap HOST:PORT --topic probe --rate 2000000

`fill` produces `--bytes` of records as fast as it can (linger.ms=5, ~1 MiB batches, as
bench/bench.py does), waits for every acknowledgement and prints one line
`filled records=N bytes=B secs=S errors=E`.

`probe` sends records paced at `--rate` bytes/s until killed. After a warm-up (metadata and
one acknowledged record per partition) it prints `ready`, then one line per delivery report:
`ack <ms>` with librdkafka's latency of that record (from produce() to the broker's
acknowledgement, so time queued in the client counts), or `err <reason>`.

Needs `pip install -r e2e/requirements.txt`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from confluent_kafka import Producer


def producer(bootstrap: str, linger_ms: int) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": linger_ms,
                     "batch.size": 1_000_000, "batch.num.messages": 100_000,
                     "queue.buffering.max.kbytes": 65536, "queue.buffering.max.messages": 1_000_000,
                     "max.in.flight.requests.per.connection": 16, "compression.type": "none",
                     "message.timeout.ms": 300_000})


def warm_up(p: Producer, topic: str) -> None:
    """One acknowledged record per partition, so connections and metadata are in place."""
    md = p.list_topics(topic, timeout=30)
    for part in md.topics[topic].partitions:
        p.produce(topic, value=b"warm-up", partition=part)
    if p.flush(60) != 0:
        raise RuntimeError(f"warm-up records to {topic} were not acknowledged within 60 s")


def fill(args: argparse.Namespace) -> int:
    p = producer(args.bootstrap, 5)
    records = args.bytes // args.size
    payloads = [os.urandom(args.size) for _ in range(64)]
    errors = [0]

    def on_delivery(err, _msg):
        if err is not None:
            errors[0] += 1
            if errors[0] <= 5:
                print(f"delivery failed: {err}", file=sys.stderr, flush=True)

    t0 = time.monotonic()
    sent = 0
    while sent < records:
        try:
            p.produce(args.topic, value=payloads[sent & 63], on_delivery=on_delivery)
            sent += 1
        except BufferError:
            p.poll(0.001)
            continue
        if sent & 1023 == 0:
            p.poll(0)
    left = p.flush(600)
    secs = time.monotonic() - t0
    print(f"filled records={sent} bytes={sent * args.size} secs={secs:.3f} errors={errors[0] + left}",
          flush=True)
    return 0


def probe(args: argparse.Namespace) -> int:
    p = producer(args.bootstrap, args.linger_ms)
    payload = os.urandom(args.size)
    out = sys.stdout

    def on_delivery(err, msg):
        if err is not None:
            out.write(f"err {err}\n")
        else:
            out.write(f"ack {msg.latency() * 1000:.3f}\n")

    warm_up(p, args.topic)
    print("ready", flush=True)
    interval = args.size / args.rate
    next_send = time.monotonic()
    while True:
        now = time.monotonic()
        if next_send > now:
            # Serve delivery reports while waiting for the next slot.
            p.poll(next_send - now)
            out.flush()
            continue
        try:
            p.produce(args.topic, value=payload, on_delivery=on_delivery)
        except BufferError:
            p.poll(0.001)
            continue
        # A stall (the producer blocked on a full queue) does not turn into a burst afterwards:
        # the probe keeps its rate rather than catching up.
        next_send = max(next_send + interval, time.monotonic() - 1.0)
        p.poll(0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    f = sub.add_parser("fill", help="produce --bytes as fast as possible, then exit")
    f.add_argument("--bytes", type=int, default=1 << 30)
    pr = sub.add_parser("probe", help="paced producer printing each record's ack latency")
    pr.add_argument("--rate", type=float, default=2_000_000, help="bytes per second")
    pr.add_argument("--linger-ms", type=int, default=5)
    for s in (f, pr):
        s.add_argument("--bootstrap", required=True)
        s.add_argument("--topic", required=True)
        s.add_argument("--size", type=int, default=1024, help="record value size in bytes")
    args = ap.parse_args()
    return fill(args) if args.mode == "fill" else probe(args)


if __name__ == "__main__":
    sys.exit(main())
