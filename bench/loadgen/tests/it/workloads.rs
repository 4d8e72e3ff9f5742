use std::time::Duration;

use runnel_loadgen::{consume_backlog, run, BacklogSpec, ConsumerMode, Workload};

use crate::harness::Broker;

fn workload(broker: &Broker, topic: &str) -> Workload {
    let mut w = Workload::new(&broker.bootstrap, topic);
    w.partitions = 3;
    w.record_size = 200;
    w.producers = 2;
    w.consumers = 2;
    w.duration = None;
    w.records = Some(3_001);
    w.drain_timeout = Duration::from_secs(30);
    w.quiet = true;
    w
}

#[test]
fn every_produced_record_is_acknowledged_consumed_and_timed() {
    let broker = Broker::start();
    let w = workload(&broker, "lg-assign");
    let s = run(&w).unwrap();
    assert_eq!(s.partitions, 3);
    assert_eq!(s.sent, 3_001);
    assert_eq!(s.errors, 0, "{:?}", s.first_error);
    assert_eq!(s.produce.records, 3_001);
    assert_eq!(s.produce.bytes, 3_001 * 200);
    assert_eq!(s.ack_latency.count, 3_001, "one ack latency per record");
    assert_eq!(s.consume.records, 3_001);
    assert_eq!(
        s.e2e_latency.count, 3_001,
        "one end-to-end latency per record"
    );
    // Consumers start at the end before the producers warm up: they read one warm-up record
    // per partition per producer and do not count it as this run's.
    assert_eq!(s.consumed_foreign, 3 * 2);
    assert!(s.ack_latency.p50_ms > 0.0 && s.ack_latency.p50_ms <= s.ack_latency.p99_ms);
    assert!(s.ack_latency.p99_ms <= s.ack_latency.p999_ms);
    assert!(s.ack_latency.p999_ms <= s.ack_latency.max_ms);
    assert!(s.produce.mb_s > 0.0 && s.consume.mb_s > 0.0);

    // The backlog reader sees the same records plus one warm-up record per partition per
    // producer, and nothing else.
    let b = consume_backlog(&BacklogSpec {
        bootstrap: broker.bootstrap.clone(),
        topic: "lg-assign".into(),
        consumers: 1,
        properties: Vec::new(),
        timeout: Duration::from_secs(30),
        quiet: true,
    })
    .unwrap();
    assert_eq!(b.consume.records, 3_001 + 3 * 2);
    assert_eq!(b.consume.bytes, (3_001 + 3 * 2) * 200);
}

#[test]
fn a_keyed_workload_in_a_consumer_group_reads_every_record_once() {
    let broker = Broker::start();
    let mut w = workload(&broker, "lg-group");
    w.consumer_mode = ConsumerMode::Group;
    w.keys = 100;
    w.records = Some(2_000);
    let s = run(&w).unwrap();
    assert_eq!(s.errors, 0, "{:?}", s.first_error);
    assert_eq!(s.produce.records, 2_000);
    assert_eq!(s.ack_latency.count, 2_000);
    assert_eq!(s.consume.records, 2_000);
    assert_eq!(s.e2e_latency.count, 2_000);
    // A new group reads from the earliest offset: the warm-up records are read and skipped.
    assert_eq!(s.consumed_foreign, 3 * 2);
}

#[test]
fn a_paced_workload_keeps_to_its_rate() {
    let broker = Broker::start();
    let mut w = workload(&broker, "lg-paced");
    w.consumers = 0;
    w.record_size = 1_000;
    w.records = Some(1_000);
    // 1,000 records of 1,000 bytes at 1 MB/s take one second; unpaced they take milliseconds.
    w.rate_mb_s = 1.0;
    let s = run(&w).unwrap();
    assert_eq!(s.produce.records, 1_000);
    assert_eq!(s.ack_latency.count, 1_000);
    assert!(
        s.produce.seconds >= 0.95,
        "paced at 1 MB/s, 1 MB took {:.3}s",
        s.produce.seconds
    );
    assert!(s.produce.mb_s <= 1.1, "{} MB/s", s.produce.mb_s);
}

#[test]
fn a_record_smaller_than_the_header_is_refused() {
    let mut w = Workload::new("127.0.0.1:1", "x");
    w.record_size = 8;
    let e = run(&w).unwrap_err().to_string();
    assert!(e.contains("below the 16-byte header"), "{e}");
}
