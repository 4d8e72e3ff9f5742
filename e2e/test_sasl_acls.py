"""SASL and ACLs with real clients.

SASL: confluent-kafka (librdkafka), kafka-python and kcat authenticate on a SASL_PLAINTEXT
listener with SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN as users created through
AlterUserScramCredentials (confluent-kafka's admin client) and the `runnel user` CLI; a wrong
password gets SASL_AUTHENTICATION_FAILED and the connection closes; a request before
authentication closes the connection; the v0 SaslHandshake framing (raw tokens) works.

ACLs: with the authorizer on, a user sees and does only what its ACLs allow, with Kafka's
error codes (TOPIC_AUTHORIZATION_FAILED on produce with nothing written,
GROUP_AUTHORIZATION_FAILED without READ on the group), a literal DENY beats a prefixed ALLOW,
Metadata hides topics the user may not describe, and ACLs and users survive a restart.

Each broker has a PLAINTEXT and a SASL_PLAINTEXT listener on free ports; the SASL one is read
from the `runnel-broker listener SASL_PLAINTEXT address=...` line after the ready line.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, ConfigResource, NewPartitions, NewTopic,
                                   ResourcePatternType, ResourceType, ScramCredentialInfo,
                                   ScramMechanism, UserScramCredentialUpsertion)

from conftest import cli_bin
from groups import metric
from helpers import (connect, connection_closed, consume_confluent, kcat_available, kstr,
                     recv_frame, request_frame, wait_until)

LISTENERS = "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0"
ADMIN_PASSWORD = "admin-secret"


@pytest.fixture
def sasl_broker_factory(tmp_path, listeners_broker_factory):
    """Start brokers with a PLAINTEXT and a SASL_PLAINTEXT listener and the admin bootstrap user."""
    password_file = tmp_path / "admin-password"
    password_file.write_text(ADMIN_PASSWORD + "\n")

    def make(*extra: str):
        return listeners_broker_factory(
            LISTENERS, "--sasl-enabled-mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
            "--sasl-bootstrap-user", "admin", "--sasl-bootstrap-password-file", str(password_file),
            *extra)

    return make


def sasl_conf(bootstrap: str, user: str, password: str, mechanism: str = "SCRAM-SHA-256") -> dict:
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password}


def create_user(admin: AdminClient, user: str, password: str) -> None:
    upserts = [UserScramCredentialUpsertion(user, ScramCredentialInfo(m, 4096), password.encode())
               for m in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)]
    for f in admin.alter_user_scram_credentials(upserts).values():
        f.result(timeout=30)


def auth_error(conf: dict) -> KafkaError | None:
    """The error a client with `conf` gets when it asks for metadata (None: it got metadata)."""
    errors: list[KafkaError] = []
    admin = AdminClient({**conf, "error_cb": errors.append})
    try:
        admin.list_topics(timeout=10)
        return None
    except KafkaException:
        # The error callback is served by poll().
        wait_until(lambda: admin.poll(0.1) is not None and errors, 30, what="an error callback")
        return errors[0]


def test_scram_and_plain_users_authenticate_with_three_clients_and_bad_ones_are_refused(
        sasl_broker_factory):
    b = sasl_broker_factory()
    sasl = b.listener_address("SASL_PLAINTEXT")
    admin = AdminClient(sasl_conf(sasl, "admin", ADMIN_PASSWORD, "SCRAM-SHA-512"))
    create_user(admin, "alice", "alice-pw")
    for f in admin.create_topics([NewTopic("sasl-topic", 1, 1)]).values():
        f.result(timeout=30)
    described = admin.describe_user_scram_credentials(["alice"])["alice"].result(timeout=30)
    assert {i.mechanism for i in described.scram_credential_infos} == {
        ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512}

    # librdkafka: SCRAM-SHA-256 producer, SCRAM-SHA-512 and PLAIN consumers.
    p = Producer(sasl_conf(sasl, "alice", "alice-pw", "SCRAM-SHA-256"))
    for i in range(10):
        p.produce("sasl-topic", value=f"v{i}".encode(), partition=0)
    assert p.flush(30) == 0
    for mechanism in ("SCRAM-SHA-512", "PLAIN"):
        got = consume_confluent(sasl, "sasl-topic", [0], until={0: 10},
                                config=sasl_conf(sasl, "alice", "alice-pw", mechanism))
        assert [r.value for r in got[0]] == [f"v{i}".encode() for i in range(10)], mechanism

    # kafka-python: SCRAM-SHA-512.
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    kp = KafkaProducer(bootstrap_servers=sasl, security_protocol="SASL_PLAINTEXT",
                       sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="alice",
                       sasl_plain_password="alice-pw")
    kp.send("sasl-topic", b"from-kafka-python", partition=0).get(timeout=30)
    kp.close()
    kc = KafkaConsumer(bootstrap_servers=sasl, security_protocol="SASL_PLAINTEXT",
                       sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="alice",
                       sasl_plain_password="alice-pw", auto_offset_reset="earliest",
                       enable_auto_commit=False)
    try:
        kc.assign([TopicPartition("sasl-topic", 0)])
        seen: list[bytes] = []
        wait_until(lambda: seen.extend(r.value for rs in kc.poll(500).values() for r in rs)
                   or len(seen) >= 11, 60, what="kafka-python reading over SASL")
        assert seen[-1] == b"from-kafka-python"
    finally:
        kc.close()

    # kcat: SCRAM-SHA-256.
    if kcat_available():
        out = subprocess.run(["kcat", "-C", "-b", sasl, "-t", "sasl-topic", "-p", "0", "-o",
                              "beginning", "-e", "-q", "-X", "security.protocol=SASL_PLAINTEXT",
                              "-X", "sasl.mechanisms=SCRAM-SHA-256", "-X", "sasl.username=alice",
                              "-X", "sasl.password=alice-pw"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[0] == "v0" and "from-kafka-python" in out.stdout

    # The runnel CLI authenticates too, and manages users.
    created = subprocess.run(
        [cli_bin(), "-b", sasl, "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-username", "admin",
         "user", "create", "bob", "--password-stdin"], input="bob-pw\n", capture_output=True,
        text=True, timeout=60, env={**os.environ, "RUNNEL_SASL_PASSWORD": ADMIN_PASSWORD})
    assert created.returncode == 0 and "bob" in created.stdout, created.stderr
    assert auth_error(sasl_conf(sasl, "bob", "bob-pw")) is None

    # Wrong passwords, unknown users and disabled mechanisms are refused.
    before = metric(b.admin_url, "runnel_sasl_authentications_total", outcome="failure") or 0
    for conf in (sasl_conf(sasl, "alice", "wrong"), sasl_conf(sasl, "nobody", "x"),
                 sasl_conf(sasl, "alice", "wrong", "PLAIN")):
        err = auth_error(conf)
        assert err is not None and err.code() == KafkaError._AUTHENTICATION, err
    assert (metric(b.admin_url, "runnel_sasl_authentications_total", outcome="failure") or 0) >= before + 3


def test_requests_before_authentication_close_the_connection_and_v0_framing_works(
        sasl_broker_factory):
    b = sasl_broker_factory()
    sasl = b.listener_address("SASL_PLAINTEXT")
    # Metadata v1 (empty topic list) before authenticating: the broker closes the connection.
    s = connect(sasl)
    s.sendall(request_frame(3, 1, 1, struct.pack(">i", 0)))
    assert connection_closed(s), "Metadata before SASL was answered"
    s.close()

    # SaslHandshake v0, then the PLAIN token as a raw frame: the broker answers an empty raw
    # frame and the connection is authenticated (Metadata is answered).
    s = connect(sasl)
    s.sendall(request_frame(17, 0, 1, kstr("PLAIN")))
    body = recv_frame(s)
    (corr, code) = struct.unpack(">ih", body[:6])
    assert (corr, code) == (1, 0), body
    token = b"\0admin\0" + ADMIN_PASSWORD.encode()
    s.sendall(struct.pack(">i", len(token)) + token)
    assert recv_frame(s) == b""
    s.sendall(request_frame(3, 1, 2, struct.pack(">i", 0)))
    (corr,) = struct.unpack(">i", recv_frame(s)[:4])
    assert corr == 2
    s.close()

    # A wrong raw token closes the connection.
    s = connect(sasl)
    s.sendall(request_frame(17, 0, 1, kstr("PLAIN")))
    recv_frame(s)
    token = b"\0admin\0wrong"
    s.sendall(struct.pack(">i", len(token)) + token)
    assert connection_closed(s)
    s.close()

    # A mechanism that is not enabled: UNSUPPORTED_SASL_MECHANISM with the enabled ones listed,
    # then the connection closes.
    s = connect(sasl)
    s.sendall(request_frame(17, 1, 1, kstr("GSSAPI")))
    body = recv_frame(s)
    (corr, code, count) = struct.unpack(">ihi", body[:10])
    assert (corr, code, count) == (1, 33, 3), body
    assert b"SCRAM-SHA-256" in body and b"PLAIN" in body
    assert connection_closed(s)
    s.close()

    # SCRAM is not offered on the PLAINTEXT listener: SaslHandshake there is ILLEGAL_SASL_STATE.
    s = connect(b.bootstrap)
    s.sendall(request_frame(17, 1, 1, kstr("SCRAM-SHA-256")))
    (corr, code) = struct.unpack(">ih", recv_frame(s)[:6])
    assert (corr, code) == (1, 34)
    s.close()


def raw_plain_login(s, correlation_id: int) -> int:
    """SaslHandshake v1 (PLAIN) and SaslAuthenticate v1 as admin; the session lifetime answered."""
    s.sendall(request_frame(17, 1, correlation_id, kstr("PLAIN")))
    assert struct.unpack(">ih", recv_frame(s)[:6]) == (correlation_id, 0)
    token = b"\0admin\0" + ADMIN_PASSWORD.encode()
    s.sendall(request_frame(36, 1, correlation_id + 1, struct.pack(">i", len(token)) + token))
    body = recv_frame(s)
    (corr, code, message_len) = struct.unpack(">ihh", body[:8])
    assert (corr, code, message_len) == (correlation_id + 1, 0, -1), body
    (auth_len,) = struct.unpack(">i", body[8:12])
    (lifetime,) = struct.unpack(">q", body[12 + auth_len:20 + auth_len])
    return lifetime


def metadata_answered(s, correlation_id: int) -> bool:
    """Sends Metadata v1; True when answered, False when the broker closed the connection."""
    try:
        s.sendall(request_frame(3, 1, correlation_id, struct.pack(">i", 0)))
        return struct.unpack(">i", recv_frame(s)[:4])[0] == correlation_id
    except (ConnectionError, OSError):
        return False


def test_sessions_expire_and_clients_reauthenticate_on_their_connection(sasl_broker_factory):
    """connections_max_reauth_ms (KIP-368): SaslAuthenticate v1 gives the session lifetime; a
    connection that does not re-authenticate is closed at its next request after that; one that
    does (SaslHandshake + SaslAuthenticate again, as the same user) keeps going; librdkafka
    re-authenticates by itself and produces through several lifetimes on one connection."""
    b = sasl_broker_factory("--connections-max-reauth-ms", "2000")
    sasl = b.listener_address("SASL_PLAINTEXT")

    # No re-authentication: answered until the session ends, then closed.
    s = connect(sasl)
    t0 = time.monotonic()
    assert raw_plain_login(s, 1) == 2000
    corr = iter(range(10, 10_000))
    assert metadata_answered(s, next(corr))
    wait_until(lambda: not metadata_answered(s, next(corr)), 30, interval=0.2,
               what="the expired session's connection to close")
    assert time.monotonic() - t0 >= 2.0
    s.close()

    # Re-authenticating before the end keeps the connection past the first lifetime.
    s = connect(sasl)
    t0 = time.monotonic()
    raw_plain_login(s, 1)
    wait_until(lambda: time.monotonic() - t0 > 1.0 and metadata_answered(s, next(corr)), 30, interval=0.2,
               what="a second into the session")
    assert raw_plain_login(s, next(corr) + 1000) == 2000
    wait_until(lambda: time.monotonic() - t0 > 2.5 and metadata_answered(s, next(corr)), 30, interval=0.2,
               what="past the first session's end on the re-authenticated connection")
    s.close()

    # librdkafka: one connection for 6 s of producing, re-authenticated along the way.
    before = metric(b.admin_url, "runnel_sasl_authentications_total", outcome="reauthentication") or 0
    stats: list[dict] = []
    p = Producer({**sasl_conf(sasl, "admin", ADMIN_PASSWORD), "linger.ms": 0, "statistics.interval.ms": 500,
                  "stats_cb": lambda j: stats.append(json.loads(j))})
    delivered: list = []
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < 6.0:
        p.produce("reauth", f"v{i}".encode(), partition=0, on_delivery=lambda err, msg: delivered.append(err))
        i += 1
        p.poll(0.2)
    assert p.flush(30) == 0
    assert len(delivered) == i and not any(delivered), [e for e in delivered if e][:3]
    reauths = (metric(b.admin_url, "runnel_sasl_authentications_total", outcome="reauthentication") or 0) - before
    assert reauths >= 2, reauths
    wait_until(lambda: p.poll(0.1) is not None and stats, 10, what="librdkafka statistics")
    node = next(v for v in stats[-1]["brokers"].values() if v.get("nodeid", -1) >= 0)
    assert node["connects"] == 1, f"librdkafka reconnected {node['connects']} times"


def acl(name: str, pattern: ResourcePatternType, op: AclOperation, permission: AclPermissionType,
        user: str = "alice", rtype: ResourceType = ResourceType.TOPIC) -> AclBinding:
    return AclBinding(rtype, name, pattern, f"User:{user}", "*", op, permission)


def test_acls_allow_deny_hide_topics_and_survive_a_restart(sasl_broker_factory):
    b = sasl_broker_factory("--authorizer-enabled", "true")
    sasl = b.listener_address("SASL_PLAINTEXT")
    admin = AdminClient(sasl_conf(sasl, "admin", ADMIN_PASSWORD))
    create_user(admin, "alice", "alice-pw")
    topics = ("orders", "orders-eu", "secret", "readonly")
    for f in admin.create_topics([NewTopic(t, 1, 1) for t in topics]).values():
        f.result(timeout=30)
    alice = sasl_conf(sasl, "alice", "alice-pw")

    # No ACL: alice sees no topic and cannot produce.
    assert not set(AdminClient(alice).list_topics(timeout=10).topics) & {"orders", "secret"}

    # A prefixed ALLOW ALL on "orders" and a literal DENY WRITE on "orders-eu": deny wins there.
    bindings = [acl("orders", ResourcePatternType.PREFIXED, AclOperation.ALL, AclPermissionType.ALLOW),
                acl("orders-eu", ResourcePatternType.LITERAL, AclOperation.WRITE, AclPermissionType.DENY),
                acl("readonly", ResourcePatternType.LITERAL, AclOperation.READ, AclPermissionType.ALLOW),
                acl("readers", ResourcePatternType.LITERAL, AclOperation.READ, AclPermissionType.ALLOW,
                    rtype=ResourceType.GROUP)]
    for f in admin.create_acls(bindings).values():
        f.result(timeout=30)
    described = admin.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY,
                                                     None, None, AclOperation.ANY,
                                                     AclPermissionType.ANY)).result(timeout=30)
    assert sorted(map(str, described)) == sorted(map(str, bindings))

    topics = set(AdminClient(alice).list_topics(timeout=10).topics)
    assert {"orders", "orders-eu"} <= topics and "secret" not in topics

    p = Producer({**alice, "linger.ms": 0})
    results: dict[str, KafkaError | None] = {}
    for topic in ("orders", "orders-eu", "secret"):
        p.produce(topic, value=b"x", partition=0,
                  on_delivery=lambda err, msg, t=topic: results.__setitem__(t, err))
    p.flush(30)
    assert results["orders"] is None
    assert results["orders-eu"].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, results
    assert results["secret"] is not None and results["secret"].code() in (
        KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError._UNKNOWN_TOPIC), results
    # Nothing was written to the refused topics (the super user reads them).
    admin_conf = sasl_conf(sasl, "admin", ADMIN_PASSWORD)
    for topic in ("orders-eu", "secret"):
        c = Consumer({**admin_conf, "group.id": f"check-{topic}"})
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        c.close()
        assert hi == 0, f"{topic} has {hi} records"

    # Without READ on its group a consumer gets GROUP_AUTHORIZATION_FAILED; with it, it reads.
    def group_error(group: str) -> KafkaError | None:
        c = Consumer({**alice, "group.id": group, "auto.offset.reset": "earliest"})
        try:
            c.subscribe(["orders"])
            end = time.monotonic() + 30
            while time.monotonic() < end:
                m = c.poll(0.5)
                if m is None:
                    continue
                return m.error()
            return None
        finally:
            c.close()
    err = group_error("writers")
    assert err is not None and err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, err
    assert group_error("readers") is None

    # ListGroups shows only the groups alice may describe; DescribeGroups refuses the others.
    alice_admin = AdminClient(alice)
    listed = alice_admin.list_consumer_groups().result(timeout=30)
    assert {g.group_id for g in listed.valid} == {"readers"}, listed.valid
    with pytest.raises(KafkaException) as refused:
        alice_admin.describe_consumer_groups(["writers"])["writers"].result(timeout=30)
    assert refused.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED
    described = alice_admin.describe_consumer_groups(["readers"])["readers"].result(timeout=30)
    assert described.group_id == "readers"

    # Admin APIs check each resource: configs of "orders" yes, of "secret" no; no new
    # partitions for "secret"; READ on a group does not allow deleting it.
    def refusal(future) -> int:
        with pytest.raises(KafkaException) as refused:
            future.result(timeout=30)
        return refused.value.args[0].code()
    orders_res, secret_res = ConfigResource("topic", "orders"), ConfigResource("topic", "secret")
    assert "retention.ms" in alice_admin.describe_configs([orders_res])[orders_res].result(timeout=30)
    assert refusal(alice_admin.describe_configs([secret_res])[secret_res]) == \
        KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert refusal(alice_admin.create_partitions([NewPartitions("secret", 2)])["secret"]) == \
        KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert refusal(alice_admin.delete_consumer_groups(["readers"])["readers"]) == \
        KafkaError.GROUP_AUTHORIZATION_FAILED
    # READ implies DESCRIBE (alice finds the leader) but not DELETE.
    deleted = alice_admin.delete_records([TopicPartition("readonly", 0, 0)])
    assert refusal(next(iter(deleted.values()))) == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # ACLs and users survive a restart (on new ports).
    b.stop()
    b.start()
    sasl = b.listener_address("SASL_PLAINTEXT")
    alice = sasl_conf(sasl, "alice", "alice-pw")
    topics = set(AdminClient(alice).list_topics(timeout=10).topics)
    assert "orders" in topics and "secret" not in topics
    admin = AdminClient(sasl_conf(sasl, "admin", ADMIN_PASSWORD))
    deleted = admin.delete_acls([AclBindingFilter(ResourceType.TOPIC, "orders", ResourcePatternType.PREFIXED,
                                                  None, None, AclOperation.ANY,
                                                  AclPermissionType.ANY)])
    for f in deleted.values():
        assert len(f.result(timeout=30)) == 1
    assert "orders" not in set(AdminClient(alice).list_topics(timeout=10).topics)

    # The runnel CLI manages ACLs too.
    def runnel(*args: str) -> str:
        done = subprocess.run(
            [cli_bin(), "-b", sasl, "--sasl-mechanism", "SCRAM-SHA-256", "--sasl-username", "admin",
             "--output", "json", *args], capture_output=True, text=True, timeout=60,
            env={**os.environ, "RUNNEL_SASL_PASSWORD": ADMIN_PASSWORD})
        assert done.returncode == 0, done.stderr
        return done.stdout
    runnel("acl", "create", "--allow-principal", "User:alice", "--operation", "describe",
           "--topic", "secret")
    assert "secret" in set(AdminClient(alice).list_topics(timeout=10).topics)
    listed = json.loads(runnel("acl", "list", "--principal", "User:alice", "--topic", "secret"))
    assert [(a["resource_name"], a["operation"], a["permission"]) for a in listed] == \
        [("secret", "DESCRIBE", "ALLOW")]
    runnel("acl", "delete", "--topic", "secret")
    assert "secret" not in set(AdminClient(alice).list_topics(timeout=10).topics)
    assert metric(b.admin_url, "runnel_authorizer_decisions_total", result="denied") >= 1


def test_cluster_wide_apis_need_a_cluster_acl(sasl_broker_factory):
    """Leader elections, ACL and user changes are cluster operations: a user without an ACL on the
    cluster gets CLUSTER_AUTHORIZATION_FAILED (31) and changes nothing; ALTER on the cluster lets
    the same calls through."""
    from confluent_kafka import ElectionType
    b = sasl_broker_factory("--authorizer-enabled", "true")
    sasl = b.listener_address("SASL_PLAINTEXT")
    admin = AdminClient(sasl_conf(sasl, "admin", ADMIN_PASSWORD))
    create_user(admin, "alice", "alice-pw")
    admin.create_topics([NewTopic("elections", 1, 1)])["elections"].result(timeout=30)
    alice = AdminClient(sasl_conf(sasl, "alice", "alice-pw"))

    def error_code(future) -> int:
        try:
            future.result(timeout=30)
        except KafkaException as e:
            return e.args[0].code()
        return 0

    election = [TopicPartition("elections", 0)]
    assert error_code(alice.elect_leaders(ElectionType.PREFERRED, election)) == 31
    grant = acl("kafka-cluster", ResourcePatternType.LITERAL, AclOperation.ALTER, AclPermissionType.ALLOW,
                rtype=ResourceType.BROKER)
    assert error_code(alice.create_acls([grant])[grant]) == 31
    upsert = UserScramCredentialUpsertion("mallory", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                          b"mallory-pw")
    assert error_code(alice.alter_user_scram_credentials([upsert])["mallory"]) == 31
    # Nothing was changed: no ACL, no user.
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                                  AclPermissionType.ANY)
    assert admin.describe_acls(everything).result(timeout=30) == []
    assert auth_error(sasl_conf(sasl, "mallory", "mallory-pw")) is not None

    # The administrator grants ALTER on the cluster: the same calls now pass.
    admin.create_acls([grant])[grant].result(timeout=30)
    result = alice.elect_leaders(ElectionType.PREFERRED, election).result(timeout=30)
    # The leader already is the preferred one: ELECTION_NOT_NEEDED (84) for the partition.
    assert [e.code() if e else 0 for e in result.values()] == [84], result
    assert error_code(alice.alter_user_scram_credentials([upsert])["mallory"]) == 0
    assert auth_error(sasl_conf(sasl, "mallory", "mallory-pw")) is None


def test_offset_delete_needs_delete_on_the_group_and_read_on_each_topic(sasl_broker_factory):
    """kafka-python's delete_group_offsets (OffsetDelete): without DELETE on the group the whole
    request is GROUP_AUTHORIZATION_FAILED (30); with it, a topic without READ answers
    TOPIC_AUTHORIZATION_FAILED (29) and keeps its offsets while the readable topic's go."""
    from kafka import TopicPartition as KTP
    from kafka.admin import KafkaAdminClient
    from kafka.errors import GroupAuthorizationFailedError, NoError, TopicAuthorizationFailedError
    b = sasl_broker_factory("--authorizer-enabled", "true")
    sasl = b.listener_address("SASL_PLAINTEXT")
    admin = AdminClient(sasl_conf(sasl, "admin", ADMIN_PASSWORD))
    create_user(admin, "alice", "alice-pw")
    for f in admin.create_topics([NewTopic(t, 1, 1) for t in ("readable", "unreadable")]).values():
        f.result(timeout=30)
    # The admin commits offsets for group "cleanup" on both topics; nobody is a member.
    c = Consumer({**sasl_conf(sasl, "admin", ADMIN_PASSWORD), "group.id": "cleanup"})
    c.commit(offsets=[TopicPartition("readable", 0, 0), TopicPartition("unreadable", 0, 0)], asynchronous=False)
    c.close()

    def committed() -> set[str]:
        cc = Consumer({**sasl_conf(sasl, "admin", ADMIN_PASSWORD), "group.id": "cleanup"})
        try:
            got = cc.committed([TopicPartition("readable", 0), TopicPartition("unreadable", 0)], timeout=30)
            return {tp.topic for tp in got if tp.offset >= 0}
        finally:
            cc.close()

    assert committed() == {"readable", "unreadable"}
    alice = KafkaAdminClient(bootstrap_servers=sasl, security_protocol="SASL_PLAINTEXT",
                             sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="alice",
                             sasl_plain_password="alice-pw")
    try:
        both = [KTP("readable", 0), KTP("unreadable", 0)]
        with pytest.raises(GroupAuthorizationFailedError):
            alice.delete_group_offsets("cleanup", both)
        assert committed() == {"readable", "unreadable"}
        grants = [acl("cleanup", ResourcePatternType.LITERAL, AclOperation.DELETE, AclPermissionType.ALLOW,
                      rtype=ResourceType.GROUP),
                  acl("readable", ResourcePatternType.LITERAL, AclOperation.READ, AclPermissionType.ALLOW)]
        for f in admin.create_acls(grants).values():
            f.result(timeout=30)
        result = alice.delete_group_offsets("cleanup", both)
        assert result == {KTP("readable", 0): NoError, KTP("unreadable", 0): TopicAuthorizationFailedError}, result
        assert committed() == {"unreadable"}
    finally:
        alice.close()


def test_scram_users_and_acls_survive_a_restart_of_every_broker_of_three(tmp_path):
    """Users and ACLs live in the metadata quorum: after all three brokers are killed and
    started again, every broker describes the same users and ACLs, and enforces them."""
    from cluster import Cluster
    from test_cluster import CLUSTER_ARGS

    # The PLAINTEXT clients of the harness are ANONYMOUS: make them super users. (confluent-kafka
    # names the cluster resource type BROKER; its code is 4, CLUSTER.)
    c = Cluster(tmp_path / "cluster", 3, CLUSTER_ARGS + ["--authorizer-enabled", "true",
                                                         "--super-users", "User:ANONYMOUS"])
    try:
        c.start()
        admin = c.admin()
        create_user(admin, "carol", "carol-pw")
        bindings = [acl("audit-", ResourcePatternType.PREFIXED, AclOperation.READ,
                        AclPermissionType.ALLOW, user="carol"),
                    acl("kafka-cluster", ResourcePatternType.LITERAL, AclOperation.DESCRIBE,
                        AclPermissionType.DENY, user="carol", rtype=ResourceType.BROKER)]
        for f in admin.create_acls(bindings).values():
            f.result(timeout=30)

        c.kill9_and_restart_all()

        everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                      AclOperation.ANY, AclPermissionType.ANY)
        for b in c.brokers:
            one = AdminClient({"bootstrap.servers": b.bootstrap})
            described = one.describe_acls(everything).result(timeout=30)
            assert sorted(map(str, described)) == sorted(map(str, bindings)), b.node_id
            users = one.describe_user_scram_credentials().result(timeout=30)
            assert {i.mechanism for i in users["carol"].scram_credential_infos} == {
                ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512}, b.node_id
    finally:
        c.stop()


def test_sasl_over_tls_with_confluent_kafka_and_kafka_python(tmp_path, listeners_broker_factory):
    """A SASL_SSL listener: TLS first, then SASL (SCRAM-SHA-512 and PLAIN) inside it."""
    from test_tls import Pki
    pki = Pki(tmp_path / "pki")
    password_file = tmp_path / "admin-password"
    password_file.write_text(ADMIN_PASSWORD + "\n")
    b = listeners_broker_factory(
        "PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        "--ssl-certificate-location", str(pki.cert_file), "--ssl-key-location", str(pki.key_file),
        "--sasl-enabled-mechanisms", "SCRAM-SHA-512,PLAIN", "--sasl-bootstrap-user", "admin",
        "--sasl-bootstrap-password-file", str(password_file))
    secure = b.listener_address("SASL_SSL")
    tls = {"security.protocol": "SASL_SSL", "ssl.ca.location": str(pki.ca_file)}
    for mechanism in ("SCRAM-SHA-512", "PLAIN"):
        conf = {**sasl_conf(secure, "admin", ADMIN_PASSWORD, mechanism), **tls}
        p = Producer(conf)
        p.produce("sasl-ssl", value=mechanism.encode(), partition=0)
        assert p.flush(30) == 0
    got = consume_confluent(secure, "sasl-ssl", [0], until={0: 2},
                            config={**sasl_conf(secure, "admin", ADMIN_PASSWORD, "SCRAM-SHA-512"), **tls})
    assert [r.value for r in got[0]] == [b"SCRAM-SHA-512", b"PLAIN"]
    # A wrong password over TLS is refused like one in the clear.
    err = auth_error({**sasl_conf(secure, "admin", "wrong", "SCRAM-SHA-512"), **tls})
    assert err is not None and err.code() == KafkaError._AUTHENTICATION, err
    # The runnel CLI over SASL_SSL, its settings in a Kafka properties file.
    settings = tmp_path / "admin.properties"
    settings.write_text(f"security.protocol=SASL_SSL\nssl.ca.location={pki.ca_file}\n"
                        f"sasl.mechanism=SCRAM-SHA-512\nsasl.username=admin\nsasl.password={ADMIN_PASSWORD}\n")
    cp = subprocess.run([cli_bin(), "-b", secure, "--command-config", str(settings), "consume", "sasl-ssl",
                         "--from-beginning", "--max-messages", "2"], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0 and cp.stdout.splitlines() == ["SCRAM-SHA-512", "PLAIN"], (cp.stdout, cp.stderr)

    from kafka import KafkaConsumer, TopicPartition as KTP
    kc = KafkaConsumer(bootstrap_servers=secure, security_protocol="SASL_SSL",
                       ssl_cafile=str(pki.ca_file), sasl_mechanism="SCRAM-SHA-512",
                       sasl_plain_username="admin", sasl_plain_password=ADMIN_PASSWORD,
                       auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        kc.assign([KTP("sasl-ssl", 0)])
        seen: list[bytes] = []
        wait_until(lambda: seen.extend(r.value for rs in kc.poll(500).values() for r in rs)
                   or len(seen) >= 2, 60, what="kafka-python reading over SASL_SSL")
        assert seen == [b"SCRAM-SHA-512", b"PLAIN"]
    finally:
        kc.close()
