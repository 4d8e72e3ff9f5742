"""runnel-streams applications against a real broker, their inputs written and their outputs read
by librdkafka (confluent-kafka): the weather pipeline, and payments per customer under SIGKILL
with exactly-once and at-least-once, on one instance and on two."""

from __future__ import annotations

import json
import random
import threading
import time

import pytest

from groups import committed_offsets
from confluent_kafka import Producer

from helpers import AckRecorder, create_topic, produce_confluent, wait_until
from streams import StreamsApp, read_committed, wait_consumed

PARTITIONS = 3


def readings(n: int, seed: int = 7) -> list[tuple[str, float]]:
    rng = random.Random(seed)
    stations = [f"station-{i:02d}" for i in range(12)]
    return [(rng.choice(stations), round(rng.uniform(-10.0, 45.0), 1)) for _ in range(n)]


def test_weather_pipeline_outputs_exactly_the_readings_above_the_threshold_in_key_order(broker, tmp_path):
    bs = broker.bootstrap
    create_topic(bs, "raw-weather", PARTITIONS)
    create_topic(bs, "processed-weather", PARTITIONS)
    rows = readings(3000)
    records = [(s.encode(), json.dumps({"station": s, "celsius": c, "at": f"t{i}"}).encode())
               for i, (s, c) in enumerate(rows)]
    acks = produce_confluent(bs, "raw-weather", records, config={"enable.idempotence": True})
    assert not acks.errors

    app = StreamsApp("weather", ["--bootstrap-servers", bs, "--application-id", "weather-e2e",
                                 "--threshold", "30", "--state-dir", str(tmp_path / "state")], tmp_path / "app")
    try:
        app.start()
        wait_consumed(bs, "weather-e2e", "raw-weather", PARTITIONS, apps=[app])
        out = read_committed(bs, "processed-weather", PARTITIONS)
    finally:
        code = app.terminate() if app.alive() else app.proc.returncode
    assert code == 0, app.log()[-4000:]

    expected: dict[str, list[tuple[str, float]]] = {}
    for i, (s, c) in enumerate(rows):
        if c > 30.0:
            expected.setdefault(s, []).append((f"t{i}", c))
    got: dict[str, list[tuple[str, float]]] = {}
    for recs in out.values():
        for key, value, _ in recs:
            v = json.loads(value)
            assert key.decode() == v["station"] and v["alert"] == "heat"
            assert v["fahrenheit"] == round(v["celsius"] * 9 / 5 + 32, 1)
            got.setdefault(v["station"], []).append((v["at"], v["celsius"]))
    assert sum(map(len, got.values())) == sum(map(len, expected.values())) > 100
    assert got == expected, "each station's readings above 30 °C, each once, in input order"


def payments(n: int, customers: int = 40, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    return [{"id": f"p-{i}", "customer": f"customer-{rng.randrange(customers):02d}",
             "amount_cents": rng.randrange(1, 100_000)} for i in range(n)]


def truth(pays: list[dict]) -> dict[str, dict]:
    t: dict[str, dict] = {}
    for p in pays:
        e = t.setdefault(p["customer"], {"count": 0, "total_cents": 0})
        e["count"] += 1
        e["total_cents"] += p["amount_cents"]
    return t


def produce_payments(bs: str, pays: list[dict]) -> None:
    acks = produce_confluent(bs, "payments", [(p["id"].encode(), json.dumps(p).encode()) for p in pays],
                             config={"enable.idempotence": True})
    assert not acks.errors


def table_over_http(app: StreamsApp, customers) -> dict[str, dict]:
    out = {}
    for c in customers:
        status, body = app.get(f"/stores/payments-per-customer/keys/{c}")
        assert status == 200, f"{c}: {status} {body}"
        out[c] = body["value"]
    return out


def payments_app(bs: str, tmp_path, guarantee: str, instance: str = "0", app_id: str = "payments-e2e"):
    return StreamsApp("payments", ["--bootstrap-servers", bs, "--application-id", app_id,
                                   "--guarantee", guarantee, "--instance-id", instance,
                                   "--commit-interval-ms", "200", "--session-timeout-ms", "10000",
                                   "--state-dir", str(tmp_path / f"state-{instance}"),
                                   "--http", "127.0.0.1:0"], tmp_path / f"app-{instance}")


def drain(bs: str, app: StreamsApp, app_id: str = "payments-e2e") -> None:
    """Wait until the application consumed every payment and every repartitioned record."""
    wait_consumed(bs, app_id, "payments", PARTITIONS, apps=[app])
    wait_consumed(bs, app_id, f"{app_id}-payments-per-customer-repartition", PARTITIONS, apps=[app])


def committed_total(bs: str, app_id: str = "payments-e2e") -> int:
    return sum(max(o, 0) for o in committed_offsets(bs, app_id, "payments", PARTITIONS).values())


@pytest.mark.parametrize("guarantee", ["exactly-once", "at-least-once"])
def test_payments_per_customer_survive_sigkill_mid_stream(broker, tmp_path, guarantee):
    bs = broker.bootstrap
    create_topic(bs, "payments", PARTITIONS)
    create_topic(bs, "payments-per-customer", PARTITIONS)
    pays = payments(6000)
    app = payments_app(bs, tmp_path, guarantee)
    # Payments keep arriving (about 250/s, for 25 s) while the application is killed three times, each time
    # after it committed progress of its own.
    producer_error: list[BaseException] = []

    def produce_slowly():
        try:
            p = Producer({"bootstrap.servers": bs, "acks": "all", "linger.ms": 5, "enable.idempotence": True})
            failed = AckRecorder()
            for i in range(0, len(pays), 40):
                for x in pays[i:i + 40]:
                    p.produce("payments", key=x["id"].encode(), value=json.dumps(x).encode(), on_delivery=failed)
                p.poll(0)
                time.sleep(0.15)
            assert p.flush(60) == 0 and not failed.errors, failed.errors
        except BaseException as e:  # reported by the main thread
            producer_error.append(e)

    feeder = threading.Thread(target=produce_slowly)
    try:
        app.start()
        feeder.start()
        for threshold in (1000, 2500, 4000):
            wait_until(lambda: committed_total(bs) >= threshold
                       and app.metric("runnel_streams_commits_total") >= 1,
                       timeout=120, interval=0.2, what=f"{threshold} payments processed and committed")
            assert feeder.is_alive(), "the kill must land while payments are still arriving"
            app.kill9()
            app.start()
        feeder.join(timeout=300)
        assert not producer_error, producer_error
        drain(bs, app)
        want = truth(pays)
        got = table_over_http(app, want)
        table_topic = read_committed(bs, "payments-per-customer", PARTITIONS)
    finally:
        feeder.join(timeout=300)
        app.stop()
    assert app.starts == 4
    latest = {}
    for recs in table_topic.values():
        for key, value, _ in recs:
            latest[key.decode()] = json.loads(value)
    if guarantee == "exactly-once":
        assert got == want, "no payment counted twice or lost"
        assert latest == want, "the committed changes end with the true totals"
        assert app.all_logs().count("restored store") >= 3, "restarts restored the stores from the changelog"
    else:
        for c, t in want.items():
            assert got[c]["count"] >= t["count"] and got[c]["total_cents"] >= t["total_cents"], \
                f"{c}: at-least-once lost a payment: {got[c]} < {t}"


def test_two_instances_split_the_partitions_and_the_survivor_restores_and_serves(broker, tmp_path):
    bs = broker.bootstrap
    create_topic(bs, "payments", PARTITIONS)
    create_topic(bs, "payments-per-customer", PARTITIONS)
    a = payments_app(bs, tmp_path, "exactly-once", instance="a")
    b = payments_app(bs, tmp_path, "exactly-once", instance="b")
    try:
        a.start()
        b.start()
        wait_until(lambda: a.tasks() and b.tasks() and len(set(a.tasks()) | set(b.tasks())) == 2 * PARTITIONS,
                   timeout=90, what="both instances running tasks")
        assert not set(a.tasks()) & set(b.tasks()), "each task runs on one instance"
        pays = payments(3000, seed=11)
        produce_payments(bs, pays)
        drain(bs, a)
        want = truth(pays)
        # Each customer is answered by the instance that holds it; the other says where it is.
        for c, t in want.items():
            status, body = a.get(f"/stores/payments-per-customer/keys/{c}")
            if status == 421:
                assert body["owner"] == b.http, body
                status, body = b.get(f"/stores/payments-per-customer/keys/{c}")
            assert status == 200 and body["value"] == t, (c, status, body)
            _, owner = b.get(f"/stores/payments-per-customer/owner/{c}")
            assert owner["owner"] in (a.http, b.http)

        restored_before = a.metric("runnel_streams_restored_records_total")
        b.kill9()
        wait_until(lambda: len(a.tasks()) == 2 * PARTITIONS, timeout=120,
                   what="the survivor to take every task")
        assert table_over_http(a, want) == want, "the survivor restored the moved stores"
        status, entries = a.get("/stores/payments-per-customer/all?from=customer-05&to=customer-14")
        assert status == 200
        assert [e["key"] for e in entries] == sorted(c for c in want if "customer-05" <= c <= "customer-14")
        assert all(e["value"] == want[e["key"]] for e in entries)
        assert a.metric("runnel_streams_restored_records_total") > restored_before
    finally:
        a.stop()
        b.stop()
