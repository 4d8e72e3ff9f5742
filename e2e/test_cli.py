"""The `runnel` CLI: the README quick start against a broker, JSON output, errors that name
the problem, and `runnel dev` serving a third-party client."""

from __future__ import annotations

import json
import signal
import socket
import subprocess

from conftest import READY_RE, cli_bin
from helpers import consume_confluent, create_topic, produce_confluent, topic_partitions, wait_until


def find_values(obj, key: str):
    """Every value stored under `key` anywhere in a parsed JSON document."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                yield v
            yield from find_values(v, key)
    elif isinstance(obj, list):
        for v in obj:
            yield from find_values(v, key)


def strings_in(obj) -> set[str]:
    if isinstance(obj, str):
        return {obj}
    if isinstance(obj, dict):
        return set().union(*(strings_in(v) for v in obj.values()), set(obj)) if obj else set()
    if isinstance(obj, list):
        return set().union(*(strings_in(v) for v in obj)) if obj else set()
    return set()


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_quick_start_create_produce_three_keyed_events_and_consume_them(broker, cli):
    bs = ["-b", broker.bootstrap]
    cli(*bs, "topic", "create", "orders", "--partitions", "3", check=True)
    cli(*bs, "produce", "orders", "--key-separator", ":",
        input="alice:first order\nbob:second order\ncarol:third order\n", check=True)
    cp = cli(*bs, "consume", "orders", "--from-beginning", "--print-key", "--max-messages", "3",
             "--timeout-ms", "30000", check=True, timeout=60)
    lines = [ln for ln in cp.stdout.splitlines() if ln.strip()]
    assert sorted(lines) == ["alice\tfirst order", "bob\tsecond order", "carol\tthird order"], cp.stdout
    # The same records as a third-party client sees them.
    got = consume_confluent(broker.bootstrap, "orders", range(3))
    pairs = sorted((r.key, r.value) for recs in got.values() for r in recs)
    assert pairs == [(b"alice", b"first order"), (b"bob", b"second order"), (b"carol", b"third order")]


def test_consume_prints_offsets_and_reads_one_partition_from_an_offset(broker, cli):
    create_topic(broker.bootstrap, "numbers", 1)
    assert not produce_confluent(broker.bootstrap, "numbers", [(None, f"n{i}".encode()) for i in range(10)]).errors
    cp = cli("-b", broker.bootstrap, "consume", "numbers", "--partition", "0", "--offset", "7", "--print-offset",
             "--max-messages", "3", "--timeout-ms", "30000", check=True)
    lines = [ln for ln in cp.stdout.splitlines() if ln.strip()]
    assert len(lines) == 3, cp.stdout
    for off, line in zip((7, 8, 9), lines):
        assert str(off) in line and f"n{off}" in line, f"expected offset {off} and value n{off} in {line!r}"


def test_topic_list_and_describe_json_output_parses(broker, cli):
    bs = ["-b", broker.bootstrap]
    cli(*bs, "topic", "create", "listed", "--partitions", "4", "--config", "retention.ms=3600000", check=True)
    cp = cli(*bs, "--output", "json", "topic", "list", check=True)
    doc = json.loads(cp.stdout)
    assert "listed" in strings_in(doc), f"topic list JSON does not name the topic: {cp.stdout}"
    cp = cli(*bs, "--output", "json", "topic", "describe", "listed", check=True)
    doc = json.loads(cp.stdout)
    assert "listed" in strings_in(doc)
    counts = [v for v in find_values(doc, "partitions")] + [v for v in find_values(doc, "partition_count")]
    assert any((isinstance(v, list) and len(v) == 4) or v == 4 for v in counts), \
        f"describe JSON does not show 4 partitions: {cp.stdout}"
    assert "3600000" in cp.stdout, "describe should show the topic's config override"
    # Table output is the default and mentions the topic too.
    cp = cli(*bs, "topic", "list", check=True)
    assert "listed" in cp.stdout


def test_topic_alter_and_delete(broker, cli):
    bs = ["-b", broker.bootstrap]
    cli(*bs, "topic", "create", "mutable", "--partitions", "2", check=True)
    cli(*bs, "topic", "alter", "mutable", "--partitions", "5", "--config", "retention.ms=1000000", check=True)
    cp = cli(*bs, "--output", "json", "topic", "describe", "mutable", check=True)
    assert "1000000" in cp.stdout
    wait_until(lambda: topic_partitions(broker.bootstrap, "mutable") == 5, 30,
               what="5 partitions after alter")
    cli(*bs, "topic", "delete", "mutable", check=True)
    wait_until(lambda: "mutable" not in cli(*bs, "topic", "list", check=True).stdout, 30,
               what="deleted topic to disappear from the list")


def test_unknown_topic_exits_non_zero_naming_the_topic(broker, cli):
    cp = cli("-b", broker.bootstrap, "topic", "describe", "no-such-topic")
    assert cp.returncode == 1, (cp.returncode, cp.stderr)
    assert "no-such-topic" in cp.stderr and "unknown topic" in cp.stderr.lower(), cp.stderr
    cp = cli("-b", broker.bootstrap, "consume", "no-such-topic", "--max-messages", "1", "--timeout-ms", "3000")
    assert cp.returncode == 1, (cp.returncode, cp.stderr)
    assert "no-such-topic" in cp.stderr, cp.stderr


def test_unreachable_broker_exits_non_zero_naming_the_address(cli):
    port = unused_port()
    addr = f"127.0.0.1:{port}"
    cp = cli("-b", addr, "topic", "list", timeout=120)
    assert cp.returncode == 1, (cp.returncode, cp.stderr)
    assert "cannot reach broker" in cp.stderr.lower() and addr in cp.stderr, cp.stderr


def test_bad_arguments_exit_2(cli):
    cp = cli("topic", "create")
    assert cp.returncode == 2, (cp.returncode, cp.stderr)
    cp = cli("produce", "t", "--acks", "7")
    assert cp.returncode == 2, (cp.returncode, cp.stderr)


def test_runnel_dev_serves_a_confluent_client_and_stops_on_ctrl_c(tmp_path):
    data = tmp_path / "dev-data"
    out = tmp_path / "dev.stdout"
    err = tmp_path / "dev.stderr"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen([cli_bin(), "dev", "--data-dir", str(data), "--listen", "127.0.0.1:0",
                                 "--admin-listen", "127.0.0.1:0", "--controller-listen", "127.0.0.1:0"],
                                stdout=o, stderr=e, stdin=subprocess.DEVNULL)
    try:
        def ready():
            assert proc.poll() is None, f"runnel dev exited {proc.returncode}: {err.read_text()[-2000:]}"
            return READY_RE.search(out.read_text(errors="replace"))
        m = wait_until(ready, 60, what="runnel dev ready line")
        bootstrap = f"{m.group(1)}:{m.group(2)}"
        create_topic(bootstrap, "dev-topic", 2)
        acks = produce_confluent(bootstrap, "dev-topic", [(f"k{i}".encode(), f"v{i}".encode()) for i in range(100)])
        assert not acks.errors and len(acks.acks) == 100
        got = consume_confluent(bootstrap, "dev-topic", range(2))
        assert sum(len(v) for v in got.values()) == 100
        assert any(p.name.startswith("dev-topic-") for p in data.iterdir()), "runnel dev did not use --data-dir"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, f"runnel dev exit code after Ctrl-C: {proc.returncode}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def test_produce_to_a_partition_and_consume_with_timestamps_via_env_bootstrap(broker):
    import os
    env_cli = {**os.environ, "RUNNEL_BOOTSTRAP_SERVER": broker.bootstrap}  # no -b: the env var must be used

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([cli_bin(), *args], input=input, capture_output=True, text=True, env=env_cli,
                              timeout=60)
    cp = run("topic", "create", "pinned", "--partitions", "4")
    assert cp.returncode == 0, cp.stderr
    cp = run("produce", "pinned", "--partition", "2", input="one\ntwo\n")
    assert cp.returncode == 0, cp.stderr
    got = consume_confluent(broker.bootstrap, "pinned", range(4))
    assert [r.value for r in got[2]] == [b"one", b"two"] and sum(len(v) for v in got.values()) == 2
    before_ms = got[2][0].timestamp
    cp = run("consume", "pinned", "--partition", "2", "--from-beginning", "--print-timestamp", "--max-messages", "2",
             "--timeout-ms", "30000")
    assert cp.returncode == 0, cp.stderr
    lines = [ln for ln in cp.stdout.splitlines() if ln.strip()]
    assert len(lines) == 2 and lines[0].endswith("one") and lines[1].endswith("two"), cp.stdout
    assert str(before_ms) in lines[0], f"--print-timestamp should show the record timestamp {before_ms}: {lines[0]!r}"


def test_creating_an_existing_topic_fails_naming_it(broker, cli):
    cli("-b", broker.bootstrap, "topic", "create", "twice", check=True)
    cp = cli("-b", broker.bootstrap, "topic", "create", "twice")
    assert cp.returncode == 1, (cp.returncode, cp.stderr)
    assert "twice" in cp.stderr and "exist" in cp.stderr.lower(), cp.stderr


def test_produce_20000_lines_keeps_every_line_and_per_key_order(broker, cli):
    from collections import defaultdict

    from helpers import partition_for_key
    create_topic(broker.bootstrap, "bulk-cli", 4)
    lines = [f"user{i % 37}:{i}" for i in range(20000)]
    cli("-b", broker.bootstrap, "produce", "bulk-cli", "--key-separator", ":", input="\n".join(lines) + "\n",
        check=True, timeout=120)
    got = consume_confluent(broker.bootstrap, "bulk-cli", range(4))
    seqs = defaultdict(list)
    for p, recs in got.items():
        for r in recs:
            assert partition_for_key(r.key, 4) == p
            seqs[r.key].append(int(r.value))
    assert sum(len(v) for v in seqs.values()) == 20000
    for k, v in seqs.items():
        assert v == sorted(v) and len(v) == len(set(v)), f"key {k!r}: lines out of order or duplicated"
