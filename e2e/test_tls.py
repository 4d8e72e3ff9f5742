"""TLS listeners with real clients: confluent-kafka (librdkafka), kafka-python and kcat (and the
runnel CLI) produce and consume over an SSL listener; mutual TLS admits client certificates signed by the truststore's
CA only (and names the principal as Kafka does); a plaintext client on the SSL port is refused;
a certificate replaced on disk is served to new connections without a restart.

Certificates come from trustme. Each broker has a PLAINTEXT and an SSL listener on free ports;
the SSL one is read from the `runnel-broker listener SSL address=...` line after the ready line.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import trustme
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import cli_bin
from helpers import (connect, connection_closed, consume_confluent, http_get, kcat_available,
                     produce_confluent, request_frame, wait_until)

LISTENERS = "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0"


class Pki:
    """A CA whose certificate is the truststore, the broker's certificate, and PEM files for both."""

    def __init__(self, dir: Path):
        self.dir = dir
        dir.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA()
        self.ca_file = dir / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.cert_file = dir / "broker.pem"
        self.key_file = dir / "broker.key"
        self.install(self.ca.issue_cert("localhost", "127.0.0.1", common_name="broker"))

    def install(self, cert: trustme.LeafCert) -> None:
        """Writes the broker's chain and key by renaming complete files into place."""
        for path, blobs in ((self.cert_file, cert.cert_chain_pems), (self.key_file, [cert.private_key_pem])):
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(b"".join(b.bytes() for b in blobs))
            tmp.replace(path)

    def client(self, name: str, ca: trustme.CA | None = None) -> tuple[Path, Path]:
        """A client certificate (O=Example, OU=eng, CN=name) and its key, as files."""
        cert = (ca or self.ca).issue_cert(f"{name}.example", common_name=name,
                                          organization_name="Example", organization_unit_name="eng")
        cert_file, key_file = self.dir / f"{name}.pem", self.dir / f"{name}.key"
        cert.cert_chain_pems[0].write_to_path(str(cert_file))
        cert.private_key_pem.write_to_path(str(key_file))
        return cert_file, key_file


@pytest.fixture
def pki(tmp_path) -> Pki:
    return Pki(tmp_path / "pki")


@pytest.fixture
def tls_broker_factory(listeners_broker_factory, pki):
    """Start brokers with a PLAINTEXT and an SSL listener (extra flags appended)."""

    def make(*extra_args: str, env: dict[str, str] | None = None):
        return listeners_broker_factory(LISTENERS, "--ssl-certificate-location", str(pki.cert_file),
                                        "--ssl-key-location", str(pki.key_file), *extra_args, env=env)

    return make


def ssl_conf(ca_file: Path, client: tuple[Path, Path] | None = None) -> dict:
    conf = {"security.protocol": "SSL", "ssl.ca.location": str(ca_file)}
    if client:
        conf["ssl.certificate.location"] = str(client[0])
        conf["ssl.key.location"] = str(client[1])
    return conf


def ssl_admin(bootstrap: str, conf: dict) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **conf})


def refused(bootstrap: str, conf: dict) -> bool:
    """True when librdkafka with `conf` gets no metadata from `bootstrap` (its connections fail)."""
    try:
        ssl_admin(bootstrap, conf).list_topics(timeout=5)
    except KafkaException:
        return True
    return False


def handshake_failures(broker) -> int:
    _, text = http_get(f"{broker.admin_url}/metrics")
    m = re.search(r'^runnel_tls_handshake_failures_total\{listener="SSL"\} (\d+)', text, re.M)
    return int(m.group(1)) if m else 0


def test_confluent_kafka_produces_and_consumes_over_ssl(tls_broker_factory, pki):
    broker = tls_broker_factory()
    bootstrap = broker.listener_address("SSL")
    conf = ssl_conf(pki.ca_file)
    a = ssl_admin(bootstrap, conf)
    md = a.list_topics(timeout=30)
    ports = {b.port for b in md.brokers.values()}
    assert ports == {int(bootstrap.rsplit(":", 1)[1])}, f"clients on SSL must be given the SSL port, got {ports}"
    assert bootstrap != broker.bootstrap

    fs = a.create_topics([NewTopic("tls-confluent", num_partitions=2, replication_factor=1)],
                         request_timeout=30)
    fs["tls-confluent"].result(30)
    records = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(200)]
    acks = produce_confluent(bootstrap, "tls-confluent", records, config=conf)
    assert not acks.errors, acks.errors[:3]
    got = consume_confluent(bootstrap, "tls-confluent", [0, 1], config=conf)
    values = sorted(r.value for recs in got.values() for r in recs)
    assert values == sorted(v for _, v in records)


def test_kafka_python_produces_and_consumes_over_ssl(tls_broker_factory, pki):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP
    broker = tls_broker_factory()
    bootstrap = broker.listener_address("SSL")
    ssl = {"security_protocol": "SSL", "ssl_cafile": str(pki.ca_file)}
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **ssl)
    try:
        for i in range(50):
            producer.send("tls-kafka-python", value=f"v{i}".encode(), partition=0)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", **ssl)
    try:
        tp = KTP("tls-kafka-python", 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        seen: list[bytes] = []

        def all_read():
            for msgs in consumer.poll(timeout_ms=500).values():
                seen.extend(m.value for m in msgs)
            return len(seen) >= 50

        wait_until(all_read, timeout=60, what="kafka-python reading 50 records over SSL")
        assert seen == [f"v{i}".encode() for i in range(50)]
    finally:
        consumer.close()


def test_kcat_produces_and_consumes_over_ssl(tls_broker_factory, pki):
    if not kcat_available():
        pytest.skip("kcat is not installed")
    broker = tls_broker_factory()
    bootstrap = broker.listener_address("SSL")
    ssl = ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={pki.ca_file}"]
    lines = "\n".join(f"line-{i}" for i in range(20)) + "\n"
    cp = subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", "tls-kcat", "-p", "0", *ssl],
                        input=lines.encode(), capture_output=True, timeout=60)
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")
    cp = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", "tls-kcat", "-p", "0", "-o", "beginning", "-e",
                         "-q", *ssl], capture_output=True, timeout=60)
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")
    assert cp.stdout.decode().split() == [f"line-{i}" for i in range(20)]


def test_mutual_tls_admits_only_client_certificates_of_the_truststore(tls_broker_factory, pki):
    broker = tls_broker_factory("--ssl-client-auth", "required", "--ssl-truststore-location", str(pki.ca_file),
                                env={"RUST_LOG": "info,runnel_server::server::connection=debug"})
    bootstrap = broker.listener_address("SSL")
    alice = pki.client("alice")
    conf = ssl_conf(pki.ca_file, alice)
    acks = produce_confluent(bootstrap, "tls-mtls", [(None, b"from alice")], config=conf)
    assert not acks.errors, acks.errors
    got = consume_confluent(bootstrap, "tls-mtls", [0], config=conf)
    assert [r.value for r in got[0]] == [b"from alice"]
    # The principal is Kafka's form of the certificate subject.
    wait_until(lambda: "principal=CN=alice,OU=eng,O=Example" in broker.stderr(), timeout=10,
               what="the client certificate's principal in the broker log")

    assert refused(bootstrap, ssl_conf(pki.ca_file)), "a client without a certificate got in"
    # The runnel CLI reads the same librdkafka-style settings from --command-config.
    settings = pki.dir / "alice.properties"
    settings.write_text("security.protocol=SSL\n" + "".join(f"{k}={v}\n" for k, v in conf.items()
                                                          if k.startswith("ssl.")))
    run = lambda *args, **kw: subprocess.run([cli_bin(), "-b", bootstrap, "--command-config", str(settings),
                                              *args], capture_output=True, text=True, timeout=60, **kw)
    cp = run("produce", "tls-mtls", input="from the cli\n")
    assert cp.returncode == 0, cp.stderr
    cp = run("consume", "tls-mtls", "--from-beginning", "--max-messages", "2")
    assert cp.returncode == 0 and cp.stdout.splitlines() == ["from alice", "from the cli"], (cp.stdout, cp.stderr)
    settings.write_text(f"security.protocol=SSL\nssl.ca.location={pki.ca_file}\n")
    cp = run("topic", "list")
    assert cp.returncode != 0 and "error" in cp.stderr, "the CLI got in without a client certificate"
    other_ca = trustme.CA()
    mallory = pki.client("mallory", ca=other_ca)
    assert refused(bootstrap, ssl_conf(pki.ca_file, mallory)), "a certificate of another CA got in"
    assert handshake_failures(broker) >= 2


def test_principal_mapping_rules_name_certificate_users_for_the_acls(tls_broker_factory, pki):
    """ssl_principal_mapping_rules (KIP-371): `CN=Alice,OU=eng,O=Example` becomes `User:alice`, whose
    ACL lets confluent-kafka produce; a topic without an ACL for alice is refused; a certificate no
    rule matches is refused at the handshake."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, ResourcePatternType,
                                       ResourceType)
    broker = tls_broker_factory("--ssl-client-auth", "required", "--ssl-truststore-location", str(pki.ca_file),
                                "--ssl-principal-mapping-rules", "RULE:^CN=(.*?),OU=eng,O=.*$/$1/L",
                                "--authorizer-enabled", "true", "--super-users", "User:ANONYMOUS",
                                env={"RUST_LOG": "info,runnel_server::server::connection=debug"})
    plain = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in plain.create_topics([NewTopic(t, 1, 1) for t in ("mapped", "unmapped")]).values():
        f.result(timeout=30)
    grant = AclBinding(ResourceType.TOPIC, "mapped", ResourcePatternType.LITERAL, "User:alice", "*",
                       AclOperation.WRITE, AclPermissionType.ALLOW)
    plain.create_acls([grant])[grant].result(timeout=30)

    bootstrap = broker.listener_address("SSL")
    conf = ssl_conf(pki.ca_file, pki.client("Alice"))
    acks = produce_confluent(bootstrap, "mapped", [(None, b"as alice")], config=conf)
    assert not acks.errors, acks.errors
    wait_until(lambda: "principal=alice " in broker.stderr(), timeout=10,
               what="the mapped principal in the broker log")
    p = Producer({"bootstrap.servers": bootstrap, **conf, "message.timeout.ms": 10000})
    errors: list = []
    p.produce("unmapped", b"x", on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], errors

    # A certificate of another OU matches no rule (and there is no DEFAULT): refused.
    no_ou = pki.ca.issue_cert("carol.example", common_name="carol", organization_name="Example",
                              organization_unit_name="sales")
    cert_file, key_file = pki.dir / "carol.pem", pki.dir / "carol.key"
    no_ou.cert_chain_pems[0].write_to_path(str(cert_file))
    no_ou.private_key_pem.write_to_path(str(key_file))
    assert refused(bootstrap, ssl_conf(pki.ca_file, (cert_file, key_file)))
    wait_until(lambda: "no ssl_principal_mapping_rules rule applies to the subject CN=carol,OU=sales,O=Example"
               in broker.stderr(), timeout=10, what="the refusal in the broker log")


def test_a_plaintext_client_on_the_ssl_port_is_refused(tls_broker_factory, pki):
    broker = tls_broker_factory()
    bootstrap = broker.listener_address("SSL")
    assert refused(bootstrap, {}), "librdkafka in plaintext got metadata from the SSL port"
    # An ApiVersions request in plaintext is not answered: the broker closes the connection.
    sock = connect(bootstrap)
    try:
        sock.sendall(request_frame(18, 0, 1, b"", client_id="e2e"))
        assert connection_closed(sock), "the broker kept a plaintext connection on its SSL port"
    finally:
        sock.close()
    assert handshake_failures(broker) >= 1
    # The PLAINTEXT listener still serves plaintext clients.
    assert AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=30).brokers


def test_a_replaced_certificate_is_served_to_new_connections_without_a_restart(tls_broker_factory, pki):
    broker = tls_broker_factory()
    bootstrap = broker.listener_address("SSL")
    pid = broker.pid
    assert not refused(bootstrap, ssl_conf(pki.ca_file))
    # A certificate from a new CA: clients that trust only the new CA fail until it is served.
    new_ca = trustme.CA()
    new_ca_file = pki.dir / "new-ca.pem"
    new_ca.cert_pem.write_to_path(str(new_ca_file))
    assert refused(bootstrap, ssl_conf(new_ca_file))

    pki.install(new_ca.issue_cert("localhost", "127.0.0.1", common_name="broker-renewed"))
    # Every connection accepted after the files changed gets the new certificate.
    md = ssl_admin(bootstrap, ssl_conf(new_ca_file)).list_topics(timeout=30)
    assert md.brokers, "no metadata with the renewed certificate"
    assert refused(bootstrap, ssl_conf(pki.ca_file)), "the old certificate is still served"
    acks = produce_confluent(bootstrap, "tls-renewed", [(None, b"after renewal")], config=ssl_conf(new_ca_file))
    assert not acks.errors, acks.errors
    assert broker.alive() and broker.pid == pid and broker.starts == 1, "the broker was restarted"


def fetch_file_bytes(broker) -> dict[str, int]:
    _, text = http_get(f"{broker.admin_url}/metrics")
    return {m.group(1): int(float(m.group(2)))
            for m in re.finditer(r'^runnel_fetch_file_bytes_total\{method="(\w+)"\} (\S+)', text, re.M)}


def test_fetches_send_batches_from_the_files_with_sendfile_on_plaintext_and_read_them_for_tls(
        tls_broker_factory, pki):
    """Zero-copy fetch: on the PLAINTEXT listener the stored batches go from the segment files to
    the socket with sendfile (counted as such), on the SSL listener they are read and encrypted;
    both clients get every record intact, and kcat too."""
    broker = tls_broker_factory()
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic("zero-copy", num_partitions=2, replication_factor=1)])["zero-copy"].result(30)
    records = [(f"k{i}".encode(), (f"v{i}-".encode() * 200)[:1000]) for i in range(3000)]
    acks = produce_confluent(broker.bootstrap, "zero-copy", records,
                             config={"linger.ms": 20, "compression.type": "none"})
    assert not acks.errors, acks.errors[:3]
    stored = broker.log_size("zero-copy", 0) + broker.log_size("zero-copy", 1)
    assert fetch_file_bytes(broker).get("sendfile", 0) == 0

    got = consume_confluent(broker.bootstrap, "zero-copy", [0, 1])
    assert sorted((r.key, r.value) for recs in got.values() for r in recs) == sorted(records)
    sent = fetch_file_bytes(broker)
    assert sent.get("sendfile", 0) >= stored, (sent, stored)
    assert sent.get("read", 0) == 0, sent

    if kcat_available():
        out = subprocess.run(["kcat", "-C", "-b", broker.bootstrap, "-t", "zero-copy", "-p", "1", "-o",
                              "beginning", "-e", "-q", "-f", "%k\n"], capture_output=True, text=True,
                             timeout=60, check=True)
        assert len(out.stdout.split()) == len(got[1])

    got = consume_confluent(broker.listener_address("SSL"), "zero-copy", [0, 1],
                            config=ssl_conf(pki.ca_file))
    assert sorted((r.key, r.value) for recs in got.values() for r in recs) == sorted(records)
    assert fetch_file_bytes(broker).get("read", 0) >= stored
