//! Several brokers in one process joined through the metadata quorum: topics
//! created through any broker, placement, broker loss, and the one-time
//! import of a pre-quorum single broker's topics.json.

use std::collections::BTreeSet;
use std::time::Duration;

use kafka_protocol::messages::*;

use crate::harness::*;

/// Short sessions so a lost broker is fenced quickly.
fn cluster_config(c: &mut runnel_server::BrokerConfig, node_id: i32, seeds: Vec<String>) {
    c.node_id = node_id;
    c.seeds = seeds;
    c.broker_heartbeat_interval_ms = 100;
    c.broker_session_timeout_ms = 1500;
    c.offsets_topic_num_partitions = 3;
}

async fn start_cluster(n: i32) -> Vec<TestBroker> {
    let first = TestBroker::start_with(|c| cluster_config(c, 0, Vec::new())).await;
    let seed = first.broker.controller_addr().to_string();
    let mut brokers = vec![first];
    for id in 1..n {
        let seeds = vec![seed.clone()];
        brokers.push(TestBroker::start_with(|c| cluster_config(c, id, seeds)).await);
    }
    brokers
}

/// Polls Metadata on `broker` until `done` holds for the response.
async fn metadata_until(
    broker: &TestBroker,
    what: &str,
    done: impl Fn(&MetadataResponse) -> bool,
) -> MetadataResponse {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut conn = broker.connect().await;
    loop {
        let meta = user_topics(&mut conn).await;
        if done(&meta) {
            return meta;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: last metadata {meta:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn create_with_rf(topic: &str, partitions: i32, rf: i16) -> CreateTopicsRequest {
    let mut request = create_topic_request(topic, partitions, &[]);
    request.topics[0].replication_factor = rf;
    request
}

#[tokio::test]
async fn a_topic_created_through_one_broker_is_described_by_every_broker_with_spread_leaders() {
    let brokers = start_cluster(3).await;
    let mut conn = brokers[1].connect().await;
    let response = conn.send(&create_with_rf("spread", 3, 3), 7).await;
    assert_eq!(
        response.topics[0].error_code, 0,
        "{:?}",
        response.topics[0].error_message
    );
    assert_eq!(response.topics[0].replication_factor, 3);
    for broker in &brokers {
        let meta = metadata_until(broker, "topic visible with 3 brokers", |m| {
            m.brokers.len() == 3 && m.topics.iter().any(|t| t.name == Some(name("spread")))
        })
        .await;
        let ids: BTreeSet<i32> = meta.brokers.iter().map(|b| b.node_id.0).collect();
        assert_eq!(ids, BTreeSet::from([0, 1, 2]));
        assert!(meta.controller_id.0 >= 0, "a controller is known");
        let topic = &meta.topics[0];
        let leaders: BTreeSet<i32> = topic.partitions.iter().map(|p| p.leader_id.0).collect();
        assert_eq!(leaders, BTreeSet::from([0, 1, 2]), "one leader per broker");
        for p in &topic.partitions {
            let replicas: BTreeSet<i32> = p.replica_nodes.iter().map(|b| b.0).collect();
            assert_eq!(replicas, BTreeSet::from([0, 1, 2]));
            assert!(p.isr_nodes.contains(&p.leader_id), "{p:?}");
            assert!(p.offline_replicas.is_empty());
        }
    }
    // Every broker holds a local replica of every partition.
    for broker in &brokers {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while broker.broker.open_partitions("spread").unwrap_or(0) < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "replicas not opened"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn replication_factor_above_the_broker_count_is_invalid() {
    let brokers = start_cluster(3).await;
    metadata_until(&brokers[0], "3 brokers registered", |m| {
        m.brokers.len() == 3
    })
    .await;
    let mut conn = brokers[0].connect().await;
    let response = conn.send(&create_with_rf("rf4", 1, 4), 7).await;
    assert_eq!(
        response.topics[0].error_code, 38,
        "INVALID_REPLICATION_FACTOR"
    );
    let mut validate = create_with_rf("rf4", 1, 4);
    validate.validate_only = true;
    let response = conn.send(&validate, 7).await;
    assert_eq!(response.topics[0].error_code, 38, "validate_only too");
    assert!(user_topics(&mut conn).await.topics.is_empty());
}

#[tokio::test]
async fn a_stopped_broker_leaves_metadata_and_its_partitions_get_new_leaders() {
    let mut brokers = start_cluster(3).await;
    let mut conn = brokers[0].connect().await;
    let response = conn.send(&create_with_rf("moving", 3, 3), 7).await;
    assert_eq!(response.topics[0].error_code, 0);
    metadata_until(&brokers[0], "leaders on all brokers", |m| {
        m.topics.first().is_some_and(|t| {
            t.partitions
                .iter()
                .map(|p| p.leader_id.0)
                .collect::<BTreeSet<_>>()
                .len()
                == 3
        })
    })
    .await;
    let stopped = brokers.pop().unwrap();
    let gone = stopped.config.node_id;
    stopped.stop().await;
    let meta = metadata_until(
        &brokers[0],
        "stopped broker fenced, partitions moved",
        |m| {
            !m.brokers.iter().any(|b| b.node_id.0 == gone)
                && m.topics[0]
                    .partitions
                    .iter()
                    .all(|p| p.leader_id.0 >= 0 && p.leader_id.0 != gone)
        },
    )
    .await;
    for p in &meta.topics[0].partitions {
        assert!(!p.isr_nodes.iter().any(|b| b.0 == gone), "{p:?}");
        assert!(p.offline_replicas.iter().any(|b| b.0 == gone), "{p:?}");
    }
    // Metadata changes still work with two of three voters.
    let response = conn.send(&create_with_rf("after", 1, 2), 7).await;
    assert_eq!(
        response.topics[0].error_code, 0,
        "{:?}",
        response.topics[0].error_message
    );
}

#[tokio::test]
async fn a_pre_quorum_topics_json_is_imported_with_its_ids_configs_and_data() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "old", 2, &[("retention.ms", "123456")]).await;
    assert_eq!(
        produce(&mut conn, "old", 1, batch(&["a", "b"], 1)).await,
        (0, 0)
    );
    let id = user_topics(&mut conn).await.topics[0].topic_id;
    drop(conn);
    let dir = broker.stop().await;
    // Make the directory look like one written by a broker before the quorum.
    std::fs::remove_dir_all(dir.path().join("__cluster_metadata")).unwrap();
    std::fs::write(
        dir.path().join("topics.json"),
        serde_json::json!({"topics": [{
            "name": "old", "id": id, "partitions": 2,
            "configs": {"retention.ms": "123456"}
        }]})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("producer_ids.json"),
        r#"{"reserved_up_to": 5000}"#,
    )
    .unwrap();
    let broker = TestBroker::start_in(dir, |_| {}).await;
    let mut conn = broker.connect().await;
    let meta = user_topics(&mut conn).await;
    assert_eq!(meta.topics.len(), 1);
    assert_eq!(
        meta.topics[0].topic_id, id,
        "the imported topic keeps its id"
    );
    assert_eq!(meta.topics[0].partitions.len(), 2);
    let p = fetch(&mut conn, "old", 1, 0).await;
    assert_eq!(
        decode_values(p.records.unwrap()),
        vec![(0, "a".to_string()), (1, "b".to_string())]
    );
    let state = broker.broker.cluster();
    assert_eq!(state.topics["old"].configs["retention.ms"], "123456");
    assert!(
        state.next_producer_id >= 5000,
        "reserved producer ids are skipped"
    );
    assert!(!broker.dir.path().join("topics.json").exists());
    assert!(broker.dir.path().join("topics.json.imported").exists());
    // A restart does not import again, and keeps the topic.
    let broker = broker.restart().await;
    let mut conn = broker.connect().await;
    assert_eq!(user_topics(&mut conn).await.topics[0].topic_id, id);
}

fn find_coordinator(group: &str) -> FindCoordinatorRequest {
    FindCoordinatorRequest::default()
        .with_key(kafka_protocol::protocol::StrBytes::from_string(
            group.to_string(),
        ))
        .with_key_type(0)
}

fn standalone_commit(group: &str, topic: &str, offset: i64) -> OffsetCommitRequest {
    use kafka_protocol::messages::offset_commit_request::*;
    OffsetCommitRequest::default()
        .with_group_id(GroupId(kafka_protocol::protocol::StrBytes::from_string(
            group.to_string(),
        )))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)])])
}

#[tokio::test]
async fn the_group_coordinator_is_the_leader_of_the_groups_offsets_partition() {
    let mut brokers = start_cluster(3).await;
    metadata_until(&brokers[0], "3 brokers registered", |m| {
        m.brokers.len() == 3
    })
    .await;
    let mut conn = brokers[1].connect().await;
    let response = conn.send(&create_with_rf("t", 1, 3), 7).await;
    assert_eq!(response.topics[0].error_code, 0);
    let found = conn.send(&find_coordinator("g1"), 3).await;
    assert_eq!(found.error_code, 0, "{:?}", found.error_message);
    let state = brokers[1].broker.cluster();
    let offsets = &state.topics[runnel_server::OFFSETS_TOPIC];
    assert_eq!(
        offsets.partitions[0].replicas.len(),
        3,
        "offsets rf = live brokers"
    );
    let partition = runnel_server::partition_for("g1", offsets.partitions.len() as i32);
    let leader = offsets.partitions[partition as usize].leader;
    assert_eq!(found.node_id.0, leader);
    let coordinator = brokers.iter().find(|b| b.config.node_id == leader).unwrap();
    let other = brokers.iter().find(|b| b.config.node_id != leader).unwrap();
    // The coordinator accepts the commit once its partition is loaded.
    let mut c = coordinator.connect().await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let r = c.send(&standalone_commit("g1", "t", 5), 8).await;
        match r.topics[0].partitions[0].error_code {
            0 => break,
            14 if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            code => panic!("commit at the coordinator failed with {code}"),
        }
    }
    // Any other broker refuses the group: NOT_COORDINATOR.
    let mut o = other.connect().await;
    let r = o.send(&standalone_commit("g1", "t", 6), 8).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 16, "NOT_COORDINATOR");
    // The coordinator's broker goes: another broker becomes the coordinator.
    let index = brokers
        .iter()
        .position(|b| b.config.node_id == leader)
        .unwrap();
    brokers.remove(index).stop().await;
    let mut conn = brokers[0].connect().await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let found = conn.send(&find_coordinator("g1"), 3).await;
        if found.error_code == 0 && found.node_id.0 != leader {
            assert!(brokers.iter().any(|b| b.config.node_id == found.node_id.0));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{found:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn partitions_added_and_topics_deleted_through_one_broker_change_every_replica() {
    let brokers = start_cluster(3).await;
    metadata_until(&brokers[0], "3 brokers registered", |m| {
        m.brokers.len() == 3
    })
    .await;
    let mut conn = brokers[2].connect().await;
    let response = conn.send(&create_with_rf("grow", 1, 3), 7).await;
    assert_eq!(response.topics[0].error_code, 0);
    let grow = CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic::default()
                .with_name(name("grow"))
                .with_count(3),
        ]);
    let response = conn.send(&grow, 3).await;
    assert_eq!(response.results[0].error_code, 0, "{response:?}");
    // Every broker opens a replica of every new partition.
    let held = |b: &TestBroker| b.broker.open_partitions("grow").unwrap_or(0);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while brokers.iter().any(|b| held(b) != 3) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "new partitions not opened everywhere"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delete = DeleteTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topic_names(vec![name("grow")]);
    let response = conn.send(&delete, 4).await;
    assert_eq!(response.responses[0].error_code, 0);
    // Every replica is closed and its directory removed.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let gone = brokers.iter().all(|b| {
            b.broker.open_partitions("grow").is_none()
                && !(0..3).any(|p| b.dir.path().join(format!("grow-{p}")).exists())
        });
        if gone {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replicas of the deleted topic remain"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `done` every 50 ms until it holds or the deadline passes.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_replica_moved_away_while_its_broker_was_down_is_deleted_when_it_returns() {
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    let mut brokers = start_cluster(3).await;
    metadata_until(&brokers[0], "3 brokers registered", |m| {
        m.brokers.len() == 3
    })
    .await;
    let mut conn = brokers[0].connect().await;
    let response = conn.send(&create_with_rf("stray", 1, 2), 7).await;
    assert_eq!(response.topics[0].error_code, 0);
    let replicas = brokers[0]
        .broker
        .cluster()
        .partition("stray", 0)
        .unwrap()
        .replicas
        .clone();
    // Stop a replica other than broker 0 (the test's connection and seed).
    let gone = *replicas.iter().find(|&&r| r != 0).unwrap();
    let stay = *replicas.iter().find(|&&r| r != gone).unwrap();
    let new = (0..3).find(|r| !replicas.contains(r)).unwrap();
    let dir = |b: &TestBroker| b.dir.path().join("stray-0");
    let victim = brokers.remove(usize::try_from(gone).unwrap());
    assert_eq!(victim.config.node_id, gone);
    until("the replica's directory exists", || dir(&victim).exists()).await;
    let controller = victim.broker.controller_addr().to_string();
    let config = victim.config.clone();
    let data = victim.stop().await;
    assert!(data.path().join("stray-0").exists());

    // Move the partition to the two other brokers while `gone` is down.
    let target = vec![BrokerId(stay), BrokerId(new)];
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(name("stray"))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(Some(target))])]);
    let r = conn.send(&request, 0).await;
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert_eq!(r.responses[0].partitions[0].error_code, 0, "{r:?}");
    let first = &brokers[0];
    until(
        "the reassignment to complete without the stopped broker",
        || {
            first
                .broker
                .cluster()
                .partition("stray", 0)
                .is_some_and(|p| {
                    p.adding.is_empty() && p.removing.is_empty() && !p.replicas.contains(&gone)
                })
        },
    )
    .await;

    // Back on its old metadata address, the broker deletes its stray replica.
    let returned = TestBroker::start_in(data, move |c| {
        let path = c.data_dir.clone();
        *c = config;
        c.data_dir = path;
        c.controller_listen = controller;
    })
    .await;
    until("the stray replica's directory to be deleted", || {
        !dir(&returned).exists()
    })
    .await;
    assert_eq!(returned.broker.open_partitions("stray"), Some(0));
    returned.stop().await;
}

/// A topic with one partition on `replicas`, placed by hand.
fn manual_topic(topic: &str, replicas: &[i32]) -> create_topics_request::CreatableTopic {
    create_topics_request::CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(vec![
            create_topics_request::CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(replicas.iter().map(|&b| BrokerId(b)).collect()),
        ])
}

#[tokio::test]
async fn a_topic_the_controller_refuses_fails_alone_and_the_rest_of_the_request_is_created() {
    let mut brokers = start_cluster(3).await;
    metadata_until(&brokers[0], "3 brokers registered", |m| {
        m.brokers.len() == 3
    })
    .await;
    let stopped = brokers.pop().unwrap();
    let gone = stopped.config.node_id;
    stopped.stop().await;
    let meta = metadata_until(&brokers[0], "stopped broker fenced", |m| {
        !m.brokers.iter().any(|b| b.node_id.0 == gone)
    })
    .await;
    // Through the broker that is not the controller, so the entry is forwarded.
    let via = usize::from(meta.controller_id.0 == 0);
    let mut conn = brokers[via].connect().await;
    let mut request = create_with_rf("auto", 2, 2);
    request.topics.push(manual_topic("only-on-fenced", &[gone]));
    request
        .topics
        .push(manual_topic("fenced-and-live", &[gone, 0]));
    // Still registered (only fenced), so the broker's own checks pass it and
    // the state machine is the one to refuse it.
    let response = conn.send(&request, 7).await;
    let outcomes: Vec<(&str, i16)> = response
        .topics
        .iter()
        .map(|t| (t.name.0.as_str(), t.error_code))
        .collect();
    assert_eq!(
        outcomes,
        [("auto", 0), ("only-on-fenced", 39), ("fenced-and-live", 0)],
        "{:?}",
        response.topics[1].error_message
    );
    assert!(response.topics[1]
        .error_message
        .as_ref()
        .is_some_and(|m| m.contains("fenced")));
    assert!(!response.topics[0].topic_id.is_nil() && !response.topics[2].topic_id.is_nil());
    let meta = metadata_until(&brokers[0], "the two created topics", |m| {
        m.topics.len() == 2
    })
    .await;
    let names: BTreeSet<String> = meta
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().0.to_string())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["auto".to_string(), "fenced-and-live".to_string()])
    );
}
