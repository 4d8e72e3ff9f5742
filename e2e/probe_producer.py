"""Run inside an isolated broker's network namespace: try to produce with acks=all to that broker
and print one JSON line with how many records were acknowledged and the errors seen."""

from __future__ import annotations

import argparse
import json

from confluent_kafka import Producer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partition", type=int, required=True)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--timeout-ms", type=int, default=8000)
    args = ap.parse_args()
    acked, errors = [], []

    def on_delivery(err, msg):
        if err is None:
            acked.append(msg.offset())
        else:
            errors.append(err.name())

    # Not idempotent: an idempotent producer would retry forever-ish; this one must give up.
    p = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "message.timeout.ms": args.timeout_ms,
                  "request.timeout.ms": args.timeout_ms, "retries": 0,
                  "topic.metadata.refresh.interval.ms": 600000})
    for i in range(args.count):
        p.produce(args.topic, value=f"probe-{i}".encode(), partition=args.partition, on_delivery=on_delivery)
    p.flush(args.timeout_ms / 1000 + 30)
    print(json.dumps({"acked": acked, "errors": sorted(set(errors))}))


if __name__ == "__main__":
    main()
