//! Replication throttling: the dynamic broker rate configs are altered and
//! described through the Kafka config APIs (bad input refused, nothing
//! stored), and a reassignment's new replica catches up no faster than the
//! configured follower or leader rate, while in-sync followers stay unthrottled.

use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use runnel_server::{FOLLOWER_RATE, FOLLOWER_REPLICAS, LEADER_RATE, LEADER_REPLICAS};

use crate::harness::*;

const BROKER: i8 = 4;
const TOPIC: i8 = 2;
const SET: i8 = 0;
const DELETE: i8 = 1;
const INVALID_CONFIG: i16 = 40;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn incremental(
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> IncrementalAlterConfigsRequest {
    IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name))
        .with_configs(
            ops.iter()
                .map(|(k, op, v)| {
                    AlterableConfig::default()
                        .with_name(s(k))
                        .with_config_operation(*op)
                        .with_value(v.map(s))
                })
                .collect(),
        )])
}

/// Sends IncrementalAlterConfigs and returns (error code, message).
async fn alter(
    conn: &mut Conn,
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> (i16, String) {
    let r = conn.send(&incremental(resource_type, name, ops), 1).await;
    let r = &r.responses[0];
    (
        r.error_code,
        r.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

/// (value, source) of each throttle rate of a broker resource, with synonyms' sources.
async fn describe_rates(conn: &mut Conn, name: &str) -> Vec<(String, String, i8, Vec<i8>)> {
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(s(name))
            .with_configuration_keys(Some(vec![s(LEADER_RATE), s(FOLLOWER_RATE)]))]);
    let r = conn.send(&request, 4).await;
    let result = &r.results[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    result
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                c.config_source,
                c.synonyms.iter().map(|s| s.source).collect(),
            )
        })
        .collect()
}

fn rate<'a>(described: &'a [(String, String, i8, Vec<i8>)], key: &str) -> (&'a str, i8) {
    let e = described
        .iter()
        .find(|e| e.0 == key)
        .expect("rate described");
    (e.1.as_str(), e.2)
}

#[tokio::test]
async fn broker_throttle_rates_are_altered_per_broker_and_cluster_wide_and_described_with_their_source(
) {
    let b = TestBroker::start_with(|c| c.node_id = 7).await;
    let mut conn = b.connect().await;
    // Unset: Kafka's Long.MAX_VALUE default (= unthrottled).
    let d = describe_rates(&mut conn, "7").await;
    assert_eq!(rate(&d, LEADER_RATE), ("9223372036854775807", 5));

    assert_eq!(
        alter(
            &mut conn,
            BROKER,
            "",
            &[
                (LEADER_RATE, SET, Some("1000")),
                (FOLLOWER_RATE, SET, Some("3000"))
            ]
        )
        .await
        .0,
        0
    );
    assert_eq!(
        alter(
            &mut conn,
            BROKER,
            "7",
            &[(FOLLOWER_RATE, SET, Some("2000"))]
        )
        .await
        .0,
        0
    );
    let d = describe_rates(&mut conn, "7").await;
    assert_eq!(
        rate(&d, LEADER_RATE),
        ("1000", 3),
        "cluster default: DYNAMIC_DEFAULT_BROKER_CONFIG"
    );
    assert_eq!(
        rate(&d, FOLLOWER_RATE),
        ("2000", 2),
        "own value: DYNAMIC_BROKER_CONFIG"
    );
    let synonyms = &d.iter().find(|e| e.0 == FOLLOWER_RATE).unwrap().3;
    assert_eq!(synonyms, &vec![2, 3, 5], "own, default, built-in");
    let d = describe_rates(&mut conn, "").await;
    assert_eq!(rate(&d, FOLLOWER_RATE), ("3000", 3));
    // The replica manager uses them: own override first, then the default.
    let view = b.broker.replication_throttle();
    assert_eq!(
        (view.leader_rate, view.follower_rate),
        (Some(1000), Some(2000))
    );

    // Bad input: INVALID_CONFIG naming the key, and nothing stored.
    for (ops, names) in [
        (vec![(LEADER_RATE, SET, Some("-5"))], LEADER_RATE),
        (vec![(LEADER_RATE, SET, Some("fast"))], LEADER_RATE),
        (
            vec![
                (FOLLOWER_RATE, SET, Some("1")),
                ("log.retention.ms", SET, Some("1")),
            ],
            "log.retention.ms",
        ),
        (vec![("no.such.key", DELETE, None)], "no.such.key"),
    ] {
        let (code, message) = alter(&mut conn, BROKER, "7", &ops).await;
        assert_eq!(code, INVALID_CONFIG, "{ops:?}: {message}");
        assert!(message.contains(names), "{message}");
    }
    let (code, _) = alter(&mut conn, BROKER, "x", &[(LEADER_RATE, SET, Some("1"))]).await;
    assert_ne!(code, 0, "a resource that is no broker id is refused");
    let after = describe_rates(&mut conn, "7").await;
    assert_eq!(rate(&after, FOLLOWER_RATE), ("2000", 2));
    assert_eq!(rate(&after, LEADER_RATE), ("1000", 3));

    // AlterConfigs (non-incremental) validates the same way and replaces the whole map.
    let legacy = |name: &str, pairs: &[(&str, &str)]| {
        use kafka_protocol::messages::alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(s(name))
            .with_configs(
                pairs
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            )])
    };
    let r = conn.send(&legacy("7", &[(LEADER_RATE, "1.5")]), 1).await;
    assert_eq!(r.responses[0].error_code, INVALID_CONFIG);
    let r = conn.send(&legacy("7", &[(LEADER_RATE, "500")]), 1).await;
    assert_eq!(r.responses[0].error_code, 0);
    let d = describe_rates(&mut conn, "7").await;
    assert_eq!(rate(&d, LEADER_RATE), ("500", 2));
    assert_eq!(
        rate(&d, FOLLOWER_RATE),
        ("3000", 3),
        "the per-broker follower rate was replaced away"
    );

    // Throttled-replica topic configs are validated.
    create_topic(&mut conn, "t", 1, &[]).await;
    let (code, message) = alter(
        &mut conn,
        TOPIC,
        "t",
        &[(LEADER_REPLICAS, SET, Some("0:7,zero:7"))],
    )
    .await;
    assert_eq!(code, INVALID_CONFIG);
    assert!(message.contains("zero:7"), "{message}");
    assert_eq!(
        alter(
            &mut conn,
            TOPIC,
            "t",
            &[(FOLLOWER_REPLICAS, SET, Some("*"))]
        )
        .await
        .0,
        0
    );
    b.stop().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two brokers (ids 1 and 2) forming one quorum, on controller ports picked
/// free beforehand; when a test running in parallel takes one before its
/// broker binds it, both start again on other ports.
async fn two_brokers() -> (TestBroker, TestBroker) {
    for _attempt in 0..5 {
        let ports = [free_port(), free_port()];
        let start = |id: i32| {
            TestBroker::try_start_with(move |c| {
                c.node_id = id;
                c.controller_listen = format!("127.0.0.1:{}", ports[(id - 1) as usize]);
                if id != 1 {
                    c.seeds = vec![format!("127.0.0.1:{}", ports[0])];
                }
                c.broker_heartbeat_interval_ms = 100;
                c.broker_session_timeout_ms = 1500;
            })
        };
        let Ok(b1) = start(1).await else { continue };
        let Ok(b2) = start(2).await else {
            b1.stop().await;
            continue;
        };
        wait_for("both brokers to register", || {
            b1.broker.cluster().live_brokers().count() == 2
        })
        .await;
        return (b1, b2);
    }
    panic!("no free controller ports after 5 attempts");
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates `topic` with one partition on `replicas`.
async fn create_on(conn: &mut Conn, topic: &str, replicas: &[i32]) {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(
                    replicas.iter().map(|&r| BrokerId(r)).collect(),
                )])]);
    let r = conn.send(&request, 7).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

/// Produces `batches` batches of 16 KiB records; returns the bytes written.
async fn fill(conn: &mut Conn, topic: &str, batches: usize, acks: i16) -> u64 {
    let value = "x".repeat(16 * 1024);
    let mut bytes = 0u64;
    for _ in 0..batches {
        let records = batch(&[value.as_str()], 1000);
        bytes += records.len() as u64;
        let r = conn
            .send(&produce_request(topic, 0, acks, records), 9)
            .await;
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "{:?}", p.error_message);
    }
    bytes
}

async fn reassign(conn: &mut Conn, topic: &str, replicas: &[i32]) {
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(Some(
                    replicas.iter().map(|&r| BrokerId(r)).collect(),
                ))])]);
    let r = conn.send(&request, 0).await;
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert_eq!(
        r.responses[0].partitions[0].error_code, 0,
        "{:?}",
        r.responses[0].partitions[0].error_message
    );
}

fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// Moves a partition holding ~1 MiB from broker 1 to [1, 2] with the given
/// side throttled at `rate` bytes/s and returns (bytes, catch-up time).
async fn throttled_catch_up(side: &str) {
    const RATE: u64 = 256 * 1024;
    let (b1, b2) = two_brokers().await;
    let mut conn = b1.connect().await;
    let topic = format!("moving-{side}");
    create_on(&mut conn, &topic, &[1]).await;
    wait_for("the leader to open its log", || {
        b1.broker.partition_log(&topic, 0).is_some()
    })
    .await;
    let bytes = fill(&mut conn, &topic, 64, 1).await;
    let (rate_key, list_key, broker_id, throttled_broker) = match side {
        "leader" => (LEADER_RATE, LEADER_REPLICAS, "1", &b1),
        _ => (FOLLOWER_RATE, FOLLOWER_REPLICAS, "2", &b2),
    };
    let rate = RATE.to_string();
    assert_eq!(
        alter(
            &mut conn,
            BROKER,
            broker_id,
            &[(rate_key, SET, Some(&rate))]
        )
        .await
        .0,
        0
    );
    let list = format!("0:{broker_id}");
    assert_eq!(
        alter(&mut conn, TOPIC, &topic, &[(list_key, SET, Some(&list))])
            .await
            .0,
        0
    );
    // The throttled broker has applied both before the move starts.
    let other = &throttled_broker.broker;
    wait_for("the throttle to reach the broker", || {
        let v = other.replication_throttle();
        if side == "leader" {
            v.leader_throttled(&topic, 0, 1)
        } else {
            v.follower_throttled(&topic, 0, 2)
        }
    })
    .await;

    let started = Instant::now();
    reassign(&mut conn, &topic, &[1, 2]).await;
    let leader_log = b1.broker.partition_log(&topic, 0).unwrap();
    let end = leader_log.log_end_offset();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let caught_up = b2
            .broker
            .partition_log(&topic, 0)
            .is_some_and(|log| log.log_end_offset() >= end);
        if caught_up {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new replica never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let expected = Duration::from_secs_f64(bytes as f64 / RATE as f64);
    eprintln!(
        "{side} throttle: {bytes} bytes at {RATE} B/s configured took {elapsed:?} (observed {:.0} B/s)",
        bytes as f64 / elapsed.as_secs_f64()
    );
    // A lower bound only (the burst and one batch of overshoot are allowed for).
    assert!(
        elapsed >= expected.mul_f64(0.6),
        "caught up in {elapsed:?}, faster than the {RATE} B/s limit allows ({expected:?})"
    );
    // The bytes went through the throttle and the quota held partitions back.
    let (_, text) = http_get(throttled_broker.admin, "/metrics").await;
    let through = metric_value(
        &text,
        &format!("runnel_replication_throttled_bytes_total{{side=\"{side}\"}}"),
    );
    assert!(
        through >= bytes as f64 * 0.9,
        "{through} of {bytes} bytes counted as throttled"
    );
    let held = metric_value(
        &text,
        &format!("runnel_replication_throttled_partition_fetches_total{{side=\"{side}\"}}"),
    );
    assert!(held > 0.0, "the quota never held the partition back");
    b2.stop().await;
    b1.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_throttled_new_replica_catches_up_no_faster_than_the_follower_rate() {
    throttled_catch_up("follower").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_throttled_new_replica_catches_up_no_faster_than_the_leader_rate() {
    throttled_catch_up("leader").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_sync_followers_are_not_throttled_so_acks_all_keeps_working() {
    let (b1, b2) = two_brokers().await;
    let mut conn = b1.connect().await;
    create_on(&mut conn, "synced", &[1, 2]).await;
    wait_for("both replicas in sync", || {
        b1.broker
            .partition_meta("synced", 0)
            .is_some_and(|m| m.isr.len() == 2)
            && b2.broker.partition_log("synced", 0).is_some()
    })
    .await;
    // 1 byte/s on both sides for every replica: 512 KiB would take days if
    // in-sync followers were throttled; acks=all waits for broker 2.
    for (rate_key, id) in [(LEADER_RATE, "1"), (FOLLOWER_RATE, "2")] {
        assert_eq!(
            alter(&mut conn, BROKER, id, &[(rate_key, SET, Some("1"))])
                .await
                .0,
            0
        );
    }
    assert_eq!(
        alter(
            &mut conn,
            TOPIC,
            "synced",
            &[
                (LEADER_REPLICAS, SET, Some("*")),
                (FOLLOWER_REPLICAS, SET, Some("*"))
            ]
        )
        .await
        .0,
        0
    );
    wait_for("the throttle to reach both brokers", || {
        b1.broker
            .replication_throttle()
            .leader_throttled("synced", 0, 1)
            && b2
                .broker
                .replication_throttle()
                .follower_throttled("synced", 0, 2)
    })
    .await;
    fill(&mut conn, "synced", 32, -1).await;
    assert_eq!(b1.broker.partition_meta("synced", 0).unwrap().isr.len(), 2);
    b2.stop().await;
    b1.stop().await;
}
