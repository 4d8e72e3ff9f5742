"""Admin HTTP endpoints, Prometheus metrics, graceful SIGTERM, and config validation at start-up."""

from __future__ import annotations

import re

from confluent_kafka import Producer

from conftest import Broker
from helpers import connect, consume_confluent, create_topic, http_get, produce_confluent, wait_until

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(b: Broker) -> list[tuple[str, dict[str, str], float]]:
    status, text = http_get(b.admin_url + "/metrics")
    assert status == 200, f"/metrics returned {status}"
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not Prometheus text format: {line!r}"
        labels = dict(LABEL_RE.findall(m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def find(samples, name_has: tuple[str, ...], name_any: tuple[str, ...] = (), **labels) -> list:
    """Samples whose name contains every `name_has` part and one of `name_any`, with matching labels."""
    res = []
    for name, lab, val in samples:
        n = name.lower()
        if not all(p in n for p in name_has):
            continue
        if name_any and not any(p in n for p in name_any):
            continue
        if all(str(lab.get(k, "")).lower() == str(v).lower() for k, v in labels.items()):
            res.append((name, lab, val))
    return res


def test_healthz_and_readyz_answer_200(broker):
    status, body = http_get(broker.admin_url + "/healthz")
    assert status == 200 and body.strip() == "ok"
    status, _ = http_get(broker.admin_url + "/readyz")
    assert status == 200
    status, _ = http_get(broker.admin_url + "/no-such-endpoint")
    assert status == 404


def test_metrics_count_bytes_records_requests_offsets_and_connections(broker):
    topic = "observed"
    create_topic(broker.bootstrap, topic, 2)
    acks = produce_confluent(broker.bootstrap, topic, [(None, f"m{i}".encode() + b"." * 100, i % 2) for i in range(10)],
                             {"acks": "1"})
    assert not acks.errors
    consume_confluent(broker.bootstrap, topic, range(2))

    def open_connections() -> float:
        conns = find(scrape(broker), ("connection",))
        assert conns, "no open-connections metric"
        return max(v for _, _, v in conns)

    # Other clients of this test may still be closing, so assert with absolute counts: three held
    # connections make the gauge at least 3, and closing them takes it 3 below what it showed.
    held = [connect(broker.bootstrap) for _ in range(3)]
    try:
        # The broker accepts asynchronously: poll until the held connections show up.
        wait_until(lambda: open_connections() >= 3, 30, what="three held connections to be counted")
        with_held = open_connections()
    finally:
        for s in held:
            s.close()
    wait_until(lambda: open_connections() <= with_held - 3, 30, what="closed connections to be uncounted")
    samples = scrape(broker)

    def per_topic(kind: str, direction: tuple[str, ...]) -> float:
        hits = find(samples, (kind,), direction, topic=topic)
        assert hits, f"no {kind} {direction} metric with topic=\"{topic}\""
        return sum(v for name, _, v in hits if not name.endswith("_created"))

    assert per_topic("bytes", ("_in", "produce")) >= 10 * 100
    assert per_topic("records", ("_in", "produce", "messages_in")) == 10
    assert per_topic("bytes", ("_out", "fetch", "consume")) >= 10 * 100
    assert per_topic("records", ("_out", "fetch", "consume")) >= 10

    apis = {lab.get(k, "").lower() for _, lab, _ in find(samples, ("request",)) for k in lab
            if k in ("api", "api_key", "request")}
    for api in ("produce", "fetch", "metadata", "apiversions"):
        assert any(api == a.replace("_", "") for a in apis), f"no request counter for {api}; saw {sorted(apis)}"
    assert any(n.endswith("_bucket") for n, _, _ in find(samples, ("request",))), "no request latency histogram"

    leo = find(samples, ("end_offset",), topic=topic)
    assert leo, "no log-end-offset metric per partition"
    by_part = {lab.get("partition"): v for _, lab, v in leo}
    assert by_part == {"0": 5.0, "1": 5.0}, f"log end offsets {by_part}"
    assert find(samples, ("size",), ("log", "partition", "bytes"), topic=topic), "no per-partition log size metric"


def test_sigterm_exits_0_and_acks_1_records_are_readable_after_restart(broker_factory):
    b = broker_factory()
    topic = "graceful"
    create_topic(b.bootstrap, topic, 2)
    acks = produce_confluent(b.bootstrap, topic, [(f"k{i}".encode(), f"v{i}".encode()) for i in range(5000)],
                             {"acks": "1"})
    assert not acks.errors and len(acks.acks) == 5000
    assert b.terminate() == 0, f"SIGTERM exit code; stderr:\n{b.stderr()[-2000:]}"
    b.restart()
    got = consume_confluent(b.bootstrap, topic, range(2))
    stored = {(r.partition, r.offset): r.value for recs in got.values() for r in recs}
    for a in acks.acks:
        assert stored.get((a.partition, a.offset)) == a.value
    assert "truncated" not in b.stderr(), "a clean shutdown left something for recovery to truncate"


def test_sigterm_with_parked_fetch_and_streaming_producer_exits_promptly_keeping_acks(broker_factory):
    import threading
    import time

    from helpers import AckRecorder, fetch_v4_body, request_frame

    b = broker_factory()
    create_topic(b.bootstrap, "busy", 1)
    create_topic(b.bootstrap, "idle", 1)
    # A long-poll fetch parked on an empty partition, and an idle connection.
    parked = connect(b.bootstrap, timeout=120)
    parked.sendall(request_frame(1, 4, 1, fetch_v4_body("idle", 0, 0, 120_000, 1, 1 << 20, 1 << 20)))
    idle = connect(b.bootstrap, timeout=120)
    rec = AckRecorder()
    stop = threading.Event()

    def stream():
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 2,
                      "message.timeout.ms": 10000, "retries": 0})
        i = 0
        while not stop.is_set():
            try:
                p.produce("busy", value=f"s{i}".encode(), on_delivery=rec)
                i += 1
            except BufferError:
                pass
            p.poll(0.001)
        p.flush(2)  # records still unacknowledged at shutdown are not part of the claim
    t = threading.Thread(target=stream)
    t.start()
    try:
        wait_until(lambda: len(rec.acks) >= 2000, 60, what="the producer to stream")
        t0 = time.monotonic()
        code = b.terminate(timeout_s=30)
        took = time.monotonic() - t0
    finally:
        stop.set()
        t.join()
        parked.close()
        idle.close()
    assert code == 0, f"SIGTERM under load exited {code}; stderr:\n{b.stderr()[-2000:]}"
    assert took < 20, f"shutdown took {took:.1f}s with a parked fetch open"
    b.restart()
    stored = {r.offset: r.value for r in consume_confluent(b.bootstrap, "busy", [0])[0]}
    missing = [a for a in rec.acks if stored.get(a.offset) != a.value]
    assert not missing, f"{len(missing)} acknowledged records missing after graceful restart, e.g. {missing[0]}"
    assert list(stored) == list(range(len(stored)))


def test_unknown_config_key_makes_broker_exit_non_zero_naming_it(tmp_path, broker_factory):
    cfg = tmp_path / "runnel.toml"
    cfg.write_text('num_partitions = 3\nretention_typo_key = 5\n')
    b = broker_factory("--config", str(cfg), start=False)
    proc = b.spawn()
    code = proc.wait(timeout=60)
    assert code != 0, "broker started with an unknown config key"
    out = b.stderr() + b.stdout_path.read_text()
    assert "retention_typo_key" in out, f"error does not name the key:\n{out[-2000:]}"


def test_config_file_and_env_settings_apply(tmp_path, broker_factory):
    cfg = tmp_path / "runnel.toml"
    cfg.write_text('num_partitions = 3\nauto_create_topics = true\n')
    b = broker_factory("--config", str(cfg), env={"RUNNEL_MESSAGE_MAX_BYTES": "5000"})
    p = Producer({"bootstrap.servers": b.bootstrap, "message.timeout.ms": 20000})
    p.produce("auto-made", value=b"hello")
    assert p.flush(30) == 0
    from helpers import topic_partitions
    wait_until(lambda: topic_partitions(b.bootstrap, "auto-made") == 3, 30,
               what="auto-created topic with num_partitions from the TOML file")
    big = produce_confluent(b.bootstrap, "auto-made", [(None, b"x" * 8000)], {"retries": 0, "message.timeout.ms": 20000})
    assert big.errors, "RUNNEL_MESSAGE_MAX_BYTES=5000 did not limit record size"


def test_node_id_cluster_id_and_advertised_address_flags_show_in_metadata(broker_factory):
    import socket

    from helpers import admin
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = broker_factory("--node-id", "7", "--cluster-id", "e2e-fixed-cluster-id",
                       "--advertised-address", f"localhost:{port}", start=False)
    b.start(listen=f"127.0.0.1:{port}")
    a = admin(b.bootstrap)
    md = a.list_topics(timeout=15)
    assert list(md.brokers) == [7], f"broker ids in metadata: {list(md.brokers)}"
    assert (md.brokers[7].host, md.brokers[7].port) == ("localhost", port)
    assert md.cluster_id == "e2e-fixed-cluster-id"
    assert md.controller_id == 7
    desc = a.describe_cluster(request_timeout=30).result(30)
    assert desc.cluster_id == "e2e-fixed-cluster-id"
