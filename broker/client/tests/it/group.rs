//! The group member against a scripted coordinator: the MEMBER_ID_REQUIRED
//! retry, the leader's range assignment (decoding a Java-style v3
//! subscription of another member), resuming from committed offsets with
//! auto.offset.reset for the rest, rejoining when a heartbeat says a
//! rebalance started, and commit + leave on close.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, ConsumerProtocolSubscription, FindCoordinatorRequest,
    FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use runnel_client::group::protocol::{decode_assignment, decode_subscription};
use runnel_client::{
    Client, ClientConfig, GroupConsumer, GroupConsumerConfig, OffsetReset, TopicPartitions,
};
use tokio::net::{TcpListener, TcpStream};

use crate::fake::{range, read_request, write_response};

const PARTITIONS: i32 = 4;
const REBALANCE_IN_PROGRESS: i16 = 27;
const MEMBER_ID_REQUIRED: i16 = 79;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;

/// What the fake coordinator saw and how it should answer.
#[derive(Debug, Default)]
struct Script {
    /// Member id of each JoinGroup, in order.
    joins: Vec<String>,
    /// (member id, assignment) pairs the leader sent in each SyncGroup.
    syncs: Vec<Vec<(String, Vec<TopicPartitions>)>>,
    /// (generation, member, [(partition, offset)]) of each OffsetCommit.
    commits: Vec<Commit>,
    /// Member ids that left.
    leaves: Vec<String>,
    /// Current generation handed out by JoinGroup.
    generation: i32,
    /// Answer heartbeats of this generation with REBALANCE_IN_PROGRESS.
    rebalance_generation: Option<i32>,
    /// Heartbeats seen.
    heartbeats: usize,
    /// FindCoordinator requests seen.
    finds: usize,
    /// Answer this many FindCoordinator requests with COORDINATOR_NOT_AVAILABLE.
    find_failures: usize,
    /// Answer this many SyncGroup requests with REBALANCE_IN_PROGRESS.
    sync_failures: usize,
}

type Shared = Arc<Mutex<Script>>;
/// (generation, member id, [(partition, offset)]) of one OffsetCommit.
type Commit = (i32, String, Vec<(i32, i64)>);

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A second member's subscription in the Java client's v3 layout.
fn java_subscription() -> Bytes {
    let msg = ConsumerProtocolSubscription::default()
        .with_topics(vec![s("t")])
        .with_generation_id(-1)
        .with_rack_id(None);
    let mut buf = BytesMut::new();
    buf.put_i16(3);
    msg.encode(&mut buf, 3).expect("encode");
    buf.freeze()
}

async fn serve(mut stream: TcpStream, port: u16, script: Shared) {
    while let Some((header, mut body)) = read_request(&mut stream).await {
        let version = header.request_api_version;
        let id = header.correlation_id;
        let api = ApiKey::try_from(header.request_api_key).expect("api key");
        match api {
            ApiKey::ApiVersions => {
                let resp = ApiVersionsResponse::default().with_api_keys(vec![
                    range(ApiKey::ApiVersions, 0, 3),
                    range(ApiKey::Metadata, 0, 12),
                    range(ApiKey::ListOffsets, 1, 7),
                    range(ApiKey::FindCoordinator, 0, 4),
                    range(ApiKey::JoinGroup, 0, 9),
                    range(ApiKey::SyncGroup, 0, 5),
                    range(ApiKey::Heartbeat, 0, 4),
                    range(ApiKey::LeaveGroup, 0, 5),
                    range(ApiKey::OffsetFetch, 0, 9),
                    range(ApiKey::OffsetCommit, 0, 9),
                ]);
                write_response(&mut stream, api, version, id, &resp).await;
            }
            ApiKey::Metadata => {
                let partitions = (0..PARTITIONS)
                    .map(|p| {
                        MetadataResponsePartition::default()
                            .with_partition_index(p)
                            .with_leader_id(0.into())
                            .with_replica_nodes(vec![0.into()])
                            .with_isr_nodes(vec![0.into()])
                    })
                    .collect();
                let resp = MetadataResponse::default()
                    .with_brokers(vec![MetadataResponseBroker::default()
                        .with_node_id(0.into())
                        .with_host(s("127.0.0.1"))
                        .with_port(i32::from(port))])
                    .with_controller_id(0.into())
                    .with_topics(vec![MetadataResponseTopic::default()
                        .with_name(Some(TopicName(s("t"))))
                        .with_partitions(partitions)]);
                write_response(&mut stream, api, version, id, &resp).await;
            }
            ApiKey::FindCoordinator => {
                let req = FindCoordinatorRequest::decode(&mut body, version).expect("decode");
                assert_eq!(req.coordinator_keys, vec![s("g")], "v4 batches keys");
                let code = {
                    let mut script = script.lock().expect("lock");
                    script.finds += 1;
                    if script.find_failures > 0 {
                        script.find_failures -= 1;
                        COORDINATOR_NOT_AVAILABLE
                    } else {
                        0
                    }
                };
                let resp = FindCoordinatorResponse::default().with_coordinators(vec![
                    Coordinator::default()
                        .with_error_code(code)
                        .with_key(s("g"))
                        .with_node_id(0.into())
                        .with_host(s("127.0.0.1"))
                        .with_port(i32::from(port)),
                ]);
                write_response(&mut stream, api, version, id, &resp).await;
            }
            ApiKey::JoinGroup => {
                let req = JoinGroupRequest::decode(&mut body, version).expect("decode");
                assert_eq!(req.protocol_type.as_str(), "consumer");
                assert_eq!(req.protocols.len(), 1);
                assert_eq!(req.protocols[0].name.as_str(), "range");
                let ours = req.protocols[0].metadata.clone();
                let sub = decode_subscription(&ours).expect("our subscription decodes");
                assert_eq!(sub.topics, vec!["t".to_string()]);
                let resp = {
                    let mut guard = script.lock().expect("lock");
                    guard.joins.push(req.member_id.to_string());
                    if req.member_id.is_empty() {
                        JoinGroupResponse::default()
                            .with_error_code(MEMBER_ID_REQUIRED)
                            .with_member_id(s("m-1"))
                            .with_generation_id(-1)
                    } else {
                        guard.generation += 1;
                        JoinGroupResponse::default()
                            .with_generation_id(guard.generation)
                            .with_protocol_type(Some(s("consumer")))
                            .with_protocol_name(Some(s("range")))
                            .with_leader(s("m-1"))
                            .with_member_id(req.member_id.clone())
                            .with_members(vec![
                                JoinGroupResponseMember::default()
                                    .with_member_id(s("m-1"))
                                    .with_metadata(ours),
                                JoinGroupResponseMember::default()
                                    .with_member_id(s("m-2"))
                                    .with_metadata(java_subscription()),
                            ])
                    }
                };
                write_response(&mut stream, api, version, id, &resp).await;
            }
            ApiKey::SyncGroup => {
                let req = SyncGroupRequest::decode(&mut body, version).expect("decode");
                let plan: Vec<(String, Vec<TopicPartitions>)> = req
                    .assignments
                    .iter()
                    .map(|a| {
                        (
                            a.member_id.to_string(),
                            decode_assignment(&a.assignment).expect("assignment decodes"),
                        )
                    })
                    .collect();
                let mine = req
                    .assignments
                    .iter()
                    .find(|a| a.member_id == req.member_id)
                    .map(|a| a.assignment.clone())
                    .unwrap_or_default();
                let code = {
                    let mut script = script.lock().expect("lock");
                    script.syncs.push(plan);
                    if script.sync_failures > 0 {
                        script.sync_failures -= 1;
                        REBALANCE_IN_PROGRESS
                    } else {
                        0
                    }
                };
                let resp = SyncGroupResponse::default()
                    .with_error_code(code)
                    .with_protocol_type(Some(s("consumer")))
                    .with_protocol_name(Some(s("range")))
                    .with_assignment(mine);
                write_response(&mut stream, api, version, id, &resp).await;
            }
            ApiKey::Heartbeat => {
                let req = HeartbeatRequest::decode(&mut body, version).expect("decode");
                let code = {
                    let mut script = script.lock().expect("lock");
                    script.heartbeats += 1;
                    if script.rebalance_generation == Some(req.generation_id) {
                        REBALANCE_IN_PROGRESS
                    } else {
                        0
                    }
                };
                let resp = HeartbeatResponse::default().with_error_code(code);
                write_response(&mut stream, api, version, id, &resp).await;
            }
            ApiKey::OffsetFetch => {
                let req = OffsetFetchRequest::decode(&mut body, version).expect("decode");
                assert!(version >= 8, "the batched layout is used when available");
                let topics = req.groups[0].topics.clone().unwrap_or_default();
                let resp = OffsetFetchResponse::default().with_groups(vec![
                    OffsetFetchResponseGroup::default()
                        .with_group_id(req.groups[0].group_id.clone())
                        .with_topics(
                            topics
                                .iter()
                                .map(|t| {
                                    OffsetFetchResponseTopics::default()
                                        .with_name(t.name.clone())
                                        .with_partitions(
                                            t.partition_indexes
                                                .iter()
                                                .map(|&p| {
                                                    // Only partition 0 has a commit.
                                                    let offset = if p == 0 { 5 } else { -1 };
                                                    OffsetFetchResponsePartitions::default()
                                                        .with_partition_index(p)
                                                        .with_committed_offset(offset)
                                                        .with_committed_leader_epoch(-1)
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        ),
                ]);
                write_response(&mut stream, api, version, id, &resp).await;
            }
            ApiKey::ListOffsets => {
                let req = ListOffsetsRequest::decode(&mut body, version).expect("decode");
                let topics = req
                    .topics
                    .iter()
                    .map(|t| {
                        ListOffsetsTopicResponse::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        // Earliest (-2) is 2, latest is 100.
                                        let offset = if p.timestamp == -2 { 2 } else { 100 };
                                        ListOffsetsPartitionResponse::default()
                                            .with_partition_index(p.partition_index)
                                            .with_offset(offset)
                                            .with_timestamp(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                let resp = ListOffsetsResponse::default().with_topics(topics);
                write_response(&mut stream, api, version, id, &resp).await;
            }
            ApiKey::OffsetCommit => {
                let req = OffsetCommitRequest::decode(&mut body, version).expect("decode");
                let offsets: Vec<(i32, i64)> = req.topics[0]
                    .partitions
                    .iter()
                    .map(|p| (p.partition_index, p.committed_offset))
                    .collect();
                script.lock().expect("lock").commits.push((
                    req.generation_id_or_member_epoch,
                    req.member_id.to_string(),
                    offsets,
                ));
                let resp = OffsetCommitResponse::default().with_topics(
                    req.topics
                        .iter()
                        .map(|t| {
                            OffsetCommitResponseTopic::default()
                                .with_name(t.name.clone())
                                .with_partitions(
                                    t.partitions
                                        .iter()
                                        .map(|p| {
                                            OffsetCommitResponsePartition::default()
                                                .with_partition_index(p.partition_index)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
                write_response(&mut stream, api, version, id, &resp).await;
            }
            ApiKey::LeaveGroup => {
                let req = LeaveGroupRequest::decode(&mut body, version).expect("decode");
                assert!(version >= 3, "the batched layout is used when available");
                script
                    .lock()
                    .expect("lock")
                    .leaves
                    .extend(req.members.iter().map(|m| m.member_id.to_string()));
                let resp = LeaveGroupResponse::default();
                write_response(&mut stream, api, version, id, &resp).await;
            }
            other => panic!("unexpected request {other:?}"),
        }
    }
}

async fn start() -> (String, Shared) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let script: Shared = Arc::default();
    let script2 = script.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, addr.port(), script2.clone()));
        }
    });
    (addr.to_string(), script)
}

async fn member(addr: &str, heartbeat: Duration) -> GroupConsumer {
    let mut cfg = ClientConfig::new(addr);
    cfg.request_timeout = Duration::from_secs(10);
    let client = Arc::new(Client::connect(cfg).await.expect("connect"));
    let mut config = GroupConsumerConfig::new("g", vec!["t".to_string()]);
    config.auto_offset_reset = OffsetReset::Earliest;
    config.heartbeat_interval = heartbeat;
    GroupConsumer::new(client, config).expect("consumer")
}

fn tp(topic: &str, partitions: &[i32]) -> TopicPartitions {
    TopicPartitions {
        topic: topic.into(),
        partitions: partitions.to_vec(),
    }
}

#[tokio::test]
async fn member_joins_with_the_required_member_id_and_leads_a_range_assignment() {
    let (addr, script) = start().await;
    let mut consumer = member(&addr, Duration::from_secs(60)).await;
    consumer.ensure_joined().await.expect("join");

    {
        let script = script.lock().expect("lock");
        assert_eq!(
            script.joins,
            vec!["".to_string(), "m-1".to_string()],
            "MEMBER_ID_REQUIRED: join again with the id the coordinator gave"
        );
        assert_eq!(
            script.syncs,
            vec![vec![
                ("m-1".to_string(), vec![tp("t", &[0, 1])]),
                ("m-2".to_string(), vec![tp("t", &[2, 3])]),
            ]],
            "the leader assigns ranges to every member, Java members included"
        );
    }
    assert_eq!(consumer.member_id(), "m-1");
    assert_eq!(consumer.generation_id(), 1);
    assert_eq!(consumer.assignment(), &[tp("t", &[0, 1])]);
    assert_eq!(consumer.position("t", 0), Some(5), "resumes at the commit");
    assert_eq!(
        consumer.position("t", 1),
        Some(2),
        "no commit: auto.offset.reset=earliest"
    );
    assert_eq!(consumer.position("t", 2), None, "not ours");

    consumer.seek("t", 0, 9).expect("seek");
    consumer.close().await.expect("close");
    let script = script.lock().expect("lock");
    assert_eq!(
        script.commits,
        vec![(1, "m-1".to_string(), vec![(0, 9), (1, 2)])],
        "close commits positions that differ from the committed ones, as this generation"
    );
    assert_eq!(
        script.leaves,
        vec!["m-1".to_string()],
        "close leaves the group"
    );
}

#[tokio::test]
async fn heartbeat_rebalance_error_makes_the_member_rejoin() {
    let (addr, script) = start().await;
    let mut consumer = member(&addr, Duration::from_millis(50)).await;
    consumer.ensure_joined().await.expect("join");
    let deadline = Instant::now() + Duration::from_secs(30);
    while script.lock().expect("lock").heartbeats == 0 {
        assert!(Instant::now() < deadline, "no heartbeat was sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    consumer.seek("t", 1, 3).expect("seek");
    script.lock().expect("lock").rebalance_generation = Some(1);
    while consumer.generation_id() < 2 {
        assert!(Instant::now() < deadline, "the member never rejoined");
        consumer.ensure_joined().await.expect("rejoin");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    {
        let script_now = script.lock().expect("lock");
        assert_eq!(
            script_now.joins,
            vec!["".to_string(), "m-1".to_string(), "m-1".to_string()],
            "rejoins keeping its member id"
        );
        assert_eq!(
            script_now.commits.first(),
            Some(&(1, "m-1".to_string(), vec![(1, 3)])),
            "moved positions are committed before the partitions are given up \
         (partition 0 still has its committed offset, so it is not sent again)"
        );
    }
    consumer.close().await.expect("close");
}

#[tokio::test]
async fn unavailable_coordinator_and_a_rebalance_during_sync_are_retried() {
    let (addr, script) = start().await;
    {
        let mut script = script.lock().expect("lock");
        script.find_failures = 2;
        script.sync_failures = 1;
    }
    let mut consumer = member(&addr, Duration::from_secs(60)).await;
    consumer.ensure_joined().await.expect("join");
    {
        let script = script.lock().expect("lock");
        assert_eq!(
            script.finds, 3,
            "COORDINATOR_NOT_AVAILABLE: look it up again"
        );
        assert_eq!(
            script.joins,
            vec!["".to_string(), "m-1".to_string(), "m-1".to_string()],
            "REBALANCE_IN_PROGRESS from SyncGroup: join again"
        );
    }
    assert_eq!(consumer.generation_id(), 2);
    assert_eq!(consumer.assignment(), &[tp("t", &[0, 1])]);
    consumer.close().await.expect("close");
}
