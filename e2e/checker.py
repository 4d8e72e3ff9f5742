"""The acknowledged-write checker: an idempotent `acks=all` confluent-kafka producer that records
every acknowledgement, and a verifier that reads every partition back and asserts

- every acknowledged record is present exactly once, at its acknowledged offset (in its
  partition when librdkafka reported no offset: see `verify`);
- per partition, acknowledged records are stored in send order, and acknowledgements with an
  offset arrive in offset order;
- nothing appears twice (an unacknowledged record may be present once or not at all);
- the log of each partition is dense (no offset gap).

The producer runs in a background thread so a test can inject faults (kill -9, network cuts,
restarts, reassignments) while it sends. Used by the cluster scenarios and runnable by hand:

    python3 e2e/checker.py --bootstrap 127.0.0.1:9092 --topic checked --partitions 3 --seconds 30

A driving process (the operator tests' `CheckedProducer`) runs it with `--stop-file PATH
--progress` instead: it reads `acked N` lines while it injects faults, then creates PATH and
waits for the `ok:` line (exit status 1 and a `failed:` line on stderr when an assertion fails).
With `RUNNEL_CHECKER_DEBUG=eos,msg` (librdkafka debug contexts) the producer logs to
`checker-debug-<pid>.log` in the temporary directory.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from confluent_kafka import Producer

from helpers import Ack, consume_confluent


@dataclass
class CheckReport:
    """What the verifier found."""
    acknowledged: int
    stored: int
    unacknowledged_stored: int
    per_partition: dict[int, int] = field(default_factory=dict)


class AckedWriter:
    """Produces `seq`-numbered values (key = `k<seq % keys>`) with an idempotent acks=all producer
    from a background thread, recording acknowledgements and delivery errors."""

    def __init__(self, bootstrap: str, topic: str, keys: int = 64, value_size: int = 100,
                 rate_per_s: float | None = None, config: dict | None = None):
        self.topic = topic
        self.keys = keys
        self.padding = b"." * max(0, value_size - 12)
        self.rate_per_s = rate_per_s
        conf = {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                "linger.ms": 2, "message.timeout.ms": 300000, "reconnect.backoff.max.ms": 500,
                "retry.backoff.max.ms": 500, "topic.metadata.refresh.interval.ms": 1000,
                "partitioner": "murmur2_random"}
        conf.update(config or {})
        debug = os.environ.get("RUNNEL_CHECKER_DEBUG")
        if debug:
            # librdkafka's debug contexts (e.g. `eos,msg`) to a file per checker, for a post-mortem.
            import logging
            import tempfile
            path = os.path.join(tempfile.gettempdir(), f"checker-debug-{os.getpid()}.log")
            logging.basicConfig(filename=path, level=logging.DEBUG)
            conf["debug"] = debug
            self.producer = Producer(conf, logger=logging.getLogger("rdkafka"))
        else:
            self.producer = Producer(conf)
        self.acks: list[Ack] = []
        self.errors: list[tuple[bytes, str]] = []
        self.sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- recording -------------------------------------------------------------------
    def _on_delivery(self, err, msg) -> None:
        with self._lock:
            if err is not None:
                self.errors.append((msg.value(), str(err)))
            else:
                self.acks.append(Ack(msg.key(), msg.value(), msg.partition(), msg.offset()))

    def ack_count(self) -> int:
        with self._lock:
            return len(self.acks)

    def in_flight(self) -> int:
        with self._lock:
            return self.sent - len(self.acks) - len(self.errors)

    # -- sending ---------------------------------------------------------------------
    def value(self, seq: int) -> bytes:
        return f"v{seq:010d}|".encode() + self.padding

    def _run(self) -> None:
        seq = 0
        started = time.monotonic()
        while not self._stop.is_set():
            if self.rate_per_s is not None and seq > (time.monotonic() - started) * self.rate_per_s:
                self.producer.poll(0.005)
                continue
            try:
                self.producer.produce(self.topic, key=f"k{seq % self.keys}".encode(), value=self.value(seq),
                                      on_delivery=self._on_delivery)
                seq += 1
                with self._lock:
                    self.sent = seq
            except BufferError:
                self.producer.poll(0.05)
            self.producer.poll(0)

    def start(self) -> "AckedWriter":
        self._thread = threading.Thread(target=self._run, name="acked-writer", daemon=True)
        self._thread.start()
        return self

    def wait_acks(self, n: int, timeout: float = 120.0) -> None:
        """Wait until `n` records in total have been acknowledged."""
        end = time.monotonic() + timeout
        while self.ack_count() < n:
            if time.monotonic() > end:
                raise AssertionError(f"only {self.ack_count()} acknowledgements after {timeout}s "
                                     f"(wanted {n}); last errors: {self.errors[-3:]}")
            time.sleep(0.05)

    def stop(self, flush_timeout: float = 300.0) -> None:
        """Stop sending and wait for every record in flight to be acknowledged or to fail."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        left = self.producer.flush(flush_timeout)
        assert left == 0, f"{left} records neither acknowledged nor failed after {flush_timeout}s"


def verify(bootstrap: str, writer: AckedWriter, partitions: int, timeout: float = 180.0) -> CheckReport:
    """Read every partition back and assert the checker's properties (see the module docstring)."""
    got = consume_confluent(bootstrap, writer.topic, range(partitions), timeout=timeout)
    acked_values = {a.value for a in writer.acks}
    assert len(acked_values) == len(writer.acks), "the producer acknowledged one value twice"
    stored_at: dict[int, dict[int, tuple]] = {}
    seen: dict[bytes, tuple[int, int]] = {}
    unacked = 0
    for part, recs in got.items():
        offsets = [r.offset for r in recs]
        if recs:
            first = offsets[0]
            assert offsets == list(range(first, first + len(recs))), f"partition {part}: gap in offsets"
        for r in recs:
            assert r.value not in seen, (f"duplicate record {r.value[:12]!r} at {part}/{r.offset}, "
                                         f"first at {seen.get(r.value)}")
            seen[r.value] = (part, r.offset)
            if r.value not in acked_values:
                unacked += 1
        stored_at[part] = {r.offset: (r.key, r.value) for r in recs}
    by_part: dict[int, list[Ack]] = defaultdict(list)
    for a in writer.acks:
        by_part[a.partition].append(a)
        if a.offset is None:
            # librdkafka reports a batch delivered without an offset when a leader refused it
            # (NOT_LEADER) but a later batch of the same idempotent producer was acknowledged:
            # the refused one must then be stored, exactly once (checked above), in its partition.
            where = seen.get(a.value)
            assert where is not None and where[0] == a.partition, (
                f"acknowledged {a.value[:12]!r} (no offset reported) in partition {a.partition} "
                f"but the log holds it at {where}")
            continue
        held = stored_at.get(a.partition, {}).get(a.offset)
        assert held == (a.key, a.value), \
            f"acknowledged {a.value[:12]!r} at {a.partition}/{a.offset} but the log holds {held!r:.60}"
    for part, acks in by_part.items():
        offsets = [a.offset for a in acks if a.offset is not None]
        assert offsets == sorted(offsets), f"partition {part}: acknowledgements out of offset order"
        # Send order = log order for every acknowledged record, with or without a reported offset.
        in_send_order = sorted(acks, key=lambda a: int(a.value[1:11]))
        stored = [seen[a.value][1] for a in in_send_order]
        assert stored == sorted(stored), f"partition {part}: acknowledged records out of send order"
    return CheckReport(acknowledged=len(writer.acks), stored=len(seen), unacknowledged_stored=unacked,
                       per_partition={p: len(r) for p, r in got.items()})


def produce_until(w: AckedWriter, seconds: float, stop_file: str | None, progress: bool) -> None:
    """Let `w` send for `seconds`, or until `stop_file` exists when one is given, printing
    `acked N` every half second with `progress` (a test driving the checker reads it to know
    how far the load has got before injecting a fault)."""
    end = time.monotonic() + seconds
    next_report = time.monotonic()
    while not os.path.exists(stop_file) if stop_file else time.monotonic() < end:
        if progress and time.monotonic() >= next_report:
            print(f"acked {w.ack_count()}", flush=True)
            next_report += 0.5
        time.sleep(0.05)
    if progress:
        print(f"acked {w.ack_count()}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, required=True, help="partition count of the (existing) topic")
    ap.add_argument("--seconds", type=float, default=30.0, help="how long to produce (without --stop-file)")
    ap.add_argument("--stop-file", help="produce until this file exists (instead of --seconds), then verify")
    ap.add_argument("--progress", action="store_true", help="print `acked N` to stdout every 0.5 s")
    ap.add_argument("--rate", type=float, help="records per second (default: as fast as acknowledged)")
    args = ap.parse_args()
    w = AckedWriter(args.bootstrap, args.topic, rate_per_s=args.rate).start()
    try:
        produce_until(w, args.seconds, args.stop_file, args.progress)
        w.stop()
        report = verify(args.bootstrap, w, args.partitions)
    except AssertionError as e:
        # One line a driving test can quote; the traceback goes with it for whoever digs deeper.
        print(f"failed: {e}", file=sys.stderr, flush=True)
        raise SystemExit(1) from e
    print(f"ok: {report.acknowledged} acknowledged, {report.stored} stored "
          f"({report.unacknowledged_stored} unacknowledged but stored once), errors {len(w.errors)}",
          flush=True)


if __name__ == "__main__":
    main()
