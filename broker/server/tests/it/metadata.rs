use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;

use crate::harness::*;

fn metadata_for(topics: &[&str], auto_create: bool) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(name(t))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(auto_create)
}

#[tokio::test]
async fn metadata_lists_this_broker_as_leader_of_every_partition() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "orders", 3, &[]).await;
    let response = user_topics(&mut conn).await;
    assert_eq!(response.brokers.len(), 1);
    assert_eq!(response.brokers[0].port, broker.addr.port() as i32);
    assert_eq!(response.brokers[0].host.as_str(), "127.0.0.1");
    assert_eq!(response.controller_id.0, 0);
    assert!(response.cluster_id.as_ref().is_some_and(|c| c.len() == 22));
    assert_eq!(response.topics.len(), 1);
    let topic = &response.topics[0];
    assert_eq!(topic.name.as_ref().unwrap().0.as_str(), "orders");
    assert!(!topic.topic_id.is_nil());
    assert_eq!(topic.partitions.len(), 3);
    for p in &topic.partitions {
        assert_eq!(p.leader_id.0, 0);
        assert_eq!(p.replica_nodes, vec![BrokerId(0)]);
        assert_eq!(p.isr_nodes, vec![BrokerId(0)]);
    }
    // v0: an empty list means all topics.
    let v0 = conn
        .send(&MetadataRequest::default().with_topics(Some(vec![])), 0)
        .await;
    let names: Vec<&str> = v0
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().0.as_str())
        .collect();
    // __consumer_offsets is created on the first group request, not at start.
    assert_eq!(names, vec!["orders"]);
}

#[tokio::test]
async fn unknown_topic_is_reported_when_auto_create_is_off() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    let response = conn.send(&metadata_for(&["missing"], true), 12).await;
    assert_eq!(response.topics[0].error_code, 3);
    let again = user_topics(&mut conn).await;
    assert!(again.topics.is_empty(), "nothing may be created");
}

#[tokio::test]
async fn auto_create_creates_requested_topics_with_default_partitions() {
    let broker = TestBroker::start_with(|c| {
        c.auto_create_topics = true;
        c.num_partitions = 2;
    })
    .await;
    let mut conn = broker.connect().await;
    let refused = conn.send(&metadata_for(&["auto"], false), 12).await;
    assert_eq!(
        refused.topics[0].error_code, 3,
        "client disallowed auto-creation"
    );
    let response = conn.send(&metadata_for(&["auto"], true), 12).await;
    assert_eq!(response.topics[0].error_code, 0);
    assert_eq!(response.topics[0].partitions.len(), 2);
}

#[tokio::test]
async fn invalid_topic_name_in_metadata_is_invalid_topic_exception() {
    let broker = TestBroker::start_with(|c| c.auto_create_topics = true).await;
    let mut conn = broker.connect().await;
    let response = conn.send(&metadata_for(&["bad/name"], true), 12).await;
    assert_eq!(response.topics[0].error_code, 17);
}

#[tokio::test]
async fn advertised_address_is_used_in_metadata() {
    let broker =
        TestBroker::start_with(|c| c.advertised_address = Some("kafka.example:19092".into())).await;
    let mut conn = broker.connect().await;
    let response = user_topics(&mut conn).await;
    assert_eq!(response.brokers[0].host.as_str(), "kafka.example");
    assert_eq!(response.brokers[0].port, 19092);
}
