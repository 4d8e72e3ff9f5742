use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::harness::*;

#[tokio::test]
async fn create_topics_validates_names_partitions_replication_and_configs() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    let cases: Vec<(CreateTopicsRequest, i16)> = vec![
        (create_topic_request("bad name", 1, &[]), 17),
        (create_topic_request("..", 1, &[]), 17),
        (create_topic_request(&"x".repeat(250), 1, &[]), 17),
        (create_topic_request("zero", 0, &[]), 37),
        (create_topic_request("huge", 1_000_000, &[]), 37),
        (
            create_topic_request("cfg", 1, &[("retention.hours", "1")]),
            40,
        ),
        (
            create_topic_request("cfg", 1, &[("retention.ms", "soon")]),
            40,
        ),
        (
            create_topic_request("cfg", 1, &[("cleanup.policy", "shred")]),
            40,
        ),
    ];
    for (request, code) in cases {
        let response = conn.send(&request, 7).await;
        assert_eq!(
            response.topics[0].error_code, code,
            "{:?}",
            response.topics[0].name
        );
        assert!(response.topics[0].error_message.is_some());
    }
    let mut rf3 = create_topic_request("rf3", 1, &[]);
    rf3.topics[0].replication_factor = 3;
    let response = conn.send(&rf3, 7).await;
    assert_eq!(response.topics[0].error_code, 38);
    assert!(response.topics[0]
        .error_message
        .as_ref()
        .unwrap()
        .contains("1 broker"));
    let meta = user_topics(&mut conn).await;
    assert!(
        meta.topics.is_empty(),
        "no failed request may create anything"
    );
}

#[tokio::test]
async fn create_topics_validate_only_creates_nothing_and_duplicates_are_refused() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    let mut request = create_topic_request("dry", 3, &[("retention.ms", "1000")]);
    request.validate_only = true;
    let response = conn.send(&request, 7).await;
    assert_eq!(response.topics[0].error_code, 0);
    assert_eq!(response.topics[0].num_partitions, 3);
    let meta = user_topics(&mut conn).await;
    assert!(meta.topics.is_empty());
    let response = conn
        .send(
            &create_topic_request("real", -1, &[("retention.ms", "1000")]),
            7,
        )
        .await;
    let t = &response.topics[0];
    assert_eq!(
        (t.error_code, t.num_partitions, t.replication_factor),
        (0, 1, 1)
    );
    assert!(!t.topic_id.is_nil());
    let retention = t
        .configs
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(retention.value.as_ref().unwrap().as_str(), "1000");
    assert_eq!(retention.config_source, 1);
    let again = conn.send(&create_topic_request("real", 1, &[]), 7).await;
    assert_eq!(again.topics[0].error_code, 36);
}

fn describe(topic: &str, keys: Option<&[&str]>) -> DescribeConfigsRequest {
    DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.into()))
            .with_configuration_keys(keys.map(|k| {
                k.iter()
                    .map(|s| StrBytes::from_string(s.to_string()))
                    .collect()
            }))])
}

fn config_value(r: &DescribeConfigsResponse, key: &str) -> (String, i8) {
    let c = r.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .unwrap_or_else(|| panic!("{key} missing"));
    (c.value.as_ref().unwrap().to_string(), c.config_source)
}

#[tokio::test]
async fn describe_configs_reports_values_and_sources() {
    let broker = TestBroker::start_with(|c| c.log_retention_bytes = 5_000_000).await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "dc", 1, &[("retention.ms", "12345")]).await;
    let r = conn.send(&describe("dc", None), 4).await;
    assert_eq!(r.results[0].error_code, 0);
    assert_eq!(
        config_value(&r, "retention.ms"),
        ("12345".into(), 1),
        "override = DYNAMIC_TOPIC_CONFIG"
    );
    assert_eq!(
        config_value(&r, "retention.bytes"),
        ("5000000".into(), 4),
        "broker setting = STATIC_BROKER_CONFIG"
    );
    assert_eq!(
        config_value(&r, "cleanup.policy"),
        ("delete".into(), 5),
        "built-in = DEFAULT_CONFIG"
    );
    assert_eq!(config_value(&r, "min.insync.replicas"), ("1".into(), 5));
    let retention = r.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(retention.config_type, 5, "LONG");
    assert!(retention.documentation.is_some());
    assert_eq!(retention.synonyms[0].source, 1);
    assert!(retention
        .synonyms
        .iter()
        .any(|s| s.name.as_str() == "log.retention.ms"));
    let filtered = conn
        .send(&describe("dc", Some(&["segment.bytes"])), 4)
        .await;
    assert_eq!(filtered.results[0].configs.len(), 1);
    let missing = conn.send(&describe("nope", None), 4).await;
    assert_eq!(missing.results[0].error_code, 3);
    let broker_res =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("0"))
            .with_configuration_keys(None)]);
    let r = conn.send(&broker_res, 4).await;
    assert_eq!(r.results[0].error_code, 0);
    let (value, source) = config_value(&r, "log.retention.bytes");
    assert_eq!(
        (value.as_str(), source),
        ("5000000", 4),
        "set in config = STATIC_BROKER_CONFIG"
    );
    assert_eq!(
        config_value(&r, "log.segment.bytes"),
        ("1073741824".into(), 5),
        "not set = DEFAULT_CONFIG"
    );
    for kafka_name in [
        "node.id",
        "broker.id",
        "log.dirs",
        "log.retention.ms",
        "log.roll.ms",
        "message.max.bytes",
        "num.partitions",
        "default.replication.factor",
        "auto.create.topics.enable",
        "socket.request.max.bytes",
        "offsets.topic.num.partitions",
        "offsets.retention.minutes",
        "group.initial.rebalance.delay.ms",
        "group.min.session.timeout.ms",
        "group.max.session.timeout.ms",
    ] {
        config_value(&r, kafka_name);
    }
    assert_eq!(config_value(&r, "broker.id").0, "0");
    let names: Vec<&str> = r.results[0]
        .configs
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    for snake in [
        "log_retention_bytes",
        "log_segment_bytes",
        "node_id",
        "num_partitions",
    ] {
        assert!(
            !names.contains(&snake),
            "{snake} must be reported under Kafka's name: {names:?}"
        );
    }
    // Static configs are read-only; only the dynamic throttle rates can be altered.
    assert!(r.results[0]
        .configs
        .iter()
        .all(|c| c.read_only != c.name.as_str().ends_with(".replication.throttled.rate")));
    // Asking by Kafka's name returns just that config.
    let one =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("0"))
            .with_configuration_keys(Some(vec![StrBytes::from_static_str("log.retention.ms")]))]);
    let r = conn.send(&one, 4).await;
    assert_eq!(r.results[0].configs.len(), 1);
    assert_eq!(r.results[0].configs[0].name.as_str(), "log.retention.ms");
    // The topic config's broker synonym carries the broker's value and source.
    let r = conn
        .send(&describe("dc", Some(&["retention.bytes"])), 4)
        .await;
    let synonyms = &r.results[0].configs[0].synonyms;
    assert!(
        synonyms
            .iter()
            .any(|s| s.name.as_str() == "log.retention.bytes"
                && s.value.as_ref().map(|v| v.to_string()).as_deref() == Some("5000000")
                && s.source == 4),
        "{synonyms:?}"
    );
}

#[tokio::test]
async fn alter_configs_replaces_overrides_and_incremental_edits_them() {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    use kafka_protocol::messages::incremental_alter_configs_request as inc;
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(
        &mut conn,
        "ac",
        1,
        &[("retention.ms", "1000"), ("segment.ms", "5000")],
    )
    .await;
    let alter = |validate_only: bool, pairs: &[(&str, &str)]| {
        AlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("ac"))
                .with_configs(
                    pairs
                        .iter()
                        .map(|(k, v)| {
                            AlterableConfig::default()
                                .with_name(StrBytes::from_string(k.to_string()))
                                .with_value(Some(StrBytes::from_string(v.to_string())))
                        })
                        .collect(),
                )])
    };
    let r = conn.send(&alter(true, &[("retention.ms", "7")]), 2).await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(
        config_value(&conn.send(&describe("ac", None), 4).await, "retention.ms").0,
        "1000",
        "validate_only"
    );
    let r = conn.send(&alter(false, &[("retention.ms", "7")]), 2).await;
    assert_eq!(r.responses[0].error_code, 0);
    let d = conn.send(&describe("ac", None), 4).await;
    assert_eq!(config_value(&d, "retention.ms"), ("7".into(), 1));
    assert_eq!(
        config_value(&d, "segment.ms").1,
        5,
        "AlterConfigs replaces the whole override set"
    );
    let r = conn.send(&alter(false, &[("bogus.key", "7")]), 2).await;
    assert_eq!(r.responses[0].error_code, 40);

    let op = |name: &str, operation: i8, value: Option<&str>| {
        inc::AlterableConfig::default()
            .with_name(StrBytes::from_string(name.into()))
            .with_config_operation(operation)
            .with_value(value.map(|v| StrBytes::from_string(v.into())))
    };
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        inc::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("ac"))
            .with_configs(vec![
                op("retention.ms", 1, None),
                op("max.message.bytes", 0, Some("300")),
                op("cleanup.policy", 2, Some("compact")),
            ]),
    ]);
    let r = conn.send(&request, 1).await;
    assert_eq!(
        r.responses[0].error_code, 0,
        "{:?}",
        r.responses[0].error_message
    );
    let d = conn.send(&describe("ac", None), 4).await;
    assert_eq!(config_value(&d, "retention.ms").1, 5);
    assert_eq!(config_value(&d, "cleanup.policy").0, "delete,compact");
    // Applied live: the new max.message.bytes is enforced at once.
    let big = "z".repeat(600);
    assert_eq!(
        produce(&mut conn, "ac", 0, batch(&[big.as_str()], 1))
            .await
            .0,
        10
    );
    let bad = IncrementalAlterConfigsRequest::default().with_resources(vec![
        inc::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("ac"))
            .with_configs(vec![op("message.timestamp.type", 0, Some("Whenever"))]),
    ]);
    assert_eq!(conn.send(&bad, 1).await.responses[0].error_code, 40);
}

#[tokio::test]
async fn create_partitions_only_grows() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "grow", 2, &[]).await;
    let request = |count: i32, validate_only: bool| {
        CreatePartitionsRequest::default()
            .with_validate_only(validate_only)
            .with_timeout_ms(5000)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(name("grow"))
                .with_count(count)
                .with_assignments(None)])
    };
    assert_eq!(
        conn.send(&request(5, true), 3).await.results[0].error_code,
        0
    );
    let count = |m: &MetadataResponse| m.topics[0].partitions.len();
    let meta = user_topics(&mut conn).await;
    assert_eq!(count(&meta), 2, "validate_only must not grow");
    assert_eq!(
        conn.send(&request(5, false), 3).await.results[0].error_code,
        0
    );
    assert_eq!(
        conn.send(&request(3, false), 3).await.results[0].error_code,
        37
    );
    assert_eq!(
        conn.send(&request(5, false), 3).await.results[0].error_code,
        37
    );
    let meta = user_topics(&mut conn).await;
    assert_eq!(count(&meta), 5);
    assert_eq!(
        produce(&mut conn, "grow", 4, batch(&["new"], 1)).await,
        (0, 0)
    );
}

#[tokio::test]
async fn deleted_topic_can_be_recreated_with_fresh_offsets() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "gone", 1, &[]).await;
    produce(&mut conn, "gone", 0, batch(&["a", "b", "c"], 1)).await;
    let r = conn
        .send(
            &DeleteTopicsRequest::default()
                .with_topic_names(vec![name("gone")])
                .with_timeout_ms(5000),
            5,
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    assert!(
        !broker.dir.path().join("gone-0").exists(),
        "partition directory must be removed"
    );
    let r = conn
        .send(
            &DeleteTopicsRequest::default()
                .with_topic_names(vec![name("gone")])
                .with_timeout_ms(5000),
            5,
        )
        .await;
    assert_eq!(r.responses[0].error_code, 3);
    create_topic(&mut conn, "gone", 1, &[]).await;
    assert_eq!(
        produce(&mut conn, "gone", 0, batch(&["fresh"], 1)).await,
        (0, 0)
    );
    // By topic id (v6).
    let meta = user_topics(&mut conn).await;
    let id = meta.topics[0].topic_id;
    let r = conn
        .send(
            &DeleteTopicsRequest::default()
                .with_topics(vec![DeleteTopicState::default().with_topic_id(id)]),
            6,
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(r.responses[0].name.as_ref().unwrap().0.as_str(), "gone");
    let r = conn
        .send(
            &DeleteTopicsRequest::default()
                .with_topics(vec![DeleteTopicState::default().with_topic_id(id)]),
            6,
        )
        .await;
    assert_eq!(r.responses[0].error_code, 100);
}

#[tokio::test]
async fn delete_records_moves_the_log_start_offset() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "dr", 1, &[]).await;
    for v in ["0", "1", "2", "3"] {
        produce(&mut conn, "dr", 0, batch(&[v], 1)).await;
    }
    let request = |offset: i64| {
        DeleteRecordsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(name("dr"))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(offset)])])
    };
    let r = conn.send(&request(2), 2).await;
    let p = &r.topics[0].partitions[0];
    assert_eq!((p.error_code, p.low_watermark), (0, 2));
    let f = fetch(&mut conn, "dr", 0, 2).await;
    assert_eq!(f.log_start_offset, 2);
    assert_eq!(
        fetch(&mut conn, "dr", 0, 0).await.error_code,
        1,
        "below log start is out of range"
    );
    assert_eq!(
        conn.send(&request(99), 2).await.topics[0].partitions[0].error_code,
        1
    );
    let r = conn.send(&request(-1), 2).await;
    assert_eq!(
        r.topics[0].partitions[0].low_watermark, 4,
        "-1 means the high watermark"
    );
}

#[tokio::test]
async fn describe_cluster_returns_a_stable_cluster_id() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    let r = conn.send(&DescribeClusterRequest::default(), 1).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.cluster_id.len(), 22);
    assert_eq!(r.controller_id.0, 0);
    assert_eq!(r.brokers.len(), 1);
    assert_eq!(r.brokers[0].port, broker.addr.port() as i32);
    let meta = user_topics(&mut conn).await;
    assert_eq!(
        meta.cluster_id.as_ref().unwrap().as_str(),
        r.cluster_id.as_str()
    );
}

#[tokio::test]
async fn background_retention_deletes_old_segments() {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let broker = TestBroker::start_with(|c| c.log_retention_check_interval_ms = 50).await;
    let mut conn = broker.connect().await;
    create_topic(
        &mut conn,
        "old",
        1,
        &[("segment.bytes", "1024"), ("retention.ms", "60000")],
    )
    .await;
    let value = "r".repeat(700);
    // Timestamps from 1970: far older than retention.ms, so every closed segment expires.
    for _ in 0..6 {
        assert_eq!(
            produce(&mut conn, "old", 0, batch(&[value.as_str()], 1))
                .await
                .0,
            0
        );
    }
    let earliest = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name("old"))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-2)])]);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let r = conn.send(&earliest, 7).await;
        let start = r.topics[0].partitions[0].offset;
        if start > 0 {
            assert!(start <= 6);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention never advanced the log start offset"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The newest data stays readable.
    let p = fetch(&mut conn, "old", 0, 5).await;
    assert_eq!(p.error_code, 0);
    assert_eq!(p.high_watermark, 6);
}

/// This broker's applied index of the metadata log (DescribeQuorum's log end
/// offset of the voter that answers): one more per quorum log entry.
async fn metadata_log_end(conn: &mut Conn) -> i64 {
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(name("__cluster_metadata"))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let response = conn.send(&request, 1).await;
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.current_voters.len(), 1, "a one-voter quorum");
    partition.current_voters[0].log_end_offset
}

#[tokio::test]
async fn create_topics_with_fifty_topics_is_one_metadata_log_entry() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    // Settle the quorum first: the first Metadata request creates __consumer_offsets.
    create_topic(&mut conn, "warm-up", 1, &[]).await;
    assert_eq!(user_topics(&mut conn).await.topics.len(), 1);
    let before = metadata_log_end(&mut conn).await;

    let mut request = create_topic_request("bad name", 1, &[]);
    for i in 0..50 {
        let mut topic = create_topic_request(&format!("batch-{i:02}"), 2, &[]).topics;
        request.topics.append(&mut topic);
    }
    request
        .topics
        .append(&mut create_topic_request("warm-up", 1, &[]).topics);
    let response = conn.send(&request, 7).await;
    let codes: Vec<(String, i16)> = response
        .topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.error_code))
        .collect();
    assert_eq!(codes.len(), 52, "one result per topic, in request order");
    assert_eq!(codes[0], ("bad name".to_string(), 17));
    for (i, (name, code)) in codes[1..51].iter().enumerate() {
        assert_eq!(
            (name.as_str(), *code),
            (format!("batch-{i:02}").as_str(), 0)
        );
    }
    assert_eq!(codes[51], ("warm-up".to_string(), 36));
    assert!(response.topics[1..51]
        .iter()
        .all(|t| t.num_partitions == 2 && !t.topic_id.is_nil() && t.configs.is_some()));

    assert_eq!(
        metadata_log_end(&mut conn).await,
        before + 1,
        "the 50 topics of one request are one quorum log entry"
    );
    let meta = user_topics(&mut conn).await;
    assert_eq!(meta.topics.len(), 51);
    for t in meta
        .topics
        .iter()
        .filter(|t| t.name.as_ref().unwrap().0.starts_with("batch-"))
    {
        assert_eq!((t.error_code, t.partitions.len()), (0, 2));
    }
}

#[tokio::test]
async fn create_topics_with_more_than_a_thousand_topics_is_split_into_entries_of_a_thousand() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "warm-up", 1, &[]).await;
    user_topics(&mut conn).await;
    let before = metadata_log_end(&mut conn).await;
    let mut request = CreateTopicsRequest::default().with_timeout_ms(30_000);
    for i in 0..1001 {
        let mut topic = create_topic_request(&format!("many-{i:04}"), 1, &[]).topics;
        request.topics.append(&mut topic);
    }
    let response = conn.send(&request, 7).await;
    assert_eq!(response.topics.len(), 1001);
    assert!(response.topics.iter().all(|t| t.error_code == 0));
    assert_eq!(metadata_log_end(&mut conn).await, before + 2);
    assert_eq!(user_topics(&mut conn).await.topics.len(), 1002);
}
