"""Client metrics (KIP-714) with librdkafka: a subscription made with `runnel client-metrics`
selects clients by client id; a matching producer is told which metrics to push and how
often, pushes them (zstd-compressed OTLP) and the broker shows the latest values on
/metrics; a producer the subscription does not match pushes nothing; deleting the
subscription makes the broker refuse the next push (UNKNOWN_SUBSCRIPTION_ID), after which the
client asks again and stops. Bad subscriptions are refused with a message."""

from __future__ import annotations

import json
import threading
import time

from confluent_kafka import Producer

from groups import metric
from helpers import create_topic, http_get, wait_until


class BusyProducer:
    """Produces a record every 50 ms until stopped, so librdkafka keeps its metrics moving."""

    def __init__(self, bootstrap: str, topic: str, client_id: str):
        self.p = Producer({"bootstrap.servers": bootstrap, "client.id": client_id, "linger.ms": 5})
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, args=(topic,), daemon=True)
        self._t.start()

    def _run(self, topic: str) -> None:
        while not self._stop.is_set():
            self.p.produce(topic, b"x")
            self.p.poll(0)
            self._stop.wait(0.05)

    def close(self) -> None:
        self._stop.set()
        self._t.join(30)
        self.p.flush(30)


def series(admin_url: str, client_id: str) -> list[str]:
    status, text = http_get(admin_url + "/metrics")
    assert status == 200
    return [line for line in text.splitlines()
            if line.startswith("runnel_client_telemetry{") and f'client_id="{client_id}"' in line]


def test_subscribed_clients_push_metrics_that_the_broker_shows(broker, cli):
    b = broker
    bs = ["-b", b.bootstrap]
    create_topic(b.bootstrap, "tele", 1)
    cli(*bs, "client-metrics", "alter", "producers", "--metrics", "org.apache.kafka.producer.",
        "--interval-ms", "1000", "--match", "client_id=tele-.*", check=True)
    assert json.loads(cli(*bs, "--output", "json", "client-metrics", "list", check=True).stdout) == ["producers"]
    described = json.loads(cli(*bs, "--output", "json", "client-metrics", "describe", "producers",
                               check=True).stdout)
    assert {r["name"]: r["value"] for r in described} == {
        "metrics": "org.apache.kafka.producer.", "interval.ms": "1000", "match": "client_id=tele-.*"}

    matched = BusyProducer(b.bootstrap, "tele", "tele-1")
    unmatched = BusyProducer(b.bootstrap, "tele", "other-1")
    try:
        wait_until(lambda: any('metric="org.apache.kafka.producer.node.request.latency.avg"' in s
                               for s in series(b.admin_url, "tele-1")), 60,
                   what="the matching producer's pushed metrics on /metrics")
        mine = series(b.admin_url, "tele-1")
        assert all('metric="org.apache.kafka.producer.' in s for s in mine), mine
        # Pushes keep coming at the subscription's interval.
        first = metric(b.admin_url, "runnel_client_telemetry_pushes_total", result="accepted")
        wait_until(lambda: metric(b.admin_url, "runnel_client_telemetry_pushes_total",
                                  result="accepted") >= first + 2, 30, what="two more pushes")
        assert series(b.admin_url, "other-1") == [], "an unmatched client pushed"

        # Deleted: the next push is refused, the client asks again, gets nothing to push.
        cli(*bs, "client-metrics", "delete", "producers", check=True)
        assert json.loads(cli(*bs, "--output", "json", "client-metrics", "list", check=True).stdout) == []
        wait_until(lambda: (metric(b.admin_url, "runnel_client_telemetry_pushes_total",
                                   result="unknown_subscription") or 0) >= 1, 30,
                   what="a push refused with UNKNOWN_SUBSCRIPTION_ID")
        refused_at = metric(b.admin_url, "runnel_client_telemetry_pushes_total", result="accepted")
        # After asking again it has no metrics to push: no accepted push for several intervals.
        time.sleep(4)  # observation window of four push intervals, not synchronisation
        assert metric(b.admin_url, "runnel_client_telemetry_pushes_total", result="accepted") == refused_at
    finally:
        matched.close()
        unmatched.close()


def test_bad_client_metrics_subscriptions_are_refused_with_a_message(broker, cli):
    bs = ["-b", broker.bootstrap]
    for args, message in [
        (["--interval-ms", "5"], "interval.ms must be an integer from 100 to 3600000"),
        (["--match", "client_rack=a"], "unknown match selector 'client_rack'"),
        (["--match", "client_id=("], "invalid regex"),
        (["--match", "client_id"], "is not selector=regex"),
    ]:
        cp = cli(*bs, "client-metrics", "alter", "bad", *args)
        assert cp.returncode != 0 and "INVALID_CONFIG" in cp.stderr and message in cp.stderr, cp.stderr
    assert json.loads(cli(*bs, "--output", "json", "client-metrics", "list", check=True).stdout) == []
