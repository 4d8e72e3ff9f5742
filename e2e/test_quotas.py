"""Client quotas (KIP-13, KIP-546) set with `runnel quota` and enforced on librdkafka clients:
a producer or consumer over its byte rate gets responses with `throttle_time_ms` (librdkafka
reports them through its throttle callback) and its connection is read again only after that
time, so its rate falls to the quota; a client whose requests take more than its
`request_percentage` of a broker thread is throttled too; clients without a quota are never
throttled; quota keys Runnel does not enforce are refused. Short quota windows (100 ms samples) keep the test quick."""

from __future__ import annotations

import json
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from groups import metric
from helpers import create_topic

WINDOW_ARGS = ["--quota-window-size-ms", "100"]
RATE = 100_000  # bytes per second
RECORDS = 600
SIZE = 1000


def produce(bootstrap: str, topic: str, client_id: str) -> tuple[float, list[float]]:
    """Seconds to produce RECORDS records of SIZE bytes, and the throttle times reported."""
    throttles: list[float] = []
    p = Producer({"bootstrap.servers": bootstrap, "client.id": client_id, "acks": "all",
                  "linger.ms": 5, "batch.size": 16384,
                  "throttle_cb": lambda e: throttles.append(e.throttle_time)})
    started = time.monotonic()
    for i in range(RECORDS):
        while True:
            try:
                p.produce(topic, value=bytes([i % 256]) * SIZE, partition=0)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(120) == 0
    return time.monotonic() - started, throttles


def consume(bootstrap: str, topic: str, client_id: str) -> tuple[float, int, list[float]]:
    throttles: list[float] = []
    c = Consumer({"bootstrap.servers": bootstrap, "client.id": client_id, "group.id": client_id,
                  "enable.auto.commit": False,
                  "max.partition.fetch.bytes": 65536,
                  "throttle_cb": lambda e: throttles.append(e.throttle_time)})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got = 0
        started = time.monotonic()
        deadline = started + 120
        while got < RECORDS and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got += 1
        return time.monotonic() - started, got, throttles
    finally:
        c.close()


def test_quotas_throttle_producers_and_consumers_over_their_byte_rate(broker_factory, cli):
    b = broker_factory(*WINDOW_ARGS)
    bs = ["-b", b.bootstrap]
    create_topic(b.bootstrap, "quota-in", 1)

    cli(*bs, "quota", "alter", "--client-id", "slow", "--add", f"producer_byte_rate={RATE}", check=True)
    cli(*bs, "quota", "alter", "--client-id", "slowc", "--add", f"consumer_byte_rate={RATE}", check=True)
    listed = json.loads(cli(*bs, "--output", "json", "quota", "describe", check=True).stdout)
    assert sorted((r["entity"], r["key"], r["value"]) for r in listed) == [
        ("client-id=slow", "producer_byte_rate", RATE),
        ("client-id=slowc", "consumer_byte_rate", RATE),
    ]
    only = json.loads(cli(*bs, "--output", "json", "quota", "describe", "--client-id", "slow",
                          check=True).stdout)
    assert [r["entity"] for r in only] == ["client-id=slow"]

    # A client without a quota is never throttled.
    _, throttles = produce(b.bootstrap, "quota-in", "fast")
    assert throttles == []

    # Over its quota: throttled, and slowed to about the quota (600 kB at 100 kB/s after the
    # first window's burst takes seconds; only a lower bound is checked).
    elapsed, throttles = produce(b.bootstrap, "quota-in", "slow")
    assert throttles and max(throttles) > 0, throttles
    assert elapsed >= (RECORDS * SIZE / RATE) * 0.5, elapsed
    assert (metric(b.admin_url, "runnel_quota_throttled_requests_total", quota="producer_byte_rate")
            or 0) > 0

    # The consumer quota: every record still arrives, throttled on the way.
    elapsed, got, throttles = consume(b.bootstrap, "quota-in", "slowc")
    assert got == RECORDS
    assert throttles and max(throttles) > 0, throttles
    assert elapsed >= (RECORDS * SIZE / RATE) * 0.5, elapsed
    _, got, throttles = consume(b.bootstrap, "quota-in", "fastc")
    assert got == RECORDS and throttles == []

    # Removed: the client is no longer throttled.
    cli(*bs, "quota", "alter", "--client-id", "slow", "--delete", "producer_byte_rate", check=True)
    listed = json.loads(cli(*bs, "--output", "json", "quota", "describe", check=True).stdout)
    assert [r["entity"] for r in listed] == ["client-id=slowc"]
    _, throttles = produce(b.bootstrap, "quota-in", "slow")
    assert throttles == []


def test_request_percentage_throttles_a_client_that_keeps_the_broker_busy(broker_factory, cli):
    """KIP-124: `request_percentage` bounds the share of a broker thread a client's requests
    may take; a producer sending one small request per record goes over 1 % and is throttled,
    the same producer under another client id is not."""
    b = broker_factory(*WINDOW_ARGS)
    bs = ["-b", b.bootstrap]
    create_topic(b.bootstrap, "quota-req", 1)
    cli(*bs, "quota", "alter", "--client-id", "chatty", "--add", "request_percentage=1", check=True)
    listed = json.loads(cli(*bs, "--output", "json", "quota", "describe", check=True).stdout)
    assert [(r["entity"], r["key"], r["value"]) for r in listed] == [
        ("client-id=chatty", "request_percentage", 1)]

    def produce_one_by_one(client_id: str) -> list[float]:
        throttles: list[float] = []
        p = Producer({"bootstrap.servers": b.bootstrap, "client.id": client_id, "acks": "1",
                      "linger.ms": 0, "max.in.flight": 1,
                      "throttle_cb": lambda e: throttles.append(e.throttle_time)})
        for i in range(300):
            p.produce("quota-req", value=b"x", partition=0)
            p.flush(30)  # one request per record
        return throttles

    assert produce_one_by_one("quiet") == []
    throttles = produce_one_by_one("chatty")
    assert throttles and max(throttles) > 0, throttles
    assert (metric(b.admin_url, "runnel_quota_throttled_requests_total", quota="request_percentage")
            or 0) > 0


def test_quota_keys_runnel_does_not_enforce_are_refused(broker, cli):
    bs = ["-b", broker.bootstrap]
    cp = cli(*bs, "quota", "alter", "--client-id", "x", "--add", "controller_mutation_rate=50")
    assert cp.returncode != 0
    assert "controller_mutation_rate" in cp.stderr and "not supported" in cp.stderr, cp.stderr
    cp = cli(*bs, "quota", "alter", "--client-id", "x", "--add", "producer_byte_rate=-1")
    assert cp.returncode != 0 and "positive" in cp.stderr, cp.stderr
    assert json.loads(cli(*bs, "--output", "json", "quota", "describe", check=True).stdout) == []
