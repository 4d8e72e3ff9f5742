"""Produce/consume throughput over SASL_SSL against PLAINTEXT, on one runnel-broker with both
listeners (issue 14's bench). librdkafka (confluent-kafka) produces `--records` records of
`--size` bytes with acks=all to a topic through each listener in turn, then reads them back;
the table gives MB/s per listener and the SASL_SSL/PLAINTEXT ratios.

    cargo build --release -p runnel-server
    python3 bench/security_bench.py [--records 300000] [--mechanism SCRAM-SHA-512]

The certificate comes from trustme (a test CA); the SASL user is the broker's bootstrap user.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "bench-secret"


def start_broker(binary: str, work: Path, pki: Path, mechanism: str) -> tuple[subprocess.Popen, str, str]:
    (work / "password").write_text(PASSWORD + "\n")
    out = open(work / "broker.stdout", "wb")
    log = open(work / "broker.log", "wb")
    proc = subprocess.Popen(
        [binary, "--data-dir", str(work / "data"), "--admin-listen", "127.0.0.1:0",
         "--controller-listen", "127.0.0.1:0",
         "--listeners", "PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
         "--ssl-certificate-location", str(pki / "broker.pem"), "--ssl-key-location", str(pki / "broker.key"),
         "--sasl-enabled-mechanisms", mechanism, "--sasl-bootstrap-user", "bench",
         "--sasl-bootstrap-password-file", str(work / "password")],
        stdout=out, stderr=log, env={**os.environ, "RUST_LOG": "warn"})
    end = time.monotonic() + 60
    while time.monotonic() < end:
        text = (work / "broker.stdout").read_text(errors="replace")
        plain = re.search(r"runnel-broker ready kafka=(\S+)", text)
        secure = re.search(r"runnel-broker listener SASL_SSL address=(\S+)", text)
        if plain and secure:
            return proc, plain.group(1), secure.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"broker did not become ready; see {work / 'broker.log'}")


def produce(conf: dict, topic: str, records: int, size: int) -> float:
    from confluent_kafka import Producer
    p = Producer({**conf, "acks": "all", "linger.ms": 5, "batch.size": 1_000_000,
                  "batch.num.messages": 100_000, "queue.buffering.max.kbytes": 65536,
                  "queue.buffering.max.messages": 1_000_000, "compression.type": "none"})
    payloads = [os.urandom(size) for _ in range(64)]
    failed = [0]

    def on_delivery(err, _msg):
        if err is not None:
            failed[0] += 1

    t0 = time.monotonic()
    for i in range(records):
        while True:
            try:
                p.produce(topic, payloads[i % 64], on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    if p.flush(300) != 0 or failed[0]:
        raise RuntimeError(f"{failed[0]} records failed on {topic}")
    return records * size / (time.monotonic() - t0) / 1e6


def consume(conf: dict, topic: str, records: int) -> float:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    c = Consumer({**conf, "group.id": "bench", "enable.auto.commit": False,
                  "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760,
                  "queued.max.messages.kbytes": 1_048_576})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
    n, nbytes, t0 = 0, 0, None
    deadline = time.monotonic() + 300
    while n < records and time.monotonic() < deadline:
        for m in c.consume(num_messages=100_000, timeout=1.0):
            if t0 is None:
                t0 = time.monotonic()
            if m.error() is None:
                n += 1
                nbytes += len(m)
    c.close()
    if n < records or t0 is None:
        raise RuntimeError(f"read {n} of {records} records of {topic}")
    return nbytes / (time.monotonic() - t0) / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker-bin", default=os.environ.get("RUNNEL_BROKER_BIN",
                                                           str(REPO / "target/release/runnel-broker")))
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--mechanism", default="SCRAM-SHA-512", choices=["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
    ap.add_argument("--rounds", type=int, default=2, help="alternate the listeners this many times")
    args = ap.parse_args()

    import trustme
    from confluent_kafka.admin import AdminClient, NewTopic

    work = Path(tempfile.mkdtemp(prefix="runnel-security-bench-"))
    pki = work / "pki"
    pki.mkdir()
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(pki / "ca.pem"))
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    (pki / "broker.pem").write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(pki / "broker.key"))
    proc, plain, secure = start_broker(args.broker_bin, work, pki, args.mechanism)
    try:
        confs = {
            "PLAINTEXT": {"bootstrap.servers": plain},
            "SASL_SSL": {"bootstrap.servers": secure, "security.protocol": "SASL_SSL",
                         "ssl.ca.location": str(pki / "ca.pem"), "sasl.mechanism": args.mechanism,
                         "sasl.username": "bench", "sasl.password": PASSWORD},
        }
        admin = AdminClient(confs["PLAINTEXT"])
        results: dict[str, dict[str, list[float]]] = {k: {"produce": [], "consume": []} for k in confs}
        for r in range(args.rounds):
            for name, conf in confs.items():
                topic = f"bench-{name.lower()}-{r}"
                admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(60)
                results[name]["produce"].append(produce(conf, topic, args.records, args.size))
                results[name]["consume"].append(consume(conf, topic, args.records))
        print(f"{args.records} records of {args.size} B, acks=all, 3 partitions, best of {args.rounds}; "
              f"SASL_SSL with {args.mechanism}")
        print(f"{'listener':<12}{'produce MB/s':>14}{'consume MB/s':>14}")
        for name in confs:
            print(f"{name:<12}{max(results[name]['produce']):>14.1f}{max(results[name]['consume']):>14.1f}")
        for what in ("produce", "consume"):
            ratio = max(results["SASL_SSL"][what]) / max(results["PLAINTEXT"][what])
            print(f"SASL_SSL / PLAINTEXT {what}: {ratio:.2f}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
