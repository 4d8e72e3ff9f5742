//! Brokers authenticate to each other with SASL when the inter-broker listener
//! is SASL_PLAINTEXT: followers with the cluster's credentials replicate, a
//! broker with a wrong password cannot (it never catches up and leaves the ISR).

use std::path::Path;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment;
use kafka_protocol::messages::BrokerId;
use runnel_server::BrokerConfig;
use tokio::net::TcpStream;

use crate::harness::*;
use crate::listeners::{listener, with_listeners};

fn sasl_inter_broker(c: &mut BrokerConfig, node_id: i32, password_file: &Path) {
    c.node_id = node_id;
    c.broker_heartbeat_interval_ms = 100;
    c.broker_session_timeout_ms = 1500;
    c.replica_lag_time_max_ms = 1500;
    with_listeners(c, &["PLAINTEXT://127.0.0.1:0", "INTERNAL://127.0.0.1:0"]);
    c.listener_security_protocol_map = vec!["INTERNAL:SASL_PLAINTEXT".into()];
    c.inter_broker_listener_name = Some("INTERNAL".into());
    c.sasl_bootstrap_user = Some("admin".into());
    c.sasl_bootstrap_password_file = Some(password_file.display().to_string());
}

#[tokio::test]
async fn followers_replicate_over_a_sasl_inter_broker_listener_only_with_the_right_password() {
    let secrets = tempfile::tempdir().expect("tempdir");
    let right = secrets.path().join("admin");
    let wrong = secrets.path().join("wrong");
    std::fs::write(&right, "s3cret\n").expect("write");
    std::fs::write(&wrong, "not-it\n").expect("write");

    let first = TestBroker::start_with(|c| sasl_inter_broker(c, 0, &right)).await;
    let seed = first.broker.controller_addr().to_string();
    let second = TestBroker::start_with(|c| {
        sasl_inter_broker(c, 1, &right);
        c.seeds = vec![seed.clone()];
    })
    .await;
    let third = TestBroker::start_with(|c| {
        sasl_inter_broker(c, 2, &wrong);
        c.seeds = vec![seed.clone()];
    })
    .await;

    let plain0 = listener(&first, "PLAINTEXT");
    let mut conn = Conn::from_stream(TcpStream::connect(plain0).await.expect("connect"));
    create_on_three(&mut conn, "sasl-replicated").await;

    // acks=all completes once the ISR is the replicas that fetch: broker 2 cannot
    // authenticate, so it falls out of the ISR after replica_lag_time_max_ms.
    let (error, offset) = produce(
        &mut conn,
        "sasl-replicated",
        0,
        batch(&["v"], 1_700_000_000_000),
    )
    .await;
    assert_eq!((error, offset), (0, 0));
    wait_isr(&mut conn, &[0, 1]).await;
    let end = |b: &TestBroker| {
        b.broker
            .partition_log("sasl-replicated", 0)
            .map(|l| l.log_end_offset())
    };
    assert_eq!(end(&second), Some(1), "broker 1 replicated the record");
    assert_eq!(end(&third), Some(0), "broker 2 could not fetch");
}

/// Waits until brokers 0, 1 and 2 are registered, then creates `topic` with one
/// partition that broker 0 leads and 1 and 2 follow.
pub(crate) async fn create_on_three(conn: &mut Conn, topic: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while user_topics(conn).await.brokers.len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "3 brokers never registered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut request = create_topic_request(topic, 1, &[]);
    request.topics[0].num_partitions = -1;
    request.topics[0].assignments = vec![CreatableReplicaAssignment::default()
        .with_partition_index(0)
        .with_broker_ids(vec![BrokerId(0), BrokerId(1), BrokerId(2)])];
    let created = conn.send(&request, 7).await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
}

/// Waits until the ISR of the first user topic's partition 0 is `want`.
pub(crate) async fn wait_isr(conn: &mut Conn, want: &[i32]) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let meta = user_topics(conn).await;
        let isr: Vec<i32> = meta.topics[0].partitions[0]
            .isr_nodes
            .iter()
            .map(|b| b.0)
            .collect();
        if isr == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "ISR stays {isr:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
