"""Transactions with librdkafka (confluent-kafka): commit and abort seen by read_committed and
read_uncommitted consumers, an open transaction holding read_committed consumers at the last
stable offset, zombie fencing by a new producer with the same transactional id, and the
coordinator aborting the transaction of a producer killed with SIGKILL once its timeout passes."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from groups import metric
from helpers import create_topic, wait_until

TXN_ARGS = ("--transaction-state-log-num-partitions", "4", "--offsets-topic-num-partitions", "4",
            "--transaction-abort-timed-out-transaction-cleanup-interval-ms", "200")


@pytest.fixture
def txn_broker(broker_factory):
    return broker_factory(*TXN_ARGS)


def txn_producer(bootstrap: str, txn_id: str, **extra) -> Producer:
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5, **extra})
    p.init_transactions(30)
    return p


def read_all(bootstrap: str, topic: str, partitions: int, isolation: str, timeout: float = 30.0) -> list[str]:
    """Every record up to the end the consumer can see (the LSO for read_committed)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{time.monotonic_ns()}",
                  "isolation.level": isolation, "enable.partition.eof": True,
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got: list[str] = []
        eof: set[int] = set()
        end = time.monotonic() + timeout
        while len(eof) < partitions and time.monotonic() < end:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                continue
            got.append(m.value().decode())
        assert len(eof) == partitions, f"no end of partition within {timeout}s (eof at {eof})"
        return got
    finally:
        c.close()


def test_committed_records_are_read_and_aborted_ones_skipped_by_read_committed(txn_broker):
    bs = txn_broker.bootstrap
    create_topic(bs, "tx-basic", 2)
    p = txn_producer(bs, "basic")
    p.begin_transaction()
    for i in range(20):
        p.produce("tx-basic", value=f"committed-{i}".encode(), partition=i % 2)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(10):
        p.produce("tx-basic", value=f"aborted-{i}".encode(), partition=i % 2)
    p.flush(30)  # the aborted records reach the log before the abort
    p.abort_transaction(30)
    p.begin_transaction()
    p.produce("tx-basic", value=b"committed-last", partition=0)
    p.commit_transaction(30)

    committed = sorted(read_all(bs, "tx-basic", 2, "read_committed"))
    assert committed == sorted([f"committed-{i}" for i in range(20)] + ["committed-last"])
    everything = read_all(bs, "tx-basic", 2, "read_uncommitted")
    assert sorted(everything) == sorted(committed + [f"aborted-{i}" for i in range(10)])


def test_an_open_transaction_holds_read_committed_consumers_at_its_first_offset(txn_broker, cli):
    bs = txn_broker.bootstrap
    create_topic(bs, "tx-open", 1)
    plain = Producer({"bootstrap.servers": bs})
    plain.produce("tx-open", value=b"before", partition=0)
    plain.flush(30)
    p = txn_producer(bs, "open")
    p.begin_transaction()
    p.produce("tx-open", value=b"in-txn", partition=0)
    p.flush(30)
    plain.produce("tx-open", value=b"after", partition=0)
    plain.flush(30)
    # The record after the open transaction is committed but not stable yet.
    assert read_all(bs, "tx-open", 1, "read_committed") == ["before"]
    assert read_all(bs, "tx-open", 1, "read_uncommitted") == ["before", "in-txn", "after"]
    # The CLI shows the transaction, and the topic's last stable offset held at its start.
    described = json.loads(cli("-b", bs, "--output", "json", "transactions", "describe", "open",
                               check=True).stdout)
    assert described["state"] == "Ongoing" and described["partitions"] == ["tx-open-0"], described
    listed = json.loads(cli("-b", bs, "--output", "json", "transactions", "list", check=True).stdout)
    assert [(t["transactional_id"], t["state"]) for t in listed] == [("open", "Ongoing")]
    topic = json.loads(cli("-b", bs, "--output", "json", "topic", "describe", "tx-open", check=True).stdout)
    part = topic["partitions"][0]
    assert (part["log_end_offset"], part["last_stable_offset"]) == (3, 1), part
    assert metric(txn_broker.admin_url, "runnel_transactions_open") == 1
    p.commit_transaction(30)
    wait_until(lambda: read_all(bs, "tx-open", 1, "read_committed") == ["before", "in-txn", "after"], 30,
               what="the committed transaction and the record after it")


def test_a_new_producer_with_the_same_transactional_id_fences_the_old_one(txn_broker):
    bs = txn_broker.bootstrap
    create_topic(bs, "tx-zombie", 1)
    zombie = txn_producer(bs, "fenced-id")
    zombie.begin_transaction()
    zombie.produce("tx-zombie", value=b"zombie", partition=0)
    zombie.flush(30)
    fresh = txn_producer(bs, "fenced-id")  # aborts the zombie's open transaction
    fresh.begin_transaction()
    fresh.produce("tx-zombie", value=b"fresh", partition=0)
    fresh.commit_transaction(30)
    with pytest.raises(KafkaException) as raised:
        zombie.produce("tx-zombie", value=b"zombie-2", partition=0)
        zombie.commit_transaction(30)
    err = raised.value.args[0]
    assert err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                         KafkaError.INVALID_PRODUCER_EPOCH), err
    assert read_all(bs, "tx-zombie", 1, "read_committed") == ["fresh"]


KILLED_PRODUCER = textwrap.dedent("""
    import sys, time
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": sys.argv[1], "transactional.id": "killed",
                  "transaction.timeout.ms": 3000})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(5):
        p.produce("tx-killed", value=b"never-committed", partition=0)
    p.flush(30)
    print("open", flush=True)
    time.sleep(600)
""")


def test_the_coordinator_aborts_the_open_transaction_of_a_killed_producer_after_its_timeout(txn_broker):
    bs = txn_broker.bootstrap
    create_topic(bs, "tx-killed", 1)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_PRODUCER, bs], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
        proc.kill()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    plain = Producer({"bootstrap.servers": bs})
    plain.produce("tx-killed", value=b"after", partition=0)
    plain.flush(30)
    assert read_all(bs, "tx-killed", 1, "read_committed") == [], "held by the open transaction"
    # After transaction.timeout.ms (3 s) the coordinator aborts it: the LSO moves on.
    wait_until(lambda: read_all(bs, "tx-killed", 1, "read_committed") == ["after"], 60,
               what="the timed-out transaction aborted")
    assert read_all(bs, "tx-killed", 1, "read_uncommitted").count("never-committed") == 5
    admin_url = txn_broker.admin_url
    assert metric(admin_url, "runnel_transactions_timed_out_total") == 1
    assert metric(admin_url, "runnel_transactions_completed_total", outcome="abort") == 1
    assert (metric(admin_url, "runnel_transaction_markers_seconds_count") or 0) >= 1


TRANSFORMER = textwrap.dedent("""
    import faulthandler, os, signal, sys
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer
    faulthandler.register(signal.SIGUSR1)  # the test dumps a stuck transformer's stacks to stderr
    bs = sys.argv[1]
    # E2E_RDKAFKA_DEBUG=eos,cgrp,broker turns on librdkafka's debug log when investigating.
    dbg = {"debug": os.environ["E2E_RDKAFKA_DEBUG"]} if os.environ.get("E2E_RDKAFKA_DEBUG") else {}
    c = Consumer({"bootstrap.servers": bs, "group.id": "ctp", "group.instance.id": "ctp-worker",
                  "session.timeout.ms": 6000, "isolation.level": "read_committed",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", **dbg})
    p = Producer({"bootstrap.servers": bs, "transactional.id": "ctp-1", "linger.ms": 5, **dbg})
    p.init_transactions(60)
    c.subscribe(["ctp-in"])

    def retrying(call):
        # librdkafka's rule: an error that is retriable() may be retried as it is.
        while True:
            try:
                return call()
            except KafkaException as e:
                if not e.args[0].retriable():
                    raise
                print("retrying:", e.args[0], file=sys.stderr, flush=True)

    def rewind():
        # After an abort the inputs of the aborted transaction are read again, from the
        # group's committed offsets (what an exactly-once application must do).
        for tp in c.committed(c.assignment(), 60):
            tp.offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            c.seek(tp)

    while True:
        msgs = [m for m in c.consume(50, 0.5) if m.error() is None]
        if not msgs:
            continue
        p.begin_transaction()
        try:
            for m in msgs:
                p.produce("ctp-out", value=m.value().replace(b"in-", b"out-"), partition=m.partition())
            positions = c.position(c.assignment())
            retrying(lambda: p.send_offsets_to_transaction(positions, c.consumer_group_metadata(), 60))
            retrying(lambda: p.commit_transaction(60))
        except KafkaException as e:
            if not e.args[0].txn_requires_abort():
                raise
            print("aborting:", e.args[0], file=sys.stderr, flush=True)
            retrying(lambda: p.abort_transaction(60))
            rewind()
            print("aborted", flush=True)
            continue
        print("committed", len(msgs), flush=True)
""")


class Transformer:
    """One run of TRANSFORMER in its own process; its commits are read from stdout by a thread
    so that waiting for them has a deadline, and a failure reports the run's stderr."""

    def __init__(self, bootstrap: str, stderr_path):
        self.stderr_path = stderr_path
        self.proc = subprocess.Popen([sys.executable, "-c", TRANSFORMER, bootstrap],
                                     stdout=subprocess.PIPE, stderr=open(stderr_path, "wb"), text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("exited")

    def commits(self, count: int, timeout: float = 120.0) -> None:
        """Wait for `count` more committed transactions."""
        end = time.monotonic() + timeout
        seen = 0
        while seen < count:
            try:
                line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                self.proc.send_signal(signal.SIGUSR1)  # its Python stacks, for the report
                time.sleep(1)
                self.fail(f"only {seen} of {count} commits within {timeout}s")
            if line == "exited":
                self.fail(f"exited with {self.proc.wait(30)} after {seen} of {count} commits")
            seen += line.startswith("committed")

    def fail(self, why: str) -> None:
        tail = self.stderr_path.read_text(errors="replace")[-4000:]
        pytest.fail(f"the transformer {why}; its stderr ends with:\n{tail}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


def test_consume_transform_produce_killed_with_sigkill_outputs_each_input_exactly_once(txn_broker, tmp_path):
    bs = txn_broker.bootstrap
    n = 3000
    create_topic(bs, "ctp-in", 3)
    create_topic(bs, "ctp-out", 3)
    inputs = Producer({"bootstrap.servers": bs, "linger.ms": 5})
    for i in range(n):
        inputs.produce("ctp-in", value=f"in-{i}".encode(), partition=i % 3)
    assert inputs.flush(60) == 0

    # Three runs killed with SIGKILL after a few commits each, then one that finishes.
    for k in range(3):
        run = Transformer(bs, tmp_path / f"transformer-{k}.stderr")
        try:
            run.commits(3)
        finally:
            run.kill()
    final = Transformer(bs, tmp_path / "transformer-3.stderr")
    try:
        def outputs() -> list[str]:
            return read_all(bs, "ctp-out", 3, "read_committed")
        wait_until(lambda: len(outputs()) >= n, 180, interval=0.5, what="every input transformed")
        out = outputs()
    finally:
        final.kill()
    assert len(out) == n, f"{len(out) - len(set(out))} duplicates"
    assert sorted(out) == sorted(f"out-{i}" for i in range(n))


def java_partition(key: str, partitions: int) -> int:
    """Kafka's placement of a transactional id: abs(String.hashCode) % partitions."""
    h = 0
    for unit in key.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= 1 << 31 else h
    return 0 if h == -(1 << 31) else abs(h) % partitions


def test_exactly_once_survives_kill9_of_the_coordinator_and_of_a_partition_leader(tmp_path):
    """Three brokers, replication factor 3: the consume-transform-produce loop runs while the
    transaction coordinator's broker, and then an output partition's leader, are killed with
    SIGKILL and brought back; read_committed, the output holds every input exactly once.

    Each killed broker is started again before the test waits for the next commits, as an
    operator (or Kubernetes) brings a dead broker back: librdkafka sends a group's
    TxnOffsetCommit to the group coordinator it has cached and waits for that broker to come
    back rather than asking FindCoordinator again (rd_kafka_coord_req), so a broker that stays
    down can hold send_offsets_to_transaction until its timeout, against Kafka as here."""
    from cluster import Cluster
    from test_cluster import CLUSTER_ARGS, create_replicated

    c = Cluster(tmp_path / "cluster", 3, CLUSTER_ARGS + list(TXN_ARGS[:2]))
    runs: list[Transformer] = []
    try:
        c.start()
        n = 4000
        create_replicated(c, "ctp-in", 3)
        create_replicated(c, "ctp-out", 3)
        inputs = Producer({"bootstrap.servers": c.bootstrap, "linger.ms": 5, "enable.idempotence": True})
        for i in range(n):
            inputs.produce("ctp-in", value=f"in-{i}".encode(), partition=i % 3)
        assert inputs.flush(60) == 0

        def kill_and_restart(broker, topic: str, partition: int) -> None:
            broker.kill9()
            c.wait_leader(topic, partition, not_on=broker.node_id)
            broker.start_again()

        runs.append(Transformer(c.bootstrap, tmp_path / "transformer-0.stderr"))
        runs[-1].commits(3)
        # The coordinator of "ctp-1" is the leader of its __transaction_state partition.
        txn_partition = java_partition("ctp-1", 4)
        kill_and_restart(c.leader_of("__transaction_state", txn_partition), "__transaction_state", txn_partition)
        runs[-1].commits(3)  # commits go on through the new coordinator
        runs[-1].kill()
        runs.append(Transformer(c.bootstrap, tmp_path / "transformer-1.stderr"))
        runs[-1].commits(2)
        kill_and_restart(c.leader_of("ctp-out", 0), "ctp-out", 0)
        runs[-1].commits(3)

        def outputs() -> list[str]:
            return read_all(c.bootstrap, "ctp-out", 3, "read_committed", timeout=60)
        wait_until(lambda: len(outputs()) >= n, 240, interval=1.0, what="every input transformed")
        out = outputs()
        assert len(out) == n, f"{len(out) - len(set(out))} duplicates"
        assert sorted(out) == sorted(f"out-{i}" for i in range(n))
    finally:
        for run in runs:
            run.kill()
        c.stop()


def read_all_kafka_python(bootstrap: str, topic: str, partitions: int, isolation: str,
                          timeout: float = 30.0) -> list[str]:
    """kafka-python's view: every record up to the end offset its ListOffsets reports for
    `isolation` (the LSO for read_committed), aborted records filtered by the client itself."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      isolation_level=isolation, auto_offset_reset="earliest")
    try:
        tps = [KTP(topic, p) for p in range(partitions)]
        c.assign(tps)
        ends = c.end_offsets(tps)
        c.seek_to_beginning(*tps)
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while any(c.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"kafka-python did not reach {ends} within {timeout}s"
            for records in c.poll(timeout_ms=200).values():
                got.extend(r.value.decode() for r in records)
        return got
    finally:
        c.close()


def test_kafka_python_transactions_commit_abort_offsets_and_fencing(txn_broker):
    """kafka-python (pure-Python protocol code, shares nothing with librdkafka) as the
    transactional producer of a consume-transform-produce step: committed output and offsets
    count, an aborted transaction leaves neither, and a second producer with the same
    transactional id fences the first."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP
    from kafka.errors import KafkaError as KPError
    from kafka.structs import OffsetAndMetadata

    bs = txn_broker.bootstrap
    create_topic(bs, "kp-in", 1)
    create_topic(bs, "kp-out", 1)
    inputs = Producer({"bootstrap.servers": bs})
    for i in range(30):
        inputs.produce("kp-in", value=f"in-{i}".encode(), partition=0)
    assert inputs.flush(30) == 0

    consumer = KafkaConsumer("kp-in", bootstrap_servers=bs, group_id="kp", enable_auto_commit=False,
                             auto_offset_reset="earliest", isolation_level="read_committed")
    producer = KafkaProducer(bootstrap_servers=bs, transactional_id="kp-1")
    producer.init_transactions()
    try:
        consumed: list = []
        deadline = time.monotonic() + 60
        while len(consumed) < 30:
            assert time.monotonic() < deadline, f"kafka-python consumed only {len(consumed)} inputs"
            for records in consumer.poll(timeout_ms=500).values():
                consumed.extend(records)
        # Three transactions of ten inputs each; the second is aborted.
        for step, outcome in enumerate(["commit", "abort", "commit"]):
            batch = consumed[step * 10:(step + 1) * 10]
            producer.begin_transaction()
            for r in batch:
                producer.send("kp-out", value=r.value.replace(b"in-", b"out-"), partition=0)
            offsets = {KTP("kp-in", 0): OffsetAndMetadata(batch[-1].offset + 1, "", -1)}
            producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
            if outcome == "commit":
                producer.commit_transaction()
            else:
                producer.flush()  # written to the log first (abort would drop unsent records)
                producer.abort_transaction()

        committed = read_all_kafka_python(bs, "kp-out", 1, "read_committed")
        assert committed == [f"out-{i}" for i in [*range(10), *range(20, 30)]]
        everything = read_all_kafka_python(bs, "kp-out", 1, "read_uncommitted")
        assert everything == [f"out-{i}" for i in range(30)]
        # librdkafka, reading the same log, agrees.
        assert read_all(bs, "kp-out", 1, "read_committed") == committed
        assert consumer.committed(KTP("kp-in", 0)) == 30

        # A second producer with the same transactional id fences the first: its next
        # transaction cannot commit, and nothing it wrote becomes visible.
        producer.begin_transaction()
        producer.send("kp-out", value=b"zombie", partition=0)
        successor = KafkaProducer(bootstrap_servers=bs, transactional_id="kp-1")
        successor.init_transactions()
        with pytest.raises(KPError):
            producer.commit_transaction()
        successor.begin_transaction()
        successor.send("kp-out", value=b"successor", partition=0)
        successor.commit_transaction()
        successor.close()
        assert read_all_kafka_python(bs, "kp-out", 1, "read_committed") == committed + ["successor"]
    finally:
        producer.close(timeout=5)
        consumer.close()
