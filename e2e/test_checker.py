"""The acknowledged-write checker (checker.py) catches the violations it exists for: a lost
acknowledged record and a duplicated record. The cluster scenarios rely on it, so it is tested
against a single broker here."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from checker import AckedWriter, verify
from helpers import Ack, create_topic

TOPIC = "checked"


def run_writer(b, n: int) -> AckedWriter:
    create_topic(b.bootstrap, TOPIC, 2)
    w = AckedWriter(b.bootstrap, TOPIC).start()
    w.wait_acks(n)
    w.stop()
    assert not w.errors, w.errors[:3]
    return w


def test_checker_accepts_an_intact_log_and_counts_every_ack(broker):
    w = run_writer(broker, 2_000)
    report = verify(broker.bootstrap, w, 2)
    assert report.acknowledged == len(w.acks) >= 2_000
    assert report.stored == report.acknowledged
    assert report.unacknowledged_stored == 0


def test_checker_reports_an_acknowledged_record_missing_from_the_log(broker):
    w = run_writer(broker, 500)
    end = max(a.offset for a in w.acks if a.partition == 0) + 1
    w.acks.append(Ack(b"k1", w.value(10**9 - 1), 0, end))
    with pytest.raises(AssertionError, match="acknowledged .* but the log holds None"):
        verify(broker.bootstrap, w, 2)


def test_checker_reports_a_record_stored_twice(broker):
    w = run_writer(broker, 500)
    dup = w.acks[-1]
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce(TOPIC, key=dup.key, value=dup.value, partition=dup.partition)
    assert p.flush(30) == 0
    with pytest.raises(AssertionError, match="duplicate record"):
        verify(broker.bootstrap, w, 2)


def test_checker_accepts_a_delivery_without_offset_only_when_the_record_is_stored(broker):
    """librdkafka may report a batch delivered without an offset (a leader refused it, a later
    batch was acknowledged): such a record must be in its partition once, wherever it is."""
    w = run_writer(broker, 500)
    i = next(i for i, a in enumerate(w.acks) if a.partition == 0)
    a = w.acks[i]
    w.acks[i] = Ack(a.key, a.value, a.partition, None)
    verify(broker.bootstrap, w, 2)
    w.acks.append(Ack(b"k1", w.value(10**9 - 1), 0, None))
    with pytest.raises(AssertionError, match="no offset reported.* but the log holds it at None"):
        verify(broker.bootstrap, w, 2)
