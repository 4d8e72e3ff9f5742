//! Partition replication across three in-process brokers: acks=all waits for
//! every in-sync replica, the ISR shrinks and expands, min.insync.replicas is
//! enforced, and a restarted former leader truncates its diverged tail.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use runnel_log::Log;

use crate::harness::*;

/// Picks a free local port (released at once; the broker binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Cluster {
    brokers: Vec<Option<TestBroker>>,
    controller_ports: Vec<u16>,
    lag_ms: u64,
}

impl Cluster {
    /// Three brokers on controller ports picked free beforehand (the seeds
    /// must be known); when a test running in parallel takes one of them
    /// before its broker binds it, the cluster starts again on other ports.
    async fn start(lag_ms: u64) -> Cluster {
        for _attempt in 0..5 {
            let controller_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
            let mut cluster = Cluster {
                brokers: Vec::new(),
                controller_ports,
                lag_ms,
            };
            let mut bound = true;
            for id in 1..=3 {
                match TestBroker::try_start_with(cluster.tweak(id)).await {
                    Ok(b) => cluster.brokers.push(Some(b)),
                    Err(_) => {
                        bound = false;
                        break;
                    }
                }
            }
            if bound {
                cluster.wait_live(3).await;
                return cluster;
            }
            for b in cluster.brokers.into_iter().flatten() {
                b.stop().await;
            }
        }
        panic!("no free controller ports after 5 attempts");
    }

    fn tweak(&self, id: i32) -> impl FnOnce(&mut runnel_server::BrokerConfig) {
        let ports = self.controller_ports.clone();
        let lag = self.lag_ms;
        move |c: &mut runnel_server::BrokerConfig| {
            c.node_id = id;
            c.controller_listen = format!("127.0.0.1:{}", ports[(id - 1) as usize]);
            if id != 1 {
                c.seeds = vec![format!("127.0.0.1:{}", ports[0])];
            }
            c.replica_lag_time_max_ms = lag;
            c.broker_heartbeat_interval_ms = 100;
            c.broker_session_timeout_ms = 1500;
        }
    }

    async fn start_broker(&self, id: i32, dir: Option<tempfile::TempDir>) -> TestBroker {
        let tweak = self.tweak(id);
        match dir {
            Some(dir) => TestBroker::start_in(dir, tweak).await,
            None => TestBroker::start_with(tweak).await,
        }
    }

    fn broker(&self, id: i32) -> &TestBroker {
        self.brokers[(id - 1) as usize]
            .as_ref()
            .expect("broker running")
    }

    fn any(&self) -> &TestBroker {
        self.brokers.iter().flatten().next().expect("a broker runs")
    }

    async fn wait_live(&self, n: usize) {
        let b = self.any();
        wait_until("brokers to register", || {
            b.broker.cluster().live_brokers().count() == n
        })
        .await;
    }

    async fn stop(&mut self, id: i32) -> tempfile::TempDir {
        let b = self.brokers[(id - 1) as usize].take().expect("running");
        b.stop().await
    }

    async fn restart(&mut self, id: i32, dir: tempfile::TempDir) {
        let b = self.start_broker(id, Some(dir)).await;
        self.brokers[(id - 1) as usize] = Some(b);
    }

    fn log(&self, id: i32, topic: &str) -> Arc<Log> {
        self.broker(id)
            .broker
            .partition_log(topic, 0)
            .expect("partition open on broker")
    }

    fn meta(&self, topic: &str) -> runnel_meta::PartitionMeta {
        self.any()
            .broker
            .partition_meta(topic, 0)
            .expect("partition metadata")
    }

    /// Creates `topic` with one partition on replicas `[2, 1, 3]` (2 leads)
    /// and waits until every replica has its log and the leader accepts produce.
    /// The partition's metadata as broker `id` has applied it (the leader
    /// acts on its own view, which may lag another broker's).
    fn meta_at(&self, id: i32, topic: &str) -> runnel_meta::PartitionMeta {
        self.broker(id)
            .broker
            .partition_meta(topic, 0)
            .expect("partition metadata")
    }

    async fn create(&self, topic: &str, min_insync: &str) {
        let mut conn = self.any().connect().await;
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![CreatableReplicaAssignment::default()
                    .with_partition_index(0)
                    .with_broker_ids(vec![BrokerId(2), BrokerId(1), BrokerId(3)])])
                .with_configs(vec![CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("min.insync.replicas"))
                    .with_value(Some(StrBytes::from_string(
                        min_insync.to_string(),
                    )))])]);
        let response = conn.send(&request, 7).await;
        assert_eq!(
            response.topics[0].error_code, 0,
            "{:?}",
            response.topics[0].error_message
        );
        for id in 1..=3 {
            let b = &self.broker(id).broker;
            wait_until("replica logs to open", || {
                b.partition_log(topic, 0).is_some()
            })
            .await;
        }
    }

    async fn leader_conn(&self, topic: &str) -> (i32, Conn) {
        let leader = self.meta(topic).leader;
        (leader, self.broker(leader).connect().await)
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of an unlabelled metric in Prometheus text (NaN when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

async fn wait_metrics(admin: std::net::SocketAddr, cond: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (status, body) = http_get(admin, "/metrics").await;
        if status == 200 && cond(&body) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics never matched:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Produces one batch with `acks` and returns (error code, base offset).
async fn produce_acks(conn: &mut Conn, topic: &str, acks: i16, values: &[&str]) -> (i16, i64) {
    let response = conn
        .send(&produce_request(topic, 0, acks, batch(values, 1000)), 9)
        .await;
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Every value in the log, in offset order.
fn log_values(log: &Log) -> Vec<(i64, String)> {
    // Read the way fetches do, from each next offset: one read may stop early.
    let mut values: Vec<(i64, String)> = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read(offset, usize::MAX, true, i64::MAX).unwrap();
        let batch = decode_values(read.records);
        let Some((last, _)) = batch.last() else { break };
        offset = last + 1;
        values.extend(batch);
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acks_all_is_answered_only_once_every_isr_replica_has_the_batch_on_disk() {
    let cluster = Cluster::start(30_000).await;
    cluster.create("rf3", "2").await;
    let (_, mut conn) = cluster.leader_conn("rf3").await;
    for i in 0..5 {
        let v = format!("v{i}");
        let (code, base) = produce_acks(&mut conn, "rf3", -1, &[v.as_str(), "x"]).await;
        assert_eq!(code, 0);
        assert_eq!(base, i * 2);
        // At acknowledgement time, without waiting: every replica holds the batch durably.
        for id in 1..=3 {
            let log = cluster.log(id, "rf3");
            assert!(
                log.synced_offset() >= base + 2,
                "broker {id} synced only {} when offset {} was acknowledged",
                log.synced_offset(),
                base + 1
            );
        }
    }
    let leader_values = log_values(&cluster.log(cluster.meta("rf3").leader, "rf3"));
    assert_eq!(leader_values.len(), 10);
    for id in 1..=3 {
        assert_eq!(
            log_values(&cluster.log(id, "rf3")),
            leader_values,
            "broker {id}"
        );
    }
    // Consumers see what is committed, with HW = LSO = the end.
    let fetched = fetch(&mut conn, "rf3", 0, 0).await;
    assert_eq!(fetched.error_code, 0);
    assert_eq!(fetched.high_watermark, 10);
    assert_eq!(fetched.last_stable_offset, 10);
    assert_eq!(decode_values(fetched.records.unwrap()).len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lagging_follower_leaves_isr_min_insync_is_enforced_and_it_rejoins_after_catching_up() {
    let cluster = Cluster::start(800).await;
    cluster.create("lag", "2").await;
    let (leader, mut conn) = cluster.leader_conn("lag").await;
    assert_eq!(leader, 2);
    assert_eq!(produce_acks(&mut conn, "lag", -1, &["a"]).await, (0, 0));
    wait_until("full ISR", || cluster.meta_at(2, "lag").isr.len() == 3).await;

    // Broker 3 stays registered but stops fetching: after the lag time the
    // leader shrinks it out, and acks=all still succeeds with ISR {1, 2}.
    cluster.broker(3).broker.pause_replica_fetching(true);
    assert_eq!(produce_acks(&mut conn, "lag", 1, &["b"]).await, (0, 1));
    wait_until("ISR shrink to [1, 2]", || {
        let isr = cluster.meta_at(2, "lag").isr;
        isr.len() == 2 && !isr.contains(&3)
    })
    .await;
    assert_eq!(produce_acks(&mut conn, "lag", -1, &["c"]).await, (0, 2));

    // Broker 1 stops too: the ISR is only the leader, below min.insync.replicas=2.
    cluster.broker(1).broker.pause_replica_fetching(true);
    assert_eq!(produce_acks(&mut conn, "lag", 1, &["d"]).await, (0, 3));
    wait_until("ISR shrink to [2]", || {
        cluster.meta_at(2, "lag").isr == vec![2]
    })
    .await;
    let (code, _) = produce_acks(&mut conn, "lag", -1, &["refused"]).await;
    assert_eq!(code, 19, "NOT_ENOUGH_REPLICAS");
    // The leader's metrics show the shrinks, the under-replicated partition and the lag.
    let admin = cluster.broker(2).admin;
    wait_metrics(admin, |m| {
        metric(m, "runnel_isr_shrinks_total") >= 1.0
            && metric(m, "runnel_leader_under_replicated_partitions") == 1.0
            && m.contains("runnel_replica_lag_records{follower=\"3\"")
    })
    .await;
    // acks=1 is not subject to min.insync.replicas.
    assert_eq!(produce_acks(&mut conn, "lag", 1, &["e"]).await, (0, 4));

    // Both resume: they catch up and rejoin; acks=all works again.
    cluster.broker(1).broker.pause_replica_fetching(false);
    cluster.broker(3).broker.pause_replica_fetching(false);
    wait_until("ISR back to three", || {
        cluster.meta_at(2, "lag").isr.len() == 3
    })
    .await;
    assert_eq!(produce_acks(&mut conn, "lag", -1, &["f"]).await, (0, 5));
    wait_metrics(admin, |m| {
        metric(m, "runnel_isr_expands_total") >= 1.0
            && metric(m, "runnel_leader_under_replicated_partitions") == 0.0
    })
    .await;
    let expected = log_values(&cluster.log(2, "lag"));
    assert_eq!(expected.len(), 6);
    for id in [1, 3] {
        assert_eq!(log_values(&cluster.log(id, "lag")), expected, "broker {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_elects_new_leader_and_the_old_leaders_diverged_tail_is_truncated() {
    let mut cluster = Cluster::start(30_000).await;
    cluster.create("fo", "2").await;
    let (leader, mut conn) = cluster.leader_conn("fo").await;
    assert_eq!(leader, 2);
    assert_eq!(produce_acks(&mut conn, "fo", -1, &["a", "b"]).await, (0, 0));
    let old_epoch = cluster.meta("fo").leader_epoch;

    // Followers stop fetching (within the lag time, so they stay in the ISR);
    // the leader takes acks=1 writes no follower has: a tail that will diverge.
    cluster.broker(1).broker.pause_replica_fetching(true);
    cluster.broker(3).broker.pause_replica_fetching(true);
    assert_eq!(
        produce_acks(&mut conn, "fo", 1, &["lost1", "lost2"]).await,
        (0, 2)
    );
    assert_eq!(cluster.log(2, "fo").log_end_offset(), 4);
    drop(conn);
    let dir = cluster.stop(2).await;
    cluster.broker(1).broker.pause_replica_fetching(false);
    cluster.broker(3).broker.pause_replica_fetching(false);

    // The controller elects a new leader from the ISR; producing continues there.
    wait_until("a new leader", || {
        let m = cluster.meta("fo");
        m.leader != 2 && m.leader != runnel_meta::NO_LEADER && m.leader_epoch > old_epoch
    })
    .await;
    let (new_leader, _) = cluster.leader_conn("fo").await;
    let mut conn = cluster.broker(new_leader).connect().await;
    let mut produced = None;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while produced.is_none() {
        // Until the new leader sees its own election it answers NOT_LEADER_OR_FOLLOWER.
        let (code, base) = produce_acks(&mut conn, "fo", 1, &["new1", "new2", "new3"]).await;
        if code == 0 {
            produced = Some(base);
        } else {
            assert!(tokio::time::Instant::now() < deadline, "error {code}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(
        produced,
        Some(2),
        "the new leader continues after the committed records"
    );

    // The old leader comes back as a follower: its epoch-`old` tail (lost1,
    // lost2) diverges and is truncated before it copies the new leader's data.
    cluster.restart(2, dir).await;
    wait_until("old leader to hold the new leader's log", || {
        cluster.log(2, "fo").log_end_offset() == 5
            && log_values(&cluster.log(2, "fo")) == log_values(&cluster.log(new_leader, "fo"))
    })
    .await;
    let values: Vec<String> = log_values(&cluster.log(2, "fo"))
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, vec!["a", "b", "new1", "new2", "new3"]);
}

#[tokio::test]
async fn offset_for_leader_epoch_answers_from_the_epoch_cache_with_epoch_checks() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "ofle", 1, &[]).await;
    assert_eq!(
        produce(&mut conn, "ofle", 0, batch(&["a", "b", "c"], 1))
            .await
            .0,
        0
    );
    let epoch = broker
        .broker
        .partition_meta("ofle", 0)
        .unwrap()
        .leader_epoch;
    let request = |current: i32, asked: i32| {
        use kafka_protocol::messages::offset_for_leader_epoch_request::{
            OffsetForLeaderPartition, OffsetForLeaderTopic,
        };
        OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(name("ofle"))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(current)
                    .with_leader_epoch(asked)])])
    };
    let answer = |r: OffsetForLeaderEpochResponse| r.topics[0].partitions[0].clone();
    let latest = answer(conn.send(&request(epoch, epoch), 4).await);
    assert_eq!(
        (latest.error_code, latest.leader_epoch, latest.end_offset),
        (0, epoch, 3)
    );
    let unknown = answer(conn.send(&request(-1, epoch + 5), 4).await);
    assert_eq!(
        (unknown.error_code, unknown.leader_epoch, unknown.end_offset),
        (0, -1, -1)
    );
    let newer = answer(conn.send(&request(epoch + 1, epoch), 4).await);
    assert_eq!(newer.error_code, 75, "UNKNOWN_LEADER_EPOCH");
    if epoch > 0 {
        let older = answer(conn.send(&request(epoch - 1, epoch), 4).await);
        assert_eq!(older.error_code, 74, "FENCED_LEADER_EPOCH");
    }
    // Fetch applies the same checks.
    let fetch_with_epoch = |current: i32| {
        let mut req = fetch_request("ofle", 0, 0, 0, 0);
        req.topics[0].partitions[0].current_leader_epoch = current;
        req
    };
    let r = conn.send(&fetch_with_epoch(epoch + 1), 11).await;
    assert_eq!(
        r.responses[0].partitions[0].error_code, 75,
        "UNKNOWN_LEADER_EPOCH"
    );
    let r = conn.send(&fetch_with_epoch(epoch), 11).await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    assert_eq!(r.responses[0].partitions[0].high_watermark, 3);
}

/// Produces with acks=all and a request timeout; returns the error code.
async fn produce_all_with_timeout(conn: &mut Conn, topic: &str, timeout_ms: i32, v: &str) -> i16 {
    let request = produce_request(topic, 0, -1, batch(&[v], 1000)).with_timeout_ms(timeout_ms);
    let response = conn.send(&request, 9).await;
    response.responses[0].partition_responses[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumers_see_only_committed_records_and_acks_all_times_out_without_the_isr() {
    let cluster = Cluster::start(30_000).await;
    cluster.create("hw", "2").await;
    let (_, mut conn) = cluster.leader_conn("hw").await;
    assert_eq!(produce_acks(&mut conn, "hw", -1, &["a"]).await, (0, 0));
    cluster.broker(1).broker.pause_replica_fetching(true);
    cluster.broker(3).broker.pause_replica_fetching(true);
    // Written on the leader only: not committed, so invisible to consumers.
    assert_eq!(produce_acks(&mut conn, "hw", 1, &["b"]).await, (0, 1));
    let fetched = fetch(&mut conn, "hw", 0, 0).await;
    assert_eq!(fetched.high_watermark, 1);
    assert_eq!(
        decode_values(fetched.records.unwrap()),
        vec![(0, "a".to_string())]
    );
    // The ISR is still complete (within the lag time) but does not fetch:
    // acks=all cannot complete within the request timeout.
    assert_eq!(
        produce_all_with_timeout(&mut conn, "hw", 300, "c").await,
        7,
        "REQUEST_TIMED_OUT"
    );
    cluster.broker(1).broker.pause_replica_fetching(false);
    cluster.broker(3).broker.pause_replica_fetching(false);
    wait_until("followers to catch up", || {
        cluster.log(2, "hw").high_watermark() == 3
    })
    .await;
    let fetched = fetch(&mut conn, "hw", 0, 0).await;
    assert_eq!(fetched.high_watermark, 3);
    assert_eq!(decode_values(fetched.records.unwrap()).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acks_all_fails_after_append_when_the_isr_shrinks_below_min_insync_while_waiting() {
    let cluster = Cluster::start(800).await;
    cluster.create("after", "2").await;
    let (_, mut conn) = cluster.leader_conn("after").await;
    assert_eq!(produce_acks(&mut conn, "after", -1, &["a"]).await, (0, 0));
    cluster.broker(1).broker.pause_replica_fetching(true);
    cluster.broker(3).broker.pause_replica_fetching(true);
    // Accepted (ISR of 3 at append time), then the followers are shrunk out:
    // the batch commits on the lone leader, below min.insync.replicas.
    let code = produce_all_with_timeout(&mut conn, "after", 15_000, "b").await;
    assert_eq!(code, 20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND");
    assert_eq!(cluster.meta_at(2, "after").isr, vec![2]);
}
